// Package protocol is the client-protocol contract. A frontend plugin owns a
// listener and a wire format; the framework's Backend owns sessions,
// ordering, watches and the tree. The frontend translates its wire requests
// into op.Request values and writes back what the Backend hands its Conn.
package protocol

import (
	"context"
	"net"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/zkerr"
)

// ConnectRequest is a client's session handshake.
type ConnectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeoutMs       int32
	SessionID       int64 // 0 asks for a new session
	Password        []byte
	ReadOnly        bool // the client accepts a read-only server
}

// ConnectResponse is the server's answer. An expired or invalid session is
// answered with TimeoutMs 0, SessionID 0 and a zero password, after which
// the frontend closes the connection.
type ConnectResponse struct {
	ProtocolVersion int32
	TimeoutMs       int32
	SessionID       int64
	Password        []byte
	ReadOnly        bool
}

// Conn is implemented by the frontend for each client connection: it is
// where the framework sends ordered output. Calls may come from several
// goroutines; their happens-before order is the order the client must see,
// so each method only appends to one ordered, non-blocking queue.
type Conn interface {
	// Reply sends the answer to the request with this xid. resp is nil when
	// code is not OK (ZooKeeper sends only the header then).
	Reply(xid int32, zxid int64, code zkerr.Code, resp op.Response)
	// Event sends a watch notification.
	Event(ev op.WatchEvent)
	// Close ends the connection once queued output is written.
	Close()
	// RemoteAddr is the client's address (used by the ip ACL scheme).
	RemoteAddr() net.Addr
}

// Session is the framework's handle for one connected session.
type Session interface {
	ID() int64
	// Submit hands over a request. The reply arrives through Conn.Reply in
	// submission order; reads may be answered before Submit returns.
	Submit(xid int32, req op.Request)
	// Detach tells the framework the connection is gone. The session itself
	// lives on until it expires or the client resumes it elsewhere.
	Detach()
}

// Options are server-wide limits the frontend enforces on the wire.
type Options struct {
	// MaxRequestBytes is jute.maxbuffer: a larger frame closes the connection.
	MaxRequestBytes int
	// MaxClientConnsPerIP is maxClientCnxns (0 = unlimited).
	MaxClientConnsPerIP int
}

// Backend is implemented by the framework and given to every frontend.
type Backend interface {
	// Connect opens or resumes a session for conn. On an expired or bad
	// session it returns zkerr.ErrSessionExpired together with the response
	// to send before closing; other errors mean close without a response.
	Connect(ctx context.Context, req ConnectRequest, conn Conn) (Session, ConnectResponse, error)
	// FourLetterWord answers a four-letter word such as "ruok". ok is false
	// when cmd is not a four-letter word at all.
	FourLetterWord(cmd string) (out string, ok bool)
	Options() Options
}

// Frontend is implemented by protocol plugins.
type Frontend interface {
	// Start binds the listener and begins serving in the background.
	Start(ctx context.Context, b Backend) error
	// Addr is the bound address (useful when configured with port 0).
	Addr() net.Addr
	// Shutdown closes the listener and every connection.
	Shutdown(ctx context.Context) error
}

// Factory creates a Frontend.
type Factory interface {
	plugin.Factory
	New(ctx context.Context, set plugin.Settings, cfg any) (Frontend, error)
}

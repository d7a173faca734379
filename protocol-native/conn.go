package protocolnative

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/zkerr"
)

const (
	readBufferSize = 16 << 10
	// Buffers that grew past these are dropped after use, so one large
	// request or reply does not pin memory for the connection's lifetime.
	keepReadBuf  = 256 << 10
	keepWriteBuf = 1 << 20
)

// conn is one client connection. The reader goroutine (serve) does the
// handshake, decodes frames and submits requests in arrival order; the
// writer goroutine (writeLoop) writes whatever the output queue holds.
//
// The queue is one byte slice of encoded frames: Reply and Event encode
// straight into it under mu, so their happens-before order is the wire
// order, the caller never waits on the network, and nothing the backend
// hands over is retained after the call. The writer swaps the slice for an
// empty one and writes the whole batch in one call, so under load many
// replies share a syscall and at low load each goes out at once.
type conn struct {
	f      *Frontend
	nc     net.Conn
	ip     string
	remote net.Addr
	br     *bufio.Reader
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "the queue changed"
	wdone  chan struct{} // closed when writeLoop returns

	// Reader goroutine only.
	sess         protocol.Session
	withReadOnly bool // the client's ConnectRequest had the readOnly byte
	rbuf         []byte

	mu       sync.Mutex
	cond     *sync.Cond // signalled when pending reaches 0 or the conn closes
	out      []byte     // encoded frames not yet taken by the writer
	held     bool       // handshake in progress: queue but do not write yet
	closing  bool       // Close was called: write what is queued, then end
	dead     bool       // torn down: drop everything
	pending  int        // submitted requests not yet answered
	lastZxid int64      // highest zxid sent in a reply
}

func newConn(f *Frontend, nc net.Conn, ip string) *conn {
	c := &conn{
		f:      f,
		nc:     nc,
		ip:     ip,
		remote: nc.RemoteAddr(),
		br:     bufio.NewReaderSize(nc, readBufferSize),
		wake:   make(chan struct{}, 1),
		wdone:  make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(f.ctx)
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *conn) logger() *slog.Logger { return c.f.log.With("remote", c.remote.String()) }

// serve is the reader goroutine.
func (c *conn) serve() {
	defer c.f.wg.Done()
	defer c.teardown()
	if c.handshake() {
		c.requestLoop()
	}
}

// teardown runs when the reader ends for any reason: it cuts the socket,
// waits for the writer, and detaches the session exactly once.
func (c *conn) teardown() {
	c.abort()
	<-c.wdone
	if c.sess != nil {
		c.sess.Detach()
	}
	c.f.remove(c)
}

// handshake reads a four-letter word or a ConnectRequest and runs
// Backend.Connect. It reports whether the request loop should start.
func (c *conn) handshake() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.f.cfg.HandshakeTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return false
	}
	// Before the handshake the first 4 bytes may be a command instead of a
	// length. Any legal length is far below 0x61616161 ("aaaa"), so the two
	// cannot be confused; the backend decides which words exist.
	if isFourLetters(hdr) {
		if out, ok := c.f.backend.FourLetterWord(string(hdr[:])); ok {
			c.enqueueRaw([]byte(out))
			c.Close()
			c.drain()
			return false
		}
	}
	frame, ok := c.readFrame(int32(binary.BigEndian.Uint32(hdr[:])))
	if !ok {
		return false
	}
	req, withRO, err := decodeConnectRequest(frame)
	if err != nil {
		c.logger().Debug("closing connection: bad ConnectRequest", "err", err)
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.withReadOnly = withRO

	// Output the backend queues during Connect (an event racing the
	// attach, say) must follow the ConnectResponse: hold it until then.
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
	sess, resp, err := c.f.backend.Connect(c.ctx, req, c)
	switch {
	case err == nil && sess != nil:
		c.sess = sess
		c.release(&resp)
		return true
	case errors.Is(err, zkerr.ErrSessionExpired):
		// timeout 0 / session 0 tells the client its session is gone.
		c.release(&resp)
		c.Close()
		c.drain()
		return false
	default:
		if err == nil {
			err = errors.New("backend returned no session")
		}
		c.logger().Debug("closing connection: connect refused", "err", err)
		return false
	}
}

// release puts the ConnectResponse in front of anything queued during the
// handshake and lets the writer go.
func (c *conn) release(resp *protocol.ConnectResponse) {
	c.mu.Lock()
	if !c.dead {
		head := appendConnectResponse(make([]byte, 0, 64+len(c.out)), resp, c.withReadOnly)
		c.out = append(head, c.out...)
	}
	c.held = false
	c.mu.Unlock()
	c.signal()
}

func (c *conn) requestLoop() {
	var lenBuf [4]byte
	for {
		if cap(c.rbuf) > keepReadBuf {
			c.rbuf = nil
		}
		if _, err := io.ReadFull(c.br, lenBuf[:]); err != nil {
			return
		}
		frame, ok := c.readFrame(int32(binary.BigEndian.Uint32(lenBuf[:])))
		if !ok {
			return
		}
		xid, code, body, err := decodeRequestHeader(frame)
		if err != nil {
			// Not even a RequestHeader: the framing itself is broken.
			c.logger().Debug("closing connection: short request frame", "len", len(frame))
			return
		}
		if !isClientOp(code) {
			// UnimplementedRequestProcessor: answer, then hang up.
			c.logger().Info("closing connection: unimplemented opcode", "opcode", int32(code))
			c.localReply(xid, zkerr.Unimplemented)
			c.Close()
			c.drain()
			return
		}
		d := newDecoder(body)
		req := decodeRequestBody(&d, code)
		if err := d.finish(); err != nil {
			// ZooKeeper answers a bad record with MARSHALLINGERROR and keeps
			// the connection: the frame boundary is still known.
			c.logger().Debug("bad request record", "op", code.String(), "xid", xid, "err", err)
			if !c.localReply(xid, zkerr.MarshallingError) {
				c.drain()
				return
			}
			continue
		}
		if !c.submit(xid, req) {
			c.drain()
			return
		}
	}
}

// readFrame reads a frame body of length n into the reused read buffer,
// refusing a bad length before allocating (ZooKeeper's "Len error").
func (c *conn) readFrame(n int32) ([]byte, bool) {
	if n < 0 || int(n) > c.f.opts.MaxRequestBytes {
		c.logger().Info("closing connection: Len error", "len", n, "max", c.f.opts.MaxRequestBytes)
		return nil, false
	}
	if cap(c.rbuf) < int(n) {
		c.rbuf = make([]byte, max(int(n), 4096))
	}
	buf := c.rbuf[:n]
	if _, err := io.ReadFull(c.br, buf); err != nil {
		return nil, false
	}
	return buf, true
}

// drain discards input until the peer closes or the writer's linger
// deadline passes, so closing never resets a connection whose last output
// is still in flight.
func (c *conn) drain() { _, _ = io.Copy(io.Discard, c.br) }

func (c *conn) submit(xid int32, req op.Request) bool {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	c.pending++
	c.mu.Unlock()
	c.sess.Submit(xid, req)
	return true
}

// localReply answers a request the backend never saw. It waits until every
// earlier request has been answered so the client sees replies in order.
func (c *conn) localReply(xid int32, code zkerr.Code) bool {
	c.mu.Lock()
	for c.pending > 0 && !c.closing && !c.dead {
		c.cond.Wait()
	}
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	c.out, _ = appendReply(c.out, xid, c.lastZxid, code, nil)
	c.mu.Unlock()
	c.signal()
	return true
}

func (c *conn) enqueueRaw(p []byte) {
	c.mu.Lock()
	if !c.closing && !c.dead {
		c.out = append(c.out, p...)
	}
	c.mu.Unlock()
	c.signal()
}

// Reply implements protocol.Conn.
func (c *conn) Reply(xid int32, zxid int64, code zkerr.Code, resp op.Response) {
	c.mu.Lock()
	if c.pending > 0 {
		if c.pending--; c.pending == 0 {
			c.cond.Broadcast()
		}
	}
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	if zxid > c.lastZxid {
		c.lastZxid = zxid
	}
	out, encErr := appendReply(c.out, xid, zxid, code, resp)
	if encErr != nil {
		// A response that does not fit its record is a server bug; the
		// client still gets an answer for its xid rather than a hang.
		out, _ = appendReply(c.out, xid, zxid, zkerr.MarshallingError, nil)
	}
	c.out = out
	over := len(c.out) > c.f.cfg.MaxOutboundBytes
	c.mu.Unlock()
	if encErr != nil {
		c.logger().Error("cannot encode reply", "xid", xid, "response", opName(resp), "err", encErr)
	}
	if over {
		c.overflow()
		return
	}
	c.signal()
}

// Event implements protocol.Conn.
func (c *conn) Event(ev op.WatchEvent) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	c.out = appendEvent(c.out, &ev)
	over := len(c.out) > c.f.cfg.MaxOutboundBytes
	c.mu.Unlock()
	if over {
		c.overflow()
		return
	}
	c.signal()
}

// Close implements protocol.Conn: queued output is written, then the
// connection ends. A peer that stops reading gets CloseLinger to take it.
func (c *conn) Close() {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.f.cfg.CloseLinger))
	c.signal()
}

// RemoteAddr implements protocol.Conn.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) overflow() {
	c.logger().Warn("closing connection: client is not reading its replies",
		"queued_bytes_limit", c.f.cfg.MaxOutboundBytes)
	c.abort()
}

// abort tears the connection down at once, dropping queued output.
func (c *conn) abort() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.out = nil
	c.cond.Broadcast()
	c.mu.Unlock()
	c.cancel()
	_ = c.nc.Close()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine.
func (c *conn) writeLoop() {
	defer c.f.wg.Done()
	defer close(c.wdone)
	var spare []byte
	for {
		c.mu.Lock()
		for {
			if c.dead {
				c.mu.Unlock()
				return
			}
			if !c.held && (len(c.out) > 0 || c.closing) {
				break
			}
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		buf := c.out
		c.out = spare[:0]
		closing := c.closing
		c.mu.Unlock()

		if len(buf) > 0 {
			if _, err := c.nc.Write(buf); err != nil {
				c.abort()
				return
			}
		}
		if closing {
			// Everything queued before Close is in buf (later output is
			// dropped). Half-close so the client reads it all before EOF;
			// the reader drains until the peer closes or the linger ends.
			if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(c.f.cfg.CloseLinger))
			return
		}
		if cap(buf) > keepWriteBuf {
			buf = nil
		}
		spare = buf[:0]
	}
}

func isFourLetters(b [4]byte) bool {
	for _, ch := range b {
		if ch < 'a' || ch > 'z' {
			return false
		}
	}
	return true
}

func opName(r op.Response) string {
	if r == nil {
		return "nil"
	}
	return r.Op().String()
}

var _ protocol.Conn = (*conn)(nil)

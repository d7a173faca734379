package consensusraft

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The peer port carries two protocols, told apart by the first byte a
// dialer writes on each connection (Consul does the same on its server
// port). A new protocol version gets a new byte rather than a handshake.
const (
	muxRaft    byte = 0x52 // 'R': hashicorp/raft's NetworkTransport
	muxForward byte = 0x46 // 'F': Corral's follower-to-leader forwarding, version 1
)

// errLayerClosed is what Accept returns once raft closed its stream layer.
var errLayerClosed = errors.New("raft stream layer closed")

// peerMux owns the peer listener. It reads the first byte of every accepted
// connection and hands raft connections to raftLayer.Accept and forwarding
// connections to serveFwd; anything else is closed.
type peerMux struct {
	ln       net.Listener
	raft     *raftLayer
	serveFwd func(net.Conn) // serves one forwarding connection until it ends
	timeout  time.Duration  // for the first byte
	log      *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // routed forwarding connections, closed by Close
	closed bool
	wg     sync.WaitGroup
}

// newPeerMux starts accepting on ln. advertise is the address raft gives
// its peers (nil: the listener's).
func newPeerMux(ln net.Listener, advertise net.Addr, timeout time.Duration, serveFwd func(net.Conn), log *slog.Logger) *peerMux {
	if advertise == nil {
		advertise = ln.Addr()
	}
	m := &peerMux{
		ln:       ln,
		raft:     newRaftLayer(advertise, timeout),
		serveFwd: serveFwd,
		timeout:  timeout,
		log:      log,
		conns:    map[net.Conn]struct{}{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *peerMux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return
			}
			// Temporary trouble (out of file descriptors): back off as
			// net/http does rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("peer listener: accept failed", "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		m.wg.Add(1)
		go m.route(c)
	}
}

// route reads the protocol byte and dispatches. A peer that sends nothing
// within the timeout, or an unknown byte, loses that connection only.
func (m *peerMux) route(c net.Conn) {
	defer m.wg.Done()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(m.timeout))
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		m.raft.deliver(c)
	case muxForward:
		if !m.track(c) {
			c.Close()
			return
		}
		m.serveFwd(c)
		m.untrack(c)
		c.Close()
	default:
		m.log.Warn("peer listener: unknown protocol byte, closing the connection",
			"byte", b[0], "remote", c.RemoteAddr().String())
		c.Close()
	}
}

func (m *peerMux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *peerMux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

func (m *peerMux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Close stops the listener, closes the raft layer and every forwarding
// connection, and waits for their goroutines. raft's own connections are
// closed by its transport.
func (m *peerMux) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.ln.Close()
	m.raft.Close()
	m.wg.Wait()
}

// raftLayer is the raft.StreamLayer on the shared port.
type raftLayer struct {
	addr    net.Addr
	timeout time.Duration
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
}

func newRaftLayer(addr net.Addr, timeout time.Duration) *raftLayer {
	return &raftLayer{addr: addr, timeout: timeout, ch: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands an accepted raft connection to Accept, or closes it once
// the layer is closed.
func (l *raftLayer) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept implements net.Listener for raft's NetworkTransport.
func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, errLayerClosed
	}
}

// Close implements net.Listener. raft calls it when its transport closes;
// the shared listener stays with peerMux.
func (l *raftLayer) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener: the address peers are told to dial.
func (l *raftLayer) Addr() net.Addr { return l.addr }

// Dial implements raft.StreamLayer: a TCP connection that announces raft.
func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialPeer(context.Background(), string(address), muxRaft, timeout)
}

// dialPeer connects to a member's peer port and writes the protocol byte.
func dialPeer(ctx context.Context, address string, proto byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

var _ raft.StreamLayer = (*raftLayer)(nil)

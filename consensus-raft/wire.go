package consensusraft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Forwarding protocol (after the muxForward byte). Integers are big-endian.
//
//	hello, client → leader, once:  version u8 | member id u64 | epoch u64
//	request, client → leader:      kind u8 | id u64 | length u32 | payload
//	response, leader → client:     id u64 | code u8 | index u64
//
// A connection whose hello has a non-zero epoch is its member's ordered
// proposal stream; epoch 0 marks a connection for read barriers only. Each
// request carries an id chosen by the client; responses come back matched by
// id, in any order, with many requests in flight per connection.
const (
	fwdVersion   = 1
	helloLen     = 1 + 8 + 8
	reqHeaderLen = 1 + 8 + 4
	respLen      = 8 + 1 + 8
	// maxFwdPayload bounds one forwarded proposal; far above what the
	// framework proposes (ZooKeeper's own limit is about 1 MB).
	maxFwdPayload = 64 << 20
)

// Request kinds.
const (
	kindPropose   byte = 1 // payload: the proposal; answer: its log index
	kindReadIndex byte = 2 // payload: the follower's commit index, u64; answer: the index to wait for
)

// Response codes.
const (
	codeOK       byte = 0 // index is valid
	codeRefused  byte = 1 // nothing was appended: not the leader (or stopping)
	codeUnknown  byte = 2 // the proposal reached raft; it may or may not commit
	codeNoQuorum byte = 3 // a read index could not confirm leadership in time
	// codeSkipped: nothing was appended because an earlier proposal on the
	// stream failed, or a newer stream of the same member replaced it.
	codeSkipped byte = 4
	// codeLost is never sent: the client uses it when the connection failed
	// before an answer arrived.
	codeLost    byte = 0xfe
	codePending byte = 0xff // client bookkeeping: no answer yet
)

var errConnClosed = errors.New("forwarding connection closed")

func appendHello(b []byte, member, epoch uint64) []byte {
	b = append(b, fwdVersion)
	b = binary.BigEndian.AppendUint64(b, member)
	return binary.BigEndian.AppendUint64(b, epoch)
}

func appendRequest(b []byte, kind byte, id uint64, payload []byte) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func appendResponse(b []byte, id uint64, code byte, index uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, code)
	return binary.BigEndian.AppendUint64(b, index)
}

// frameWriter batches frames for one connection: callers append encoded
// frames under a lock and one goroutine writes whatever has accumulated in a
// single Write, so a burst of requests or answers costs one syscall and
// nobody waits for the network while holding the lock.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration
	onFail  func(error)

	mu     sync.Mutex
	buf    []byte
	spare  []byte
	failed bool
	wake   chan struct{}
	done   chan struct{}
}

func newFrameWriter(conn net.Conn, timeout time.Duration, onFail func(error)) *frameWriter {
	return &frameWriter{conn: conn, timeout: timeout, onFail: onFail,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add runs enc to append frames to the outgoing buffer; it reports false
// once the writer has stopped. enc runs under the writer's lock, so frames
// from calls made in sequence go out in that sequence.
func (w *frameWriter) add(enc func([]byte) []byte) bool {
	w.mu.Lock()
	if w.failed {
		w.mu.Unlock()
		return false
	}
	w.buf = enc(w.buf)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// maxSpare keeps one burst's buffer for reuse but not a giant one.
const maxSpare = 1 << 20

func (w *frameWriter) run() {
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		w.mu.Lock()
		b := w.buf
		w.buf = w.spare[:0]
		w.spare = nil
		w.mu.Unlock()
		if len(b) == 0 {
			continue
		}
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		if _, err := w.conn.Write(b); err != nil {
			w.stop()
			w.onFail(err)
			return
		}
		if cap(b) <= maxSpare {
			w.mu.Lock()
			w.spare = b[:0]
			w.mu.Unlock()
		}
	}
}

// stop makes later adds fail and ends run; it does not close the conn.
func (w *frameWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.failed {
		w.failed = true
		close(w.done)
	}
}

// fwdConn is the follower's end of one forwarding connection: requests are
// registered under an id and answered through their callback, which runs
// on the connection's reader goroutine and must not block.
type fwdConn struct {
	conn net.Conn
	w    *frameWriter

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]func(code byte, index uint64)
	err     error
	once    sync.Once
}

// dialFwd connects to addr's peer port and says hello. epoch 0 asks for a
// read-barrier connection; any other value opens member's proposal stream.
func dialFwd(ctx context.Context, addr string, member, epoch uint64, timeout time.Duration) (*fwdConn, error) {
	conn, err := dialPeer(ctx, addr, muxForward, timeout)
	if err != nil {
		return nil, err
	}
	c := &fwdConn{conn: conn, pending: map[uint64]func(byte, uint64){}}
	c.w = newFrameWriter(conn, timeout, c.fail)
	c.w.add(func(b []byte) []byte { return appendHello(b, member, epoch) })
	go c.w.run()
	go c.readLoop()
	return c, nil
}

// send queues a request; cb gets exactly one answer, codeLost if the
// connection fails first. It reports false, without calling cb, when the
// connection has already failed.
func (c *fwdConn) send(kind byte, payload []byte, cb func(code byte, index uint64)) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = cb
	// The writer's lock is taken inside ours so ids and frames stay in
	// the same order as calls.
	ok := c.w.add(func(b []byte) []byte { return appendRequest(b, kind, id, payload) })
	if !ok {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	return ok
}

func (c *fwdConn) readLoop() {
	br := bufio.NewReaderSize(c.conn, 16<<10)
	var hdr [respLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			c.fail(err)
			return
		}
		id := binary.BigEndian.Uint64(hdr[:])
		code := hdr[8]
		index := binary.BigEndian.Uint64(hdr[9:])
		c.mu.Lock()
		cb, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			c.fail(fmt.Errorf("answer to unknown request %d", id))
			return
		}
		cb(code, index)
	}
}

// fail closes the connection and answers everything pending with codeLost.
func (c *fwdConn) fail(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		c.w.stop()
		c.conn.Close()
		for _, cb := range pending {
			cb(codeLost, 0)
		}
	})
}

func (c *fwdConn) close() { c.fail(errConnClosed) }

// failed reports whether the connection is unusable.
func (c *fwdConn) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

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
//	  when code is codeDetail:     ... | index bytes: code u8 | message
//
// A connection whose hello has a non-zero epoch is its member's ordered
// proposal stream; epoch 0 marks a connection for read barriers and
// membership requests only. Each request carries an id chosen by the
// client; responses come back matched by id, in any order, with many
// requests in flight per connection.
//
// The membership kinds and codeDetail were added to version 1 without a
// new version: a leader answers codeDetail only to membership requests, so
// a client that never sends them never sees it, and a leader that predates
// them closes the connection on them (the client then reports an unknown
// outcome for that one call; read barriers sharing the connection retry).
const (
	fwdVersion   = 1
	helloLen     = 1 + 8 + 8
	reqHeaderLen = 1 + 8 + 4
	respLen      = 8 + 1 + 8
	// maxFwdPayload bounds one forwarded proposal; far above what the
	// framework proposes (ZooKeeper's own limit is about 1 MB).
	maxFwdPayload = 64 << 20
	// maxMemberPayload bounds a membership request (two addresses).
	maxMemberPayload = 4 << 10
	// maxDetail bounds the message of a detailed answer: a sender cuts its
	// text to it and a reader refuses anything longer.
	maxDetail = 4 << 10
)

// Request kinds.
const (
	kindPropose   byte = 1 // payload: the proposal; answer: its log index
	kindReadIndex byte = 2 // payload: the follower's commit index, u64; answer: the index to wait for
	// Membership changes run on the leader (membership.go). Payloads start
	// with the caller's remaining time in nanoseconds, u64 (0: the leader's
	// ForwardTimeout), then:
	//   kindAddMember:  member id u64 | voter u8 | peer length u16 | peer | client address (the rest)
	//   kindRemoveMember, kindTransferLeadership: member id u64 (transfer: 0 lets raft pick)
	// The answer is codeOK with the configuration entry's log index (0 for
	// a transfer), or codeDetail.
	kindAddMember          byte = 3
	kindRemoveMember       byte = 4
	kindTransferLeadership byte = 5
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
	// codeDetail: the real code and a message follow the frame (membership
	// answers only); the index field holds their length.
	codeDetail byte = 5
	// codeFailed, only inside codeDetail: the change failed on the leader
	// for a reason the message gives (for example the target of a transfer
	// is not a voter); trying another leader would not help.
	codeFailed byte = 6
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

// appendDetailResponse writes a codeDetail answer carrying code and msg
// (cut to maxDetail-1 bytes).
func appendDetailResponse(b []byte, id uint64, code byte, msg string) []byte {
	if len(msg) > maxDetail-1 {
		msg = msg[:maxDetail-1]
	}
	b = appendResponse(b, id, codeDetail, uint64(1+len(msg)))
	b = append(b, code)
	return append(b, msg...)
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
	pending map[uint64]answerFn
	err     error
	once    sync.Once
}

// answerFn is one pending request's callback: plain for proposals and read
// barriers, detailed (with the leader's message) for membership requests.
type answerFn struct {
	plain    func(code byte, index uint64)
	detailed func(code byte, index uint64, msg string)
}

func (a answerFn) call(code byte, index uint64, msg string) {
	if a.detailed != nil {
		a.detailed(code, index, msg)
		return
	}
	a.plain(code, index)
}

// dialFwd connects to addr's peer port and says hello. epoch 0 asks for a
// read-barrier connection; any other value opens member's proposal stream.
func dialFwd(ctx context.Context, addr string, member, epoch uint64, timeout time.Duration) (*fwdConn, error) {
	conn, err := dialPeer(ctx, addr, muxForward, timeout)
	if err != nil {
		return nil, err
	}
	c := &fwdConn{conn: conn, pending: map[uint64]answerFn{}}
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
	return c.sendFn(kind, payload, answerFn{plain: cb})
}

// sendDetailed is send for membership requests, whose failures come with
// the leader's message.
func (c *fwdConn) sendDetailed(kind byte, payload []byte, cb func(code byte, index uint64, msg string)) bool {
	return c.sendFn(kind, payload, answerFn{detailed: cb})
}

func (c *fwdConn) sendFn(kind byte, payload []byte, cb answerFn) bool {
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
		var msg string
		if code == codeDetail {
			if index == 0 || index > maxDetail {
				c.fail(fmt.Errorf("detailed answer of %d bytes", index))
				return
			}
			b := make([]byte, index)
			if _, err := io.ReadFull(br, b); err != nil {
				c.fail(err)
				return
			}
			code, index, msg = b[0], 0, string(b[1:])
		}
		c.mu.Lock()
		cb, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			c.fail(fmt.Errorf("answer to unknown request %d", id))
			return
		}
		cb.call(code, index, msg)
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
			cb.call(codeLost, 0, "")
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

package main

// go-zookeeper/zk v1.0.4 cannot send the 3.6+ opcodes that zkCli uses
// (addWatch, getEphemerals, getAllChildrenNumber, whoAmI) nor removeWatches.
// Those are per-session operations (getEphemerals lists the caller's own
// ephemerals; addWatch registers on the caller's connection), so they must go
// over go-zk's own connection rather than a second session. The injector wraps
// the net.Conn go-zk dials: it writes extra request frames between go-zk's
// (go-zk writes each frame with a single Write call, so frames never
// interleave) and diverts the replies carrying our xids before go-zk's reader
// sees them. Watch notifications (xid -1) pass through untouched; go-zk hands
// every one to the event callback, which is how persistent-watch events are
// printed.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Opcodes go-zk lacks (ZooDefs.OpCode).
const (
	opRemoveWatches        = 18
	opGetEphemerals        = 103
	opGetAllChildrenNumber = 104
	opAddWatch             = 106
	opWhoAmI               = 107
)

// xidBase keeps injected xids far from go-zk's, which count up from 1.
const xidBase = 0x60000000

// maxFrame bounds a reply we are willing to buffer (go-zk's own limit is 1.5 MiB).
const maxFrame = 16 << 20

var errNotConnected = errors.New("not connected")

type rawReply struct {
	code int32
	body []byte
	err  error
}

type injector struct {
	xid atomic.Int32

	mu      sync.Mutex
	cur     *tapConn
	pending map[int32]chan rawReply
}

func newInjector() *injector {
	inj := &injector{pending: map[int32]chan rawReply{}}
	inj.xid.Store(xidBase)
	return inj
}

// dial is the zk.Dialer handed to go-zk.
func (inj *injector) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	t := &tapConn{Conn: c, inj: inj}
	inj.mu.Lock()
	inj.cur = t
	inj.mu.Unlock()
	return t, nil
}

// call sends one request on go-zk's current connection and waits for its
// reply. A non-zero code is returned as a zkError.
func (inj *injector) call(opcode int32, body []byte, timeout time.Duration) ([]byte, error) {
	xid := inj.xid.Add(1)
	ch := make(chan rawReply, 1)
	inj.mu.Lock()
	t := inj.cur
	if t == nil || t.closed.Load() {
		inj.mu.Unlock()
		return nil, errNotConnected
	}
	inj.pending[xid] = ch
	inj.mu.Unlock()

	frame := make([]byte, 12+len(body))
	binary.BigEndian.PutUint32(frame[0:], uint32(8+len(body)))
	binary.BigEndian.PutUint32(frame[4:], uint32(xid))
	binary.BigEndian.PutUint32(frame[8:], uint32(opcode))
	copy(frame[12:], body)
	if _, err := t.Write(frame); err != nil {
		inj.forget(xid)
		return nil, fmt.Errorf("%w: %v", zk.ErrConnectionClosed, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.code != 0 {
			return nil, &zkError{code: r.code}
		}
		return r.body, nil
	case <-time.After(timeout):
		inj.forget(xid)
		return nil, fmt.Errorf("no reply to opcode %d within %v", opcode, timeout)
	}
}

func (inj *injector) forget(xid int32) {
	inj.mu.Lock()
	delete(inj.pending, xid)
	inj.mu.Unlock()
}

func (inj *injector) take(xid int32) chan rawReply {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	ch, ok := inj.pending[xid]
	if ok {
		delete(inj.pending, xid)
	}
	return ch
}

// failAll answers every pending call when the connection under them dies;
// ZooKeeper never answers on a new connection for a request sent on an old one.
func (inj *injector) failAll(t *tapConn, err error) {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.cur != t {
		return
	}
	for xid, ch := range inj.pending {
		ch <- rawReply{err: fmt.Errorf("%w: %v", zk.ErrConnectionClosed, err)}
		delete(inj.pending, xid)
	}
}

// tapConn is the net.Conn go-zk reads and writes through.
type tapConn struct {
	net.Conn
	inj    *injector
	wmu    sync.Mutex
	closed atomic.Bool

	// Only go-zk's single reader goroutine touches these.
	handshakeDone bool
	rbuf          []byte
}

func (t *tapConn) Write(b []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.Conn.Write(b)
}

func (t *tapConn) Close() error {
	t.closed.Store(true)
	return t.Conn.Close()
}

// Read hands go-zk whole frames, minus the replies to injected requests.
func (t *tapConn) Read(p []byte) (int, error) {
	for len(t.rbuf) == 0 {
		frame, err := readFrame(t.Conn)
		if err != nil {
			t.inj.failAll(t, err)
			return 0, err
		}
		// The first frame is the ConnectResponse, which has no reply header.
		if t.handshakeDone && len(frame) >= 4+16 {
			xid := int32(binary.BigEndian.Uint32(frame[4:]))
			if xid >= xidBase {
				if ch := t.inj.take(xid); ch != nil {
					// Reply header: xid, zxid (8 bytes), err.
					ch <- rawReply{code: int32(binary.BigEndian.Uint32(frame[16:])), body: frame[20:]}
				}
				continue
			}
		}
		t.handshakeDone = true
		t.rbuf = frame
	}
	n := copy(p, t.rbuf)
	t.rbuf = t.rbuf[n:]
	return n, nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:])))
	if n < 0 || n > maxFrame {
		return nil, fmt.Errorf("frame length %d out of range", n)
	}
	frame := make([]byte, 4+n)
	copy(frame, hdr[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// Jute encoding helpers for the few records sent here.

func putString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func putInt(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }

type juteReader struct {
	b   []byte
	err error
}

func (r *juteReader) int() int32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errors.New("short reply")
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *juteReader) string() string {
	n := r.int()
	if r.err != nil || n < 0 {
		return ""
	}
	if int(n) > len(r.b) {
		r.err = errors.New("short reply")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *juteReader) strings() []string {
	n := r.int()
	if r.err != nil || n < 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := int32(0); i < n && r.err == nil; i++ {
		out = append(out, r.string())
	}
	return out
}

// The operations themselves.

func (inj *injector) addWatch(path string, mode int32, timeout time.Duration) error {
	_, err := inj.call(opAddWatch, putInt(putString(nil, path), mode), timeout)
	return err
}

// removeWatches uses WatcherType numbering: 1 children, 2 data, 3 any,
// 4 persistent, 5 persistent recursive.
func (inj *injector) removeWatches(path string, wtype int32, timeout time.Duration) error {
	_, err := inj.call(opRemoveWatches, putInt(putString(nil, path), wtype), timeout)
	return err
}

func (inj *injector) getEphemerals(prefix string, timeout time.Duration) ([]string, error) {
	body, err := inj.call(opGetEphemerals, putString(nil, prefix), timeout)
	if err != nil {
		return nil, err
	}
	r := &juteReader{b: body}
	out := r.strings()
	return out, r.err
}

func (inj *injector) getAllChildrenNumber(path string, timeout time.Duration) (int32, error) {
	body, err := inj.call(opGetAllChildrenNumber, putString(nil, path), timeout)
	if err != nil {
		return 0, err
	}
	r := &juteReader{b: body}
	n := r.int()
	return n, r.err
}

type clientInfo struct{ scheme, user string }

func (inj *injector) whoAmI(timeout time.Duration) ([]clientInfo, error) {
	body, err := inj.call(opWhoAmI, nil, timeout)
	if err != nil {
		return nil, err
	}
	r := &juteReader{b: body}
	n := r.int()
	var out []clientInfo
	for i := int32(0); i < n && r.err == nil; i++ {
		out = append(out, clientInfo{scheme: r.string(), user: r.string()})
	}
	return out, r.err
}

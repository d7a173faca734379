package protocolnative

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// ---- fake backend ---------------------------------------------------------

// fakeBackend stands in for the framework: it hands out sessions and, by
// default, answers requests from a tiny map-based tree. Tests override
// connect or handle to script other behaviour.
type fakeBackend struct {
	opts protocol.Options

	connect func(req protocol.ConnectRequest, c protocol.Conn) (protocol.Session, protocol.ConnectResponse, error)
	handle  func(s *fakeSession, xid int32, req op.Request)

	mu       sync.Mutex
	nextID   int64
	connects []protocol.ConnectRequest
	sessions []*fakeSession
	zxid     int64
	nodes    map[string]*fakeNode
}

type fakeNode struct {
	data     []byte
	stat     znode.Stat
	watchers []*fakeSession
}

type fakeSession struct {
	b        *fakeBackend
	id       int64
	conn     protocol.Conn
	detached atomic.Int32
	mu       sync.Mutex
	xids     []int32 // submission order
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		opts:  protocol.Options{MaxRequestBytes: 1 << 20},
		nodes: map[string]*fakeNode{"/": {}},
	}
}

func (b *fakeBackend) Options() protocol.Options { return b.opts }

func (b *fakeBackend) FourLetterWord(cmd string) (string, bool) {
	switch cmd {
	case "ruok":
		return "imok", true
	case "srvr":
		return "Zookeeper version: corral-test\nMode: standalone\n", true
	}
	return "", false
}

func (b *fakeBackend) Connect(_ context.Context, req protocol.ConnectRequest, c protocol.Conn) (protocol.Session, protocol.ConnectResponse, error) {
	b.mu.Lock()
	b.connects = append(b.connects, req)
	b.mu.Unlock()
	if b.connect != nil {
		return b.connect(req, c)
	}
	return b.newSession(c, req.TimeoutMs)
}

func (b *fakeBackend) newSession(c protocol.Conn, timeout int32) (protocol.Session, protocol.ConnectResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	s := &fakeSession{b: b, id: 0x1000 + b.nextID, conn: c}
	b.sessions = append(b.sessions, s)
	pw := bytes.Repeat([]byte{byte(b.nextID)}, passwdLen)
	return s, protocol.ConnectResponse{TimeoutMs: timeout, SessionID: s.id, Password: pw, ReadOnly: true}, nil
}

func (b *fakeBackend) session(t *testing.T, i int) *fakeSession {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if i >= len(b.sessions) {
		t.Fatalf("no session %d (have %d)", i, len(b.sessions))
	}
	return b.sessions[i]
}

func (b *fakeBackend) connectReqs() []protocol.ConnectRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]protocol.ConnectRequest(nil), b.connects...)
}

func (s *fakeSession) ID() int64 { return s.id }
func (s *fakeSession) Detach()   { s.detached.Add(1) }

func (s *fakeSession) Submit(xid int32, req op.Request) {
	s.mu.Lock()
	s.xids = append(s.xids, xid)
	s.mu.Unlock()
	if s.b.handle != nil {
		s.b.handle(s, xid, req)
		return
	}
	s.b.serveTree(s, xid, req)
}

// serveTree is just enough of ZooKeeper for the go-zookeeper round trip.
func (b *fakeBackend) serveTree(s *fakeSession, xid int32, req op.Request) {
	b.mu.Lock()
	var (
		code   = zkerr.OK
		resp   op.Response
		events []func()
	)
	switch r := req.(type) {
	case *op.PingRequest:
		resp = &op.EmptyResponse{OpCode: op.Ping}
	case *op.CloseSessionRequest:
		b.mu.Unlock()
		s.conn.Reply(xid, b.zxid, zkerr.OK, &op.EmptyResponse{OpCode: op.CloseSession})
		s.conn.Close()
		return
	case *op.CreateRequest:
		switch {
		case b.nodes[r.Path] != nil:
			code = zkerr.NodeExists
		case b.nodes[znode.Parent(r.Path)] == nil:
			code = zkerr.NoNode
		default:
			b.zxid++
			n := &fakeNode{data: r.Data, stat: znode.Stat{Czxid: b.zxid, Mzxid: b.zxid, Pzxid: b.zxid, DataLength: int32(len(r.Data))}}
			b.nodes[r.Path] = n
			b.nodes[znode.Parent(r.Path)].stat.NumChildren++
			resp = &op.CreateResponse{OpCode: r.Op(), Path: r.Path, Stat: n.stat}
		}
	case *op.GetDataRequest:
		if n := b.nodes[r.Path]; n == nil {
			code = zkerr.NoNode
		} else {
			if r.Watch {
				n.watchers = append(n.watchers, s)
			}
			resp = &op.GetDataResponse{Data: n.data, Stat: n.stat}
		}
	case *op.ExistsRequest:
		if n := b.nodes[r.Path]; n == nil {
			code = zkerr.NoNode
		} else {
			resp = &op.StatResponse{OpCode: op.Exists, Stat: n.stat}
		}
	case *op.SetDataRequest:
		n := b.nodes[r.Path]
		switch {
		case n == nil:
			code = zkerr.NoNode
		case r.Version != -1 && r.Version != n.stat.Version:
			code = zkerr.BadVersion
		default:
			b.zxid++
			n.data = r.Data
			n.stat.Version++
			n.stat.Mzxid = b.zxid
			n.stat.DataLength = int32(len(r.Data))
			for _, w := range n.watchers {
				ev := op.WatchEvent{Type: znode.EventNodeDataChanged, Path: r.Path, Zxid: b.zxid}
				events = append(events, func() { w.conn.Event(ev) })
			}
			n.watchers = nil
			resp = &op.StatResponse{OpCode: op.SetData, Stat: n.stat}
		}
	case *op.GetChildrenRequest:
		if b.nodes[r.Path] == nil {
			code = zkerr.NoNode
		} else {
			var kids []string
			for p := range b.nodes {
				if p != "/" && znode.Parent(p) == r.Path {
					kids = append(kids, znode.Base(p))
				}
			}
			resp = &op.GetChildrenResponse{OpCode: r.Op(), Children: kids, Stat: b.nodes[r.Path].stat}
		}
	case *op.DeleteRequest:
		if b.nodes[r.Path] == nil {
			code = zkerr.NoNode
		} else {
			b.zxid++
			delete(b.nodes, r.Path)
			b.nodes[znode.Parent(r.Path)].stat.NumChildren--
			resp = &op.EmptyResponse{OpCode: op.Delete}
		}
	default:
		code = zkerr.Unimplemented
	}
	zxid := b.zxid
	b.mu.Unlock()
	// Events go out before the reply that caused them, as ZooKeeper does.
	for _, e := range events {
		e()
	}
	s.conn.Reply(xid, zxid, code, resp)
}

// ---- helpers --------------------------------------------------------------

func startFrontend(t *testing.T, b *fakeBackend, mutate ...func(*Config)) *Frontend {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.CloseLinger = 500 * time.Millisecond
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := NewFrontend(*cfg, nil)
	if err := f.Start(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return f
}

type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, f *Frontend) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", f.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) write(p []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(p); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readFrame returns the next frame body or the read error.
func (c *client) readFrame() ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var l [4]byte
	if _, err := io.ReadFull(c.br, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > 1<<22 {
		return nil, errors.New("frame too large")
	}
	body := make([]byte, n)
	_, err := io.ReadFull(c.br, body)
	return body, err
}

func (c *client) mustFrame() []byte {
	c.t.Helper()
	b, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return b
}

func (c *client) handshake(withRO bool) (protocol.ConnectResponse, bool) {
	c.t.Helper()
	req := protocol.ConnectRequest{TimeoutMs: 10000, Password: make([]byte, 16), ReadOnly: withRO}
	c.write(appendConnectRequest(nil, &req, withRO))
	resp, hasRO, err := decodeConnectResponse(c.mustFrame())
	if err != nil {
		c.t.Fatalf("connect response: %v", err)
	}
	return resp, hasRO
}

func (c *client) send(xid int32, req op.Request) {
	c.t.Helper()
	b, err := appendRequest(nil, xid, req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

type reply struct {
	xid  int32
	zxid int64
	code zkerr.Code
	body []byte
}

func (c *client) reply() reply {
	c.t.Helper()
	xid, zxid, code, body, err := decodeReplyHeader(c.mustFrame())
	if err != nil {
		c.t.Fatal(err)
	}
	return reply{xid, zxid, code, body}
}

// expectEOF asserts the server closed the connection with nothing more to say.
func (c *client) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	extra, err := io.ReadAll(c.br)
	if len(extra) > 0 {
		c.t.Fatalf("unexpected bytes before close: %x", extra)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open")
	}
	// Hang up as a real client does on EOF, ending the server's linger.
	c.nc.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- tests ----------------------------------------------------------------

func TestHandshakeWithoutReadOnlyByte(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)
	c := dial(t, f)
	resp, hasRO := c.handshake(false)
	if hasRO {
		t.Fatal("response has a readOnly byte the client did not send")
	}
	s := b.session(t, 0)
	if resp.SessionID != s.id || resp.TimeoutMs != 10000 || len(resp.Password) != 16 {
		t.Fatalf("response %+v", resp)
	}
	if got := b.connectReqs(); got[0].ReadOnly || got[0].TimeoutMs != 10000 {
		t.Fatalf("backend saw %+v", got[0])
	}
	// The session works after the handshake.
	c.send(1, &op.ExistsRequest{Path: "/"})
	if r := c.reply(); r.xid != 1 || r.code != zkerr.OK || len(r.body) != statLen {
		t.Fatalf("exists reply %+v", r)
	}
}

func TestHandshakeWithReadOnlyByte(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)
	c := dial(t, f)
	resp, hasRO := c.handshake(true)
	if !hasRO || !resp.ReadOnly {
		t.Fatalf("want a readOnly byte set to true, got hasRO=%v %+v", hasRO, resp)
	}
	if !b.connectReqs()[0].ReadOnly {
		t.Fatal("backend did not see readOnly=true")
	}
}

func TestRepliesKeepSubmissionOrder(t *testing.T) {
	b := newFakeBackend()
	type job struct {
		s   *fakeSession
		xid int32
	}
	jobs := make(chan job, 1000)
	b.handle = func(s *fakeSession, xid int32, req op.Request) { jobs <- job{s, xid} }
	// An "apply goroutine" answering asynchronously, in submission order.
	go func() {
		for j := range jobs {
			j.s.conn.Reply(j.xid, int64(j.xid)*10, zkerr.OK, &op.GetDataResponse{Data: []byte{byte(j.xid)}})
		}
	}()
	t.Cleanup(func() { close(jobs) })
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)

	// Pipeline 200 requests in one write.
	var batch []byte
	const n = 200
	for i := int32(1); i <= n; i++ {
		var err error
		if batch, err = appendRequest(batch, i, &op.GetDataRequest{Path: "/x"}); err != nil {
			t.Fatal(err)
		}
	}
	c.write(batch)
	for i := int32(1); i <= n; i++ {
		r := c.reply()
		if r.xid != i || r.zxid != int64(i)*10 {
			t.Fatalf("reply %d: xid %d zxid %d", i, r.xid, r.zxid)
		}
		dec, err := decodeResponse(op.GetData, r.body)
		if err != nil || dec.(*op.GetDataResponse).Data[0] != byte(i) {
			t.Fatalf("reply %d body: %v", i, err)
		}
	}
	s := b.session(t, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.xids {
		if x != int32(i+1) {
			t.Fatalf("submission %d has xid %d", i, x)
		}
	}
}

func TestEventsInterleaveWithRepliesInCallOrder(t *testing.T) {
	b := newFakeBackend()
	got := make(chan struct{}, 2)
	b.handle = func(s *fakeSession, xid int32, req op.Request) { got <- struct{}{} }
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)
	c.send(1, &op.GetDataRequest{Path: "/a", Watch: true})
	c.send(2, &op.GetDataRequest{Path: "/b", Watch: true})
	<-got
	<-got
	conn := b.session(t, 0).conn
	// Called from a goroutine that is neither reader nor writer, like the
	// framework's apply loop.
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn.Event(op.WatchEvent{Type: znode.EventNodeCreated, Path: "/e0", Zxid: 5})
		conn.Reply(1, 6, zkerr.NoNode, nil)
		conn.Event(op.WatchEvent{Type: znode.EventNodeDeleted, Path: "/e1", Zxid: 7})
		conn.Reply(2, 8, zkerr.OK, &op.GetDataResponse{Data: []byte("b")})
		conn.Event(op.WatchEvent{Type: znode.EventNodeChildrenChanged, Path: "/e2", Zxid: 9})
	}()
	<-done
	want := []struct {
		xid  int32
		zxid int64
		path string
	}{{-1, 5, "/e0"}, {1, 6, ""}, {-1, 7, "/e1"}, {2, 8, ""}, {-1, 9, "/e2"}}
	for i, w := range want {
		r := c.reply()
		if r.xid != w.xid || r.zxid != w.zxid {
			t.Fatalf("frame %d: xid %d zxid %d, want %d %d", i, r.xid, r.zxid, w.xid, w.zxid)
		}
		if w.xid == -1 {
			ev, state, err := decodeEvent(r.body)
			if err != nil || ev.Path != w.path || state != znode.StateSyncConnected {
				t.Fatalf("frame %d: event %+v state %d err %v", i, ev, state, err)
			}
		}
	}
}

func TestOversizedFrameClosesOnlyThatConnection(t *testing.T) {
	b := newFakeBackend()
	b.opts.MaxRequestBytes = 1024
	f := startFrontend(t, b)

	good := dial(t, f)
	good.handshake(false)
	bad := dial(t, f)
	bad.handshake(false)

	// One byte over the limit: the server hangs up without a reply.
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], 1025)
	bad.write(l[:])
	bad.expectEOF()
	waitFor(t, "detach of the closed session", func() bool { return b.session(t, 1).detached.Load() == 1 })

	// A frame of exactly the limit is accepted on the other connection.
	big, err := appendRequest(nil, 1, &op.SetDataRequest{Path: "/", Data: make([]byte, 1024-8-4-1-4-4), Version: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint32(big); n != 1024 {
		t.Fatalf("test frame is %d bytes", n)
	}
	good.write(big)
	if r := good.reply(); r.xid != 1 || r.code != zkerr.OK {
		t.Fatalf("reply %+v", r)
	}
	if d := b.session(t, 0).detached.Load(); d != 0 {
		t.Fatalf("healthy session detached %d times", d)
	}

	// A negative length closes as well.
	neg := dial(t, f)
	neg.handshake(false)
	neg.write([]byte{0xff, 0xff, 0xff, 0xfe})
	neg.expectEOF()
}

func TestUnimplementedOpcodeRepliesThenCloses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte // request header + body
	}{
		{"lone check", hx(t, `00000007 0000000d 00000002 2f61 00000001`)},
		{"unknown 999", hx(t, `00000007 000003e7`)},
		{"createSession", hx(t, `00000007 fffffff6`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend()
			f := startFrontend(t, b)
			c := dial(t, f)
			c.handshake(false)
			// A reply first, so the connection has a last zxid to report.
			c.send(1, &op.CreateRequest{OpCode: op.Create, Path: "/z", ACL: znode.OpenACLUnsafe})
			first := c.reply()
			frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(tc.frame))), tc.frame...)
			c.write(frame)
			r := c.reply()
			if r.xid != 7 || r.code != zkerr.Unimplemented || r.zxid != first.zxid || len(r.body) != 0 {
				t.Fatalf("reply %+v (first zxid %d)", r, first.zxid)
			}
			c.expectEOF()
			waitFor(t, "detach", func() bool { return b.session(t, 0).detached.Load() == 1 })
		})
	}
}

func TestGarbageBodyGetsMarshallingErrorInOrder(t *testing.T) {
	b := newFakeBackend()
	release := make(chan struct{})
	b.handle = func(s *fakeSession, xid int32, req op.Request) {
		if xid == 1 {
			// The first request is answered late, from another goroutine.
			go func() { <-release; s.conn.Reply(1, 3, zkerr.OK, &op.StatResponse{OpCode: op.Exists}) }()
			return
		}
		s.conn.Reply(xid, 4, zkerr.OK, &op.StatResponse{OpCode: op.Exists})
	}
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)
	c.send(1, &op.ExistsRequest{Path: "/a"})
	// exists with a path length pointing past the frame.
	garbage := hx(t, `00000002 00000003 00000040 2f61 00`)
	c.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(garbage))), garbage...))
	time.Sleep(50 * time.Millisecond)
	close(release)

	if r := c.reply(); r.xid != 1 || r.code != zkerr.OK {
		t.Fatalf("first reply %+v", r)
	}
	if r := c.reply(); r.xid != 2 || r.code != zkerr.MarshallingError || r.zxid != 3 {
		t.Fatalf("garbage reply %+v", r)
	}
	// The connection stays usable.
	c.send(3, &op.ExistsRequest{Path: "/a"})
	if r := c.reply(); r.xid != 3 || r.code != zkerr.OK {
		t.Fatalf("after garbage %+v", r)
	}
}

func TestFourLetterWords(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)

	for _, in := range []string{"ruok", "ruok\n"} {
		c := dial(t, f)
		c.write([]byte(in))
		_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		out, err := io.ReadAll(c.br)
		if err != nil || string(out) != "imok" {
			t.Fatalf("%q: got %q %v", in, out, err)
		}
	}
	c := dial(t, f)
	c.write([]byte("srvr"))
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if out, _ := io.ReadAll(c.br); !strings.Contains(string(out), "Mode: standalone") {
		t.Fatalf("srvr: %q", out)
	}
	// A word the backend does not know is read as a (huge) length.
	c = dial(t, f)
	c.write([]byte("abcd"))
	c.expectEOF()
	if len(b.connectReqs()) != 0 {
		t.Fatal("four-letter words reached Connect")
	}
}

func TestExpiredSessionResponseThenClose(t *testing.T) {
	b := newFakeBackend()
	b.connect = func(req protocol.ConnectRequest, c protocol.Conn) (protocol.Session, protocol.ConnectResponse, error) {
		return nil, protocol.ConnectResponse{}, zkerr.ErrSessionExpired
	}
	f := startFrontend(t, b)
	c := dial(t, f)
	req := protocol.ConnectRequest{TimeoutMs: 10000, SessionID: 0x77, Password: make([]byte, 16)}
	c.write(appendConnectRequest(nil, &req, false))
	body := c.mustFrame()
	want := hx(t, `00000000 00000000 0000000000000000 00000010 00000000000000000000000000000000`)
	if !bytes.Equal(body, want) {
		t.Fatalf("expired response %x", body)
	}
	c.expectEOF()

	// Any other error closes without a response.
	b.connect = func(req protocol.ConnectRequest, c protocol.Conn) (protocol.Session, protocol.ConnectResponse, error) {
		return nil, protocol.ConnectResponse{TimeoutMs: 5}, errors.New("not serving")
	}
	c = dial(t, f)
	c.write(appendConnectRequest(nil, &req, true))
	c.expectEOF()
}

func TestOutputQueuedDuringConnectFollowsTheResponse(t *testing.T) {
	b := newFakeBackend()
	b.connect = func(req protocol.ConnectRequest, c protocol.Conn) (protocol.Session, protocol.ConnectResponse, error) {
		s, resp, err := b.newSession(c, req.TimeoutMs)
		c.Event(op.WatchEvent{Type: znode.EventNodeDataChanged, Path: "/early", Zxid: 1})
		return s, resp, err
	}
	f := startFrontend(t, b)
	c := dial(t, f)
	resp, _ := c.handshake(false)
	if resp.SessionID == 0 {
		t.Fatal("no session")
	}
	if r := c.reply(); r.xid != -1 {
		t.Fatalf("want the event after the ConnectResponse, got %+v", r)
	}
}

func TestCloseSessionRepliesThenCloses(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)
	c.send(1, &op.CloseSessionRequest{})
	if r := c.reply(); r.xid != 1 || r.code != zkerr.OK {
		t.Fatalf("reply %+v", r)
	}
	c.expectEOF()
	waitFor(t, "detach", func() bool { return b.session(t, 0).detached.Load() == 1 })
}

func TestClientDisconnectDetachesOnce(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)
	c.nc.Close()
	s := b.session(t, 0)
	waitFor(t, "detach", func() bool { return s.detached.Load() == 1 })
	// Output for a gone connection is dropped, not a crash or a block.
	s.conn.Reply(5, 1, zkerr.OK, nil)
	s.conn.Event(op.WatchEvent{Path: "/x"})
	s.conn.Close()
	time.Sleep(20 * time.Millisecond)
	if d := s.detached.Load(); d != 1 {
		t.Fatalf("detached %d times", d)
	}
}

func TestMaxConnectionsPerIP(t *testing.T) {
	b := newFakeBackend()
	b.opts.MaxClientConnsPerIP = 2
	f := startFrontend(t, b)
	c1 := dial(t, f)
	c1.handshake(false)
	c2 := dial(t, f)
	c2.handshake(false)

	c3 := dial(t, f)
	req := protocol.ConnectRequest{TimeoutMs: 10000, Password: make([]byte, 16)}
	c3.nc.Write(appendConnectRequest(nil, &req, false)) // may fail: the server already closed
	c3.expectEOF()

	// Closing one frees a slot.
	c1.nc.Close()
	waitFor(t, "slot to free", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.perIP["127.0.0.1"] == 1
	})
	c4 := dial(t, f)
	if resp, _ := c4.handshake(false); resp.SessionID == 0 {
		t.Fatal("no session after a slot was freed")
	}
}

func TestMaxConnectionsTotal(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b, func(c *Config) { c.MaxConnections = 1 })
	c1 := dial(t, f)
	c1.handshake(false)
	c2 := dial(t, f)
	c2.expectEOF()
}

func TestShutdownClosesConnectionsAndDetaches(t *testing.T) {
	b := newFakeBackend()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	f := NewFrontend(*cfg, nil)
	if err := f.Start(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	c := dial(t, f)
	c.handshake(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectEOF()
	if d := b.session(t, 0).detached.Load(); d != 1 {
		t.Fatalf("detached %d times", d)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", f.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepting")
	}
}

func TestStartOnPortInUseNamesTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.Listen = ln.Addr().String()
	f := NewFrontend(*cfg, nil)
	err = f.Start(context.Background(), newFakeBackend())
	if err == nil || !strings.Contains(err.Error(), cfg.Listen) {
		t.Fatalf("got %v", err)
	}
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	f := NewFrontend(*DefaultConfig(), nil)
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.Addr() != nil {
		t.Fatal("address without a listener")
	}
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b, func(c *Config) { c.MaxOutboundBytes = 64 << 10 })
	c := dial(t, f)
	c.handshake(false)
	s := b.session(t, 0)
	// The client never reads: once the kernel buffers fill, the queue
	// passes its bound and the connection is cut instead of growing.
	big := &op.GetDataResponse{Data: make([]byte, 32<<10)}
	for i := 0; i < 2000 && s.detached.Load() == 0; i++ {
		s.conn.Reply(int32(i), 1, zkerr.OK, big)
	}
	waitFor(t, "slow reader to be cut", func() bool { return s.detached.Load() == 1 })
}

func TestFactory(t *testing.T) {
	fac, err := plugin.Lookup(plugin.KindProtocol, "native")
	if err != nil {
		t.Fatal(err)
	}
	pf, ok := fac.(protocol.Factory)
	if !ok {
		t.Fatalf("factory %T is not a protocol.Factory", fac)
	}
	cfg, ok := pf.DefaultConfig().(*Config)
	if !ok || cfg.Listen != "127.0.0.1:2181" || cfg.MaxConnections != 0 {
		t.Fatalf("default config %+v", cfg)
	}
	cfg.Listen = "127.0.0.1:0"
	fe, err := pf.New(context.Background(), plugin.Settings{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := fe.Start(context.Background(), newFakeBackend()); err != nil {
		t.Fatal(err)
	}
	if fe.Addr() == nil || fe.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("addr %v", fe.Addr())
	}
	if err := fe.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := pf.New(context.Background(), plugin.Settings{}, struct{}{}); err == nil {
		t.Fatal("wrong config type accepted")
	}
	bad := DefaultConfig()
	bad.Listen = "nonsense"
	bad.MaxConnections = -1
	if _, err := pf.New(context.Background(), plugin.Settings{}, bad); err == nil ||
		!strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestUnencodableReplyStillAnswersTheXid(t *testing.T) {
	b := newFakeBackend()
	b.handle = func(s *fakeSession, xid int32, req op.Request) {
		var typedNil *op.GetDataResponse
		s.conn.Reply(xid, 9, zkerr.OK, typedNil)
	}
	f := startFrontend(t, b)
	c := dial(t, f)
	c.handshake(false)
	c.send(1, &op.GetDataRequest{Path: "/a"})
	if r := c.reply(); r.xid != 1 || r.code != zkerr.MarshallingError || len(r.body) != 0 {
		t.Fatalf("reply %+v", r)
	}
}

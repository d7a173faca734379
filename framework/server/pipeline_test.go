package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// slowRepl is a test replicator: it applies proposals in order on its own
// goroutine after a delay, so requests behind a write really wait.
type slowRepl struct {
	sm    consensus.StateMachine
	delay time.Duration
	ch    chan func()
	index uint64
}

func newSlowRepl(sm consensus.StateMachine, delay time.Duration) *slowRepl {
	r := &slowRepl{sm: sm, delay: delay, ch: make(chan func(), 1024)}
	go func() {
		for f := range r.ch {
			f()
		}
	}()
	return r
}

func (r *slowRepl) ProposeAsync(data []byte, done func(error)) {
	r.ch <- func() {
		time.Sleep(r.delay)
		r.index++
		r.sm.Apply(consensus.Entry{Index: r.index, Term: 1, Data: data})
		done(nil)
	}
}
func (r *slowRepl) Start(context.Context) error { return nil }
func (r *slowRepl) Propose(ctx context.Context, data []byte) error {
	ch := make(chan error, 1)
	r.ProposeAsync(data, func(err error) { ch <- err })
	return <-ch
}
func (r *slowRepl) ReadBarrier(context.Context) error {
	ch := make(chan struct{})
	r.ch <- func() { close(ch) }
	<-ch
	return nil
}
func (r *slowRepl) Leader() uint64                 { return 1 }
func (r *slowRepl) IsLeader() bool                 { return true }
func (r *slowRepl) Shutdown(context.Context) error { return nil }

// recConn records what the server sends, in order.
type recConn struct {
	mu     sync.Mutex
	out    []any // reply or op.WatchEvent
	closed bool
	got    chan struct{}
}

type reply struct {
	xid  int32
	zxid int64
	code zkerr.Code
	resp op.Response
}

func newRecConn() *recConn { return &recConn{got: make(chan struct{}, 1024)} }

func (c *recConn) Reply(xid int32, zxid int64, code zkerr.Code, resp op.Response) {
	c.mu.Lock()
	c.out = append(c.out, reply{xid, zxid, code, resp})
	c.mu.Unlock()
	c.got <- struct{}{}
}
func (c *recConn) Event(ev op.WatchEvent) {
	c.mu.Lock()
	c.out = append(c.out, ev)
	c.mu.Unlock()
	c.got <- struct{}{}
}
func (c *recConn) Close()               { c.mu.Lock(); c.closed = true; c.mu.Unlock() }
func (c *recConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (c *recConn) wait(t *testing.T, n int) []any {
	t.Helper()
	for {
		c.mu.Lock()
		if len(c.out) >= n {
			out := append([]any(nil), c.out...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited for %d outputs, have %d", n, len(c.out))
		}
	}
}

func testServer(t *testing.T, delay time.Duration) *Server {
	t.Helper()
	cfg := &config.Config{NodeID: 1, TickTime: time.Second, MinSessionTimeout: 2 * time.Second,
		MaxSessionTimeout: 20 * time.Second, MaxRequestBytes: 1 << 20, ExtendedTypes: true, DataDir: t.TempDir()}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newSlowRepl(s, delay)
	s.repl, s.async = r, r
	return s
}

func connect(t *testing.T, s *Server, c protocol.Conn) protocol.Session {
	t.Helper()
	sess, _, err := s.Connect(context.Background(), protocol.ConnectRequest{TimeoutMs: 5000}, c)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// ZooKeeper's per-session FIFO: a read submitted after a write is answered
// after it and sees it, even though reads are normally answered at once.
func TestReadWaitsBehindOwnWrite(t *testing.T) {
	s := testServer(t, 20*time.Millisecond)
	c := newRecConn()
	sess := connect(t, s, c)
	sess.Submit(1, &op.CreateRequest{OpCode: op.Create, Path: "/a", Data: []byte("x"), ACL: znode.OpenACLUnsafe})
	sess.Submit(2, &op.GetDataRequest{Path: "/a"})
	sess.Submit(3, &op.ExistsRequest{Path: "/zookeeper"})
	out := c.wait(t, 3)
	for i, want := range []int32{1, 2, 3} {
		if r := out[i].(reply); r.xid != want {
			t.Fatalf("reply %d has xid %d, want %d (%+v)", i, r.xid, want, out)
		}
	}
	if r := out[1].(reply); r.code != zkerr.OK || string(r.resp.(*op.GetDataResponse).Data) != "x" {
		t.Fatalf("read behind the write: %+v", r)
	}
}

// Another session's read does not wait for this session's writes.
func TestOtherSessionsReadsDoNotWait(t *testing.T) {
	s := testServer(t, time.Second)
	writer, reader := newRecConn(), newRecConn()
	ws, rs := connect(t, s, writer), connect(t, s, reader)
	ws.Submit(1, &op.CreateRequest{OpCode: op.Create, Path: "/slow", ACL: znode.OpenACLUnsafe})
	rs.Submit(1, &op.ExistsRequest{Path: "/zookeeper"})
	reader.wait(t, 1)
	writer.mu.Lock()
	answered := len(writer.out)
	writer.mu.Unlock()
	if answered != 0 {
		t.Fatal("the unrelated read was answered only after another session's write")
	}
	writer.wait(t, 1)
}

// A watch event reaches a connection before the reply to any later read
// on it that could show the change.
func TestEventBeforeLaterReply(t *testing.T) {
	s := testServer(t, time.Millisecond)
	w, c := newRecConn(), newRecConn()
	ws, cs := connect(t, s, w), connect(t, s, c)
	cs.Submit(1, &op.CreateRequest{OpCode: op.Create, Path: "/n", ACL: znode.OpenACLUnsafe})
	c.wait(t, 1)
	ws.Submit(1, &op.GetDataRequest{Path: "/n", Watch: true})
	w.wait(t, 1)
	cs.Submit(2, &op.SetDataRequest{Path: "/n", Data: []byte("v"), Version: -1})
	c.wait(t, 2)
	ws.Submit(2, &op.GetDataRequest{Path: "/n"})
	out := w.wait(t, 3)
	ev, ok := out[1].(op.WatchEvent)
	if !ok || ev.Type != znode.EventNodeDataChanged || ev.Path != "/n" {
		t.Fatalf("second output %+v, want the NodeDataChanged event before the read", out[1])
	}
	if r := out[2].(reply); string(r.resp.(*op.GetDataResponse).Data) != "v" {
		t.Fatalf("read after the event: %+v", r)
	}
}

// Every write takes a zxid, failed ones too, and replies carry it.
func TestFailedWriteTakesZxid(t *testing.T) {
	s := testServer(t, 0)
	c := newRecConn()
	sess := connect(t, s, c)
	base := s.LastZxid()
	sess.Submit(1, &op.CreateRequest{OpCode: op.Create, Path: "/d", ACL: znode.OpenACLUnsafe})
	sess.Submit(2, &op.CreateRequest{OpCode: op.Create, Path: "/d", ACL: znode.OpenACLUnsafe})
	out := c.wait(t, 2)
	r1, r2 := out[0].(reply), out[1].(reply)
	if r1.code != zkerr.OK || r2.code != zkerr.NodeExists {
		t.Fatalf("codes %v %v", r1.code, r2.code)
	}
	if r1.zxid != base+1 || r2.zxid != base+2 {
		t.Fatalf("zxids %d %d after %d: want consecutive", r1.zxid, r2.zxid, base)
	}
}

// A lone check is UNIMPLEMENTED and the connection is closed (ZooKeeper's
// Request.isValid).
func TestLoneCheckClosesConnection(t *testing.T) {
	s := testServer(t, 0)
	c := newRecConn()
	sess := connect(t, s, c)
	sess.Submit(7, &op.CheckRequest{Path: "/", Version: 0})
	out := c.wait(t, 1)
	if r := out[0].(reply); r.xid != 7 || r.code != zkerr.Unimplemented {
		t.Fatalf("reply %+v", r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		t.Fatal("connection left open")
	}
}

// A bad password is answered as an expired session, and the real session
// lives on (ZooKeeper §8 item 8).
func TestWrongPasswordLooksExpired(t *testing.T) {
	s := testServer(t, 0)
	_, resp, err := s.Connect(context.Background(), protocol.ConnectRequest{TimeoutMs: 5000}, newRecConn())
	if err != nil {
		t.Fatal(err)
	}
	_, bad, err := s.Connect(context.Background(), protocol.ConnectRequest{SessionID: resp.SessionID, Password: make([]byte, 16)}, newRecConn())
	if err != zkerr.ErrSessionExpired || bad.TimeoutMs != 0 || bad.SessionID != 0 {
		t.Fatalf("wrong password: %+v %v", bad, err)
	}
	if _, ok, err := s.Connect(context.Background(), protocol.ConnectRequest{SessionID: resp.SessionID, Password: resp.Password}, newRecConn()); err != nil || ok.SessionID != resp.SessionID {
		t.Fatalf("resume with the right password: %+v %v", ok, err)
	}
}

// Timeouts are clamped to [min, max] session timeout.
func TestTimeoutNegotiation(t *testing.T) {
	s := testServer(t, 0)
	for _, c := range []struct{ ask, want int32 }{{100, 2000}, {5000, 5000}, {999999, 20000}} {
		_, resp, err := s.Connect(context.Background(), protocol.ConnectRequest{TimeoutMs: c.ask}, newRecConn())
		if err != nil || resp.TimeoutMs != c.want {
			t.Fatalf("asked %d: got %d (%v), want %d", c.ask, resp.TimeoutMs, err, c.want)
		}
	}
}

// A client that has seen a newer zxid than the server holds must go
// elsewhere (single system image).
func TestRefusesClientAhead(t *testing.T) {
	s := testServer(t, 0)
	if _, _, err := s.Connect(context.Background(), protocol.ConnectRequest{LastZxidSeen: 1 << 40, TimeoutMs: 5000}, newRecConn()); err == nil {
		t.Fatal("a client ahead of the server was accepted")
	}
}

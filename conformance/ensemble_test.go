package conformance_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/conformance/corraltest"
	"github.com/corral-dev/corral/conformance/proccluster"
)

func connectTo(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	return conformance.Connect(t, []string{addr})
}

// Writes through any member are applied on all of them, in one order.
func TestEnsembleWritesThroughAnyMember(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three processes")
	}
	c := proccluster.Start(t, 3, proccluster.Options{})
	var conns []*zk.Conn
	for _, m := range c.Members {
		conns = append(conns, connectTo(t, m.ClientAddr))
	}
	for i, conn := range conns {
		for j := 0; j < 20; j++ {
			if _, err := conn.Create(fmt.Sprintf("/m%d-%d", i, j), []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create through member %d: %v", i+1, err)
			}
		}
	}
	for i, conn := range conns {
		if _, err := conn.Sync("/"); err != nil {
			t.Fatalf("sync on member %d: %v", i+1, err)
		}
		kids, _, err := conn.Children("/")
		if err != nil || len(kids) != 61 { // 60 + zookeeper
			t.Fatalf("member %d sees %d children (%v)", i+1, len(kids), err)
		}
	}
	// The same zxid on every member for the same node.
	var czxid int64
	for i, conn := range conns {
		_, st, err := conn.Get("/m2-19")
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && st.Czxid != czxid {
			t.Fatalf("member %d has czxid %d, member 1 has %d", i+1, st.Czxid, czxid)
		}
		czxid = st.Czxid
	}
}

// kill -9 of the leader under a write stream: the service recovers within
// the election timeout, sessions survive, and no acknowledged write is lost.
func TestEnsembleLeaderKill(t *testing.T) {
	leaderFault(t, "kill", func(m *proccluster.Member) { m.Kill() }, func(m *proccluster.Member) { m.Start() })
}

// A paused leader (SIGSTOP, longer than the election timeout) is replaced;
// when it resumes it steps down and catches up.
func TestEnsembleLeaderPause(t *testing.T) {
	leaderFault(t, "pause", func(m *proccluster.Member) { m.Pause() }, func(m *proccluster.Member) { m.Resume() })
}

func leaderFault(t *testing.T, what string, fault, heal func(*proccluster.Member)) {
	if testing.Short() {
		t.Skip("-short: starts three processes")
	}
	c := proccluster.Start(t, 3, proccluster.Options{})
	leader := c.WaitLeader(10 * time.Second)
	// The writer talks to the followers, so its connection outlives the
	// leader. A write in flight at the fault has an unknown outcome and its
	// connection is dropped (as ZooKeeper does); with two addresses the
	// client moves on at once instead of go-zookeeper's one-second pause
	// after trying every address.
	followers := c.Followers(leader)
	follower := followers[0]
	w := conformance.Connect(t, []string{followers[0].ClientAddr, followers[1].ClientAddr})
	sid := w.SessionID()
	if _, err := w.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// A one-shot watch set before the fault fires exactly once after it.
	watcher := connectTo(t, follower.ClientAddr)
	if _, err := w.Create("/watched", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// The watcher may sit on another member than the writer: sync first,
	// as a ZooKeeper client must, to read the write.
	if _, err := watcher.Sync("/watched"); err != nil {
		t.Fatal(err)
	}
	_, _, wch, err := watcher.GetW("/watched")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := fmt.Sprintf("/w%d", i)
			_, err := w.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
			mu.Lock()
			if err == nil {
				acked[p] = true
			} else {
				failed++
			}
			mu.Unlock()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	faulted := time.Now()
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	fault(leader)
	// Time from the fault to the first write acknowledged after it.
	var recovered time.Duration
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > before+1 { // one write may have been in flight at the fault
			recovered = time.Since(faulted)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if recovered == 0 {
		t.Fatalf("no write acknowledged within 15s of the leader %s", what)
	}
	if _, err := w.Set("/watched", []byte("changed"), -1); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	t.Logf("leader %d: %s; next acknowledged write after %s (%d writes failed meanwhile)", leader.ID, what, recovered, failed)
	if w.SessionID() != sid {
		t.Fatalf("session changed across failover")
	}
	select {
	case ev := <-wch:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("watch event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("one-shot watch did not fire after failover")
	}
	select {
	case ev, ok := <-wch:
		if ok {
			t.Fatalf("one-shot watch fired twice: %+v", ev)
		}
	case <-time.After(200 * time.Millisecond):
	}
	heal(leader)
	for _, m := range c.Members {
		conn := connectTo(t, m.ClientAddr)
		if _, err := conn.Sync("/"); err != nil {
			t.Fatalf("sync on member %d: %v", m.ID, err)
		}
		for p := range acked {
			if ok, _, err := conn.Exists(p); err != nil || !ok {
				t.Fatalf("member %d lost acknowledged %s (%v)", m.ID, p, err)
			}
		}
		if ok, _, _ := conn.Exists("/eph"); !ok {
			t.Fatalf("member %d: ephemeral of a live session vanished in failover", m.ID)
		}
	}
}

// With a majority down nothing is acknowledged; after restart every
// acknowledged write is there.
func TestEnsembleMajorityDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three processes")
	}
	c := proccluster.Start(t, 3, proccluster.Options{})
	survivor := c.Members[0]
	conn, _, err := zk.Connect([]string{survivor.ClientAddr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Create("/before", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c.Members[1].Kill()
	c.Members[2].Kill()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Create("/during", nil, 0, zk.WorldACL(zk.PermAll))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write was acknowledged with a majority down")
		}
	case <-time.After(3 * time.Second):
		// Not acknowledged: the client is still waiting, which is correct.
	}
	c.Members[1].Start()
	c.Members[2].Start()
	c.WaitLeader(30 * time.Second)
	check := connectTo(t, c.Members[2].ClientAddr)
	if _, err := check.Sync("/"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := check.Exists("/before"); err != nil || !ok {
		t.Fatalf("acknowledged /before lost: %v", err)
	}
	select {
	case err := <-done:
		// If the pending write was acknowledged later, it must be there.
		if err == nil {
			if ok, _, _ := check.Exists("/during"); !ok {
				t.Fatal("/during was acknowledged but is missing")
			}
		} else if !errors.Is(err, zk.ErrConnectionClosed) {
			t.Logf("pending write failed: %v", err)
		}
	case <-time.After(15 * time.Second):
	}
}

// /zookeeper/config lists the ensemble in ZooKeeper's syntax, and the
// reconfig opcode (super user only) changes membership.
func TestEnsembleConfigAndReconfig(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three processes")
	}
	c := proccluster.Start(t, 3, proccluster.Options{Extra: "reconfig_enabled: true\nsuper_digest: \"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"\n"})
	leader := c.WaitLeader(10 * time.Second)
	conn := connectTo(t, leader.ClientAddr)
	var data []byte
	waitFor(t, "/zookeeper/config published", 10*time.Second, func() bool {
		d, _, err := conn.Get("/zookeeper/config")
		data = d
		return err == nil && strings.Count(string(d), "server.") == 3
	})
	for _, m := range c.Members {
		host, port, _ := net.SplitHostPort(m.PeerAddr)
		want := fmt.Sprintf("server.%d=%s:%s:%s:participant;%s", m.ID, host, port, port, m.ClientAddr)
		if !strings.Contains(string(data), want) {
			t.Fatalf("/zookeeper/config lacks %q:\n%s", want, data)
		}
	}
	if !strings.Contains(string(data), "version=") {
		t.Fatalf("/zookeeper/config has no version line:\n%s", data)
	}
	if _, err := conn.IncrementalReconfig(nil, []string{"3"}, -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("reconfig without the super user: %v, want NoAuth", err)
	}
	if err := conn.AddAuth("digest", []byte("super:test")); err != nil {
		t.Fatal(err)
	}
	victim := c.Members[2]
	if victim == leader {
		victim = c.Members[1]
	}
	if _, err := conn.IncrementalReconfig(nil, []string{fmt.Sprint(victim.ID)}, -1); err != nil {
		t.Fatalf("reconfig removing %d: %v", victim.ID, err)
	}
	d, st, err := conn.Get("/zookeeper/config")
	if err != nil || strings.Count(string(d), "server.") != 2 || strings.Contains(string(d), fmt.Sprintf("server.%d=", victim.ID)) {
		t.Fatalf("after removing %d: %v\n%s", victim.ID, err, d)
	}
	// A stale config version is refused.
	if _, err := conn.IncrementalReconfig(nil, []string{"9"}, st.Mzxid-1); !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("reconfig with a stale version: %v, want BadVersion", err)
	}
	host, port, _ := net.SplitHostPort(victim.PeerAddr)
	spec := fmt.Sprintf("server.%d=%s:%s:%s:participant;%s", victim.ID, host, port, port, victim.ClientAddr)
	if _, err := conn.IncrementalReconfig([]string{spec}, nil, -1); err != nil {
		t.Fatalf("reconfig adding %d back: %v", victim.ID, err)
	}
	d, _, _ = conn.Get("/zookeeper/config")
	if !strings.Contains(string(d), spec) {
		t.Fatalf("after adding %d back:\n%s", victim.ID, d)
	}
	if _, err := conn.Create("/after-reconfig", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
}

func TestReconfigStandaloneAndDisabled(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{"reconfig_enabled": true}})
	c := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.IncrementalReconfig(nil, []string{"2"}, -1); err == nil || errors.Is(err, zk.ErrReconfigDisabled) {
		t.Fatalf("reconfig on a standalone server: %v, want UNIMPLEMENTED", err)
	}
	off := corraltest.Start(t, corraltest.Options{})
	c2 := conformance.Connect(t, []string{off.Addr})
	if _, err := c2.IncrementalReconfig(nil, []string{"2"}, -1); !errors.Is(err, zk.ErrReconfigDisabled) {
		t.Fatalf("reconfig when disabled: %v, want ReconfigDisabled", err)
	}
}

// rawClient speaks just enough of ZooKeeper's wire protocol to ask for a
// read-only session, which go-zookeeper cannot.
type rawClient struct {
	c   net.Conn
	xid int32
}

func rawConnect(t *testing.T, addr string, readOnly bool) (*rawClient, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0)     // protocol version
	b = binary.BigEndian.AppendUint64(b, 0)     // last zxid seen
	b = binary.BigEndian.AppendUint32(b, 30000) // timeout
	b = binary.BigEndian.AppendUint64(b, 0)     // session id
	b = binary.BigEndian.AppendUint32(b, 16)    // password length
	b = append(b, make([]byte, 16)...)          // password
	b = append(b, map[bool]byte{false: 0, true: 1}[readOnly])
	r := &rawClient{c: c}
	resp, err := r.roundTrip(b)
	if err != nil {
		return nil, false
	}
	if len(resp) < 37 {
		t.Fatalf("short connect response (%d bytes)", len(resp))
	}
	return r, resp[len(resp)-1] == 1
}

func (r *rawClient) roundTrip(body []byte) ([]byte, error) {
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := r.c.Write(append(frame, body...)); err != nil {
		return nil, err
	}
	var n [4]byte
	if _, err := io.ReadFull(r.c, n[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r.c, resp)
	return resp, err
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// request sends one request and returns the reply's error code.
func (r *rawClient) request(t *testing.T, opcode int32, body []byte) int32 {
	t.Helper()
	r.xid++
	b := binary.BigEndian.AppendUint32(nil, uint32(r.xid))
	b = binary.BigEndian.AppendUint32(b, uint32(opcode))
	resp, err := r.roundTrip(append(b, body...))
	if err != nil || len(resp) < 16 {
		t.Fatalf("opcode %d: %v (%d bytes)", opcode, err, len(resp))
	}
	if xid := int32(binary.BigEndian.Uint32(resp)); xid != r.xid {
		t.Fatalf("reply xid %d, want %d", xid, r.xid)
	}
	return int32(binary.BigEndian.Uint32(resp[12:]))
}

// A member cut off from the majority serves reads to clients that accept a
// read-only server and refuses writes with NOTREADONLY (readonlymode.enabled).
func TestEnsembleReadOnlyMode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three processes")
	}
	c := proccluster.Start(t, 3, proccluster.Options{Extra: "read_only_mode: true\n"})
	conn := connectTo(t, c.Members[0].ClientAddr)
	if _, err := conn.Create("/seen", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	survivor := c.Members[0]
	if _, err := connectTo(t, survivor.ClientAddr).Sync("/"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	c.Members[1].Kill()
	c.Members[2].Kill()
	waitFor(t, "read-only mode", 10*time.Second, func() bool {
		out, _ := survivor.FourLetter("isro")
		return out == "ro"
	})
	if _, ok := rawConnect(t, survivor.ClientAddr, false); ok {
		t.Fatal("a client that does not accept read-only got a read-only session")
	}
	rc, ro := rawConnect(t, survivor.ClientAddr, true)
	if rc == nil || !ro {
		t.Fatalf("read-only session: client %v, readOnly flag %v", rc != nil, ro)
	}
	get := append(appendString(nil, "/seen"), 0)
	if code := rc.request(t, 4, get); code != 0 {
		t.Fatalf("getData in read-only mode: error %d", code)
	}
	create := appendString(nil, "/new")
	create = binary.BigEndian.AppendUint32(create, 0xffffffff) // null data
	create = binary.BigEndian.AppendUint32(create, 1)          // one ACL
	create = binary.BigEndian.AppendUint32(create, 31)
	create = appendString(appendString(create, "world"), "anyone")
	create = binary.BigEndian.AppendUint32(create, 0) // persistent
	if code := rc.request(t, 1, create); code != -119 {
		t.Fatalf("create in read-only mode: error %d, want NOTREADONLY (-119)", code)
	}
	// The majority comes back: the member leaves read-only mode.
	c.Members[1].Start()
	c.WaitLeader(30 * time.Second)
	waitFor(t, "read-write again", 10*time.Second, func() bool {
		out, _ := survivor.FourLetter("isro")
		return out == "rw"
	})
}

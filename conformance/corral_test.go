package conformance_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/conformance/corraltest"
)

func TestConformanceCorral(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{})
	conformance.RunClient(t, conformance.ClientOptions{Servers: []string{srv.Addr}, ReapWithin: 5 * time.Second})
}

func fourLetter(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

func TestFourLetterWords(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{"four_letter_words": []any{"ruok", "srvr", "mntr", "cons"}}})
	if got := fourLetter(t, srv.Addr, "ruok"); got != "imok" {
		t.Fatalf("ruok = %q", got)
	}
	srvr := fourLetter(t, srv.Addr, "srvr")
	for _, want := range []string{"Zookeeper version: ", "Latency min/avg/max: ", "Zxid: 0x", "Mode: standalone", "Node count: "} {
		if !strings.Contains(srvr, want) {
			t.Fatalf("srvr lacks %q:\n%s", want, srvr)
		}
	}
	// go-zookeeper parses srvr with a strict regex (FLWSrvr).
	stats, ok := zk.FLWSrvr([]string{srv.Addr}, 5*time.Second)
	if !ok || stats[0].Error != nil || stats[0].Mode != zk.ModeStandalone {
		t.Fatalf("FLWSrvr: ok=%v %+v", ok, stats[0])
	}
	mntr := fourLetter(t, srv.Addr, "mntr")
	for _, key := range []string{"zk_znode_count\t", "zk_watch_count\t", "zk_num_alive_connections\t", "zk_outstanding_requests\t"} {
		if !strings.Contains(mntr, key) {
			t.Fatalf("mntr lacks %q", key)
		}
	}
	c := conformance.Connect(t, []string{srv.Addr})
	if _, _, err := c.Exists("/zookeeper"); err != nil {
		t.Fatal(err)
	}
	if cons := fourLetter(t, srv.Addr, "cons"); !strings.Contains(cons, fmt.Sprintf("sid=0x%x,lop=exists,", uint64(c.SessionID()))) {
		t.Fatalf("cons does not show the session's last op:\n%s", cons)
	}
	if got := fourLetter(t, srv.Addr, "dump"); got != "dump is not executed because it is not in the whitelist.\n" {
		t.Fatalf("non-whitelisted dump = %q", got)
	}
}

// ZooKeeper gives every write a zxid, including one that fails.
func TestFailedWritesConsumeZxid(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{})
	c := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.Create("/z", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, st1, _ := c.Get("/z")
	if _, err := c.Create("/z", nil, 0, zk.WorldACL(zk.PermAll)); err != zk.ErrNodeExists {
		t.Fatalf("second create: %v", err)
	}
	if _, err := c.Create("/z2", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, st2, _ := c.Get("/z2")
	if st2.Czxid != st1.Czxid+2 {
		t.Fatalf("czxid %d after %d with one failed write between: want +2", st2.Czxid, st1.Czxid)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that vanishes without closing keeps its session until the
// timeout; then the leader expires it and its ephemerals go, with events.
func TestSessionExpiryDeletesEphemerals(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{})
	proxy := corraltest.NewProxy(t, srv.Addr)
	gone, _, err := zk.Connect([]string{proxy.Addr()}, 800*time.Millisecond, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	waitFor(t, "session", 5*time.Second, func() bool { return gone.State() == zk.StateHasSession })
	if _, err := gone.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	watcher := conformance.Connect(t, []string{srv.Addr})
	ok, _, ch, err := watcher.ExistsW("/eph")
	if err != nil || !ok {
		t.Fatalf("existsW: %v %v", ok, err)
	}
	start := time.Now()
	proxy.Cut(true)
	select {
	case ev := <-ch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ephemeral of a vanished client not deleted within 10s")
	}
	// The negotiated timeout is at least minSessionTimeout (2 ticks = 400ms).
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("session expired after %s, before its timeout", el)
	}
}

// A client that reconnects with its session id keeps its ephemerals, and
// its watches are restored with missed changes fired at once (setWatches).
func TestReconnectKeepsSessionAndWatches(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{})
	proxy := corraltest.NewProxy(t, srv.Addr)
	c, events, err := zk.Connect([]string{proxy.Addr()}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "session", 5*time.Second, func() bool { return c.State() == zk.StateHasSession })
	go func() {
		for range events {
		}
	}()
	sid := c.SessionID()
	other := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.Create("/mine", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create("/watched", []byte("a"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, _, ch, err := c.GetW("/watched")
	if err != nil {
		t.Fatal(err)
	}
	proxy.Cut(true)
	waitFor(t, "disconnect", 5*time.Second, func() bool { return c.State() != zk.StateHasSession })
	// The change happens while the client is away.
	if _, err := other.Set("/watched", []byte("b"), -1); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	select {
	case ev := <-ch:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != "/watched" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("missed change not delivered after reconnect")
	}
	if c.SessionID() != sid {
		t.Fatalf("session changed from 0x%x to 0x%x", sid, c.SessionID())
	}
	if ok, _, _ := other.Exists("/mine"); !ok {
		t.Fatal("ephemeral lost across a reconnect")
	}
}

// Data and zxids survive a restart on the same directory.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	srv := corraltest.Start(t, corraltest.Options{DataDir: dir})
	c := conformance.Connect(t, []string{srv.Addr})
	for i := 0; i < 50; i++ {
		if _, err := c.Create(fmt.Sprintf("/k%02d", i), []byte(fmt.Sprint(i)), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	last := srv.LastZxid()
	digest := srv.TreeDigest()
	c.Close()
	srv.Stop()

	srv2 := corraltest.Start(t, corraltest.Options{DataDir: dir})
	if srv2.LastZxid() < last {
		t.Fatalf("zxid went back from 0x%x to 0x%x", last, srv2.LastZxid())
	}
	c2 := conformance.Connect(t, []string{srv2.Addr})
	for i := 0; i < 50; i++ {
		data, _, err := c2.Get(fmt.Sprintf("/k%02d", i))
		if err != nil || string(data) != fmt.Sprint(i) {
			t.Fatalf("/k%02d after restart: %q %v", i, data, err)
		}
	}
	// Closing a session with no ephemerals changes no node.
	if got := srv2.TreeDigest(); got != digest {
		t.Fatalf("tree digest %x after restart, %x before", got, digest)
	}
}

// The super user configured by digest passes every ACL, as with ZooKeeper's
// DigestAuthenticationProvider.superDigest.
func TestSuperDigest(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{
		"super_digest": "super:D/InIHSb7yEEbrWz8b9l71RjZJU=", // digest of super:test
	}})
	owner := conformance.Connect(t, []string{srv.Addr})
	owner.AddAuth("digest", []byte("alice:pw"))
	if _, err := owner.Create("/locked", []byte("x"), 0, zk.DigestACL(zk.PermAll, "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	admin := conformance.Connect(t, []string{srv.Addr})
	if _, _, err := admin.Get("/locked"); err != zk.ErrNoAuth {
		t.Fatalf("before super auth: %v", err)
	}
	if err := admin.AddAuth("digest", []byte("super:test")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := admin.Get("/locked"); err != nil || string(data) != "x" {
		t.Fatalf("super read: %q %v", data, err)
	}
	if err := admin.Delete("/locked", -1); err != nil {
		t.Fatalf("super delete: %v", err)
	}
	// A wrong super password is just another digest identity.
	other := conformance.Connect(t, []string{srv.Addr})
	other.AddAuth("digest", []byte("super:wrong"))
	if _, err := other.Create("/x", nil, 0, zk.DigestACL(zk.PermRead, "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Get("/x"); err != zk.ErrNoAuth {
		t.Fatalf("wrong super password read: %v", err)
	}
}

// The byte-based policy snapshots once enough transaction bytes were
// applied, even far below the plugin's entry-count threshold.
func TestSnapshotByLogBytes(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{
		"snapshot_log_bytes":   200000,
		"snapshot_on_shutdown": false,
	}})
	snaps := func() int {
		m, _ := filepath.Glob(filepath.Join(srv.DataDir, "bolt", "snapshots", "*.snap"))
		return len(m)
	}
	c := conformance.Connect(t, []string{srv.Addr})
	big := make([]byte, 50000)
	for i := 0; i < 2; i++ {
		if _, err := c.Create(fmt.Sprintf("/b%d", i), big, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if n := snaps(); n != 0 {
		t.Fatalf("%d snapshots below the byte threshold", n)
	}
	for i := 2; i < 6; i++ {
		if _, err := c.Create(fmt.Sprintf("/b%d", i), big, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a snapshot after 300 KB of writes", 10*time.Second, func() bool { return snaps() > 0 })
}

// A clean shutdown snapshots, so the next start replays nothing.
func TestSnapshotOnShutdown(t *testing.T) {
	dir := t.TempDir()
	srv := corraltest.Start(t, corraltest.Options{DataDir: dir})
	c := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.Create("/s", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Stop()
	m, _ := filepath.Glob(filepath.Join(dir, "bolt", "snapshots", "*.snap"))
	if len(m) == 0 {
		t.Fatal("no snapshot after a clean shutdown")
	}
	srv2 := corraltest.Start(t, corraltest.Options{DataDir: dir})
	c2 := conformance.Connect(t, []string{srv2.Addr})
	if data, _, err := c2.Get("/s"); err != nil || string(data) != "x" {
		t.Fatalf("after restart: %q %v", data, err)
	}
}

// Local sessions (ZooKeeper's localSessionsEnabled) need no consensus round;
// without upgrading they cannot own ephemerals.
func TestLocalSessions(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{
		"local_sessions": true, "local_sessions_upgrading": false,
	}})
	c := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.Create("/persistent", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("write from a local session: %v", err)
	}
	if _, err := c.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err == nil || !strings.Contains(err.Error(), "-120") {
		t.Fatalf("ephemeral on a local session: %v, want EPHEMERALONLOCALSESSION (-120)", err)
	}
	if ok, _, _ := c.Exists("/eph"); ok {
		t.Fatal("the refused ephemeral exists")
	}
	if out := fourLetter(t, srv.Addr, "mntr"); !strings.Contains(out, "zk_local_sessions\t1\n") {
		t.Fatalf("mntr does not count the local session:\n%s", out)
	}
}

// With upgrading, an ephemeral create turns the local session into a
// global one that owns the node until it closes.
func TestLocalSessionUpgrade(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{"local_sessions": true}})
	c := conformance.Connect(t, []string{srv.Addr})
	if _, err := c.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("ephemeral with upgrading: %v", err)
	}
	other := conformance.Connect(t, []string{srv.Addr})
	_, st, err := other.Get("/eph")
	if err != nil || st.EphemeralOwner != c.SessionID() {
		t.Fatalf("owner 0x%x (%v), want the upgraded session 0x%x", st.EphemeralOwner, err, c.SessionID())
	}
	c.Close()
	waitFor(t, "ephemeral gone with its session", 5*time.Second, func() bool {
		ok, _, _ := other.Exists("/eph")
		return !ok
	})
}

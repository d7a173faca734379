//go:build linux

package conformance_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance/netcluster"
)

// Network partitions: every member runs in a network namespace of its own
// (conformance/netcluster), and a member is cut off by unplugging its port
// on the bridge that joins them. Unlike kill -9 or SIGSTOP the cut-off member
// keeps running and keeps its sockets; nobody gets a reset, only silence.
// These tests need root and skip without it (fail in CI); `make
// test-partition` runs them alone.

func startPartitionCluster(t *testing.T) *netcluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts three processes in network namespaces")
	}
	return netcluster.Start(t, 3, netcluster.Options{})
}

// inOrder is a zk.HostProvider that tries servers in the given order
// instead of go-zookeeper's shuffle, so a test knows which member a session
// starts on and where it may go next.
type inOrder struct {
	mu         sync.Mutex
	servers    []string
	curr, last int
}

func (h *inOrder) Init([]string) error { h.curr, h.last = -1, -1; return nil }
func (h *inOrder) Len() int            { return len(h.servers) }
func (h *inOrder) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.servers)
	retry := h.curr == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.servers[h.curr], retry
}
func (h *inOrder) Connected() { h.mu.Lock(); h.last = h.curr; h.mu.Unlock() }

// partConnect opens a session to servers (tried in this order) through
// dial, and waits until it has one.
func partConnect(t *testing.T, dial zk.Dialer, servers []string, timeout time.Duration) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect(servers, timeout, zk.WithLogInfo(false), zk.WithDialer(dial),
		zk.WithHostProvider(&inOrder{servers: servers}))
	if err != nil {
		t.Fatalf("connect %v: %v", servers, err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(10 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			t.Fatalf("connect %v: no session after 10s (state %v)", servers, c.State())
		}
	}
	return c
}

// writeStream creates parent/w<n> one after another and records which were
// acknowledged and when.
type writeStream struct {
	parent string
	mu     sync.Mutex
	acked  []string
	ackAt  []time.Time
	sentAt []time.Time // when each acknowledged write was sent
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startWriteStream(t *testing.T, conn *zk.Conn, parent string) *writeStream {
	t.Helper()
	if _, err := conn.Create(parent, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	s := &writeStream{parent: parent, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			default:
			}
			name := fmt.Sprintf("w%06d", i)
			sent := time.Now()
			_, err := conn.Create(parent+"/"+name, nil, 0, zk.WorldACL(zk.PermAll))
			s.mu.Lock()
			if err == nil {
				s.acked = append(s.acked, name)
				s.ackAt = append(s.ackAt, time.Now())
				s.sentAt = append(s.sentAt, sent)
			} else {
				s.failed = append(s.failed, err)
			}
			s.mu.Unlock()
			if err != nil {
				// Do not spin while the client reconnects.
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(s.halt)
	return s
}

func (s *writeStream) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// snapshot returns the acknowledged names and the number of failures so far.
func (s *writeStream) snapshot() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acked), len(s.failed)
}

// firstAckSentAfter waits for the first acknowledged write that was sent
// at or after t0 and returns when it was acknowledged.
func (s *writeStream) firstAckSentAfter(t0 time.Time, within time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		s.mu.Lock()
		for i := len(s.sentAt) - 1; i >= 0 && !s.sentAt[i].Before(t0); i-- {
			if i == 0 || s.sentAt[i-1].Before(t0) {
				at := s.ackAt[i]
				s.mu.Unlock()
				return at, true
			}
		}
		s.mu.Unlock()
	}
	return time.Time{}, false
}

// ackGaps returns the number of acknowledgements in [from, to] and the
// longest time without one in that window.
func (s *writeStream) ackGaps(from, to time.Time) (n int, longest time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := from
	for _, at := range s.ackAt {
		if at.Before(from) || at.After(to) {
			continue
		}
		n++
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return n, max(longest, to.Sub(prev))
}

// checkHasAll asserts that member m, after a sync, has every name under
// parent, reading through a session of its own on that member alone.
func checkHasAll(t *testing.T, c *netcluster.Cluster, m *netcluster.Member, parent string, names []string) {
	t.Helper()
	conn := partConnect(t, c.Dial, []string{m.ClientAddr}, 10*time.Second)
	defer conn.Close()
	if _, err := conn.Sync(parent); err != nil {
		t.Fatalf("sync on member %d: %v", m.ID, err)
	}
	kids, _, err := conn.Children(parent)
	if err != nil {
		t.Fatalf("children of %s on member %d: %v", parent, m.ID, err)
	}
	have := make(map[string]bool, len(kids))
	for _, k := range kids {
		have[k] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("member %d lost %d of %d acknowledged writes under %s, first %v\n%s",
			m.ID, len(missing), len(names), parent, missing[:min(5, len(missing))], m.LogTail(20))
	}
}

// pinned is a session that starts on one member, with the others as
// fallbacks in order.
type pinned struct {
	conn *zk.Conn
	home string
	sid  int64
}

// pinTo opens a session on m first. A 6 s session timeout makes
// go-zookeeper give up on a silent server after 4 s (two thirds of it),
// which is how a client learns of a partition: no reset ever arrives.
func pinTo(t *testing.T, c *netcluster.Cluster, m *netcluster.Member) *pinned {
	t.Helper()
	servers := []string{m.ClientAddr}
	for _, o := range c.Members {
		if o != m {
			servers = append(servers, o.ClientAddr)
		}
	}
	conn := partConnect(t, c.Dial, servers, 6*time.Second)
	if conn.Server() != m.ClientAddr {
		t.Fatalf("session started on %s, want %s", conn.Server(), m.ClientAddr)
	}
	return &pinned{conn: conn, home: m.ClientAddr, sid: conn.SessionID()}
}

// inFlight sends a request on the pinned session right after its member
// was cut off; the result arrives on the returned channel.
func (p *pinned) inFlight(path string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := p.conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll))
		ch <- err
	}()
	return ch
}

// expectMoved asserts that the request in flight at the cut failed with
// ConnectionLoss and the same session carried on on another member. It
// returns how long each took from cut.
func (p *pinned) expectMoved(t *testing.T, cut time.Time, inflight <-chan error) (loss, moved time.Duration) {
	t.Helper()
	select {
	case err := <-inflight:
		// go-zookeeper's ErrConnectionClosed is ZooKeeper's ConnectionLoss.
		if !errors.Is(err, zk.ErrConnectionClosed) {
			t.Fatalf("request in flight on the cut-off member: %v, want ConnectionLoss (%v)", err, zk.ErrConnectionClosed)
		}
		loss = time.Since(cut)
	case <-time.After(15 * time.Second):
		t.Fatal("request in flight on the cut-off member neither failed nor succeeded within 15s")
	}
	waitFor(t, "session moves to another member", 15*time.Second, func() bool {
		return p.conn.State() == zk.StateHasSession && p.conn.Server() != p.home
	})
	moved = time.Since(cut)
	if p.conn.SessionID() != p.sid {
		t.Fatalf("session 0x%x was replaced by 0x%x when its client moved", p.sid, p.conn.SessionID())
	}
	return loss, moved
}

// The leader is cut off under a write stream from clients on the other
// two members: the majority elects a new leader and writes resume, the old
// leader steps down and acknowledges nothing, its clients lose their
// connection and move, and after healing every member, the old leader
// included, has every acknowledged write.
func TestPartitionLeader(t *testing.T) {
	c := startPartitionCluster(t)
	leader := c.WaitLeader(10 * time.Second)
	followers := c.Followers(leader)
	// The writer talks to the followers only, so its session lives on the
	// majority side.
	w := partConnect(t, c.Dial, []string{followers[0].ClientAddr, followers[1].ClientAddr}, 10*time.Second)
	stream := startWriteStream(t, w, "/stream")
	lc := pinTo(t, c, leader)
	if _, err := lc.conn.Create("/lc-eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// A client inside the leader's namespace still reaches it after the
	// cut: it shows what the minority side acknowledges (nothing).
	inside := partConnect(t, leader.DialInside, []string{leader.ClientAddr}, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if acked, _ := stream.snapshot(); len(acked) == 0 {
		t.Fatal("no write acknowledged before the partition")
	}

	leader.Partition()
	cut := time.Now()
	inflight := lc.inFlight("/lc-during")
	minority := make(chan error, 1)
	go func() {
		_, err := inside.Create("/minority", nil, 0, zk.WorldACL(zk.PermAll))
		minority <- err
	}()
	// The old leader steps down: asked from inside its namespace, it no
	// longer says leader (or does not answer). Watched from the cut on, so
	// the time is its own and not the majority's.
	stepDown := make(chan time.Duration, 1)
	go func() {
		for time.Since(cut) < 5*time.Second {
			if leader.ModeInside() != "leader" {
				stepDown <- time.Since(cut)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stepDown)
	}()

	// The majority side: the next write sent after the cut is acknowledged.
	at, ok := stream.firstAckSentAfter(cut, 15*time.Second)
	if !ok {
		t.Fatalf("no write acknowledged within 15s of cutting off the leader\n%s\n%s",
			followers[0].LogTail(15), followers[1].LogTail(15))
	}
	recovered := at.Sub(cut)
	newLeader := c.WaitLeader(10 * time.Second)
	if newLeader == leader {
		t.Fatal("the cut-off leader is still reported as the reachable leader")
	}
	steppedDown, ok := <-stepDown
	if !ok {
		t.Fatalf("cut-off leader %d still reports leader 5s after the cut", leader.ID)
	}
	t.Logf("old leader %d now reports %q", leader.ID, leader.ModeInside())

	loss, moved := lc.expectMoved(t, cut, inflight)
	if _, err := lc.conn.Create("/lc-after", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("write on the moved session: %v", err)
	}
	minorityDone := false
	select {
	case err := <-minority:
		if err == nil {
			t.Fatal("the cut-off old leader acknowledged a write (split brain)")
		}
		minorityDone = true
		t.Logf("write on the cut-off side failed: %v", err)
	default:
	}

	// The old leader rejoins under load: the stream keeps going, and a
	// session of its own there (sync, then read) sees every write
	// acknowledged by the majority while it was away.
	away, _ := stream.snapshot()
	healAt := time.Now()
	leader.Heal()
	checkHasAll(t, c, leader, "/stream", away)
	caughtUp := time.Since(healAt)
	time.Sleep(500 * time.Millisecond)
	stream.halt()
	acked, failed := stream.snapshot()
	t.Logf("leader %d cut off: next acknowledged write after %s (new leader %d), old leader stepped down after %s; "+
		"its client lost the connection after %s and resumed on another member after %s; "+
		"old leader caught up (sync + read) %s after healing; %d writes acknowledged, %d failed",
		leader.ID, recovered.Round(time.Millisecond), newLeader.ID, steppedDown.Round(time.Millisecond),
		loss.Round(time.Millisecond), moved.Round(time.Millisecond), caughtUp.Round(time.Millisecond), len(acked), failed)
	for _, err := range stream.failed {
		t.Logf("  write failed: %v", err)
	}
	for _, m := range c.Members {
		checkHasAll(t, c, m, "/stream", acked)
	}
	// The cut-off client's ephemeral outlived the move, and its write after
	// it is there.
	if _, err := w.Sync("/"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/lc-eph", "/lc-after"} {
		if ok, _, err := w.Exists(p); err != nil || !ok {
			t.Fatalf("%s after the move: exists=%v %v", p, ok, err)
		}
	}
	// A minority write still pending at the heal has an unknown outcome; if
	// it was acknowledged after all, it must be there.
	if !minorityDone {
		select {
		case err := <-minority:
			if err == nil {
				if ok, _, _ := w.Exists("/minority"); !ok {
					t.Fatal("/minority was acknowledged after the heal but is missing")
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("write sent to the cut-off leader never completed after the heal")
		}
	}
}

// A follower is cut off: the service does not notice, and after healing
// the follower catches up with everything written meanwhile.
func TestPartitionFollower(t *testing.T) {
	c := startPartitionCluster(t)
	leader := c.WaitLeader(10 * time.Second)
	followers := c.Followers(leader)
	f, other := followers[0], followers[1]
	w := partConnect(t, c.Dial, []string{leader.ClientAddr, other.ClientAddr}, 10*time.Second)
	stream := startWriteStream(t, w, "/stream")
	fc := pinTo(t, c, f)
	time.Sleep(500 * time.Millisecond)
	before, _ := stream.snapshot()
	_, failedBefore := stream.snapshot()

	f.Partition()
	cut := time.Now()
	inflight := fc.inFlight("/fc-during")
	loss, moved := fc.expectMoved(t, cut, inflight)
	time.Sleep(500 * time.Millisecond)
	healAt := time.Now()
	n, gap := stream.ackGaps(cut, healAt)
	during, failed := stream.snapshot()
	if failed != failedBefore {
		t.Fatalf("%d writes failed while only a follower was cut off: %v", failed-failedBefore, stream.failed[failedBefore:])
	}
	// Heartbeats every few tens of ms keep the leader in place; a second
	// without an acknowledgement would mean the cut disturbed it.
	if n == 0 || gap > time.Second {
		t.Fatalf("service disturbed by a follower partition: %d writes acknowledged in %s, longest gap %s",
			n, healAt.Sub(cut).Round(time.Millisecond), gap)
	}
	if mode := leader.Mode(); mode != "leader" {
		t.Fatalf("leader %d reports %q while only follower %d is cut off", leader.ID, mode, f.ID)
	}
	f.Heal()
	// Catch-up: sync on the healed follower, then every write acknowledged
	// while it was away (and before) is there.
	checkHasAll(t, c, f, "/stream", during)
	caughtUp := time.Since(healAt)
	stream.halt()
	acked, _ := stream.snapshot()
	t.Logf("follower %d cut off for %s: %d writes acknowledged meanwhile (longest gap %s, none failed); "+
		"its client lost the connection after %s and resumed on another member after %s; caught up (sync + read) %s after healing",
		f.ID, healAt.Sub(cut).Round(time.Millisecond), len(during)-len(before), gap.Round(time.Millisecond),
		loss.Round(time.Millisecond), moved.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
	for _, m := range c.Members {
		checkHasAll(t, c, m, "/stream", acked)
	}
	if mode := leader.Mode(); mode != "leader" {
		t.Logf("note: member %d no longer leads after the heal (%q)", leader.ID, mode)
	}
}

// Two of three members are cut off, so no side has a majority: no write is
// acknowledged anywhere, no member stays leader, and after healing
// everything acknowledged before is there, as is any write that was
// acknowledged only after the heal.
func TestPartitionNoMajority(t *testing.T) {
	c := startPartitionCluster(t)
	leader := c.WaitLeader(10 * time.Second)
	followers := c.Followers(leader)
	cutOff := []*netcluster.Member{leader, followers[0]}
	survivor := followers[1]
	w := partConnect(t, c.Dial, c.ClientAddrs(), 6*time.Second)
	if _, err := w.Create("/data", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("before%02d", i)
		if _, err := w.Create("/data/"+name, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, name)
	}
	// One client per island: from the test process to the survivor, and
	// from inside each cut-off member's namespace to that member.
	type result struct {
		err error
		at  time.Time
	}
	type island struct {
		name string
		conn *zk.Conn
		res  chan result
		at   time.Time
		err  error
		done bool
	}
	islands := []*island{{name: fmt.Sprintf("survivor %d", survivor.ID), conn: partConnect(t, c.Dial, []string{survivor.ClientAddr}, 6*time.Second)}}
	for _, m := range cutOff {
		islands = append(islands, &island{name: fmt.Sprintf("cut-off member %d", m.ID), conn: partConnect(t, m.DialInside, []string{m.ClientAddr}, 6*time.Second)})
	}

	for _, m := range cutOff {
		m.Partition()
	}
	cut := time.Now()
	for i, is := range islands {
		is.res = make(chan result, 1)
		go func() {
			_, err := is.conn.Create(fmt.Sprintf("/data/during%d", i), nil, 0, zk.WorldACL(zk.PermAll))
			is.res <- result{err, time.Now()}
		}()
	}
	collect := func(wait time.Duration) {
		deadline := time.After(wait)
		for _, is := range islands {
			if is.done {
				continue
			}
			select {
			case r := <-is.res:
				is.done, is.err, is.at = true, r.err, r.at
			case <-deadline:
				return
			}
		}
	}
	// Nothing is acknowledged and nobody stays leader for three seconds,
	// several election timeouts.
	var leaders []string
	for time.Since(cut) < 3*time.Second {
		collect(100 * time.Millisecond)
		for _, is := range islands {
			if is.done && is.err == nil {
				t.Fatalf("write through %s acknowledged %s after the cut, with no majority anywhere",
					is.name, is.at.Sub(cut).Round(time.Millisecond))
			}
		}
	}
	for _, m := range c.Members {
		if mode := m.ModeInside(); mode == "leader" {
			leaders = append(leaders, fmt.Sprint(m.ID))
		}
	}
	if len(leaders) > 0 {
		t.Fatalf("members %v still report leader 3s after losing the majority", leaders)
	}
	for _, is := range islands {
		if is.done {
			t.Logf("write through %s failed after %s: %v", is.name, is.at.Sub(cut).Round(time.Millisecond), is.err)
		} else {
			t.Logf("write through %s still pending after 3s", is.name)
		}
	}

	healAt := time.Now()
	for _, m := range cutOff {
		m.Heal()
	}
	newLeader := c.WaitLeader(15 * time.Second)
	t.Logf("healed: leader %d after %s", newLeader.ID, time.Since(healAt).Round(time.Millisecond))
	// Pending writes finish one way or the other; one acknowledged after
	// the heal is a write like any other and must be kept.
	collect(15 * time.Second)
	for i, is := range islands {
		if !is.done {
			t.Fatalf("write through %s still pending 15s after the heal", is.name)
		}
		if is.err == nil {
			if is.at.Before(healAt) {
				t.Fatalf("write through %s acknowledged %s after the cut, before the heal, with no majority anywhere",
					is.name, is.at.Sub(cut).Round(time.Millisecond))
			}
			acked = append(acked, fmt.Sprintf("during%d", i))
			t.Logf("write through %s acknowledged after the heal (%s after it)", is.name, is.at.Sub(healAt).Round(time.Millisecond))
		}
	}
	for _, m := range c.Members {
		checkHasAll(t, c, m, "/data", acked)
	}
	if _, err := w.Create("/data/after", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("write after healing: %v", err)
	}
}

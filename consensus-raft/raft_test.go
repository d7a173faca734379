package consensusraft

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

// listSM is a tiny state machine: it keeps every applied entry in order.
type listSM struct {
	mu       sync.Mutex
	entries  []consensus.Entry
	applied  uint64
	restores int
	badOrder error // first out-of-order Apply seen
}

func (m *listSM) Apply(e consensus.Entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Index <= m.applied && m.badOrder == nil {
		m.badOrder = fmt.Errorf("entry %d applied after %d", e.Index, m.applied)
	}
	e.Data = bytes.Clone(e.Data)
	m.entries = append(m.entries, e)
	m.applied = e.Index
}

func (m *listSM) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

type listSnap struct {
	entries []consensus.Entry
	applied uint64
}

func (m *listSM) Snapshot() (consensus.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Entries are never modified once appended, so sharing them is safe.
	return &listSnap{entries: m.entries[:len(m.entries):len(m.entries)], applied: m.applied}, nil
}

func (s *listSnap) WriteTo(w io.Writer) (int64, error) {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, s.applied)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.entries)))
	for _, e := range s.entries {
		b = binary.BigEndian.AppendUint64(b, e.Index)
		b = binary.BigEndian.AppendUint64(b, e.Term)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
		b = append(b, e.Data...)
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (s *listSnap) Release() {}

func (m *listSM) Restore(r io.Reader) error {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	applied := binary.BigEndian.Uint64(hdr[:])
	n := binary.BigEndian.Uint32(hdr[8:])
	entries := make([]consensus.Entry, 0, n)
	for range n {
		var eh [20]byte
		if _, err := io.ReadFull(r, eh[:]); err != nil {
			return err
		}
		e := consensus.Entry{Index: binary.BigEndian.Uint64(eh[:]), Term: binary.BigEndian.Uint64(eh[8:])}
		e.Data = make([]byte, binary.BigEndian.Uint32(eh[16:]))
		if _, err := io.ReadFull(r, e.Data); err != nil {
			return err
		}
		entries = append(entries, e)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries, m.applied = entries, applied
	m.restores++
	return nil
}

// values returns the applied payloads in order.
func (m *listSM) values() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.entries))
	for i, e := range m.entries {
		out[i] = string(e.Data)
	}
	return out
}

func (m *listSM) check(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.badOrder != nil {
		t.Fatal(m.badOrder)
	}
}

func (m *listSM) restoreCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restores
}

// logBuffer collects log output and prints it only if the test fails;
// raft keeps logging from its goroutines while a test winds down, which
// t.Log does not allow.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func testLogger(t testing.TB) *slog.Logger {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("raft log:\n%s", lb.buf.String())
			lb.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// freeAddrs reserves n loopback ports: all are held open at once so they
// differ, then released for the nodes to bind.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var ls []net.Listener
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

type node struct {
	id    uint64
	r     *Replicator
	sm    *listSM
	store *memstore.Store
}

func startNode(t testing.TB, id uint64, members []consensus.Member, store *memstore.Store, cfg *Config, logger *slog.Logger) *node {
	t.Helper()
	sm := &listSM{}
	f, err := plugin.Lookup(plugin.KindConsensus, "raft")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.(consensus.Factory).New(context.Background(), plugin.Settings{NodeID: id}, cfg, consensus.Deps{
		StateMachine: sm, Store: store, Members: members, Logger: logger.With("node", id),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.(*Replicator)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return &node{id: id, r: r, sm: sm, store: store}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeader returns the single leader among nodes.
func waitLeader(t testing.TB, timeout time.Duration, nodes ...*node) *node {
	t.Helper()
	var leader *node
	waitFor(t, timeout, "a leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.r.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSingleNode(t *testing.T) {
	logger := testLogger(t)
	store := memstore.New()
	// Port 0, as the server configures a standalone member.
	members := []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:0"}}
	cfg := DefaultConfig()
	cfg.TrailingLogs = 50 // so SnapshotNow really compacts

	began := time.Now()
	n := startNode(t, 1, members, store, cfg, logger)
	select {
	case v := <-n.r.LeaderChanges():
		if !v {
			t.Fatal("first leadership change is false")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no leadership within 2s")
	}
	t.Logf("single node leader after %s", time.Since(began).Round(time.Millisecond))
	if !n.r.IsLeader() || n.r.Leader() != 1 {
		t.Fatalf("IsLeader=%v Leader=%d after the leadership signal", n.r.IsLeader(), n.r.Leader())
	}

	// 1000 proposals from 8 goroutines.
	const workers, per = 8, 125
	ctx := ctxTimeout(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				if err := n.r.Propose(ctx, fmt.Appendf(nil, "w%d-%04d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Propose: %v", err)
	}
	n.sm.check(t)
	got := n.sm.values()
	if len(got) != workers*per {
		t.Fatalf("applied %d entries, want %d", len(got), workers*per)
	}
	// Each worker proposed sequentially, so its entries keep their order.
	next := make([]int, workers)
	for _, v := range got {
		var w, i int
		if _, err := fmt.Sscanf(v, "w%d-%d", &w, &i); err != nil {
			t.Fatalf("bad entry %q", v)
		}
		if i != next[w] {
			t.Fatalf("worker %d: entry %d applied when %d was expected", w, i, next[w])
		}
		next[w]++
	}

	// Async proposals complete in call order.
	var mu sync.Mutex
	var asyncErrs []error
	var done sync.WaitGroup
	for i := range 200 {
		done.Add(1)
		n.r.ProposeAsync(fmt.Appendf(nil, "async-%03d", i), func(err error) {
			mu.Lock()
			asyncErrs = append(asyncErrs, err)
			mu.Unlock()
			done.Done()
		})
	}
	done.Wait()
	for _, err := range asyncErrs {
		if err != nil {
			t.Fatalf("ProposeAsync: %v", err)
		}
	}
	got = n.sm.values()
	for i, v := range got[workers*per:] {
		if want := fmt.Sprintf("async-%03d", i); v != want {
			t.Fatalf("async entry %d is %q, want %q", i, v, want)
		}
	}

	if err := n.r.SnapshotNow(ctx); err != nil {
		t.Fatalf("SnapshotNow: %v", err)
	}
	first, _ := store.FirstIndex()
	if first <= 1 {
		t.Fatalf("log not compacted after SnapshotNow: first index %d", first)
	}
	// A tail after the snapshot, replayed from the log on restart.
	for i := range 100 {
		if err := n.r.Propose(ctx, fmt.Appendf(nil, "tail-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.r.ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier: %v", err)
	}
	want := n.sm.values()
	if err := n.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.r.Propose(ctx, []byte("x")); !errors.Is(err, consensus.ErrStopped) {
		t.Fatalf("Propose after Shutdown: %v, want ErrStopped", err)
	}
	if n.r.IsLeader() {
		t.Fatal("IsLeader after Shutdown")
	}

	// Restart on the same data, as a process restart would reopen it.
	store.Close()
	store2 := store.Reopen()
	began = time.Now()
	n2 := startNode(t, 1, members, store2, cfg, logger)
	waitLeader(t, 2*time.Second, n2)
	t.Logf("restarted single node leader after %s", time.Since(began).Round(time.Millisecond))
	if n2.sm.restoreCount() != 1 {
		t.Fatalf("restored from %d snapshots, want 1", n2.sm.restoreCount())
	}
	// Nothing of this term is applied yet: the barrier appends an entry.
	if err := n2.r.ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier after restart: %v", err)
	}
	if got := n2.sm.values(); !slices.Equal(got, want) {
		t.Fatalf("after restart: %d entries, want %d (first difference matters)", len(got), len(want))
	}
	n2.sm.check(t)
	if b := barriers(t, store2); b != 1 {
		t.Fatalf("first barrier of a term: %d barrier entries in the log, want 1", b)
	}
	if err := n2.r.Propose(ctx, []byte("after-restart")); err != nil {
		t.Fatal(err)
	}
	// Now this leader has applied an entry of its term: a read-index
	// barrier, with no log write.
	if err := n2.r.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if b := barriers(t, store2); b != 1 {
		t.Fatalf("read-index barrier wrote to the log: %d barrier entries, want 1", b)
	}
	if got := n2.sm.values(); got[len(got)-1] != "after-restart" {
		t.Fatalf("last applied %q", got[len(got)-1])
	}
}

// barriers counts raft barrier entries in the store's log.
func barriers(t *testing.T, s storage.Store) int {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	n := 0
	for i := first; i != 0 && i <= last; i++ {
		e, err := s.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if raft.LogType(e.Kind) == raft.LogBarrier {
			n++
		}
	}
	return n
}

func TestThreeNodes(t *testing.T) {
	logger := testLogger(t)
	addrs := freeAddrs(t, 5)
	var members []consensus.Member
	for i := range 3 {
		members = append(members, consensus.Member{ID: uint64(i + 1), PeerAddr: addrs[i]})
	}
	cfg := DefaultConfig()
	cfg.TrailingLogs = 0 // SnapshotNow drops the whole log, forcing InstallSnapshot
	var nodes []*node
	for _, m := range members {
		nodes = append(nodes, startNode(t, m.ID, members, memstore.New(), cfg, logger))
	}
	began := time.Now()
	leader := waitLeader(t, 5*time.Second, nodes...)
	t.Logf("3-node initial election: leader %d after %s", leader.id, time.Since(began).Round(time.Millisecond))

	ctx := ctxTimeout(t, 40*time.Second)
	propose := func(n *node, prefix string, count int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, count)
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < count; i += 4 {
					if err := n.r.Propose(ctx, fmt.Appendf(nil, "%s-%03d", prefix, i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Propose on %d: %v", n.id, err)
		}
	}
	sameApplied := func(want int, ns ...*node) []string {
		t.Helper()
		waitFor(t, 5*time.Second, fmt.Sprintf("%d entries everywhere", want), func() bool {
			for _, n := range ns {
				if len(n.sm.values()) < want {
					return false
				}
			}
			return true
		})
		ref := ns[0].sm.values()
		for _, n := range ns {
			n.sm.check(t)
			if got := n.sm.values(); !slices.Equal(got, ref) || len(got) != want {
				t.Fatalf("node %d applied %d entries differing from node %d's %d", n.id, len(got), ns[0].id, len(ref))
			}
		}
		return ref
	}

	propose(leader, "a", 100)
	sameApplied(100, nodes...)

	var followers []*node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	// Followers take writes and barriers too, forwarding them to the leader.
	for i, f := range followers {
		if got := f.r.Leader(); got != leader.id {
			t.Fatalf("follower %d sees leader %d, want %d", f.id, got, leader.id)
		}
		if f.r.IsLeader() {
			t.Fatalf("follower %d claims to lead", f.id)
		}
		if err := f.r.Propose(ctx, fmt.Appendf(nil, "a-f%d", i)); err != nil {
			t.Fatalf("Propose on follower %d: %v", f.id, err)
		}
		if err := f.r.ReadBarrier(ctx); err != nil {
			t.Fatalf("ReadBarrier on follower %d: %v", f.id, err)
		}
	}
	if err := leader.r.ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier on leader: %v", err)
	}
	sameApplied(102, nodes...)

	// Kill the leader; the others elect a new one and take writes.
	killed := time.Now()
	if err := leader.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	newLeader := waitLeader(t, 5*time.Second, followers...)
	elected := time.Since(killed)
	for {
		err := newLeader.r.Propose(ctx, []byte("b-first"))
		if err == nil {
			break
		}
		if !errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrUnknownOutcome) {
			t.Fatalf("first write after failover: %v", err)
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("no write acknowledged within 5s of the leader's death: %v", err)
		}
		newLeader = waitLeader(t, 5*time.Second, followers...)
	}
	t.Logf("3-node failover: new leader %d after %s, first write acknowledged after %s",
		newLeader.id, elected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	propose(newLeader, "b", 50)
	sameApplied(153, followers...)

	// Membership: drop the dead member, snapshot and compact, then add two
	// members that can only catch up through InstallSnapshot.
	mship := consensus.Membership(newLeader.r)
	if err := mship.RemoveMember(ctx, leader.id); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if err := newLeader.r.SnapshotNow(ctx); err != nil {
		t.Fatalf("SnapshotNow: %v", err)
	}
	if _, err := newLeader.store.Entry(1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("leader log not compacted: Entry(1) = %v", err)
	}
	joinCfg := *cfg
	joinCfg.Join = true
	m4 := consensus.Member{ID: 4, PeerAddr: addrs[3], ClientAddr: "127.0.0.1:2184", Voter: true}
	m5 := consensus.Member{ID: 5, PeerAddr: addrs[4], Voter: false}
	n4 := startNode(t, 4, []consensus.Member{m4}, memstore.New(), &joinCfg, logger)
	n5 := startNode(t, 5, []consensus.Member{m5}, memstore.New(), &joinCfg, logger)
	if n4.r.IsLeader() || n4.r.Leader() != 0 {
		t.Fatal("a joining member must not elect itself")
	}
	if err := mship.AddMember(ctx, m4); err != nil {
		t.Fatalf("AddMember voter: %v", err)
	}
	if err := mship.AddMember(ctx, m5); err != nil {
		t.Fatalf("AddMember non-voter: %v", err)
	}
	cluster := []*node{followers[0], followers[1], n4, n5}
	sameApplied(153, cluster...)
	for _, n := range []*node{n4, n5} {
		if n.sm.restoreCount() == 0 {
			t.Fatalf("node %d caught up without installing a snapshot", n.id)
		}
		if snaps, _ := n.store.Snapshots().List(); len(snaps) == 0 {
			t.Fatalf("node %d stored no snapshot", n.id)
		}
	}
	got, err := mship.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b consensus.Member) int { return int(a.ID) - int(b.ID) })
	var desc []string
	for _, m := range got {
		desc = append(desc, fmt.Sprintf("%d:%s:%v:%s", m.ID, m.PeerAddr, m.Voter, m.ClientAddr))
	}
	var wantDesc []string
	for _, f := range followers { // ids ascending, like got
		wantDesc = append(wantDesc, fmt.Sprintf("%d:%s:true:", f.id, addrs[f.id-1]))
	}
	wantDesc = append(wantDesc, fmt.Sprintf("4:%s:true:127.0.0.1:2184", addrs[3]), fmt.Sprintf("5:%s:false:", addrs[4]))
	if !slices.Equal(desc, wantDesc) {
		t.Fatalf("Members = %v, want %v", desc, wantDesc)
	}

	// The new members follow later writes too.
	propose(newLeader, "c", 20)
	sameApplied(173, cluster...)

	// Hand leadership to the new voter; a non-voter cannot take it.
	if err := mship.TransferLeadership(ctx, 5); err == nil {
		t.Fatal("TransferLeadership to a non-voter succeeded")
	}
	if err := mship.TransferLeadership(ctx, 4); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	waitFor(t, 5*time.Second, "node 4 to lead", func() bool { return n4.r.IsLeader() })
	if err := n4.r.Propose(ctx, []byte("d-000")); err != nil {
		t.Fatal(err)
	}
	if err := n4.r.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	sameApplied(174, cluster...)

	// Removing a member through the new leader takes it out for good.
	if err := consensus.Membership(n4.r).RemoveMember(ctx, 5); err != nil {
		t.Fatal(err)
	}
	got, err = consensus.Membership(n4.r).Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(got, func(m consensus.Member) bool { return m.ID == 5 }) || len(got) != 3 {
		t.Fatalf("after removing 5: %+v", got)
	}

	// A leader that removes itself steps down and stops; the rest go on.
	// raft may stop before answering, so ErrStopped is a fine outcome too.
	if err := consensus.Membership(n4.r).RemoveMember(ctx, 4); err != nil && !errors.Is(err, consensus.ErrStopped) {
		t.Fatalf("leader removing itself: %v", err)
	}
	waitFor(t, 5*time.Second, "node 4 to stop after removing itself", func() bool {
		return errors.Is(n4.r.Propose(ctx, []byte("x")), consensus.ErrStopped)
	})
	if n4.r.IsLeader() {
		t.Fatal("removed leader still leads")
	}
	last := waitLeader(t, 5*time.Second, followers...)
	if err := last.r.Propose(ctx, []byte("e-000")); err != nil {
		t.Fatal(err)
	}
	sameApplied(175, followers...)
}

func TestNewRejectsBadSetups(t *testing.T) {
	sm, store := &listSM{}, memstore.New()
	cases := []struct {
		name    string
		nodeID  uint64
		cfg     any
		members []consensus.Member
		want    string
	}{
		{"no members", 1, nil, nil, "no members"},
		{"not listed", 9, nil, []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}}, "not in the member list"},
		{"duplicate", 1, nil, []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}, {ID: 1, PeerAddr: "127.0.0.1:2"}}, "twice"},
		{"port 0 in ensemble", 1, nil, []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:0"}, {ID: 2, PeerAddr: "127.0.0.1:2"}}, "needs a port"},
		{"bad address", 1, nil, []consensus.Member{{ID: 1, PeerAddr: "nowhere"}}, "peer address"},
		{"wrong config type", 1, struct{}{}, []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}}, "want *consensusraft.Config"},
		{"lease above heartbeat", 1, &Config{HeartbeatTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: time.Second,
			CommitTimeout: time.Millisecond, MaxAppendEntries: 1, SnapshotInterval: time.Second, TransportTimeout: time.Second,
			TransportMaxPool: 1, ForwardTimeout: time.Second, ForwardReadConns: 1}, []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}}, "LeaderLeaseTimeout"},
		{"bad level", 1, func() *Config { c := DefaultConfig(); c.LogLevel = "loud"; return c }(),
			[]consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}}, "log_level"},
	}
	for _, c := range cases {
		_, err := New(plugin.Settings{NodeID: c.nodeID}, c.cfg, consensus.Deps{StateMachine: sm, Store: store, Members: c.members})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func TestAutoTimeouts(t *testing.T) {
	hl := newSlogLogger(slog.New(slog.DiscardHandler), 0)
	one, err := DefaultConfig().raftConfig(1, 1, hl)
	if err != nil {
		t.Fatal(err)
	}
	three, err := DefaultConfig().raftConfig(1, 3, hl)
	if err != nil {
		t.Fatal(err)
	}
	if one.HeartbeatTimeout != singleHeartbeat || three.HeartbeatTimeout != multiHeartbeat ||
		three.LeaderLeaseTimeout != multiLease {
		t.Fatalf("auto timeouts: single %s, ensemble %s/%s", one.HeartbeatTimeout, three.HeartbeatTimeout, three.LeaderLeaseTimeout)
	}
	// An explicit heartbeat timeout drags the auto ones along.
	c := DefaultConfig()
	c.HeartbeatTimeout = 2 * time.Second
	rc, err := c.raftConfig(1, 3, hl)
	if err != nil {
		t.Fatal(err)
	}
	if rc.ElectionTimeout != 2*time.Second || rc.LeaderLeaseTimeout != multiLease {
		t.Fatalf("explicit heartbeat: election %s lease %s", rc.ElectionTimeout, rc.LeaderLeaseTimeout)
	}
	c.HeartbeatTimeout = 50 * time.Millisecond
	if rc, err = c.raftConfig(1, 3, hl); err != nil || rc.LeaderLeaseTimeout != 50*time.Millisecond {
		t.Fatalf("short heartbeat: lease %v, err %v", rc.LeaderLeaseTimeout, err)
	}
}

func TestVoterRule(t *testing.T) {
	sm, store := &listSM{}, memstore.New()
	unmarked := []consensus.Member{{ID: 1, PeerAddr: "127.0.0.1:1"}, {ID: 2, PeerAddr: "127.0.0.1:2"}, {ID: 3, PeerAddr: "127.0.0.1:3"}}
	marked := slices.Clone(unmarked)
	marked[0].Voter, marked[1].Voter = true, true
	for _, c := range []struct {
		members []consensus.Member
		voters  []bool
	}{
		{unmarked, []bool{true, true, true}},
		{marked, []bool{true, true, false}},
	} {
		r, err := New(plugin.Settings{NodeID: 1}, nil, consensus.Deps{StateMachine: sm, Store: store, Members: c.members})
		if err != nil {
			t.Fatal(err)
		}
		boot := r.bootstrapConfiguration("127.0.0.1:1")
		for i, s := range boot.Servers {
			if got := s.Suffrage == raft.Voter; got != c.voters[i] {
				t.Errorf("member %s: voter=%v, want %v", s.ID, got, c.voters[i])
			}
		}
	}
}

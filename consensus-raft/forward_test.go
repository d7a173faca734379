package consensusraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

// startCluster starts n members on loopback and returns them with the
// leader first.
func startCluster(t testing.TB, n int, cfg *Config) []*node {
	t.Helper()
	logger := testLogger(t)
	addrs := freeAddrs(t, n)
	var members []consensus.Member
	for i := range n {
		members = append(members, consensus.Member{ID: uint64(i + 1), PeerAddr: addrs[i]})
	}
	var nodes []*node
	for _, m := range members {
		nodes = append(nodes, startNode(t, m.ID, members, memstore.New(), cfg, logger))
	}
	leader := waitLeader(t, 5*time.Second, nodes...)
	out := []*node{leader}
	for _, nd := range nodes {
		if nd != leader {
			out = append(out, nd)
		}
	}
	return out
}

func (m *listSM) has(v string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.ContainsFunc(m.entries, func(e consensus.Entry) bool { return string(e.Data) == v })
}

// converge waits until every node applied the same entries and returns them.
func converge(t testing.TB, ns ...*node) []string {
	t.Helper()
	var ref []string
	waitFor(t, 5*time.Second, "members to apply the same entries", func() bool {
		ref = ns[0].sm.values()
		for _, n := range ns[1:] {
			if !slices.Equal(n.sm.values(), ref) {
				return false
			}
		}
		return true
	})
	for _, n := range ns {
		n.sm.check(t)
	}
	return ref
}

func TestFollowerPropose(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 20*time.Second)

	for i := range 20 {
		for _, f := range []*node{f1, f2} {
			v := fmt.Sprintf("f%d-%02d", f.id, i)
			if err := f.r.Propose(ctx, []byte(v)); err != nil {
				t.Fatalf("Propose on follower %d: %v", f.id, err)
			}
			// Applied here before Propose returned.
			if !f.sm.has(v) {
				t.Fatalf("follower %d returned from Propose(%q) before applying it", f.id, v)
			}
		}
	}
	// Synchronous proposals from several goroutines of one follower.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				v := fmt.Sprintf("par%d-%d", w, i)
				if err := f1.r.Propose(ctx, []byte(v)); err != nil {
					errs <- err
					return
				}
				if !f1.sm.has(v) {
					errs <- fmt.Errorf("%q not applied at return", v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := converge(t, leader, f1, f2)
	if len(got) != 80 {
		t.Fatalf("%d entries applied, want 80", len(got))
	}
	if f1.r.IsLeader() || f1.r.Leader() != leader.id {
		t.Fatalf("follower 1: IsLeader=%v Leader=%d", f1.r.IsLeader(), f1.r.Leader())
	}
}

func TestFollowerAsyncOrder(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 20*time.Second)

	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var notLocal []string
	record := func(f *node, v string) func(error) {
		return func(err error) {
			if err == nil && !f.sm.has(v) {
				mu.Lock()
				notLocal = append(notLocal, v)
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
				mu.Unlock()
			}
			wg.Done()
		}
	}
	wg.Add(2 * n)
	var interleave sync.WaitGroup
	// Follower 2 and the leader write at the same time, from several
	// goroutines, so follower 1's stream is interleaved with others.
	interleave.Go(func() {
		for i := range n {
			v := fmt.Sprintf("B-%04d", i)
			f2.r.ProposeAsync([]byte(v), record(f2, v))
		}
	})
	for w := range 2 {
		interleave.Go(func() {
			for i := range 25 {
				v := fmt.Sprintf("L%d-%02d", w, i)
				if err := leader.r.Propose(ctx, []byte(v)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		v := fmt.Sprintf("A-%04d", i)
		f1.r.ProposeAsync([]byte(v), record(f1, v))
		if i%100 == 50 {
			// A synchronous call in the middle shares the same ordered queue.
			sv := fmt.Sprintf("A-sync-%04d", i)
			if err := f1.r.Propose(ctx, []byte(sv)); err != nil {
				t.Fatalf("Propose: %v", err)
			}
		}
	}
	wg.Wait()
	interleave.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d proposals failed, first: %v", len(errs), errs[0])
	}
	if len(notLocal) > 0 {
		t.Fatalf("%d async proposals reported done before being applied locally, first %s", len(notLocal), notLocal[0])
	}
	got := converge(t, leader, f1, f2)
	if len(got) != 2*n+50+5 {
		t.Fatalf("%d entries applied, want %d", len(got), 2*n+50+5)
	}
	// Each stream's entries are applied in call order, with follower 1's
	// synchronous calls in their place.
	var a, b []string
	var wantA []string
	for i := range n {
		wantA = append(wantA, fmt.Sprintf("A-%04d", i))
		if i%100 == 50 {
			wantA = append(wantA, fmt.Sprintf("A-sync-%04d", i))
		}
	}
	interleaved := false
	for i, v := range got {
		switch {
		case strings.HasPrefix(v, "A-"):
			a = append(a, v)
			if i > 0 && !strings.HasPrefix(got[i-1], "A-") && len(a) > 1 {
				interleaved = true
			}
		case strings.HasPrefix(v, "B-"):
			b = append(b, v)
		}
	}
	if !slices.Equal(a, wantA) {
		for i := range min(len(a), len(wantA)) {
			if a[i] != wantA[i] {
				t.Fatalf("follower 1's entries out of order at %d: %s where %s was expected", i, a[i], wantA[i])
			}
		}
		t.Fatalf("follower 1's entries: %d, want %d", len(a), len(wantA))
	}
	if !slices.IsSorted(b) || len(b) != n {
		t.Fatalf("follower 2's entries: %d, sorted=%v", len(b), slices.IsSorted(b))
	}
	if !interleaved {
		t.Fatal("follower 1's entries were never interleaved with others: the test did not exercise ordering")
	}
}

func TestFollowerReadBarrier(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ForwardTimeout = time.Second
	nodes := startCluster(t, 3, cfg)
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 20*time.Second)

	for i := range 30 {
		v := fmt.Sprintf("w-%02d", i)
		if err := leader.r.Propose(ctx, []byte(v)); err != nil {
			t.Fatal(err)
		}
		f := []*node{f1, f2}[i%2]
		if err := f.r.ReadBarrier(ctx); err != nil {
			t.Fatalf("ReadBarrier on follower %d: %v", f.id, err)
		}
		if !f.sm.has(v) {
			t.Fatalf("follower %d: ReadBarrier returned before %q, written through the leader, was applied", f.id, v)
		}
	}
	// Concurrent barriers share leadership confirmations.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if err := f1.r.ReadBarrier(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ReadBarrier: %v", err)
	}

	// With the leader gone and no majority, a follower's barrier fails
	// within the forward timeout instead of answering from stale state.
	if err := leader.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f2.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err := f1.r.ReadBarrier(ctx)
	if !errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrNoQuorum) {
		t.Fatalf("ReadBarrier without a majority: %v, want ErrNotLeader or ErrNoQuorum", err)
	}
	if d := time.Since(began); d > cfg.ForwardTimeout+time.Second {
		t.Fatalf("ReadBarrier without a majority took %s", d)
	}
	began = time.Now()
	if err := f1.r.Propose(ctx, []byte("lost")); !errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrUnknownOutcome) {
		t.Fatalf("Propose without a majority: %v", err)
	}
	if d := time.Since(began); d > cfg.ForwardTimeout+time.Second {
		t.Fatalf("Propose without a majority took %s", d)
	}
	if f1.sm.has("lost") {
		t.Fatal("a proposal was applied without a majority")
	}
}

// TestForwardingFailover kills the leader while both followers stream
// proposals through the leader and checks that nothing acknowledged is lost
// or applied twice, that failures are of the documented kinds, that each
// stream keeps its order, and that forwarding resumes to the new leader.
func TestForwardingFailover(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ForwardTimeout = 3 * time.Second
	nodes := startCluster(t, 3, cfg)
	leader, followers := nodes[0], nodes[1:]
	ctx := ctxTimeout(t, 30*time.Second)

	type outcome struct {
		err  error
		sent time.Time
		at   time.Time
	}
	var mu sync.Mutex
	results := map[string]outcome{}
	var killedAt time.Time
	stop := make(chan struct{})
	var streams sync.WaitGroup
	for _, f := range followers {
		streams.Go(func() {
			window := make(chan struct{}, 32)
			var inflight sync.WaitGroup
			defer inflight.Wait()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case window <- struct{}{}:
				}
				v := fmt.Sprintf("s%d-%05d", f.id, i)
				sent := time.Now()
				inflight.Add(1)
				f.r.ProposeAsync([]byte(v), func(err error) {
					mu.Lock()
					results[v] = outcome{err, sent, time.Now()}
					mu.Unlock()
					<-window
					inflight.Done()
				})
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := leader.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	newLeader := waitLeader(t, 5*time.Second, followers...)
	elected := time.Since(killedAt)
	var forwarder *node // the survivor that still forwards
	for _, f := range followers {
		if f != newLeader {
			forwarder = f
		}
	}
	// Stream on until the forwarding survivor has had proposals, sent
	// after the kill, acknowledged for a while.
	waitFor(t, 10*time.Second, "forwarded writes after the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for v, o := range results {
			if o.err == nil && o.sent.After(killedAt) && strings.HasPrefix(v, fmt.Sprintf("s%d-", forwarder.id)) {
				n++
			}
		}
		return n >= 200
	})
	close(stop)
	streams.Wait()

	// First acknowledgement of a proposal made after the kill.
	var firstAck time.Duration
	counts, reasons := map[string]int{}, map[string]int{}
	mu.Lock()
	for v, o := range results {
		switch {
		case o.err == nil:
			counts["ok"]++
			if o.sent.After(killedAt) && (firstAck == 0 || o.at.Sub(killedAt) < firstAck) {
				firstAck = o.at.Sub(killedAt)
			}
		case errors.Is(o.err, consensus.ErrUnknownOutcome):
			counts["unknown"]++
			reasons[o.err.Error()]++
		case errors.Is(o.err, consensus.ErrNotLeader):
			counts["not-leader"]++
			reasons[o.err.Error()]++
		default:
			mu.Unlock()
			t.Fatalf("proposal %s failed with %v, want ErrUnknownOutcome or ErrNotLeader", v, o.err)
		}
	}
	mu.Unlock()
	t.Logf("failover under forwarded load: new leader %d after %s, first write made after the kill acknowledged after %s; outcomes %v %v",
		newLeader.id, elected.Round(time.Millisecond), firstAck.Round(time.Millisecond), counts, reasons)

	// A final write through the new leader, then everyone agrees.
	if err := forwarder.r.Propose(ctx, []byte("final")); err != nil {
		t.Fatal(err)
	}
	got := converge(t, followers...)
	seen := map[string]int{}
	last := map[string]int{}
	for _, v := range got {
		seen[v]++
		var id, seq int
		if _, err := fmt.Sscanf(v, "s%d-%d", &id, &seq); err != nil {
			continue
		}
		stream := fmt.Sprint(id)
		if prev, ok := last[stream]; ok && seq <= prev {
			t.Fatalf("stream %s applied %d after %d: order broken", stream, seq, prev)
		}
		last[stream] = seq
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s applied %d times", v, n)
		}
	}
	for v, o := range results {
		if o.err == nil && seen[v] != 1 {
			t.Fatalf("%s was acknowledged but is not applied on the survivors", v)
		}
		if errors.Is(o.err, consensus.ErrNotLeader) && !errors.Is(o.err, consensus.ErrUnknownOutcome) && seen[v] != 0 {
			t.Fatalf("%s failed with %v (nothing proposed) but was applied", v, o.err)
		}
	}
	if counts["ok"] == 0 {
		t.Fatal("no proposal succeeded")
	}
}

// TestForwardingProtocolAbuse speaks the forwarding protocol by hand: a bad
// request closes that connection only, and the cluster goes on.
func TestForwardingProtocolAbuse(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1 := nodes[0], nodes[1]
	ctx := ctxTimeout(t, 10*time.Second)
	addr := leader.r.localAddr

	expectClosed := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("%s: read %d bytes, %v; want the leader to close the connection", what, n, err)
		}
	}
	cases := []struct {
		name  string
		bytes []byte
	}{
		{"garbage protocol byte", []byte{0x99, 1, 2, 3}},
		{"wrong version", append([]byte{muxForward, fwdVersion + 1}, make([]byte, helloLen-1)...)},
		{"unknown request kind", append(append([]byte{muxForward}, appendHello(nil, 9, 1)...), appendRequest(nil, 77, 1, nil)...)},
		{"proposal on a read connection", append(append([]byte{muxForward}, appendHello(nil, 9, 0)...), appendRequest(nil, kindPropose, 1, []byte("x"))...)},
		{"oversized proposal", append(append([]byte{muxForward}, appendHello(nil, 9, 1)...),
			binary.BigEndian.AppendUint32(append([]byte{kindPropose}, make([]byte, 8)...), maxFwdPayload+1)...)},
	}
	for _, c := range cases {
		conn, err := net.Dial("tcp", string(addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(c.bytes); err != nil {
			t.Fatal(err)
		}
		expectClosed(conn, c.name)
		conn.Close()
	}

	// A well-formed read index by hand, then the cluster still works.
	conn, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := append([]byte{muxForward}, appendHello(nil, 9, 0)...)
	req = appendRequest(req, kindReadIndex, 5, binary.BigEndian.AppendUint64(nil, 0))
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	var resp [respLen]byte
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(conn, resp[:]); err != nil {
		t.Fatal(err)
	}
	if id := binary.BigEndian.Uint64(resp[:]); id != 5 || resp[8] != codeOK {
		t.Fatalf("read index answer: id %d code %d", id, resp[8])
	}
	if err := f1.r.Propose(ctx, []byte("after-abuse")); err != nil {
		t.Fatal(err)
	}
	if !f1.sm.has("after-abuse") {
		t.Fatal("not applied locally")
	}
}

// TestProposeWaitsForLeader: a member's proposal made while no leader is
// known waits for one instead of failing at once.
func TestProposeWaitsForLeader(t *testing.T) {
	logger := testLogger(t)
	addrs := freeAddrs(t, 3)
	var members []consensus.Member
	for i := range 3 {
		members = append(members, consensus.Member{ID: uint64(i + 1), PeerAddr: addrs[i]})
	}
	cfg := DefaultConfig()
	// Only one member at first: no majority, no leader.
	n1 := startNode(t, 1, members, memstore.New(), cfg, logger)
	result := make(chan error, 1)
	began := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		result <- n1.r.Propose(ctx, []byte("early"))
	}()
	time.Sleep(400 * time.Millisecond)
	select {
	case err := <-result:
		t.Fatalf("Propose without any leader returned after %s: %v", time.Since(began), err)
	default:
	}
	n2 := startNode(t, 2, members, memstore.New(), cfg, logger)
	startNode(t, 3, members, memstore.New(), cfg, logger)
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Propose once a leader appeared: %v", err)
		}
	case <-time.After(cfg.ForwardTimeout + time.Second):
		t.Fatal("Propose did not complete once a leader appeared")
	}
	if !n1.sm.has("early") {
		t.Fatal("not applied locally at return")
	}
	waitFor(t, 5*time.Second, "the entry on member 2", func() bool { return n2.sm.has("early") })
}

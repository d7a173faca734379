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
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

// clusterMembers is the member list of a cluster started by startCluster.
func clusterMembers(nodes []*node) []consensus.Member {
	var ms []consensus.Member
	for _, n := range nodes {
		ms = append(ms, consensus.Member{ID: n.id, PeerAddr: string(n.r.localAddr)})
	}
	slices.SortFunc(ms, func(a, b consensus.Member) int { return int(a.ID) - int(b.ID) })
	return ms
}

// memberSet describes Members() as sorted "id:peer:voter:client" strings.
func memberSet(t testing.TB, ctx context.Context, n *node) []string {
	t.Helper()
	ms, err := n.r.Members(ctx)
	if err != nil {
		t.Fatalf("Members on %d: %v", n.id, err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d:%s:%v:%s", m.ID, m.PeerAddr, m.Voter, m.ClientAddr))
	}
	slices.Sort(out)
	return out
}

func hasMember(t testing.TB, ctx context.Context, n *node, id uint64) bool {
	t.Helper()
	ms, err := n.r.Members(ctx)
	if err != nil {
		t.Fatalf("Members on %d: %v", n.id, err)
	}
	return slices.ContainsFunc(ms, func(m consensus.Member) bool { return m.ID == id })
}

// TestFollowerAddMember adds a voter and a non-voter through followers; the
// voter catches up and its vote is needed to elect the next leader.
func TestFollowerAddMember(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 30*time.Second)
	for i := range 5 {
		if err := leader.r.Propose(ctx, fmt.Appendf(nil, "before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	addrs := freeAddrs(t, 2)
	joinCfg := DefaultConfig()
	joinCfg.Join = true
	m4 := consensus.Member{ID: 4, PeerAddr: addrs[0], ClientAddr: "127.0.0.1:2184", Voter: true}
	m5 := consensus.Member{ID: 5, PeerAddr: addrs[1], ClientAddr: "127.0.0.1:2185"}
	logger := testLogger(t)
	n4 := startNode(t, 4, []consensus.Member{m4}, memstore.New(), joinCfg, logger)
	n5 := startNode(t, 5, []consensus.Member{m5}, memstore.New(), joinCfg, logger)

	if err := f1.r.AddMember(ctx, m4); err != nil {
		t.Fatalf("AddMember on follower %d: %v", f1.id, err)
	}
	if err := f2.r.AddMember(ctx, m5); err != nil {
		t.Fatalf("AddMember non-voter on follower %d: %v", f2.id, err)
	}
	// The caller sees its change at once, client address included.
	want4 := fmt.Sprintf("4:%s:true:127.0.0.1:2184", addrs[0])
	want5 := fmt.Sprintf("5:%s:false:127.0.0.1:2185", addrs[1])
	if got := memberSet(t, ctx, f1); !slices.Contains(got, want4) {
		t.Fatalf("Members on follower %d right after its AddMember: %v, want %s in it", f1.id, got, want4)
	}
	if got := memberSet(t, ctx, f2); !slices.Contains(got, want5) {
		t.Fatalf("Members on follower %d right after its AddMember: %v, want %s in it", f2.id, got, want5)
	}
	// The leader ran both changes, so it knows both client addresses; a
	// member that made neither call knows the membership but not the
	// client address (the framework keeps those in /zookeeper/config).
	got := memberSet(t, ctx, leader)
	if !slices.Contains(got, want4) || !slices.Contains(got, want5) || len(got) != 5 {
		t.Fatalf("Members on the leader: %v", got)
	}
	if got := memberSet(t, ctx, f2); !slices.Contains(got, fmt.Sprintf("4:%s:true:", addrs[0])) {
		t.Fatalf("Members on follower %d: %v, want member 4 without a client address", f2.id, got)
	}

	// Both new members catch up, and follow later writes.
	if err := f2.r.Propose(ctx, []byte("after-add")); err != nil {
		t.Fatal(err)
	}
	converge(t, leader, f1, f2, n4, n5)
	if !n4.sm.has("before-0") || !n4.sm.has("after-add") {
		t.Fatalf("member 4 applied %v", n4.sm.values())
	}
	if !hasMember(t, ctx, n4, 5) {
		t.Fatal("member 4 does not know member 5")
	}

	// Four voters: with the leader gone, electing a leader and committing
	// a write needs all three of f1, f2 and member 4.
	if err := leader.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	next := waitLeader(t, 5*time.Second, f1, f2, n4)
	var err error
	for range 50 {
		if err = n5.r.Propose(ctx, []byte("after-failover")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("write after failover (leader %d): %v", next.id, err)
	}
	converge(t, f1, f2, n4, n5)
}

// TestFollowerRemoveMember removes a follower and then the leader, both
// through a follower, and the rest carry on.
func TestFollowerRemoveMember(t *testing.T) {
	nodes := startCluster(t, 4, DefaultConfig())
	leader, f1, f2, f3 := nodes[0], nodes[1], nodes[2], nodes[3]
	ctx := ctxTimeout(t, 30*time.Second)

	if err := f1.r.RemoveMember(ctx, f3.id); err != nil {
		t.Fatalf("RemoveMember(%d) on follower %d: %v", f3.id, f1.id, err)
	}
	if hasMember(t, ctx, f1, f3.id) {
		t.Fatalf("follower %d still lists member %d after removing it", f1.id, f3.id)
	}
	if hasMember(t, ctx, leader, f3.id) {
		t.Fatalf("the leader still lists member %d", f3.id)
	}
	if err := f2.r.Propose(ctx, []byte("without-3")); err != nil {
		t.Fatal(err)
	}
	converge(t, leader, f1, f2)
	if f3.sm.has("without-3") {
		t.Fatalf("removed member %d still receives entries", f3.id)
	}

	// Removing the leader from a follower: it commits the change, steps
	// down and stops; the two left elect a leader and take writes.
	if err := f1.r.RemoveMember(ctx, leader.id); err != nil {
		t.Fatalf("RemoveMember(leader %d) on follower %d: %v", leader.id, f1.id, err)
	}
	waitFor(t, 5*time.Second, "the removed leader to stop", func() bool {
		return errors.Is(leader.r.Propose(ctx, []byte("x")), consensus.ErrStopped)
	})
	waitLeader(t, 5*time.Second, f1, f2)
	if err := f2.r.Propose(ctx, []byte("two-left")); err != nil {
		t.Fatal(err)
	}
	converge(t, f1, f2)
	waitFor(t, 5*time.Second, "the survivors to drop the old leader", func() bool {
		return !hasMember(t, ctx, f1, leader.id) && !hasMember(t, ctx, f2, leader.id)
	})
	if got := memberSet(t, ctx, f2); len(got) != 2 {
		t.Fatalf("Members after both removals: %v", got)
	}
}

// TestFollowerTransferLeadership moves leadership from a follower's call,
// and reports the leader's refusal with its reason.
func TestFollowerTransferLeadership(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 30*time.Second)

	if err := f1.r.TransferLeadership(ctx, f2.id); err != nil {
		t.Fatalf("TransferLeadership(%d) on follower %d: %v", f2.id, f1.id, err)
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("member %d to lead", f2.id), func() bool {
		return f2.r.IsLeader() && f1.r.Leader() == f2.id
	})
	// The member that leads asks for itself: nothing to do.
	if err := f2.r.TransferLeadership(ctx, f2.id); err != nil || !f2.r.IsLeader() {
		t.Fatalf("TransferLeadership to the leader itself: %v, leads %v", err, f2.r.IsLeader())
	}
	// A follower asks for itself.
	if err := leader.r.TransferLeadership(ctx, leader.id); err != nil {
		t.Fatalf("TransferLeadership(%d) on itself, a follower: %v", leader.id, err)
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("member %d to lead again", leader.id), func() bool { return leader.r.IsLeader() })
	if err := f1.r.Propose(ctx, []byte("after-transfers")); err != nil {
		t.Fatal(err)
	}
	converge(t, leader, f1, f2)

	// The leader's own reason comes back to the follower, and is not one
	// of the retryable conditions.
	err := f1.r.TransferLeadership(ctx, 99)
	if err == nil || !strings.Contains(err.Error(), "member 99 is not in the configuration") {
		t.Fatalf("TransferLeadership to a stranger: %v", err)
	}
	for _, sentinel := range []error{consensus.ErrNotLeader, consensus.ErrUnknownOutcome, consensus.ErrNoQuorum, consensus.ErrStopped} {
		if errors.Is(err, sentinel) {
			t.Fatalf("TransferLeadership to a stranger: %v is %v", err, sentinel)
		}
	}
	if !leader.r.IsLeader() {
		t.Fatal("a refused transfer moved leadership")
	}
}

// newNodeStart builds a member like startNode but returns Start's error.
func newNodeStart(t testing.TB, id uint64, members []consensus.Member, store *memstore.Store, cfg *Config) (*node, error) {
	t.Helper()
	sm := &listSM{}
	r, err := New(plugin.Settings{NodeID: id}, cfg, consensus.Deps{
		StateMachine: sm, Store: store, Members: members, Logger: testLogger(t).With("node", id),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return &node{id: id, r: r, sm: sm, store: store}, r.Start(context.Background())
}

// TestRestartAfterMembershipChanges: restarts where the configured list and
// the stored membership differ legitimately start; those where they cannot
// both be right fail with both views named.
func TestRestartAfterMembershipChanges(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 30*time.Second)
	oldList := clusterMembers(nodes)
	logger := testLogger(t)

	// Grow the cluster with member 4, then restart it with a list naming
	// the new membership and no join.
	addr4 := freeAddrs(t, 1)[0]
	joinCfg := DefaultConfig()
	joinCfg.Join = true
	m4 := consensus.Member{ID: 4, PeerAddr: addr4, Voter: true}
	n4 := startNode(t, 4, []consensus.Member{m4}, memstore.New(), joinCfg, logger)
	if err := f1.r.AddMember(ctx, m4); err != nil {
		t.Fatal(err)
	}
	if err := leader.r.Propose(ctx, []byte("grown")); err != nil {
		t.Fatal(err)
	}
	converge(t, leader, f1, f2, n4)
	if err := n4.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	newList := append(slices.Clone(oldList), m4)
	for i := range newList {
		newList[i].ClientAddr = fmt.Sprintf("127.0.0.1:%d", 2180+newList[i].ID)
	}
	n4b, err := newNodeStart(t, 4, newList, n4.store.Reopen(), DefaultConfig())
	if err != nil {
		t.Fatalf("restarting the member added at run time with the new list: %v", err)
	}
	// An original member restarts with its original list: a warning only.
	if err := f2.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f2b, err := newNodeStart(t, f2.id, oldList, f2.store.Reopen(), DefaultConfig())
	if err != nil {
		t.Fatalf("restarting an original member with the original list: %v", err)
	}
	if err := f2b.r.Propose(ctx, []byte("restarted")); err != nil {
		t.Fatal(err)
	}
	converge(t, leader, f1, f2b, n4b)
	// The restarted member's Members has every client address of its list.
	got := memberSet(t, ctx, n4b)
	var want []string
	for _, m := range newList {
		want = append(want, fmt.Sprintf("%d:%s:true:%s", m.ID, m.PeerAddr, m.ClientAddr))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Members on the restarted member 4: %v, want %v", got, want)
	}

	// A member removed at run time cannot come back on its old data.
	if err := f2b.r.RemoveMember(ctx, f1.id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "member to learn its removal", func() bool { return !hasMember(t, ctx, f1, f1.id) })
	if err := f1.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = newNodeStart(t, f1.id, oldList, f1.store.Reopen(), DefaultConfig())
	if err == nil {
		t.Fatalf("a removed member restarted without join")
	}
	for _, s := range []string{
		fmt.Sprintf("member %d is not in the stored raft configuration", f1.id),
		"stored raft configuration: ", "configured members: ",
		fmt.Sprintf("4=%s (voter)", addr4),                  // only in the stored view
		fmt.Sprintf("%d=%s (voter)", f1.id, f1.r.localAddr), // only in the configured view
	} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}

	// A member whose configured peer address is not the stored one.
	if err := n4b.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	moved := slices.Clone(newList)
	other := freeAddrs(t, 1)[0]
	moved[3].PeerAddr = other
	_, err = newNodeStart(t, 4, moved, n4b.store.Reopen(), DefaultConfig())
	if err == nil {
		t.Fatal("a member started at another peer address than the stored one")
	}
	for _, s := range []string{
		fmt.Sprintf("member 4 has peer address %s in the stored raft configuration but %s in the configured members", addr4, other),
		fmt.Sprintf("4=%s (voter)", addr4), fmt.Sprintf("4=%s (voter)", other),
	} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
	// The failed start released the port: the right address still starts.
	if _, err := newNodeStart(t, 4, newList, n4b.store.Reopen(), DefaultConfig()); err != nil {
		t.Fatalf("restart at the stored address after a refused start: %v", err)
	}
}

func TestMemberRequestEncoding(t *testing.T) {
	for _, q := range []memberReq{
		{kind: kindAddMember, member: consensus.Member{ID: 7, PeerAddr: "10.0.0.7:2888", ClientAddr: "10.0.0.7:2181", Voter: true}},
		{kind: kindAddMember, member: consensus.Member{ID: 8, PeerAddr: "[::1]:2888"}},
		{kind: kindRemoveMember, member: consensus.Member{ID: 3}},
		{kind: kindTransferLeadership},
		{kind: kindTransferLeadership, member: consensus.Member{ID: 2}},
	} {
		got, err := decodeMemberReq(q.kind, q.encode(1500*time.Millisecond))
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		want := q
		want.timeout = 1500 * time.Millisecond
		if got != want {
			t.Fatalf("round trip: %+v, want %+v", got, want)
		}
	}
	add := memberReq{kind: kindAddMember, member: consensus.Member{ID: 7, PeerAddr: "10.0.0.7:2888"}}.encode(time.Second)
	for name, c := range map[string]struct {
		kind byte
		b    []byte
	}{
		"short":            {kindRemoveMember, make([]byte, 15)},
		"remove 0":         {kindRemoveMember, make([]byte, 16)},
		"remove trailing":  {kindRemoveMember, append(memberReq{kind: kindRemoveMember, member: consensus.Member{ID: 1}}.encode(time.Second), 0)},
		"add truncated":    {kindAddMember, add[:len(add)-3]},
		"add id 0":         {kindAddMember, memberReq{kind: kindAddMember, member: consensus.Member{PeerAddr: "h:1"}}.encode(time.Second)},
		"add bad address":  {kindAddMember, memberReq{kind: kindAddMember, member: consensus.Member{ID: 1, PeerAddr: "nowhere"}}.encode(time.Second)},
		"add voter byte 2": {kindAddMember, func() []byte { b := slices.Clone(add); b[16] = 2; return b }()},
	} {
		if _, err := decodeMemberReq(c.kind, c.b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestMembershipWire speaks the membership requests by hand: a detailed
// refusal carries the leader's reason, a malformed request closes the
// connection, and a well-formed one is carried out.
func TestMembershipWire(t *testing.T) {
	nodes := startCluster(t, 3, DefaultConfig())
	leader, f1 := nodes[0], nodes[1]
	ctx := ctxTimeout(t, 10*time.Second)

	dial := func(t *testing.T, addr raft.ServerAddress) net.Conn {
		conn, err := net.Dial("tcp", string(addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(append([]byte{muxForward}, appendHello(nil, 9, 0)...)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		return conn
	}
	// readAnswer reads one answer, unwrapping a detailed one.
	readAnswer := func(t *testing.T, conn net.Conn) (uint64, byte, uint64, string) {
		t.Helper()
		var hdr [respLen]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatal(err)
		}
		id, code, index := binary.BigEndian.Uint64(hdr[:]), hdr[8], binary.BigEndian.Uint64(hdr[9:])
		if code != codeDetail {
			return id, code, index, ""
		}
		b := make([]byte, index)
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
		return id, b[0], 0, string(b[1:])
	}

	// To a follower: refused, with a reason.
	conn := dial(t, f1.r.localAddr)
	req := memberReq{kind: kindTransferLeadership, member: consensus.Member{ID: f1.id}}
	if _, err := conn.Write(appendRequest(nil, kindTransferLeadership, 1, req.encode(time.Second))); err != nil {
		t.Fatal(err)
	}
	if id, code, _, msg := readAnswer(t, conn); id != 1 || code != codeRefused || !strings.Contains(msg, "does not lead") {
		t.Fatalf("transfer sent to a follower: id %d code %d %q", id, code, msg)
	}

	// To the leader: a failure with its reason, then a change carried out.
	conn = dial(t, leader.r.localAddr)
	req = memberReq{kind: kindTransferLeadership, member: consensus.Member{ID: 42}}
	if _, err := conn.Write(appendRequest(nil, kindTransferLeadership, 2, req.encode(time.Second))); err != nil {
		t.Fatal(err)
	}
	if id, code, _, msg := readAnswer(t, conn); id != 2 || code != codeFailed || !strings.Contains(msg, "member 42 is not in the configuration") {
		t.Fatalf("transfer to a stranger: id %d code %d %q", id, code, msg)
	}
	addr := freeAddrs(t, 1)[0]
	req = memberReq{kind: kindAddMember, member: consensus.Member{ID: 6, PeerAddr: addr, ClientAddr: "127.0.0.1:2186"}}
	if _, err := conn.Write(appendRequest(nil, kindAddMember, 3, req.encode(time.Second))); err != nil {
		t.Fatal(err)
	}
	id, code, index, msg := readAnswer(t, conn)
	if id != 3 || code != codeOK || index == 0 {
		t.Fatalf("add member: id %d code %d index %d %q", id, code, index, msg)
	}
	if got := memberSet(t, ctx, leader); !slices.Contains(got, fmt.Sprintf("6:%s:false:127.0.0.1:2186", addr)) {
		t.Fatalf("Members on the leader after a hand-made add: %v", got)
	}

	// A malformed membership request closes the connection.
	bad := appendRequest(nil, kindRemoveMember, 4, make([]byte, 16)) // member 0
	if _, err := conn.Write(bad); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 64)); n != 0 || err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("after a malformed request: read %d bytes, %v; want the connection closed", n, err)
	}
	if err := f1.r.RemoveMember(ctx, 6); err != nil {
		t.Fatal(err)
	}
}

package tree

import (
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// DataTree.killSession: the closeSession txn deletes all of the session's
// ephemerals, firing NodeDeleted and NodeChildrenChanged for each.
func TestCloseSessionDeletesEphemerals(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/a", "", znode.Persistent)
	mustCreate(t, tr, cx(2), "/b", "", znode.Persistent)
	s1 := func(z int64) Ctx { return Ctx{Zxid: z, Time: z, Session: 0x11} }
	s2 := func(z int64) Ctx { return Ctx{Zxid: z, Time: z, Session: 0x22} }
	mustCreate(t, tr, s1(3), "/b/z", "", znode.Ephemeral)
	mustCreate(t, tr, s1(4), "/a/e-", "", znode.EphemeralSequential)
	mustCreate(t, tr, s2(5), "/a/other", "", znode.Ephemeral)
	mustCreate(t, tr, s1(6), "/top", "", znode.Ephemeral)
	if got := tr.Ephemerals(0x11); !slices.Equal(got, []string{"/a/e-0000000000", "/b/z", "/top"}) {
		t.Fatalf("Ephemerals = %v", got)
	}
	if _, e, _ := tr.Counts(); e != 4 {
		t.Fatalf("ephemerals count %d", e)
	}
	ev := tr.CloseSession(Ctx{Zxid: 10, Time: 10}, 0x11)
	checkInvariants(t, tr)
	want := []op.WatchEvent{
		{Type: znode.EventNodeDeleted, Path: "/a/e-0000000000", Zxid: 10}, {Type: znode.EventNodeChildrenChanged, Path: "/a", Zxid: 10},
		{Type: znode.EventNodeDeleted, Path: "/b/z", Zxid: 10}, {Type: znode.EventNodeChildrenChanged, Path: "/b", Zxid: 10},
		{Type: znode.EventNodeDeleted, Path: "/top", Zxid: 10}, {Type: znode.EventNodeChildrenChanged, Path: "/", Zxid: 10},
	}
	if !slices.Equal(ev, want) {
		t.Fatalf("events\n got %v\nwant %v", ev, want)
	}
	for _, p := range []string{"/a/e-0000000000", "/b/z", "/top"} {
		if tr.Exists(p) {
			t.Fatalf("%s survived", p)
		}
	}
	if !tr.Exists("/a/other") || tr.Ephemerals(0x11) != nil {
		t.Fatal("wrong session affected")
	}
	if st := mustStat(t, tr, "/a"); st.Pzxid != 10 || st.NumChildren != 1 || st.Cversion != 3 {
		t.Fatalf("/a after close %+v", st)
	}
	if got := tr.EphemeralSessions(); len(got) != 1 || !slices.Equal(got[0x22], []string{"/a/other"}) {
		t.Fatalf("EphemeralSessions %v", got)
	}
	if ev := tr.CloseSession(cx(11), 0x11); ev != nil {
		t.Fatalf("second close fired %v", ev)
	}
	if _, e, _ := tr.Counts(); e != 1 {
		t.Fatalf("ephemerals count %d", e)
	}
}

func TestEphemeralIndexFollowsDeletes(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, Ctx{Zxid: 1, Session: 3}, "/e1", "", znode.Ephemeral)
	mustCreate(t, tr, Ctx{Zxid: 2, Session: 3}, "/e2", "", znode.Ephemeral)
	mustApply(t, tr, cx(3), &op.DeleteRequest{Path: "/e1", Version: -1})
	if got := tr.Ephemerals(3); !slices.Equal(got, []string{"/e2"}) {
		t.Fatalf("%v", got)
	}
	mustApply(t, tr, cx(4), &op.DeleteRequest{Path: "/e2", Version: -1})
	if got := tr.EphemeralSessions(); len(got) != 0 {
		t.Fatalf("%v", got)
	}
}

// FinalRequestProcessor getEphemerals: the caller's session; blank or "/"
// prefix means all, otherwise a plain string prefix.
func TestGetEphemerals(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/app", "", znode.Persistent)
	for i, p := range []string{"/app/x", "/app/y", "/apple", "/b"} {
		mustCreate(t, tr, Ctx{Zxid: int64(2 + i), Session: 5}, p, "", znode.Ephemeral)
	}
	mustCreate(t, tr, Ctx{Zxid: 9, Session: 6}, "/app/z", "", znode.Ephemeral)
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"/app/x", "/app/y", "/apple", "/b"}},
		{"/", []string{"/app/x", "/app/y", "/apple", "/b"}},
		{" / ", []string{"/app/x", "/app/y", "/apple", "/b"}},
		{"/app", []string{"/app/x", "/app/y", "/apple"}},
		{"/app/", []string{"/app/x", "/app/y"}},
		{"/nothing", []string{}},
	} {
		resp, err := tr.Read(Auth{}, 5, &op.GetEphemeralsRequest{PrefixPath: tc.prefix})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.(*op.GetEphemeralsResponse).Paths; !slices.Equal(got, tc.want) {
			t.Errorf("prefix %q: %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

// §8 item 4 / ContainerManager: containers that had a child and are empty;
// TTL nodes without children whose now - mtime > ttl (setData refreshes).
func TestReapCandidates(t *testing.T) {
	tr := New(Options{ExtendedTypes: true})
	ctr := func(z int64, path string) {
		mustApply(t, tr, Ctx{Zxid: z, Time: z * 1000}, &op.CreateRequest{OpCode: op.CreateContainer, Path: path, ACL: open, Mode: znode.Container})
	}
	ttl := func(z int64, path string, ms int64) {
		mustApply(t, tr, Ctx{Zxid: z, Time: z * 1000}, &op.CreateRequest{OpCode: op.CreateTTL, Path: path, ACL: open, Mode: znode.PersistentWithTTL, TTL: ms})
	}
	ctr(1, "/never")  // never had a child: never reaped
	ctr(2, "/used")   // child created then deleted: reaped
	ctr(3, "/busy")   // has a child: not reaped
	ttl(4, "/t1", 10) // mtime 4000
	ttl(5, "/t2", 10) // refreshed below
	ttl(6, "/t3", 10) // has a child
	mustCreate(t, tr, cx(7), "/used/c", "", znode.Persistent)
	mustApply(t, tr, cx(8), &op.DeleteRequest{Path: "/used/c", Version: -1})
	mustCreate(t, tr, cx(9), "/busy/c", "", znode.Persistent)
	mustCreate(t, tr, cx(10), "/t3/c", "", znode.Persistent)
	mustApply(t, tr, Ctx{Zxid: 11, Time: 50_000}, &op.SetDataRequest{Path: "/t2", Version: -1})

	if got := tr.ReapCandidates(4010, 0); !slices.Equal(got, []string{"/used"}) {
		t.Fatalf("at 4010 (t1 not yet expired: 4010-4000 = ttl): %v", got)
	}
	if got := tr.ReapCandidates(4011, 0); !slices.Equal(got, []string{"/t1", "/used"}) {
		t.Fatalf("at 4011: %v", got)
	}
	if got := tr.ReapCandidates(50_005, 0); !slices.Equal(got, []string{"/t1", "/used"}) {
		t.Fatalf("at 50005 (t2 refreshed by setData at 50000): %v", got)
	}
	if got := tr.ReapCandidates(60_000, 0); !slices.Equal(got, []string{"/t1", "/t2", "/used"}) {
		t.Fatalf("at 60000: %v", got)
	}
	if got := tr.ReapCandidates(60_000, 2); !slices.Equal(got, []string{"/t1", "/t2"}) {
		t.Fatalf("limit 2: %v", got)
	}
	for _, p := range tr.ReapCandidates(60_000, 0) {
		mustApply(t, tr, Ctx{Zxid: 20, Time: 60_000}, &op.DeleteContainerRequest{Path: p})
	}
	if got := tr.ReapCandidates(60_000, 0); len(got) != 0 {
		t.Fatalf("after reaping: %v", got)
	}
	// Containers and TTL nodes report ephemeralOwner 0 (§8 item 3).
	for _, p := range []string{"/never", "/busy", "/t3"} {
		if st := mustStat(t, tr, p); st.EphemeralOwner != 0 {
			t.Fatalf("%s ephemeralOwner %x", p, st.EphemeralOwner)
		}
	}
	// Emptying a busy container makes it a candidate.
	mustApply(t, tr, cx(21), &op.DeleteRequest{Path: "/busy/c", Version: -1})
	if got := tr.ReapCandidates(60_000, 0); !slices.Equal(got, []string{"/busy"}) {
		t.Fatalf("after emptying /busy: %v", got)
	}
}

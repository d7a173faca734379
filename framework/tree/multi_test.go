package tree

import (
	"reflect"
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// §8 item 5: a create may target a parent created earlier in the same
// multi; sequential creates get a suffix; results per op; events of all
// ops in op order.
func TestMultiSuccess(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/x", "old", znode.Persistent)
	c := Ctx{Zxid: 5, Time: 500, Session: 9}
	resp, ev := mustApply(t, tr, c, &op.MultiRequest{Ops: []op.Request{
		&op.CreateRequest{OpCode: op.Create, Path: "/p", ACL: open},
		&op.CreateRequest{OpCode: op.Create2, Path: "/p/s-", ACL: open, Mode: znode.EphemeralSequential},
		&op.CreateRequest{OpCode: op.CreateContainer, Path: "/p/c", ACL: open, Mode: znode.Container},
		&op.CheckRequest{Path: "/x", Version: 0},
		&op.SetDataRequest{Path: "/x", Data: []byte("new"), Version: 0},
		&op.CheckRequest{Path: "/x", Version: 1}, // sees the setData above
		&op.DeleteRequest{Path: "/p/c", Version: -1},
	}})
	mr := resp.(*op.MultiResponse)
	if mr.OpCode != op.Multi {
		t.Fatalf("opcode %v", mr.OpCode)
	}
	sStat := mustStat(t, tr, "/p/s-0000000000")
	xStat := mustStat(t, tr, "/x")
	cStat := znode.Stat{Czxid: 5, Mzxid: 5, Pzxid: 5, Ctime: 500, Mtime: 500}
	want := []op.Result{
		{OpCode: op.Create, Path: "/p"},
		{OpCode: op.Create2, Path: "/p/s-0000000000", Stat: sStat},
		{OpCode: op.Create2, Path: "/p/c", Stat: cStat},
		{OpCode: op.Check},
		{OpCode: op.SetData, Stat: xStat},
		{OpCode: op.Check},
		{OpCode: op.Delete},
	}
	if !reflect.DeepEqual(mr.Results, want) {
		t.Fatalf("results\n got %+v\nwant %+v", mr.Results, want)
	}
	if sStat.EphemeralOwner != 9 || xStat.Version != 1 || string(getData(t, tr, "/x")) != "new" {
		t.Fatalf("state after multi: %+v %+v", sStat, xStat)
	}
	// All ops share the multi's zxid.
	if st := mustStat(t, tr, "/p"); st.Czxid != 5 || st.Pzxid != 5 || st.NumChildren != 1 || st.Cversion != 3 {
		t.Fatalf("/p %+v", st)
	}
	ew := []op.WatchEvent{
		{Type: znode.EventNodeCreated, Path: "/p", Zxid: 5}, {Type: znode.EventNodeChildrenChanged, Path: "/", Zxid: 5},
		{Type: znode.EventNodeCreated, Path: "/p/s-0000000000", Zxid: 5}, {Type: znode.EventNodeChildrenChanged, Path: "/p", Zxid: 5},
		{Type: znode.EventNodeCreated, Path: "/p/c", Zxid: 5}, {Type: znode.EventNodeChildrenChanged, Path: "/p", Zxid: 5},
		{Type: znode.EventNodeDataChanged, Path: "/x", Zxid: 5},
		{Type: znode.EventNodeDeleted, Path: "/p/c", Zxid: 5}, {Type: znode.EventNodeChildrenChanged, Path: "/p", Zxid: 5},
	}
	if !slices.Equal(ev, ew) {
		t.Fatalf("events\n got %v\nwant %v", ev, ew)
	}
	if got := tr.Ephemerals(9); !slices.Equal(got, []string{"/p/s-0000000000"}) {
		t.Fatalf("ephemerals %v", got)
	}
}

// §8 item 5: positional results 0 / own code / -2 (RuntimeInconsistency),
// every OpCode = error, nothing applied (version and mzxid unchanged).
func TestMultiFailureIsPositionalAndAtomic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ops     []op.Request
		failing int
		code    zkerr.Code
	}{
		{"bad version in middle", []op.Request{
			&op.CreateRequest{Path: "/new", ACL: open},
			&op.SetDataRequest{Path: "/x", Data: []byte("z"), Version: -1},
			&op.SetDataRequest{Path: "/x", Data: []byte("z"), Version: 0}, // version is 1 now
			&op.DeleteRequest{Path: "/x", Version: -1},
		}, 2, zkerr.BadVersion},
		{"first op fails", []op.Request{
			&op.DeleteRequest{Path: "/missing", Version: -1},
			&op.CreateRequest{Path: "/new", ACL: open},
		}, 0, zkerr.NoNode},
		{"last op fails", []op.Request{
			&op.CreateRequest{Path: "/new", ACL: open},
			&op.CreateRequest{Path: "/new", ACL: open},
		}, 1, zkerr.NodeExists},
		{"check fails", []op.Request{
			&op.SetDataRequest{Path: "/x", Version: -1},
			&op.CheckRequest{Path: "/x", Version: 0},
			&op.CreateRequest{Path: "/new", ACL: open},
		}, 1, zkerr.BadVersion},
		{"child of node deleted earlier", []op.Request{
			&op.DeleteRequest{Path: "/x", Version: -1},
			&op.CreateRequest{Path: "/x/y", ACL: open},
		}, 1, zkerr.NoNode},
		{"setACL not allowed in multi", []op.Request{
			&op.SetACLRequest{Path: "/x", ACL: open, Version: -1},
		}, 0, zkerr.BadArguments},
		{"nested multi", []op.Request{
			&op.CreateRequest{Path: "/new", ACL: open},
			&op.MultiRequest{},
		}, 1, zkerr.BadArguments},
		{"deleteContainer not allowed", []op.Request{
			&op.DeleteContainerRequest{Path: "/x"},
		}, 0, zkerr.BadArguments},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Options{})
			mustCreate(t, tr, cx(1), "/x", "v0", znode.Persistent)
			before := mustStat(t, tr, "/x")
			digest := tr.Digest()
			ver := tr.load()
			resp, ev, err := tr.Apply(cx(2), &op.MultiRequest{Ops: tc.ops})
			if err != nil || ev != nil {
				t.Fatalf("failed multi: err %v events %v", err, ev)
			}
			mr := resp.(*op.MultiResponse)
			if mr.OpCode != op.Multi || len(mr.Results) != len(tc.ops) {
				t.Fatalf("response %+v", mr)
			}
			for i, r := range mr.Results {
				want := op.Result{OpCode: op.Error}
				switch {
				case i == tc.failing:
					want.Err = int32(tc.code)
				case i > tc.failing:
					want.Err = int32(zkerr.RuntimeInconsistency)
				}
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("result %d = %+v, want %+v", i, r, want)
				}
			}
			if tr.load() != ver || tr.Digest() != digest || tr.Exists("/new") {
				t.Fatal("failed multi changed the tree")
			}
			if st := mustStat(t, tr, "/x"); st != before || string(getData(t, tr, "/x")) != "v0" {
				t.Fatalf("/x changed: %+v", st)
			}
			checkInvariants(t, tr)
		})
	}
}

func TestEmptyMultiSucceeds(t *testing.T) {
	tr := New(Options{})
	resp, ev, err := tr.Apply(cx(1), &op.MultiRequest{})
	if err != nil || ev != nil {
		t.Fatalf("err %v ev %v", err, ev)
	}
	if mr := resp.(*op.MultiResponse); mr.OpCode != op.Multi || len(mr.Results) != 0 {
		t.Fatalf("response %+v", mr)
	}
}

// A multi touching many nodes under one parent publishes one version and
// leaves earlier versions intact (in-place edits stay private).
func TestMultiDoesNotLeakIntoOlderVersions(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/p", "", znode.Persistent)
	old := tr.Snapshot()
	oldDigest := old.Digest()
	var ops []op.Request
	for i := 0; i < 200; i++ {
		ops = append(ops, &op.CreateRequest{Path: "/p/n-", ACL: open, Mode: znode.PersistentSequential})
	}
	ops = append(ops, &op.SetDataRequest{Path: "/p", Data: []byte("d"), Version: -1})
	mustApply(t, tr, cx(2), &op.MultiRequest{Ops: ops})
	if st := mustStat(t, tr, "/p"); st.NumChildren != 200 || st.Cversion != 200 {
		t.Fatalf("/p %+v", st)
	}
	if old.v.lookup("/p").nkids != 0 || old.v.lookup("/p/n-0000000000") != nil || old.Digest() != oldDigest {
		t.Fatal("older version changed")
	}
}

package tree

import (
	"reflect"
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

func TestReads(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/a", "data-a", znode.Persistent)
	for _, n := range []string{"z", "b", "m"} {
		mustCreate(t, tr, cx(2), "/a/"+n, "", znode.Persistent)
	}
	mustCreate(t, tr, cx(3), "/a/b/deep", "", znode.Persistent)

	resp, err := tr.Read(Auth{}, 0, &op.ExistsRequest{Path: "/a"})
	if err != nil || resp.(*op.StatResponse).OpCode != op.Exists || resp.(*op.StatResponse).Stat != mustStat(t, tr, "/a") {
		t.Fatalf("exists: %+v %v", resp, err)
	}
	for _, path := range []string{"/nope", "", "a", "/a/", "/a//b", "/a/b/deep/"} {
		if code := readCode(t, tr, Auth{}, &op.ExistsRequest{Path: path}); code != zkerr.NoNode {
			t.Errorf("exists %q: %v", path, code)
		}
		if code := readCode(t, tr, Auth{}, &op.GetDataRequest{Path: path}); code != zkerr.NoNode {
			t.Errorf("getData %q: %v", path, code)
		}
	}
	// FinalRequestProcessor refuses NUL in exists.
	if code := readCode(t, tr, Auth{}, &op.ExistsRequest{Path: "/a\x00"}); code != zkerr.BadArguments {
		t.Errorf("exists with NUL: %v", code)
	}

	resp, err = tr.Read(Auth{}, 0, &op.GetDataRequest{Path: "/a"})
	if gd := resp.(*op.GetDataResponse); err != nil || string(gd.Data) != "data-a" || gd.Stat.NumChildren != 3 {
		t.Fatalf("getData %+v %v", resp, err)
	}

	for _, code := range []op.Code{op.GetChildren, op.GetChildren2} {
		resp, err := tr.Read(Auth{}, 0, &op.GetChildrenRequest{OpCode: code, Path: "/a"})
		gc := resp.(*op.GetChildrenResponse)
		if err != nil || gc.OpCode != code || !slices.Equal(gc.Children, []string{"b", "m", "z"}) || gc.Stat != mustStat(t, tr, "/a") {
			t.Fatalf("getChildren(%v) %+v %v", code, gc, err)
		}
	}
	if got := getChildren(t, tr, "/a/z"); got == nil || len(got) != 0 {
		t.Fatalf("children of a leaf: %#v", got)
	}

	// DataTree.getAllChildrenNumber: "/" is every node but the root.
	for path, want := range map[string]int32{"/": 8, "/a": 4, "/a/b": 1, "/a/z": 0, "/zookeeper": 2} {
		resp, err := tr.Read(Auth{}, 0, &op.GetAllChildrenNumberRequest{Path: path})
		if err != nil || resp.(*op.GetAllChildrenNumberResponse).Total != want {
			t.Errorf("getAllChildrenNumber(%s) = %+v %v, want %d", path, resp, err, want)
		}
	}
	if code := readCode(t, tr, Auth{}, &op.GetAllChildrenNumberRequest{Path: "/x"}); code != zkerr.NoNode {
		t.Errorf("getAllChildrenNumber missing: %v", code)
	}
	if code := readCode(t, tr, Auth{}, &op.SyncRequest{Path: "/"}); code != zkerr.Unimplemented {
		t.Errorf("sync: %v", code)
	}
	if code := readCode(t, tr, Auth{}, nil); code != zkerr.BadArguments {
		t.Errorf("nil: %v", code)
	}
}

func TestMultiRead(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/a", "x", znode.Persistent)
	mustCreate(t, tr, cx(2), "/a/c", "", znode.Persistent)
	mustApply(t, tr, Ctx{Zxid: 3, Auth: asAlice}, &op.CreateRequest{Path: "/secret", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	resp, err := tr.Read(anon, 0, &op.MultiReadRequest{Ops: []op.Request{
		&op.GetDataRequest{Path: "/a"},
		&op.GetChildrenRequest{Path: "/missing"},
		&op.GetChildrenRequest{Path: "/a"},
		&op.GetDataRequest{Path: "/secret"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []op.Result{
		{OpCode: op.GetData, Data: []byte("x"), Stat: mustStat(t, tr, "/a")},
		{OpCode: op.Error, Err: int32(zkerr.NoNode)},
		{OpCode: op.GetChildren, Children: []string{"c"}},
		{OpCode: op.Error, Err: int32(zkerr.NoAuth)},
	}
	mr := resp.(*op.MultiResponse)
	if mr.OpCode != op.MultiRead || !reflect.DeepEqual(mr.Results, want) {
		t.Fatalf("multiRead\n got %+v\nwant %+v", mr, want)
	}
	if code := readCode(t, tr, anon, &op.MultiReadRequest{Ops: []op.Request{&op.ExistsRequest{Path: "/a"}}}); code != zkerr.BadArguments {
		t.Fatalf("exists in multiRead: %v", code)
	}
}

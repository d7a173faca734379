package tree

import (
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

func TestWriteErrors(t *testing.T) {
	setup := func(t *testing.T) *Tree {
		tr := New(Options{})
		mustCreate(t, tr, cx(1), "/a", "x", znode.Persistent)
		mustCreate(t, tr, cx(2), "/a/b", "", znode.Persistent)
		mustApply(t, tr, cx(3), &op.SetDataRequest{Path: "/a", Data: []byte("y"), Version: -1}) // version 1
		return tr
	}
	for _, tc := range []struct {
		name string
		req  op.Request
		want zkerr.Code
	}{
		// Versions: -1 matches anything, otherwise it must be equal.
		{"delete bad version", &op.DeleteRequest{Path: "/a/b", Version: 3}, zkerr.BadVersion},
		{"delete not empty", &op.DeleteRequest{Path: "/a", Version: -1}, zkerr.NotEmpty},
		// PrepRequestProcessor checks the version before the children.
		{"delete not empty bad version", &op.DeleteRequest{Path: "/a", Version: 7}, zkerr.BadVersion},
		{"delete missing", &op.DeleteRequest{Path: "/a/zz", Version: -1}, zkerr.NoNode},
		{"delete missing parent", &op.DeleteRequest{Path: "/zz/y", Version: -1}, zkerr.NoNode},
		{"delete bad path", &op.DeleteRequest{Path: "/a/", Version: -1}, zkerr.BadArguments},
		// DataTree.isSpecialPath: "/", /zookeeper, /zookeeper/quota, /zookeeper/config.
		{"delete root", &op.DeleteRequest{Path: "/", Version: -1}, zkerr.BadArguments},
		{"delete /zookeeper", &op.DeleteRequest{Path: "/zookeeper", Version: -1}, zkerr.BadArguments},
		{"delete /zookeeper/quota", &op.DeleteRequest{Path: "/zookeeper/quota", Version: -1}, zkerr.BadArguments},
		{"delete /zookeeper/config", &op.DeleteRequest{Path: "/zookeeper/config", Version: -1}, zkerr.BadArguments},
		{"setData bad version", &op.SetDataRequest{Path: "/a", Version: 0}, zkerr.BadVersion},
		{"setData missing", &op.SetDataRequest{Path: "/zz", Version: -1}, zkerr.NoNode},
		{"setData bad path", &op.SetDataRequest{Path: "zz", Version: -1}, zkerr.BadArguments},
		{"setACL bad version", &op.SetACLRequest{Path: "/a", ACL: open, Version: 1}, zkerr.BadVersion},
		{"setACL missing", &op.SetACLRequest{Path: "/zz", ACL: open, Version: -1}, zkerr.NoNode},
		// fixupACL runs before the node lookup.
		{"setACL missing and invalid ACL", &op.SetACLRequest{Path: "/zz", Version: -1}, zkerr.InvalidACL},
		{"deleteContainer missing", &op.DeleteContainerRequest{Path: "/zz"}, zkerr.NoNode},
		{"deleteContainer persistent", &op.DeleteContainerRequest{Path: "/a/b"}, zkerr.BadVersion},
		{"deleteContainer not empty", &op.DeleteContainerRequest{Path: "/a"}, zkerr.NotEmpty},
		{"deleteContainer root", &op.DeleteContainerRequest{Path: "/"}, zkerr.BadArguments},
		{"lone check", &op.CheckRequest{Path: "/a", Version: -1}, zkerr.Unimplemented},
		{"read op", &op.GetDataRequest{Path: "/a"}, zkerr.Unimplemented},
		{"nil", nil, zkerr.BadArguments},
		{"typed nil", (*op.CreateRequest)(nil), zkerr.BadArguments},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := setup(t)
			if got := applyCode(t, tr, cx(10), tc.req); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVersionsMatchAnyOrExact(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/a", "", znode.Persistent)
	mustApply(t, tr, cx(2), &op.SetDataRequest{Path: "/a", Data: []byte("1"), Version: 0})
	mustApply(t, tr, cx(3), &op.SetDataRequest{Path: "/a", Data: []byte("2"), Version: -1})
	mustApply(t, tr, cx(4), &op.SetDataRequest{Path: "/a", Data: []byte("3"), Version: 2})
	if st := mustStat(t, tr, "/a"); st.Version != 3 {
		t.Fatalf("version %d", st.Version)
	}
	mustApply(t, tr, cx(5), &op.SetACLRequest{Path: "/a", ACL: open, Version: 0})
	mustApply(t, tr, cx(6), &op.SetACLRequest{Path: "/a", ACL: open, Version: -1})
	if st := mustStat(t, tr, "/a"); st.Aversion != 2 || st.Version != 3 {
		t.Fatalf("aversion %d version %d", st.Aversion, st.Version)
	}
	mustApply(t, tr, cx(7), &op.DeleteRequest{Path: "/a", Version: 3})
	if tr.Exists("/a") {
		t.Fatal("not deleted")
	}
}

// DataTree: create fires NodeCreated + NodeChildrenChanged(parent), delete
// NodeDeleted + NodeChildrenChanged(parent), setData NodeDataChanged,
// setACL nothing. The root's children events name "/".
func TestEventsPerOp(t *testing.T) {
	tr := New(Options{})
	_, ev := mustApply(t, tr, cx(1), create("/a", "", znode.Persistent))
	want := []op.WatchEvent{{Type: znode.EventNodeCreated, Path: "/a", Zxid: 1}, {Type: znode.EventNodeChildrenChanged, Path: "/", Zxid: 1}}
	if !slices.Equal(ev, want) {
		t.Fatalf("create events %v", ev)
	}
	_, ev = mustApply(t, tr, cx(2), &op.SetDataRequest{Path: "/a", Version: -1})
	if want := []op.WatchEvent{{Type: znode.EventNodeDataChanged, Path: "/a", Zxid: 2}}; !slices.Equal(ev, want) {
		t.Fatalf("setData events %v", ev)
	}
	_, ev = mustApply(t, tr, cx(3), &op.SetACLRequest{Path: "/a", ACL: open, Version: -1})
	if len(ev) != 0 {
		t.Fatalf("setACL events %v", ev)
	}
	resp, ev := mustApply(t, tr, cx(4), &op.DeleteRequest{Path: "/a", Version: -1})
	if r, ok := resp.(*op.EmptyResponse); !ok || r.OpCode != op.Delete {
		t.Fatalf("delete response %#v", resp)
	}
	want = []op.WatchEvent{{Type: znode.EventNodeDeleted, Path: "/a", Zxid: 4}, {Type: znode.EventNodeChildrenChanged, Path: "/", Zxid: 4}}
	if !slices.Equal(ev, want) {
		t.Fatalf("delete events %v", ev)
	}
}

// ContainerManager issues deleteContainer with no ACL check; deletion
// fires ordinary NodeDeleted watches (§8 item 4).
func TestDeleteContainer(t *testing.T) {
	tr := New(Options{ExtendedTypes: true})
	locked := []znode.ACL{{Perms: znode.PermRead, Scheme: "world", ID: "anyone"}}
	mustApply(t, tr, cx(1), &op.CreateRequest{Path: "/locked", ACL: locked, Mode: znode.Persistent})
	mustApply(t, tr, Ctx{Zxid: 2, Time: 2000, Auth: Auth{Super: true}}, &op.CreateRequest{OpCode: op.CreateContainer, Path: "/locked/c", ACL: locked, Mode: znode.Container})
	mustApply(t, tr, Ctx{Zxid: 3, Time: 3000, Auth: Auth{Super: true}}, &op.CreateRequest{OpCode: op.CreateTTL, Path: "/locked/t", ACL: locked, Mode: znode.PersistentWithTTL, TTL: 100})
	mustCreate(t, tr, Ctx{Zxid: 4, Session: 5}, "/e", "", znode.Ephemeral)

	if code := applyCode(t, tr, cx(5), &op.DeleteContainerRequest{Path: "/e"}); code != zkerr.BadVersion {
		t.Fatalf("deleteContainer on ephemeral: %v (ZooKeeper: BadVersion)", code)
	}
	resp, ev := mustApply(t, tr, Ctx{Zxid: 6, Time: 6000}, &op.DeleteContainerRequest{Path: "/locked/c"})
	if r, ok := resp.(*op.EmptyResponse); !ok || r.OpCode != op.DeleteContainer {
		t.Fatalf("response %#v", resp)
	}
	want := []op.WatchEvent{{Type: znode.EventNodeDeleted, Path: "/locked/c", Zxid: 6}, {Type: znode.EventNodeChildrenChanged, Path: "/locked", Zxid: 6}}
	if !slices.Equal(ev, want) {
		t.Fatalf("events %v", ev)
	}
	// TTL 100 ms, mtime 3000: not expired at 3100, expired at 3101.
	if code := applyCode(t, tr, Ctx{Zxid: 7, Time: 3100}, &op.DeleteContainerRequest{Path: "/locked/t"}); code != zkerr.BadVersion {
		t.Fatalf("unexpired TTL: %v", code)
	}
	mustApply(t, tr, Ctx{Zxid: 8, Time: 3101}, &op.DeleteContainerRequest{Path: "/locked/t"})
	if tr.Exists("/locked/t") || tr.Exists("/locked/c") {
		t.Fatal("not deleted")
	}
}

// Reconfig's SetDataTxn carries version -1: no ACL check, version -1.
func TestSetSystemData(t *testing.T) {
	tr := New(Options{})
	ev := tr.SetSystemData(Ctx{Zxid: 9, Time: 99}, "/zookeeper/config", []byte("server.1=a:1:2\nversion=9"))
	checkInvariants(t, tr)
	if want := []op.WatchEvent{{Type: znode.EventNodeDataChanged, Path: "/zookeeper/config", Zxid: 9}}; !slices.Equal(ev, want) {
		t.Fatalf("events %v", ev)
	}
	st := mustStat(t, tr, "/zookeeper/config")
	if st.Version != -1 || st.Mzxid != 9 || st.Mtime != 99 || st.DataLength != 24 {
		t.Fatalf("stat %+v", st)
	}
	// A normal client may not write it (READ only).
	if code := applyCode(t, tr, cx(10), &op.SetDataRequest{Path: "/zookeeper/config", Version: -1}); code != zkerr.NoAuth {
		t.Fatalf("client setData on config: %v", code)
	}
	if ev := tr.SetSystemData(cx(11), "/missing", nil); ev != nil {
		t.Fatalf("missing node: %v", ev)
	}
	if tr.Exists("/missing") {
		t.Fatal("SetSystemData created a node")
	}
}

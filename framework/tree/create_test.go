package tree

import (
	"math"
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// DataTree constructor: "/", /zookeeper, /zookeeper/quota and
// /zookeeper/config; children attached without counting as creates;
// config gets READ_ACL_UNSAFE with setACL(..., -1).
func TestNewTreeLikeZooKeeperDataTree(t *testing.T) {
	tr := New(Options{})
	checkInvariants(t, tr)
	if got := getChildren(t, tr, "/"); !slices.Equal(got, []string{"zookeeper"}) {
		t.Fatalf("getChildren(/) = %v", got)
	}
	if got := getChildren(t, tr, "/zookeeper"); !slices.Equal(got, []string{"config", "quota"}) {
		t.Fatalf("getChildren(/zookeeper) = %v", got)
	}
	if st := mustStat(t, tr, "/"); st.Cversion != -1 || st.NumChildren != 1 || st.Czxid != 0 || st.Pzxid != 0 {
		t.Fatalf("stat / = %+v (ZooKeeper shows cversion -1)", st)
	}
	if st := mustStat(t, tr, "/zookeeper"); st.Cversion != -2 || st.NumChildren != 2 {
		t.Fatalf("stat /zookeeper = %+v", st)
	}
	resp, err := tr.Read(Auth{}, 0, &op.GetACLRequest{Path: "/zookeeper/config"})
	if err != nil {
		t.Fatal(err)
	}
	ga := resp.(*op.GetACLResponse)
	if !slices.Equal(ga.ACL, znode.ReadACLUnsafe) || ga.Stat.Aversion != -1 {
		t.Fatalf("/zookeeper/config acl %v aversion %d", ga.ACL, ga.Stat.Aversion)
	}
	if d := getData(t, tr, "/zookeeper/quota"); d == nil || len(d) != 0 {
		t.Fatalf("quota data %v, want empty non-null", d)
	}
	// ZooKeeper's node map holds the root twice: znode_count 5, data size
	// 1+10+16+17.
	if n, e, b := tr.Counts(); n != 5 || e != 0 || b != 44 {
		t.Fatalf("Counts = %d,%d,%d want 5,0,44", n, e, b)
	}
	if New(Options{}).Digest() != tr.Digest() {
		t.Fatal("two fresh trees differ in digest")
	}
}

func TestCreateModes(t *testing.T) {
	const sess = 0x1234
	for _, tc := range []struct {
		name     string
		req      *op.CreateRequest
		ext      bool
		session  int64
		wantCode zkerr.Code
		wantPath string
		owner    int64
		kind     nodeKind
	}{
		{name: "persistent", req: &op.CreateRequest{Path: "/a", Mode: znode.Persistent}, wantPath: "/a"},
		{name: "ephemeral owner is the session", req: &op.CreateRequest{Path: "/a", Mode: znode.Ephemeral}, wantPath: "/a", owner: sess, kind: kindEphemeral},
		{name: "ephemeral without session", req: &op.CreateRequest{Path: "/a", Mode: znode.Ephemeral}, session: -1, wantCode: zkerr.BadArguments},
		{name: "persistent sequential", req: &op.CreateRequest{Path: "/a", Mode: znode.PersistentSequential}, wantPath: "/a0000000003"},
		{name: "ephemeral sequential", req: &op.CreateRequest{Path: "/p/", Mode: znode.EphemeralSequential}, wantPath: "/p/0000000000", owner: sess, kind: kindEphemeral},
		// §8 item 3: containers and TTL nodes show ephemeralOwner 0.
		{name: "container via createContainer", req: &op.CreateRequest{OpCode: op.CreateContainer, Path: "/a", Mode: znode.Container}, wantPath: "/a", kind: kindContainer},
		{name: "container mode with create2", req: &op.CreateRequest{OpCode: op.Create2, Path: "/a", Mode: znode.Container}, wantPath: "/a", kind: kindContainer},
		{name: "ttl", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: 500}, ext: true, wantPath: "/a", kind: kindTTL},
		{name: "ttl sequential", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a-", Mode: znode.PersistentSequentialWithTTL, TTL: 500}, ext: true, wantPath: "/a-0000000003", kind: kindTTL},
		// §8 item 4: without extendedTypesEnabled CreateTTL is UNIMPLEMENTED.
		{name: "ttl disabled", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: 500}, wantCode: zkerr.Unimplemented},
		{name: "ttl mode disabled via create", req: &op.CreateRequest{Path: "/a", Mode: znode.PersistentWithTTL}, wantCode: zkerr.Unimplemented},
		// EphemeralType.validateTTL: only createTTL carries a ttl (-1 otherwise).
		{name: "ttl mode without createTTL", req: &op.CreateRequest{Path: "/a", Mode: znode.PersistentWithTTL}, ext: true, wantCode: zkerr.BadArguments},
		{name: "ttl zero", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: 0}, ext: true, wantCode: zkerr.BadArguments},
		{name: "ttl negative", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: -5}, ext: true, wantCode: zkerr.BadArguments},
		{name: "ttl max", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: znode.MaxTTL}, ext: true, wantPath: "/a", kind: kindTTL},
		{name: "ttl above max", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.PersistentWithTTL, TTL: znode.MaxTTL + 1}, ext: true, wantCode: zkerr.BadArguments},
		{name: "createTTL with persistent mode", req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Mode: znode.Persistent, TTL: 5}, ext: true, wantCode: zkerr.BadArguments},
		// CreateMode.fromFlag throws BadArguments for unknown flags.
		{name: "invalid mode", req: &op.CreateRequest{Path: "/a", Mode: 7}, wantCode: zkerr.BadArguments},
		{name: "negative mode", req: &op.CreateRequest{Path: "/a", Mode: -1}, wantCode: zkerr.BadArguments},
		// PathUtils.validatePath.
		{name: "relative path", req: &op.CreateRequest{Path: "a"}, wantCode: zkerr.BadArguments},
		{name: "empty path", req: &op.CreateRequest{Path: ""}, wantCode: zkerr.BadArguments},
		{name: "trailing slash", req: &op.CreateRequest{Path: "/p/"}, wantCode: zkerr.BadArguments},
		{name: "double slash", req: &op.CreateRequest{Path: "/p//a"}, wantCode: zkerr.BadArguments},
		{name: "dot segment", req: &op.CreateRequest{Path: "/p/."}, wantCode: zkerr.BadArguments},
		{name: "dotdot segment", req: &op.CreateRequest{Path: "/p/../a"}, wantCode: zkerr.BadArguments},
		{name: "control char", req: &op.CreateRequest{Path: "/a\x01"}, wantCode: zkerr.BadArguments},
		{name: "NUL", req: &op.CreateRequest{Path: "/a\x00b"}, wantCode: zkerr.BadArguments},
		{name: "non-BMP (§8 item 2)", req: &op.CreateRequest{Path: "/a\U0001F600"}, wantCode: zkerr.BadArguments},
		{name: "U+F900 allowed", req: &op.CreateRequest{Path: "/a\uF900"}, wantPath: "/a\uF900"},
		{name: "missing parent", req: &op.CreateRequest{Path: "/nope/a"}, wantCode: zkerr.NoNode},
		{name: "exists", req: &op.CreateRequest{Path: "/p"}, wantCode: zkerr.NodeExists},
		{name: "root exists", req: &op.CreateRequest{Path: "/"}, wantCode: zkerr.NodeExists},
		{name: "sequential child of root via /", req: &op.CreateRequest{Path: "/", Mode: znode.PersistentSequential}, wantPath: "/0000000003"},
		{name: "child of ephemeral", req: &op.CreateRequest{Path: "/eph/a"}, wantCode: zkerr.NoChildrenForEphemerals},
		{name: "child of container", req: &op.CreateRequest{Path: "/ctr/a"}, wantPath: "/ctr/a"},
		// ZooKeeper lets clients create under /zookeeper (quota nodes live there).
		{name: "under /zookeeper", req: &op.CreateRequest{Path: "/zookeeper/quota/x"}, wantPath: "/zookeeper/quota/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Options{ExtendedTypes: tc.ext})
			setup := Ctx{Zxid: 1, Time: 1, Session: 99}
			mustCreate(t, tr, setup, "/p", "", znode.Persistent)
			mustCreate(t, tr, Ctx{Zxid: 2, Time: 2, Session: 99}, "/eph", "", znode.Ephemeral)
			mustApply(t, tr, Ctx{Zxid: 3, Time: 3, Session: 99}, &op.CreateRequest{OpCode: op.CreateContainer, Path: "/ctr", ACL: open, Mode: znode.Container})
			req := *tc.req
			req.ACL = open
			req.Data = []byte("d")
			c := Ctx{Zxid: 10, Time: 5000, Session: sess}
			if tc.session == -1 {
				c.Session = 0
			}
			if tc.wantCode != 0 {
				if code := applyCode(t, tr, c, &req); code != tc.wantCode {
					t.Fatalf("code %v, want %v", code, tc.wantCode)
				}
				return
			}
			resp, ev := mustApply(t, tr, c, &req)
			cr := resp.(*op.CreateResponse)
			if cr.Path != tc.wantPath || cr.OpCode != req.Op() {
				t.Fatalf("response %+v, want path %s opcode %v", cr, tc.wantPath, req.Op())
			}
			st := mustStat(t, tr, tc.wantPath)
			if cr.Stat != st {
				t.Fatalf("response stat %+v != stat %+v", cr.Stat, st)
			}
			if st.EphemeralOwner != tc.owner {
				t.Fatalf("ephemeralOwner %x, want %x", st.EphemeralOwner, tc.owner)
			}
			if k := tr.load().lookup(tc.wantPath).kind(); k != tc.kind {
				t.Fatalf("kind %d, want %d", k, tc.kind)
			}
			want := []op.WatchEvent{
				{Type: znode.EventNodeCreated, Path: tc.wantPath, Zxid: 10},
				{Type: znode.EventNodeChildrenChanged, Path: znode.Parent(tc.wantPath), Zxid: 10},
			}
			if !slices.Equal(ev, want) {
				t.Fatalf("events %v, want %v", ev, want)
			}
		})
	}
}

// §8 item 1: the suffix counts child creates ever made (not deletes, and
// non-sequential creates count); cversion is reported as 2*creates -
// numChildren.
func TestSequentialNumberingAfterDeletesAndPlainCreates(t *testing.T) {
	tr := New(Options{})
	z := int64(1)
	next := func() Ctx { z++; return cx(z) }
	mustCreate(t, tr, next(), "/q", "", znode.Persistent)
	var made []string
	for _, mode := range []znode.CreateMode{znode.PersistentSequential, znode.Persistent, znode.PersistentSequential, znode.PersistentSequential} {
		path := "/q/n-"
		if mode == znode.Persistent {
			path = "/q/plain"
		}
		made = append(made, mustCreate(t, tr, next(), path, "", mode))
	}
	if want := []string{"/q/n-0000000000", "/q/plain", "/q/n-0000000002", "/q/n-0000000003"}; !slices.Equal(made, want) {
		t.Fatalf("created %v, want %v", made, want)
	}
	mustApply(t, tr, next(), &op.DeleteRequest{Path: made[0], Version: -1})
	mustApply(t, tr, next(), &op.DeleteRequest{Path: made[2], Version: -1})
	// 4 creates, 2 deletes: the reference example.
	if st := mustStat(t, tr, "/q"); st.Cversion != 6 || st.NumChildren != 2 {
		t.Fatalf("cversion %d numChildren %d, want 6 and 2", st.Cversion, st.NumChildren)
	}
	if got := mustCreate(t, tr, next(), "/q/n-", "", znode.PersistentSequential); got != "/q/n-0000000004" {
		t.Fatalf("next sequential %s, want /q/n-0000000004", got)
	}
	if st := mustStat(t, tr, "/q"); st.Cversion != 7 {
		t.Fatalf("cversion %d, want 7", st.Cversion)
	}
}

// zookeeperProgrammers.md: the counter is a signed int and overflows to
// -2147483648 after 2147483647.
func TestSequentialCounterWrapsLikeJavaInt(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/q", "", znode.Persistent)
	x := tr.begin(cx(2))
	x.update("/q", func(n *node) *node {
		x.v.digest -= metaHash("/q", n)
		m := x.own(n)
		m.cversion = math.MaxInt32
		x.v.digest += metaHash("/q", m)
		return m
	})
	x.commit()
	if got := mustCreate(t, tr, cx(3), "/q/s", "", znode.PersistentSequential); got != "/q/s2147483647" {
		t.Fatalf("got %s", got)
	}
	// Reported cversion uses Java int arithmetic: 2*MinInt32 - 1 = -1.
	if st := mustStat(t, tr, "/q"); st.Cversion != -1 {
		t.Fatalf("cversion %d, want -1", st.Cversion)
	}
	if got := mustCreate(t, tr, cx(4), "/q/s", "", znode.PersistentSequential); got != "/q/s-2147483648" {
		t.Fatalf("got %s", got)
	}
	// 2*(MinInt32+1) - 2 = 0.
	if st := mustStat(t, tr, "/q"); st.Cversion != 0 {
		t.Fatalf("cversion %d, want 0", st.Cversion)
	}
	if got := mustCreate(t, tr, cx(5), "/q/s", "", znode.PersistentSequential); got != "/q/s-2147483647" {
		t.Fatalf("got %s", got)
	}
}

// §8 item 11 and DataTree.createNode/deleteNode.
func TestStatBookkeeping(t *testing.T) {
	tr := New(Options{})
	resp, _ := mustApply(t, tr, Ctx{Zxid: 5, Time: 777}, create("/a", "hello", znode.Persistent))
	st := resp.(*op.CreateResponse).Stat
	want := znode.Stat{Czxid: 5, Mzxid: 5, Pzxid: 5, Ctime: 777, Mtime: 777, DataLength: 5}
	if st != want {
		t.Fatalf("new node stat %+v, want %+v", st, want)
	}
	if st := mustStat(t, tr, "/"); st.Pzxid != 5 || st.Cversion != 0 || st.Mzxid != 0 || st.NumChildren != 2 {
		t.Fatalf("root after create %+v", st)
	}

	// Child create: parent pzxid = child czxid, cversion +1, mzxid/mtime/version untouched.
	mustApply(t, tr, Ctx{Zxid: 7, Time: 900}, create("/a/b", "", znode.Persistent))
	if st := mustStat(t, tr, "/a"); st.Pzxid != 7 || st.Cversion != 1 || st.Mzxid != 5 || st.Mtime != 777 || st.Version != 0 || st.NumChildren != 1 {
		t.Fatalf("parent after child create %+v", st)
	}

	// setData: version+1, mzxid, mtime, dataLength; czxid/ctime unchanged.
	resp, _ = mustApply(t, tr, Ctx{Zxid: 8, Time: 1000}, &op.SetDataRequest{Path: "/a", Data: []byte("xy"), Version: 0})
	sd := resp.(*op.StatResponse)
	if sd.OpCode != op.SetData || sd.Stat.Version != 1 || sd.Stat.Mzxid != 8 || sd.Stat.Mtime != 1000 ||
		sd.Stat.Czxid != 5 || sd.Stat.Ctime != 777 || sd.Stat.DataLength != 2 || sd.Stat.Pzxid != 7 {
		t.Fatalf("setData stat %+v", sd)
	}
	if string(getData(t, tr, "/a")) != "xy" {
		t.Fatal("data not set")
	}

	// setACL bumps only aversion.
	resp, ev := mustApply(t, tr, Ctx{Zxid: 9, Time: 2000}, &op.SetACLRequest{Path: "/a", ACL: []znode.ACL{{Perms: znode.PermRead | znode.PermDelete, Scheme: "world", ID: "anyone"}}, Version: 0})
	sa := resp.(*op.StatResponse)
	if sa.OpCode != op.SetACL || sa.Stat.Aversion != 1 || sa.Stat.Version != 1 || sa.Stat.Mzxid != 8 || sa.Stat.Mtime != 1000 {
		t.Fatalf("setACL stat %+v", sa)
	}
	if len(ev) != 0 {
		t.Fatalf("setACL fired %v", ev)
	}

	// Child delete: pzxid moves to the delete's zxid, cversion counts it.
	mustApply(t, tr, Ctx{Zxid: 12, Time: 3000}, &op.DeleteRequest{Path: "/a/b", Version: -1})
	if st := mustStat(t, tr, "/a"); st.Pzxid != 12 || st.Cversion != 2 || st.NumChildren != 0 || st.Mzxid != 8 {
		t.Fatalf("parent after child delete %+v", st)
	}
}

// DataTree.deleteNode only moves pzxid forward ("if zxid > pzxid").
func TestDeleteDoesNotMovePzxidBack(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/p", "", znode.Persistent)
	mustCreate(t, tr, cx(10), "/p/a", "", znode.Persistent)
	mustCreate(t, tr, cx(20), "/p/b", "", znode.Persistent)
	mustApply(t, tr, cx(15), &op.DeleteRequest{Path: "/p/a", Version: -1})
	if st := mustStat(t, tr, "/p"); st.Pzxid != 20 {
		t.Fatalf("pzxid %d, want 20", st.Pzxid)
	}
}

func TestNullAndEmptyDataKept(t *testing.T) {
	tr := New(Options{})
	mustApply(t, tr, cx(1), &op.CreateRequest{Path: "/nil", ACL: open})
	mustApply(t, tr, cx(2), &op.CreateRequest{Path: "/empty", Data: []byte{}, ACL: open})
	if d := getData(t, tr, "/nil"); d != nil {
		t.Fatalf("null data came back as %v", d)
	}
	if d := getData(t, tr, "/empty"); d == nil || len(d) != 0 {
		t.Fatalf("empty data came back as %v", d)
	}
	if !tr.load().lookup("/nil").nilData() || tr.load().lookup("/empty").nilData() {
		t.Fatal("null and empty data not distinguished")
	}
}

func TestApplyDoesNotKeepRequestData(t *testing.T) {
	tr := New(Options{})
	buf := []byte("abc")
	mustApply(t, tr, cx(1), &op.CreateRequest{Path: "/a", Data: buf, ACL: open})
	buf[0] = 'X'
	if string(getData(t, tr, "/a")) != "abc" {
		t.Fatal("tree aliases the request's data")
	}
}

func TestCountsTrackCreatesAndDeletes(t *testing.T) {
	tr := New(Options{})
	n0, _, b0 := tr.Counts()
	mustCreate(t, tr, Ctx{Zxid: 1, Session: 7}, "/abc", "12345", znode.Ephemeral)
	if n, e, b := tr.Counts(); n != n0+1 || e != 1 || b != b0+4+5 {
		t.Fatalf("Counts %d,%d,%d", n, e, b)
	}
	mustApply(t, tr, cx(2), &op.SetDataRequest{Path: "/abc", Data: []byte("1"), Version: -1})
	if _, _, b := tr.Counts(); b != b0+4+1 {
		t.Fatalf("dataBytes after setData %d", b)
	}
	mustApply(t, tr, cx(3), &op.DeleteRequest{Path: "/abc", Version: -1})
	if n, e, b := tr.Counts(); n != n0 || e != 0 || b != b0 {
		t.Fatalf("Counts after delete %d,%d,%d", n, e, b)
	}
}

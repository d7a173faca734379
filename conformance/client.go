package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ClientOptions describe the target of the client-level suite.
type ClientOptions struct {
	// Servers are host:port client addresses.
	Servers []string
	// ReapWithin bounds how long an emptied container or an expired TTL
	// node may take to disappear (the target's reaper interval plus slack).
	// Zero skips the reaping checks by name.
	ReapWithin time.Duration
	// SuperAuth is "user:password" of a configured super user, if any.
	SuperAuth string
}

var rootSeq atomic.Int64

// Connect opens a go-zookeeper session to the target and waits until it
// is connected.
func Connect(t testing.TB, servers []string) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("connect %v: %v", servers, err)
	}
	deadline := time.After(10 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			c.Close()
			t.Fatalf("connect %v: no session after 10s (state %v)", servers, c.State())
		}
	}
	t.Cleanup(c.Close)
	return c
}

// RunClient runs ZooKeeper's client-visible semantics against a target,
// one subtest per behaviour, through the real go-zookeeper client. Each
// subtest works under its own root so runs never collide. The same suite
// passes against Apache ZooKeeper 3.8; a failure against Corral is a
// difference from ZooKeeper.
func RunClient(t *testing.T, o ClientOptions) {
	cases := []struct {
		name string
		fn   func(t *testing.T, o ClientOptions, root string)
	}{
		{"CRUDAndVersions", checkCRUD},
		{"StatBookkeeping", checkStat},
		{"SequentialNames", checkSequential},
		{"Ephemerals", checkEphemerals},
		{"MultiAtomic", checkMulti},
		{"DataWatchOneShot", checkDataWatch},
		{"ChildAndExistsWatches", checkChildWatches},
		{"WatchBeforeData", checkWatchBeforeData},
		{"DigestACL", checkACL},
		{"BadPaths", checkBadPaths},
		{"Sync", checkSync},
		{"LargeData", checkLargeData},
		{"Containers", checkContainers},
		{"TTLNodes", checkTTL},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			root := fmt.Sprintf("/conform-%d-%d", time.Now().UnixNano(), rootSeq.Add(1))
			admin := Connect(t, o.Servers)
			if _, err := admin.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create root %s: %v", root, err)
			}
			t.Cleanup(func() {
				// Other sessions wrote under root, maybe through other members.
				admin.Sync(root)
				deleteAll(admin, root)
			})
			c.fn(t, o, root)
		})
	}
}

func deleteAll(c *zk.Conn, path string) {
	kids, _, err := c.Children(path)
	if err == nil {
		for _, k := range kids {
			deleteAll(c, path+"/"+k)
		}
	}
	c.Delete(path, -1)
}

// check turns (value, error) results into values, failing the test on error.
type check struct{ t *testing.T }

func (h check) str(s string, err error) string {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h check) stat(st *zk.Stat, err error) *zk.Stat {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func checkCRUD(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	p := root + "/a"
	if got := h.str(c.Create(p, []byte("one"), 0, zk.WorldACL(zk.PermAll))); got != p {
		t.Fatalf("create returned %q", got)
	}
	_, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	wantErr(t, "create existing", err, zk.ErrNodeExists)
	_, err = c.Create(root+"/missing/child", nil, 0, zk.WorldACL(zk.PermAll))
	wantErr(t, "create under missing parent", err, zk.ErrNoNode)

	data, st, err := c.Get(p)
	if err != nil || string(data) != "one" || st.Version != 0 || st.DataLength != 3 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	st2 := h.stat(c.Set(p, []byte("two"), 0))
	if st2.Version != 1 || st2.Mzxid <= st.Mzxid || st2.Czxid != st.Czxid {
		t.Fatalf("set stat %+v after %+v", st2, st)
	}
	_, err = c.Set(p, []byte("x"), 0)
	wantErr(t, "set with stale version", err, zk.ErrBadVersion)
	h.stat(c.Set(p, []byte("three"), -1))

	h.str(c.Create(p+"/kid", nil, 0, zk.WorldACL(zk.PermAll)))
	wantErr(t, "delete non-empty", c.Delete(p, -1), zk.ErrNotEmpty)
	wantErr(t, "delete with stale version", c.Delete(p+"/kid", 5), zk.ErrBadVersion)
	if err := c.Delete(p+"/kid", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	ok, _, err := c.Exists(p)
	if err != nil || ok {
		t.Fatalf("exists after delete: %v %v", ok, err)
	}
	_, _, err = c.Get(p)
	wantErr(t, "get deleted", err, zk.ErrNoNode)
	wantErr(t, "delete missing", c.Delete(p, -1), zk.ErrNoNode)
}

func checkStat(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	p := root + "/s"
	h.str(c.Create(p, []byte("abc"), 0, zk.WorldACL(zk.PermAll)))
	_, st, _ := c.Get(p)
	if st.Czxid != st.Mzxid || st.Czxid != st.Pzxid || st.Ctime != st.Mtime || st.Ctime == 0 {
		t.Fatalf("new node stat %+v: want czxid=mzxid=pzxid and ctime=mtime", st)
	}
	h.str(c.Create(p+"/k", nil, 0, zk.WorldACL(zk.PermAll)))
	_, st2, _ := c.Get(p)
	// A child create moves pzxid and cversion, not mzxid or version.
	if st2.Mzxid != st.Mzxid || st2.Version != 0 || st2.Pzxid <= st.Pzxid || st2.Cversion != 1 || st2.NumChildren != 1 {
		t.Fatalf("after child create %+v (before %+v)", st2, st)
	}
	h.stat(c.SetACL(p, zk.WorldACL(zk.PermAll), -1))
	_, st3, _ := c.Get(p)
	if st3.Aversion != 1 || st3.Version != 0 || st3.Mzxid != st.Mzxid {
		t.Fatalf("after setACL %+v: only aversion moves", st3)
	}
	if err := c.Delete(p+"/k", -1); err != nil {
		t.Fatal(err)
	}
	_, st4, _ := c.Get(p)
	if st4.Pzxid <= st3.Pzxid || st4.NumChildren != 0 || st4.Mzxid != st.Mzxid {
		t.Fatalf("after child delete %+v", st4)
	}
}

func checkSequential(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	q := root + "/q"
	h.str(c.Create(q, nil, 0, zk.WorldACL(zk.PermAll)))
	var names []string
	for i := 0; i < 3; i++ {
		names = append(names, h.str(c.Create(q+"/n-", nil, zk.FlagSequence, zk.WorldACL(zk.PermAll))))
	}
	for i, n := range names {
		if want := fmt.Sprintf("%s/n-%010d", q, i); n != want {
			t.Fatalf("sequential #%d = %q, want %q", i, n, want)
		}
	}
	// Deletes do not reuse numbers; a plain create advances the counter.
	if err := c.Delete(names[2], -1); err != nil {
		t.Fatal(err)
	}
	h.str(c.Create(q+"/plain", nil, 0, zk.WorldACL(zk.PermAll)))
	if n := h.str(c.Create(q+"/n-", nil, zk.FlagSequence, zk.WorldACL(zk.PermAll))); n != q+"/n-0000000004" {
		t.Fatalf("after a delete and a plain create: %q, want suffix 0000000004", n)
	}
	if n := h.str(c.Create(q+"/", nil, zk.FlagSequence, zk.WorldACL(zk.PermAll))); n != q+"/0000000005" {
		t.Fatalf("sequential with trailing slash: %q", n)
	}
}

func checkEphemerals(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	owner := Connect(t, o.Servers)
	other := Connect(t, o.Servers)
	p := root + "/e"
	h.str(owner.Create(p, []byte("x"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)))
	syncFor(t, other, p)
	_, st, err := other.Get(p)
	if err != nil || st.EphemeralOwner != owner.SessionID() {
		t.Fatalf("ephemeral seen by another session: %+v %v (owner 0x%x)", st, err, owner.SessionID())
	}
	_, err = owner.Create(p+"/child", nil, 0, zk.WorldACL(zk.PermAll))
	wantErr(t, "child of ephemeral", err, zk.ErrNoChildrenForEphemerals)
	seq := h.str(owner.Create(root+"/es-", nil, zk.FlagEphemeralSequential, zk.WorldACL(zk.PermAll)))

	ok, _, ch, err := other.ExistsW(p)
	if err != nil || !ok {
		t.Fatalf("existsW: %v %v", ok, err)
	}
	owner.Close()
	select {
	case ev := <-ch:
		if ev.Type != zk.EventNodeDeleted || ev.Path != p {
			t.Fatalf("event %+v, want NodeDeleted %s", ev, p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no NodeDeleted for an ephemeral after its session closed")
	}
	for _, path := range []string{p, seq} {
		if ok, _, _ := other.Exists(path); ok {
			t.Fatalf("%s survived its session", path)
		}
	}
}

func checkMulti(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	a := root + "/a"
	h.str(c.Create(a, []byte("v0"), 0, zk.WorldACL(zk.PermAll)))
	_, before, _ := c.Get(a)

	// A failing multi applies nothing and reports per-op results.
	res, err := c.Multi(
		&zk.CreateRequest{Path: root + "/new", Acl: zk.WorldACL(zk.PermAll)},
		&zk.SetDataRequest{Path: a, Data: []byte("v1"), Version: -1},
		&zk.CheckVersionRequest{Path: a, Version: 7},
		&zk.DeleteRequest{Path: a, Version: -1},
	)
	if !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("multi error %v, want the first failure (BadVersion)", err)
	}
	failed := err != nil
	for _, r := range res {
		if r.Error != nil {
			failed = true
		}
	}
	if !failed {
		t.Fatal("multi with a failing check reported success")
	}
	if len(res) == 4 {
		// go-zookeeper has no name for RUNTIMEINCONSISTENCY (-2).
		if res[0].Error != nil || !errors.Is(res[2].Error, zk.ErrBadVersion) || res[3].Error == nil || !strings.Contains(res[3].Error.Error(), "-2") {
			t.Fatalf("per-op results %+v: want BadVersion at the check and RuntimeInconsistency after it", res)
		}
	}
	if ok, _, _ := c.Exists(root + "/new"); ok {
		t.Fatal("failed multi created a node")
	}
	data, after, _ := c.Get(a)
	if string(data) != "v0" || after.Mzxid != before.Mzxid {
		t.Fatalf("failed multi changed %s: %q %+v", a, data, after)
	}

	// A successful multi can create a parent and its child, and sees its
	// own earlier ops.
	res, err = c.Multi(
		&zk.CreateRequest{Path: root + "/p", Acl: zk.WorldACL(zk.PermAll)},
		&zk.CreateRequest{Path: root + "/p/s-", Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagSequence},
		&zk.SetDataRequest{Path: a, Data: []byte("v2"), Version: 0},
		&zk.CheckVersionRequest{Path: a, Version: 1},
	)
	if err != nil || len(res) != 4 {
		t.Fatalf("multi: %v %+v", err, res)
	}
	if res[1].String != root+"/p/s-0000000000" {
		t.Fatalf("sequential create inside multi returned %q", res[1].String)
	}
	_, pst, _ := c.Get(root + "/p")
	_, kst, _ := c.Get(res[1].String)
	_, ast, _ := c.Get(a)
	// One transaction, one zxid.
	if pst.Czxid != kst.Czxid || pst.Czxid != ast.Mzxid {
		t.Fatalf("multi ops got different zxids: %d %d %d", pst.Czxid, kst.Czxid, ast.Mzxid)
	}
}

// syncFor makes reader's server catch up with a write another session
// made. On an ensemble the two sessions may sit on different members, and
// ZooKeeper only promises a session its own writes; sync is how a client
// asks for another's.
func syncFor(t *testing.T, reader *zk.Conn, path string) {
	t.Helper()
	if _, err := reader.Sync(path); err != nil {
		t.Fatalf("sync %s: %v", path, err)
	}
}

func waitEvent(t *testing.T, ch <-chan zk.Event, what string) zk.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event within 10s", what)
	}
	return zk.Event{}
}

func noEvent(t *testing.T, ch <-chan zk.Event, what string) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("%s: unexpected event %+v", what, ev)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func checkDataWatch(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	w := Connect(t, o.Servers)
	c := Connect(t, o.Servers)
	p := root + "/d"
	h.str(c.Create(p, []byte("a"), 0, zk.WorldACL(zk.PermAll)))
	syncFor(t, w, p)
	_, _, ch, err := w.GetW(p)
	if err != nil {
		t.Fatal(err)
	}
	// A set of identical data still fires (ZooKeeper fires on every setData).
	h.stat(c.Set(p, []byte("a"), -1))
	ev := waitEvent(t, ch, "data watch")
	if ev.Type != zk.EventNodeDataChanged || ev.Path != p {
		t.Fatalf("event %+v", ev)
	}
	h.stat(c.Set(p, []byte("b"), -1))
	noEvent(t, ch, "one-shot watch after it fired")

	// Without the sync a member behind the second set would fire the new
	// watch for it, correctly, instead of for the delete.
	syncFor(t, w, p)
	_, _, ch, err = w.GetW(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, ch, "data watch on delete"); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("event %+v, want NodeDeleted", ev)
	}
}

func checkChildWatches(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	w := Connect(t, o.Servers)
	c := Connect(t, o.Servers)
	// exists on a missing node leaves a watch that fires NodeCreated.
	p := root + "/later"
	ok, _, ech, err := w.ExistsW(p)
	if err != nil || ok {
		t.Fatalf("existsW on missing node: %v %v", ok, err)
	}
	_, _, cch, err := w.ChildrenW(root)
	if err != nil {
		t.Fatal(err)
	}
	h.str(c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)))
	if ev := waitEvent(t, ech, "exists watch"); ev.Type != zk.EventNodeCreated || ev.Path != p {
		t.Fatalf("event %+v, want NodeCreated %s", ev, p)
	}
	if ev := waitEvent(t, cch, "child watch"); ev.Type != zk.EventNodeChildrenChanged || ev.Path != root {
		t.Fatalf("event %+v, want NodeChildrenChanged %s", ev, root)
	}
	// A child watch on a node fires NodeDeleted when the node itself goes.
	_, _, cch, err = w.ChildrenW(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, cch, "child watch on deleted node"); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("event %+v, want NodeDeleted", ev)
	}
	kids, _, err := w.Children(root)
	if err != nil || len(kids) != 0 {
		t.Fatalf("children after delete: %v %v", kids, err)
	}
}

// checkWatchBeforeData: a client that reads the new value has already
// received the event for it (ZooKeeper's ordering guarantee).
func checkWatchBeforeData(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	w := Connect(t, o.Servers)
	c := Connect(t, o.Servers)
	p := root + "/o"
	h.str(c.Create(p, []byte("0"), 0, zk.WorldACL(zk.PermAll)))
	syncFor(t, w, p)
	for i := 1; i <= 20; i++ {
		_, _, ch, err := w.GetW(p)
		if err != nil {
			t.Fatal(err)
		}
		h.stat(c.Set(p, []byte(fmt.Sprint(i)), -1))
		for {
			data, _, err := w.Get(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) == fmt.Sprint(i) {
				select {
				case <-ch:
				default:
					t.Fatalf("round %d: read the new value before its watch event", i)
				}
				break
			}
		}
	}
}

func checkACL(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	owner := Connect(t, o.Servers)
	if err := owner.AddAuth("digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	p := root + "/private"
	h.str(owner.Create(p, []byte("x"), 0, zk.DigestACL(zk.PermAll, "alice", "secret")))
	stranger := Connect(t, o.Servers)
	_, _, err := stranger.Get(p)
	wantErr(t, "read without auth", err, zk.ErrNoAuth)
	_, err = stranger.Set(p, []byte("y"), -1)
	wantErr(t, "write without auth", err, zk.ErrNoAuth)
	// exists ignores ACLs.
	if ok, _, err := stranger.Exists(p); err != nil || !ok {
		t.Fatalf("exists without auth: %v %v", ok, err)
	}
	// Delete is checked on the parent, which is open.
	h.str(owner.Create(p+"2", nil, 0, zk.DigestACL(zk.PermAll, "alice", "secret")))
	if err := stranger.Delete(p+"2", -1); err != nil {
		t.Fatalf("delete of a protected leaf under an open parent: %v", err)
	}
	// A wrong password authenticates as nobody useful.
	if err := stranger.AddAuth("digest", []byte("alice:wrong")); err != nil {
		t.Fatal(err)
	}
	_, _, err = stranger.Get(p)
	wantErr(t, "read with wrong password", err, zk.ErrNoAuth)
	friend := Connect(t, o.Servers)
	if err := friend.AddAuth("digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := friend.Get(p); err != nil || string(data) != "x" {
		t.Fatalf("read with the right password: %q %v", data, err)
	}
	acl, _, err := friend.GetACL(p)
	if err != nil || len(acl) != 1 || acl[0].Scheme != "digest" || !strings.HasPrefix(acl[0].ID, "alice:") {
		t.Fatalf("getACL: %+v %v", acl, err)
	}
	// auth: expands to the caller's identities; with none it is invalid.
	_, err = stranger.Create(root+"/a1", nil, 0, zk.AuthACL(zk.PermAll))
	if err != nil {
		t.Fatalf("auth ACL with a digest identity: %v", err)
	}
	anon := Connect(t, o.Servers)
	_, err = anon.Create(root+"/a2", nil, 0, zk.AuthACL(zk.PermAll))
	wantErr(t, "auth ACL with no identity", err, zk.ErrInvalidACL)
	// setACL without ADMIN is NoAuth even with a wrong version.
	_, err = stranger.SetACL(p, zk.WorldACL(zk.PermAll), 99)
	wantErr(t, "setACL without admin", err, zk.ErrNoAuth)
}

func checkBadPaths(t *testing.T, o ClientOptions, root string) {
	c := Connect(t, o.Servers)
	// go-zookeeper validates most paths itself; these reach the server.
	for _, p := range []string{root + "/a\u0001b", root + "/\ufff5"} {
		_, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		if err == nil {
			t.Fatalf("create %q succeeded", p)
		}
	}
	if err := c.Delete("/", -1); err == nil {
		t.Fatal("deleting / succeeded")
	}
}

func checkSync(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	h.str(c.Create(root+"/s", []byte("v"), 0, zk.WorldACL(zk.PermAll)))
	if p, err := c.Sync(root + "/s"); err != nil || p != root+"/s" {
		t.Fatalf("sync: %q %v", p, err)
	}
	if data, _, err := c.Get(root + "/s"); err != nil || string(data) != "v" {
		t.Fatalf("read after sync: %q %v", data, err)
	}
}

func checkLargeData(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	c := Connect(t, o.Servers)
	big := bytes.Repeat([]byte("z"), 1000*1000)
	h.str(c.Create(root+"/big", big, 0, zk.WorldACL(zk.PermAll)))
	data, st, err := c.Get(root + "/big")
	if err != nil || !bytes.Equal(data, big) || st.DataLength != int32(len(big)) {
		t.Fatalf("get 1 MB node: len %d %v", len(data), err)
	}
}

func checkContainers(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	if o.ReapWithin == 0 {
		t.Skip("ReapWithin not set: the target's container reaper interval is unknown")
	}
	c := Connect(t, o.Servers)
	never := root + "/never"
	used := root + "/used"
	h.str(c.CreateContainer(never, nil, zk.FlagContainer, zk.WorldACL(zk.PermAll)))
	h.str(c.CreateContainer(used, nil, zk.FlagContainer, zk.WorldACL(zk.PermAll)))
	h.str(c.Create(used+"/k", nil, 0, zk.WorldACL(zk.PermAll)))
	if err := c.Delete(used+"/k", -1); err != nil {
		t.Fatal(err)
	}
	ok, _, ch, err := c.ExistsW(used)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case ev := <-ch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("event %+v", ev)
		}
		t.Logf("exists=%v event %+v after %s", ok, ev, time.Since(start))
	case <-time.After(o.ReapWithin):
		t.Fatalf("emptied container not reaped within %s", o.ReapWithin)
	}
	// A container that never had a child stays.
	if ok, _, _ := c.Exists(never); !ok {
		t.Fatal("a container that never had children was reaped")
	}
}

func checkTTL(t *testing.T, o ClientOptions, root string) {
	h := check{t}
	if o.ReapWithin == 0 {
		t.Skip("ReapWithin not set: the target's TTL reaper interval is unknown")
	}
	c := Connect(t, o.Servers)
	p := root + "/ttl"
	h.str(c.CreateTTL(p, nil, zk.FlagTTL, zk.WorldACL(zk.PermAll), 500*time.Millisecond))
	_, st, _ := c.Get(p)
	if st.EphemeralOwner != 0 {
		t.Fatalf("TTL node ephemeralOwner 0x%x, ZooKeeper reports 0", st.EphemeralOwner)
	}
	deadline := time.Now().Add(o.ReapWithin + time.Second)
	for {
		ok, _, _ := c.Exists(p)
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TTL node still there after %s", o.ReapWithin+time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	kids, _, _ := c.Children(root)
	sort.Strings(kids)
	if len(kids) != 0 {
		t.Fatalf("left over: %v", kids)
	}
}

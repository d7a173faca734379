package tree

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// sample builds a tree using every kind of node and state the snapshot
// must carry.
func sample(t *testing.T) *Tree {
	tr := New(Options{ExtendedTypes: true})
	mustCreate(t, tr, cx(1), "/app", "config", znode.Persistent)
	mustApply(t, tr, Ctx{Zxid: 2, Time: 2000, Auth: asAlice}, &op.CreateRequest{Path: "/app/private", ACL: znode.CreatorAllACL, Data: []byte("s")})
	mustApply(t, tr, cx(3), &op.CreateRequest{Path: "/app/nil", ACL: []znode.ACL{acl(3, "ip", "10.0.0.0/8"), acl(1, "world", "anyone")}})
	for i := 0; i < 5; i++ {
		mustCreate(t, tr, cx(int64(4+i)), "/app/q-", "", znode.PersistentSequential)
	}
	mustApply(t, tr, cx(10), &op.DeleteRequest{Path: "/app/q-0000000004", Version: -1})
	mustCreate(t, tr, Ctx{Zxid: 11, Time: 11, Session: 77}, "/app/lock-", "me", znode.EphemeralSequential)
	mustCreate(t, tr, Ctx{Zxid: 12, Time: 12, Session: 78}, "/eph", "", znode.Ephemeral)
	mustApply(t, tr, cx(13), &op.CreateRequest{OpCode: op.CreateContainer, Path: "/ctr", ACL: open, Mode: znode.Container})
	mustCreate(t, tr, cx(14), "/ctr/c", "", znode.Persistent)
	mustApply(t, tr, cx(15), &op.DeleteRequest{Path: "/ctr/c", Version: -1})
	mustApply(t, tr, cx(16), &op.CreateRequest{OpCode: op.CreateTTL, Path: "/ttl", ACL: open, Mode: znode.PersistentWithTTL, TTL: 1234})
	mustApply(t, tr, cx(17), &op.SetDataRequest{Path: "/app", Data: []byte("v2"), Version: -1})
	mustApply(t, tr, cx(18), &op.SetACLRequest{Path: "/app", ACL: open, Version: -1})
	tr.SetSystemData(cx(19), "/zookeeper/config", []byte("version=13"))
	checkInvariants(t, tr)
	return tr
}

func snapshotBytes(t *testing.T, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

type nodeView struct {
	Data     []byte
	Stat     znode.Stat
	ACL      []znode.ACL
	Children []string
}

// dump reads every node through the public API.
func dump(t *testing.T, tr *Tree) map[string]nodeView {
	t.Helper()
	out := map[string]nodeView{}
	var walk func(string)
	walk = func(path string) {
		super := Auth{Super: true}
		d, err := tr.Read(super, 0, &op.GetDataRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := tr.Read(super, 0, &op.GetACLRequest{Path: path})
		c, err := tr.Read(super, 0, &op.GetChildrenRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		kids := c.(*op.GetChildrenResponse).Children
		out[path] = nodeView{d.(*op.GetDataResponse).Data, d.(*op.GetDataResponse).Stat, a.(*op.GetACLResponse).ACL, kids}
		for _, k := range kids {
			walk(znode.Join(path, k))
		}
	}
	walk("/")
	return out
}

func assertSameTree(t *testing.T, got, want *Tree) {
	t.Helper()
	checkInvariants(t, got)
	if got.Digest() != want.Digest() {
		t.Fatalf("digest %x, want %x", got.Digest(), want.Digest())
	}
	if g, w := dump(t, got), dump(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("trees differ\n got %+v\nwant %+v", g, w)
	}
	gn, ge, gb := got.Counts()
	wn, we, wb := want.Counts()
	if gn != wn || ge != we || gb != wb {
		t.Fatalf("counts %d,%d,%d want %d,%d,%d", gn, ge, gb, wn, we, wb)
	}
	if !reflect.DeepEqual(got.EphemeralSessions(), want.EphemeralSessions()) {
		t.Fatalf("ephemerals %v want %v", got.EphemeralSessions(), want.EphemeralSessions())
	}
	if g, w := got.ReapCandidates(1<<40, 0), want.ReapCandidates(1<<40, 0); !slices.Equal(g, w) {
		t.Fatalf("reap candidates %v want %v", g, w)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tr := sample(t)
	// One node with data above the incremental-read threshold.
	big := bytes.Repeat([]byte("0123456789abcdef"), (eagerAllocs+100)/16)
	mustApply(t, tr, cx(30), &op.CreateRequest{Path: "/big", ACL: open, Data: big})
	raw := snapshotBytes(t, tr.Snapshot())

	back := New(Options{ExtendedTypes: true})
	if err := back.Restore(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	assertSameTree(t, back, tr)
	if !bytes.Equal(getData(t, back, "/big"), big) {
		t.Fatal("big data differs")
	}
	// The same tree writes the same bytes, in any process.
	if again := snapshotBytes(t, back.Snapshot()); !bytes.Equal(again, raw) {
		t.Fatal("restored tree writes different snapshot bytes")
	}
	// Both continue identically: counters such as the sequence survive.
	for _, req := range []op.Request{
		create("/app/q-", "", znode.PersistentSequential),
		&op.SetDataRequest{Path: "/app/private", Data: []byte("x"), Version: 0},
		&op.DeleteRequest{Path: "/ttl", Version: -1},
	} {
		r1, e1, err1 := tr.Apply(Ctx{Zxid: 40, Time: 40, Auth: asAlice}, req)
		r2, e2, err2 := back.Apply(Ctx{Zxid: 40, Time: 40, Auth: asAlice}, req)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(r1, r2) || !slices.Equal(e1, e2) {
			t.Fatalf("diverged on %T: %+v/%v vs %+v/%v", req, r1, err1, r2, err2)
		}
	}
	if r := getChildren(t, back, "/app"); !slices.Contains(r, "q-0000000008") {
		t.Fatalf("sequence not continued: %v", r)
	}
	assertSameTree(t, back, tr)
	if back.Ephemerals(77)[0] != "/app/lock-0000000007" {
		t.Fatalf("ephemerals %v", back.Ephemerals(77))
	}
	back.CloseSession(cx(50), 77)
	if back.Exists("/app/lock-0000000007") {
		t.Fatal("restored ephemeral not owned by its session")
	}
}

func TestSnapshotIsolation(t *testing.T) {
	tr := sample(t)
	want := dump(t, tr)
	wantDigest := tr.Digest()
	snap := tr.Snapshot()
	// Keep writing: deletes, data changes, new children, a session close.
	mustApply(t, tr, cx(100), &op.SetDataRequest{Path: "/app", Data: []byte("later"), Version: -1})
	mustApply(t, tr, cx(101), &op.DeleteRequest{Path: "/app/nil", Version: -1})
	mustApply(t, tr, cx(102), &op.MultiRequest{Ops: []op.Request{
		create("/new", "", znode.Persistent), create("/new/x", "", znode.Persistent),
	}})
	tr.CloseSession(cx(103), 77)
	if tr.Digest() == wantDigest {
		t.Fatal("writes did not change the digest")
	}
	if snap.Digest() != wantDigest {
		t.Fatal("snapshot digest moved")
	}
	back := New(Options{})
	if err := back.Restore(bytes.NewReader(snapshotBytes(t, snap))); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != wantDigest || !reflect.DeepEqual(dump(t, back), want) {
		t.Fatal("snapshot wrote the later state")
	}
}

func TestRestoreDetectsTruncation(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	target := New(Options{})
	mustCreate(t, target, cx(1), "/keep", "", znode.Persistent)
	before := target.Digest()
	for cut := 0; cut < len(raw); cut++ {
		err := target.Restore(bytes.NewReader(raw[:cut]))
		if !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("cut at %d/%d: err %v", cut, len(raw), err)
		}
		if cut > len(snapMagic)+1 && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: error does not say truncated: %v", cut, err)
		}
	}
	if target.Digest() != before || !target.Exists("/keep") {
		t.Fatal("failed restores changed the tree")
	}
}

func TestRestoreDetectsGarbage(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	target := New(Options{})
	before := target.Digest()
	for i := 0; i < len(raw); i++ {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x5a
		if err := target.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("byte %d flipped: err %v", i, err)
		}
	}
	for _, junk := range [][]byte{
		[]byte("not a snapshot at all"),
		append([]byte(snapMagic), 9), // unknown format version
		bytes.Repeat([]byte{0xff}, 64),
	} {
		if err := target.Restore(bytes.NewReader(junk)); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("junk %q: err %v", junk, err)
		}
	}
	if target.Digest() != before {
		t.Fatal("failed restores changed the tree")
	}
}

// The tree section is the last in a larger stream: it must neither need
// anything after its end marker nor be confused by what follows.
func TestRestoreStopsAtEndMarker(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	for name, r := range map[string]io.Reader{
		"exact":      bytes.NewReader(raw),
		"one byte":   iotest.OneByteReader(bytes.NewReader(raw)),
		"EOF early":  iotest.DataErrReader(bytes.NewReader(raw)),
		"half reads": iotest.HalfReader(bytes.NewReader(raw)),
		"trailing":   io.MultiReader(bytes.NewReader(raw), strings.NewReader("next section")),
	} {
		back := New(Options{})
		if err := back.Restore(r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back.Digest() != tr.Digest() {
			t.Fatalf("%s: digest differs", name)
		}
	}
}

func TestDigestIsContentBased(t *testing.T) {
	build := func(order []string) *Tree {
		tr := New(Options{})
		for _, p := range order {
			mustApply(t, tr, Ctx{Zxid: 1, Time: 1}, create(p, "d", znode.Persistent))
		}
		return tr
	}
	a := build([]string{"/x", "/y", "/z"})
	b := build([]string{"/z", "/x", "/y"})
	// Same nodes, same stats: root's pzxid/cversion agree as all share zxid 1.
	if a.Digest() != b.Digest() {
		t.Fatal("digest depends on insertion order")
	}
	for _, req := range []op.Request{
		&op.SetDataRequest{Path: "/x", Data: []byte("e"), Version: -1},
		&op.SetACLRequest{Path: "/x", ACL: znode.ReadACLUnsafe, Version: -1},
		create("/x/c", "", znode.Persistent),
	} {
		c := fork(a)
		mustApply(t, c, Ctx{Zxid: 2, Time: 2}, req)
		if c.Digest() == a.Digest() {
			t.Fatalf("%T did not change the digest", req)
		}
	}
	// null data and empty data differ.
	n1, n2 := New(Options{}), New(Options{})
	mustApply(t, n1, cx(1), &op.CreateRequest{Path: "/a", ACL: open})
	mustApply(t, n2, cx(1), &op.CreateRequest{Path: "/a", ACL: open, Data: []byte{}})
	if n1.Digest() == n2.Digest() {
		t.Fatal("null and empty data share a digest")
	}
}

package tree

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/corral-dev/corral/framework/znode"
)

func readAllNodes(t *testing.T, r io.Reader) ([]NodeInfo, SnapshotSummary) {
	t.Helper()
	var out []NodeInfo
	sum, err := ReadSnapshot(r, func(n NodeInfo) error { out = append(out, n); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out, sum
}

// ReadSnapshot reports every node exactly as a client reads it from the
// tree the snapshot was taken of.
func TestReadSnapshotMatchesTree(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	nodes, sum := readAllNodes(t, bytes.NewReader(raw))
	want := dump(t, tr)
	if len(nodes) != len(want) || sum.Nodes != uint64(len(want)) {
		t.Fatalf("%d nodes (summary %d), tree has %d", len(nodes), sum.Nodes, len(want))
	}
	if sum.Digest != tr.Digest() {
		t.Fatalf("digest %x, tree's %x", sum.Digest, tr.Digest())
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		w, ok := want[n.Path]
		if !ok || seen[n.Path] {
			t.Fatalf("unexpected or repeated node %s", n.Path)
		}
		if n.Path != "/" && !seen[znode.Parent(n.Path)] {
			t.Fatalf("%s before its parent", n.Path)
		}
		seen[n.Path] = true
		if !bytes.Equal(n.Data, w.Data) || (n.Data == nil) != (w.Data == nil) {
			t.Fatalf("%s: data %q (nil %v), tree has %q (nil %v)", n.Path, n.Data, n.Data == nil, w.Data, w.Data == nil)
		}
		if n.Stat != w.Stat {
			t.Fatalf("%s: stat %+v, tree has %+v", n.Path, n.Stat, w.Stat)
		}
		if !reflect.DeepEqual(n.ACL, w.ACL) {
			t.Fatalf("%s: acl %v, tree has %v", n.Path, n.ACL, w.ACL)
		}
	}
	kinds := map[string]string{}
	var ttl int64
	ephemerals := 0
	for _, n := range nodes {
		kinds[n.Path] = n.Kind
		if (n.Kind == "ephemeral") != (n.Stat.EphemeralOwner != 0) {
			t.Fatalf("%s: kind %s with ephemeralOwner %d", n.Path, n.Kind, n.Stat.EphemeralOwner)
		}
		if n.Kind == "ephemeral" {
			ephemerals++
		}
		if n.Path == "/ttl" {
			ttl = n.TTL
		} else if n.TTL != 0 {
			t.Fatalf("%s: TTL %d on a %s node", n.Path, n.TTL, n.Kind)
		}
	}
	for path, kind := range map[string]string{
		"/": "persistent", "/app": "persistent", "/eph": "ephemeral", "/ctr": "container", "/ttl": "ttl",
	} {
		if kinds[path] != kind {
			t.Fatalf("%s: kind %q, want %q (all: %v)", path, kinds[path], kind, kinds)
		}
	}
	if ephemerals != 2 || ttl != 1234 {
		t.Fatalf("%d ephemerals (want 2: /eph and the lock), /ttl TTL %d (want 1234)", ephemerals, ttl)
	}
}

func TestReadSnapshotReaders(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	for name, r := range map[string]io.Reader{
		"one byte":   iotest.OneByteReader(bytes.NewReader(raw)),
		"EOF early":  iotest.DataErrReader(bytes.NewReader(raw)),
		"half reads": iotest.HalfReader(bytes.NewReader(raw)),
		"trailing":   io.MultiReader(bytes.NewReader(raw), strings.NewReader("next section")),
	} {
		if _, sum := readAllNodes(t, r); sum.Digest != tr.Digest() {
			t.Fatalf("%s: digest differs", name)
		}
	}
}

// Whatever Restore refuses, ReadSnapshot refuses too.
func TestReadSnapshotDetectsDamage(t *testing.T) {
	tr := sample(t)
	raw := snapshotBytes(t, tr.Snapshot())
	nop := func(NodeInfo) error { return nil }
	for cut := 0; cut < len(raw); cut++ {
		_, err := ReadSnapshot(bytes.NewReader(raw[:cut]), nop)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("cut at %d/%d: err %v", cut, len(raw), err)
		}
		if cut > len(snapMagic)+1 && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: error does not say truncated: %v", cut, err)
		}
	}
	for i := 0; i < len(raw); i++ {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x5a
		if _, err := ReadSnapshot(bytes.NewReader(bad), nop); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("byte %d flipped: err %v", i, err)
		}
	}
	for _, junk := range [][]byte{
		[]byte("not a snapshot at all"),
		append([]byte(snapMagic), 9),
		bytes.Repeat([]byte{0xff}, 64),
	} {
		if _, err := ReadSnapshot(bytes.NewReader(junk), nop); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("junk %q: err %v", junk, err)
		}
	}
}

func TestReadSnapshotCallbackErrorStops(t *testing.T) {
	raw := snapshotBytes(t, sample(t).Snapshot())
	stop := errors.New("enough")
	calls := 0
	_, err := ReadSnapshot(bytes.NewReader(raw), func(NodeInfo) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("err %v after %d calls; want the callback's own error after 3", err, calls)
	}
	// A callback error that looks like end of input is still the callback's.
	_, err = ReadSnapshot(bytes.NewReader(raw), func(NodeInfo) error { return io.EOF })
	if err != io.EOF {
		t.Fatalf("err %v, want io.EOF from the callback", err)
	}
}

package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance/corraltest"
	"github.com/corral-dev/corral/framework/plugin"
)

func TestCombinationsCoverEveryPlugin(t *testing.T) {
	combos := Combinations()
	nc, ns, np := len(plugin.List(plugin.KindConsensus)), len(plugin.List(plugin.KindStorage)), len(plugin.List(plugin.KindProtocol))
	if nc == 0 || ns == 0 || np == 0 || len(combos) != nc*ns*np {
		t.Fatalf("%d combinations from %d consensus x %d storage x %d protocol plugins", len(combos), nc, ns, np)
	}
	seen := map[string]bool{}
	for i, c := range combos {
		if c.Consensus.Kind() != plugin.KindConsensus || c.Storage.Kind() != plugin.KindStorage || c.Protocol.Kind() != plugin.KindProtocol {
			t.Fatalf("combination %+v mixes kinds", c)
		}
		if seen[c.Name()] {
			t.Fatalf("%s listed twice", c.Name())
		}
		seen[c.Name()] = true
		if i > 0 && combos[i-1].Name() >= c.Name() {
			t.Fatalf("not sorted: %s before %s", combos[i-1].Name(), c.Name())
		}
	}
	for _, want := range []string{"raft/bolt/native", "raft/pebble/native"} {
		if !seen[want] {
			t.Fatalf("%s missing from %v", want, seen)
		}
	}
	if _, ok := ClientSuiteFor("native"); !ok {
		t.Fatal("no client suite for the native protocol")
	}
	if _, ok := ClientSuiteFor("nonesuch"); ok {
		t.Fatal("a client suite for an unregistered protocol")
	}
}

// Two standalone servers stand in for members that diverged: the
// comparison must refuse them.
func TestCompareReplicasDetectsDivergence(t *testing.T) {
	a := corraltest.Start(t, corraltest.Options{})
	b := corraltest.Start(t, corraltest.Options{})
	servers := []string{a.Addr, b.Addr}
	wa, wb := Connect(t, []string{a.Addr}), Connect(t, []string{b.Addr})
	readers := []*zk.Conn{Connect(t, []string{a.Addr}), Connect(t, []string{b.Addr})}
	if _, err := compareReplicas(readers, servers, time.Second, t.Logf); err != nil {
		t.Fatalf("two fresh servers with the same transactions: %v", err)
	}

	// The same number of transactions, different contents.
	if _, err := wa.Create("/x", []byte("a"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Create("/x", []byte("b"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, err := compareReplicas(readers, servers, time.Second, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "different trees") {
		t.Fatalf("same zxid, different data: %v", err)
	}

	// One member ahead and staying ahead.
	if _, err := wa.Create("/y", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, err = compareReplicas(readers, servers, 300*time.Millisecond, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "did not reach the same zxid") {
		t.Fatalf("different zxids: %v", err)
	}
}

func TestDiffTrees(t *testing.T) {
	base := []Node{
		{Path: "/", Stat: zk.Stat{NumChildren: 1}, ACL: zk.WorldACL(zk.PermAll)},
		{Path: "/a", Data: []byte("x"), Stat: zk.Stat{Czxid: 2, Mzxid: 3, Version: 1}, ACL: zk.WorldACL(zk.PermAll)},
	}
	clone := func() []Node {
		out := append([]Node(nil), base...)
		return out
	}
	if d := diffTrees(base, clone()); d != "" {
		t.Fatalf("identical trees differ: %s", d)
	}
	cases := map[string]func([]Node) []Node{
		"data":    func(n []Node) []Node { n[1].Data = []byte("y"); return n },
		"mzxid":   func(n []Node) []Node { n[1].Stat.Mzxid = 4; return n },
		"version": func(n []Node) []Node { n[1].Stat.Version = 2; return n },
		"acl":     func(n []Node) []Node { n[1].ACL = zk.WorldACL(zk.PermRead); return n },
		"noauth":  func(n []Node) []Node { n[1].NoAuth = true; return n },
		"missing": func(n []Node) []Node { return n[:1] },
		"extra":   func(n []Node) []Node { return append(n, Node{Path: "/b"}) },
		"renamed": func(n []Node) []Node { n[1].Path = "/b"; return n },
	}
	for name, mutate := range cases {
		if d := diffTrees(base, mutate(clone())); d == "" {
			t.Errorf("%s: no difference reported", name)
		}
		if d := diffTrees(mutate(clone()), base); d == "" {
			t.Errorf("%s (reversed): no difference reported", name)
		}
	}
}

// The load's expectations hold for a real run and catch each kind of loss
// or reordering they are meant to catch.
func TestLoadVerify(t *testing.T) {
	srv := corraltest.Start(t, corraltest.Options{})
	o := ReplicaOptions{Servers: []string{srv.Addr}, SessionsPerMember: 2, Rounds: 4}
	o.defaults()
	root := "/load"
	exp := runLoad(t, o, root)
	tree, err := ReadTree(Connect(t, o.Servers), "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.verify(tree); err != nil {
		t.Fatalf("a clean run: %v", err)
	}
	edit := func(f func(*Node), paths ...string) []Node {
		out := make([]Node, len(tree))
		copy(out, tree)
		for i := range out {
			for _, p := range paths {
				if out[i].Path == p {
					f(&out[i])
				}
			}
		}
		return out
	}
	drop := func(path string) []Node {
		var out []Node
		for _, n := range tree {
			if n.Path != path {
				out = append(out, n)
			}
		}
		return out
	}
	var seq0, seq1 Node
	for _, n := range tree {
		switch n.Path {
		case seqName(root, 0):
			seq0 = n
		case seqName(root, 1):
			seq1 = n
		}
	}
	cases := map[string][]Node{
		"lost key":          drop(root + "/s1/k1"),
		"lost multi half":   drop(root + "/s0/m2b"),
		"lost sequential":   drop(seqName(root, 3)),
		"deleted key back":  append(append([]Node(nil), tree...), Node{Path: root + "/s0/k0"}),
		"stray node":        append(append([]Node(nil), tree...), Node{Path: root + "/stray"}),
		"stale data":        edit(func(n *Node) { n.Data = []byte("1-2-0") }, root+"/s1/k2"),
		"lost increment":    edit(func(n *Node) { n.Data = []byte("1"); n.Stat.Version = 1 }, root+"/counter"),
		"multi split":       edit(func(n *Node) { n.Stat.Czxid++ }, root+"/s1/m1a"),
		"session reordered": edit(func(n *Node) { n.Stat.Czxid = 1 }, root+"/s0/m1a", root+"/s0/m1b"),
		"sequence vs zxid":  edit(func(n *Node) { n.Stat.Czxid = seq0.Stat.Czxid - 1 }, seqName(root, 1)),
		"sequential twice":  edit(func(n *Node) { n.Data = seq1.Data }, seqName(root, 0)),
	}
	for name, bad := range cases {
		if err := exp.verify(bad); err == nil {
			t.Errorf("%s: not detected", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

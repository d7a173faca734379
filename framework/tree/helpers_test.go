package tree

import (
	"errors"
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

var open = znode.OpenACLUnsafe

// cx returns a context for zxid z at time 1000*z, as session 1 with no ids.
func cx(z int64) Ctx { return Ctx{Zxid: z, Time: 1000 * z, Session: 1} }

func create(path string, data string, mode znode.CreateMode) *op.CreateRequest {
	return &op.CreateRequest{OpCode: op.Create2, Path: path, Data: []byte(data), ACL: open, Mode: mode}
}

func mustApply(t *testing.T, tr *Tree, c Ctx, req op.Request) (op.Response, []op.WatchEvent) {
	t.Helper()
	resp, ev, err := tr.Apply(c, req)
	if err != nil {
		t.Fatalf("Apply(%T %+v): %v", req, req, err)
	}
	checkInvariants(t, tr)
	return resp, ev
}

func mustCreate(t *testing.T, tr *Tree, c Ctx, path string, data string, mode znode.CreateMode) string {
	t.Helper()
	resp, _ := mustApply(t, tr, c, create(path, data, mode))
	return resp.(*op.CreateResponse).Path
}

// applyCode applies req, expects it to fail, checks the tree did not move
// and returns the code.
func applyCode(t *testing.T, tr *Tree, c Ctx, req op.Request) zkerr.Code {
	t.Helper()
	before := tr.load()
	resp, ev, err := tr.Apply(c, req)
	if err == nil {
		t.Fatalf("Apply(%T %+v) succeeded: %+v", req, req, resp)
	}
	var ze *zkerr.Error
	if !errors.As(err, &ze) {
		t.Fatalf("error %v is not a *zkerr.Error", err)
	}
	if resp != nil || ev != nil {
		t.Fatalf("failed Apply returned resp %v events %v", resp, ev)
	}
	if tr.load() != before {
		t.Fatalf("failed Apply published a new version")
	}
	return ze.Code
}

func readCode(t *testing.T, tr *Tree, a Auth, req op.Request) zkerr.Code {
	t.Helper()
	_, err := tr.Read(a, 1, req)
	return zkerr.CodeOf(err)
}

func mustStat(t *testing.T, tr *Tree, path string) znode.Stat {
	t.Helper()
	st, ok := tr.Stat(path)
	if !ok {
		t.Fatalf("%s does not exist", path)
	}
	return st
}

func getData(t *testing.T, tr *Tree, path string) []byte {
	t.Helper()
	resp, err := tr.Read(Auth{}, 1, &op.GetDataRequest{Path: path})
	if err != nil {
		t.Fatalf("getData %s: %v", path, err)
	}
	return resp.(*op.GetDataResponse).Data
}

func getChildren(t *testing.T, tr *Tree, path string) []string {
	t.Helper()
	resp, err := tr.Read(Auth{}, 1, &op.GetChildrenRequest{Path: path})
	if err != nil {
		t.Fatalf("getChildren %s: %v", path, err)
	}
	return resp.(*op.GetChildrenResponse).Children
}

// checkInvariants recomputes everything the version keeps incrementally
// (counts, digest, indexes, child counts) from the nodes alone.
func checkInvariants(t *testing.T, tr *Tree) {
	t.Helper()
	v := tr.load()
	var nodes, nEphem, dataBytes int64
	var digest uint64
	ephem := map[int64][]string{}
	var reap []string
	var walk func(path string, n *node)
	walk = func(path string, n *node) {
		nodes++
		dataBytes += int64(len(path)) + int64(n.dlen)
		digest += nodeHash(path, n)
		switch n.kind() {
		case kindEphemeral:
			nEphem++
			ephem[n.owner] = append(ephem[n.owner], path)
		case kindContainer, kindTTL:
			reap = append(reap, path)
		}
		kids := 0
		each(n.kids, func(c *node) bool {
			kids++
			if got := n.child(c.name()); got != c {
				t.Fatalf("%s: child %q not found by lookup", path, c.name())
			}
			walk(znode.Join(path, c.name()), c)
			return true
		})
		if int32(kids) != n.nkids {
			t.Fatalf("%s: nkids %d, trie holds %d", path, n.nkids, kids)
		}
	}
	walk("/", v.root)
	if nodes != v.nodes || nEphem != v.nEphem || dataBytes != v.dataBytes {
		t.Fatalf("counts: kept (%d,%d,%d), recomputed (%d,%d,%d)", v.nodes, v.nEphem, v.dataBytes, nodes, nEphem, dataBytes)
	}
	if digest != v.digest {
		t.Fatalf("digest: kept %x, recomputed %x", v.digest, digest)
	}
	got := tr.EphemeralSessions()
	if len(got) != len(ephem) {
		t.Fatalf("ephemeral sessions: index %v, tree %v", got, ephem)
	}
	for s, paths := range ephem {
		slices.Sort(paths)
		if !slices.Equal(got[s], paths) {
			t.Fatalf("ephemerals of %d: index %v, tree %v", s, got[s], paths)
		}
	}
	var reapIdx []string
	each(v.reap, func(p *string) bool { reapIdx = append(reapIdx, *p); return true })
	slices.Sort(reapIdx)
	slices.Sort(reap)
	if !slices.Equal(reapIdx, reap) {
		t.Fatalf("container/TTL index %v, tree %v", reapIdx, reap)
	}
}

// fork returns a tree sharing tr's current version; writes to either do
// not affect the other (versions are immutable and edit numbers only grow).
func fork(tr *Tree) *Tree {
	f := &Tree{opts: tr.opts, acls: tr.acls, edit: tr.edit}
	f.cur.Store(tr.load())
	return f
}

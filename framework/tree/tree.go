// Package tree is Corral's replicated state machine core: the deterministic
// in-memory znode tree, with ZooKeeper 3.8 semantics.
//
// The tree is a persistent data structure. Every write builds a new version
// by copying the path from the changed nodes up to the root (children live
// in a hash-array-mapped trie, so that is O(depth · log n)) and publishes it
// with one atomic pointer store. Readers load the current version and never
// block or see a half-applied write; a Snapshot is just a version, so taking
// one is O(1) and it can be streamed out while writes continue.
//
// Apply, CloseSession, SetSystemData and Restore are the writers and must be
// called from one goroutine. Everything else may run concurrently with them.
//
// Nothing here reads a clock or a random source or depends on map order:
// the same requests applied to the same tree give the same tree, replies,
// events, snapshot bytes and digest in every process.
//
// Slices returned by reads (data, child names) share memory with the tree.
// They are never modified by the tree; callers must not modify them either.
package tree

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/corral-dev/corral/framework/znode"
)

// Options configure a Tree.
type Options struct {
	// ExtendedTypes allows TTL nodes (createTTL, modes 5 and 6), like
	// ZooKeeper's zookeeper.extendedTypesEnabled. When false such creates
	// fail with Unimplemented.
	ExtendedTypes bool
}

// Auth is what a connection has authenticated as.
type Auth struct {
	// IDs are the connection's identities, e.g. {Scheme:"ip",ID:"127.0.0.1"}
	// or {Scheme:"digest",ID:"user:base64hash"}. An id with scheme "super"
	// makes the caller a super user, as in ZooKeeper.
	IDs []znode.ID
	// Super makes every ACL check pass.
	Super bool
}

// Ctx is the context of one transaction. Everything that varies between
// runs (zxid, time, session) comes in here, so Apply stays deterministic.
type Ctx struct {
	Zxid    int64 // zxid of this transaction (czxid/mzxid/pzxid use it)
	Time    int64 // ms since epoch, stamped by the proposer (ctime/mtime)
	Session int64 // session issuing the txn (ephemeralOwner for ephemerals)
	Auth    Auth
}

// Tree is the znode tree. The zero value is not usable; call New.
type Tree struct {
	opts Options
	cur  atomic.Pointer[version]
	acls *aclTable
	// edit numbers transactions for in-place changes of the trie nodes
	// they allocated (see hnode). Writer-only; never reused.
	edit uint64
}

// version is one immutable state of the tree. The indexes live next to the
// root so that a reader always sees indexes that match the nodes.
type version struct {
	root  *node
	ephem *hnode[sessionEphemerals] // session -> its ephemeral paths
	reap  *hnode[string]            // paths of all containers and TTL nodes

	nodes     int64 // real znodes, "/" included
	nEphem    int64
	dataBytes int64 // ZooKeeper's approximate data size: sum of path and data lengths
	digest    uint64
}

type sessionEphemerals struct {
	id    int64
	n     int
	paths *hnode[string]
}

var (
	sessionTrie = trie[int64, sessionEphemerals]{key: func(e *sessionEphemerals) int64 { return e.id }, hash: hashInt64}
	stringTrie  = trie[string, string]{key: func(s *string) string { return *s }, hash: hashString}
)

// New returns a tree holding what a fresh ZooKeeper has: "/", "/zookeeper",
// "/zookeeper/quota" and "/zookeeper/config", all with zxid 0 and time 0.
// As in ZooKeeper's DataTree constructor, the children were attached
// without counting as creates, so "/" reports cversion -1 and /zookeeper
// -2, and /zookeeper/config has ACL world:anyone READ with aversion -1
// (DataTree.addConfigNode calls setACL(..., -1)).
func New(opts Options) *Tree {
	t := &Tree{opts: opts, acls: newACLTable()}
	x := t.begin(Ctx{})
	x.v = version{}
	open := t.acls.intern(znode.OpenACLUnsafe)
	mk := func(name string, acl *aclList) *node {
		n := &node{acl: acl}
		n.setNameData(name, []byte{})
		return n
	}
	root := mk("", open)
	zk := mk("zookeeper", open)
	quota := mk("quota", open)
	config := mk("config", t.acls.intern(znode.ReadACLUnsafe))
	config.aversion = -1
	for _, c := range []*node{quota, config} {
		zk.kids, _ = childTrie.put(zk.kids, c, hashString(c.name()), 0, x.edit)
		zk.nkids++
	}
	root.kids, _ = childTrie.put(root.kids, zk, hashString(zk.name()), 0, x.edit)
	root.nkids++
	x.v.root = root
	for _, e := range []struct {
		path string
		n    *node
	}{{"/", root}, {"/zookeeper", zk}, {"/zookeeper/quota", quota}, {"/zookeeper/config", config}} {
		x.v.nodes++
		x.v.dataBytes += int64(len(e.path))
		x.v.digest += nodeHash(e.path, e.n)
	}
	x.commit()
	return t
}

func (t *Tree) load() *version { return t.cur.Load() }

// lookup finds the node at path, or nil. Malformed paths simply match
// nothing: no node has an empty name or a '/' in its name.
func (v *version) lookup(path string) *node {
	n := v.root
	if path == "/" {
		return n
	}
	if len(path) < 2 || path[0] != '/' {
		return nil
	}
	for i := 1; ; {
		j := strings.IndexByte(path[i:], '/')
		if j < 0 {
			return n.child(path[i:])
		}
		if n = n.child(path[i : i+j]); n == nil {
			return nil
		}
		i += j + 1
	}
}

// Stat returns the Stat of the node at path.
func (t *Tree) Stat(path string) (znode.Stat, bool) {
	n := t.load().lookup(path)
	if n == nil {
		return znode.Stat{}, false
	}
	return n.stat(), true
}

// Exists reports whether a node exists at path.
func (t *Tree) Exists(path string) bool { return t.load().lookup(path) != nil }

// ReapCandidates lists, sorted, at most limit (limit <= 0: all) paths the
// container reaper should delete: containers that once had a child
// (cversion > 0) and have none now, and TTL nodes without children whose
// now - mtime > ttl (ContainerManager.getCandidates).
func (t *Tree) ReapCandidates(now int64, limit int) []string {
	v := t.load()
	var out []string
	each(v.reap, func(p *string) bool {
		path := *p
		n := v.lookup(path)
		if n == nil || n.nkids != 0 {
			return true
		}
		switch n.kind() {
		case kindContainer:
			if n.cversion > 0 {
				out = append(out, path)
			}
		case kindTTL:
			if now-n.mtime > n.owner {
				out = append(out, path)
			}
		}
		return true
	})
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (v *version) ephemerals(session int64) []string {
	e := sessionTrie.get(v.ephem, session, hashInt64(session))
	if e == nil {
		return nil
	}
	out := make([]string, 0, e.n)
	each(e.paths, func(p *string) bool { out = append(out, *p); return true })
	slices.Sort(out)
	return out
}

// Ephemerals returns the paths of the session's ephemeral nodes, sorted.
func (t *Tree) Ephemerals(session int64) []string { return t.load().ephemerals(session) }

// EphemeralSessions returns every session that owns ephemerals, with its
// paths sorted (for the `dump` four-letter word).
func (t *Tree) EphemeralSessions() map[int64][]string {
	v := t.load()
	out := make(map[int64][]string)
	each(v.ephem, func(e *sessionEphemerals) bool {
		out[e.id] = v.ephemerals(e.id)
		return true
	})
	return out
}

// Counts returns ZooKeeper's znode_count, ephemerals_count and
// approximate_data_size. As in ZooKeeper, whose node map holds the root
// under both "" and "/", nodes is the number of znodes plus one (a fresh
// tree reports 5). dataBytes is the sum of path lengths and data lengths.
func (t *Tree) Counts() (nodes int, ephemerals int, dataBytes int64) {
	v := t.load()
	return int(v.nodes) + 1, int(v.nEphem), v.dataBytes
}

// Digest returns an order-independent digest of every node's path, data,
// ACL and stat fields. Equal trees have equal digests in every process.
func (t *Tree) Digest() uint64 { return t.load().digest }

// Snapshot is a point-in-time tree. It stays valid and unchanged while the
// tree moves on.
type Snapshot struct{ v *version }

// Snapshot captures the current version in O(1).
func (t *Tree) Snapshot() *Snapshot { return &Snapshot{v: t.load()} }

// Digest returns the digest of the snapshot's tree.
func (s *Snapshot) Digest() uint64 { return s.v.digest }

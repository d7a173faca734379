package tree

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

type kv struct {
	k string
	v int
}

func kvTrie(hash func(string) uint64) trie[string, kv] {
	return trie[string, kv]{key: func(e *kv) string { return e.k }, hash: hash}
}

// shape renders the trie's structure so two tries can be compared.
func shape(n *hnode[kv]) string {
	var b strings.Builder
	var rec func(n *hnode[kv])
	rec = func(n *hnode[kv]) {
		if n == nil {
			b.WriteString("nil")
			return
		}
		fmt.Fprintf(&b, "{%08x %08x [", n.leafmap, n.submap)
		nl := n.nleaves()
		for i := 0; i < nl; i++ {
			b.WriteString(n.leaf(i).k + " ")
		}
		b.WriteString("] ")
		for i := nl; i < len(n.slots); i++ {
			rec(n.sub(i - nl))
		}
		b.WriteString("}")
	}
	rec(n)
	return b.String()
}

func collect(n *hnode[kv]) map[string]int {
	m := map[string]int{}
	each(n, func(e *kv) bool { m[e.k] = e.v; return true })
	return m
}

// Hash functions that force collisions: hashConst puts every key at the
// maximum depth in one bucket; hashFew gives only 4 distinct hashes that
// share their low 40 bits, so buckets form deep down.
func hashConst(string) uint64 { return 0xdeadbeefcafebabe }
func hashFew(s string) uint64 {
	return uint64(len(s)%4)<<60 | 0x00000abcdef12345
}

func TestHAMT(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash func(string) uint64
		n    int
	}{
		{"fnv-100k", hashString, 100_000},
		{"all-collide", hashConst, 300},
		{"few-hashes", hashFew, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := kvTrie(tc.hash)
			rng := rand.New(rand.NewPCG(1, 2))
			keys := make([]string, tc.n)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%d-%s", i, strings.Repeat("x", i%7))
			}
			var root *hnode[kv]
			edit := uint64(1)
			for i, k := range keys {
				if i%1000 == 0 {
					edit++ // mix persistent copies and in-place edits
				}
				var added bool
				root, added = tr.put(root, &kv{k, i}, tr.hash(k), 0, edit)
				if !added {
					t.Fatalf("put %s: not added", k)
				}
			}
			// Replace keeps the size.
			edit++
			if r2, added := tr.put(root, &kv{keys[0], -1}, tr.hash(keys[0]), 0, edit); added {
				t.Fatal("replace reported added")
			} else if e := tr.get(r2, keys[0], tr.hash(keys[0])); e.v != -1 {
				t.Fatalf("replace: got %v", e)
			} else if e := tr.get(root, keys[0], tr.hash(keys[0])); e.v != 0 {
				t.Fatalf("replace under a new edit changed the old root: %v", e)
			}
			for i, k := range keys {
				e := tr.get(root, k, tr.hash(k))
				if e == nil || e.v != i {
					t.Fatalf("get %s = %v", k, e)
				}
			}
			if tr.get(root, "absent", tr.hash("absent")) != nil {
				t.Fatal("found absent key")
			}
			if m := collect(root); len(m) != tc.n {
				t.Fatalf("iterated %d entries, want %d", len(m), tc.n)
			}

			// Delete half under a new edit: the old root must be untouched.
			old := root
			oldShape := shape(old)
			edit++
			perm := rng.Perm(tc.n)
			for _, i := range perm[:tc.n/2] {
				var removed bool
				root, removed = tr.del(root, keys[i], tr.hash(keys[i]), 0, edit)
				if !removed {
					t.Fatalf("del %s: not removed", keys[i])
				}
			}
			if _, removed := tr.del(root, keys[perm[0]], tr.hash(keys[perm[0]]), 0, edit); removed {
				t.Fatal("deleted a key twice")
			}
			if shape(old) != oldShape {
				t.Fatal("deletes changed a published trie")
			}
			if m := collect(old); len(m) != tc.n {
				t.Fatalf("old root lost entries: %d", len(m))
			}
			left := map[string]bool{}
			for _, i := range perm[tc.n/2:] {
				left[keys[i]] = true
			}
			for i, k := range keys {
				ok := tr.get(root, k, tr.hash(k)) != nil
				if ok != left[k] {
					t.Fatalf("after deletes, get %s (#%d) = %v, want %v", k, i, ok, left[k])
				}
			}

			// Canonical form: a fresh trie of the remaining keys, inserted in
			// another order, has exactly the same shape.
			var fresh *hnode[kv]
			rest := slices.Collect(func(yield func(string) bool) {
				for k := range left {
					if !yield(k) {
						return
					}
				}
			})
			slices.Sort(rest)
			slices.Reverse(rest)
			for _, k := range rest {
				fresh, _ = tr.put(fresh, tr.get(root, k, tr.hash(k)), tr.hash(k), 0, 99)
			}
			if shape(fresh) != shape(root) {
				t.Fatal("trie shape depends on history")
			}

			// Deleting everything leaves nil.
			edit++
			for _, k := range rest {
				root, _ = tr.del(root, k, tr.hash(k), 0, edit)
			}
			if root != nil {
				t.Fatalf("empty trie is not nil: %s", shape(root))
			}
		})
	}
}

func TestHAMTCollisionBucketSortedAndFolded(t *testing.T) {
	tr := kvTrie(hashConst)
	var root *hnode[kv]
	for _, k := range []string{"c", "a", "b"} {
		root, _ = tr.put(root, &kv{k, 0}, hashConst(k), 0, 1)
	}
	// Walk down to the bucket: single-sub chain of 13 levels.
	n, depth := root, 0
	for !n.bucket() && n.nleaves() == 0 && len(n.slots) == 1 {
		n = n.sub(0)
		depth++
	}
	if depth != 13 || !n.bucket() || n.nleaves() != 3 {
		t.Fatalf("bucket at depth %d with %d entries; want 13 and 3", depth, n.nleaves())
	}
	if got := []string{n.leaf(0).k, n.leaf(1).k, n.leaf(2).k}; !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("bucket order %v, want sorted", got)
	}
	root, _ = tr.del(root, "a", hashConst("a"), 0, 2)
	root, _ = tr.del(root, "c", hashConst("c"), 0, 2)
	// One entry left: the whole chain folds back into a root leaf.
	if !root.single() || root.bucket() || root.leaf(0).k != "b" {
		t.Fatalf("single survivor not folded to the root: %s", shape(root))
	}
}

func TestHAMTTransientEditsInPlace(t *testing.T) {
	tr := kvTrie(hashString)
	var root *hnode[kv]
	root, _ = tr.put(root, &kv{"a", 1}, hashString("a"), 0, 5)
	r2, _ := tr.put(root, &kv{"b", 2}, hashString("b"), 0, 5)
	if r2 != root {
		t.Fatal("same edit copied instead of editing in place")
	}
	r3, _ := tr.put(r2, &kv{"c", 3}, hashString("c"), 0, 6)
	if r3 == r2 {
		t.Fatal("new edit changed a node of an older edit in place")
	}
	if tr.get(r2, "c", hashString("c")) != nil {
		t.Fatal("older version sees a later insert")
	}
}

func TestSeqSuffixMatchesJavaFormat(t *testing.T) {
	// String.format("%010d", v) in Java and Go's %010d agree on these.
	for _, v := range []int32{0, 1, 7, 42, 999999999, 1000000000, 2147483647, -1, -5, -999999999, -2147483648} {
		if got, want := seqSuffix(v), fmt.Sprintf("%010d", v); got != want {
			t.Errorf("seqSuffix(%d) = %q, want %q", v, got, want)
		}
	}
	if got := seqSuffix(-2147483648); got != "-2147483648" {
		t.Errorf("seqSuffix(MinInt32) = %q", got)
	}
}

func TestNodeIsSmall(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(node{}) != 96 {
		t.Fatalf("node is %d bytes, want 96", unsafe.Sizeof(node{}))
	}
}

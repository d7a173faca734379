package tree

import (
	"cmp"
	"math/bits"
	"slices"
	"unsafe"
)

// hnode is one node of a persistent hash-array-mapped trie in CHAMP form:
// inline entries and sub-tries each get their own bitmap, and deletes pull
// lone entries back up. The layout is therefore a function of the key set
// alone, so two processes holding the same keys iterate in the same order,
// whatever the order of the inserts and deletes that built them.
//
// Entries are pointers (*T). They and the sub-tries share one slot slice,
// entries first: one allocation instead of two per node, which matters
// because most trie nodes are small.
//
// A node is immutable once a version holding it is published. While a
// transaction is being built, nodes whose edit equals the transaction's edit
// number were allocated by that transaction, are reachable from no
// published version, and may be changed in place (Clojure's "transients").
// A multi, a session close or a restore thus copies each touched trie path
// once instead of once per step.
type hnode[T any] struct {
	leafmap uint32
	submap  uint32
	edit    uint64
	// slots holds the entries (*T) in bit order, then the sub-tries
	// (*hnode[T]) in bit order. In a collision bucket (both maps zero) it
	// holds only entries, sorted by key.
	slots []unsafe.Pointer
}

const (
	hbits = 5
	hmask = 1<<hbits - 1
	// maxShift is where the 64 hash bits run out: a node at this depth is a
	// collision bucket.
	maxShift = 64
)

func (n *hnode[T]) bucket() bool { return n.leafmap|n.submap == 0 }

func (n *hnode[T]) nleaves() int {
	if n.bucket() {
		return len(n.slots)
	}
	return bits.OnesCount32(n.leafmap)
}

func (n *hnode[T]) leaf(i int) *T { return (*T)(n.slots[i]) }

func (n *hnode[T]) sub(i int) *hnode[T] { return (*hnode[T])(n.slots[n.nleaves()+i]) }

// single reports whether n holds exactly one entry and no sub-trie, so its
// parent can hold the entry directly.
func (n *hnode[T]) single() bool { return len(n.slots) == 1 && n.submap == 0 }

// trie holds the functions that make an hnode tree a map: how to get an
// entry's key and how to hash a key. The hash must be fixed (no per-process
// seed) so that every member builds the same shape.
type trie[K cmp.Ordered, T any] struct {
	key  func(*T) K
	hash func(K) uint64
}

func bitpos(h uint64, shift uint) uint32 { return 1 << ((h >> shift) & hmask) }

func slot(bitmap, bit uint32) int { return bits.OnesCount32(bitmap & (bit - 1)) }

// own returns n itself if the current transaction allocated it, or a
// private copy stamped with edit.
func own[T any](n *hnode[T], edit uint64) *hnode[T] {
	if n.edit == edit {
		return n
	}
	return &hnode[T]{leafmap: n.leafmap, submap: n.submap, edit: edit, slots: slices.Clone(n.slots)}
}

func (t trie[K, T]) get(n *hnode[T], k K, h uint64) *T {
	for shift := uint(0); n != nil; shift += hbits {
		if shift >= maxShift {
			if i, ok := t.search(n, k); ok {
				return n.leaf(i)
			}
			return nil
		}
		b := bitpos(h, shift)
		if n.leafmap&b != 0 {
			if e := n.leaf(slot(n.leafmap, b)); t.key(e) == k {
				return e
			}
			return nil
		}
		if n.submap&b == 0 {
			return nil
		}
		n = n.sub(slot(n.submap, b))
	}
	return nil
}

func (t trie[K, T]) search(bucket *hnode[T], k K) (int, bool) {
	return slices.BinarySearchFunc(bucket.slots, k, func(p unsafe.Pointer, k K) int { return cmp.Compare(t.key((*T)(p)), k) })
}

// put inserts e (replacing an entry with the same key) and returns the new
// root; added reports whether the key was not present before.
func (t trie[K, T]) put(n *hnode[T], e *T, h uint64, shift uint, edit uint64) (_ *hnode[T], added bool) {
	if n == nil {
		if shift >= maxShift {
			return &hnode[T]{edit: edit, slots: []unsafe.Pointer{unsafe.Pointer(e)}}, true
		}
		return &hnode[T]{leafmap: bitpos(h, shift), edit: edit, slots: []unsafe.Pointer{unsafe.Pointer(e)}}, true
	}
	k := t.key(e)
	if shift >= maxShift {
		i, found := t.search(n, k)
		m := own(n, edit)
		if found {
			m.slots[i] = unsafe.Pointer(e)
			return m, false
		}
		m.slots = slices.Insert(m.slots, i, unsafe.Pointer(e))
		return m, true
	}
	b := bitpos(h, shift)
	switch {
	case n.leafmap&b != 0:
		i := slot(n.leafmap, b)
		old := n.leaf(i)
		ok := t.key(old)
		if ok == k {
			m := own(n, edit)
			m.slots[i] = unsafe.Pointer(e)
			return m, false
		}
		sub := t.pair(old, t.hash(ok), e, h, shift+hbits, edit)
		m := own(n, edit)
		m.slots = slices.Delete(m.slots, i, i+1)
		m.leafmap &^= b
		m.slots = slices.Insert(m.slots, m.nleaves()+slot(m.submap, b), unsafe.Pointer(sub))
		m.submap |= b
		return m, true
	case n.submap&b != 0:
		i := slot(n.submap, b)
		old := n.sub(i)
		sub, added := t.put(old, e, h, shift+hbits, edit)
		if sub == old {
			// Changed in place: n is then owned too, as everything above
			// a trie node allocated by this transaction was copied into it.
			return n, added
		}
		m := own(n, edit)
		m.slots[m.nleaves()+i] = unsafe.Pointer(sub)
		return m, added
	default:
		m := own(n, edit)
		m.slots = slices.Insert(m.slots, slot(m.leafmap, b), unsafe.Pointer(e))
		m.leafmap |= b
		return m, true
	}
}

// pair builds the smallest sub-trie holding two entries with different keys.
func (t trie[K, T]) pair(e1 *T, h1 uint64, e2 *T, h2 uint64, shift uint, edit uint64) *hnode[T] {
	if shift >= maxShift {
		if t.key(e2) < t.key(e1) {
			e1, e2 = e2, e1
		}
		return &hnode[T]{edit: edit, slots: []unsafe.Pointer{unsafe.Pointer(e1), unsafe.Pointer(e2)}}
	}
	b1, b2 := bitpos(h1, shift), bitpos(h2, shift)
	if b1 == b2 {
		sub := t.pair(e1, h1, e2, h2, shift+hbits, edit)
		return &hnode[T]{submap: b1, edit: edit, slots: []unsafe.Pointer{unsafe.Pointer(sub)}}
	}
	if b2 < b1 {
		e1, e2 = e2, e1
	}
	return &hnode[T]{leafmap: b1 | b2, edit: edit, slots: []unsafe.Pointer{unsafe.Pointer(e1), unsafe.Pointer(e2)}}
}

// del removes the entry with key k; removed reports whether it was there.
// A sub-trie left with a single entry is folded into its parent, which keeps
// the shape canonical.
func (t trie[K, T]) del(n *hnode[T], k K, h uint64, shift uint, edit uint64) (_ *hnode[T], removed bool) {
	if n == nil {
		return nil, false
	}
	if shift >= maxShift {
		i, found := t.search(n, k)
		if !found {
			return n, false
		}
		if len(n.slots) == 1 {
			return nil, true
		}
		m := own(n, edit)
		m.slots = slices.Delete(m.slots, i, i+1)
		return m, true
	}
	b := bitpos(h, shift)
	switch {
	case n.leafmap&b != 0:
		i := slot(n.leafmap, b)
		if t.key(n.leaf(i)) != k {
			return n, false
		}
		if len(n.slots) == 1 {
			return nil, true
		}
		m := own(n, edit)
		m.slots = slices.Delete(m.slots, i, i+1)
		m.leafmap &^= b
		return m, true
	case n.submap&b != 0:
		i := slot(n.submap, b)
		old := n.sub(i)
		sub, removed := t.del(old, k, h, shift+hbits, edit)
		if !removed {
			return n, false
		}
		switch {
		case sub == nil:
			if len(n.slots) == 1 {
				return nil, true
			}
			m := own(n, edit)
			m.slots = slices.Delete(m.slots, m.nleaves()+i, m.nleaves()+i+1)
			m.submap &^= b
			return m, true
		case sub.single():
			m := own(n, edit)
			m.slots = slices.Delete(m.slots, m.nleaves()+i, m.nleaves()+i+1)
			m.submap &^= b
			m.slots = slices.Insert(m.slots, slot(m.leafmap, b), sub.slots[0])
			m.leafmap |= b
			return m, true
		case sub == old:
			return n, true
		default:
			m := own(n, edit)
			m.slots[m.nleaves()+i] = unsafe.Pointer(sub)
			return m, true
		}
	}
	return n, false
}

// each calls fn for every entry, in the trie's canonical order, until fn
// returns false.
func each[T any](n *hnode[T], fn func(*T) bool) bool {
	if n == nil {
		return true
	}
	nl := n.nleaves()
	for i := 0; i < nl; i++ {
		if !fn(n.leaf(i)) {
			return false
		}
	}
	for _, s := range n.slots[nl:] {
		if !each((*hnode[T])(s), fn) {
			return false
		}
	}
	return true
}

// FNV-1a 64 with a splitmix64 finaliser. FNV alone leaves the low bits of
// the hash depending only on the low bits of each byte, and the trie indexes
// by the low bits first.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hashString(s string) uint64 { return mix64(fnvString(fnvOffset, s)) }

func hashInt64(v int64) uint64 { return mix64(uint64(v) + 0x9e3779b97f4a7c15) }

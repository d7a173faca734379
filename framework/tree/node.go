package tree

import (
	"hash/crc64"
	"unsafe"

	"github.com/corral-dev/corral/framework/znode"
)

type nodeKind uint8

const (
	kindPersistent nodeKind = iota
	kindEphemeral
	kindContainer
	kindTTL
	numKinds
)

// node.bits packs the name length, the kind and flags.
const (
	maxNameLen  = 1<<24 - 1
	kindShift   = 24
	flagNilData = 1 << 28 // the node's data is null (jute length -1), not empty
)

// node is one znode, 96 bytes on 64-bit platforms. It stores its name, not
// its path, and keeps name and data in one allocation: buf holds the name
// followed by dlen bytes of data. A node is immutable once published; a
// transaction changes a copy (see txn.own). Only tries are edited in place.
type node struct {
	buf  *byte
	acl  *aclList
	kids *hnode[node]

	czxid int64
	mzxid int64
	pzxid int64
	ctime int64
	mtime int64
	// owner is the session of an ephemeral node and the TTL (ms) of a TTL
	// node; ZooKeeper folds both into ephemeralOwner, Corral keeps the kind
	// apart so any session id is allowed.
	owner int64

	dlen     uint32
	bits     uint32 // name length | kind<<kindShift | flags
	version  int32
	cversion int32 // creates under this node ever (ZooKeeper's stored cversion)
	aversion int32
	nkids    int32
}

var childTrie = trie[string, node]{key: (*node).name, hash: hashString}

func (n *node) nlen() uint32 { return n.bits & maxNameLen }

func (n *node) name() string { return unsafe.String(n.buf, n.nlen()) }

func (n *node) kind() nodeKind { return nodeKind(n.bits >> kindShift & 0xf) }

func (n *node) setKind(k nodeKind) { n.bits = n.bits&^(0xf<<kindShift) | uint32(k)<<kindShift }

func (n *node) nilData() bool { return n.bits&flagNilData != 0 }

// data returns the node's data without copying. Callers must not modify it.
func (n *node) data() []byte {
	if n.nilData() {
		return nil
	}
	if n.dlen == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(n.buf), n.nlen())), n.dlen)
}

// setLengths records the name length (at most maxNameLen) and data length.
func (n *node) setLengths(nlen int, data []byte) {
	n.bits = n.bits&^(maxNameLen|flagNilData) | uint32(nlen)
	if data == nil {
		n.bits |= flagNilData
	}
	n.dlen = uint32(len(data))
}

// setNameData stores copies of name and data in a fresh buffer; the old
// buffer may belong to a published version and is never written.
func (n *node) setNameData(name string, data []byte) {
	n.setLengths(len(name), data)
	if len(name)+len(data) == 0 {
		n.buf = nil
		return
	}
	b := make([]byte, len(name)+len(data))
	copy(b, name)
	copy(b[len(name):], data)
	n.buf = unsafe.SliceData(b)
}

func (n *node) child(name string) *node {
	return childTrie.get(n.kids, name, hashString(name))
}

// stat renders the node's Stat as ZooKeeper's DataNode.copyStat does:
// cversion is reported as 2*creates - numChildren (creates plus deletes),
// and containers and TTL nodes show ephemeralOwner 0.
func (n *node) stat() znode.Stat {
	s := znode.Stat{
		Czxid:       n.czxid,
		Mzxid:       n.mzxid,
		Ctime:       n.ctime,
		Mtime:       n.mtime,
		Version:     n.version,
		Cversion:    n.cversion*2 - n.nkids,
		Aversion:    n.aversion,
		DataLength:  int32(n.dlen),
		NumChildren: n.nkids,
		Pzxid:       n.pzxid,
	}
	if n.kind() == kindEphemeral {
		s.EphemeralOwner = n.owner
	}
	return s
}

// The digest is the sum, over all nodes, of a data part and a metadata part
// (each keyed by the path). Splitting them lets a child create or delete
// re-hash only the parent's metadata, not its data.

var crcTable = crc64.MakeTable(crc64.ECMA)

func dataHash(path string, n *node) uint64 {
	h := fnvString(fnvOffset^'D', path)
	d := crc64.Checksum(n.data(), crcTable)
	return mix64(h ^ mix64(d+uint64(n.dlen)<<1+uint64(n.bits>>28&1)))
}

func metaHash(path string, n *node) uint64 {
	h := fnvString(fnvOffset^'M', path)
	for _, v := range [...]uint64{
		uint64(n.czxid), uint64(n.mzxid), uint64(n.pzxid), uint64(n.ctime), uint64(n.mtime),
		uint64(n.owner), uint64(uint32(n.version)), uint64(uint32(n.cversion)),
		uint64(uint32(n.aversion)), uint64(uint32(n.nkids)), uint64(n.kind()), n.acl.hash,
	} {
		h = mix64(h ^ v)
	}
	return h
}

func nodeHash(path string, n *node) uint64 { return dataHash(path, n) + metaHash(path, n) }

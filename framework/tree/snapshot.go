package tree

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/corral-dev/corral/framework/znode"
)

// Snapshot stream format, version 1. Integers are varints (zig-zag for
// signed values) unless noted; strings and byte slices are a length then
// the bytes.
//
//	header  "CRLTREE\x00" uvarint(1)
//	'A'     an ACL list, numbered from 0 in order of appearance:
//	        uvarint(count) then count × (varint perms, string scheme, string id)
//	'N'     a node, parents before children (pre-order):
//	        string path, varint len(data) (-1 = null data), data,
//	        uvarint acl, byte kind, varint owner, varint czxid, mzxid,
//	        pzxid, ctime, mtime, varint version, cversion (creates ever,
//	        not the reported value), aversion, uvarint numChildren
//	'E'     end: uvarint nodes, uint64 LE digest, uint32 LE CRC-32C of every
//	        byte from the header up to (not including) the CRC
//
// The derived state (ephemeral and container indexes, counts, digest) is
// rebuilt on restore, and the node count, child counts, digest and CRC are
// all checked.
const (
	snapMagic   = "CRLTREE\x00"
	snapVersion = 1

	recACL  = 'A'
	recNode = 'N'
	recEnd  = 'E'

	maxPathLen  = 1 << 24
	maxACLLen   = 1 << 20
	maxIDLen    = 1 << 20
	maxDataLen  = math.MaxInt32
	eagerAllocs = 1 << 20 // larger lengths are read incrementally, so garbage cannot force a huge allocation
)

// ErrBadSnapshot is wrapped by every error Restore returns for a stream
// that is not a complete, intact tree snapshot.
var ErrBadSnapshot = errors.New("tree: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapWriter struct {
	w     *bufio.Writer
	crc   uint32
	n     int64
	err   error
	scr   []byte
	acls  map[*aclList]uint64
	path  []byte
	count uint64
}

func (w *snapWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc = crc32.Update(w.crc, castagnoli, b)
	m, err := w.w.Write(b)
	w.n += int64(m)
	w.err = err
}

// WriteTo streams the snapshot's tree to w. It reads only immutable data,
// so it may run while the tree keeps applying writes.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	sw := &snapWriter{w: bufio.NewWriterSize(w, 64<<10), acls: make(map[*aclList]uint64)}
	sw.write([]byte(snapMagic))
	sw.write(binary.AppendUvarint(nil, snapVersion))
	sw.path = append(sw.path, '/')
	sw.walk(s.v.root)

	b := append([]byte{recEnd}, binary.AppendUvarint(nil, sw.count)...)
	b = binary.LittleEndian.AppendUint64(b, s.v.digest)
	sw.write(b)
	if sw.err == nil {
		var c [4]byte
		binary.LittleEndian.PutUint32(c[:], sw.crc)
		m, err := sw.w.Write(c[:])
		sw.n += int64(m)
		sw.err = err
	}
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	return sw.n, sw.err
}

func (w *snapWriter) walk(n *node) {
	w.node(n)
	plen := len(w.path)
	each(n.kids, func(c *node) bool {
		w.path = w.path[:plen]
		if plen > 1 {
			w.path = append(w.path, '/')
		}
		w.path = append(w.path, c.name()...)
		w.walk(c)
		return w.err == nil
	})
	w.path = w.path[:plen]
}

func (w *snapWriter) node(n *node) {
	id, ok := w.acls[n.acl]
	if !ok {
		id = uint64(len(w.acls))
		w.acls[n.acl] = id
		b := append(w.scr[:0], recACL)
		b = binary.AppendUvarint(b, uint64(len(n.acl.acl)))
		for _, a := range n.acl.acl {
			b = binary.AppendVarint(b, int64(a.Perms))
			b = appendString(b, a.Scheme)
			b = appendString(b, a.ID)
		}
		w.scr = b
		w.write(b)
	}
	b := append(w.scr[:0], recNode)
	b = binary.AppendUvarint(b, uint64(len(w.path)))
	b = append(b, w.path...)
	data := n.data()
	if data == nil {
		b = binary.AppendVarint(b, -1)
	} else {
		b = binary.AppendVarint(b, int64(len(data)))
	}
	w.scr = b
	w.write(b)
	w.write(data)
	b = binary.AppendUvarint(w.scr[:0], id)
	b = append(b, byte(n.kind()))
	for _, v := range [...]int64{n.owner, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime,
		int64(n.version), int64(n.cversion), int64(n.aversion)} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(n.nkids))
	w.scr = b
	w.write(b)
	w.count++
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// snapReader reads the stream and keeps the CRC of everything it consumed.
type snapReader struct {
	r   *bufio.Reader
	crc uint32
}

func (d *snapReader) ReadByte() (byte, error) {
	c, err := d.r.ReadByte()
	if err == nil {
		// crc32.Update for one byte, without a slice.
		x := ^d.crc
		x = castagnoli[byte(x)^c] ^ (x >> 8)
		d.crc = ^x
	}
	return c, err
}

func (d *snapReader) uvarint() (uint64, error) { return binary.ReadUvarint(d) }

func (d *snapReader) varint() (int64, error) { return binary.ReadVarint(d) }

func (d *snapReader) int32(what string) (int32, error) {
	v, err := d.varint()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: %s %d out of range", ErrBadSnapshot, what, v)
	}
	return int32(v), nil
}

func (d *snapReader) bytes(n int) ([]byte, error) {
	var b []byte
	if n <= eagerAllocs {
		b = make([]byte, n)
		if _, err := io.ReadFull(d.r, b); err != nil {
			return nil, err
		}
	} else {
		var buf bytes.Buffer
		m, err := buf.ReadFrom(io.LimitReader(d.r, int64(n)))
		if err != nil {
			return nil, err
		}
		if m != int64(n) {
			return nil, io.ErrUnexpectedEOF
		}
		b = buf.Bytes()
	}
	d.crc = crc32.Update(d.crc, castagnoli, b)
	return b, nil
}

func (d *snapReader) string(limit uint64, what string) (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("%w: %s length %d too large", ErrBadSnapshot, what, n)
	}
	b, err := d.bytes(int(n))
	return string(b), err
}

// Restore replaces the whole tree with a snapshot written by WriteTo. The
// snapshot must be the rest of r: Restore may read past its end. On error
// the tree is unchanged.
func (t *Tree) Restore(r io.Reader) error {
	x := t.begin(Ctx{})
	x.v = version{}
	d := &snapReader{r: bufio.NewReaderSize(r, 64<<10)}
	count, err := d.restore(x)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated after %d nodes (no end marker)", ErrBadSnapshot, count)
		}
		if !errors.Is(err, ErrBadSnapshot) {
			return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		return err
	}
	x.commit()
	return nil
}

type restoreFrame struct {
	n    *node
	path string
	want int32
}

func (d *snapReader) restore(x *txn) (count uint64, err error) {
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(d.r, magic); err != nil {
		return 0, err
	}
	d.crc = crc32.Update(d.crc, castagnoli, magic)
	if string(magic) != snapMagic {
		return 0, fmt.Errorf("%w: not a tree snapshot (magic %q)", ErrBadSnapshot, magic)
	}
	ver, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if ver != snapVersion {
		return 0, fmt.Errorf("%w: unsupported format version %d", ErrBadSnapshot, ver)
	}

	var acls []*aclList
	var stack []restoreFrame
	finish := func() error {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.n.nkids != f.want {
			return fmt.Errorf("%w: %s has %d children, record says %d", ErrBadSnapshot, f.path, f.n.nkids, f.want)
		}
		x.v.digest += nodeHash(f.path, f.n)
		return nil
	}
	for {
		tag, err := d.ReadByte()
		if err != nil {
			return count, err
		}
		switch tag {
		case recACL:
			n, err := d.uvarint()
			if err != nil {
				return count, err
			}
			if n > maxACLLen {
				return count, fmt.Errorf("%w: ACL list of %d entries", ErrBadSnapshot, n)
			}
			list := make([]znode.ACL, 0, min(n, 16)) // grown as read: n may be garbage
			for range n {
				var e znode.ACL
				if e.Perms, err = d.int32("perms"); err != nil {
					return count, err
				}
				if e.Scheme, err = d.string(maxIDLen, "scheme"); err != nil {
					return count, err
				}
				if e.ID, err = d.string(maxIDLen, "id"); err != nil {
					return count, err
				}
				list = append(list, e)
			}
			acls = append(acls, x.t.acls.intern(list))

		case recNode:
			path, err := d.string(maxPathLen, "path")
			if err != nil {
				return count, err
			}
			n, want, err := d.nodeBody(znode.Base(path), acls)
			if err != nil {
				return count, fmt.Errorf("%s: %w", path, err)
			}
			if count == 0 {
				if path != "/" {
					return count, fmt.Errorf("%w: first node is %q, not /", ErrBadSnapshot, path)
				}
				x.v.root = n
			} else {
				if path == "/" || znode.ValidatePath(path, false) != nil {
					return count, fmt.Errorf("%w: bad node path %q", ErrBadSnapshot, path)
				}
				parent := znode.Parent(path)
				for len(stack) > 0 && stack[len(stack)-1].path != parent {
					if err := finish(); err != nil {
						return count, err
					}
				}
				if len(stack) == 0 {
					return count, fmt.Errorf("%w: %s comes without its parent", ErrBadSnapshot, path)
				}
				p := stack[len(stack)-1].n
				name := n.name()
				var added bool
				p.kids, added = childTrie.put(p.kids, n, hashString(name), 0, x.edit)
				if !added {
					return count, fmt.Errorf("%w: duplicate node %s", ErrBadSnapshot, path)
				}
				p.nkids++
			}
			stack = append(stack, restoreFrame{n: n, path: path, want: want})
			count++
			x.v.nodes++
			x.v.dataBytes += int64(len(path)) + int64(n.dlen)
			switch n.kind() {
			case kindEphemeral:
				x.addEphemeral(n.owner, path)
			case kindContainer, kindTTL:
				x.v.reap, _ = stringTrie.put(x.v.reap, &path, hashString(path), 0, x.edit)
			}

		case recEnd:
			for len(stack) > 0 {
				if err := finish(); err != nil {
					return count, err
				}
			}
			want, err := d.uvarint()
			if err != nil {
				return count, err
			}
			var tail [12]byte
			if _, err := io.ReadFull(d.r, tail[:8]); err != nil {
				return count, err
			}
			d.crc = crc32.Update(d.crc, castagnoli, tail[:8])
			sum := d.crc
			if _, err := io.ReadFull(d.r, tail[8:]); err != nil {
				return count, err
			}
			if got := binary.LittleEndian.Uint32(tail[8:]); got != sum {
				return count, fmt.Errorf("%w: CRC mismatch (stored %08x, computed %08x)", ErrBadSnapshot, got, sum)
			}
			if x.v.root == nil {
				return count, fmt.Errorf("%w: no nodes", ErrBadSnapshot)
			}
			if want != count {
				return count, fmt.Errorf("%w: %d nodes read, end marker says %d", ErrBadSnapshot, count, want)
			}
			if digest := binary.LittleEndian.Uint64(tail[:8]); digest != x.v.digest {
				return count, fmt.Errorf("%w: digest mismatch (stored %016x, computed %016x)", ErrBadSnapshot, digest, x.v.digest)
			}
			return count, nil

		default:
			return count, fmt.Errorf("%w: unknown record tag 0x%02x after %d nodes", ErrBadSnapshot, tag, count)
		}
	}
}

// nodeBody reads a node record after its path (the caller checks the
// path once the node is read).
func (d *snapReader) nodeBody(name string, acls []*aclList) (*node, int32, error) {
	dlen, err := d.varint()
	if err != nil {
		return nil, 0, err
	}
	if dlen < -1 || dlen > maxDataLen {
		return nil, 0, fmt.Errorf("%w: data length %d", ErrBadSnapshot, dlen)
	}
	n := &node{}
	switch {
	case dlen == -1:
		n.setNameData(name, nil)
	case dlen <= eagerAllocs:
		// Read the data straight into the node's name+data buffer.
		b := make([]byte, len(name)+int(dlen))
		copy(b, name)
		if _, err := io.ReadFull(d.r, b[len(name):]); err != nil {
			return nil, 0, err
		}
		d.crc = crc32.Update(d.crc, castagnoli, b[len(name):])
		n.setLengths(len(name), b[len(name):])
		if len(b) > 0 {
			n.buf = &b[0]
		}
	default:
		data, err := d.bytes(int(dlen))
		if err != nil {
			return nil, 0, err
		}
		n.setNameData(name, data)
	}
	aclID, err := d.uvarint()
	if err != nil {
		return nil, 0, err
	}
	if aclID >= uint64(len(acls)) {
		return nil, 0, fmt.Errorf("%w: ACL #%d not defined", ErrBadSnapshot, aclID)
	}
	n.acl = acls[aclID]
	kind, err := d.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	if nodeKind(kind) >= numKinds {
		return nil, 0, fmt.Errorf("%w: node kind %d", ErrBadSnapshot, kind)
	}
	n.setKind(nodeKind(kind))
	for _, p := range []*int64{&n.owner, &n.czxid, &n.mzxid, &n.pzxid, &n.ctime, &n.mtime} {
		if *p, err = d.varint(); err != nil {
			return nil, 0, err
		}
	}
	for _, f := range []struct {
		p    *int32
		what string
	}{{&n.version, "version"}, {&n.cversion, "cversion"}, {&n.aversion, "aversion"}} {
		if *f.p, err = d.int32(f.what); err != nil {
			return nil, 0, err
		}
	}
	kids, err := d.uvarint()
	if err != nil {
		return nil, 0, err
	}
	if kids > math.MaxInt32 {
		return nil, 0, fmt.Errorf("%w: %d children", ErrBadSnapshot, kids)
	}
	return n, int32(kids), nil
}

package tree

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/corral-dev/corral/framework/znode"
)

// NodeInfo is one node of a snapshot stream, as ReadSnapshot reports it.
type NodeInfo struct {
	Path string
	// Data is nil for a node whose data is null (jute length -1), which is
	// not the same as empty.
	Data []byte
	// Stat is what a client would read: cversion as ZooKeeper reports it.
	Stat znode.Stat
	// ACL is shared by the nodes that have the same list: do not modify it.
	ACL []znode.ACL
	// Kind is "persistent", "ephemeral", "container" or "ttl". Whether a
	// node was created sequential is not stored.
	Kind string
	// TTL is a TTL node's time to live in milliseconds, 0 for other kinds.
	TTL int64
}

// SnapshotSummary is what the end of a snapshot stream records.
type SnapshotSummary struct {
	Nodes  uint64
	Digest uint64
}

var kindNames = [numKinds]string{
	kindPersistent: "persistent",
	kindEphemeral:  "ephemeral",
	kindContainer:  "container",
	kindTTL:        "ttl",
}

// ReadSnapshot decodes a stream written by Snapshot.WriteTo and calls fn
// for each node, parents before children, without building a tree: memory
// stays proportional to the depth of the tree, not its size. It checks
// what Restore checks (structure, child counts, node count, digest and the
// stream's CRC), except that a path repeated under the same parent is
// caught only through the digest. Those checks complete at the end of the
// stream, so fn may already have seen nodes of a stream that turns out to
// be bad; the error (wrapping ErrBadSnapshot) says so. An error returned by
// fn stops reading and is returned as is. ReadSnapshot may read past the
// end of the snapshot in r.
func ReadSnapshot(r io.Reader, fn func(NodeInfo) error) (SnapshotSummary, error) {
	d := &snapReader{r: bufio.NewReaderSize(r, 64<<10)}
	sum, err := d.scan(fn)
	var cb callbackError
	switch {
	case err == nil:
		return sum, nil
	case errors.As(err, &cb):
		return sum, cb.err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return sum, fmt.Errorf("%w: truncated after %d nodes (no end marker)", ErrBadSnapshot, sum.Nodes)
	case !errors.Is(err, ErrBadSnapshot):
		return sum, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return sum, err
}

// callbackError carries fn's error out of scan untouched.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

type scanFrame struct {
	path      string
	want, got uint64
}

// scan is restore without a tree: the same records and checks, with the
// digest summed as nodes arrive (using each record's child count, which the
// frame check then confirms).
func (d *snapReader) scan(fn func(NodeInfo) error) (sum SnapshotSummary, err error) {
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(d.r, magic); err != nil {
		return sum, err
	}
	d.crc = crc32.Update(d.crc, castagnoli, magic)
	if string(magic) != snapMagic {
		return sum, fmt.Errorf("%w: not a tree snapshot (magic %q)", ErrBadSnapshot, magic)
	}
	ver, err := d.uvarint()
	if err != nil {
		return sum, err
	}
	if ver != snapVersion {
		return sum, fmt.Errorf("%w: unsupported format version %d", ErrBadSnapshot, ver)
	}

	table := newACLTable() // interned like Restore's, so digests agree
	var acls []*aclList
	var stack []scanFrame
	var digest uint64
	pop := func() error {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.got != f.want {
			return fmt.Errorf("%w: %s has %d children, record says %d", ErrBadSnapshot, f.path, f.got, f.want)
		}
		return nil
	}
	for {
		tag, err := d.ReadByte()
		if err != nil {
			return sum, err
		}
		switch tag {
		case recACL:
			list, err := d.aclList()
			if err != nil {
				return sum, err
			}
			acls = append(acls, table.intern(list))

		case recNode:
			path, err := d.string(maxPathLen, "path")
			if err != nil {
				return sum, err
			}
			n, want, err := d.nodeBody(znode.Base(path), acls)
			if err != nil {
				return sum, fmt.Errorf("%s: %w", path, err)
			}
			if sum.Nodes == 0 {
				if path != "/" {
					return sum, fmt.Errorf("%w: first node is %q, not /", ErrBadSnapshot, path)
				}
			} else {
				if path == "/" || znode.ValidatePath(path, false) != nil {
					return sum, fmt.Errorf("%w: bad node path %q", ErrBadSnapshot, path)
				}
				parent := znode.Parent(path)
				for len(stack) > 0 && stack[len(stack)-1].path != parent {
					if err := pop(); err != nil {
						return sum, err
					}
				}
				if len(stack) == 0 {
					return sum, fmt.Errorf("%w: %s comes without its parent", ErrBadSnapshot, path)
				}
				stack[len(stack)-1].got++
			}
			stack = append(stack, scanFrame{path: path, want: uint64(want)})
			sum.Nodes++
			n.nkids = want
			digest += nodeHash(path, n)
			info := NodeInfo{Path: path, Data: n.data(), Stat: n.stat(), ACL: n.acl.acl, Kind: kindNames[n.kind()]}
			if n.kind() == kindTTL {
				info.TTL = n.owner
			}
			if err := fn(info); err != nil {
				return sum, callbackError{err}
			}

		case recEnd:
			for len(stack) > 0 {
				if err := pop(); err != nil {
					return sum, err
				}
			}
			want, err := d.uvarint()
			if err != nil {
				return sum, err
			}
			var tail [12]byte
			if _, err := io.ReadFull(d.r, tail[:8]); err != nil {
				return sum, err
			}
			d.crc = crc32.Update(d.crc, castagnoli, tail[:8])
			crc := d.crc
			if _, err := io.ReadFull(d.r, tail[8:]); err != nil {
				return sum, err
			}
			if got := binary.LittleEndian.Uint32(tail[8:]); got != crc {
				return sum, fmt.Errorf("%w: CRC mismatch (stored %08x, computed %08x)", ErrBadSnapshot, got, crc)
			}
			if sum.Nodes == 0 {
				return sum, fmt.Errorf("%w: no nodes", ErrBadSnapshot)
			}
			if want != sum.Nodes {
				return sum, fmt.Errorf("%w: %d nodes read, end marker says %d", ErrBadSnapshot, sum.Nodes, want)
			}
			sum.Digest = binary.LittleEndian.Uint64(tail[:8])
			if sum.Digest != digest {
				return sum, fmt.Errorf("%w: digest mismatch (stored %016x, computed %016x)", ErrBadSnapshot, sum.Digest, digest)
			}
			return sum, nil

		default:
			return sum, fmt.Errorf("%w: unknown record tag 0x%02x after %d nodes", ErrBadSnapshot, tag, sum.Nodes)
		}
	}
}

// aclList reads an 'A' record's body, as Restore does.
func (d *snapReader) aclList() ([]znode.ACL, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxACLLen {
		return nil, fmt.Errorf("%w: ACL list of %d entries", ErrBadSnapshot, n)
	}
	list := make([]znode.ACL, 0, min(n, 16)) // grown as read: n may be garbage
	for range n {
		var e znode.ACL
		if e.Perms, err = d.int32("perms"); err != nil {
			return nil, err
		}
		if e.Scheme, err = d.string(maxIDLen, "scheme"); err != nil {
			return nil, err
		}
		if e.ID, err = d.string(maxIDLen, "id"); err != nil {
			return nil, err
		}
		list = append(list, e)
	}
	return list, nil
}

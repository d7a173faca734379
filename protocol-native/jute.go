package protocolnative

// Jute binary archive primitives (BinaryInputArchive / BinaryOutputArchive):
// big-endian ints, one-byte booleans, int32-length-prefixed buffers and
// strings (-1 = null) and int32-count-prefixed vectors (-1 = null).
//
// The codec lives in this package rather than internal/jute so that
// `go test -fuzz ./protocol-native/...` matches exactly one package.

import (
	"encoding/binary"

	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// Marshalling errors are preallocated: a hostile client must not make us
// allocate or format on the error path either.
var (
	errShort       = &zkerr.Error{Code: zkerr.MarshallingError, Detail: "record truncated"}
	errBadLength   = &zkerr.Error{Code: zkerr.MarshallingError, Detail: "invalid length"}
	errBadMultiOp  = &zkerr.Error{Code: zkerr.MarshallingError, Detail: "invalid type of op in multi"}
	errMixedOps    = &zkerr.Error{Code: zkerr.MarshallingError, Detail: "mixing different kind of ops"}
	errBadResponse = &zkerr.Error{Code: zkerr.MarshallingError, Detail: "response record does not match its opcode"}
	errUnknownOp   = &zkerr.Error{Code: zkerr.Unimplemented, Detail: "unknown or invalid opcode"}
)

// Record sizes; the minimums bound vector counts before allocating.
const (
	minStringLen = 4         // int32 length
	minACLLen    = 4 + 4 + 4 // perms + scheme + id
	statLen      = 68        // znode.Stat on the wire
	replyHdrLen  = 4 + 8 + 4 // xid, zxid, err
	frameLenSize = 4         // the int32 frame length
	passwdLen    = 16        // session password
)

// decoder reads jute primitives from a byte slice. The first error sticks:
// later reads return zero values, so record decoders need no error checks
// between fields. canonical turns false when the input used an encoding our
// encoder would not produce (null string, boolean byte > 1, trailing bytes
// or unusual multi header fields), which the fuzz test uses.
type decoder struct {
	b         []byte
	off       int
	err       error
	canonical bool
}

func newDecoder(b []byte) decoder { return decoder{b: b, canonical: true} }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) int32() int32 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 4 {
		d.fail(errShort)
		return 0
	}
	v := int32(binary.BigEndian.Uint32(d.b[d.off:]))
	d.off += 4
	return v
}

func (d *decoder) int64() int64 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 8 {
		d.fail(errShort)
		return 0
	}
	v := int64(binary.BigEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return v
}

// bool follows Java's DataInput.readBoolean: any non-zero byte is true.
func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if d.remaining() < 1 {
		d.fail(errShort)
		return false
	}
	v := d.b[d.off]
	d.off++
	if v > 1 {
		d.canonical = false
	}
	return v != 0
}

// raw returns the next length-prefixed byte run without copying; null is
// reported separately. The length is checked against what is left before
// anything is sliced.
func (d *decoder) raw() (p []byte, null bool) {
	n := d.int32()
	if d.err != nil {
		return nil, false
	}
	if n == -1 {
		return nil, true
	}
	if n < 0 || int(n) > d.remaining() {
		d.fail(errBadLength)
		return nil, false
	}
	p = d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p, false
}

// string reads a ustring; null becomes "" (Go has no null string).
func (d *decoder) string() string {
	p, null := d.raw()
	if null {
		d.canonical = false
	}
	if len(p) == 0 {
		return ""
	}
	return string(p)
}

// buffer reads a buffer into a fresh slice (the frame buffer is reused), so
// nil means null and a zero-length non-nil slice means empty.
func (d *decoder) buffer() []byte {
	p, null := d.raw()
	if null || d.err != nil {
		return nil
	}
	out := make([]byte, len(p))
	copy(out, p)
	return out
}

// count reads a vector count and checks that count elements of at least
// minElem bytes each fit in what is left. -1 (null) returns -1.
func (d *decoder) count(minElem int) int {
	n := d.int32()
	if d.err != nil {
		return 0
	}
	if n == -1 {
		return -1
	}
	if n < 0 || int(n) > d.remaining()/minElem {
		d.fail(errBadLength)
		return 0
	}
	return int(n)
}

func (d *decoder) strings() []string {
	n := d.count(minStringLen)
	if n < 0 || d.err != nil {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.string())
	}
	if d.err != nil {
		return nil
	}
	return out
}

func (d *decoder) acls() []znode.ACL {
	n := d.count(minACLLen)
	if n < 0 || d.err != nil {
		return nil
	}
	out := make([]znode.ACL, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		perms := d.int32()
		scheme := d.string()
		id := d.string()
		out = append(out, znode.ACL{Perms: perms, Scheme: scheme, ID: id})
	}
	if d.err != nil {
		return nil
	}
	return out
}

func (d *decoder) stat() (s znode.Stat) {
	if d.err != nil {
		return s
	}
	if d.remaining() < statLen {
		d.fail(errShort)
		return s
	}
	s.Czxid = d.int64()
	s.Mzxid = d.int64()
	s.Ctime = d.int64()
	s.Mtime = d.int64()
	s.Version = d.int32()
	s.Cversion = d.int32()
	s.Aversion = d.int32()
	s.EphemeralOwner = d.int64()
	s.DataLength = d.int32()
	s.NumChildren = d.int32()
	s.Pzxid = d.int64()
	return s
}

// finish reports the sticky error; trailing bytes are ignored as ZooKeeper
// does (records carry no length of their own) but make the input
// non-canonical.
func (d *decoder) finish() error {
	if d.err == nil && d.remaining() != 0 {
		d.canonical = false
	}
	return d.err
}

// Encoders append to b and return it, so a caller that reuses b allocates
// nothing once b has grown.

func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }

func appendInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) []byte {
	b = appendInt32(b, int32(len(s)))
	return append(b, s...)
}

// appendBuffer writes nil as null (-1), as ZooKeeper does for null data.
func appendBuffer(b []byte, p []byte) []byte {
	if p == nil {
		return appendInt32(b, -1)
	}
	b = appendInt32(b, int32(len(p)))
	return append(b, p...)
}

// appendStrings writes a vector<ustring>. nullIfNil selects null for a nil
// slice (request side, to round-trip exactly); replies always send a
// vector, because Java clients hand a null list straight to user code.
func appendStrings(b []byte, ss []string, nullIfNil bool) []byte {
	if ss == nil && nullIfNil {
		return appendInt32(b, -1)
	}
	b = appendInt32(b, int32(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendACLs(b []byte, acls []znode.ACL, nullIfNil bool) []byte {
	if acls == nil && nullIfNil {
		return appendInt32(b, -1)
	}
	b = appendInt32(b, int32(len(acls)))
	for i := range acls {
		b = appendInt32(b, acls[i].Perms)
		b = appendString(b, acls[i].Scheme)
		b = appendString(b, acls[i].ID)
	}
	return b
}

// appendStat writes the 68-byte Stat in wire order (pzxid last).
func appendStat(b []byte, s *znode.Stat) []byte {
	b = appendInt64(b, s.Czxid)
	b = appendInt64(b, s.Mzxid)
	b = appendInt64(b, s.Ctime)
	b = appendInt64(b, s.Mtime)
	b = appendInt32(b, s.Version)
	b = appendInt32(b, s.Cversion)
	b = appendInt32(b, s.Aversion)
	b = appendInt64(b, s.EphemeralOwner)
	b = appendInt32(b, s.DataLength)
	b = appendInt32(b, s.NumChildren)
	return appendInt64(b, s.Pzxid)
}

// beginFrame reserves the frame length; endFrame fills it in.
func beginFrame(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0), len(b)
}

func endFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-frameLenSize))
	return b
}

package storagebolt

// The write-ahead log.
//
// A segment is a file <dir>/<seq of its first record, 16 hex digits>.wal,
// preallocated (see preallocate) and holding records back to back:
//
//	1<<31 | len u32 | CRC32C of that u32 | CRC32C of the body u32 | body (len bytes) | 0xC5
//
// The length has a checksum of its own, so a length that passes it and
// still runs past the end of the file is a write cut short, not damage. The
// set top bit and the trailer make a record's first and last byte
// non-zero, so however a record falls across sectors, a written sector of
// it is never all zeros (see tornFrame). The body is
//
//	seq u64 | kind u8 | ...
//	kind 1 (batch):   truncateFrom u64 | n u32 | first index u64 (if n > 0) |
//	                  n × (len u32 | entry) | m u32 | m × (len u16 | key | len u32 | value)
//	kind 2 (compact): upTo u64
//
// Entries and state values are logfmt's encodings, the very bytes the
// database stores, so a checkpoint writes them as they are. Records are
// numbered consecutively across segments; a gap in the numbers is a lost
// record. Never-written space reads as zeros, so an all-zero header is the
// end of a segment.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/fsutil"
	"github.com/corral-dev/corral/framework/storage/logfmt"
)

const (
	walExt    = ".wal"
	walHeader = 12
	walMarker = 1 << 31 // set in the length field
	walTail   = 0xC5    // the byte after the body
	// walMinBody is the smallest body: seq and kind.
	walMinBody = 8 + 1
	// walMaxBody fits the length field beside its marker; bolt refuses
	// values this large anyway.
	walMaxBody = walMarker - 1
	// sectorSize is the unit a disk writes whole or not at all.
	sectorSize = 512

	recBatch   byte = 1
	recCompact byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walOp is one record: a batch or a compaction.
type walOp struct {
	seq     uint64
	compact bool
	upTo    uint64   // compact: CompactPrefix's argument
	trunc   uint64   // batch: TruncateFrom
	first   uint64   // index of ents[0]
	ents    [][]byte // logfmt-encoded entries, contiguous
	keys    []string // state keys, with vals
	vals    [][]byte // logfmt-encoded state values
}

func compactOp(upTo uint64) walOp { return walOp{compact: true, upTo: upTo} }

// batchOp encodes a checked batch. It copies everything: the caller may
// reuse the batch's buffers once Write returns.
func batchOp(b storage.Batch) (walOp, error) {
	o := walOp{trunc: b.TruncateFrom}
	size := walMinBody + 8 + 4 + 8 + 4
	if len(b.Entries) > 0 {
		o.first = b.Entries[0].Index
		o.ents = make([][]byte, len(b.Entries))
		for i, e := range b.Entries {
			o.ents[i] = logfmt.EncodeEntry(e)
			size += 4 + len(o.ents[i])
		}
	}
	if len(b.State) > 0 {
		o.keys = make([]string, 0, len(b.State))
		o.vals = make([][]byte, 0, len(b.State))
		for k, v := range b.State {
			o.keys = append(o.keys, k)
			o.vals = append(o.vals, logfmt.EncodeState(k, v))
			size += 2 + len(k) + 4 + 4 + len(v)
		}
	}
	if size > walMaxBody {
		return walOp{}, fmt.Errorf("storage.bolt: batch of %d bytes is larger than the write-ahead log's %d-byte record limit", size, walMaxBody)
	}
	return o, nil
}

// checkBatch is the batch the bounds rules need to replay o: indexes and
// state keys, no data.
func (o *walOp) checkBatch() storage.Batch {
	b := storage.Batch{TruncateFrom: o.trunc}
	if len(o.ents) > 0 {
		b.Entries = make([]storage.LogEntry, len(o.ents))
		for i := range b.Entries {
			b.Entries[i].Index = o.first + uint64(i)
		}
	}
	if len(o.keys) > 0 {
		b.State = make(map[string][]byte, len(o.keys))
		for _, k := range o.keys {
			b.State[k] = nil
		}
	}
	return b
}

// memSize estimates the memory o holds in the overlay.
func (o *walOp) memSize() int64 {
	n := int64(64)
	for _, v := range o.ents {
		n += int64(len(v)) + 24
	}
	for i, k := range o.keys {
		n += int64(len(k)+len(o.vals[i])) + 64
	}
	return n
}

// appendRecord appends o as one framed record.
func (o *walOp) appendRecord(buf []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, walHeader)...)
	buf = binary.BigEndian.AppendUint64(buf, o.seq)
	if o.compact {
		buf = append(buf, recCompact)
		buf = binary.BigEndian.AppendUint64(buf, o.upTo)
	} else {
		buf = append(buf, recBatch)
		buf = binary.BigEndian.AppendUint64(buf, o.trunc)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(o.ents)))
		if len(o.ents) > 0 {
			buf = binary.BigEndian.AppendUint64(buf, o.first)
		}
		for _, v := range o.ents {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(o.keys)))
		for i, k := range o.keys {
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(k)))
			buf = append(buf, k...)
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(o.vals[i])))
			buf = append(buf, o.vals[i]...)
		}
	}
	binary.BigEndian.PutUint32(buf[start:], walMarker|uint32(len(buf)-start-walHeader))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.BigEndian.PutUint32(buf[start+8:], crc32.Checksum(buf[start+walHeader:], castagnoli))
	return append(buf, walTail)
}

// decoder reads big-endian fields, remembering the first overrun.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() int {
	if v := d.take(2); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (d *decoder) u32() int {
	if v := d.take(4); v != nil {
		return int(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// decodeOp decodes a body whose checksum has been checked. The op's
// values alias body.
func decodeOp(body []byte) (walOp, error) {
	d := decoder{b: body}
	o := walOp{seq: d.u64()}
	switch kind := d.u8(); kind {
	case recCompact:
		o.compact = true
		o.upTo = d.u64()
	case recBatch:
		o.trunc = d.u64()
		n := d.u32()
		if n > len(d.b)/4 {
			return walOp{}, fmt.Errorf("%d entries in a %d-byte record", n, len(body))
		}
		if n > 0 {
			o.first = d.u64()
			o.ents = make([][]byte, n)
			for i := range o.ents {
				o.ents[i] = d.take(d.u32())
			}
		}
		m := d.u32()
		if m > len(d.b)/6 {
			return walOp{}, fmt.Errorf("%d state values in a %d-byte record", m, len(body))
		}
		for range m {
			o.keys = append(o.keys, string(d.take(d.u16())))
			o.vals = append(o.vals, d.take(d.u32()))
		}
	default:
		if !d.bad {
			return walOp{}, fmt.Errorf("unknown record kind %d", kind)
		}
	}
	if d.bad {
		return walOp{}, errors.New("record body cut short")
	}
	if len(d.b) != 0 {
		return walOp{}, fmt.Errorf("%d stray bytes after the record", len(d.b))
	}
	return o, nil
}

// segment is an open WAL segment file, written only by the writer
// goroutine.
type segment struct {
	path  string
	first uint64 // seq of its first record, its name
	f     *os.File
	size  int64 // bytes of records written, where the next one goes
}

func segmentName(first uint64) string { return fmt.Sprintf("%016x%s", first, walExt) }

// createSegment creates and preallocates the segment whose first record
// will be first, and makes its directory entry durable, so that a record
// synced into it survives a crash.
func createSegment(dir string, first uint64, prealloc int64) (*segment, error) {
	path := filepath.Join(dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage.bolt: create WAL segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("storage.bolt: create WAL segment %s: %w", path, err)
	}
	if err := preallocate(f, prealloc); err != nil {
		return fail(err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fail(err)
	}
	return &segment{path: path, first: first, f: f}, nil
}

func (g *segment) close() error {
	if g.f == nil {
		return nil
	}
	err := g.f.Close()
	g.f = nil
	return err
}

// segFile is a segment found on disk.
type segFile struct {
	path  string
	first uint64
}

// listSegments returns the segments in dir, oldest first.
func listSegments(dir string) ([]segFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage.bolt: list WAL segments: %w", err)
	}
	var segs []segFile
	for _, e := range ents {
		name := e.Name()
		hex, ok := strings.CutSuffix(name, walExt)
		if !ok || len(hex) != 16 {
			continue
		}
		first, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		path := filepath.Join(dir, name)
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("storage.bolt: WAL segment %s is not a regular file: %w", path, storage.ErrCorrupt)
		}
		segs = append(segs, segFile{path: path, first: first})
	}
	slices.SortFunc(segs, func(a, b segFile) int { return compareU64(a.first, b.first) })
	return segs, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanSegment calls fn for each record of the segment at path, whose first
// record must be want, and returns the seq after its last record. A record
// that is cut short or fails its checksum is corruption (an error wrapping
// storage.ErrCorrupt naming the file and offset), except in the newest
// segment (last) where it can be a write a crash tore: there, if it looks
// torn (see tornFrame), scanning stops before it and torn is its offset.
// torn is -1 when the segment ended cleanly.
func scanSegment(path string, want uint64, last bool, fn func(op walOp, off int64) error) (next uint64, torn int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, -1, fmt.Errorf("storage.bolt: open WAL segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, -1, fmt.Errorf("storage.bolt: WAL segment: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 64<<10)
	corrupt := func(off int64, format string, args ...any) error {
		return fmt.Errorf("storage.bolt: WAL segment %s: record %d at offset %d: %s: %w",
			path, want, off, fmt.Sprintf(format, args...), storage.ErrCorrupt)
	}
	var hdr [walHeader]byte
	for off := int64(0); ; {
		switch _, err := io.ReadFull(r, hdr[:]); {
		case err == io.EOF:
			return want, -1, nil
		case err == io.ErrUnexpectedEOF:
			if last {
				return want, off, nil
			}
			return 0, -1, corrupt(off, "header cut short by the end of the file")
		case err != nil:
			return 0, -1, fmt.Errorf("storage.bolt: read WAL segment %s: %w", path, err)
		}
		if hdr == [walHeader]byte{} {
			// Preallocated space never written: the end.
			return want, -1, nil
		}
		field := binary.BigEndian.Uint32(hdr[:4])
		n := int64(field &^ walMarker)
		if crc32.Checksum(hdr[:4], castagnoli) != binary.BigEndian.Uint32(hdr[4:]) || field&walMarker == 0 || n < walMinBody {
			if last && tornFrame(hdr[:], off) {
				return want, off, nil
			}
			return 0, -1, corrupt(off, "bad length field %#x%s", field, notTorn(last))
		}
		if n+1 > size-off-walHeader {
			// The length checks out: a crash while the file grew past its
			// preallocation.
			if last {
				return want, off, nil
			}
			return 0, -1, corrupt(off, "%d-byte body runs past the end of the file", n)
		}
		frame := make([]byte, walHeader+n+1)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(r, frame[walHeader:]); err != nil {
			return 0, -1, fmt.Errorf("storage.bolt: read WAL segment %s: %w", path, err)
		}
		body := frame[walHeader : walHeader+n]
		if frame[len(frame)-1] != walTail || crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(frame[8:]) {
			if last && tornFrame(frame, off) {
				return want, off, nil
			}
			return 0, -1, corrupt(off, "checksum mismatch%s", notTorn(last))
		}
		op, err := decodeOp(body)
		if err != nil {
			return 0, -1, corrupt(off, "%v", err)
		}
		if op.seq != want {
			return 0, -1, corrupt(off, "holds record %d", op.seq)
		}
		if err := fn(op, off); err != nil {
			return 0, -1, err
		}
		want++
		off += int64(len(frame))
	}
}

// notTorn says why a bad record in the newest segment was not cut off.
func notTorn(last bool) string {
	if last {
		return " (not a torn write: no sector of it is blank)"
	}
	return ""
}

// tornFrame reports whether a record that failed its check, read from
// file offset off, looks like a write a crash cut short rather than stored
// bytes gone bad: some sector of it (clipped to the frame) reads all
// zeros, as a sector of preallocated space that was never written does.
// A flipped bit leaves no such sector: a written sector holds the record's
// first or last byte (never zero), or all 512 of its bytes. This is etcd's
// test.
func tornFrame(frame []byte, off int64) bool {
	for len(frame) > 0 {
		n := min(sectorSize-int(off%sectorSize), len(frame))
		if allZero(frame[:n]) {
			return true
		}
		frame, off = frame[n:], off+int64(n)
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

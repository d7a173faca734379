// Package snapfile is a directory of state-machine snapshots, one file per
// snapshot, shared by the storage plugins. It implements
// storage.SnapshotStore.
//
// A snapshot is written to "<id>.snap.tmp", then on Close flushed, fsynced,
// renamed to "<id>.snap" and the directory fsynced, so a crash leaves either
// the complete snapshot or a temp file that List ignores and Open removes.
//
// File layout (integers big-endian):
//
//	magic "CORLSNAP" | version u32 | meta length u32 | meta | meta CRC32C u32
//	body (streamed, any length)
//	body length u64 | body CRC32C u32 | "CORLSEND"
//
// meta is: id length u16 | id | index u64 | term u64 | membership index u64 |
// membership length u32 | membership. The version sits right after the magic
// so a newer file is recognised before anything else is parsed.
//
// WriteFile and OpenFile write and read the same layout as a standalone
// file anywhere (what `corral data export-snapshot` produces), so a file
// copied out of a snapshot directory is also a valid export.
package snapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/fsutil"
)

// FormatVersion is the snapshot file format this package writes and the
// newest it reads.
const FormatVersion uint32 = 1

// DefaultRetain is how many complete snapshots Close keeps by default.
const DefaultRetain = 2

var (
	// ErrCorrupt marks a snapshot file whose header, trailer or body does not
	// match its checksums or structure. It wraps storage.ErrCorrupt.
	ErrCorrupt error = corruptError{}
	// ErrNewerVersion marks a snapshot written by a newer format version.
	ErrNewerVersion = errors.New("snapfile: snapshot format too new")
)

// corruptError keeps the package's own message while matching
// storage.ErrCorrupt in errors.Is.
type corruptError struct{}

func (corruptError) Error() string { return "snapfile: corrupt snapshot" }
func (corruptError) Unwrap() error { return storage.ErrCorrupt }

const (
	magic        = "CORLSNAP"
	trailerMagic = "CORLSEND"
	snapSuffix   = ".snap"
	tmpSuffix    = ".tmp"
	trailerLen   = 8 + 4 + len(trailerMagic)
	fixedHead    = len(magic) + 4 + 4 // magic, version, meta length
	maxMetaLen   = 64 << 20           // refuse absurd lengths from a damaged header
	bufSize      = 64 << 10
	filePerm     = 0o600
	dirPerm      = 0o700
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	idPattern  = regexp.MustCompile(`^([0-9]+)-([0-9]+)-([0-9]+)$`)
)

// Options configure a Store.
type Options struct {
	// Retain is how many complete snapshots to keep; older ones are deleted
	// when a new one is committed. Zero or less means DefaultRetain.
	Retain int
	// Logger receives warnings about skipped files; nil discards them.
	Logger *slog.Logger
}

// Store is a directory of snapshots. Methods are safe for concurrent use.
type Store struct {
	dir    string
	retain int
	log    *slog.Logger
	mu     sync.Mutex // serialises List with pruning
}

// Open opens (creating if needed) a snapshot directory and removes temp files
// left by a crash in the middle of writing a snapshot.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("snapfile: empty directory")
	}
	if err := fsutil.MkdirAllDurable(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("snapfile: create %s: %w", dir, err)
	}
	s := &Store{dir: dir, retain: opts.Retain, log: opts.Logger}
	if s.retain <= 0 {
		s.retain = DefaultRetain
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapfile: read %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("snapfile: remove incomplete snapshot %s: %w", p, err)
			}
			s.log.Info("removed incomplete snapshot", "file", p)
		}
	}
	return s, nil
}

// SnapshotDir returns the directory holding the snapshot files.
func (s *Store) SnapshotDir() string { return s.dir }

// Create starts a snapshot. meta.ID and meta.Size are ignored: the id is
// generated as "<term>-<index>-<unixnano>" and the size is what is written.
func (s *Store) Create(meta storage.SnapshotMeta) (storage.SnapshotSink, error) {
	if len(meta.Membership) > maxMetaLen-64 {
		return nil, fmt.Errorf("snapfile: membership of %d bytes is too large", len(meta.Membership))
	}
	meta.ID = fmt.Sprintf("%d-%d-%d", meta.Term, meta.Index, time.Now().UnixNano())
	meta.Size = 0
	final := filepath.Join(s.dir, meta.ID+snapSuffix)
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("snapfile: create %s: %w", tmp, err)
	}
	k := &sink{
		s: s, dir: s.dir, meta: meta, f: f, tmp: tmp, final: final,
		w:   bufio.NewWriterSize(f, bufSize),
		crc: crc32.New(castagnoli),
	}
	if _, err := k.w.Write(encodeHeader(meta)); err != nil {
		k.abort()
		return nil, fmt.Errorf("snapfile: write %s: %w", tmp, err)
	}
	return k, nil
}

// Damaged implements storage.SnapshotChecker: one error wrapping ErrCorrupt
// for each snapshot file that List skips because its header or trailer is
// damaged. A damaged body is found only by reading it (Open).
func (s *Store) Damaged() ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapfile: read %s: %w", s.dir, err)
	}
	var bad []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), snapSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if _, ok := parseID(id); !ok {
			continue
		}
		if _, _, err := s.readMeta(id); errors.Is(err, ErrCorrupt) {
			bad = append(bad, err)
		}
	}
	return bad, nil
}

// List returns the complete snapshots, newest (highest index) first. A file
// with a damaged header or trailer is logged and skipped, so an older good
// snapshot can still be used; a file from a newer format version is an
// error, since falling back past it would silently serve older state.
func (s *Store) List() ([]storage.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, err := s.scan()
	if err != nil {
		return nil, err
	}
	out := make([]storage.SnapshotMeta, len(ls))
	for i, l := range ls {
		out[i] = l.meta
	}
	return out, nil
}

type listed struct {
	meta storage.SnapshotMeta
	nano int64
}

// scan reads every snapshot's header and trailer, newest first.
func (s *Store) scan() ([]listed, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapfile: read %s: %w", s.dir, err)
	}
	var ls []listed
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), snapSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		nano, ok := parseID(id)
		if !ok {
			continue
		}
		meta, _, err := s.readMeta(id)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // pruned while we listed
		case errors.Is(err, ErrCorrupt):
			s.log.Warn("skipping damaged snapshot", "err", err)
			continue
		case err != nil:
			return nil, err
		}
		ls = append(ls, listed{meta, nano})
	}
	slices.SortFunc(ls, func(a, b listed) int {
		if a.meta.Index != b.meta.Index {
			return cmpDesc(a.meta.Index, b.meta.Index)
		}
		if a.meta.Term != b.meta.Term {
			return cmpDesc(a.meta.Term, b.meta.Term)
		}
		return cmpDesc(uint64(a.nano), uint64(b.nano))
	})
	return ls, nil
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// Open streams a snapshot's body. The reader returns an error wrapping
// ErrCorrupt instead of io.EOF if the body does not match its checksum or
// length; callers must treat that as a failed restore even though the bytes
// before it were already delivered.
func (s *Store) Open(id string) (storage.SnapshotMeta, io.ReadCloser, error) {
	if _, ok := parseID(id); !ok {
		return storage.SnapshotMeta{}, nil, fmt.Errorf("snapfile: snapshot %q: %w", id, storage.ErrNotFound)
	}
	path := s.path(id)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return storage.SnapshotMeta{}, nil, fmt.Errorf("snapfile: snapshot %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.SnapshotMeta{}, nil, fmt.Errorf("snapfile: open %s: %w", path, err)
	}
	meta, t, err := readMetaFile(f, path, id)
	if err != nil {
		f.Close()
		return storage.SnapshotMeta{}, nil, err
	}
	return meta, newReader(f, path, meta, t), nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+snapSuffix) }

func parseID(id string) (nano int64, ok bool) {
	m := idPattern.FindStringSubmatch(id)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[3], 10, 64)
	return n, err == nil
}

// prune deletes all but the newest retain snapshots.
func (s *Store) prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, err := s.scan()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range ls[min(s.retain, len(ls)):] {
		p := s.path(l.meta.ID)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("snapfile: prune %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

type trailer struct {
	bodyOff int64
	crc     uint32
}

func (s *Store) readMeta(id string) (storage.SnapshotMeta, trailer, error) {
	path := s.path(id)
	f, err := os.Open(path)
	if err != nil {
		return storage.SnapshotMeta{}, trailer{}, fmt.Errorf("snapfile: open %s: %w", path, err)
	}
	defer f.Close()
	return readMetaFile(f, path, id)
}

// readMetaFile parses and checks the header and trailer of an open file.
// A non-empty id must match the one in the header (the file's name).
func readMetaFile(f *os.File, path, id string) (storage.SnapshotMeta, trailer, error) {
	var meta storage.SnapshotMeta
	corrupt := func(format string, args ...any) (storage.SnapshotMeta, trailer, error) {
		return meta, trailer{}, fmt.Errorf("%w: %s: %s", ErrCorrupt, path, fmt.Sprintf(format, args...))
	}
	st, err := f.Stat()
	if err != nil {
		return meta, trailer{}, fmt.Errorf("snapfile: stat %s: %w", path, err)
	}
	size := st.Size()
	var fixed [fixedHead]byte
	if _, err := f.ReadAt(fixed[:], 0); err != nil {
		return corrupt("short header: %v", err)
	}
	if string(fixed[:len(magic)]) != magic {
		return corrupt("bad magic")
	}
	version := binary.BigEndian.Uint32(fixed[len(magic):])
	if version > FormatVersion {
		return meta, trailer{}, fmt.Errorf("%w: %s: format version %d, this build reads up to %d", ErrNewerVersion, path, version, FormatVersion)
	}
	if version == 0 {
		return corrupt("format version 0")
	}
	metaLen := int64(binary.BigEndian.Uint32(fixed[len(magic)+4:]))
	bodyOff := int64(fixedHead) + metaLen + 4
	if metaLen > maxMetaLen || bodyOff+int64(trailerLen) > size {
		return corrupt("metadata length %d does not fit file size %d", metaLen, size)
	}
	buf := make([]byte, metaLen+4)
	if _, err := f.ReadAt(buf, int64(fixedHead)); err != nil {
		return corrupt("short metadata: %v", err)
	}
	h := crc32.New(castagnoli)
	h.Write(fixed[len(magic):])
	h.Write(buf[:metaLen])
	if h.Sum32() != binary.BigEndian.Uint32(buf[metaLen:]) {
		return corrupt("metadata checksum mismatch")
	}
	if meta, err = decodeMeta(buf[:metaLen]); err != nil {
		return corrupt("%v", err)
	}
	if id != "" && meta.ID != id {
		return corrupt("header names snapshot %q", meta.ID)
	}
	var tr [trailerLen]byte
	if _, err := f.ReadAt(tr[:], size-int64(trailerLen)); err != nil {
		return corrupt("short trailer: %v", err)
	}
	if string(tr[12:]) != trailerMagic {
		return corrupt("bad trailer magic (incomplete file?)")
	}
	bodyLen := binary.BigEndian.Uint64(tr[:8])
	if want := size - bodyOff - int64(trailerLen); bodyLen != uint64(want) {
		return corrupt("trailer says %d body bytes, file holds %d", bodyLen, want)
	}
	meta.Size = int64(bodyLen)
	return meta, trailer{bodyOff: bodyOff, crc: binary.BigEndian.Uint32(tr[8:12])}, nil
}

func encodeHeader(m storage.SnapshotMeta) []byte {
	b := make([]byte, 0, fixedHead+2+len(m.ID)+24+4+len(m.Membership)+4)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, FormatVersion)
	metaLen := 2 + len(m.ID) + 24 + 4 + len(m.Membership)
	b = binary.BigEndian.AppendUint32(b, uint32(metaLen))
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.ID)))
	b = append(b, m.ID...)
	b = binary.BigEndian.AppendUint64(b, m.Index)
	b = binary.BigEndian.AppendUint64(b, m.Term)
	b = binary.BigEndian.AppendUint64(b, m.MembershipIndex)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Membership)))
	b = append(b, m.Membership...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[len(magic):], castagnoli))
}

func decodeMeta(b []byte) (storage.SnapshotMeta, error) {
	var m storage.SnapshotMeta
	short := errors.New("metadata too short")
	if len(b) < 2 {
		return m, short
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n+28 {
		return m, short
	}
	m.ID = string(b[:n])
	b = b[n:]
	m.Index = binary.BigEndian.Uint64(b)
	m.Term = binary.BigEndian.Uint64(b[8:])
	m.MembershipIndex = binary.BigEndian.Uint64(b[16:])
	ml := int(binary.BigEndian.Uint32(b[24:]))
	b = b[28:]
	if len(b) != ml {
		return m, fmt.Errorf("membership length %d, have %d bytes", ml, len(b))
	}
	if ml > 0 {
		m.Membership = slices.Clone(b)
	}
	return m, nil
}

// sink writes one snapshot. It is used by one goroutine at a time, like any
// io.Writer.
type sink struct {
	s          *Store // nil for a standalone file (WriteFile)
	dir        string // synced after the rename
	meta       storage.SnapshotMeta
	f          *os.File
	tmp, final string
	w          *bufio.Writer
	crc        hash.Hash32
	n          int64
	done       bool
}

func (k *sink) ID() string { return k.meta.ID }

func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("snapfile: write to finished snapshot %s", k.meta.ID)
	}
	n, err := k.w.Write(p)
	k.crc.Write(p[:n])
	k.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("snapfile: write %s: %w", k.tmp, err)
	}
	return n, nil
}

// Close makes the snapshot durable and visible, then prunes old ones. A
// pruning failure is only logged: the new snapshot is committed, and the
// next Close retries the pruning.
func (k *sink) Close() error {
	if k.done {
		return fmt.Errorf("snapfile: snapshot %s already finished", k.meta.ID)
	}
	k.done = true
	var tr [trailerLen]byte
	binary.BigEndian.PutUint64(tr[:], uint64(k.n))
	binary.BigEndian.PutUint32(tr[8:], k.crc.Sum32())
	copy(tr[12:], trailerMagic)
	if _, err := k.w.Write(tr[:]); err != nil {
		k.abort()
		return fmt.Errorf("snapfile: write %s: %w", k.tmp, err)
	}
	if err := k.w.Flush(); err != nil {
		k.abort()
		return fmt.Errorf("snapfile: write %s: %w", k.tmp, err)
	}
	if err := k.f.Sync(); err != nil {
		k.abort()
		return fmt.Errorf("snapfile: sync %s: %w", k.tmp, err)
	}
	if err := k.f.Close(); err != nil {
		os.Remove(k.tmp)
		return fmt.Errorf("snapfile: close %s: %w", k.tmp, err)
	}
	if err := os.Rename(k.tmp, k.final); err != nil {
		os.Remove(k.tmp)
		return fmt.Errorf("snapfile: commit %s: %w", k.final, err)
	}
	if err := fsutil.SyncDir(k.dir); err != nil {
		return err
	}
	if k.s == nil {
		return nil
	}
	if err := k.s.prune(); err != nil {
		k.s.log.Warn("pruning old snapshots failed", "err", err)
	}
	return nil
}

// Cancel discards the snapshot. Cancel after Close is a no-op, so callers
// can defer it.
func (k *sink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	return k.abort()
}

func (k *sink) abort() error {
	k.f.Close()
	if err := os.Remove(k.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapfile: remove %s: %w", k.tmp, err)
	}
	return nil
}

func newReader(f *os.File, path string, meta storage.SnapshotMeta, t trailer) *reader {
	return &reader{
		f:       f,
		r:       bufio.NewReaderSize(io.NewSectionReader(f, t.bodyOff, meta.Size), bufSize),
		crc:     crc32.New(castagnoli),
		want:    meta.Size,
		wantCRC: t.crc,
		path:    path,
	}
}

// reader streams a body and checks it at EOF.
type reader struct {
	f       *os.File
	r       *bufio.Reader
	crc     hash.Hash32
	n, want int64
	wantCRC uint32
	path    string
	err     error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.crc.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		switch {
		case r.n != r.want:
			err = fmt.Errorf("%w: %s: read %d body bytes, want %d", ErrCorrupt, r.path, r.n, r.want)
		case r.crc.Sum32() != r.wantCRC:
			err = fmt.Errorf("%w: %s: body checksum mismatch", ErrCorrupt, r.path)
		}
	} else if err != nil {
		err = fmt.Errorf("snapfile: read %s: %w", r.path, err)
	}
	r.err = err
	return n, err
}

func (r *reader) Close() error { return r.f.Close() }

var (
	_ storage.SnapshotStore   = (*Store)(nil)
	_ storage.SnapshotChecker = (*Store)(nil)
)

// Package memstore is an in-memory storage.Store for tests: the consensus
// log, the small state values and the snapshots all live in process memory,
// so nothing survives the process. It follows the storage contract exactly
// (atomic batches, contiguous logs, checksummed snapshots, newest-first
// listing) so consensus plugins can be tested against it, but it holds every
// snapshot whole in memory and never syncs anything: do not use it to serve
// real data.
//
// A "restart" is simulated by closing a Store and calling Reopen, which
// returns a new handle on the same data, the way a real store would be
// reopened from its directory.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/corral-dev/corral/framework/storage"
)

// DefaultRetain is how many complete snapshots a Store keeps, as the
// on-disk snapshot store does by default.
const DefaultRetain = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// data is what survives Close/Reopen.
type data struct {
	mu sync.RWMutex
	// log holds a contiguous run of entries; log[i].Index == log[0].Index+i.
	log   []storage.LogEntry
	state map[string][]byte
	snaps []*snapshot // complete snapshots, newest first
	seq   uint64      // makes snapshot ids unique
}

type snapshot struct {
	meta storage.SnapshotMeta
	body []byte
	crc  uint32
}

// Store is an in-memory storage.Store. Its methods are safe for concurrent
// use. The zero value is not usable; call New.
type Store struct {
	d      *data
	retain int

	closeMu sync.RWMutex
	closed  bool
}

// New returns an empty store.
func New() *Store {
	return &Store{d: &data{state: map[string][]byte{}}, retain: DefaultRetain}
}

// Reopen returns a new, open handle on the same data, as if the process had
// restarted and opened the store again. The receiver should have been
// closed first; it stays closed.
func (s *Store) Reopen() *Store {
	return &Store{d: s.d, retain: s.retain}
}

// check returns ErrClosed after Close. Callers hold no locks.
func (s *Store) check() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	return nil
}

// FirstIndex implements storage.Store.
func (s *Store) FirstIndex() (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	if len(s.d.log) == 0 {
		return 0, nil
	}
	return s.d.log[0].Index, nil
}

// LastIndex implements storage.Store.
func (s *Store) LastIndex() (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	if len(s.d.log) == 0 {
		return 0, nil
	}
	return s.d.log[len(s.d.log)-1].Index, nil
}

// pos returns the slice position of index, or false. Callers hold d.mu.
func (d *data) pos(index uint64) (int, bool) {
	if len(d.log) == 0 || index < d.log[0].Index {
		return 0, false
	}
	p := index - d.log[0].Index
	if p >= uint64(len(d.log)) {
		return 0, false
	}
	return int(p), true
}

// Entry implements storage.Store. The returned Data is a copy.
func (s *Store) Entry(index uint64) (storage.LogEntry, error) {
	if err := s.check(); err != nil {
		return storage.LogEntry{}, err
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	p, ok := s.d.pos(index)
	if !ok {
		return storage.LogEntry{}, fmt.Errorf("memstore: entry %d: %w", index, storage.ErrNotFound)
	}
	return cloneEntry(s.d.log[p]), nil
}

// Entries implements storage.Store. Entries are returned while their Data
// totals at most maxBytes; the first entry is returned regardless.
func (s *Store) Entries(lo, hi uint64, maxBytes uint64) ([]storage.LogEntry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if lo > hi {
		return nil, fmt.Errorf("memstore: invalid range [%d, %d)", lo, hi)
	}
	if lo == hi {
		return nil, nil
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	first, ok := s.d.pos(lo)
	if !ok {
		return nil, fmt.Errorf("memstore: entry %d: %w", lo, storage.ErrNotFound)
	}
	if _, ok := s.d.pos(hi - 1); !ok {
		return nil, fmt.Errorf("memstore: entry %d: %w", hi-1, storage.ErrNotFound)
	}
	n := int(hi - lo)
	out := make([]storage.LogEntry, 0, n)
	var size uint64
	for _, e := range s.d.log[first : first+n] {
		size += uint64(len(e.Data))
		if maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, cloneEntry(e))
	}
	return out, nil
}

// Write implements storage.Store. The batch is validated completely before
// anything changes, so a rejected batch leaves the store as it was.
func (s *Store) Write(ctx context.Context, b storage.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	for i := 1; i < len(b.Entries); i++ {
		if b.Entries[i].Index != b.Entries[i-1].Index+1 {
			return fmt.Errorf("memstore: batch entries not contiguous at index %d", b.Entries[i].Index)
		}
	}
	if len(b.Entries) > 0 && b.Entries[0].Index == 0 {
		return errors.New("memstore: log index 0 is invalid")
	}
	// Copy before locking: the caller may reuse its buffers after Write.
	entries := make([]storage.LogEntry, len(b.Entries))
	for i, e := range b.Entries {
		entries[i] = cloneEntry(e)
	}

	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := len(d.log)
	if b.TruncateFrom != 0 && len(d.log) > 0 {
		switch {
		case b.TruncateFrom <= d.log[0].Index:
			keep = 0
		case b.TruncateFrom <= d.log[len(d.log)-1].Index:
			keep = int(b.TruncateFrom - d.log[0].Index)
		}
	}
	if len(entries) > 0 && keep > 0 {
		if want := d.log[keep-1].Index + 1; entries[0].Index != want {
			return fmt.Errorf("memstore: append at index %d, want %d (log must stay contiguous)", entries[0].Index, want)
		}
	}
	// An emptied log accepts any start index: after a snapshot is installed
	// the log resumes right behind it.
	clear(d.log[keep:]) // drop references to truncated data
	d.log = append(d.log[:keep], entries...)
	for k, v := range b.State {
		d.state[k] = bytes.Clone(v)
	}
	return nil
}

// CompactPrefix implements storage.Store.
func (s *Store) CompactPrefix(upTo uint64) error {
	if err := s.check(); err != nil {
		return err
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.log) == 0 || upTo < d.log[0].Index {
		return nil
	}
	drop := min(upTo-d.log[0].Index+1, uint64(len(d.log)))
	// Copy the tail so the compacted prefix can be garbage collected.
	d.log = slices.Clone(d.log[drop:])
	return nil
}

// State implements storage.Store. The returned value is a copy.
func (s *Store) State(key string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	v, ok := s.d.state[key]
	if !ok {
		return nil, fmt.Errorf("memstore: state %q: %w", key, storage.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Snapshots implements storage.Store.
func (s *Store) Snapshots() storage.SnapshotStore { return snapStore{s} }

// Close implements storage.Store. The data stays reachable through Reopen.
// Closing twice is not an error.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closed = true
	return nil
}

func cloneEntry(e storage.LogEntry) storage.LogEntry {
	e.Data = bytes.Clone(e.Data)
	return e
}

func cloneMeta(m storage.SnapshotMeta) storage.SnapshotMeta {
	m.Membership = bytes.Clone(m.Membership)
	return m
}

// snapStore is the snapshot side of a Store.
type snapStore struct{ s *Store }

// Create implements storage.SnapshotStore. meta.ID and meta.Size are
// ignored: the id is generated and the size is what gets written.
func (ss snapStore) Create(meta storage.SnapshotMeta) (storage.SnapshotSink, error) {
	if err := ss.s.check(); err != nil {
		return nil, err
	}
	d := ss.s.d
	d.mu.Lock()
	d.seq++
	meta.ID = fmt.Sprintf("%d-%d-%d", meta.Term, meta.Index, d.seq)
	d.mu.Unlock()
	meta.Size = 0
	return &sink{s: ss.s, meta: cloneMeta(meta), crc: crc32.New(castagnoli)}, nil
}

// List implements storage.SnapshotStore: complete snapshots, newest first.
func (ss snapStore) List() ([]storage.SnapshotMeta, error) {
	if err := ss.s.check(); err != nil {
		return nil, err
	}
	d := ss.s.d
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]storage.SnapshotMeta, len(d.snaps))
	for i, sn := range d.snaps {
		out[i] = cloneMeta(sn.meta)
	}
	return out, nil
}

// Open implements storage.SnapshotStore. The reader verifies the checksum
// and returns an error instead of io.EOF on a mismatch.
func (ss snapStore) Open(id string) (storage.SnapshotMeta, io.ReadCloser, error) {
	if err := ss.s.check(); err != nil {
		return storage.SnapshotMeta{}, nil, err
	}
	d := ss.s.d
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, sn := range d.snaps {
		if sn.meta.ID == id {
			// The body is never modified after commit, so readers share it.
			return cloneMeta(sn.meta), &reader{r: bytes.NewReader(sn.body), crc: crc32.New(castagnoli), want: sn.crc, id: id}, nil
		}
	}
	return storage.SnapshotMeta{}, nil, fmt.Errorf("memstore: snapshot %q: %w", id, storage.ErrNotFound)
}

// insert adds a committed snapshot in newest-first order and prunes.
// Callers hold d.mu.
func (d *data) insert(sn *snapshot, retain int) {
	at, _ := slices.BinarySearchFunc(d.snaps, sn, func(a, b *snapshot) int {
		// Newest first: higher index, then higher term, then created later.
		switch {
		case a.meta.Index != b.meta.Index:
			return cmpDesc(a.meta.Index, b.meta.Index)
		case a.meta.Term != b.meta.Term:
			return cmpDesc(a.meta.Term, b.meta.Term)
		}
		return 1 // an older snapshot with the same index and term goes after the new one
	})
	d.snaps = slices.Insert(d.snaps, at, sn)
	if len(d.snaps) > retain {
		clear(d.snaps[retain:])
		d.snaps = d.snaps[:retain]
	}
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

// sink buffers one snapshot. It is used by one goroutine at a time.
type sink struct {
	s    *Store
	meta storage.SnapshotMeta
	buf  bytes.Buffer
	crc  interface {
		io.Writer
		Sum32() uint32
	}
	done bool
}

func (k *sink) ID() string { return k.meta.ID }

func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("memstore: write to finished snapshot %s", k.meta.ID)
	}
	if err := k.s.check(); err != nil {
		return 0, err
	}
	k.buf.Write(p)
	k.crc.Write(p)
	return len(p), nil
}

// Close commits the snapshot and prunes older ones beyond DefaultRetain.
func (k *sink) Close() error {
	if k.done {
		return fmt.Errorf("memstore: snapshot %s already finished", k.meta.ID)
	}
	k.done = true
	if err := k.s.check(); err != nil {
		return err
	}
	k.meta.Size = int64(k.buf.Len())
	sn := &snapshot{meta: k.meta, body: k.buf.Bytes(), crc: k.crc.Sum32()}
	d := k.s.d
	d.mu.Lock()
	d.insert(sn, k.s.retain)
	d.mu.Unlock()
	return nil
}

// Cancel discards the snapshot. Cancel after Close is a no-op, so callers
// can defer it.
func (k *sink) Cancel() error {
	if !k.done {
		k.done = true
		k.buf = bytes.Buffer{}
	}
	return nil
}

// reader streams a snapshot body and checks its checksum at EOF.
type reader struct {
	r   *bytes.Reader
	crc interface {
		io.Writer
		Sum32() uint32
	}
	want uint32
	id   string
	err  error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.crc.Write(p[:n])
	if err == io.EOF && r.crc.Sum32() != r.want {
		err = fmt.Errorf("memstore: snapshot %s: body checksum mismatch", r.id)
	}
	r.err = err
	return n, err
}

func (r *reader) Close() error {
	if r.err == nil {
		r.err = errors.New("memstore: read from closed snapshot")
	}
	return nil
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.SnapshotStore = snapStore{}
	_ storage.SnapshotSink  = (*sink)(nil)
)

// Package storagebolt is the storage.bolt plugin: the storage contract on
// go.etcd.io/bbolt, one B+tree file with copy-on-write transactions.
//
// Layout of <path>/corral.db: bucket "log" maps a big-endian uint64 index to
// an entry, bucket "state" maps a key to a value, bucket "meta" holds the
// format version. Values are encoded by framework/storage/logfmt and carry
// a CRC32C, since bolt checksums only its meta pages. Snapshots are files
// under <path>/snapshots (see snapfile).
//
// Concurrent Writes are group-committed: a single writer goroutine takes
// every batch queued while the previous commit was syncing, applies them in
// one bolt transaction (one fsync cycle), then wakes every caller.
package storagebolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/fsutil"
	"github.com/corral-dev/corral/framework/storage/logfmt"
	"github.com/corral-dev/corral/framework/storage/snapfile"
)

// ID is the plugin id.
const ID plugin.ID = "storage.bolt"

// FormatVersion is the layout version this build writes and the newest it
// opens.
const FormatVersion uint32 = 1

const (
	dbFileName = "corral.db"
	snapDir    = "snapshots"
	// maxGroup caps how many queued batches share one transaction, so one
	// commit stays bounded under a flood of writers.
	maxGroup = 512
	// appendFill packs log pages fuller than bolt's default 0.5: keys only
	// ever grow at the end, so split pages are never refilled.
	appendFill = 0.9
)

var (
	bucketLog   = []byte("log")
	bucketState = []byte("state")
	bucketMeta  = []byte("meta")
	keyFormat   = []byte("format")
)

func init() { plugin.Register(factory{}) }

type factory struct{}

func (factory) ID() plugin.ID      { return ID }
func (factory) DefaultConfig() any { return DefaultConfig() }

func (factory) New(ctx context.Context, set plugin.Settings, cfg any) (storage.Store, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("storage.bolt: config is %T, want *storagebolt.Config", cfg)
	}
	return Open(ctx, set, c)
}

// Store is a bolt-backed storage.Store.
type Store struct {
	dir    string // the configured path
	dbPath string
	format uint32 // the layout version on disk
	db     *bolt.DB
	snaps  *snapfile.Store
	log    *slog.Logger

	reqs chan *request
	done chan struct{} // closed when the writer goroutine exits

	// closeMu is held shared by every operation in flight and exclusively
	// by Close, so Close never pulls the database from under a reader and no
	// Write is queued after the writer goroutine stopped.
	closeMu sync.RWMutex
	closed  bool

	boundsMu sync.RWMutex
	bounds   logfmt.Bounds // written only by the writer goroutine

	commits atomic.Uint64 // transactions committed, for benchmarks
}

type request struct {
	batch   storage.Batch
	compact bool
	upTo    uint64
	done    chan error
}

// Open opens or creates the store described by cfg (nil means defaults).
func Open(ctx context.Context, set plugin.Settings, cfg *Config) (*Store, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := cfg.Path
	if dir == "" {
		if set.DataDir == "" {
			return nil, errors.New("storage.bolt: no path configured and no data directory set")
		}
		dir = filepath.Join(set.DataDir, "bolt")
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("plugin", string(ID), "path", dir)
	if err := fsutil.MkdirAllDurable(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.bolt: create directory %s: %w", dir, err)
	}
	dbPath := filepath.Join(dir, dbFileName)
	db, err := openDB(dbPath, cfg)
	if err != nil {
		return nil, err
	}
	// bolt fsyncs a new file's pages but not the directory entry naming it.
	if err := fsutil.SyncDir(dir); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage.bolt: %w", err)
	}
	s := &Store{
		dir: dir, dbPath: dbPath, db: db, log: log,
		reqs: make(chan *request, maxGroup),
		done: make(chan struct{}),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	s.snaps, err = snapfile.Open(filepath.Join(dir, snapDir), snapfile.Options{Retain: cfg.RetainSnapshots, Logger: log})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("storage.bolt: %w", err)
	}
	log.Debug("opened", "first", s.bounds.First, "last", s.bounds.Last, "sync", cfg.Sync)
	go s.run()
	return s, nil
}

func openDB(path string, cfg *Config) (db *bolt.DB, err error) {
	defer func() {
		// bolt panics on some kinds of damage; report it as an error.
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("storage.bolt: %s is corrupt: %v: %w", path, r, storage.ErrCorrupt)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         cfg.OpenTimeout,
		NoSync:          !cfg.Sync,
		InitialMmapSize: cfg.InitialMmapSize,
		// The hashmap freelist stays fast when compaction frees many pages.
		FreelistType: bolt.FreelistMapType,
		// Not writing the freelist on every commit saves a page write per
		// fsync; bolt rebuilds it from the tree on open (as etcd does).
		NoFreelistSync: true,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("storage.bolt: %s is locked by another process (gave up after %s): %w", path, cfg.OpenTimeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("storage.bolt: %s is corrupt or not a bolt database: %w: %w", path, err, storage.ErrCorrupt)
	default:
		return nil, fmt.Errorf("storage.bolt: open %s: %w", path, err)
	}
}

// init creates the buckets of a new file or checks those of an existing one,
// and loads the log bounds.
func (s *Store) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A new file has no buckets; anything else is someone else's.
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				return fmt.Errorf("has bucket %q but no format version: not a corral store", name)
			}); err != nil {
				return err
			}
			for _, b := range [][]byte{bucketMeta, bucketLog, bucketState} {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			s.format = FormatVersion
			return tx.Bucket(bucketMeta).Put(keyFormat, logfmt.EncodeFormatVersion(FormatVersion))
		}
		ver, err := logfmt.DecodeFormatVersion(meta.Get(keyFormat), FormatVersion)
		if err != nil {
			return err
		}
		s.format = ver
		if tx.Bucket(bucketLog) == nil || tx.Bucket(bucketState) == nil {
			return fmt.Errorf("missing log or state bucket: %w", storage.ErrCorrupt)
		}
		c := tx.Bucket(bucketLog).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first == nil {
			return nil
		}
		if len(first) != 8 || len(last) != 8 {
			return fmt.Errorf("log key of %d bytes: %w", len(first), storage.ErrCorrupt)
		}
		s.bounds = logfmt.Bounds{First: binary.BigEndian.Uint64(first), Last: binary.BigEndian.Uint64(last)}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage.bolt: %s: %w", s.dbPath, err)
	}
	return nil
}

// FormatVersion returns the layout version of the open store (which
// offline tools show; it may be older than the package's FormatVersion).
func (s *Store) FormatVersion() uint32 { return s.format }

// Path returns the store's directory.
func (s *Store) Path() string { return s.dir }

// SnapshotDir returns the directory holding snapshot files.
func (s *Store) SnapshotDir() string { return s.snaps.SnapshotDir() }

// Snapshots returns the snapshot store beside the database.
func (s *Store) Snapshots() storage.SnapshotStore { return s.snaps }

func (s *Store) FirstIndex() (uint64, error) {
	b, err := s.getBounds()
	return b.First, err
}

func (s *Store) LastIndex() (uint64, error) {
	b, err := s.getBounds()
	return b.Last, err
}

func (s *Store) getBounds() (logfmt.Bounds, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return logfmt.Bounds{}, storage.ErrClosed
	}
	s.boundsMu.RLock()
	defer s.boundsMu.RUnlock()
	return s.bounds, nil
}

// view runs fn in a read transaction unless the store is closed, turning a
// bolt panic on a damaged page into an error.
func (s *Store) view(fn func(tx *bolt.Tx) error) (err error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage.bolt: %s: read failed (corrupt page?): %v: %w", s.dbPath, r, storage.ErrCorrupt)
		}
	}()
	err = s.db.View(fn)
	if errors.Is(err, storage.ErrCorrupt) {
		err = fmt.Errorf("storage.bolt: %s: %w", s.dbPath, err)
	}
	return err
}

func u64(i uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), i) }

func (s *Store) Entry(index uint64) (storage.LogEntry, error) {
	var e storage.LogEntry
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLog).Get(u64(index))
		if v == nil {
			return fmt.Errorf("storage.bolt: log entry %d: %w", index, storage.ErrNotFound)
		}
		var err error
		e, err = logfmt.DecodeEntry(index, v)
		return err
	})
	return e, err
}

func (s *Store) Entries(lo, hi, maxBytes uint64) ([]storage.LogEntry, error) {
	if lo > hi {
		return nil, fmt.Errorf("storage.bolt: Entries(%d, %d): lo > hi", lo, hi)
	}
	var out []storage.LogEntry
	err := s.view(func(tx *bolt.Tx) error {
		if lo == hi {
			return nil
		}
		out = make([]storage.LogEntry, 0, min(hi-lo, 1024))
		var total uint64
		c := tx.Bucket(bucketLog).Cursor()
		k, v := c.Seek(u64(lo))
		for i := lo; i < hi; i++ {
			if k == nil || binary.BigEndian.Uint64(k) != i {
				return fmt.Errorf("storage.bolt: log entry %d: %w", i, storage.ErrNotFound)
			}
			size := logfmt.EntryDataLen(v)
			if maxBytes > 0 && len(out) > 0 && total+size > maxBytes {
				return nil
			}
			e, err := logfmt.DecodeEntry(i, v)
			if err != nil {
				return err
			}
			total += size
			out = append(out, e)
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) State(key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketState).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("storage.bolt: state %q: %w", key, storage.ErrNotFound)
		}
		var err error
		out, err = logfmt.DecodeState(key, v)
		return err
	})
	return out, err
}

// StateKeys implements storage.StateLister; bolt keeps keys sorted.
func (s *Store) StateKeys() ([]string, error) {
	var keys []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	return keys, err
}

// Write queues the batch for the writer goroutine and waits for its commit.
// ctx bounds only the wait for a place in the queue: once queued, the batch
// is committed or failed, and Write reports which.
func (s *Store) Write(ctx context.Context, b storage.Batch) error {
	return s.submit(ctx, &request{batch: b, done: make(chan error, 1)})
}

// CompactPrefix deletes entries <= upTo, ordered with the Writes around it.
func (s *Store) CompactPrefix(upTo uint64) error {
	// Delete in bounded steps: one transaction deleting a long prefix would
	// hold the writer (and every append behind it) for its whole length.
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	for first != 0 && first+compactStep <= upTo {
		step := first + compactStep - 1
		if err := s.submit(context.Background(), &request{compact: true, upTo: step, done: make(chan error, 1)}); err != nil {
			return err
		}
		first = step + 1
	}
	if err := s.submit(context.Background(), &request{compact: true, upTo: upTo, done: make(chan error, 1)}); err != nil {
		return err
	}
	s.releaseMappedPages()
	return nil
}

// compactStep is how many entries one compaction transaction deletes.
const compactStep = 2048

func (s *Store) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	return <-r.done
}

func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the writer goroutine: it commits whatever has queued up while the
// previous commit was syncing as one transaction.
func (s *Store) run() {
	defer close(s.done)
	group := make([]*request, 0, maxGroup)
	for r := range s.reqs {
		group = append(group[:0], r)
	collect:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break collect
				}
				group = append(group, r)
			default:
				break collect
			}
		}
		s.commit(group)
		clear(group) // drop references to delivered batches
	}
}

// commit checks each request against the bounds left by the ones before it,
// answers rejected ones at once, and commits the rest together.
func (s *Store) commit(group []*request) {
	next := s.bounds
	plans := make([]logfmt.Plan, 0, len(group))
	accepted := make([]*request, 0, len(group))
	for _, r := range group {
		var p logfmt.Plan
		if r.compact {
			p, next = next.ApplyCompact(r.upTo)
		} else {
			var nb logfmt.Bounds
			var err error
			if p, nb, err = next.ApplyBatch(r.batch); err != nil {
				r.done <- fmt.Errorf("storage.bolt: %w", err)
				continue
			}
			next = nb
		}
		plans = append(plans, p)
		accepted = append(accepted, r)
	}
	if !slices.ContainsFunc(plans, func(p logfmt.Plan) bool { return !p.Noop() }) {
		for _, r := range accepted {
			r.done <- nil
		}
		return
	}
	err := s.update(plans)
	if err != nil && len(accepted) > 1 {
		// Retry one by one, so a request that fails in the engine fails
		// alone; each is rechecked against the bounds its predecessors left.
		for _, r := range accepted {
			s.commit([]*request{r})
		}
		return
	}
	if err == nil {
		s.commits.Add(1)
		s.boundsMu.Lock()
		s.bounds = next
		s.boundsMu.Unlock()
	}
	for _, r := range accepted {
		r.done <- err
	}
}

func (s *Store) update(plans []logfmt.Plan) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage.bolt: %s: commit failed (corrupt page?): %v: %w", s.dbPath, r, storage.ErrCorrupt)
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		lb, sb := tx.Bucket(bucketLog), tx.Bucket(bucketState)
		lb.FillPercent = appendFill
		for _, p := range plans {
			if !p.Delete.Empty() {
				for i := p.Delete.Lo; ; i++ {
					if err := lb.Delete(u64(i)); err != nil {
						return err
					}
					if i == p.Delete.Hi {
						break
					}
				}
			}
			for _, e := range p.Entries {
				if err := lb.Put(u64(e.Index), logfmt.EncodeEntry(e)); err != nil {
					return err
				}
			}
			for k, v := range p.State {
				if err := sb.Put([]byte(k), logfmt.EncodeState(k, v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage.bolt: commit to %s: %w", s.dbPath, err)
	}
	return nil
}

// DiskSize is the database file plus the snapshot files.
func (s *Store) DiskSize() (int64, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	st, err := os.Stat(s.dbPath)
	if err != nil {
		return 0, fmt.Errorf("storage.bolt: %w", err)
	}
	snaps, err := fsutil.DirSize(s.snaps.SnapshotDir())
	if err != nil {
		return 0, fmt.Errorf("storage.bolt: %w", err)
	}
	return st.Size() + snaps, nil
}

// Close commits what is queued, then closes the database. Closing again is a
// no-op.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage.bolt: close %s: %w", s.dbPath, err)
	}
	s.log.Debug("closed")
	return nil
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.Sizer       = (*Store)(nil)
	_ storage.StateLister = (*Store)(nil)
	_ storage.Factory     = factory{}
)

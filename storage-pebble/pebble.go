// Package storagepebble is the storage.pebble plugin: the storage contract on
// github.com/cockroachdb/pebble, an LSM tree with a write-ahead log.
//
// Keys: "l" + big-endian uint64 index for log entries, "s" + key for state,
// "m" + "format" for the layout version. Values are encoded by
// framework/storage/logfmt and carry a CRC32C.
// Snapshots are files under <path>/snapshots (see snapfile).
//
// Concurrent Writes are group-committed by a writer goroutine that merges
// every batch queued during the previous commit into one pebble batch and
// one WAL fsync. pebble's own commit pipeline would also share a WAL sync
// between concurrent synced commits, but each batch must be checked against
// the log bounds left by the batches before it, which needs one place that
// orders them; the loop is that place and costs nothing extra.
package storagepebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/fsutil"
	"github.com/corral-dev/corral/framework/storage/logfmt"
	"github.com/corral-dev/corral/framework/storage/snapfile"
)

// ID is the plugin id.
const ID plugin.ID = "storage.pebble"

// FormatVersion is the layout version this build writes and the newest it
// opens.
const FormatVersion uint32 = 1

const (
	snapDirName = "snapshots"
	// maxGroup caps how many queued batches share one commit.
	maxGroup = 512
)

var (
	prefixLog   = byte('l')
	prefixState = byte('s')
	keyFormat   = []byte("mformat")
)

func logKey(i uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), prefixLog), i)
}

// logKeyAfter is the exclusive upper key for index i.
func logKeyAfter(i uint64) []byte {
	if i == ^uint64(0) {
		return []byte{prefixLog + 1}
	}
	return logKey(i + 1)
}

func stateKey(k string) []byte { return append([]byte{prefixState}, k...) }

func init() { plugin.Register(factory{}) }

type factory struct{}

func (factory) ID() plugin.ID      { return ID }
func (factory) DefaultConfig() any { return DefaultConfig() }

func (factory) New(ctx context.Context, set plugin.Settings, cfg any) (storage.Store, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("storage.pebble: config is %T, want *storagepebble.Config", cfg)
	}
	return Open(ctx, set, c)
}

// Store is a pebble-backed storage.Store.
type Store struct {
	dir    string
	format uint32 // the layout version on disk
	fs     vfs.FS
	db     *pebble.DB
	lock   *pebble.Lock
	snaps  *snapfile.Store
	log    *slog.Logger
	wopts  *pebble.WriteOptions

	reqs chan *request
	done chan struct{} // closed when the writer goroutine exits

	// closeMu is held shared by every operation in flight and exclusively
	// by Close (see storage-bolt for the same scheme).
	closeMu sync.RWMutex
	closed  bool

	boundsMu sync.RWMutex
	bounds   logfmt.Bounds // written only by the writer goroutine

	commits atomic.Uint64 // batches committed, for benchmarks
}

type request struct {
	batch   storage.Batch
	compact bool
	upTo    uint64
	done    chan error
}

// options are test hooks, kept out of Config.
type options struct {
	// fs replaces the OS filesystem for the database (not for snapshots).
	fs vfs.FS
	// snapDir is the OS directory for snapshots; required with fs.
	snapDir string
}

// Open opens or creates the store described by cfg (nil means defaults).
func Open(ctx context.Context, set plugin.Settings, cfg *Config) (*Store, error) {
	return open(ctx, set, cfg, options{})
}

func open(ctx context.Context, set plugin.Settings, cfg *Config, o options) (*Store, error) {
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
			return nil, errors.New("storage.pebble: no path configured and no data directory set")
		}
		dir = filepath.Join(set.DataDir, "pebble")
	}
	fs, snapDir := o.fs, o.snapDir
	if fs == nil {
		fs = vfs.Default
		if snapDir == "" {
			snapDir = filepath.Join(dir, snapDirName)
		}
	} else if snapDir == "" {
		return nil, errors.New("storage.pebble: a custom filesystem needs an OS snapshot directory")
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("plugin", string(ID), "path", dir)

	if err := mkdirAllDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("storage.pebble: create directory %s: %w", dir, err)
	}
	// Taking the lock first tells "locked" apart from every other failure.
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		if isLocked(err) {
			return nil, fmt.Errorf("storage.pebble: %s is locked by another process: %w", dir, err)
		}
		return nil, fmt.Errorf("storage.pebble: lock %s: %w", dir, err)
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{
		FS:           fs,
		Cache:        cache,
		MemTableSize: uint64(cfg.MemtableSize),
		Lock:         lock,
		Logger:       logger{log},
	})
	if err != nil {
		lock.Close()
		if pebble.IsCorruptionError(err) {
			return nil, fmt.Errorf("storage.pebble: %s is corrupt: %w: %w", dir, err, storage.ErrCorrupt)
		}
		return nil, fmt.Errorf("storage.pebble: open %s: %w", dir, err)
	}
	s := &Store{
		dir: dir, fs: fs, db: db, lock: lock, log: log,
		wopts: pebble.NoSync,
		reqs:  make(chan *request, maxGroup),
		done:  make(chan struct{}),
	}
	if cfg.Sync {
		s.wopts = pebble.Sync
	}
	fail := func(err error) (*Store, error) {
		db.Close()
		lock.Close()
		return nil, err
	}
	if err := s.init(); err != nil {
		return fail(fmt.Errorf("storage.pebble: %s: %w", dir, err))
	}
	s.snaps, err = snapfile.Open(snapDir, snapfile.Options{Retain: cfg.RetainSnapshots, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("storage.pebble: %w", err))
	}
	log.Debug("opened", "first", s.bounds.First, "last", s.bounds.Last, "sync", cfg.Sync)
	go s.run()
	return s, nil
}

// mkdirAllDurable creates dir and its missing parents, then fsyncs the
// directories that gained an entry: pebble syncs its own directory but not
// the parent, so a store created just before a power loss could vanish.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	var created []string
	for d := dir; ; {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		parent := fs.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range created {
		f, err := fs.OpenDir(fs.PathDir(d))
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// isLocked recognises a lock held elsewhere: fcntl reports EAGAIN or EACCES,
// and pebble refuses a second lock within one process by message.
func isLocked(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// init writes the format version into a new store or checks an existing
// one's, then loads the log bounds.
func (s *Store) init() error {
	v, closer, err := s.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		nonEmpty := it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if nonEmpty {
			return errors.New("has keys but no format version: not a corral store")
		}
		if err := s.db.Set(keyFormat, logfmt.EncodeFormatVersion(FormatVersion), pebble.Sync); err != nil {
			return err
		}
		s.format = FormatVersion
	case err != nil:
		return corruption(err)
	default:
		ver, err := logfmt.DecodeFormatVersion(v, FormatVersion)
		closer.Close()
		if err != nil {
			return err
		}
		s.format = ver
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.First() {
		return it.Error()
	}
	k0 := append([]byte(nil), it.Key()...)
	it.Last()
	k1 := it.Key()
	if len(k0) != 9 || len(k1) != 9 {
		return fmt.Errorf("log key of %d bytes: %w", len(k0), storage.ErrCorrupt)
	}
	s.bounds = logfmt.Bounds{First: binary.BigEndian.Uint64(k0[1:]), Last: binary.BigEndian.Uint64(k1[1:])}
	return corruption(it.Error())
}

// corruption marks pebble's own corruption errors (a block or WAL record
// failing its checksum) with storage.ErrCorrupt.
func corruption(err error) error {
	if err != nil && pebble.IsCorruptionError(err) && !errors.Is(err, storage.ErrCorrupt) {
		return fmt.Errorf("%w: %w", err, storage.ErrCorrupt)
	}
	return err
}

// FormatVersion returns the layout version of the open store (which
// offline tools show; it may be older than the package's FormatVersion).
func (s *Store) FormatVersion() uint32 { return s.format }

// Path returns the store's directory.
func (s *Store) Path() string { return s.dir }

// SnapshotDir returns the directory holding snapshot files.
func (s *Store) SnapshotDir() string { return s.snaps.SnapshotDir() }

// Snapshots returns the snapshot store.
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

// read runs fn unless the store is closed and names the path in errors
// other than not-found.
func (s *Store) read(fn func() error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	err := fn()
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		err = fmt.Errorf("storage.pebble: %s: %w", s.dir, corruption(err))
	}
	return err
}

func (s *Store) Entry(index uint64) (storage.LogEntry, error) {
	var e storage.LogEntry
	err := s.read(func() error {
		v, closer, err := s.db.Get(logKey(index))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("storage.pebble: log entry %d: %w", index, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		e, err = logfmt.DecodeEntry(index, v)
		return err
	})
	return e, err
}

func (s *Store) Entries(lo, hi, maxBytes uint64) ([]storage.LogEntry, error) {
	if lo > hi {
		return nil, fmt.Errorf("storage.pebble: Entries(%d, %d): lo > hi", lo, hi)
	}
	var out []storage.LogEntry
	err := s.read(func() error {
		if lo == hi {
			return nil
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(lo), UpperBound: logKey(hi)})
		if err != nil {
			return err
		}
		defer it.Close()
		out = make([]storage.LogEntry, 0, min(hi-lo, 1024))
		var total uint64
		valid := it.First()
		for i := lo; i < hi; i++ {
			if !valid || binary.BigEndian.Uint64(it.Key()[1:]) != i {
				if err := it.Error(); err != nil {
					return err
				}
				return fmt.Errorf("storage.pebble: log entry %d: %w", i, storage.ErrNotFound)
			}
			v := it.Value()
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
			valid = it.Next()
		}
		return it.Error()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) State(key string) ([]byte, error) {
	var out []byte
	err := s.read(func() error {
		v, closer, err := s.db.Get(stateKey(key))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("storage.pebble: state %q: %w", key, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		out, err = logfmt.DecodeState(key, v)
		return err
	})
	return out, err
}

// StateKeys implements storage.StateLister, in key order.
func (s *Store) StateKeys() ([]string, error) {
	var keys []string
	err := s.read(func() error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		for valid := it.First(); valid; valid = it.Next() {
			keys = append(keys, string(it.Key()[1:]))
		}
		return it.Error()
	})
	return keys, err
}

// Write queues the batch for the writer goroutine and waits for its commit.
// ctx bounds only the wait for a place in the queue: once queued, the batch
// is committed or failed, and Write reports which.
func (s *Store) Write(ctx context.Context, b storage.Batch) error {
	return s.submit(ctx, &request{batch: b, done: make(chan error, 1)})
}

// CompactPrefix deletes entries <= upTo with one range tombstone, ordered
// with the Writes around it; pebble reclaims the space in compactions.
func (s *Store) CompactPrefix(upTo uint64) error {
	return s.submit(context.Background(), &request{compact: true, upTo: upTo, done: make(chan error, 1)})
}

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
// previous commit was syncing as one batch.
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
		clear(group)
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
				r.done <- fmt.Errorf("storage.pebble: %w", err)
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
	err := s.apply(plans)
	if err != nil && len(accepted) > 1 {
		// Retry one by one so a request that fails in the engine fails
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

func (s *Store) apply(plans []logfmt.Plan) error {
	b := s.db.NewBatch()
	defer b.Close()
	// Operations in a batch apply in order, so entries set after a range
	// deletion over the same indexes survive it.
	for _, p := range plans {
		if !p.Delete.Empty() {
			if err := b.DeleteRange(logKey(p.Delete.Lo), logKeyAfter(p.Delete.Hi), nil); err != nil {
				return err
			}
		}
		for _, e := range p.Entries {
			if err := b.Set(logKey(e.Index), logfmt.EncodeEntry(e), nil); err != nil {
				return err
			}
		}
		for k, v := range p.State {
			if err := b.Set(stateKey(k), logfmt.EncodeState(k, v), nil); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(s.wopts); err != nil {
		return fmt.Errorf("storage.pebble: commit to %s: %w", s.dir, err)
	}
	return nil
}

// DiskSize is what pebble reports for its files plus the snapshot files.
func (s *Store) DiskSize() (int64, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	snaps, err := fsutil.DirSize(s.snaps.SnapshotDir())
	if err != nil {
		return 0, fmt.Errorf("storage.pebble: %w", err)
	}
	return int64(s.db.Metrics().DiskSpaceUsage()) + snaps, nil
}

// Close commits what is queued, then closes the database and releases the
// directory lock. Closing again is a no-op.
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
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("storage.pebble: close %s: %w", s.dir, err)
	}
	s.log.Debug("closed")
	return nil
}

// logger routes pebble's messages to slog. pebble's routine flush and
// compaction notes go to Debug.
type logger struct{ l *slog.Logger }

func (l logger) Infof(format string, args ...any) { l.l.Debug(fmt.Sprintf(format, args...)) }
func (l logger) Errorf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by pebble on invariant violations and must not return
// (the default logger exits); panicking keeps the message and the stack.
func (l logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.l.Error(msg)
	panic("storage.pebble: " + msg)
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.Sizer       = (*Store)(nil)
	_ storage.StateLister = (*Store)(nil)
	_ storage.Factory     = factory{}
	_ pebble.Logger       = logger{}
)

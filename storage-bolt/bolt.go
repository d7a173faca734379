// Package storagebolt is the storage.bolt plugin: the storage contract on
// go.etcd.io/bbolt, one B+tree file with copy-on-write transactions, with a
// write-ahead log in front of it.
//
// Layout of <path>/corral.db: bucket "log" maps a big-endian uint64 index to
// an entry, bucket "state" maps a key to a value, bucket "meta" holds the
// format version and the number of the last write-ahead log record the
// database holds. Values are encoded by framework/storage/logfmt and carry
// a CRC32C, since bolt checksums only its meta pages. Snapshots are files
// under <path>/snapshots (see snapfile).
//
// Concurrent Writes are group-committed: a single writer goroutine takes
// every batch queued while the previous commit was syncing and commits them
// together, then wakes every caller.
//
// With the write-ahead log (Config.WAL, the default) a commit is one append
// of checksummed records to <path>/<seq>.wal and one fdatasync; a bolt
// commit costs two (data pages, then the meta page). What the log holds and
// the database does not yet is kept in memory as an overlay (see gen) that
// reads consult first. A checkpoint, off the write path, starts a new
// segment, writes the overlay into the database in one transaction, then
// deletes the old segments. Open replays the segments left over the
// database; records are numbered, the database knows the last one it holds,
// and a record is a blind write, so a crash at any point of a checkpoint
// recovers. A torn record at the end of the newest segment is cut off; a bad
// record anywhere else is corruption. This is etcd's layout (WAL + bolt
// backend) in one process.
package storagebolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// FormatVersion is the newest layout version this build opens. Version 2
// is version 1 plus write-ahead log segments that must be replayed before
// the database is current. A store carries it from the moment it is opened
// with the log on until it is closed cleanly (which folds the log into the
// database and deletes it), so a build that knows nothing of the log
// refuses a store a crash left with one, rather than serve it without its
// recent writes, and opens any store closed cleanly.
const FormatVersion uint32 = 2

const (
	formatDirect uint32 = 1
	formatWAL    uint32 = 2
)

const (
	dbFileName = "corral.db"
	snapDir    = "snapshots"
	// maxGroup caps how many queued batches share one commit, so one
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
	// keyWALApplied holds the number of the last write-ahead log record
	// the database holds; replay starts after it.
	keyWALApplied = []byte("wal-applied")
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
	cfg    Config
	format uint32 // the layout version the store was found at
	onDisk uint32 // the layout version on disk now
	db     *bolt.DB
	snaps  *snapfile.Store
	log    *slog.Logger

	reqs chan *request
	done chan struct{} // closed when the writer goroutine exits

	// closeMu is held shared by every operation in flight and exclusively
	// by Close, so Close never pulls the database from under a reader and no
	// Write is queued after the writer goroutine stopped.
	closeMu  sync.RWMutex
	closed   bool
	closeErr error // the writer goroutine's last word, read after done

	// mu guards bounds and the overlay. A reader holds it only to find where
	// each value lives and to begin a bolt read transaction, so it sees the
	// overlay and the database at one instant.
	mu     sync.RWMutex
	bounds logfmt.Bounds // written only by the writer goroutine
	active *gen          // records since the last checkpoint began; nil with the log off
	frozen *gen          // records a running (or failed) checkpoint writes to bolt

	// Owned by the writer goroutine (and Open before it starts).
	seg       *segment   // the segment records are appended to
	retired   []*segment // older segments, to delete after the next checkpoint
	nextSeq   uint64     // number of the next record
	failed    error      // a failed log write or checkpoint: refuse writes
	cpRunning bool
	walBuf    []byte

	cpDone chan cpResult

	walUsed     atomic.Int64  // bytes of records in the segments on disk
	commits     atomic.Uint64 // group commits on the write path, for tests and benchmarks
	fsyncs      atomic.Uint64 // fsyncs of any kind, for benchmarks
	checkpoints atomic.Uint64
}

type request struct {
	batch   storage.Batch
	compact bool
	upTo    uint64
	done    chan error
}

// testHook, when set by a test before Open, is called at the points of the
// write path and of a checkpoint where a crash is most interesting.
var testHook func(point string)

func hook(point string) {
	if testHook != nil {
		testHook(point)
	}
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
	// The database's file lock is the store's: it is taken before the log
	// is touched.
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
		dir: dir, dbPath: dbPath, cfg: *cfg, db: db, log: log,
		reqs:   make(chan *request, maxGroup),
		done:   make(chan struct{}),
		cpDone: make(chan cpResult, 1),
	}
	fail := func(err error) (*Store, error) {
		if s.seg != nil {
			s.seg.close()
		}
		db.Close()
		return nil, err
	}
	applied, err := s.init()
	if err != nil {
		return fail(err)
	}
	if err := s.recover(applied); err != nil {
		return fail(err)
	}
	s.snaps, err = snapfile.Open(filepath.Join(dir, snapDir), snapfile.Options{Retain: cfg.RetainSnapshots, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("storage.bolt: %w", err))
	}
	log.Debug("opened", "first", s.bounds.First, "last", s.bounds.Last, "sync", cfg.Sync, "wal", cfg.WAL)
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

func (s *Store) wal() bool { return s.cfg.WAL }

// wantFormat is the version the store should carry with this config.
func (s *Store) wantFormat() uint32 {
	if s.wal() {
		return formatWAL
	}
	return formatDirect
}

// init creates the buckets of a new file or checks those of an existing one,
// and loads the log bounds and the last log record the database holds.
func (s *Store) init() (applied uint64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
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
			// An empty database is complete; recover marks it if a log
			// is to come.
			s.format, s.onDisk = formatDirect, formatDirect
			return tx.Bucket(bucketMeta).Put(keyFormat, logfmt.EncodeFormatVersion(s.format))
		}
		ver, err := logfmt.DecodeFormatVersion(meta.Get(keyFormat), FormatVersion)
		if err != nil {
			return err
		}
		s.format, s.onDisk = ver, ver
		if v := meta.Get(keyWALApplied); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("write-ahead log position of %d bytes: %w", len(v), storage.ErrCorrupt)
			}
			applied = binary.BigEndian.Uint64(v)
		}
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
		return 0, fmt.Errorf("storage.bolt: %s: %w", s.dbPath, err)
	}
	return applied, nil
}

// recover replays the write-ahead log over the database, whose last record
// is applied, folds what it replayed into the database, deletes the old
// segments and, with the log on, starts a new one. Whatever the config, a
// store is fully in its database before the log is turned off or on.
func (s *Store) recover(applied uint64) error {
	segs, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	s.active = newGen()
	next := applied + 1 // the record after the last one seen
	for i, sf := range segs {
		// Records after applied must all be here; a segment the last
		// checkpoint covered may be missing (a failed delete elsewhere).
		switch {
		case sf.first > next && sf.first > applied+1:
			return fmt.Errorf("storage.bolt: WAL segment %s starts at record %d, but records %d to %d are in no segment and not in %s: %w",
				sf.path, sf.first, max(next, applied+1), sf.first-1, s.dbPath, storage.ErrCorrupt)
		case i > 0 && sf.first < next:
			return fmt.Errorf("storage.bolt: WAL segment %s starts at record %d, which the segment before it holds: %w",
				sf.path, sf.first, storage.ErrCorrupt)
		}
		last := i == len(segs)-1
		n, torn, err := scanSegment(sf.path, sf.first, last, func(op walOp, off int64) error {
			if op.seq <= applied {
				return nil // the database has it
			}
			if err := s.replay(&op); err != nil {
				return fmt.Errorf("storage.bolt: WAL segment %s: record %d at offset %d does not apply to %s: %v: %w",
					sf.path, op.seq, off, s.dbPath, err, storage.ErrCorrupt)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if torn >= 0 {
			s.log.Warn("cut off a write torn by a crash at the end of the write-ahead log; it was never acknowledged",
				"segment", sf.path, "offset", torn, "record", n)
		}
		next = n
	}
	s.nextSeq = max(next, applied+1)
	if len(segs) > 0 {
		s.log.Info("replayed the write-ahead log", "segments", len(segs), "records", s.active.seq-min(s.active.seq, applied),
			"first", s.bounds.First, "last", s.bounds.Last)
		if !s.active.empty() {
			if err := s.applyGen(s.active); err != nil {
				return err
			}
		}
		s.active = newGen()
		for _, sf := range segs {
			if err := os.Remove(sf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("storage.bolt: remove replayed WAL segment: %w", err)
			}
		}
		if err := fsutil.SyncDir(s.dir); err != nil {
			return fmt.Errorf("storage.bolt: %w", err)
		}
	}
	// The version says "there may be a log" before there is one, and goes
	// back only once none is left.
	if want := s.wantFormat(); s.onDisk != want {
		if err := s.setFormat(want); err != nil {
			return err
		}
	}
	if !s.wal() {
		s.active = nil
		return nil
	}
	s.seg, err = createSegment(s.dir, s.nextSeq, s.prealloc())
	return err
}

// replay applies one record read at Open to the overlay, rechecked against
// the bounds the records before it left.
func (s *Store) replay(o *walOp) error {
	var p logfmt.Plan
	var nb logfmt.Bounds
	if o.compact {
		p, nb = s.bounds.ApplyCompact(o.upTo)
	} else {
		var err error
		if p, nb, err = s.bounds.ApplyBatch(o.checkBatch()); err != nil {
			return err
		}
	}
	s.active.apply(o, p)
	s.bounds = nb
	return nil
}

func (s *Store) setFormat(v uint32) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, logfmt.EncodeFormatVersion(v))
	})
	if err != nil {
		return fmt.Errorf("storage.bolt: set format version of %s: %w", s.dbPath, err)
	}
	s.log.Debug("format version", "from", s.onDisk, "to", v)
	s.onDisk = v
	return nil
}

// prealloc is a segment's preallocation: what a checkpoint interval
// typically writes, with room to spare.
func (s *Store) prealloc() int64 {
	return min(max(s.cfg.WALCheckpointBytes+s.cfg.WALCheckpointBytes/4, 1<<20), 64<<20)
}

// FormatVersion returns the layout version the store was found at when it
// was opened (which offline tools show; it may be older than the package's
// FormatVersion): 1, or 2 when a crash left write-ahead log records to
// replay. A new store is 1.
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bounds, nil
}

// read runs pre with s.mu read-locked; when pre asks for the database,
// post runs in a bolt read transaction begun under that same lock. A
// checkpoint committing meanwhile writes only what the overlay pre saw
// still shows, so the two agree. A bolt panic on a damaged page becomes an
// error.
func (s *Store) read(pre func() (needDB bool, err error), post func(tx *bolt.Tx) error) (err error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	s.mu.RLock()
	need, err := pre()
	if err != nil || !need {
		s.mu.RUnlock()
		return err
	}
	tx, err := s.db.Begin(false)
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("storage.bolt: %s: %w", s.dbPath, err)
	}
	defer tx.Rollback()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage.bolt: %s: read failed (corrupt page?): %v: %w", s.dbPath, r, storage.ErrCorrupt)
		}
	}()
	err = post(tx)
	if errors.Is(err, storage.ErrCorrupt) {
		err = fmt.Errorf("storage.bolt: %s: %w", s.dbPath, err)
	}
	return err
}

// overlayEntry returns entry i from the overlay, if it is there. The
// caller holds s.mu and has checked i against the bounds: within them, the
// active generation is newest, the frozen one next, the database oldest,
// and whatever a newer one deleted is outside the bounds.
func (s *Store) overlayEntry(i uint64) ([]byte, bool) {
	if g := s.active; g != nil && g.has(i) {
		return g.ents[i-g.lo], true
	}
	if g := s.frozen; g != nil && g.has(i) {
		return g.ents[i-g.lo], true
	}
	return nil, false
}

// overlayFrom is the first index in bounds b that the overlay holds
// (b.Last+1 if none): the database holds the log below it, the overlay all
// of it from there. The caller holds s.mu.
func (s *Store) overlayFrom(b logfmt.Bounds) uint64 {
	from := b.Last + 1
	if g := s.active; g != nil && len(g.ents) > 0 {
		from = g.lo
	}
	if g := s.frozen; g != nil && len(g.ents) > 0 {
		if lo, hi := max(g.lo, b.First), min(g.hi(), from-1); lo <= hi {
			from = lo
		}
	}
	return max(from, b.First)
}

func (s *Store) overlayState(key string) ([]byte, bool) {
	for _, g := range []*gen{s.active, s.frozen} {
		if g != nil {
			if v, ok := g.state[key]; ok {
				return v, true
			}
		}
	}
	return nil, false
}

func u64(i uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), i) }

func entryNotFound(i uint64) error {
	return fmt.Errorf("storage.bolt: log entry %d: %w", i, storage.ErrNotFound)
}

// decodeOverlay decodes a value from the overlay, which was encoded in
// this process; a failure means memory went bad.
func decodeOverlay(i uint64, v []byte) (storage.LogEntry, error) {
	e, err := logfmt.DecodeEntry(i, v)
	if err != nil {
		return e, fmt.Errorf("storage.bolt: write-ahead overlay: %w", err)
	}
	return e, nil
}

func (s *Store) Entry(index uint64) (storage.LogEntry, error) {
	var e storage.LogEntry
	var ov []byte
	err := s.read(func() (bool, error) {
		if b := s.bounds; b.Last == 0 || index < b.First || index > b.Last {
			return false, entryNotFound(index)
		}
		var ok bool
		ov, ok = s.overlayEntry(index)
		return !ok, nil
	}, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLog).Get(u64(index))
		if v == nil {
			return entryNotFound(index)
		}
		var err error
		e, err = logfmt.DecodeEntry(index, v)
		return err
	})
	if err == nil && ov != nil {
		return decodeOverlay(index, ov)
	}
	return e, err
}

func (s *Store) Entries(lo, hi, maxBytes uint64) ([]storage.LogEntry, error) {
	if lo > hi {
		return nil, fmt.Errorf("storage.bolt: Entries(%d, %d): lo > hi", lo, hi)
	}
	var (
		out       []storage.LogEntry
		total     uint64
		full      bool     // maxBytes reached
		end       uint64   // the range clipped to the log: [lo, end)
		from      uint64   // the overlay holds [from, end)
		ov        [][]byte // the overlay's values from from on
		ovClipped bool     // ov stops early: its bytes alone pass maxBytes
	)
	// add appends entry i unless maxBytes is reached (at least one entry).
	add := func(i uint64, v []byte, decode func(uint64, []byte) (storage.LogEntry, error)) error {
		size := logfmt.EntryDataLen(v)
		if maxBytes > 0 && len(out) > 0 && total+size > maxBytes {
			full = true
			return nil
		}
		e, err := decode(i, v)
		if err != nil {
			return err
		}
		total += size
		out = append(out, e)
		return nil
	}
	err := s.read(func() (bool, error) {
		if lo == hi {
			return false, nil
		}
		b := s.bounds
		if b.Last == 0 || lo < b.First || lo > b.Last {
			return false, entryNotFound(lo)
		}
		end = min(hi, b.Last+1)
		from = max(s.overlayFrom(b), lo)
		out = make([]storage.LogEntry, 0, min(end-lo, 1024))
		// Collect references only: values in the overlay never change, and
		// decoding waits until the lock is released.
		var sum uint64
		for i := from; i < end; i++ {
			v, ok := s.overlayEntry(i)
			if !ok {
				return false, fmt.Errorf("storage.bolt: log entry %d is missing from the write-ahead overlay", i)
			}
			ov = append(ov, v)
			if sum += logfmt.EntryDataLen(v); maxBytes > 0 && sum > maxBytes {
				ovClipped = true
				break
			}
		}
		return lo < from, nil
	}, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		k, v := c.Seek(u64(lo))
		for i := lo; i < min(from, end) && !full; i++ {
			if k == nil || binary.BigEndian.Uint64(k) != i {
				return entryNotFound(i)
			}
			if err := add(i, v, logfmt.DecodeEntry); err != nil {
				return err
			}
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lo == hi {
		return out, nil
	}
	for k := 0; k < len(ov) && !full; k++ {
		if err := add(from+uint64(k), ov[k], decodeOverlay); err != nil {
			return nil, err
		}
	}
	// As the walk would: an index that is there but past maxBytes ends it;
	// reaching one that is not there is NotFound.
	switch next := max(from, lo) + uint64(len(ov)); {
	case full:
	case ovClipped && next < end:
		// ov's bytes alone passed maxBytes: entry next is over the limit.
	case end < hi:
		return nil, entryNotFound(end)
	}
	return out, nil
}

func (s *Store) State(key string) ([]byte, error) {
	var out, ov []byte
	var inOverlay bool
	err := s.read(func() (bool, error) {
		ov, inOverlay = s.overlayState(key)
		return !inOverlay, nil
	}, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketState).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("storage.bolt: state %q: %w", key, storage.ErrNotFound)
		}
		var err error
		out, err = logfmt.DecodeState(key, v)
		return err
	})
	if err == nil && inOverlay {
		if out, err = logfmt.DecodeState(key, ov); err != nil {
			return nil, fmt.Errorf("storage.bolt: write-ahead overlay: %w", err)
		}
	}
	return out, err
}

// StateKeys implements storage.StateLister; bolt keeps keys sorted, and the
// overlay's are merged in.
func (s *Store) StateKeys() ([]string, error) {
	var keys []string
	err := s.read(func() (bool, error) {
		for _, g := range []*gen{s.active, s.frozen} {
			if g != nil {
				for k := range g.state {
					keys = append(keys, k)
				}
			}
		}
		return true, nil
	}, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Write queues the batch for the writer goroutine and waits for its commit.
// ctx bounds only the wait for a place in the queue: once queued, the batch
// is committed or failed, and Write reports which.
func (s *Store) Write(ctx context.Context, b storage.Batch) error {
	return s.submit(ctx, &request{batch: b, done: make(chan error, 1)})
}

// CompactPrefix deletes entries <= upTo, ordered with the Writes around it.
func (s *Store) CompactPrefix(upTo uint64) error {
	if s.wal() {
		// One record; the checkpoint does the deleting, off the write path.
		return s.submit(context.Background(), &request{compact: true, upTo: upTo, done: make(chan error, 1)})
	}
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
// previous commit was syncing as one group, and with the log on starts
// checkpoints and takes their results.
func (s *Store) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.wal() {
		t := time.NewTicker(min(max(s.cfg.WALCheckpointInterval/4, time.Millisecond), 250*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	group := make([]*request, 0, maxGroup)
	for {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				s.closeErr = s.shutdown()
				return
			}
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
			if s.wal() {
				s.throttle()
			}
			s.commit(group)
			clear(group) // drop references to delivered batches
		case res := <-s.cpDone:
			s.checkpointDone(res)
		case <-tick:
		}
		if s.wal() {
			s.maybeCheckpoint()
		}
	}
}

// item is a request checked against the bounds.
type item struct {
	r  *request
	p  logfmt.Plan
	op walOp // with the log on, for a plan that changes something
}

// commit checks each request against the bounds left by the ones before it,
// answers rejected ones at once, and commits the rest together.
func (s *Store) commit(group []*request) {
	next := s.bounds
	items := make([]item, 0, len(group))
	for _, r := range group {
		it := item{r: r}
		nb := next
		if r.compact {
			it.p, nb = next.ApplyCompact(r.upTo)
		} else {
			var err error
			if it.p, nb, err = next.ApplyBatch(r.batch); err != nil {
				r.done <- fmt.Errorf("storage.bolt: %w", err)
				continue
			}
		}
		if s.wal() && !it.p.Noop() {
			if r.compact {
				it.op = compactOp(r.upTo)
			} else {
				var err error
				if it.op, err = batchOp(r.batch); err != nil {
					r.done <- err
					continue
				}
			}
		}
		next = nb
		items = append(items, it)
	}
	if !slices.ContainsFunc(items, func(it item) bool { return !it.p.Noop() }) {
		for _, it := range items {
			it.r.done <- nil
		}
		return
	}
	var err error
	if s.wal() {
		err = s.appendWAL(items, next)
	} else {
		plans := make([]logfmt.Plan, len(items))
		for i, it := range items {
			plans[i] = it.p
		}
		err = s.update(plans)
		if err != nil && len(items) > 1 {
			// Retry one by one, so a request that fails in the engine fails
			// alone; each is rechecked against the bounds its predecessors
			// left.
			for _, it := range items {
				s.commit([]*request{it.r})
			}
			return
		}
		if err == nil {
			s.commits.Add(1)
			s.mu.Lock()
			s.bounds = next
			s.mu.Unlock()
		}
	}
	for _, it := range items {
		it.r.done <- err
	}
}

// appendWAL writes the group's records with one write and one fdatasync,
// then shows them to readers. A failed write or sync leaves the segment's
// tail unknown (and a failed fsync may have dropped dirty pages), so the
// store refuses every later write: reopening replays what did reach disk.
func (s *Store) appendWAL(items []item, next logfmt.Bounds) error {
	if s.failed != nil {
		return s.failed
	}
	buf := s.walBuf[:0]
	seq := s.nextSeq
	for i := range items {
		if items[i].p.Noop() {
			continue
		}
		items[i].op.seq = seq
		seq++
		buf = items[i].op.appendRecord(buf)
	}
	if err := s.writeWAL(buf); err != nil {
		s.failed = fmt.Errorf("storage.bolt: write-ahead log %s failed; refusing writes until the store is reopened: %w", s.seg.path, err)
		s.log.Error("write-ahead log failed", "err", err)
		return s.failed
	}
	s.nextSeq = seq
	s.mu.Lock()
	for i := range items {
		if !items[i].p.Noop() {
			s.active.apply(&items[i].op, items[i].p)
		}
	}
	s.bounds = next
	s.mu.Unlock()
	s.commits.Add(1)
	if cap(buf) <= 1<<20 {
		s.walBuf = buf[:0]
	} else {
		s.walBuf = nil // one huge batch should not pin its buffer
	}
	return nil
}

func (s *Store) writeWAL(buf []byte) error {
	if _, err := s.seg.f.WriteAt(buf, s.seg.size); err != nil {
		return err
	}
	hook("wal-written")
	s.seg.size += int64(len(buf))
	s.walUsed.Add(int64(len(buf)))
	if !s.cfg.Sync {
		return nil
	}
	s.fsyncs.Add(1)
	return fdatasync(s.seg.f)
}

// throttle holds the writer while a checkpoint runs and the records that
// arrived since it began already pass four checkpoints' worth, so the
// overlay's memory stays bounded when bolt falls behind.
func (s *Store) throttle() {
	for s.cpRunning && s.active.bytes >= 4*s.cfg.WALCheckpointBytes {
		s.checkpointDone(<-s.cpDone)
		s.maybeCheckpoint()
	}
}

// maybeCheckpoint starts a checkpoint when none is running and the overlay
// is big or old enough.
func (s *Store) maybeCheckpoint() {
	if s.cpRunning || s.failed != nil || s.active.empty() {
		return
	}
	if s.active.bytes < s.cfg.WALCheckpointBytes && time.Since(s.active.born) < s.cfg.WALCheckpointInterval {
		return
	}
	// A new segment first, so the records of the generation frozen below are
	// exactly those of the segments before it.
	del := s.retired
	s.retired = nil
	if seg, err := s.nextSegment(); err != nil {
		// Checkpoint anyway, so memory stays bounded; the current segment
		// goes once a later rotation succeeds.
		s.log.Warn("cannot start a new write-ahead log segment; checkpointing without one", "err", err)
	} else {
		hook("rotated")
		// Every record in it is synced: closing loses nothing.
		if err := s.seg.close(); err != nil {
			s.log.Debug("close WAL segment", "path", s.seg.path, "err", err)
		}
		del = append(del, s.seg)
		s.seg = seg
	}
	s.mu.Lock()
	g := s.active
	s.frozen, s.active = g, newGen()
	s.mu.Unlock()
	s.cpRunning = true
	go func() { s.cpDone <- s.checkpoint(g, del) }()
}

// nextSegment creates the segment that follows the current one. Only the
// newest segment may end in a torn record, so with sync off the current one
// is synced first (with sync on, every record in it already is).
func (s *Store) nextSegment() (*segment, error) {
	if !s.cfg.Sync {
		if err := fdatasync(s.seg.f); err != nil {
			return nil, err
		}
	}
	seg, err := createSegment(s.dir, s.nextSeq, s.prealloc())
	if err == nil {
		s.fsyncs.Add(1) // the directory
	}
	return seg, err
}

type cpResult struct {
	err  error
	left []*segment // segments to delete after a later checkpoint
	gen  *gen
	took time.Duration
}

// checkpoint writes frozen generation g into the database, shows readers
// the database in its place, and deletes segments del, whose records the
// database then holds. It runs beside the writer goroutine.
func (s *Store) checkpoint(g *gen, del []*segment) cpResult {
	hook("checkpoint-start")
	start := time.Now()
	if err := s.applyGen(g); err != nil {
		return cpResult{err: err, left: del, gen: g}
	}
	if !s.cfg.Sync && len(del) > 0 {
		// The segments go next: the database must hold their records even
		// with sync off (one fsync per checkpoint, not per write).
		if err := s.db.Sync(); err != nil {
			return cpResult{err: fmt.Errorf("storage.bolt: sync %s: %w", s.dbPath, err), left: del, gen: g}
		}
	}
	took := time.Since(start)
	hook("checkpoint-applied")
	s.mu.Lock()
	s.frozen = nil
	s.mu.Unlock()
	if g.compactTo != 0 {
		s.releaseMappedPages()
	}
	return cpResult{left: s.removeSegments(del), gen: g, took: took}
}

// removeSegments deletes segments oldest first and returns those it could
// not. A segment left behind holds only records the database has: replay
// skips them, and tolerates the gap when a newer one is gone.
func (s *Store) removeSegments(del []*segment) (left []*segment) {
	removed := false
	for _, g := range del {
		if err := os.Remove(g.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot remove a checkpointed write-ahead log segment; will retry", "path", g.path, "err", err)
			left = append(left, g)
			continue
		}
		removed = true
		s.walUsed.Add(-g.size)
		hook("segment-removed")
	}
	if removed {
		s.fsyncs.Add(1)
		if err := fsutil.SyncDir(s.dir); err != nil {
			// Harmless: a segment that comes back holds only applied records.
			s.log.Warn("sync after removing write-ahead log segments", "err", err)
		}
	}
	return left
}

// checkpointDone takes a checkpoint's result in the writer goroutine.
func (s *Store) checkpointDone(res cpResult) {
	s.cpRunning = false
	s.checkpoints.Add(1)
	s.retired = append(res.left, s.retired...)
	if res.err == nil {
		s.log.Debug("checkpoint", "through_record", res.gen.seq, "entries", len(res.gen.ents),
			"state", len(res.gen.state), "bytes", res.gen.bytes, "took", res.took, "segments_left", len(s.retired))
	}
	if res.err != nil && s.failed == nil {
		s.failed = fmt.Errorf("storage.bolt: checkpoint into %s failed; refusing writes until the store is reopened (acknowledged writes are safe in the write-ahead log): %w", s.dbPath, res.err)
		s.log.Error("checkpoint failed", "err", res.err)
	}
}

// applyGen writes generation g into the database in one transaction, with
// the number of its last record. Each of its parts is a blind write, so
// writing it over a database that already has some of it is harmless.
func (s *Store) applyGen(g *gen) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage.bolt: %s: checkpoint failed (corrupt page?): %v: %w", s.dbPath, r, storage.ErrCorrupt)
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		lb, sb := tx.Bucket(bucketLog), tx.Bucket(bucketState)
		lb.FillPercent = appendFill
		c := lb.Cursor()
		if fk, _ := c.First(); fk != nil {
			lk, _ := c.Last()
			first, last := binary.BigEndian.Uint64(fk), binary.BigEndian.Uint64(lk)
			if g.compactTo >= first {
				if err := deleteRange(lb, first, min(g.compactTo, last)); err != nil {
					return err
				}
			}
			if g.truncFrom != 0 && g.truncFrom <= last {
				if err := deleteRange(lb, max(g.truncFrom, first), last); err != nil {
					return err
				}
			}
		}
		for k, v := range g.ents {
			if err := lb.Put(u64(g.lo+uint64(k)), v); err != nil {
				return err
			}
		}
		for k, v := range g.state {
			if err := sb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyWALApplied, u64(g.seq))
	})
	if err != nil {
		return fmt.Errorf("storage.bolt: checkpoint into %s: %w", s.dbPath, err)
	}
	if s.cfg.Sync {
		s.fsyncs.Add(2)
	}
	return nil
}

func deleteRange(lb *bolt.Bucket, lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	for i := lo; ; i++ {
		if err := lb.Delete(u64(i)); err != nil {
			return err
		}
		if i == hi {
			return nil
		}
	}
}

// shutdown ends the writer goroutine's work at Close: with the log on, it
// checkpoints what is left and deletes every segment, so a cleanly closed
// store is all in its database.
func (s *Store) shutdown() error {
	if !s.wal() {
		return nil
	}
	if s.cpRunning {
		s.checkpointDone(<-s.cpDone)
	}
	defer s.seg.close()
	if s.failed != nil {
		return s.failed
	}
	if !s.active.empty() {
		s.mu.Lock()
		g := s.active
		s.frozen, s.active = g, newGen()
		s.mu.Unlock()
		if res := s.checkpoint(g, nil); res.err != nil {
			return fmt.Errorf("storage.bolt: final checkpoint (the write-ahead log keeps the writes): %w", res.err)
		}
	}
	s.seg.close()
	if !s.cfg.Sync {
		// As in checkpoint: the database must hold what the segments did.
		if err := s.db.Sync(); err != nil {
			return fmt.Errorf("storage.bolt: sync %s (the write-ahead log keeps the writes): %w", s.dbPath, err)
		}
	}
	if s.retired = s.removeSegments(append(s.retired, s.seg)); len(s.retired) > 0 {
		return nil // version 2 stays: a segment is left
	}
	// The database is all there is: any build may open it.
	return s.setFormat(formatDirect)
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
			if err := deleteRange(lb, p.Delete.Lo, p.Delete.Hi); err != nil {
				return err
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
	if s.cfg.Sync {
		s.fsyncs.Add(2)
	}
	return nil
}

// DiskSize is the database file, the write-ahead log's records (not its
// preallocated space) and the snapshot files.
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
	return st.Size() + s.walUsed.Load() + snaps, nil
}

// Close commits what is queued (and with the log on, checkpoints it), then
// closes the database. Closing again is a no-op.
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
	err := s.closeErr
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("storage.bolt: close %s: %w", s.dbPath, cerr))
	}
	s.log.Debug("closed")
	return err
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.Sizer       = (*Store)(nil)
	_ storage.StateLister = (*Store)(nil)
	_ storage.Factory     = factory{}
)

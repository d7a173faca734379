package storagebolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

func wantErrContaining(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// wantCorrupt checks that err reports corruption the way the contract
// asks: wrapping storage.ErrCorrupt, and naming the path.
func wantCorrupt(t *testing.T, err error, parts ...string) {
	t.Helper()
	wantErrContaining(t, err, parts...)
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("error %q does not wrap storage.ErrCorrupt", err)
	}
}

func TestRegisteredFactory(t *testing.T) {
	f, err := plugin.Lookup(plugin.KindStorage, "bolt")
	if err != nil {
		t.Fatal(err)
	}
	sf := f.(storage.Factory)
	cfg := sf.DefaultConfig().(*Config)
	if !cfg.Sync || !cfg.WAL || cfg.WALCheckpointBytes != 8<<20 || cfg.WALCheckpointInterval != time.Second ||
		cfg.OpenTimeout != time.Second || cfg.RetainSnapshots != 2 || cfg.Path != "" {
		t.Fatalf("defaults %+v", cfg)
	}
	dataDir := t.TempDir()
	s, err := sf.New(context.Background(), plugin.Settings{DataDir: dataDir}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.(*Store).Path(), filepath.Join(dataDir, "bolt"); got != want {
		t.Fatalf("path %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "bolt", "corral.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.New(context.Background(), plugin.Settings{DataDir: dataDir}, struct{}{}); err == nil {
		t.Fatal("New accepted a foreign config type")
	}
}

func TestNoPathNoDataDir(t *testing.T) {
	_, err := Open(context.Background(), plugin.Settings{}, DefaultConfig())
	wantErrContaining(t, err, "no path")
}

func TestValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"open_timeout":      func(c *Config) { c.OpenTimeout = 0 },
		"initial_mmap_size": func(c *Config) { c.InitialMmapSize = -1 },
		"retain_snapshots":  func(c *Config) { c.RetainSnapshots = 0 },
		"wal_checkpoint_bytes": func(c *Config) {
			c.WAL = false // checked even with the log off
			c.WALCheckpointBytes = 0
		},
		"wal_checkpoint_interval": func(c *Config) { c.WALCheckpointInterval = -time.Second },
	} {
		cfg := DefaultConfig()
		mutate(cfg)
		wantErrContaining(t, cfg.Validate(), name)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCreatesMissingParents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	s := openAt(t, dir, nil)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
}

func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, nil)
	defer s.Close()
	cfg := DefaultConfig()
	cfg.Path = dir
	cfg.OpenTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, filepath.Join(dir, "corral.db"), "locked")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("locked open took %s", d)
	}
}

func TestNewerFormatVersion(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, nil).Close()
	path := filepath.Join(dir, "corral.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, 7))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err = Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, path, "format version 7", fmt.Sprintf("supports (%d)", FormatVersion))
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "corral.db")
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i * 31)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantCorrupt(t, err, path, "corrupt")
}

func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads files whatever their mode; use a directory in the
		// file's place instead, which nobody can open as a database.
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "corral.db"), 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Path = dir
		_, err := Open(context.Background(), plugin.Settings{}, cfg)
		wantErrContaining(t, err, filepath.Join(dir, "corral.db"))
		return
	}
	dir := t.TempDir()
	openAt(t, dir, nil).Close()
	path := filepath.Join(dir, "corral.db")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, path)
}

func TestForeignBoltFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "corral.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("logs")); return err })
	db.Close()
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err = Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, path, "not a corral store")
}

func TestDamagedEntryDetected(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, nil)
	if err := s.Write(context.Background(), storage.Batch{
		Entries: []storage.LogEntry{{Index: 1, Term: 1, Data: []byte("hello")}, {Index: 2, Term: 1, Data: []byte("world")}},
		State:   map[string][]byte{"k": []byte("v")},
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, "corral.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the stored values with one byte changed, as a bad disk would.
	err = db.Update(func(tx *bolt.Tx) error {
		for _, kv := range []struct{ b, k []byte }{{bucketLog, u64(2)}, {bucketState, []byte("k")}} {
			v := append([]byte(nil), tx.Bucket(kv.b).Get(kv.k)...)
			v[len(v)-1] ^= 1
			if err := tx.Bucket(kv.b).Put(kv.k, v); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, nil)
	defer s.Close()
	if _, err := s.Entry(1); err != nil {
		t.Fatalf("undamaged entry: %v", err)
	}
	_, err = s.Entry(2)
	wantCorrupt(t, err, path, "log entry 2", "checksum")
	_, err = s.Entries(1, 3, 0)
	wantCorrupt(t, err, path, "log entry 2")
	_, err = s.State("k")
	wantCorrupt(t, err, path, "checksum")
}

func TestCancelledContext(t *testing.T) {
	s := openAt(t, t.TempDir(), nil)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, storage.Batch{Entries: []storage.LogEntry{{Index: 1, Term: 1}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("cancelled write applied: last %d", last)
	}
}

// bothModes runs a test with the write-ahead log on and off.
func bothModes(t *testing.T, test func(t *testing.T, mutate func(*Config))) {
	t.Run("wal", func(t *testing.T) { test(t, nil) })
	t.Run("direct", func(t *testing.T) { test(t, walOff) })
}

// Concurrent writers share commits: with sync on, a writer arriving while a
// commit is syncing waits for the next one, which carries every batch that
// queued up meanwhile.
func TestGroupCommit(t *testing.T) { bothModes(t, testGroupCommit) }

func testGroupCommit(t *testing.T, mutate func(*Config)) {
	s := openAt(t, t.TempDir(), mutate)
	defer s.Close()
	const writers, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for n := range each {
				b := storage.Batch{State: map[string][]byte{fmt.Sprint(w): {byte(n)}}}
				if err := s.Write(context.Background(), b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := s.commits.Load()
	t.Logf("%d writes in %d commits", writers*each, c)
	if c*2 > writers*each {
		t.Fatalf("%d commits for %d concurrent writes: not grouped", c, writers*each)
	}
	for w := range writers {
		if v, err := s.State(fmt.Sprint(w)); err != nil || v[0] != each-1 {
			t.Fatalf("writer %d: %v %v", w, v, err)
		}
	}
}

// A rejected batch in a group fails alone.
func TestBadBatchInGroupFailsAlone(t *testing.T) {
	s := openAt(t, t.TempDir(), nil)
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var good, bad int
	for w := range 32 {
		wg.Go(func() {
			b := storage.Batch{State: map[string][]byte{fmt.Sprint(w): {1}}}
			if w%2 == 1 {
				b.Entries = []storage.LogEntry{{Index: 0}} // index 0 is rejected
			}
			err := s.Write(context.Background(), b)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case w%2 == 0 && err == nil:
				good++
			case w%2 == 1 && err != nil:
				bad++
			default:
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if good != 16 || bad != 16 {
		t.Fatalf("good %d bad %d", good, bad)
	}
	if _, err := s.State("1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("state of a rejected batch: %v", err)
	}
}

func TestSyncOffStillDurableAfterClose(t *testing.T) { bothModes(t, testSyncOffStillDurableAfterClose) }

func testSyncOffStillDurableAfterClose(t *testing.T, mutate func(*Config)) {
	dir := t.TempDir()
	s := openAt(t, dir, func(c *Config) {
		if mutate != nil {
			mutate(c)
		}
		c.Sync = false
	})
	for i := uint64(1); i <= 50; i++ {
		if err := s.Write(context.Background(), storage.Batch{Entries: []storage.LogEntry{{Index: i, Term: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, nil)
	defer s.Close()
	if last, _ := s.LastIndex(); last != 50 {
		t.Fatalf("last %d after clean close, want 50", last)
	}
}

func TestRetainSnapshotsConfig(t *testing.T) {
	s := openAt(t, t.TempDir(), func(c *Config) { c.RetainSnapshots = 1 })
	defer s.Close()
	for i := uint64(1); i <= 3; i++ {
		k, err := s.Snapshots().Create(storage.SnapshotMeta{Index: i, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Snapshots().List()
	if err != nil || len(list) != 1 || list[0].Index != 3 {
		t.Fatalf("List = %+v, %v; want only index 3", list, err)
	}
}

// A batch or compaction that changes nothing costs no commit (and no fsync).
func TestNoopWritesSkipCommit(t *testing.T) { bothModes(t, testNoopWritesSkipCommit) }

func testNoopWritesSkipCommit(t *testing.T, mutate func(*Config)) {
	s := openAt(t, t.TempDir(), mutate)
	defer s.Close()
	if err := s.Write(context.Background(), storage.Batch{Entries: []storage.LogEntry{{Index: 1, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	before := s.commits.Load()
	if err := s.Write(context.Background(), storage.Batch{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), storage.Batch{TruncateFrom: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompactPrefix(0); err != nil {
		t.Fatal(err)
	}
	if c := s.commits.Load(); c != before {
		t.Fatalf("%d commits for no-op writes", c-before)
	}
	if err := s.CompactPrefix(1); err != nil {
		t.Fatal(err)
	}
	if c := s.commits.Load(); c != before+1 {
		t.Fatalf("CompactPrefix(1) made %d commits, want 1", c-before)
	}
}

func TestStateKeys(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, nil)
	if keys, err := s.StateKeys(); err != nil || len(keys) != 0 {
		t.Fatalf("empty store: keys %q, %v", keys, err)
	}
	err := s.Write(context.Background(), storage.Batch{
		Entries: []storage.LogEntry{{Index: 1, Term: 1, Data: []byte("not a state value")}},
		State:   map[string][]byte{"raft/LastVoteTerm": {1}, "raft/CurrentTerm": {2}, "z": nil, "\x00": {3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"\x00", "raft/CurrentTerm", "raft/LastVoteTerm", "z"}
	keys, err := s.StateKeys()
	if err != nil || !slices.Equal(keys, want) {
		t.Fatalf("keys %q, %v; want %q", keys, err, want)
	}
	s.Close()
	if _, err := s.StateKeys(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	s = openAt(t, dir, nil)
	defer s.Close()
	// Closed cleanly: no log to replay.
	if s.FormatVersion() != formatDirect {
		t.Fatalf("FormatVersion() = %d, want %d", s.FormatVersion(), formatDirect)
	}
	if keys, err := s.StateKeys(); err != nil || !slices.Equal(keys, want) {
		t.Fatalf("after reopen: keys %q, %v; want %q", keys, err, want)
	}
}

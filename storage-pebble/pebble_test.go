package storagepebble

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/logfmt"
)

// lockChildEnv makes the test binary a process that holds a store open
// until its stdin closes.
const lockChildEnv = "CORRAL_PEBBLE_LOCK_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockChildEnv); dir != "" {
		os.Exit(lockChild(dir))
	}
	os.Exit(m.Run())
}

func lockChild(dir string) int {
	cfg := DefaultConfig()
	cfg.Path = dir
	s, err := Open(context.Background(), plugin.Settings{}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("open")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	s.Close()
	return 0
}

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
	f, err := plugin.Lookup(plugin.KindStorage, "pebble")
	if err != nil {
		t.Fatal(err)
	}
	sf := f.(storage.Factory)
	cfg := sf.DefaultConfig().(*Config)
	if !cfg.Sync || cfg.CacheSize != 8<<20 || cfg.MemtableSize != 4<<20 || cfg.RetainSnapshots != 2 || cfg.Path != "" {
		t.Fatalf("defaults %+v", cfg)
	}
	dataDir := t.TempDir()
	s, err := sf.New(context.Background(), plugin.Settings{DataDir: dataDir}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.(*Store).Path(), filepath.Join(dataDir, "pebble"); got != want {
		t.Fatalf("path %s, want %s", got, want)
	}
	if got, want := s.(*Store).SnapshotDir(), filepath.Join(dataDir, "pebble", "snapshots"); got != want {
		t.Fatalf("snapshot dir %s, want %s", got, want)
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
		"cache_size":       func(c *Config) { c.CacheSize = -1 },
		"memtable_size":    func(c *Config) { c.MemtableSize = 1 },
		"retain_snapshots": func(c *Config) { c.RetainSnapshots = 0 },
	} {
		cfg := DefaultConfig()
		mutate(cfg)
		wantErrContaining(t, cfg.Validate(), name)
	}
	cfg := DefaultConfig()
	cfg.MemtableSize = 4 << 30
	wantErrContaining(t, cfg.Validate(), "memtable_size")
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

func TestLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, nil)
	defer s.Close()
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, dir, "locked")
}

func TestLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "open\n" {
		t.Fatalf("child: %q %v %s", line, err, stderr.String())
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err = Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, dir, "locked by another process")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v %s", err, stderr.String())
	}
	// Released on exit.
	openAt(t, dir, nil).Close()
}

func setRaw(t *testing.T, dir string, kvs map[string][]byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range kvs {
		if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewerFormatVersion(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, nil).Close()
	setRaw(t, dir, map[string][]byte{string(keyFormat): binary.BigEndian.AppendUint32(nil, 7)})
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, dir, "format version 7", "supports (1)")
}

func TestForeignPebbleDB(t *testing.T) {
	dir := t.TempDir()
	setRaw(t, dir, map[string][]byte{"someone-else": []byte("x")})
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	wantErrContaining(t, err, dir, "not a corral store")
}

func TestCorruptManifest(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, nil)
	s.Write(context.Background(), storage.Batch{State: map[string][]byte{"k": []byte("v")}})
	s.Close()
	manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST file")
	}
	for _, m := range manifests {
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(i*13 + 7)
		}
		if err := os.WriteFile(m, junk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	_, err := Open(context.Background(), plugin.Settings{}, cfg)
	t.Log(err)
	wantCorrupt(t, err, dir, "corrupt")
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
	// Entry 1's value filed under index 2, and a state value with a bit
	// flipped.
	e1 := logfmt.EncodeEntry(storage.LogEntry{Index: 1, Term: 1, Data: []byte("hello")})
	sv := logfmt.EncodeState("k", []byte("v"))
	sv[len(sv)-1] ^= 1
	setRaw(t, dir, map[string][]byte{string(logKey(2)): e1, string(stateKey("k")): sv})
	s = openAt(t, dir, nil)
	defer s.Close()
	if _, err := s.Entry(1); err != nil {
		t.Fatalf("undamaged entry: %v", err)
	}
	_, err := s.Entry(2)
	wantCorrupt(t, err, dir, "log entry 2", "checksum")
	_, err = s.Entries(1, 3, 0)
	wantCorrupt(t, err, dir, "log entry 2")
	_, err = s.State("k")
	wantCorrupt(t, err, dir, "checksum")
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

func TestGroupCommit(t *testing.T) {
	s := openAt(t, t.TempDir(), nil)
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

// Compacting a large prefix is one range tombstone; reads and bounds see it
// at once and survive a reopen.
func TestCompactLargePrefix(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, func(c *Config) { c.Sync = false; c.MemtableSize = 64 << 10 })
	const n = 20_000
	for lo := uint64(1); lo <= n; lo += 1000 {
		es := make([]storage.LogEntry, 1000)
		for k := range es {
			es[k] = storage.LogEntry{Index: lo + uint64(k), Term: 1, Data: make([]byte, 50)}
		}
		if err := s.Write(context.Background(), storage.Batch{Entries: es}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompactPrefix(n - 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Entry(n - 10); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("compacted entry: %v", err)
	}
	s.Close()
	s = openAt(t, dir, nil)
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != n-9 || last != n {
		t.Fatalf("bounds after reopen [%d, %d], want [%d, %d]", first, last, n-9, n)
	}
}

// A batch or compaction that changes nothing costs no commit (and no fsync).
func TestNoopWritesSkipCommit(t *testing.T) {
	s := openAt(t, t.TempDir(), nil)
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
	if s.FormatVersion() != FormatVersion {
		t.Fatalf("FormatVersion() = %d, want %d", s.FormatVersion(), FormatVersion)
	}
	if keys, err := s.StateKeys(); err != nil || !slices.Equal(keys, want) {
		t.Fatalf("after reopen: keys %q, %v; want %q", keys, err, want)
	}
}

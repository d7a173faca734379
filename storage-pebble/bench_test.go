package storagepebble

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/corral-dev/corral/framework/storage"
)

// countingFS counts every fsync pebble asks the OS filesystem for (WAL,
// sstables, manifest, directories).
type countingFS struct {
	vfs.FS
	syncs *atomic.Uint64
}

func (fs countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{f, fs.syncs}, nil
}

func (fs countingFS) Create(name string) (vfs.File, error) { return fs.wrap(fs.FS.Create(name)) }
func (fs countingFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.Open(name, opts...))
}
func (fs countingFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, opts...))
}
func (fs countingFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }
func (fs countingFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname))
}

type countingFile struct {
	vfs.File
	syncs *atomic.Uint64
}

func (f countingFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f countingFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f countingFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

// BenchmarkWrite measures synced writes from 1, 8 and 64 concurrent writers.
// One op is one Write of one 128-byte record. Concurrent writers write their
// own state keys: the log must stay contiguous and Write blocks until
// durable, so concurrent callers cannot each append log entries without a
// sequencer; the commit path (queue, batch, WAL fsync) is the same.
// fsyncs/s is counted at the filesystem.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			var syncs atomic.Uint64
			dir := filepath.Join(b.TempDir(), "pebble")
			s := openWith(b, dir, options{fs: countingFS{vfs.Default, &syncs}, snapDir: filepath.Join(dir, "snapshots")}, nil)
			defer s.Close()
			benchWrites(b, writers, func(ctx context.Context, key string, v []byte) error {
				return s.Write(ctx, storage.Batch{State: map[string][]byte{key: v}})
			}, s.commits.Load, syncs.Load)
		})
	}
}

// BenchmarkNativeSyncCommit is the check behind the package comment: pebble
// alone, concurrent db.Set(pebble.Sync) calls, no loop of ours. Fewer
// fsyncs than writes means pebble shares WAL syncs between commits.
func BenchmarkNativeSyncCommit(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			var syncs atomic.Uint64
			db, err := pebble.Open(b.TempDir(), &pebble.Options{
				FS:     countingFS{vfs.Default, &syncs},
				Logger: logger{slog.New(slog.DiscardHandler)},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			benchWrites(b, writers, func(_ context.Context, key string, v []byte) error {
				return db.Set([]byte(key), v, pebble.Sync)
			}, nil, syncs.Load)
		})
	}
}

func benchWrites(b *testing.B, writers int, write func(context.Context, string, []byte) error, commits, syncs func() uint64) {
	value := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	var c0 uint64
	if commits != nil {
		c0 = commits()
	}
	b.ResetTimer()
	s0, start := syncs(), time.Now()
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("writer-", w)
			for next.Add(1) <= int64(b.N) {
				if err := write(ctx, key, value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/secs, "writes/s")
	b.ReportMetric(float64(syncs()-s0)/secs, "fsyncs/s")
	if commits != nil {
		b.ReportMetric(float64(commits()-c0)/secs, "commits/s")
	}
	b.ReportMetric(0, "ns/op") // latency per op is not meaningful across writers
}

// BenchmarkAppend is the consensus log path: one writer appending batches
// of n 128-byte entries, synced.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s := openAt(b, filepath.Join(b.TempDir(), "pebble"), nil)
			defer s.Close()
			data := make([]byte, 128)
			next := uint64(1)
			b.ResetTimer()
			for range b.N {
				es := make([]storage.LogEntry, n)
				for k := range es {
					es[k] = storage.LogEntry{Index: next, Term: 1, Data: data}
					next++
				}
				if err := s.Write(context.Background(), storage.Batch{Entries: es}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

package storagebolt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/storage"
)

// BenchmarkWrite measures synced writes from 1, 8 and 64 concurrent writers,
// with the write-ahead log on (the default) and off. One op is one Write of
// one 128-byte record. Concurrent writers write their own state keys: the
// log must stay contiguous and Write blocks until durable, so concurrent
// callers cannot each append log entries without a sequencer; the commit
// path (queue, commit, fsync) is the same.
//
// writes/s against commits/s shows group commit. fsyncs/s counts every
// fsync the store makes: with the log off a commit is one bolt transaction,
// which bolt makes durable with two fdatasyncs (data pages, then the meta
// page); with it on a commit is one fdatasync of the log, and checkpoints
// add their own (two per checkpoint, plus directory syncs), amortised over
// many writes.
func BenchmarkWrite(b *testing.B) {
	for _, wal := range []bool{true, false} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("wal=%v/writers=%d", wal, writers), func(b *testing.B) {
				s := openAt(b, b.TempDir(), func(c *Config) { c.WAL = wal })
				defer s.Close()
				benchWrites(b, s, writers)
			})
		}
	}
}

func benchWrites(b *testing.B, s *Store, writers int) {
	value := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	c0, f0, start := s.commits.Load(), s.fsyncs.Load(), time.Now()
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("writer-", w)
			for next.Add(1) <= int64(b.N) {
				if err := s.Write(ctx, storage.Batch{State: map[string][]byte{key: value}}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	b.StopTimer()
	c, f := float64(s.commits.Load()-c0), float64(s.fsyncs.Load()-f0)
	b.ReportMetric(float64(b.N)/secs, "writes/s")
	b.ReportMetric(c/secs, "commits/s")
	b.ReportMetric(f/secs, "fsyncs/s")
	b.ReportMetric(0, "ns/op") // latency per op is not meaningful across writers
}

// BenchmarkAppend is the consensus log path: one writer appending batches
// of n 128-byte entries, synced.
func BenchmarkAppend(b *testing.B) {
	for _, wal := range []bool{true, false} {
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("wal=%v/entries=%d", wal, n), func(b *testing.B) {
				s := openAt(b, b.TempDir(), func(c *Config) { c.WAL = wal })
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
}

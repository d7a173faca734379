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

// BenchmarkWrite measures synced writes from 1, 8 and 64 concurrent writers.
// One op is one Write of one 128-byte record. Concurrent writers write their
// own state keys: the log must stay contiguous and Write blocks until
// durable, so concurrent callers cannot each append log entries without a
// sequencer; the commit path (queue, transaction, fsync) is the same.
//
// writes/s against commits/s shows group commit: each commit is one bolt
// transaction, which bolt makes durable with two fdatasyncs (data pages,
// then the meta page), reported as fsyncs/s.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openAt(b, b.TempDir(), nil)
			defer s.Close()
			benchWrites(b, s, writers, s.commits.Load)
		})
	}
}

func benchWrites(b *testing.B, s storage.Store, writers int, commits func() uint64) {
	value := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	c0, start := commits(), time.Now()
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
	c := float64(commits() - c0)
	b.ReportMetric(float64(b.N)/secs, "writes/s")
	b.ReportMetric(c/secs, "commits/s")
	b.ReportMetric(2*c/secs, "fsyncs/s")
	b.ReportMetric(0, "ns/op") // latency per op is not meaningful across writers
}

// BenchmarkAppend is the consensus log path: one writer appending batches
// of n 128-byte entries, synced.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s := openAt(b, b.TempDir(), nil)
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

package conformance_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/conformance/corraltest"
)

// BenchmarkSnapshotImpact loads CORRAL_BENCH_ZNODES znodes (default
// 200000; the figure uses 1000000), runs a steady setData load
// from 8 sessions, and compares write p99 while a snapshot of the whole
// tree is taken and streamed to storage against p99 without one. The
// persistent tree makes taking the snapshot O(1); the stream is written
// while writes go on.
//
//	CORRAL_BENCH_ZNODES=1000000 go test -run '^$' -bench SnapshotImpact -benchtime 1x ./conformance/
func BenchmarkSnapshotImpact(b *testing.B) {
	znodes := 200000
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_ZNODES")); err == nil && v > 0 {
		znodes = v
	}
	for i := 0; i < b.N; i++ {
		srv := corraltest.Start(b, corraltest.Options{Overrides: map[string]any{
			// Only the snapshot this benchmark asks for.
			"consensus": map[string]any{"type": "raft", "snapshot_threshold": 1 << 40, "snapshot_interval": "24h"},
			"storage":   map[string]any{"type": storageType()},
		}})
		loader := conformance.Connect(b, []string{srv.Addr})
		start := time.Now()
		populate(b, loader, znodes)
		b.Logf("loaded %d znodes in %s", znodes, time.Since(start).Round(time.Millisecond))

		var mu sync.Mutex
		var base, during []time.Duration
		var snapshotting atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			c := conformance.Connect(b, []string{srv.Addr})
			path := fmt.Sprintf("/load-%d", w)
			if _, err := c.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					if _, err := c.Set(path, []byte("v"), -1); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					if snapshotting.Load() {
						during = append(during, d)
					} else {
						base = append(base, d)
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(3 * time.Second)
		snapshotting.Store(true)
		t0 := time.Now()
		if err := srv.SnapshotNow(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		snapshotting.Store(false)
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		pb, pd := p99(base), p99(during)
		b.Logf("snapshot of %d znodes took %s; write p99 %s without, %s during (%d and %d samples)", znodes, took.Round(time.Millisecond), pb, pd, len(base), len(during))
		b.ReportMetric(float64(pb.Microseconds()), "p99-base-us")
		b.ReportMetric(float64(pd.Microseconds()), "p99-snapshot-us")
		b.ReportMetric(float64(pd)/float64(pb), "p99-ratio")
		b.ReportMetric(took.Seconds(), "snapshot-s")
	}
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)*99/100]
}

// populate creates n znodes of 100 bytes under /bench in multis of 200.
func populate(b *testing.B, c *zk.Conn, n int) {
	b.Helper()
	data := make([]byte, 100)
	if _, err := c.Create("/bench", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		b.Fatal(err)
	}
	const per = 200
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < n; i += per {
		ops := make([]interface{}, 0, per)
		for j := i; j < i+per && j < n; j++ {
			ops = append(ops, &zk.CreateRequest{Path: fmt.Sprintf("/bench/n%08d", j), Data: data, Acl: zk.WorldACL(zk.PermAll)})
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := c.Multi(ops...); err != nil {
				failed.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// storageType is CORRAL_BENCH_STORAGE or the default engine.
func storageType() string {
	if s := os.Getenv("CORRAL_BENCH_STORAGE"); s != "" {
		return s
	}
	return "bolt"
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Workload names.
const (
	wGetData      = "getdata"
	wMixed        = "mixed"
	wSetData      = "setdata"
	wCreateDelete = "createdelete"
)

var allWorkloads = []string{wGetData, wMixed, wSetData, wCreateDelete}

// cellConfig is one measurement: a workload at a session count.
type cellConfig struct {
	workload string
	sessions int
	inflight int
	warmup   time.Duration
	duration time.Duration
	dataSize int
}

// Cell is the result of one measurement. Every request counts as one op
// (createdelete's create and delete are two ops), so ops/s is requests/s.
type Cell struct {
	Workload  string  `json:"workload"`
	Sessions  int     `json:"sessions"`
	Inflight  int     `json:"inflight"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	FirstErr  string  `json:"first_error,omitempty"`
}

var quietLogger = log.New(io.Discard, "", 0)

// dial opens one session and waits until it is established.
func dial(servers []string, timeout time.Duration) (*zk.Conn, error) {
	c, events, err := zk.Connect(servers, 30*time.Second, zk.WithLogger(quietLogger), zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return c, nil
			}
		case <-deadline:
			c.Close()
			return nil, fmt.Errorf("no session with %v within %v", servers, timeout)
		}
	}
}

// dialAll opens n sessions, session i to servers[i%len(servers)] alone.
// go-zookeeper connects to a random member of a list, which would leave the
// spread of an ensemble's sessions (and so of its reads) to chance; one
// address per session spreads them evenly and the same way on every run.
func dialAll(servers []string, n int, timeout time.Duration) ([]*zk.Conn, error) {
	conns := make([]*zk.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conns[i], errs[i] = dial([]string{sessionServer(servers, i)}, timeout)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*zk.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Add(1)
			go func(c *zk.Conn) { defer wg.Done(); c.Close() }(c)
		}
	}
	wg.Wait()
}

func ensure(c *zk.Conn, path string, data []byte) error {
	_, err := c.Create(path, data, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// runCell runs one workload with cfg.sessions sessions, each with
// cfg.inflight concurrent requests (go-zk pipelines concurrent calls on one
// connection), under root. Requests issued during warm-up are not counted.
func runCell(servers []string, root string, cfg cellConfig) (Cell, error) {
	cell := Cell{Workload: cfg.workload, Sessions: cfg.sessions, Inflight: cfg.inflight}
	conns, err := dialAll(servers, cfg.sessions, 15*time.Second)
	if err != nil {
		return cell, err
	}
	defer closeAll(conns)

	data := bytes.Repeat([]byte("x"), cfg.dataSize)
	readPath := root + "/read"
	cellRoot := fmt.Sprintf("%s/%s-%d-%d", root, cfg.workload, cfg.sessions, time.Now().UnixNano())
	if err := ensure(conns[0], readPath, data); err != nil {
		return cell, err
	}
	if err := ensure(conns[0], cellRoot, nil); err != nil {
		return cell, err
	}
	workers := cfg.sessions * cfg.inflight
	// Each writer updates its own node, as independent clients would.
	writePaths := make([]string, workers)
	for w := range writePaths {
		writePaths[w] = cellRoot + "/w" + strconv.Itoa(w)
		if cfg.workload == wSetData || cfg.workload == wMixed {
			if err := ensure(conns[0], writePaths[w], data); err != nil {
				return cell, err
			}
		}
	}
	// Every other session syncs first, so none starts before its member has
	// the nodes just created through conns[0] (reads may lag on a follower).
	for _, c := range conns[1:] {
		if _, err := c.Sync(cellRoot); err != nil {
			return cell, fmt.Errorf("sync: %w", err)
		}
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
		hists     = make([]*hist, workers)
		errCounts = make([]uint64, workers)
		firstErr  atomic.Value
	)
	for w := 0; w < workers; w++ {
		hists[w] = &hist{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := conns[w%cfg.sessions]
			h := hists[w]
			var n uint64
			for !stop.Load() {
				start := time.Now()
				var err error
				switch cfg.workload {
				case wGetData:
					_, _, err = c.Get(readPath)
				case wSetData:
					_, err = c.Set(writePaths[w], data, -1)
				case wMixed:
					if n%11 == 10 { // 10 reads, then 1 write
						_, err = c.Set(writePaths[w], data, -1)
					} else {
						_, _, err = c.Get(readPath)
					}
				case wCreateDelete:
					p := writePaths[w] + "-" + strconv.FormatUint(n, 10)
					if _, err = c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err == nil {
						mid := time.Now()
						if measuring.Load() {
							h.record(mid.Sub(start))
						}
						start = mid
						err = c.Delete(p, -1)
					}
				}
				n++
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errCounts[w]++
					firstErr.CompareAndSwap(nil, err.Error())
					if errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrClosing) {
						time.Sleep(10 * time.Millisecond) // don't spin while reconnecting
					}
					continue
				}
				h.record(time.Since(start))
			}
		}(w)
	}
	time.Sleep(cfg.warmup)
	measuring.Store(true)
	begin := time.Now()
	time.Sleep(cfg.duration)
	measuring.Store(false)
	elapsed := time.Since(begin)
	stop.Store(true)
	wg.Wait()

	total := &hist{}
	for w, h := range hists {
		total.merge(h)
		cell.Errors += errCounts[w]
	}
	if v, ok := firstErr.Load().(string); ok {
		cell.FirstErr = v
	}
	cell.Ops = total.total
	cell.Seconds = elapsed.Seconds()
	cell.OpsPerSec = float64(total.total) / elapsed.Seconds()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	cell.P50us = us(total.quantile(0.50))
	cell.P99us = us(total.quantile(0.99))
	cell.P999us = us(total.quantile(0.999))
	cell.MaxUs = us(time.Duration(total.max))
	return cell, nil
}

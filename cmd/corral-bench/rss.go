package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// RSS is the server's resident memory: when the tool started (before any
// workload), right before loading the znodes, and after loading them.
type RSS struct {
	PID             int     `json:"pid"`
	Znodes          int     `json:"znodes"`
	DataSize        int     `json:"data_size"`
	StartKB         int64   `json:"start_kb"`
	BaselineKB      int64   `json:"baseline_kb"`
	LoadedKB        int64   `json:"loaded_kb"`
	PopulateSeconds float64 `json:"populate_seconds"`
}

// vmRSS reads VmRSS (in kB) from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) < 1 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line")
}

const perParent = 1000 // keeps every getChildren reply far below 1 MiB

// populate creates n znodes of dataSize bytes under dir, 1000 per parent, with
// workers concurrent creators spread over conns.
func populate(conns []*zk.Conn, dir string, n, dataSize, workers int) error {
	data := bytes.Repeat([]byte("x"), dataSize)
	if err := ensure(conns[0], dir, nil); err != nil {
		return err
	}
	for p := 0; p*perParent < n; p++ {
		if err := ensure(conns[0], fmt.Sprintf("%s/b%d", dir, p), nil); err != nil {
			return err
		}
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(c *zk.Conn) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				p := fmt.Sprintf("%s/b%d/n%d", dir, i/perParent, i)
				if _, err := c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					firstErr.CompareAndSwap(nil, fmt.Errorf("create %s: %w", p, err))
					return
				}
			}
		}(conns[w%len(conns)])
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// measureRSS records the server's RSS, loads the znodes, waits for the
// server to settle, and records it again.
func measureRSS(servers []string, root string, pid, znodes, dataSize, sessions int, startKB int64) (*RSS, error) {
	res := &RSS{PID: pid, Znodes: znodes, DataSize: dataSize, StartKB: startKB}
	var err error
	if res.BaselineKB, err = vmRSS(pid); err != nil {
		return nil, fmt.Errorf("read RSS of pid %d: %w", pid, err)
	}
	conns, err := dialAll(servers, sessions, 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	start := time.Now()
	if err := populate(conns, root+"/rss", znodes, dataSize, sessions*8); err != nil {
		return nil, err
	}
	res.PopulateSeconds = time.Since(start).Seconds()
	time.Sleep(2 * time.Second) // let the server finish snapshots and settle
	if res.LoadedKB, err = vmRSS(pid); err != nil {
		return nil, fmt.Errorf("read RSS of pid %d: %w", pid, err)
	}
	return res, nil
}

// removeTree deletes root and everything below it, using multi batches of
// sibling leaves; it assumes the shallow trees this tool builds.
func removeTree(conns []*zk.Conn, root string) error {
	var order []string
	var walk func(p string) error
	walk = func(p string) error {
		kids, _, err := conns[0].Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := walk(p + "/" + k); err != nil {
				return err
			}
		}
		order = append(order, p)
		return nil
	}
	if err := walk(root); err != nil {
		return err
	}
	// Post-order batches, one after another: a parent is never deleted
	// before its children, and one round trip per 500 nodes is fast enough.
	const batch = 500
	for len(order) > 0 {
		n := min(batch, len(order))
		ops := make([]any, n)
		for i, p := range order[:n] {
			ops[i] = &zk.DeleteRequest{Path: p, Version: -1}
		}
		if _, err := conns[0].Multi(ops...); err != nil {
			for _, p := range order[:n] {
				if err := conns[0].Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					return fmt.Errorf("delete %s: %w", p, err)
				}
			}
		}
		order = order[n:]
	}
	return nil
}

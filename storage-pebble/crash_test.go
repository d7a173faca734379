package storagepebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/corral-dev/corral/framework/storage"
)

// These tests simulate power loss with pebble's strict in-memory filesystem:
// after SetIgnoreSyncs(true) nothing more becomes durable, and
// ResetToSyncedState drops everything that was not fsynced. (pebble v1.1's
// form of the newer NewCrashableMem/CrashClone.)

const crashLoopsEnv = "CORRAL_CRASH_LOOPS"

func crashLoops(t *testing.T) int {
	v := os.Getenv(crashLoopsEnv)
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", crashLoopsEnv, v)
	}
	return n
}

func crashData(i uint64) []byte {
	b := make([]byte, 40+i%200)
	for k := range b {
		b[k] = byte(i) + byte(k)
	}
	return b
}

// acks records what Write acknowledged.
type acks struct {
	mu    sync.Mutex
	log   uint64
	state [3]uint64
}

func (a *acks) snapshot() (uint64, [3]uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log, a.state
}

// Every acknowledged synced write survives a crash taken while writers are
// running, and no batch is half applied.
func TestCrashKeepsSyncedWrites(t *testing.T) {
	fs := vfs.NewStrictMem()
	snapDir := t.TempDir()
	// Small memtables make flushes and WAL rotations happen during the run.
	small := func(c *Config) { c.MemtableSize = 64 << 10 }
	s := openWith(t, "/db", options{fs: fs, snapDir: snapDir}, small)
	for loop := range crashLoops(t) {
		a := &acks{}
		var stop atomic.Bool
		var wg sync.WaitGroup
		ctx := context.Background()
		errc := make(chan error, 4)
		for w := range len(a.state) {
			wg.Go(func() {
				key := fmt.Sprint("w", w)
				var n uint64
				if v, err := s.State(key); err == nil {
					n = binary.BigEndian.Uint64(v)
				}
				for !stop.Load() {
					n++
					if err := s.Write(ctx, storage.Batch{State: map[string][]byte{key: binary.BigEndian.AppendUint64(nil, n)}}); err != nil {
						errc <- err
						return
					}
					a.mu.Lock()
					a.state[w] = n
					a.mu.Unlock()
				}
			})
		}
		logged := make(chan struct{})
		wg.Go(func() {
			last, _ := s.LastIndex()
			for b := 0; !stop.Load(); b++ {
				var es []storage.LogEntry
				for i := last + 1; i <= last+1+uint64(b%4); i++ {
					es = append(es, storage.LogEntry{Index: i, Term: 1, Data: crashData(i)})
				}
				last = es[len(es)-1].Index
				if err := s.Write(ctx, storage.Batch{Entries: es, State: map[string][]byte{"last": binary.BigEndian.AppendUint64(nil, last)}}); err != nil {
					errc <- err
					return
				}
				a.mu.Lock()
				a.log = last
				a.mu.Unlock()
				if b == 300 {
					close(logged)
				}
			}
		})
		<-logged
		// Everything acknowledged before this point was synced before it.
		ackedLog, ackedState := a.snapshot()
		fs.SetIgnoreSyncs(true)
		stop.Store(true)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		fs.ResetToSyncedState()
		fs.SetIgnoreSyncs(false)

		s = openWith(t, "/db", options{fs: fs, snapDir: snapDir}, small)
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first != 1 || last < ackedLog {
			t.Fatalf("loop %d: log [%d, %d] after crash; %d was acknowledged", loop, first, last, ackedLog)
		}
		v, err := s.State("last")
		if err != nil || binary.BigEndian.Uint64(v) != last {
			t.Fatalf("loop %d: state last = %x (%v), log ends at %d: half-applied batch", loop, v, err, last)
		}
		es, err := s.Entries(1, last+1, 0)
		if err != nil {
			t.Fatalf("loop %d: %v", loop, err)
		}
		for k, e := range es {
			if i := uint64(k + 1); e.Index != i || !bytes.Equal(e.Data, crashData(i)) {
				t.Fatalf("loop %d: entry %d damaged", loop, i)
			}
		}
		for w, acked := range ackedState {
			v, err := s.State(fmt.Sprint("w", w))
			if acked > 0 && (err != nil || binary.BigEndian.Uint64(v) < acked) {
				t.Fatalf("loop %d: writer %d acknowledged %d, store has %x (%v)", loop, w, acked, v, err)
			}
		}
		t.Logf("loop %d: %d log entries acknowledged, %d survived", loop, ackedLog, last)
	}
	s.Close()
}

// With sync off, acknowledged writes are lost in a crash. This shows the
// simulated crash really discards unsynced data, so the test above is not
// passing vacuously.
func TestCrashLosesUnsyncedWrites(t *testing.T) {
	fs := vfs.NewStrictMem()
	snapDir := t.TempDir()
	s := openWith(t, "/db", options{fs: fs, snapDir: snapDir}, nil)
	write := func(lo, hi uint64) {
		t.Helper()
		var es []storage.LogEntry
		for i := lo; i < hi; i++ {
			es = append(es, storage.LogEntry{Index: i, Term: 1, Data: crashData(i)})
		}
		if err := s.Write(context.Background(), storage.Batch{Entries: es}); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 11) // synced
	s.Close()
	s = openWith(t, "/db", options{fs: fs, snapDir: snapDir}, func(c *Config) { c.Sync = false })
	write(11, 21) // acknowledged, not synced
	fs.SetIgnoreSyncs(true)
	s.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	s = openWith(t, "/db", options{fs: fs, snapDir: snapDir}, nil)
	defer s.Close()
	if last, _ := s.LastIndex(); last != 10 {
		t.Fatalf("last %d after crash, want 10 (synced kept, unsynced lost)", last)
	}
}

package storagebolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

// TestWALModel runs random appends, truncations, compactions and state
// writes against the store and against memstore, the reference, comparing
// every read after every write. Checkpoints are held at chosen steps for a
// while (the testHook blocks them), so reads meet every layering: an active
// generation over a frozen one not yet in bolt, over one in bolt but not yet
// dropped, and none. Now and then the files are copied as a crash would
// leave them, at that step, and reopened.
func TestWALModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	var hold struct {
		sync.Mutex
		point   string
		ch      chan struct{}
		waiting bool // a checkpoint is held at point
	}
	release := func() {
		hold.Lock()
		if hold.ch != nil {
			close(hold.ch)
		}
		hold.point, hold.ch, hold.waiting = "", nil, false
		hold.Unlock()
	}
	testHook = func(p string) {
		hold.Lock()
		point, ch := hold.point, hold.ch
		hold.Unlock()
		if p == point && ch != nil {
			hold.Lock()
			hold.waiting = true
			hold.Unlock()
			<-ch
		}
	}
	defer func() { testHook = nil }()

	// Checkpoints by age only: a held one never blocks the writer.
	mutate := func(c *Config) {
		c.WALCheckpointBytes = 4 << 20 // far more than the test writes
		c.WALCheckpointInterval = time.Millisecond
	}
	dir := t.TempDir()
	s := openAt(t, dir, mutate)
	defer s.Close()
	defer release() // before Close waits for a held checkpoint
	m := memstore.New()
	keys := []string{"a", "b", "raft/term"}

	both := func(b storage.Batch) {
		t.Helper()
		err, merr := s.Write(context.Background(), b), m.Write(context.Background(), b)
		if (err == nil) != (merr == nil) {
			t.Fatalf("Write(truncate %d, %d entries): store %v, model %v", b.TruncateFrom, len(b.Entries), err, merr)
		}
	}
	entries := func(lo, n uint64) []storage.LogEntry {
		es := make([]storage.LogEntry, n)
		for k := range es {
			data := make([]byte, rng.IntN(40))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			es[k] = storage.LogEntry{Index: lo + uint64(k), Term: rng.Uint64N(5) + 1, Kind: byte(rng.IntN(3)), Data: data}
		}
		return es
	}
	points := []string{"", "checkpoint-start", "checkpoint-applied"}
	images := 0
	for step := range 600 {
		if step%40 == 0 {
			release()
			if p := points[(step/40)%len(points)]; p != "" {
				hold.Lock()
				hold.point, hold.ch = p, make(chan struct{})
				hold.Unlock()
			}
		}
		first, _ := m.FirstIndex()
		last, _ := m.LastIndex()
		switch r := rng.IntN(20); {
		case r < 10 || last == 0:
			lo := last + 1
			if last == 0 {
				lo = rng.Uint64N(50) + 1
			}
			b := storage.Batch{Entries: entries(lo, rng.Uint64N(3)+1)}
			if rng.IntN(2) == 0 {
				b.State = map[string][]byte{keys[rng.IntN(len(keys))]: []byte(fmt.Sprint(step))}
			}
			both(b)
		case r < 13:
			at := first + rng.Uint64N(last-first+1)
			both(storage.Batch{TruncateFrom: at, Entries: entries(at, rng.Uint64N(3))})
		case r < 15:
			upTo := first - 1 + rng.Uint64N(last-first+3)
			if err, merr := s.CompactPrefix(upTo), m.CompactPrefix(upTo); err != nil || merr != nil {
				t.Fatalf("CompactPrefix(%d): %v, %v", upTo, err, merr)
			}
		case r < 18:
			both(storage.Batch{State: map[string][]byte{keys[rng.IntN(len(keys))]: []byte(fmt.Sprint(step))}})
		default:
			// A batch that must be rejected whole.
			both(storage.Batch{Entries: entries(last+2, 1), State: map[string][]byte{"a": []byte("rejected")}})
		}
		compareStores(t, step, s, m, keys, rng)
		hold.Lock()
		held := hold.waiting
		hold.Unlock()
		if held && step%20 == 5 {
			// With the checkpoint held and the writer between Writes, no
			// file changes under the copy.
			img := crashImage(t, dir)
			// Replay checkpoints without the hook, and r is closed before
			// any write: the hold cannot catch it.
			r := openAt(t, img, mutate)
			compareStores(t, step, r, m, keys, rng)
			r.Close()
			images++
		}
	}
	if cp := s.checkpoints.Load(); cp < 10 || images < 4 {
		t.Fatalf("only %d checkpoints and %d crash images", cp, images)
	}
	t.Logf("%d checkpoints, %d crash images", s.checkpoints.Load(), images)
}

func compareStores(t *testing.T, step int, s storage.Store, m *memstore.Store, keys []string, rng *rand.Rand) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s", step, fmt.Sprintf(format, args...))
	}
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	mf, _ := m.FirstIndex()
	ml, _ := m.LastIndex()
	if f != mf || l != ml {
		fail("bounds [%d, %d], model [%d, %d]", f, l, mf, ml)
	}
	lo := max(mf, 3) - 2
	// Both ends of the log and past them, and a sample between.
	var idx []uint64
	for i := lo; i <= ml+2; i++ {
		if i < lo+8 || i+24 > ml || rng.IntN(8) == 0 {
			idx = append(idx, i)
		}
	}
	for _, i := range idx {
		e, err := s.Entry(i)
		me, merr := m.Entry(i)
		if !sameResult(err, merr) || err == nil && !sameEntry(e, me) {
			fail("Entry(%d) = %+v, %v; model %+v, %v", i, e, err, me, merr)
		}
	}
	for range 4 {
		a := lo + rng.Uint64N(ml+4-lo)
		b := a + rng.Uint64N(ml+4-a)
		maxBytes := uint64(rng.IntN(4)) * 30
		es, err := s.Entries(a, b, maxBytes)
		mes, merr := walkEntries(m, a, b, maxBytes)
		if !sameResult(err, merr) || !slices.EqualFunc(es, mes, sameEntry) {
			fail("Entries(%d, %d, %d) = %d entries, %v; model %d, %v", a, b, maxBytes, len(es), err, len(mes), merr)
		}
	}
	for _, k := range keys {
		v, err := s.State(k)
		mv, merr := m.State(k)
		if !sameResult(err, merr) || !bytes.Equal(v, mv) {
			fail("State(%q) = %q, %v; model %q, %v", k, v, err, mv, merr)
		}
	}
}

// walkEntries is Entries as storage-bolt (and storage-pebble) read the
// contract: walking from lo, a missing index is NotFound when the walk
// reaches it, and maxBytes can end the walk first. memstore checks both
// ends of the range up front instead.
func walkEntries(m *memstore.Store, lo, hi, maxBytes uint64) ([]storage.LogEntry, error) {
	es, err := m.Entries(lo, hi, maxBytes)
	first, _ := m.FirstIndex()
	last, _ := m.LastIndex()
	if !errors.Is(err, storage.ErrNotFound) || last == 0 || lo < first || lo > last {
		return es, err
	}
	// Only the end is missing: does maxBytes stop the walk before it?
	if es, err = m.Entries(lo, last+1, maxBytes); err == nil && len(es) < int(last+1-lo) {
		return es, nil
	}
	return nil, fmt.Errorf("entry %d: %w", last+1, storage.ErrNotFound)
}

func sameResult(err, merr error) bool {
	if err == nil || merr == nil {
		return err == nil && merr == nil
	}
	return errors.Is(err, storage.ErrNotFound) == errors.Is(merr, storage.ErrNotFound)
}

func sameEntry(a, b storage.LogEntry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Kind == b.Kind && bytes.Equal(a.Data, b.Data)
}

package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/corral-dev/corral/framework/storage"
)

// StorageHarness tells RunStorage how to get stores.
type StorageHarness struct {
	// New returns a fresh, empty store for one case. It may use t.TempDir
	// and t.Cleanup; the suite closes the store at the end of the case, so
	// Close must tolerate being called again (returning nil or
	// storage.ErrClosed).
	New func(t *testing.T) storage.Store
	// Reopen returns a new store over the data of old, which the suite has
	// already closed successfully. Nil skips the reopen case.
	Reopen func(t *testing.T, old storage.Store) storage.Store
}

// SnapshotDirer is the optional capability the corrupt-snapshot case needs:
// the directory where the store (or its SnapshotStore) keeps snapshot files,
// one regular file per complete snapshot.
type SnapshotDirer interface {
	SnapshotDir() string
}

// RunStorage runs the storage contract suite, one subtest per case with a
// fresh store each.
//
// Beyond what storage.go states, the suite pins down these readings of the
// contract:
//   - Entries with maxBytes > 0 returns the longest prefix whose Data totals
//     at most maxBytes, or the first entry alone if it is bigger (etcd
//     raft's limitSize).
//   - A batch whose entries are not contiguous with the remaining log (a gap
//     or an overlap without TruncateFrom) is rejected as a whole: nothing in
//     it is applied. When the log is empty, entries may start at any index
//     (a consensus library installing a snapshot continues from there).
//   - Returned entries and values are the caller's to modify, and a batch's
//     buffers may be reused once Write returns.
func RunStorage(t *testing.T, h StorageHarness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("conformance: StorageHarness.New is nil")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, h StorageHarness)
	}{
		{"EmptyStore", testEmptyStore},
		{"AppendAndRead", testAppendAndRead},
		{"EntriesMaxBytes", testEntriesMaxBytes},
		{"BatchAtomicity", testBatchAtomicity},
		{"RejectsNonContiguous", testRejectsNonContiguous},
		{"TruncateSuffixThenReappend", testTruncateSuffix},
		{"CompactPrefix", testCompactPrefix},
		{"State", testState},
		{"ConcurrentWriters", testConcurrentWriters},
		{"SnapshotRoundTrip", testSnapshotRoundTrip},
		{"SnapshotCancel", testSnapshotCancel},
		{"SnapshotCorrupt", testSnapshotCorrupt},
		{"Closed", testClosed},
		{"ReopenAfterClose", testReopen},
		{"Sizer", testSizer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

func newStore(t *testing.T, h StorageHarness) storage.Store {
	t.Helper()
	s := h.New(t)
	if s == nil {
		t.Fatal("StorageHarness.New returned nil")
	}
	closeAtEnd(t, s)
	return s
}

func closeAtEnd(t *testing.T, s storage.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}

// entryData is 10 bytes for index < 10000 and term < 1000, which the
// maxBytes case relies on.
func entryData(i, term uint64) []byte { return []byte(fmt.Sprintf("e%04d-t%03d", i, term)) }

func entry(i, term uint64) storage.LogEntry {
	return storage.LogEntry{Index: i, Term: term, Kind: uint8(i % 3), Data: entryData(i, term)}
}

func entries(lo, hi, term uint64) []storage.LogEntry {
	var es []storage.LogEntry
	for i := lo; i < hi; i++ {
		es = append(es, entry(i, term))
	}
	return es
}

func write(t *testing.T, s storage.Store, b storage.Batch) {
	t.Helper()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write(truncate=%d, %d entries, %d state): %v", b.TruncateFrom, len(b.Entries), len(b.State), err)
	}
}

func appendRange(t *testing.T, s storage.Store, lo, hi, term uint64) {
	t.Helper()
	write(t, s, storage.Batch{Entries: entries(lo, hi, term)})
}

func checkBounds(t *testing.T, s storage.Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("bounds [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

// checkLog verifies every entry in [lo, hi) one by one and as a range;
// termOf gives the term each index was written with.
func checkLog(t *testing.T, s storage.Store, lo, hi uint64, termOf func(uint64) uint64) {
	t.Helper()
	for i := lo; i < hi; i++ {
		e, err := s.Entry(i)
		if err != nil {
			t.Fatalf("Entry(%d): %v", i, err)
		}
		if want := entry(i, termOf(i)); !entryEqual(e, want) {
			t.Fatalf("Entry(%d) = %s, want %s", i, fmtEntry(e), fmtEntry(want))
		}
	}
	es, err := s.Entries(lo, hi, 0)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
	}
	if uint64(len(es)) != hi-lo {
		t.Fatalf("Entries(%d, %d) returned %d entries", lo, hi, len(es))
	}
	for k, e := range es {
		i := lo + uint64(k)
		if want := entry(i, termOf(i)); !entryEqual(e, want) {
			t.Fatalf("Entries(%d, %d)[%d] = %s, want %s", lo, hi, k, fmtEntry(e), fmtEntry(want))
		}
	}
}

func term(n uint64) func(uint64) uint64 { return func(uint64) uint64 { return n } }

// terms is the term function of a log written with term a below index at
// and term b from it on.
func terms(at, a, b uint64) func(uint64) uint64 {
	return func(i uint64) uint64 {
		if i < at {
			return a
		}
		return b
	}
}

func entryEqual(a, b storage.LogEntry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Kind == b.Kind && bytes.Equal(a.Data, b.Data)
}

func fmtEntry(e storage.LogEntry) string {
	return fmt.Sprintf("{index %d term %d kind %d data %q}", e.Index, e.Term, e.Kind, e.Data)
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s: err = %v, want storage.ErrNotFound", what, err)
	}
}

func testEmptyStore(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	checkBounds(t, s, 0, 0)
	_, err := s.Entry(1)
	wantNotFound(t, "Entry(1)", err)
	_, err = s.Entries(1, 2, 0)
	wantNotFound(t, "Entries(1, 2)", err)
	_, err = s.State("hard")
	wantNotFound(t, "State", err)
	list, err := s.Snapshots().List()
	if err != nil || len(list) != 0 {
		t.Fatalf("Snapshots().List() = %v, %v; want none", list, err)
	}
	_, _, err = s.Snapshots().Open("1-1-1")
	wantNotFound(t, "Snapshots().Open", err)
}

func testAppendAndRead(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	first := entries(1, 5, 1)
	write(t, s, storage.Batch{Entries: first})
	// The store must not keep the caller's buffers.
	for _, e := range first {
		e.Data[0] = 'X'
	}
	appendRange(t, s, 5, 11, 2)
	termOf := terms(5, 1, 2)
	checkBounds(t, s, 1, 10)
	checkLog(t, s, 1, 11, termOf)
	checkLog(t, s, 3, 7, termOf)
	checkLog(t, s, 10, 11, termOf)

	for _, i := range []uint64{0, 11, 1000} {
		_, err := s.Entry(i)
		wantNotFound(t, fmt.Sprintf("Entry(%d)", i), err)
	}
	_, err := s.Entries(5, 12, 0)
	wantNotFound(t, "Entries(5, 12) past the end", err)
	_, err = s.Entries(0, 3, 0)
	wantNotFound(t, "Entries(0, 3) before the start", err)

	// Returned data belongs to the caller.
	e, _ := s.Entry(3)
	e.Data[0] = 'Z'
	es, _ := s.Entries(3, 4, 0)
	es[0].Data[1] = 'Z'
	checkLog(t, s, 3, 4, termOf)
}

func testEntriesMaxBytes(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	appendRange(t, s, 1, 11, 1) // 10 bytes of Data each
	for _, tc := range []struct {
		lo, hi, max uint64
		want        int
	}{
		{1, 11, 0, 10},
		{1, 11, 1, 1}, // at least one entry even if it alone is too big
		{1, 11, 10, 1},
		{1, 11, 19, 1},
		{1, 11, 20, 2},
		{1, 11, 25, 2},
		{3, 11, 30, 3},
		{1, 11, 100, 10},
		{1, 11, 1 << 40, 10},
		{8, 11, 15, 1},
	} {
		es, err := s.Entries(tc.lo, tc.hi, tc.max)
		if err != nil {
			t.Fatalf("Entries(%d, %d, %d): %v", tc.lo, tc.hi, tc.max, err)
		}
		if len(es) != tc.want {
			t.Fatalf("Entries(%d, %d, maxBytes %d) returned %d entries, want %d", tc.lo, tc.hi, tc.max, len(es), tc.want)
		}
		for k, e := range es {
			if want := entry(tc.lo+uint64(k), 1); !entryEqual(e, want) {
				t.Fatalf("Entries(%d, %d, %d)[%d] = %s, want %s", tc.lo, tc.hi, tc.max, k, fmtEntry(e), fmtEntry(want))
			}
		}
	}
}

func testBatchAtomicity(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	write(t, s, storage.Batch{Entries: entries(1, 11, 1), State: map[string][]byte{"hard": []byte("t1")}})
	// One batch truncates, appends over the cut and sets state, the way a
	// follower handles a conflicting AppendEntries.
	write(t, s, storage.Batch{
		TruncateFrom: 6,
		Entries:      entries(6, 9, 2),
		State:        map[string][]byte{"hard": []byte("t2"), "vote": []byte("3")},
	})
	checkBounds(t, s, 1, 8)
	checkLog(t, s, 1, 9, terms(6, 1, 2))
	_, err := s.Entry(9)
	wantNotFound(t, "Entry(9) after truncation", err)
	checkState(t, s, "hard", "t2")
	checkState(t, s, "vote", "3")

	// A rejected batch applies none of its parts.
	err = s.Write(context.Background(), storage.Batch{
		TruncateFrom: 3,
		Entries:      entries(7, 9, 3), // gap: after truncating at 3 the log ends at 2
		State:        map[string][]byte{"hard": []byte("t3")},
	})
	if err == nil {
		t.Fatal("Write with a gap after truncation succeeded")
	}
	checkBounds(t, s, 1, 8)
	checkLog(t, s, 1, 9, terms(6, 1, 2))
	checkState(t, s, "hard", "t2")
}

func testRejectsNonContiguous(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	appendRange(t, s, 1, 6, 1)
	bad := []struct {
		name string
		b    storage.Batch
	}{
		{"gap", storage.Batch{Entries: entries(7, 9, 1)}},
		{"overlap", storage.Batch{Entries: entries(5, 7, 1)}},
		{"hole inside batch", storage.Batch{Entries: []storage.LogEntry{entry(6, 1), entry(8, 1)}}},
		{"descending", storage.Batch{Entries: []storage.LogEntry{entry(7, 1), entry(6, 1)}}},
		{"gap with state", storage.Batch{Entries: entries(9, 10, 1), State: map[string][]byte{"k": []byte("v")}}},
	}
	for _, tc := range bad {
		if err := s.Write(context.Background(), tc.b); err == nil {
			t.Errorf("Write(%s) succeeded", tc.name)
		}
	}
	checkBounds(t, s, 1, 5)
	checkLog(t, s, 1, 6, term(1))
	_, err := s.State("k")
	wantNotFound(t, "State of a rejected batch", err)
	appendRange(t, s, 6, 8, 1)
	checkLog(t, s, 1, 8, term(1))
}

func testTruncateSuffix(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	appendRange(t, s, 1, 11, 1)
	write(t, s, storage.Batch{TruncateFrom: 5})
	checkBounds(t, s, 1, 4)
	for _, i := range []uint64{5, 10} {
		_, err := s.Entry(i)
		wantNotFound(t, fmt.Sprintf("Entry(%d) after truncation", i), err)
	}
	appendRange(t, s, 5, 8, 3)
	checkBounds(t, s, 1, 7)
	termOf := terms(5, 1, 3)
	checkLog(t, s, 1, 8, termOf)

	write(t, s, storage.Batch{TruncateFrom: 100}) // past the end: no-op
	checkBounds(t, s, 1, 7)
	checkLog(t, s, 1, 8, termOf)

	write(t, s, storage.Batch{TruncateFrom: 1}) // everything
	checkBounds(t, s, 0, 0)
	appendRange(t, s, 1, 3, 4)
	checkBounds(t, s, 1, 2)
	checkLog(t, s, 1, 3, term(4))
}

func testCompactPrefix(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	compact := func(upTo uint64) {
		t.Helper()
		if err := s.CompactPrefix(upTo); err != nil {
			t.Fatalf("CompactPrefix(%d): %v", upTo, err)
		}
	}
	appendRange(t, s, 1, 11, 1)
	compact(0)
	checkBounds(t, s, 1, 10)
	compact(4)
	checkBounds(t, s, 5, 10)
	_, err := s.Entry(4)
	wantNotFound(t, "Entry(4) after CompactPrefix(4)", err)
	_, err = s.Entries(4, 6, 0)
	wantNotFound(t, "Entries(4, 6) after CompactPrefix(4)", err)
	checkLog(t, s, 5, 11, term(1))
	compact(2) // below the first index: no-op
	checkBounds(t, s, 5, 10)

	compact(10) // everything
	checkBounds(t, s, 0, 0)
	_, err = s.Entry(10)
	wantNotFound(t, "Entry(10) after compacting everything", err)
	appendRange(t, s, 11, 13, 2) // the log continues where it stood
	checkBounds(t, s, 11, 12)
	checkLog(t, s, 11, 13, term(2))

	compact(1000) // past the end: empties the log
	checkBounds(t, s, 0, 0)
	// An empty log accepts any start, as after installing a snapshot.
	appendRange(t, s, 101, 106, 5)
	checkBounds(t, s, 101, 105)
	checkLog(t, s, 101, 106, term(5))
}

func checkState(t *testing.T, s storage.Store, key, want string) {
	t.Helper()
	v, err := s.State(key)
	if err != nil {
		t.Fatalf("State(%q): %v", key, err)
	}
	if string(v) != want {
		t.Fatalf("State(%q) = %q, want %q", key, v, want)
	}
}

func testState(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	bin := []byte{0, 1, 0, 255, 0}
	write(t, s, storage.Batch{State: map[string][]byte{"a": []byte("1"), "b": bin, "empty": {}}})
	checkState(t, s, "a", "1")
	checkState(t, s, "b", string(bin))
	checkState(t, s, "empty", "")
	write(t, s, storage.Batch{State: map[string][]byte{"a": []byte("2")}})
	checkState(t, s, "a", "2")
	checkState(t, s, "b", string(bin))
	_, err := s.State("c")
	wantNotFound(t, "State(c)", err)

	// State lives apart from the log.
	appendRange(t, s, 1, 3, 1)
	write(t, s, storage.Batch{TruncateFrom: 1})
	checkState(t, s, "a", "2")
	checkBounds(t, s, 0, 0)

	// Values belong to the caller on both sides.
	buf := []byte("xyz")
	write(t, s, storage.Batch{State: map[string][]byte{"d": buf}})
	buf[0] = 'Q'
	v, _ := s.State("d")
	v[1] = 'Q'
	checkState(t, s, "d", "xyz")
}

func testConcurrentWriters(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	const writers, perWriter, batches = 8, 25, 100
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("writer-%d", w)
			for n := range perWriter {
				v := fmt.Appendf(nil, "%d", n)
				if err := s.Write(ctx, storage.Batch{State: map[string][]byte{key: v}}); err != nil {
					errs <- fmt.Errorf("%s write %d: %w", key, n, err)
					return
				}
			}
		})
	}
	// The log is one serialised stream, as a consensus library writes it,
	// racing with the state writers.
	var last uint64
	wg.Go(func() {
		next := uint64(1)
		for b := range batches {
			n := uint64(b%3 + 1)
			err := s.Write(ctx, storage.Batch{
				Entries: entries(next, next+n, 1),
				State:   map[string][]byte{"log-last": fmt.Appendf(nil, "%d", next+n-1)},
			})
			if err != nil {
				errs <- fmt.Errorf("log batch %d: %w", b, err)
				return
			}
			next += n
		}
		last = next - 1
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	checkBounds(t, s, 1, last)
	checkLog(t, s, 1, last+1, term(1))
	checkState(t, s, "log-last", fmt.Sprint(last))
	for w := range writers {
		checkState(t, s, fmt.Sprintf("writer-%d", w), fmt.Sprint(perWriter-1))
	}
}

// streamSnapshot writes size pseudo-random bytes in chunks, so the test
// itself never holds the body, and returns the body's SHA-256.
func streamSnapshot(t *testing.T, ss storage.SnapshotStore, meta storage.SnapshotMeta, size int, seed byte) (string, [32]byte) {
	t.Helper()
	k, err := ss.Create(meta)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{seed})
	chunk := make([]byte, 64<<10)
	for left := size; left > 0; {
		n := min(left, len(chunk)-int(seed)) // uneven chunks
		src.Read(chunk[:n])
		h.Write(chunk[:n])
		if _, err := k.Write(chunk[:n]); err != nil {
			k.Cancel()
			t.Fatalf("sink Write: %v", err)
		}
		left -= n
	}
	id := k.ID()
	if list, err := ss.List(); err != nil {
		t.Fatalf("List: %v", err)
	} else {
		for _, m := range list {
			if m.ID == id {
				t.Fatalf("snapshot %s listed before its sink was closed", id)
			}
		}
	}
	if err := k.Close(); err != nil {
		t.Fatalf("sink Close: %v", err)
	}
	return id, [32]byte(h.Sum(nil))
}

func readSnapshot(t *testing.T, ss storage.SnapshotStore, id string) (storage.SnapshotMeta, int64, [32]byte) {
	t.Helper()
	meta, rc, err := ss.Open(id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("reading snapshot %s: %v", id, err)
	}
	return meta, n, [32]byte(h.Sum(nil))
}

func metaMatches(got, want storage.SnapshotMeta) bool {
	return got.ID == want.ID && got.Index == want.Index && got.Term == want.Term &&
		bytes.Equal(got.Membership, want.Membership) && got.MembershipIndex == want.MembershipIndex && got.Size == want.Size
}

func testSnapshotRoundTrip(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	ss := s.Snapshots()
	const size = 8 << 20
	want := storage.SnapshotMeta{Index: 100, Term: 3, Membership: []byte("voters=1,2,3"), MembershipIndex: 90, Size: size}
	id, sum := streamSnapshot(t, ss, want, size, 7)
	want.ID = id

	list, err := ss.List()
	if err != nil || len(list) != 1 || !metaMatches(list[0], want) {
		t.Fatalf("List = %+v, %v; want [%+v]", list, err, want)
	}
	meta, n, got := readSnapshot(t, ss, id)
	if !metaMatches(meta, want) {
		t.Fatalf("Open meta = %+v, want %+v", meta, want)
	}
	if n != size || got != sum {
		t.Fatalf("read %d bytes (sha256 match %v), want %d", n, got == sum, size)
	}

	// A newer snapshot lists first.
	newer := storage.SnapshotMeta{Index: 200, Term: 4, Size: 1000}
	newer.ID, _ = streamSnapshot(t, ss, newer, 1000, 9)
	list, err = ss.List()
	if err != nil || len(list) == 0 || !metaMatches(list[0], newer) {
		t.Fatalf("List = %+v, %v; want %+v first", list, err, newer)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Index > list[i-1].Index {
			t.Fatalf("List not newest first: %+v", list)
		}
	}
	_, _, err = ss.Open("no-such-snapshot")
	wantNotFound(t, "Open(unknown id)", err)
}

func testSnapshotCancel(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	ss := s.Snapshots()
	k, err := ss.Create(storage.SnapshotMeta{Index: 5, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Write(bytes.Repeat([]byte("x"), 100_000)); err != nil {
		t.Fatal(err)
	}
	if err := k.Cancel(); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if list, err := ss.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after Cancel = %+v, %v; want none", list, err)
	}
	_, _, err = ss.Open(k.ID())
	wantNotFound(t, "Open(cancelled)", err)
	if d := snapshotDir(s); d != "" {
		if files := regularFiles(t, d); len(files) != 0 {
			t.Fatalf("Cancel left files in %s: %v", d, files)
		}
	}
}

func snapshotDir(s storage.Store) string {
	if d, ok := s.(SnapshotDirer); ok {
		return d.SnapshotDir()
	}
	if d, ok := s.Snapshots().(SnapshotDirer); ok {
		return d.SnapshotDir()
	}
	return ""
}

func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files
}

func testSnapshotCorrupt(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	dir := snapshotDir(s)
	if dir == "" {
		t.Skip("store has no SnapshotDir() (conformance.SnapshotDirer): cannot damage a snapshot file")
	}
	ss := s.Snapshots()
	id, _ := streamSnapshot(t, ss, storage.SnapshotMeta{Index: 10, Term: 1}, 1<<20, 3)
	files := regularFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want one snapshot file in %s, have %v", dir, files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	var b [1]byte
	off := st.Size() / 2
	f.ReadAt(b[:], off)
	b[0] ^= 0x01
	_, err = f.WriteAt(b[:], off)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := ss.Open(id)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		t.Fatalf("a flipped bit in %s went unnoticed", files[0])
	}
}

func testClosed(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	appendRange(t, s, 1, 4, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want storage.ErrClosed", op, err)
		}
	}
	check("Write", s.Write(context.Background(), storage.Batch{Entries: entries(4, 5, 1)}))
	_, err := s.Entry(1)
	check("Entry", err)
	_, err = s.Entries(1, 3, 0)
	check("Entries", err)
	_, err = s.State("x")
	check("State", err)
	_, err = s.FirstIndex()
	check("FirstIndex", err)
	_, err = s.LastIndex()
	check("LastIndex", err)
	check("CompactPrefix", s.CompactPrefix(1))
}

func testReopen(t *testing.T, h StorageHarness) {
	if h.Reopen == nil {
		t.Skip("StorageHarness.Reopen is nil")
	}
	s := newStore(t, h)
	appendRange(t, s, 1, 21, 2)
	write(t, s, storage.Batch{State: map[string][]byte{"hard": []byte("term=2 vote=1"), "members": []byte("1,2,3")}})
	if err := s.CompactPrefix(5); err != nil {
		t.Fatal(err)
	}
	snap := storage.SnapshotMeta{Index: 5, Term: 2, Membership: []byte("m"), MembershipIndex: 1, Size: 300_000}
	var sum [32]byte
	snap.ID, sum = streamSnapshot(t, s.Snapshots(), snap, 300_000, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := h.Reopen(t, s)
	if s2 == nil {
		t.Fatal("StorageHarness.Reopen returned nil")
	}
	closeAtEnd(t, s2)
	checkBounds(t, s2, 6, 20)
	checkLog(t, s2, 6, 21, term(2))
	checkState(t, s2, "hard", "term=2 vote=1")
	checkState(t, s2, "members", "1,2,3")
	list, err := s2.Snapshots().List()
	if err != nil || len(list) != 1 || !metaMatches(list[0], snap) {
		t.Fatalf("List after reopen = %+v, %v; want [%+v]", list, err, snap)
	}
	if _, n, got := readSnapshot(t, s2.Snapshots(), snap.ID); n != snap.Size || got != sum {
		t.Fatalf("snapshot after reopen: %d bytes, sha256 match %v", n, got == sum)
	}
	appendRange(t, s2, 21, 23, 3)
	checkBounds(t, s2, 6, 22)
	checkLog(t, s2, 21, 23, term(3))
}

func testSizer(t *testing.T, h StorageHarness) {
	s := newStore(t, h)
	sz, ok := s.(storage.Sizer)
	if !ok {
		t.Skip("store does not implement storage.Sizer")
	}
	before, err := sz.DiskSize()
	if err != nil {
		t.Fatalf("DiskSize: %v", err)
	}
	const n, size = 32, 64 << 10 // 2 MiB of incompressible data
	src := rand.NewChaCha8([32]byte{42})
	for i := uint64(1); i <= n; i++ {
		data := make([]byte, size)
		src.Read(data)
		write(t, s, storage.Batch{Entries: []storage.LogEntry{{Index: i, Term: 1, Data: data}}})
	}
	after, err := sz.DiskSize()
	if err != nil {
		t.Fatalf("DiskSize: %v", err)
	}
	if after < n*size || after <= before {
		t.Fatalf("DiskSize %d before, %d after writing %d bytes", before, after, n*size)
	}
}

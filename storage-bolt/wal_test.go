package storagebolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

// quiet never checkpoints on its own, so the log holds every write until
// Close.
func quiet(c *Config) {
	c.WALCheckpointBytes = 4 << 20 // far more than any test here writes
	c.WALCheckpointInterval = time.Hour
}

// logBatch appends entry i (data crashData(i)) and records it as "last".
func logBatch(i uint64) storage.Batch {
	return storage.Batch{
		Entries: crashEntries(i, i+1),
		State:   map[string][]byte{"last": binary.BigEndian.AppendUint64(nil, i)},
	}
}

func writeLog(t *testing.T, s *Store, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		if err := s.Write(context.Background(), logBatch(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// checkLogStore checks the store holds exactly entries first..last of
// logBatch, with "last" matching.
func checkLogStore(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("bounds [%d, %d], want [%d, %d]", f, l, first, last)
	}
	es, err := s.Entries(first, last+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, e := range es {
		if i := first + uint64(k); e.Index != i || !bytes.Equal(e.Data, crashData(i)) {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	v, err := s.State("last")
	if err != nil || binary.BigEndian.Uint64(v) != last {
		t.Fatalf("state last = %x (%v), want %d", v, err, last)
	}
}

func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+walExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// crashImage copies the store's files as they are now into a new
// directory: what a process killed at this moment leaves on disk (its
// writes are in the page cache, which survives it). The store must be
// idle: no write or checkpoint under way.
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	img := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Zeros at the end (a segment's preallocated space) stay a hole:
		// they read the same and cost no writing.
		n := len(b)
		for n > 0 && b[n-1] == 0 {
			n--
		}
		path := filepath.Join(img, e.Name())
		if err := os.WriteFile(path, b[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// frames walks a segment's records with a parser of its own and returns
// each record's offset and the offset after the last one.
func frames(t *testing.T, path string) (offs []int64, end int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for end+walHeader <= int64(len(b)) {
		n := int64(binary.BigEndian.Uint32(b[end:]))
		if n == 0 {
			break
		}
		offs = append(offs, end)
		end += walHeader + n&^walMarker + 1
	}
	return offs, end
}

func onlySegment(t *testing.T, dir string) string {
	t.Helper()
	segs := walFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments in %s: %v, want one", dir, segs)
	}
	return segs[0]
}

func record(t *testing.T, seq uint64, b storage.Batch) []byte {
	t.Helper()
	op, err := batchOp(b)
	if err != nil {
		t.Fatal(err)
	}
	op.seq = seq
	return op.appendRecord(nil)
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A Write costs one fsync and no bolt commit, and is readable at once.
func TestWALOneFsyncPerWrite(t *testing.T) {
	s := openAt(t, t.TempDir(), quiet)
	defer s.Close()
	f0, c0 := s.fsyncs.Load(), s.commits.Load()
	const n = 50
	for i := uint64(1); i <= n; i++ {
		writeLog(t, s, i, i)
		if e, err := s.Entry(i); err != nil || !bytes.Equal(e.Data, crashData(i)) {
			t.Fatalf("Entry(%d) right after its Write: %+v, %v", i, e, err)
		}
		checkLogStore(t, s, 1, i)
	}
	if f, c := s.fsyncs.Load()-f0, s.commits.Load()-c0; f != n || c != n {
		t.Fatalf("%d sequential writes made %d fsyncs in %d commits, want one each", n, f, c)
	}
	if cp := s.checkpoints.Load(); cp != 0 {
		t.Fatalf("%d checkpoints", cp)
	}
	// The writes are in the log only.
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLog).Cursor().First(); k != nil {
			return fmt.Errorf("bolt holds entry %x before any checkpoint", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Close checkpoints everything and deletes the log: the database alone
// holds the store, with the number of the last record.
func TestWALCloseLeavesDatabaseOnly(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, quiet)
	writeLog(t, s, 1, 30)
	if err := s.CompactPrefix(10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := walFiles(t, dir); len(segs) != 0 {
		t.Fatalf("segments left after Close: %v", segs)
	}
	db, err := bolt.Open(filepath.Join(dir, dbFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if binary.BigEndian.Uint64(first) != 11 || binary.BigEndian.Uint64(last) != 30 || tx.Bucket(bucketLog).Stats().KeyN != 20 {
			return fmt.Errorf("bolt log [%x, %x]", first, last)
		}
		// 30 batches and one compaction.
		if v := tx.Bucket(bucketMeta).Get(keyWALApplied); binary.BigEndian.Uint64(v) != 31 {
			return fmt.Errorf("wal-applied = %x, want 31", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// padRecord is record seq, a state write sized so that, written at at,
// the next record starts at target.
func padRecord(t *testing.T, seq uint64, at, target int64) []byte {
	t.Helper()
	base := record(t, seq, storage.Batch{State: map[string][]byte{"pad": nil}})
	need := target - at - int64(len(base))
	if need < 0 {
		t.Fatalf("cannot pad %d bytes with a %d-byte record", target-at, len(base))
	}
	return record(t, seq, storage.Batch{State: map[string][]byte{"pad": make([]byte, need)}})
}

// tailCase builds, past the end of the records of a segment (at end), a
// record 11 (a state write padding to where record 12 must start: sector
// boundary + shift) and record 12, which adds entry 11 and spans sectors,
// and returns the bytes to write at end and the offset of record 12.
func tailCase(t *testing.T, end int64, shift int64) (b []byte, at12 int64) {
	t.Helper()
	at12 = (end/sectorSize+2)*sectorSize + shift
	big := logBatch(11)
	big.Entries[0].Data = bytes.Repeat([]byte{0xA5}, 1500)
	b = append(padRecord(t, 11, end, at12), record(t, 12, big)...)
	return b, at12
}

// A record a crash tore at the end of the newest segment is cut off; what
// was acknowledged before it survives and the store carries on. A crash
// keeps or loses whole sectors (a kill cuts a write at a page boundary), so
// each tear leaves a sector of the record blank, or the file short.
func TestWALTornTail(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, quiet)
	defer s.Close()
	writeLog(t, s, 1, 10)
	img := crashImage(t, dir)
	_, end := frames(t, onlySegment(t, img))

	for _, tc := range []struct {
		name   string
		damage func(path string)
	}{
		{"cut at a sector boundary in the body", func(p string) {
			b, at := tailCase(t, end, 0)
			writeAt(t, p, end, b[:at-end+2*sectorSize])
		}},
		{"cut at a sector boundary in the header", func(p string) {
			b, at := tailCase(t, end, -5)
			writeAt(t, p, end, b[:at-end+5])
		}},
		{"cut after the first byte", func(p string) {
			b, at := tailCase(t, end, -1)
			writeAt(t, p, end, b[:at-end+1])
		}},
		{"a sector in the middle never written", func(p string) {
			b, at := tailCase(t, end, 100)
			lo := at - end + sectorSize - 100 // the first whole sector of record 12
			clear(b[lo : lo+sectorSize])
			writeAt(t, p, end, b)
		}},
		{"its first sector never written", func(p string) {
			b, at := tailCase(t, end, -7) // header across the boundary
			clear(b[at-end : at-end+7])
			writeAt(t, p, end, b)
		}},
		{"its last sector never written", func(p string) {
			b, _ := tailCase(t, end, 0)
			tail := (end + int64(len(b))) % sectorSize
			if tail == 0 {
				t.Fatal("record 12 ends on a sector boundary")
			}
			clear(b[int64(len(b))-tail:])
			writeAt(t, p, end, b)
		}},
		{"cut short by the end of the file", func(p string) {
			if err := os.Truncate(p, end); err != nil {
				t.Fatal(err)
			}
			b, _ := tailCase(t, end, 0)
			writeAt(t, p, end, b[:len(b)-3])
		}},
		{"header cut short by the end of the file", func(p string) {
			if err := os.Truncate(p, end); err != nil {
				t.Fatal(err)
			}
			b, at := tailCase(t, end, 0)
			writeAt(t, p, end, b[:at-end+7])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := crashImage(t, img)
			seg := onlySegment(t, d)
			tc.damage(seg)
			s := openAt(t, d, quiet)
			checkLogStore(t, s, 1, 10)
			if _, err := s.Entry(11); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Entry(11) of the torn record: %v", err)
			}
			if _, err := os.Stat(seg); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("torn segment still there after replay: %v", err)
			}
			// The store carries on, and all of it survives a crash and a
			// reopen.
			writeLog(t, s, 11, 12)
			d2 := crashImage(t, d)
			s.Close()
			s = openAt(t, d2, quiet)
			defer s.Close()
			checkLogStore(t, s, 1, 12)
		})
	}
}

// A record that fails its check anywhere but as a torn tail stops Open
// with an error naming the segment and offset, and wrapping ErrCorrupt;
// that includes a damaged last record, however it falls across sectors.
func TestWALCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, quiet)
	defer s.Close()
	writeLog(t, s, 1, 10)
	img := crashImage(t, dir)
	offs, end := frames(t, onlySegment(t, img))
	if len(offs) != 10 {
		t.Fatalf("%d records, want 10", len(offs))
	}
	// appendTail puts a record 11 and a complete record 12 at sector
	// boundary + shift after the records, and returns record 12's offset.
	appendTail := func(seg string, shift int64) int64 {
		b, at := tailCase(t, end, shift)
		writeAt(t, seg, end, b)
		return at
	}
	for _, tc := range []struct {
		name  string
		flip  func(seg string) (rec, at int64) // the damaged record, the byte
		wants []string
	}{
		{"first record", func(string) (int64, int64) { return offs[0], offs[0] + walHeader + 3 }, []string{"checksum mismatch"}},
		{"middle record", func(string) (int64, int64) { return offs[4], offs[4] + 40 }, []string{"checksum mismatch"}},
		{"length of a middle record", func(string) (int64, int64) { return offs[5], offs[5] + 3 }, []string{"bad length field"}},
		// A damaged last record is not a torn write: it has no blank
		// sector.
		{"last record", func(string) (int64, int64) { return offs[9], end - 2 }, []string{"not a torn write"}},
		{"length of the last record, past the end of the file", func(string) (int64, int64) { return offs[9], offs[9] + 1 }, []string{"bad length field", "not a torn write"}},
		{"last record starting a byte before a sector boundary", func(seg string) (int64, int64) {
			at := appendTail(seg, -1)
			return at, at + 200
		}, []string{"not a torn write"}},
		{"last record ending a byte after a sector boundary", func(seg string) (int64, int64) {
			b, _ := tailCase(t, end, 0)
			at := appendTail(seg, sectorSize+1-(end+int64(len(b)))%sectorSize)
			return at, at + 200
		}, []string{"not a torn write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := crashImage(t, img)
			seg := onlySegment(t, d)
			rec, at := tc.flip(seg)
			b, _ := os.ReadFile(seg)
			b[at] ^= 0x01
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Path = d
			_, err := Open(context.Background(), plugin.Settings{}, cfg)
			wantCorrupt(t, err, append([]string{seg, fmt.Sprintf("offset %d:", rec)}, tc.wants...)...)
			// Nothing was cut or deleted: the evidence stays for repair.
			if after, _ := os.ReadFile(seg); !bytes.Equal(after, b) {
				t.Fatal("a failed Open changed the segment")
			}
		})
	}
}

// segSpec is a hand-made segment: records first..first+len(batches)-1.
type segSpec struct {
	first   uint64
	batches []storage.Batch
	tail    func(size int) []byte // appended after the records' size bytes
}

// handMade writes segments next to a database created with the log off
// (which holds no records) or, with applied > 0, one that holds records
// 1..applied, each adding entry i.
func handMade(t *testing.T, applied uint64, specs ...segSpec) string {
	t.Helper()
	dir := t.TempDir()
	if applied == 0 {
		openAt(t, dir, walOff).Close()
	} else {
		s := openAt(t, dir, quiet)
		writeLog(t, s, 1, applied)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, sp := range specs {
		var b []byte
		for k, bt := range sp.batches {
			b = append(b, record(t, sp.first+uint64(k), bt)...)
		}
		if sp.tail != nil {
			b = append(b, sp.tail(len(b))...)
		}
		b = append(b, make([]byte, 64<<10)...) // preallocated space
		if err := os.WriteFile(filepath.Join(dir, segmentName(sp.first)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func logBatches(lo, hi uint64) []storage.Batch {
	var bs []storage.Batch
	for i := lo; i <= hi; i++ {
		bs = append(bs, logBatch(i))
	}
	return bs
}

func TestWALSegments(t *testing.T) {
	open := func(dir string) (*Store, error) {
		cfg := DefaultConfig()
		cfg.Path = dir
		return Open(context.Background(), plugin.Settings{}, cfg)
	}
	// Record 4, spanning sectors, written up to the end of the sector it
	// starts in: a crash keeps or loses whole sectors.
	big := logBatch(4)
	big.Entries[0].Data = bytes.Repeat([]byte{0x5A}, 2000)
	rec := record(t, 4, big)
	torn := func(size int) []byte { return rec[:sectorSize-size%sectorSize] }

	t.Run("replayed in order", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, logBatches(1, 3), nil}, segSpec{4, logBatches(4, 5), nil}, segSpec{6, nil, nil})
		s, err := open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkLogStore(t, s, 1, 5)
		if segs := walFiles(t, dir); len(segs) != 1 || filepath.Base(segs[0]) != segmentName(6) {
			t.Fatalf("segments after replay: %v, want only a new %s", segs, segmentName(6))
		}
	})
	t.Run("torn tail of the newest segment", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, logBatches(1, 3), torn})
		s, err := open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkLogStore(t, s, 1, 3)
	})
	t.Run("torn tail of an older segment", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, logBatches(1, 3), torn}, segSpec{4, logBatches(4, 5), nil})
		_, err := open(dir)
		wantCorrupt(t, err, filepath.Join(dir, segmentName(1)), "offset")
	})
	t.Run("missing segment", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, logBatches(1, 2), nil}, segSpec{5, logBatches(5, 6), nil})
		_, err := open(dir)
		wantCorrupt(t, err, filepath.Join(dir, segmentName(5)), "records 3 to 4")
	})
	t.Run("first segment missing", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{3, logBatches(3, 4), nil})
		_, err := open(dir)
		wantCorrupt(t, err, filepath.Join(dir, segmentName(3)), "records 1 to 2")
	})
	t.Run("record out of sequence", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, logBatches(1, 2), nil})
		seg := filepath.Join(dir, segmentName(1))
		_, end := frames(t, seg)
		writeAt(t, seg, end, record(t, 4, logBatch(3)))
		_, err := open(dir)
		wantCorrupt(t, err, seg, "holds record 4")
	})
	t.Run("record that does not fit the log", func(t *testing.T) {
		dir := handMade(t, 0, segSpec{1, append(logBatches(1, 2), logBatch(7)), nil})
		_, err := open(dir)
		wantCorrupt(t, err, filepath.Join(dir, segmentName(1)), "record 3", "does not apply")
	})
	t.Run("records the database has are skipped", func(t *testing.T) {
		// A crash after a checkpoint committed, before it deleted the
		// segment: records 1..4 are in the database and in the log.
		dir := handMade(t, 4, segSpec{1, logBatches(1, 4), nil}, segSpec{5, logBatches(5, 6), nil})
		s, err := open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkLogStore(t, s, 1, 6)
	})
	t.Run("gap below the database's records", func(t *testing.T) {
		// A segment whose delete failed, then a newer one deleted: records
		// 3..4 are gone from the log but in the database.
		dir := handMade(t, 4, segSpec{1, logBatches(1, 2), nil}, segSpec{5, logBatches(5, 6), nil})
		s, err := open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkLogStore(t, s, 1, 6)
	})
}

// diskFormat reads the format version of a store that is not open.
func diskFormat(t *testing.T, dir string) uint32 {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, dbFileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint32
	if err := db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// The format version is 2 exactly while the log may hold records the
// database lacks, so builds without the log refuse only a store a crash
// left with one; and the store opens under either setting of the log,
// whatever the other left.
func TestWALFormatAndSwitchModes(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, quiet)
	if s.FormatVersion() != formatDirect {
		t.Fatalf("new store: FormatVersion() = %d", s.FormatVersion())
	}
	writeLog(t, s, 1, 20)
	img := crashImage(t, dir)
	if v := diskFormat(t, img); v != formatWAL {
		t.Fatalf("format %d on disk with the log on", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := diskFormat(t, dir); v != formatDirect {
		t.Fatalf("format %d on disk after a clean close", v)
	}

	// The crash left a log: turning it off folds it in.
	s = openAt(t, img, walOff)
	if s.FormatVersion() != formatWAL {
		t.Fatalf("found a crashed store at %d", s.FormatVersion())
	}
	checkLogStore(t, s, 1, 20)
	if segs := walFiles(t, img); len(segs) != 0 {
		t.Fatalf("segments with the log off: %v", segs)
	}
	writeLog(t, s, 21, 25)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := diskFormat(t, img); v != formatDirect {
		t.Fatalf("format %d on disk with the log off", v)
	}

	// And back on, crashing again.
	s = openAt(t, img, quiet)
	writeLog(t, s, 26, 30)
	img2 := crashImage(t, img)
	s.Close()
	s = openAt(t, img2, quiet)
	defer s.Close()
	checkLogStore(t, s, 1, 30)
}

// A failed log write fails that Write and every later one (the segment's
// tail is unknown), reads go on, and reopening recovers every acknowledged
// write.
func TestWALWriteFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, quiet)
	writeLog(t, s, 1, 5)
	s.seg.f.Close() // the writer goroutine is idle: the Writes above returned
	err := s.Write(context.Background(), logBatch(6))
	wantErrContaining(t, err, "write-ahead log", "refusing writes")
	err = s.Write(context.Background(), storage.Batch{State: map[string][]byte{"k": nil}})
	wantErrContaining(t, err, "refusing writes")
	checkLogStore(t, s, 1, 5)
	if err := s.Close(); err == nil {
		t.Fatal("Close of a failed store reported nothing")
	}
	s = openAt(t, dir, quiet)
	defer s.Close()
	checkLogStore(t, s, 1, 5)
}

// The overlay stays bounded when writes outrun checkpoints, and the log's
// segments are deleted behind them.
func TestWALOverlayBounded(t *testing.T) {
	const cp = 64 << 10
	dir := t.TempDir()
	s := openAt(t, dir, func(c *Config) {
		c.WALCheckpointBytes = cp
		c.WALCheckpointInterval = time.Hour
	})
	defer s.Close()
	data := make([]byte, 4<<10)
	var peak int64
	for i := uint64(1); i <= 1000; i++ {
		if err := s.Write(context.Background(), storage.Batch{Entries: []storage.LogEntry{{Index: i, Term: 1, Data: data}}}); err != nil {
			t.Fatal(err)
		}
		s.mu.RLock()
		n := s.active.bytes
		if s.frozen != nil {
			n += s.frozen.bytes
		}
		s.mu.RUnlock()
		peak = max(peak, n)
	}
	// At most four checkpoints' worth in each generation, plus one write.
	if limit := int64(8*cp + 2*len(data)); peak > limit {
		t.Fatalf("overlay peaked at %d bytes, limit %d", peak, limit)
	}
	if cps := s.checkpoints.Load(); cps < 10 {
		t.Fatalf("%d checkpoints for 4 MiB written with a %d-byte threshold", cps, cp)
	}
	if used := s.walUsed.Load(); used > 10*cp {
		t.Fatalf("%d bytes of log on disk", used)
	}
	if segs := walFiles(t, dir); len(segs) > 3 {
		t.Fatalf("%d segments on disk: %v", len(segs), segs)
	}
	checkEntries(t, s, 1, 1000)
}

func checkEntries(t *testing.T, s *Store, lo, hi uint64) {
	t.Helper()
	es, err := s.Entries(lo, hi+1, 0)
	if err != nil || len(es) != int(hi-lo+1) {
		t.Fatalf("Entries(%d, %d): %d entries, %v", lo, hi+1, len(es), err)
	}
}

// Reads racing writes, truncations, compactions and near-continuous
// checkpoints always see acknowledged data, whichever of the active
// generation, the frozen one and bolt holds it.
func TestWALReadsDuringCheckpoints(t *testing.T) {
	s := openAt(t, t.TempDir(), func(c *Config) {
		c.WALCheckpointBytes = 2 << 10
		c.WALCheckpointInterval = time.Millisecond
	})
	defer s.Close()
	var acked atomic.Uint64 // last index acknowledged
	stop := make(chan struct{})
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		ctx := context.Background()
		var first, last uint64
		deadline := time.Now().Add(time.Second)
		for b := 0; b < 3000 && time.Now().Before(deadline); b++ {
			var batch storage.Batch
			next := last + 1
			if b%25 == 24 && last >= first+2 && first != 0 {
				// Rewrite the last two entries with the same content.
				batch.TruncateFrom = last - 1
				next = last - 1
			}
			end := last + 1 + uint64(b%4)
			batch.Entries = crashEntries(next, end+1)
			batch.State = map[string][]byte{"last": binary.BigEndian.AppendUint64(nil, end)}
			if err := s.Write(ctx, batch); err != nil {
				errc <- err
				return
			}
			if first == 0 {
				first = next
			}
			last = end
			acked.Store(last)
			if b%40 == 39 && last > first+100 {
				if err := s.CompactPrefix(last - 100); err != nil {
					errc <- err
					return
				}
				first = last - 99
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				last := acked.Load()
				if last == 0 {
					continue
				}
				if err := checkRead(s, last); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if cps := s.checkpoints.Load(); cps < 20 {
		t.Fatalf("only %d checkpoints: the test did not race them", cps)
	}
	t.Logf("%d checkpoints; log ends at %d", s.checkpoints.Load(), acked.Load())
}

// checkRead reads around acknowledged index last. NotFound is right only
// below the first index (compacted meanwhile).
func checkRead(s *Store, last uint64) error {
	compacted := func(i uint64, err error) error {
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if first, _ := s.FirstIndex(); first > i {
			return nil
		}
		return fmt.Errorf("index %d not found, first index %d, last acknowledged %d: %w", i, must(s.FirstIndex()), last, err)
	}
	i := last - uint64(rand.IntN(int(min(last, 150))))
	e, err := s.Entry(i)
	if err != nil {
		return compacted(i, err)
	}
	if e.Index != i || !bytes.Equal(e.Data, crashData(i)) {
		return fmt.Errorf("Entry(%d) = %+v", i, e)
	}
	maxBytes := uint64(rand.IntN(3)) * 500
	es, err := s.Entries(i, last+1, maxBytes)
	if err != nil {
		return compacted(i, err)
	}
	var total uint64
	for k, e := range es {
		if j := i + uint64(k); e.Index != j || !bytes.Equal(e.Data, crashData(j)) {
			return fmt.Errorf("Entries(%d, %d)[%d] = %+v", i, last+1, k, e)
		}
		total += uint64(len(e.Data))
	}
	if maxBytes == 0 && len(es) != int(last+1-i) || maxBytes > 0 && len(es) > 1 && total > maxBytes {
		return fmt.Errorf("Entries(%d, %d, %d) returned %d entries of %d bytes", i, last+1, maxBytes, len(es), total)
	}
	v, err := s.State("last")
	if err != nil || binary.BigEndian.Uint64(v) < last {
		return fmt.Errorf("state last = %x (%v) after %d was acknowledged", v, err, last)
	}
	if keys, err := s.StateKeys(); err != nil || strings.Join(keys, ",") != "last" {
		return fmt.Errorf("StateKeys = %q, %v", keys, err)
	}
	return nil
}

func must(v uint64, _ error) uint64 { return v }

package snapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/framework/storage"
)

func open(t *testing.T, retain int) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "snaps"), Options{Retain: retain})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *Store, meta storage.SnapshotMeta, body []byte) string {
	t.Helper()
	k, err := s.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	// Several writes, so the body crosses buffer boundaries unevenly.
	for len(body) > 0 {
		n := min(len(body), 70_001)
		if _, err := k.Write(body[:n]); err != nil {
			t.Fatal(err)
		}
		body = body[n:]
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

func readAll(s *Store, id string) (storage.SnapshotMeta, []byte, error) {
	meta, rc, err := s.Open(id)
	if err != nil {
		return meta, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	s := open(t, 0)
	want := storage.SnapshotMeta{Index: 42, Term: 3, Membership: []byte("members"), MembershipIndex: 40}
	data := body(300_000)
	id := write(t, s, want, data)
	if !strings.HasPrefix(id, "3-42-") {
		t.Fatalf("id %q, want <term>-<index>-<nanos>", id)
	}
	meta, got, err := readAll(s, id)
	if err != nil {
		t.Fatal(err)
	}
	want.ID, want.Size = id, int64(len(data))
	if !metaEqual(meta, want) {
		t.Fatalf("meta %+v, want %+v", meta, want)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("body differs")
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || !metaEqual(list[0], want) {
		t.Fatalf("List = %+v, %v; want [%+v]", list, err, want)
	}
}

func TestEmptyBodyAndNoMembership(t *testing.T) {
	s := open(t, 0)
	id := write(t, s, storage.SnapshotMeta{Index: 1, Term: 1}, nil)
	meta, got, err := readAll(s, id)
	if err != nil || len(got) != 0 || meta.Size != 0 || meta.Membership != nil {
		t.Fatalf("got meta %+v body %d bytes err %v", meta, len(got), err)
	}
}

func metaEqual(a, b storage.SnapshotMeta) bool {
	return a.ID == b.ID && a.Index == b.Index && a.Term == b.Term && bytes.Equal(a.Membership, b.Membership) &&
		a.MembershipIndex == b.MembershipIndex && a.Size == b.Size
}

func TestListNewestFirstAndRetain(t *testing.T) {
	s := open(t, 3)
	// Written out of index order: List orders by index, not by write time.
	for _, idx := range []uint64{20, 10, 40, 30, 5} {
		write(t, s, storage.SnapshotMeta{Index: idx, Term: 1}, body(10))
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range list {
		got = append(got, m.Index)
	}
	// After the 5th Close the newest three by index remain; index 5 was
	// pruned by its own Close.
	if want := []uint64{40, 30, 20}; !equalU64(got, want) {
		t.Fatalf("indexes %v, want %v", got, want)
	}
	files, _ := os.ReadDir(s.SnapshotDir())
	if len(files) != 3 {
		t.Fatalf("%d files on disk, want 3", len(files))
	}
}

func TestDefaultRetainIsTwo(t *testing.T) {
	s := open(t, 0)
	for i := uint64(1); i <= 4; i++ {
		write(t, s, storage.SnapshotMeta{Index: i, Term: 1}, nil)
	}
	list, _ := s.List()
	if len(list) != 2 || list[0].Index != 4 || list[1].Index != 3 {
		t.Fatalf("List = %+v, want indexes 4, 3", list)
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCancelAndInProgressInvisible(t *testing.T) {
	s := open(t, 0)
	k, err := s.Create(storage.SnapshotMeta{Index: 7, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	k.Write(body(1000))
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("in-progress snapshot listed: %+v", list)
	}
	if _, _, err := s.Open(k.ID()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open in-progress: %v, want ErrNotFound", err)
	}
	if err := k.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err == nil {
		t.Fatal("Close after Cancel succeeded")
	}
	if _, err := k.Write([]byte("x")); err == nil {
		t.Fatal("Write after Cancel succeeded")
	}
	if files, _ := os.ReadDir(s.SnapshotDir()); len(files) != 0 {
		t.Fatalf("cancel left %d files", len(files))
	}
	if _, _, err := s.Open(k.ID()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open cancelled: %v, want ErrNotFound", err)
	}
}

func TestCloseTwiceAndCancelAfterClose(t *testing.T) {
	s := open(t, 0)
	k, _ := s.Create(storage.SnapshotMeta{Index: 1, Term: 1})
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if err := k.Cancel(); err != nil {
		t.Fatalf("Cancel after Close: %v", err)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("Cancel after Close removed the snapshot: %+v", list)
	}
}

func TestOpenRejectsBadIDs(t *testing.T) {
	s := open(t, 0)
	for _, id := range []string{"", "../x", "1-2", "a-b-c", "1-2-3"} {
		if _, _, err := s.Open(id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestCorruptBodyDetectedAtEOF(t *testing.T) {
	s := open(t, 0)
	data := body(200_000)
	id := write(t, s, storage.SnapshotMeta{Index: 1, Term: 1}, data)
	path := filepath.Join(s.SnapshotDir(), id+".snap")
	flip(t, path, 100_000)
	// The header and trailer are intact, so List still offers it.
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("List = %+v", list)
	}
	_, got, err := readAll(s, id)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("read err = %v, want ErrCorrupt (and storage.ErrCorrupt) naming %s", err, path)
	}
	// Only the header and trailer are checked without reading the body.
	if bad, err := s.Damaged(); err != nil || len(bad) != 0 {
		t.Fatalf("Damaged = %v, %v; want none", bad, err)
	}
	if len(got) != len(data) {
		t.Fatalf("streamed %d bytes before the error, want %d", len(got), len(data))
	}
}

func TestDamagedHeaderOrTrailerSkippedByList(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"header", func(t *testing.T, path string) { flip(t, path, 20) }},
		{"truncated", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-5); err != nil {
				t.Fatal(err)
			}
		}},
		{"trailer length", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			flip(t, path, st.Size()-int64(trailerLen)+7)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, 5)
			good := write(t, s, storage.SnapshotMeta{Index: 1, Term: 1}, body(1000))
			bad := write(t, s, storage.SnapshotMeta{Index: 2, Term: 1}, body(1000))
			path := filepath.Join(s.SnapshotDir(), bad+".snap")
			tc.damage(t, path)
			list, err := s.List()
			if err != nil || len(list) != 1 || list[0].ID != good {
				t.Fatalf("List = %+v, %v; want only %s", list, err, good)
			}
			_, _, err = s.Open(bad)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want ErrCorrupt (and storage.ErrCorrupt) naming %s", err, path)
			}
			// What List skips, Damaged reports.
			damaged, err := s.Damaged()
			if err != nil || len(damaged) != 1 || !errors.Is(damaged[0], storage.ErrCorrupt) ||
				!strings.Contains(damaged[0].Error(), path) {
				t.Fatalf("Damaged = %v, %v; want one error wrapping storage.ErrCorrupt naming %s", damaged, err, path)
			}
		})
	}
}

func TestNewerVersionIsAnError(t *testing.T) {
	s := open(t, 0)
	id := write(t, s, storage.SnapshotMeta{Index: 1, Term: 1}, body(10))
	path := filepath.Join(s.SnapshotDir(), id+".snap")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(b[len(magic):], 9)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(op string, err error) {
		t.Helper()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if !errors.Is(err, ErrNewerVersion) || !strings.Contains(msg, path) ||
			!strings.Contains(msg, "version 9") || !strings.Contains(msg, "up to 1") {
			t.Fatalf("%s = %v; want ErrNewerVersion naming the file and versions 9 and 1", op, err)
		}
	}
	_, err = s.List()
	check("List", err)
	_, _, err = s.Open(id)
	check("Open", err)
}

func TestTempFilesIgnoredThenRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snaps")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := s.Create(storage.SnapshotMeta{Index: 9, Term: 2})
	k.Write(body(5000))
	// Simulate a crash: the sink is never closed.
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("temp file listed: %+v", list)
	}
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 0 {
		t.Fatalf("reopen left %v", files[0].Name())
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

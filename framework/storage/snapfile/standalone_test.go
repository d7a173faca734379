package snapfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/corral-dev/corral/framework/storage"
)

func TestStandaloneRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.snap")
	in := storage.SnapshotMeta{ID: "5-900-123", Index: 900, Term: 5, Membership: []byte("cfg"), MembershipIndex: 3, Size: 77}
	data := body(150_000)
	meta, err := WriteFile(path, in, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Size = int64(len(data))
	if !metaEqual(meta, want) {
		t.Fatalf("WriteFile meta %+v, want %+v", meta, want)
	}
	got, rc, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, data) || !metaEqual(got, want) {
		t.Fatalf("OpenFile: meta %+v, %d bytes, %v", got, len(b), err)
	}
	if _, err := os.Stat(path + tmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
}

// A file copied out of a snapshot directory opens as a standalone file,
// whatever it is named.
func TestOpenFileReadsDirectoryFiles(t *testing.T) {
	s := open(t, 0)
	data := body(1000)
	id := write(t, s, storage.SnapshotMeta{Index: 8, Term: 2, Membership: []byte("m")}, data)
	src, err := os.ReadFile(filepath.Join(s.SnapshotDir(), id+snapSuffix))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.bin")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(b, data) || meta.ID != id || meta.Index != 8 || string(meta.Membership) != "m" {
		t.Fatalf("meta %+v, %d bytes, %v", meta, len(b), err)
	}
}

func TestStandaloneBodyErrorLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.snap")
	boom := errors.New("source failed its checksum")
	_, err := WriteFile(path, storage.SnapshotMeta{Index: 1, Term: 1},
		io.MultiReader(bytes.NewReader(body(5000)), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the body's error", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 0 {
		t.Fatalf("failed export left %s", entries[0].Name())
	}
}

func TestStandaloneDamageDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.snap")
	if _, err := WriteFile(path, storage.SnapshotMeta{ID: "x", Index: 1, Term: 1}, bytes.NewReader(body(10_000))); err != nil {
		t.Fatal(err)
	}
	flip(t, path, 5000)
	_, rc, err := OpenFile(path)
	if err != nil {
		t.Fatalf("body damage reported before reading: %v", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("read err = %v, want storage.ErrCorrupt naming %s", err, path)
	}
	flip(t, path, 5000) // undo
	flip(t, path, 12)   // header
	if _, _, err := OpenFile(path); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("header damage: err = %v, want storage.ErrCorrupt", err)
	}
	if _, _, err := OpenFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
}

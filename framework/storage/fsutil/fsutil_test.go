package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMkdirAllDurableAndDirSize(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := MkdirAllDurable(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("%s not created: %v", dir, err)
	}
	// Existing directories are fine.
	if err := MkdirAllDurable(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x"), make([]byte, 100), 0o600)
	os.WriteFile(filepath.Join(dir, "y"), make([]byte, 23), 0o600)
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	if n, err := DirSize(dir); err != nil || n != 123 {
		t.Fatalf("DirSize = %d, %v; want 123 (regular files only)", n, err)
	}
	if _, err := DirSize(filepath.Join(root, "missing")); err == nil {
		t.Fatal("DirSize of a missing directory succeeded")
	}
	if err := SyncDir(filepath.Join(root, "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

// Package fsutil holds the small durable-filesystem helpers every storage
// plugin needs, so each does not carry its own copy.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// MkdirAllDurable creates dir and its missing parents with perm, then
// fsyncs each directory that gained an entry, so a directory created just
// before a power loss is still there afterwards.
func MkdirAllDurable(dir string, perm os.FileMode) error {
	var created []string
	for d := dir; ; {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		if err := SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// SyncDir fsyncs a directory, making the entries created in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// DirSize is the total size of the regular files directly in dir.
func DirSize(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		// A file removed since ReadDir has no Info; it no longer counts.
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total, nil
}

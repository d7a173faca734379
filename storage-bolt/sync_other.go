//go:build !linux

package storagebolt

import "os"

// fdatasync falls back to a full fsync where fdatasync is not wired up.
func fdatasync(f *os.File) error { return f.Sync() }

// preallocate is a no-op where fallocate is not wired up: segments grow as
// they are written, and a torn tail shows as a short file.
func preallocate(*os.File, int64) error { return nil }

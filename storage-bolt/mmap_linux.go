package storagebolt

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// releaseMappedPages drops the database file's pages from this process's
// memory map (MADV_DONTNEED). bolt reads through a shared, read-only file
// mapping, so every page it ever touched (old log entries included) counts
// in the server's RSS though the kernel could reclaim it; after compaction
// those pages are dead weight. The pages stay in the page cache and fault
// back in on the next read. It runs inside a read transaction, which holds
// bolt's mmap lock, so the mapping cannot be replaced underneath.
func (s *Store) releaseMappedPages() {
	err := s.db.View(func(tx *bolt.Tx) error {
		info := s.db.Info()
		size := uintptr(tx.Size())
		if info.Data == 0 || size == 0 {
			return nil
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, info.Data, size, syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
	if err != nil {
		s.log.Debug("releasing mapped pages", "err", err)
	}
}

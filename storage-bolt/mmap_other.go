//go:build !linux

package storagebolt

// releaseMappedPages is a no-op where madvise is not wired up.
func (s *Store) releaseMappedPages() {}

package memstore

// Corrupt flips one bit of a committed snapshot's body, for tests of the
// checksum.
func Corrupt(s *Store, id string, off int) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, sn := range s.d.snaps {
		if sn.meta.ID == id {
			sn.body[off%len(sn.body)] ^= 1
		}
	}
}

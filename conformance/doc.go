// Package conformance holds reusable test suites that every plugin of a kind
// runs from its own _test.go file, in the shape of testing/slogtest: one
// exported Run function per contract, one subtest per case, and a fresh
// instance per case built by a factory that receives the subtest's
// *testing.T (so it can use t.TempDir and t.Cleanup).
//
// Optional capabilities (storage.Sizer, a snapshot directory on disk, a way
// to reopen a store) are exercised only when the implementation offers them;
// a case that needs a missing capability is skipped by name, so the test
// output shows what was not covered.
//
//	func TestConformance(t *testing.T) {
//		conformance.RunStorage(t, conformance.StorageHarness{
//			New:    func(t *testing.T) storage.Store { ... },
//			Reopen: func(t *testing.T, old storage.Store) storage.Store { ... },
//		})
//	}
package conformance

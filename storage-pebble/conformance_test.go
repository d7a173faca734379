package storagepebble

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

func openWith(t testing.TB, dir string, o options, mutate func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = dir
	if mutate != nil {
		mutate(cfg)
	}
	s, err := open(context.Background(), plugin.Settings{}, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openAt(t testing.TB, dir string, mutate func(*Config)) *Store {
	t.Helper()
	return openWith(t, dir, options{}, mutate)
}

func TestConformance(t *testing.T) {
	// Sync stays on (the default): the suite checks the real write path.
	t.Run("disk", func(t *testing.T) {
		conformance.RunStorage(t, conformance.StorageHarness{
			New: func(t *testing.T) storage.Store {
				return openAt(t, filepath.Join(t.TempDir(), "pebble"), nil)
			},
			Reopen: func(t *testing.T, old storage.Store) storage.Store {
				return openAt(t, old.(*Store).Path(), nil)
			},
		})
	})
	// The in-memory filesystem the crash tests use must behave the same.
	t.Run("memfs", func(t *testing.T) {
		conformance.RunStorage(t, conformance.StorageHarness{
			New: func(t *testing.T) storage.Store {
				return openWith(t, "/db", options{fs: vfs.NewMem(), snapDir: t.TempDir()}, nil)
			},
			Reopen: func(t *testing.T, old storage.Store) storage.Store {
				o := old.(*Store)
				return openWith(t, o.Path(), options{fs: o.fs, snapDir: o.SnapshotDir()}, nil)
			},
		})
	})
}

package storagebolt

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

func openAt(t testing.TB, dir string, mutate func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = dir
	if mutate != nil {
		mutate(cfg)
	}
	s, err := Open(context.Background(), plugin.Settings{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	conformance.RunStorage(t, conformance.StorageHarness{
		// Sync stays on (the default): the suite checks the real write path.
		New: func(t *testing.T) storage.Store {
			return openAt(t, filepath.Join(t.TempDir(), "bolt"), nil)
		},
		Reopen: func(t *testing.T, old storage.Store) storage.Store {
			return openAt(t, old.(*Store).Path(), nil)
		},
	})
}

package storagebolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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

// Configs the suite runs under. walBusy checkpoints after nearly every
// write, so reads and writes race checkpoints and the overlay is often split
// between a frozen and an active generation.
var (
	walOff  = func(c *Config) { c.WAL = false }
	walBusy = func(c *Config) {
		c.WALCheckpointBytes = 512
		c.WALCheckpointInterval = time.Millisecond
	}
)

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"wal", nil},
		{"direct", walOff},
		{"wal-busy", walBusy},
	} {
		t.Run(mode.name, func(t *testing.T) {
			conformance.RunStorage(t, conformance.StorageHarness{
				// Sync stays on (the default): the suite checks the real
				// write path.
				New: func(t *testing.T) storage.Store {
					return openAt(t, filepath.Join(t.TempDir(), "bolt"), mode.mutate)
				},
				Reopen: func(t *testing.T, old storage.Store) storage.Store {
					return openAt(t, old.(*Store).Path(), mode.mutate)
				},
			})
		})
	}
}

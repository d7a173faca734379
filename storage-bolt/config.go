package storagebolt

import (
	"errors"
	"time"

	"github.com/corral-dev/corral/framework/storage/snapfile"
)

// Config is the user's configuration of the bolt storage engine.
type Config struct {
	// Path is the directory holding the database file (corral.db) and the
	// snapshots/ directory. Empty means "<data dir>/bolt".
	Path string `koanf:"path"`
	// Sync fsyncs every commit. Turn it off only for tests and benchmarks:
	// an acknowledged write can then be lost on power failure.
	Sync bool `koanf:"sync"`
	// OpenTimeout bounds the wait for the file lock held by another process.
	OpenTimeout time.Duration `koanf:"open_timeout"`
	// InitialMmapSize is the initial memory map size in bytes; a map large
	// enough for the whole file avoids remapping (which blocks writers while
	// read transactions drain). Zero lets bolt choose.
	InitialMmapSize int `koanf:"initial_mmap_size"`
	// RetainSnapshots is how many complete snapshots to keep on disk.
	RetainSnapshots int `koanf:"retain_snapshots"`
}

// DefaultConfig returns safe defaults: fsync on, 1s lock timeout, two
// snapshots kept.
func DefaultConfig() *Config {
	return &Config{
		Sync:            true,
		OpenTimeout:     time.Second,
		RetainSnapshots: snapfile.DefaultRetain,
	}
}

// Validate checks the config after decoding.
func (c *Config) Validate() error {
	var errs []error
	if c.OpenTimeout <= 0 {
		// Zero would make bolt wait forever for a lock held elsewhere.
		errs = append(errs, errors.New("storage.bolt: open_timeout must be positive"))
	}
	if c.InitialMmapSize < 0 {
		errs = append(errs, errors.New("storage.bolt: initial_mmap_size must not be negative"))
	}
	if c.RetainSnapshots < 1 {
		errs = append(errs, errors.New("storage.bolt: retain_snapshots must be at least 1"))
	}
	return errors.Join(errs...)
}

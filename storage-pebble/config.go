package storagepebble

import (
	"errors"

	"github.com/corral-dev/corral/framework/storage/snapfile"
)

// Config is the user's configuration of the pebble storage engine.
type Config struct {
	// Path is the pebble directory; snapshots go in its snapshots/
	// subdirectory. Empty means "<data dir>/pebble".
	Path string `koanf:"path"`
	// Sync makes every commit wait for the WAL fsync. Turn it off only for
	// tests and benchmarks: an acknowledged write can then be lost on power
	// failure.
	Sync bool `koanf:"sync"`
	// CacheSize is the block cache in bytes. The server serves reads from
	// its in-memory tree, so storage reads are mostly log tails: a small
	// cache is enough.
	CacheSize int64 `koanf:"cache_size"`
	// MemtableSize is the size of each memtable in bytes.
	MemtableSize int64 `koanf:"memtable_size"`
	// RetainSnapshots is how many complete snapshots to keep on disk.
	RetainSnapshots int `koanf:"retain_snapshots"`
}

// DefaultConfig returns safe, lean defaults: fsync on, 8 MiB cache, 4 MiB
// memtables, two snapshots kept.
func DefaultConfig() *Config {
	return &Config{
		Sync:            true,
		CacheSize:       8 << 20,
		MemtableSize:    4 << 20,
		RetainSnapshots: snapfile.DefaultRetain,
	}
}

// Validate checks the config after decoding.
func (c *Config) Validate() error {
	var errs []error
	if c.CacheSize < 0 {
		errs = append(errs, errors.New("storage.pebble: cache_size must not be negative"))
	}
	// pebble needs room for at least a batch in a memtable and caps it
	// below 4 GiB.
	if c.MemtableSize < 64<<10 || c.MemtableSize >= 4<<30 {
		errs = append(errs, errors.New("storage.pebble: memtable_size must be between 64 KiB and 4 GiB"))
	}
	if c.RetainSnapshots < 1 {
		errs = append(errs, errors.New("storage.pebble: retain_snapshots must be at least 1"))
	}
	return errors.Join(errs...)
}

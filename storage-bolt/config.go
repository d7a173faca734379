package storagebolt

import (
	"errors"
	"time"

	"github.com/corral-dev/corral/framework/storage/snapfile"
)

// Config is the user's configuration of the bolt storage engine.
type Config struct {
	// Path is the directory holding the database file (corral.db), the
	// write-ahead log segments (*.wal) and the snapshots/ directory. Empty
	// means "<data dir>/bolt".
	Path string `koanf:"path"`
	// Sync fsyncs every commit. Turn it off only for tests and benchmarks:
	// an acknowledged write can then be lost on power failure.
	Sync bool `koanf:"sync"`
	// WAL puts a write-ahead log in front of the database (the default).
	// A Write is then one appended, checksummed record and one fdatasync;
	// the database file takes the recent writes in the background, many
	// at a time, at a checkpoint (bolt's own commit costs two fsyncs, so
	// without the log every Write pays both). Reads see a Write as soon as
	// it returns either way. With false, every Write is a bolt transaction
	// of its own, as before. Either setting opens a store written with the
	// other: records still in the log are folded into the database at
	// open. A store open with the log on carries format version 2 until it
	// is closed cleanly, which folds the log into the database and deletes
	// it: builds without the log refuse a store a crash left with one
	// (they would ignore it) and open one closed cleanly.
	WAL bool `koanf:"wal"`
	// WALCheckpointBytes starts a checkpoint once the writes not yet in the
	// database hold this many bytes; it bounds the memory they take (which
	// is at most about four times this while a slow checkpoint runs, after
	// which Writes wait for it) and the log replayed at start-up.
	WALCheckpointBytes int64 `koanf:"wal_checkpoint_bytes"`
	// WALCheckpointInterval starts a checkpoint once the oldest write not
	// yet in the database is this old, so a quiet store does not keep its
	// recent writes only in the log.
	WALCheckpointInterval time.Duration `koanf:"wal_checkpoint_interval"`
	// OpenTimeout bounds the wait for the file lock held by another process.
	OpenTimeout time.Duration `koanf:"open_timeout"`
	// InitialMmapSize is the initial memory map size in bytes; a map large
	// enough for the whole file avoids remapping (which blocks writers while
	// read transactions drain). Zero lets bolt choose.
	InitialMmapSize int `koanf:"initial_mmap_size"`
	// RetainSnapshots is how many complete snapshots to keep on disk.
	RetainSnapshots int `koanf:"retain_snapshots"`
}

// DefaultConfig returns safe defaults: fsync on, the write-ahead log on
// with a checkpoint every 8 MiB or second, 1s lock timeout, two snapshots
// kept.
func DefaultConfig() *Config {
	return &Config{
		Sync:                  true,
		WAL:                   true,
		WALCheckpointBytes:    8 << 20,
		WALCheckpointInterval: time.Second,
		OpenTimeout:           time.Second,
		RetainSnapshots:       snapfile.DefaultRetain,
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
	// Checked with the log off too, so turning it on later cannot fail.
	if c.WALCheckpointBytes <= 0 {
		errs = append(errs, errors.New("storage.bolt: wal_checkpoint_bytes must be positive"))
	}
	if c.WALCheckpointInterval <= 0 {
		errs = append(errs, errors.New("storage.bolt: wal_checkpoint_interval must be positive"))
	}
	return errors.Join(errs...)
}

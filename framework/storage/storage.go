// Package storage is the durability contract. A storage plugin owns every
// durable byte of a server: the consensus log, the consensus hard state and
// other small state, and state-machine snapshots. Both consensus plugins
// (hashicorp/raft and etcd raft) run on it through thin adapters, so the
// contract is the union of what they need and nothing more.
package storage

import (
	"context"
	"errors"
	"io"

	"github.com/corral-dev/corral/framework/plugin"
)

// ErrNotFound is returned for a missing log entry, state key or snapshot.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("storage: closed")

// ErrCorrupt is wrapped by every error that reports stored bytes failing
// their checksum or format, so the server can refuse to serve rather than
// serve wrong data.
var ErrCorrupt = errors.New("storage: corrupt data")

// LogEntry is one consensus log record. Kind and Data are opaque to storage;
// each consensus adapter packs its library's entry type into them.
type LogEntry struct {
	Index uint64
	Term  uint64
	Kind  uint8
	Data  []byte
}

// Batch is one atomic, durable write. It is applied in this order: delete
// every entry with index >= TruncateFrom (when non-zero), append Entries
// (contiguous, and contiguous with what remains of the log), set State.
// A batch that breaks contiguity is rejected whole. An empty log accepts
// any first index (installing a snapshot leaves the log empty).
type Batch struct {
	TruncateFrom uint64
	Entries      []LogEntry
	State        map[string][]byte
}

// Store is the storage contract. Methods are safe for concurrent use.
// Write must not return before the batch is on stable storage when the
// store is configured to sync (the default); concurrent Writes may be
// group-committed into one sync.
type Store interface {
	// FirstIndex and LastIndex return the bounds of the log, 0 and 0 when it
	// is empty. After CompactPrefix(n), FirstIndex is n+1 (if entries remain)
	// or 0 (the log is empty).
	FirstIndex() (uint64, error)
	LastIndex() (uint64, error)
	// Entry returns one entry, or ErrNotFound.
	Entry(index uint64) (LogEntry, error)
	// Entries returns entries in [lo, hi), never more than maxBytes of Data
	// in total except that at least one entry is returned (etcd raft's
	// rule); 0 means no limit. A missing entry in the range is ErrNotFound.
	Entries(lo, hi uint64, maxBytes uint64) ([]LogEntry, error)
	// Write applies a batch atomically and durably. ctx bounds only the
	// wait to be queued; once queued, Write reports the commit's result.
	Write(ctx context.Context, b Batch) error
	// CompactPrefix removes every entry with index <= upTo.
	CompactPrefix(upTo uint64) error
	// State returns a small value written through a Batch, or ErrNotFound.
	State(key string) ([]byte, error)
	// Snapshots returns the snapshot store that lives beside the log.
	Snapshots() SnapshotStore
	// Close releases the store; a second Close is a no-op.
	Close() error
}

// SnapshotMeta describes a state-machine snapshot. Membership is opaque
// consensus metadata (a hashicorp/raft Configuration, an etcd ConfState)
// stored and returned as given.
type SnapshotMeta struct {
	ID              string
	Index           uint64
	Term            uint64
	Membership      []byte
	MembershipIndex uint64
	Size            int64
}

// SnapshotStore keeps state-machine snapshots. Snapshots are streamed in and
// out, never held whole in memory, and checksummed: Open's reader returns an
// error at EOF if the content does not match what was written.
type SnapshotStore interface {
	// Create starts a new snapshot; it becomes visible only when the sink
	// is closed successfully. The store assigns the ID (meta.ID is ignored).
	Create(meta SnapshotMeta) (SnapshotSink, error)
	// List returns complete snapshots, newest (highest index) first.
	List() ([]SnapshotMeta, error)
	// Open streams the snapshot with the given id.
	Open(id string) (SnapshotMeta, io.ReadCloser, error)
}

// SnapshotSink receives a snapshot's bytes. Close commits it durably and
// may prune older snapshots; Cancel discards it.
type SnapshotSink interface {
	io.Writer
	ID() string
	Close() error
	Cancel() error
}

// Sizer is an optional capability: bytes used on disk.
type Sizer interface {
	DiskSize() (int64, error)
}

// StateLister is an optional capability of a Store: the keys of every
// state value, sorted, so offline tools can show and check a store's state
// without knowing which consensus plugin wrote it.
type StateLister interface {
	StateKeys() ([]string, error)
}

// SnapshotChecker is an optional capability of a SnapshotStore: one error
// (wrapping ErrCorrupt and naming the snapshot) for each stored snapshot
// that List leaves out because it is damaged, so verification can report
// it rather than silently fall back to an older one.
type SnapshotChecker interface {
	Damaged() ([]error, error)
}

// Factory creates a Store from its config.
type Factory interface {
	plugin.Factory
	New(ctx context.Context, set plugin.Settings, cfg any) (Store, error)
}

// Package consensus is the replication contract. A consensus plugin orders
// opaque proposals into a log, makes them durable through the storage
// contract, and applies them, in order, to the framework's StateMachine on
// every member. The framework never sees a raft type.
package consensus

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

// Errors every plugin returns for these conditions (wrapping is fine).
var (
	// ErrNotLeader: this member cannot accept proposals; the caller may
	// forward to Leader().
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrUnknownOutcome: the proposal may or may not be applied later (for
	// example leadership was lost after it was appended).
	ErrUnknownOutcome = errors.New("consensus: outcome unknown")
	// ErrStopped: the replicator has shut down.
	ErrStopped = errors.New("consensus: stopped")
	// ErrNoQuorum: a read barrier or membership change could not reach a
	// majority in time.
	ErrNoQuorum = errors.New("consensus: no quorum")
)

// Entry is a committed proposal as handed to the state machine.
type Entry struct {
	Index uint64
	Term  uint64
	Data  []byte
}

// StateMachine is implemented by the framework. Apply is called from one
// goroutine, in log order, on every member, and must be deterministic.
type StateMachine interface {
	// Apply applies one committed entry.
	Apply(e Entry)
	// Snapshot captures the state as of the last applied entry. It must be
	// fast: the returned Snapshot is written out while Apply continues.
	Snapshot() (Snapshot, error)
	// Restore replaces all state with a snapshot's content.
	Restore(r io.Reader) error
	// AppliedIndex is the index of the last entry applied (or restored).
	AppliedIndex() uint64
}

// Snapshot is a point-in-time state that can be streamed out.
type Snapshot interface {
	WriteTo(w io.Writer) (int64, error)
	Release()
}

// Member is one server of the ensemble.
type Member struct {
	ID         uint64 `koanf:"id"`
	PeerAddr   string `koanf:"peer"`
	ClientAddr string `koanf:"client"`
	Voter      bool   `koanf:"voter"`
}

// Deps are what the framework hands a consensus plugin.
type Deps struct {
	StateMachine StateMachine
	Store        storage.Store
	// Members is the configured ensemble; it includes this node. Used to
	// bootstrap a new cluster; a restarted member uses its stored membership.
	Members []Member
	Logger  *slog.Logger
}

// Replicator is implemented by consensus plugins.
type Replicator interface {
	// Start recovers from storage, starts networking and returns; it does
	// not wait for a leader.
	Start(ctx context.Context) error
	// Propose replicates data and returns once it is committed and applied
	// locally. Any member accepts proposals: a follower forwards them to
	// the leader over the plugin's own peer transport and returns once the
	// entry is applied locally too. ErrNotLeader means no leader is known.
	Propose(ctx context.Context, data []byte) error
	// ReadBarrier returns once every entry committed before the call is
	// applied locally (linearizable reads, ZooKeeper sync). On a follower
	// it asks the leader for its commit index (after the leader confirms it
	// still leads) and waits until the local state machine reaches it.
	ReadBarrier(ctx context.Context) error
	// Leader returns the current leader's id (0 when unknown).
	Leader() uint64
	// IsLeader reports whether this member leads now.
	IsLeader() bool
	Shutdown(ctx context.Context) error
}

// LeaderObserver is an optional capability: a channel that receives the
// new value of IsLeader whenever it changes.
type LeaderObserver interface {
	LeaderChanges() <-chan bool
}

// Membership is an optional capability: run-time membership changes.
type Membership interface {
	Members(ctx context.Context) ([]Member, error)
	AddMember(ctx context.Context, m Member) error
	RemoveMember(ctx context.Context, id uint64) error
	TransferLeadership(ctx context.Context, to uint64) error
}

// Snapshotter is an optional capability: take a snapshot now and compact
// the log behind it.
type Snapshotter interface {
	SnapshotNow(ctx context.Context) error
}

// Factory creates a Replicator.
type Factory interface {
	plugin.Factory
	New(ctx context.Context, set plugin.Settings, cfg any, deps Deps) (Replicator, error)
}

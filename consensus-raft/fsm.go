package consensusraft

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
)

// fsm adapts the framework's StateMachine to raft.FSM (and BatchingFSM).
// Besides applying commands it tracks the index and term of the last entry
// raft handed to it, which ReadBarrier waits on: raft's own AppliedIndex
// moves when entries are queued for the FSM, not when they are applied.
type fsm struct {
	sm consensus.StateMachine

	mu      sync.Mutex
	index   uint64 // last entry applied (or covered by a restore or barrier)
	term    uint64 // its term; 0 when unknown (after a restore)
	waiters []applyWaiter
}

type applyWaiter struct {
	index uint64
	ch    chan struct{}
}

func newFSM(sm consensus.StateMachine) *fsm { return &fsm{sm: sm} }

// Apply is used when raft calls entries one at a time; raft prefers
// ApplyBatch, since fsm implements BatchingFSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type == raft.LogCommand {
		f.sm.Apply(consensus.Entry{Index: l.Index, Term: l.Term, Data: l.Data})
	}
	f.advance(l.Index, l.Term)
	return nil
}

// ApplyBatch applies up to MaxAppendEntries committed entries with one
// bookkeeping step. raft also passes configuration entries here; they are
// not the state machine's business.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			f.sm.Apply(consensus.Entry{Index: l.Index, Term: l.Term, Data: l.Data})
		}
	}
	if n := len(logs); n > 0 {
		f.advance(logs[n-1].Index, logs[n-1].Term)
	}
	return make([]any, len(logs))
}

// advance records that everything up to index has been applied.
func (f *fsm) advance(index, term uint64) {
	f.mu.Lock()
	if index > f.index {
		f.index, f.term = index, term
	}
	f.wakeLocked()
	f.mu.Unlock()
}

// set replaces the applied position after a restore.
func (f *fsm) set(index, term uint64) {
	f.mu.Lock()
	f.index, f.term = index, term
	f.wakeLocked()
	f.mu.Unlock()
}

func (f *fsm) wakeLocked() {
	if len(f.waiters) == 0 {
		return
	}
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.index <= f.index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// applied returns the last applied index and its term.
func (f *fsm) applied() (index, term uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.term
}

// waitApplied returns once index is applied, or with ctx's or stop's end.
func (f *fsm) waitApplied(ctx context.Context, index uint64, stop <-chan struct{}) error {
	f.mu.Lock()
	if f.index >= index {
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	f.waiters = append(f.waiters, applyWaiter{index, ch})
	f.mu.Unlock()
	var err error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = consensus.ErrStopped
	}
	f.mu.Lock()
	f.waiters = slices.DeleteFunc(f.waiters, func(w applyWaiter) bool { return w.ch == ch })
	f.mu.Unlock()
	return err
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot{s}, nil
}

// Restore replaces the state machine's state. raft closes rc afterwards.
func (f *fsm) Restore(rc io.ReadCloser) error {
	if err := f.sm.Restore(rc); err != nil {
		return err
	}
	// The storage reader verifies its checksum at EOF; read to the end in
	// case the state machine stopped before it, so a damaged snapshot is
	// reported (raft then tries an older one) rather than served.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return err
	}
	f.set(f.sm.AppliedIndex(), 0)
	return nil
}

// fsmSnapshot streams a state-machine snapshot into a raft sink; raft runs
// Persist concurrently with later Apply calls, which the StateMachine
// contract allows.
type fsmSnapshot struct{ s consensus.Snapshot }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { s.s.Release() }

var (
	_ raft.BatchingFSM = (*fsm)(nil)
	_ raft.FSMSnapshot = fsmSnapshot{}
)

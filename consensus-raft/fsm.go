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
// raft handed to it, which ReadBarrier and forwarded proposals wait on:
// raft's own AppliedIndex moves when entries are queued for the FSM, not
// when they are applied. raft hands it commands and configuration entries
// only (no-ops and barriers never reach an FSM), so index is always one of
// those, or a barrier's index recorded by the leader's own ReadBarrier.
type fsm struct {
	sm consensus.StateMachine

	mu      sync.Mutex
	index   uint64         // last entry applied (or covered by a restore or barrier)
	term    uint64         // its term; 0 when unknown (after a restore)
	waiters []*applyWaiter // sorted by index
	closed  error          // set by close: waiters fail with it
}

// applyWaiter is a callback for when index is applied.
type applyWaiter struct {
	index uint64
	fn    func(error)
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
	ready := f.readyLocked()
	f.mu.Unlock()
	for _, w := range ready {
		w.fn(nil)
	}
}

// set replaces the applied position after a restore.
func (f *fsm) set(index, term uint64) {
	f.mu.Lock()
	f.index, f.term = index, term
	ready := f.readyLocked()
	f.mu.Unlock()
	for _, w := range ready {
		w.fn(nil)
	}
}

// readyLocked removes and returns the waiters index has reached. They are
// a prefix of the sorted list, so this is cheap with many waiters.
func (f *fsm) readyLocked() []*applyWaiter {
	n := 0
	for n < len(f.waiters) && f.waiters[n].index <= f.index {
		n++
	}
	if n == 0 {
		return nil
	}
	ready := f.waiters[:n:n]
	f.waiters = f.waiters[n:]
	return ready
}

// applied returns the last applied index and its term.
func (f *fsm) applied() (index, term uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.term
}

// onApplied calls fn(nil) once index is applied, at once if it already is,
// or fn(err) when the fsm is closed first. fn runs on raft's FSM goroutine
// (or the caller's) and must not block. The result cancels the wait.
func (f *fsm) onApplied(index uint64, fn func(error)) *applyWaiter {
	f.mu.Lock()
	if err := f.closed; err != nil {
		f.mu.Unlock()
		fn(err)
		return nil
	}
	if index <= f.index {
		f.mu.Unlock()
		fn(nil)
		return nil
	}
	w := &applyWaiter{index, fn}
	// Waiters mostly arrive in index order: search from the end.
	i := len(f.waiters)
	for i > 0 && f.waiters[i-1].index > index {
		i--
	}
	f.waiters = slices.Insert(f.waiters, i, w)
	f.mu.Unlock()
	return w
}

// cancel drops a waiter that has not fired; its fn is not called.
func (f *fsm) cancel(w *applyWaiter) {
	if w == nil {
		return
	}
	f.mu.Lock()
	if i := slices.Index(f.waiters, w); i >= 0 {
		f.waiters = slices.Delete(f.waiters, i, i+1)
	}
	f.mu.Unlock()
}

// close fails every waiter, present and future, with err.
func (f *fsm) close(err error) {
	f.mu.Lock()
	if f.closed != nil {
		f.mu.Unlock()
		return
	}
	f.closed = err
	ws := f.waiters
	f.waiters = nil
	f.mu.Unlock()
	for _, w := range ws {
		w.fn(err)
	}
}

// waitApplied returns once index is applied, or with ctx's end or close.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	ch := make(chan error, 1)
	w := f.onApplied(index, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		f.cancel(w)
		return ctx.Err()
	}
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

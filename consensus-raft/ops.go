package consensusraft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
)

// running returns the raft instance, or ErrStopped before Start and after
// Shutdown.
func (r *Replicator) running() (*raft.Raft, error) {
	select {
	case <-r.stop:
		return nil, consensus.ErrStopped
	default:
	}
	ra := r.raft.Load()
	if ra == nil {
		return nil, fmt.Errorf("%w: not started", consensus.ErrStopped)
	}
	if ra.State() == raft.Shutdown {
		// raft stops by itself when a leader removes itself from the cluster.
		return nil, fmt.Errorf("%w: raft has shut down", consensus.ErrStopped)
	}
	return ra, nil
}

// enqueueTimeout turns ctx's deadline into raft's timeout for getting a
// request into its queue (0: no limit).
func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Nanosecond)
	}
	return 0
}

// futureResult waits for f in its own goroutine: raft futures cannot be
// selected on, and some are never answered once raft has shut down.
func futureResult(f raft.Future) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	return ch
}

// Propose replicates data and returns once it is applied locally. On a
// follower it is forwarded to the leader (through the same ordered queue
// as ProposeAsync) and returns once this member has applied it too.
func (r *Replicator) Propose(ctx context.Context, data []byte) error {
	ra, err := r.running()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// raft keeps the slice (in its log cache, to replicate to lagging
	// followers) after we return; the caller may reuse it.
	data = bytes.Clone(data)
	if ra.State() != raft.Leader {
		return r.fw.propose(ctx, data)
	}
	return r.awaitProposal(ctx, ra.Apply(data, enqueueTimeout(ctx)))
}

// awaitProposal waits for an apply future. Once the entry may be in the log
// every failure leaves the outcome unknown.
func (r *Replicator) awaitProposal(ctx context.Context, f raft.Future) error {
	select {
	case err := <-futureResult(f):
		return proposalErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", consensus.ErrUnknownOutcome, ctx.Err())
	case <-r.stop:
		return fmt.Errorf("%w: %w", consensus.ErrStopped, consensus.ErrUnknownOutcome)
	}
}

// proposalErr maps raft's answer to an apply onto the consensus errors.
func proposalErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		// raft refuses before appending: nothing was proposed.
		return consensus.ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Never queued, so never applied.
		return fmt.Errorf("%s: proposal not queued: %w", ID, context.DeadlineExceeded)
	case errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", consensus.ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		// Committed entries still queued for the FSM at shutdown are
		// answered this way too, so the outcome is not known.
		return fmt.Errorf("%w: %w", consensus.ErrStopped, consensus.ErrUnknownOutcome)
	}
	return fmt.Errorf("%w: %s: %w", consensus.ErrUnknownOutcome, ID, err)
}

// opErr maps raft's answer to a non-proposal request (barrier, membership,
// snapshot) onto the consensus errors.
func opErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", consensus.ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// A membership change appended before the loss may still commit.
		return fmt.Errorf("%w: %w", consensus.ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return consensus.ErrStopped
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", consensus.ErrNoQuorum, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", ID, err)
}

// awaitOp waits for a non-proposal future; running out of time means the
// majority did not answer.
func (r *Replicator) awaitOp(ctx context.Context, f raft.Future) error {
	select {
	case err := <-futureResult(f):
		return opErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", consensus.ErrNoQuorum, ctx.Err())
	case <-r.stop:
		return consensus.ErrStopped
	}
}

// ReadBarrier returns once everything committed before the call is applied
// here. It is a read-index barrier: note the leader's commit index, confirm
// leadership with a heartbeat round (VerifyLeader), then wait for the state
// machine to reach that index. That costs no log write and no disk sync,
// unlike raft.Barrier, which matters because ZooKeeper's sync is per client.
//
// The commit index is only trustworthy once this leader has applied an entry
// of its own term (before that it may lag what the previous leader
// committed), so until then the barrier falls back to raft.Barrier, which
// appends an entry and waits until it is applied. On a follower the leader
// does the same on its behalf (Replicator.readIndex) and the follower waits
// until it has applied the index the leader answered.
func (r *Replicator) ReadBarrier(ctx context.Context) error {
	ra, err := r.running()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if ra.State() != raft.Leader {
		return r.fw.readBarrier(ctx)
	}
	return r.leaderReadBarrier(ctx, ra)
}

// leaderReadBarrier is ReadBarrier on the leader. It waits for the last
// command at or below the commit index rather than the commit index itself:
// no-ops and barriers (the nudges of serve.go among them) never reach the
// state machine, so the applied index may stop short of them.
func (r *Replicator) leaderReadBarrier(ctx context.Context, ra *raft.Raft) error {
	term := ra.CurrentTerm()
	if _, appliedTerm := r.fsm.applied(); appliedTerm == term {
		// Only the leader of term makes entries of term, so having applied
		// one means we led this term and committed in it: CommitIndex now
		// covers everything committed before the call.
		commit := ra.CommitIndex()
		if err := r.awaitOp(ctx, ra.VerifyLeader()); err != nil {
			return err
		}
		// Still the same term, so we led it from before reading the commit
		// index until the heartbeat round confirmed it.
		if ra.CurrentTerm() == term {
			return r.fsm.waitApplied(ctx, r.lastCommandAtOrBelow(commit))
		}
	}
	_, err := r.barrier(ctx, ra)
	return err
}

// barrier runs raft.Barrier and records its index as applied: its future is
// answered by raft's FSM goroutine after everything before it was applied,
// though the barrier entry itself never reaches the FSM. It returns the
// barrier's index.
func (r *Replicator) barrier(ctx context.Context, ra *raft.Raft) (uint64, error) {
	term := ra.CurrentTerm()
	f := ra.Barrier(enqueueTimeout(ctx))
	type result struct {
		index uint64
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		err := f.Error()
		var index uint64
		if err == nil {
			if ixf, ok := f.(raft.IndexFuture); ok && ixf.Index() > 0 {
				index = ixf.Index()
				t := uint64(0) // unknown unless the term held throughout
				if ra.CurrentTerm() == term {
					t = term
				}
				r.fsm.advance(index, t)
			}
		}
		ch <- result{index, err}
	}()
	select {
	case res := <-ch:
		if errors.Is(res.err, raft.ErrLeadershipLost) {
			// A barrier has no outcome to be unsure about: it just failed.
			return 0, fmt.Errorf("%w: %w", consensus.ErrNotLeader, res.err)
		}
		return res.index, opErr(res.err)
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %w", consensus.ErrNoQuorum, ctx.Err())
	case <-r.stop:
		return 0, consensus.ErrStopped
	}
}

// Leader returns the current leader's member id, 0 when unknown.
func (r *Replicator) Leader() uint64 {
	ra := r.raft.Load()
	if ra == nil {
		return 0
	}
	_, id := ra.LeaderWithID()
	n, _ := memberID(id)
	return n
}

// IsLeader reports whether this member leads now.
func (r *Replicator) IsLeader() bool {
	ra := r.raft.Load()
	return ra != nil && ra.State() == raft.Leader
}

// LeaderChanges implements consensus.LeaderObserver. The channel holds the
// latest value only: a slow reader skips intermediate flips but always
// ends on the current state, and raft is never blocked by it.
func (r *Replicator) LeaderChanges() <-chan bool { return r.leaderCh }

// haltPoll is how often watchLeadership checks whether raft stopped by
// itself (a leader that removed itself shuts down); raft has no signal for
// it, and futures queued at that moment may never be answered.
const haltPoll = 100 * time.Millisecond

// watchLeadership forwards raft's leadership signal. raft's LeaderCh never
// blocks raft (it overwrites an unread value), and neither does publish.
// It also turns raft's leader observations (on every member) into wake-ups
// for whatever waits for a leader.
func (r *Replicator) watchLeadership(ra *raft.Raft, obs <-chan raft.Observation) {
	defer r.bg.Done()
	last := false
	tick := time.NewTicker(haltPoll)
	defer tick.Stop()
	for {
		select {
		case <-obs:
			r.noteLeaderChange()
		case <-tick.C:
			if ra.State() == raft.Shutdown {
				r.log.Warn("raft stopped by itself (this member was removed from the cluster)", "id", r.self.ID)
				r.halt()
			}
		case v := <-ra.LeaderCh():
			if v == last {
				continue
			}
			last = v
			if v {
				r.log.Info("became leader", "id", r.self.ID, "term", ra.CurrentTerm())
			} else {
				r.log.Info("lost leadership", "id", r.self.ID)
			}
			r.publish(v)
		case <-r.stop:
			if last {
				r.publish(false)
			}
			return
		}
	}
}

func (r *Replicator) publish(v bool) {
	for {
		select {
		case r.leaderCh <- v:
			return
		default:
		}
		select {
		case <-r.leaderCh: // drop the stale value
		default:
		}
	}
}

// ProposeAsync implements consensus.AsyncProposer. Every proposal goes
// through one ordered queue (forwarder.go): while this member leads, one
// goroutine hands them to raft in call order, so raft can batch them into
// one disk write and one replication round; otherwise they are forwarded to
// the leader, in call order, on one connection. done runs once each is
// applied here or has failed; a proposal not applied here within
// ForwardTimeout fails (ErrNotLeader if it never reached a leader,
// ErrUnknownOutcome if it did).
func (r *Replicator) ProposeAsync(data []byte, done func(error)) {
	// See Propose for the clone.
	if _, ok := r.fw.enqueue(bytes.Clone(data), done, r.cfg.ForwardTimeout); !ok {
		go done(consensus.ErrStopped)
	}
}

// Shutdown stops raft and its transport. It does not close the store,
// which belongs to the caller. Calling it twice, or before Start, is fine.
func (r *Replicator) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	ra, trans, mux := r.raft.Load(), r.trans, r.mux
	r.mu.Unlock()
	// Outside r.mu: it runs proposal callbacks.
	r.halt()
	if ra == nil {
		return nil
	}
	ra.DeregisterObserver(r.observer)
	select {
	case <-futureResult(ra.Shutdown()):
	case <-ctx.Done():
		return fmt.Errorf("%s: shutdown: %w", ID, ctx.Err())
	}
	// raft's shutdown future closes the transport, except when raft had
	// already stopped by itself; closing twice is harmless.
	trans.Close()
	mux.Close()
	r.bg.Wait()
	r.log.Info("raft stopped", "id", r.self.ID)
	return nil
}

// SnapshotNow implements consensus.Snapshotter: raft snapshots the state
// machine and compacts the log behind it, keeping TrailingLogs entries.
// Having nothing new to snapshot is not an error.
func (r *Replicator) SnapshotNow(ctx context.Context) error {
	ra, err := r.running()
	if err != nil {
		return err
	}
	select {
	case err := <-futureResult(ra.Snapshot()):
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil
		}
		return opErr(err)
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stop:
		return consensus.ErrStopped
	}
}

var (
	_ consensus.Factory        = factory{}
	_ consensus.Replicator     = (*Replicator)(nil)
	_ consensus.LeaderObserver = (*Replicator)(nil)
	_ consensus.Membership     = (*Replicator)(nil)
	_ consensus.Snapshotter    = (*Replicator)(nil)
	_ consensus.AsyncProposer  = (*Replicator)(nil)
)

package consensusraft

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
)

// This file is the follower's side of forwarding, and the ordered queue
// that every asynchronous proposal goes through, leader or not.
//
// Order. All proposals of a member go through one queue, drained by one
// goroutine (run). While this member leads, they go to raft.Apply in queue
// order; otherwise they go, in queue order, down one connection to the
// leader (a "stream"), whose reader calls raft.Apply in the order received.
// A stream is replaced only after every proposal on it has been answered
// (or given up after drainTimeout), and the leader refuses anything more
// from a stream once a newer one of the same member said hello, or once
// its own term changed. So if two proposals both commit, the one queued
// first commits first:
//   - on one stream, the leader appends in stream order;
//   - a proposal the leader refused was never appended and is resent on
//     the next stream only if everything after it on the old stream was
//     refused too (otherwise it fails with ErrNotLeader); a real refusal
//     (the member no longer leads) makes the next stream wait for another
//     leader, so the one resend is not spent on the same one;
//   - a proposal whose outcome is unknown can only commit through the log
//     of the leader it reached; a later leader (new stream, or this member
//     leading) was elected with every entry that can still commit from
//     earlier terms already in its log, below anything it appends.

// Proposal states; a call moves forward only, except sent → queued when it
// is resent.
const (
	callQueued   = iota
	callSent     // on a stream, or handed to raft here
	callApplying // the leader committed it; waiting for the local apply
	callDone
)

// maxSends is one send plus one resend after a refusal. A proposal the
// leader skipped without considering it (codeSkipped) is not counted.
const maxSends = 2

// drainTimeout bounds how long a replaced stream's unanswered proposals are
// waited for before they are given up as unknown. A live leader answers at
// once when it steps down; a dead one closes the connection; this covers a
// leader that vanished without closing it.
const drainTimeout = 250 * time.Millisecond

// retryDelay paces retries while no leader is known or reachable; leader
// changes wake the waiters sooner.
const retryDelay = 20 * time.Millisecond

type fwdCall struct {
	data    []byte
	done    func(error)
	timer   *time.Timer
	state   int
	sends   int
	outcome byte // answer on the current stream; codePending until one
}

// stream is one connection carrying this member's proposals to a leader.
type stream struct {
	addr       raft.ServerAddress
	conn       *fwdConn
	open       bool       // new proposals may be sent
	inflight   []*fwdCall // sent, oldest first; answered ones leave from the front
	unresolved int
	drainBy    time.Time
	refused    bool // the leader said it does not lead
}

// notAppended reports whether an answer guarantees nothing was appended.
func notAppended(code byte) bool { return code == codeRefused || code == codeSkipped }

type forwarder struct {
	r         *Replicator
	epochBase uint64

	mu     sync.Mutex
	queue  []*fwdCall
	stream *stream
	epochs uint64
	// After a refusal, no new stream goes to shunAddr before shunUntil
	// unless raft reports another leader first.
	shunAddr  raft.ServerAddress
	shunUntil time.Time
	closed    bool
	wake      chan struct{}

	// local answers proposals handed to raft while this member leads.
	local *applyPipe

	readMu     sync.Mutex
	readAddr   raft.ServerAddress
	readConns  []*fwdConn
	readNext   int
	readClosed bool
}

func newForwarder(r *Replicator) *forwarder {
	return &forwarder{
		r: r,
		// Epochs only need to grow across this member's streams; starting
		// from the clock keeps them growing across restarts too.
		epochBase: uint64(time.Now().UnixNano()),
		wake:      make(chan struct{}, 1),
		local:     newApplyPipe(),
	}
}

func (fw *forwarder) kick() {
	select {
	case fw.wake <- struct{}{}:
	default:
	}
}

// enqueue adds a proposal to the ordered queue; done runs once with its
// outcome. It reports false when the forwarder has shut down.
func (fw *forwarder) enqueue(data []byte, done func(error), timeout time.Duration) (*fwdCall, bool) {
	c := &fwdCall{data: data, done: done, outcome: codePending}
	fw.mu.Lock()
	if fw.closed {
		fw.mu.Unlock()
		return nil, false
	}
	fw.queue = append(fw.queue, c)
	c.timer = time.AfterFunc(timeout, func() { fw.expire(c, timeout) })
	fw.mu.Unlock()
	fw.kick()
	return c, true
}

// expire ends a call that ran out of time.
func (fw *forwarder) expire(c *fwdCall, timeout time.Duration) {
	fw.mu.Lock()
	var err error
	switch c.state {
	case callDone:
		fw.mu.Unlock()
		return
	case callQueued:
		err = fmt.Errorf("%w: no leader took the proposal within %s: %w", consensus.ErrNotLeader, timeout, context.DeadlineExceeded)
	default:
		err = fmt.Errorf("%w: forwarded proposal not applied here within %s: %w", consensus.ErrUnknownOutcome, timeout, context.DeadlineExceeded)
	}
	c.state = callDone
	fw.mu.Unlock()
	c.done(err)
}

// complete ends a call unless it already ended.
func (fw *forwarder) complete(c *fwdCall, err error) {
	fw.mu.Lock()
	if c.state == callDone {
		fw.mu.Unlock()
		return
	}
	c.state = callDone
	c.timer.Stop()
	fw.mu.Unlock()
	c.done(err)
}

// abandon ends a synchronous proposal whose context ended first.
func (fw *forwarder) abandon(c *fwdCall, ctxErr error, result <-chan error) error {
	fw.mu.Lock()
	state := c.state
	if state != callDone {
		c.state = callDone
		c.timer.Stop()
	}
	fw.mu.Unlock()
	switch state {
	case callDone:
		return <-result
	case callQueued:
		return fmt.Errorf("%s: proposal not sent: %w", ID, ctxErr)
	}
	return fmt.Errorf("%w: %w", consensus.ErrUnknownOutcome, ctxErr)
}

// propose is Propose on a member that does not lead.
func (fw *forwarder) propose(ctx context.Context, data []byte) error {
	timeout := fw.r.cfg.ForwardTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(d)), time.Nanosecond)
	}
	ch := make(chan error, 1)
	c, ok := fw.enqueue(data, func(err error) { ch <- err }, timeout)
	if !ok {
		return consensus.ErrStopped
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fw.abandon(c, ctx.Err(), ch)
	}
}

// run drains the queue; it is the only goroutine that sends proposals.
func (fw *forwarder) run() {
	defer fw.r.bg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-fw.wake:
		case <-timer.C:
		case <-fw.r.stop:
			return
		}
		if d := fw.step(); d > 0 {
			timer.Reset(d)
		}
	}
}

// step makes what progress it can and returns when to try again (0: only
// when woken).
func (fw *forwarder) step() time.Duration {
	ra := fw.r.raft.Load()
	if ra == nil {
		return retryDelay
	}
	addr, _ := ra.LeaderWithID()
	leading := ra.State() == raft.Leader
	now := time.Now()

	fw.mu.Lock()
	if fw.closed {
		fw.mu.Unlock()
		return 0
	}
	if st := fw.stream; st != nil {
		if st.open && (leading || addr != st.addr || st.conn.failed()) {
			st.open = false
		}
		if !st.open {
			if st.drainBy.IsZero() {
				st.drainBy = now.Add(drainTimeout)
			}
			if st.unresolved > 0 {
				if now.Before(st.drainBy) {
					fw.mu.Unlock()
					return st.drainBy.Sub(now)
				}
				// Closing answers the rest as lost, which wakes us again.
				fw.mu.Unlock()
				st.conn.close()
				return retryDelay
			}
			failed := fw.endStreamLocked(st)
			fw.mu.Unlock()
			st.conn.close()
			for _, c := range failed {
				fw.complete(c, fmt.Errorf("%w: refused by the leader at %s", consensus.ErrNotLeader, st.addr))
			}
			fw.mu.Lock()
			if fw.closed {
				fw.mu.Unlock()
				return 0
			}
		}
	}
	if len(fw.queue) == 0 {
		fw.mu.Unlock()
		return 0
	}
	switch {
	case leading:
		batch := fw.takeLocked()
		fw.mu.Unlock()
		for _, c := range batch {
			fw.local.push(ra.Apply(c.data, 0), nil, func(err error, _ uint64) { fw.complete(c, proposalErr(err)) })
		}
		return 0
	case addr != "":
		if fw.stream == nil && addr == fw.shunAddr && now.Before(fw.shunUntil) {
			fw.mu.Unlock()
			return fw.shunUntil.Sub(now)
		}
		if fw.stream == nil {
			fw.epochs++
			epoch := fw.epochBase + fw.epochs
			fw.mu.Unlock()
			conn, err := fw.dial(addr, epoch)
			if err != nil {
				fw.r.log.Debug("forwarding: cannot reach the leader", "leader", addr, "error", err)
				return retryDelay
			}
			fw.mu.Lock()
			if fw.closed {
				fw.mu.Unlock()
				conn.close()
				return 0
			}
			fw.stream = &stream{addr: addr, conn: conn, open: true}
		}
		fw.sendLocked(fw.stream)
		fw.mu.Unlock()
		return 0
	}
	fw.mu.Unlock()
	return retryDelay
}

// dial opens a forwarding connection to addr, giving up early if the
// leader changes or the member stops: a leader that vanished without a
// trace must not hold up forwarding to its successor.
func (fw *forwarder) dial(addr raft.ServerAddress, epoch uint64) (*fwdConn, error) {
	changed := fw.r.leaderChanged()
	if a, _ := fw.r.raft.Load().LeaderWithID(); a != addr {
		return nil, consensus.ErrNotLeader
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-changed:
		case <-fw.r.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	timeout := min(fw.r.cfg.TransportTimeout, fw.r.cfg.ForwardTimeout)
	return dialFwd(ctx, string(addr), fw.r.self.ID, epoch, timeout)
}

// takeLocked empties the queue for raft.Apply here, skipping calls that
// timed out. raft answers every apply (or shuts down, when the pipe is
// closed), so these no longer need their timers.
func (fw *forwarder) takeLocked() []*fwdCall {
	batch := make([]*fwdCall, 0, len(fw.queue))
	for _, c := range fw.queue {
		if c.state != callQueued {
			continue
		}
		c.state = callSent
		c.timer.Stop()
		batch = append(batch, c)
	}
	clear(fw.queue)
	fw.queue = fw.queue[:0]
	return batch
}

// sendLocked moves the queue onto st, in order.
func (fw *forwarder) sendLocked(st *stream) {
	if !st.open {
		return
	}
	q := fw.queue
	for i, c := range q {
		if c.state != callQueued {
			continue
		}
		ok := st.conn.send(kindPropose, c.data, func(code byte, index uint64) { fw.answered(st, c, code, index) })
		if !ok {
			// The connection died under us: keep the rest for the next stream.
			st.open = false
			n := copy(q, q[i:])
			clear(q[n:])
			fw.queue = q[:n]
			return
		}
		c.state = callSent
		c.sends++
		c.outcome = codePending
		st.inflight = append(st.inflight, c)
		st.unresolved++
	}
	clear(q)
	fw.queue = q[:0]
}

// answered handles the leader's answer to a proposal on st; it runs on the
// connection's reader goroutine.
func (fw *forwarder) answered(st *stream, c *fwdCall, code byte, index uint64) {
	fw.mu.Lock()
	c.outcome = code
	st.unresolved--
	applying, unknown := false, false
	switch code {
	case codeOK:
		if c.state == callSent {
			c.state = callApplying
			applying = true
		}
	case codeRefused, codeSkipped:
		// Resend or fail once the stream is done: see endStreamLocked.
		st.open = false
		if code == codeSkipped {
			c.sends--
		} else {
			st.refused = true
		}
	default:
		st.open = false
		unknown = true
	}
	// Answered proposals that can no longer be resent leave the window.
	n := 0
	for n < len(st.inflight) && st.inflight[n].outcome != codePending && !notAppended(st.inflight[n].outcome) {
		n++
	}
	if n > 0 {
		clear(st.inflight[:n])
		st.inflight = st.inflight[n:]
	}
	closed, wake := fw.closed, !st.open
	fw.mu.Unlock()

	switch {
	case applying:
		// The framework answers its client once the entry is applied here.
		fw.r.fsm.onApplied(index, func(err error) {
			if err != nil {
				err = fmt.Errorf("%w: committed at index %d but not applied here: %w", consensus.ErrStopped, index, err)
			}
			fw.complete(c, err)
		})
	case unknown && closed:
		fw.complete(c, fmt.Errorf("%w: %w", consensus.ErrStopped, consensus.ErrUnknownOutcome))
	case unknown:
		fw.complete(c, fmt.Errorf("%w: forwarded to the leader at %s, which did not confirm it", consensus.ErrUnknownOutcome, st.addr))
	}
	if wake {
		fw.kick()
	}
}

// endStreamLocked settles a stream whose proposals are all answered: the
// refused ones at its tail go back to the front of the queue, in order,
// for one more try; any other refused one fails (returned for the caller
// to complete after unlocking).
func (fw *forwarder) endStreamLocked(st *stream) (failed []*fwdCall) {
	tail := len(st.inflight)
	for tail > 0 && notAppended(st.inflight[tail-1].outcome) {
		tail--
	}
	var retry []*fwdCall
	for i, c := range st.inflight {
		if c.state == callDone || !notAppended(c.outcome) {
			continue
		}
		if i >= tail && c.sends < maxSends {
			c.state = callQueued
			c.outcome = codePending
			retry = append(retry, c)
		} else {
			failed = append(failed, c)
		}
	}
	if len(retry) > 0 {
		fw.queue = append(retry, fw.queue...)
	}
	if st.refused {
		// Bounded, in case raft keeps naming it while it refuses.
		fw.shunAddr, fw.shunUntil = st.addr, time.Now().Add(drainTimeout)
	}
	st.inflight = nil
	fw.stream = nil
	return failed
}

// shutdown fails everything queued or in flight; later calls are refused.
func (fw *forwarder) shutdown() {
	fw.mu.Lock()
	if fw.closed {
		fw.mu.Unlock()
		return
	}
	fw.closed = true
	queued := fw.queue
	fw.queue = nil
	st := fw.stream
	fw.stream = nil
	fw.mu.Unlock()

	stopped := consensus.ErrStopped
	for _, c := range queued {
		fw.complete(c, stopped)
	}
	if st != nil {
		st.conn.close()
		fw.mu.Lock()
		var refused []*fwdCall
		for _, c := range st.inflight {
			if c.state == callSent {
				refused = append(refused, c)
			}
		}
		fw.mu.Unlock()
		for _, c := range refused {
			fw.complete(c, stopped)
		}
	}
	fw.local.close(raft.ErrRaftShutdown)

	fw.readMu.Lock()
	fw.readClosed = true
	conns := fw.readConns
	fw.readConns = nil
	fw.readMu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// readConn returns a connection to addr for read barriers, round-robin
// over the pool, dialing as needed (outside the lock, so one slow dial
// does not hold up barriers that have a connection).
func (fw *forwarder) readConn(ctx context.Context, addr raft.ServerAddress) (*fwdConn, error) {
	fw.readMu.Lock()
	if fw.readClosed {
		fw.readMu.Unlock()
		return nil, consensus.ErrStopped
	}
	var stale []*fwdConn
	if fw.readAddr != addr {
		stale = fw.readConns
		fw.readConns = make([]*fwdConn, fw.r.cfg.ForwardReadConns)
		fw.readAddr = addr
	}
	i := fw.readNext % len(fw.readConns)
	fw.readNext++
	c := fw.readConns[i]
	fw.readMu.Unlock()
	for _, old := range stale {
		if old != nil {
			old.close()
		}
	}
	if c != nil && !c.failed() {
		return c, nil
	}
	timeout := min(fw.r.cfg.TransportTimeout, fw.r.cfg.ForwardTimeout)
	c, err := dialFwd(ctx, string(addr), fw.r.self.ID, 0, timeout)
	if err != nil {
		return nil, err
	}
	fw.readMu.Lock()
	defer fw.readMu.Unlock()
	switch cur := fw.readConns[i]; {
	case fw.readClosed || fw.readAddr != addr:
		c.close()
		return nil, consensus.ErrNotLeader
	case cur != nil && !cur.failed():
		c.close() // another barrier dialed the slot first
		return cur, nil
	}
	fw.readConns[i] = c
	return c, nil
}

type readAnswer struct {
	code  byte
	index uint64
}

// readBarrier is ReadBarrier on a member that does not lead: ask the leader
// for its read index and wait until this member has applied it.
func (fw *forwarder) readBarrier(ctx context.Context) error {
	r := fw.r
	deadline := time.Now().Add(r.cfg.ForwardTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	sawLeader := false
	var last error
	for {
		changed := r.leaderChanged()
		ra, err := r.running()
		if err != nil {
			return err
		}
		if ra.State() == raft.Leader {
			return r.leaderReadBarrier(ctx, ra)
		}
		if addr, _ := ra.LeaderWithID(); addr != "" {
			sawLeader = true
			index, err := fw.readIndex(ctx, addr, ra, changed)
			if err == nil {
				if err := r.fsm.waitApplied(ctx, index); err != nil {
					return fw.readErr(ctx, err, true)
				}
				return nil
			}
			last = err
		}
		wait := time.NewTimer(retryDelay)
		select {
		case <-changed:
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			if last != nil && ctx.Err() == context.DeadlineExceeded {
				r.log.Debug("forwarded read barrier failed", "error", last)
			}
			return fw.readErr(ctx, ctx.Err(), sawLeader)
		}
		wait.Stop()
	}
}

// readErr explains a read barrier that ran out of time: no leader known
// is ErrNotLeader, a leader that did not confirm in time is ErrNoQuorum; a
// cancelled caller gets its own context error.
func (fw *forwarder) readErr(ctx context.Context, err error, sawLeader bool) error {
	if ctx.Err() != context.DeadlineExceeded {
		return err
	}
	if !sawLeader {
		return fmt.Errorf("%w: no leader within the forward timeout: %w", consensus.ErrNotLeader, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: forwarded read barrier: %w", consensus.ErrNoQuorum, context.DeadlineExceeded)
}

// readIndex asks the leader at addr for its read index once.
func (fw *forwarder) readIndex(ctx context.Context, addr raft.ServerAddress, ra *raft.Raft, changed <-chan struct{}) (uint64, error) {
	conn, err := fw.readConn(ctx, addr)
	if err != nil {
		return 0, err
	}
	ch := make(chan readAnswer, 1)
	// Our commit index tells the leader whether we already know the
	// answer is committed or need a nudge (see Replicator.nudge).
	payload := binary.BigEndian.AppendUint64(nil, ra.CommitIndex())
	if !conn.send(kindReadIndex, payload, func(code byte, index uint64) { ch <- readAnswer{code, index} }) {
		return 0, errConnClosed
	}
	select {
	case a := <-ch:
		switch a.code {
		case codeOK:
			return a.index, nil
		case codeNoQuorum:
			return 0, consensus.ErrNoQuorum
		case codeLost:
			return 0, errConnClosed
		}
		return 0, consensus.ErrNotLeader
	case <-changed:
		// The answer, if it comes, is dropped: ask the new leader.
		return 0, consensus.ErrNotLeader
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

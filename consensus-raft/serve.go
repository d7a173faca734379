package consensusraft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
)

// This file is the leader's side of forwarding: it serves connections that
// followers open to the leader's peer port.

// errRefused and errSkipped mark forwarded proposals turned away before
// raft.Apply: by a member that does not lead, or on a stream that may no
// longer append (see fwdSession.poisoned and lane).
var (
	errRefused = errors.New("refused before appending")
	errSkipped = errors.New("skipped: the stream may no longer append")
)

// lane orders one member's proposal streams. A follower opens a new stream
// (with a higher epoch) only after giving up on the previous one; once the
// new one said hello, the old one cannot append anything more, so frames
// still buffered on a connection the follower abandoned never overtake the
// follower's later proposals.
type lane struct {
	mu    sync.Mutex // held across the epoch check and raft.Apply
	epoch uint64
}

type lanes struct {
	mu sync.Mutex
	m  map[uint64]*lane
}

// claim registers a stream with epoch for member and returns its lane.
func (ls *lanes) claim(member, epoch uint64) *lane {
	ls.mu.Lock()
	l := ls.m[member]
	if l == nil {
		if ls.m == nil {
			ls.m = map[uint64]*lane{}
		}
		l = &lane{}
		ls.m[member] = l
	}
	ls.mu.Unlock()
	l.mu.Lock()
	l.epoch = max(l.epoch, epoch)
	l.mu.Unlock()
	return l
}

// serveForward serves one forwarding connection until it closes. It runs
// on the peer mux's goroutine for the connection, which is the reader.
func (r *Replicator) serveForward(conn net.Conn) {
	var hello [helloLen]byte
	_ = conn.SetReadDeadline(time.Now().Add(r.cfg.TransportTimeout))
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if hello[0] != fwdVersion {
		r.log.Warn("forwarding: unsupported protocol version", "version", hello[0], "remote", conn.RemoteAddr().String())
		return
	}
	member := binary.BigEndian.Uint64(hello[1:])
	epoch := binary.BigEndian.Uint64(hello[9:])
	s := &fwdSession{r: r, epoch: epoch}
	if epoch != 0 {
		s.lane = r.lanes.claim(member, epoch)
	}
	s.w = newFrameWriter(conn, r.cfg.TransportTimeout, func(error) { conn.Close() })
	s.pipe = newApplyPipe()
	go s.w.run()
	go s.pipe.run()
	defer func() {
		s.w.stop()
		// Nobody can receive the answers any more.
		s.pipe.close(errConnClosed)
	}()

	br := bufio.NewReaderSize(conn, 64<<10)
	var hdr [reqHeaderLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		kind := hdr[0]
		id := binary.BigEndian.Uint64(hdr[1:])
		n := binary.BigEndian.Uint32(hdr[9:])
		switch {
		case kind == kindPropose && s.lane != nil && n <= maxFwdPayload:
			// raft keeps the slice, so each proposal gets its own.
			data := make([]byte, n)
			if _, err := io.ReadFull(br, data); err != nil {
				return
			}
			s.propose(id, data)
		case kind == kindReadIndex && n == 8:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			r.reads.add(binary.BigEndian.Uint64(b[:]), func(code byte, index uint64) { s.answer(id, code, index) })
		case isMemberKind(kind) && n <= maxMemberPayload:
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			req, err := decodeMemberReq(kind, b)
			if err != nil {
				r.log.Warn("forwarding: malformed membership request, closing the connection",
					"error", err, "remote", conn.RemoteAddr().String())
				return
			}
			// Membership changes wait for a commit: off the reader, so
			// barriers on the same connection are not held up. They are
			// rare, and each ends within its timeout or at shutdown.
			go func() {
				code, index, msg := r.serveMembership(req)
				if code == codeOK {
					s.answer(id, code, index)
				} else {
					s.w.add(func(b []byte) []byte { return appendDetailResponse(b, id, code, msg) })
				}
			}()
		default:
			r.log.Warn("forwarding: malformed request, closing the connection",
				"kind", kind, "length", n, "remote", conn.RemoteAddr().String())
			return
		}
	}
}

// fwdSession is the leader's state for one forwarding connection.
type fwdSession struct {
	r     *Replicator
	epoch uint64
	lane  *lane
	w     *frameWriter
	pipe  *applyPipe
	// poisoned is set by the first proposal that did not succeed: every
	// later one on this stream is refused, so what the stream appended is
	// a prefix of what it carried and the follower can safely resend the
	// refused tail elsewhere.
	poisoned atomic.Bool
	// term is the leader's term when the stream first appended: a stream
	// never appends in a later term (the follower will have moved on to a
	// new stream if this member lost leadership in between).
	term uint64
}

func (s *fwdSession) answer(id uint64, code byte, index uint64) {
	s.w.add(func(b []byte) []byte { return appendResponse(b, id, code, index) })
}

func (s *fwdSession) propose(id uint64, data []byte) {
	cb := func(err error, index uint64) {
		code := forwardCode(err)
		if code == codeOK {
			// The follower waits to apply it, so it must hear of the commit.
			s.r.nudge()
		} else {
			s.poisoned.Store(true)
		}
		s.answer(id, code, index)
	}
	if s.poisoned.Load() {
		s.pipe.push(nil, errSkipped, cb)
		return
	}
	s.lane.mu.Lock()
	defer s.lane.mu.Unlock()
	ra, err := s.r.running()
	switch {
	case s.lane.epoch != s.epoch:
		s.pipe.push(nil, errSkipped, cb)
	case err != nil, ra.State() != raft.Leader:
		s.pipe.push(nil, errRefused, cb)
	case s.term != 0 && ra.CurrentTerm() != s.term:
		s.pipe.push(nil, errSkipped, cb)
	default:
		if s.term == 0 {
			s.term = ra.CurrentTerm()
		}
		s.pipe.push(ra.Apply(data, 0), nil, cb)
	}
}

// forwardCode maps raft's answer to an apply onto a response code.
func forwardCode(err error) byte {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, errSkipped):
		return codeSkipped
	case errors.Is(err, errRefused),
		errors.Is(err, raft.ErrNotLeader),                    // raft drains its queue with this: never appended
		errors.Is(err, raft.ErrLeadershipTransferInProgress): // refused before dispatch
		return codeRefused
	}
	return codeUnknown
}

// applyPipe answers raft apply futures in the order they were created, from
// one goroutine, instead of a goroutine per future. Entries from one caller
// are applied in log order, so waiting for them in sequence costs nothing.
type applyPipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []pipeItem
	closed bool
	err    error // what close answered with; later pushes get it too
}

type pipeItem struct {
	f   raft.ApplyFuture // nil: already answered with err
	err error
	fn  func(err error, index uint64)
}

func newApplyPipe() *applyPipe {
	p := &applyPipe{}
	p.cond.L = &p.mu
	return p
}

// push queues f (or a ready answer err when f is nil); fn runs once, on the
// pipe's goroutine or in close, and must not block.
func (p *applyPipe) push(f raft.ApplyFuture, err error, fn func(error, uint64)) {
	p.mu.Lock()
	if p.closed {
		err := p.err
		p.mu.Unlock()
		fn(err, 0)
		return
	}
	p.q = append(p.q, pipeItem{f, err, fn})
	p.cond.Signal()
	p.mu.Unlock()
}

// run answers futures in order until close. The head stays queued while it
// is waited on, so close can answer it if raft never does (raft leaves some
// futures unanswered when it shuts down; this goroutine then stays blocked
// on that future, which only happens on the way out of the process).
func (p *applyPipe) run() {
	for {
		p.mu.Lock()
		for len(p.q) == 0 && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		it := p.q[0]
		p.mu.Unlock()
		err, index := it.err, uint64(0)
		if it.f != nil {
			if err = it.f.Error(); err == nil {
				index = it.f.Index()
			}
		}
		p.mu.Lock()
		if p.closed { // close answered it
			p.mu.Unlock()
			return
		}
		p.q[0] = pipeItem{}
		p.q = p.q[1:]
		p.mu.Unlock()
		it.fn(err, index)
	}
}

// close answers everything still queued with err and stops run.
func (p *applyPipe) close(err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.err = err
	q := p.q
	p.q = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, it := range q {
		it.fn(err, 0)
	}
}

// readIndexer serves followers' read barriers in rounds: every request
// that arrives while a round runs joins the next one, so one heartbeat
// round confirms leadership for all of them.
type readIndexer struct {
	r      *Replicator
	mu     sync.Mutex
	q      []readReq
	closed bool
	wake   chan struct{}
}

type readReq struct {
	commit uint64 // the follower's commit index when it asked
	cb     func(code byte, index uint64)
}

func (ri *readIndexer) add(commit uint64, cb func(byte, uint64)) {
	ri.mu.Lock()
	if ri.closed {
		ri.mu.Unlock()
		cb(codeRefused, 0)
		return
	}
	ri.q = append(ri.q, readReq{commit, cb})
	ri.mu.Unlock()
	select {
	case ri.wake <- struct{}{}:
	default:
	}
}

func (ri *readIndexer) take() []readReq {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	q := ri.q
	ri.q = nil
	return q
}

func (ri *readIndexer) run() {
	r := ri.r
	defer r.bg.Done()
	for {
		select {
		case <-ri.wake:
		case <-r.stop:
			ri.mu.Lock()
			ri.closed = true
			ri.mu.Unlock()
			for _, req := range ri.take() {
				req.cb(codeRefused, 0)
			}
			return
		}
		batch := ri.take()
		if len(batch) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ForwardTimeout)
		index, err := r.readIndex(ctx)
		cancel()
		code := codeOK
		switch {
		case err == nil:
		case errors.Is(err, consensus.ErrNoQuorum):
			code = codeNoQuorum
		default:
			code = codeRefused
		}
		nudge := false
		for _, req := range batch {
			nudge = nudge || (code == codeOK && req.commit < index)
			req.cb(code, index)
		}
		if nudge {
			r.nudge()
		}
	}
}

// readIndex is the leader's half of a follower's read barrier: the index
// of the last command committed before the call, once leadership is
// confirmed. It is a command's index because only commands (and
// configuration entries) reach a follower's state machine, which is what
// the follower waits on; the leader's commit index may be a no-op's.
func (r *Replicator) readIndex(ctx context.Context) (uint64, error) {
	ra, err := r.running()
	if err != nil {
		return 0, err
	}
	if ra.State() != raft.Leader {
		return 0, consensus.ErrNotLeader
	}
	term := ra.CurrentTerm()
	if _, appliedTerm := r.fsm.applied(); appliedTerm == term {
		// See ReadBarrier for why the commit index is trustworthy here.
		commit := ra.CommitIndex()
		if err := r.awaitOp(ctx, ra.VerifyLeader()); err != nil {
			return 0, err
		}
		if ra.CurrentTerm() == term {
			return r.lastCommandAtOrBelow(commit), nil
		}
	}
	index, err := r.barrier(ctx, ra)
	if err != nil {
		return 0, err
	}
	return r.lastCommandAtOrBelow(index), nil
}

// maxCommandScan bounds the walk back over non-command entries (no-ops,
// barriers, configuration changes). Runs of them are short: one no-op per
// term, one read-barrier fallback before the term's first apply, and
// nudges, which follow a command's commit or a lagging follower's read
// index, so at most a few between commands.
const maxCommandScan = 1 << 16

// lastCommandAtOrBelow returns the index of the last command entry at or
// below index. When the walk reaches the compacted part of the log, every
// command it is looking for is in a snapshot this leader's state machine
// already holds, so the state machine's applied index is a safe answer
// (perhaps a little higher than needed, never lower). The walk's bound is
// a safeguard never reached in practice; it falls back to the same answer.
func (r *Replicator) lastCommandAtOrBelow(index uint64) uint64 {
	var l raft.Log
	for i := index; i > 0 && index-i < maxCommandScan; i-- {
		if err := r.logs.GetLog(i, &l); err != nil {
			break
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return r.deps.StateMachine.AppliedIndex()
}

// nudge asks the leader to make sure followers learn the current commit
// index soon. hashicorp/raft tells followers about a commit only with the
// next AppendEntries, which is sent for a new entry or after CommitTimeout
// (50-100 ms by default); a follower waiting to apply a forwarded proposal
// or a read index would wait that long on an idle cluster.
func (r *Replicator) nudge() {
	select {
	case r.nudgeCh <- struct{}{}:
	default:
	}
}

// nudgeLoop serves nudges by appending a barrier: the AppendEntries that
// carries it also carries the commit index. One barrier is in flight at a
// time and nudges arriving meanwhile coalesce into the next one, so under
// load this adds at most one small entry per replication round, written in
// the same batch as the commands; on an idle cluster it adds one per
// forwarded write (or read index that needed it).
func (r *Replicator) nudgeLoop(ra *raft.Raft) {
	defer r.bg.Done()
	for {
		select {
		case <-r.nudgeCh:
		case <-r.stop:
			return
		}
		if ra.State() != raft.Leader {
			continue
		}
		select {
		case <-futureResult(ra.Barrier(0)):
		case <-r.stop:
			return
		}
	}
}

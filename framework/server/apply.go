package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sort"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/tree"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// sessionInfo is the replicated part of a session.
type sessionInfo struct {
	ID        int64
	TimeoutMs int32
	Password  []byte
}

// pending is a local request waiting for its transaction to be applied.
type pending struct {
	a  *attachment // nil for server-internal proposals
	it *item
	// onApplied, when set, is called (under applyMu) with the result
	// instead of answering a client.
	onApplied func(code zkerr.Code)
}

func (s *Server) addPending(p *pending) uint64 {
	seq := s.seq.Add(1)
	s.pendMu.Lock()
	s.pending[seq] = p
	s.pendMu.Unlock()
	return seq
}

func (s *Server) takePending(seq uint64) *pending {
	s.pendMu.Lock()
	p := s.pending[seq]
	delete(s.pending, seq)
	s.pendMu.Unlock()
	return p
}

// Apply implements consensus.StateMachine. Every member runs it for every
// committed entry in log order; each transaction takes the next zxid,
// including writes that fail, as in ZooKeeper.
func (s *Server) Apply(e consensus.Entry) {
	t, err := txn.Decode(e.Data)
	s.sinceSnapshot.Add(int64(len(e.Data)))
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.appliedIndex.Store(e.Index)
	if err != nil {
		// Every member decodes the same bytes the same way, so skipping is
		// deterministic; it still consumes a zxid to stay in step.
		s.lastZxid.Add(1)
		s.log.Error("undecodable transaction skipped", "index", e.Index, "err", err)
		return
	}
	if t.Kind == txn.Touch {
		// Liveness is local knowledge, not replicated state: each member
		// notes when it heard the report. Touches take no zxid, like pings.
		now := nowMs()
		for _, id := range t.Sessions {
			if ls := s.live.get(id); ls != nil {
				ls.lastSeen.Store(now)
			}
		}
		return
	}
	zxid := s.lastZxid.Add(1)
	ctx := tree.Ctx{Zxid: zxid, Time: t.Time, Session: t.Session, Auth: tree.Auth{IDs: t.Auth, Super: t.Super}}

	var (
		resp   op.Response
		events []op.WatchEvent
		code   = zkerr.OK
	)
	switch t.Kind {
	case txn.Request:
		if s.sessionKnown(t.Session) || t.Session == 0 {
			var err error
			resp, events, err = s.tree.Apply(ctx, t.Req)
			code = zkerr.CodeOf(err)
		} else {
			code = zkerr.SessionExpired
		}
	case txn.CreateSession:
		s.sessMu.Lock()
		s.sessions[t.Session] = &sessionInfo{ID: t.Session, TimeoutMs: t.TimeoutMs, Password: t.Password}
		s.sessMu.Unlock()
		s.live.touch(t.Session, t.TimeoutMs, nowMs())
	case txn.CloseSession:
		if s.sessionKnown(t.Session) {
			events = s.tree.CloseSession(ctx, t.Session)
			s.sessMu.Lock()
			delete(s.sessions, t.Session)
			s.sessMu.Unlock()
		}
		s.live.remove(t.Session)
	case txn.SetConfig:
		events = s.tree.SetSystemData(ctx, configPath, withVersion(string(t.Data), zxid))
	case txn.Noop:
	default:
		s.log.Error("unknown transaction kind", "kind", t.Kind, "index", e.Index)
	}
	s.watches.Trigger(events)
	s.stats.commits.Add(1)

	if t.Origin == s.cfg.NodeID && t.Seq != 0 {
		if p := s.takePending(t.Seq); p != nil {
			if p.onApplied != nil {
				p.onApplied(code)
			}
			if p.a != nil {
				p.a.complete(p.it, zxid, code, resp)
			}
		}
	}
	if t.Kind == txn.CloseSession {
		// The session is gone: its connection (if here) closes after any
		// reply already queued.
		s.connMu.Lock()
		a := s.attached[t.Session]
		delete(s.attached, t.Session)
		s.connMu.Unlock()
		if a != nil {
			a.serverClose()
		}
	}
}

func (s *Server) sessionKnown(id int64) bool {
	s.sessMu.RLock()
	_, ok := s.sessions[id]
	s.sessMu.RUnlock()
	return ok
}

func (s *Server) session(id int64) *sessionInfo {
	s.sessMu.RLock()
	defer s.sessMu.RUnlock()
	return s.sessions[id]
}

func (s *Server) sessionIDs() []int64 {
	s.sessMu.RLock()
	defer s.sessMu.RUnlock()
	ids := make([]int64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// AppliedIndex implements consensus.StateMachine.
func (s *Server) AppliedIndex() uint64 { return s.appliedIndex.Load() }

const (
	snapMagic   = "CORRALSM"
	snapVersion = 1
)

type smSnapshot struct {
	zxid     int64
	index    uint64
	sessions []sessionInfo
	tree     *tree.Snapshot
}

// Snapshot implements consensus.StateMachine. The tree snapshot is O(1)
// (the tree is persistent); only the small session table is copied.
func (s *Server) Snapshot() (consensus.Snapshot, error) {
	s.applyMu.RLock()
	defer s.applyMu.RUnlock()
	snap := &smSnapshot{zxid: s.lastZxid.Load(), index: s.appliedIndex.Load(), tree: s.tree.Snapshot()}
	s.sinceSnapshot.Store(0)
	s.sessMu.RLock()
	for _, si := range s.sessions {
		snap.sessions = append(snap.sessions, *si)
	}
	s.sessMu.RUnlock()
	sort.Slice(snap.sessions, func(i, j int) bool { return snap.sessions[i].ID < snap.sessions[j].ID })
	return snap, nil
}

// politeWriter yields the processor after every chunk. A snapshot stream
// is long CPU-bound work; without yielding it keeps a processor for whole
// scheduler slices while request goroutines wait behind it, which is what
// raises write latency during a snapshot on a small machine.
type politeWriter struct{ w io.Writer }

func (p politeWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	runtime.Gosched()
	return n, err
}

func (sn *smSnapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(politeWriter{w}, 32<<10)
	var hdr []byte
	hdr = append(hdr, snapMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, snapVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(sn.zxid))
	hdr = binary.BigEndian.AppendUint64(hdr, sn.index)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(sn.sessions)))
	for _, si := range sn.sessions {
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(si.ID))
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(si.TimeoutMs))
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(si.Password)))
		hdr = append(hdr, si.Password...)
	}
	n, err := bw.Write(hdr)
	total := int64(n)
	if err != nil {
		return total, err
	}
	m, err := sn.tree.WriteTo(bw)
	total += m
	if err != nil {
		return total, err
	}
	return total, bw.Flush()
}

func (sn *smSnapshot) Release() {}

// Restore implements consensus.StateMachine: all state is replaced.
func (s *Server) Restore(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	h, list, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	zxid, index := h.Zxid, h.Index
	sessions := make(map[int64]*sessionInfo, len(list))
	for i := range list {
		sessions[list[i].ID] = &list[i]
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.tree.Restore(br); err != nil {
		return fmt.Errorf("snapshot tree: %w", err)
	}
	s.sessMu.Lock()
	s.sessions = sessions
	s.sessMu.Unlock()
	s.lastZxid.Store(zxid)
	s.appliedIndex.Store(index)
	ids := make([]int64, 0, len(sessions))
	for id := range sessions {
		ids = append(ids, id)
	}
	s.live.resetAll(ids, nowMs())
	return nil
}

// authFor is the tree's view of a connection's identities.
func authFor(ids []znode.ID, super bool) tree.Auth { return tree.Auth{IDs: ids, Super: super} }

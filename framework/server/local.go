package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/zkerr"
)

// localSessions are sessions known to this server only: ZooKeeper's local
// sessions (no consensus round to create or close them) and the sessions
// of read-only mode. They own no ephemerals, so ending one changes no
// replicated state.
type localSessions struct {
	mu sync.Mutex
	m  map[int64]*localSession
}

type localSession struct {
	info     sessionInfo
	readOnly bool
}

func (l *localSessions) get(id int64) *localSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

func (l *localSessions) put(ls *localSession) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[int64]*localSession{}
	}
	l.m[ls.info.ID] = ls
	l.mu.Unlock()
}

func (l *localSessions) remove(id int64) {
	l.mu.Lock()
	delete(l.m, id)
	l.mu.Unlock()
}

func (l *localSessions) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

func (l *localSessions) ids() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, 0, len(l.m))
	for id := range l.m {
		out = append(out, id)
	}
	return out
}

// readOnly reports whether this member should serve in read-only mode: it
// is enabled and no leader is known (cut off from the majority).
func (s *Server) readOnly() bool {
	return s.cfg.ReadOnlyMode && s.repl.Leader() == 0
}

// connectLocal opens a local or read-only session, or resumes one that
// lives on this server. ok is false when the request is not for one.
func (s *Server) connectLocal(req protocol.ConnectRequest, timeout int32) (*localSession, bool, error) {
	if req.SessionID != 0 {
		ls := s.locals.get(req.SessionID)
		if ls == nil {
			return nil, false, nil
		}
		if !bytes.Equal(ls.info.Password, req.Password) {
			return nil, true, zkerr.ErrSessionExpired
		}
		if !ls.readOnly {
			ls.info.TimeoutMs = timeout
		}
		return ls, true, nil
	}
	ro := s.readOnly()
	switch {
	case ro && req.ReadOnly:
	case ro:
		// ZooKeeper closes a client that does not accept a read-only
		// server, so it tries another member.
		return nil, true, fmt.Errorf("this member is read-only (no leader) and the client does not accept that")
	case !s.cfg.LocalSessions:
		return nil, false, nil
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return nil, true, err
	}
	ls := &localSession{info: sessionInfo{ID: s.newSessionID(), TimeoutMs: timeout, Password: pw}, readOnly: ro}
	s.locals.put(ls)
	return ls, true, nil
}

// hasEphemeralCreate reports whether a write creates an ephemeral node.
func hasEphemeralCreate(req op.Request) bool {
	switch r := req.(type) {
	case *op.CreateRequest:
		return r.Mode.IsEphemeral()
	case *op.MultiRequest:
		for _, sub := range r.Ops {
			if hasEphemeralCreate(sub) {
				return true
			}
		}
	}
	return false
}

// localWrite handles a write from a local session before it is queued:
// read-only sessions get NOTREADONLY; an ephemeral create either upgrades
// the session to a global one or fails with EPHEMERALONLOCALSESSION. It
// reports whether the request was answered here.
func (a *attachment) localWrite(xid int32, req op.Request, kind itemKind) bool {
	s := a.s
	if a.readOnly && (kind == kindWrite || kind == kindSync || kind == kindReconfig) {
		a.reply(xid, s.lastZxid.Load(), zkerr.NotReadOnly, nil)
		return true
	}
	ls := a.local
	if ls == nil || (kind != kindWrite && kind != kindClose) {
		return false
	}
	if kind == kindClose {
		s.locals.remove(a.id)
		s.live.remove(a.id)
		a.reply(xid, s.lastZxid.Load(), zkerr.OK, &op.EmptyResponse{OpCode: op.CloseSession})
		a.serverClose()
		return true
	}
	if !hasEphemeralCreate(req) {
		return false
	}
	if !s.cfg.LocalSessionsUpgrading {
		a.reply(xid, s.lastZxid.Load(), zkerr.EphemeralOnLocalSession, nil)
		return true
	}
	// Upgrade: register the session ensemble-wide under the same id and
	// password, then let the write go through as a global session's.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ls.info.TimeoutMs)*time.Millisecond)
	err := s.proposeWait(ctx, &txn.Txn{Kind: txn.CreateSession, Time: nowMs(), Origin: s.cfg.NodeID,
		Seq: s.addPending(&pending{}), Session: a.id, TimeoutMs: ls.info.TimeoutMs, Password: ls.info.Password})
	cancel()
	if err != nil {
		s.log.Warn("upgrading a local session failed; closing connection", "session", fmt.Sprintf("0x%x", uint64(a.id)), "err", err)
		a.serverClose()
		return true
	}
	s.locals.remove(a.id)
	a.mu.Lock()
	a.local = nil
	a.mu.Unlock()
	return false
}

// expireLocal drops local sessions not heard from within their timeout;
// every member does this for its own.
func (s *Server) expireLocal(now int64) {
	for _, id := range s.locals.ids() {
		ls := s.live.get(id)
		if ls == nil {
			// Liveness was reset (leadership change): start afresh.
			if l := s.locals.get(id); l != nil {
				s.live.touch(id, l.info.TimeoutMs, now)
			}
			continue
		}
		if now-ls.lastSeen.Load() <= int64(ls.timeoutMs.Load()) {
			continue
		}
		s.locals.remove(id)
		s.live.remove(id)
		s.connMu.Lock()
		a := s.attached[id]
		delete(s.attached, id)
		s.connMu.Unlock()
		if a != nil {
			a.serverClose()
		}
	}
}

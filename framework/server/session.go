package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/watch"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// liveness is local knowledge of when each session was last heard from.
// Only the leader acts on it (expiry); every member keeps it so a new
// leader starts from fresh deadlines rather than expiring everyone.
type liveness struct {
	mu sync.Mutex
	m  map[int64]*liveSession
}

type liveSession struct {
	lastSeen  atomic.Int64
	timeoutMs atomic.Int32
	expiring  atomic.Bool
}

func (l *liveness) get(id int64) *liveSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

func (l *liveness) touch(id int64, timeoutMs int32, now int64) {
	l.mu.Lock()
	ls := l.m[id]
	if ls == nil {
		ls = &liveSession{}
		l.m[id] = ls
	}
	l.mu.Unlock()
	ls.lastSeen.Store(now)
	if timeoutMs > 0 {
		ls.timeoutMs.Store(timeoutMs)
	}
}

func (l *liveness) remove(id int64) {
	l.mu.Lock()
	delete(l.m, id)
	l.mu.Unlock()
}

// resetAll gives every known session a fresh deadline: used at start-up,
// after a restore and when this member becomes leader.
func (l *liveness) resetAll(ids []int64, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := make(map[int64]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
		ls := l.m[id]
		if ls == nil {
			ls = &liveSession{}
			l.m[id] = ls
		}
		ls.lastSeen.Store(now)
		ls.expiring.Store(false)
	}
	for id := range l.m {
		if !keep[id] {
			delete(l.m, id)
		}
	}
}

func (s *Server) negotiateTimeout(requested int32) int32 {
	minT := int32(s.cfg.MinSessionTimeout / time.Millisecond)
	maxT := int32(s.cfg.MaxSessionTimeout / time.Millisecond)
	if requested < minT {
		return minT
	}
	if requested > maxT {
		return maxT
	}
	return requested
}

// newSessionID follows ZooKeeper's layout: the server id in the top byte,
// creation time below it, then a counter, so ids are unique ensemble-wide.
func (s *Server) newSessionID() int64 {
	for {
		if s.nextSess.Load() == 0 {
			base := (time.Now().UnixMilli()<<24)>>8 | int64(s.cfg.NodeID&0xff)<<56
			s.nextSess.CompareAndSwap(0, base)
		}
		id := s.nextSess.Add(1)
		if id != 0 && !s.sessionKnown(id) {
			return id
		}
	}
}

var expiredResponse = protocol.ConnectResponse{TimeoutMs: 0, SessionID: 0, Password: make([]byte, 16)}

// Connect implements protocol.Backend.
func (s *Server) Connect(ctx context.Context, req protocol.ConnectRequest, conn protocol.Conn) (protocol.Session, protocol.ConnectResponse, error) {
	s.stats.connects.Add(1)
	if last := s.lastZxid.Load(); req.LastZxidSeen > last {
		// The client has seen newer state than we hold; it must try
		// another member (ZooKeeper's single-system-image rule).
		return nil, protocol.ConnectResponse{}, fmt.Errorf("client has seen zxid 0x%x, this server is at 0x%x", req.LastZxidSeen, last)
	}
	timeout := s.negotiateTimeout(req.TimeoutMs)
	if ls, ok, err := s.connectLocal(req, timeout); ok {
		if err == zkerr.ErrSessionExpired {
			return nil, expiredResponse, err
		}
		if err != nil {
			return nil, protocol.ConnectResponse{}, err
		}
		a := newAttachment(s, ls.info.ID, conn)
		a.local, a.readOnly = ls, ls.readOnly
		s.attach(a)
		s.live.touch(a.id, ls.info.TimeoutMs, nowMs())
		return a, protocol.ConnectResponse{TimeoutMs: ls.info.TimeoutMs, SessionID: a.id, Password: ls.info.Password, ReadOnly: a.readOnly}, nil
	}
	readOnly := s.readOnly()
	if readOnly && !req.ReadOnly {
		return nil, protocol.ConnectResponse{}, fmt.Errorf("this member is read-only (no leader) and the client does not accept that")
	}
	var id int64
	var pw []byte
	if req.SessionID == 0 {
		id = s.newSessionID()
		pw = make([]byte, 16)
		if _, err := rand.Read(pw); err != nil {
			return nil, protocol.ConnectResponse{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Millisecond)
		err := s.proposeWait(cctx, &txn.Txn{Kind: txn.CreateSession, Time: nowMs(), Origin: s.cfg.NodeID,
			Seq: s.addPending(&pending{}), Session: id, TimeoutMs: timeout, Password: pw})
		cancel()
		if err != nil {
			return nil, protocol.ConnectResponse{}, fmt.Errorf("create session: %w", err)
		}
	} else {
		si := s.session(req.SessionID)
		if si == nil || !bytes.Equal(si.Password, req.Password) {
			return nil, expiredResponse, zkerr.ErrSessionExpired
		}
		id, pw = si.ID, si.Password
	}
	a := newAttachment(s, id, conn)
	a.readOnly = readOnly
	s.attach(a)
	s.live.touch(id, timeout, nowMs())
	return a, protocol.ConnectResponse{TimeoutMs: timeout, SessionID: id, Password: pw, ReadOnly: readOnly}, nil
}

// attach makes a the session's connection; the newest connection owns the
// session, and an older one is closed (ZooKeeper's takeover).
func (s *Server) attach(a *attachment) {
	s.connMu.Lock()
	old := s.attached[a.id]
	s.attached[a.id] = a
	s.connMu.Unlock()
	if old != nil {
		s.log.Debug("session moved to a new connection", "session", fmt.Sprintf("0x%x", uint64(a.id)))
		old.serverClose()
	}
}

type itemKind uint8

const (
	kindRead itemKind = iota
	kindWrite
	kindSync
	kindClose
	kindReconfig
)

// item is one request in a session's FIFO.
type item struct {
	start time.Time
	xid   int32
	req   op.Request
	kind  itemKind
	done  bool
	zxid  int64
	code  zkerr.Code
	resp  op.Response
}

// attachment binds a session to one connection. It implements
// protocol.Session and is the watcher identity for that connection's
// watches (ZooKeeper's watches are per connection too).
type attachment struct {
	s       *Server
	id      int64
	conn    protocol.Conn
	created time.Time
	// readOnly: this connection was accepted in read-only mode.
	readOnly bool

	// local is set for a local session (nil once upgraded); guarded by mu.
	local *localSession

	mu     sync.Mutex
	queue  []*item
	auth   []znode.ID
	super  bool
	closed bool

	received atomic.Int64
	sent     atomic.Int64
	active   atomic.Bool  // heard from since the last touch report
	lastOp   atomic.Int32 // op.Code; formatted only when cons asks
	lastZxid atomic.Int64
}

func newAttachment(s *Server, id int64, conn protocol.Conn) *attachment {
	a := &attachment{s: s, id: id, conn: conn, created: time.Now()}
	if host := hostOf(conn.RemoteAddr()); host != "" {
		a.auth = []znode.ID{{Scheme: "ip", ID: host}}
	}
	return a
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return host
}

// ID implements protocol.Session.
func (a *attachment) ID() int64 { return a.id }

// Event implements watch.Watcher.
func (a *attachment) Event(ev op.WatchEvent) {
	a.sent.Add(1)
	a.conn.Event(ev)
}

func classify(req op.Request) itemKind {
	switch req.(type) {
	case *op.SyncRequest:
		return kindSync
	case *op.CloseSessionRequest:
		return kindClose
	case *op.ReconfigRequest:
		return kindReconfig
	}
	if req.Op().IsWrite() {
		return kindWrite
	}
	return kindRead
}

// Submit implements protocol.Session.
func (a *attachment) Submit(xid int32, req op.Request) {
	s := a.s
	s.stats.received.Add(1)
	a.received.Add(1)
	a.lastOp.Store(int32(req.Op()))
	a.active.Store(true)
	if ls := s.live.get(a.id); ls != nil {
		ls.lastSeen.Store(nowMs())
	}
	if _, lone := req.(*op.CheckRequest); lone {
		// check is only valid inside multi; ZooKeeper answers
		// UNIMPLEMENTED and drops the connection.
		a.reply(xid, s.lastZxid.Load(), zkerr.Unimplemented, nil)
		a.serverClose()
		return
	}
	if auth, ok := req.(*op.AuthRequest); ok {
		// Identities change now so that writes submitted after this
		// carry them; the reply keeps its place in the FIFO.
		if !a.addAuth(auth) {
			a.reply(xid, s.lastZxid.Load(), zkerr.AuthFailed, nil)
			a.serverClose()
			return
		}
	}
	kind := classify(req)
	if (a.readOnly || a.local != nil) && a.localWrite(xid, req, kind) {
		return
	}
	start := time.Now()

	s.applyMu.RLock()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		s.applyMu.RUnlock()
		return
	}
	if kind == kindRead && len(a.queue) == 0 {
		// Fast path: nothing of this session is in flight.
		a.execRead(xid, req)
		a.mu.Unlock()
		s.applyMu.RUnlock()
		s.stats.observe(time.Since(start))
		return
	}
	it := &item{start: start, xid: xid, req: req, kind: kind}
	a.queue = append(a.queue, it)
	var t *txn.Txn
	switch kind {
	case kindWrite:
		t = &txn.Txn{Kind: txn.Request, Req: req}
	case kindClose:
		t = &txn.Txn{Kind: txn.CloseSession}
	}
	if t != nil {
		t.Time = nowMs()
		t.Origin = s.cfg.NodeID
		t.Session = a.id
		if a.local != nil {
			// Replicas do not know local sessions; such writes create
			// no ephemerals, so they carry no session.
			t.Session = 0
		}
		t.Auth = append([]znode.ID(nil), a.auth...)
		t.Super = a.super
		t.Seq = s.addPending(&pending{a: a, it: it})
		seq := t.Seq
		// Proposing under a.mu keeps this session's proposals in order.
		s.propose(t, func(err error) {
			if err != nil {
				go s.proposalFailed(a, seq, err)
			}
		})
	}
	a.mu.Unlock()
	s.applyMu.RUnlock()
	switch kind {
	case kindSync:
		go a.sync(it)
	case kindReconfig:
		go a.reconfig(it)
	}
}

// proposalFailed handles a write that consensus did not accept. Its
// outcome may be unknown, so like ZooKeeper we drop the connection and let
// the client see ConnectionLoss rather than guess an answer.
func (s *Server) proposalFailed(a *attachment, seq uint64, err error) {
	if s.takePending(seq) == nil {
		return // already applied and answered
	}
	s.log.Warn("write not committed; closing connection", "session", fmt.Sprintf("0x%x", uint64(a.id)), "err", err)
	a.serverClose()
}

func (a *attachment) sync(it *item) {
	s := a.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.MaxSessionTimeout)
	err := s.repl.ReadBarrier(ctx)
	cancel()
	if err != nil {
		s.log.Warn("sync failed; closing connection", "session", fmt.Sprintf("0x%x", uint64(a.id)), "err", err)
		a.serverClose()
		return
	}
	s.applyMu.RLock()
	path := it.req.(*op.SyncRequest).Path
	a.complete(it, s.lastZxid.Load(), zkerr.OK, &op.SyncResponse{Path: path})
	s.applyMu.RUnlock()
}

func (a *attachment) reconfig(it *item) {
	s := a.s
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp, code := s.reconfig(ctx, a, it.req.(*op.ReconfigRequest))
	cancel()
	if code == errOutcomeUnknown {
		a.serverClose()
		return
	}
	s.applyMu.RLock()
	a.complete(it, s.lastZxid.Load(), code, resp)
	s.applyMu.RUnlock()
}

// complete records the outcome of a queued write or sync and releases
// everything behind it that can now go. The caller holds applyMu (shared or
// exclusive), so queued reads see a stable tree.
func (a *attachment) complete(it *item, zxid int64, code zkerr.Code, resp op.Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	it.done, it.zxid, it.code, it.resp = true, zxid, code, resp
	for len(a.queue) > 0 && !a.closed {
		head := a.queue[0]
		switch {
		case head.kind == kindRead:
			a.execRead(head.xid, head.req)
		case head.done:
			a.reply(head.xid, head.zxid, head.code, head.resp)
			a.s.stats.observe(time.Since(head.start))
			if head.kind == kindClose {
				a.closeLocked()
				return
			}
		default:
			return
		}
		a.queue[0] = nil
		a.queue = a.queue[1:]
	}
}

func (a *attachment) reply(xid int32, zxid int64, code zkerr.Code, resp op.Response) {
	a.sent.Add(1)
	a.lastZxid.Store(zxid)
	a.s.stats.sent.Add(1)
	if code != zkerr.OK {
		resp = nil
	}
	a.conn.Reply(xid, zxid, code, resp)
}

// serverClose ends the connection from the server side.
func (a *attachment) serverClose() {
	a.mu.Lock()
	a.closeLocked()
	a.mu.Unlock()
}

func (a *attachment) closeLocked() {
	if a.closed {
		return
	}
	a.closed = true
	a.queue = nil
	a.conn.Close()
}

// Detach implements protocol.Session: the connection is gone, the session
// lives on until it expires or is resumed elsewhere.
func (a *attachment) Detach() {
	s := a.s
	a.mu.Lock()
	a.closed = true
	a.queue = nil
	a.mu.Unlock()
	s.connMu.Lock()
	if s.attached[a.id] == a {
		delete(s.attached, a.id)
	}
	s.connMu.Unlock()
	s.watches.RemoveAll(a)
}

func (a *attachment) addAuth(r *op.AuthRequest) bool {
	switch r.Scheme {
	case "digest":
		id := znode.Digest(string(r.Auth))
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, have := range a.auth {
			if have.Scheme == "digest" && have.ID == id {
				return true
			}
		}
		a.auth = append(a.auth, znode.ID{Scheme: "digest", ID: id})
		if sd := a.s.cfg.SuperDigest; sd != "" && sd == id {
			a.super = true
			a.auth = append(a.auth, znode.ID{Scheme: "super", ID: ""})
		}
		return true
	}
	return false
}

func (a *attachment) identities() ([]znode.ID, bool) {
	return a.auth, a.super
}

// execRead answers a request that needs no consensus. Callers hold applyMu
// shared (or exclusive, from Apply) and a.mu.
func (a *attachment) execRead(xid int32, req op.Request) {
	s := a.s
	zxid := s.lastZxid.Load()
	switch r := req.(type) {
	case *op.PingRequest:
		a.reply(xid, zxid, zkerr.OK, &op.EmptyResponse{OpCode: op.Ping})
		return
	case *op.AuthRequest:
		a.reply(xid, zxid, zkerr.OK, &op.EmptyResponse{OpCode: op.Auth})
		return
	case *op.SetWatchesRequest:
		s.setWatches(a, r)
		a.reply(xid, zxid, zkerr.OK, &op.EmptyResponse{OpCode: r.Op()})
		return
	case *op.CheckWatchesRequest:
		code := zkerr.OK
		if !s.watches.Has(a, r.Path, r.Type) {
			code = zkerr.NoWatcher
		}
		a.reply(xid, zxid, code, &op.EmptyResponse{OpCode: op.CheckWatches})
		return
	case *op.RemoveWatchesRequest:
		code := zkerr.OK
		if !s.watches.Remove(a, r.Path, r.Type) {
			code = zkerr.NoWatcher
		}
		a.reply(xid, zxid, code, &op.EmptyResponse{OpCode: op.RemoveWatches})
		return
	case *op.AddWatchRequest:
		if err := znode.ValidatePath(r.Path, false); err != nil {
			a.reply(xid, zxid, zkerr.BadArguments, nil)
			return
		}
		k := watch.Persistent
		if r.Mode == znode.AddWatchPersistentRecursive {
			k = watch.Recursive
		} else if r.Mode != znode.AddWatchPersistent {
			a.reply(xid, zxid, zkerr.BadArguments, nil)
			return
		}
		s.watches.Add(a, r.Path, k)
		a.reply(xid, zxid, zkerr.OK, &op.EmptyResponse{OpCode: op.AddWatch})
		return
	case *op.WhoAmIRequest:
		// ZooKeeper reports each provider's user name: for digest, the
		// user without the hash.
		ids := make([]znode.ID, 0, len(a.auth))
		for _, id := range a.auth {
			switch id.Scheme {
			case "super":
				continue
			case "digest":
				user, _, _ := strings.Cut(id.ID, ":")
				id.ID = user
			}
			ids = append(ids, id)
		}
		a.reply(xid, zxid, zkerr.OK, &op.WhoAmIResponse{Clients: ids})
		return
	case *op.SASLRequest:
		a.reply(xid, zxid, zkerr.AuthFailed, nil)
		return
	}
	resp, err := s.tree.Read(authFor(a.identities()), a.id, req)
	code := zkerr.CodeOf(err)
	switch r := req.(type) {
	case *op.ExistsRequest:
		if r.Watch && (code == zkerr.OK || code == zkerr.NoNode) {
			s.watches.Add(a, r.Path, watch.Data)
		}
	case *op.GetDataRequest:
		if r.Watch && code == zkerr.OK {
			s.watches.Add(a, r.Path, watch.Data)
		}
	case *op.GetChildrenRequest:
		if r.Watch && code == zkerr.OK {
			s.watches.Add(a, r.Path, watch.Child)
		}
	}
	a.reply(xid, zxid, code, resp)
}

// setWatches re-arms a reconnecting client's watches and fires at once
// those whose change it missed (DataTree.setWatches).
func (s *Server) setWatches(a *attachment, r *op.SetWatchesRequest) {
	rel := r.RelativeZxid
	for _, p := range r.DataWatches {
		st, ok := s.tree.Stat(p)
		switch {
		case !ok:
			a.Event(op.WatchEvent{Type: znode.EventNodeDeleted, Path: p, Zxid: -1})
		case st.Mzxid > rel:
			a.Event(op.WatchEvent{Type: znode.EventNodeDataChanged, Path: p, Zxid: -1})
		default:
			s.watches.Add(a, p, watch.Data)
		}
	}
	for _, p := range r.ExistWatches {
		if s.tree.Exists(p) {
			a.Event(op.WatchEvent{Type: znode.EventNodeCreated, Path: p, Zxid: -1})
		} else {
			s.watches.Add(a, p, watch.Data)
		}
	}
	for _, p := range r.ChildWatches {
		st, ok := s.tree.Stat(p)
		switch {
		case !ok:
			a.Event(op.WatchEvent{Type: znode.EventNodeDeleted, Path: p, Zxid: -1})
		case st.Pzxid > rel:
			a.Event(op.WatchEvent{Type: znode.EventNodeChildrenChanged, Path: p, Zxid: -1})
		default:
			s.watches.Add(a, p, watch.Child)
		}
	}
	for _, p := range r.PersistentWatches {
		s.watches.Add(a, p, watch.Persistent)
	}
	for _, p := range r.RecursiveWatches {
		s.watches.Add(a, p, watch.Recursive)
	}
}

var _ protocol.Session = (*attachment)(nil)
var _ watch.Watcher = (*attachment)(nil)
var _ protocol.Backend = (*Server)(nil)

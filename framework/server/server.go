// Package server assembles a Corral server from its configured plugins and
// runs the request pipeline: reads are answered from the local tree behind
// the session's own pending writes; writes become transactions that go
// through consensus and are applied, in log order, on every member; replies
// and watch events leave each connection in the order ZooKeeper promises.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/tree"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/watch"
	"github.com/corral-dev/corral/framework/zkerr"
)

// Version is reported by srvr/stat/mntr; cmd/corral sets it at link time.
var Version = "0.1.0-dev"

// Server is one Corral member.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	store  storage.Store
	repl   consensus.Replicator
	async  consensus.AsyncProposer // nil when the plugin has no async path
	fronts []protocol.Frontend

	// applyMu orders reads against applies: Apply holds it exclusively
	// while it changes the tree, fires watches and queues replies; a read
	// holds it shared from reading the tree until its reply is queued. So
	// a client never reads a change before the event for it.
	applyMu sync.RWMutex
	tree    *tree.Tree
	watches *watch.Manager

	lastZxid     atomic.Int64
	appliedIndex atomic.Uint64
	// sinceSnapshot counts transaction bytes applied since the state was
	// last captured for a snapshot (the byte-based compaction policy).
	sinceSnapshot atomic.Int64

	sessMu   sync.RWMutex
	sessions map[int64]*sessionInfo // replicated

	connMu   sync.Mutex
	attached map[int64]*attachment // sessions connected here

	pendMu  sync.Mutex
	pending map[uint64]*pending
	seq     atomic.Uint64

	live     liveness
	locals   localSessions
	nextSess atomic.Int64

	propMu   sync.Mutex
	propQ    []proposal
	propWake chan struct{}

	stats   stats
	started time.Time

	stop     chan struct{}
	bg       sync.WaitGroup
	shutOnce sync.Once
}

// New assembles a server from a loaded config. Nothing is started.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		tree:     tree.New(tree.Options{ExtendedTypes: cfg.ExtendedTypes}),
		watches:  watch.New(),
		sessions: map[int64]*sessionInfo{},
		attached: map[int64]*attachment{},
		pending:  map[uint64]*pending{},
		live:     liveness{m: map[int64]*liveSession{}},
		stop:     make(chan struct{}),
		propWake: make(chan struct{}, 1),
	}
	s.stats.minLatency.Store(-1)
	return s, nil
}

// Start opens storage, starts consensus, waits until this member can serve
// consistently, then opens the client listeners.
func (s *Server) Start(ctx context.Context) error {
	s.started = time.Now()
	set := plugin.Settings{Logger: s.log, DataDir: s.cfg.DataDir, NodeID: s.cfg.NodeID}

	sf, ok := s.cfg.Storage.Factory.(storage.Factory)
	if !ok {
		return fmt.Errorf("storage.%s is not a storage plugin", s.cfg.Storage.Type)
	}
	store, err := sf.New(ctx, withLogger(set, "storage", s.cfg.Storage.Type), s.cfg.Storage.Config)
	if errors.Is(err, storage.ErrCorrupt) {
		return fmt.Errorf("storage (%s): %w; refusing to start rather than serve wrong data (corral data verify shows every problem)", s.cfg.Storage.Type, err)
	}
	if err != nil {
		return fmt.Errorf("storage (%s): %w", s.cfg.Storage.Type, err)
	}
	s.store = store
	if err := verifyLog(store); err != nil {
		store.Close()
		return fmt.Errorf("storage (%s): %w; refusing to start rather than serve wrong data (corral data verify shows every problem)", s.cfg.Storage.Type, err)
	}

	cf, ok := s.cfg.Consensus.Factory.(consensus.Factory)
	if !ok {
		return fmt.Errorf("consensus.%s is not a consensus plugin", s.cfg.Consensus.Type)
	}
	members := s.cfg.Members
	if len(members) == 0 {
		members = []consensus.Member{{ID: s.cfg.NodeID, PeerAddr: "127.0.0.1:0", Voter: true}}
	}
	repl, err := cf.New(ctx, withLogger(set, "consensus", s.cfg.Consensus.Type), s.cfg.Consensus.Config, consensus.Deps{
		StateMachine: s, Store: store, Members: members, Logger: s.log.With("plugin", "consensus."+s.cfg.Consensus.Type),
	})
	if err != nil {
		store.Close()
		return fmt.Errorf("consensus (%s): %w", s.cfg.Consensus.Type, err)
	}
	s.repl = repl
	s.async, _ = repl.(consensus.AsyncProposer)
	if s.async == nil {
		s.bg.Add(1)
		go s.proposeLoop()
	}
	if err := repl.Start(ctx); err != nil {
		s.Shutdown(context.Background())
		return fmt.Errorf("consensus (%s): start: %w", s.cfg.Consensus.Type, err)
	}
	if err := s.catchUp(ctx); err != nil {
		s.Shutdown(context.Background())
		return err
	}
	s.live.resetAll(s.sessionIDs(), nowMs())

	for i, slot := range s.cfg.Protocols {
		pf, ok := slot.Factory.(protocol.Factory)
		if !ok {
			s.Shutdown(context.Background())
			return fmt.Errorf("protocols[%d]: protocol.%s is not a protocol plugin", i, slot.Type)
		}
		fe, err := pf.New(ctx, withLogger(set, "protocol", slot.Type), slot.Config)
		if err == nil {
			err = fe.Start(ctx, s)
		}
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("protocols[%d] (%s): %w", i, slot.Type, err)
		}
		s.fronts = append(s.fronts, fe)
		s.log.Info("serving clients", "protocol", slot.Type, "addr", fe.Addr().String())
	}
	s.bg.Add(4)
	go s.expiryLoop()
	go s.reapLoop()
	go s.touchLoop()
	go s.snapshotLoop()
	return nil
}

// verifyLog reads the whole log once before consensus starts, so a damaged
// entry stops the server with a clear error here instead of surfacing
// later inside the consensus library. Each read checks the entry's
// checksum; compaction keeps the log short enough for this to be cheap.
func verifyLog(store storage.Store) error {
	first, err := store.FirstIndex()
	if err != nil {
		return err
	}
	last, err := store.LastIndex()
	if err != nil || first == 0 {
		return err
	}
	for lo := first; lo <= last; {
		ents, err := store.Entries(lo, last+1, 4<<20)
		if err != nil {
			return fmt.Errorf("log entries from %d: %w", lo, err)
		}
		if len(ents) == 0 {
			return fmt.Errorf("log entry %d is missing", lo)
		}
		lo = ents[len(ents)-1].Index + 1
	}
	return nil
}

// catchUp waits until this member has applied everything committed before
// it started (a read barrier through consensus, on the leader or a
// follower), so it never serves state older than what it acknowledged.
func (s *Server) catchUp(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s.repl.Leader() != 0 {
			bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := s.repl.ReadBarrier(bctx)
			cancel()
			if err == nil {
				return nil
			}
			s.log.Debug("read barrier during start-up", "err", err)
		}
		if time.Now().After(deadline) {
			return errors.New("could not catch up with a leader within 30s: is a majority of the members up?")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Shutdown stops listeners, background loops, consensus and storage.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.shutOnce.Do(func() {
		close(s.stop)
		for _, fe := range s.fronts {
			if err := fe.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		s.bg.Wait()
		if s.repl != nil && s.cfg.SnapshotOnShutdown && s.sinceSnapshot.Load() > 0 {
			// A snapshot now means the next start restores it and
			// replays nothing; a failure only costs that speed-up.
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := s.SnapshotNow(sctx); err != nil {
				s.log.Warn("snapshot on shutdown failed", "err", err)
			}
			cancel()
		}
		if s.repl != nil {
			if err := s.repl.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Addrs returns the bound address of each protocol, in config order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.fronts))
	for i, fe := range s.fronts {
		out[i] = fe.Addr()
	}
	return out
}

// LastZxid is the zxid of the last applied transaction.
func (s *Server) LastZxid() int64 { return s.lastZxid.Load() }

// TreeDigest is an order-independent digest of the tree (equal on every
// member that applied the same transactions).
func (s *Server) TreeDigest() uint64 { return s.tree.Digest() }

// Options implements protocol.Backend.
func (s *Server) Options() protocol.Options {
	return protocol.Options{MaxRequestBytes: s.cfg.MaxRequestBytes, MaxClientConnsPerIP: s.cfg.MaxClientConns}
}

func withLogger(set plugin.Settings, kind, name string) plugin.Settings {
	set.Logger = set.Logger.With("plugin", kind+"."+name)
	return set
}

// propose hands a transaction to consensus; done runs once with the
// outcome. It never blocks: AsyncProposer queues by contract, and for a
// blocking-only plugin proposals go through one ordered queue. Either way
// the order of calls (per session, the order of its requests) is the order
// they reach consensus, and no lock holder waits on replication.
func (s *Server) propose(t *txn.Txn, done func(error)) {
	data, err := txn.Encode(t)
	if err != nil {
		go done(zkerr.Newf(zkerr.MarshallingError, "", "%v", err))
		return
	}
	if s.async != nil {
		s.async.ProposeAsync(data, done)
		return
	}
	s.propMu.Lock()
	s.propQ = append(s.propQ, proposal{data: data, done: done})
	s.propMu.Unlock()
	select {
	case s.propWake <- struct{}{}:
	default:
	}
}

type proposal struct {
	data []byte
	done func(error)
}

// proposeLoop serves plugins without AsyncProposer, one proposal at a time.
func (s *Server) proposeLoop() {
	defer s.bg.Done()
	for {
		select {
		case <-s.propWake:
		case <-s.stop:
			return
		}
		for {
			s.propMu.Lock()
			batch := s.propQ
			s.propQ = nil
			s.propMu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, p := range batch {
				p.done(s.repl.Propose(context.Background(), p.data))
			}
		}
	}
}

// proposeWait proposes and waits for the outcome.
func (s *Server) proposeWait(ctx context.Context, t *txn.Txn) error {
	ch := make(chan error, 1)
	s.propose(t, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

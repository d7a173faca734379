// Package consensusraft is the consensus.raft plugin: Corral's replicated
// log on github.com/hashicorp/raft. raft's log, stable values and snapshots
// live in the server's storage.Store through thin adapters (no files of its
// own); committed commands are applied to the framework's StateMachine.
//
// Peer port: this member's peer address carries raft's own RPCs and
// Corral's forwarding protocol, told apart by the first byte of each
// connection (mux.go). Followers forward proposals, read barriers and
// membership changes to the leader over it (forwarder.go and membership.go,
// served by serve.go), so every member accepts writes, sync and reconfig.
//
// Bootstrap: a member whose store holds no raft state (no term, no log, no
// snapshot) bootstraps the cluster from the configured member list, so every
// member listed at first start must get the same list. A member with state
// restarts from the membership it stored, which may have changed at run
// time: a list that differs only draws a warning, but Start fails when the
// two cannot both be right (see checkStoredMembership). A member added at
// run time is started with Config.Join and added through
// consensus.Membership.AddMember, called on any member (membership.go);
// once added it may be restarted with a list that includes it, without Join.
//
// Voters: Member.Voter is a plain bool, so "unset" and "false" look alike.
// If no member of the list is marked Voter, all are voters (the common
// configuration lists no roles at all); as soon as one is marked, the
// unmarked ones join as non-voters, which receive the log and serve reads
// but do not vote (ZooKeeper's observers).
package consensusraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/plugin"
)

// ID is the plugin id.
const ID plugin.ID = "consensus.raft"

func init() { plugin.Register(factory{}) }

type factory struct{}

func (factory) ID() plugin.ID      { return ID }
func (factory) DefaultConfig() any { return DefaultConfig() }

func (factory) New(_ context.Context, set plugin.Settings, cfg any, deps consensus.Deps) (consensus.Replicator, error) {
	r, err := New(set, cfg, deps)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return r, nil
}

// Replicator is a consensus.Replicator on hashicorp/raft.
type Replicator struct {
	cfg     *Config
	log     *slog.Logger
	self    consensus.Member
	members []consensus.Member
	voters  int
	deps    consensus.Deps
	fsm     *fsm

	mu        sync.Mutex // lifecycle: started, stopped
	started   bool
	stopped   bool
	raft      atomic.Pointer[raft.Raft]
	stop      chan struct{} // closed by halt: Shutdown, or raft stopping by itself
	haltOnce  sync.Once
	localAddr raft.ServerAddress
	trans     *raft.NetworkTransport
	mux       *peerMux
	logs      raft.LogStore
	observer  *raft.Observer
	bg        sync.WaitGroup
	leaderCh  chan bool

	// leaderChg is closed, and replaced, whenever the known leader changes.
	leaderMu  sync.Mutex
	leaderChg chan struct{}

	fw      *forwarder // the ordered proposal queue; forwarding when not leading
	reads   *readIndexer
	lanes   lanes
	nudgeCh chan struct{}

	clientMu    sync.RWMutex
	clientAddrs map[uint64]string // not replicated; see membership.go
}

// New checks the configuration and returns a Replicator; Start brings it
// up. cfg is a *Config (nil means DefaultConfig()).
func New(set plugin.Settings, cfg any, deps consensus.Deps) (*Replicator, error) {
	var c *Config
	switch v := cfg.(type) {
	case nil:
		c = DefaultConfig()
	case *Config:
		c = v
	default:
		return nil, fmt.Errorf("%s: config is %T, want *consensusraft.Config", ID, cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	if deps.StateMachine == nil || deps.Store == nil {
		return nil, fmt.Errorf("%s: a state machine and a store are required", ID)
	}
	self, voters, err := checkMembers(set.NodeID, deps.Members)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	logger := deps.Logger
	if logger == nil {
		logger = set.Logger
	}
	if logger == nil {
		logger = slog.Default()
	}
	level, _ := parseLevel(c.LogLevel)
	// Build raft's config now so a bad combination fails before Start.
	if _, err := c.raftConfig(self.ID, voters, newSlogLogger(logger, level)); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	r := &Replicator{
		cfg:         c,
		log:         logger,
		self:        self,
		members:     slices.Clone(deps.Members),
		voters:      voters,
		deps:        deps,
		fsm:         newFSM(deps.StateMachine),
		stop:        make(chan struct{}),
		leaderCh:    make(chan bool, 1),
		clientAddrs: map[uint64]string{},
		leaderChg:   make(chan struct{}),
		nudgeCh:     make(chan struct{}, 1),
	}
	r.fw = newForwarder(r)
	r.reads = &readIndexer{r: r, wake: make(chan struct{}, 1)}
	for _, m := range deps.Members {
		if m.ClientAddr != "" {
			r.clientAddrs[m.ID] = m.ClientAddr
		}
	}
	return r, nil
}

// checkMembers validates the member list and returns this member and the
// number of voters.
func checkMembers(nodeID uint64, members []consensus.Member) (consensus.Member, int, error) {
	if len(members) == 0 {
		return consensus.Member{}, 0, errors.New("no members configured")
	}
	var self consensus.Member
	found := false
	seen := map[uint64]bool{}
	marked := 0
	for _, m := range members {
		if m.ID == 0 {
			return self, 0, errors.New("member id 0 is not allowed")
		}
		if seen[m.ID] {
			return self, 0, fmt.Errorf("member %d is listed twice", m.ID)
		}
		seen[m.ID] = true
		_, port, err := net.SplitHostPort(m.PeerAddr)
		if err != nil {
			return self, 0, fmt.Errorf("member %d: peer address %q: %w", m.ID, m.PeerAddr, err)
		}
		// Port 0 (pick any) only makes sense when nobody has to dial us.
		if (port == "0" || port == "") && len(members) > 1 {
			return self, 0, fmt.Errorf("member %d: peer address %q needs a port in an ensemble", m.ID, m.PeerAddr)
		}
		if m.Voter {
			marked++
		}
		if m.ID == nodeID {
			self, found = m, true
		}
	}
	if !found {
		return self, 0, fmt.Errorf("node id %d is not in the member list", nodeID)
	}
	if marked == 0 {
		return self, len(members), nil
	}
	return self, marked, nil
}

// halt marks the replicator stopped for everything waiting on raft, and
// fails what waits on this member: queued and forwarded proposals, and
// waits for the local apply.
func (r *Replicator) halt() {
	r.haltOnce.Do(func() {
		close(r.stop)
		r.fsm.close(consensus.ErrStopped)
		r.fw.shutdown()
	})
}

// leaderChanged returns a channel closed at the next leader change.
func (r *Replicator) leaderChanged() <-chan struct{} {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	return r.leaderChg
}

func (r *Replicator) noteLeaderChange() {
	r.leaderMu.Lock()
	close(r.leaderChg)
	r.leaderChg = make(chan struct{})
	r.leaderMu.Unlock()
	r.fw.kick()
}

// suffrage applies the voter rule described in the package comment.
func (r *Replicator) suffrage(m consensus.Member) raft.ServerSuffrage {
	if r.voters == len(r.members) || m.Voter {
		return raft.Voter
	}
	return raft.Nonvoter
}

// Start opens the transport, recovers raft's state from storage (or
// bootstraps a new cluster) and starts raft. It does not wait for a leader.
func (r *Replicator) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return consensus.ErrStopped
	}
	if r.started {
		return fmt.Errorf("%s: already started", ID)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	level, _ := parseLevel(r.cfg.LogLevel)
	hl := newSlogLogger(r.log, level)
	rc, err := r.cfg.raftConfig(r.self.ID, r.voters, hl.Named("raft"))
	if err != nil {
		return fmt.Errorf("%s: %w", ID, err)
	}

	bind := r.cfg.Bind
	if bind == "" {
		bind = r.self.PeerAddr
	}
	var advertise net.Addr
	if _, port, _ := net.SplitHostPort(r.self.PeerAddr); port != "0" {
		a, err := net.ResolveTCPAddr("tcp", r.self.PeerAddr)
		if err != nil {
			return fmt.Errorf("%s: peer address: %w", ID, err)
		}
		advertise = a
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return fmt.Errorf("%s: peer listener on %s: %w", ID, bind, err)
	}
	if advertise == nil {
		// As raft's TCP transport requires: peers must be able to dial it.
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
			ln.Close()
			return fmt.Errorf("%s: peer listener on %s: address %s is not advertisable; give a peer address with a port", ID, bind, ln.Addr())
		}
	}
	mux := newPeerMux(ln, advertise, r.cfg.TransportTimeout, r.serveForward, r.log)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  mux.raft,
		MaxPool: r.cfg.TransportMaxPool,
		Timeout: r.cfg.TransportTimeout,
		Logger:  hl.Named("raft-net"),
	})
	fail := func(err error) error {
		trans.Close()
		mux.Close()
		return err
	}

	var logs raft.LogStore = logStore{r.deps.Store}
	if r.cfg.LogCacheSize > 0 {
		if logs, err = raft.NewLogCache(r.cfg.LogCacheSize, logs); err != nil {
			return fail(fmt.Errorf("%s: %w", ID, err))
		}
	}
	stable := stableStore{r.deps.Store}
	snaps := snapshotStore{r.deps.Store.Snapshots()}

	r.localAddr = trans.LocalAddr()
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(fmt.Errorf("%s: reading stored state: %w", ID, err))
	}
	switch {
	case !existing && r.cfg.Join:
		r.log.Info("no raft state: waiting to be added to a cluster", "id", r.self.ID, "peer", trans.LocalAddr())
	case !existing:
		boot := r.bootstrapConfiguration(trans.LocalAddr())
		r.log.Info("no raft state: bootstrapping a new cluster", "servers", len(boot.Servers))
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, boot); err != nil {
			return fail(fmt.Errorf("%s: bootstrap: %w", ID, err))
		}
	}

	ra, err := raft.NewRaft(rc, r.fsm, logs, stable, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", ID, err))
	}
	if existing {
		// raft's own view of the stored configuration (snapshot plus log),
		// checked before Start hands the instance to anyone; meanwhile raft
		// is a follower that cannot campaign before a heartbeat timeout.
		f := ra.GetConfiguration()
		err := f.Error()
		if err == nil {
			err = r.checkStoredMembership(f.Configuration().Servers)
		}
		if err != nil {
			_ = ra.Shutdown().Error()
			return fail(fmt.Errorf("%s: %w", ID, err))
		}
	}
	// Leader changes wake whatever waits for a leader to forward to.
	obs := make(chan raft.Observation, 16)
	r.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	ra.RegisterObserver(r.observer)
	r.raft.Store(ra)
	r.trans = trans
	r.mux = mux
	r.logs = logs
	r.started = true
	r.bg.Add(4)
	go r.watchLeadership(ra, obs)
	go r.fw.run()
	go r.reads.run()
	go r.nudgeLoop(ra)
	// Not in bg: it may wait on a future raft never answers after shutdown;
	// halt has already answered its proposals by then.
	go r.fw.local.run()
	r.log.Info("raft started", "id", r.self.ID, "peer", trans.LocalAddr(), "recovered", existing,
		"heartbeat_timeout", rc.HeartbeatTimeout, "election_timeout", rc.ElectionTimeout)
	return nil
}

// bootstrapConfiguration is the initial configuration from the member list.
// Every member must write the same one, so peers' addresses are used as
// configured; only our own is taken from the listener when it was port 0.
func (r *Replicator) bootstrapConfiguration(local raft.ServerAddress) raft.Configuration {
	var c raft.Configuration
	for _, m := range r.members {
		addr := raft.ServerAddress(m.PeerAddr)
		if m.ID == r.self.ID {
			if _, port, _ := net.SplitHostPort(m.PeerAddr); port == "0" {
				addr = local
			}
		}
		c.Servers = append(c.Servers, raft.Server{Suffrage: r.suffrage(m), ID: serverID(m.ID), Address: addr})
	}
	return c
}

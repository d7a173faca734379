package consensusraft

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Config is the user's configuration of the consensus.raft plugin.
//
// The three failure-detection timeouts are "auto" when zero (the default):
// they are then chosen at start from the configured member list. A single
// voter (not started with Join) has nobody to wait for, so it uses 100 ms and becomes leader in
// 100-200 ms. An ensemble uses 200 ms heartbeat/election timeouts and a
// 150 ms leader lease, which detects a dead leader in 200-400 ms and keeps
// kill-to-next-write under a second (pre-vote keeps a slow member from
// disrupting a healthy leader), while the 20-40 ms heartbeats (a tenth of
// the heartbeat timeout) leave slack on a loaded machine. A cluster
// grown at run time from one voter keeps the single-voter timeouts until it
// restarts with the full member list; set explicit values if you grow
// clusters that way.
type Config struct {
	// HeartbeatTimeout is how long a follower waits without contact from a
	// leader before it starts an election (randomised up to twice this).
	HeartbeatTimeout time.Duration `koanf:"heartbeat_timeout"`
	// ElectionTimeout is how long a candidate waits before retrying.
	ElectionTimeout time.Duration `koanf:"election_timeout"`
	// LeaderLeaseTimeout is how long a leader stays leader without reaching
	// a majority; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration `koanf:"leader_lease_timeout"`
	// CommitTimeout bounds how long followers wait to learn a new commit
	// index when there is no other traffic.
	CommitTimeout time.Duration `koanf:"commit_timeout"`
	// MaxAppendEntries is the largest batch of entries sent or applied at
	// once (1-1024).
	MaxAppendEntries int `koanf:"max_append_entries"`
	// BatchApply lets the leader take up to MaxAppendEntries proposals into
	// one disk write and one replication round.
	BatchApply bool `koanf:"batch_apply"`
	// SnapshotInterval is how often raft checks whether to snapshot.
	SnapshotInterval time.Duration `koanf:"snapshot_interval"`
	// SnapshotThreshold is how many new log entries trigger a snapshot.
	SnapshotThreshold uint64 `koanf:"snapshot_threshold"`
	// TrailingLogs is how many entries are kept behind a snapshot so that a
	// slightly lagging follower catches up from the log, not a snapshot.
	TrailingLogs uint64 `koanf:"trailing_logs"`
	// Bind overrides the address the peer listener binds to (for example
	// "0.0.0.0:2888"); this member's peer address from the member list is
	// still what the others are told to dial.
	Bind string `koanf:"bind"`
	// TransportTimeout bounds each peer RPC's I/O.
	TransportTimeout time.Duration `koanf:"transport_timeout"`
	// TransportMaxPool is how many idle connections are kept per peer.
	TransportMaxPool int `koanf:"transport_max_pool"`
	// ForwardTimeout bounds a proposal, read barrier or membership change
	// made on a follower: waiting for a leader to be known and reachable,
	// the leader's answer, and (for proposals and membership changes) the
	// local apply. A proposal that was never sent fails with ErrNotLeader;
	// one that was sent, with ErrUnknownOutcome.
	// On the leader it bounds how long an asynchronous proposal may queue
	// before it is handed to raft.
	ForwardTimeout time.Duration `koanf:"forward_timeout"`
	// ForwardReadConns is how many connections a follower keeps to the
	// leader for read barriers. Proposals always travel on one connection
	// of their own, which keeps them in order.
	ForwardReadConns int `koanf:"forward_read_conns"`
	// LogCacheSize is how many recent entries are kept decoded in memory to
	// serve replication without reading storage (0 disables the cache).
	LogCacheSize int `koanf:"log_cache_size"`
	// Join starts this member with no state and waits to be added by the
	// leader (consensus.Membership.AddMember) instead of bootstrapping a
	// new cluster from the member list. Set it on members added at run time.
	Join bool `koanf:"join"`
	// LogLevel is the lowest raft log level passed to the server's logger:
	// trace, debug, info, warn or error. raft's debug output is chatty.
	LogLevel string `koanf:"log_level"`
}

// Timeouts chosen when the member list has one voter or several.
const (
	singleHeartbeat = 100 * time.Millisecond
	singleElection  = 100 * time.Millisecond
	singleLease     = 100 * time.Millisecond
	multiHeartbeat  = 200 * time.Millisecond
	multiElection   = 200 * time.Millisecond
	multiLease      = 150 * time.Millisecond
)

// DefaultConfig returns the plugin defaults. Failure-detection timeouts
// are zero, meaning "auto" (see Config).
func DefaultConfig() *Config {
	return &Config{
		CommitTimeout:     50 * time.Millisecond,
		MaxAppendEntries:  256,
		BatchApply:        true,
		SnapshotInterval:  120 * time.Second,
		SnapshotThreshold: 8192,
		TrailingLogs:      10240,
		TransportTimeout:  5 * time.Second,
		TransportMaxPool:  3,
		ForwardTimeout:    5 * time.Second,
		ForwardReadConns:  1,
		LogCacheSize:      1024,
		LogLevel:          "info",
	}
}

// Validate checks the settings that do not depend on the member list.
func (c *Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"heartbeat_timeout", c.HeartbeatTimeout},
		{"election_timeout", c.ElectionTimeout},
		{"leader_lease_timeout", c.LeaderLeaseTimeout},
	} {
		if d.v != 0 && d.v < 5*time.Millisecond {
			errs = append(errs, fmt.Errorf("%s: %s is below 5ms (0 means auto)", d.name, d.v))
		}
	}
	if c.CommitTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("commit_timeout: %s is below 1ms", c.CommitTimeout))
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("max_append_entries: %d is not in 1-1024", c.MaxAppendEntries))
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("snapshot_interval: %s is below 5ms", c.SnapshotInterval))
	}
	if c.TransportTimeout <= 0 {
		errs = append(errs, fmt.Errorf("transport_timeout: %s must be positive", c.TransportTimeout))
	}
	if c.TransportMaxPool < 1 {
		errs = append(errs, fmt.Errorf("transport_max_pool: %d must be positive", c.TransportMaxPool))
	}
	if c.ForwardTimeout <= 0 {
		errs = append(errs, fmt.Errorf("forward_timeout: %s must be positive", c.ForwardTimeout))
	}
	if c.ForwardReadConns < 1 || c.ForwardReadConns > 64 {
		errs = append(errs, fmt.Errorf("forward_read_conns: %d is not in 1-64", c.ForwardReadConns))
	}
	if c.LogCacheSize < 0 {
		errs = append(errs, fmt.Errorf("log_cache_size: %d is negative", c.LogCacheSize))
	}
	if c.Bind != "" {
		if _, _, err := net.SplitHostPort(c.Bind); err != nil {
			errs = append(errs, fmt.Errorf("bind: %w", err))
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (hclog.Level, error) {
	switch s {
	case "trace":
		return hclog.Trace, nil
	case "debug":
		return hclog.Debug, nil
	case "", "info":
		return hclog.Info, nil
	case "warn":
		return hclog.Warn, nil
	case "error":
		return hclog.Error, nil
	}
	return hclog.NoLevel, fmt.Errorf("unknown level %q (want trace, debug, info, warn or error)", s)
}

// raftConfig turns the plugin config into hashicorp's, resolving the auto
// timeouts from the number of configured voters. A joining member is
// always headed for an ensemble, whatever its own list says.
func (c *Config) raftConfig(localID uint64, voters int, logger hclog.Logger) (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.FormatUint(localID, 10))
	hb, el, lease := multiHeartbeat, multiElection, multiLease
	if voters <= 1 && !c.Join {
		hb, el, lease = singleHeartbeat, singleElection, singleLease
	}
	rc.HeartbeatTimeout = orDefault(c.HeartbeatTimeout, hb)
	// Auto values bend around an explicit heartbeat timeout so that raft's
	// own rules (election >= heartbeat >= lease) still hold.
	rc.ElectionTimeout = orDefault(c.ElectionTimeout, max(el, rc.HeartbeatTimeout))
	rc.LeaderLeaseTimeout = orDefault(c.LeaderLeaseTimeout, min(lease, rc.HeartbeatTimeout))
	rc.CommitTimeout = c.CommitTimeout
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.BatchApplyCh = c.BatchApply
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	// A member removed from the configuration stops instead of carrying on
	// as a cluster of one.
	rc.ShutdownOnRemove = true
	rc.Logger = logger
	// Per-peer metric names duplicate the labelled ones; skip the work.
	rc.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, err
	}
	return rc, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

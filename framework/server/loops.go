package server

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/txn"
)

// expiryLoop runs on every member but acts only on the leader: it proposes
// closeSession for sessions not heard from within their timeout. Expiry is
// a replicated transaction, so every member deletes the same ephemerals at
// the same zxid.
func (s *Server) expiryLoop() {
	defer s.bg.Done()
	interval := s.cfg.TickTime / 4
	if interval < 20*time.Millisecond {
		interval = 20 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	wasLeader := false
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.expireLocal(nowMs())
		leader := s.repl.IsLeader()
		if leader && !wasLeader {
			// A new leader gives everyone a fresh timeout instead of
			// expiring sessions whose pings went to the old leader.
			s.live.resetAll(s.sessionIDs(), nowMs())
			go s.publishOnLeadership()
		}
		wasLeader = leader
		if !leader {
			continue
		}
		now := nowMs()
		for _, id := range s.sessionIDs() {
			ls := s.live.get(id)
			if ls == nil {
				s.live.touch(id, s.sessionTimeout(id), now)
				continue
			}
			if now-ls.lastSeen.Load() <= int64(ls.timeoutMs.Load()) || ls.expiring.Load() {
				continue
			}
			ls.expiring.Store(true)
			s.stats.expired.Add(1)
			s.log.Info("session expired", "session", fmt.Sprintf("0x%x", uint64(id)), "timeout_ms", ls.timeoutMs.Load())
			id := id
			s.propose(&txn.Txn{Kind: txn.CloseSession, Time: now, Origin: s.cfg.NodeID, Session: id}, func(err error) {
				if err != nil {
					ls.expiring.Store(false) // try again next tick
				}
			})
		}
	}
}

// touchLoop runs on followers: it reports the sessions connected here that
// were active since the last report, so the leader does not expire them.
// One small log entry per tick replaces ZooKeeper's ping forwarding.
func (s *Server) touchLoop() {
	defer s.bg.Done()
	interval := s.cfg.TickTime / 2
	if interval < 20*time.Millisecond {
		interval = 20 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		leader := s.repl.IsLeader()
		var active []int64
		for _, a := range s.connections() {
			// Swap even on the leader, so a member that loses leadership
			// reports only what happened since.
			if a.active.Swap(false) && !leader {
				active = append(active, a.id)
			}
		}
		if len(active) > 0 {
			s.propose(&txn.Txn{Kind: txn.Touch, Time: nowMs(), Origin: s.cfg.NodeID, Sessions: active}, func(error) {})
		}
	}
}

// snapshotLoop applies the byte-based compaction policy: a snapshot once
// snapshot_log_bytes of transactions have been applied since the last one,
// so neither the log on disk nor the replay at start-up grows without bound
// when a few huge writes stay under the plugin's entry-count threshold.
func (s *Server) snapshotLoop() {
	defer s.bg.Done()
	if s.cfg.SnapshotLogBytes <= 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.sinceSnapshot.Load() < s.cfg.SnapshotLogBytes {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		start := time.Now()
		if err := s.SnapshotNow(ctx); err != nil {
			s.log.Warn("snapshot by log size failed", "err", err)
		} else {
			s.log.Info("snapshot taken", "reason", "log bytes", "took", time.Since(start).Round(time.Millisecond))
		}
		cancel()
	}
}

func (s *Server) sessionTimeout(id int64) int32 {
	if si := s.session(id); si != nil {
		return si.TimeoutMs
	}
	return 0
}

// reapLoop deletes empty containers and expired TTL nodes (ZooKeeper's
// ContainerManager), on the leader only, through ordinary transactions.
func (s *Server) reapLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.ContainerCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.repl.IsLeader() {
			continue
		}
		// A duplicate proposal (the previous one not yet applied) is
		// harmless: it fails with NoNode.
		for _, path := range s.tree.ReapCandidates(nowMs(), 1000) {
			s.propose(&txn.Txn{Kind: txn.Request, Time: nowMs(), Origin: s.cfg.NodeID,
				Req: &op.DeleteContainerRequest{Path: path}}, func(error) {})
		}
	}
}

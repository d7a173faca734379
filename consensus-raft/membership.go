package consensusraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/consensus"
)

// This file is consensus.Membership. Changes run on the leader: here when
// this member leads, otherwise forwarded over the forwarding protocol
// (kindAddMember and friends in wire.go) and run by the leader's
// serveMembership. Members reads the local copy of raft's configuration,
// which every member keeps.
//
// Client addresses. raft's configuration has no field for a member's client
// address, so it is not replicated by this plugin: Members fills ClientAddr
// from this member's configured list and from AddMember calls made on this
// member or run by it as leader. The framework owns client addresses: it
// publishes them in /zookeeper/config, which is replicated through its own
// state machine, and fills the gaps in Members from there. Carrying a
// second copy here would need entries of our own in the framework's log and
// a wrapper around its snapshots, and the two copies could disagree.

// memberReq is one membership change.
type memberReq struct {
	kind   byte             // kindAddMember, kindRemoveMember or kindTransferLeadership
	member consensus.Member // AddMember: all of it; otherwise only ID
	// timeout is, on the leader, how long a forwarded change may take: the
	// caller's remaining time.
	timeout time.Duration
}

func (q memberReq) String() string {
	switch q.kind {
	case kindAddMember:
		role := "non-voter"
		if q.member.Voter {
			role = "voter"
		}
		return fmt.Sprintf("add %s %d at %s", role, q.member.ID, q.member.PeerAddr)
	case kindRemoveMember:
		return fmt.Sprintf("remove member %d", q.member.ID)
	}
	if q.member.ID == 0 {
		return "transfer leadership"
	}
	return fmt.Sprintf("transfer leadership to %d", q.member.ID)
}

func isMemberKind(k byte) bool {
	return k == kindAddMember || k == kindRemoveMember || k == kindTransferLeadership
}

// maxMemberTimeout bounds the time a forwarded change may ask for.
const maxMemberTimeout = 10 * time.Minute

// encode is the request's payload (see the kinds in wire.go).
func (q memberReq) encode(timeout time.Duration) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(max(timeout, time.Millisecond)))
	b = binary.BigEndian.AppendUint64(b, q.member.ID)
	if q.kind == kindAddMember {
		voter := byte(0)
		if q.member.Voter {
			voter = 1
		}
		b = append(b, voter)
		b = binary.BigEndian.AppendUint16(b, uint16(len(q.member.PeerAddr)))
		b = append(b, q.member.PeerAddr...)
		b = append(b, q.member.ClientAddr...)
	}
	return b
}

func decodeMemberReq(kind byte, b []byte) (memberReq, error) {
	q := memberReq{kind: kind}
	if len(b) < 16 {
		return q, fmt.Errorf("membership request of %d bytes", len(b))
	}
	q.timeout = time.Duration(binary.BigEndian.Uint64(b))
	q.member.ID = binary.BigEndian.Uint64(b[8:])
	b = b[16:]
	switch kind {
	case kindAddMember:
		if len(b) < 3 || b[0] > 1 {
			return q, errors.New("truncated add-member request")
		}
		q.member.Voter = b[0] == 1
		n := int(binary.BigEndian.Uint16(b[1:]))
		b = b[3:]
		if n > len(b) {
			return q, errors.New("truncated peer address")
		}
		q.member.PeerAddr, q.member.ClientAddr = string(b[:n]), string(b[n:])
		if err := validNewMember(q.member); err != nil {
			return q, err
		}
	case kindRemoveMember:
		if len(b) != 0 || q.member.ID == 0 {
			return q, errors.New("bad remove-member request")
		}
	default:
		if len(b) != 0 {
			return q, errors.New("bad transfer request")
		}
	}
	return q, nil
}

// validNewMember checks what AddMember needs before anything is sent.
func validNewMember(m consensus.Member) error {
	if m.ID == 0 || m.PeerAddr == "" {
		return fmt.Errorf("%s: a member needs an id and a peer address", ID)
	}
	if _, port, err := net.SplitHostPort(m.PeerAddr); err != nil || port == "" || port == "0" {
		return fmt.Errorf("%s: member %d: peer address %q needs a host and a port", ID, m.ID, m.PeerAddr)
	}
	return nil
}

// Members implements consensus.Membership on any member: raft's latest
// configuration as this member knows it. See the top of this file for
// where ClientAddr comes from.
func (r *Replicator) Members(ctx context.Context) ([]consensus.Member, error) {
	ra, err := r.running()
	if err != nil {
		return nil, err
	}
	f := ra.GetConfiguration()
	if err := r.awaitOp(ctx, f); err != nil {
		return nil, err
	}
	r.clientMu.RLock()
	defer r.clientMu.RUnlock()
	var out []consensus.Member
	for _, s := range f.Configuration().Servers {
		id, ok := memberID(s.ID)
		if !ok {
			continue
		}
		out = append(out, consensus.Member{
			ID:         id,
			PeerAddr:   string(s.Address),
			ClientAddr: r.clientAddrs[id],
			Voter:      s.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// AddMember implements consensus.Membership on any member: m.Voter chooses
// between a voter and a non-voter (explicitly, unlike the bootstrap list).
// The new member should be started with Config.Join. When it returns nil
// the change is committed, and applied here too.
func (r *Replicator) AddMember(ctx context.Context, m consensus.Member) error {
	if err := validNewMember(m); err != nil {
		return err
	}
	return r.changeMembership(ctx, memberReq{kind: kindAddMember, member: m})
}

// RemoveMember implements consensus.Membership on any member. Removing the
// leader makes it step down and stop once the change commits.
func (r *Replicator) RemoveMember(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("%s: member id 0 is not allowed", ID)
	}
	return r.changeMembership(ctx, memberReq{kind: kindRemoveMember, member: consensus.Member{ID: id}})
}

// TransferLeadership implements consensus.Membership on any member; to == 0
// lets raft pick the most up-to-date voter. Transferring to the member that
// already leads succeeds at once.
func (r *Replicator) TransferLeadership(ctx context.Context, to uint64) error {
	return r.changeMembership(ctx, memberReq{kind: kindTransferLeadership, member: consensus.Member{ID: to}})
}

// changeMembership runs q on the leader. On the leader the caller's ctx
// alone bounds it; once it has to wait for or go to another member,
// ForwardTimeout bounds it too, as it does a forwarded proposal.
func (r *Replicator) changeMembership(ctx context.Context, q memberReq) error {
	ra, err := r.running()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if ra.State() == raft.Leader {
		_, err := r.execMembership(ctx, ra, q)
		if !errors.Is(err, consensus.ErrNotLeader) {
			return err
		}
		// raft turned it away before appending anything (leadership lost,
		// or a transfer under way): go to whoever leads next.
	}
	return r.fw.membership(ctx, q)
}

// execMembership runs q on this member, which leads (raft refuses with
// ErrNotLeader otherwise). It returns the configuration entry's index (0
// for a transfer, or when it is not known).
func (r *Replicator) execMembership(ctx context.Context, ra *raft.Raft, q memberReq) (uint64, error) {
	switch q.kind {
	case kindAddMember:
		m := q.member
		var f raft.IndexFuture
		if m.Voter {
			f = ra.AddVoter(serverID(m.ID), raft.ServerAddress(m.PeerAddr), 0, enqueueTimeout(ctx))
		} else {
			f = ra.AddNonvoter(serverID(m.ID), raft.ServerAddress(m.PeerAddr), 0, enqueueTimeout(ctx))
		}
		err := r.awaitOp(ctx, f)
		if mayHaveChanged(err) {
			r.noteClientAddr(m)
		}
		if err != nil {
			return 0, err
		}
		return f.Index(), nil
	case kindRemoveMember:
		f := ra.RemoveServer(serverID(q.member.ID), 0, enqueueTimeout(ctx))
		err := r.awaitOp(ctx, f)
		switch {
		case err == nil:
			return f.Index(), nil
		case q.member.ID == r.self.ID && errors.Is(err, consensus.ErrStopped) && r.raftStoppedItself(ra):
			// A leader removing itself stops as soon as the removal
			// commits, often before raft answers the future; raft stops
			// by itself for no other reason.
			return 0, nil
		}
		return 0, err
	}
	to := q.member.ID
	if to == 0 {
		return 0, r.awaitOp(ctx, ra.LeadershipTransfer())
	}
	if to == r.self.ID {
		// raft refuses a transfer to itself; it is already done.
		if ra.State() != raft.Leader {
			return 0, consensus.ErrNotLeader
		}
		return 0, nil
	}
	cf := ra.GetConfiguration()
	if err := r.awaitOp(ctx, cf); err != nil {
		return 0, err
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == serverID(to) {
			if s.Suffrage != raft.Voter {
				return 0, fmt.Errorf("%s: member %d is not a voter", ID, to)
			}
			return 0, r.awaitOp(ctx, ra.LeadershipTransferToServer(s.ID, s.Address))
		}
	}
	return 0, fmt.Errorf("%s: member %d is not in the configuration", ID, to)
}

// mayHaveChanged reports whether a membership change that ended with err
// may be in effect.
func mayHaveChanged(err error) bool {
	return err == nil || errors.Is(err, consensus.ErrUnknownOutcome) || errors.Is(err, consensus.ErrNoQuorum)
}

func (r *Replicator) noteClientAddr(m consensus.Member) {
	if m.ClientAddr == "" {
		return
	}
	r.clientMu.Lock()
	r.clientAddrs[m.ID] = m.ClientAddr
	r.clientMu.Unlock()
}

// raftStoppedItself reports whether raft shut down without Shutdown being
// called (a leader that removed itself).
func (r *Replicator) raftStoppedItself(ra *raft.Raft) bool {
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	return !stopped && ra.State() == raft.Shutdown
}

// serveMembership is the leader's side of a forwarded change: it answers
// with a response code, the entry's index for codeOK, and a message
// otherwise.
func (r *Replicator) serveMembership(q memberReq) (code byte, index uint64, msg string) {
	ra, err := r.running()
	if err != nil {
		return codeRefused, 0, err.Error()
	}
	if ra.State() != raft.Leader {
		return codeRefused, 0, fmt.Sprintf("member %d does not lead", r.self.ID)
	}
	timeout := q.timeout
	if timeout <= 0 {
		timeout = r.cfg.ForwardTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, maxMemberTimeout))
	defer cancel()
	index, err = r.execMembership(ctx, ra, q)
	switch {
	case err == nil:
		// The caller waits to see the entry, so it must hear of the commit.
		r.nudge()
		return codeOK, index, ""
	case errors.Is(err, consensus.ErrNotLeader):
		return codeRefused, 0, err.Error()
	case errors.Is(err, consensus.ErrUnknownOutcome), errors.Is(err, consensus.ErrStopped):
		// Stopped while the change was under way: it may still commit.
		return codeUnknown, 0, err.Error()
	case errors.Is(err, consensus.ErrNoQuorum):
		return codeNoQuorum, 0, err.Error()
	}
	r.log.Info("forwarded membership change failed", "change", q.String(), "error", err)
	return codeFailed, 0, err.Error()
}

// membership is a change made on a member that does not lead (or that
// just lost leadership): wait for a leader, send it the change, and try
// the next leader when one refuses it, all within ForwardTimeout.
func (fw *forwarder) membership(ctx context.Context, q memberReq) error {
	r := fw.r
	deadline := time.Now().Add(r.cfg.ForwardTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var refused error // the last refusal, for the timeout's message
	for {
		changed := r.leaderChanged()
		ra, err := r.running()
		if err != nil {
			return err
		}
		if ra.State() == raft.Leader {
			_, err := r.execMembership(ctx, ra, q)
			if !errors.Is(err, consensus.ErrNotLeader) {
				return err
			}
			refused = err
		} else if addr, id := ra.LeaderWithID(); addr != "" {
			index, retry, err := fw.sendMembership(ctx, addr, id, q)
			if err == nil {
				fw.settleMembership(ctx, q, index)
				return nil
			}
			if !retry {
				if mayHaveChanged(err) && q.kind == kindAddMember {
					r.noteClientAddr(q.member)
				}
				return err
			}
			refused = err
		}
		wait := time.NewTimer(retryDelay)
		select {
		case <-changed:
		case <-wait.C:
		case <-r.stop:
			wait.Stop()
			return consensus.ErrStopped
		case <-ctx.Done():
			wait.Stop()
			if ctx.Err() != context.DeadlineExceeded {
				return fmt.Errorf("%s: %s not sent: %w", ID, q, ctx.Err())
			}
			if refused != nil {
				return fmt.Errorf("%w: no leader took the change (%s) in time: %w", consensus.ErrNotLeader, q, refused)
			}
			return fmt.Errorf("%w: no leader within the forward timeout: %w", consensus.ErrNotLeader, context.DeadlineExceeded)
		}
		wait.Stop()
	}
}

type memberAnswer struct {
	code  byte
	index uint64
	msg   string
}

// sendMembership sends q to the leader at addr once and waits for the
// answer. retry reports that nothing was changed and another leader may
// be tried.
func (fw *forwarder) sendMembership(ctx context.Context, addr raft.ServerAddress, id raft.ServerID, q memberReq) (index uint64, retry bool, err error) {
	leader := fmt.Sprintf("the leader (member %s at %s)", id, addr)
	conn, err := fw.readConn(ctx, addr)
	if err != nil {
		return 0, true, fmt.Errorf("%w: cannot reach %s: %w", consensus.ErrNotLeader, leader, err)
	}
	deadline, _ := ctx.Deadline()
	ch := make(chan memberAnswer, 1)
	if !conn.sendDetailed(q.kind, q.encode(time.Until(deadline)), func(code byte, index uint64, msg string) {
		ch <- memberAnswer{code, index, msg}
	}) {
		return 0, true, fmt.Errorf("%w: connection to %s: %w", consensus.ErrNotLeader, leader, errConnClosed)
	}
	select {
	case a := <-ch:
		switch a.code {
		case codeOK:
			return a.index, false, nil
		case codeRefused:
			return 0, true, fmt.Errorf("%w: refused by %s: %s", consensus.ErrNotLeader, leader, a.msg)
		case codeNoQuorum:
			return 0, false, fmt.Errorf("%w: %s: %s", consensus.ErrNoQuorum, leader, a.msg)
		case codeFailed:
			return 0, false, fmt.Errorf("%s: %s: %s", ID, leader, a.msg)
		case codeLost:
			return 0, false, fmt.Errorf("%w: connection to %s closed before it answered", consensus.ErrUnknownOutcome, leader)
		}
		return 0, false, fmt.Errorf("%w: %s: %s", consensus.ErrUnknownOutcome, leader, a.msg)
	case <-ctx.Done():
		// As on the leader (awaitOp): the change may still commit.
		return 0, false, fmt.Errorf("%w: sent to %s: %w", consensus.ErrNoQuorum, leader, ctx.Err())
	case <-fw.r.stop:
		return 0, false, consensus.ErrStopped
	}
}

// settleMembership finishes a change the leader committed: remember the
// client address, and wait (within ctx) until the entry is applied here, so
// that Members on this member shows the change once the call returns, as a
// forwarded proposal is applied here before Propose returns. The change is
// done whatever the wait gives.
func (fw *forwarder) settleMembership(ctx context.Context, q memberReq, index uint64) {
	r := fw.r
	if q.kind == kindAddMember {
		r.noteClientAddr(q.member)
	}
	// A removed member hears nothing more from the leader.
	if index == 0 || q.kind == kindRemoveMember && q.member.ID == r.self.ID {
		return
	}
	if err := r.fsm.waitApplied(ctx, index); err != nil {
		r.log.Debug("membership change committed but not yet applied here", "change", q.String(), "index", index, "error", err)
	}
}

// checkStoredMembership compares, on a restart, the stored raft
// configuration with the configured member list. They may differ because
// membership changed at run time; the stored one then wins, with a
// warning. Start fails where they cannot both be right: this member is not
// in the stored configuration (it was removed, or the data belongs to
// another member) and is not started with Join, or the stored configuration
// has this member at another peer address, which is where the others dial.
func (r *Replicator) checkStoredMembership(stored []raft.Server) error {
	want := r.bootstrapConfiguration(r.localAddr).Servers
	views := func() string {
		return fmt.Sprintf("stored raft configuration: %s; configured members: %s", describeServers(stored), describeServers(want))
	}
	self := serverID(r.self.ID)
	i := slices.IndexFunc(stored, func(s raft.Server) bool { return s.ID == self })
	switch {
	case i < 0 && !r.cfg.Join:
		return fmt.Errorf("member %d is not in the stored raft configuration (%s): it was removed from the cluster, "+
			"or this data belongs to another member; to add it again, empty its storage and start it with join",
			r.self.ID, views())
	case i >= 0 && !r.sameAddress(stored[i].Address):
		return fmt.Errorf("member %d has peer address %s in the stored raft configuration but %s in the configured members (%s): "+
			"the other members dial the stored one; configure that address, or remove the member and add it again with the new one",
			r.self.ID, stored[i].Address, r.self.PeerAddr, views())
	}
	if r.cfg.Join {
		return nil // its list names itself only
	}
	same := len(stored) == len(want)
	for _, s := range stored {
		j := slices.IndexFunc(want, func(w raft.Server) bool { return w.ID == s.ID })
		same = same && j >= 0 && want[j].Suffrage == s.Suffrage && (want[j].Address == s.Address || s.ID == self)
	}
	if !same {
		r.log.Warn("stored raft membership differs from the configured members; using the stored one "+
			"(membership changed at run time?)", "stored", describeServers(stored), "configured", describeServers(want))
	}
	return nil
}

// sameAddress reports whether addr, from the stored configuration, is this
// member's configured peer address. A configured port 0 (a member alone,
// whose port changes at each start) matches anything; so do two spellings
// of one endpoint.
func (r *Replicator) sameAddress(addr raft.ServerAddress) bool {
	conf := r.self.PeerAddr
	if string(addr) == conf {
		return true
	}
	if _, port, _ := net.SplitHostPort(conf); port == "0" {
		return true
	}
	a, err1 := net.ResolveTCPAddr("tcp", string(addr))
	b, err2 := net.ResolveTCPAddr("tcp", conf)
	return err1 == nil && err2 == nil && a.Port == b.Port && a.IP.Equal(b.IP)
}

// describeServers renders a configuration for an operator: id=address
// and the role, in the order given.
func describeServers(servers []raft.Server) string {
	if len(servers) == 0 {
		return "(none)"
	}
	parts := make([]string, len(servers))
	for i, s := range servers {
		role := "voter"
		if s.Suffrage != raft.Voter {
			role = strings.ToLower(s.Suffrage.String())
		}
		parts[i] = fmt.Sprintf("%s=%s (%s)", s.ID, s.Address, role)
	}
	return strings.Join(parts, ", ")
}

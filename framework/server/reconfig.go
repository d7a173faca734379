package server

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/zkerr"
)

const configPath = "/zookeeper/config"

// standalone reports whether this server runs without a member list, where
// ZooKeeper answers reconfig with UNIMPLEMENTED and keeps /zookeeper/config
// empty.
func (s *Server) standalone() bool { return len(s.cfg.Members) == 0 }

// formatMembers renders members in ZooKeeper's dynamic-config syntax.
// Corral has one peer port, so it is written as both the quorum and the
// election port: server.N=host:port:port:role;clientHost:clientPort.
func formatMembers(members []consensus.Member) string {
	sorted := append([]consensus.Member(nil), members...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	anyVoter := false
	for _, m := range sorted {
		anyVoter = anyVoter || m.Voter
	}
	var b strings.Builder
	for _, m := range sorted {
		host, port, err := net.SplitHostPort(m.PeerAddr)
		if err != nil {
			host, port = m.PeerAddr, "0"
		}
		role := "participant"
		if anyVoter && !m.Voter {
			role = "observer"
		}
		fmt.Fprintf(&b, "server.%d=%s:%s:%s:%s", m.ID, host, port, port, role)
		if m.ClientAddr != "" {
			fmt.Fprintf(&b, ";%s", m.ClientAddr)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// configBody strips the version line Apply adds.
func configBody(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "version=") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// withVersion adds ZooKeeper's version line (the config's zxid in hex).
func withVersion(body string, zxid int64) []byte {
	return []byte(body + fmt.Sprintf("version=%x", zxid))
}

// currentMembers is the live membership when the plugin can report it,
// else the configured list. Client addresses come from the published
// config when the plugin does not know them.
func (s *Server) currentMembers(ctx context.Context) ([]consensus.Member, error) {
	if m, ok := s.repl.(consensus.Membership); ok {
		members, err := m.Members(ctx)
		if err != nil {
			return nil, err
		}
		known := map[uint64]string{}
		if resp, err := s.tree.Read(authFor(nil, true), 0, &op.GetDataRequest{Path: configPath}); err == nil {
			for _, pm := range parseConfigMembers(configBody(resp.(*op.GetDataResponse).Data)) {
				known[pm.ID] = pm.ClientAddr
			}
		}
		for _, c := range s.cfg.Members {
			if known[c.ID] == "" {
				known[c.ID] = c.ClientAddr
			}
		}
		for i := range members {
			if members[i].ClientAddr == "" {
				members[i].ClientAddr = known[members[i].ID]
			}
		}
		return members, nil
	}
	return s.cfg.Members, nil
}

// publishConfig makes /zookeeper/config match the membership; the leader
// runs it when it takes over and after every membership change.
func (s *Server) publishConfig(ctx context.Context, joined ...consensus.Member) error {
	if s.standalone() {
		return nil
	}
	members, err := s.currentMembers(ctx)
	if err != nil {
		return err
	}
	for i := range members {
		for _, j := range joined {
			if j.ID == members[i].ID && j.ClientAddr != "" {
				members[i].ClientAddr = j.ClientAddr
			}
		}
	}
	body := formatMembers(members)
	if resp, err := s.tree.Read(authFor(nil, true), 0, &op.GetDataRequest{Path: configPath}); err == nil {
		if configBody(resp.(*op.GetDataResponse).Data) == body {
			return nil
		}
	}
	return s.proposeWait(ctx, &txn.Txn{Kind: txn.SetConfig, Time: nowMs(), Origin: s.cfg.NodeID,
		Seq: s.addPending(&pending{}), Data: []byte(body)})
}

// parseServerSpec reads "server.N=host:port[:port][:role][;[clientHost:]clientPort]".
func parseServerSpec(spec string) (consensus.Member, error) {
	key, val, ok := strings.Cut(strings.TrimSpace(spec), "=")
	if !ok || !strings.HasPrefix(key, "server.") {
		return consensus.Member{}, fmt.Errorf("want server.N=host:port:port[:role][;client], got %q", spec)
	}
	id, err := strconv.ParseUint(strings.TrimPrefix(key, "server."), 10, 64)
	if err != nil || id == 0 {
		return consensus.Member{}, fmt.Errorf("bad server id in %q", spec)
	}
	peerPart, clientPart, _ := strings.Cut(val, ";")
	f := strings.Split(peerPart, ":")
	if len(f) < 2 || f[0] == "" {
		return consensus.Member{}, fmt.Errorf("bad peer address in %q", spec)
	}
	if _, err := strconv.ParseUint(f[1], 10, 16); err != nil {
		return consensus.Member{}, fmt.Errorf("bad peer port in %q", spec)
	}
	m := consensus.Member{ID: id, PeerAddr: net.JoinHostPort(f[0], f[1]), Voter: true}
	for _, extra := range f[2:] {
		switch extra {
		case "observer":
			m.Voter = false
		case "participant":
		default:
			if _, err := strconv.ParseUint(extra, 10, 16); err != nil {
				return consensus.Member{}, fmt.Errorf("bad role or port %q in %q", extra, spec)
			}
		}
	}
	if clientPart != "" {
		if !strings.Contains(clientPart, ":") {
			clientPart = net.JoinHostPort(f[0], clientPart)
		}
		m.ClientAddr = clientPart
	}
	return m, nil
}

func parseConfigMembers(body string) []consensus.Member {
	var out []consensus.Member
	for _, line := range strings.Split(body, "\n") {
		if m, err := parseServerSpec(line); err == nil {
			out = append(out, m)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// reconfig runs ZooKeeper's reconfig opcode (incremental: joining and
// leaving; or a whole new member list) through the consensus plugin's
// membership capability, then publishes the new /zookeeper/config.
// errOutcomeUnknown tells the caller to drop the connection: the
// membership changed but the new config could not be read back here (this
// member may have removed itself), so no answer would be truthful; the
// client sees ConnectionLoss and reads /zookeeper/config elsewhere, as with
// ZooKeeper when a reconfig removes the server it went through.
const errOutcomeUnknown zkerr.Code = zkerr.ConnectionLoss

func (s *Server) reconfig(ctx context.Context, a *attachment, r *op.ReconfigRequest) (op.Response, zkerr.Code) {
	switch {
	case !s.cfg.ReconfigEnabled:
		return nil, zkerr.ReconfigDisabled
	case s.standalone():
		return nil, zkerr.Unimplemented
	}
	if _, super := a.identities(); !super {
		// /zookeeper/config is read-only to everyone but the super user,
		// as in ZooKeeper without skipACL.
		return nil, zkerr.NoAuth
	}
	mem, ok := s.repl.(consensus.Membership)
	if !ok {
		return nil, zkerr.Unimplemented
	}
	if r.CurConfigID != -1 {
		if st, ok := s.tree.Stat(configPath); !ok || st.Mzxid != r.CurConfigID {
			return nil, zkerr.BadVersion
		}
	}
	current, err := s.currentMembers(ctx)
	if err != nil {
		return nil, zkerr.NewConfigNoQuorum
	}
	have := map[uint64]consensus.Member{}
	for _, m := range current {
		have[m.ID] = m
	}
	var joining []consensus.Member
	var leaving []uint64
	if r.NewMembers != "" {
		want := map[uint64]bool{}
		for _, spec := range splitList(r.NewMembers) {
			m, err := parseServerSpec(spec)
			if err != nil {
				return nil, zkerr.BadArguments
			}
			want[m.ID] = true
			if old, ok := have[m.ID]; !ok || old.PeerAddr != m.PeerAddr || old.Voter != m.Voter {
				joining = append(joining, m)
			}
		}
		for id := range have {
			if !want[id] {
				leaving = append(leaving, id)
			}
		}
	} else {
		for _, spec := range splitList(r.JoiningServers) {
			m, err := parseServerSpec(spec)
			if err != nil {
				return nil, zkerr.BadArguments
			}
			joining = append(joining, m)
		}
		for _, f := range splitList(r.LeavingServers) {
			id, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, zkerr.BadArguments
			}
			// ZooKeeper accepts leaving a server that is not a member.
			if _, ok := have[id]; ok {
				leaving = append(leaving, id)
			}
		}
	}
	sort.Slice(leaving, func(i, j int) bool { return leaving[i] < leaving[j] })
	for _, m := range joining {
		if err := mem.AddMember(ctx, m); err != nil {
			s.log.Warn("reconfig: add member failed", "id", m.ID, "err", err)
			return nil, zkerr.NewConfigNoQuorum
		}
	}
	for _, id := range leaving {
		if err := mem.RemoveMember(ctx, id); err != nil {
			s.log.Warn("reconfig: remove member failed", "id", id, "err", err)
			return nil, zkerr.NewConfigNoQuorum
		}
	}
	// Client addresses of new members are known only from the request.
	if err := s.publishConfig(ctx, joining...); err != nil {
		s.log.Warn("reconfig applied but the new config was not published from here", "err", err)
		return nil, errOutcomeUnknown
	}
	resp, err := s.tree.Read(authFor(nil, true), 0, &op.GetDataRequest{Path: configPath})
	if err != nil {
		return nil, errOutcomeUnknown
	}
	gd := resp.(*op.GetDataResponse)
	return &op.ReconfigResponse{Data: gd.Data, Stat: gd.Stat}, zkerr.OK
}

// publishOnLeadership keeps /zookeeper/config current from the leader.
func (s *Server) publishOnLeadership() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.publishConfig(ctx); err != nil {
		s.log.Warn("could not publish /zookeeper/config", "err", err)
	}
}

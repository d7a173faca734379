package main

// corralctl cluster: membership commands over the ZooKeeper protocol.
// The membership comes from /zookeeper/config (ZooKeeper's dynamic-config
// text), the per-member state from the srvr four-letter word, and changes go
// through the reconfig opcode (go-zk's IncrementalReconfig).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/go-zookeeper/zk"
)

const configPath = "/zookeeper/config"

// ensembleMember is one server.N line of the dynamic config:
// server.N=host:quorumPort[:electionPort][:role][;[clientHost:]clientPort].
type ensembleMember struct {
	ID           uint64
	Role         string // "participant" or "observer"
	PeerHost     string // without IPv6 brackets
	QuorumPort   int
	ElectionPort int    // 0 when the line carries a single port
	ClientHost   string // "" when only a port follows ';'
	ClientPort   int    // 0 when the line has no client address
}

// ensembleConfig is the parsed content of /zookeeper/config.
type ensembleConfig struct {
	Members []ensembleMember // sorted by id
	Version string           // hex after "version=", "" when absent
}

// parseDynamicConfig reads ZooKeeper's dynamic-config text. group.N and
// weight.N lines (hierarchical quorums) are accepted and ignored: they do
// not change who the members are.
func parseDynamicConfig(data string) (*ensembleConfig, error) {
	cfg := &ensembleConfig{}
	seen := map[uint64]bool{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config line %q: want key=value", line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case key == "version":
			if _, err := strconv.ParseUint(val, 16, 64); err != nil {
				return nil, fmt.Errorf("config line %q: version is not hex", line)
			}
			cfg.Version = val
		case strings.HasPrefix(key, "server."):
			m, err := parseServerLine(key, val)
			if err != nil {
				return nil, fmt.Errorf("config line %q: %v", line, err)
			}
			if seen[m.ID] {
				return nil, fmt.Errorf("config line %q: server %d listed twice", line, m.ID)
			}
			seen[m.ID] = true
			cfg.Members = append(cfg.Members, m)
		}
	}
	sort.Slice(cfg.Members, func(i, j int) bool { return cfg.Members[i].ID < cfg.Members[j].ID })
	return cfg, nil
}

func parseServerLine(key, val string) (ensembleMember, error) {
	var m ensembleMember
	id, err := strconv.ParseUint(strings.TrimPrefix(key, "server."), 10, 64)
	if err != nil {
		return m, fmt.Errorf("bad server id %q", strings.TrimPrefix(key, "server."))
	}
	m.ID, m.Role = id, "participant"
	addrPart, clientPart, hasClient := strings.Cut(val, ";")
	host, rest, err := splitHost(addrPart)
	if err != nil {
		return m, err
	}
	if host == "" || len(rest) == 0 {
		return m, errors.New("want host:port[:port][:role]")
	}
	m.PeerHost = host
	if m.QuorumPort, err = parsePort(rest[0]); err != nil {
		return m, err
	}
	rest = rest[1:]
	if len(rest) > 0 {
		if p, err := parsePort(rest[0]); err == nil {
			m.ElectionPort = p
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		switch role := strings.ToLower(rest[0]); role {
		case "participant", "observer":
			m.Role = role
		default:
			return m, fmt.Errorf("unknown role %q (want participant or observer)", rest[0])
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return m, fmt.Errorf("unexpected %q after the role", strings.Join(rest, ":"))
	}
	if hasClient {
		if m.ClientHost, m.ClientPort, err = parseClientAddr(clientPart); err != nil {
			return m, err
		}
	}
	return m, nil
}

// splitHost splits "host:a:b" or "[v6]:a:b" into the host and the
// colon-separated fields after it.
func splitHost(s string) (string, []string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", nil, fmt.Errorf("unclosed [ in %q", s)
		}
		host, after := s[1:end], s[end+1:]
		if after == "" {
			return host, nil, nil
		}
		if after[0] != ':' {
			return "", nil, fmt.Errorf("want ':' after ] in %q", s)
		}
		return host, strings.Split(after[1:], ":"), nil
	}
	f := strings.Split(s, ":")
	return f[0], f[1:], nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

// parseClientAddr reads the part after ';': "port", "host:port" or "[v6]:port".
func parseClientAddr(s string) (string, int, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, ":") {
		p, err := parsePort(s)
		return "", p, err
	}
	host, rest, err := splitHost(s)
	if err != nil {
		return "", 0, err
	}
	if len(rest) != 1 {
		return "", 0, fmt.Errorf("bad client address %q (want [host:]port)", s)
	}
	p, err := parsePort(rest[0])
	return host, p, err
}

// hostPort joins like net.JoinHostPort but with an int port.
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// PeerAddr is host:port for Corral's single peer port (written as
// host:port:port) and host:quorumPort:electionPort for ZooKeeper.
func (m ensembleMember) PeerAddr() string {
	s := hostPort(m.PeerHost, m.QuorumPort)
	if m.ElectionPort != 0 && m.ElectionPort != m.QuorumPort {
		s += ":" + strconv.Itoa(m.ElectionPort)
	}
	return s
}

// ClientAddr is the client address as the config gives it ("" when absent).
func (m ensembleMember) ClientAddr() string {
	switch {
	case m.ClientPort == 0:
		return ""
	case m.ClientHost == "":
		return strconv.Itoa(m.ClientPort)
	}
	return hostPort(m.ClientHost, m.ClientPort)
}

// DialAddr is where a client reaches the member. A wildcard or missing
// client host (ZooKeeper writes 0.0.0.0 for a server bound to all
// interfaces) is replaced by the peer host.
func (m ensembleMember) DialAddr() string {
	if m.ClientPort == 0 {
		return ""
	}
	host := m.ClientHost
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = m.PeerHost
	}
	return hostPort(host, m.ClientPort)
}

// Spec renders the member as a server.N line, the syntax reconfig takes.
// A single peer port is written twice, as Corral does.
func (m ensembleMember) Spec() string {
	election := m.ElectionPort
	if election == 0 {
		election = m.QuorumPort
	}
	s := fmt.Sprintf("server.%d=%s:%d:%s", m.ID, hostPort(m.PeerHost, m.QuorumPort), election, m.Role)
	if c := m.ClientAddr(); c != "" {
		s += ";" + c
	}
	return s
}

// parsePeerFlag reads --peer: host:port (Corral) or host:quorumPort:electionPort
// (ZooKeeper, whose two peer ports must differ).
func parsePeerFlag(s string) (host string, quorum, election int, err error) {
	host, rest, err := splitHost(s)
	if err != nil {
		return "", 0, 0, err
	}
	if host == "" || len(rest) < 1 || len(rest) > 2 {
		return "", 0, 0, fmt.Errorf("want host:port or host:quorumPort:electionPort, got %q", s)
	}
	if quorum, err = parsePort(rest[0]); err != nil {
		return "", 0, 0, err
	}
	election = quorum
	if len(rest) == 2 {
		if election, err = parsePort(rest[1]); err != nil {
			return "", 0, 0, err
		}
	}
	return host, quorum, election, nil
}

// formatMembers prints the membership table.
func formatMembers(w io.Writer, members []ensembleMember) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tPEER\tCLIENT")
	for _, m := range members {
		client := m.ClientAddr()
		if client == "" {
			client = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.ID, m.Role, m.PeerAddr(), client)
	}
	tw.Flush()
}

// srvrStats is what cluster status shows from a member's srvr answer.
type srvrStats struct {
	Mode        string // leader, follower, observer, standalone, read-only
	Zxid        string
	Nodes       string
	Connections string
	Latency     string // min/avg/max in ms, as srvr prints it
}

const notServing = "This ZooKeeper instance is not currently serving requests"

// errNotServing is srvr's answer from a member that is up but not in a
// quorum (ZooKeeper while electing or cut off).
var errNotServing = errors.New("not serving requests")

// parseSrvr reads srvr's "Key: value" lines.
func parseSrvr(out string) (srvrStats, error) {
	var st srvrStats
	if strings.HasPrefix(strings.TrimSpace(out), notServing) {
		return st, errNotServing
	}
	if strings.Contains(out, "is not executed because it is not in the whitelist") {
		return st, errors.New("srvr is not in the server's four-letter-word whitelist")
	}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Mode":
			st.Mode = strings.ToLower(v)
		case "Zxid":
			st.Zxid = v
		case "Node count":
			st.Nodes = v
		case "Connections":
			st.Connections = v
		case "Latency min/avg/max":
			st.Latency = v
		}
	}
	if st.Mode == "" {
		return st, fmt.Errorf("no Mode line in the srvr answer %q", firstLine(out))
	}
	return st, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// parseConfServerID reads serverId from the conf four-letter word.
func parseConfServerID(out string) (uint64, bool) {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "serverId="); ok {
			id, err := strconv.ParseUint(v, 10, 64)
			return id, err == nil
		}
	}
	return 0, false
}

// statusRow is one line of cluster status.
type statusRow struct {
	ID     string // "-" when unknown (standalone, or probed from --server)
	Client string
	Mode   string
	Stats  srvrStats
	Note   string
}

func formatStatus(w io.Writer, rows []statusRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLIENT\tMODE\tZXID\tNODES\tCONNS\tLATENCY(min/avg/max ms)\tNOTE")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.ID), dash(r.Client), r.Mode,
			dash(r.Stats.Zxid), dash(r.Stats.Nodes), dash(r.Stats.Connections), dash(r.Stats.Latency), r.Note)
	}
	tw.Flush()
}

// fourLetter sends a four-letter word and returns the whole answer
// (the server answers in plain text and closes).
func fourLetter(addr, word string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(word)); err != nil {
		return "", err
	}
	var sb strings.Builder
	buf := make([]byte, 8192)
	for {
		n, err := conn.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, io.EOF) && sb.Len() == 0 {
				return "", err
			}
			break
		}
	}
	if sb.Len() == 0 {
		return "", fmt.Errorf("no answer to %s", word)
	}
	return sb.String(), nil
}

// probeTimeout bounds each member's srvr/conf exchange: a paused member
// accepts the TCP connection but never answers.
func (c *cli) probeTimeout() time.Duration { return min(c.timeout, 5*time.Second) }

// The cluster subcommands, their options and argument counts.
var clusterSubs = map[string]struct {
	usage    string
	flags    []string
	min, max int
}{
	"list":            {"cluster list", nil, 0, 0},
	"status":          {"cluster status", nil, 0, 0},
	"add":             {"cluster add --id N --peer host:port --client host:port [--observer] [--version hex]", []string{"id", "peer", "client", "observer", "version"}, 0, 0},
	"remove":          {"cluster remove N [--version hex]", []string{"version"}, 1, 1},
	"transfer-leader": {"cluster transfer-leader N", nil, 1, 1},
}

const clusterUsage = "cluster list|status|add|remove|transfer-leader (corralctl help)"

// cmdCluster runs without the generic session: it validates the command
// line first (so usage errors need no server), transfer-leader never
// connects, and status can still probe members when no session can be had.
func cmdCluster(c *cli, p *parsed) error {
	name := p.args[0]
	sub, ok := clusterSubs[name]
	if !ok {
		return usagef("unknown cluster command %q (usage: %s)", name, clusterUsage)
	}
	args := p.args[1:]
	for f := range p.flags {
		allowed := false
		for _, a := range sub.flags {
			allowed = allowed || a == f
		}
		if !allowed {
			return usagef("option --%s does not apply (usage: %s)", f, sub.usage)
		}
	}
	if len(args) < sub.min || len(args) > sub.max {
		return usagef("usage: %s", sub.usage)
	}
	version := int64(-1)
	if v, ok := p.flags["version"]; ok {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 63)
		if err != nil {
			return usagef("invalid --version %q: want the hex config version cluster list prints", v)
		}
		version = int64(n)
	}
	switch name {
	case "list":
		return c.withSession(func() error { return clusterList(c) })
	case "status":
		return clusterStatus(c)
	case "add":
		spec, err := joiningSpec(p)
		if err != nil {
			return err
		}
		return c.withSession(func() error { return clusterReconfig(c, []string{spec}, nil, version) })
	case "remove":
		id, err := parseMemberID(args[0])
		if err != nil {
			return err
		}
		return c.withSession(func() error {
			return clusterReconfig(c, nil, []string{strconv.FormatUint(id, 10)}, version)
		})
	case "transfer-leader":
		if _, err := parseMemberID(args[0]); err != nil {
			return err
		}
		return errTransferLeader
	}
	return nil
}

// errTransferLeader: ZooKeeper's protocol has no leadership-transfer
// opcode, so the command exists to say so; exit 2 like a usage error.
var errTransferLeader = &codedError{
	msg:  "cluster transfer-leader: not supported over the ZooKeeper protocol yet (planned for the admin API)",
	code: exitUsage,
}

func parseMemberID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("invalid member id %q: want a positive integer", s)
	}
	return id, nil
}

// joiningSpec builds server.N=host:port:port:role;clientHost:clientPort
// from cluster add's options.
func joiningSpec(p *parsed) (string, error) {
	const usage = "cluster add --id N --peer host:port --client host:port [--observer]"
	for _, f := range []string{"id", "peer", "client"} {
		if _, ok := p.flags[f]; !ok {
			return "", usagef("cluster add needs --%s (usage: %s)", f, usage)
		}
	}
	id, err := parseMemberID(p.flags["id"])
	if err != nil {
		return "", err
	}
	host, quorum, election, err := parsePeerFlag(p.flags["peer"])
	if err != nil {
		return "", usagef("invalid --peer: %v", err)
	}
	chost, cport, err := parseClientAddr(p.flags["client"])
	if err != nil || chost == "" {
		return "", usagef("invalid --client %q: want host:port", p.flags["client"])
	}
	m := ensembleMember{ID: id, Role: "participant", PeerHost: host, QuorumPort: quorum, ElectionPort: election,
		ClientHost: chost, ClientPort: cport}
	if p.has("observer") {
		m.Role = "observer"
	}
	return m.Spec(), nil
}

// withSession runs fn on the shell's session, or on a session opened (and
// closed) for this command.
func (c *cli) withSession(fn func() error) error {
	if c.conn != nil {
		return fn()
	}
	if err := c.connect(c.auths); err != nil {
		return err
	}
	defer c.close()
	return fn()
}

// readConfig reads /zookeeper/config after a sync, so a follower answers
// with the leader's latest membership.
func (c *cli) readConfig() (string, *zk.Stat, error) {
	if _, err := c.conn.Sync(configPath); err != nil && isConnErr(err) {
		return "", nil, err
	}
	data, st, err := c.conn.Get(configPath)
	if err != nil {
		return "", nil, onPath(configPath, err)
	}
	return string(data), st, nil
}

func clusterList(c *cli) error {
	data, _, err := c.readConfig()
	if err != nil {
		return err
	}
	cfg, err := parseDynamicConfig(data)
	if err != nil {
		return fmt.Errorf("cannot parse %s: %v", configPath, err)
	}
	if len(cfg.Members) == 0 {
		srv := c.conn.Server()
		mode := c.emptyConfigNote(srv)
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tPEER\tCLIENT")
		fmt.Fprintf(tw, "-\t%s\t-\t%s\n", mode, srv)
		tw.Flush()
		return nil
	}
	formatMembers(c.out, cfg.Members)
	if cfg.Version != "" {
		fmt.Fprintf(c.out, "version=%s\n", cfg.Version)
	}
	return nil
}

// emptyConfigNote says why the member list is empty and returns the
// connected server's mode. A standalone server publishes no membership; a
// member of an ensemble may not have published it yet (Corral writes it once
// a leader is elected), which srvr tells apart.
func (c *cli) emptyConfigNote(srv string) string {
	mode := "standalone"
	if out, err := fourLetter(withDefaultPort(srv), "srvr", c.probeTimeout()); err == nil {
		if st, err := parseSrvr(out); err == nil {
			mode = st.Mode
		}
	}
	if mode == "standalone" {
		fmt.Fprintf(c.out, "standalone: %s is empty; showing the connected server\n", configPath)
	} else {
		fmt.Fprintf(c.out, "%s is empty although the server reports mode %s (membership not published yet); showing the connected server\n", configPath, mode)
	}
	return mode
}

// statusTarget is a member to probe.
type statusTarget struct {
	id     string
	client string // shown
	dial   string // dialled; "" when unknown
	note   string
}

// clusterStatus probes every member with srvr. Without a session (no
// quorum, for instance) it probes the --server addresses instead, since
// that is when an operator most needs the answer.
func clusterStatus(c *cli) error {
	var targets []statusTarget
	standalone := false
	err := c.withSession(func() error {
		data, _, err := c.readConfig()
		if err != nil {
			return err
		}
		cfg, err := parseDynamicConfig(data)
		if err != nil {
			return fmt.Errorf("cannot parse %s: %v", configPath, err)
		}
		if len(cfg.Members) == 0 {
			srv := c.conn.Server()
			if c.emptyConfigNote(srv) == "standalone" {
				standalone = true
				targets = []statusTarget{{id: "-", client: srv, dial: srv}}
			} else {
				targets = c.serverTargets()
			}
			return nil
		}
		targets = c.memberTargets(cfg.Members)
		return nil
	})
	if err != nil {
		if !isConnErr(err) {
			return err
		}
		msg, _ := describe(err, "")
		fmt.Fprintf(c.errOut, "cannot read %s (%s); probing the --server addresses instead\n", configPath, msg)
		targets = c.serverTargets()
	}

	rows := make([]statusRow, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		rows[i] = statusRow{ID: t.id, Client: t.client, Note: t.note}
		if t.dial == "" {
			rows[i].Mode = "unknown"
			continue
		}
		wg.Add(1)
		go func(r *statusRow, addr string) {
			defer wg.Done()
			out, err := fourLetter(addr, "srvr", c.probeTimeout())
			if err != nil {
				r.Mode, r.Note = "unreachable", joinNote(r.Note, err.Error())
				return
			}
			st, err := parseSrvr(out)
			switch {
			case errors.Is(err, errNotServing):
				r.Mode = "not-serving"
			case err != nil:
				r.Mode, r.Note = "unknown", joinNote(r.Note, err.Error())
			default:
				r.Mode, r.Stats = st.Mode, st
			}
		}(&rows[i], t.dial)
	}
	wg.Wait()
	formatStatus(c.out, rows)

	var leaders []string
	unprobed := 0
	for _, r := range rows {
		if r.Mode == "leader" || (standalone && r.Mode == "standalone") {
			leaders = append(leaders, r.ID)
		}
		if r.Mode == "unknown" && r.Stats.Mode == "" && r.Client == "" {
			unprobed++
		}
	}
	switch {
	case len(leaders) == 0 && unprobed > 0:
		fmt.Fprintf(c.errOut, "no leader found (%d members could not be probed: give every member's client address with --server)\n", unprobed)
		return &silentError{code: exitZK}
	case len(leaders) == 0:
		fmt.Fprintln(c.errOut, "no leader found")
		return &silentError{code: exitZK}
	case len(leaders) > 1:
		// Transient after a partition heals: the old leader has not yet
		// heard of the new term.
		fmt.Fprintf(c.errOut, "warning: %d members report leader\n", len(leaders))
	}
	return nil
}

// serverTargets probes the --server addresses when the membership is unknown.
func (c *cli) serverTargets() []statusTarget {
	var out []statusTarget
	for _, s := range c.servers {
		addr := withDefaultPort(s)
		out = append(out, statusTarget{id: "-", client: addr, dial: addr})
	}
	return out
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func withDefaultPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(s, "2181")
	}
	return s
}

// memberTargets turns members into probe targets. ZooKeeper's static
// server.N lines carry no client address; for those members the --server
// addresses are asked for their serverId with conf, which maps them.
func (c *cli) memberTargets(members []ensembleMember) []statusTarget {
	learned := map[uint64]string{}
	for _, m := range members {
		if m.ClientPort == 0 {
			learned = c.learnClientAddrs()
			break
		}
	}
	out := make([]statusTarget, len(members))
	for i, m := range members {
		t := statusTarget{id: strconv.FormatUint(m.ID, 10), client: m.ClientAddr(), dial: m.DialAddr()}
		if t.dial == "" {
			if addr, ok := learned[m.ID]; ok {
				t.client, t.dial, t.note = addr, addr, "client address from conf on --server"
			} else {
				t.note = "no client address in " + configPath + " (list it in --server)"
			}
		}
		out[i] = t
	}
	return out
}

func (c *cli) learnClientAddrs() map[uint64]string {
	learned := map[uint64]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range c.servers {
		addr := withDefaultPort(s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := fourLetter(addr, "conf", c.probeTimeout())
			if err != nil {
				return
			}
			if id, ok := parseConfServerID(out); ok {
				mu.Lock()
				learned[id] = addr
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return learned
}

// clusterReconfig sends an incremental reconfig and prints the new config.
// go-zk's IncrementalReconfig returns only the Stat of the new config, so
// the text is read back on the same session; the read sees at least that
// version because the reply came after the change committed.
func clusterReconfig(c *cli, joining, leaving []string, version int64) error {
	st, err := c.conn.IncrementalReconfig(joining, leaving, version)
	if err != nil {
		if errors.Is(err, zk.ErrConnectionClosed) {
			return c.confirmAfterLoss(joining, leaving)
		}
		return reconfigError(err)
	}
	data, now, err := c.readConfigAfterReconfig()
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, "Committed new configuration:")
	fmt.Fprintln(c.out, strings.TrimRight(data, "\n"))
	if st != nil && now.Mzxid != st.Mzxid {
		fmt.Fprintf(c.errOut, "note: the configuration changed again after this reconfig (0x%x, now 0x%x)\n", st.Mzxid, now.Mzxid)
	}
	return nil
}

// confirmAfterLoss handles a reconfig whose reply never came: ZooKeeper
// drops every connection when the leader leaves the ensemble, and a removed
// server drops its own clients. Once go-zk has the session back (on another
// --server), the current config tells whether the change is in.
func (c *cli) confirmAfterLoss(joining, leaving []string) error {
	fmt.Fprintln(c.errOut, "connection lost during reconfig (expected when the leader or the connected server leaves); reconnecting to check")
	data, _, err := c.readConfigAfterReconfig()
	if err != nil {
		return err
	}
	cfg, err := parseDynamicConfig(data)
	if err != nil {
		return fmt.Errorf("cannot parse %s: %v", configPath, err)
	}
	if !reconfigApplied(cfg, joining, leaving) {
		return &connError{"connection lost during reconfig and the current configuration does not show the change:\n" + strings.TrimRight(data, "\n")}
	}
	fmt.Fprintln(c.out, "Committed new configuration:")
	fmt.Fprintln(c.out, strings.TrimRight(data, "\n"))
	return nil
}

// readConfigAfterReconfig reads /zookeeper/config, riding out connection
// losses until --timeout: after a reconfig the ensemble may be electing a
// new leader, and ZooKeeper drops client connections meanwhile.
func (c *cli) readConfigAfterReconfig() (string, *zk.Stat, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		if c.conn.State() == zk.StateHasSession {
			data, st, err := c.readConfig()
			if err == nil {
				return data, st, nil
			}
			if !isConnErr(err) || errors.Is(err, zk.ErrSessionExpired) {
				return "", nil, err
			}
		}
		if time.Now().After(deadline) {
			return "", nil, &connError{fmt.Sprintf("could not read %s within %v after the reconfig; run cluster list against another member to see whether it was applied", configPath, c.timeout)}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reconfigApplied reports whether cfg has every joining spec and none of
// the leaving ids.
func reconfigApplied(cfg *ensembleConfig, joining, leaving []string) bool {
	have := map[uint64]ensembleMember{}
	for _, m := range cfg.Members {
		have[m.ID] = m
	}
	for _, id := range leaving {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return false
		}
		if _, ok := have[n]; ok {
			return false
		}
	}
	for _, spec := range joining {
		want, err := parseDynamicConfig(spec)
		if err != nil || len(want.Members) != 1 {
			return false
		}
		w := want.Members[0]
		got, ok := have[w.ID]
		if !ok || got.PeerHost != w.PeerHost || got.QuorumPort != w.QuorumPort || got.Role != w.Role {
			return false
		}
	}
	return true
}

// reconfigError words the reconfig failures an operator can act on.
func reconfigError(err error) error {
	code, ok := codeOf(err)
	if !ok || isConnErr(err) {
		return err
	}
	var msg string
	switch code {
	case codeReconfigDisable:
		msg = "reconfig is disabled on the server: set reconfig_enabled: true / reconfigEnabled=true"
	case codeNoAuth:
		msg = "reconfig needs the super user: pass --auth digest:super:<password> (the server's super_digest / DigestAuthenticationProvider.superDigest)"
	case codeUnimplemented:
		msg = "the server is standalone: reconfig needs a replicated ensemble (or the server cannot change membership)"
	case codeBadVersion:
		msg = "the configuration changed since --version (BadVersion): run cluster list and retry with the current version"
	case codeNewConfigNoQuorum:
		msg = "the change could not be committed (NewConfigNoQuorum): a majority of the new configuration must be up and in sync, so start a joining member first"
	case codeReconfigInProgress:
		msg = "another reconfig is in progress (ReconfigInProgress): retry when it has finished"
	case codeBadArguments:
		msg = "the server refused the change as invalid (BadArguments): check the member id and addresses (ZooKeeper also refuses a configuration left without a follower)"
	default:
		return err
	}
	return &codedError{msg: msg, code: exitZK}
}

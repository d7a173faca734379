package server

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	zkop "github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/watch"
)

type stats struct {
	received   atomic.Int64
	sent       atomic.Int64
	commits    atomic.Int64
	connects   atomic.Int64
	expired    atomic.Int64
	minLatency atomic.Int64
	maxLatency atomic.Int64
	totLatency atomic.Int64
	cntLatency atomic.Int64
}

// observe records a request's latency (microseconds internally; reported
// in milliseconds as ZooKeeper does).
func (st *stats) observe(d time.Duration) {
	us := d.Microseconds()
	st.totLatency.Add(us)
	st.cntLatency.Add(1)
	for {
		cur := st.maxLatency.Load()
		if us <= cur || st.maxLatency.CompareAndSwap(cur, us) {
			break
		}
	}
	for {
		cur := st.minLatency.Load()
		if (cur >= 0 && us >= cur) || st.minLatency.CompareAndSwap(cur, us) {
			break
		}
	}
}

var fourLetterWords = map[string]bool{
	"ruok": true, "srvr": true, "stat": true, "mntr": true, "conf": true, "cons": true,
	"envi": true, "wchs": true, "wchc": true, "wchp": true, "dump": true, "isro": true,
	"dirs": true, "crst": true, "srst": true, "gtmk": true, "stmk": true, "hash": true,
}

// FourLetterWord implements protocol.Backend with ZooKeeper's output formats.
func (s *Server) FourLetterWord(cmd string) (string, bool) {
	if !fourLetterWords[cmd] {
		return "", false
	}
	if !s.fourLetterAllowed(cmd) {
		return cmd + " is not executed because it is not in the whitelist.\n", true
	}
	switch cmd {
	case "ruok":
		return "imok", true
	case "isro":
		if s.readOnly() {
			return "ro", true
		}
		return "rw", true
	case "srvr":
		return s.srvr(false), true
	case "stat":
		return s.srvr(true), true
	case "mntr":
		return s.mntr(), true
	case "conf":
		return s.conf(), true
	case "cons":
		return s.cons(), true
	case "envi":
		return s.envi(), true
	case "wchs":
		sum := s.watches.Summary()
		return fmt.Sprintf("%d connections watching %d paths\nTotal watches:%d\n", sum.Watchers, sum.Paths, sum.Total), true
	case "wchc":
		return s.wchc(), true
	case "wchp":
		return s.wchp(), true
	case "dump":
		return s.dump(), true
	case "dirs":
		size := dirSize(s.cfg.DataDir)
		return fmt.Sprintf("datadir_size: %d\nlogdir_size: %d\n", size, 0), true
	case "crst", "srst":
		s.stats.minLatency.Store(-1)
		s.stats.maxLatency.Store(0)
		s.stats.totLatency.Store(0)
		s.stats.cntLatency.Store(0)
		if cmd == "crst" {
			return "Connection stats reset.\n", true
		}
		return "Server stats reset.\n", true
	case "gtmk":
		return "0\n", true
	case "stmk":
		return "0\n", true
	case "hash":
		// Under the apply lock, so the zxid and the digest are one state.
		s.applyMu.RLock()
		zxid, digest := s.lastZxid.Load(), s.tree.Digest()
		s.applyMu.RUnlock()
		return fmt.Sprintf("Digest in zxid 0x%x: %d\n", zxid, digest), true
	}
	return "", false
}

func (s *Server) fourLetterAllowed(cmd string) bool {
	for _, w := range s.cfg.FourLetterWords {
		if w == "*" || w == cmd {
			return true
		}
	}
	return false
}

func (s *Server) mode() string {
	if s.readOnly() {
		return "read-only"
	}
	if len(s.cfg.Members) <= 1 {
		return "standalone"
	}
	if s.repl.IsLeader() {
		return "leader"
	}
	anyVoter, self := false, true
	for _, m := range s.cfg.Members {
		anyVoter = anyVoter || m.Voter
		if m.ID == s.cfg.NodeID {
			self = m.Voter
		}
	}
	if anyVoter && !self {
		return "observer"
	}
	return "follower"
}

// latency returns min and max in whole ms and the average in ms.
func (s *Server) latency() (minL int64, avgL float64, maxL int64) {
	minL = s.stats.minLatency.Load()
	if minL < 0 {
		minL = 0
	}
	if n := s.stats.cntLatency.Load(); n > 0 {
		avgL = float64(s.stats.totLatency.Load()) / float64(n) / 1000
	}
	return minL / 1000, avgL, s.stats.maxLatency.Load() / 1000
}

func (s *Server) connections() []*attachment {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	out := make([]*attachment, 0, len(s.attached))
	for _, a := range s.attached {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Server) srvr(withClients bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Zookeeper version: %s-corral, built on %s\n", zkCompatVersion, buildDate)
	if withClients {
		b.WriteString("Clients:\n")
		for _, a := range s.connections() {
			fmt.Fprintf(&b, " /%s[1](queued=0,recved=%d,sent=%d)\n", a.conn.RemoteAddr(), a.received.Load(), a.sent.Load())
		}
		b.WriteString("\n")
	}
	minL, avgL, maxL := s.latency()
	nodes, _, _ := s.tree.Counts()
	fmt.Fprintf(&b, "Latency min/avg/max: %d/%.4f/%d\n", minL, avgL, maxL)
	fmt.Fprintf(&b, "Received: %d\n", s.stats.received.Load())
	fmt.Fprintf(&b, "Sent: %d\n", s.stats.sent.Load())
	fmt.Fprintf(&b, "Connections: %d\n", len(s.connections()))
	fmt.Fprintf(&b, "Outstanding: %d\n", s.outstanding())
	fmt.Fprintf(&b, "Zxid: 0x%x\n", s.lastZxid.Load())
	fmt.Fprintf(&b, "Mode: %s\n", s.mode())
	fmt.Fprintf(&b, "Node count: %d\n", nodes)
	return b.String()
}

func (s *Server) outstanding() int {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return len(s.pending)
}

func (s *Server) mntr() string {
	minL, avgL, maxL := s.latency()
	nodes, ephemerals, dataBytes := s.tree.Counts()
	sum := s.watches.Summary()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	lines := [][2]string{
		{"zk_version", zkCompatVersion + "-corral, built on " + buildDate},
		{"zk_server_state", s.mode()},
		{"zk_avg_latency", fmt.Sprintf("%.4f", avgL)},
		{"zk_max_latency", fmt.Sprint(maxL)},
		{"zk_min_latency", fmt.Sprint(minL)},
		{"zk_packets_received", fmt.Sprint(s.stats.received.Load())},
		{"zk_packets_sent", fmt.Sprint(s.stats.sent.Load())},
		{"zk_num_alive_connections", fmt.Sprint(len(s.connections()))},
		{"zk_outstanding_requests", fmt.Sprint(s.outstanding())},
		{"zk_znode_count", fmt.Sprint(nodes)},
		{"zk_watch_count", fmt.Sprint(sum.Total)},
		{"zk_ephemerals_count", fmt.Sprint(ephemerals)},
		{"zk_approximate_data_size", fmt.Sprint(dataBytes)},
		{"zk_open_file_descriptor_count", fmt.Sprint(openFDs())},
		{"zk_global_sessions", fmt.Sprint(len(s.sessionIDs()))},
		{"zk_local_sessions", fmt.Sprint(s.locals.count())},
		{"zk_uptime", fmt.Sprint(time.Since(s.started).Milliseconds())},
		{"zk_commit_count", fmt.Sprint(s.stats.commits.Load())},
		{"zk_connection_request_count", fmt.Sprint(s.stats.connects.Load())},
		{"zk_sessions_expired", fmt.Sprint(s.stats.expired.Load())},
		{"zk_heap_bytes", fmt.Sprint(ms.HeapAlloc)},
	}
	if len(s.cfg.Members) > 1 {
		lines = append(lines, [2]string{"zk_quorum_size", fmt.Sprint(len(s.cfg.Members))})
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l[0])
		b.WriteByte('\t')
		b.WriteString(l[1])
		b.WriteByte('\n')
	}
	return b.String()
}

func (s *Server) conf() string {
	var b strings.Builder
	port := ""
	if addrs := s.Addrs(); len(addrs) > 0 && addrs[0] != nil {
		a := addrs[0].String()
		port = a[strings.LastIndexByte(a, ':')+1:]
	}
	fmt.Fprintf(&b, "clientPort=%s\n", port)
	fmt.Fprintf(&b, "secureClientPort=-1\n")
	fmt.Fprintf(&b, "dataDir=%s\n", s.cfg.DataDir)
	fmt.Fprintf(&b, "dataDirSize=%d\n", dirSize(s.cfg.DataDir))
	fmt.Fprintf(&b, "dataLogDir=%s\n", s.cfg.DataDir)
	fmt.Fprintf(&b, "dataLogSize=0\n")
	fmt.Fprintf(&b, "tickTime=%d\n", s.cfg.TickTime.Milliseconds())
	fmt.Fprintf(&b, "maxClientCnxns=%d\n", s.cfg.MaxClientConns)
	fmt.Fprintf(&b, "minSessionTimeout=%d\n", s.cfg.MinSessionTimeout.Milliseconds())
	fmt.Fprintf(&b, "maxSessionTimeout=%d\n", s.cfg.MaxSessionTimeout.Milliseconds())
	fmt.Fprintf(&b, "clientPortListenBacklog=-1\n")
	fmt.Fprintf(&b, "serverId=%d\n", s.cfg.NodeID)
	anyVoter := false
	for _, m := range s.cfg.Members {
		anyVoter = anyVoter || m.Voter
	}
	for _, m := range s.cfg.Members {
		// As in consensus plugins: with no member marked, all vote.
		role := "participant"
		if anyVoter && !m.Voter {
			role = "observer"
		}
		fmt.Fprintf(&b, "server.%d=%s:%s;%s\n", m.ID, m.PeerAddr, role, m.ClientAddr)
	}
	return b.String()
}

func (s *Server) cons() string {
	var b strings.Builder
	for _, a := range s.connections() {
		op := zkop.Code(a.lastOp.Load()).String()
		fmt.Fprintf(&b, " /%s[1](queued=0,recved=%d,sent=%d,sid=0x%x,lop=%s,est=%d,to=%d,lzxid=0x%x)\n",
			a.conn.RemoteAddr(), a.received.Load(), a.sent.Load(), uint64(a.id), op, a.created.UnixMilli(),
			s.sessionTimeout(a.id), a.lastZxid.Load())
	}
	b.WriteString("\n")
	return b.String()
}

func (s *Server) envi() string {
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	var b strings.Builder
	b.WriteString("Environment:\n")
	fmt.Fprintf(&b, "zookeeper.version=%s-corral, built on %s\n", zkCompatVersion, buildDate)
	fmt.Fprintf(&b, "host.name=%s\n", host)
	fmt.Fprintf(&b, "corral.version=%s\n", Version)
	fmt.Fprintf(&b, "go.version=%s\n", runtime.Version())
	fmt.Fprintf(&b, "os.name=%s\n", runtime.GOOS)
	fmt.Fprintf(&b, "os.arch=%s\n", runtime.GOARCH)
	fmt.Fprintf(&b, "user.dir=%s\n", wd)
	return b.String()
}

func (s *Server) wchc() string {
	var b strings.Builder
	byW := s.watches.ByWatcher()
	ids := make([]*attachment, 0, len(byW))
	for w := range byW {
		if a, ok := w.(*attachment); ok {
			ids = append(ids, a)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].id < ids[j].id })
	for _, a := range ids {
		fmt.Fprintf(&b, "0x%x\n", uint64(a.id))
		for _, p := range byW[a] {
			fmt.Fprintf(&b, "\t%s\n", p)
		}
	}
	return b.String()
}

func (s *Server) wchp() string {
	var b strings.Builder
	byP := s.watches.ByPath()
	paths := make([]string, 0, len(byP))
	for p := range byP {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(&b, "%s\n", p)
		seen := map[watch.Watcher]bool{}
		for _, w := range byP[p] {
			if a, ok := w.(*attachment); ok && !seen[w] {
				seen[w] = true
				fmt.Fprintf(&b, "\t0x%x\n", uint64(a.id))
			}
		}
	}
	return b.String()
}

func (s *Server) dump() string {
	var b strings.Builder
	b.WriteString("SessionTracker dump:\n")
	ids := s.sessionIDs()
	fmt.Fprintf(&b, "Session Sets (%d)/(%d):\n", len(ids), len(ids))
	for _, id := range ids {
		fmt.Fprintf(&b, "0x%x\n", uint64(id))
	}
	b.WriteString("ephemeral nodes dump:\n")
	eph := s.tree.EphemeralSessions()
	fmt.Fprintf(&b, "Sessions with Ephemerals (%d):\n", len(eph))
	owners := make([]int64, 0, len(eph))
	for id := range eph {
		owners = append(owners, id)
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i] < owners[j] })
	for _, id := range owners {
		fmt.Fprintf(&b, "0x%x:\n", uint64(id))
		for _, p := range eph[id] {
			fmt.Fprintf(&b, "\t%s\n", p)
		}
	}
	b.WriteString("Connections dump:\n")
	return b.String()
}

// Package proccluster runs a Corral ensemble as real processes on loopback:
// the real binary, real sockets, real disks. Members can be killed with
// SIGKILL, stopped, restarted and paused with SIGSTOP, so tests can inject
// the faults an operator sees.
package proccluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var build struct {
	sync.Once
	path string
	err  error
}

// Binary builds cmd/corral once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			build.err = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "corral-bin")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "corral")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/corral")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/corral: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Options shape the ensemble.
type Options struct {
	// Extra is appended to every member's YAML config.
	Extra string
	// Consensus is the consensus slot body (default "type: raft").
	Consensus string
	// Storage is the storage slot body (default "type: bolt").
	Storage string
	// Protocol names a protocol plugin served next to the native listener
	// (which go-zookeeper clients and four-letter words use), on
	// Member.ProtocolAddr. Empty or "native" adds no listener.
	Protocol string
}

// Member is one server process.
type Member struct {
	ID         uint64
	ClientAddr string
	PeerAddr   string
	// ProtocolAddr is where Options.Protocol listens (ClientAddr when that
	// is the native protocol).
	ProtocolAddr string
	Dir          string
	cfgPath      string
	t            testing.TB
	bin          string
	Process
}

// Cluster is a running ensemble.
type Cluster struct {
	Members []*Member
	t       testing.TB
}

func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var lns []net.Listener
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// Start launches an n-member ensemble and waits until a leader serves.
func Start(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	bin := Binary(t)
	addrs := freePorts(t, 3*n)
	c := &Cluster{t: t}
	var members strings.Builder
	for i := 0; i < n; i++ {
		m := &Member{ID: uint64(i + 1), ClientAddr: addrs[3*i], PeerAddr: addrs[3*i+1], Dir: t.TempDir(), t: t, bin: bin}
		m.ProtocolAddr = m.ClientAddr
		if o.Protocol != "" && o.Protocol != "native" {
			m.ProtocolAddr = addrs[3*i+2]
		}
		c.Members = append(c.Members, m)
		fmt.Fprintf(&members, "  - {id: %d, peer: %q, client: %q}\n", m.ID, m.PeerAddr, m.ClientAddr)
	}
	if o.Consensus == "" {
		o.Consensus = "type: raft"
	}
	if o.Storage == "" {
		o.Storage = "type: bolt"
	}
	for _, m := range c.Members {
		protocols := fmt.Sprintf("  - {type: native, listen: %q}\n", m.ClientAddr)
		if m.ProtocolAddr != m.ClientAddr {
			protocols += fmt.Sprintf("  - {type: %s, listen: %q}\n", o.Protocol, m.ProtocolAddr)
		}
		cfg := fmt.Sprintf(`node_id: %d
data_dir: %q
tick_time: 500ms
four_letter_words: ["*"]
log: {level: info}
members:
%sconsensus:
  %s
storage:
  %s
protocols:
%s%s`, m.ID, filepath.Join(m.Dir, "data"), members.String(), o.Consensus, o.Storage, protocols, o.Extra)
		m.cfgPath = filepath.Join(m.Dir, "corral.yaml")
		if err := os.WriteFile(m.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members {
		m.Start()
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	c.WaitLeader(30 * time.Second)
	return c
}

// Start launches the member's process (again, after Kill/Stop).
func (m *Member) Start() {
	m.Run(m.t, filepath.Join(m.Dir, "corral.log"), m.bin, "serve", "--config", m.cfgPath)
}

// FourLetter sends a four-letter word to the member.
func (m *Member) FourLetter(cmd string) (string, error) {
	return FourLetter(net.DialTimeout, m.ClientAddr, cmd)
}

// Mode is the member's srvr Mode line (leader, follower, standalone) or ""
// when it does not answer.
func (m *Member) Mode() string { return ModeOf(m.FourLetter("srvr")) }

// Leader returns the member that reports itself leader, or nil.
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if m.Running() && m.Mode() == "leader" {
			return m
		}
	}
	return nil
}

// WaitLeader waits until some running member leads and every running
// member answers.
func (c *Cluster) WaitLeader(d time.Duration) *Member {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	var logs strings.Builder
	for _, m := range c.Members {
		fmt.Fprintf(&logs, "--- member %d (running=%v)\n%s\n", m.ID, m.Running(), m.LogTail(15))
	}
	c.t.Fatalf("no leader within %s\n%s", d, logs.String())
	return nil
}

// ProtocolAddrs lists every member's Options.Protocol address.
func (c *Cluster) ProtocolAddrs() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ProtocolAddr)
	}
	return out
}

// ClientAddrs lists every member's client address.
func (c *Cluster) ClientAddrs() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientAddr)
	}
	return out
}

// Followers returns the running members that are not the given leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m != leader && m.Running() {
			out = append(out, m)
		}
	}
	return out
}

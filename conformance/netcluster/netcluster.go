//go:build linux

// Package netcluster runs a Corral ensemble as real processes with every
// member in a network namespace of its own, so that tests can cut a member
// off the network and heal it: the fault a kill or a pause cannot show,
// where the member keeps running, keeps its clients' sockets and believes
// what it believed before, but nobody hears it.
//
// Layout, all of it created by Start and deleted in t.Cleanup:
//
//	corral-<rand>-1 ... corral-<rand>-N   one member each, eth0 = 10.231.7.<id>/24
//	corral-<rand>-hub                     bridge br0 joining m<id> (peer of member <id>'s eth0) and uplink
//	root namespace                        corral<rand> (peer of the hub's uplink) = 10.231.7.254/24
//
// The test process reaches members through that one root-side link only:
// Dial binds every socket to it (SO_BINDTODEVICE), so no byte meant for a
// member can leave by another interface, and it refuses addresses outside
// the subnet. Partition makes the member's namespace drop every IP packet
// on its eth0 (iptables inside that namespace only, never the root's):
// packets both ways vanish silently, no reset or unreachable error tells
// either side, and the member's own address stays usable inside its
// namespace (DialInside, ModeInside), so a test can watch the cut-off side
// too.
//
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `ip netns`). Without it Start
// skips the test naming the command that failed; with CI set it fails
// instead, because CI runs as root and must run these tests.
package netcluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/conformance/proccluster"
)

// The one subnet every run uses. It exists only inside the namespaces a run
// creates and on that run's root-side link; a file lock keeps two test
// processes from using it at once.
var (
	Subnet = netip.MustParsePrefix("10.231.7.0/24")
	hostIP = netip.MustParseAddr("10.231.7.254")
)

// Ports every member listens on, at its own address.
const (
	PeerPort   = 2888
	ClientPort = 2181
)

// nsRunDir is where `ip netns add` bind-mounts named namespaces.
const nsRunDir = "/var/run/netns"

// Options shape the ensemble (as proccluster.Options).
type Options struct {
	// Extra is appended to every member's YAML config.
	Extra string
	// Consensus is the consensus slot body (default "type: raft").
	Consensus string
	// Storage is the storage slot body (default "type: bolt").
	Storage string
}

// Cluster is a running ensemble in network namespaces.
type Cluster struct {
	Members []*Member
	// Hub is the namespace holding the bridge.
	Hub string
	t   testing.TB
	net *network
}

// Member is one server process in its own namespace.
type Member struct {
	ID uint64
	// NS is the member's network namespace.
	NS         string
	IP         netip.Addr
	ClientAddr string
	PeerAddr   string
	Dir        string

	c       *Cluster
	hubPort string // the member's port on the hub bridge
	cfgPath string
	bin     string

	proccluster.Process

	mu  sync.Mutex // guards cut
	cut bool
}

// network records what one run created, so that teardown deletes exactly
// that and nothing else.
type network struct {
	t        testing.TB
	suffix   string
	lock     *os.File
	mu       sync.Mutex
	ns       []string // namespaces created, in order
	rootLink string   // root-side veth, once created
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("`ip %s` failed: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unavailable ends the test when the machine does not let us build
// namespaces: a skip locally, a failure in CI.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("network namespaces unavailable (CI is set, and CI must run the partition tests as root): %v", err)
	}
	t.Skipf("network namespaces unavailable, skipping (needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN): %v", err)
}

func randSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockPath is shared by every test process on the machine, since
// namespaces and the root-side route are machine-wide.
func lockPath() string {
	if st, err := os.Stat("/run/lock"); err == nil && st.IsDir() {
		return "/run/lock/corral-netcluster.lock"
	}
	return filepath.Join(os.TempDir(), "corral-netcluster.lock")
}

func (n *network) acquire() error {
	f, err := os.OpenFile(lockPath(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			n.lock = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return fmt.Errorf("lock %s (another test process runs namespaced ensembles): %w", lockPath(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (n *network) addNS(name string) error {
	if err := ipCmd("netns", "add", name); err != nil {
		return err
	}
	n.mu.Lock()
	n.ns = append(n.ns, name)
	n.mu.Unlock()
	return nil
}

// teardown deletes what this run created: the root-side link (which takes
// its peer with it) and the namespaces (which take their links with them
// once no process is left inside, so members are killed before this runs).
func (n *network) teardown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	if n.rootLink != "" {
		if err := ipCmd("link", "del", n.rootLink); err != nil {
			errs = append(errs, err)
		}
		n.rootLink = ""
	}
	for i := len(n.ns) - 1; i >= 0; i-- {
		if err := ipCmd("netns", "del", n.ns[i]); err != nil {
			errs = append(errs, err)
		}
	}
	n.ns = nil
	if n.lock != nil {
		n.lock.Close() // releases the flock
		n.lock = nil
	}
	if len(errs) > 0 {
		n.t.Errorf("netcluster teardown left something behind: %v", errors.Join(errs...))
	}
}

// inUse reports whether the subnet is already configured in the root
// namespace: a leftover of a crashed run, which this run must not delete
// (it deletes only what it created) and cannot work next to.
func inUse() (string, error) {
	var found []string
	for _, args := range [][]string{
		{"-4", "-o", "addr", "show", "to", Subnet.String()},
		{"-4", "route", "show", "root", Subnet.String()},
	} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("`ip %s` failed: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			found = append(found, s)
		}
	}
	return strings.Join(found, "\n"), nil
}

// Start creates the namespaces and links, launches an n-member ensemble
// (n <= 253) and waits until a leader serves.
func Start(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	if n < 1 || n > 253 {
		t.Fatalf("netcluster: %d members (want 1-253)", n)
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, fmt.Errorf("`%s` not found: %w", tool, err))
		}
	}
	nw := &network{t: t, suffix: randSuffix()}
	t.Cleanup(nw.teardown)
	c := &Cluster{Hub: "corral-" + nw.suffix + "-hub", t: t, net: nw}
	// The first namespace is the permission probe: it is where a run
	// without root fails, and the command named in the skip.
	if err := nw.addNS(c.Hub); err != nil {
		unavailable(t, err)
	}
	if err := nw.acquire(); err != nil {
		t.Fatal(err)
	}
	leftover, err := inUse()
	if err != nil {
		t.Fatal(err)
	}
	if leftover != "" {
		t.Fatalf("%s is already configured in the root namespace (left over from a crashed run?):\n%s\n"+
			"this run deletes only what it creates; remove it by hand (`ip link del <dev>`, `ip netns del corral-<rand>-*`)", Subnet, leftover)
	}
	bin := proccluster.Binary(t)
	steps := [][]string{
		{"-n", c.Hub, "link", "set", "lo", "up"},
		{"-n", c.Hub, "link", "add", "br0", "type", "bridge"},
		{"-n", c.Hub, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	// The root side: one link into the hub, one address in the subnet.
	// Creating the pair names its root end; the hub end is moved at once.
	rootLink := "corral" + nw.suffix
	if err := ipCmd("link", "add", rootLink, "type", "veth", "peer", "name", "uplink", "netns", c.Hub); err != nil {
		t.Fatal(err)
	}
	nw.mu.Lock()
	nw.rootLink = rootLink
	nw.mu.Unlock()
	steps = [][]string{
		// No IPv6 link-local address: the root namespace gets the one
		// IPv4 address and nothing else.
		{"link", "set", rootLink, "addrgenmode", "none"},
		{"addr", "add", hostIP.String() + "/24", "dev", rootLink},
		{"link", "set", rootLink, "up"},
		{"-n", c.Hub, "link", "set", "uplink", "master", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}

	var members strings.Builder
	for i := 1; i <= n; i++ {
		ip := netip.AddrFrom4([4]byte{10, 231, 7, byte(i)})
		m := &Member{
			ID:         uint64(i),
			NS:         fmt.Sprintf("corral-%s-%d", nw.suffix, i),
			IP:         ip,
			ClientAddr: netip.AddrPortFrom(ip, ClientPort).String(),
			PeerAddr:   netip.AddrPortFrom(ip, PeerPort).String(),
			Dir:        t.TempDir(),
			c:          c,
			hubPort:    fmt.Sprintf("m%d", i),
			bin:        bin,
		}
		if err := nw.addNS(m.NS); err != nil {
			t.Fatal(err)
		}
		steps := [][]string{
			{"-n", m.NS, "link", "set", "lo", "up"},
			{"-n", c.Hub, "link", "add", m.hubPort, "type", "veth", "peer", "name", "eth0", "netns", m.NS},
			{"-n", m.NS, "addr", "add", ip.String() + "/24", "dev", "eth0"},
			{"-n", m.NS, "link", "set", "eth0", "up"},
			{"-n", c.Hub, "link", "set", m.hubPort, "master", "br0", "up"},
			// Partition needs a working firewall in the namespace; find
			// out now rather than in the middle of a test.
			{"netns", "exec", m.NS, "iptables", "-w", "-L", "-n"},
		}
		for _, s := range steps {
			if err := ipCmd(s...); err != nil {
				t.Fatal(err)
			}
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
  - {type: native, listen: %q}
%s`, m.ID, filepath.Join(m.Dir, "data"), members.String(), o.Consensus, o.Storage, m.ClientAddr, o.Extra)
		m.cfgPath = filepath.Join(m.Dir, "corral.yaml")
		if err := os.WriteFile(m.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after teardown, so it runs before it: a namespace with a
	// process inside outlives `ip netns del`, and so would its links.
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	for _, m := range c.Members {
		m.Start()
	}
	c.WaitLeader(30 * time.Second)
	return c
}

// Dial connects from the test process to a member address, through the
// root-side link only. It has go-zookeeper's Dialer signature
// (zk.WithDialer(c.Dial)).
func (c *Cluster) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !Subnet.Contains(ap.Addr()) || ap.Addr() == hostIP {
		return nil, fmt.Errorf("netcluster: refusing to dial %q: not a member address in %s", address, Subnet)
	}
	c.net.mu.Lock()
	link := c.net.rootLink
	c.net.mu.Unlock()
	if link == "" {
		return nil, fmt.Errorf("netcluster: refusing to dial %s: the network is torn down", address)
	}
	d := net.Dialer{
		Timeout:   timeout,
		LocalAddr: &net.TCPAddr{IP: hostIP.AsSlice()},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = syscall.BindToDevice(int(fd), link) }); err != nil {
				return err
			}
			return serr
		},
	}
	return d.Dial("tcp4", address)
}

// DialInside connects to address from inside the member's namespace, which
// still works while the member is partitioned (its own address stays up).
// It has go-zookeeper's Dialer signature.
func (m *Member) DialInside(network, address string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is switched to the member's namespace and never
		// unlocked: the runtime ends it with this goroutine instead of
		// handing a thread in the wrong namespace to other goroutines. A
		// socket belongs to the namespace it was created in, so the
		// connection works from any thread afterwards.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(nsRunDir, m.NS))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", m.NS, err)}
			return
		}
		c, err := net.DialTimeout("tcp4", address, timeout)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Start launches the member's process in its namespace (again, after
// Kill/Stop). `ip netns exec` execs the binary in place (no fork), so the
// pid is the server's and signals reach it directly.
func (m *Member) Start() {
	m.Run(m.c.t, filepath.Join(m.Dir, "corral.log"), "ip", "netns", "exec", m.NS, m.bin, "serve", "--config", m.cfgPath)
}

// Partition cuts the member off from every other member and from the test
// process: firewall rules inside its namespace drop every IP packet in and
// out of its eth0. The process keeps running and notices only by silence.
func (m *Member) Partition() {
	m.c.t.Helper()
	m.firewall(true)
}

// Heal reconnects a partitioned member.
func (m *Member) Heal() {
	m.c.t.Helper()
	m.firewall(false)
}

// firewall adds or removes the partition rules. Dropping IP in the
// member's own namespace, rather than setting a link down, keeps ARP
// working and leaves no trace once removed: no "no route to host" errors
// while cut, which would tell both sides at once, and no failed neighbour
// entries delaying the first packets after the heal, which would show in
// every measured heal time.
func (m *Member) firewall(cut bool) {
	m.c.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cut == cut {
		return
	}
	op := "-D"
	if cut {
		op = "-I"
	}
	// One iptables-restore transaction, so both directions are cut (and
	// healed) at the same instant.
	rules := fmt.Sprintf("*filter\n%[1]s INPUT -i eth0 -j DROP\n%[1]s OUTPUT -o eth0 -j DROP\nCOMMIT\n", op)
	args := []string{"netns", "exec", m.NS, "iptables-restore", "-w", "--noflush"}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		m.c.t.Fatalf("`ip %s` with rules %q failed: %v: %s", strings.Join(args, " "), rules, err, strings.TrimSpace(string(out)))
	}
	m.cut = cut
}

// Partitioned reports whether the member is cut off.
func (m *Member) Partitioned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cut
}

// FourLetter sends a four-letter word to the member from the test process
// (it fails while the member is partitioned).
func (m *Member) FourLetter(cmd string) (string, error) {
	return proccluster.FourLetter(m.c.Dial, m.ClientAddr, cmd)
}

// FourLetterInside sends a four-letter word from inside the member's
// namespace, which works while it is partitioned.
func (m *Member) FourLetterInside(cmd string) (string, error) {
	return proccluster.FourLetter(m.DialInside, m.ClientAddr, cmd)
}

// Mode is the member's srvr Mode line (leader, follower, ...) as the test
// process sees it, or "" when it does not answer.
func (m *Member) Mode() string { return proccluster.ModeOf(m.FourLetter("srvr")) }

// ModeInside is the member's srvr Mode line asked from inside its
// namespace, or "" when it does not answer.
func (m *Member) ModeInside() string { return proccluster.ModeOf(m.FourLetterInside("srvr")) }

// Leader returns the running, reachable member that reports itself leader,
// or nil. A partitioned member is not asked: whatever it believes, clients
// cannot use it.
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if m.Running() && !m.Partitioned() && m.Mode() == "leader" {
			return m
		}
	}
	return nil
}

// WaitLeader waits until some running, reachable member leads.
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
		fmt.Fprintf(&logs, "--- member %d (running=%v, partitioned=%v)\n%s\n", m.ID, m.Running(), m.Partitioned(), m.LogTail(15))
	}
	c.t.Fatalf("no leader within %s\n%s", d, logs.String())
	return nil
}

// ClientAddrs lists every member's client address.
func (c *Cluster) ClientAddrs() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientAddr)
	}
	return out
}

// Followers returns the running members other than leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m != leader && m.Running() {
			out = append(out, m)
		}
	}
	return out
}

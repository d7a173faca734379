package main

// Tests of what docs/deploy.md describes: the example configs under
// examples/, and the container image with the 3-member compose ensemble
// under deploy/.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.yaml.in/yaml/v3"

	"github.com/corral-dev/corral/conformance"
)

// repoRoot is the module root; tests run in cmd/corral.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from the test's directory: %v", err)
	}
	return root
}

// withoutCorralEnv hides CORRAL_* variables for the rest of the test: the
// config loader reads them as config keys, and test switches such as
// CORRAL_TEST_DOCKER would be rejected as unknown keys.
func withoutCorralEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CORRAL_") {
			t.Setenv(k, v) // restores it after the test
			os.Unsetenv(k)
		}
	}
}

// effective is the part of `corral config validate` output the checks use.
type effective struct {
	DataDir string `yaml:"data_dir"`
	NodeID  uint64 `yaml:"node_id"`
	Members []struct {
		ID     uint64 `yaml:"id"`
		Peer   string `yaml:"peer"`
		Client string `yaml:"client"`
	} `yaml:"members"`
	Consensus struct {
		Type string `yaml:"type"`
		Bind string `yaml:"bind"`
	} `yaml:"consensus"`
	Protocols []struct {
		Type   string `yaml:"type"`
		Listen string `yaml:"listen"`
	} `yaml:"protocols"`
}

// validate runs `corral config validate --config file` (run() is the
// binary's whole command line, in process) and decodes what it prints.
func validate(t *testing.T, file string) (effective, string) {
	t.Helper()
	code, out, errOut := runCmd("config", "validate", "--config", file)
	if code != 0 {
		t.Fatalf("corral config validate --config %s: exit %d\n%s", file, code, errOut)
	}
	var e effective
	if err := yaml.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("%s: effective config: %v\n%s", file, err, out)
	}
	return e, out
}

// examples/single.yaml claims to spell out the defaults: its effective
// config must be exactly `corral config default`.
func TestExampleSingleIsTheDefaults(t *testing.T) {
	withoutCorralEnv(t)
	_, got := validate(t, filepath.Join(repoRoot(t), "examples", "single.yaml"))
	code, want, errOut := runCmd("config", "default")
	if code != 0 {
		t.Fatalf("config default: exit %d: %s", code, errOut)
	}
	if got != want {
		t.Fatalf("examples/single.yaml differs from the defaults:\n--- single.yaml\n%s\n--- config default\n%s", got, want)
	}
	// And it spells out every top-level key, so readers see them all.
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "single.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file, def map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(want), &def); err != nil {
		t.Fatal(err)
	}
	for k := range def {
		if _, ok := file[k]; !ok {
			t.Errorf("examples/single.yaml does not show the top-level key %q", k)
		}
	}
}

// The loopback ensembles: every member file is valid, lists the same
// members, is the member its node_id says, listens where the list says
// clients connect, and no two members share a port or a data directory.
func TestExampleClusters(t *testing.T) {
	withoutCorralEnv(t)
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("cluster-%d", n), func(t *testing.T) {
			dir := filepath.Join(repoRoot(t), "examples", fmt.Sprintf("cluster-%d", n))
			files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if len(files) != n {
				t.Fatalf("%s holds %d configs, want %d", dir, len(files), n)
			}
			var first effective
			used := map[string]string{}
			claim := func(what, key, by string) {
				if prev, dup := used[key]; dup {
					t.Errorf("%s %s is used by %s and %s", what, key, prev, by)
				}
				used[key] = by
			}
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("member-%d.yaml", i)
				e, _ := validate(t, filepath.Join(dir, name))
				if e.NodeID != uint64(i) {
					t.Errorf("%s: node_id %d", name, e.NodeID)
				}
				if len(e.Members) != n {
					t.Fatalf("%s: %d members, want %d", name, len(e.Members), n)
				}
				if i == 1 {
					first = e
				} else if fmt.Sprint(e.Members) != fmt.Sprint(first.Members) {
					t.Errorf("%s lists other members than member-1.yaml:\n%v\n%v", name, e.Members, first.Members)
				}
				self := e.Members[i-1]
				if self.ID != uint64(i) {
					t.Errorf("%s: members[%d] has id %d", name, i-1, self.ID)
				}
				if len(e.Protocols) != 1 || e.Protocols[0].Listen != self.Client {
					t.Errorf("%s: listens on %v, but its client address is %s", name, e.Protocols, self.Client)
				}
				if e.Consensus.Type != "raft" {
					t.Errorf("%s: consensus %q, want raft", name, e.Consensus.Type)
				}
				if want := fmt.Sprintf("./data/cluster-%d/member-%d", n, i); e.DataDir != want {
					t.Errorf("%s: data_dir %s, want %s", name, e.DataDir, want)
				}
				claim("data_dir", e.DataDir, name)
				// The documented port plan: clients from 2181, peers from 2888.
				wantClient := fmt.Sprintf("127.0.0.1:%d", 2180+i)
				wantPeer := fmt.Sprintf("127.0.0.1:%d", 2887+i)
				if self.Client != wantClient || self.Peer != wantPeer {
					t.Errorf("%s: client %s peer %s, want %s and %s", name, self.Client, self.Peer, wantClient, wantPeer)
				}
			}
			for _, m := range first.Members {
				claim("address", m.Client, fmt.Sprintf("member %d (client)", m.ID))
				claim("address", m.Peer, fmt.Sprintf("member %d (peer)", m.ID))
			}
		})
	}
}

// The compose ensemble's config: valid for each member's CORRAL_NODE_ID,
// listening for clients on every interface, and the compose file gives each
// service the id and hostname the member list expects.
func TestDeployConfigs(t *testing.T) {
	withoutCorralEnv(t)
	deploy := filepath.Join(repoRoot(t), "deploy")
	e, _ := validate(t, filepath.Join(deploy, "corral.yaml"))
	if e.DataDir != "/data" || len(e.Protocols) != 1 || e.Protocols[0].Listen != "0.0.0.0:2181" {
		t.Errorf("deploy/corral.yaml: data_dir %s, protocols %v", e.DataDir, e.Protocols)
	}

	raw, err := os.ReadFile(filepath.Join(deploy, "compose-3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Hostname    string            `yaml:"hostname"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose-3.yaml: %v", err)
	}
	if len(compose.Services) != 3 {
		t.Fatalf("compose-3.yaml has %d services, want 3", len(compose.Services))
	}
	for name, s := range compose.Services {
		id := s.Environment["CORRAL_NODE_ID"]
		t.Setenv("CORRAL_NODE_ID", id)
		e, _ := validate(t, filepath.Join(deploy, "cluster-3.yaml"))
		if strconv.FormatUint(e.NodeID, 10) != id {
			t.Fatalf("service %s: CORRAL_NODE_ID %q gave node_id %d", name, id, e.NodeID)
		}
		var self string
		for _, m := range e.Members {
			if m.ID == e.NodeID {
				self = m.Peer
			}
		}
		if host, _, _ := net.SplitHostPort(self); host != name || s.Hostname != name {
			t.Errorf("service %s (hostname %q) is member %s whose peer address is %s", name, s.Hostname, id, self)
		}
		if e.DataDir != "/data" || !slices.Contains(s.Volumes, name+"-data:/data") {
			t.Errorf("service %s: data_dir %s, volumes %v", name, e.DataDir, s.Volumes)
		}
		if !slices.Contains(s.Volumes, "./cluster-3.yaml:/etc/corral/corral.yaml:ro") {
			t.Errorf("service %s does not mount cluster-3.yaml: %v", name, s.Volumes)
		}
		if len(e.Protocols) != 1 || e.Protocols[0].Listen != "0.0.0.0:2181" {
			t.Errorf("service %s: protocols %v, want one on 0.0.0.0:2181", name, e.Protocols)
		}
		if len(s.Ports) != 1 || !strings.HasPrefix(s.Ports[0], "127.0.0.1:") {
			t.Errorf("service %s publishes %v, want one port on 127.0.0.1", name, s.Ports)
		}
	}
}

// compose runs docker-compose (v1) or `docker compose` (v2) for one project.
type compose struct {
	t       *testing.T
	argv    []string // the command and its global flags
	env     []string
	project string
}

func findCompose() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, errors.New("neither `docker compose` nor docker-compose is installed")
}

func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(slices.Clone(c.argv), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

func (c *compose) must(timeout time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.run(timeout, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// buildImage builds the image as `make image` does (static binary on the
// host, deploy/Dockerfile FROM scratch), under the given tag.
func buildImage(t *testing.T, root, tag string) {
	t.Helper()
	ctx := t.TempDir()
	if err := os.Mkdir(filepath.Join(ctx, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "corral"), "./cmd/corral")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", "corral.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctx, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, ctx).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
}

// fourLetter sends a four-letter word to addr; "" when nobody answers.
func fourLetter(addr, word string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, word); err != nil {
		return ""
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func srvrMode(addr string) string {
	for _, l := range strings.Split(fourLetter(addr, "srvr"), "\n") {
		if m, ok := strings.CutPrefix(l, "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// waitModes waits until want(modes) holds, modes being each member's srvr
// Mode ("" when it does not answer), and returns them.
func waitModes(t *testing.T, addrs []string, d time.Duration, what string, want func([]string) bool) []string {
	t.Helper()
	var modes []string
	for deadline := time.Now().Add(d); ; {
		modes = modes[:0]
		for _, a := range addrs {
			modes = append(modes, srvrMode(a))
		}
		if want(modes) {
			return modes
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; modes %q", what, d, modes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func count(modes []string, m string) int {
	n := 0
	for _, x := range modes {
		if x == m {
			n++
		}
	}
	return n
}

func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// writer creates znodes under prefix through one connection until stopped,
// remembering which were acknowledged and when.
type writer struct {
	conn   *zk.Conn
	prefix string

	mu     sync.Mutex
	acked  map[string][]byte
	times  []time.Time // of each acknowledgement, in order
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(conn *zk.Conn, prefix string) *writer {
	w := &writer{conn: conn, prefix: prefix, acked: map[string][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			p := fmt.Sprintf("%s-%06d", w.prefix, i)
			data := []byte(p)
			_, err := conn.Create(p, data, 0, zk.WorldACL(zk.PermAll))
			w.mu.Lock()
			if err == nil {
				w.acked[p] = data
				w.times = append(w.times, time.Now())
			} else {
				w.failed++
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond) // no busy loop while the service is down
			}
		}
	}()
	return w
}

func (w *writer) halt() { close(w.stop); <-w.done }

func (w *writer) stats() (acked, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.failed
}

// firstAckAfter is the time of the first acknowledgement after t0.
func (w *writer) firstAckAfter(t0 time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.times, t0, time.Time.Compare)
	if i == len(w.times) {
		return time.Time{}, false
	}
	return w.times[i], true
}

// waitAcks waits until the writer has n more acknowledgements than it had
// when called.
func (w *writer) waitAcks(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	base, _ := w.stats()
	deadline := time.Now().Add(d)
	for {
		got, failed := w.stats()
		if got >= base+n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d writes acknowledged through %s within %s (%d failed)", what, got-base, n, w.prefix, d, failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAll verifies, after a sync, that conn reads every acknowledged write.
func checkAll(t *testing.T, conn *zk.Conn, who string, writers []*writer) {
	t.Helper()
	if _, err := conn.Sync("/"); err != nil {
		t.Fatalf("%s: sync: %v", who, err)
	}
	total := 0
	for _, w := range writers {
		w.mu.Lock()
		acked := w.acked
		w.mu.Unlock()
		for p, want := range acked {
			got, _, err := conn.Get(p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: acknowledged write %s reads %q, %v", who, p, got, err)
			}
			total++
		}
	}
	t.Logf("%s: all %d acknowledged writes read back after sync", who, total)
}

// TestDockerCompose runs deploy/compose-3.yaml on the image `make image`
// builds: a leader is elected, every member takes writes, the leader's
// container is stopped under a write stream and writes continue through
// the others (a session survives the failover), and the restarted
// container catches up with everything acknowledged while it was away.
//
// It runs in `make test` wherever a Docker engine answers; in CI (CI set)
// or with CORRAL_TEST_DOCKER=1 a missing engine is a failure, not a skip.
//
//	go test -run TestDockerCompose ./cmd/corral   (make test-docker)
func TestDockerCompose(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds an image and runs three containers")
	}
	required := os.Getenv("CI") != "" || os.Getenv("CORRAL_TEST_DOCKER") != ""
	unavailable := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		unavailable("no Docker engine answers: %v: %s", err, bytes.TrimSpace(out))
	}
	argv, err := findCompose()
	if err != nil {
		unavailable("%v", err)
	}
	root := repoRoot(t)
	project := fmt.Sprintf("corraltest%d", os.Getpid())
	tag := "corral:" + project
	ports := freeLoopbackPorts(t, 3)
	var addrs []string
	for _, p := range ports {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}

	t.Logf("building %s", tag)
	buildImage(t, root, tag)

	// The containers get only what compose passes them; these configure
	// compose itself.
	env := append(os.Environ(), "CORRAL_IMAGE="+tag)
	for i, p := range ports {
		env = append(env, fmt.Sprintf("CORRAL_PORT_%d=%d", i+1, p))
	}
	c := &compose{t: t, env: env, project: project,
		argv: append(argv, "-p", project, "-f", filepath.Join(root, "deploy", "compose-3.yaml"))}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := c.run(time.Minute, "logs", "--no-color", "--tail", "40"); err == nil {
				t.Logf("container logs:\n%s", out)
			}
		}
		if _, err := c.run(2*time.Minute, "down", "-v", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v", err)
		}
	})
	c.must(3*time.Minute, "up", "-d")
	start := time.Now()
	modes := waitModes(t, addrs, 60*time.Second, "one leader and two followers",
		func(m []string) bool { return count(m, "leader") == 1 && count(m, "follower") == 2 })
	leader := slices.Index(modes, "leader")
	t.Logf("leader elected in %s: corral-%d (modes %q)", time.Since(start).Round(time.Millisecond), leader+1, modes)

	// A short write load through every member: followers forward to the leader.
	var members []*zk.Conn
	for _, a := range addrs {
		members = append(members, conformance.Connect(t, []string{a}))
	}
	var load []*writer
	for i, conn := range members {
		load = append(load, startWriter(conn, fmt.Sprintf("/load-m%d", i+1)))
	}
	for i, w := range load {
		w.waitAcks(t, 50, 30*time.Second, fmt.Sprintf("load through corral-%d", i+1))
	}
	for _, w := range load {
		w.halt()
	}
	for i, conn := range members {
		checkAll(t, conn, fmt.Sprintf("corral-%d", i+1), load)
	}

	// A session that knows every member, holding an ephemeral node.
	all := conformance.Connect(t, addrs)
	sid := all.SessionID()
	if _, err := all.Create("/owner", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("ephemeral: %v", err)
	}

	// Stop the leader's container under a write stream through the others.
	var outage []*writer
	var survivors []int
	for i := range addrs {
		if i != leader {
			survivors = append(survivors, i)
			outage = append(outage, startWriter(members[i], fmt.Sprintf("/outage-m%d", i+1)))
		}
	}
	for _, w := range outage {
		w.waitAcks(t, 10, 10*time.Second, "before the stop")
	}
	victim := fmt.Sprintf("corral-%d", leader+1)
	stopping := time.Now()
	c.must(time.Minute, "stop", "--timeout", "10", victim)
	stopped := time.Now()
	t.Logf("stopped %s (the leader; SIGTERM, clean shutdown) in %s", victim, stopped.Sub(stopping).Round(time.Millisecond))
	modes = waitModes(t, addrs, 30*time.Second, "a new leader among the two others",
		func(m []string) bool { return m[leader] == "" && count(m, "leader") == 1 })
	t.Logf("after the stop: modes %q", modes)
	for _, w := range outage {
		w.waitAcks(t, 50, 30*time.Second, "with "+victim+" stopped")
	}
	for _, w := range outage {
		first, _ := w.firstAckAfter(stopped)
		_, failed := w.stats()
		t.Logf("%s: first write acknowledged %s after the container was down; %d writes failed in all",
			w.prefix, first.Sub(stopped).Round(time.Millisecond), failed)
	}
	// The all-members session outlives the leader it may have been on. Its
	// client may still be moving to another member: retry what was surely
	// not applied (connection lost before sending, or no server yet).
	for deadline, retried := time.Now().Add(20*time.Second), false; ; retried = true {
		_, err := all.Create("/after-failover", nil, 0, zk.WorldACL(zk.PermAll))
		if err == nil || (retried && errors.Is(err, zk.ErrNodeExists)) {
			break
		}
		if !errors.Is(err, zk.ErrConnectionClosed) && !errors.Is(err, zk.ErrNoServer) || time.Now().After(deadline) {
			t.Fatalf("the all-members session cannot write after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := all.SessionID(); got != sid {
		t.Fatalf("session changed across the failover: %#x -> %#x", sid, got)
	}
	if ok, _, err := members[survivors[0]].Exists("/owner"); err != nil || !ok {
		t.Fatalf("ephemeral of the live session: exists=%v, %v", ok, err)
	}

	// Bring it back; it catches up with what it missed.
	c.must(time.Minute, "start", victim)
	modes = waitModes(t, addrs, 60*time.Second, victim+" back as a follower",
		func(m []string) bool { return m[leader] == "follower" && count(m, "leader") == 1 })
	t.Logf("after the restart: modes %q", modes)
	for _, w := range outage {
		w.waitAcks(t, 20, 30*time.Second, "with "+victim+" back")
		w.halt()
	}
	back := conformance.Connect(t, []string{addrs[leader]})
	checkAll(t, back, victim+" (restarted)", append(load, outage...))
	if _, err := back.Create("/written-on-restarted", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("write through the restarted %s: %v", victim, err)
	}
	for _, i := range survivors {
		if ok, _, err := members[i].Exists("/written-on-restarted"); err != nil || !ok {
			// The write is acknowledged, so a sync makes it visible anywhere.
			if _, err := members[i].Sync("/"); err != nil {
				t.Fatalf("sync on corral-%d: %v", i+1, err)
			}
			if ok, _, err = members[i].Exists("/written-on-restarted"); err != nil || !ok {
				t.Fatalf("corral-%d does not see the write made through %s: %v %v", i+1, victim, ok, err)
			}
		}
		checkAll(t, members[i], fmt.Sprintf("corral-%d", i+1), append(load, outage...))
	}
}

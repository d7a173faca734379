package main

// These tests run corralctl's commands against the real Apache ZooKeeper 3.8
// (Debian package) started by conformance/zkref; they skip, naming what is
// missing, when java or the jars are not installed.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/conformance/zkref"
)

var (
	zkOnce   sync.Once
	zkServer *zkref.Server
	zkErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if zkServer != nil {
		zkServer.Stop()
	}
	os.Exit(code)
}

// server returns the address of one ZooKeeper shared by the package's tests
// (a JVM start costs about a second; each test works under its own root).
func server(t *testing.T) string {
	t.Helper()
	if m := zkref.Missing(); m != "" {
		if os.Getenv("CORRAL_REQUIRE_ZKREF") == "1" {
			t.Fatalf("reference ZooKeeper unavailable: %s", m)
		}
		t.Skipf("reference ZooKeeper unavailable: %s", m)
	}
	zkOnce.Do(func() {
		zkServer, zkErr = zkref.StartServer(zkref.Options{ContainerCheckInterval: 500 * time.Millisecond})
	})
	if zkErr != nil {
		t.Fatalf("start ZooKeeper: %v", zkErr)
	}
	return zkServer.Addr()
}

type result struct {
	code        int
	out, stderr string
}

func ctl(t *testing.T, addr string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--server", addr, "--timeout", "10s"}, args...)
	code := run(full, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// must runs a command that has to succeed and returns its stdout.
func must(t *testing.T, addr string, args ...string) string {
	t.Helper()
	r := ctl(t, addr, "", args...)
	if r.code != 0 {
		t.Fatalf("corralctl %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.out
}

func expect(t *testing.T, r result, code int, stderrHas string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("exit %d stderr %q; want exit %d and stderr containing %q", r.code, r.stderr, code, stderrHas)
	}
}

func statField(t *testing.T, stat, field string) string {
	t.Helper()
	for _, line := range strings.Split(stat, "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok && k == field {
			return v
		}
	}
	t.Fatalf("no %s in stat output:\n%s", field, stat)
	return ""
}

func root(t *testing.T) string {
	return fmt.Sprintf("/ctl-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

func TestCRUDAndErrors(t *testing.T) {
	addr := server(t)
	r := root(t)
	if out := must(t, addr, "create", r, "hello"); out != "Created "+r+"\n" {
		t.Fatalf("create output %q", out)
	}
	if out := must(t, addr, "get", r); out != "hello\n" {
		t.Fatalf("get output %q", out)
	}
	expect(t, ctl(t, addr, "", "create", r, "again"), exitZK, "Node already exists: "+r)
	expect(t, ctl(t, addr, "", "get", r+"/missing"), exitZK, "Node does not exist: "+r+"/missing")

	out := must(t, addr, "get", "-s", r)
	if !strings.HasPrefix(out, "hello\ncZxid = 0x") || statField(t, out, "dataVersion") != "0" || statField(t, out, "dataLength") != "5" {
		t.Fatalf("get -s output:\n%s", out)
	}
	if statField(t, out, "cZxid") != statField(t, out, "mZxid") || statField(t, out, "ephemeralOwner") != "0x0" {
		t.Fatalf("new node stat:\n%s", out)
	}

	expect(t, ctl(t, addr, "", "set", "-v", "7", r, "x"), exitZK, "Bad version")
	must(t, addr, "set", "-v", "0", r, "world")
	out = must(t, addr, "stat", r)
	if statField(t, out, "dataVersion") != "1" || statField(t, out, "dataLength") != "5" {
		t.Fatalf("stat after set:\n%s", out)
	}
	if out := must(t, addr, "set", "-s", r, "again"); statField(t, out, "dataVersion") != "2" {
		t.Fatalf("set -s:\n%s", out)
	}

	must(t, addr, "create", r+"/b")
	must(t, addr, "create", r+"/a", "x")
	if out := must(t, addr, "get", r+"/b"); out != "null\n" {
		t.Fatalf("node created without data prints %q, want null", out)
	}
	if out := must(t, addr, "ls", r); out != "[a, b]\n" {
		t.Fatalf("ls output %q", out)
	}
	if out := must(t, addr, "ls", "-s", r); !strings.HasPrefix(out, "[a, b]\ncZxid") || statField(t, out, "numChildren") != "2" || statField(t, out, "cversion") != "2" {
		t.Fatalf("ls -s output %q", out)
	}
	expect(t, ctl(t, addr, "", "delete", r), exitZK, "Node not empty: "+r)
	expect(t, ctl(t, addr, "", "delete", "-v", "3", r+"/a"), exitZK, "Bad version")
	must(t, addr, "delete", "-v", "0", r+"/a")
	expect(t, ctl(t, addr, "", "stat", r+"/a"), exitZK, "Node does not exist: "+r+"/a")
	if out := must(t, addr, "sync", r); out != "Sync is OK\n" {
		t.Fatalf("sync output %q", out)
	}
	// Data that starts with a dash after "--".
	must(t, addr, "set", r, "--", "-1")
	if out := must(t, addr, "get", r); out != "-1\n" {
		t.Fatalf("get after set -- -1: %q", out)
	}
}

func TestCreateModes(t *testing.T) {
	addr := server(t)
	r := root(t)
	must(t, addr, "create", r)
	if out := must(t, addr, "create", "-s", r+"/seq-", "d"); out != "Created "+r+"/seq-0000000000\n" {
		t.Fatalf("sequential: %q", out)
	}
	if out := must(t, addr, "create", "-s", r+"/seq-"); out != "Created "+r+"/seq-0000000001\n" {
		t.Fatalf("second sequential: %q", out)
	}
	// An ephemeral lives as long as its session: gone after a one-shot command.
	must(t, addr, "create", "-e", r+"/eph")
	expect(t, ctl(t, addr, "", "stat", r+"/eph"), exitZK, "Node does not exist")

	// TTL: created, visible, reaped after it expires (checkIntervalMs=500).
	if out := must(t, addr, "create", "-t", "500", r+"/ttl", "x"); out != "Created "+r+"/ttl\n" {
		t.Fatalf("ttl: %q", out)
	}
	if out := must(t, addr, "stat", r+"/ttl"); statField(t, out, "ephemeralOwner") != "0x0" {
		t.Fatalf("TTL node ephemeralOwner (reference §8.3):\n%s", out)
	}
	if out := must(t, addr, "create", "-s", "-t", "1m", r+"/ttlseq-"); out != "Created "+r+"/ttlseq-0000000004\n" {
		t.Fatalf("sequential ttl: %q", out)
	}
	// Container: reaped once it had a child and is empty again.
	must(t, addr, "create", "-c", r+"/cont")
	must(t, addr, "create", r+"/cont/kid")
	must(t, addr, "delete", r+"/cont/kid")
	waitGone := func(p string) {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if ctl(t, addr, "", "stat", p).code == exitZK {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s was not reaped", p)
	}
	waitGone(r + "/ttl")
	waitGone(r + "/cont")

	expect(t, ctl(t, addr, "", "create", "-c", "-e", r+"/x"), exitUsage, "-c cannot be combined")
	expect(t, ctl(t, addr, "", "create", "-t", "0", r+"/x"), exitUsage, "invalid TTL")
	expect(t, ctl(t, addr, "", "create", "-e", "-t", "5000", r+"/x"), exitUsage, "-t cannot be combined with -e")
	expect(t, ctl(t, addr, "", "create", "-e", r+"/nochild/x"), exitZK, "Node does not exist")
}

func TestRecursive(t *testing.T) {
	addr := server(t)
	r := root(t)
	for _, p := range []string{r, r + "/b", r + "/a", r + "/a/y", r + "/a/x", r + "/b/z"} {
		must(t, addr, "create", p)
	}
	want := strings.Join([]string{r, r + "/a", r + "/b", r + "/a/x", r + "/a/y", r + "/b/z"}, "\n") + "\n"
	if out := must(t, addr, "ls", "-R", r); out != want {
		t.Fatalf("ls -R:\n%s\nwant:\n%s", out, want)
	}
	if out := must(t, addr, "getAllChildrenNumber", r); out != "5\n" {
		t.Fatalf("getAllChildrenNumber = %q", out)
	}
	must(t, addr, "deleteall", r)
	expect(t, ctl(t, addr, "", "stat", r), exitZK, "Node does not exist")
	expect(t, ctl(t, addr, "", "deleteall", r), exitZK, "Node does not exist: "+r)
}

func TestACLAndAuth(t *testing.T) {
	addr := server(t)
	r := root(t)
	id := strings.TrimSpace(must(t, addr, "digest", "bob:secret"))
	if id != "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=" {
		t.Fatalf("digest = %q", id)
	}
	must(t, addr, "create", r)
	if out := must(t, addr, "getAcl", r); out != "world:anyone:cdrwa\n" {
		t.Fatalf("getAcl default: %q", out)
	}
	must(t, addr, "create", r+"/p", "secret-data", "digest:"+id+":cdrwa")
	// Without auth: reads refused, getAcl refused (no READ or ADMIN).
	expect(t, ctl(t, addr, "", "get", r+"/p"), exitZK, "Insufficient permission: "+r+"/p")
	expect(t, ctl(t, addr, "", "getAcl", r+"/p"), exitZK, "Insufficient permission")
	// With --auth (one-shot) the same commands work.
	if out := must(t, addr, "--auth", "digest:bob:secret", "get", r+"/p"); out != "secret-data\n" {
		t.Fatalf("get with auth: %q", out)
	}
	if out := must(t, addr, "--auth", "digest:bob:secret", "getAcl", r+"/p"); out != "digest:"+id+":cdrwa\n" {
		t.Fatalf("getAcl with auth: %q", out)
	}
	// A wrong password is accepted by addauth but matches nothing (§8.7).
	expect(t, ctl(t, addr, "", "--auth", "digest:bob:wrong", "get", r+"/p"), exitZK, "Insufficient permission")

	// setAcl bumps aversion only; -v checks it.
	expect(t, ctl(t, addr, "", "setAcl", "-v", "5", r, "world:anyone:cdrwa"), exitZK, "Bad version")
	must(t, addr, "setAcl", r, "world:anyone:r,digest:"+id+":cdrwa")
	// Without ADMIN, getACL masks digest ids as user:x (reference §8.7).
	out := must(t, addr, "getAcl", "-s", r)
	if !strings.HasPrefix(out, "world:anyone:r\ndigest:bob:x:cdrwa\n") || statField(t, out, "aclVersion") != "1" || statField(t, out, "dataVersion") != "0" {
		t.Fatalf("getAcl -s after setAcl:\n%s", out)
	}
	expect(t, ctl(t, addr, "", "create", r+"/child"), exitZK, "Insufficient permission")
	expect(t, ctl(t, addr, "", "setAcl", r, "world:anyone:rx"), exitUsage, "invalid permission")

	// In the shell, addauth applies to the session's later commands.
	sh := ctl(t, addr, "addauth digest bob:secret\ncreate "+r+"/child\nwhoami\nsetAcl -R "+r+" world:anyone:cdrwa\n", "shell")
	if sh.code != 0 || !strings.Contains(sh.out, "Created "+r+"/child\n") || !strings.Contains(sh.out, "digest: bob\n") {
		t.Fatalf("shell with addauth: exit %d out %q err %q", sh.code, sh.out, sh.stderr)
	}
	if out := must(t, addr, "getAcl", r+"/p"); out != "world:anyone:cdrwa\n" {
		t.Fatalf("setAcl -R did not reach children: %q", out)
	}
	if out := must(t, addr, "whoami"); out != "Auth scheme: User\nip: 127.0.0.1\n" {
		t.Fatalf("whoami = %q", out)
	}
	must(t, addr, "deleteall", r)
}

func TestOneShotWatches(t *testing.T) {
	addr := server(t)
	r := root(t)
	must(t, addr, "create", r, "v0")

	// The watch is registered by the reply the command prints first, so
	// once output appears, a change can no longer race the registration.
	var pending *bgCmd
	background := func(args ...string) *bgCmd {
		pending = startBackground(t, addr, args...)
		return pending
	}
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if pending.out.Len() > 0 || pending.errOut.Len() > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("background %q printed nothing", pending.args)
	}
	await := func(b *bgCmd) result {
		t.Helper()
		select {
		case code := <-b.done:
			return result{code, b.out.String(), b.errOut.String()}
		case <-time.After(15 * time.Second):
			t.Fatalf("watch of %q did not fire", b.args)
		}
		return result{}
	}

	ch := background("get", "-w", r)
	settle()
	must(t, addr, "set", r, "v1")
	if res := await(ch); res.code != 0 || res.out != "v0\nWatchedEvent state:SyncConnected type:NodeDataChanged path:"+r+"\n" {
		t.Fatalf("get -w: %+v", res)
	}

	ch = background("ls", "-w", r)
	settle()
	must(t, addr, "create", r+"/kid")
	if res := await(ch); res.code != 0 || res.out != "[]\nWatchedEvent state:SyncConnected type:NodeChildrenChanged path:"+r+"\n" {
		t.Fatalf("ls -w: %+v", res)
	}

	// exists-watch on a missing node fires NodeCreated (§8.9).
	ch = background("stat", "-w", r+"/later")
	settle()
	must(t, addr, "create", r+"/later")
	res := await(ch)
	if res.code != exitZK || res.out != "WatchedEvent state:SyncConnected type:NodeCreated path:"+r+"/later\n" || !strings.Contains(res.stderr, "Node does not exist") {
		t.Fatalf("stat -w on missing node: %+v", res)
	}

	// Persistent recursive: NodeCreated/NodeDataChanged/NodeDeleted for the
	// subtree, never NodeChildrenChanged (§8.10).
	ch = background("addWatch", "--count", "3", r)
	settle()
	must(t, addr, "create", r+"/kid/deep")
	must(t, addr, "set", r+"/kid", "x")
	must(t, addr, "delete", r+"/kid/deep")
	want := "WatchedEvent state:SyncConnected type:NodeCreated path:" + r + "/kid/deep\n" +
		"WatchedEvent state:SyncConnected type:NodeDataChanged path:" + r + "/kid\n" +
		"WatchedEvent state:SyncConnected type:NodeDeleted path:" + r + "/kid/deep\n"
	if res := await(ch); res.code != 0 || res.out != want || res.stderr != "Watching "+r+" (persistent_recursive)\n" {
		t.Fatalf("addWatch recursive: %+v", res)
	}

	// Plain persistent watch on r: NodeChildrenChanged for direct children.
	ch = background("addWatch", "-m", "persistent", "--count", "2", r)
	settle()
	must(t, addr, "create", r+"/kid2")
	must(t, addr, "set", r, "v2")
	want = "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:" + r + "\n" +
		"WatchedEvent state:SyncConnected type:NodeDataChanged path:" + r + "\n"
	if res := await(ch); res.code != 0 || res.out != want {
		t.Fatalf("addWatch persistent: %+v", res)
	}
	expect(t, ctl(t, addr, "", "addWatch", "-m", "sometimes", r), exitUsage, "invalid mode")
	must(t, addr, "deleteall", r)
}

func TestShell(t *testing.T) {
	addr := server(t)
	r := root(t)
	script := strings.Join([]string{
		"# comments and blank lines are skipped",
		"",
		"create " + r + " 'hello world'",
		"addWatch -m persistent " + r,
		"create -e " + r + "/eph",
		"getEphemerals " + r,
		"get " + r,
		"get " + r + "/missing",
		`set ` + r + ` "quoted \"data\""`,
		"get " + r,
		"removewatches " + r,
		"set " + r + " silent",
		"deleteall " + r,
		"ls " + r,
	}, "\n") + "\n"
	res := ctl(t, addr, script, "shell")
	// The watch event for the child create comes before the create's reply.
	want := "Created " + r + "\n" +
		"WatchedEvent state:SyncConnected type:NodeChildrenChanged path:" + r + "\n" +
		"Created " + r + "/eph\n" +
		"[" + r + "/eph]\n" +
		"hello world\n" +
		"WatchedEvent state:SyncConnected type:NodeDataChanged path:" + r + "\n" +
		"quoted \"data\"\n"
	if res.out != want {
		t.Fatalf("shell stdout:\n%s\nwant:\n%s\nstderr: %s", res.out, want, res.stderr)
	}
	// Errors are printed and the shell goes on; its status is the last failure's.
	if res.code != exitZK || res.stderr != "Node does not exist: "+r+"/missing\nNode does not exist: "+r+"\n" {
		t.Fatalf("shell exit %d stderr %q", res.code, res.stderr)
	}

	// -e stops at the first failure.
	res = ctl(t, addr, "get /nope-"+r[1:]+"\ncreate "+r+"\n", "shell", "-e")
	if res.code != exitZK || res.out != "" {
		t.Fatalf("shell -e: %+v", res)
	}
	res = ctl(t, addr, "bogus\nquit\ncreate "+r+"\n", "shell")
	if res.code != exitUsage || !strings.Contains(res.stderr, "Unknown command: bogus") || res.out != "" {
		t.Fatalf("shell with unknown command: %+v", res)
	}
}

func TestUsageAndConnectionErrors(t *testing.T) {
	addr := server(t)
	expect(t, ctl(t, addr, "", "frobnicate"), exitUsage, "Unknown command: frobnicate")
	expect(t, ctl(t, addr, "", "get"), exitUsage, "usage: get [-s] [-w] path")
	expect(t, ctl(t, addr, "", "get", "-q", "/"), exitUsage, "unknown option -q")
	expect(t, ctl(t, addr, "", "set", "-v", "x", "/a", "b"), exitUsage, "invalid version")
	expect(t, ctl(t, addr, "", "get", "no-slash"), exitUsage, "Invalid path")
	expect(t, ctl(t, addr, "", "--nonsense", "ls", "/"), exitUsage, "flag provided but not defined")

	// A port nobody listens on: connection failure, exit 3, within --timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	start := time.Now()
	var out, errOut bytes.Buffer
	code := run([]string{"--server", dead, "--timeout", "1500ms", "ls", "/"}, strings.NewReader(""), &out, &errOut)
	if code != exitConnection || !strings.Contains(errOut.String(), "Unable to connect to "+dead) {
		t.Fatalf("dead server: exit %d stderr %q", code, errOut.String())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("connection failure took %v", el)
	}
	// A usage error wins over an unreachable server.
	code = run([]string{"--server", dead, "get"}, strings.NewReader(""), &out, &errOut)
	if code != exitUsage {
		t.Fatalf("usage error against dead server: exit %d", code)
	}

	if out := must(t, addr, "4lw", "ruok"); out != "imok\n" {
		t.Fatalf("4lw ruok = %q", out)
	}
	if out := must(t, addr, "4lw", "srvr"); !strings.Contains(out, "Zookeeper version: 3.8") || !strings.Contains(out, "Mode: standalone") {
		t.Fatalf("4lw srvr = %q", out)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type bgCmd struct {
	args        []string
	out, errOut *syncBuffer
	done        chan int
}

func startBackground(t *testing.T, addr string, args ...string) *bgCmd {
	b := &bgCmd{args: args, out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan int, 1)}
	full := append([]string{"--server", addr, "--timeout", "10s"}, args...)
	go func() { b.done <- run(full, strings.NewReader(""), b.out, b.errOut) }()
	return b
}

// Package zkref starts the real Apache ZooKeeper 3.8 from the Debian packages
// (`zookeeper`, `zookeeper-bin`) as a child process, so that tests, the client
// scripts and the benchmark can judge Corral against the reference on the same
// machine.
//
// The server is launched directly with `java -cp zookeeper.jar:slf4j-log4j12.jar:log4j-1.2.jar
// org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg` because Debian's
// zkServer.sh hard-wires /etc/zookeeper/conf and /var/log/zookeeper, and the
// jar's manifest has no SLF4J binding (reference §8 item 13). Everything the
// process writes (config, data, log) lives in a temporary directory, and Stop
// kills only the process group of the child this package started.
package zkref

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Default locations of the Debian packages' files. ZKREF_JAVA and ZKREF_JARDIR
// override them for machines that keep the jars elsewhere.
const (
	defaultJava   = "java"
	defaultJarDir = "/usr/share/java"
)

// jars are the classpath entries QuorumPeerMain needs; the rest of ZooKeeper's
// dependencies come from zookeeper.jar's manifest Class-Path.
var jars = []string{"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"}

// Options tunes the server. The zero value gives ZooKeeper's defaults plus the
// settings every Corral comparison needs (loopback only, all four-letter words,
// TTL nodes, no AdminServer).
type Options struct {
	// TickTime is ZooKeeper's tickTime (default 2s, which makes the minimum
	// session timeout 4s).
	TickTime time.Duration
	// ContainerCheckInterval sets znode.container.checkIntervalMs (a JVM
	// system property; ZooKeeper's default is 60s). Zero keeps the default.
	ContainerCheckInterval time.Duration
	// ForceSync, when non-empty, sets forceSync ("yes"/"no"). Empty keeps
	// ZooKeeper's default (yes), which is what the benchmark targets assume.
	ForceSync string
	// Extra holds further zoo.cfg keys, written after the generated ones.
	Extra map[string]string
	// JVMArgs replaces the default JVM flags (-Xmx1000m, the heap upstream's
	// zkEnv.sh gives the server; Debian's script sets none). ZKREF_JVM_ARGS,
	// split on spaces, is used when JVMArgs is nil.
	JVMArgs []string
	// LogLevel is the log4j root level (default INFO).
	LogLevel string
	// StartTimeout bounds the wait for `ruok` to answer imok (default 60s;
	// a JVM on a busy two-core machine can take a while).
	StartTimeout time.Duration
	// Dir is where config, data and log go. Empty means a fresh temporary
	// directory that Stop removes.
	Dir string
}

// Server is one running ZooKeeper process.
type Server struct {
	addr     string
	port     int
	dir      string
	ownDir   bool
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

func javaPath() string {
	if p := os.Getenv("ZKREF_JAVA"); p != "" {
		return p
	}
	return defaultJava
}

func jarDir() string {
	if d := os.Getenv("ZKREF_JARDIR"); d != "" {
		return d
	}
	return defaultJarDir
}

// Missing names what is absent for running the reference (java, jars), or ""
// when everything is there.
func Missing() string {
	var miss []string
	if _, err := exec.LookPath(javaPath()); err != nil {
		miss = append(miss, fmt.Sprintf("java (%q not in PATH; apt-get install default-jre-headless)", javaPath()))
	}
	for _, j := range jars {
		p := filepath.Join(jarDir(), j)
		if _, err := os.Stat(p); err != nil {
			miss = append(miss, p)
		}
	}
	if len(miss) == 0 {
		return ""
	}
	return "missing " + strings.Join(miss, ", ") + " (apt-get install zookeeper)"
}

// Available reports whether java and the ZooKeeper jars are installed.
func Available() bool { return Missing() == "" }

// requireOrSkip skips the test when the reference is not installed, unless
// CORRAL_REQUIRE_ZKREF=1 (CI) turns that into a failure so a broken install
// cannot pass silently.
func requireOrSkip(t testing.TB) {
	t.Helper()
	if m := Missing(); m != "" {
		if os.Getenv("CORRAL_REQUIRE_ZKREF") == "1" {
			t.Fatalf("zkref: reference ZooKeeper unavailable: %s", m)
		}
		t.Skipf("zkref: reference ZooKeeper unavailable: %s", m)
	}
}

// Start launches a standalone ZooKeeper for a test and registers its Stop with
// t.Cleanup. It skips the test (naming what is missing) when java or the jars
// are absent, and fails it when the server does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	requireOrSkip(t)
	s, err := StartServer(opts)
	if err != nil {
		t.Fatalf("zkref: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("zkref: ZooKeeper log tail (%s):\n%s", s.LogPath(), s.LogTail(40))
		}
		s.Stop()
	})
	return s
}

// StartServer is Start for programs that are not tests (the benchmark tool).
// The caller must call Stop.
func StartServer(opts Options) (*Server, error) {
	if m := Missing(); m != "" {
		return nil, errors.New(m)
	}
	// A port picked by listening on :0 can be taken by someone else before
	// Java binds it; a second try with a fresh port settles that.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		s, err := launch(opts, ports[0], nil, 0)
		if err == nil {
			if err = s.waitReady(opts.startTimeout()); err == nil {
				return s, nil
			}
			tail := s.LogTail(30)
			s.Stop()
			err = fmt.Errorf("%w\nlog tail:\n%s", err, tail)
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

func (o Options) startTimeout() time.Duration {
	if o.StartTimeout > 0 {
		return o.StartTimeout
	}
	return 60 * time.Second
}

var errExitedEarly = errors.New("zookeeper process exited before answering ruok")

// member describes one server of an ensemble for zoo.cfg's server.N lines.
type member struct {
	id                               int
	clientPort, quorumPort, elecPort int
}

func launch(opts Options, clientPort int, members []member, myid int) (*Server, error) {
	dir := opts.Dir
	ownDir := false
	if dir == "" {
		d, err := os.MkdirTemp("", "zkref-")
		if err != nil {
			return nil, err
		}
		dir, ownDir = d, true
	} else if myid > 0 {
		dir = filepath.Join(dir, fmt.Sprintf("server%d", myid))
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if myid > 0 {
		if err := os.WriteFile(filepath.Join(dataDir, "myid"), []byte(strconv.Itoa(myid)+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(zooCfg(opts, dataDir, clientPort, members)), 0o644); err != nil {
		return nil, err
	}
	level := opts.LogLevel
	if level == "" {
		level = "INFO"
	}
	log4jPath := filepath.Join(dir, "log4j.properties")
	log4j := "log4j.rootLogger=" + level + ", CONSOLE\n" +
		"log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n" +
		"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n" +
		"log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n"
	if err := os.WriteFile(log4jPath, []byte(log4j), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "zookeeper.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor

	cp := make([]string, len(jars))
	for i, j := range jars {
		cp[i] = filepath.Join(jarDir(), j)
	}
	jvm := opts.JVMArgs
	if jvm == nil {
		if env := strings.Fields(os.Getenv("ZKREF_JVM_ARGS")); len(env) > 0 {
			jvm = env
		} else {
			jvm = []string{"-Xmx1000m"}
		}
	}
	args := append([]string{}, jvm...)
	args = append(args,
		"-Dlog4j.configuration=file:"+log4jPath,
		"-Dzookeeper.log.dir="+dir,
		// Keep the JMX agent off; nothing here reads it and it costs memory.
		"-Dzookeeper.jmx.log4j.disable=true",
	)
	if opts.ContainerCheckInterval > 0 {
		args = append(args, "-Dznode.container.checkIntervalMs="+strconv.FormatInt(opts.ContainerCheckInterval.Milliseconds(), 10))
	}
	args = append(args, "-cp", strings.Join(cp, ":"), "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)

	cmd := exec.Command(javaPath(), args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group, so Stop can signal the JVM and anything it forks
	// without touching other processes; Pdeathsig reaps it if we crash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if ownDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("start java: %w", err)
	}
	s := &Server{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort)),
		port:    clientPort,
		dir:     dir,
		ownDir:  ownDir,
		logPath: logPath,
		cmd:     cmd,
		exited:  make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

func zooCfg(opts Options, dataDir string, clientPort int, members []member) string {
	tick := opts.TickTime
	if tick <= 0 {
		tick = 2 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\n", tick.Milliseconds())
	fmt.Fprintf(&b, "dataDir=%s\n", dataDir)
	fmt.Fprintf(&b, "clientPort=%d\n", clientPort)
	b.WriteString("clientPortAddress=127.0.0.1\n")
	b.WriteString("4lw.commands.whitelist=*\n")
	b.WriteString("extendedTypesEnabled=true\n")
	b.WriteString("admin.enableServer=false\n")
	b.WriteString("maxClientCnxns=0\n")
	if opts.ForceSync != "" {
		fmt.Fprintf(&b, "forceSync=%s\n", opts.ForceSync)
	}
	if len(members) > 0 {
		b.WriteString("initLimit=10\nsyncLimit=5\n")
		for _, m := range members {
			fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", m.id, m.quorumPort, m.elecPort)
		}
	}
	keys := make([]string, 0, len(opts.Extra))
	for k := range opts.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, opts.Extra[k])
	}
	return b.String()
}

// freePorts reserves n distinct loopback ports by listening on :0. They are
// released before ZooKeeper binds them, which is why StartServer retries.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls ruok until imok, then srvr until it reports a Mode: ruok
// answers imok as soon as the port is open, while the server still refuses
// requests ("not currently serving") until its database is loaded or, in an
// ensemble, until it has joined a quorum.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("%w (%v)", errExitedEarly, s.waitErr)
		default:
		}
		if out, err := FourLetterWord(s.addr, "ruok", time.Second); err == nil && out == "imok" {
			if out, err := FourLetterWord(s.addr, "srvr", time.Second); err == nil && strings.Contains(out, "Mode: ") {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("zookeeper on %s not ready after %v", s.addr, timeout)
}

// FourLetterWord sends a four-letter word to addr and returns the whole reply
// (ZooKeeper answers in plain text and closes).
func FourLetterWord(addr, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	r := bufio.NewReader(c)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// Addr is host:port of the client port.
func (s *Server) Addr() string { return s.addr }

// Port is the client port.
func (s *Server) Port() int { return s.port }

// PID is the Java process id (for reading VmRSS).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Dir is the directory holding zoo.cfg, data and the log.
func (s *Server) Dir() string { return s.dir }

// LogPath is the file receiving ZooKeeper's stdout and stderr.
func (s *Server) LogPath() string { return s.logPath }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exited is closed when the process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stop terminates the server's process group (SIGTERM, then SIGKILL after 5s)
// and removes its temporary directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		pgid := s.cmd.Process.Pid // Setpgid makes the child its group leader
		select {
		case <-s.exited:
		default:
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-s.exited
			}
		}
		if s.ownDir {
			os.RemoveAll(s.dir)
		}
	})
}

// Kill sends SIGKILL to the server's process group and waits for it to die,
// for crash tests; the directory is kept until Stop.
func (s *Server) Kill() {
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Ensemble is a quorum of ZooKeeper processes on loopback ports.
type Ensemble struct {
	Servers []*Server
	dir     string
}

// StartEnsemble launches an n-member ensemble for a test (Stop via
// t.Cleanup) and waits until every member serves requests.
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	requireOrSkip(t)
	e, err := StartEnsembleServers(n, Options{})
	if err != nil {
		t.Fatalf("zkref: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range e.Servers {
				t.Logf("zkref: %s log tail:\n%s", s.Addr(), s.LogTail(20))
			}
		}
		e.Stop()
	})
	return e
}

// StartEnsembleServers is StartEnsemble for non-test programs. opts.Dir, when
// set, gets one sub-directory per member.
func StartEnsembleServers(n int, opts Options) (*Ensemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("ensemble size %d", n)
	}
	if m := Missing(); m != "" {
		return nil, errors.New(m)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e, err := startEnsembleOnce(n, opts)
		if err == nil {
			return e, nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

func startEnsembleOnce(n int, opts Options) (*Ensemble, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	members := make([]member, n)
	for i := range members {
		members[i] = member{id: i + 1, clientPort: ports[3*i], quorumPort: ports[3*i+1], elecPort: ports[3*i+2]}
	}
	e := &Ensemble{}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "zkref-ensemble-")
		if err != nil {
			return nil, err
		}
		e.dir = d
		opts.Dir = d
	}
	for _, m := range members {
		s, err := launch(opts, m.clientPort, members, m.id)
		if err != nil {
			e.Stop()
			return nil, err
		}
		e.Servers = append(e.Servers, s)
	}
	for _, s := range e.Servers {
		if err := s.waitReady(opts.startTimeout()); err != nil {
			tail := s.LogTail(30)
			e.Stop()
			return nil, fmt.Errorf("%w\nlog tail of %s:\n%s", err, s.Addr(), tail)
		}
	}
	return e, nil
}

// Addrs lists the members' client addresses.
func (e *Ensemble) Addrs() []string {
	out := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		out[i] = s.Addr()
	}
	return out
}

// ConnectString is the comma-separated client address list.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Addrs(), ",") }

// Stop stops every member and removes the ensemble's directory.
func (e *Ensemble) Stop() {
	var wg sync.WaitGroup
	for _, s := range e.Servers {
		wg.Add(1)
		go func(s *Server) {
			defer wg.Done()
			s.Stop()
		}(s)
	}
	wg.Wait()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

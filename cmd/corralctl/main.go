// Command corralctl is a ZooKeeper client CLI in the spirit of zkCli.sh, built
// on github.com/go-zookeeper/zk. It talks to Corral or to Apache ZooKeeper.
//
//	corralctl [--server host:port[,host:port]] [--timeout 10s] [--auth scheme:auth] <command> [args]
//	corralctl shell            # commands line by line from stdin (a terminal or a here-doc)
//
//	corralctl [--auth digest:super:password] cluster list|status|add|remove|transfer-leader
//
// Exit codes: 0 ok, 1 ZooKeeper error (node missing, bad version, ...; no
// leader for cluster status), 2 usage error or unsupported command,
// 3 connection failure.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// lockedWriter serialises command output with watch events printed from
// go-zk's receive goroutine.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type authCred struct{ scheme, auth string }

type cli struct {
	out, errOut    io.Writer
	servers        []string
	auths          []authCred // --auth, for commands that open their own session
	timeout        time.Duration
	sessionTimeout time.Duration
	verbose        bool
	shell          bool

	conn    *zk.Conn
	inj     *injector
	events  chan zk.Event // node events, while collect is set
	states  chan zk.State // session state changes, while collect is set
	collect atomic.Bool

	printEvents atomic.Bool // print every node event as it arrives (shell, addWatch)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	mu := &sync.Mutex{}
	c := &cli{out: lockedWriter{mu, stdout}, errOut: lockedWriter{mu, stderr}, events: make(chan zk.Event, 1024), states: make(chan zk.State, 64)}

	fs := flag.NewFlagSet("corralctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", envOr("CORRALCTL_SERVER", "127.0.0.1:2181"), "comma-separated host:port list")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for a session and for each reply")
	fs.DurationVar(&c.sessionTimeout, "session-timeout", 30*time.Second, "requested session timeout")
	fs.BoolVar(&c.verbose, "verbose", false, "log the client library's connection messages to stderr")
	var auths []authCred
	fs.Func("auth", "scheme:auth applied after connecting, e.g. digest:user:pass (repeatable)", func(v string) error {
		scheme, auth, ok := strings.Cut(v, ":")
		if !ok || scheme == "" {
			return fmt.Errorf("want scheme:auth, got %q", v)
		}
		auths = append(auths, authCred{scheme, auth})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return exitOK
		}
		fmt.Fprintf(stderr, "corralctl: %v\n%s", err, shortUsage)
		return exitUsage
	}
	c.servers = splitServers(*server)
	c.auths = auths
	if len(c.servers) == 0 {
		fmt.Fprintf(stderr, "corralctl: --server is empty\n")
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, shortUsage)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	if name == "shell" {
		return c.runShell(rest[1:], stdin, auths)
	}
	cmd, ok := commands[strings.ToLower(name)]
	if !ok {
		fmt.Fprintf(stderr, "Unknown command: %s\n%s", name, shortUsage)
		return exitUsage
	}
	if cmd.noSession {
		return c.report(cmd.run(c, rest[1:]))
	}
	// Check the command line before dialling, so a typo is a usage error
	// even when no server is reachable.
	if err := cmd.check(rest[1:]); err != nil {
		return c.report(err)
	}
	if err := c.connect(auths); err != nil {
		return c.report(err)
	}
	defer c.close()
	return c.report(cmd.run(c, rest[1:]))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func splitServers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// report prints err (if any) and returns its exit code.
func (c *cli) report(err error) int {
	if err == nil {
		return exitOK
	}
	var se *silentError
	if errors.As(err, &se) {
		return se.code
	}
	path := ""
	var pe *pathError
	if errors.As(err, &pe) {
		err, path = pe.err, pe.path
	}
	msg, code := describe(err, path)
	fmt.Fprintln(c.errOut, msg)
	return code
}

// pathError attaches the znode path an error is about, for the message.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func onPath(path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pathError
	if errors.As(err, &pe) {
		return err
	}
	return &pathError{path: path, err: err}
}

func (c *cli) connect(auths []authCred) error {
	inj := newInjector()
	var logger zk.Logger = log.New(io.Discard, "", 0)
	if c.verbose {
		logger = log.New(c.errOut, "zk: ", log.LstdFlags)
	}
	conn, events, err := zk.Connect(c.servers, c.sessionTimeout,
		zk.WithDialer(inj.dial),
		zk.WithLogger(logger),
		zk.WithLogInfo(c.verbose),
		zk.WithEventCallback(c.onEvent),
	)
	if err != nil {
		return &connError{fmt.Sprintf("Unable to connect to %s: %v", strings.Join(c.servers, ","), err)}
	}
	deadline := time.After(c.timeout)
	for connected := false; !connected; {
		select {
		case ev := <-events:
			switch ev.State {
			case zk.StateHasSession:
				connected = true
			case zk.StateAuthFailed:
				conn.Close()
				return &connError{"Authentication failed while connecting"}
			}
		case <-deadline:
			conn.Close()
			return &connError{fmt.Sprintf("Unable to connect to %s within %v", strings.Join(c.servers, ","), c.timeout)}
		}
	}
	c.conn, c.inj = conn, inj
	for _, a := range auths {
		if err := c.conn.AddAuth(a.scheme, []byte(a.auth)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cli) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.inj = nil, nil
	}
}

// onEvent runs on go-zk's receive goroutine for every event, before the
// replies that follow it on the wire, so printing here keeps ZooKeeper's
// order: an event appears before the output of a later command.
func (c *cli) onEvent(ev zk.Event) {
	if ev.Type == zk.EventSession {
		if ev.State == zk.StateExpired && c.shell {
			fmt.Fprintln(c.errOut, "Session expired")
		}
		if c.collect.Load() {
			select {
			case c.states <- ev.State:
			default:
			}
		}
		return
	}
	if ev.Type == zk.EventNotWatching {
		return // go-zk's own notice that it dropped a watch, not a server event
	}
	if c.printEvents.Load() {
		fmt.Fprintln(c.out, formatEvent(ev))
	}
	if c.collect.Load() {
		select {
		case c.events <- ev:
		default: // never block go-zk's reader
		}
	}
}

var eventTypeNames = map[zk.EventType]string{
	zk.EventNodeCreated:         "NodeCreated",
	zk.EventNodeDeleted:         "NodeDeleted",
	zk.EventNodeDataChanged:     "NodeDataChanged",
	zk.EventNodeChildrenChanged: "NodeChildrenChanged",
	5:                           "DataWatchRemoved",
	6:                           "ChildWatchRemoved",
	7:                           "PersistentWatchRemoved",
}

var stateNames = map[zk.State]string{
	zk.StateDisconnected:      "Disconnected",
	zk.StateSyncConnected:     "SyncConnected",
	zk.StateAuthFailed:        "AuthFailed",
	zk.StateConnectedReadOnly: "ConnectedReadOnly",
	zk.StateSaslAuthenticated: "SaslAuthenticated",
	zk.StateExpired:           "Expired",
}

// formatEvent prints an event the way zkCli does.
func formatEvent(ev zk.Event) string {
	t, ok := eventTypeNames[ev.Type]
	if !ok {
		t = fmt.Sprintf("%d", ev.Type)
	}
	s, ok := stateNames[ev.State]
	if !ok {
		s = fmt.Sprintf("%d", ev.State)
	}
	return fmt.Sprintf("WatchedEvent state:%s type:%s path:%s", s, t, ev.Path)
}

// waitSignal returns a channel closed on SIGINT/SIGTERM, for commands that
// run until interrupted.
func (c *cli) waitSignal() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// runShell reads commands line by line. Errors are printed and the shell goes
// on (like zkCli) unless -e is given; the exit status is that of the last
// failed command, 0 when every command succeeded.
func (c *cli) runShell(args []string, stdin io.Reader, auths []authCred) int {
	errexit := false
	for _, a := range args {
		switch a {
		case "-e", "--errexit", "-errexit":
			errexit = true
		default:
			fmt.Fprintf(c.errOut, "shell: unknown option %s (usage: shell [-e])\n", a)
			return exitUsage
		}
	}
	c.shell = true
	c.printEvents.Store(true)
	if err := c.connect(auths); err != nil {
		return c.report(err)
	}
	defer c.close()

	interactive := false
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			interactive = true
		}
	}
	status := exitOK
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for {
		if interactive {
			where := "not connected"
			if c.conn != nil {
				where = c.conn.Server()
			}
			fmt.Fprintf(c.out, "[corralctl: %s] ", where)
		}
		if !sc.Scan() {
			break
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := splitLine(line)
		if err != nil {
			fmt.Fprintln(c.errOut, err)
			status = exitUsage
			if errexit {
				return status
			}
			continue
		}
		name := words[0]
		switch strings.ToLower(name) {
		case "quit", "exit":
			return status
		case "help":
			fmt.Fprint(c.out, usageText)
			continue
		case "shell":
			fmt.Fprintln(c.errOut, "already in shell mode")
			continue
		}
		code := c.runLine(name, words[1:])
		if code != exitOK {
			status = code
			if errexit {
				return status
			}
		}
	}
	return status
}

func (c *cli) runLine(name string, args []string) int {
	cmd, ok := commands[strings.ToLower(name)]
	if !ok {
		fmt.Fprintf(c.errOut, "Unknown command: %s (try help)\n", name)
		return exitUsage
	}
	if err := cmd.check(args); err != nil {
		return c.report(err)
	}
	if !cmd.noSession && c.conn == nil {
		fmt.Fprintln(c.errOut, "Not connected (use: connect host:port)")
		return exitConnection
	}
	return c.report(cmd.run(c, args))
}

// splitLine splits a shell line into words with sh-like quoting: '...' is
// literal, "..." allows \" and \\, and a backslash outside quotes escapes the
// next character.
func splitLine(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, usagef("unterminated ' quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inWord = true
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, usagef("unterminated \" quote")
			}
		case ch == '\\' && i+1 < len(line):
			inWord = true
			i++
			cur.WriteByte(line[i])
		default:
			inWord = true
			cur.WriteByte(ch)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

const shortUsage = "usage: corralctl [--server host:port[,...]] [--timeout 10s] [--auth scheme:auth] <command> [args]  (corralctl help)\n"

const usageText = `corralctl: a ZooKeeper-compatible client CLI (zkCli-style commands).

usage: corralctl [global flags] <command> [args]
       corralctl [global flags] shell [-e]    read commands from stdin (-e: stop at the first error)

global flags:
  --server host:port[,host:port]   servers (default 127.0.0.1:2181, or $CORRALCTL_SERVER)
  --timeout 10s                    wait this long for a session and for each reply
  --session-timeout 30s            requested session timeout
  --auth scheme:auth               add auth after connecting, e.g. --auth digest:bob:secret (repeatable)
  --verbose                        log the client library's connection messages

commands:
  create [-e] [-s] [-c] [-t ttl] path [data] [acl]   -e ephemeral, -s sequential, -c container,
                                                      -t TTL (ms, or a duration like 10s)
  get [-s] [-w] path                 print data (-s also the Stat, -w watch)
  set [-s] [-v version] path data
  stat [-w] path
  ls [-R] [-s] [-w] path             -R recursive listing
  delete [-v version] path
  deleteall path                     delete path and everything under it
  getAcl [-s] path                   one scheme:id:perms per line
  setAcl [-s] [-v version] [-R] path acl   acl: scheme:id:perms[,...], e.g. world:anyone:cdrwa
  addauth scheme auth                e.g. addauth digest bob:secret (shell: applies to later commands)
  sync path
  addWatch [-m persistent|persistent_recursive] [--count N] path
                                     print events until interrupted or N events (shell: print as they come)
  removewatches path [-c|-d|-a|-p|-r]   remove child/data/any/persistent/recursive watches
                                     (-p and -r need ZooKeeper 3.9; 3.8 answers MarshallingError)
  getEphemerals [path]               this session's ephemeral nodes
  getAllChildrenNumber path          number of descendants
  whoami                             this session's auth ids
  config                             print /zookeeper/config
  digest user:password               print the digest ACL id (user:base64(sha1(user:password)))
  4lw word                           send a four-letter word (ruok, srvr, mntr, ...) to the first server
  connect host:port[,...]            (shell) reconnect elsewhere
  close                              (shell) close the session

cluster commands (membership, over the ZooKeeper protocol):
  cluster list                       members from /zookeeper/config: id, role, peer, client address
                                     (a standalone server has an empty config: the connected server is shown)
  cluster status                     srvr on every member: mode, zxid, node count, connections, latency;
                                     exit 1 when no member is leader. Members without a client address in
                                     the config (ZooKeeper's static server.N lines) are found by asking the
                                     --server addresses for their serverId (conf). Without a session (no
                                     quorum) the --server addresses are probed directly.
  cluster add --id N --peer host:port --client host:port [--observer] [--version hex]
                                     reconfig joining server.N=host:port:port:participant|observer;client
                                     (ZooKeeper: --peer host:quorumPort:electionPort)
  cluster remove N [--version hex]   reconfig leaving N
  cluster transfer-leader N          not supported over the ZooKeeper protocol yet (exit 2)
  add and remove print the new configuration. They need reconfig enabled on the server
  (Corral: reconfig_enabled: true; ZooKeeper: reconfigEnabled=true) and the super user:
      corralctl --auth digest:super:password --server host:port cluster add ...
  (Corral: super_digest; ZooKeeper: -Dzookeeper.DigestAuthenticationProvider.superDigest;
  the value is what 'corralctl digest super:password' prints). --version makes the change
  conditional on the config version cluster list prints (version=...).

With -w in one-shot mode the command waits for the watch to fire and prints the event;
in the shell, events are printed when they arrive, as zkCli does.
exit codes: 0 ok, 1 ZooKeeper error (cluster status: no leader), 2 usage error or unsupported
command, 3 connection failure
`

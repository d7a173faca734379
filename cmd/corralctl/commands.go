package main

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// command describes one CLI command: its options (name -> takes a value),
// how many positional arguments it takes, and what it does.
type command struct {
	usage     string
	flags     map[string]bool
	min, max  int
	noSession bool // runs without a ZooKeeper session (4lw, connect)
	shellOnly bool
	fn        func(c *cli, p *parsed) error
}

type parsed struct {
	flags map[string]string
	args  []string
}

func (p *parsed) has(f string) bool { _, ok := p.flags[f]; return ok }

// parse accepts options anywhere on the line, as zkCli does ("-x" or "--x",
// values as the next word or after "="); "--" ends option parsing so data
// can start with a dash.
func (cmd *command) parse(args []string) (*parsed, error) {
	p := &parsed{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			p.args = append(p.args, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			p.args = append(p.args, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		takes, known := cmd.flags[name]
		if !known {
			return nil, usagef("unknown option %s (usage: %s)", a, cmd.usage)
		}
		if takes && !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("option %s needs a value (usage: %s)", a, cmd.usage)
			}
			i++
			value = args[i]
		} else if !takes && hasValue {
			return nil, usagef("option -%s takes no value (usage: %s)", name, cmd.usage)
		}
		p.flags[name] = value
	}
	if len(p.args) < cmd.min || (cmd.max >= 0 && len(p.args) > cmd.max) {
		return nil, usagef("usage: %s", cmd.usage)
	}
	return p, nil
}

func (cmd *command) check(args []string) error {
	_, err := cmd.parse(args)
	return err
}

func (cmd *command) run(c *cli, args []string) error {
	p, err := cmd.parse(args)
	if err != nil {
		return err
	}
	if cmd.shellOnly && !c.shell {
		return usagef("%s is only available in the shell", cmd.usage)
	}
	return cmd.fn(c, p)
}

var commands map[string]*command

func init() {
	commands = map[string]*command{
		"create": {usage: "create [-e] [-s] [-c] [-t ttl] path [data] [acl]",
			flags: map[string]bool{"e": false, "s": false, "c": false, "t": true}, min: 1, max: 3, fn: cmdCreate},
		"get": {usage: "get [-s] [-w] path",
			flags: map[string]bool{"s": false, "w": false}, min: 1, max: 1, fn: cmdGet},
		"set": {usage: "set [-s] [-v version] path data",
			flags: map[string]bool{"s": false, "v": true}, min: 2, max: 2, fn: cmdSet},
		"stat": {usage: "stat [-w] path",
			flags: map[string]bool{"w": false}, min: 1, max: 1, fn: cmdStat},
		"ls": {usage: "ls [-s] [-w] [-R] path",
			flags: map[string]bool{"s": false, "w": false, "R": false}, min: 1, max: 1, fn: cmdLs},
		"delete": {usage: "delete [-v version] path",
			flags: map[string]bool{"v": true}, min: 1, max: 1, fn: cmdDelete},
		"deleteall": {usage: "deleteall path",
			flags: map[string]bool{}, min: 1, max: 1, fn: cmdDeleteAll},
		"getacl": {usage: "getAcl [-s] path",
			flags: map[string]bool{"s": false}, min: 1, max: 1, fn: cmdGetACL},
		"setacl": {usage: "setAcl [-s] [-v version] [-R] path acl",
			flags: map[string]bool{"s": false, "v": true, "R": false}, min: 2, max: 2, fn: cmdSetACL},
		"addauth": {usage: "addauth scheme auth",
			flags: map[string]bool{}, min: 2, max: 2, fn: cmdAddAuth},
		"sync": {usage: "sync path",
			flags: map[string]bool{}, min: 1, max: 1, fn: cmdSync},
		"addwatch": {usage: "addWatch [-m persistent|persistent_recursive] [--count N] path",
			flags: map[string]bool{"m": true, "count": true}, min: 1, max: 1, fn: cmdAddWatch},
		"removewatches": {usage: "removewatches path [-c|-d|-a|-p|-r]",
			flags: map[string]bool{"c": false, "d": false, "a": false, "p": false, "r": false}, min: 1, max: 1, fn: cmdRemoveWatches},
		"getephemerals": {usage: "getEphemerals [path]",
			flags: map[string]bool{}, min: 0, max: 1, fn: cmdGetEphemerals},
		"getallchildrennumber": {usage: "getAllChildrenNumber path",
			flags: map[string]bool{}, min: 1, max: 1, fn: cmdGetAllChildrenNumber},
		"whoami": {usage: "whoami",
			flags: map[string]bool{}, min: 0, max: 0, fn: cmdWhoAmI},
		"config": {usage: "config",
			flags: map[string]bool{}, min: 0, max: 0, fn: cmdConfig},
		"cluster": {usage: clusterUsage,
			flags: map[string]bool{"id": true, "peer": true, "client": true, "observer": false, "version": true},
			min:   1, max: 2, noSession: true, fn: cmdCluster},
		"4lw": {usage: "4lw word",
			flags: map[string]bool{}, min: 1, max: 1, noSession: true, fn: cmd4lw},
		"digest": {usage: "digest user:password",
			flags: map[string]bool{}, min: 1, max: 1, noSession: true, fn: cmdDigest},
		"connect": {usage: "connect host:port[,host:port]",
			flags: map[string]bool{}, min: 1, max: 1, noSession: true, shellOnly: true, fn: cmdConnect},
		"close": {usage: "close",
			flags: map[string]bool{}, min: 0, max: 0, noSession: true, shellOnly: true, fn: cmdClose},
	}
}

var openACL = zk.WorldACL(zk.PermAll)

func parseVersion(p *parsed) (int32, error) {
	v, ok := p.flags["v"]
	if !ok {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, usagef("invalid version %q: want an integer", v)
	}
	return int32(n), nil
}

// parseTTL accepts zkCli's milliseconds ("5000") or a Go duration ("5s").
func parseTTL(s string) (time.Duration, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms <= 0 {
			return 0, usagef("invalid TTL %q: must be positive", s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Millisecond {
		return 0, usagef("invalid TTL %q: want milliseconds or a duration like 10s", s)
	}
	return d, nil
}

func cmdCreate(c *cli, p *parsed) error {
	path := p.args[0]
	var data []byte // nil is sent as null data, as zkCli does without a data argument
	if len(p.args) > 1 {
		data = []byte(p.args[1])
	}
	acl := openACL
	if len(p.args) > 2 {
		a, err := parseACL(p.args[2])
		if err != nil {
			return usagef("%v", err)
		}
		acl = a
	}
	eph, seq, cont := p.has("e"), p.has("s"), p.has("c")
	ttlArg, hasTTL := p.flags["t"]
	if cont && (eph || seq || hasTTL) {
		return usagef("-c cannot be combined with -e, -s or -t")
	}
	if hasTTL && eph {
		return usagef("-t cannot be combined with -e (TTL nodes are persistent)")
	}
	var (
		created string
		err     error
	)
	switch {
	case cont:
		created, err = c.conn.CreateContainer(path, data, zk.FlagContainer, acl)
	case hasTTL:
		ttl, perr := parseTTL(ttlArg)
		if perr != nil {
			return perr
		}
		flag := int32(zk.FlagTTL)
		if seq {
			flag = zk.FlagPersistentSequentialWithTTL
		}
		created, err = c.conn.CreateTTL(path, data, flag, acl, ttl)
		if code, ok := codeOf(err); ok && code == codeUnimplemented {
			return &pathError{path, fmt.Errorf("%w (TTL nodes need extendedTypesEnabled=true on the server)", err)}
		}
	default:
		var flags int32
		if eph {
			flags |= zk.FlagEphemeral
		}
		if seq {
			flags |= zk.FlagSequence
		}
		created, err = c.conn.Create(path, data, flags, acl)
	}
	if err != nil {
		return onPath(path, err)
	}
	fmt.Fprintf(c.out, "Created %s\n", created)
	return nil
}

func printData(c *cli, data []byte) {
	if data == nil {
		fmt.Fprintln(c.out, "null")
		return
	}
	fmt.Fprintln(c.out, string(data))
}

// awaitWatch waits for a one-shot watch in one-shot mode and prints its event;
// in the shell the event callback prints it when it comes.
func (c *cli) awaitWatch(ech <-chan zk.Event) error {
	if c.shell || ech == nil {
		return nil
	}
	sig, stop := c.waitSignal()
	defer stop()
	select {
	case ev, ok := <-ech:
		if !ok {
			return &connError{"watch channel closed"}
		}
		if ev.Err != nil {
			return &connError{fmt.Sprintf("watch lost: %v", ev.Err)}
		}
		fmt.Fprintln(c.out, formatEvent(ev))
		return nil
	case <-sig:
		return nil
	}
}

func cmdGet(c *cli, p *parsed) error {
	path := p.args[0]
	var (
		data []byte
		st   *zk.Stat
		ech  <-chan zk.Event
		err  error
	)
	if p.has("w") {
		data, st, ech, err = c.conn.GetW(path)
	} else {
		data, st, err = c.conn.Get(path)
	}
	if err != nil {
		return onPath(path, err)
	}
	printData(c, data)
	if p.has("s") {
		fmt.Fprint(c.out, formatStat(st))
	}
	return c.awaitWatch(ech)
}

func cmdSet(c *cli, p *parsed) error {
	path := p.args[0]
	version, err := parseVersion(p)
	if err != nil {
		return err
	}
	st, err := c.conn.Set(path, []byte(p.args[1]), version)
	if err != nil {
		return onPath(path, err)
	}
	if p.has("s") {
		fmt.Fprint(c.out, formatStat(st))
	}
	return nil
}

func cmdStat(c *cli, p *parsed) error {
	path := p.args[0]
	var (
		ok  bool
		st  *zk.Stat
		ech <-chan zk.Event
		err error
	)
	if p.has("w") {
		ok, st, ech, err = c.conn.ExistsW(path)
	} else {
		ok, st, err = c.conn.Exists(path)
	}
	if err != nil {
		return onPath(path, err)
	}
	if !ok {
		// The exists watch is set even on a missing node (it fires NodeCreated):
		// report the missing node, then wait for the event like any -w.
		missing := &pathError{path, zk.ErrNoNode}
		if ech != nil && !c.shell {
			fmt.Fprintln(c.errOut, codeMessage(codeNoNode, path))
			if err := c.awaitWatch(ech); err != nil {
				return err
			}
			return &silentError{code: exitZK}
		}
		return missing
	}
	fmt.Fprint(c.out, formatStat(st))
	return c.awaitWatch(ech)
}

// silentError carries an exit code whose message was already printed.
type silentError struct{ code int }

func (e *silentError) Error() string { return "" }

func cmdLs(c *cli, p *parsed) error {
	path := p.args[0]
	if p.has("R") {
		if p.has("w") || p.has("s") {
			return usagef("-R cannot be combined with -w or -s")
		}
		return listRecursive(c, path)
	}
	var (
		children []string
		st       *zk.Stat
		ech      <-chan zk.Event
		err      error
	)
	if p.has("w") {
		children, st, ech, err = c.conn.ChildrenW(path)
	} else {
		children, st, err = c.conn.Children(path)
	}
	if err != nil {
		return onPath(path, err)
	}
	sort.Strings(children) // ZooKeeper returns hash order; zkCli prints sorted
	fmt.Fprintf(c.out, "[%s]\n", strings.Join(children, ", "))
	if p.has("s") {
		fmt.Fprint(c.out, formatStat(st))
	}
	return c.awaitWatch(ech)
}

func joinPath(parent, child string) string {
	if parent == "/" {
		return "/" + child
	}
	return parent + "/" + child
}

// listRecursive prints path and every descendant, breadth first, siblings
// sorted (zkCli's ls -R order).
func listRecursive(c *cli, path string) error {
	queue := []string{path}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		children, _, err := c.conn.Children(cur)
		if err != nil {
			if errors.Is(err, zk.ErrNoNode) && cur != path {
				continue // deleted while we walked
			}
			return onPath(cur, err)
		}
		fmt.Fprintln(c.out, cur)
		sort.Strings(children)
		for _, ch := range children {
			queue = append(queue, joinPath(cur, ch))
		}
	}
	return nil
}

func cmdDelete(c *cli, p *parsed) error {
	path := p.args[0]
	version, err := parseVersion(p)
	if err != nil {
		return err
	}
	return onPath(path, c.conn.Delete(path, version))
}

func cmdDeleteAll(c *cli, p *parsed) error {
	return deleteAll(c.conn, p.args[0])
}

// deleteAll removes path and its subtree: children first, in multi batches
// (one round trip per batch), falling back to single deletes when a batch
// fails because someone else changed the tree. For "/" it empties the tree
// but keeps /zookeeper, which the server owns.
func deleteAll(conn *zk.Conn, path string) error {
	var order []string // post-order: children before parents
	var walk func(p string) error
	walk = func(p string) error {
		children, _, err := conn.Children(p)
		if err != nil {
			if errors.Is(err, zk.ErrNoNode) && p != path {
				return nil
			}
			return onPath(p, err)
		}
		for _, ch := range children {
			if p == "/" && ch == "zookeeper" {
				continue
			}
			if err := walk(joinPath(p, ch)); err != nil {
				return err
			}
		}
		if p != "/" {
			order = append(order, p)
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		order = order[:0]
		if err := walk(path); err != nil {
			return err
		}
		err := deleteInOrder(conn, order)
		if err == nil || !errors.Is(err, zk.ErrNotEmpty) || attempt == 3 {
			return err
		}
		// A child appeared under a node meanwhile: walk again.
	}
}

func deleteInOrder(conn *zk.Conn, order []string) error {
	const batch = 500
	for len(order) > 0 {
		n := min(batch, len(order))
		ops := make([]any, n)
		for i, p := range order[:n] {
			ops[i] = &zk.DeleteRequest{Path: p, Version: -1}
		}
		if _, err := conn.Multi(ops...); err != nil {
			if isConnErr(err) {
				return err
			}
			for _, p := range order[:n] {
				if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					return onPath(p, err)
				}
			}
		}
		order = order[n:]
	}
	return nil
}

func cmdGetACL(c *cli, p *parsed) error {
	path := p.args[0]
	acls, st, err := c.conn.GetACL(path)
	if err != nil {
		return onPath(path, err)
	}
	for _, a := range acls {
		fmt.Fprintln(c.out, formatACL(a))
	}
	if p.has("s") {
		fmt.Fprint(c.out, formatStat(st))
	}
	return nil
}

func cmdSetACL(c *cli, p *parsed) error {
	path := p.args[0]
	acls, err := parseACL(p.args[1])
	if err != nil {
		return usagef("%v", err)
	}
	version, err := parseVersion(p)
	if err != nil {
		return err
	}
	if p.has("R") {
		if p.has("v") {
			return usagef("-R cannot be combined with -v")
		}
		var walk func(string) error
		walk = func(cur string) error {
			if _, err := c.conn.SetACL(cur, acls, -1); err != nil {
				return onPath(cur, err)
			}
			children, _, err := c.conn.Children(cur)
			if err != nil {
				return onPath(cur, err)
			}
			for _, ch := range children {
				if err := walk(joinPath(cur, ch)); err != nil {
					return err
				}
			}
			return nil
		}
		return walk(path)
	}
	st, err := c.conn.SetACL(path, acls, version)
	if err != nil {
		return onPath(path, err)
	}
	if p.has("s") {
		fmt.Fprint(c.out, formatStat(st))
	}
	return nil
}

func cmdAddAuth(c *cli, p *parsed) error {
	return c.conn.AddAuth(p.args[0], []byte(p.args[1]))
}

func cmdSync(c *cli, p *parsed) error {
	path := p.args[0]
	if _, err := c.conn.Sync(path); err != nil {
		return onPath(path, err)
	}
	fmt.Fprintln(c.out, "Sync is OK")
	return nil
}

func cmdAddWatch(c *cli, p *parsed) error {
	path := p.args[0]
	mode := int32(1) // zkCli's default: PERSISTENT_RECURSIVE
	if m, ok := p.flags["m"]; ok {
		switch strings.ToLower(m) {
		case "persistent":
			mode = 0
		case "persistent_recursive":
			mode = 1
		default:
			return usagef("invalid mode %q: want persistent or persistent_recursive", m)
		}
	}
	count := 0
	if s, ok := p.flags["count"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return usagef("invalid --count %q: want a positive integer", s)
		}
		count = n
	}
	if c.shell {
		if count > 0 {
			return usagef("--count is for one-shot mode; in the shell events print as they arrive")
		}
		return onPath(path, c.inj.addWatch(path, mode, c.timeout))
	}
	// Collect before registering so no event slips between the two.
	c.collect.Store(true)
	defer c.collect.Store(false)
	if err := c.inj.addWatch(path, mode, c.timeout); err != nil {
		return onPath(path, err)
	}
	// On stderr, so stdout holds only events; it also tells a caller that
	// the watch is in place.
	modeName := map[int32]string{0: "persistent", 1: "persistent_recursive"}[mode]
	fmt.Fprintf(c.errOut, "Watching %s (%s)\n", path, modeName)
	sig, stop := c.waitSignal()
	defer stop()
	seen := 0
	for count == 0 || seen < count {
		select {
		case ev := <-c.events:
			fmt.Fprintln(c.out, formatEvent(ev))
			seen++
		case st := <-c.states:
			switch st {
			case zk.StateHasSession:
				// go-zk restores only the watches it knows (setWatches), not
				// persistent ones: add ours again on the new connection.
				if err := c.inj.addWatch(path, mode, c.timeout); err != nil {
					return onPath(path, err)
				}
			case zk.StateExpired:
				return zk.ErrSessionExpired
			}
		case <-sig:
			return nil
		}
	}
	return nil
}

func cmdRemoveWatches(c *cli, p *parsed) error {
	path := p.args[0]
	wtype := int32(3) // any
	n := 0
	for f, t := range map[string]int32{"c": 1, "d": 2, "a": 3, "p": 4, "r": 5} {
		if p.has(f) {
			wtype = t
			n++
		}
	}
	if n > 1 {
		return usagef("use only one of -c, -d, -a, -p, -r")
	}
	return onPath(path, c.inj.removeWatches(path, wtype, c.timeout))
}

func cmdGetEphemerals(c *cli, p *parsed) error {
	prefix := "/"
	if len(p.args) > 0 {
		prefix = p.args[0]
	}
	eph, err := c.inj.getEphemerals(prefix, c.timeout)
	if err != nil {
		return onPath(prefix, err)
	}
	sort.Strings(eph)
	fmt.Fprintf(c.out, "[%s]\n", strings.Join(eph, ", "))
	return nil
}

func cmdGetAllChildrenNumber(c *cli, p *parsed) error {
	path := p.args[0]
	n, err := c.inj.getAllChildrenNumber(path, c.timeout)
	if err != nil {
		return onPath(path, err)
	}
	fmt.Fprintln(c.out, n)
	return nil
}

func cmdWhoAmI(c *cli, _ *parsed) error {
	ids, err := c.inj.whoAmI(c.timeout)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, "Auth scheme: User")
	for _, id := range ids {
		fmt.Fprintf(c.out, "%s: %s\n", id.scheme, id.user)
	}
	return nil
}

func cmdConfig(c *cli, _ *parsed) error {
	data, _, err := c.conn.Get("/zookeeper/config")
	if err != nil {
		return onPath("/zookeeper/config", err)
	}
	fmt.Fprintln(c.out, strings.TrimRight(string(data), "\n"))
	return nil
}

func cmd4lw(c *cli, p *parsed) error {
	word := p.args[0]
	if len(word) != 4 {
		return usagef("a four-letter word has four letters: %q", word)
	}
	server := c.servers[0]
	if c.conn != nil {
		server = c.conn.Server()
	}
	server = withDefaultPort(server)
	out, err := fourLetter(server, word, c.timeout)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return &connError{fmt.Sprintf("Unable to connect to %s: %v", server, err)}
		}
		return &connError{fmt.Sprintf("no answer to %s from %s: %v", word, server, err)}
	}
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	fmt.Fprint(c.out, out)
	return nil
}

// cmdDigest prints the id a digest ACL needs for user:password
// (base64(sha1("user:password")), ZooKeeper's DigestAuthenticationProvider).
func cmdDigest(c *cli, p *parsed) error {
	user, _, ok := strings.Cut(p.args[0], ":")
	if !ok || user == "" {
		return usagef("usage: digest user:password")
	}
	fmt.Fprintln(c.out, digestID(p.args[0]))
	return nil
}

func digestID(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

func cmdConnect(c *cli, p *parsed) error {
	c.close()
	c.servers = splitServers(p.args[0])
	if len(c.servers) == 0 {
		return usagef("connect: empty server list")
	}
	return c.connect(nil)
}

func cmdClose(c *cli, _ *parsed) error {
	c.close()
	return nil
}

// javaDate is java.util.Date.toString()'s layout, which zkCli uses.
const javaDate = "Mon Jan 02 15:04:05 MST 2006"

// formatStat prints a Stat exactly as zkCli's stat/get -s do.
func formatStat(st *zk.Stat) string {
	if st == nil {
		return ""
	}
	ms := func(v int64) string { return time.UnixMilli(v).Format(javaDate) }
	return fmt.Sprintf("cZxid = 0x%x\nctime = %s\nmZxid = 0x%x\nmtime = %s\npZxid = 0x%x\n"+
		"cversion = %d\ndataVersion = %d\naclVersion = %d\nephemeralOwner = 0x%x\n"+
		"dataLength = %d\nnumChildren = %d\n",
		uint64(st.Czxid), ms(st.Ctime), uint64(st.Mzxid), ms(st.Mtime), uint64(st.Pzxid),
		st.Cversion, st.Version, st.Aversion, uint64(st.EphemeralOwner),
		st.DataLength, st.NumChildren)
}

package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ReplicaOptions describe an ensemble for the total order and replication
// checks.
type ReplicaOptions struct {
	// Servers are the client addresses of the members, one per member. Each
	// must speak ZooKeeper's wire protocol and answer the "hash"
	// four-letter word.
	Servers []string
	// SessionsPerMember is how many writer sessions each member hosts
	// during the concurrent load (default 2).
	SessionsPerMember int
	// Rounds is how many rounds of writes each session makes (default 25).
	Rounds int
	// Settle bounds how long the members may take to reach the same zxid
	// once every one of them has synced (default 10s).
	Settle time.Duration
}

func (o *ReplicaOptions) defaults() {
	if o.SessionsPerMember == 0 {
		o.SessionsPerMember = 2
	}
	if o.Rounds == 0 {
		o.Rounds = 25
	}
	if o.Settle == 0 {
		o.Settle = 10 * time.Second
	}
}

// RunReplication puts a concurrent write load on the members through
// sessions pinned to each of them, then checks that every member applied
// the same transactions in the same zxid order: the same zxid and tree
// digest on every member, the same tree (paths, data, Stat, ACLs) read
// through every member, and every acknowledged write of the load present
// with the zxid order its session issued it in.
func RunReplication(t *testing.T, o ReplicaOptions) {
	o.defaults()
	root := fmt.Sprintf("/replicas-%d-%d", time.Now().UnixNano(), rootSeq.Add(1))
	var exp *loadExpectation
	t.Run("ConcurrentLoad", func(t *testing.T) {
		exp = runLoad(t, o, root)
	})
	t.Run("SameOrderEverywhere", func(t *testing.T) {
		tree := CompareReplicas(t, o.Servers, o.Settle)
		if exp == nil {
			t.Fatal("the load did not finish; nothing to compare it with")
		}
		if err := exp.verify(tree); err != nil {
			t.Fatal(err)
		}
	})
	if err := deleteTree(Connect(t, o.Servers), root); err != nil {
		t.Errorf("cleaning up %s: %v", root, err)
	}
}

// deleteTree deletes path and everything under it, children first, many
// deletes to a multi (one by one the load's nodes would take seconds).
func deleteTree(c *zk.Conn, path string) error {
	if _, err := c.Sync(path); err != nil {
		return err
	}
	nodes, err := ReadTree(c, path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil // the load failed before creating it
	}
	if err != nil {
		return err
	}
	sort.Slice(nodes, func(i, j int) bool {
		return strings.Count(nodes[i].Path, "/") > strings.Count(nodes[j].Path, "/")
	})
	for len(nodes) > 0 {
		n := min(len(nodes), 200)
		ops := make([]any, n)
		for i, node := range nodes[:n] {
			ops[i] = &zk.DeleteRequest{Path: node.Path, Version: -1}
		}
		if _, err := c.Multi(ops...); err != nil {
			return err
		}
		nodes = nodes[n:]
	}
	return nil
}

// Hash asks a server for its applied zxid and tree digest with the "hash"
// four-letter word ("Digest in zxid 0x<zxid>: <digest>").
func Hash(addr string) (zxid int64, digest uint64, err error) {
	out, err := fourLetterWord(addr, "hash")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(out, "Digest in zxid 0x%x: %d", &zxid, &digest); err != nil {
		return 0, 0, fmt.Errorf("hash on %s: unexpected answer %q: %v", addr, out, err)
	}
	return zxid, digest, nil
}

func fourLetterWord(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	return string(b), err
}

// Node is one znode as read through a client.
type Node struct {
	Path string
	Data []byte
	Stat zk.Stat
	ACL  []zk.ACL
	// NoAuth is set when the reader may not read the node; Data and ACL
	// are then empty and Stat comes from exists, which ignores ACLs.
	NoAuth bool
}

// CompareReplicas syncs every member, waits until all of them report the
// same zxid through the "hash" four-letter word, checks that their tree
// digests agree at that zxid, reads the whole tree through every member and
// checks the reads are identical. It returns the tree (sorted by path).
//
// The readers' sessions are opened before the members are compared, since
// opening a session is itself a transaction. A change between the digest
// check and the end of the reads (a session expiring late) restarts the
// comparison.
func CompareReplicas(t *testing.T, servers []string, settle time.Duration) []Node {
	t.Helper()
	readers := make([]*zk.Conn, len(servers))
	for i, addr := range servers {
		readers[i] = Connect(t, []string{addr})
	}
	tree, err := compareReplicas(readers, servers, settle, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func compareReplicas(readers []*zk.Conn, servers []string, settle time.Duration, logf func(string, ...any)) ([]Node, error) {
	for attempt := 1; ; attempt++ {
		for i, c := range readers {
			if _, err := c.Sync("/"); err != nil {
				return nil, fmt.Errorf("sync on %s: %v", servers[i], err)
			}
		}
		zxid, digest, err := sameHash(servers, settle)
		if err != nil {
			return nil, err
		}
		trees := make([][]Node, len(servers))
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for i, c := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				trees[i], errs[i] = ReadTree(c, "/")
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("reading the tree through %s: %v", servers[i], err)
			}
		}
		moved := false
		for _, addr := range servers {
			z, d, err := Hash(addr)
			if err != nil {
				return nil, err
			}
			moved = moved || z != zxid || d != digest
		}
		if moved {
			if attempt == 3 {
				return nil, fmt.Errorf("the members never stayed at one zxid while being read (3 attempts)")
			}
			logf("zxid moved past 0x%x while reading the trees; comparing again", zxid)
			continue
		}
		for i := 1; i < len(trees); i++ {
			if diff := diffTrees(trees[0], trees[i]); diff != "" {
				return nil, fmt.Errorf("at zxid 0x%x (digest %d on all), %s and %s serve different trees: %s", zxid, digest, servers[0], servers[i], diff)
			}
		}
		logf("%d members at zxid 0x%x, digest %d, %d znodes, identical reads", len(servers), zxid, digest, len(trees[0]))
		return trees[0], nil
	}
}

// sameHash waits until every member reports the same zxid and checks that
// they report the same digest at it.
func sameHash(servers []string, settle time.Duration) (int64, uint64, error) {
	deadline := time.Now().Add(settle)
	var last string
	mismatches := 0
	for {
		zxids := make([]int64, len(servers))
		digests := make([]uint64, len(servers))
		for i, addr := range servers {
			z, d, err := Hash(addr)
			if err != nil {
				return 0, 0, err
			}
			zxids[i], digests[i] = z, d
		}
		var report strings.Builder
		for i, addr := range servers {
			fmt.Fprintf(&report, "\n  %s: zxid 0x%x digest %d", addr, zxids[i], digests[i])
		}
		last = report.String()
		sameZxid, sameDigest := true, true
		for i := range servers {
			sameZxid = sameZxid && zxids[i] == zxids[0]
			sameDigest = sameDigest && digests[i] == digests[0]
		}
		switch {
		case sameZxid && sameDigest:
			return zxids[0], digests[0], nil
		case sameZxid:
			// "hash" reads the zxid and the digest one after the other, so
			// one answer can straddle an apply; a difference that persists
			// at a quiet zxid is a divergence.
			mismatches++
			if mismatches >= 3 {
				return 0, 0, fmt.Errorf("members applied the same number of transactions but hold different trees:%s", last)
			}
		default:
			mismatches = 0
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("members did not reach the same zxid within %s:%s", settle, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReadTree reads every znode under (and including) path through c, in
// path order.
func ReadTree(c *zk.Conn, path string) ([]Node, error) {
	var out []Node
	var walk func(p string) error
	walk = func(p string) error {
		n := Node{Path: p}
		data, st, err := c.Get(p)
		switch {
		case errors.Is(err, zk.ErrNoAuth):
			ok, est, err := c.Exists(p)
			if err != nil || !ok {
				return fmt.Errorf("exists %s: %v %v", p, ok, err)
			}
			n.NoAuth, n.Stat = true, *est
		case err != nil:
			return fmt.Errorf("get %s: %w", p, err)
		default:
			n.Data, n.Stat = data, *st
			if n.ACL, _, err = c.GetACL(p); err != nil {
				return fmt.Errorf("getACL %s: %w", p, err)
			}
		}
		out = append(out, n)
		if n.Stat.NumChildren == 0 {
			return nil
		}
		kids, _, err := c.Children(p)
		if err != nil {
			return fmt.Errorf("children %s: %w", p, err)
		}
		sort.Strings(kids)
		for _, k := range kids {
			child := p + "/" + k
			if p == "/" {
				child = "/" + k
			}
			if err := walk(child); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(path); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// diffTrees describes the first difference between two reads, or "".
func diffTrees(a, b []Node) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return fmt.Sprintf("only the second has %s", b[i].Path)
		case i >= len(b):
			return fmt.Sprintf("only the first has %s", a[i].Path)
		case a[i].Path != b[i].Path:
			first, second := a[i].Path, b[i].Path
			if first < second {
				return fmt.Sprintf("only the first has %s", first)
			}
			return fmt.Sprintf("only the second has %s", second)
		case !bytes.Equal(a[i].Data, b[i].Data):
			return fmt.Sprintf("%s: data %q vs %q", a[i].Path, a[i].Data, b[i].Data)
		case a[i].Stat != b[i].Stat:
			return fmt.Sprintf("%s: stat %+v vs %+v", a[i].Path, a[i].Stat, b[i].Stat)
		case a[i].NoAuth != b[i].NoAuth || !reflect.DeepEqual(a[i].ACL, b[i].ACL):
			return fmt.Sprintf("%s: acl %+v (noauth %v) vs %+v (noauth %v)", a[i].Path, a[i].ACL, a[i].NoAuth, b[i].ACL, b[i].NoAuth)
		}
	}
	return ""
}

// loadExpectation is what the acknowledged writes of runLoad imply about
// the final tree.
type loadExpectation struct {
	root     string
	sessions int
	rounds   int
	// setMzxid[s][j] is the mzxid the set of round j of session s returned.
	setMzxid  [][]int64
	increment int // successful compare-and-set increments of the counter
}

func seqName(root string, n int) string { return fmt.Sprintf("%s/seq/n-%010d", root, n) }

// runLoad runs SessionsPerMember writer sessions on every member at once.
// Each round of a session creates a key, sets it with its version, deletes
// every third key, creates a sequential node under one parent shared by
// all sessions, creates two nodes in one multi, and every other round
// increments a shared counter by compare-and-set. Every write must succeed
// (there are no faults); what they acknowledged is returned for check.
func runLoad(t *testing.T, o ReplicaOptions, root string) *loadExpectation {
	admin := Connect(t, o.Servers)
	for _, p := range []string{root, root + "/seq"} {
		if _, err := admin.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	if _, err := admin.Create(root+"/counter", []byte("0"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	n := len(o.Servers) * o.SessionsPerMember
	exp := &loadExpectation{root: root, sessions: n, rounds: o.Rounds, setMzxid: make([][]int64, n)}
	conns := make([]*zk.Conn, n)
	for s := range conns {
		// One address only: the session stays on its member.
		conns[s] = Connect(t, []string{o.Servers[s%len(o.Servers)]})
	}
	start := time.Now()
	errs := make([]error, n)
	incs := make([]int, n)
	var wg sync.WaitGroup
	for s, c := range conns {
		exp.setMzxid[s] = make([]int64, o.Rounds)
		wg.Add(1)
		go func() {
			defer wg.Done()
			incs[s], errs[s] = loadSession(c, root, s, o.Rounds, exp.setMzxid[s])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, k := range incs {
		exp.increment += k
	}
	t.Logf("%d sessions on %d members: %d rounds each in %s", n, len(o.Servers), o.Rounds, time.Since(start).Round(time.Millisecond))
	return exp
}

func loadSession(c *zk.Conn, root string, s, rounds int, setMzxid []int64) (increments int, err error) {
	acl := zk.WorldACL(zk.PermAll)
	base := fmt.Sprintf("%s/s%d", root, s)
	if _, err := c.Create(base, nil, 0, acl); err != nil {
		return 0, fmt.Errorf("session %d: create %s: %w", s, base, err)
	}
	lastSeq := -1
	var lastMzxid int64
	for j := 0; j < rounds; j++ {
		key := fmt.Sprintf("%s/k%d", base, j)
		if _, err := c.Create(key, []byte(fmt.Sprintf("%d-%d-0", s, j)), 0, acl); err != nil {
			return 0, fmt.Errorf("session %d: create %s: %w", s, key, err)
		}
		st, err := c.Set(key, []byte(fmt.Sprintf("%d-%d-1", s, j)), 0)
		if err != nil {
			return 0, fmt.Errorf("session %d: set %s version 0: %w", s, key, err)
		}
		// FIFO per session: each write takes a later zxid than the last.
		if st.Version != 1 || st.Mzxid <= st.Czxid || st.Mzxid <= lastMzxid {
			return 0, fmt.Errorf("session %d: set %s returned %+v after a write at zxid 0x%x", s, key, st, lastMzxid)
		}
		lastMzxid, setMzxid[j] = st.Mzxid, st.Mzxid
		if j%3 == 0 {
			if err := c.Delete(key, 1); err != nil {
				return 0, fmt.Errorf("session %d: delete %s version 1: %w", s, key, err)
			}
		}
		name, err := c.Create(root+"/seq/n-", []byte(fmt.Sprintf("%d-%d", s, j)), zk.FlagSequence, acl)
		if err != nil {
			return 0, fmt.Errorf("session %d: sequential create: %w", s, err)
		}
		num, err := strconv.Atoi(strings.TrimPrefix(name, root+"/seq/n-"))
		if err != nil || num <= lastSeq {
			return 0, fmt.Errorf("session %d: sequential create returned %q after number %d", s, name, lastSeq)
		}
		lastSeq = num
		if _, err := c.Multi(
			&zk.CreateRequest{Path: fmt.Sprintf("%s/m%da", base, j), Data: []byte("a"), Acl: acl},
			&zk.CreateRequest{Path: fmt.Sprintf("%s/m%db", base, j), Data: []byte("b"), Acl: acl},
		); err != nil {
			return 0, fmt.Errorf("session %d: multi of round %d: %w", s, j, err)
		}
		if j%2 == 0 {
			if err := increment(c, root+"/counter"); err != nil {
				return 0, fmt.Errorf("session %d: %w", s, err)
			}
			increments++
		}
	}
	return increments, nil
}

// increment adds one to a decimal counter with compare-and-set.
func increment(c *zk.Conn, path string) error {
	for tries := 0; tries < 1000; tries++ {
		data, st, err := c.Get(path)
		if err != nil {
			return fmt.Errorf("get %s: %w", path, err)
		}
		v, err := strconv.Atoi(string(data))
		if err != nil {
			return fmt.Errorf("counter %s holds %q", path, data)
		}
		_, err = c.Set(path, []byte(strconv.Itoa(v+1)), st.Version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, zk.ErrBadVersion) {
			return fmt.Errorf("set %s version %d: %w", path, st.Version, err)
		}
		// Another session won. The member may still serve the version we
		// lost against: sync so the next read sees at least the winner.
		if _, err := c.Sync(path); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	return fmt.Errorf("increment of %s lost 1000 compare-and-sets in a row", path)
}

// verify compares the tree read after the load with what the load's
// acknowledged writes imply: exactly the nodes the sessions left, each with
// its data and version, in an order that respects each session's order;
// sequence numbers in the order of their zxids; no lost increment.
func (e *loadExpectation) verify(tree []Node) error {
	got := map[string]Node{}
	for _, n := range tree {
		if n.Path == e.root || strings.HasPrefix(n.Path, e.root+"/") {
			got[n.Path] = n
		}
	}
	want := map[string]bool{e.root: true, e.root + "/seq": true, e.root + "/counter": true}
	missing := func(p string) error { return fmt.Errorf("acknowledged write lost: %s is missing", p) }
	for s := 0; s < e.sessions; s++ {
		base := fmt.Sprintf("%s/s%d", e.root, s)
		want[base] = true
		// The zxids of this session's writes that the tree still shows,
		// in issue order.
		var chain []int64
		for j := 0; j < e.rounds; j++ {
			key := fmt.Sprintf("%s/k%d", base, j)
			if j%3 == 0 {
				if _, ok := got[key]; ok {
					return fmt.Errorf("%s was deleted (acknowledged) but is present", key)
				}
				chain = append(chain, e.setMzxid[s][j])
			} else {
				want[key] = true
				k, ok := got[key]
				if !ok {
					return missing(key)
				}
				if string(k.Data) != fmt.Sprintf("%d-%d-1", s, j) || k.Stat.Version != 1 || k.Stat.Mzxid != e.setMzxid[s][j] {
					return fmt.Errorf("%s: %q %+v, want data %d-%d-1, version 1, mzxid 0x%x", key, k.Data, k.Stat, s, j, e.setMzxid[s][j])
				}
				chain = append(chain, k.Stat.Czxid, k.Stat.Mzxid)
			}
			a, b := fmt.Sprintf("%s/m%da", base, j), fmt.Sprintf("%s/m%db", base, j)
			want[a], want[b] = true, true
			na, ok := got[a]
			if !ok {
				return missing(a)
			}
			nb, ok := got[b]
			if !ok {
				return missing(b)
			}
			if na.Stat.Czxid != nb.Stat.Czxid {
				return fmt.Errorf("one multi, two zxids: %s 0x%x, %s 0x%x", a, na.Stat.Czxid, b, nb.Stat.Czxid)
			}
			chain = append(chain, na.Stat.Czxid)
		}
		for i := 1; i < len(chain); i++ {
			if chain[i] <= chain[i-1] {
				return fmt.Errorf("session %d: write #%d has zxid 0x%x, not after the previous 0x%x (zxids in issue order: %x)", s, i, chain[i], chain[i-1], chain)
			}
		}
	}
	// The sequence counter of the shared parent moves in apply order, so
	// numbers follow zxids; each create got exactly one number.
	seen := map[string]bool{}
	var prev int64
	for i := 0; i < e.sessions*e.rounds; i++ {
		p := seqName(e.root, i)
		want[p] = true
		n, ok := got[p]
		if !ok {
			return missing(p)
		}
		if i > 0 && n.Stat.Czxid <= prev {
			return fmt.Errorf("%s has czxid 0x%x, not after the previous number's 0x%x", p, n.Stat.Czxid, prev)
		}
		prev = n.Stat.Czxid
		if seen[string(n.Data)] {
			return fmt.Errorf("sequential create %q was applied twice", n.Data)
		}
		seen[string(n.Data)] = true
	}
	c, ok := got[e.root+"/counter"]
	if !ok {
		return missing(e.root + "/counter")
	}
	if string(c.Data) != strconv.Itoa(e.increment) || int(c.Stat.Version) != e.increment {
		return fmt.Errorf("counter %q version %d after %d acknowledged compare-and-set increments", c.Data, c.Stat.Version, e.increment)
	}
	var extra []string
	for p := range got {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		return fmt.Errorf("nodes no acknowledged write created: %v", extra)
	}
	return nil
}

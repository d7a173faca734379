package main

import (
	"bytes"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestParseDynamicConfig(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []ensembleMember
		version string
	}{
		{"corral: one peer port written twice, client host:port",
			"server.1=127.0.0.1:2888:2888:participant;127.0.0.1:2181\nserver.2=10.0.0.2:2888:2888:participant;10.0.0.2:2181\nversion=1",
			[]ensembleMember{
				{ID: 1, Role: "participant", PeerHost: "127.0.0.1", QuorumPort: 2888, ElectionPort: 2888, ClientHost: "127.0.0.1", ClientPort: 2181},
				{ID: 2, Role: "participant", PeerHost: "10.0.0.2", QuorumPort: 2888, ElectionPort: 2888, ClientHost: "10.0.0.2", ClientPort: 2181},
			}, "1"},
		{"zookeeper static config: two ports, no client address (as 3.8 publishes it)",
			"server.1=127.0.0.1:36431:39841:participant\nserver.3=127.0.0.1:34799:32957:participant\nserver.2=127.0.0.1:37275:39189:participant\nversion=100000000",
			[]ensembleMember{
				{ID: 1, Role: "participant", PeerHost: "127.0.0.1", QuorumPort: 36431, ElectionPort: 39841},
				{ID: 2, Role: "participant", PeerHost: "127.0.0.1", QuorumPort: 37275, ElectionPort: 39189},
				{ID: 3, Role: "participant", PeerHost: "127.0.0.1", QuorumPort: 34799, ElectionPort: 32957},
			}, "100000000"},
		{"client address variants and observers",
			"server.1=zk1:2888:3888:participant;2181\n" +
				"server.2=zk2:2888:3888:observer;0.0.0.0:2181\n" +
				"server.3=zk3:2888:3888;zk3c:2182\n" +
				"server.4=[fd00::4]:2888:3888:OBSERVER;[fd00::4]:2181\n" +
				"server.5=zk5:2888\n" +
				"server.6=zk6:2888:observer\n",
			[]ensembleMember{
				{ID: 1, Role: "participant", PeerHost: "zk1", QuorumPort: 2888, ElectionPort: 3888, ClientPort: 2181},
				{ID: 2, Role: "observer", PeerHost: "zk2", QuorumPort: 2888, ElectionPort: 3888, ClientHost: "0.0.0.0", ClientPort: 2181},
				{ID: 3, Role: "participant", PeerHost: "zk3", QuorumPort: 2888, ElectionPort: 3888, ClientHost: "zk3c", ClientPort: 2182},
				{ID: 4, Role: "observer", PeerHost: "fd00::4", QuorumPort: 2888, ElectionPort: 3888, ClientHost: "fd00::4", ClientPort: 2181},
				{ID: 5, Role: "participant", PeerHost: "zk5", QuorumPort: 2888},
				{ID: 6, Role: "observer", PeerHost: "zk6", QuorumPort: 2888},
			}, ""},
		{"blank lines, CRLF and hierarchical-quorum lines",
			"\r\nserver.1=a:1:2:participant;a:3\r\ngroup.1=1\r\nweight.1=1\r\nversion=ab\r\n",
			[]ensembleMember{{ID: 1, Role: "participant", PeerHost: "a", QuorumPort: 1, ElectionPort: 2, ClientHost: "a", ClientPort: 3}},
			"ab"},
		{"empty (standalone)", "", nil, ""},
	}
	for _, tc := range cases {
		cfg, err := parseDynamicConfig(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(cfg.Members, tc.want) || cfg.Version != tc.version {
			t.Errorf("%s:\n got %+v version %q\nwant %+v version %q", tc.name, cfg.Members, cfg.Version, tc.want, tc.version)
		}
	}
}

func TestParseDynamicConfigErrors(t *testing.T) {
	for _, in := range []string{
		"server.x=a:1:2",                         // id
		"server.1=a",                             // no port
		"server.1=:1:2",                          // no host
		"server.1=a:99999:2",                     // port range
		"server.1=a:1:2:leader",                  // role
		"server.1=a:1:2:participant:extra",       // trailing field
		"server.1=a:1:2;b:c",                     // client port
		"server.1=a:1:2;[::1:2181",               // bracket
		"server.1=[::1]2888:3888",                // no colon after ]
		"server.1=a:1:2\nserver.1=b:1:2",         // duplicate
		"version=xyz",                            // not hex
		"just some text",                         // not key=value
		"server.2=a:1:2:participant;a:3:4",       // client with two ports
		"server.3=a:1:2:participant;a:0",         // port 0
		"server.4=a:1:2:participant;a:-1",        // negative port
		"server.5=a:1:2:participant;",            // empty client part
		"server.6=[fd00::1]:1:2;[fd00::1]:70000", // client port range
	} {
		if cfg, err := parseDynamicConfig(in); err == nil {
			t.Errorf("parseDynamicConfig(%q) = %+v, want an error", in, cfg)
		}
	}
}

func TestMemberAddresses(t *testing.T) {
	cfg, err := parseDynamicConfig("server.1=10.0.0.1:2888:2888:participant;10.0.0.1:2181\n" +
		"server.2=zk2:2888:3888:observer;0.0.0.0:2181\n" +
		"server.3=zk3:2888:3888;2182\n" +
		"server.4=[fd00::4]:2888:3888;[::]:2181\n" +
		"server.5=zk5:2888:3888\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ peer, client, dial, spec string }{
		{"10.0.0.1:2888", "10.0.0.1:2181", "10.0.0.1:2181", "server.1=10.0.0.1:2888:2888:participant;10.0.0.1:2181"},
		// A wildcard client host is dialled at the peer host.
		{"zk2:2888:3888", "0.0.0.0:2181", "zk2:2181", "server.2=zk2:2888:3888:observer;0.0.0.0:2181"},
		{"zk3:2888:3888", "2182", "zk3:2182", "server.3=zk3:2888:3888:participant;2182"},
		{"[fd00::4]:2888:3888", "[::]:2181", "[fd00::4]:2181", "server.4=[fd00::4]:2888:3888:participant;[::]:2181"},
		{"zk5:2888:3888", "", "", "server.5=zk5:2888:3888:participant"},
	}
	for i, m := range cfg.Members {
		got := [4]string{m.PeerAddr(), m.ClientAddr(), m.DialAddr(), m.Spec()}
		w := [4]string{want[i].peer, want[i].client, want[i].dial, want[i].spec}
		if got != w {
			t.Errorf("member %d: got %q, want %q", m.ID, got, w)
		}
		// Spec round-trips through the parser.
		back, err := parseDynamicConfig(m.Spec())
		if err != nil || len(back.Members) != 1 || back.Members[0].Spec() != m.Spec() {
			t.Errorf("member %d: spec %q does not round-trip: %+v %v", m.ID, m.Spec(), back, err)
		}
	}
}

func TestFormatMembers(t *testing.T) {
	cfg, err := parseDynamicConfig("server.2=127.0.0.1:36431:39841:participant\n" +
		"server.1=127.0.0.1:45809:45809:participant;127.0.0.1:43701\n" +
		"server.10=host-ten:7000:7000:observer;host-ten:2181\nversion=100000003")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	formatMembers(&b, cfg.Members)
	want := "" +
		"ID  ROLE         PEER                   CLIENT\n" +
		"1   participant  127.0.0.1:45809        127.0.0.1:43701\n" +
		"2   participant  127.0.0.1:36431:39841  -\n" +
		"10  observer     host-ten:7000          host-ten:2181\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestParsePeerFlagAndJoiningSpec(t *testing.T) {
	add := commands["cluster"]
	cases := []struct {
		args []string
		spec string
	}{
		{[]string{"add", "--id", "4", "--peer", "127.0.0.1:2891", "--client", "127.0.0.1:2184"},
			"server.4=127.0.0.1:2891:2891:participant;127.0.0.1:2184"},
		{[]string{"add", "--id=5", "--peer=zk5:2888:3888", "--client=zk5:2181", "--observer"},
			"server.5=zk5:2888:3888:observer;zk5:2181"},
		{[]string{"add", "--id", "6", "--peer", "[fd00::6]:2888", "--client", "[fd00::6]:2181"},
			"server.6=[fd00::6]:2888:2888:participant;[fd00::6]:2181"},
	}
	for _, tc := range cases {
		p, err := add.parse(tc.args)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.args, err)
		}
		spec, err := joiningSpec(p)
		if err != nil || spec != tc.spec {
			t.Errorf("joiningSpec(%q) = %q, %v; want %q", tc.args, spec, err, tc.spec)
		}
	}
	for _, bad := range [][]string{
		{"add", "--peer", "a:1", "--client", "a:2"},                  // no id
		{"add", "--id", "0", "--peer", "a:1", "--client", "a:2"},     // id 0
		{"add", "--id", "x", "--peer", "a:1", "--client", "a:2"},     // id not a number
		{"add", "--id", "4", "--peer", "a", "--client", "a:2"},       // peer without port
		{"add", "--id", "4", "--peer", "a:1:2:3", "--client", "a:2"}, // too many ports
		{"add", "--id", "4", "--peer", "a:1", "--client", "2181"},    // client without host
		{"add", "--id", "4", "--peer", "a:1"},                        // no client
	} {
		p, err := add.parse(bad)
		if err != nil {
			continue
		}
		if spec, err := joiningSpec(p); err == nil {
			t.Errorf("joiningSpec(%q) = %q, want a usage error", bad, spec)
		} else if msg, code := describe(err, ""); code != exitUsage {
			t.Errorf("joiningSpec(%q): %q exit %d, want exit %d", bad, msg, code, exitUsage)
		}
	}
}

func TestParseSrvr(t *testing.T) {
	corral := "Zookeeper version: 3.9.3-corral, built on 01/01/2026 00:00 GMT\nLatency min/avg/max: 0/0.0185/3\n" +
		"Received: 2\nSent: 2\nConnections: 1\nOutstanding: 0\nZxid: 0x2\nMode: follower\nNode count: 5\n"
	st, err := parseSrvr(corral)
	if err != nil || st != (srvrStats{Mode: "follower", Zxid: "0x2", Nodes: "5", Connections: "1", Latency: "0/0.0185/3"}) {
		t.Fatalf("corral srvr: %+v %v", st, err)
	}
	zk38 := "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2022-07-01 00:00 UTC\nLatency min/avg/max: 0/0.5/12\n" +
		"Received: 40\nSent: 39\nConnections: 2\nOutstanding: 0\nZxid: 0x100000004\nMode: leader\nNode count: 6\nProposal sizes last/min/max: 48/48/120\n"
	st, err = parseSrvr(zk38)
	if err != nil || st != (srvrStats{Mode: "leader", Zxid: "0x100000004", Nodes: "6", Connections: "2", Latency: "0/0.5/12"}) {
		t.Fatalf("zookeeper srvr: %+v %v", st, err)
	}
	if _, err := parseSrvr(notServing + "\n"); err != errNotServing {
		t.Fatalf("not serving: %v", err)
	}
	if _, err := parseSrvr("srvr is not executed because it is not in the whitelist.\n"); err == nil || !strings.Contains(err.Error(), "whitelist") {
		t.Fatalf("whitelist: %v", err)
	}
	if _, err := parseSrvr("garbage"); err == nil {
		t.Fatal("garbage srvr answer parsed")
	}
}

func TestParseConfServerID(t *testing.T) {
	if id, ok := parseConfServerID("clientPort=2181\nsecureClientPort=-1\nserverId=3\ninitLimit=10\n"); !ok || id != 3 {
		t.Fatalf("serverId = %d %v", id, ok)
	}
	if _, ok := parseConfServerID("clientPort=2181\n"); ok {
		t.Fatal("found a serverId that is not there")
	}
}

func TestFormatStatus(t *testing.T) {
	var b bytes.Buffer
	formatStatus(&b, []statusRow{
		{ID: "1", Client: "127.0.0.1:2181", Mode: "leader", Stats: srvrStats{Mode: "leader", Zxid: "0x5", Nodes: "7", Connections: "2", Latency: "0/0.1/1"}},
		{ID: "2", Client: "127.0.0.1:2182", Mode: "unreachable", Note: "connection refused"},
	})
	want := "" +
		"ID  CLIENT          MODE         ZXID  NODES  CONNS  LATENCY(min/avg/max ms)  NOTE\n" +
		"1   127.0.0.1:2181  leader       0x5   7      2      0/0.1/1                  \n" +
		"2   127.0.0.1:2182  unreachable  -     -      -      -                        connection refused\n"
	if b.String() != want {
		t.Fatalf("status table:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestReconfigApplied(t *testing.T) {
	cfg, _ := parseDynamicConfig("server.1=a:1:1:participant;a:2\nserver.4=d:1:1:observer;d:2\n")
	cases := []struct {
		joining, leaving []string
		want             bool
	}{
		{[]string{"server.4=d:1:1:observer;d:2"}, nil, true},
		{[]string{"server.4=d:1:1:participant;d:2"}, nil, false}, // role differs
		{[]string{"server.5=e:1:1:participant;e:2"}, nil, false},
		{nil, []string{"3"}, true},
		{nil, []string{"1"}, false},
	}
	for _, tc := range cases {
		if got := reconfigApplied(cfg, tc.joining, tc.leaving); got != tc.want {
			t.Errorf("reconfigApplied(%q, %q) = %v", tc.joining, tc.leaving, got)
		}
	}
}

func TestReconfigErrors(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{zk.ErrReconfigDisabled, "reconfig is disabled on the server: set reconfig_enabled: true / reconfigEnabled=true"},
		{zk.ErrNoAuth, "reconfig needs the super user"},
		{errorString("unknown error: -6"), "the server is standalone"},
		{zk.ErrBadVersion, "(BadVersion)"},
		{errorString("unknown error: -13"), "(NewConfigNoQuorum)"},
		{errorString("unknown error: -14"), "(ReconfigInProgress)"},
		{zk.ErrBadArguments, "(BadArguments)"},
	}
	for _, tc := range cases {
		msg, code := describe(reconfigError(tc.err), "")
		if code != exitZK || !strings.Contains(msg, tc.want) {
			t.Errorf("reconfigError(%v) = %q exit %d; want exit %d and %q", tc.err, msg, code, exitZK, tc.want)
		}
	}
	// Connection failures keep their own message and exit code.
	if msg, code := describe(reconfigError(zk.ErrConnectionClosed), ""); code != exitConnection {
		t.Errorf("connection closed: %q exit %d", msg, code)
	}
}

// runCtl runs corralctl against an address nothing listens on: the
// commands tested here must answer without a server.
func runCtl(args ...string) result {
	var out, errOut bytes.Buffer
	code := run(append([]string{"--server", "127.0.0.1:1", "--timeout", "1s"}, args...), strings.NewReader(""), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestClusterTransferLeaderUnsupported(t *testing.T) {
	r := runCtl("cluster", "transfer-leader", "2")
	want := "cluster transfer-leader: not supported over the ZooKeeper protocol yet (planned for the admin API)\n"
	if r.code != exitUsage || r.stderr != want || r.out != "" {
		t.Fatalf("transfer-leader: exit %d stdout %q stderr %q; want exit %d and %q", r.code, r.out, r.stderr, exitUsage, want)
	}
	// The same in the shell, where the session is already open: the
	// command still never reaches the server.
	if msg, code := describe(errTransferLeader, ""); code != exitUsage || msg+"\n" != want {
		t.Fatalf("describe(errTransferLeader) = %q %d", msg, code)
	}
	for _, bad := range [][]string{{"cluster", "transfer-leader"}, {"cluster", "transfer-leader", "x"}, {"cluster", "transfer-leader", "0"}} {
		if r := runCtl(bad...); r.code != exitUsage || strings.Contains(r.stderr, "planned for the admin API") {
			t.Errorf("%q: exit %d stderr %q, want a usage error", bad, r.code, r.stderr)
		}
	}
}

func TestClusterUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"cluster"}, "usage: cluster list|status"},
		{[]string{"cluster", "frob"}, `unknown cluster command "frob"`},
		{[]string{"cluster", "list", "extra"}, "usage: cluster list"},
		{[]string{"cluster", "list", "--observer"}, "option --observer does not apply"},
		{[]string{"cluster", "add", "--id", "4", "--peer", "a:1"}, "cluster add needs --client"},
		{[]string{"cluster", "add", "--id", "4", "--peer", "a:1", "--client", "a:x"}, "invalid --client"},
		{[]string{"cluster", "remove"}, "usage: cluster remove N"},
		{[]string{"cluster", "remove", "abc"}, `invalid member id "abc"`},
		{[]string{"cluster", "remove", "3", "--version", "zz"}, "invalid --version"},
		{[]string{"cluster", "remove", "3", "--id", "3"}, "option --id does not apply"},
	}
	for _, tc := range cases {
		r := runCtl(tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
	// A valid command line does try the (absent) server: exit 3.
	if r := runCtl("cluster", "list"); r.code != exitConnection {
		t.Errorf("cluster list without a server: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestClusterStatusWithoutSession(t *testing.T) {
	// Nothing listens: the status falls back to probing --server, shows it
	// unreachable and reports no leader.
	r := runCtl("cluster", "status")
	if r.code != exitZK || !strings.Contains(r.stderr, "probing the --server addresses instead") ||
		!strings.Contains(r.stderr, "no leader found") {
		t.Fatalf("status without a server: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "-   127.0.0.1:1  unreachable") {
		t.Fatalf("status table:\n%s", r.out)
	}
}

// fakeFourLetter answers every connection with a fixed text, like a
// server answering a four-letter word.
func fakeFourLetter(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4)
			c.Read(buf)
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestEmptyConfigNote(t *testing.T) {
	cases := []struct{ answer, mode, note string }{
		{"Zookeeper version: 3.8.0\nMode: standalone\nNode count: 4\n", "standalone",
			"standalone: /zookeeper/config is empty; showing the connected server\n"},
		// A member of an ensemble before its leader published the membership.
		{"Zookeeper version: 3.9.3-corral\nMode: follower\nNode count: 5\n", "follower",
			"/zookeeper/config is empty although the server reports mode follower (membership not published yet); showing the connected server\n"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		c := &cli{out: &out, timeout: time.Second}
		if mode := c.emptyConfigNote(fakeFourLetter(t, tc.answer)); mode != tc.mode || out.String() != tc.note {
			t.Errorf("emptyConfigNote(%q) = %q, printed %q; want %q, %q", tc.answer, mode, out.String(), tc.mode, tc.note)
		}
	}
}

func TestFourLetter(t *testing.T) {
	addr := fakeFourLetter(t, "imok")
	if out, err := fourLetter(addr, "ruok", time.Second); err != nil || out != "imok" {
		t.Fatalf("fourLetter = %q, %v", out, err)
	}
	// A server that closes without answering is an error, not an empty answer.
	if out, err := fourLetter(fakeFourLetter(t, ""), "srvr", time.Second); err == nil {
		t.Fatalf("empty answer accepted: %q", out)
	}
}

package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestParseACL(t *testing.T) {
	cases := []struct {
		in   string
		want []zk.ACL
	}{
		{"world:anyone:cdrwa", []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "anyone"}}},
		{"world:anyone:r", []zk.ACL{{Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}},
		// Digest ids contain a colon themselves: the id runs to the last colon.
		{"digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:rw", []zk.ACL{{Perms: zk.PermRead | zk.PermWrite, Scheme: "digest", ID: "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="}}},
		// IPv6 addresses too.
		{"ip:::1:a", []zk.ACL{{Perms: zk.PermAdmin, Scheme: "ip", ID: "::1"}}},
		{"auth::cd", []zk.ACL{{Perms: zk.PermCreate | zk.PermDelete, Scheme: "auth", ID: ""}}},
		{"ip:10.0.0.0/8:r, world:anyone:a", []zk.ACL{
			{Perms: zk.PermRead, Scheme: "ip", ID: "10.0.0.0/8"},
			{Perms: zk.PermAdmin, Scheme: "world", ID: "anyone"},
		}},
		{"world:anyone:adcwr", []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "anyone"}}},
	}
	for _, tc := range cases {
		got, err := parseACL(tc.in)
		if err != nil {
			t.Errorf("parseACL(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseACL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseACLErrors(t *testing.T) {
	for _, in := range []string{"", "world", "world:anyone", "world:anyone:", "world:anyone:rx", ":anyone:r", "world:anyone:r,"} {
		if got, err := parseACL(in); err == nil {
			t.Errorf("parseACL(%q) = %+v, want an error", in, got)
		}
	}
}

func TestFormatACLRoundTrip(t *testing.T) {
	acls := []zk.ACL{
		{Perms: zk.PermAll, Scheme: "world", ID: "anyone"},
		{Perms: zk.PermRead | zk.PermAdmin, Scheme: "digest", ID: "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="},
		{Perms: zk.PermWrite | zk.PermCreate, Scheme: "ip", ID: "127.0.0.1"},
	}
	s := formatACLs(acls)
	if s != "world:anyone:cdrwa,digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:ra,ip:127.0.0.1:cw" {
		t.Fatalf("formatACLs = %q", s)
	}
	back, err := parseACL(s)
	if err != nil || !reflect.DeepEqual(back, acls) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if got := formatPerms(0); got != "" {
		t.Fatalf("formatPerms(0) = %q", got)
	}
}

func TestDigestID(t *testing.T) {
	// Value computed by kazoo's make_digest_acl_credential("bob", "secret").
	if got := digestID("bob:secret"); got != "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=" {
		t.Fatalf("digestID = %q", got)
	}
}

func TestSplitLine(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"create /a hello", []string{"create", "/a", "hello"}},
		{`set /a "hello world"`, []string{"set", "/a", "hello world"}},
		{`set /a 'it''s'`, []string{"set", "/a", "its"}},
		{`set /a "say \"hi\""`, []string{"set", "/a", `say "hi"`}},
		{`set /a hello\ world`, []string{"set", "/a", "hello world"}},
		{`set /a ''`, []string{"set", "/a", ""}},
		{"  ls\t/  ", []string{"ls", "/"}},
	}
	for _, tc := range cases {
		got, err := splitLine(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`set /a "x`, `set /a 'x`} {
		if _, err := splitLine(bad); err == nil {
			t.Errorf("splitLine(%q) did not fail", bad)
		}
	}
}

func TestParseOptions(t *testing.T) {
	create := commands["create"]
	p, err := create.parse([]string{"-e", "/a", "-s", "data"})
	if err != nil || !p.has("e") || !p.has("s") || p.has("c") || !reflect.DeepEqual(p.args, []string{"/a", "data"}) {
		t.Fatalf("parse: %+v %v", p, err)
	}
	p, err = create.parse([]string{"-t", "5000", "/a"})
	if err != nil || p.flags["t"] != "5000" {
		t.Fatalf("parse -t: %+v %v", p, err)
	}
	p, err = create.parse([]string{"--t=5s", "/a", "--", "-1"})
	if err != nil || p.flags["t"] != "5s" || !reflect.DeepEqual(p.args, []string{"/a", "-1"}) {
		t.Fatalf("parse --t= and --: %+v %v", p, err)
	}
	for _, bad := range [][]string{{"-x", "/a"}, {"/a", "-t"}, {}, {"/a", "b", "c", "d"}} {
		if _, err := create.parse(bad); err == nil {
			t.Errorf("parse(%q) did not fail", bad)
		}
	}
	set := commands["set"]
	if p, err := set.parse([]string{"-v", "-1", "/a", "x"}); err != nil || p.flags["v"] != "-1" {
		t.Fatalf("set -v -1: %+v %v", p, err)
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"5000": 5 * time.Second, "1m": time.Minute, "250ms": 250 * time.Millisecond} {
		if got, err := parseTTL(in); err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "-5", "abc", "1ns"} {
		if _, err := parseTTL(bad); err == nil {
			t.Errorf("parseTTL(%q) did not fail", bad)
		}
	}
}

func TestFormatStat(t *testing.T) {
	st := &zk.Stat{Czxid: 0x2, Mzxid: 0x28, Ctime: 0, Mtime: 1700000000000, Version: 1, Cversion: 6,
		Aversion: 2, EphemeralOwner: 0x1000007b0390005, DataLength: 7, NumChildren: 3, Pzxid: 0x2a}
	got := formatStat(st)
	want := strings.Join([]string{
		"cZxid = 0x2",
		"ctime = " + time.UnixMilli(0).Format(javaDate),
		"mZxid = 0x28",
		"mtime = " + time.UnixMilli(1700000000000).Format(javaDate),
		"pZxid = 0x2a",
		"cversion = 6",
		"dataVersion = 1",
		"aclVersion = 2",
		"ephemeralOwner = 0x1000007b0390005",
		"dataLength = 7",
		"numChildren = 3",
	}, "\n") + "\n"
	if got != want {
		t.Fatalf("formatStat:\n%s\nwant:\n%s", got, want)
	}
	// Java prints a negative long in hex as its two's complement.
	if s := formatStat(&zk.Stat{EphemeralOwner: -1}); !strings.Contains(s, "ephemeralOwner = 0xffffffffffffffff\n") {
		t.Fatalf("negative owner: %s", s)
	}
	utc := time.UnixMilli(0).UTC().Format(javaDate)
	if utc != "Thu Jan 01 00:00:00 UTC 1970" {
		t.Fatalf("java date layout gives %q", utc)
	}
}

func TestDescribe(t *testing.T) {
	cases := []struct {
		err  error
		path string
		msg  string
		code int
	}{
		{zk.ErrNoNode, "/a", "Node does not exist: /a", exitZK},
		{zk.ErrNodeExists, "/a", "Node already exists: /a", exitZK},
		{zk.ErrBadVersion, "/a", "Bad version (version does not match): /a", exitZK},
		{zk.ErrNotEmpty, "/a", "Node not empty: /a", exitZK},
		{zk.ErrNoAuth, "/a", "Insufficient permission: /a", exitZK},
		{&zkError{code: -6}, "/a", "Operation not implemented by the server: /a", exitZK},
		{usagef("bad"), "", "bad", exitUsage},
		{zk.ErrInvalidPath, "a", `Invalid path: "a"`, exitUsage},
		{zk.ErrConnectionClosed, "/a", "Connection failure: zk: connection closed", exitConnection},
		{zk.ErrSessionExpired, "/a", "Session expired", exitConnection},
	}
	for _, tc := range cases {
		msg, code := describe(tc.err, tc.path)
		if msg != tc.msg || code != tc.code {
			t.Errorf("describe(%v) = %q, %d; want %q, %d", tc.err, msg, code, tc.msg, tc.code)
		}
	}
	// go-zk reports codes it does not know as "unknown error: N".
	if code, ok := codeOf(errorString("unknown error: -6")); !ok || code != -6 {
		t.Fatalf("codeOf unknown = %d %v", code, ok)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

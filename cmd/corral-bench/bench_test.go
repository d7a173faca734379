package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/conformance/corraltest"
	"github.com/corral-dev/corral/conformance/zkref"
)

func TestHistBuckets(t *testing.T) {
	// Every value maps to a bucket whose reported value is within 1/64 of it.
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 175_000, 1 << 30, 1<<40 + 12345} {
		got := bucketValue(bucketOf(v))
		diff := float64(got) - float64(v)
		if diff < 0 {
			diff = -diff
		}
		if v > 0 && diff/float64(v) > 1.0/64 {
			t.Errorf("value %d reported as %d", v, got)
		}
	}
	// Buckets are monotonic in the value.
	prev := -1
	for v := uint64(0); v < 1<<20; v += 37 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, b, prev)
		}
		prev = b
	}
}

func TestHistQuantiles(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h, a, b hist
	var samples []time.Duration
	for i := 0; i < 100000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(200*time.Microsecond))
		samples = append(samples, d)
		// Record into two halves and merge, as the workers do.
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	h.merge(&a)
	h.merge(&b)
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		got := h.quantile(q)
		if rel := (float64(got) - float64(exact)) / float64(exact); rel > 0.02 || rel < -0.02 {
			t.Errorf("q%.3f = %v, exact %v", q, got, exact)
		}
	}
	if h.total != 100000 || time.Duration(h.max) != samples[len(samples)-1] {
		t.Fatalf("total %d max %v", h.total, time.Duration(h.max))
	}
	var empty hist
	if empty.quantile(0.99) != 0 {
		t.Fatal("empty histogram quantile")
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tjava\nVmPeak:\t 9000000 kB\nVmRSS:\t  312932 kB\nRssAnon:\t 300000 kB\n"
	kb, err := parseVmRSS(strings.NewReader(status))
	if err != nil || kb != 312932 {
		t.Fatalf("parseVmRSS = %d, %v", kb, err)
	}
	if _, err := parseVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
	if kb, err := vmRSS(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("own RSS = %d, %v", kb, err)
	}
}

func TestCompareFiles(t *testing.T) {
	dir := t.TempDir()
	a := &Result{Label: "corral", Servers: "a:1", Duration: "3s", Cells: []Cell{
		{Workload: "getdata", Sessions: 1, Inflight: 1, OpsPerSec: 10000, P50us: 90, P99us: 300},
		{Workload: "setdata", Sessions: 8, Inflight: 1, OpsPerSec: 6000, P50us: 900, P99us: 3000},
	}, RSS: &RSS{Znodes: 100000, StartKB: 8192, BaselineKB: 10240, LoadedKB: 51200}}
	b := &Result{Label: "zookeeper", Servers: "b:2", Duration: "3s", Cells: []Cell{
		{Workload: "getdata", Sessions: 1, Inflight: 1, OpsPerSec: 5000, P50us: 180, P99us: 600},
		{Workload: "setdata", Sessions: 8, Inflight: 1, OpsPerSec: 4000, P50us: 1200, P99us: 6000},
	}, RSS: &RSS{Znodes: 100000, StartKB: 73728, BaselineKB: 73728, LoadedKB: 204800}}
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out, errOut bytes.Buffer
	if code := realMain([]string{"compare", write("a.json", a), write("b.json", b)}, &out, &errOut); code != 0 {
		t.Fatalf("compare exit %d: %s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"corral (a:1) vs zookeeper (b:2)", "2.00x", "0.50x", "1.50x", "RSS: corral 50.0 MiB (start 8.0 MiB, 100000 znodes)", "ratio 0.25x"} {
		if !strings.Contains(s, want) {
			t.Errorf("compare output lacks %q:\n%s", want, s)
		}
	}
	lines := strings.Split(s, "\n")
	var getLine string
	for _, l := range lines {
		if strings.Contains(l, "getdata") {
			getLine = strings.Join(strings.Fields(l), " ")
		}
	}
	if getLine != "getdata 1 1 10000 90us 300us 5000 180us 600us 2.00x 0.50x 0.50x" {
		t.Fatalf("getdata row = %q", getLine)
	}
	// An array file holding both results works too; a single result does not.
	out.Reset()
	if code := realMain([]string{"compare", write("both.json", []*Result{a, b})}, &out, &errOut); code != 2 {
		t.Fatalf("compare with one file: exit %d", code)
	}
	if code := realMain([]string{"compare", write("both.json", []*Result{a, b}), write("empty.json", []*Result{})}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "2.00x") {
		t.Fatalf("compare array file: exit %d %s", code, out.String())
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                  // no target
		{"--servers", "x:1", "--zookeeper"}, // two targets
		{"--servers", "x:1", "--workload", "bogus"},
		{"--servers", "x:1", "--sessions", "0"},
		{"--servers", "x:1", "--root", "nope"},
		{"compare", "--target", "a=x:1"}, // one target
		{"compare", "--target", "noequals", "--target", "b=y:1"},
	} {
		var out, errOut bytes.Buffer
		if code := realMain(args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

func TestAgainstZooKeeper(t *testing.T) {
	s := zkref.Start(t, zkref.Options{LogLevel: "WARN"})
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "zk.json")
	var out, errOut bytes.Buffer
	code := realMain([]string{"--servers", s.Addr(), "--label", "zk", "--workload", "all", "--sessions", "1,2",
		"--duration", "300ms", "--warmup", "100ms", "--inflight", "2", "--rss-pid", strconv.Itoa(s.PID()), "--znodes", "2500",
		"--root", "/benchtest", "--json", jsonPath}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errOut.String())
	}
	rs, err := loadResults(jsonPath)
	if err != nil || len(rs) != 1 {
		t.Fatalf("load: %v %d", err, len(rs))
	}
	r := rs[0]
	if len(r.Cells) != 8 {
		t.Fatalf("cells = %d, want 4 workloads x 2 session counts", len(r.Cells))
	}
	for _, c := range r.Cells {
		if c.Ops == 0 || c.Errors != 0 || c.OpsPerSec <= 0 || c.P50us <= 0 || c.P99us < c.P50us || c.Inflight != 2 {
			t.Errorf("cell %+v", c)
		}
	}
	if r.RSS == nil || r.RSS.Znodes != 2500 || r.RSS.LoadedKB <= 0 || r.RSS.BaselineKB <= 0 || r.RSS.StartKB <= 0 || r.RSS.PID != s.PID() {
		t.Fatalf("rss = %+v", r.RSS)
	}
	if !strings.Contains(out.String(), "createdelete") || !strings.Contains(out.String(), "RSS: pid") {
		t.Fatalf("table:\n%s", out.String())
	}
	// The tool removes its znodes afterwards.
	c, err := dial([]string{s.Addr()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kids, _, err := c.Children("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		if strings.HasPrefix(k, "benchtest") {
			t.Fatalf("left behind /%s", k)
		}
	}
}

// Each session of a cell connects to one server, the servers in turn, so
// sessions (and the reads they issue) spread evenly over an ensemble.
func TestSessionsRoundRobin(t *testing.T) {
	servers := []string{
		corraltest.Start(t, corraltest.Options{}).Addr,
		corraltest.Start(t, corraltest.Options{}).Addr,
		corraltest.Start(t, corraltest.Options{}).Addr,
	}
	conns, err := dialAll(servers, 7, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(conns)
	count := map[string]int{}
	for i, c := range conns {
		if got, want := c.Server(), servers[i%3]; got != want {
			t.Errorf("session %d on %s, want %s", i, got, want)
		}
		count[c.Server()]++
	}
	if count[servers[0]] != 3 || count[servers[1]] != 2 || count[servers[2]] != 2 {
		t.Fatalf("sessions per server: %v", count)
	}
}

// fakeSrvr answers every connection with a srvr reply in the given mode.
func fakeSrvr(t *testing.T, mode string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "srvr" {
				fmt.Fprintf(c, "Zookeeper version: x\nLatency min/avg/max: 0/0/0\nMode: %s\nNode count: 5\n", mode)
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// The leader goes last, the rest keep their order; a server without a
// srvr reply keeps its place.
func TestOrderByRole(t *testing.T) {
	leader, f1, f2 := fakeSrvr(t, "leader"), fakeSrvr(t, "follower"), fakeSrvr(t, "follower")
	dead := freeLoopbackAddr(t)
	got, roles := orderByRole([]string{leader, f1, dead, f2}, serverRole)
	want := []string{f1, dead, f2, leader}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("order %v, want %v", got, want)
	}
	if strings.Join(roles, ",") != "follower,,follower,leader" {
		t.Fatalf("roles %q", roles)
	}
	if s := describeServers(got, roles); !strings.Contains(s, dead+" (no srvr reply)") || !strings.HasSuffix(s, leader+" (leader)") {
		t.Fatalf("describeServers = %q", s)
	}
	// A single standalone server stays as it is.
	one, _ := orderByRole([]string{f1}, func(string) string { return "standalone" })
	if len(one) != 1 || one[0] != f1 {
		t.Fatalf("single server: %v", one)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

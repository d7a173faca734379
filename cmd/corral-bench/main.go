// Command corral-bench is the load tool for Corral and Apache ZooKeeper, on
// github.com/go-zookeeper/zk. It runs the same workloads against any
// ZooKeeper-compatible server and compares two runs side by side.
//
//	corral-bench --servers 127.0.0.1:2181 --workload getdata,mixed,setdata,createdelete \
//	    --sessions 1,8,32 --duration 10s [--inflight N] [--label corral] [--json out.json]
//	corral-bench --zookeeper ...                  # start the Debian ZooKeeper 3.8 and measure it
//	corral-bench --servers ... --rss-pid PID --znodes 100000   # server RSS with N znodes
//	corral-bench compare a.json b.json             # side-by-side table with ratios
//	corral-bench compare --target corral=127.0.0.1:2181 --target zookeeper=zkref [run flags]
//	    (zkref:3 starts a three-member ZooKeeper ensemble instead)
//
// With several servers (an ensemble), session i of a cell connects to
// server i mod n alone, with the leader (found by srvr) moved last, so
// reads spread evenly over the members; scripts/bench-cluster.sh compares
// 3-member ensembles this way.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/corral-dev/corral/conformance/zkref"
	"github.com/go-zookeeper/zk"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Result is one target's measurements, as written with --json.
type Result struct {
	Label     string    `json:"label"`
	Servers   string    `json:"servers"`
	Started   time.Time `json:"started"`
	Duration  string    `json:"duration"`
	Warmup    string    `json:"warmup"`
	Inflight  int       `json:"inflight"`
	DataSize  int       `json:"data_size"`
	Cells     []Cell    `json:"cells"`
	RSS       *RSS      `json:"rss,omitempty"`
	GoVersion string    `json:"go_version,omitempty"`
}

type runFlags struct {
	servers, label, workloads, sessions, root, jsonOut string
	duration, warmup                                   time.Duration
	inflight, dataSize, rssPID, znodes                 int
	zookeeper, keep                                    bool
}

func (f *runFlags) register(fs *flag.FlagSet, withTarget bool) {
	if withTarget {
		fs.StringVar(&f.servers, "servers", "", "comma-separated host:port list of the server under test")
		fs.StringVar(&f.label, "label", "", "name for this target in reports (default: the server list)")
		fs.BoolVar(&f.zookeeper, "zookeeper", false, "start Apache ZooKeeper 3.8 from the Debian package and measure it")
		fs.IntVar(&f.rssPID, "rss-pid", 0, "server process id: report its VmRSS after loading --znodes znodes")
	}
	fs.StringVar(&f.workloads, "workload", "all", "comma-separated: getdata, mixed, setdata, createdelete, all, none")
	fs.StringVar(&f.sessions, "sessions", "1,8,32", "comma-separated session counts; session i connects to server i mod n alone, the leader last (by srvr)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time per cell")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "unmeasured time before each cell")
	fs.IntVar(&f.inflight, "inflight", 1, "concurrent requests per session (pipelined on its connection)")
	fs.IntVar(&f.dataSize, "data-size", 100, "znode data size in bytes")
	fs.IntVar(&f.znodes, "znodes", 0, "znodes to load for the RSS measurement (default 100000 when a pid is known)")
	fs.StringVar(&f.root, "root", "/corral-bench", "path prefix for the tool's znodes (a random suffix is added)")
	fs.StringVar(&f.jsonOut, "json", "", "write results as JSON to this file (- for stdout; the table then goes to stderr)")
	fs.BoolVar(&f.keep, "keep", false, "leave the znodes in place afterwards")
}

func (f *runFlags) validate() (workloads []string, sessions []int, err error) {
	switch f.workloads {
	case "all":
		workloads = allWorkloads
	case "none", "":
	default:
		for _, w := range strings.Split(f.workloads, ",") {
			w = strings.ToLower(strings.TrimSpace(w))
			known := false
			for _, k := range allWorkloads {
				known = known || k == w
			}
			if !known {
				return nil, nil, fmt.Errorf("unknown workload %q (want %s)", w, strings.Join(allWorkloads, ", "))
			}
			workloads = append(workloads, w)
		}
	}
	for _, s := range strings.Split(f.sessions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("invalid session count %q", s)
		}
		sessions = append(sessions, n)
	}
	if f.inflight < 1 || f.dataSize < 0 || f.duration <= 0 || f.warmup < 0 || f.znodes < 0 {
		return nil, nil, errors.New("--inflight must be >= 1, --duration > 0, --data-size/--warmup/--znodes >= 0")
	}
	if !strings.HasPrefix(f.root, "/") || strings.HasSuffix(f.root, "/") {
		return nil, nil, fmt.Errorf("--root %q must start and not end with /", f.root)
	}
	return workloads, sessions, nil
}

// target is a server to measure; stop is non-nil when this tool started it.
type target struct {
	label   string
	servers []string
	pid     int
	rss     bool // measure RSS after the workloads
	stop    func()
}

// startReference starts the Debian ZooKeeper: spec "zkref" is one standalone
// server, "zkref:N" an N-member ensemble on loopback (no RSS: several pids).
func startReference(label, spec string, w io.Writer) (*target, error) {
	if m := zkref.Missing(); m != "" {
		return nil, fmt.Errorf("cannot start the reference ZooKeeper: %s", m)
	}
	if n, ok := strings.CutPrefix(spec, "zkref:"); ok {
		size, err := strconv.Atoi(n)
		if err != nil || size < 1 {
			return nil, fmt.Errorf("bad ensemble size in %q", spec)
		}
		e, err := zkref.StartEnsembleServers(size, zkref.Options{LogLevel: "WARN"})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "started a %d-member Apache ZooKeeper ensemble on %s\n", size, e.ConnectString())
		return &target{label: label, servers: e.Addrs(), stop: e.Stop}, nil
	}
	s, err := zkref.StartServer(zkref.Options{LogLevel: "WARN"})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "started Apache ZooKeeper (Debian package) on %s, pid %d, dir %s\n", s.Addr(), s.PID(), s.Dir())
	return &target{label: label, servers: []string{s.Addr()}, pid: s.PID(), stop: s.Stop}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compare" {
		return compareMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("corral-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	workloads, sessions, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 2
	}
	if (f.servers == "") == !f.zookeeper {
		fmt.Fprintln(stderr, "corral-bench: give exactly one of --servers or --zookeeper")
		return 2
	}
	table, jsonW := stdout, io.Writer(nil)
	if f.jsonOut == "-" {
		table, jsonW = stderr, stdout
	}
	var t *target
	if f.zookeeper {
		label := f.label
		if label == "" {
			label = "zookeeper"
		}
		if t, err = startReference(label, "zkref", stderr); err != nil {
			fmt.Fprintf(stderr, "corral-bench: %v\n", err)
			return 3
		}
		defer t.stop()
	} else {
		t = &target{label: f.label, servers: splitList(f.servers), pid: f.rssPID}
		if t.label == "" {
			t.label = f.servers
		}
	}
	// --rss-pid alone means the default 100000 znodes; with --zookeeper the
	// pid is known and --znodes asks for the measurement.
	t.rss = f.rssPID != 0 || (t.pid != 0 && f.znodes > 0)
	results, err := measureAll([]*target{t}, &f, workloads, sessions, stderr)
	var res *Result
	if len(results) > 0 {
		res = results[0]
	}
	if res != nil {
		printResult(table, res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 1
	}
	if err := writeJSON(f.jsonOut, jsonW, res); err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 1
	}
	return 0
}

func writeJSON(path string, w io.Writer, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if w != nil {
		_, err = w.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// measureAll runs every cell on each target in turn (cell by cell, so slow
// drift of a shared machine hits all targets alike), then the RSS step.
func measureAll(targets []*target, f *runFlags, workloads []string, sessions []int, progress io.Writer) ([]*Result, error) {
	root := f.root + "-" + randomSuffix()
	results := make([]*Result, len(targets))
	startKB := make([]int64, len(targets))
	for i, t := range targets {
		if len(t.servers) > 1 {
			var roles []string
			t.servers, roles = orderByRole(t.servers, serverRole)
			fmt.Fprintf(progress, "%-10s sessions round-robin over %s\n", t.label, describeServers(t.servers, roles))
		}
		if t.rss {
			kb, err := vmRSS(t.pid)
			if err != nil {
				return results, fmt.Errorf("%s: read RSS of pid %d: %w", t.label, t.pid, err)
			}
			startKB[i] = kb
		}
		results[i] = &Result{
			Label: t.label, Servers: strings.Join(t.servers, ","), Started: time.Now().UTC(),
			Duration: f.duration.String(), Warmup: f.warmup.String(), Inflight: f.inflight, DataSize: f.dataSize,
		}
		conn, err := dial(t.servers, 15*time.Second)
		if err != nil {
			return results, fmt.Errorf("%s: %w", t.label, err)
		}
		err = ensure(conn, root, nil)
		conn.Close()
		if err != nil {
			return results, fmt.Errorf("%s: %w", t.label, err)
		}
	}
	defer func() {
		if f.keep {
			return
		}
		for _, t := range targets {
			if conn, err := dial(t.servers, 15*time.Second); err == nil {
				if err := removeTree([]*zk.Conn{conn}, root); err != nil {
					fmt.Fprintf(progress, "cleanup on %s: %v\n", t.label, err)
				}
				conn.Close()
			}
		}
	}()
	for _, w := range workloads {
		for _, s := range sessions {
			for i, t := range targets {
				cfg := cellConfig{workload: w, sessions: s, inflight: f.inflight, warmup: f.warmup, duration: f.duration, dataSize: f.dataSize}
				fmt.Fprintf(progress, "%-10s %-13s sessions=%-3d inflight=%d ... ", t.label, w, s, f.inflight)
				cell, err := runCell(t.servers, root, cfg)
				if err != nil {
					fmt.Fprintln(progress, "failed")
					return results, fmt.Errorf("%s %s sessions=%d: %w", t.label, w, s, err)
				}
				fmt.Fprintf(progress, "%.0f ops/s p50 %s p99 %s\n", cell.OpsPerSec, fmtUs(cell.P50us), fmtUs(cell.P99us))
				results[i].Cells = append(results[i].Cells, cell)
			}
		}
	}
	for i, t := range targets {
		pid, znodes := t.pid, f.znodes
		if !t.rss {
			continue
		}
		if znodes == 0 {
			znodes = 100000
		}
		fmt.Fprintf(progress, "%-10s loading %d znodes of %d bytes for RSS (pid %d) ... ", t.label, znodes, f.dataSize, pid)
		rss, err := measureRSS(t.servers, root, pid, znodes, f.dataSize, 8, startKB[i])
		if err != nil {
			fmt.Fprintln(progress, "failed")
			return results, fmt.Errorf("%s RSS: %w", t.label, err)
		}
		fmt.Fprintf(progress, "RSS %s -> %s\n", fmtKB(rss.BaselineKB), fmtKB(rss.LoadedKB))
		results[i].RSS = rss
	}
	return results, nil
}

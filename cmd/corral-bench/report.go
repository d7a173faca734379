package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

func fmtUs(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fus", us)
	default:
		return fmt.Sprintf("%.2fms", us/1000)
	}
}

func fmtKB(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func printResult(w io.Writer, r *Result) {
	if len(r.Cells) == 0 {
		fmt.Fprintf(w, "\n%s (%s)\n", r.Label, r.Servers)
	} else {
		fmt.Fprintf(w, "\n%s (%s): %s per cell after %s warm-up, inflight %d, %d-byte data\n",
			r.Label, r.Servers, r.Duration, r.Warmup, r.Inflight, r.DataSize)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workload\tsessions\tinflight\tops/s\tp50\tp99\tp99.9\tmax\terrors\t")
		for _, c := range r.Cells {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", c.Workload, c.Sessions, c.Inflight,
				c.OpsPerSec, fmtUs(c.P50us), fmtUs(c.P99us), fmtUs(c.P999us), fmtUs(c.MaxUs), c.Errors)
		}
		tw.Flush()
		for _, c := range r.Cells {
			if c.FirstErr != "" {
				fmt.Fprintf(w, "  %s/%d first error: %s\n", c.Workload, c.Sessions, c.FirstErr)
			}
		}
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "RSS: pid %d, %d znodes of %d bytes: %s at start, %s before loading, %s loaded (populated in %.1fs)\n",
			r.RSS.PID, r.RSS.Znodes, r.RSS.DataSize, fmtKB(r.RSS.StartKB), fmtKB(r.RSS.BaselineKB), fmtKB(r.RSS.LoadedKB), r.RSS.PopulateSeconds)
	}
}

type cellKey struct {
	workload           string
	sessions, inflight int
}

// printComparison prints a and b side by side; ratios are a/b, so for ops/s
// above 1 means a is faster and for latency below 1 means a is quicker.
func printComparison(w io.Writer, a, b *Result) {
	fmt.Fprintf(w, "\n%s (%s) vs %s (%s); ratios are %s/%s\n", a.Label, a.Servers, b.Label, b.Servers, a.Label, b.Label)
	bCells := map[cellKey]Cell{}
	for _, c := range b.Cells {
		bCells[cellKey{c.Workload, c.Sessions, c.Inflight}] = c
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tsessions\tinflight\t%s ops/s\tp50\tp99\t%s ops/s\tp50\tp99\tops/s ratio\tp50 ratio\tp99 ratio\t\n", a.Label, b.Label)
	matched := 0
	for _, ca := range a.Cells {
		cb, ok := bCells[cellKey{ca.Workload, ca.Sessions, ca.Inflight}]
		if !ok {
			continue
		}
		matched++
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n",
			ca.Workload, ca.Sessions, ca.Inflight,
			ca.OpsPerSec, fmtUs(ca.P50us), fmtUs(ca.P99us),
			cb.OpsPerSec, fmtUs(cb.P50us), fmtUs(cb.P99us),
			ratio(ca.OpsPerSec, cb.OpsPerSec), ratio(ca.P50us, cb.P50us), ratio(ca.P99us, cb.P99us))
	}
	tw.Flush()
	if matched == 0 && (len(a.Cells) > 0 || len(b.Cells) > 0) {
		fmt.Fprintln(w, "(no cells in common: the runs used different workloads, sessions or inflight)")
	}
	if a.RSS != nil || b.RSS != nil {
		rs := func(r *RSS) string {
			if r == nil {
				return "-"
			}
			return fmt.Sprintf("%s (start %s, %d znodes)", fmtKB(r.LoadedKB), fmtKB(r.StartKB), r.Znodes)
		}
		rr := "-"
		if a.RSS != nil && b.RSS != nil {
			rr = ratio(float64(a.RSS.LoadedKB), float64(b.RSS.LoadedKB))
		}
		fmt.Fprintf(w, "RSS: %s %s | %s %s | ratio %s\n", a.Label, rs(a.RSS), b.Label, rs(b.RSS), rr)
	}
}

// loadResults reads a file holding one Result or a JSON array of them.
func loadResults(path string) ([]*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trimmed := strings.TrimSpace(string(b))
	if strings.HasPrefix(trimmed, "[") {
		var rs []*Result
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return rs, nil
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return []*Result{&r}, nil
}

type targetList []string

func (t *targetList) String() string     { return strings.Join(*t, " ") }
func (t *targetList) Set(v string) error { *t = append(*t, v); return nil }

// compareMain: "compare a.json b.json" prints two saved runs side by side;
// "compare --target label=host:port --target label=zkref [run flags]" measures
// both now ("zkref" starts the Debian ZooKeeper) and prints the same table.
func compareMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("corral-bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var targets targetList
	fs.Var(&targets, "target", "label=host:port[,host:port], label=zkref or label=zkref:3 (an ensemble); give two")
	var pids targetList
	fs.Var(&pids, "pid", "label=PID: the server process of that target, for RSS with --znodes")
	var f runFlags
	f.register(fs, false)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pidOf := map[string]int{}
	for _, p := range pids {
		label, v, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n <= 0 {
			fmt.Fprintf(stderr, "corral-bench: --pid %q: want label=PID\n", p)
			return 2
		}
		pidOf[label] = n
	}
	if len(targets) == 0 {
		if fs.NArg() != 2 {
			fmt.Fprintln(stderr, "usage: corral-bench compare a.json b.json | compare --target l=addr --target l=addr [flags]")
			return 2
		}
		var rs []*Result
		for _, p := range fs.Args() {
			r, err := loadResults(p)
			if err != nil {
				fmt.Fprintf(stderr, "corral-bench: %v\n", err)
				return 1
			}
			rs = append(rs, r...)
		}
		if len(rs) != 2 {
			fmt.Fprintf(stderr, "corral-bench: the files hold %d results; compare needs exactly two\n", len(rs))
			return 2
		}
		printComparison(stdout, rs[0], rs[1])
		return 0
	}
	if len(targets) != 2 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "corral-bench: compare needs exactly two --target label=addr and no file arguments")
		return 2
	}
	workloads, sessions, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 2
	}
	table, jsonW := stdout, io.Writer(nil)
	if f.jsonOut == "-" {
		table, jsonW = stderr, stdout
	}
	var ts []*target
	defer func() {
		for _, t := range ts {
			if t.stop != nil {
				t.stop()
			}
		}
	}()
	for _, spec := range targets {
		label, addr, ok := strings.Cut(spec, "=")
		if !ok || label == "" || addr == "" {
			fmt.Fprintf(stderr, "corral-bench: --target %q: want label=host:port or label=zkref\n", spec)
			return 2
		}
		if addr == "zkref" || strings.HasPrefix(addr, "zkref:") {
			t, err := startReference(label, addr, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "corral-bench: %v\n", err)
				return 3
			}
			ts = append(ts, t)
			continue
		}
		ts = append(ts, &target{label: label, servers: splitList(addr), pid: pidOf[label]})
	}
	for _, t := range ts {
		t.rss = t.pid != 0 && f.znodes > 0
	}
	results, err := measureAll(ts, &f, workloads, sessions, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 1
	}
	for _, r := range results {
		printResult(table, r)
	}
	printComparison(table, results[0], results[1])
	if err := writeJSON(f.jsonOut, jsonW, results); err != nil {
		fmt.Fprintf(stderr, "corral-bench: %v\n", err)
		return 1
	}
	return 0
}

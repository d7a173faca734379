package conformance_test

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance/proccluster"
	"github.com/corral-dev/corral/conformance/zkref"
)

// failoverBound caps one measurement: ZooKeeper notices a paused leader only
// after syncLimit x tickTime (10s with zkref's settings), then elects.
const failoverBound = 40 * time.Second

// BenchmarkFailover measures, for a 3-member Corral ensemble (proccluster)
// and a 3-member Apache ZooKeeper 3.8 ensemble (zkref), the time from a fault
// of the leader to the next acknowledged write of a client connected to the
// two followers: the leader killed with SIGKILL, then paused with SIGSTOP.
// Each case runs CORRAL_FAILOVER_RUNS times (default 3) on fresh ensembles
// and prints min/median/max per system with the ratio corral/zookeeper.
// Settings: Corral's consensus timeouts are the defaults (proccluster sets
// only tick_time 500ms, which scales session timeouts, not elections);
// ZooKeeper runs zkref's zoo.cfg (tickTime 2s, syncLimit 5, initLimit 10).
// The client asks both for a 10s session, which both grant.
//
//	go test -run '^$' -bench Failover -benchtime 1x -timeout 20m ./conformance/   (make bench-failover)
func BenchmarkFailover(b *testing.B) {
	if !zkref.Available() {
		b.Skip(zkref.Missing())
	}
	runs := 3
	if v, err := strconv.Atoi(os.Getenv("CORRAL_FAILOVER_RUNS")); err == nil && v > 0 {
		runs = v
	}
	proccluster.Binary(b) // build before anything is timed
	faults := []string{"kill", "pause"}
	for i := 0; i < b.N; i++ {
		res := map[string]map[string][]failoverRun{}
		for _, fault := range faults {
			res[fault] = map[string][]failoverRun{}
			for r := 1; r <= runs; r++ {
				// Alternate the systems so drift of a shared machine hits both.
				for _, sys := range []string{"corral", "zookeeper"} {
					var run failoverRun
					if sys == "corral" {
						run = corralFailover(b, fault)
					} else {
						run = zookeeperFailover(b, fault)
					}
					fmt.Printf("failover %-5s %-9s run %d/%d: %s\n", fault, sys, r, runs, run)
					res[fault][sys] = append(res[fault][sys], run)
				}
			}
		}
		printFailoverTable(os.Stdout, faults, runs, res)
		var timedOut []string
		for _, fault := range faults {
			for _, sys := range []string{"corral", "zookeeper"} {
				med := median(res[fault][sys])
				b.ReportMetric(med.Seconds(), sys+"-"+fault+"-median-s")
				for _, run := range res[fault][sys] {
					if run.timedOut {
						timedOut = append(timedOut, sys+" "+fault)
					}
				}
			}
			b.ReportMetric(median(res[fault]["corral"]).Seconds()/median(res[fault]["zookeeper"]).Seconds(), fault+"-ratio")
		}
		if len(timedOut) > 0 {
			b.Errorf("no acknowledged write within %s of the fault: %s", failoverBound, strings.Join(timedOut, ", "))
		}
	}
}

// failoverRun is one measurement.
type failoverRun struct {
	recovered   time.Duration // fault to the ack of the first write issued after it
	timedOut    bool          // nothing acknowledged within failoverBound
	acked       int           // writes acknowledged before the fault
	failed      int           // writes that failed after the fault
	sessionKept bool          // the client kept its session through the failover
	leader      string
	client      string // the client's connection state changes after the fault, until recovery
}

func (r failoverRun) String() string {
	rec := r.recovered.Round(time.Millisecond).String()
	if r.timedOut {
		rec = ">" + failoverBound.String()
	}
	client := r.client
	if client == "" {
		client = "stayed connected"
	}
	return fmt.Sprintf("leader %s; next acknowledged write after %s (%d writes before the fault, %d failed after it, session kept: %v; client: %s)",
		r.leader, rec, r.acked, r.failed, r.sessionKept, client)
}

func corralFailover(b *testing.B, fault string) failoverRun {
	c := proccluster.Start(b, 3, proccluster.Options{})
	// Stop this ensemble now rather than when the benchmark ends.
	defer func() {
		for _, m := range c.Members {
			m.Kill()
		}
	}()
	leader := c.WaitLeader(30 * time.Second)
	var followers []string
	for _, m := range c.Followers(leader) {
		followers = append(followers, m.ClientAddr)
	}
	do := leader.Kill
	if fault == "pause" {
		do = leader.Pause // Kill in the deferred stop resumes it first
	}
	run := measureFailover(b, followers, do)
	run.leader = leader.ClientAddr
	return run
}

func zookeeperFailover(b *testing.B, fault string) failoverRun {
	e, err := zkref.StartEnsembleServers(3, zkref.Options{LogLevel: "WARN"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Stop()
	leader, followers := zkLeader(b, e)
	do := leader.Kill
	if fault == "pause" {
		// The JVM leads its own process group (zkref starts it with
		// Setpgid), so this pauses only the process this test started.
		pgid := leader.PID()
		do = func() { _ = syscall.Kill(-pgid, syscall.SIGSTOP) }
		defer func() { _ = syscall.Kill(-pgid, syscall.SIGCONT) }()
	}
	run := measureFailover(b, followers, do)
	run.leader = leader.Addr()
	return run
}

// zkLeader waits until one member reports "Mode: leader" in srvr and the
// others "Mode: follower".
func zkLeader(b *testing.B, e *zkref.Ensemble) (*zkref.Server, []string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var leader *zkref.Server
		var followers []string
		for _, s := range e.Servers {
			out, _ := zkref.FourLetterWord(s.Addr(), "srvr", 2*time.Second)
			switch {
			case strings.Contains(out, "\nMode: leader"):
				leader = s
			case strings.Contains(out, "\nMode: follower"):
				followers = append(followers, s.Addr())
			}
		}
		if leader != nil && len(followers) == len(e.Servers)-1 {
			return leader, followers
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("zookeeper ensemble %s: no leader with %d followers within 30s", e.ConnectString(), len(e.Servers)-1)
	return nil, nil
}

// measureFailover runs a stream of creates, one at a time, from a session
// on the followers, applies fault to the leader, and measures from just
// before the fault to the acknowledgement of the first write issued after
// it. Writes in flight at the fault are not counted: the old leader may
// have committed them, so their acks prove nothing about the new one.
func measureFailover(b *testing.B, followers []string, fault func()) failoverRun {
	conn, events, err := zk.Connect(followers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.After(10 * time.Second); conn.State() != zk.StateHasSession; {
		select {
		case <-events:
		case <-deadline:
			b.Fatalf("connect %v: no session within 10s", followers)
		}
	}
	sid := conn.SessionID()

	base := time.Now()
	var (
		faultAt   atomic.Int64 // since base; 0 until the fault
		evMu      sync.Mutex
		timeline  []string // the client's state changes after the fault
		evDone    = make(chan struct{})
		acked     atomic.Int64 // before the fault
		failed    atomic.Int64 // after the fault
		recovered = make(chan time.Duration, 1)
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	// Note when the client lost its connection and where it went, so a
	// slow failover shows whether the servers or the client's back-off
	// (a second after trying every address) took the time.
	go func() {
		defer close(evDone)
		for ev := range events {
			f := faultAt.Load()
			if f == 0 || ev.Type != zk.EventSession {
				continue
			}
			at := (time.Since(base) - time.Duration(f)).Round(time.Millisecond)
			e := fmt.Sprintf("%s@%s", strings.TrimPrefix(ev.State.String(), "State"), at)
			if ev.State == zk.StateConnected {
				e = fmt.Sprintf("Connected(%s)@%s", ev.Server, at)
			}
			evMu.Lock()
			timeline = append(timeline, e)
			evMu.Unlock()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Since(base)
			_, err := conn.Create(fmt.Sprintf("/failover-%d", i), nil, 0, zk.WorldACL(zk.PermAll))
			end := time.Since(base)
			f := faultAt.Load()
			switch {
			case err != nil && f != 0:
				failed.Add(1)
				time.Sleep(time.Millisecond) // no busy loop while the client reconnects
			case err != nil:
				b.Errorf("write before the fault failed: %v", err)
				return
			case f == 0:
				acked.Add(1)
			case start > time.Duration(f):
				select {
				case recovered <- end - time.Duration(f):
				default:
				}
			}
		}
	}()
	defer func() {
		close(stop)
		conn.Close() // unblocks a write stuck on an unrecovered ensemble
		wg.Wait()
		<-evDone // Close closes the event channel
	}()
	time.Sleep(500 * time.Millisecond)
	if acked.Load() == 0 {
		b.Fatalf("no write acknowledged through %v before the fault", followers)
	}
	run := failoverRun{acked: int(acked.Load())}
	faultAt.Store(int64(time.Since(base)))
	fault()
	select {
	case d := <-recovered:
		run.recovered = d
	case <-time.After(failoverBound - (time.Since(base) - time.Duration(faultAt.Load()))):
		run.recovered, run.timedOut = failoverBound, true
	}
	run.failed = int(failed.Load())
	run.sessionKept = conn.SessionID() == sid
	evMu.Lock()
	run.client = strings.Join(timeline, " ")
	evMu.Unlock()
	return run
}

func median(runs []failoverRun) time.Duration {
	ds := durations(runs)
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)/2]
}

func durations(runs []failoverRun) []time.Duration {
	ds := make([]time.Duration, len(runs))
	for i, r := range runs {
		ds[i] = r.recovered
	}
	slices.Sort(ds)
	return ds
}

func printFailoverTable(w io.Writer, faults []string, runs int, res map[string]map[string][]failoverRun) {
	fmt.Fprintf(w, "\nleader failover, 3-member ensembles, %d runs each (fresh ensembles): time from the fault to the\n"+
		"acknowledgement of the first write issued after it, client on the two followers; ratio = corral/zookeeper\n", runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tcorral min\tmedian\tmax\tzookeeper min\tmedian\tmax\tmedian ratio\t")
	name := map[string]string{"kill": "kill -9 leader", "pause": "SIGSTOP leader"}
	for _, fault := range faults {
		c, z := durations(res[fault]["corral"]), durations(res[fault]["zookeeper"])
		cm, zm := median(res[fault]["corral"]), median(res[fault]["zookeeper"])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2fx\t\n", name[fault],
			fmtFailover(c[0]), fmtFailover(cm), fmtFailover(c[len(c)-1]),
			fmtFailover(z[0]), fmtFailover(zm), fmtFailover(z[len(z)-1]),
			cm.Seconds()/zm.Seconds())
	}
	tw.Flush()
}

func fmtFailover(d time.Duration) string {
	if d >= failoverBound {
		return ">" + failoverBound.String()
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

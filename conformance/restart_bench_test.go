package conformance_test

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance/proccluster"
	"github.com/corral-dev/corral/conformance/zkref"
)

// BenchmarkRestart loads CORRAL_BENCH_ZNODES znodes of 100 bytes (default
// 200000; the figure uses 1000000) into Corral (defaults: bolt,
// fsync on) and into Apache ZooKeeper 3.8, then reports for each: RSS with
// the tree loaded, on-disk size, and the time from starting the process
// again to answering a read of the last znode. Ratios are Corral/ZooKeeper.
//
//	CORRAL_BENCH_ZNODES=1000000 go test -run '^$' -bench Restart -benchtime 1x -timeout 30m ./conformance/
func BenchmarkRestart(b *testing.B) {
	if !zkref.Available() {
		b.Skip(zkref.Missing())
	}
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_ZNODES")); err == nil && v > 0 {
		n = v
	}
	last := fmt.Sprintf("/bench/n%08d", n-1)
	for i := 0; i < b.N; i++ {
		// Corral.
		dir := b.TempDir()
		addr := freeAddr(b)
		start := func() *exec.Cmd {
			cmd := exec.Command(proccluster.Binary(b), "serve", "--data-dir", dir, "--listen", addr, "--log-level", "warn")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			return cmd
		}
		cmd := start()
		waitRead(b, addr, "/", 60*time.Second)
		loadVia(b, addr, n)
		cRSS := rssOf(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		cDisk := diskUsage(dir)
		t0 := time.Now()
		cmd = start()
		waitRead(b, addr, last, 120*time.Second)
		cStart := time.Since(t0)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()

		// ZooKeeper, same steps.
		zdir := b.TempDir()
		z, err := zkref.StartServer(zkref.Options{Dir: zdir})
		if err != nil {
			b.Fatal(err)
		}
		loadVia(b, z.Addr(), n)
		zRSS := rssOf(z.PID())
		z.Stop()
		zDisk := diskUsage(filepath.Join(zdir))
		t0 = time.Now()
		z, err = zkref.StartServer(zkref.Options{Dir: zdir})
		if err != nil {
			b.Fatal(err)
		}
		waitRead(b, z.Addr(), last, 120*time.Second)
		zStart := time.Since(t0)
		z.Stop()

		b.Logf("%d znodes: corral RSS %.1f MiB, disk %.1f MiB, restart-to-read %s | zookeeper RSS %.1f MiB, disk %.1f MiB, restart-to-read %s",
			n, mib(cRSS), mib(cDisk), cStart.Round(time.Millisecond), mib(zRSS), mib(zDisk), zStart.Round(time.Millisecond))
		b.ReportMetric(float64(cRSS)/float64(zRSS), "rss-ratio")
		b.ReportMetric(float64(cDisk)/float64(zDisk), "disk-ratio")
		b.ReportMetric(cStart.Seconds()/zStart.Seconds(), "restart-ratio")
	}
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitRead polls until path can be read through a fresh session.
func waitRead(b *testing.B, addr, path string, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, _, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
		if err == nil {
			ok, _, err := c.Exists(path)
			c.Close()
			if err == nil && ok {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s: %s not readable within %s", addr, path, d)
}

type quiet struct{}

func (quiet) Printf(string, ...interface{}) {}

func loadVia(b *testing.B, addr string, n int) {
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	populate(b, c, n)
}

func rssOf(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func diskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, err := d.Info(); err == nil {
				if sys, ok := st.Sys().(*syscall.Stat_t); ok {
					total += sys.Blocks * 512 // allocated, not apparent, size
					return nil
				}
				total += st.Size()
			}
		}
		return nil
	})
	return total
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// buildCorral compiles this command once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func corralBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "corral-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "corral")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

var addrRe = regexp.MustCompile(`serving clients.* addr=(\S+)`)

// proc is a corral server running as a child process.
type proc struct {
	cmd  *exec.Cmd
	addr string
}

func startProc(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(corralBinary(t), append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			if testing.Verbose() {
				t.Log(sc.Text())
			}
		}
	}()
	select {
	case p.addr = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("corral did not start serving within 30s")
	}
	return p
}

// kill sends SIGKILL to the server (its own process only).
func (p *proc) kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// TestDurabilityKill9 writes a stream of creates, kills the server with
// SIGKILL mid-stream, restarts it on the same directory and checks that
// every acknowledged write is there. CORRAL_CRASH_LOOPS sets the rounds.
func TestDurabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and kills a real server")
	}
	loops := 2
	if v, err := strconv.Atoi(os.Getenv("CORRAL_CRASH_LOOPS")); err == nil && v > 0 {
		loops = v
	}
	dir := t.TempDir()
	acked := map[string]string{}
	for round := 0; round < loops; round++ {
		p := startProc(t, dir)
		c, _, err := zk.Connect([]string{p.addr}, 5*time.Second, zk.WithLogInfo(false))
		if err != nil {
			t.Fatal(err)
		}
		// Everything acknowledged in earlier rounds is still there.
		for path, want := range acked {
			data, _, err := c.Get(path)
			if err != nil || string(data) != want {
				t.Fatalf("round %d: acknowledged %s = %q lost after kill -9: got %q, %v", round, path, want, data, err)
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					path := fmt.Sprintf("/r%d-w%d-%d", round, w, i)
					val := fmt.Sprint(i)
					if _, err := c.Create(path, []byte(val), 0, zk.WorldACL(zk.PermAll)); err != nil {
						return // the server is gone; this write's outcome is unknown
					}
					mu.Lock()
					acked[path] = val
					mu.Unlock()
				}
			}(w)
		}
		time.Sleep(time.Duration(300+round*137%400) * time.Millisecond)
		p.kill()
		close(stop)
		wg.Wait()
		c.Close()
	}
	p := startProc(t, dir)
	c, _, err := zk.Connect([]string{p.addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for path, want := range acked {
		data, _, err := c.Get(path)
		if err != nil || string(data) != want {
			t.Fatalf("acknowledged %s = %q lost: got %q, %v", path, want, data, err)
		}
	}
	if len(acked) < 10 {
		t.Fatalf("only %d writes were acknowledged: the test did not exercise the server", len(acked))
	}
	t.Logf("%d acknowledged writes survived %d kill -9 rounds", len(acked), loops)
}

// A damaged log entry stops the server at start with a clear message; it
// never serves (or replays) wrong data.
func TestCorruptLogRefusesToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and kills a real server")
	}
	dir := t.TempDir()
	p := startProc(t, dir)
	c, _, err := zk.Connect([]string{p.addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("CORRUPT-ME-PLEASE-0123456789")
	if _, err := c.Create("/x", marker, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.kill() // no snapshot on the way out: the entry must be replayed
	// The entry is in the bolt file or, with the write-ahead log, in a WAL
	// segment: damage it wherever it is.
	files, _ := filepath.Glob(filepath.Join(dir, "bolt", "*"))
	flipped := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n := 0
		for i := bytes.Index(b, marker); i >= 0; i = bytes.Index(b, marker) {
			b[i] ^= 0xff
			n++
		}
		if n > 0 {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			flipped += n
		}
	}
	if flipped == 0 {
		t.Fatal("marker not found in the bolt store's files")
	}
	db := filepath.Join(dir, "bolt")
	cmd := exec.Command(corralBinary(t), "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("server started on a corrupt log:\n%s", out)
	}
	for _, want := range []string{"corrupt", db, "refusing to start"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("start-up error lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("panic")) {
		t.Fatalf("start-up on a corrupt log panicked:\n%s", out)
	}
}

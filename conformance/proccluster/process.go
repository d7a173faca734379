package proccluster

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one server process and the signals fault tests send it. Both
// this package's members and netcluster's embed it.
type Process struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// Run starts argv in its own process group with output appended to
// logPath, unless the process is already running.
func (p *Process) Run(t testing.TB, logPath string, argv ...string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	p.cmd, p.done, p.logPath = cmd, make(chan struct{}), logPath
	done := p.done
	go func() { cmd.Wait(); logf.Close(); close(done) }()
}

func (p *Process) signal(sig syscall.Signal, wait bool) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if wait {
		p.cmd = nil
	}
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	if wait {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// Kill sends SIGKILL (after SIGCONT, in case it is paused) and waits for
// the process to exit.
func (p *Process) Kill() { p.signal(syscall.SIGCONT, false); p.signal(syscall.SIGKILL, true) }

// Stop sends SIGTERM (clean shutdown) and waits.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, true) }

// Pause freezes the process with SIGSTOP.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP, false) }

// Resume continues a paused process.
func (p *Process) Resume() { p.signal(syscall.SIGCONT, false) }

// Running reports whether the process is up.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Pid is the process id, 0 when not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// LogTail returns the last n lines of the process's log, for failure
// messages.
func (p *Process) LogTail(n int) string {
	p.mu.Lock()
	path := p.logPath
	p.mu.Unlock()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Dialer opens a connection; net.DialTimeout is one.
type Dialer func(network, addr string, timeout time.Duration) (net.Conn, error)

// FourLetter sends a four-letter word to addr through dial and returns the
// answer.
func FourLetter(dial Dialer, addr, cmd string) (string, error) {
	c, err := dial("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	return string(b), err
}

// ModeOf extracts srvr's Mode line (leader, follower, standalone, ...);
// "" when the server did not answer.
func ModeOf(srvr string, err error) string {
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(srvr, "\n") {
		if mode, ok := strings.CutPrefix(l, "Mode: "); ok {
			return mode
		}
	}
	return ""
}

package proccluster

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one server process and the signals fault tests send it. Both
// this package's members and netcluster's embed it.
type Process struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
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
	p.cmd, p.done = cmd, make(chan struct{})
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

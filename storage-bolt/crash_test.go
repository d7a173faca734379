package storagebolt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

// The kill tests re-execute the test binary as a writer process (selected by
// crashDirEnv), SIGKILL it mid-stream and check what it acknowledged. The
// child runs in one of crashModes (crashModeEnv); with crashAtEnv set to
// "point:n" it kills itself the n-th time it reaches that testHook point,
// so a crash lands at each step of a checkpoint for certain.
const (
	crashDirEnv   = "CORRAL_BOLT_CRASH_DIR"
	crashModeEnv  = "CORRAL_BOLT_CRASH_MODE"
	crashAtEnv    = "CORRAL_BOLT_CRASH_AT"
	crashLoopsEnv = "CORRAL_CRASH_LOOPS"
	crashWriters  = 3 // state writers racing the log writer in the child
)

// crashModes are the configs a crash test runs the child (and reopens the
// store) with: the log with a checkpoint every 20ms, the log checkpointing
// nearly continuously (so a kill often lands inside one), and no log.
var crashModes = map[string]func(*Config){
	"wal": func(c *Config) { c.WALCheckpointInterval = 20 * time.Millisecond },
	"wal-busy": func(c *Config) {
		c.WALCheckpointBytes = 4 << 10
		c.WALCheckpointInterval = time.Millisecond
	},
	"direct": walOff,
}

// crashPoints are the testHook points a child can die at.
var crashPoints = []string{"wal-written", "rotated", "checkpoint-start", "checkpoint-applied", "segment-removed"}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashData is the content of entry i, so the parent can check it.
func crashData(i uint64) []byte {
	b := make([]byte, 40+i%200)
	for k := range b {
		b[k] = byte(i) + byte(k)
	}
	return b
}

func crashEntries(lo, hi uint64) []storage.LogEntry {
	var es []storage.LogEntry
	for i := lo; i < hi; i++ {
		es = append(es, storage.LogEntry{Index: i, Term: 1, Kind: byte(i % 2), Data: crashData(i)})
	}
	return es
}

// crashChild appends to the log and bumps per-writer counters until it is
// killed, printing each acknowledged write as "log <last index>" or
// "state <writer> <value>".
func crashChild(dir string) error {
	cfg := DefaultConfig()
	cfg.Path = dir
	cfg.OpenTimeout = 10 * time.Second
	mode := os.Getenv(crashModeEnv)
	mutate, ok := crashModes[mode]
	if !ok {
		return fmt.Errorf("%s=%q: unknown mode", crashModeEnv, mode)
	}
	mutate(cfg)
	if at := os.Getenv(crashAtEnv); at != "" {
		point, nth, _ := strings.Cut(at, ":")
		n, err := strconv.ParseInt(nth, 10, 64)
		if err != nil || !slices.Contains(crashPoints, point) {
			return fmt.Errorf("%s=%q: want point:n", crashAtEnv, at)
		}
		var seen atomic.Int64
		testHook = func(p string) {
			if p == point && seen.Add(1) == n {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	s, err := Open(context.Background(), plugin.Settings{}, cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute) // never outlive a parent that died
	var wg sync.WaitGroup
	errc := make(chan error, crashWriters+1)
	for w := range crashWriters {
		wg.Go(func() {
			key := fmt.Sprint("w", w)
			var n uint64
			if v, err := s.State(key); err == nil {
				n = binary.BigEndian.Uint64(v)
			}
			for time.Now().Before(deadline) {
				n++
				if err := s.Write(ctx, storage.Batch{State: map[string][]byte{key: binary.BigEndian.AppendUint64(nil, n)}}); err != nil {
					errc <- err
					return
				}
				fmt.Fprintf(os.Stdout, "state %d %d\n", w, n)
			}
		})
	}
	wg.Go(func() {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		for b := 0; time.Now().Before(deadline); b++ {
			next := last + 1
			var batch storage.Batch
			if b%25 == 24 && last >= first+2 && first != 0 {
				// Rewrite the last two entries with the same content, so a
				// torn truncate-and-append shows up as a hole.
				batch.TruncateFrom = last - 1
				next = last - 1
			}
			end := last + 1 + uint64(b%4)
			batch.Entries = crashEntries(next, end+1)
			batch.State = map[string][]byte{"last": binary.BigEndian.AppendUint64(nil, end)}
			if err := s.Write(ctx, batch); err != nil {
				errc <- err
				return
			}
			if first == 0 {
				first = next
			}
			last = end
			fmt.Fprintf(os.Stdout, "log %d\n", last)
			if b%40 == 39 && last > first+300 {
				if err := s.CompactPrefix(last - 300); err != nil {
					errc <- err
					return
				}
				first = last - 299
			}
		}
	})
	wg.Wait()
	close(errc)
	if err, ok := <-errc; ok {
		return err
	}
	return s.Close()
}

func crashLoops(t *testing.T) int {
	loops := 3
	if v := os.Getenv(crashLoopsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", crashLoopsEnv, v)
		}
		loops = n
	}
	return loops
}

// TestKillDuringWrites kills the writer at a random moment, cycling through
// the modes over one directory, so each reopen also switches the log on or
// off over whatever the crash left.
func TestKillDuringWrites(t *testing.T) {
	loops := crashLoops(t)
	modes := []string{"wal", "wal-busy", "direct"}
	dir := t.TempDir()
	var ackedLog uint64
	ackedState := make([]uint64, crashWriters)
	for loop := range loops {
		mode := modes[loop%len(modes)]
		acks := runAndKill(t, dir, mode, "", 20+rand.IntN(300), &ackedLog, ackedState)
		s := openAt(t, dir, crashModes[modes[(loop+1)%len(modes)]])
		verifyCrashStore(t, s, loop, ackedLog, ackedState)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("loop %d (%s): killed after %d log acks; log ends at %d", loop, mode, acks, ackedLog)
	}
}

// TestKillAtCheckpointSteps has the writer kill itself at each step of the
// write path and of a checkpoint: after a log write before its fsync,
// after starting a new segment, before and after the checkpoint's bolt
// commit, and between deleting an old segment and syncing the directory.
func TestKillAtCheckpointSteps(t *testing.T) {
	rounds := max(1, crashLoops(t)/10)
	dir := t.TempDir()
	var ackedLog uint64
	ackedState := make([]uint64, crashWriters)
	loop := 0
	for range rounds {
		for _, point := range crashPoints {
			at := fmt.Sprintf("%s:%d", point, 1+rand.IntN(60))
			acks := runAndKill(t, dir, "wal-busy", at, 0, &ackedLog, ackedState)
			s := openAt(t, dir, crashModes["wal-busy"])
			verifyCrashStore(t, s, loop, ackedLog, ackedState)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("loop %d: died at %s after %d log acks; log ends at %d", loop, at, acks, ackedLog)
			loop++
		}
	}
}

// runAndKill starts a writer process in mode, and SIGKILLs it after target
// log acks or, with target 0, waits for it to kill itself at crashAt. It
// records every ack printed (including those printed after the kill was
// decided: they were acknowledged before the process died).
func runAndKill(t *testing.T, dir, mode, crashAt string, target int, ackedLog *uint64, ackedState []uint64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode, crashAtEnv+"="+crashAt)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	killed, acks := false, 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "log":
			n, _ := strconv.ParseUint(f[1], 10, 64)
			*ackedLog = max(*ackedLog, n)
			acks++
		case len(f) == 3 && f[0] == "state":
			w, _ := strconv.Atoi(f[1])
			n, _ := strconv.ParseUint(f[2], 10, 64)
			ackedState[w] = max(ackedState[w], n)
		}
		if !killed && target > 0 && acks >= target {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		if !killed && target == 0 && acks >= 20000 {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("writer never reached %s (%d acks)", crashAt, acks)
		}
	}
	err = cmd.Wait()
	if target == 0 {
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("writer did not die at %s (%d acks, %v): %s", crashAt, acks, err, stderr.String())
		}
	} else if !killed {
		t.Fatalf("writer process ended before the kill (%d acks, %v): %s", acks, err, stderr.String())
	}
	return acks
}

func verifyCrashStore(t *testing.T, s *Store, loop int, ackedLog uint64, ackedState []uint64) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last < ackedLog {
		t.Fatalf("loop %d: log ends at %d, but %d was acknowledged", loop, last, ackedLog)
	}
	// "last" is written in the same batch as the entries: any other value
	// means a batch was half applied.
	v, err := s.State("last")
	if err != nil || binary.BigEndian.Uint64(v) != last {
		t.Fatalf("loop %d: state last = %x (%v), log ends at %d", loop, v, err, last)
	}
	es, err := s.Entries(first, last+1, 0)
	if err != nil {
		t.Fatalf("loop %d: Entries(%d, %d): %v", loop, first, last+1, err)
	}
	for k, e := range es {
		i := first + uint64(k)
		if e.Index != i || e.Term != 1 || e.Kind != byte(i%2) || !bytes.Equal(e.Data, crashData(i)) {
			t.Fatalf("loop %d: entry %d damaged: %+v", loop, i, e)
		}
	}
	for w, acked := range ackedState {
		v, err := s.State(fmt.Sprint("w", w))
		if acked == 0 {
			continue
		}
		if err != nil || binary.BigEndian.Uint64(v) < acked {
			t.Fatalf("loop %d: writer %d acknowledged %d, store has %x (%v)", loop, w, acked, v, err)
		}
	}
}

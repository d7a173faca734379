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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/storage"
)

// The kill test re-executes the test binary as a writer process (selected by
// crashDirEnv), SIGKILLs it mid-stream and checks what it acknowledged.
const (
	crashDirEnv   = "CORRAL_BOLT_CRASH_DIR"
	crashLoopsEnv = "CORRAL_CRASH_LOOPS"
	crashWriters  = 3 // state writers racing the log writer in the child
)

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

func TestKillDuringWrites(t *testing.T) {
	loops := 3
	if v := os.Getenv(crashLoopsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", crashLoopsEnv, v)
		}
		loops = n
	}
	dir := t.TempDir()
	var ackedLog uint64
	ackedState := make([]uint64, crashWriters)
	for loop := range loops {
		acks := runAndKill(t, dir, 20+rand.IntN(300), &ackedLog, ackedState)
		s := openAt(t, dir, nil)
		verifyCrashStore(t, s, loop, ackedLog, ackedState)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("loop %d: killed after %d log acks; log ends at %d", loop, acks, ackedLog)
	}
}

// runAndKill starts a writer process, SIGKILLs it after target log acks, and
// records every ack it printed (including those printed after the kill was
// decided: they were acknowledged before the process died).
func runAndKill(t *testing.T, dir string, target int, ackedLog *uint64, ackedState []uint64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
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
		if !killed && acks >= target {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
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

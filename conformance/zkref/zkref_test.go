package zkref

import (
	"bytes"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func connect(t *testing.T, addrs ...string) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect(addrs, 10*time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return c
			}
		case <-deadline:
			t.Fatalf("no session with %v", addrs)
		}
	}
}

func TestStartCreateGet(t *testing.T) {
	s := Start(t, Options{})
	if out, err := FourLetterWord(s.Addr(), "srvr", 2*time.Second); err != nil || !strings.Contains(out, "Mode: standalone") {
		t.Fatalf("srvr = %q, %v", out, err)
	}
	c := connect(t, s.Addr())
	p, err := c.Create("/zkref", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
	if err != nil || p != "/zkref" {
		t.Fatalf("create: %q %v", p, err)
	}
	data, st, err := c.Get("/zkref")
	if err != nil || !bytes.Equal(data, []byte("hello")) || st.DataLength != 5 || st.Czxid != st.Mzxid {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	// TTL nodes need extendedTypesEnabled, which the generated zoo.cfg sets.
	if _, err := c.CreateTTL("/zkref-ttl", nil, zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Minute); err != nil {
		t.Fatalf("createTTL: %v", err)
	}

	pid := s.PID()
	s.Stop()
	select {
	case <-s.Exited():
	default:
		t.Fatal("process still running after Stop")
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s not removed: %v", s.Dir(), err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatalf("pid %d still present", pid)
	}
}

func TestEnsembleReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three JVMs; skipped with -short")
	}
	e := StartEnsemble(t, 3)
	modes := map[string]int{}
	for _, s := range e.Servers {
		out, err := FourLetterWord(s.Addr(), "srvr", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Mode: ") {
				modes[strings.TrimPrefix(line, "Mode: ")]++
			}
		}
	}
	if modes["leader"] != 1 || modes["follower"] != 2 {
		t.Fatalf("modes = %v, want one leader and two followers", modes)
	}
	a := connect(t, e.Servers[0].Addr())
	b := connect(t, e.Servers[2].Addr())
	if _, err := a.Create("/ens", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync("/ens"); err != nil {
		t.Fatal(err)
	}
	data, _, err := b.Get("/ens")
	if err != nil || string(data) != "x" {
		t.Fatalf("get on other member: %q %v", data, err)
	}
}

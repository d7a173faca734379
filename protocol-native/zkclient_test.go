package protocolnative

import (
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// TestGoZookeeperClientRoundTrip drives the frontend with the real
// go-zookeeper/zk client (44-byte ConnectRequest, reflection-based codec)
// against the fake backend's map tree.
func TestGoZookeeperClientRoundTrip(t *testing.T) {
	b := newFakeBackend()
	f := startFrontend(t, b)

	zc, events, err := zk.Connect([]string{f.Addr().String()}, 4*time.Second,
		zk.WithLogger(quietLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	waitState(t, events, zk.StateHasSession)

	path, err := zc.Create("/app", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
	if err != nil || path != "/app" {
		t.Fatalf("create: %q %v", path, err)
	}
	if _, err := zc.Create("/app", nil, 0, zk.WorldACL(zk.PermAll)); err != zk.ErrNodeExists {
		t.Fatalf("second create: %v", err)
	}
	if _, err := zc.Create("/app/child", []byte{}, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create child: %v", err)
	}

	data, stat, watch, err := zc.GetW("/app")
	if err != nil || string(data) != "hello" || stat.DataLength != 5 || stat.NumChildren != 1 {
		t.Fatalf("get: %q %+v %v", data, stat, err)
	}
	if stat.Czxid != stat.Mzxid || stat.Czxid == 0 {
		t.Fatalf("stat fields out of place: %+v", stat)
	}

	st, err := zc.Set("/app", []byte("bye"), stat.Version)
	if err != nil || st.Version != 1 {
		t.Fatalf("set: %+v %v", st, err)
	}
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != "/app" {
			t.Fatalf("watch event %+v", ev)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no watch event")
	}
	if _, err := zc.Set("/app", []byte("x"), 0); err != zk.ErrBadVersion {
		t.Fatalf("stale set: %v", err)
	}

	kids, _, err := zc.Children("/")
	sort.Strings(kids)
	if err != nil || len(kids) != 1 || kids[0] != "app" {
		t.Fatalf("children: %v %v", kids, err)
	}
	ok, _, err := zc.Exists("/nope")
	if err != nil || ok {
		t.Fatalf("exists: %v %v", ok, err)
	}
	if err := zc.Delete("/app/child", -1); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := zc.Get("/app/child"); err != zk.ErrNoNode {
		t.Fatalf("get deleted: %v", err)
	}

	zc.Close()
	s := b.session(t, 0)
	waitFor(t, "detach after close", func() bool { return s.detached.Load() == 1 })
}

func waitState(t *testing.T, events <-chan zk.Event, want zk.State) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == want {
				return
			}
		case <-timeout:
			t.Fatalf("never reached state %v", want)
		}
	}
}

package watch

import (
	"reflect"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

type rec struct{ got []op.WatchEvent }

func (r *rec) Event(ev op.WatchEvent) { r.got = append(r.got, ev) }

func ev(t znode.EventType, p string) op.WatchEvent { return op.WatchEvent{Type: t, Path: p} }

// Which event fires which watch: DataTree/WatchManager in ZooKeeper and
// reference §2.6 / §8 item 10.
func TestTriggerMatrix(t *testing.T) {
	cases := []struct {
		name  string
		kind  Kind
		path  string
		event op.WatchEvent
		fires bool
	}{
		{"data watch on setData", Data, "/a", ev(znode.EventNodeDataChanged, "/a"), true},
		{"data watch on delete", Data, "/a", ev(znode.EventNodeDeleted, "/a"), true},
		{"exists watch on create", Data, "/a", ev(znode.EventNodeCreated, "/a"), true},
		{"data watch ignores child change", Data, "/a", ev(znode.EventNodeChildrenChanged, "/a"), false},
		{"child watch on child change", Child, "/a", ev(znode.EventNodeChildrenChanged, "/a"), true},
		{"child watch fires NodeDeleted for the node itself", Child, "/a", ev(znode.EventNodeDeleted, "/a"), true},
		{"child watch ignores data change", Child, "/a", ev(znode.EventNodeDataChanged, "/a"), false},
		{"persistent sees child change", Persistent, "/a", ev(znode.EventNodeChildrenChanged, "/a"), true},
		{"persistent sees data change", Persistent, "/a", ev(znode.EventNodeDataChanged, "/a"), true},
		{"persistent is not recursive", Persistent, "/a", ev(znode.EventNodeDataChanged, "/a/b"), false},
		{"recursive sees descendant create", Recursive, "/a", ev(znode.EventNodeCreated, "/a/b/c"), true},
		{"recursive never sees NodeChildrenChanged", Recursive, "/a", ev(znode.EventNodeChildrenChanged, "/a"), false},
		{"recursive on root sees everything", Recursive, "/", ev(znode.EventNodeDeleted, "/x"), true},
		{"recursive does not match a sibling prefix", Recursive, "/a", ev(znode.EventNodeCreated, "/ab"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			r := &rec{}
			m.Add(r, c.path, c.kind)
			m.Trigger([]op.WatchEvent{c.event})
			if got := len(r.got) == 1; got != c.fires {
				t.Fatalf("fired=%v (events %v), want %v", got, r.got, c.fires)
			}
		})
	}
}

func TestOneShotVersusPersistent(t *testing.T) {
	m := New()
	one, per := &rec{}, &rec{}
	m.Add(one, "/a", Data)
	m.Add(per, "/a", Persistent)
	for i := 0; i < 3; i++ {
		m.Trigger([]op.WatchEvent{ev(znode.EventNodeDataChanged, "/a")})
	}
	if len(one.got) != 1 {
		t.Fatalf("one-shot watch fired %d times, want 1", len(one.got))
	}
	if len(per.got) != 3 {
		t.Fatalf("persistent watch fired %d times, want 3", len(per.got))
	}
}

func TestOneNotificationPerWatcherPerEvent(t *testing.T) {
	m := New()
	r := &rec{}
	m.Add(r, "/a", Data)
	m.Add(r, "/a", Data) // same watch twice is one watch
	m.Add(r, "/a", Persistent)
	m.Add(r, "/", Recursive)
	m.Trigger([]op.WatchEvent{ev(znode.EventNodeDataChanged, "/a")})
	if len(r.got) != 1 {
		t.Fatalf("got %d notifications, want 1: %v", len(r.got), r.got)
	}
}

func TestEventsKeepOrder(t *testing.T) {
	m := New()
	r := &rec{}
	m.Add(r, "/", Recursive)
	in := []op.WatchEvent{ev(znode.EventNodeCreated, "/a"), ev(znode.EventNodeDataChanged, "/a"), ev(znode.EventNodeDeleted, "/a")}
	m.Trigger(in)
	if !reflect.DeepEqual(r.got, in) {
		t.Fatalf("got %v, want %v", r.got, in)
	}
}

func TestRemoveAndHas(t *testing.T) {
	m := New()
	r := &rec{}
	m.Add(r, "/a", Data)
	m.Add(r, "/a", Child)
	if !m.Has(r, "/a", znode.WatcherData) || !m.Has(r, "/a", znode.WatcherChildren) {
		t.Fatal("Has: watches missing")
	}
	if m.Has(r, "/a", znode.WatcherPersistent) {
		t.Fatal("Has: no persistent watch was added")
	}
	if !m.Remove(r, "/a", znode.WatcherData) {
		t.Fatal("Remove data: reported nothing removed")
	}
	if m.Remove(r, "/a", znode.WatcherData) {
		t.Fatal("Remove data twice: want NOWATCHER (false)")
	}
	m.Add(r, "/b", Recursive)
	if !m.Remove(r, "/a", znode.WatcherAny) || m.Has(r, "/a", znode.WatcherAny) {
		t.Fatal("Remove any: child watch left behind")
	}
	m.RemoveAll(r)
	if s := m.Summary(); s.Total != 0 || s.Watchers != 0 || s.Paths != 0 {
		t.Fatalf("after RemoveAll: %+v", s)
	}
	m.Trigger([]op.WatchEvent{ev(znode.EventNodeCreated, "/b/c")})
	if len(r.got) != 0 {
		t.Fatalf("removed watcher got %v", r.got)
	}
}

func TestSummaryAndDumps(t *testing.T) {
	m := New()
	a, b := &rec{}, &rec{}
	m.Add(a, "/x", Data)
	m.Add(a, "/y", Child)
	m.Add(b, "/x", Data)
	s := m.Summary()
	if s.Watchers != 2 || s.Paths != 2 || s.Total != 3 {
		t.Fatalf("summary %+v, want 2 watchers, 2 paths, 3 watches", s)
	}
	if got := m.ByWatcher()[a]; !reflect.DeepEqual(got, []string{"/x", "/y"}) {
		t.Fatalf("ByWatcher(a) = %v", got)
	}
	if got := len(m.ByPath()["/x"]); got != 2 {
		t.Fatalf("ByPath(/x) has %d watchers, want 2", got)
	}
}

// Package watch is the server-local watch registry. Watches are not
// replicated: each server keeps the watches of its own connections and fires
// them from the transactions it applies, in zxid order.
package watch

import (
	"sort"
	"sync"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// Watcher receives events. Event must not block: it queues.
type Watcher interface {
	Event(ev op.WatchEvent)
}

// Kind is the table a watch lives in.
type Kind uint8

const (
	// Data covers getData and exists watches (ZooKeeper keeps both in one
	// table; an exists watch on a missing node fires NodeCreated).
	Data Kind = iota
	Child
	Persistent
	Recursive
	numKinds
)

type set map[Watcher]struct{}

// Manager holds every watch of this server.
type Manager struct {
	mu     sync.Mutex
	tables [numKinds]map[string]set
	// byWatcher lets a departing connection drop its watches in
	// proportion to what it holds, not to the size of the registry.
	byWatcher map[Watcher]*[numKinds]map[string]struct{}
}

// New returns an empty registry.
func New() *Manager {
	m := &Manager{byWatcher: map[Watcher]*[numKinds]map[string]struct{}{}}
	for i := range m.tables {
		m.tables[i] = map[string]set{}
	}
	return m
}

// Add registers a watch. Adding the same watch twice is one watch.
func (m *Manager) Add(w Watcher, path string, k Kind) {
	m.mu.Lock()
	m.addLocked(w, path, k)
	m.mu.Unlock()
}

func (m *Manager) addLocked(w Watcher, path string, k Kind) {
	s := m.tables[k][path]
	if s == nil {
		s = set{}
		m.tables[k][path] = s
	}
	s[w] = struct{}{}
	own := m.byWatcher[w]
	if own == nil {
		own = new([numKinds]map[string]struct{})
		m.byWatcher[w] = own
	}
	if own[k] == nil {
		own[k] = map[string]struct{}{}
	}
	own[k][path] = struct{}{}
}

func (m *Manager) removeLocked(w Watcher, path string, k Kind) bool {
	s := m.tables[k][path]
	if _, ok := s[w]; !ok {
		return false
	}
	delete(s, w)
	if len(s) == 0 {
		delete(m.tables[k], path)
	}
	if own := m.byWatcher[w]; own != nil && own[k] != nil {
		delete(own[k], path)
	}
	return true
}

// Trigger delivers the events of one transaction, in order. Each watcher
// gets at most one notification per event even if several of its watches
// match, as ZooKeeper's WatchManager does.
func (m *Manager) Trigger(events []op.WatchEvent) {
	if len(events) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range events {
		m.triggerLocked(ev)
	}
}

func (m *Manager) triggerLocked(ev op.WatchEvent) {
	var fired set
	fire := func(w Watcher) {
		if fired == nil {
			fired = set{}
		}
		if _, dup := fired[w]; !dup {
			fired[w] = struct{}{}
			w.Event(ev)
		}
	}
	oneShot := func(k Kind) {
		for w := range m.tables[k][ev.Path] {
			m.removeLocked(w, ev.Path, k)
			fire(w)
		}
	}
	switch ev.Type {
	case znode.EventNodeCreated, znode.EventNodeDataChanged:
		oneShot(Data)
	case znode.EventNodeDeleted:
		oneShot(Data)
		oneShot(Child)
	case znode.EventNodeChildrenChanged:
		oneShot(Child)
	}
	for w := range m.tables[Persistent][ev.Path] {
		fire(w)
	}
	// Recursive watches never see NodeChildrenChanged (ZooKeeper 3.6+).
	if ev.Type != znode.EventNodeChildrenChanged && len(m.tables[Recursive]) > 0 {
		for p := ev.Path; p != ""; p = znode.Parent(p) {
			for w := range m.tables[Recursive][p] {
				fire(w)
			}
		}
	}
}

// kindsFor maps a WatcherType of checkWatches/removeWatches to tables.
func kindsFor(t znode.WatcherType) []Kind {
	switch t {
	case znode.WatcherChildren:
		return []Kind{Child}
	case znode.WatcherData:
		return []Kind{Data}
	case znode.WatcherPersistent:
		return []Kind{Persistent}
	case znode.WatcherPersistentRecursive:
		return []Kind{Recursive}
	case znode.WatcherAny:
		return []Kind{Data, Child, Persistent, Recursive}
	}
	return nil
}

// Remove drops w's watches of the given type on path and reports whether
// any existed (removeWatches answers NOWATCHER otherwise).
func (m *Manager) Remove(w Watcher, path string, t znode.WatcherType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	removed := false
	for _, k := range kindsFor(t) {
		if m.removeLocked(w, path, k) {
			removed = true
		}
	}
	return removed
}

// Has reports whether w holds a watch of the given type on path
// (checkWatches).
func (m *Manager) Has(w Watcher, path string, t znode.WatcherType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range kindsFor(t) {
		if _, ok := m.tables[k][path][w]; ok {
			return true
		}
	}
	return false
}

// RemoveAll drops every watch of w (its connection went away).
func (m *Manager) RemoveAll(w Watcher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	own := m.byWatcher[w]
	if own == nil {
		return
	}
	for k := range own {
		for path := range own[k] {
			m.removeLocked(w, path, Kind(k))
		}
	}
	delete(m.byWatcher, w)
}

// Locked runs fn while holding the registry lock, so a caller can read
// state and register a watch with no trigger in between.
func (m *Manager) Locked(fn func(add func(w Watcher, path string, k Kind))) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.addLocked)
}

// Summary is what the wchs four-letter word reports.
type Summary struct {
	Watchers int // connections holding at least one watch
	Paths    int
	Total    int
}

// Summary counts watches.
func (m *Manager) Summary() Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Summary
	paths := map[string]struct{}{}
	for k := range m.tables {
		for p, ws := range m.tables[k] {
			paths[p] = struct{}{}
			s.Total += len(ws)
		}
	}
	for _, own := range m.byWatcher {
		for k := range own {
			if len(own[k]) > 0 {
				s.Watchers++
				break
			}
		}
	}
	s.Paths = len(paths)
	return s
}

// ByWatcher returns each watcher's watched paths, sorted (wchc).
func (m *Manager) ByWatcher() map[Watcher][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[Watcher][]string{}
	for w, own := range m.byWatcher {
		seen := map[string]struct{}{}
		for k := range own {
			for p := range own[k] {
				seen[p] = struct{}{}
			}
		}
		if len(seen) == 0 {
			continue
		}
		paths := make([]string, 0, len(seen))
		for p := range seen {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		out[w] = paths
	}
	return out
}

// ByPath returns the watchers of each path (wchp).
func (m *Manager) ByPath() map[string][]Watcher {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]Watcher{}
	for k := range m.tables {
		for p, ws := range m.tables[k] {
			for w := range ws {
				out[p] = append(out[p], w)
			}
		}
	}
	return out
}

// Package plugin is the registry of compiled-in plugins. Each plugin package
// registers a factory from init() under a namespaced id such as
// "storage.bolt"; the server resolves config slots against it by kind and
// name. Registration fails fast: a bad build never starts.
package plugin

import (
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Kind is a plugin namespace.
type Kind string

const (
	KindConsensus Kind = "consensus"
	KindStorage   Kind = "storage"
	KindProtocol  Kind = "protocol"
)

// ID is "<kind>.<name>", lower case.
type ID string

// Kind returns the namespace part of the id.
func (id ID) Kind() Kind { k, _, _ := strings.Cut(string(id), "."); return Kind(k) }

// Name returns the name part of the id.
func (id ID) Name() string { _, n, _ := strings.Cut(string(id), "."); return n }

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)

// Factory is what every plugin registers. Kind-specific factories (see
// consensus.Factory, storage.Factory, protocol.Factory) add a typed New.
type Factory interface {
	ID() ID
	// DefaultConfig returns a pointer to a fresh config struct holding the
	// plugin's defaults; the user's settings are decoded over it.
	DefaultConfig() any
}

// Validator is implemented by config structs that can check themselves
// after decoding.
type Validator interface{ Validate() error }

// Settings are what the host passes to every plugin in code (as opposed to
// Config, which the user writes).
type Settings struct {
	Logger  *slog.Logger
	DataDir string // the server's data directory; plugins keep their files under it
	NodeID  uint64 // this server's id in the ensemble (1 on a single server)
}

var (
	mu        sync.RWMutex
	factories = map[ID]Factory{}
)

// Register adds a factory. It panics on a malformed or duplicate id, since
// that is a build error.
func Register(f Factory) {
	if f == nil {
		panic("plugin: Register of nil factory")
	}
	id := f.ID()
	if !idPattern.MatchString(string(id)) {
		panic(fmt.Sprintf("plugin: malformed id %q (want kind.name, lower case)", id))
	}
	if f.DefaultConfig() == nil {
		panic(fmt.Sprintf("plugin: %s: DefaultConfig returned nil", id))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[id]; dup {
		panic(fmt.Sprintf("plugin: duplicate registration of %s", id))
	}
	factories[id] = f
}

// Lookup finds the factory for kind and name. An unknown name is an error
// that lists the valid ones.
func Lookup(kind Kind, name string) (Factory, error) {
	mu.RLock()
	f, ok := factories[ID(string(kind)+"."+name)]
	mu.RUnlock()
	if ok {
		return f, nil
	}
	var valid []string
	for _, id := range List(kind) {
		valid = append(valid, id.Name())
	}
	return nil, fmt.Errorf("unknown %s type %q (valid: %s)", kind, name, strings.Join(valid, ", "))
}

// List returns the registered ids of a kind in sorted order; an empty kind
// lists everything.
func List(kind Kind) []ID {
	mu.RLock()
	defer mu.RUnlock()
	var ids []ID
	for id := range factories {
		if kind == "" || id.Kind() == kind {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

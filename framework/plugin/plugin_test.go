package plugin

import (
	"strings"
	"testing"
)

type fake struct {
	id  ID
	cfg any
}

func (f fake) ID() ID             { return f.id }
func (f fake) DefaultConfig() any { return f.cfg }

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	fn()
}

func TestRegistry(t *testing.T) {
	Register(fake{"storage.alpha", &struct{}{}})
	Register(fake{"storage.beta", &struct{}{}})
	Register(fake{"consensus.alpha", &struct{}{}})
	mustPanic(t, "duplicate id", func() { Register(fake{"storage.alpha", &struct{}{}}) })
	mustPanic(t, "malformed id", func() { Register(fake{"Storage-Alpha", &struct{}{}}) })
	mustPanic(t, "id without kind", func() { Register(fake{"alpha", &struct{}{}}) })
	mustPanic(t, "nil default config", func() { Register(fake{"storage.gamma", nil}) })
	mustPanic(t, "nil factory", func() { Register(nil) })

	f, err := Lookup(KindStorage, "beta")
	if err != nil || f.ID() != "storage.beta" {
		t.Fatalf("Lookup: %v %v", f, err)
	}
	_, err = Lookup(KindStorage, "rocks")
	if err == nil || !strings.Contains(err.Error(), `"rocks"`) || !strings.Contains(err.Error(), "alpha, beta") {
		t.Fatalf("unknown name: %v", err)
	}
	if got := List(KindStorage); len(got) != 2 || got[0] != "storage.alpha" || got[1] != "storage.beta" {
		t.Fatalf("List(storage) = %v", got)
	}
	if got := List(""); len(got) != 3 {
		t.Fatalf("List(all) = %v", got)
	}
	if id := ID("consensus.raft"); id.Kind() != KindConsensus || id.Name() != "raft" {
		t.Fatalf("ID parts %q %q", id.Kind(), id.Name())
	}
}

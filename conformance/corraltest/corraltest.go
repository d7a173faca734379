// Package corraltest starts real Corral servers for tests: real plugins,
// real storage on disk in a temp dir, a real TCP listener on a free port.
package corraltest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/server"
	_ "github.com/corral-dev/corral/plugins/all"
)

// Options tweak a test server. Zero values give a single server on the
// default plugins with fast timers.
type Options struct {
	DataDir   string         // reuse a directory (restart tests); default t.TempDir()
	Overrides map[string]any // config keys, as in corral.yaml (dotted or nested)
}

// Server is a running test server.
type Server struct {
	*server.Server
	Addr    string
	DataDir string
	t       testing.TB
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	over := map[string]any{
		"data_dir":                 dir,
		"tick_time":                "200ms",
		"container_check_interval": "100ms",
		"four_letter_words":        []any{"*"},
		"protocols":                []any{map[string]any{"type": "native", "listen": "127.0.0.1:0"}},
	}
	for k, v := range opts.Overrides {
		over[k] = v
	}
	cfg, err := config.Load(config.Source{Overrides: over})
	if err != nil {
		t.Fatalf("corraltest: config: %v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("CORRAL_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("corraltest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("corraltest: start: %v", err)
	}
	s := &Server{Server: srv, Addr: srv.Addrs()[0].String(), DataDir: dir, t: t}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		s.t.Logf("corraltest: shutdown: %v", err)
	}
}

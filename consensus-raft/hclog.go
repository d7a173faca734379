package consensusraft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// slogLogger is an hclog.Logger that writes to a *slog.Logger, so raft's
// output goes wherever the server's logs go. The minimum level is shared by
// every logger derived from the same root (With, Named), as hclog's are.
type slogLogger struct {
	l       *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32
}

func newSlogLogger(l *slog.Logger, level hclog.Level) *slogLogger {
	lv := new(atomic.Int32)
	lv.Store(int32(level))
	return &slogLogger{l: l, level: lv}
}

// slogLevel maps hclog levels onto slog's; trace sits below debug.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (s *slogLogger) enabled(l hclog.Level) bool {
	floor := hclog.Level(s.level.Load())
	if floor == hclog.Off || l < floor {
		return false
	}
	return s.l.Enabled(context.Background(), slogLevel(l))
}

// demoted lists raft messages logged above their weight. Peer RPC
// failures mean a peer is down or slow, which the leader handles with
// backoff: a warning, not an error of this server. The others are steps of
// normal operation (a lagging follower catching up, the transport closing).
var demoted = map[string]hclog.Level{
	"failed to appendEntries to":                        hclog.Warn,
	"failed to heartbeat to":                            hclog.Warn,
	"failed to make requestVote RPC":                    hclog.Warn,
	"failed to send snapshot to":                        hclog.Warn,
	"failed to install snapshot":                        hclog.Warn,
	"failed to get previous log":                        hclog.Info,
	"appendEntries rejected, sending older logs":        hclog.Info,
	"rejecting pre-vote request since we have a leader": hclog.Info,
}

// adjustLevel applies demoted, plus the one case that depends on the
// error: a leader looking for a compacted entry is about to send a
// snapshot instead, which raft logs as well.
func adjustLevel(level hclog.Level, msg string, args []any) hclog.Level {
	if l, ok := demoted[msg]; ok && l < level {
		return l
	}
	// At start-up there was no leader to lose: electing the first one is
	// routine, not a warning.
	if msg == "heartbeat timeout reached, starting election" && level > hclog.Info {
		for i := 0; i+1 < len(args); i += 2 {
			if k, _ := args[i].(string); k == "last-leader-id" {
				if fmt.Sprint(args[i+1]) == "" {
					return hclog.Info
				}
			}
		}
	}
	if (msg == "failed to get log" || msg == "failed to decode incoming command") && level > hclog.Debug {
		for i := 1; i < len(args); i += 2 {
			if err, ok := args[i].(error); ok && (errors.Is(err, raft.ErrLogNotFound) || errors.Is(err, raft.ErrTransportShutdown)) {
				return hclog.Debug
			}
		}
	}
	return level
}

func (s *slogLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel || level == hclog.Off {
		level = hclog.Info
	}
	level = adjustLevel(level, msg, args)
	if !s.enabled(level) {
		return
	}
	s.l.Log(context.Background(), slogLevel(level), msg, convertArgs(args)...)
}

// convertArgs renders hclog-specific values (hclog.Fmt, hclog.Hex...) so the
// slog handler prints them readably. The caller's slice is not modified.
func convertArgs(args []any) []any {
	out := args
	for i, a := range args {
		var r any
		switch v := a.(type) {
		case hclog.Format:
			if len(v) == 0 {
				continue
			}
			f, ok := v[0].(string)
			if !ok {
				continue
			}
			r = fmt.Sprintf(f, v[1:]...)
		case hclog.Hex:
			r = fmt.Sprintf("0x%x", int(v))
		case hclog.Octal:
			r = fmt.Sprintf("0%o", int(v))
		case hclog.Binary:
			r = fmt.Sprintf("0b%b", int(v))
		default:
			continue
		}
		if &out[0] == &args[0] {
			out = append([]any(nil), args...)
		}
		out[i] = r
	}
	return out
}

func (s *slogLogger) Trace(msg string, args ...any) { s.Log(hclog.Trace, msg, args...) }
func (s *slogLogger) Debug(msg string, args ...any) { s.Log(hclog.Debug, msg, args...) }
func (s *slogLogger) Info(msg string, args ...any)  { s.Log(hclog.Info, msg, args...) }
func (s *slogLogger) Warn(msg string, args ...any)  { s.Log(hclog.Warn, msg, args...) }
func (s *slogLogger) Error(msg string, args ...any) { s.Log(hclog.Error, msg, args...) }

func (s *slogLogger) IsTrace() bool { return s.enabled(hclog.Trace) }
func (s *slogLogger) IsDebug() bool { return s.enabled(hclog.Debug) }
func (s *slogLogger) IsInfo() bool  { return s.enabled(hclog.Info) }
func (s *slogLogger) IsWarn() bool  { return s.enabled(hclog.Warn) }
func (s *slogLogger) IsError() bool { return s.enabled(hclog.Error) }

func (s *slogLogger) ImpliedArgs() []any { return s.implied }

func (s *slogLogger) With(args ...any) hclog.Logger {
	c := *s
	c.implied = append(append([]any(nil), s.implied...), args...)
	c.l = s.l.With(convertArgs(args)...)
	return &c
}

func (s *slogLogger) Name() string { return s.name }

func (s *slogLogger) Named(name string) hclog.Logger {
	if s.name != "" {
		name = s.name + "." + name
	}
	return s.ResetNamed(name)
}

func (s *slogLogger) ResetNamed(name string) hclog.Logger {
	c := *s
	c.name = name
	// The root logger already carries the plugin's attributes; a name only
	// tells raft's components apart.
	c.l = s.l.With("component", name)
	return &c
}

func (s *slogLogger) SetLevel(l hclog.Level) { s.level.Store(int32(l)) }
func (s *slogLogger) GetLevel() hclog.Level  { return hclog.Level(s.level.Load()) }

func (s *slogLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(s.StandardWriter(opts), "", 0)
}

func (s *slogLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	infer := opts != nil && (opts.InferLevels || opts.InferLevelsWithTimestamp)
	return stdWriter{s: s, infer: infer}
}

// stdWriter logs each line written by a standard library logger.
type stdWriter struct {
	s     *slogLogger
	infer bool
}

func (w stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		msg := strings.TrimSpace(string(line))
		level := hclog.Info
		if w.infer {
			level, msg = inferLevel(msg)
		}
		w.s.Log(level, msg)
	}
	return len(p), nil
}

// inferLevel reads a "[LEVEL]" tag anywhere in a standard-logger line, as
// hclog's own adapter does.
func inferLevel(msg string) (hclog.Level, string) {
	for _, t := range []struct {
		tag   string
		level hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
	} {
		if i := strings.Index(msg, t.tag); i >= 0 {
			return t.level, strings.TrimSpace(msg[:i] + msg[i+len(t.tag):])
		}
	}
	return hclog.Info, msg
}

var _ hclog.Logger = (*slogLogger)(nil)

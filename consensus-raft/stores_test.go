package consensusraft

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

func TestLogEncodingRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, l := range []raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("payload")},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogConfiguration, Data: []byte{0, 1, 2}, AppendedAt: at},
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte("d"), Extensions: []byte("ext"), AppendedAt: at},
		{Index: 5, Term: 3, Type: raft.LogBarrier, Extensions: []byte("only-ext")},
	} {
		e := encodeLog(&l)
		if e.Index != l.Index || e.Term != l.Term || e.Kind != uint8(l.Type) {
			t.Fatalf("encode %d: header %+v", l.Index, e)
		}
		var got raft.Log
		if err := decodeLog(e, &got); err != nil {
			t.Fatalf("decode %d: %v", l.Index, err)
		}
		if got.Index != l.Index || got.Term != l.Term || got.Type != l.Type || !bytes.Equal(got.Data, l.Data) ||
			!bytes.Equal(got.Extensions, l.Extensions) || !got.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("round trip of %d: got %+v, want %+v", l.Index, got, l)
		}
	}
	// A command without metadata costs one header byte.
	if e := encodeLog(&raft.Log{Index: 9, Data: []byte("abc")}); len(e.Data) != 4 {
		t.Fatalf("plain command encodes to %d bytes, want 4", len(e.Data))
	}
}

func TestLogDecodingRejectsDamage(t *testing.T) {
	good := encodeLog(&raft.Log{Index: 7, Term: 1, Data: []byte("x"), Extensions: []byte("ext"), AppendedAt: time.Now()}).Data
	for name, data := range map[string][]byte{
		"empty":           {},
		"newer version":   {2 << 4},
		"unknown flag":    {1<<4 | 1<<3},
		"short timestamp": {1<<4 | flagAppendedAt, 1, 2, 3},
		"long extensions": {1<<4 | flagExtensions, 50, 'a'},
		"truncated":       good[:10],
	} {
		var l raft.Log
		if err := decodeLog(storage.LogEntry{Index: 7, Data: data}, &l); err == nil {
			t.Errorf("%s: decoded without error: %+v", name, l)
		}
	}
}

func storeLogs(t *testing.T, ls logStore, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: []byte{byte(i)}})
	}
	if err := ls.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

func bounds(t *testing.T, ls logStore) [2]uint64 {
	t.Helper()
	f, err := ls.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ls.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return [2]uint64{f, l}
}

func TestLogStore(t *testing.T) {
	ls := logStore{memstore.New()}
	var l raft.Log
	// raft compares with ==, so the sentinel itself must come back.
	if err := ls.GetLog(1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog on empty log: %v, want raft.ErrLogNotFound", err)
	}
	storeLogs(t, ls, 1, 10)
	if err := ls.GetLog(4, &l); err != nil || l.Index != 4 || !bytes.Equal(l.Data, []byte{4}) {
		t.Fatalf("GetLog(4) = %+v, %v", l, err)
	}
	// Suffix delete: a follower dropping conflicting entries.
	if err := ls.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if b := bounds(t, ls); b != [2]uint64{1, 7} {
		t.Fatalf("after suffix delete: %v", b)
	}
	storeLogs(t, ls, 8, 12) // appending resumes right behind the cut
	// Prefix delete: compaction behind a snapshot.
	if err := ls.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	if b := bounds(t, ls); b != [2]uint64{6, 12} {
		t.Fatalf("after prefix delete: %v", b)
	}
	if err := ls.GetLog(5, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(5) after compaction: %v", err)
	}
	// Ranges outside the log are no-ops; a hole in the middle is refused.
	if err := ls.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if err := ls.DeleteRange(8, 9); err == nil {
		t.Fatal("deleting from the middle succeeded")
	}
	if b := bounds(t, ls); b != [2]uint64{6, 12} {
		t.Fatalf("after refused deletes: %v", b)
	}
	// The whole log, as raft does after installing a snapshot on a
	// monotonic store; the log then resumes behind the snapshot.
	if !ls.IsMonotonic() {
		t.Fatal("log store must be monotonic: the storage contract forbids gaps")
	}
	if err := ls.DeleteRange(6, 12); err != nil {
		t.Fatal(err)
	}
	if b := bounds(t, ls); b != [2]uint64{0, 0} {
		t.Fatalf("after deleting everything: %v", b)
	}
	storeLogs(t, ls, 100, 101)
	if b := bounds(t, ls); b != [2]uint64{100, 101} {
		t.Fatalf("after resuming at 100: %v", b)
	}
}

func TestStableStore(t *testing.T) {
	store := memstore.New()
	ss := stableStore{store}
	// raft tells a fresh store from a broken one by this exact text.
	if _, err := ss.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := ss.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64 missing: %v", err)
	}
	ls, snaps := logStore{store}, snapshotStore{store.Snapshots()}
	if has, err := raft.HasExistingState(ls, ss, snaps); err != nil || has {
		t.Fatalf("HasExistingState on a new store = %v, %v", has, err)
	}
	if err := ss.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if v, err := ss.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64 = %d, %v", v, err)
	}
	if err := ss.Set([]byte("LastVoteCand"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if v, err := ss.Get([]byte("LastVoteCand")); err != nil || string(v) != "3" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if has, err := raft.HasExistingState(ls, ss, snaps); err != nil || !has {
		t.Fatalf("HasExistingState with a term = %v, %v", has, err)
	}
	// Values are namespaced, so other users of the store's state cannot
	// collide with raft's keys.
	if _, err := store.State("CurrentTerm"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("raft key stored without its prefix: %v", err)
	}
	if err := store.Write(t.Context(), storage.Batch{State: map[string][]byte{stateKeyPrefix + "Bad": {1, 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.GetUint64([]byte("Bad")); err == nil {
		t.Fatal("GetUint64 of a 2-byte value succeeded")
	}
}

func TestSnapshotStore(t *testing.T) {
	ss := snapshotStore{memstore.New().Snapshots()}
	cfg := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "1", Address: "127.0.0.1:1"},
		{Suffrage: raft.Nonvoter, ID: "2", Address: "127.0.0.1:2"},
	}}
	if _, err := ss.Create(0, 10, 2, cfg, 3, nil); err == nil {
		t.Fatal("Create accepted snapshot version 0")
	}
	sink, err := ss.Create(raft.SnapshotVersionMax, 10, 2, cfg, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state bytes")); err != nil {
		t.Fatal(err)
	}
	// Persist closes the sink and raft closes it again.
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	list, err := ss.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	m := list[0]
	if m.ID != sink.ID() || m.Index != 10 || m.Term != 2 || m.ConfigurationIndex != 3 || m.Size != 11 ||
		m.Version != raft.SnapshotVersionMax || !slices.Equal(m.Configuration.Servers, cfg.Servers) {
		t.Fatalf("List meta = %+v", m)
	}
	om, rc, err := ss.Open(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(body) != "state bytes" || om.Index != 10 {
		t.Fatalf("Open = %+v %q %v", om, body, err)
	}
	if _, _, err := ss.Open("nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open unknown: %v", err)
	}
}

func TestDecodeConfigurationDoesNotPanic(t *testing.T) {
	if _, err := decodeConfiguration([]byte{0xc1, 0xff, 0x00}); err == nil {
		t.Fatal("garbage membership decoded")
	}
	if c, err := decodeConfiguration(nil); err != nil || len(c.Servers) != 0 {
		t.Fatalf("empty membership: %+v, %v", c, err)
	}
}

func TestSlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	root := newSlogLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), hclog.Debug)
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			m := map[string]any{}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("bad line %q: %v", l, err)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}

	l := root.Named("raft").With("peer", 2)
	l.Trace("trace is below the floor")
	l.Debug("debug", "n", hclog.Fmt("%d/%d", 1, 2))
	l.Error("failed to heartbeat to", "error", errors.New("refused"))
	l.Error("failed to get log", "index", 1, "error", raft.ErrLogNotFound)
	l.Error("failed to get log", "index", 1, "error", errors.New("disk on fire"))
	got := lines()
	want := []struct{ level, msg string }{
		{"DEBUG", "debug"}, {"WARN", "failed to heartbeat to"}, {"DEBUG", "failed to get log"}, {"ERROR", "failed to get log"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i]["level"] != w.level || got[i]["msg"] != w.msg || got[i]["component"] != "raft" || got[i]["peer"] != float64(2) {
			t.Errorf("line %d = %v, want %s %q with component and peer", i, got[i], w.level, w.msg)
		}
	}
	if got[0]["n"] != "1/2" {
		t.Errorf("hclog.Fmt rendered as %v", got[0]["n"])
	}

	// The level floor is shared with derived loggers.
	root.SetLevel(hclog.Warn)
	if l.IsInfo() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Fatal("SetLevel on the root did not reach a derived logger")
	}
	l.Info("dropped")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from the standard library")
	got = lines()
	if len(got) != 1 || got[0]["level"] != "ERROR" || got[0]["msg"] != "from the standard library" {
		t.Fatalf("after SetLevel(Warn): %v", got)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/corral-dev/corral/conformance/corraltest"
)

// seeded is a data directory left by a stopped server: nodes written, a
// snapshot taken, then one more node written (so in the log only).
type seeded struct {
	dir  string
	args []string // flags that select the directory and engine
}

func engineArgs(t *testing.T, dir, engine string) []string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "corral.yaml")
	if err := os.WriteFile(cfg, []byte("storage:\n  type: "+engine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", cfg, "--data-dir", dir}
}

func startServer(t *testing.T, dir, engine string) *corraltest.Server {
	t.Helper()
	return corraltest.Start(t, corraltest.Options{DataDir: dir, Overrides: map[string]any{
		"storage": map[string]any{"type": engine},
		// These tests control exactly which snapshots exist.
		"snapshot_on_shutdown": false,
	}})
}

func connect(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // Close is idempotent; this stops retries after a failure
	return c
}

var binData = []byte{0, 1, 2, 0xfe, 0xff}

func seed(t *testing.T, engine string) seeded {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dir, engine)
	c := connect(t, srv.Addr)
	acl := zk.WorldACL(zk.PermAll)
	for _, n := range []struct {
		path  string
		data  []byte
		flags int32
	}{
		{"/app", []byte("config v1"), 0},
		{"/app/bin", binData, 0},
		{"/app/empty", []byte{}, 0},
		{"/app/null", nil, 0},
		{"/app/eph", []byte("mine"), zk.FlagEphemeral},
	} {
		if _, err := c.Create(n.path, n.data, n.flags, acl); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.SnapshotNow(ctx); err != nil {
		t.Fatalf("SnapshotNow: %v", err)
	}
	if _, err := c.Create("/after", []byte("log only"), 0, acl); err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Stop()
	return seeded{dir: dir, args: engineArgs(t, dir, engine)}
}

func runData(t *testing.T, sub string, args []string, extra ...string) (int, string, string) {
	t.Helper()
	return runCmd(append(append([]string{"data", sub}, args...), extra...)...)
}

var snapRow = regexp.MustCompile(`(?m)^  ([0-9]+-([0-9]+)-[0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s`)

// newestSnapshot returns the id and index of the first row of inspect's
// snapshot table.
func newestSnapshot(t *testing.T, inspectOut string) (id string) {
	t.Helper()
	m := snapRow.FindStringSubmatch(inspectOut)
	if m == nil {
		t.Fatalf("no snapshot row in inspect output:\n%s", inspectOut)
	}
	if m[2] != m[3] {
		t.Fatalf("snapshot %s listed with index %s", m[1], m[3])
	}
	return m[1]
}

func wantMatch(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Fatalf("output does not match %q:\n%s", p, out)
		}
	}
}

type dumpHeader struct {
	Snapshot struct {
		ID    string `json:"id"`
		Index uint64 `json:"index"`
		Term  uint64 `json:"term"`
	} `json:"snapshot"`
	Zxid     string `json:"zxid"`
	Sessions []struct {
		ID string `json:"id"`
	} `json:"sessions"`
}

func TestDataInspectVerifyDump(t *testing.T) {
	for _, engine := range []string{"bolt", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			s := seed(t, engine)

			code, out, errOut := runData(t, "inspect", s.args)
			if code != 0 {
				t.Fatalf("inspect: exit %d\n%s\n%s", code, out, errOut)
			}
			wantMatch(t, out,
				`storage:\s+storage\.`+engine+`\n`,
				`path:\s+`+regexp.QuoteMeta(filepath.Join(s.dir, engine))+`\n`,
				`format version:\s+1\n`,
				`log:\s+first [0-9]+, last [0-9]+ \([0-9]+ entries\)`,
				`"raft/CurrentTerm":\s+[1-9][0-9]* \(8 bytes, big-endian uint64\)`,
				`snapshots:\s+1\n`,
				`disk size:\s+[1-9][0-9]* bytes`,
			)
			id := newestSnapshot(t, out)

			code, out, errOut = runData(t, "verify", s.args)
			if code != 0 || !strings.HasSuffix(out, "\nOK\n") {
				t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
			}
			wantMatch(t, out, `log: [0-9]+ entries`, `state: [1-9][0-9]* keys: ok`,
				`snapshot `+id+`: index [0-9]+, term [0-9]+, [0-9]+ bytes, zxid 0x[0-9a-f]+, 1 sessions, [0-9]+ nodes: ok`)

			code, out, errOut = runData(t, "dump", s.args)
			if code != 0 {
				t.Fatalf("dump: exit %d\n%s", code, errOut)
			}
			sc := bufio.NewScanner(strings.NewReader(out))
			if !sc.Scan() {
				t.Fatal("empty dump")
			}
			var hdr dumpHeader
			if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Snapshot.ID != id || len(hdr.Sessions) != 1 {
				t.Fatalf("header line %s: %+v, %v", sc.Text(), hdr, err)
			}
			nodes := map[string]jsonNode{}
			for sc.Scan() {
				var n jsonNode
				if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				nodes[n.Path] = n
			}
			checkDumpedNodes(t, nodes, hdr)

			// The same content as one document.
			code, out, errOut = runData(t, "dump", s.args, "--format", "json")
			if code != 0 {
				t.Fatalf("dump --format json: exit %d\n%s", code, errOut)
			}
			var doc struct {
				dumpHeader
				Nodes []jsonNode `json:"nodes"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("dump --format json is not one JSON document: %v\n%s", err, out)
			}
			if doc.Snapshot.ID != id || len(doc.Nodes) != len(nodes) {
				t.Fatalf("document: snapshot %q, %d nodes; want %q, %d", doc.Snapshot.ID, len(doc.Nodes), id, len(nodes))
			}

			code, out, errOut = runData(t, "dump", s.args, "--snapshot", id)
			if code != 0 || strings.Count(out, "\n") != len(nodes)+1 {
				t.Fatalf("dump --snapshot %s: exit %d, %d lines\n%s", id, code, strings.Count(out, "\n"), errOut)
			}
			if code, _, errOut = runData(t, "dump", s.args, "--snapshot", "1-2-3"); code != 1 || !strings.Contains(errOut, `no snapshot "1-2-3"`) {
				t.Fatalf("dump of a missing snapshot: exit %d, %s", code, errOut)
			}
		})
	}
}

func checkDumpedNodes(t *testing.T, nodes map[string]jsonNode, hdr dumpHeader) {
	t.Helper()
	text := func(path string) string {
		n, ok := nodes[path]
		if !ok {
			t.Fatalf("%s not dumped (have %d nodes)", path, len(nodes))
		}
		var s string
		if err := json.Unmarshal(n.Data, &s); err != nil {
			t.Fatalf("%s: no text data: %+v: %v", path, n, err)
		}
		return s
	}
	if got := text("/app"); got != "config v1" {
		t.Fatalf("/app data %q", got)
	}
	if got := text("/app/empty"); got != "" {
		t.Fatalf("/app/empty data %q", got)
	}
	if null := nodes["/app/null"]; string(null.Data) != "null" || null.DataBase64 != "" {
		t.Fatalf("/app/null: %+v", null)
	}
	bin := nodes["/app/bin"]
	if bin.Data != nil || bin.DataBase64 != base64.StdEncoding.EncodeToString(binData) || bin.Stat.DataLength != int32(len(binData)) {
		t.Fatalf("/app/bin: %+v", bin)
	}
	app := nodes["/app"]
	if app.Kind != "persistent" || app.Stat.NumChildren != 4 || app.Stat.Czxid == 0 || app.Stat.Version != 0 ||
		len(app.ACL) != 1 || app.ACL[0] != (jsonACL{Perms: 31, Scheme: "world", ID: "anyone"}) {
		t.Fatalf("/app: %+v", app)
	}
	eph := nodes["/app/eph"]
	if eph.Kind != "ephemeral" || eph.Stat.EphemeralOwner == 0 || hdr.Sessions[0].ID != fmt.Sprintf("0x%x", uint64(eph.Stat.EphemeralOwner)) {
		t.Fatalf("/app/eph: %+v (sessions %+v)", eph, hdr.Sessions)
	}
	if _, ok := nodes["/zookeeper"]; !ok {
		t.Fatal("/zookeeper not dumped")
	}
	if _, ok := nodes["/after"]; ok {
		t.Fatal("/after, written after the snapshot, is in the dump")
	}
}

// flipByte flips one byte of a file, as a bad disk would.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestDataVerifyDetectsDamage(t *testing.T) {
	s := seed(t, "bolt")
	files, _ := filepath.Glob(filepath.Join(s.dir, "bolt", "snapshots", "*.snap"))
	if len(files) != 1 {
		t.Fatalf("snapshot files: %v", files)
	}
	path := files[0]
	id := strings.TrimSuffix(filepath.Base(path), ".snap")
	st, _ := os.Stat(path)

	// A byte of the body: the header still lists it, the checksum fails.
	mid := st.Size() / 2
	flipByte(t, path, mid)
	code, out, errOut := runData(t, "verify", s.args)
	if code != 1 || !strings.Contains(out, "CORRUPT: snapshot "+id+": ") || !strings.Contains(out, path) {
		t.Fatalf("verify with a flipped body byte: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out, "\nOK\n") {
		t.Fatalf("verify said OK:\n%s", out)
	}
	if code, _, errOut := runData(t, "dump", s.args); code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("dump of a damaged snapshot: exit %d, %s", code, errOut)
	}
	out2 := filepath.Join(t.TempDir(), "x.snap")
	if code, _, errOut := runData(t, "export-snapshot", s.args, "--out", out2); code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("export of a damaged snapshot: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(out2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed export left %s: %v", out2, err)
	}
	flipByte(t, path, mid) // repaired
	if code, out, _ := runData(t, "verify", s.args); code != 0 {
		t.Fatalf("verify after repair: exit %d\n%s", code, out)
	}

	// A byte of the header: the store skips the file, verify names it.
	flipByte(t, path, 20)
	code, out, errOut = runData(t, "verify", s.args)
	if code != 1 || !strings.Contains(out, "CORRUPT: snapshot: ") || !strings.Contains(out, path) {
		t.Fatalf("verify with a flipped header byte: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runData(t, "inspect", s.args)
	if code != 0 || !strings.Contains(out, "damaged:") || !strings.Contains(out, path) {
		t.Fatalf("inspect does not show the damaged snapshot: exit %d\n%s", code, out)
	}
}

func TestDataRefusesMissingDirAndRunningServer(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, sub := range []string{"inspect", "verify", "dump"} {
		code, _, errOut := runData(t, sub, []string{"--data-dir", missing})
		if code == 0 || !strings.Contains(errOut, missing) {
			t.Fatalf("%s on a missing directory: exit %d, %s", sub, code, errOut)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only command created %s", missing)
	}
	// An existing directory without a store: opening creates an empty one,
	// which the tools point out.
	bare := t.TempDir()
	if code, out, _ := runData(t, "inspect", []string{"--data-dir", bare}); code != 0 || !strings.Contains(out, "the store is empty") {
		t.Fatalf("inspect of an empty store: exit %d\n%s", code, out)
	}
	if code, out, errOut := runData(t, "verify", []string{"--data-dir", bare}); code != 0 || out != "log: empty\nstate: 0 keys: ok\nsnapshots: none\nOK\n" ||
		!strings.Contains(errOut, "the store is empty") {
		t.Fatalf("verify of an empty store: exit %d\n%s\n%s", code, out, errOut)
	}

	dir := filepath.Join(t.TempDir(), "data")
	startServer(t, dir, "bolt")
	code, _, errOut := runData(t, "verify", []string{"--data-dir", dir})
	if code != 2 || !strings.Contains(errOut, "locked") {
		t.Fatalf("verify under a running server: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCmd("data", "frobnicate"); code != 2 {
		t.Fatalf("unknown data command: exit %d", code)
	}
}

// A snapshot exported from one server starts another, here on the other
// storage engine, which then takes writes and verifies clean.
func TestDataExportImport(t *testing.T) {
	s := seed(t, "bolt")
	file := filepath.Join(t.TempDir(), "backup.snap")
	code, out, errOut := runData(t, "export-snapshot", s.args, "--out", file)
	if code != 0 || !strings.Contains(out, "exported snapshot") {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := runData(t, "export-snapshot", s.args, "--out", file); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("export over an existing file: exit %d, %s", code, errOut)
	}

	// A damaged file is refused before the data directory is touched.
	bad := filepath.Join(t.TempDir(), "bad.snap")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	os.WriteFile(bad, raw, 0o600)
	untouched := filepath.Join(t.TempDir(), "untouched")
	if code, _, errOut := runData(t, "import-snapshot", []string{"--data-dir", untouched}, "--in", bad); code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("import of a damaged file: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(untouched); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused import created the data directory")
	}

	dir2 := filepath.Join(t.TempDir(), "restored")
	args2 := engineArgs(t, dir2, "pebble")
	code, out, errOut = runData(t, "import-snapshot", args2, "--in", file)
	if code != 0 || !strings.Contains(out, "storage.pebble") {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := runData(t, "import-snapshot", args2, "--in", file); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("second import: exit %d, %s", code, errOut)
	}
	_, inspectOut, _ := runData(t, "inspect", args2)
	wantMatch(t, inspectOut, `log:\s+empty`, `snapshots:\s+1\n`)

	srv := startServer(t, dir2, "pebble")
	c := connect(t, srv.Addr)
	if data, _, err := c.Get("/app"); err != nil || string(data) != "config v1" {
		t.Fatalf("/app after import: %q, %v", data, err)
	}
	if data, _, err := c.Get("/app/bin"); err != nil || !bytes.Equal(data, binData) {
		t.Fatalf("/app/bin after import: %v, %v", data, err)
	}
	if _, _, err := c.Get("/after"); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("/after was not in the snapshot, yet: %v", err)
	}
	if _, err := c.Create("/post-import", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("write after import: %v", err)
	}
	c.Close()
	srv.Stop()
	// The new entries follow the snapshot in a higher term.
	code, out, errOut = runData(t, "verify", args2)
	if code != 0 {
		t.Fatalf("verify after import and writes: exit %d\n%s\n%s", code, out, errOut)
	}
}

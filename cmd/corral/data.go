package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/server"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/snapfile"
	"github.com/corral-dev/corral/framework/tree"
)

// The data subcommands work offline on the data directory of a stopped
// server. They open it through the configured storage plugin, with the
// same flags and config as `corral serve`, so whatever engine and path the
// server uses is what they read. A running server holds the store's lock:
// the tools then fail rather than read under it.

const dataUsage = `usage: corral data COMMAND [--config FILE] [--zoo-cfg FILE] [--data-dir DIR] [flags]
  inspect                          storage engine and format, log bounds, state keys, snapshots, disk size
  verify                           read every log entry, state value and snapshot; exit 1 on corruption
  dump [--snapshot ID] [--format jsonl|json]
                                   the newest (or given) snapshot's tree as JSON
  export-snapshot --out FILE [--snapshot ID]
                                   copy the newest (or given) snapshot to a standalone file
  import-snapshot --in FILE        install an exported snapshot into an empty data directory
The server must be stopped. Exit status: 0 ok, 1 failure or corruption found, 2 usage error
or (verify) the store could not be checked.
`

func dataCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dataUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "inspect":
		return dataInspect(args, stdout, stderr)
	case "verify":
		return dataVerify(args, stdout, stderr)
	case "dump":
		return dataDump(args, stdout, stderr)
	case "export-snapshot":
		return dataExport(args, stdout, stderr)
	case "import-snapshot":
		return dataImport(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dataUsage)
		return 0
	}
	fmt.Fprintf(stderr, "corral data: unknown command %q\n", sub)
	fmt.Fprint(stderr, dataUsage)
	return 2
}

// dataFlags parses a subcommand's flags and loads the config; extra
// registers the subcommand's own flags. ok is false after a usage error,
// which has been reported.
func dataFlags(sub string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*config.Config, bool) {
	fs := flag.NewFlagSet("corral data "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral data %s: unexpected argument %q\n", sub, fs.Arg(0))
		return nil, false
	}
	cfg, err := lf.load(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral: config: %v\n", err)
		return nil, false
	}
	return cfg, true
}

// openStore opens the configured store. The storage contract has no
// read-only mode and plugins create a missing store, so unless create is
// set the data directory must already exist: a mistyped path must not turn
// into a fresh, empty store that inspects as healthy.
func openStore(cfg *config.Config, stderr io.Writer, create bool) (storage.Store, error) {
	if !create {
		st, err := os.Stat(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("data directory %s is not a directory", cfg.DataDir)
		}
	}
	sf, ok := cfg.Storage.Factory.(storage.Factory)
	if !ok {
		return nil, fmt.Errorf("storage.%s is not a storage plugin", cfg.Storage.Type)
	}
	log := newLogger(cfg.Log, stderr)
	set := plugin.Settings{Logger: log.With("plugin", "storage."+cfg.Storage.Type), DataDir: cfg.DataDir, NodeID: cfg.NodeID}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := sf.New(ctx, set, cfg.Storage.Config)
	if err != nil {
		return nil, fmt.Errorf("storage (%s): %w", cfg.Storage.Type, err)
	}
	return st, nil
}

// Optional extras the storage plugins have beyond the contract; the tools
// show them when present.
type (
	pather          interface{ Path() string }
	snapshotDirer   interface{ SnapshotDir() string }
	formatVersioner interface{ FormatVersion() uint32 }
)

func closeStore(st storage.Store, stderr io.Writer) {
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
	}
}

// isCorrupt tells damage apart from failures to read (a lock, a
// permission): every layer marks damage with its own sentinel.
func isCorrupt(err error) bool {
	return errors.Is(err, storage.ErrCorrupt) || errors.Is(err, tree.ErrBadSnapshot) || errors.Is(err, server.ErrBadSnapshot)
}

// snapContent is what reading a snapshot body found.
type snapContent struct {
	meta storage.SnapshotMeta
	hdr  server.SnapshotHeader
	sum  tree.SnapshotSummary
}

// readSnapshotBody decodes a snapshot body (state-machine header, then the
// tree node by node) and reads it to the end, where the store checks its
// checksum. When both fail, the store's error is the one returned: a
// damaged body explains a parse error, not the other way round.
func readSnapshotBody(meta storage.SnapshotMeta, rc io.ReadCloser, onHeader func(server.SnapshotHeader) error, fn func(tree.NodeInfo) error) (snapContent, error) {
	defer rc.Close()
	c := snapContent{meta: meta}
	br := bufio.NewReaderSize(rc, 64<<10)
	var err error
	c.hdr, err = server.ReadSnapshotHeader(br)
	if err == nil && onHeader != nil {
		err = onHeader(c.hdr)
	}
	if err == nil {
		if fn == nil {
			fn = func(tree.NodeInfo) error { return nil }
		}
		c.sum, err = tree.ReadSnapshot(br, fn)
	}
	if _, derr := io.Copy(io.Discard, br); derr != nil {
		return c, derr
	}
	return c, err
}

// pickSnapshot returns the snapshot to read: id, or the newest.
func pickSnapshot(ss storage.SnapshotStore, id string) (storage.SnapshotMeta, error) {
	list, err := ss.List()
	if err != nil {
		return storage.SnapshotMeta{}, err
	}
	if id == "" {
		if len(list) == 0 {
			return storage.SnapshotMeta{}, errors.New("the store holds no snapshot")
		}
		return list[0], nil
	}
	for _, m := range list {
		if m.ID == id {
			return m, nil
		}
	}
	return storage.SnapshotMeta{}, fmt.Errorf("no snapshot %q (see corral data inspect)", id)
}

// ---- inspect ----

func dataInspect(args []string, stdout, stderr io.Writer) int {
	cfg, ok := dataFlags("inspect", args, stderr, nil)
	if !ok {
		return 2
	}
	st, err := openStore(cfg, stderr, false)
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	defer closeStore(st, stderr)
	if err := inspect(st, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "corral: inspect: %v\n", err)
		return 1
	}
	return 0
}

func inspect(st storage.Store, cfg *config.Config, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	line("data dir", "%s", cfg.DataDir)
	line("storage", "storage.%s", cfg.Storage.Type)
	if p, ok := st.(pather); ok {
		line("path", "%s", p.Path())
	}
	if v, ok := st.(formatVersioner); ok {
		line("format version", "%d", v.FormatVersion())
	}
	first, err := st.FirstIndex()
	if err != nil {
		return err
	}
	last, err := st.LastIndex()
	if err != nil {
		return err
	}
	if last == 0 {
		line("log", "empty")
	} else {
		line("log", "first %d, last %d (%d entries)", first, last, last-first+1)
		if e, err := st.Entry(last); err == nil {
			line("last term", "%d", e.Term)
		} else {
			line("last term", "unreadable: %v", err)
		}
	}
	keys, listed, err := stateKeys(st)
	if err != nil {
		return err
	}
	switch {
	case len(keys) == 0 && listed:
		line("state", "none")
	case len(keys) == 0:
		line("state", "none of the known consensus keys (storage.%s cannot list its keys)", cfg.Storage.Type)
	default:
		line("state", "%d keys", len(keys))
		for _, k := range keys {
			v, err := st.State(k)
			if err != nil {
				line("  "+strconv.Quote(k), "unreadable: %v", err)
				continue
			}
			line("  "+strconv.Quote(k), "%s", describeValue(v))
		}
	}
	if sz, ok := st.(storage.Sizer); ok {
		n, err := sz.DiskSize()
		if err != nil {
			return err
		}
		line("disk size", "%d bytes", n)
	}
	ss := st.Snapshots()
	snaps, err := ss.List()
	if err != nil {
		return err
	}
	if d, ok := ss.(snapshotDirer); ok {
		line("snapshot dir", "%s", d.SnapshotDir())
	} else if d, ok := st.(snapshotDirer); ok {
		line("snapshot dir", "%s", d.SnapshotDir())
	}
	line("snapshots", "%d", len(snaps))
	if c, ok := ss.(storage.SnapshotChecker); ok {
		bad, err := c.Damaged()
		if err != nil {
			return err
		}
		for _, e := range bad {
			line("  damaged", "%v", e)
		}
	}
	if what, err := someContent(st); err == nil && what == "" {
		line("note", "%s", emptyNote)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(snaps) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tINDEX\tTERM\tSIZE\tMEMBERSHIP\tZXID\tSESSIONS")
		for _, m := range snaps {
			zxid, sessions := "?", "?"
			if _, rc, err := ss.Open(m.ID); err == nil {
				// Only the header: the body is checked by verify.
				if h, err := server.ReadSnapshotHeader(rc); err == nil {
					zxid, sessions = fmt.Sprintf("0x%x", uint64(h.Zxid)), strconv.Itoa(len(h.Sessions))
				}
				rc.Close()
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d bytes at index %d\t%s\t%s\n",
				m.ID, m.Index, m.Term, m.Size, len(m.Membership), m.MembershipIndex, zxid, sessions)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// knownStateKeys are probed when a store cannot list its keys: the
// stable values consensus-raft keeps (hashicorp/raft's, under "raft/").
var knownStateKeys = []string{"raft/CurrentTerm", "raft/LastVoteTerm", "raft/LastVoteCand"}

// stateKeys lists the store's state keys; listed is false when the store
// cannot list them and only the known keys were probed.
func stateKeys(st storage.Store) (keys []string, listed bool, err error) {
	if l, ok := st.(storage.StateLister); ok {
		keys, err := l.StateKeys()
		return keys, true, err
	}
	for _, k := range knownStateKeys {
		_, err := st.State(k)
		switch {
		case err == nil, isCorrupt(err):
			keys = append(keys, k)
		case !errors.Is(err, storage.ErrNotFound):
			return nil, false, err
		}
	}
	return keys, false, nil
}

// describeValue renders an opaque state value: what it most likely is,
// then its bytes.
func describeValue(v []byte) string {
	switch {
	case len(v) == 8:
		return fmt.Sprintf("%d (8 bytes, big-endian uint64)", binary.BigEndian.Uint64(v))
	case printable(v):
		return fmt.Sprintf("%q (%d bytes)", v, len(v))
	default:
		return fmt.Sprintf("%x (%d bytes)", v, len(v))
	}
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// ---- verify ----

// corruption locates damage found by verify.
type corruption struct {
	where string
	err   error
}

func (c *corruption) Error() string { return c.where + ": " + c.err.Error() }

func dataVerify(args []string, stdout, stderr io.Writer) int {
	cfg, ok := dataFlags("verify", args, stderr, nil)
	if !ok {
		return 2
	}
	st, err := openStore(cfg, stderr, false)
	if err != nil {
		if isCorrupt(err) {
			fmt.Fprintf(stdout, "CORRUPT: opening the store: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "corral: verify: %v\n", err)
		return 2
	}
	defer closeStore(st, stderr)
	err = verify(st, stdout)
	var c *corruption
	switch {
	case err == nil:
		if what, err := someContent(st); err == nil && what == "" {
			fmt.Fprintln(stderr, "corral: verify: warning:", emptyNote)
		}
		fmt.Fprintln(stdout, "OK")
		return 0
	case errors.As(err, &c):
		fmt.Fprintf(stdout, "CORRUPT: %v\n", c)
		return 1
	default:
		fmt.Fprintf(stderr, "corral: verify: %v\n", err)
		return 2
	}
}

// verifyChunk bounds the bytes of log data read at once.
const verifyChunk = 16 << 20

// verify reads everything the store holds and returns the first damage
// found as a *corruption, or another error when it could not read on.
func verify(st storage.Store, w io.Writer) error {
	ss := st.Snapshots()
	snaps, err := ss.List()
	if err != nil {
		if isCorrupt(err) {
			return &corruption{"snapshot list", err}
		}
		return err
	}
	if c, ok := ss.(storage.SnapshotChecker); ok {
		bad, err := c.Damaged()
		if err != nil {
			return err
		}
		if len(bad) > 0 {
			return &corruption{"snapshot", bad[0]}
		}
	}

	first, err := st.FirstIndex()
	if err != nil {
		return err
	}
	last, err := st.LastIndex()
	if err != nil {
		return err
	}
	var snapIndex, snapTerm uint64
	if len(snaps) > 0 {
		snapIndex, snapTerm = snaps[0].Index, snaps[0].Term
	}
	// What the newest snapshot does not cover must be in the log, or the
	// state in between is lost.
	if last != 0 && first > snapIndex+1 {
		return &corruption{"log", fmt.Errorf("starts at index %d, but the newest snapshot ends at %d: entries %d..%d are missing",
			first, snapIndex, snapIndex+1, first-1)}
	}
	var prevTerm, data uint64
	for next := first; last != 0 && next <= last; {
		ents, err := st.Entries(next, last+1, verifyChunk)
		if err != nil {
			if isCorrupt(err) || errors.Is(err, storage.ErrNotFound) {
				return &corruption{fmt.Sprintf("log (reading from index %d)", next), err}
			}
			return err
		}
		if len(ents) == 0 {
			return fmt.Errorf("storage returned no entries from index %d (contract: at least one)", next)
		}
		for _, e := range ents {
			if e.Index != next {
				return &corruption{fmt.Sprintf("log entry %d", next), fmt.Errorf("store returned index %d", e.Index)}
			}
			// Terms never decrease along a raft log, nor fall below the
			// term of the snapshot the entries follow.
			if e.Term < prevTerm {
				return &corruption{fmt.Sprintf("log entry %d", e.Index), fmt.Errorf("term %d after term %d", e.Term, prevTerm)}
			}
			if e.Index > snapIndex && e.Term < snapTerm {
				return &corruption{fmt.Sprintf("log entry %d", e.Index),
					fmt.Errorf("term %d is below the term %d of the snapshot at index %d", e.Term, snapTerm, snapIndex)}
			}
			prevTerm = e.Term
			data += uint64(len(e.Data))
			next++
		}
	}
	if last == 0 {
		fmt.Fprintln(w, "log: empty")
	} else {
		fmt.Fprintf(w, "log: %d entries [%d, %d], %d bytes of data: ok\n", last-first+1, first, last, data)
	}

	keys, listed, err := stateKeys(st)
	if err != nil {
		if isCorrupt(err) {
			return &corruption{"state", err}
		}
		return err
	}
	for _, k := range keys {
		if _, err := st.State(k); err != nil {
			if isCorrupt(err) {
				return &corruption{fmt.Sprintf("state %q", k), err}
			}
			return err
		}
	}
	what := "keys"
	if !listed {
		what = "known consensus keys (the store cannot list its keys)"
	}
	fmt.Fprintf(w, "state: %d %s: ok\n", len(keys), what)

	for _, m := range snaps {
		meta, rc, err := ss.Open(m.ID)
		if err != nil {
			if isCorrupt(err) {
				return &corruption{"snapshot " + m.ID, err}
			}
			return err
		}
		c, err := readSnapshotBody(meta, rc, nil, nil)
		if err != nil {
			if isCorrupt(err) {
				return &corruption{"snapshot " + m.ID, err}
			}
			return fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		fmt.Fprintf(w, "snapshot %s: index %d, term %d, %d bytes, zxid 0x%x, %d sessions, %d nodes: ok\n",
			m.ID, m.Index, m.Term, m.Size, uint64(c.hdr.Zxid), len(c.hdr.Sessions), c.sum.Nodes)
	}
	if len(snaps) == 0 {
		fmt.Fprintln(w, "snapshots: none")
	}
	return nil
}

// ---- dump ----

// jsonStat is znode.Stat with ZooKeeper's field names; it converts from
// znode.Stat field for field.
type jsonStat struct {
	Czxid          int64 `json:"czxid"`
	Mzxid          int64 `json:"mzxid"`
	Ctime          int64 `json:"ctime"`
	Mtime          int64 `json:"mtime"`
	Version        int32 `json:"version"`
	Cversion       int32 `json:"cversion"`
	Aversion       int32 `json:"aversion"`
	EphemeralOwner int64 `json:"ephemeralOwner"`
	DataLength     int32 `json:"dataLength"`
	NumChildren    int32 `json:"numChildren"`
	Pzxid          int64 `json:"pzxid"`
}

type jsonACL struct {
	Perms  int32  `json:"perms"`
	Scheme string `json:"scheme"`
	ID     string `json:"id"`
}

// jsonNode is one node of a dump. Data is the text when it is printable
// UTF-8 (and null for null data); otherwise DataBase64 holds the bytes
// and Data is left out.
type jsonNode struct {
	Path       string          `json:"path"`
	Data       json.RawMessage `json:"data,omitempty"`
	DataBase64 string          `json:"data_base64,omitempty"`
	Kind       string          `json:"kind"`
	TTL        int64           `json:"ttl,omitempty"`
	Stat       jsonStat        `json:"stat"`
	ACL        []jsonACL       `json:"acl"`
}

type jsonSnapshot struct {
	ID              string `json:"id"`
	Index           uint64 `json:"index"`
	Term            uint64 `json:"term"`
	Size            int64  `json:"size"`
	MembershipIndex uint64 `json:"membership_index"`
}

type jsonSession struct {
	ID        string `json:"id"`
	TimeoutMs int32  `json:"timeout_ms"`
}

type jsonHeader struct {
	Snapshot     jsonSnapshot  `json:"snapshot"`
	Zxid         string        `json:"zxid"`
	AppliedIndex uint64        `json:"applied_index"`
	Sessions     []jsonSession `json:"sessions"`
}

func toJSONNode(n tree.NodeInfo) jsonNode {
	j := jsonNode{Path: n.Path, Kind: n.Kind, TTL: n.TTL, Stat: jsonStat(n.Stat), ACL: make([]jsonACL, len(n.ACL))}
	switch {
	case n.Data == nil:
		j.Data = json.RawMessage("null")
	case printable(n.Data):
		j.Data, _ = json.Marshal(string(n.Data)) // a string always marshals
	default:
		j.DataBase64 = base64.StdEncoding.EncodeToString(n.Data)
	}
	for i, a := range n.ACL {
		j.ACL[i] = jsonACL{Perms: a.Perms, Scheme: a.Scheme, ID: a.ID}
	}
	return j
}

func toJSONHeader(m storage.SnapshotMeta, h server.SnapshotHeader) jsonHeader {
	j := jsonHeader{
		Snapshot:     jsonSnapshot{ID: m.ID, Index: m.Index, Term: m.Term, Size: m.Size, MembershipIndex: m.MembershipIndex},
		Zxid:         fmt.Sprintf("0x%x", uint64(h.Zxid)),
		AppliedIndex: h.Index,
		Sessions:     make([]jsonSession, len(h.Sessions)),
	}
	for i, s := range h.Sessions {
		j.Sessions[i] = jsonSession{ID: fmt.Sprintf("0x%x", uint64(s.ID)), TimeoutMs: s.TimeoutMs}
	}
	return j
}

func dataDump(args []string, stdout, stderr io.Writer) int {
	var id, format string
	cfg, ok := dataFlags("dump", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "snapshot", "", "snapshot id (default: the newest)")
		fs.StringVar(&format, "format", "jsonl", "jsonl: a header line then one line per node; json: one document")
	})
	if !ok {
		return 2
	}
	if format != "jsonl" && format != "json" {
		fmt.Fprintf(stderr, "corral data dump: --format %q: want jsonl or json\n", format)
		return 2
	}
	st, err := openStore(cfg, stderr, false)
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	defer closeStore(st, stderr)
	ss := st.Snapshots()
	m, err := pickSnapshot(ss, id)
	if err != nil {
		fmt.Fprintf(stderr, "corral: dump: %v\n", err)
		return 1
	}
	meta, rc, err := ss.Open(m.ID)
	if err != nil {
		fmt.Fprintf(stderr, "corral: dump: %v\n", err)
		return 1
	}
	bw := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	first := true
	onHeader := func(h server.SnapshotHeader) error {
		jh := toJSONHeader(meta, h)
		if format == "jsonl" {
			return enc.Encode(jh)
		}
		b, err := json.Marshal(jh)
		if err != nil {
			return err
		}
		// The header's fields, then the nodes streamed into an array: the
		// document is never held in memory.
		bw.Write(b[:len(b)-1])
		_, err = bw.WriteString(`,"nodes":[` + "\n")
		return err
	}
	onNode := func(n tree.NodeInfo) error {
		if format == "json" && !first {
			bw.WriteString(",")
		}
		first = false
		return enc.Encode(toJSONNode(n))
	}
	_, err = readSnapshotBody(meta, rc, onHeader, onNode)
	if err == nil && format == "json" {
		_, err = bw.WriteString("]}\n")
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// What was printed came from a snapshot that failed its checks.
		fmt.Fprintf(stderr, "corral: dump: snapshot %s: %v\n", meta.ID, err)
		return 1
	}
	return 0
}

// ---- export-snapshot / import-snapshot ----

func dataExport(args []string, stdout, stderr io.Writer) int {
	var id, out string
	cfg, ok := dataFlags("export-snapshot", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "file to write (must not exist)")
		fs.StringVar(&id, "snapshot", "", "snapshot id (default: the newest)")
	})
	if !ok {
		return 2
	}
	if out == "" {
		fmt.Fprintln(stderr, "corral data export-snapshot: --out is required")
		return 2
	}
	if _, err := os.Lstat(out); err == nil {
		fmt.Fprintf(stderr, "corral: export-snapshot: %s already exists\n", out)
		return 1
	}
	st, err := openStore(cfg, stderr, false)
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	defer closeStore(st, stderr)
	ss := st.Snapshots()
	m, err := pickSnapshot(ss, id)
	if err != nil {
		fmt.Fprintf(stderr, "corral: export-snapshot: %v\n", err)
		return 1
	}
	c, err := exportSnapshot(ss, m.ID, out)
	if err != nil {
		fmt.Fprintf(stderr, "corral: export-snapshot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "exported snapshot %s (index %d, term %d, zxid 0x%x, %d nodes, %d bytes) to %s\n",
		c.meta.ID, c.meta.Index, c.meta.Term, uint64(c.hdr.Zxid), c.sum.Nodes, c.meta.Size, out)
	return 0
}

// exportSnapshot copies a snapshot, with its metadata, into a standalone
// snapfile, then reads the copy back in full, so a file that exists is a
// file that restores.
func exportSnapshot(ss storage.SnapshotStore, id, out string) (snapContent, error) {
	meta, rc, err := ss.Open(id)
	if err != nil {
		return snapContent{}, err
	}
	_, err = snapfile.WriteFile(out, meta, rc)
	rc.Close()
	if err != nil {
		return snapContent{}, err
	}
	c, err := readStandalone(out)
	if err != nil {
		os.Remove(out)
		return c, fmt.Errorf("the copy does not check out (removed): %w", err)
	}
	return c, nil
}

func readStandalone(path string) (snapContent, error) {
	meta, rc, err := snapfile.OpenFile(path)
	if err != nil {
		return snapContent{}, err
	}
	return readSnapshotBody(meta, rc, nil, nil)
}

func dataImport(args []string, stdout, stderr io.Writer) int {
	var in string
	cfg, ok := dataFlags("import-snapshot", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&in, "in", "", "snapshot file written by export-snapshot")
	})
	if !ok {
		return 2
	}
	if in == "" {
		fmt.Fprintln(stderr, "corral data import-snapshot: --in is required")
		return 2
	}
	// Check the whole file before touching the data directory.
	c, err := readStandalone(in)
	if err != nil {
		fmt.Fprintf(stderr, "corral: import-snapshot: %s: %v\n", in, err)
		return 1
	}
	state, err := importState(cfg.Consensus.Type, c.meta)
	if err != nil {
		fmt.Fprintf(stderr, "corral: import-snapshot: %v\n", err)
		return 1
	}
	st, err := openStore(cfg, stderr, true)
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	defer closeStore(st, stderr)
	if err := checkEmpty(st); err != nil {
		fmt.Fprintf(stderr, "corral: import-snapshot: %v\n", err)
		return 1
	}
	id, err := installSnapshot(st, in, state)
	if err != nil {
		fmt.Fprintf(stderr, "corral: import-snapshot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %s as snapshot %s (index %d, term %d, zxid 0x%x, %d nodes) into storage.%s at %s\n",
		in, id, c.meta.Index, c.meta.Term, uint64(c.hdr.Zxid), c.sum.Nodes, cfg.Storage.Type, cfg.DataDir)
	fmt.Fprintln(stdout, "start the server with the node id and members of the server the snapshot came from")
	return 0
}

// importState is the consensus state import-snapshot writes beside the
// snapshot. The storage contract carries a snapshot's index, term and
// membership but not the consensus plugin's hard state, and no consensus
// plugin offers an offline hook for it, so this knows consensus-raft's
// keys. Without a current term at least the snapshot's, the first election
// after the import would run in a lower term than the snapshot's last
// entry, and raft's up-to-date check would then prefer a member holding
// only the snapshot over one with newer entries.
func importState(consensusType string, meta storage.SnapshotMeta) (map[string][]byte, error) {
	switch consensusType {
	case "raft":
		// hashicorp/raft's stable "CurrentTerm", which consensus-raft keeps
		// under "raft/" as a big-endian uint64 (consensus-raft/stores.go).
		return map[string][]byte{"raft/CurrentTerm": binary.BigEndian.AppendUint64(nil, meta.Term)}, nil
	}
	return nil, fmt.Errorf("cannot prepare the state of consensus.%s for an imported snapshot (consensus.raft only)", consensusType)
}

// checkEmpty refuses a store that holds anything: an import replaces no
// state, it starts a member from the snapshot alone.
func checkEmpty(st storage.Store) error {
	what, err := someContent(st)
	if err != nil {
		return err
	}
	if what != "" {
		return fmt.Errorf("the store is not empty: %s", what)
	}
	return nil
}

// someContent describes something the store holds, "" when it is empty.
func someContent(st storage.Store) (string, error) {
	last, err := st.LastIndex()
	if err != nil {
		return "", err
	}
	if last != 0 {
		return fmt.Sprintf("its log ends at index %d", last), nil
	}
	ss := st.Snapshots()
	snaps, err := ss.List()
	if err != nil {
		return "", err
	}
	if len(snaps) > 0 {
		return "it holds snapshot " + snaps[0].ID, nil
	}
	if c, ok := ss.(storage.SnapshotChecker); ok {
		bad, err := c.Damaged()
		if err != nil {
			return "", err
		}
		if len(bad) > 0 {
			return fmt.Sprintf("it holds a damaged snapshot: %v", bad[0]), nil
		}
	}
	keys, _, err := stateKeys(st)
	if err != nil {
		return "", err
	}
	if len(keys) > 0 {
		return fmt.Sprintf("it holds state %s", strings.Join(keys, ", ")), nil
	}
	return "", nil
}

// emptyNote is shown when a read-only command finds nothing: opening a
// store creates it, so a wrong storage type or path looks like this.
const emptyNote = "the store is empty (was the server run with this storage type and path?)"

// installSnapshot streams the file into the store's snapshot store with
// the file's index, term and membership, then writes the consensus state.
func installSnapshot(st storage.Store, in string, state map[string][]byte) (string, error) {
	meta, rc, err := snapfile.OpenFile(in)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	sink, err := st.Snapshots().Create(storage.SnapshotMeta{
		Index: meta.Index, Term: meta.Term, Membership: meta.Membership, MembershipIndex: meta.MembershipIndex,
	})
	if err != nil {
		return "", err
	}
	// The reader checks the file's checksum at EOF, so a file damaged since
	// it was checked fails here and the sink is discarded.
	if _, err := io.Copy(sink, rc); err != nil {
		sink.Cancel()
		return "", err
	}
	if err := sink.Close(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Write(ctx, storage.Batch{State: state}); err != nil {
		return "", fmt.Errorf("snapshot %s installed, but writing the consensus state failed (empty the data directory and retry): %w", sink.ID(), err)
	}
	return sink.ID(), nil
}

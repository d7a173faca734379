package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/tree"
	"github.com/corral-dev/corral/framework/txn"
	"github.com/corral-dev/corral/framework/znode"
)

func applyTxn(t *testing.T, s *Server, index uint64, tx *txn.Txn) {
	t.Helper()
	b, err := txn.Encode(tx)
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(consensus.Entry{Index: index, Term: 1, Data: b})
}

// ReadSnapshotHeader and tree.ReadSnapshot decode what Snapshot writes,
// without a server to restore into.
func TestReadSnapshotHeaderDecodesSnapshot(t *testing.T) {
	// A hand-made config: loading one needs the plugins, which the
	// framework does not import.
	s, err := New(&config.Config{NodeID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	applyTxn(t, s, 1, &txn.Txn{Kind: txn.CreateSession, Session: 0x77, TimeoutMs: 6000, Password: bytes.Repeat([]byte{9}, 16)})
	applyTxn(t, s, 2, &txn.Txn{Kind: txn.Request, Time: 5, Req: &op.CreateRequest{
		OpCode: op.Create, Path: "/a", Data: []byte("hello"), ACL: znode.OpenACLUnsafe}})
	applyTxn(t, s, 3, &txn.Txn{Kind: txn.Request, Session: 0x77, Time: 6, Req: &op.CreateRequest{
		OpCode: op.Create, Path: "/a/e", ACL: znode.OpenACLUnsafe, Mode: znode.Ephemeral}})

	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	r := bufio.NewReader(bytes.NewReader(raw))
	h, err := ReadSnapshotHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != snapVersion || h.Zxid != 3 || h.Index != 3 ||
		len(h.Sessions) != 1 || h.Sessions[0] != (SnapshotSession{ID: 0x77, TimeoutMs: 6000}) {
		t.Fatalf("header %+v", h)
	}
	nodes := map[string]tree.NodeInfo{}
	if _, err := tree.ReadSnapshot(r, func(n tree.NodeInfo) error { nodes[n.Path] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	a, e := nodes["/a"], nodes["/a/e"]
	if string(a.Data) != "hello" || a.Stat.Czxid != 2 || a.Stat.NumChildren != 1 {
		t.Fatalf("/a: %+v", a)
	}
	if e.Kind != "ephemeral" || e.Stat.EphemeralOwner != 0x77 {
		t.Fatalf("/a/e: %+v", e)
	}
	if _, ok := nodes["/zookeeper"]; !ok {
		t.Fatalf("no /zookeeper among %d nodes", len(nodes))
	}

	for _, cut := range []int{0, 7, len(snapMagic) + 20, len(snapMagic) + 24 + 10} {
		if _, err := ReadSnapshotHeader(bytes.NewReader(raw[:cut])); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("cut at %d: err %v", cut, err)
		}
	}
	bad := bytes.Clone(raw)
	bad[len(snapMagic)+3] = 9 // version
	if _, err := ReadSnapshotHeader(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("version 9: err %v", err)
	}
}

func TestSnapshotNowNeedsAStartedServer(t *testing.T) {
	s, err := New(&config.Config{NodeID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SnapshotNow(context.Background()); err == nil {
		t.Fatal("SnapshotNow before Start succeeded")
	}
}

package txn

import (
	"errors"
	"reflect"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

func sample() []*Txn {
	return []*Txn{
		{Kind: CreateSession, Time: 1700000000000, Origin: 1, Seq: 9, Session: 0x100, TimeoutMs: 4000, Password: []byte("0123456789abcdef")},
		{Kind: CloseSession, Time: 5, Session: 0x100},
		{Kind: Request, Time: 7, Origin: 2, Seq: 3, Session: 0x101, Auth: []znode.ID{{Scheme: "ip", ID: "127.0.0.1"}, {Scheme: "digest", ID: "u:x"}}, Super: true,
			Req: &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Data: []byte("d"), ACL: znode.OpenACLUnsafe, Mode: znode.PersistentWithTTL, TTL: 1000}},
		{Kind: Request, Req: &op.DeleteRequest{Path: "/a", Version: -1}},
		{Kind: Request, Req: &op.DeleteContainerRequest{Path: "/c"}},
		{Kind: Request, Req: &op.SetDataRequest{Path: "/a", Data: []byte{}, Version: 3}},
		{Kind: Request, Req: &op.SetACLRequest{Path: "/a", ACL: znode.ReadACLUnsafe, Version: 0}},
		{Kind: Request, Req: &op.MultiRequest{Ops: []op.Request{
			&op.CreateRequest{OpCode: op.Create, Path: "/m", ACL: znode.OpenACLUnsafe},
			&op.CheckRequest{Path: "/m", Version: 0},
			&op.SetDataRequest{Path: "/m", Data: []byte("x"), Version: -1},
		}}},
		{Kind: SetConfig, Data: []byte("server.1=a:1:2")},
		{Kind: Noop},
		{Kind: Touch, Origin: 3, Sessions: []int64{0x100, -5}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range sample() {
		b, err := Encode(in)
		if err != nil {
			t.Fatalf("encode %+v: %v", in, err)
		}
		out, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", in, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip changed the txn:\n in %#v\nout %#v", in, out)
		}
	}
}

// nil and empty data differ in ZooKeeper (jute -1 vs 0 length).
func TestNilVersusEmptyData(t *testing.T) {
	for _, data := range [][]byte{nil, {}} {
		b, _ := Encode(&Txn{Kind: Request, Req: &op.SetDataRequest{Path: "/a", Data: data}})
		out, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Req.(*op.SetDataRequest).Data; (got == nil) != (data == nil) {
			t.Fatalf("data %v decoded as %v", data, got)
		}
	}
}

func TestRejectsReadsAndNesting(t *testing.T) {
	if _, err := Encode(&Txn{Kind: Request, Req: &op.GetDataRequest{Path: "/a"}}); err == nil {
		t.Fatal("encoding a read as a transaction succeeded")
	}
	nested := &op.MultiRequest{Ops: []op.Request{&op.MultiRequest{}}}
	if _, err := Encode(&Txn{Kind: Request, Req: nested}); err == nil {
		t.Fatal("encoding a nested multi succeeded")
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good, _ := Encode(sample()[2])
	for n := 0; n < len(good); n++ {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := Decode(append(append([]byte{}, good...), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: err %v", err)
	}
	bad := append([]byte{}, good...)
	bad[0] = 99
	if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown version: err %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, t := range sample() {
		b, _ := Encode(t)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(tx)
		if err != nil {
			t.Fatalf("decoded txn does not re-encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded txn does not decode: %v", err)
		}
	})
}

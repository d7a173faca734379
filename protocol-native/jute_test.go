package protocolnative

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// hx turns "00 0a ff # comment" (spaces, newlines and # comments ignored)
// into bytes, so expected layouts can be written field by field.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	s = sb.String()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func assertBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got  %x (%d bytes)\n want %x (%d bytes)", what, got, len(got), want, len(want))
	}
}

// testStat has a distinct value in every field so a field-order mistake
// shows up in the bytes.
var testStat = znode.Stat{
	Czxid: 0x11, Mzxid: 0x12, Ctime: 0x13, Mtime: 0x14, Version: 0x15, Cversion: 0x16,
	Aversion: 0x17, EphemeralOwner: 0x18, DataLength: 0x19, NumChildren: 0x1a, Pzxid: 0x1b,
}

// testStatHex is testStat in wire order, pzxid last: 68 bytes.
const testStatHex = `
	0000000000000011 0000000000000012 0000000000000013 0000000000000014
	00000015 00000016 00000017
	0000000000000018
	00000019 0000001a
	000000000000001b`

const passwdHex = "101112131415161718191a1b1c1d1e1f"

func TestStatLayout(t *testing.T) {
	got := appendStat(nil, &testStat)
	want := hx(t, testStatHex)
	if len(want) != 68 {
		t.Fatalf("hand layout is %d bytes, want 68", len(want))
	}
	assertBytes(t, "stat", got, want)
	d := newDecoder(got)
	if s := d.stat(); s != testStat || d.finish() != nil {
		t.Fatalf("decoded %+v, err %v", s, d.err)
	}
}

func TestConnectRequestLayout(t *testing.T) {
	body44 := hx(t, `
		00000000                      # protocolVersion
		0000000000000102              # lastZxidSeen
		00007530                      # timeOut 30000
		0102030405060708              # sessionId
		00000010 `+passwdHex)
	body45 := append(append([]byte{}, body44...), 0x01) // readOnly
	if len(body44) != 44 || len(body45) != 45 {
		t.Fatalf("hand layouts are %d and %d bytes", len(body44), len(body45))
	}
	want := protocol.ConnectRequest{
		ProtocolVersion: 0, LastZxidSeen: 0x102, TimeoutMs: 30000, SessionID: 0x0102030405060708,
		Password: hx(t, passwdHex),
	}
	for _, tc := range []struct {
		body   []byte
		withRO bool
	}{{body44, false}, {body45, true}} {
		req, hasRO, err := decodeConnectRequest(tc.body)
		if err != nil {
			t.Fatalf("%d bytes: %v", len(tc.body), err)
		}
		w := want
		w.ReadOnly = tc.withRO
		if hasRO != tc.withRO || !reflect.DeepEqual(req, w) {
			t.Fatalf("%d bytes: got %+v hasRO=%v", len(tc.body), req, hasRO)
		}
		framed := appendConnectRequest(nil, &req, hasRO)
		assertBytes(t, "re-encoded ConnectRequest", framed[4:], tc.body)
		assertBytes(t, "frame length", framed[:4], []byte{0, 0, 0, byte(len(tc.body))})
	}
	// A truncated password is refused, and so is a negative length.
	if _, _, err := decodeConnectRequest(body44[:40]); err == nil {
		t.Fatal("truncated ConnectRequest decoded")
	}
	bad := append([]byte{}, body44...)
	copy(bad[24:28], hx(t, "fffffffe"))
	if _, _, err := decodeConnectRequest(bad); err == nil {
		t.Fatal("password length -2 decoded")
	}
}

func TestConnectResponseLayout(t *testing.T) {
	resp := protocol.ConnectResponse{TimeoutMs: 30000, SessionID: 0x0102030405060708, Password: hx(t, passwdHex), ReadOnly: true}
	want36 := hx(t, `00000024  00000000 00007530 0102030405060708 00000010 `+passwdHex)
	assertBytes(t, "ConnectResponse without readOnly", appendConnectResponse(nil, &resp, false), want36)
	want37 := hx(t, `00000025  00000000 00007530 0102030405060708 00000010 `+passwdHex+` 01`)
	assertBytes(t, "ConnectResponse with readOnly", appendConnectResponse(nil, &resp, true), want37)

	// The expired answer: timeout 0, session 0, a zero password even when
	// the backend leaves it nil.
	expired := protocol.ConnectResponse{}
	wantExp := hx(t, `00000024  00000000 00000000 0000000000000000 00000010 00000000000000000000000000000000`)
	assertBytes(t, "expired ConnectResponse", appendConnectResponse(nil, &expired, false), wantExp)

	got, hasRO, err := decodeConnectResponse(want37[4:])
	if err != nil || !hasRO || !reflect.DeepEqual(got, resp) {
		t.Fatalf("decode: %+v %v %v", got, hasRO, err)
	}
}

func TestCreate2ResponseLayout(t *testing.T) {
	resp := &op.CreateResponse{OpCode: op.Create2, Path: "/a", Stat: testStat}
	got, err := appendReply(nil, 5, 0x20, zkerr.OK, resp)
	if err != nil {
		t.Fatal(err)
	}
	want := hx(t, `0000005a  00000005 0000000000000020 00000000  00000002 2f61`+testStatHex)
	assertBytes(t, "create2 reply", got, want)

	// create (1) answers with the path only.
	got, _ = appendReply(nil, 5, 0x20, zkerr.OK, &op.CreateResponse{OpCode: op.Create, Path: "/a", Stat: testStat})
	assertBytes(t, "create reply", got, hx(t, `00000016  00000005 0000000000000020 00000000  00000002 2f61`))

	// createContainer and createTTL answer with Create2Response.
	for _, code := range []op.Code{op.CreateContainer, op.CreateTTL} {
		got, _ = appendReply(nil, 5, 0x20, zkerr.OK, &op.CreateResponse{OpCode: code, Path: "/a", Stat: testStat})
		assertBytes(t, code.String()+" reply", got, want)
	}
}

func TestErrorReplyIsHeaderOnly(t *testing.T) {
	got, err := appendReply(nil, 9, 0x33, zkerr.NoNode, &op.GetDataResponse{Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	assertBytes(t, "NoNode reply", got, hx(t, `00000010  00000009 0000000000000033 ffffff9b`))
}

func TestFailedMultiResponseLayout(t *testing.T) {
	// A multi whose second op failed with NoNode: header err 0, every
	// result of type -1, before = 0, failing = own code, after = -2.
	resp := &op.MultiResponse{OpCode: op.Multi, Results: []op.Result{
		{OpCode: op.Error, Err: 0},
		{OpCode: op.Error, Err: int32(zkerr.NoNode)},
		{OpCode: op.Error, Err: int32(zkerr.RuntimeInconsistency)},
	}}
	got, err := appendReply(nil, 7, 0x30, zkerr.OK, resp)
	if err != nil {
		t.Fatal(err)
	}
	want := hx(t, `00000040  00000007 0000000000000030 00000000
		ffffffff 00 00000000  00000000
		ffffffff 00 ffffff9b  ffffff9b
		ffffffff 00 fffffffe  fffffffe
		ffffffff 01 ffffffff`)
	assertBytes(t, "failed multi", got, want)

	dec, err := decodeResponse(op.Multi, got[4+replyHdrLen:])
	if err != nil || !reflect.DeepEqual(dec, resp) {
		t.Fatalf("decode: %+v %v", dec, err)
	}
}

func TestSuccessfulMultiResponseLayout(t *testing.T) {
	resp := &op.MultiResponse{OpCode: op.Multi, Results: []op.Result{
		{OpCode: op.Create, Path: "/a"},
		{OpCode: op.Delete},
		{OpCode: op.Check},
		{OpCode: op.SetData, Stat: testStat},
		{OpCode: op.CreateTTL, Path: "/t", Stat: testStat}, // reported as create2
	}}
	got, err := appendReply(nil, 1, 2, zkerr.OK, resp)
	if err != nil {
		t.Fatal(err)
	}
	body := hx(t, `
		00000001 00 00000000  00000002 2f61
		00000002 00 00000000
		0000000d 00 00000000
		00000005 00 00000000 `+testStatHex+`
		0000000f 00 00000000  00000002 2f74 `+testStatHex+`
		ffffffff 01 ffffffff`)
	assertBytes(t, "multi body", got[4+replyHdrLen:], body)
}

func TestMultiReadResponseLayout(t *testing.T) {
	resp := &op.MultiResponse{OpCode: op.MultiRead, Results: []op.Result{
		{OpCode: op.GetData, Data: []byte("hi"), Stat: testStat},
		{OpCode: op.GetChildren, Children: []string{"c"}},
		{OpCode: op.Error, Err: int32(zkerr.NoNode)},
	}}
	got, err := appendReply(nil, 1, 2, zkerr.OK, resp)
	if err != nil {
		t.Fatal(err)
	}
	body := hx(t, `
		00000004 00 00000000  00000002 6869 `+testStatHex+`
		00000008 00 00000000  00000001 00000001 63
		ffffffff 00 ffffff9b  ffffff9b
		ffffffff 01 ffffffff`)
	assertBytes(t, "multiRead body", got[4+replyHdrLen:], body)
	dec, err := decodeResponse(op.MultiRead, body)
	if err != nil || !reflect.DeepEqual(dec, resp) {
		t.Fatalf("decode: %+v %v", dec, err)
	}
}

func TestWatcherEventLayout(t *testing.T) {
	ev := op.WatchEvent{Type: znode.EventNodeDataChanged, Path: "/a", Zxid: 0x40}
	got := appendEvent(nil, &ev)
	want := hx(t, `0000001e  ffffffff 0000000000000040 00000000  00000003 00000003 00000002 2f61`)
	assertBytes(t, "watcher event", got, want)
	xid, zxid, code, body, err := decodeReplyHeader(got[4:])
	if err != nil || xid != -1 || zxid != 0x40 || code != zkerr.OK {
		t.Fatalf("header: %d %d %d %v", xid, zxid, code, err)
	}
	dec, state, err := decodeEvent(body)
	if err != nil || state != znode.StateSyncConnected || dec.Type != ev.Type || dec.Path != ev.Path {
		t.Fatalf("event: %+v %d %v", dec, state, err)
	}
}

func TestAddWatchAndEmptyReplies(t *testing.T) {
	got, _ := appendReply(nil, 3, 4, zkerr.OK, &op.EmptyResponse{OpCode: op.AddWatch})
	assertBytes(t, "addWatch reply", got, hx(t, `00000014  00000003 0000000000000004 00000000  00000000`))
	got, _ = appendReply(nil, 3, 4, zkerr.OK, &op.EmptyResponse{OpCode: op.Delete})
	assertBytes(t, "delete reply", got, hx(t, `00000010  00000003 0000000000000004 00000000`))
	got, _ = appendReply(nil, -2, 4, zkerr.OK, nil)
	assertBytes(t, "ping reply", got, hx(t, `00000010  fffffffe 0000000000000004 00000000`))
}

func TestChildrenReplyShapes(t *testing.T) {
	got, _ := appendReply(nil, 1, 0, zkerr.OK, &op.GetChildrenResponse{OpCode: op.GetChildren, Children: []string{"a"}, Stat: testStat})
	assertBytes(t, "getChildren body", got[4+replyHdrLen:], hx(t, `00000001 00000001 61`))
	got, _ = appendReply(nil, 1, 0, zkerr.OK, &op.GetChildrenResponse{OpCode: op.GetChildren2, Children: []string{"a"}, Stat: testStat})
	assertBytes(t, "getChildren2 body", got[4+replyHdrLen:], hx(t, `00000001 00000001 61`+testStatHex))
	// A nil list is sent as an empty vector, never as null.
	got, _ = appendReply(nil, 1, 0, zkerr.OK, &op.GetChildrenResponse{OpCode: op.GetChildren})
	assertBytes(t, "empty children", got[4+replyHdrLen:], hx(t, `00000000`))
	// Null data stays null (-1), as ZooKeeper sends it.
	got, _ = appendReply(nil, 1, 0, zkerr.OK, &op.GetDataResponse{Stat: testStat})
	assertBytes(t, "null data", got[4+replyHdrLen:], hx(t, `ffffffff`+testStatHex))
}

func TestRequestLayouts(t *testing.T) {
	cases := []struct {
		name string
		req  op.Request
		hex  string // RequestHeader{xid 1, type} + record
	}{
		{"getData", &op.GetDataRequest{Path: "/a", Watch: true}, `00000001 00000004  00000002 2f61 01`},
		{"create", &op.CreateRequest{OpCode: op.Create, Path: "/a", Data: []byte("x"), ACL: znode.OpenACLUnsafe, Mode: znode.EphemeralSequential},
			`00000001 00000001  00000002 2f61  00000001 78  00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65  00000003`},
		{"createTTL", &op.CreateRequest{OpCode: op.CreateTTL, Path: "/a", Data: nil, ACL: []znode.ACL{}, Mode: znode.PersistentWithTTL, TTL: 1000},
			`00000001 00000015  00000002 2f61  ffffffff  00000000  00000005  00000000000003e8`},
		{"deleteContainer", &op.DeleteContainerRequest{Path: "/a"}, `00000001 00000014  00000002 2f61`},
		{"ping", &op.PingRequest{}, `00000001 0000000b`},
		{"closeSession", &op.CloseSessionRequest{}, `00000001 fffffff5`},
		{"whoAmI", &op.WhoAmIRequest{}, `00000001 0000006b`},
		{"addWatch", &op.AddWatchRequest{Path: "/a", Mode: znode.AddWatchPersistentRecursive}, `00000001 0000006a  00000002 2f61 00000001`},
		{"setWatches", &op.SetWatchesRequest{RelativeZxid: 9, DataWatches: []string{"/a"}, ExistWatches: []string{}, ChildWatches: nil},
			`00000001 00000065  0000000000000009  00000001 00000002 2f61  00000000  ffffffff`},
		{"setWatches2", &op.SetWatchesRequest{HasPersistentFields: true, RelativeZxid: 9, DataWatches: []string{}, ExistWatches: []string{}, ChildWatches: []string{}, PersistentWatches: []string{"/p"}, RecursiveWatches: []string{}},
			`00000001 00000069  0000000000000009  00000000 00000000 00000000  00000001 00000002 2f70  00000000`},
		{"multi", &op.MultiRequest{Ops: []op.Request{
			&op.CheckRequest{Path: "/a", Version: 2},
			&op.DeleteRequest{Path: "/a", Version: -1},
		}}, `00000001 0000000e
			0000000d 00 ffffffff  00000002 2f61 00000002
			00000002 00 ffffffff  00000002 2f61 ffffffff
			ffffffff 01 ffffffff`},
		{"auth", &op.AuthRequest{Type: 0, Scheme: "digest", Auth: []byte("u:p")},
			`00000001 00000064  00000000 00000006 646967657374 00000003 753a70`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := hx(t, tc.hex)
			framed, err := appendRequest(nil, 1, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			assertBytes(t, "encoded", framed[4:], want)
			xid, req, canonical, err := decodeRequestCanonical(want)
			if err != nil || xid != 1 || !canonical {
				t.Fatalf("decode: xid %d canonical %v err %v", xid, canonical, err)
			}
			if !reflect.DeepEqual(req, tc.req) {
				t.Fatalf("decoded %#v\nwant %#v", req, tc.req)
			}
		})
	}
}

// sampleRequests is one request of every client opcode (and of every op
// allowed inside multi/multiRead); the fuzz test seeds from it too.
func sampleRequests() []op.Request {
	acl := []znode.ACL{{Perms: znode.PermAll, Scheme: "world", ID: "anyone"}, {Perms: znode.PermRead, Scheme: "ip", ID: "10.0.0.0/8"}}
	return []op.Request{
		&op.CreateRequest{OpCode: op.Create, Path: "/a", Data: []byte("data"), ACL: acl, Mode: znode.Persistent},
		&op.CreateRequest{OpCode: op.Create2, Path: "/a/", Data: []byte{}, ACL: acl, Mode: znode.PersistentSequential},
		&op.CreateRequest{OpCode: op.CreateContainer, Path: "/c", Data: nil, ACL: acl, Mode: znode.Container},
		&op.CreateRequest{OpCode: op.CreateTTL, Path: "/t", Data: []byte("x"), ACL: acl, Mode: znode.PersistentSequentialWithTTL, TTL: 12345},
		&op.DeleteRequest{Path: "/a", Version: -1},
		&op.ExistsRequest{Path: "/a", Watch: true},
		&op.GetDataRequest{Path: "/a", Watch: false},
		&op.SetDataRequest{Path: "/a", Data: []byte("new"), Version: 3},
		&op.GetACLRequest{Path: "/a"},
		&op.SetACLRequest{Path: "/a", ACL: acl, Version: 0},
		&op.GetChildrenRequest{OpCode: op.GetChildren, Path: "/", Watch: true},
		&op.GetChildrenRequest{OpCode: op.GetChildren2, Path: "/", Watch: false},
		&op.SyncRequest{Path: "/"},
		&op.PingRequest{},
		&op.MultiRequest{Ops: []op.Request{
			&op.CreateRequest{OpCode: op.Create, Path: "/m", Data: []byte("1"), ACL: acl, Mode: znode.Ephemeral},
			&op.CreateRequest{OpCode: op.Create2, Path: "/m2", Data: nil, ACL: acl, Mode: znode.Persistent},
			&op.CreateRequest{OpCode: op.CreateContainer, Path: "/m3", Data: []byte{}, ACL: acl, Mode: znode.Container},
			&op.CreateRequest{OpCode: op.CreateTTL, Path: "/m4", Data: nil, ACL: acl, Mode: znode.PersistentWithTTL, TTL: 1},
			&op.DeleteRequest{Path: "/m", Version: 0},
			&op.SetDataRequest{Path: "/m2", Data: []byte("z"), Version: -1},
			&op.CheckRequest{Path: "/m2", Version: 1},
		}},
		&op.MultiRequest{},
		&op.MultiReadRequest{Ops: []op.Request{
			&op.GetDataRequest{Path: "/a"},
			&op.GetChildrenRequest{OpCode: op.GetChildren, Path: "/"},
		}},
		&op.ReconfigRequest{JoiningServers: "server.4=h:2888:3888;2181", LeavingServers: "3", NewMembers: "", CurConfigID: -1},
		&op.CheckWatchesRequest{Path: "/a", Type: znode.WatcherData},
		&op.RemoveWatchesRequest{Path: "/a", Type: znode.WatcherAny},
		&op.DeleteContainerRequest{Path: "/c"},
		&op.AuthRequest{Type: 0, Scheme: "digest", Auth: []byte("user:pw")},
		&op.SetWatchesRequest{RelativeZxid: 77, DataWatches: []string{"/a", "/b"}, ExistWatches: []string{"/x"}, ChildWatches: []string{}},
		&op.SetWatchesRequest{HasPersistentFields: true, RelativeZxid: 78, DataWatches: []string{}, ExistWatches: []string{}, ChildWatches: []string{"/"}, PersistentWatches: []string{"/p"}, RecursiveWatches: []string{"/r"}},
		&op.SASLRequest{Token: []byte{1, 2, 3}},
		&op.GetEphemeralsRequest{PrefixPath: "/e"},
		&op.GetAllChildrenNumberRequest{Path: "/"},
		&op.AddWatchRequest{Path: "/w", Mode: znode.AddWatchPersistent},
		&op.WhoAmIRequest{},
		&op.CloseSessionRequest{},
	}
}

func TestRequestRoundTripEveryOp(t *testing.T) {
	seen := map[op.Code]bool{}
	for i, req := range sampleRequests() {
		framed, err := appendRequest(nil, int32(i+1), req)
		if err != nil {
			t.Fatalf("%s: encode: %v", req.Op(), err)
		}
		if got := op.Code(int32(framed[8])<<24 | int32(framed[9])<<16 | int32(framed[10])<<8 | int32(framed[11])); got != req.Op() {
			t.Fatalf("%s: header type %d", req.Op(), got)
		}
		xid, dec, canonical, err := decodeRequestCanonical(framed[4:])
		if err != nil || xid != int32(i+1) || !canonical {
			t.Fatalf("%s: decode xid %d canonical %v err %v", req.Op(), xid, canonical, err)
		}
		if !reflect.DeepEqual(dec, req) {
			t.Fatalf("%s: decoded %#v\nwant %#v", req.Op(), dec, req)
		}
		seen[req.Op()] = true
	}
	for c := op.Code(-20); c < 200; c++ {
		if isClientOp(c) && !seen[c] {
			t.Errorf("no round-trip sample for client op %s (%d)", c, c)
		}
	}
}

func TestResponseRoundTripEveryRecord(t *testing.T) {
	acl := []znode.ACL{{Perms: znode.PermRead, Scheme: "digest", ID: "u:x"}}
	cases := []struct {
		code op.Code
		resp op.Response
	}{
		{op.Create, &op.CreateResponse{OpCode: op.Create, Path: "/a0000000001"}},
		{op.Create2, &op.CreateResponse{OpCode: op.Create2, Path: "/a", Stat: testStat}},
		{op.CreateContainer, &op.CreateResponse{OpCode: op.CreateContainer, Path: "/c", Stat: testStat}},
		{op.CreateTTL, &op.CreateResponse{OpCode: op.CreateTTL, Path: "/t", Stat: testStat}},
		{op.Exists, &op.StatResponse{OpCode: op.Exists, Stat: testStat}},
		{op.SetData, &op.StatResponse{OpCode: op.SetData, Stat: testStat}},
		{op.SetACL, &op.StatResponse{OpCode: op.SetACL, Stat: testStat}},
		{op.GetData, &op.GetDataResponse{Data: []byte("v"), Stat: testStat}},
		{op.GetData, &op.GetDataResponse{Data: nil, Stat: testStat}},
		{op.GetACL, &op.GetACLResponse{ACL: acl, Stat: testStat}},
		{op.GetChildren, &op.GetChildrenResponse{OpCode: op.GetChildren, Children: []string{"a", "b"}}},
		{op.GetChildren2, &op.GetChildrenResponse{OpCode: op.GetChildren2, Children: []string{}, Stat: testStat}},
		{op.Sync, &op.SyncResponse{Path: "/"}},
		{op.Multi, &op.MultiResponse{OpCode: op.Multi, Results: []op.Result{{OpCode: op.Create2, Path: "/a", Stat: testStat}, {OpCode: op.Delete}}}},
		{op.Multi, &op.MultiResponse{OpCode: op.Multi}},
		{op.Reconfig, &op.ReconfigResponse{Data: []byte("server.1=h:2888:3888;2181\nversion=100000000"), Stat: testStat}},
		{op.GetEphemerals, &op.GetEphemeralsResponse{Paths: []string{"/e1", "/e2"}}},
		{op.GetAllChildrenNumber, &op.GetAllChildrenNumberResponse{Total: 42}},
		{op.WhoAmI, &op.WhoAmIResponse{Clients: []znode.ID{{Scheme: "ip", ID: "127.0.0.1"}, {Scheme: "digest", ID: "u"}}}},
		{op.SASL, &op.SASLResponse{Token: []byte{9, 8}}},
		{op.AddWatch, &op.EmptyResponse{OpCode: op.AddWatch}},
		{op.Delete, &op.EmptyResponse{OpCode: op.Delete}},
		{op.SetWatches, &op.EmptyResponse{OpCode: op.SetWatches}},
		{op.RemoveWatches, &op.EmptyResponse{OpCode: op.RemoveWatches}},
		{op.CheckWatches, &op.EmptyResponse{OpCode: op.CheckWatches}},
		{op.Auth, &op.EmptyResponse{OpCode: op.Auth}},
		{op.Ping, &op.EmptyResponse{OpCode: op.Ping}},
		{op.CloseSession, &op.EmptyResponse{OpCode: op.CloseSession}},
	}
	for _, tc := range cases {
		framed, err := appendReply(nil, 11, 22, zkerr.OK, tc.resp)
		if err != nil {
			t.Fatalf("%s: encode: %v", tc.code, err)
		}
		xid, zxid, code, body, err := decodeReplyHeader(framed[4:])
		if err != nil || xid != 11 || zxid != 22 || code != zkerr.OK {
			t.Fatalf("%s: header %d %d %d %v", tc.code, xid, zxid, code, err)
		}
		dec, err := decodeResponse(tc.code, body)
		if err != nil {
			t.Fatalf("%s: decode: %v", tc.code, err)
		}
		if !reflect.DeepEqual(dec, tc.resp) {
			t.Fatalf("%s: decoded %#v\nwant %#v", tc.code, dec, tc.resp)
		}
	}
}

func TestUnknownResponseTypeIsAnError(t *testing.T) {
	type bogus struct{ op.EmptyResponse }
	b := []byte{1, 2, 3}
	out, err := appendReply(b, 1, 1, zkerr.OK, &bogus{})
	if !errors.Is(err, zkerr.ErrMarshallingError) || !bytes.Equal(out, b) {
		t.Fatalf("got %x %v", out, err)
	}
	var typedNil *op.GetDataResponse
	if _, err = appendReply(nil, 1, 1, zkerr.OK, typedNil); !errors.Is(err, zkerr.ErrMarshallingError) {
		t.Fatalf("typed nil response: %v", err)
	}
	_, err = appendReply(nil, 1, 1, zkerr.OK, &op.MultiResponse{Results: []op.Result{{OpCode: op.Sync}}})
	if err == nil {
		t.Fatal("multi result of type sync encoded")
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	code := func(t *testing.T, frame []byte) zkerr.Code {
		t.Helper()
		_, req, err := decodeRequest(frame)
		if err == nil {
			t.Fatalf("decoded %#v from %x", req, frame)
		}
		return zkerr.CodeOf(err)
	}
	cases := []struct {
		name string
		hex  string
		want zkerr.Code
	}{
		{"short header", `000000`, zkerr.MarshallingError},
		{"lone check", `00000001 0000000d 00000002 2f61 00000001`, zkerr.Unimplemented},
		{"notification", `00000001 00000000`, zkerr.Unimplemented},
		{"createSession", `00000001 fffffff6`, zkerr.Unimplemented},
		{"error op", `00000001 ffffffff`, zkerr.Unimplemented},
		{"unknown 10", `00000001 0000000a`, zkerr.Unimplemented},
		{"unknown 999", `00000001 000003e7`, zkerr.Unimplemented},
		{"truncated path", `00000001 00000004 00000005 2f61`, zkerr.MarshallingError},
		{"negative path length", `00000001 00000004 fffffffe 00`, zkerr.MarshallingError},
		{"missing watch flag", `00000001 00000004 00000002 2f61`, zkerr.MarshallingError},
		{"huge acl count", `00000001 00000001 00000002 2f61 00000000 7fffffff`, zkerr.MarshallingError},
		{"acl count beyond data", `00000001 00000001 00000002 2f61 00000000 00000002 00000001 00000000 00000000`, zkerr.MarshallingError},
		{"huge watch vector", `00000001 00000065 0000000000000000 7ffffff0`, zkerr.MarshallingError},
		{"negative vector count", `00000001 00000065 0000000000000000 fffffffe`, zkerr.MarshallingError},
		{"multi without terminator", `00000001 0000000e 00000002 00 ffffffff 00000002 2f61 ffffffff`, zkerr.MarshallingError},
		{"multi with read op", `00000001 0000000e 00000004 00 ffffffff 00000002 2f61 00 ffffffff 01 ffffffff`, zkerr.MarshallingError},
		{"multiRead with write op", `00000001 00000016 00000002 00 ffffffff 00000002 2f61 ffffffff ffffffff 01 ffffffff`, zkerr.MarshallingError},
		{"nested multi", `00000001 0000000e 0000000e 00 ffffffff ffffffff 01 ffffffff ffffffff 01 ffffffff`, zkerr.MarshallingError},
		{"multi with ping", `00000001 0000000e 0000000b 00 ffffffff ffffffff 01 ffffffff`, zkerr.MarshallingError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(t, hx(t, tc.hex)); got != tc.want {
				t.Fatalf("code %d (%s), want %d", got, got, tc.want)
			}
		})
	}
}

func TestDecodeLenientLikeZooKeeper(t *testing.T) {
	// Trailing bytes are ignored, a null path reads as "", and any
	// non-zero boolean byte is true; none of these is canonical.
	for _, tc := range []struct {
		name string
		hex  string
		want op.Request
	}{
		{"trailing bytes", `00000001 00000004 00000002 2f61 01 eeee`, &op.GetDataRequest{Path: "/a", Watch: true}},
		{"null path", `00000001 00000004 ffffffff 00`, &op.GetDataRequest{Path: "", Watch: false}},
		{"boolean 7", `00000001 00000003 00000002 2f61 07`, &op.ExistsRequest{Path: "/a", Watch: true}},
	} {
		_, req, canonical, err := decodeRequestCanonical(hx(t, tc.hex))
		if err != nil || canonical || !reflect.DeepEqual(req, tc.want) {
			t.Fatalf("%s: %#v canonical=%v err=%v", tc.name, req, canonical, err)
		}
	}
}

func TestDecodeDoesNotAllocateFromClaimedLengths(t *testing.T) {
	// A vector count of 2^31-1 with nothing behind it must fail before any
	// allocation sized by the count.
	frame := hx(t, `00000001 00000065 0000000000000000 7fffffff`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := decodeRequest(frame); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations for a rejected frame", allocs)
	}
}

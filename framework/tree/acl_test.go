package tree

import (
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

var (
	alice     = znode.ID{Scheme: "digest", ID: znode.Digest("alice:pw")}
	bob       = znode.ID{Scheme: "digest", ID: znode.Digest("bob:pw")}
	localhost = znode.ID{Scheme: "ip", ID: "127.0.0.1"}
	anon      = Auth{IDs: []znode.ID{localhost}}
	asAlice   = Auth{IDs: []znode.ID{localhost, alice}}
	asBob     = Auth{IDs: []znode.ID{localhost, bob}}
)

func acl(perms int32, scheme, id string) znode.ACL {
	return znode.ACL{Perms: perms, Scheme: scheme, ID: id}
}

// §4 fixupACL and §8 item 7.
func TestFixupACL(t *testing.T) {
	x509 := znode.ID{Scheme: "x509", ID: "CN=client"}
	for _, tc := range []struct {
		name string
		in   []znode.ACL
		auth Auth
		want []znode.ACL // nil: InvalidACL
	}{
		{"empty list", nil, anon, nil},
		{"world anyone", open, anon, open},
		{"world other id", []znode.ACL{acl(31, "world", "someone")}, anon, nil},
		{"digest", []znode.ACL{acl(31, "digest", alice.ID)}, anon, []znode.ACL{acl(31, "digest", alice.ID)}},
		{"digest without colon", []znode.ACL{acl(31, "digest", "alice")}, anon, nil},
		{"digest empty password hash", []znode.ACL{acl(31, "digest", "alice:")}, anon, nil},
		{"digest two colons", []znode.ACL{acl(31, "digest", "a:b:c")}, anon, nil},
		{"digest empty user (Java split)", []znode.ACL{acl(31, "digest", ":h")}, anon, []znode.ACL{acl(31, "digest", ":h")}},
		{"ip", []znode.ACL{acl(1, "ip", "10.1.2.3")}, anon, []znode.ACL{acl(1, "ip", "10.1.2.3")}},
		{"ip cidr", []znode.ACL{acl(1, "ip", "10.0.0.0/8")}, anon, []znode.ACL{acl(1, "ip", "10.0.0.0/8")}},
		{"ip v6 cidr", []znode.ACL{acl(1, "ip", "fe80::/10")}, anon, []znode.ACL{acl(1, "ip", "fe80::/10")}},
		{"ip bits too large", []znode.ACL{acl(1, "ip", "10.0.0.0/33")}, anon, nil},
		{"ip garbage", []znode.ACL{acl(1, "ip", "localhost")}, anon, nil},
		{"ip bad octet", []znode.ACL{acl(1, "ip", "10.0.0.256")}, anon, nil},
		{"unknown scheme", []znode.ACL{acl(31, "foo", "bar")}, anon, nil},
		{"x509", []znode.ACL{acl(31, "x509", "CN=a")}, anon, []znode.ACL{acl(31, "x509", "CN=a")}},
		// auth expands to authenticated ids; ip does not count.
		{"auth with only ip", []znode.ACL{acl(31, "auth", "")}, anon, nil},
		{"auth with digest", []znode.ACL{acl(31, "auth", "whatever")}, asAlice, []znode.ACL{acl(31, "digest", alice.ID)}},
		{"auth with several", []znode.ACL{acl(5, "auth", "")}, Auth{IDs: []znode.ID{localhost, alice, x509, bob}},
			[]znode.ACL{acl(5, "digest", alice.ID), acl(5, "x509", "CN=client"), acl(5, "digest", bob.ID)}},
		{"super id is not expanded", []znode.ACL{acl(31, "auth", "")}, Auth{IDs: []znode.ID{{Scheme: "super", ID: ""}}}, nil},
		{"duplicates removed", []znode.ACL{acl(31, "digest", alice.ID), acl(1, "world", "anyone"), acl(31, "digest", alice.ID)}, anon,
			[]znode.ACL{acl(31, "digest", alice.ID), acl(1, "world", "anyone")}},
		{"one bad entry spoils the list", []znode.ACL{acl(31, "world", "anyone"), acl(31, "ip", "x")}, anon, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Options{})
			_, _, err := tr.Apply(Ctx{Zxid: 1, Auth: tc.auth}, &op.CreateRequest{Path: "/n", ACL: tc.in})
			if tc.want == nil {
				if zkerr.CodeOf(err) != zkerr.InvalidACL {
					t.Fatalf("err %v, want InvalidACL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.Read(Auth{Super: true}, 0, &op.GetACLRequest{Path: "/n"})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.(*op.GetACLResponse).ACL; !slices.Equal(got, tc.want) {
				t.Fatalf("stored %v, want %v", got, tc.want)
			}
		})
	}
}

// ZooKeeperServer.checkACL and the providers' matches().
func TestCheckACLMatrix(t *testing.T) {
	tr := New(Options{})
	l := func(a ...znode.ACL) *aclList { return tr.acls.intern(a) }
	for _, tc := range []struct {
		name string
		acl  *aclList
		perm int32
		auth Auth
		ok   bool
	}{
		{"world grants", l(acl(znode.PermRead, "world", "anyone")), znode.PermRead, Auth{}, true},
		{"world wrong perm", l(acl(znode.PermRead, "world", "anyone")), znode.PermWrite, Auth{}, false},
		{"any requested bit suffices", l(acl(znode.PermAdmin, "world", "anyone")), znode.PermRead | znode.PermAdmin, Auth{}, true},
		{"digest match", l(acl(31, "digest", alice.ID)), znode.PermWrite, asAlice, true},
		{"digest other user", l(acl(31, "digest", alice.ID)), znode.PermWrite, asBob, false},
		{"digest wrong password", l(acl(31, "digest", alice.ID)), znode.PermWrite, Auth{IDs: []znode.ID{{Scheme: "digest", ID: znode.Digest("alice:wrong")}}}, false},
		{"digest unauthenticated", l(acl(31, "digest", alice.ID)), znode.PermRead, anon, false},
		{"ip exact", l(acl(31, "ip", "127.0.0.1")), znode.PermRead, anon, true},
		{"ip other", l(acl(31, "ip", "127.0.0.2")), znode.PermRead, anon, false},
		{"ip cidr contains", l(acl(31, "ip", "10.1.0.0/16")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "ip", ID: "10.1.200.3"}}}, true},
		{"ip cidr excludes", l(acl(31, "ip", "10.1.0.0/16")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "ip", ID: "10.2.0.3"}}}, false},
		{"ip cidr /0", l(acl(31, "ip", "0.0.0.0/0")), znode.PermRead, anon, true},
		{"ip v6 cidr", l(acl(31, "ip", "2001:db8::/32")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "ip", ID: "2001:db8::7"}}}, true},
		{"ip v4 vs v6", l(acl(31, "ip", "0.0.0.0/0")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "ip", ID: "::1"}}}, false},
		{"ip scheme must match", l(acl(31, "ip", "127.0.0.1")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "digest", ID: "127.0.0.1"}}}, false},
		{"super flag", l(acl(1, "digest", alice.ID)), znode.PermAdmin, Auth{Super: true}, true},
		{"super id", l(acl(1, "digest", alice.ID)), znode.PermAdmin, Auth{IDs: []znode.ID{{Scheme: "super", ID: ""}}}, true},
		{"empty ACL allows all", l(), znode.PermAdmin, Auth{}, true},
		{"x509 exact", l(acl(31, "x509", "CN=a")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "x509", ID: "CN=a"}}}, true},
		{"unknown scheme never matches", l(acl(31, "foo", "bar")), znode.PermRead, Auth{IDs: []znode.ID{{Scheme: "foo", ID: "bar"}}}, false},
	} {
		if got := checkACL(tc.acl, tc.perm, tc.auth); got != tc.ok {
			t.Errorf("%s: checkACL = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// Each op needs its permission: CREATE on the parent for create, DELETE on
// the parent for delete, WRITE for setData, ADMIN for setACL, READ for
// getData/getChildren/getAllChildrenNumber/check; exists needs nothing.
func TestOpPermissions(t *testing.T) {
	for _, perm := range []int32{znode.PermRead, znode.PermWrite, znode.PermCreate, znode.PermDelete, znode.PermAdmin} {
		tr := New(Options{})
		// /n grants alice everything and anyone only `perm`.
		nodeACL := []znode.ACL{acl(31, "digest", alice.ID), acl(perm, "world", "anyone")}
		mustApply(t, tr, Ctx{Zxid: 1, Auth: asAlice}, &op.CreateRequest{Path: "/n", ACL: nodeACL})
		mustApply(t, tr, Ctx{Zxid: 2, Auth: asAlice}, &op.CreateRequest{Path: "/n/c", ACL: open})
		expect := func(name string, need int32, code zkerr.Code) {
			t.Helper()
			want := zkerr.OK
			if perm&need == 0 {
				want = zkerr.NoAuth
			}
			if code != want {
				t.Errorf("perm %d: %s: %v, want %v", perm, name, code, want)
			}
		}
		c := Ctx{Zxid: 3, Auth: anon}
		codeOf := func(req op.Request) zkerr.Code {
			_, _, err := fork(tr).Apply(c, req)
			return zkerr.CodeOf(err)
		}
		expect("create child", znode.PermCreate, codeOf(&op.CreateRequest{Path: "/n/x", ACL: open}))
		expect("delete child", znode.PermDelete, codeOf(&op.DeleteRequest{Path: "/n/c", Version: -1}))
		expect("setData", znode.PermWrite, codeOf(&op.SetDataRequest{Path: "/n", Version: -1}))
		expect("setACL", znode.PermAdmin, codeOf(&op.SetACLRequest{Path: "/n", ACL: open, Version: -1}))
		mr, _, _ := fork(tr).Apply(c, &op.MultiRequest{Ops: []op.Request{&op.CheckRequest{Path: "/n", Version: -1}}})
		expect("check", znode.PermRead, zkerr.Code(mr.(*op.MultiResponse).Results[0].Err))
		expect("getData", znode.PermRead, readCode(t, tr, anon, &op.GetDataRequest{Path: "/n"}))
		expect("getChildren", znode.PermRead, readCode(t, tr, anon, &op.GetChildrenRequest{Path: "/n"}))
		expect("getAllChildrenNumber", znode.PermRead, readCode(t, tr, anon, &op.GetAllChildrenNumberRequest{Path: "/n"}))
		expect("getACL", znode.PermRead|znode.PermAdmin, readCode(t, tr, anon, &op.GetACLRequest{Path: "/n"}))
		// §8 item 7: exists ignores ACLs.
		if code := readCode(t, tr, anon, &op.ExistsRequest{Path: "/n"}); code != zkerr.OK {
			t.Errorf("perm %d: exists: %v", perm, code)
		}
		// The owner may do everything.
		if code := readCode(t, tr, asAlice, &op.GetDataRequest{Path: "/n"}); code != zkerr.OK {
			t.Errorf("perm %d: alice getData: %v", perm, code)
		}
	}
}

// §8 item 7: DELETE is checked on the parent, so an unauthenticated client
// may delete a digest-protected leaf under an open parent; and the parent's
// check comes before the child's existence.
func TestDeleteChecksParentACL(t *testing.T) {
	tr := New(Options{})
	mustApply(t, tr, Ctx{Zxid: 1, Auth: asAlice}, &op.CreateRequest{Path: "/open", ACL: open})
	mustApply(t, tr, Ctx{Zxid: 2, Auth: asAlice}, &op.CreateRequest{Path: "/open/leaf", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	mustApply(t, tr, Ctx{Zxid: 3, Auth: anon}, &op.DeleteRequest{Path: "/open/leaf", Version: -1})
	if tr.Exists("/open/leaf") {
		t.Fatal("leaf not deleted")
	}
	mustApply(t, tr, Ctx{Zxid: 4, Auth: asAlice}, &op.CreateRequest{Path: "/closed", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	mustApply(t, tr, Ctx{Zxid: 5, Auth: asAlice}, &op.CreateRequest{Path: "/closed/leaf", ACL: open})
	if code := applyCode(t, tr, Ctx{Zxid: 6, Auth: anon}, &op.DeleteRequest{Path: "/closed/leaf", Version: -1}); code != zkerr.NoAuth {
		t.Fatalf("delete under protected parent: %v", code)
	}
	if code := applyCode(t, tr, Ctx{Zxid: 6, Auth: anon}, &op.DeleteRequest{Path: "/closed/missing", Version: -1}); code != zkerr.NoAuth {
		t.Fatalf("delete missing under protected parent: %v (parent check first)", code)
	}
	mustApply(t, tr, Ctx{Zxid: 7, Auth: asAlice}, &op.DeleteRequest{Path: "/closed/leaf", Version: -1})
}

// Create: InvalidACL (fixupACL) before NoNode (parent) before NoAuth.
func TestCreateCheckOrder(t *testing.T) {
	tr := New(Options{})
	mustApply(t, tr, Ctx{Zxid: 1, Auth: asAlice}, &op.CreateRequest{Path: "/closed", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	c := Ctx{Zxid: 2, Auth: anon}
	if code := applyCode(t, tr, c, &op.CreateRequest{Path: "/missing/x"}); code != zkerr.InvalidACL {
		t.Fatalf("bad ACL + missing parent: %v", code)
	}
	if code := applyCode(t, tr, c, &op.CreateRequest{Path: "/missing/x", ACL: open}); code != zkerr.NoNode {
		t.Fatalf("missing parent: %v", code)
	}
	if code := applyCode(t, tr, c, &op.CreateRequest{Path: "/closed/x", ACL: open}); code != zkerr.NoAuth {
		t.Fatalf("protected parent: %v", code)
	}
}

// §8 item 7: the permission check comes before the version check.
func TestNoAuthBeforeBadVersion(t *testing.T) {
	tr := New(Options{})
	mustApply(t, tr, Ctx{Zxid: 1, Auth: asAlice}, &op.CreateRequest{Path: "/p", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	mustApply(t, tr, Ctx{Zxid: 2, Auth: asAlice}, &op.CreateRequest{Path: "/p/c", ACL: []znode.ACL{acl(31, "digest", alice.ID)}})
	c := Ctx{Zxid: 3, Auth: asBob}
	for _, req := range []op.Request{
		&op.SetACLRequest{Path: "/p/c", ACL: open, Version: 42},
		&op.SetDataRequest{Path: "/p/c", Version: 42},
		&op.DeleteRequest{Path: "/p/c", Version: 42},
	} {
		if code := applyCode(t, tr, c, req); code != zkerr.NoAuth {
			t.Errorf("%T with wrong version and no permission: %v, want NoAuth", req, code)
		}
		if code := applyCode(t, tr, Ctx{Zxid: 3, Auth: asAlice}, req); code != zkerr.BadVersion {
			t.Errorf("%T with wrong version: %v, want BadVersion", req, code)
		}
	}
}

// §8 item 7: getACL needs READ or ADMIN; without ADMIN digest ids come
// back as user:x.
func TestGetACLMasking(t *testing.T) {
	tr := New(Options{})
	full := []znode.ACL{acl(znode.PermRead, "world", "anyone"), acl(31, "digest", alice.ID), acl(1, "digest", "odd:a:b"), acl(1, "ip", "10.0.0.0/8")}
	mustApply(t, tr, Ctx{Zxid: 1, Auth: Auth{Super: true}}, &op.CreateRequest{Path: "/r", ACL: full[:2]})
	// Store an id with two colons directly (fixupACL would refuse it) to
	// check the "from the first colon" masking rule.
	x := tr.begin(cx(2))
	x.update("/r", func(n *node) *node {
		x.v.digest -= metaHash("/r", n)
		m := x.own(n)
		m.acl = tr.acls.intern(full)
		x.v.digest += metaHash("/r", m)
		return m
	})
	x.commit()
	get := func(a Auth) ([]znode.ACL, zkerr.Code) {
		resp, err := tr.Read(a, 0, &op.GetACLRequest{Path: "/r"})
		if err != nil {
			return nil, zkerr.CodeOf(err)
		}
		return resp.(*op.GetACLResponse).ACL, zkerr.OK
	}
	masked := []znode.ACL{full[0], acl(31, "digest", "alice:x"), acl(1, "digest", "odd:x"), full[3]}
	if got, _ := get(anon); !slices.Equal(got, masked) {
		t.Fatalf("reader without ADMIN got %v, want %v", got, masked)
	}
	if got, _ := get(asAlice); !slices.Equal(got, full) {
		t.Fatalf("admin got %v", got)
	}
	if got, _ := get(Auth{Super: true}); !slices.Equal(got, full) {
		t.Fatalf("super got %v", got)
	}
	// The stored list is not altered by masking or by callers.
	got, _ := get(asAlice)
	got[0].ID = "changed"
	if again, _ := get(asAlice); !slices.Equal(again, full) {
		t.Fatal("getACL result aliases the stored list")
	}

	// ADMIN without READ is enough, and is unmasked.
	mustApply(t, tr, Ctx{Zxid: 3, Auth: Auth{Super: true}}, &op.CreateRequest{Path: "/a", ACL: []znode.ACL{acl(znode.PermAdmin, "digest", alice.ID), acl(znode.PermWrite, "world", "anyone")}})
	resp, err := tr.Read(asAlice, 0, &op.GetACLRequest{Path: "/a"})
	if err != nil || resp.(*op.GetACLResponse).ACL[0].ID != alice.ID {
		t.Fatalf("ADMIN-only getACL: %v %v", resp, err)
	}
	if code := readCode(t, tr, anon, &op.GetACLRequest{Path: "/a"}); code != zkerr.NoAuth {
		t.Fatalf("no READ nor ADMIN: %v", code)
	}
	if code := readCode(t, tr, anon, &op.GetACLRequest{Path: "/none"}); code != zkerr.NoNode {
		t.Fatalf("missing: %v", code)
	}
}

func TestSetACLAuthScheme(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/n", "", znode.Persistent)
	mustApply(t, tr, Ctx{Zxid: 2, Auth: asAlice}, &op.SetACLRequest{Path: "/n", ACL: znode.CreatorAllACL, Version: -1})
	if code := readCode(t, tr, asBob, &op.GetDataRequest{Path: "/n"}); code != zkerr.NoAuth {
		t.Fatalf("bob after creator-only ACL: %v", code)
	}
	if code := readCode(t, tr, asAlice, &op.GetDataRequest{Path: "/n"}); code != zkerr.OK {
		t.Fatalf("alice: %v", code)
	}
	if code := applyCode(t, tr, Ctx{Zxid: 3, Auth: asAlice}, &op.SetACLRequest{Path: "/n", Version: -1}); code != zkerr.InvalidACL {
		t.Fatalf("empty ACL: %v", code)
	}
}

package tree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// randomOp returns a write over a small path space so that creates,
// conflicts, deletes and multis all happen often.
func randomOp(rng *rand.Rand) op.Request {
	path := func() string {
		p := ""
		for d := 0; d < 1+rng.IntN(3); d++ {
			p += fmt.Sprintf("/%c", 'a'+rng.IntN(4))
		}
		return p
	}
	modes := []znode.CreateMode{znode.Persistent, znode.Ephemeral, znode.PersistentSequential, znode.EphemeralSequential, znode.Container, znode.PersistentWithTTL}
	acls := [][]znode.ACL{open, znode.CreatorAllACL, {acl(znode.PermRead|znode.PermCreate|znode.PermDelete, "world", "anyone")}}
	one := func() op.Request {
		switch rng.IntN(6) {
		case 0, 1:
			m := modes[rng.IntN(len(modes))]
			r := &op.CreateRequest{OpCode: op.Create2, Path: path(), Data: []byte(fmt.Sprint(rng.IntN(100))), ACL: acls[rng.IntN(len(acls))], Mode: m}
			if m == znode.PersistentWithTTL {
				r.OpCode, r.TTL = op.CreateTTL, int64(1+rng.IntN(100))
			}
			return r
		case 2:
			return &op.DeleteRequest{Path: path(), Version: int32(rng.IntN(3)) - 1}
		case 3:
			return &op.SetDataRequest{Path: path(), Data: bytes.Repeat([]byte{'x'}, rng.IntN(5)), Version: int32(rng.IntN(3)) - 1}
		case 4:
			return &op.SetACLRequest{Path: path(), ACL: acls[rng.IntN(len(acls))], Version: -1}
		default:
			return &op.DeleteContainerRequest{Path: path()}
		}
	}
	if rng.IntN(5) == 0 {
		var ops []op.Request
		for i := 0; i < 1+rng.IntN(4); i++ {
			switch r := one().(type) {
			case *op.SetACLRequest, *op.DeleteContainerRequest:
				ops = append(ops, &op.CheckRequest{Path: path(), Version: -1})
			default:
				ops = append(ops, r)
			}
		}
		return &op.MultiRequest{Ops: ops}
	}
	return one()
}

// Two trees, one restored from the other's snapshot half way, given the
// same requests must answer, fire events and end identically; the kept
// counters and indexes must match a recomputation throughout.
func TestRandomOpsDeterministic(t *testing.T) {
	tally := map[string]int{}
	for seed := uint64(1); seed <= 4; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		a := New(Options{ExtendedTypes: true})
		var b *Tree
		for i := 0; i < 1000; i++ {
			if i == 500 {
				b = New(Options{})
				var buf bytes.Buffer
				if _, err := a.Snapshot().WriteTo(&buf); err != nil {
					t.Fatal(err)
				}
				if err := b.Restore(&buf); err != nil {
					t.Fatal(err)
				}
				b.opts = a.opts
			}
			z := int64(i + 1)
			c := Ctx{Zxid: z, Time: z * 10, Session: int64(1 + rng.IntN(3)), Auth: []Auth{anon, asAlice, asBob}[rng.IntN(3)]}
			if rng.IntN(25) == 0 {
				s := int64(1 + rng.IntN(3))
				ea := a.CloseSession(c, s)
				if b != nil && !slices.Equal(ea, b.CloseSession(c, s)) {
					t.Fatalf("seed %d step %d: close session events differ", seed, i)
				}
				continue
			}
			req := randomOp(rng)
			ra, ea, erra := a.Apply(c, req)
			outcome := "ok"
			if erra != nil {
				outcome = "err"
			} else if mr, ok := ra.(*op.MultiResponse); ok && len(mr.Results) > 0 && mr.Results[0].OpCode == op.Error {
				outcome = "failed"
			}
			tally[fmt.Sprintf("%T/%s", req, outcome)]++
			if b != nil {
				rb, eb, errb := b.Apply(c, req)
				if !reflect.DeepEqual(ra, rb) || !slices.Equal(ea, eb) || fmt.Sprint(erra) != fmt.Sprint(errb) {
					t.Fatalf("seed %d step %d: %T diverged:\n%+v %v %v\n%+v %v %v", seed, i, req, ra, ea, erra, rb, eb, errb)
				}
			}
			if i%25 == 0 {
				checkInvariants(t, a)
			}
		}
		checkInvariants(t, a)
		checkInvariants(t, b)
		if a.Digest() != b.Digest() {
			t.Fatalf("seed %d: digests differ", seed)
		}
		if n, _, _ := a.Counts(); n < 10 {
			t.Fatalf("seed %d: random ops built only %d nodes", seed, n)
		}
	}
	// The mix must exercise both outcomes of every kind of write.
	for _, k := range []string{"*op.CreateRequest", "*op.DeleteRequest", "*op.SetDataRequest", "*op.SetACLRequest", "*op.DeleteContainerRequest"} {
		if tally[k+"/ok"] == 0 || tally[k+"/err"] == 0 {
			t.Errorf("%s: %d ok, %d failed", k, tally[k+"/ok"], tally[k+"/err"])
		}
	}
	if tally["*op.MultiRequest/ok"] == 0 || tally["*op.MultiRequest/failed"] == 0 {
		t.Errorf("multi: %d ok, %d failed", tally["*op.MultiRequest/ok"], tally["*op.MultiRequest/failed"])
	}
	t.Logf("outcomes: %v", tally)
}

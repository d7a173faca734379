package tree

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// Readers run against a writer (go test -race). Every read sees one whole
// version: a node's data always matches its version, pairs created by one
// multi are seen together, and snapshots taken mid-stream restore to
// consistent trees.
func TestConcurrentReadersDuringWrites(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/v", "0", znode.Persistent)
	mustCreate(t, tr, cx(2), "/pairs", "", znode.Persistent)
	const writes = 1500
	var done atomic.Bool
	var overlapped atomic.Int64 // reads that started while writes were going on
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}

	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer done.Store(true)
		for i := 0; i < writes; i++ {
			z := int64(10 + i)
			c := Ctx{Zxid: z, Time: z, Session: int64(i%5 + 1)}
			var req op.Request
			switch i % 4 {
			case 0:
				st, _ := tr.Stat("/v")
				req = &op.SetDataRequest{Path: "/v", Data: []byte(strconv.Itoa(int(st.Version) + 1)), Version: st.Version}
			case 1:
				req = &op.MultiRequest{Ops: []op.Request{
					&op.CreateRequest{Path: fmt.Sprintf("/pairs/a%d", i), ACL: open},
					&op.CreateRequest{Path: fmt.Sprintf("/pairs/b%d", i), ACL: open},
				}}
			case 2:
				req = &op.CreateRequest{Path: "/e-", ACL: open, Mode: znode.EphemeralSequential}
			case 3:
				tr.CloseSession(c, int64(i%5+1))
				continue
			}
			if _, _, err := tr.Apply(c, req); err != nil {
				fail("write %d: %v", i, err)
				return
			}
		}
	}()

	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) { // readers
			defer wg.Done()
			for n := 0; !done.Load(); n++ {
				overlapped.Add(1)
				resp, err := tr.Read(Auth{}, 0, &op.GetDataRequest{Path: "/v"})
				if err != nil {
					fail("getData: %v", err)
					return
				}
				gd := resp.(*op.GetDataResponse)
				if string(gd.Data) != strconv.Itoa(int(gd.Stat.Version)) {
					fail("torn read: data %q at version %d", gd.Data, gd.Stat.Version)
					return
				}
				resp, err = tr.Read(Auth{}, 0, &op.GetChildrenRequest{Path: "/pairs"})
				if err != nil {
					fail("getChildren: %v", err)
					return
				}
				kids := resp.(*op.GetChildrenResponse).Children
				set := map[string]bool{}
				for _, k := range kids {
					set[k] = true
				}
				for _, k := range kids {
					if strings.HasPrefix(k, "a") && !set["b"+k[1:]] {
						fail("multi seen half applied: %s without its pair", k)
						return
					}
				}
				tr.Counts()
				tr.EphemeralSessions()
				tr.ReapCandidates(0, 10)
				if n%50 == r {
					snap := tr.Snapshot()
					var buf bytes.Buffer
					if _, err := snap.WriteTo(&buf); err != nil {
						fail("WriteTo: %v", err)
						return
					}
					back := New(Options{})
					if err := back.Restore(&buf); err != nil {
						fail("restore of a concurrent snapshot: %v", err)
						return
					}
					if back.Digest() != snap.Digest() {
						fail("restored digest differs")
						return
					}
				}
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if overlapped.Load() < 10 {
		t.Fatalf("only %d reads overlapped the writes", overlapped.Load())
	}
	t.Logf("%d reads overlapped %d writes", overlapped.Load(), writes)
	checkInvariants(t, tr)
	if st := mustStat(t, tr, "/pairs"); st.NumChildren != 2*(writes/4) {
		t.Fatalf("pairs: %d children", st.NumChildren)
	}
}

// 100k children under one parent, through Apply: each create copies only
// a path of the parent's trie, and every child stays reachable.
func TestHundredThousandChildren(t *testing.T) {
	tr := New(Options{})
	mustCreate(t, tr, cx(1), "/big", "", znode.Persistent)
	const n = 100_000
	for i := 0; i < n; i++ {
		if _, _, err := tr.Apply(cx(int64(2+i)), &op.CreateRequest{Path: "/big/n-", ACL: open, Mode: znode.PersistentSequential}); err != nil {
			t.Fatal(err)
		}
	}
	if st := mustStat(t, tr, "/big"); st.NumChildren != n || st.Cversion != n {
		t.Fatalf("stat %+v", st)
	}
	kids := getChildren(t, tr, "/big")
	if len(kids) != n || kids[0] != "n-0000000000" || kids[n-1] != fmt.Sprintf("n-%010d", n-1) {
		t.Fatalf("%d children, first %s last %s", len(kids), kids[0], kids[len(kids)-1])
	}
	for i := 0; i < n; i += 997 {
		if !tr.Exists(fmt.Sprintf("/big/n-%010d", i)) {
			t.Fatalf("child %d missing", i)
		}
	}
	for i := 0; i < n; i += 2 {
		if _, _, err := tr.Apply(cx(int64(n+10+i)), &op.DeleteRequest{Path: fmt.Sprintf("/big/n-%010d", i), Version: -1}); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, tr)
	if got := len(getChildren(t, tr, "/big")); got != n/2 {
		t.Fatalf("%d children after deletes", got)
	}
}

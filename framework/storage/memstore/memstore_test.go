package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/framework/storage"
	"github.com/corral-dev/corral/framework/storage/memstore"
)

func TestConformance(t *testing.T) {
	conformance.RunStorage(t, conformance.StorageHarness{
		New: func(*testing.T) storage.Store { return memstore.New() },
		Reopen: func(_ *testing.T, old storage.Store) storage.Store {
			return old.(*memstore.Store).Reopen()
		},
	})
}

// The conformance suite damages snapshots through files on disk, which
// memstore has none of; the checksum is tested here instead.
func TestSnapshotChecksum(t *testing.T) {
	s := memstore.New()
	ss := s.Snapshots()
	k, err := ss.Create(storage.SnapshotMeta{Index: 3, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("abcdefgh"), 10_000)
	if _, err := k.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	memstore.Corrupt(s, k.ID(), 12345)
	_, rc, err := ss.Open(k.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Fatal("a flipped bit went unnoticed")
	}
}

func TestRetainsNewestSnapshots(t *testing.T) {
	ss := memstore.New().Snapshots()
	var ids []string
	for _, idx := range []uint64{5, 9, 7, 9} {
		k, err := ss.Create(storage.SnapshotMeta{Index: idx, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(); err == nil {
			t.Fatal("second Close succeeded")
		}
		if err := k.Cancel(); err != nil {
			t.Fatalf("Cancel after Close: %v", err)
		}
		ids = append(ids, k.ID())
	}
	list, err := ss.List()
	if err != nil {
		t.Fatal(err)
	}
	// Two kept: both at index 9, the later one first.
	if len(list) != memstore.DefaultRetain || list[0].ID != ids[3] || list[1].ID != ids[1] {
		t.Fatalf("List = %+v, want ids %s, %s", list, ids[3], ids[1])
	}
	if _, _, err := ss.Open(ids[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pruned snapshot still opens: %v", err)
	}
}

func TestReopenSharesData(t *testing.T) {
	s := memstore.New()
	ctx := context.Background()
	if err := s.Write(ctx, storage.Batch{Entries: []storage.LogEntry{{Index: 1, Term: 1, Data: []byte("a")}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.LastIndex(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("closed handle: %v", err)
	}
	if _, err := s.Snapshots().Create(storage.SnapshotMeta{}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Create on a closed store: %v", err)
	}
	s2 := s.Reopen()
	if e, err := s2.Entry(1); err != nil || string(e.Data) != "a" {
		t.Fatalf("Entry(1) after reopen = %+v, %v", e, err)
	}
}

package logfmt

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/corral-dev/corral/framework/storage"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []storage.LogEntry{
		{Index: 1, Term: 1},
		{Index: 7, Term: 3, Kind: 2, Data: []byte("hello")},
		{Index: 1<<64 - 1, Term: 1<<64 - 1, Kind: 255, Data: bytes.Repeat([]byte{0xAB}, 4096)},
	} {
		v := EncodeEntry(e)
		if len(v) != EntryOverhead+len(e.Data) || EntryDataLen(v) != uint64(len(e.Data)) {
			t.Fatalf("entry %d: encoded %d bytes, data len %d", e.Index, len(v), EntryDataLen(v))
		}
		got, err := DecodeEntry(e.Index, v)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		if got.Index != e.Index || got.Term != e.Term || got.Kind != e.Kind || !bytes.Equal(got.Data, e.Data) {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
		// The decoded entry owns its data: the engine may reuse v.
		if len(v) > EntryOverhead {
			v[EntryOverhead] ^= 0xFF
			if !bytes.Equal(got.Data, e.Data) {
				t.Fatal("decoded Data aliases the stored value")
			}
		}
	}
}

func TestEntryDamageDetected(t *testing.T) {
	v := EncodeEntry(storage.LogEntry{Index: 5, Term: 2, Kind: 1, Data: []byte("payload")})
	for i := range v {
		for bit := 0; bit < 8; bit++ {
			d := bytes.Clone(v)
			d[i] ^= 1 << bit
			if _, err := DecodeEntry(5, d); !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("byte %d bit %d flipped: err = %v, want storage.ErrCorrupt", i, bit, err)
			}
		}
	}
	// The right bytes under the wrong index.
	_, err := DecodeEntry(6, v)
	if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "log entry 6") {
		t.Fatalf("misfiled entry: err = %v", err)
	}
	for n := 0; n < EntryOverhead; n++ {
		if _, err := DecodeEntry(5, v[:n]); !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("%d-byte value: err = %v, want storage.ErrCorrupt", n, err)
		}
	}
	if EntryDataLen(v[:3]) != 0 {
		t.Fatal("EntryDataLen of a short value is not 0")
	}
}

func TestStateRoundTripAndDamage(t *testing.T) {
	for _, val := range [][]byte{{}, []byte("v"), bytes.Repeat([]byte{1, 2, 3}, 100)} {
		v := EncodeState("raft/CurrentTerm", val)
		got, err := DecodeState("raft/CurrentTerm", v)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		v[len(v)-1] ^= 0x80
		if _, err := DecodeState("raft/CurrentTerm", v); !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("flipped bit: err = %v", err)
		}
	}
	// A value stored under another key does not check out.
	v := EncodeState("a", []byte("x"))
	if _, err := DecodeState("b", v); !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("misfiled state: err = %v", err)
	}
	if _, err := DecodeState("a", v[:3]); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("short state: err = %v", err)
	}
}

func TestFormatVersion(t *testing.T) {
	if v, err := DecodeFormatVersion(EncodeFormatVersion(1), 1); v != 1 || err != nil {
		t.Fatalf("current version: %d, %v", v, err)
	}
	if v, err := DecodeFormatVersion(EncodeFormatVersion(1), 3); v != 1 || err != nil {
		t.Fatalf("older version: %d, %v", v, err)
	}
	_, err := DecodeFormatVersion(EncodeFormatVersion(2), 1)
	if !errors.Is(err, ErrNewerFormat) || errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("newer version: %v", err)
	}
	for _, b := range [][]byte{nil, {0, 0, 1}, {0, 0, 0, 1, 0}, EncodeFormatVersion(0)} {
		if _, err := DecodeFormatVersion(b, 1); !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("record %v: err = %v, want storage.ErrCorrupt", b, err)
		}
	}
}

func ents(lo, hi uint64) []storage.LogEntry {
	var out []storage.LogEntry
	for i := lo; i <= hi; i++ {
		out = append(out, storage.LogEntry{Index: i, Term: 1})
	}
	return out
}

func TestApplyBatch(t *testing.T) {
	none := Span{1, 0}
	cases := []struct {
		name   string
		b      Bounds
		bt     storage.Batch
		del    Span
		after  Bounds
		errHas string
	}{
		{name: "first append to empty log at any index", b: Bounds{}, bt: storage.Batch{Entries: ents(10, 12)}, del: none, after: Bounds{10, 12}},
		{name: "append continues", b: Bounds{1, 5}, bt: storage.Batch{Entries: ents(6, 7)}, del: none, after: Bounds{1, 7}},
		{name: "gap", b: Bounds{1, 5}, bt: storage.Batch{Entries: ents(7, 8)}, errHas: "starts at index 7, log ends at 5"},
		{name: "overlap without truncation", b: Bounds{1, 5}, bt: storage.Batch{Entries: ents(5, 6)}, errHas: "starts at index 5"},
		{name: "index 0", b: Bounds{}, bt: storage.Batch{Entries: ents(0, 1)}, errHas: "index 0"},
		{name: "not contiguous", b: Bounds{}, bt: storage.Batch{Entries: []storage.LogEntry{{Index: 1}, {Index: 3}}}, errHas: "3 follows 1"},
		{name: "truncate suffix and reappend", b: Bounds{1, 10}, bt: storage.Batch{TruncateFrom: 8, Entries: ents(8, 9)}, del: Span{8, 10}, after: Bounds{1, 9}},
		{name: "truncate suffix only", b: Bounds{3, 10}, bt: storage.Batch{TruncateFrom: 8}, del: Span{8, 10}, after: Bounds{3, 7}},
		{name: "truncate all from below first", b: Bounds{3, 10}, bt: storage.Batch{TruncateFrom: 1}, del: Span{3, 10}, after: Bounds{}},
		{name: "truncate all then restart elsewhere", b: Bounds{3, 10}, bt: storage.Batch{TruncateFrom: 3, Entries: ents(20, 21)}, del: Span{3, 10}, after: Bounds{20, 21}},
		{name: "truncate past the end", b: Bounds{3, 10}, bt: storage.Batch{TruncateFrom: 11, Entries: ents(11, 11)}, del: none, after: Bounds{3, 11}},
		{name: "truncate on empty log", b: Bounds{}, bt: storage.Batch{TruncateFrom: 4}, del: none, after: Bounds{}},
		{name: "truncate then gap", b: Bounds{1, 10}, bt: storage.Batch{TruncateFrom: 5, Entries: ents(7, 7)}, errHas: "starts at index 7, log ends at 4"},
		{name: "state only", b: Bounds{2, 3}, bt: storage.Batch{State: map[string][]byte{"k": nil}}, del: none, after: Bounds{2, 3}},
		{name: "empty state key", b: Bounds{}, bt: storage.Batch{Entries: ents(1, 1), State: map[string][]byte{"": nil}}, errHas: "state key length 0"},
		{name: "long state key", b: Bounds{}, bt: storage.Batch{State: map[string][]byte{strings.Repeat("k", MaxStateKey+1): nil}}, errHas: "state key length 1025"},
		{name: "longest state key", b: Bounds{}, bt: storage.Batch{State: map[string][]byte{strings.Repeat("k", MaxStateKey): nil}}, del: none, after: Bounds{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, nb, err := c.b.ApplyBatch(c.bt)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, c.errHas)
				}
				if nb != c.b {
					t.Fatalf("rejected batch moved bounds %v to %v", c.b, nb)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Delete != c.del || nb != c.after {
				t.Fatalf("delete %v bounds %v, want %v %v", p.Delete, nb, c.del, c.after)
			}
			if !reflect.DeepEqual(p.Entries, c.bt.Entries) || !reflect.DeepEqual(p.State, c.bt.State) {
				t.Fatal("plan does not carry the batch's entries and state")
			}
		})
	}
}

func TestApplyCompact(t *testing.T) {
	cases := []struct {
		b     Bounds
		upTo  uint64
		del   Span
		after Bounds
	}{
		{Bounds{}, 5, Span{1, 0}, Bounds{}},
		{Bounds{5, 10}, 4, Span{1, 0}, Bounds{5, 10}},
		{Bounds{5, 10}, 5, Span{5, 5}, Bounds{6, 10}},
		{Bounds{5, 10}, 9, Span{5, 9}, Bounds{10, 10}},
		{Bounds{5, 10}, 10, Span{5, 10}, Bounds{}},
		{Bounds{5, 10}, 1 << 40, Span{5, 10}, Bounds{}},
	}
	for _, c := range cases {
		p, nb := c.b.ApplyCompact(c.upTo)
		if p.Delete != c.del || nb != c.after || len(p.Entries) != 0 || len(p.State) != 0 {
			t.Fatalf("compact %v up to %d: delete %v bounds %v, want %v %v", c.b, c.upTo, p.Delete, nb, c.del, c.after)
		}
		if p.Noop() != c.del.Empty() {
			t.Fatalf("compact %v up to %d: Noop = %v", c.b, c.upTo, p.Noop())
		}
	}
}

func TestPlanNoop(t *testing.T) {
	p, _, err := Bounds{1, 2}.ApplyBatch(storage.Batch{})
	if err != nil || !p.Noop() {
		t.Fatalf("empty batch: noop %v, %v", p.Noop(), err)
	}
	p, _, _ = Bounds{1, 2}.ApplyBatch(storage.Batch{TruncateFrom: 3})
	if !p.Noop() {
		t.Fatal("truncating past the end is not a no-op")
	}
	p, _, _ = Bounds{1, 2}.ApplyBatch(storage.Batch{State: map[string][]byte{"k": {1}}})
	if p.Noop() {
		t.Fatal("a state write is a no-op")
	}
}

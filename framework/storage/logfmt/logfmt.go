// Package logfmt is the engine-neutral part of the storage plugins: the
// checksummed encoding of log entries, state values and the format-version
// record, and the log-bounds rules every batch and compaction is checked
// against before an engine applies it. storage-bolt and storage-pebble share
// it so that both store the same bytes and accept the same batches.
//
// Every decoding error wraps storage.ErrCorrupt.
package logfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/corral-dev/corral/framework/storage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxStateKey is the longest state key a batch may set.
const MaxStateKey = 1 << 10

// EntryOverhead is the bytes an encoded entry adds to its Data.
const EntryOverhead = 4 + 8 + 1

// ErrNewerFormat is wrapped by DecodeFormatVersion's error for a store
// written by a newer build.
var ErrNewerFormat = errors.New("storage: format version newer than this build supports")

// EncodeEntry encodes e as crc32c(index, rest) | term u64 | kind u8 | data.
// The index is the key, not part of the value, but it is in the checksum,
// so a value filed under the wrong index is caught too.
func EncodeEntry(e storage.LogEntry) []byte {
	b := make([]byte, 4, EntryOverhead+len(e.Data))
	b = binary.BigEndian.AppendUint64(b, e.Term)
	b = append(b, e.Kind)
	b = append(b, e.Data...)
	binary.BigEndian.PutUint32(b, entryCRC(e.Index, b[4:]))
	return b
}

func entryCRC(index uint64, rest []byte) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	return crc32.Update(crc32.Checksum(k[:], castagnoli), castagnoli, rest)
}

// DecodeEntry checks and decodes the value stored under index. It copies
// v, which engines own only for the duration of a read.
func DecodeEntry(index uint64, v []byte) (storage.LogEntry, error) {
	if len(v) < EntryOverhead {
		return storage.LogEntry{}, fmt.Errorf("log entry %d: %d bytes: %w", index, len(v), storage.ErrCorrupt)
	}
	if binary.BigEndian.Uint32(v) != entryCRC(index, v[4:]) {
		return storage.LogEntry{}, fmt.Errorf("log entry %d: checksum mismatch: %w", index, storage.ErrCorrupt)
	}
	e := storage.LogEntry{Index: index, Term: binary.BigEndian.Uint64(v[4:]), Kind: v[12]}
	e.Data = append(make([]byte, 0, len(v)-EntryOverhead), v[EntryOverhead:]...)
	return e, nil
}

// EntryDataLen is the length of the Data an encoded value holds, without
// decoding it; it is what Entries' maxBytes limit counts.
func EntryDataLen(v []byte) uint64 { return uint64(max(len(v)-EntryOverhead, 0)) }

// EncodeState encodes a state value as crc32c(key, value) | value.
func EncodeState(key string, v []byte) []byte {
	b := make([]byte, 4, 4+len(v))
	b = append(b, v...)
	binary.BigEndian.PutUint32(b, stateCRC(key, v))
	return b
}

func stateCRC(key string, v []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(key), castagnoli), castagnoli, v)
}

// DecodeState checks and decodes the value stored under key, copying it.
func DecodeState(key string, v []byte) ([]byte, error) {
	if len(v) < 4 || binary.BigEndian.Uint32(v) != stateCRC(key, v[4:]) {
		return nil, fmt.Errorf("state %q: checksum mismatch: %w", key, storage.ErrCorrupt)
	}
	return append(make([]byte, 0, len(v)-4), v[4:]...), nil
}

// EncodeFormatVersion encodes the layout version record (u32 big-endian).
func EncodeFormatVersion(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// DecodeFormatVersion checks a layout version record against newest, the
// newest version this build reads. A version that is too new is an
// ErrNewerFormat (upgrade, do not repair); a malformed one is corrupt.
func DecodeFormatVersion(b []byte, newest uint32) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("format version record is %d bytes: %w", len(b), storage.ErrCorrupt)
	}
	switch v := binary.BigEndian.Uint32(b); {
	case v > newest:
		return v, fmt.Errorf("format version %d is newer than this build supports (%d); upgrade corral: %w", v, newest, ErrNewerFormat)
	case v == 0:
		return 0, fmt.Errorf("format version 0: %w", storage.ErrCorrupt)
	default:
		return v, nil
	}
}

// Bounds is the log's [First, Last], {0, 0} when it is empty.
type Bounds struct{ First, Last uint64 }

// Span is a closed index range to delete; Lo > Hi means none.
type Span struct{ Lo, Hi uint64 }

// Empty reports whether the span holds no index.
func (s Span) Empty() bool { return s.Lo > s.Hi }

// Plan is a checked request, applied in this order: delete Delete, put
// Entries, put State.
type Plan struct {
	Delete  Span
	Entries []storage.LogEntry
	State   map[string][]byte
}

// Noop reports a plan that changes nothing, so needs no commit or fsync.
func (p Plan) Noop() bool { return p.Delete.Empty() && len(p.Entries) == 0 && len(p.State) == 0 }

var noDelete = Span{1, 0}

// ApplyBatch checks bt against a log with bounds b (storage.Batch's rules)
// and returns the plan and the bounds after it. A rejected batch changes
// nothing: the error comes with b itself.
func (b Bounds) ApplyBatch(bt storage.Batch) (Plan, Bounds, error) {
	p := Plan{Delete: noDelete, Entries: bt.Entries, State: bt.State}
	nb := b
	if t := bt.TruncateFrom; t != 0 && b.Last != 0 && t <= b.Last {
		p.Delete = Span{max(t, b.First), b.Last}
		if t <= b.First {
			nb = Bounds{}
		} else {
			nb.Last = t - 1
		}
	}
	if n := len(bt.Entries); n > 0 {
		e0 := bt.Entries[0].Index
		if e0 == 0 {
			return Plan{}, b, errors.New("storage: log index 0 is reserved")
		}
		for i := 1; i < n; i++ {
			if bt.Entries[i].Index != bt.Entries[i-1].Index+1 {
				return Plan{}, b, fmt.Errorf("storage: batch entries not contiguous: %d follows %d",
					bt.Entries[i].Index, bt.Entries[i-1].Index)
			}
		}
		if nb.Last != 0 && e0 != nb.Last+1 {
			return Plan{}, b, fmt.Errorf("storage: batch starts at index %d, log ends at %d", e0, nb.Last)
		}
		if nb.Last == 0 {
			nb.First = e0
		}
		nb.Last = bt.Entries[n-1].Index
	}
	for k := range bt.State {
		if k == "" || len(k) > MaxStateKey {
			return Plan{}, b, fmt.Errorf("storage: state key length %d outside 1..%d", len(k), MaxStateKey)
		}
	}
	return p, nb, nil
}

// ApplyCompact returns the plan for CompactPrefix(upTo) and the bounds
// after it.
func (b Bounds) ApplyCompact(upTo uint64) (Plan, Bounds) {
	if b.Last == 0 || upTo < b.First {
		return Plan{Delete: noDelete}, b
	}
	if upTo >= b.Last {
		return Plan{Delete: Span{b.First, b.Last}}, Bounds{}
	}
	return Plan{Delete: Span{b.First, upTo}}, Bounds{upTo + 1, b.Last}
}

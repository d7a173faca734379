package storagebolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/corral-dev/corral/framework/storage"
)

// This file is the engine-neutral part: value encoding and the log-bounds
// rules every batch is checked against. storage-pebble carries the same
// logic; plugins do not import each other.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks stored bytes that fail their checksum.
var errCorrupt = errors.New("corrupt record")

const maxStateKey = 1 << 10

// Entry values are crc32c(index, rest) | term u64 | kind u8 | data. bolt does
// not checksum its data pages, so the CRC is what catches a damaged entry.
func encodeEntry(e storage.LogEntry) []byte {
	b := make([]byte, 4, 4+9+len(e.Data))
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

// decodeEntry copies v, which the engine owns only for the transaction.
func decodeEntry(index uint64, v []byte) (storage.LogEntry, error) {
	if len(v) < 13 {
		return storage.LogEntry{}, fmt.Errorf("log entry %d: %d bytes: %w", index, len(v), errCorrupt)
	}
	if binary.BigEndian.Uint32(v) != entryCRC(index, v[4:]) {
		return storage.LogEntry{}, fmt.Errorf("log entry %d: checksum mismatch: %w", index, errCorrupt)
	}
	e := storage.LogEntry{Index: index, Term: binary.BigEndian.Uint64(v[4:]), Kind: v[12]}
	e.Data = append(make([]byte, 0, len(v)-13), v[13:]...)
	return e, nil
}

// State values are crc32c(key, value) | value.
func encodeState(key string, v []byte) []byte {
	b := make([]byte, 4, 4+len(v))
	b = append(b, v...)
	binary.BigEndian.PutUint32(b, stateCRC(key, v))
	return b
}

func stateCRC(key string, v []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(key), castagnoli), castagnoli, v)
}

func decodeState(key string, v []byte) ([]byte, error) {
	if len(v) < 4 || binary.BigEndian.Uint32(v) != stateCRC(key, v[4:]) {
		return nil, fmt.Errorf("state %q: checksum mismatch: %w", key, errCorrupt)
	}
	return append(make([]byte, 0, len(v)-4), v[4:]...), nil
}

// bounds is the log's [first, last], {0, 0} when empty.
type bounds struct{ first, last uint64 }

// span is a closed index range to delete.
type span struct{ lo, hi uint64 }

func (s span) empty() bool { return s.lo > s.hi }

// plan is a checked request: what to delete, then what to write.
type plan struct {
	del  span
	ents []storage.LogEntry
	st   map[string][]byte
}

// noop reports a plan that changes nothing, so needs no commit or fsync.
func (p plan) noop() bool { return p.del.empty() && len(p.ents) == 0 && len(p.st) == 0 }

// applyBatch checks b against the log and returns the plan and the bounds
// after it. A rejected batch changes nothing.
func (b bounds) applyBatch(bt storage.Batch) (plan, bounds, error) {
	p := plan{del: span{1, 0}, ents: bt.Entries, st: bt.State}
	nb := b
	if t := bt.TruncateFrom; t != 0 && b.last != 0 && t <= b.last {
		p.del = span{max(t, b.first), b.last}
		if t <= b.first {
			nb = bounds{}
		} else {
			nb.last = t - 1
		}
	}
	if n := len(bt.Entries); n > 0 {
		e0 := bt.Entries[0].Index
		if e0 == 0 {
			return plan{}, b, errors.New("storage: log index 0 is reserved")
		}
		for i := 1; i < n; i++ {
			if bt.Entries[i].Index != bt.Entries[i-1].Index+1 {
				return plan{}, b, fmt.Errorf("storage: batch entries not contiguous: %d follows %d",
					bt.Entries[i].Index, bt.Entries[i-1].Index)
			}
		}
		if nb.last != 0 && e0 != nb.last+1 {
			return plan{}, b, fmt.Errorf("storage: batch starts at index %d, log ends at %d", e0, nb.last)
		}
		if nb.last == 0 {
			nb.first = e0
		}
		nb.last = bt.Entries[n-1].Index
	}
	for k := range bt.State {
		if k == "" || len(k) > maxStateKey {
			return plan{}, b, fmt.Errorf("storage: state key length %d outside 1..%d", len(k), maxStateKey)
		}
	}
	return p, nb, nil
}

// applyCompact returns the plan for CompactPrefix(upTo).
func (b bounds) applyCompact(upTo uint64) (plan, bounds) {
	if b.last == 0 || upTo < b.first {
		return plan{del: span{1, 0}}, b
	}
	if upTo >= b.last {
		return plan{del: span{b.first, b.last}}, bounds{}
	}
	return plan{del: span{b.first, upTo}}, bounds{upTo + 1, b.last}
}

package consensusraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/corral-dev/corral/framework/storage"
)

// Log entry encoding. storage.LogEntry.Kind holds raft's LogType; Data holds
//
//	header byte: version<<4 | flags
//	[flagAppendedAt] AppendedAt, unix nanoseconds, 8 bytes big-endian
//	[flagExtensions] uvarint length, Extensions
//	the rest: raft's Data
//
// Version 1 is the only one; a store written by a newer build is refused.
const (
	logEncVersion  = 1
	flagAppendedAt = 1 << 0
	flagExtensions = 1 << 1
	flagsKnown     = flagAppendedAt | flagExtensions
)

func encodeLog(l *raft.Log) storage.LogEntry {
	var flags byte
	size := 1 + len(l.Data)
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
		size += 8
	}
	if len(l.Extensions) > 0 {
		flags |= flagExtensions
		size += binary.MaxVarintLen64 + len(l.Extensions)
	}
	b := make([]byte, 0, size)
	b = append(b, logEncVersion<<4|flags)
	if flags&flagAppendedAt != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(l.AppendedAt.UnixNano()))
	}
	if flags&flagExtensions != 0 {
		b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
		b = append(b, l.Extensions...)
	}
	b = append(b, l.Data...)
	return storage.LogEntry{Index: l.Index, Term: l.Term, Kind: uint8(l.Type), Data: b}
}

func decodeLog(e storage.LogEntry, l *raft.Log) error {
	b := e.Data
	if len(b) == 0 {
		return fmt.Errorf("raft log entry %d: empty record", e.Index)
	}
	h := b[0]
	b = b[1:]
	if v := h >> 4; v != logEncVersion {
		return fmt.Errorf("raft log entry %d: encoding version %d, this build reads %d", e.Index, v, logEncVersion)
	}
	flags := h & 0x0f
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("raft log entry %d: unknown flags %#x", e.Index, flags)
	}
	*l = raft.Log{Index: e.Index, Term: e.Term, Type: raft.LogType(e.Kind)}
	if flags&flagAppendedAt != 0 {
		if len(b) < 8 {
			return fmt.Errorf("raft log entry %d: truncated timestamp", e.Index)
		}
		l.AppendedAt = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
		b = b[8:]
	}
	if flags&flagExtensions != 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return fmt.Errorf("raft log entry %d: bad extensions length", e.Index)
		}
		l.Extensions = b[w : w+int(n)]
		b = b[w+int(n):]
	}
	if len(b) > 0 {
		l.Data = b
	}
	return nil
}

// logStore is raft.LogStore over storage.Store.
type logStore struct{ s storage.Store }

func (ls logStore) FirstIndex() (uint64, error) { return ls.s.FirstIndex() }
func (ls logStore) LastIndex() (uint64, error)  { return ls.s.LastIndex() }

// GetLog returns raft.ErrLogNotFound itself for a missing entry: raft
// compares it with == to decide to send a snapshot instead.
func (ls logStore) GetLog(index uint64, l *raft.Log) error {
	e, err := ls.s.Entry(index)
	if errors.Is(err, storage.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	return decodeLog(e, l)
}

func (ls logStore) StoreLog(l *raft.Log) error { return ls.StoreLogs([]*raft.Log{l}) }

// StoreLogs writes all entries as one atomic, durable batch.
func (ls logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	entries := make([]storage.LogEntry, len(logs))
	for i, l := range logs {
		entries[i] = encodeLog(l)
	}
	return ls.s.Write(context.Background(), storage.Batch{Entries: entries})
}

// DeleteRange removes [lo, hi]. raft only ever removes a prefix (log
// compaction behind a snapshot) or a suffix (conflicting entries on a
// follower), which map to CompactPrefix and Batch.TruncateFrom.
func (ls logStore) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	first, err := ls.s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := ls.s.LastIndex()
	if err != nil {
		return err
	}
	switch {
	case last == 0 || hi < first || lo > last:
		return nil // nothing stored in the range
	case lo <= first:
		return ls.s.CompactPrefix(hi)
	case hi >= last:
		return ls.s.Write(context.Background(), storage.Batch{TruncateFrom: lo})
	}
	return fmt.Errorf("raft log: cannot delete [%d, %d] from the middle of [%d, %d]", lo, hi, first, last)
}

// IsMonotonic tells raft the log cannot have gaps, so after installing a
// snapshot it empties the log instead of leaving entries the next append
// would not be contiguous with.
func (logStore) IsMonotonic() bool { return true }

// Keys of raft's stable values in the store's state namespace.
const stateKeyPrefix = "raft/"

// errKeyNotFound must read exactly "not found": raft compares the error
// text (as raft-boltdb's ErrKeyNotFound reads) to tell a fresh store from a
// failing one.
var errKeyNotFound = errors.New("not found")

// stableStore is raft.StableStore over storage.Store's state values.
type stableStore struct{ s storage.Store }

func (ss stableStore) Set(key, val []byte) error {
	return ss.s.Write(context.Background(), storage.Batch{State: map[string][]byte{stateKeyPrefix + string(key): val}})
}

func (ss stableStore) Get(key []byte) ([]byte, error) {
	v, err := ss.s.State(stateKeyPrefix + string(key))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errKeyNotFound
	}
	return v, err
}

func (ss stableStore) SetUint64(key []byte, val uint64) error {
	return ss.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

func (ss stableStore) GetUint64(key []byte) (uint64, error) {
	v, err := ss.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft stable value %q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// snapshotStore is raft.SnapshotStore over storage.SnapshotStore. raft's
// Configuration travels in SnapshotMeta.Membership, encoded by raft.
type snapshotStore struct{ s storage.SnapshotStore }

func (ss snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, cfg raft.Configuration,
	cfgIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != raft.SnapshotVersionMax {
		return nil, fmt.Errorf("raft snapshot version %d not supported (want %d)", version, raft.SnapshotVersionMax)
	}
	sink, err := ss.s.Create(storage.SnapshotMeta{
		ID:              fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli()),
		Index:           index,
		Term:            term,
		Membership:      raft.EncodeConfiguration(cfg),
		MembershipIndex: cfgIndex,
	})
	if err != nil {
		return nil, err
	}
	return &raftSink{SnapshotSink: sink}, nil
}

// raftSink makes Close idempotent, as raft's own sinks are: raft closes the
// sink after FSMSnapshot.Persist, which raft documents as closing it too.
type raftSink struct {
	storage.SnapshotSink
	closed bool
	err    error
}

func (s *raftSink) Close() error {
	if !s.closed {
		s.closed = true
		s.err = s.SnapshotSink.Close()
	}
	return s.err
}

func (ss snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := ss.s.List()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, 0, len(metas))
	for _, m := range metas {
		rm, err := toRaftMeta(m)
		if err != nil {
			// Skipping would let raft start from an older state or none;
			// a damaged membership needs an operator.
			return nil, err
		}
		out = append(out, rm)
	}
	return out, nil
}

func (ss snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	m, rc, err := ss.s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	rm, err := toRaftMeta(m)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return rm, rc, nil
}

func toRaftMeta(m storage.SnapshotMeta) (*raft.SnapshotMeta, error) {
	cfg, err := decodeConfiguration(m.Membership)
	if err != nil {
		return nil, fmt.Errorf("raft snapshot %s: membership: %w", m.ID, err)
	}
	return &raft.SnapshotMeta{
		Version:            raft.SnapshotVersionMax,
		ID:                 m.ID,
		Index:              m.Index,
		Term:               m.Term,
		Configuration:      cfg,
		ConfigurationIndex: m.MembershipIndex,
		Size:               m.Size,
	}, nil
}

// decodeConfiguration is raft.DecodeConfiguration without its panic on
// malformed input.
func decodeConfiguration(b []byte) (cfg raft.Configuration, err error) {
	if len(b) == 0 {
		return raft.Configuration{}, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable raft configuration: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}

// serverID and memberID convert between Corral member ids and raft's.
func serverID(id uint64) raft.ServerID { return raft.ServerID(strconv.FormatUint(id, 10)) }

func memberID(id raft.ServerID) (uint64, bool) {
	n, err := strconv.ParseUint(string(id), 10, 64)
	return n, err == nil && n != 0
}

var (
	_ raft.LogStore          = logStore{}
	_ raft.MonotonicLogStore = logStore{}
	_ raft.StableStore       = stableStore{}
	_ raft.SnapshotStore     = snapshotStore{}
)

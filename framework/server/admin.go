package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/corral-dev/corral/framework/consensus"
)

// SnapshotNow has the consensus plugin snapshot the state machine now and
// compact the log behind it, if the plugin can (consensus.Snapshotter).
// Having nothing new to snapshot is not an error.
func (s *Server) SnapshotNow(ctx context.Context) error {
	if s.repl == nil {
		return errors.New("server: not started")
	}
	sn, ok := s.repl.(consensus.Snapshotter)
	if !ok {
		return fmt.Errorf("server: consensus.%s cannot take a snapshot on demand", s.cfg.Consensus.Type)
	}
	return sn.SnapshotNow(ctx)
}

// ErrBadSnapshot is wrapped by ReadSnapshotHeader's errors for a stream
// that is not a state-machine snapshot this build reads.
var ErrBadSnapshot = errors.New("server: bad state-machine snapshot")

// SnapshotHeader is the part of a state-machine snapshot ahead of the tree
// (see Snapshot): the last zxid, the applied log index and the sessions.
type SnapshotHeader struct {
	Version  uint32
	Zxid     int64
	Index    uint64
	Sessions []SnapshotSession
}

// SnapshotSession is a session recorded in a snapshot. Its password is
// left out: offline tools have no use for it and should not print it.
type SnapshotSession struct {
	ID        int64
	TimeoutMs int32
}

// maxSnapshotPassword bounds a session password read from a snapshot.
const maxSnapshotPassword = 1024

// ReadSnapshotHeader reads the header of a snapshot body written by
// Snapshot's WriteTo, leaving r at the start of the tree stream, which
// tree.ReadSnapshot decodes node by node. It reads exactly the header's
// bytes, so r can be shared with what reads the rest.
func ReadSnapshotHeader(r io.Reader) (SnapshotHeader, error) {
	h, sessions, err := readSnapshotHeader(r)
	for _, si := range sessions {
		h.Sessions = append(h.Sessions, SnapshotSession{ID: si.ID, TimeoutMs: si.TimeoutMs})
	}
	return h, err
}

// readSnapshotHeader is shared by Restore and ReadSnapshotHeader; it keeps
// the passwords, which only Restore needs.
func readSnapshotHeader(r io.Reader) (SnapshotHeader, []sessionInfo, error) {
	var h SnapshotHeader
	var sessions []sessionInfo
	var fixed [len(snapMagic) + 4 + 8 + 8 + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, nil, fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if string(fixed[:len(snapMagic)]) != snapMagic {
		return h, nil, fmt.Errorf("%w: not a Corral state-machine snapshot (magic %q)", ErrBadSnapshot, fixed[:len(snapMagic)])
	}
	b := fixed[len(snapMagic):]
	h.Version = binary.BigEndian.Uint32(b)
	if h.Version != snapVersion {
		return h, nil, fmt.Errorf("%w: format version %d, this build reads %d", ErrBadSnapshot, h.Version, snapVersion)
	}
	h.Zxid = int64(binary.BigEndian.Uint64(b[4:]))
	h.Index = binary.BigEndian.Uint64(b[12:])
	n := binary.BigEndian.Uint32(b[20:])
	for i := uint32(0); i < n; i++ {
		var rec [16]byte
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return h, nil, fmt.Errorf("%w: session %d of %d: %w", ErrBadSnapshot, i, n, err)
		}
		pwLen := binary.BigEndian.Uint32(rec[12:])
		if pwLen > maxSnapshotPassword {
			return h, nil, fmt.Errorf("%w: session %d of %d: password length %d", ErrBadSnapshot, i, n, pwLen)
		}
		pw := make([]byte, pwLen)
		if _, err := io.ReadFull(r, pw); err != nil {
			return h, nil, fmt.Errorf("%w: session %d of %d: %w", ErrBadSnapshot, i, n, err)
		}
		sessions = append(sessions, sessionInfo{
			ID:        int64(binary.BigEndian.Uint64(rec[:])),
			TimeoutMs: int32(binary.BigEndian.Uint32(rec[8:])),
			Password:  pw,
		})
	}
	return h, sessions, nil
}

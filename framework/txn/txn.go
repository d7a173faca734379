// Package txn is the replicated transaction: what the proposer puts in the
// consensus log and every member applies. Client writes travel as the
// request itself plus the context the proposer stamped on it (time, session,
// identities), so apply is deterministic and every member computes the same
// result, including for writes that fail (they still consume a zxid, as in
// ZooKeeper).
package txn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/znode"
)

// Kind says what a transaction does.
type Kind uint8

const (
	// Request is a client write (create, delete, setData, setACL, multi,
	// deleteContainer).
	Request Kind = 1
	// CreateSession registers a session.
	CreateSession Kind = 2
	// CloseSession ends a session (client close or expiry) and deletes its
	// ephemerals.
	CloseSession Kind = 3
	// SetConfig replaces /zookeeper/config.
	SetConfig Kind = 4
	// Noop does nothing but consume a zxid (used as a barrier).
	Noop Kind = 5
	// Touch reports sessions a follower heard from, so the leader, which
	// alone expires sessions, knows they are alive. It takes no zxid.
	Touch Kind = 6
)

const version = 1

// Txn is one replicated transaction.
type Txn struct {
	Kind Kind
	// Time is the proposer's clock in ms; apply never reads a clock.
	Time int64
	// Origin and Seq identify the proposing server and its request so that
	// server can answer its client when the txn is applied.
	Origin uint64
	Seq    uint64
	// Session issues the request (or is created/closed).
	Session int64
	// TimeoutMs and Password are for CreateSession.
	TimeoutMs int32
	Password  []byte
	// Auth and Super are the issuing connection's identities, for ACLs.
	Auth  []znode.ID
	Super bool
	// Req is the write request for Kind Request.
	Req op.Request
	// Data is the payload of SetConfig.
	Data []byte
	// Sessions are the live sessions of a Touch.
	Sessions []int64
}

// ErrCorrupt reports an undecodable transaction.
var ErrCorrupt = errors.New("txn: corrupt transaction")

// Encode serialises t. The encoding is versioned; Decode refuses versions
// it does not know.
func Encode(t *Txn) ([]byte, error) {
	e := encoder{buf: make([]byte, 0, 128)}
	e.u8(version)
	e.u8(uint8(t.Kind))
	e.i64(t.Time)
	e.u64(t.Origin)
	e.u64(t.Seq)
	e.i64(t.Session)
	e.i32(t.TimeoutMs)
	e.bytes(t.Password)
	e.u32(uint32(len(t.Auth)))
	for _, id := range t.Auth {
		e.str(id.Scheme)
		e.str(id.ID)
	}
	e.bool(t.Super)
	e.bytes(t.Data)
	e.u32(uint32(len(t.Sessions)))
	for _, id := range t.Sessions {
		e.i64(id)
	}
	if t.Kind == Request {
		if err := e.request(t.Req); err != nil {
			return nil, err
		}
	}
	return e.buf, nil
}

// Decode parses a transaction written by Encode.
func Decode(b []byte) (*Txn, error) {
	d := decoder{buf: b}
	if v := d.u8(); v != version {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	t := &Txn{Kind: Kind(d.u8())}
	t.Time = d.i64()
	t.Origin = d.u64()
	t.Seq = d.u64()
	t.Session = d.i64()
	t.TimeoutMs = d.i32()
	t.Password = d.bytes()
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		t.Auth = append(t.Auth, znode.ID{Scheme: d.str(), ID: d.str()})
	}
	t.Super = d.bool()
	t.Data = d.bytes()
	n = d.count(8)
	for i := 0; i < n && d.err == nil; i++ {
		t.Sessions = append(t.Sessions, d.i64())
	}
	if t.Kind == Request {
		t.Req = d.request(0)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.buf))
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

type encoder struct{ buf []byte }

func (e *encoder) u8(v uint8)   { e.buf = append(e.buf, v) }
func (e *encoder) u32(v uint32) { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }
func (e *encoder) u64(v uint64) { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }
func (e *encoder) i32(v int32)  { e.u32(uint32(v)) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// bytes keeps nil distinct from empty, as jute does.
func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.u32(^uint32(0))
		return
	}
	e.u32(uint32(len(b)))
	e.buf = append(e.buf, b...)
}
func (e *encoder) str(s string) { e.u32(uint32(len(s))); e.buf = append(e.buf, s...) }

func (e *encoder) acl(acl []znode.ACL) {
	e.u32(uint32(len(acl)))
	for _, a := range acl {
		e.i32(a.Perms)
		e.str(a.Scheme)
		e.str(a.ID)
	}
}

func (e *encoder) request(r op.Request) error {
	if r == nil {
		return errors.New("txn: request transaction without a request")
	}
	e.i32(int32(r.Op()))
	switch r := r.(type) {
	case *op.CreateRequest:
		e.str(r.Path)
		e.bytes(r.Data)
		e.acl(r.ACL)
		e.i32(int32(r.Mode))
		e.i64(r.TTL)
	case *op.DeleteRequest:
		e.str(r.Path)
		e.i32(r.Version)
	case *op.DeleteContainerRequest:
		e.str(r.Path)
	case *op.SetDataRequest:
		e.str(r.Path)
		e.bytes(r.Data)
		e.i32(r.Version)
	case *op.SetACLRequest:
		e.str(r.Path)
		e.acl(r.ACL)
		e.i32(r.Version)
	case *op.CheckRequest:
		e.str(r.Path)
		e.i32(r.Version)
	case *op.MultiRequest:
		e.u32(uint32(len(r.Ops)))
		for _, sub := range r.Ops {
			if _, nested := sub.(*op.MultiRequest); nested {
				return errors.New("txn: nested multi")
			}
			if err := e.request(sub); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("txn: %s is not a write", r.Op())
	}
	return nil
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) need(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.buf) < n {
		d.err = fmt.Errorf("%w: short buffer", ErrCorrupt)
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.need(1); b != nil {
		return b[0]
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if b := d.need(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
func (d *decoder) u64() uint64 {
	if b := d.need(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}
func (d *decoder) i32() int32 { return int32(d.u32()) }
func (d *decoder) i64() int64 { return int64(d.u64()) }
func (d *decoder) bool() bool { return d.u8() != 0 }

// count reads an element count and checks it against the bytes left, so a
// corrupt count cannot make us allocate.
func (d *decoder) count(minSize int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(minSize) > uint64(len(d.buf)) {
		d.err = fmt.Errorf("%w: count %d exceeds buffer", ErrCorrupt, n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if n == ^uint32(0) {
		return nil
	}
	b := d.need(int(n))
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func (d *decoder) str() string { return string(d.need(int(d.u32()))) }

func (d *decoder) acl() []znode.ACL {
	n := d.count(12)
	acl := make([]znode.ACL, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		acl = append(acl, znode.ACL{Perms: d.i32(), Scheme: d.str(), ID: d.str()})
	}
	return acl
}

func (d *decoder) request(depth int) op.Request {
	code := op.Code(d.i32())
	if d.err != nil {
		return nil
	}
	switch code {
	case op.Create, op.Create2, op.CreateContainer, op.CreateTTL:
		return &op.CreateRequest{OpCode: code, Path: d.str(), Data: d.bytes(), ACL: d.acl(),
			Mode: znode.CreateMode(d.i32()), TTL: d.i64()}
	case op.Delete:
		return &op.DeleteRequest{Path: d.str(), Version: d.i32()}
	case op.DeleteContainer:
		return &op.DeleteContainerRequest{Path: d.str()}
	case op.SetData:
		return &op.SetDataRequest{Path: d.str(), Data: d.bytes(), Version: d.i32()}
	case op.SetACL:
		return &op.SetACLRequest{Path: d.str(), ACL: d.acl(), Version: d.i32()}
	case op.Check:
		return &op.CheckRequest{Path: d.str(), Version: d.i32()}
	case op.Multi:
		if depth > 0 {
			d.err = fmt.Errorf("%w: nested multi", ErrCorrupt)
			return nil
		}
		n := d.count(8)
		m := &op.MultiRequest{Ops: make([]op.Request, 0, n)}
		for i := 0; i < n && d.err == nil; i++ {
			m.Ops = append(m.Ops, d.request(depth+1))
		}
		return m
	}
	d.err = fmt.Errorf("%w: opcode %d is not a write", ErrCorrupt, code)
	return nil
}

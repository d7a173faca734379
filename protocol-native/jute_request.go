package protocolnative

// Request-side records of zookeeper.jute: ConnectRequest, RequestHeader and
// the record of every client opcode, including MultiOperationRecord.

import (
	"encoding/binary"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/znode"
)

const requestHdrLen = 8 // xid, type

// decodeConnectRequest decodes the handshake record. The readOnly byte is
// optional (pre-3.4 clients and go-zookeeper omit it); hasReadOnly says
// whether it was there so the response can use the same shape.
func decodeConnectRequest(b []byte) (req protocol.ConnectRequest, hasReadOnly bool, err error) {
	d := newDecoder(b)
	req.ProtocolVersion = d.int32()
	req.LastZxidSeen = d.int64()
	req.TimeoutMs = d.int32()
	req.SessionID = d.int64()
	req.Password = d.buffer()
	if d.err == nil && d.remaining() > 0 {
		req.ReadOnly = d.bool()
		hasReadOnly = true
	}
	if err := d.finish(); err != nil {
		return protocol.ConnectRequest{}, false, err
	}
	return req, hasReadOnly, nil
}

// appendConnectRequest writes a framed ConnectRequest (client side; tests).
func appendConnectRequest(b []byte, req *protocol.ConnectRequest, withReadOnly bool) []byte {
	b, start := beginFrame(b)
	b = appendInt32(b, req.ProtocolVersion)
	b = appendInt64(b, req.LastZxidSeen)
	b = appendInt32(b, req.TimeoutMs)
	b = appendInt64(b, req.SessionID)
	b = appendBuffer(b, req.Password)
	if withReadOnly {
		b = appendBool(b, req.ReadOnly)
	}
	return endFrame(b, start)
}

// isClientOp reports whether a client may send code as a top-level
// request. check (13) is valid only inside multi, and notification,
// createSession and error are server-internal: ZooKeeper answers those with
// UNIMPLEMENTED and closes the connection.
func isClientOp(code op.Code) bool {
	switch code {
	case op.Create, op.Delete, op.Exists, op.GetData, op.SetData, op.GetACL, op.SetACL,
		op.GetChildren, op.Sync, op.Ping, op.GetChildren2, op.Multi, op.Create2, op.Reconfig,
		op.CheckWatches, op.RemoveWatches, op.CreateContainer, op.DeleteContainer, op.CreateTTL,
		op.MultiRead, op.Auth, op.SetWatches, op.SASL, op.GetEphemerals, op.GetAllChildrenNumber,
		op.SetWatches2, op.AddWatch, op.WhoAmI, op.CloseSession:
		return true
	}
	return false
}

// decodeRequestHeader splits a request frame into xid, opcode and body.
func decodeRequestHeader(frame []byte) (xid int32, code op.Code, body []byte, err error) {
	if len(frame) < requestHdrLen {
		return 0, 0, nil, errShort
	}
	xid = int32(binary.BigEndian.Uint32(frame))
	code = op.Code(int32(binary.BigEndian.Uint32(frame[4:])))
	return xid, code, frame[requestHdrLen:], nil
}

// decodeRequest decodes a whole request frame (RequestHeader + record).
// The error is a *zkerr.Error: Unimplemented for an opcode a client may not
// send, MarshallingError for a bad record.
func decodeRequest(frame []byte) (xid int32, req op.Request, err error) {
	xid, req, _, err = decodeRequestCanonical(frame)
	return xid, req, err
}

// decodeRequestCanonical is decodeRequest that also reports whether the
// input is exactly what appendRequest would produce for the result.
func decodeRequestCanonical(frame []byte) (xid int32, req op.Request, canonical bool, err error) {
	xid, code, body, err := decodeRequestHeader(frame)
	if err != nil {
		return 0, nil, false, err
	}
	if !isClientOp(code) {
		return xid, nil, false, errUnknownOp
	}
	d := newDecoder(body)
	req = decodeRequestBody(&d, code)
	if err := d.finish(); err != nil {
		return xid, nil, false, err
	}
	return xid, req, d.canonical, nil
}

// decodeRequestBody decodes the record of one opcode. Errors stick in d.
func decodeRequestBody(d *decoder, code op.Code) op.Request {
	switch code {
	case op.Create, op.Create2, op.CreateContainer, op.CreateTTL:
		r := &op.CreateRequest{OpCode: code}
		r.Path = d.string()
		r.Data = d.buffer()
		r.ACL = d.acls()
		r.Mode = znode.CreateMode(d.int32())
		if code == op.CreateTTL {
			r.TTL = d.int64()
		}
		return r
	case op.Delete:
		r := &op.DeleteRequest{}
		r.Path = d.string()
		r.Version = d.int32()
		return r
	case op.Exists:
		r := &op.ExistsRequest{}
		r.Path = d.string()
		r.Watch = d.bool()
		return r
	case op.GetData:
		r := &op.GetDataRequest{}
		r.Path = d.string()
		r.Watch = d.bool()
		return r
	case op.SetData:
		r := &op.SetDataRequest{}
		r.Path = d.string()
		r.Data = d.buffer()
		r.Version = d.int32()
		return r
	case op.GetACL:
		return &op.GetACLRequest{Path: d.string()}
	case op.SetACL:
		r := &op.SetACLRequest{}
		r.Path = d.string()
		r.ACL = d.acls()
		r.Version = d.int32()
		return r
	case op.GetChildren, op.GetChildren2:
		r := &op.GetChildrenRequest{OpCode: code}
		r.Path = d.string()
		r.Watch = d.bool()
		return r
	case op.Sync:
		return &op.SyncRequest{Path: d.string()}
	case op.Check:
		r := &op.CheckRequest{}
		r.Path = d.string()
		r.Version = d.int32()
		return r
	case op.Multi, op.MultiRead:
		ops := decodeMultiOps(d, code == op.MultiRead)
		if code == op.MultiRead {
			return &op.MultiReadRequest{Ops: ops}
		}
		return &op.MultiRequest{Ops: ops}
	case op.Reconfig:
		r := &op.ReconfigRequest{}
		r.JoiningServers = d.string()
		r.LeavingServers = d.string()
		r.NewMembers = d.string()
		r.CurConfigID = d.int64()
		return r
	case op.CheckWatches:
		r := &op.CheckWatchesRequest{}
		r.Path = d.string()
		r.Type = znode.WatcherType(d.int32())
		return r
	case op.RemoveWatches:
		r := &op.RemoveWatchesRequest{}
		r.Path = d.string()
		r.Type = znode.WatcherType(d.int32())
		return r
	case op.DeleteContainer:
		// DeleteContainerRequest declares its path as a buffer.
		p, null := d.raw()
		if null {
			d.canonical = false
		}
		return &op.DeleteContainerRequest{Path: string(p)}
	case op.Auth:
		r := &op.AuthRequest{}
		r.Type = d.int32()
		r.Scheme = d.string()
		r.Auth = d.buffer()
		return r
	case op.SetWatches, op.SetWatches2:
		r := &op.SetWatchesRequest{HasPersistentFields: code == op.SetWatches2}
		r.RelativeZxid = d.int64()
		r.DataWatches = d.strings()
		r.ExistWatches = d.strings()
		r.ChildWatches = d.strings()
		if code == op.SetWatches2 {
			r.PersistentWatches = d.strings()
			r.RecursiveWatches = d.strings()
		}
		return r
	case op.SASL:
		return &op.SASLRequest{Token: d.buffer()}
	case op.GetEphemerals:
		return &op.GetEphemeralsRequest{PrefixPath: d.string()}
	case op.GetAllChildrenNumber:
		return &op.GetAllChildrenNumberRequest{Path: d.string()}
	case op.AddWatch:
		r := &op.AddWatchRequest{}
		r.Path = d.string()
		r.Mode = znode.AddWatchMode(d.int32())
		return r
	case op.WhoAmI:
		return &op.WhoAmIRequest{}
	case op.Ping:
		return &op.PingRequest{}
	case op.CloseSession:
		return &op.CloseSessionRequest{}
	}
	d.fail(errUnknownOp)
	return nil
}

// decodeMultiOps reads MultiHeader-framed ops up to the done header.
// Following MultiOperationRecord, multi takes create/create2/createContainer/
// createTTL/delete/setData/check and multiRead takes getChildren/getData;
// mixing the two kinds or any other type is a marshalling error.
func decodeMultiOps(d *decoder, read bool) []op.Request {
	var ops []op.Request
	for d.err == nil {
		typ := op.Code(d.int32())
		done := d.bool()
		herr := d.int32()
		if d.err != nil {
			break
		}
		if herr != -1 {
			d.canonical = false
		}
		if done {
			if typ != -1 {
				d.canonical = false
			}
			break
		}
		switch typ {
		case op.Create, op.Create2, op.CreateContainer, op.CreateTTL, op.Delete, op.SetData, op.Check:
			if read {
				d.fail(errMixedOps)
			}
		case op.GetChildren, op.GetData:
			if !read {
				d.fail(errMixedOps)
			}
		default:
			d.fail(errBadMultiOp)
		}
		if d.err != nil {
			break
		}
		ops = append(ops, decodeRequestBody(d, typ))
	}
	if d.err != nil {
		return nil
	}
	return ops
}

// appendRequest writes a framed request (client side: tests and tools).
func appendRequest(b []byte, xid int32, req op.Request) ([]byte, error) {
	b, start := beginFrame(b)
	b = appendInt32(b, xid)
	b = appendInt32(b, int32(req.Op()))
	b, err := appendRequestBody(b, req)
	if err != nil {
		return b[:start], err
	}
	return endFrame(b, start), nil
}

func appendRequestBody(b []byte, req op.Request) ([]byte, error) {
	switch r := req.(type) {
	case *op.CreateRequest:
		b = appendString(b, r.Path)
		b = appendBuffer(b, r.Data)
		b = appendACLs(b, r.ACL, true)
		b = appendInt32(b, int32(r.Mode))
		if r.Op() == op.CreateTTL {
			b = appendInt64(b, r.TTL)
		}
	case *op.DeleteRequest:
		b = appendString(b, r.Path)
		b = appendInt32(b, r.Version)
	case *op.ExistsRequest:
		b = appendString(b, r.Path)
		b = appendBool(b, r.Watch)
	case *op.GetDataRequest:
		b = appendString(b, r.Path)
		b = appendBool(b, r.Watch)
	case *op.SetDataRequest:
		b = appendString(b, r.Path)
		b = appendBuffer(b, r.Data)
		b = appendInt32(b, r.Version)
	case *op.GetACLRequest:
		b = appendString(b, r.Path)
	case *op.SetACLRequest:
		b = appendString(b, r.Path)
		b = appendACLs(b, r.ACL, true)
		b = appendInt32(b, r.Version)
	case *op.GetChildrenRequest:
		b = appendString(b, r.Path)
		b = appendBool(b, r.Watch)
	case *op.SyncRequest:
		b = appendString(b, r.Path)
	case *op.CheckRequest:
		b = appendString(b, r.Path)
		b = appendInt32(b, r.Version)
	case *op.MultiRequest:
		return appendMultiOps(b, r.Ops)
	case *op.MultiReadRequest:
		return appendMultiOps(b, r.Ops)
	case *op.ReconfigRequest:
		b = appendString(b, r.JoiningServers)
		b = appendString(b, r.LeavingServers)
		b = appendString(b, r.NewMembers)
		b = appendInt64(b, r.CurConfigID)
	case *op.CheckWatchesRequest:
		b = appendString(b, r.Path)
		b = appendInt32(b, int32(r.Type))
	case *op.RemoveWatchesRequest:
		b = appendString(b, r.Path)
		b = appendInt32(b, int32(r.Type))
	case *op.DeleteContainerRequest:
		b = appendString(b, r.Path)
	case *op.AuthRequest:
		b = appendInt32(b, r.Type)
		b = appendString(b, r.Scheme)
		b = appendBuffer(b, r.Auth)
	case *op.SetWatchesRequest:
		b = appendInt64(b, r.RelativeZxid)
		b = appendStrings(b, r.DataWatches, true)
		b = appendStrings(b, r.ExistWatches, true)
		b = appendStrings(b, r.ChildWatches, true)
		if r.HasPersistentFields {
			b = appendStrings(b, r.PersistentWatches, true)
			b = appendStrings(b, r.RecursiveWatches, true)
		}
	case *op.SASLRequest:
		b = appendBuffer(b, r.Token)
	case *op.GetEphemeralsRequest:
		b = appendString(b, r.PrefixPath)
	case *op.GetAllChildrenNumberRequest:
		b = appendString(b, r.Path)
	case *op.AddWatchRequest:
		b = appendString(b, r.Path)
		b = appendInt32(b, int32(r.Mode))
	case *op.WhoAmIRequest, *op.PingRequest, *op.CloseSessionRequest:
		// header only
	default:
		return b, errBadMultiOp
	}
	return b, nil
}

func appendMultiOps(b []byte, ops []op.Request) ([]byte, error) {
	var err error
	for _, sub := range ops {
		b = appendMultiHeader(b, sub.Op(), false, -1)
		if b, err = appendRequestBody(b, sub); err != nil {
			return b, err
		}
	}
	return appendMultiHeader(b, -1, true, -1), nil
}

func appendMultiHeader(b []byte, typ op.Code, done bool, err int32) []byte {
	b = appendInt32(b, int32(typ))
	b = appendBool(b, done)
	return appendInt32(b, err)
}

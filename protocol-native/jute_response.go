package protocolnative

// Response-side records: ConnectResponse, ReplyHeader, every response
// record, MultiResponse and WatcherEvent notifications.

import (
	"encoding/binary"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/protocol"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// notificationXid is the xid of a watch event.
const notificationXid int32 = -1

var zeroPassword [passwdLen]byte

// appendConnectResponse writes a framed ConnectResponse, with the readOnly
// byte only if the client sent one. A nil password is sent as 16 zero bytes
// (the "expired" answer), never as a null buffer clients would choke on.
func appendConnectResponse(b []byte, resp *protocol.ConnectResponse, withReadOnly bool) []byte {
	b, start := beginFrame(b)
	b = appendInt32(b, resp.ProtocolVersion)
	b = appendInt32(b, resp.TimeoutMs)
	b = appendInt64(b, resp.SessionID)
	if resp.Password == nil {
		b = appendBuffer(b, zeroPassword[:])
	} else {
		b = appendBuffer(b, resp.Password)
	}
	if withReadOnly {
		b = appendBool(b, resp.ReadOnly)
	}
	return endFrame(b, start)
}

// decodeConnectResponse is the client-side decoder (tests).
func decodeConnectResponse(b []byte) (resp protocol.ConnectResponse, hasReadOnly bool, err error) {
	d := newDecoder(b)
	resp.ProtocolVersion = d.int32()
	resp.TimeoutMs = d.int32()
	resp.SessionID = d.int64()
	resp.Password = d.buffer()
	if d.err == nil && d.remaining() > 0 {
		resp.ReadOnly = d.bool()
		hasReadOnly = true
	}
	if err := d.finish(); err != nil {
		return protocol.ConnectResponse{}, false, err
	}
	return resp, hasReadOnly, nil
}

func appendReplyHeader(b []byte, xid int32, zxid int64, code zkerr.Code) []byte {
	b = appendInt32(b, xid)
	b = appendInt64(b, zxid)
	return appendInt32(b, int32(code))
}

// appendReply writes a framed reply. ZooKeeper sends only the header when
// code is not OK, and so do we whatever resp holds. On error b is returned
// unchanged.
func appendReply(b []byte, xid int32, zxid int64, code zkerr.Code, resp op.Response) ([]byte, error) {
	b, start := beginFrame(b)
	b = appendReplyHeader(b, xid, zxid, code)
	if code == zkerr.OK && resp != nil {
		var err error
		if b, err = appendResponseBody(b, resp); err != nil {
			return b[:start], err
		}
	}
	return endFrame(b, start), nil
}

// appendEvent writes a framed WatcherEvent notification. The header zxid is
// the zxid of the change that fired it (ZooKeeper 3.9, ZOOKEEPER-4655; 3.8
// sent -1), and the state is always SyncConnected.
func appendEvent(b []byte, ev *op.WatchEvent) []byte {
	b, start := beginFrame(b)
	b = appendReplyHeader(b, notificationXid, ev.Zxid, zkerr.OK)
	b = appendInt32(b, int32(ev.Type))
	b = appendInt32(b, znode.StateSyncConnected)
	b = appendString(b, ev.Path)
	return endFrame(b, start)
}

// isCreate2Shape reports whether a create variant is answered with
// Create2Response (path + stat) rather than CreateResponse (path).
func isCreate2Shape(c op.Code) bool {
	return c == op.Create2 || c == op.CreateContainer || c == op.CreateTTL
}

func appendResponseBody(b []byte, resp op.Response) ([]byte, error) {
	if isNilResponse(resp) {
		// A typed nil from the backend must not panic its apply goroutine.
		return b, errBadResponse
	}
	switch r := resp.(type) {
	case *op.CreateResponse:
		b = appendString(b, r.Path)
		if isCreate2Shape(r.OpCode) {
			b = appendStat(b, &r.Stat)
		}
	case *op.StatResponse:
		b = appendStat(b, &r.Stat)
	case *op.GetDataResponse:
		b = appendBuffer(b, r.Data)
		b = appendStat(b, &r.Stat)
	case *op.GetACLResponse:
		b = appendACLs(b, r.ACL, false)
		b = appendStat(b, &r.Stat)
	case *op.GetChildrenResponse:
		b = appendStrings(b, r.Children, false)
		if r.OpCode != op.GetChildren {
			b = appendStat(b, &r.Stat)
		}
	case *op.SyncResponse:
		b = appendString(b, r.Path)
	case *op.MultiResponse:
		return appendMultiResults(b, r.Results)
	case *op.ReconfigResponse:
		// reconfig answers with a GetDataResponse record.
		b = appendBuffer(b, r.Data)
		b = appendStat(b, &r.Stat)
	case *op.GetEphemeralsResponse:
		b = appendStrings(b, r.Paths, false)
	case *op.GetAllChildrenNumberResponse:
		b = appendInt32(b, r.Total)
	case *op.WhoAmIResponse:
		b = appendInt32(b, int32(len(r.Clients)))
		for i := range r.Clients {
			b = appendString(b, r.Clients[i].Scheme)
			b = appendString(b, r.Clients[i].ID)
		}
	case *op.SASLResponse:
		b = appendBuffer(b, r.Token)
	case *op.EmptyResponse:
		// addWatch is the one "empty" reply with a body: ErrorResponse{0}.
		if r.OpCode == op.AddWatch {
			b = appendInt32(b, 0)
		}
	default:
		return b, errBadResponse
	}
	return b, nil
}

// isNilResponse reports a typed nil pointer inside a non-nil interface.
func isNilResponse(resp op.Response) bool {
	switch r := resp.(type) {
	case *op.CreateResponse:
		return r == nil
	case *op.StatResponse:
		return r == nil
	case *op.GetDataResponse:
		return r == nil
	case *op.GetACLResponse:
		return r == nil
	case *op.GetChildrenResponse:
		return r == nil
	case *op.SyncResponse:
		return r == nil
	case *op.MultiResponse:
		return r == nil
	case *op.ReconfigResponse:
		return r == nil
	case *op.GetEphemeralsResponse:
		return r == nil
	case *op.GetAllChildrenNumberResponse:
		return r == nil
	case *op.WhoAmIResponse:
		return r == nil
	case *op.SASLResponse:
		return r == nil
	case *op.EmptyResponse:
		return r == nil
	}
	return false
}

// appendMultiResults writes MultiResponse: per result a MultiHeader and a
// body chosen by type, then the done header. A result with a non-zero Err,
// or with OpCode Error (the rolled-back ops of a failed multi carry Err 0),
// goes out as type -1 with ErrorResponse{err}.
func appendMultiResults(b []byte, results []op.Result) ([]byte, error) {
	for i := range results {
		res := &results[i]
		if res.Err != 0 || res.OpCode == op.Error {
			b = appendMultiHeader(b, op.Error, false, res.Err)
			b = appendInt32(b, res.Err)
			continue
		}
		switch res.OpCode {
		case op.Create:
			b = appendMultiHeader(b, op.Create, false, 0)
			b = appendString(b, res.Path)
		case op.Create2, op.CreateContainer, op.CreateTTL:
			// ZooKeeper reports all stat-returning creates as create2.
			b = appendMultiHeader(b, op.Create2, false, 0)
			b = appendString(b, res.Path)
			b = appendStat(b, &res.Stat)
		case op.Delete, op.Check:
			b = appendMultiHeader(b, res.OpCode, false, 0)
		case op.SetData:
			b = appendMultiHeader(b, op.SetData, false, 0)
			b = appendStat(b, &res.Stat)
		case op.GetChildren, op.GetChildren2:
			b = appendMultiHeader(b, op.GetChildren, false, 0)
			b = appendStrings(b, res.Children, false)
		case op.GetData:
			b = appendMultiHeader(b, op.GetData, false, 0)
			b = appendBuffer(b, res.Data)
			b = appendStat(b, &res.Stat)
		default:
			return b, errBadResponse
		}
	}
	return appendMultiHeader(b, -1, true, -1), nil
}

// decodeReplyHeader splits a reply frame (client side; tests).
func decodeReplyHeader(frame []byte) (xid int32, zxid int64, code zkerr.Code, body []byte, err error) {
	if len(frame) < replyHdrLen {
		return 0, 0, 0, nil, errShort
	}
	xid = int32(binary.BigEndian.Uint32(frame))
	zxid = int64(binary.BigEndian.Uint64(frame[4:]))
	code = zkerr.Code(int32(binary.BigEndian.Uint32(frame[12:])))
	return xid, zxid, code, frame[replyHdrLen:], nil
}

// decodeEvent decodes a WatcherEvent body (client side; tests).
func decodeEvent(body []byte) (ev op.WatchEvent, state int32, err error) {
	d := newDecoder(body)
	ev.Type = znode.EventType(d.int32())
	state = d.int32()
	ev.Path = d.string()
	return ev, state, d.finish()
}

// decodeResponse decodes the record answering opcode code (client side:
// tests and tools). Replies with no record decode to *op.EmptyResponse.
func decodeResponse(code op.Code, body []byte) (op.Response, error) {
	d := newDecoder(body)
	var resp op.Response
	switch code {
	case op.Create, op.Create2, op.CreateContainer, op.CreateTTL:
		r := &op.CreateResponse{OpCode: code}
		r.Path = d.string()
		if isCreate2Shape(code) {
			r.Stat = d.stat()
		}
		resp = r
	case op.Exists, op.SetData, op.SetACL:
		resp = &op.StatResponse{OpCode: code, Stat: d.stat()}
	case op.GetData:
		r := &op.GetDataResponse{}
		r.Data = d.buffer()
		r.Stat = d.stat()
		resp = r
	case op.GetACL:
		r := &op.GetACLResponse{}
		r.ACL = d.acls()
		r.Stat = d.stat()
		resp = r
	case op.GetChildren, op.GetChildren2:
		r := &op.GetChildrenResponse{OpCode: code}
		r.Children = d.strings()
		if code == op.GetChildren2 {
			r.Stat = d.stat()
		}
		resp = r
	case op.Sync:
		resp = &op.SyncResponse{Path: d.string()}
	case op.Multi, op.MultiRead:
		resp = &op.MultiResponse{OpCode: code, Results: decodeMultiResults(&d)}
	case op.Reconfig:
		r := &op.ReconfigResponse{}
		r.Data = d.buffer()
		r.Stat = d.stat()
		resp = r
	case op.GetEphemerals:
		resp = &op.GetEphemeralsResponse{Paths: d.strings()}
	case op.GetAllChildrenNumber:
		resp = &op.GetAllChildrenNumberResponse{Total: d.int32()}
	case op.WhoAmI:
		r := &op.WhoAmIResponse{}
		n := d.count(2 * minStringLen)
		if n > 0 {
			r.Clients = make([]znode.ID, 0, n)
			for i := 0; i < n && d.err == nil; i++ {
				scheme := d.string()
				id := d.string()
				r.Clients = append(r.Clients, znode.ID{Scheme: scheme, ID: id})
			}
		}
		resp = r
	case op.SASL:
		resp = &op.SASLResponse{Token: d.buffer()}
	case op.AddWatch:
		if e := d.int32(); e != 0 && d.err == nil {
			d.fail(errBadResponse)
		}
		resp = &op.EmptyResponse{OpCode: code}
	case op.Delete, op.DeleteContainer, op.Ping, op.CloseSession, op.Auth, op.SetWatches,
		op.SetWatches2, op.CheckWatches, op.RemoveWatches:
		resp = &op.EmptyResponse{OpCode: code}
	default:
		return nil, errUnknownOp
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return resp, nil
}

func decodeMultiResults(d *decoder) []op.Result {
	var results []op.Result
	for d.err == nil {
		typ := op.Code(d.int32())
		done := d.bool()
		herr := d.int32()
		if d.err != nil || done {
			break
		}
		res := op.Result{OpCode: typ}
		switch typ {
		case op.Error:
			res.Err = d.int32()
			_ = herr // the body repeats the header's err
		case op.Create:
			res.Path = d.string()
		case op.Create2:
			res.Path = d.string()
			res.Stat = d.stat()
		case op.Delete, op.Check:
		case op.SetData:
			res.Stat = d.stat()
		case op.GetChildren:
			res.Children = d.strings()
		case op.GetData:
			res.Data = d.buffer()
			res.Stat = d.stat()
		default:
			d.fail(errBadResponse)
		}
		results = append(results, res)
	}
	if d.err != nil {
		return nil
	}
	return results
}

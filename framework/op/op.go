// Package op is the request and response model every client protocol
// translates into: one Go type per ZooKeeper operation, numbered with
// ZooKeeper's opcodes so the native protocol needs no second table.
package op

import "github.com/corral-dev/corral/framework/znode"

// Code is a ZooKeeper opcode (ZooDefs.OpCode).
type Code int32

const (
	Notification         Code = 0
	Create               Code = 1
	Delete               Code = 2
	Exists               Code = 3
	GetData              Code = 4
	SetData              Code = 5
	GetACL               Code = 6
	SetACL               Code = 7
	GetChildren          Code = 8
	Sync                 Code = 9
	Ping                 Code = 11
	GetChildren2         Code = 12
	Check                Code = 13
	Multi                Code = 14
	Create2              Code = 15
	Reconfig             Code = 16
	CheckWatches         Code = 17
	RemoveWatches        Code = 18
	CreateContainer      Code = 19
	DeleteContainer      Code = 20
	CreateTTL            Code = 21
	MultiRead            Code = 22
	Auth                 Code = 100
	SetWatches           Code = 101
	SASL                 Code = 102
	GetEphemerals        Code = 103
	GetAllChildrenNumber Code = 104
	SetWatches2          Code = 105
	AddWatch             Code = 106
	WhoAmI               Code = 107
	CreateSession        Code = -10
	CloseSession         Code = -11
	Error                Code = -1
)

var names = map[Code]string{
	Notification: "notification", Create: "create", Delete: "delete", Exists: "exists",
	GetData: "getData", SetData: "setData", GetACL: "getACL", SetACL: "setACL",
	GetChildren: "getChildren", Sync: "sync", Ping: "ping", GetChildren2: "getChildren2",
	Check: "check", Multi: "multi", Create2: "create2", Reconfig: "reconfig",
	CheckWatches: "checkWatches", RemoveWatches: "removeWatches", CreateContainer: "createContainer",
	DeleteContainer: "deleteContainer", CreateTTL: "createTTL", MultiRead: "multiRead", Auth: "auth",
	SetWatches: "setWatches", SASL: "sasl", GetEphemerals: "getEphemerals",
	GetAllChildrenNumber: "getAllChildrenNumber", SetWatches2: "setWatches2", AddWatch: "addWatch",
	WhoAmI: "whoAmI", CreateSession: "createSession", CloseSession: "closeSession", Error: "error",
}

func (c Code) String() string {
	if n, ok := names[c]; ok {
		return n
	}
	return "unknown"
}

// IsWrite reports whether the op changes replicated state and therefore goes
// through consensus.
func (c Code) IsWrite() bool {
	switch c {
	case Create, Create2, CreateContainer, CreateTTL, Delete, DeleteContainer, SetData, SetACL,
		Check, Multi, Reconfig, CloseSession, CreateSession:
		return true
	}
	return false
}

// Request is implemented by every request type.
type Request interface{ Op() Code }

// Response is implemented by every response type.
type Response interface{ Op() Code }

// CreateRequest covers create, create2, createContainer and createTTL;
// OpCode says which one the client sent (it decides the reply's shape).
type CreateRequest struct {
	OpCode Code
	Path   string
	Data   []byte
	ACL    []znode.ACL
	Mode   znode.CreateMode
	TTL    int64 // milliseconds; createTTL only
}

type DeleteRequest struct {
	Path    string
	Version int32
}

// DeleteContainerRequest is the reaper's delete: only empty containers (or
// expired TTL nodes) are removed, and no ACL is checked.
type DeleteContainerRequest struct{ Path string }

type ExistsRequest struct {
	Path  string
	Watch bool
}

type GetDataRequest struct {
	Path  string
	Watch bool
}

type SetDataRequest struct {
	Path    string
	Data    []byte
	Version int32
}

type GetACLRequest struct{ Path string }

type SetACLRequest struct {
	Path    string
	ACL     []znode.ACL
	Version int32
}

// GetChildrenRequest covers getChildren (8) and getChildren2 (12).
type GetChildrenRequest struct {
	OpCode Code
	Path   string
	Watch  bool
}

type SyncRequest struct{ Path string }

// CheckRequest is only valid inside a multi.
type CheckRequest struct {
	Path    string
	Version int32
}

// MultiRequest is an atomic batch of create/delete/setData/check ops.
type MultiRequest struct{ Ops []Request }

// MultiReadRequest is a non-atomic batch of getData/getChildren ops.
type MultiReadRequest struct{ Ops []Request }

type ReconfigRequest struct {
	JoiningServers string
	LeavingServers string
	NewMembers     string
	CurConfigID    int64
}

type CheckWatchesRequest struct {
	Path string
	Type znode.WatcherType
}

type RemoveWatchesRequest struct {
	Path string
	Type znode.WatcherType
}

type AuthRequest struct {
	Type   int32
	Scheme string
	Auth   []byte
}

// SetWatchesRequest covers setWatches (101) and setWatches2 (105).
type SetWatchesRequest struct {
	RelativeZxid        int64
	DataWatches         []string
	ExistWatches        []string
	ChildWatches        []string
	PersistentWatches   []string
	RecursiveWatches    []string
	HasPersistentFields bool // true for setWatches2
}

type GetEphemeralsRequest struct{ PrefixPath string }

type GetAllChildrenNumberRequest struct{ Path string }

type AddWatchRequest struct {
	Path string
	Mode znode.AddWatchMode
}

type WhoAmIRequest struct{}

type PingRequest struct{}

type CloseSessionRequest struct{}

type SASLRequest struct{ Token []byte }

func (r *CreateRequest) Op() Code {
	if r.OpCode == 0 {
		return Create
	}
	return r.OpCode
}
func (*DeleteRequest) Op() Code          { return Delete }
func (*DeleteContainerRequest) Op() Code { return DeleteContainer }
func (*ExistsRequest) Op() Code          { return Exists }
func (*GetDataRequest) Op() Code         { return GetData }
func (*SetDataRequest) Op() Code         { return SetData }
func (*GetACLRequest) Op() Code          { return GetACL }
func (*SetACLRequest) Op() Code          { return SetACL }
func (r *GetChildrenRequest) Op() Code {
	if r.OpCode == 0 {
		return GetChildren2
	}
	return r.OpCode
}
func (*SyncRequest) Op() Code                 { return Sync }
func (*CheckRequest) Op() Code                { return Check }
func (*MultiRequest) Op() Code                { return Multi }
func (*MultiReadRequest) Op() Code            { return MultiRead }
func (*ReconfigRequest) Op() Code             { return Reconfig }
func (*CheckWatchesRequest) Op() Code         { return CheckWatches }
func (*RemoveWatchesRequest) Op() Code        { return RemoveWatches }
func (*AuthRequest) Op() Code                 { return Auth }
func (*GetEphemeralsRequest) Op() Code        { return GetEphemerals }
func (*GetAllChildrenNumberRequest) Op() Code { return GetAllChildrenNumber }
func (*AddWatchRequest) Op() Code             { return AddWatch }
func (*WhoAmIRequest) Op() Code               { return WhoAmI }
func (*PingRequest) Op() Code                 { return Ping }
func (*CloseSessionRequest) Op() Code         { return CloseSession }
func (*SASLRequest) Op() Code                 { return SASL }
func (r *SetWatchesRequest) Op() Code {
	if r.HasPersistentFields {
		return SetWatches2
	}
	return SetWatches
}

// Responses. A request whose reply has no body gets EmptyResponse.

// CreateResponse answers all create variants; Stat is sent only for the
// ops that reply with Create2Response on the wire.
type CreateResponse struct {
	OpCode Code
	Path   string
	Stat   znode.Stat
}

// StatResponse answers exists, setData and setACL.
type StatResponse struct {
	OpCode Code
	Stat   znode.Stat
}

type GetDataResponse struct {
	Data []byte
	Stat znode.Stat
}

type GetACLResponse struct {
	ACL  []znode.ACL
	Stat znode.Stat
}

// GetChildrenResponse answers getChildren (Stat unused) and getChildren2.
type GetChildrenResponse struct {
	OpCode   Code
	Children []string
	Stat     znode.Stat
}

type SyncResponse struct{ Path string }

// Result is one entry of a multi or multiRead reply. Err is the op's code
// (zkerr.Code value); when it is non-zero, OpCode is Error on the wire.
type Result struct {
	OpCode   Code
	Err      int32
	Path     string     // create
	Stat     znode.Stat // create2/setData/getData
	Data     []byte     // getData
	Children []string   // getChildren
}

type MultiResponse struct {
	OpCode  Code // Multi or MultiRead
	Results []Result
}

// ReconfigResponse carries the new /zookeeper/config data and its Stat.
type ReconfigResponse struct {
	Data []byte
	Stat znode.Stat
}

type GetEphemeralsResponse struct{ Paths []string }

type GetAllChildrenNumberResponse struct{ Total int32 }

type WhoAmIResponse struct{ Clients []znode.ID }

type SASLResponse struct{ Token []byte }

// EmptyResponse answers ops whose reply is only the header (delete, auth,
// setWatches, removeWatches, checkWatches, ping, closeSession, addWatch).
type EmptyResponse struct{ OpCode Code }

func (r *CreateResponse) Op() Code             { return r.OpCode }
func (r *StatResponse) Op() Code               { return r.OpCode }
func (*GetDataResponse) Op() Code              { return GetData }
func (*GetACLResponse) Op() Code               { return GetACL }
func (r *GetChildrenResponse) Op() Code        { return r.OpCode }
func (*SyncResponse) Op() Code                 { return Sync }
func (r *MultiResponse) Op() Code              { return r.OpCode }
func (*ReconfigResponse) Op() Code             { return Reconfig }
func (*GetEphemeralsResponse) Op() Code        { return GetEphemerals }
func (*GetAllChildrenNumberResponse) Op() Code { return GetAllChildrenNumber }
func (*WhoAmIResponse) Op() Code               { return WhoAmI }
func (*SASLResponse) Op() Code                 { return SASL }
func (r *EmptyResponse) Op() Code              { return r.OpCode }

// WatchEvent is a notification for a client (xid -1 on the native wire).
type WatchEvent struct {
	Type znode.EventType
	Path string
	Zxid int64 // the zxid of the change that fired it
}

// Package zkerr holds ZooKeeper's error codes as Go error values. The
// framework returns these everywhere; each protocol maps them to its wire
// form exactly once, at its edge.
package zkerr

import (
	"errors"
	"fmt"
)

// Code is a ZooKeeper error code (KeeperException.Code), as sent on the wire.
type Code int32

// ZooKeeper's codes. Client-only codes are kept so clients built on this
// package can use the same names.
const (
	OK                           Code = 0
	SystemError                  Code = -1
	RuntimeInconsistency         Code = -2
	DataInconsistency            Code = -3
	ConnectionLoss               Code = -4
	MarshallingError             Code = -5
	Unimplemented                Code = -6
	OperationTimeout             Code = -7
	BadArguments                 Code = -8
	UnknownSession               Code = -12
	NewConfigNoQuorum            Code = -13
	ReconfigInProgress           Code = -14
	APIError                     Code = -100
	NoNode                       Code = -101
	NoAuth                       Code = -102
	BadVersion                   Code = -103
	NoChildrenForEphemerals      Code = -108
	NodeExists                   Code = -110
	NotEmpty                     Code = -111
	SessionExpired               Code = -112
	InvalidCallback              Code = -113
	InvalidACL                   Code = -114
	AuthFailed                   Code = -115
	SessionMoved                 Code = -118
	NotReadOnly                  Code = -119
	EphemeralOnLocalSession      Code = -120
	NoWatcher                    Code = -121
	RequestTimeout               Code = -122
	ReconfigDisabled             Code = -123
	SessionClosedRequireSASLAuth Code = -124
	QuotaExceeded                Code = -125
	ThrottledOp                  Code = -127
)

var codeNames = map[Code]string{
	OK:                           "ok",
	SystemError:                  "system error",
	RuntimeInconsistency:         "runtime inconsistency",
	DataInconsistency:            "data inconsistency",
	ConnectionLoss:               "connection loss",
	MarshallingError:             "marshalling error",
	Unimplemented:                "unimplemented",
	OperationTimeout:             "operation timeout",
	BadArguments:                 "bad arguments",
	UnknownSession:               "unknown session",
	NewConfigNoQuorum:            "new config has no quorum",
	ReconfigInProgress:           "reconfig in progress",
	APIError:                     "api error",
	NoNode:                       "node does not exist",
	NoAuth:                       "not authenticated",
	BadVersion:                   "bad version",
	NoChildrenForEphemerals:      "ephemeral nodes may not have children",
	NodeExists:                   "node already exists",
	NotEmpty:                     "node has children",
	SessionExpired:               "session has expired",
	InvalidCallback:              "invalid callback",
	InvalidACL:                   "invalid ACL",
	AuthFailed:                   "authentication failed",
	SessionMoved:                 "session moved to another server",
	NotReadOnly:                  "not a read-only call",
	EphemeralOnLocalSession:      "ephemeral on local session",
	NoWatcher:                    "no such watcher",
	RequestTimeout:               "request timeout",
	ReconfigDisabled:             "reconfig is disabled",
	SessionClosedRequireSASLAuth: "session closed: authentication required",
	QuotaExceeded:                "quota exceeded",
	ThrottledOp:                  "operation throttled",
}

// String returns ZooKeeper's description of the code.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("unknown error %d", int32(c))
}

// Error is a failure with a ZooKeeper code, optionally naming the path and
// adding detail for logs and humans. Two Errors match under errors.Is when
// their codes are equal.
type Error struct {
	Code   Code
	Path   string
	Detail string
}

func (e *Error) Error() string {
	msg := "zk: " + e.Code.String()
	if e.Path != "" {
		msg += " for " + e.Path
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is makes errors.Is(err, zkerr.ErrNoNode) true for any *Error with that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New returns an error with the code and path.
func New(code Code, path string) *Error { return &Error{Code: code, Path: path} }

// Newf returns an error with the code, path and a formatted detail.
func Newf(code Code, path, format string, args ...any) *Error {
	return &Error{Code: code, Path: path, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf maps any error to the code a client should see: nil is OK, an
// *Error carries its own code, and anything else is a system error.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return SystemError
}

// Sentinels for errors.Is.
var (
	ErrSystemError             = &Error{Code: SystemError}
	ErrRuntimeInconsistency    = &Error{Code: RuntimeInconsistency}
	ErrMarshallingError        = &Error{Code: MarshallingError}
	ErrUnimplemented           = &Error{Code: Unimplemented}
	ErrBadArguments            = &Error{Code: BadArguments}
	ErrNewConfigNoQuorum       = &Error{Code: NewConfigNoQuorum}
	ErrReconfigInProgress      = &Error{Code: ReconfigInProgress}
	ErrAPIError                = &Error{Code: APIError}
	ErrNoNode                  = &Error{Code: NoNode}
	ErrNoAuth                  = &Error{Code: NoAuth}
	ErrBadVersion              = &Error{Code: BadVersion}
	ErrNoChildrenForEphemerals = &Error{Code: NoChildrenForEphemerals}
	ErrNodeExists              = &Error{Code: NodeExists}
	ErrNotEmpty                = &Error{Code: NotEmpty}
	ErrSessionExpired          = &Error{Code: SessionExpired}
	ErrInvalidACL              = &Error{Code: InvalidACL}
	ErrAuthFailed              = &Error{Code: AuthFailed}
	ErrSessionMoved            = &Error{Code: SessionMoved}
	ErrNotReadOnly             = &Error{Code: NotReadOnly}
	ErrNoWatcher               = &Error{Code: NoWatcher}
	ErrReconfigDisabled        = &Error{Code: ReconfigDisabled}
	ErrQuotaExceeded           = &Error{Code: QuotaExceeded}
	ErrThrottledOp             = &Error{Code: ThrottledOp}
	ErrConnectionLoss          = &Error{Code: ConnectionLoss}
	ErrOperationTimeout        = &Error{Code: OperationTimeout}
)

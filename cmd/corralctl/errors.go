package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Exit codes, stable for scripts.
const (
	exitOK         = 0
	exitZK         = 1 // the server answered with a ZooKeeper error
	exitUsage      = 2 // bad command line
	exitConnection = 3 // no session, or the session/connection was lost
)

// ZooKeeper error codes (KeeperException.Code) used in messages.
const (
	codeSystemError        = -1
	codeMarshalling        = -5
	codeUnimplemented      = -6
	codeBadArguments       = -8
	codeNewConfigNoQuorum  = -13
	codeReconfigInProgress = -14
	codeNoNode             = -101
	codeNoAuth             = -102
	codeBadVersion         = -103
	codeNoChildrenForEp    = -108
	codeNodeExists         = -110
	codeNotEmpty           = -111
	codeSessionExpired     = -112
	codeInvalidACL         = -114
	codeAuthFailed         = -115
	codeNoWatcher          = -121
	codeReconfigDisable    = -123
)

// zkError is a ZooKeeper error code from a reply.
type zkError struct{ code int32 }

func (e *zkError) Error() string { return fmt.Sprintf("ZooKeeper error %d", e.code) }

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// codedError is a message already worded for the user, with its exit code.
type codedError struct {
	msg  string
	code int
}

func (e *codedError) Error() string { return e.msg }

// connError is a connection failure (exit 3).
type connError struct{ msg string }

func (e *connError) Error() string { return e.msg }

var goZKCodes = map[error]int32{
	zk.ErrAPIError:                -100,
	zk.ErrNoNode:                  codeNoNode,
	zk.ErrNoAuth:                  codeNoAuth,
	zk.ErrBadVersion:              codeBadVersion,
	zk.ErrNoChildrenForEphemerals: codeNoChildrenForEp,
	zk.ErrNodeExists:              codeNodeExists,
	zk.ErrNotEmpty:                codeNotEmpty,
	zk.ErrInvalidACL:              codeInvalidACL,
	zk.ErrAuthFailed:              codeAuthFailed,
	zk.ErrBadArguments:            codeBadArguments,
	zk.ErrReconfigDisabled:        codeReconfigDisable,
	zk.ErrSessionMoved:            -118,
}

// codeOf extracts a ZooKeeper error code from go-zk's sentinel errors, its
// "unknown error: N" fallback (go-zk maps only some codes), or a zkError.
func codeOf(err error) (int32, bool) {
	if err == nil {
		return 0, false
	}
	var ze *zkError
	if errors.As(err, &ze) {
		return ze.code, true
	}
	for sentinel, code := range goZKCodes {
		if errors.Is(err, sentinel) {
			return code, true
		}
	}
	if rest, ok := strings.CutPrefix(err.Error(), "unknown error: "); ok {
		if n, err := strconv.Atoi(rest); err == nil {
			return int32(n), true
		}
	}
	return 0, false
}

func isConnErr(err error) bool {
	var ce *connError
	return errors.As(err, &ce) ||
		errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionExpired) ||
		errors.Is(err, errNotConnected)
}

// describe turns an error from an operation on path into the message printed
// for the user and the exit code. The wording follows zkCli where zkCli has a
// friendly message (e.g. "Node does not exist: /a").
func describe(err error, path string) (string, int) {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.msg, ce.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.msg, exitUsage
	}
	if errors.Is(err, zk.ErrInvalidPath) {
		return "Invalid path: " + strconv.Quote(path), exitUsage
	}
	if errors.Is(err, zk.ErrSessionExpired) {
		return "Session expired", exitConnection
	}
	if isConnErr(err) {
		return "Connection failure: " + err.Error(), exitConnection
	}
	code, ok := codeOf(err)
	if !ok {
		return err.Error(), exitZK
	}
	return codeMessage(code, path), exitZK
}

func codeMessage(code int32, path string) string {
	suffix := ""
	if path != "" {
		suffix = ": " + path
	}
	switch code {
	case codeNoNode:
		return "Node does not exist" + suffix
	case codeNodeExists:
		return "Node already exists" + suffix
	case codeNotEmpty:
		return "Node not empty" + suffix
	case codeBadVersion:
		return "Bad version (version does not match)" + suffix
	case codeNoAuth:
		return "Insufficient permission" + suffix
	case codeNoChildrenForEp:
		return "Ephemerals cannot have children" + suffix
	case codeInvalidACL:
		return "Invalid ACL" + suffix
	case codeBadArguments:
		return "Bad arguments" + suffix
	case codeUnimplemented:
		return "Operation not implemented by the server" + suffix
	case codeAuthFailed:
		return "Authentication failed"
	case codeNoWatcher:
		return "No such watcher" + suffix
	case codeReconfigDisable:
		return "Reconfig is disabled"
	case codeNewConfigNoQuorum:
		return "New configuration has no quorum"
	case codeReconfigInProgress:
		return "Reconfig in progress"
	case codeMarshalling:
		return "Marshalling error (the server could not decode the request)" + suffix
	case codeSystemError:
		return "Server system error" + suffix
	}
	return fmt.Sprintf("ZooKeeper error %d%s", code, suffix)
}

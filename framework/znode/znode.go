// Package znode holds the pure data types of ZooKeeper's tree: Stat, ACLs,
// create modes, watch enums and path rules. It has no behaviour beyond
// validation and small helpers.
package znode

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/corral-dev/corral/framework/zkerr"
)

// Stat is a znode's metadata, field for field as ZooKeeper sends it (the
// wire order puts Pzxid last).
type Stat struct {
	Czxid          int64
	Mzxid          int64
	Ctime          int64
	Mtime          int64
	Version        int32
	Cversion       int32
	Aversion       int32
	EphemeralOwner int64
	DataLength     int32
	NumChildren    int32
	Pzxid          int64
}

// Permission bits (ZooDefs.Perms).
const (
	PermRead   int32 = 1 << 0
	PermWrite  int32 = 1 << 1
	PermCreate int32 = 1 << 2
	PermDelete int32 = 1 << 3
	PermAdmin  int32 = 1 << 4
	PermAll    int32 = 0x1f
)

// ID is an authentication identity: a scheme and an id within it.
type ID struct {
	Scheme string
	ID     string
}

// ACL grants Perms to the identity ID.
type ACL struct {
	Perms  int32
	Scheme string
	ID     string
}

// Well-known ACL lists (ZooDefs.Ids).
var (
	OpenACLUnsafe = []ACL{{Perms: PermAll, Scheme: "world", ID: "anyone"}}
	ReadACLUnsafe = []ACL{{Perms: PermRead, Scheme: "world", ID: "anyone"}}
	CreatorAllACL = []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}}
)

// CreateMode is the flags field of a create request.
type CreateMode int32

const (
	Persistent                  CreateMode = 0
	Ephemeral                   CreateMode = 1
	PersistentSequential        CreateMode = 2
	EphemeralSequential         CreateMode = 3
	Container                   CreateMode = 4
	PersistentWithTTL           CreateMode = 5
	PersistentSequentialWithTTL CreateMode = 6
)

// Valid reports whether m is one of ZooKeeper's seven modes.
func (m CreateMode) Valid() bool { return m >= Persistent && m <= PersistentSequentialWithTTL }

// IsEphemeral reports whether the node dies with its session.
func (m CreateMode) IsEphemeral() bool { return m == Ephemeral || m == EphemeralSequential }

// IsSequential reports whether the server appends a sequence suffix.
func (m CreateMode) IsSequential() bool {
	return m == PersistentSequential || m == EphemeralSequential || m == PersistentSequentialWithTTL
}

// IsContainer reports whether the node is a container.
func (m CreateMode) IsContainer() bool { return m == Container }

// IsTTL reports whether the node expires after a TTL.
func (m CreateMode) IsTTL() bool { return m == PersistentWithTTL || m == PersistentSequentialWithTTL }

// MaxTTL is the largest TTL ZooKeeper accepts (40 bits of milliseconds).
const MaxTTL = 1<<40 - 1

// EventType is a watch event's type as sent on the wire.
type EventType int32

const (
	EventNone                EventType = -1
	EventNodeCreated         EventType = 1
	EventNodeDeleted         EventType = 2
	EventNodeDataChanged     EventType = 3
	EventNodeChildrenChanged EventType = 4
)

// String names the event as ZooKeeper's Watcher.Event.EventType does.
func (e EventType) String() string {
	switch e {
	case EventNodeCreated:
		return "NodeCreated"
	case EventNodeDeleted:
		return "NodeDeleted"
	case EventNodeDataChanged:
		return "NodeDataChanged"
	case EventNodeChildrenChanged:
		return "NodeChildrenChanged"
	}
	return "None"
}

// StateSyncConnected is the only keeper state the server puts in events.
const StateSyncConnected int32 = 3

// WatcherType selects watches in checkWatches/removeWatches.
type WatcherType int32

const (
	WatcherChildren            WatcherType = 1
	WatcherData                WatcherType = 2
	WatcherAny                 WatcherType = 3
	WatcherPersistent          WatcherType = 4
	WatcherPersistentRecursive WatcherType = 5
)

// AddWatchMode is the mode of an addWatch request.
type AddWatchMode int32

const (
	AddWatchPersistent          AddWatchMode = 0
	AddWatchPersistentRecursive AddWatchMode = 1
)

// ValidatePath applies ZooKeeper's PathUtils.validatePath. A sequential
// create is validated with a suffix appended, so "/q/" is allowed there.
func ValidatePath(path string, sequential bool) error {
	if sequential {
		path += "1"
	}
	bad := func(why string) error { return zkerr.Newf(zkerr.BadArguments, path, "invalid path: %s", why) }
	if path == "" {
		return bad("path length must be > 0")
	}
	if path[0] != '/' {
		return bad("path must start with / character")
	}
	if len(path) == 1 {
		return nil
	}
	if path[len(path)-1] == '/' {
		return bad("path must not end with / character")
	}
	if !utf8.ValidString(path) {
		return bad("path is not valid UTF-8")
	}
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			seg := path[segStart:i]
			switch seg {
			case "":
				return bad("empty node name specified")
			case ".", "..":
				return bad("relative paths not allowed")
			}
			segStart = i + 1
		}
	}
	for _, r := range path {
		if !allowedRune(r) {
			return bad("invalid character")
		}
	}
	return nil
}

// allowedRune follows Java's UTF-16 checks: any code point outside the BMP
// is made of surrogates, which ZooKeeper refuses.
func allowedRune(r rune) bool {
	switch {
	case r == 0:
		return false
	case r > 0 && r < 0x1f+1:
		return false
	case r >= 0x7f && r <= 0x9f:
		return false
	case r >= 0xd800 && r <= 0xf8ff:
		return false
	case r >= 0xfff0 && r <= 0xffff:
		return false
	case utf16.IsSurrogate(r) || r > 0xffff:
		return false
	}
	return true
}

// Parent returns the parent of an absolute path ("/" for top-level nodes,
// "" for the root itself).
func Parent(path string) string {
	if path == "/" {
		return ""
	}
	i := strings.LastIndexByte(path, '/')
	if i == 0 {
		return "/"
	}
	return path[:i]
}

// Base returns the last segment of a path.
func Base(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// Join appends a child name to a parent path.
func Join(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// Digest returns ZooKeeper's digest id for "user:password":
// user:base64(sha1("user:password")).
func Digest(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

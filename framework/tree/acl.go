package tree

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// aclList is an interned, immutable ACL list shared by every node that has
// it (ZooKeeper's ReferenceCountedACLCache plays the same role).
type aclList struct {
	acl  []znode.ACL
	key  string // canonical encoding: the intern key
	hash uint64 // feeds node digests
}

// aclTable interns ACL lists. Entries are weak so lists no node uses any
// more are collected; the table never affects state or output, only memory.
type aclTable struct {
	mu   sync.Mutex
	m    map[string]weak.Pointer[aclList]
	last *aclList // most creates repeat the previous ACL; skips encoding it
}

func newACLTable() *aclTable { return &aclTable{m: make(map[string]weak.Pointer[aclList])} }

func aclKey(acl []znode.ACL) string {
	var b []byte
	for _, a := range acl {
		b = binary.AppendVarint(b, int64(a.Perms))
		b = binary.AppendUvarint(b, uint64(len(a.Scheme)))
		b = append(b, a.Scheme...)
		b = binary.AppendUvarint(b, uint64(len(a.ID)))
		b = append(b, a.ID...)
	}
	return string(b)
}

func (t *aclTable) intern(acl []znode.ACL) *aclList {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != nil && slices.Equal(t.last.acl, acl) {
		return t.last
	}
	key := aclKey(acl)
	if wp, ok := t.m[key]; ok {
		if p := wp.Value(); p != nil {
			t.last = p
			return p
		}
	}
	p := &aclList{acl: slices.Clone(acl), key: key, hash: hashString("acl\x00" + key)}
	t.m[key] = weak.Make(p)
	runtime.AddCleanup(p, t.forget, key)
	t.last = p
	return p
}

func (t *aclTable) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A newer list with the same key may have replaced the dead one.
	if wp, ok := t.m[key]; ok && wp.Value() == nil {
		delete(t.m, key)
	}
}

// Schemes whose ids a provider marks authenticated, so the `auth` pseudo
// scheme expands to them (ZooKeeper's isAuthenticated(): digest, x509,
// sasl; not ip).
func authenticatedScheme(s string) bool { return s == "digest" || s == "x509" || s == "sasl" }

// fixupACL is PrepRequestProcessor.fixupACL: duplicates removed, empty list
// refused, `auth` expanded to the caller's authenticated ids, every other id
// validated by its scheme.
func fixupACL(path string, acl []znode.ACL, a Auth) ([]znode.ACL, error) {
	if plainACL(acl) {
		return acl, nil // the common case, without allocating
	}
	uniq := make([]znode.ACL, 0, len(acl))
	for _, e := range acl {
		if !containsACL(uniq, e) {
			uniq = append(uniq, e)
		}
	}
	if len(uniq) == 0 {
		return nil, zkerr.Newf(zkerr.InvalidACL, path, "empty ACL list")
	}
	out := make([]znode.ACL, 0, len(uniq))
	for _, e := range uniq {
		switch {
		case e.Scheme == "world" && e.ID == "anyone":
			out = append(out, e)
		case e.Scheme == "auth":
			found := false
			for _, id := range a.IDs {
				if authenticatedScheme(id.Scheme) {
					found = true
					out = append(out, znode.ACL{Perms: e.Perms, Scheme: id.Scheme, ID: id.ID})
				}
			}
			if !found {
				return nil, zkerr.Newf(zkerr.InvalidACL, path, "auth scheme with no authenticated id")
			}
		default:
			if !validID(e.Scheme, e.ID) {
				return nil, zkerr.Newf(zkerr.InvalidACL, path, "invalid ACL id %s:%s", e.Scheme, e.ID)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// plainACL reports whether fixupACL would return acl unchanged: not empty,
// no duplicates, no `auth` entry, every id valid.
func plainACL(acl []znode.ACL) bool {
	if len(acl) == 0 {
		return false
	}
	for i, e := range acl {
		if containsACL(acl[:i], e) {
			return false
		}
		if !(e.Scheme == "world" && e.ID == "anyone") && !validID(e.Scheme, e.ID) {
			return false
		}
	}
	return true
}

func containsACL(l []znode.ACL, e znode.ACL) bool {
	for _, x := range l {
		if x == e {
			return true
		}
	}
	return false
}

// validID is each provider's isValid(). "world" with any id but "anyone"
// has no provider in ZooKeeper and is refused like an unknown scheme.
func validID(scheme, id string) bool {
	switch scheme {
	case "digest":
		// DigestAuthenticationProvider: id.split(":").length == 2, with
		// Java's split dropping trailing empty strings ("user:" is refused,
		// ":x" accepted).
		parts := strings.Split(id, ":")
		for len(parts) > 0 && parts[len(parts)-1] == "" {
			parts = parts[:len(parts)-1]
		}
		return len(parts) == 2
	case "ip":
		_, _, ok := parseIPExpr(id)
		return ok
	case "x509", "sasl":
		return id != ""
	}
	return false
}

// checkACL is ZooKeeperServer.checkACL: super passes, an empty list allows
// everything, otherwise some entry must grant one of perm's bits to
// world:anyone or to one of the caller's ids of the same scheme.
func checkACL(l *aclList, perm int32, a Auth) bool {
	if a.Super || len(l.acl) == 0 {
		return true
	}
	for _, id := range a.IDs {
		if id.Scheme == "super" {
			return true
		}
	}
	for _, e := range l.acl {
		if e.Perms&perm == 0 {
			continue
		}
		if e.Scheme == "world" && e.ID == "anyone" {
			return true
		}
		for _, id := range a.IDs {
			if id.Scheme == e.Scheme && idMatches(e.Scheme, id.ID, e.ID) {
				return true
			}
		}
	}
	return false
}

func idMatches(scheme, id, expr string) bool {
	switch scheme {
	case "ip":
		return ipMatches(id, expr)
	case "digest", "x509", "sasl":
		return id == expr
	}
	// No provider for the scheme: ZooKeeper never matches it.
	return false
}

// parseIPExpr parses "addr[/bits]" as IPAuthenticationProvider does.
func parseIPExpr(expr string) (netip.Addr, int, bool) {
	addrPart, bitsPart, hasBits := strings.Cut(expr, "/")
	addr, ok := parseIP(addrPart)
	if !ok {
		return netip.Addr{}, 0, false
	}
	n := addr.BitLen()
	if hasBits {
		b, err := strconv.Atoi(bitsPart)
		if err != nil || b < 0 || b > addr.BitLen() {
			return netip.Addr{}, 0, false
		}
		n = b
	}
	return addr, n, true
}

// parseIP accepts a dotted IPv4 quad (Java's Integer.parseInt per part, so
// leading zeros are fine) or an IPv6 address without zone.
func parseIP(s string) (netip.Addr, bool) {
	if strings.Count(s, ".") == 3 && !strings.Contains(s, ":") {
		var b [4]byte
		for i, p := range strings.Split(s, ".") {
			v, err := strconv.Atoi(p)
			if err != nil || v < 0 || v > 255 {
				return netip.Addr{}, false
			}
			b[i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func ipMatches(id, expr string) bool {
	acl, bits, ok := parseIPExpr(expr)
	if !ok {
		return false
	}
	remote, ok := parseIP(id)
	if !ok || remote.BitLen() != acl.BitLen() {
		return false
	}
	p1, err1 := acl.Prefix(bits)
	p2, err2 := remote.Prefix(bits)
	return err1 == nil && err2 == nil && p1 == p2
}

// maskACL is FinalRequestProcessor's getACL answer for a caller without
// ADMIN: digest ids lose everything after the user name (`user:x`).
func maskACL(acl []znode.ACL) []znode.ACL {
	out := make([]znode.ACL, len(acl))
	for i, e := range acl {
		if e.Scheme == "digest" {
			// Java: id.replaceAll(":.*", ":x") replaces from the first colon.
			if j := strings.IndexByte(e.ID, ':'); j >= 0 {
				e.ID = e.ID[:j] + ":x"
			}
		}
		out[i] = e
	}
	return out
}

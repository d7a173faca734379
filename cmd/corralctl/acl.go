package main

import (
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"
)

// permLetters is zkCli's permission alphabet, in the order zkCli prints it.
const permLetters = "cdrwa"

var permBits = map[byte]int32{
	'c': zk.PermCreate,
	'd': zk.PermDelete,
	'r': zk.PermRead,
	'w': zk.PermWrite,
	'a': zk.PermAdmin,
}

// parsePerms turns "cdrwa"-style letters into ZooKeeper's permission bits.
// Unknown letters are an error rather than ignored, so a typo cannot silently
// produce a weaker ACL.
func parsePerms(s string) (int32, error) {
	if s == "" {
		return 0, fmt.Errorf("empty permissions (want letters from %q)", permLetters)
	}
	var p int32
	for i := 0; i < len(s); i++ {
		b, ok := permBits[s[i]]
		if !ok {
			return 0, fmt.Errorf("invalid permission %q in %q (want letters from %q)", s[i], s, permLetters)
		}
		p |= b
	}
	return p, nil
}

// formatPerms renders permission bits as zkCli does ("cdrwa" order).
func formatPerms(p int32) string {
	var b strings.Builder
	for i := 0; i < len(permLetters); i++ {
		if p&permBits[permLetters[i]] != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// parseACL parses zkCli's ACL syntax: comma-separated scheme:id:perms entries,
// e.g. "world:anyone:cdrwa,digest:bob:X/NSthOB0fD/OT6iilJ55WJVado=:r". The id
// runs from the first to the last colon because digest ids and IPv6 addresses
// contain colons themselves; "auth" takes an empty id ("auth::cdrwa").
func parseACL(s string) ([]zk.ACL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty ACL")
	}
	var acls []zk.ACL
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		first := strings.Index(entry, ":")
		last := strings.LastIndex(entry, ":")
		if first < 0 || first == last {
			return nil, fmt.Errorf("invalid ACL entry %q: want scheme:id:perms", entry)
		}
		scheme, id, perms := entry[:first], entry[first+1:last], entry[last+1:]
		if scheme == "" {
			return nil, fmt.Errorf("invalid ACL entry %q: empty scheme", entry)
		}
		p, err := parsePerms(perms)
		if err != nil {
			return nil, fmt.Errorf("invalid ACL entry %q: %v", entry, err)
		}
		acls = append(acls, zk.ACL{Perms: p, Scheme: scheme, ID: id})
	}
	return acls, nil
}

// formatACL is the inverse of parseACL for a single entry.
func formatACL(a zk.ACL) string {
	return a.Scheme + ":" + a.ID + ":" + formatPerms(a.Perms)
}

// formatACLs joins entries with commas, giving a string setAcl accepts back.
func formatACLs(acls []zk.ACL) string {
	parts := make([]string, len(acls))
	for i, a := range acls {
		parts[i] = formatACL(a)
	}
	return strings.Join(parts, ",")
}

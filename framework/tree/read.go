package tree

import (
	"slices"
	"strings"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// Read answers a read against the current version: exists, getData,
// getChildren/getChildren2, getACL, getAllChildrenNumber, getEphemerals
// and multiRead. Watch flags are ignored (the server registers watches).
//
// As in ZooKeeper's FinalRequestProcessor, reads do not validate paths: a
// malformed path is simply not found (NoNode), except that exists refuses a
// path containing NUL with BadArguments.
//
// The returned data and child names share memory with the tree and must not
// be modified.
func (t *Tree) Read(a Auth, session int64, req op.Request) (op.Response, error) {
	return t.load().read(a, session, req)
}

func (v *version) read(a Auth, session int64, req op.Request) (op.Response, error) {
	switch r := req.(type) {
	case *op.ExistsRequest:
		if r != nil {
			// exists ignores ACLs in 3.8.0 (READ is required from 3.8.4).
			if strings.IndexByte(r.Path, 0) >= 0 {
				return nil, zkerr.Newf(zkerr.BadArguments, r.Path, "path contains NUL")
			}
			n := v.lookup(r.Path)
			if n == nil {
				return nil, zkerr.New(zkerr.NoNode, r.Path)
			}
			return &op.StatResponse{OpCode: op.Exists, Stat: n.stat()}, nil
		}
	case *op.GetDataRequest:
		if r != nil {
			n, err := v.readable(r.Path, znode.PermRead, a)
			if err != nil {
				return nil, err
			}
			return &op.GetDataResponse{Data: n.data(), Stat: n.stat()}, nil
		}
	case *op.GetChildrenRequest:
		if r != nil {
			n, err := v.readable(r.Path, znode.PermRead, a)
			if err != nil {
				return nil, err
			}
			return &op.GetChildrenResponse{OpCode: r.Op(), Children: children(n), Stat: n.stat()}, nil
		}
	case *op.GetACLRequest:
		if r != nil {
			n, err := v.readable(r.Path, znode.PermRead|znode.PermAdmin, a)
			if err != nil {
				return nil, err
			}
			acl := slices.Clone(n.acl.acl)
			if !checkACL(n.acl, znode.PermAdmin, a) {
				acl = maskACL(acl)
			}
			return &op.GetACLResponse{ACL: acl, Stat: n.stat()}, nil
		}
	case *op.GetAllChildrenNumberRequest:
		if r != nil {
			n, err := v.readable(r.Path, znode.PermRead, a)
			if err != nil {
				return nil, err
			}
			var total int64
			if n == v.root {
				total = v.nodes - 1
			} else {
				total = descendants(n)
			}
			return &op.GetAllChildrenNumberResponse{Total: int32(total)}, nil
		}
	case *op.GetEphemeralsRequest:
		if r != nil {
			// FinalRequestProcessor: a blank or "/" prefix (after trim) means
			// all; otherwise a plain string prefix match.
			all := v.ephemerals(session)
			prefix := r.PrefixPath
			if p := strings.TrimFunc(prefix, func(c rune) bool { return c <= ' ' }); p == "" || p == "/" {
				return &op.GetEphemeralsResponse{Paths: all}, nil
			}
			out := make([]string, 0, len(all))
			for _, p := range all {
				if strings.HasPrefix(p, prefix) {
					out = append(out, p)
				}
			}
			return &op.GetEphemeralsResponse{Paths: out}, nil
		}
	case *op.MultiReadRequest:
		if r != nil {
			return v.multiRead(a, r)
		}
	}
	return nil, unsupported(req, zkerr.Unimplemented, "is not a read the tree answers")
}

// readable finds the node and checks that the caller holds one of perm's
// bits; NoNode comes before NoAuth.
func (v *version) readable(path string, perm int32, a Auth) (*node, error) {
	n := v.lookup(path)
	if n == nil {
		return nil, zkerr.New(zkerr.NoNode, path)
	}
	if !checkACL(n.acl, perm, a) {
		return nil, zkerr.New(zkerr.NoAuth, path)
	}
	return n, nil
}

// multiRead answers each op on its own against one version; a failed op
// becomes an error result and does not affect the others. Only getData and
// getChildren are allowed, as in ZooKeeper; anything else fails the whole
// request with BadArguments.
func (v *version) multiRead(a Auth, r *op.MultiReadRequest) (op.Response, error) {
	results := make([]op.Result, len(r.Ops))
	for i, sub := range r.Ops {
		var path string
		var isData bool
		switch s := sub.(type) {
		case *op.GetDataRequest:
			if s != nil {
				path, isData = s.Path, true
				break
			}
			return nil, unsupported(sub, zkerr.BadArguments, "")
		case *op.GetChildrenRequest:
			if s != nil {
				path = s.Path
				break
			}
			return nil, unsupported(sub, zkerr.BadArguments, "")
		default:
			return nil, unsupported(sub, zkerr.BadArguments, "is not allowed in multiRead")
		}
		n, err := v.readable(path, znode.PermRead, a)
		switch {
		case err != nil:
			results[i] = op.Result{OpCode: op.Error, Err: int32(zkerr.CodeOf(err))}
		case isData:
			results[i] = op.Result{OpCode: op.GetData, Data: n.data(), Stat: n.stat()}
		default:
			results[i] = op.Result{OpCode: op.GetChildren, Children: children(n)}
		}
	}
	return &op.MultiResponse{OpCode: op.MultiRead, Results: results}, nil
}

// children lists the child names sorted (ZooKeeper's order is its hash
// set's, which clients must not rely on; sorted is deterministic).
func children(n *node) []string {
	out := make([]string, 0, n.nkids)
	each(n.kids, func(c *node) bool {
		out = append(out, c.name())
		return true
	})
	slices.Sort(out)
	return out
}

func descendants(n *node) int64 {
	var total int64
	each(n.kids, func(c *node) bool {
		total += 1 + descendants(c)
		return true
	})
	return total
}

package tree

import (
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
	"github.com/corral-dev/corral/framework/znode"
)

// txn builds the next version. Nothing it does is visible until commit;
// dropping it leaves the tree unchanged.
type txn struct {
	t    *Tree
	c    Ctx
	v    version
	edit uint64
	ev   []op.WatchEvent
}

func (t *Tree) begin(c Ctx) *txn {
	t.edit++
	x := &txn{t: t, c: c, edit: t.edit}
	if cur := t.load(); cur != nil {
		x.v = *cur
	}
	return x
}

func (x *txn) commit() {
	v := x.v
	x.t.cur.Store(&v)
}

// Apply applies one write and returns its reply and the watch events it
// fires (in order, each with Zxid = c.Zxid):
//
//   - *op.CreateRequest (Create, Create2, CreateContainer, CreateTTL) →
//     *op.CreateResponse{OpCode: req.Op(), Path, Stat}
//   - *op.DeleteRequest → *op.EmptyResponse{OpCode: op.Delete}
//   - *op.DeleteContainerRequest → *op.EmptyResponse{OpCode: op.DeleteContainer}.
//     No ACL check. NoNode if missing, NotEmpty if it has children,
//     BadVersion if it is neither a container nor a TTL node, or is a TTL
//     node not expired at c.Time (ZooKeeper would delete a plain persistent
//     node here and does not re-check the TTL).
//   - *op.SetDataRequest → *op.StatResponse{OpCode: op.SetData}
//   - *op.SetACLRequest → *op.StatResponse{OpCode: op.SetACL}
//   - *op.MultiRequest (create, delete, setData, check) → *op.MultiResponse
//
// On failure it returns a *zkerr.Error and the tree is unchanged, except
// for a multi: a failed multi returns a *op.MultiResponse whose results are
// ZooKeeper's positional pattern (0 before the failing op, its code, then
// RuntimeInconsistency, all with OpCode op.Error), no events and a nil
// error, and applies nothing. Other requests (a lone check included) give
// Unimplemented.
//
// Apply does not keep references to the request's slices.
func (t *Tree) Apply(c Ctx, req op.Request) (op.Response, []op.WatchEvent, error) {
	if m, ok := req.(*op.MultiRequest); ok && m != nil {
		return t.applyMulti(c, m)
	}
	x := t.begin(c)
	resp, err := x.single(req)
	if err != nil {
		return nil, nil, err
	}
	x.commit()
	return resp, x.ev, nil
}

func (x *txn) single(req op.Request) (op.Response, error) {
	switch r := req.(type) {
	case *op.CreateRequest:
		if r != nil {
			path, st, err := x.create(r)
			if err != nil {
				return nil, err
			}
			return &op.CreateResponse{OpCode: r.Op(), Path: path, Stat: st}, nil
		}
	case *op.DeleteRequest:
		if r != nil {
			if err := x.delete(r.Path, r.Version); err != nil {
				return nil, err
			}
			return &op.EmptyResponse{OpCode: op.Delete}, nil
		}
	case *op.DeleteContainerRequest:
		if r != nil {
			if err := x.deleteContainer(r.Path); err != nil {
				return nil, err
			}
			return &op.EmptyResponse{OpCode: op.DeleteContainer}, nil
		}
	case *op.SetDataRequest:
		if r != nil {
			st, err := x.setData(r.Path, r.Data, r.Version)
			if err != nil {
				return nil, err
			}
			return &op.StatResponse{OpCode: op.SetData, Stat: st}, nil
		}
	case *op.SetACLRequest:
		if r != nil {
			st, err := x.setACL(r.Path, r.ACL, r.Version)
			if err != nil {
				return nil, err
			}
			return &op.StatResponse{OpCode: op.SetACL, Stat: st}, nil
		}
	}
	return nil, unsupported(req, zkerr.Unimplemented, "is not a write the tree applies on its own")
}

// unsupported is the error for a request the caller should not have sent:
// BadArguments for a nil one, code otherwise.
func unsupported(req op.Request, code zkerr.Code, why string) error {
	if req == nil {
		return zkerr.Newf(zkerr.BadArguments, "", "nil request")
	}
	if v := reflect.ValueOf(req); v.Kind() == reflect.Pointer && v.IsNil() {
		return zkerr.Newf(zkerr.BadArguments, "", "nil %T", req)
	}
	return zkerr.Newf(code, "", "%s %s", req.Op(), why)
}

func (t *Tree) applyMulti(c Ctx, m *op.MultiRequest) (op.Response, []op.WatchEvent, error) {
	if len(m.Ops) == 0 {
		return &op.MultiResponse{OpCode: op.Multi}, nil, nil
	}
	x := t.begin(c)
	results := make([]op.Result, len(m.Ops))
	for i, sub := range m.Ops {
		res, err := x.multiOp(sub)
		if err != nil {
			for j := range results {
				switch {
				case j < i:
					results[j] = op.Result{OpCode: op.Error, Err: int32(zkerr.OK)}
				case j == i:
					results[j] = op.Result{OpCode: op.Error, Err: int32(zkerr.CodeOf(err))}
				default:
					results[j] = op.Result{OpCode: op.Error, Err: int32(zkerr.RuntimeInconsistency)}
				}
			}
			return &op.MultiResponse{OpCode: op.Multi, Results: results}, nil, nil
		}
		results[i] = res
	}
	x.commit()
	return &op.MultiResponse{OpCode: op.Multi, Results: results}, x.ev, nil
}

// multiOp applies one op of a multi against the version being built, so
// later ops see earlier ones. ZooKeeper's multi carries create (all
// variants), delete, setData and check; anything else is BadArguments.
func (x *txn) multiOp(req op.Request) (op.Result, error) {
	switch r := req.(type) {
	case *op.CreateRequest:
		if r != nil {
			path, st, err := x.create(r)
			if err != nil {
				return op.Result{}, err
			}
			if r.Op() == op.Create {
				return op.Result{OpCode: op.Create, Path: path}, nil
			}
			return op.Result{OpCode: op.Create2, Path: path, Stat: st}, nil
		}
	case *op.DeleteRequest:
		if r != nil {
			if err := x.delete(r.Path, r.Version); err != nil {
				return op.Result{}, err
			}
			return op.Result{OpCode: op.Delete}, nil
		}
	case *op.SetDataRequest:
		if r != nil {
			st, err := x.setData(r.Path, r.Data, r.Version)
			if err != nil {
				return op.Result{}, err
			}
			return op.Result{OpCode: op.SetData, Stat: st}, nil
		}
	case *op.CheckRequest:
		if r != nil {
			if err := x.check(r.Path, r.Version); err != nil {
				return op.Result{}, err
			}
			return op.Result{OpCode: op.Check}, nil
		}
	}
	return op.Result{}, unsupported(req, zkerr.BadArguments, "is not allowed in a multi")
}

// CloseSession deletes all of the session's ephemerals, in path order, as
// one new version (ZooKeeper's closeSession txn), and returns the events.
func (t *Tree) CloseSession(c Ctx, session int64) []op.WatchEvent {
	paths := t.load().ephemerals(session)
	if len(paths) == 0 {
		return nil
	}
	x := t.begin(c)
	for _, p := range paths {
		if n := x.v.lookup(p); n != nil && n.kind() == kindEphemeral && n.owner == session {
			x.detach(znode.Parent(p), p, n)
		}
	}
	x.commit()
	return x.ev
}

// SetSystemData replaces the data of an existing node without an ACL or
// version check, as ZooKeeper's reconfig does to /zookeeper/config. Like
// that txn (SetDataTxn with version -1) it leaves the node's version at -1
// and sets mzxid and mtime; it fires NodeDataChanged. A missing node is
// left alone (no events).
func (t *Tree) SetSystemData(c Ctx, path string, data []byte) []op.WatchEvent {
	x := t.begin(c)
	n := x.v.lookup(path)
	if n == nil {
		return nil
	}
	x.writeData(path, n, data, -1)
	x.commit()
	return x.ev
}

// update replaces the node at path (which must exist in x.v) by f's result
// and copies the nodes above it, so the new version shares everything else
// with the old one.
func (x *txn) update(path string, f func(*node) *node) {
	if path == "/" {
		x.v.root = f(x.v.root)
		return
	}
	x.v.root = x.updateAt(x.v.root, path, 1, f)
}

func (x *txn) updateAt(n *node, path string, i int, f func(*node) *node) *node {
	j := strings.IndexByte(path[i:], '/')
	name := path[i:]
	if j >= 0 {
		name = path[i : i+j]
	}
	h := hashString(name)
	c := childTrie.get(n.kids, name, h)
	var nc *node
	if j < 0 {
		nc = f(c)
	} else {
		nc = x.updateAt(c, path, i+j+1, f)
	}
	m := x.own(n)
	m.kids, _ = childTrie.put(m.kids, nc, h, 0, x.edit)
	return m
}

// own returns a private copy of n to change. Nodes are always copied (a
// per-node edit number would cost 16 bytes per node once padded); the
// tries, which are the large part of a copied path, are edited in place.
func (x *txn) own(n *node) *node {
	m := *n
	return &m
}

func (x *txn) event(t znode.EventType, path string) {
	x.ev = append(x.ev, op.WatchEvent{Type: t, Path: path, Zxid: x.c.Zxid})
}

// checkPath is PathUtils.validatePath with the error naming the path as
// the client sent it.
func checkPath(path string, sequential bool) error {
	if err := znode.ValidatePath(path, sequential); err != nil {
		var ze *zkerr.Error
		if errors.As(err, &ze) {
			return zkerr.Newf(ze.Code, path, "%s", ze.Detail)
		}
		return zkerr.Newf(zkerr.BadArguments, path, "%v", err)
	}
	return nil
}

// isSpecialPath is DataTree.isSpecialPath: nodes that can never be deleted.
func isSpecialPath(path string) bool {
	switch path {
	case "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config":
		return true
	}
	return false
}

// seqSuffix is Java's String.format("%010d", v): zero padded to 10
// characters, the sign counting as one ("-000000005", "-2147483648").
func seqSuffix(v int32) string {
	neg := v < 0
	u := int64(v)
	if neg {
		u = -u
	}
	digits := strconv.FormatInt(u, 10)
	width := 10
	if neg {
		width = 9
	}
	var b strings.Builder
	b.Grow(11)
	if neg {
		b.WriteByte('-')
	}
	for i := len(digits); i < width; i++ {
		b.WriteByte('0')
	}
	b.WriteString(digits)
	return b.String()
}

// create follows PrepRequestProcessor.pRequest2TxnCreate; the order of the
// checks decides which error a client sees when several apply.
func (x *txn) create(r *op.CreateRequest) (string, znode.Stat, error) {
	opc, mode, path := r.Op(), r.Mode, r.Path
	if !mode.Valid() {
		return "", znode.Stat{}, zkerr.Newf(zkerr.BadArguments, path, "invalid create mode %d", mode)
	}
	if mode.IsTTL() && !x.t.opts.ExtendedTypes {
		return "", znode.Stat{}, zkerr.Newf(zkerr.Unimplemented, path, "TTL nodes need extended types")
	}
	// EphemeralType.validateTTL: only createTTL carries a TTL (others -1).
	ttl := int64(-1)
	if opc == op.CreateTTL {
		ttl = r.TTL
	}
	if mode.IsTTL() {
		if ttl <= 0 || ttl > znode.MaxTTL {
			return "", znode.Stat{}, zkerr.Newf(zkerr.BadArguments, path, "ttl %d out of range", ttl)
		}
	} else if opc == op.CreateTTL {
		return "", znode.Stat{}, zkerr.Newf(zkerr.BadArguments, path, "createTTL needs a TTL mode, not %d", mode)
	}
	if mode.IsEphemeral() && x.c.Session == 0 {
		return "", znode.Stat{}, zkerr.Newf(zkerr.BadArguments, path, "ephemeral node without a session")
	}
	if err := checkPath(path, mode.IsSequential()); err != nil {
		return "", znode.Stat{}, err
	}
	slash := strings.LastIndexByte(path, '/')
	parentPath := path[:slash]
	if parentPath == "" {
		parentPath = "/"
	}
	acl, err := fixupACL(path, r.ACL, x.c.Auth)
	if err != nil {
		return "", znode.Stat{}, err
	}
	parent := x.v.lookup(parentPath)
	if parent == nil {
		return "", znode.Stat{}, zkerr.New(zkerr.NoNode, parentPath)
	}
	if !checkACL(parent.acl, znode.PermCreate, x.c.Auth) {
		return "", znode.Stat{}, zkerr.New(zkerr.NoAuth, path)
	}
	name := path[slash+1:]
	if mode.IsSequential() {
		name += seqSuffix(parent.cversion)
	}
	if len(name) > maxNameLen {
		return "", znode.Stat{}, zkerr.Newf(zkerr.BadArguments, path, "node name longer than %d bytes", maxNameLen)
	}
	if name == "" { // create("/")
		return "", znode.Stat{}, zkerr.New(zkerr.NodeExists, "/")
	}
	childPath := znode.Join(parentPath, name)
	if parent.child(name) != nil {
		return "", znode.Stat{}, zkerr.New(zkerr.NodeExists, childPath)
	}
	if parent.kind() == kindEphemeral {
		return "", znode.Stat{}, zkerr.New(zkerr.NoChildrenForEphemerals, childPath)
	}

	// ZooKeeper's DataTree takes the kind from the txn type, i.e. from the
	// opcode for containers; Corral also honours the container mode sent
	// with a plain create (ZooKeeper would make a persistent node there).
	kind, owner := kindPersistent, int64(0)
	switch {
	case opc == op.CreateContainer || mode.IsContainer():
		kind = kindContainer
	case mode.IsTTL():
		kind, owner = kindTTL, ttl
	case mode.IsEphemeral():
		kind, owner = kindEphemeral, x.c.Session
	}
	z, tm := x.c.Zxid, x.c.Time
	child := &node{
		acl: x.t.acls.intern(acl), owner: owner,
		czxid: z, mzxid: z, pzxid: z, ctime: tm, mtime: tm,
	}
	child.setKind(kind)
	child.setNameData(name, r.Data)

	h := hashString(name)
	x.update(parentPath, func(p *node) *node {
		x.v.digest -= metaHash(parentPath, p)
		m := x.own(p)
		m.kids, _ = childTrie.put(m.kids, child, h, 0, x.edit)
		m.nkids++
		m.cversion++ // wraps like Java's int
		m.pzxid = z
		x.v.digest += metaHash(parentPath, m)
		return m
	})
	x.v.nodes++
	x.v.dataBytes += int64(len(childPath)) + int64(child.dlen)
	x.v.digest += nodeHash(childPath, child)
	switch kind {
	case kindEphemeral:
		x.addEphemeral(owner, childPath)
	case kindContainer, kindTTL:
		x.v.reap, _ = stringTrie.put(x.v.reap, &childPath, hashString(childPath), 0, x.edit)
	}
	x.event(znode.EventNodeCreated, childPath)
	x.event(znode.EventNodeChildrenChanged, parentPath)
	return childPath, child.stat(), nil
}

// delete follows PrepRequestProcessor's delete: DELETE is checked on the
// parent, before the node's existence, version and children.
func (x *txn) delete(path string, version int32) error {
	if err := checkPath(path, false); err != nil {
		return err
	}
	if isSpecialPath(path) {
		return zkerr.Newf(zkerr.BadArguments, path, "cannot delete a system node")
	}
	parentPath := znode.Parent(path)
	parent := x.v.lookup(parentPath)
	if parent == nil {
		return zkerr.New(zkerr.NoNode, parentPath)
	}
	if !checkACL(parent.acl, znode.PermDelete, x.c.Auth) {
		return zkerr.New(zkerr.NoAuth, path)
	}
	n := parent.child(znode.Base(path))
	if n == nil {
		return zkerr.New(zkerr.NoNode, path)
	}
	if version != -1 && version != n.version {
		return zkerr.New(zkerr.BadVersion, path)
	}
	if n.nkids > 0 {
		return zkerr.New(zkerr.NotEmpty, path)
	}
	x.detach(parentPath, path, n)
	return nil
}

// deleteContainer is the reaper's delete: no ACL check; NotEmpty if the
// node has children. ZooKeeper answers BadVersion for an ephemeral node and
// deletes anything else; Corral answers BadVersion for every node that is
// neither a container nor a TTL node, and also for a TTL node that is not
// expired at Ctx.Time (a setData may have refreshed it after the reaper
// picked it).
func (x *txn) deleteContainer(path string) error {
	if err := checkPath(path, false); err != nil {
		return err
	}
	if isSpecialPath(path) {
		return zkerr.Newf(zkerr.BadArguments, path, "cannot delete a system node")
	}
	n := x.v.lookup(path)
	if n == nil {
		return zkerr.New(zkerr.NoNode, path)
	}
	if n.nkids > 0 {
		return zkerr.New(zkerr.NotEmpty, path)
	}
	switch n.kind() {
	case kindContainer:
	case kindTTL:
		if x.c.Time-n.mtime <= n.owner {
			return zkerr.Newf(zkerr.BadVersion, path, "TTL node not expired")
		}
	default:
		return zkerr.Newf(zkerr.BadVersion, path, "not a container or TTL node")
	}
	x.detach(znode.Parent(path), path, n)
	return nil
}

// detach removes the childless node n at path from the version being built.
func (x *txn) detach(parentPath, path string, n *node) {
	name := n.name()
	h := hashString(name)
	z := x.c.Zxid
	x.update(parentPath, func(p *node) *node {
		x.v.digest -= metaHash(parentPath, p)
		m := x.own(p)
		m.kids, _ = childTrie.del(m.kids, name, h, 0, x.edit)
		m.nkids--
		// DataTree.deleteNode: only ever move pzxid forward.
		if z > m.pzxid {
			m.pzxid = z
		}
		x.v.digest += metaHash(parentPath, m)
		return m
	})
	x.v.nodes--
	x.v.dataBytes -= int64(len(path)) + int64(n.dlen)
	x.v.digest -= nodeHash(path, n)
	switch n.kind() {
	case kindEphemeral:
		x.dropEphemeral(n.owner, path)
	case kindContainer, kindTTL:
		x.v.reap, _ = stringTrie.del(x.v.reap, path, hashString(path), 0, x.edit)
	}
	x.event(znode.EventNodeDeleted, path)
	x.event(znode.EventNodeChildrenChanged, parentPath)
}

// Session entries are copied on every change, like nodes.
func (x *txn) addEphemeral(session int64, path string) {
	h := hashInt64(session)
	e := sessionEphemerals{id: session}
	if old := sessionTrie.get(x.v.ephem, session, h); old != nil {
		e = *old
	}
	var added bool
	e.paths, added = stringTrie.put(e.paths, &path, hashString(path), 0, x.edit)
	if added {
		e.n++
		x.v.nEphem++
	}
	x.v.ephem, _ = sessionTrie.put(x.v.ephem, &e, h, 0, x.edit)
}

func (x *txn) dropEphemeral(session int64, path string) {
	h := hashInt64(session)
	old := sessionTrie.get(x.v.ephem, session, h)
	if old == nil {
		return
	}
	e := *old
	var removed bool
	e.paths, removed = stringTrie.del(e.paths, path, hashString(path), 0, x.edit)
	if !removed {
		return
	}
	e.n--
	x.v.nEphem--
	if e.n == 0 {
		x.v.ephem, _ = sessionTrie.del(x.v.ephem, session, h, 0, x.edit)
		return
	}
	x.v.ephem, _ = sessionTrie.put(x.v.ephem, &e, h, 0, x.edit)
}

// setData: path, existence, WRITE, then version (NoAuth beats BadVersion).
func (x *txn) setData(path string, data []byte, version int32) (znode.Stat, error) {
	if err := checkPath(path, false); err != nil {
		return znode.Stat{}, err
	}
	n := x.v.lookup(path)
	if n == nil {
		return znode.Stat{}, zkerr.New(zkerr.NoNode, path)
	}
	if !checkACL(n.acl, znode.PermWrite, x.c.Auth) {
		return znode.Stat{}, zkerr.New(zkerr.NoAuth, path)
	}
	if version != -1 && version != n.version {
		return znode.Stat{}, zkerr.New(zkerr.BadVersion, path)
	}
	return x.writeData(path, n, data, n.version+1), nil
}

func (x *txn) writeData(path string, n *node, data []byte, newVersion int32) znode.Stat {
	var st znode.Stat
	x.update(path, func(c *node) *node {
		x.v.digest -= nodeHash(path, c)
		x.v.dataBytes += int64(len(data)) - int64(c.dlen)
		m := x.own(c)
		m.setNameData(c.name(), data)
		m.version = newVersion
		m.mzxid = x.c.Zxid
		m.mtime = x.c.Time
		x.v.digest += nodeHash(path, m)
		st = m.stat()
		return m
	})
	x.event(znode.EventNodeDataChanged, path)
	return st
}

// setACL: path, fixupACL (InvalidACL), existence, ADMIN, then aversion.
// No watch fires.
func (x *txn) setACL(path string, acl []znode.ACL, version int32) (znode.Stat, error) {
	if err := checkPath(path, false); err != nil {
		return znode.Stat{}, err
	}
	fixed, err := fixupACL(path, acl, x.c.Auth)
	if err != nil {
		return znode.Stat{}, err
	}
	n := x.v.lookup(path)
	if n == nil {
		return znode.Stat{}, zkerr.New(zkerr.NoNode, path)
	}
	if !checkACL(n.acl, znode.PermAdmin, x.c.Auth) {
		return znode.Stat{}, zkerr.New(zkerr.NoAuth, path)
	}
	if version != -1 && version != n.aversion {
		return znode.Stat{}, zkerr.New(zkerr.BadVersion, path)
	}
	l := x.t.acls.intern(fixed)
	var st znode.Stat
	x.update(path, func(c *node) *node {
		x.v.digest -= metaHash(path, c)
		m := x.own(c)
		m.acl = l
		m.aversion = c.aversion + 1
		x.v.digest += metaHash(path, m)
		st = m.stat()
		return m
	})
	return st, nil
}

// check is a multi's version check; it needs READ.
func (x *txn) check(path string, version int32) error {
	if err := checkPath(path, false); err != nil {
		return err
	}
	n := x.v.lookup(path)
	if n == nil {
		return zkerr.New(zkerr.NoNode, path)
	}
	if !checkACL(n.acl, znode.PermRead, x.c.Auth) {
		return zkerr.New(zkerr.NoAuth, path)
	}
	if version != -1 && version != n.version {
		return zkerr.New(zkerr.BadVersion, path)
	}
	return nil
}

#!/usr/bin/python3
"""Drive a ZooKeeper-compatible server with kazoo (Debian python3-kazoo).

usage: /usr/bin/python3 scripts/kazoo_check.py HOST:PORT /unique-root

Prints one "PASS name" or "FAIL name: detail" line per check and exits 1 if
any check failed. Everything is created under the given root, which must not
exist yet; it is removed at the end. test-clients.sh runs this.
"""

import socket
import sys
import threading
import time
import traceback
from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError,
                              RuntimeInconsistency, InvalidACLError)
from kazoo.protocol.serialization import (int_struct, long_struct, read_string,
                                          stat_struct, write_buffer,
                                          write_string)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.security import (OPEN_ACL_UNSAFE, make_acl, make_digest_acl,
                            make_digest_acl_credential)

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS kazoo.%s" % name, flush=True)
    else:
        failed += 1
        print("FAIL kazoo.%s: %s" % (name, detail), flush=True)


def check(name):
    """Run the decorated function now; an exception or a failed assert is a FAIL."""
    def run(fn):
        try:
            fn()
        except AssertionError as e:
            report(name, False, str(e) or traceback.format_exc(limit=1).strip())
        except Exception as e:  # any client error is a failed check
            report(name, False, "%s: %s" % (type(e).__name__, e))
        else:
            report(name, True)
        return fn
    return run


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


# kazoo 2.8 predates these opcodes; the records are plain jute, so they are
# sent through kazoo's own connection with small request classes.

def _write_acls(b, acls):
    b.extend(int_struct.pack(len(acls)))
    for acl in acls:
        b.extend(int_struct.pack(acl.perms) + write_string(acl.id.scheme) + write_string(acl.id.id))


def _read_path_stat(buf, offset):
    path, offset = read_string(buf, offset)
    return path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))


class CreateContainer(namedtuple("CreateContainer", "path data acl")):
    type = 19

    def serialize(self):
        b = bytearray(write_string(self.path) + write_buffer(self.data))
        _write_acls(b, self.acl)
        b.extend(int_struct.pack(4))  # CreateMode.CONTAINER
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_path_stat(buf, offset)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = bytearray(write_string(self.path) + write_buffer(self.data))
        _write_acls(b, self.acl)
        b.extend(int_struct.pack(self.flags) + long_struct.pack(self.ttl))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_path_stat(buf, offset)


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self):
        return bytearray(write_string(self.prefix))

    @classmethod
    def deserialize(cls, buf, offset):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


def call(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=10)


def four_letter(host, port, word):
    """Send a four-letter word and read the whole answer (mntr is ~15 KB, more
    than the single 8 KiB recv of kazoo's command())."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(word)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def wait_for(event, what, timeout=10):
    assert event.wait(timeout), "%s did not happen within %ss" % (what, timeout)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    addr, root = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    port = int(port)

    zk = KazooClient(hosts=addr, timeout=10)
    try:
        zk.start(timeout=15)
    except Exception as e:
        report("connect", False, "%s: %s" % (type(e).__name__, e))
        return 1
    report("connect", True)

    @check("create.persistent")
    def _():
        eq(zk.create(root, b"root"), root, "created path")
        eq(zk.create(root + "/p", b"hello"), root + "/p", "created path")
        data, st = zk.get(root + "/p")
        eq(data, b"hello", "data")
        eq((st.version, st.cversion, st.aversion, st.dataLength, st.numChildren, st.ephemeralOwner),
           (0, 0, 0, 5, 0, 0), "stat")
        assert st.czxid == st.mzxid == st.pzxid, "new node: czxid=mzxid=pzxid (%r)" % (st,)
        assert st.ctime == st.mtime, "new node: ctime == mtime"
        parent = zk.exists(root)
        eq(parent.pzxid, st.czxid, "parent pzxid after child create")
        eq(parent.cversion, 1, "parent cversion")
        try:
            zk.create(root + "/p")
            raise AssertionError("second create did not raise NodeExistsError")
        except NodeExistsError:
            pass

    @check("create.ephemeral")
    def _():
        other = KazooClient(hosts=addr, timeout=10)
        other.start(timeout=15)
        try:
            other.create(root + "/eph", b"e", ephemeral=True)
            st = zk.exists(root + "/eph")
            assert st is not None, "ephemeral not visible to another session"
            eq(st.ephemeralOwner, other.client_id[0], "ephemeralOwner")
            try:
                other.create(root + "/eph/child")
                raise AssertionError("child of ephemeral was created")
            except Exception as e:
                eq(type(e).__name__, "NoChildrenForEphemeralsError", "error")
            eph = call(other, GetEphemerals(root))
            eq(eph, [root + "/eph"], "getEphemerals of the owning session")
            eq(call(zk, GetEphemerals(root)), [], "getEphemerals of another session")
        finally:
            other.stop()
            other.close()
        # CloseSession removes the session's ephemerals at once.
        eq(zk.exists(root + "/eph"), None, "ephemeral after close")

    @check("create.sequential")
    def _():
        zk.create(root + "/seq")
        names = [zk.create(root + "/seq/n-", b"", sequence=True) for _ in range(3)]
        eq(names, [root + "/seq/n-%010d" % i for i in range(3)], "sequential names")
        zk.delete(names[0])
        zk.create(root + "/seq/plain")  # a plain create advances the counter too
        eq(zk.create(root + "/seq/n-", sequence=True), root + "/seq/n-0000000004", "suffix after delete")
        st = zk.exists(root + "/seq")
        # cversion counts creates and deletes (reference section 8, item 1).
        eq((st.cversion, st.numChildren), (6, 4), "cversion, numChildren")
        eph_seq = zk.create(root + "/seq/e-", ephemeral=True, sequence=True)
        eq(eph_seq, root + "/seq/e-0000000005", "ephemeral sequential")

    @check("create.container")
    def _():
        path, st = call(zk, CreateContainer(root + "/cont", b"c", OPEN_ACL_UNSAFE))
        eq(path, root + "/cont", "path")
        eq(st.ephemeralOwner, 0, "container ephemeralOwner")
        zk.create(root + "/cont/kid")
        zk.delete(root + "/cont/kid")

    @check("create.ttl")
    def _():
        path, st = call(zk, CreateTTL(root + "/ttl", b"t", OPEN_ACL_UNSAFE, 5, 60000))
        eq(path, root + "/ttl", "path")
        eq(st.ephemeralOwner, 0, "TTL ephemeralOwner")
        path, _ = call(zk, CreateTTL(root + "/ttlseq-", b"t", OPEN_ACL_UNSAFE, 6, 60000))
        assert path.startswith(root + "/ttlseq-") and len(path) == len(root + "/ttlseq-") + 10, path

    @check("get_set.versions")
    def _():
        st = zk.set(root + "/p", b"v1", version=0)
        eq(st.version, 1, "version after set")
        try:
            zk.set(root + "/p", b"v2", version=0)
            raise AssertionError("stale set did not raise BadVersionError")
        except BadVersionError:
            pass
        st2 = zk.set(root + "/p", b"v1")  # identical data still bumps the version
        eq(st2.version, 2, "version after identical set")
        assert st2.mzxid > st.mzxid, "mzxid advances"
        data, st3 = zk.get(root + "/p")
        eq((data, st3.dataLength, st3.version), (b"v1", 2, 2), "get after set")
        eq(zk.exists(root + "/nope"), None, "exists on a missing node")
        try:
            zk.get(root + "/nope")
            raise AssertionError("get of a missing node did not raise")
        except NoNodeError:
            pass

    @check("ls")
    def _():
        zk.create(root + "/ls")
        for n in ("b", "a", "c"):
            zk.create(root + "/ls/" + n, n.encode())
        eq(sorted(zk.get_children(root + "/ls")), ["a", "b", "c"], "children")
        kids, st = zk.get_children(root + "/ls", include_data=True)
        eq((sorted(kids), st.numChildren, st.cversion), (["a", "b", "c"], 3, 3), "children with stat")
        eq(call(zk, GetAllChildrenNumber(root + "/ls")), 3, "getAllChildrenNumber")

    @check("delete")
    def _():
        try:
            zk.delete(root + "/ls")
            raise AssertionError("delete of a parent did not raise NotEmptyError")
        except NotEmptyError:
            pass
        try:
            zk.delete(root + "/ls/a", version=5)
            raise AssertionError("delete with a wrong version did not raise")
        except BadVersionError:
            pass
        zk.delete(root + "/ls/a", version=0)
        zk.delete(root + "/ls", recursive=True)
        eq(zk.exists(root + "/ls"), None, "after recursive delete")

    @check("acl.digest")
    def _():
        acl = make_digest_acl("alice", "s3cret", all=True)
        eq(acl.id.id, make_digest_acl_credential("alice", "s3cret"), "digest id")
        zk.create(root + "/sec", b"secret", acl=[acl])
        try:
            zk.get(root + "/sec")
            raise AssertionError("read without auth succeeded")
        except NoAuthError:
            pass
        authed = KazooClient(hosts=addr, timeout=10)
        authed.start(timeout=15)
        try:
            authed.add_auth("digest", "alice:wrong")  # accepted, matches nothing
            try:
                authed.get(root + "/sec")
                raise AssertionError("wrong password could read")
            except NoAuthError:
                pass
            authed.add_auth("digest", "alice:s3cret")
            eq(authed.get(root + "/sec")[0], b"secret", "read with auth")
            acls, st = authed.get_acls(root + "/sec")
            eq([(a.perms, a.id.scheme, a.id.id) for a in acls], [(31, "digest", acl.id.id)], "getACL")
            # setACL bumps only aversion; its version is checked against aversion.
            authed.set_acls(root + "/sec", [make_acl("world", "anyone", read=True), acl], version=0)
            st2 = authed.exists(root + "/sec")
            eq((st2.aversion, st2.version, st2.mzxid), (1, 0, st.mzxid), "stat after setACL")
            try:
                authed.set_acls(root + "/sec", [acl], version=0)
                raise AssertionError("stale setACL did not raise")
            except BadVersionError:
                pass
        finally:
            authed.stop()
            authed.close()
        # Now world-readable but without ADMIN for us: digest ids come back masked.
        eq(zk.get(root + "/sec")[0], b"secret", "world read after setACL")
        acls, _ = zk.get_acls(root + "/sec")
        eq(sorted((a.id.scheme, a.id.id) for a in acls), [("digest", "alice:x"), ("world", "anyone")],
           "getACL without ADMIN masks digest ids")
        try:
            zk.set(root + "/sec", b"x")
            raise AssertionError("write without permission succeeded")
        except NoAuthError:
            pass
        # DELETE is checked on the parent: the open parent allows it.
        zk.delete(root + "/sec")

    @check("acl.invalid")
    def _():
        try:
            zk.create(root + "/badacl", acl=[make_acl("auth", "", all=True)])
            raise AssertionError("auth ACL without credentials was accepted")
        except InvalidACLError:
            pass

    @check("multi.commit")
    def _():
        zk.create(root + "/m", b"0")
        t = zk.transaction()
        t.check(root + "/m", 0)
        t.create(root + "/m/a", b"a")
        t.create(root + "/m/a/b", b"b")  # parent created earlier in the same multi
        t.set_data(root + "/m", b"1")
        t.create(root + "/m/s-", sequence=True)
        res = t.commit()
        eq(res[0], True, "check result")
        eq(res[1:3], [root + "/m/a", root + "/m/a/b"], "created paths")
        eq(res[3].version, 1, "set result stat")
        eq(res[4], root + "/m/s-0000000001", "sequential create in multi")
        st_a, st_m = zk.exists(root + "/m/a"), zk.exists(root + "/m")
        eq(st_a.czxid, st_m.mzxid, "one zxid for the whole multi")

    @check("multi.rollback")
    def _():
        before = zk.exists(root + "/m")
        t = zk.transaction()
        t.create(root + "/m/new", b"x")
        t.set_data(root + "/m", b"2", version=99)
        t.delete(root + "/m/a/b")
        res = t.commit()
        eq([type(r) for r in res], [RolledBackError, BadVersionError, RuntimeInconsistency],
           "positional results")
        eq(zk.exists(root + "/m/new"), None, "nothing applied")
        after = zk.exists(root + "/m")
        eq((after.version, after.mzxid), (before.version, before.mzxid), "target unchanged")
        eq(zk.transaction().commit(), [], "empty multi")

    @check("watch.data")
    def _():
        zk.create(root + "/w", b"0")
        got, fired = [], threading.Event()

        def watcher(ev):
            got.append(ev)
            fired.set()
        zk.get(root + "/w", watch=watcher)
        zk.set(root + "/w", b"0")  # identical data still fires
        wait_for(fired, "NodeDataChanged")
        eq((got[0].type, got[0].path), (EventType.CHANGED, root + "/w"), "event")

    @check("watch.child")
    def _():
        got, fired = [], threading.Event()

        def watcher(ev):
            got.append(ev)
            fired.set()
        zk.get_children(root + "/w", watch=watcher)
        zk.create(root + "/w/kid")
        wait_for(fired, "NodeChildrenChanged")
        eq((got[0].type, got[0].path), (EventType.CHILD, root + "/w"), "event")
        # A child watch fires NodeDeleted when the node itself goes.
        got.clear()
        fired.clear()
        zk.get_children(root + "/w/kid", watch=watcher)
        zk.delete(root + "/w/kid")
        wait_for(fired, "NodeDeleted on child watch")
        eq((got[0].type, got[0].path), (EventType.DELETED, root + "/w/kid"), "event")

    @check("watch.exists")
    def _():
        got, fired = [], threading.Event()

        def watcher(ev):
            got.append(ev)
            fired.set()
        eq(zk.exists(root + "/w/later", watch=watcher), None, "exists")
        zk.create(root + "/w/later")
        wait_for(fired, "NodeCreated")
        eq((got[0].type, got[0].path), (EventType.CREATED, root + "/w/later"), "event")

    @check("watch.event_before_data")
    def _():
        # A session that reads the new data has already received the event
        # (reference section 8, item 9).
        other = KazooClient(hosts=addr, timeout=10)
        other.start(timeout=15)
        try:
            other.get(root + "/w", watch=lambda ev: None)
            zk.set(root + "/w", b"new")
            for _ in range(200):
                if other.get(root + "/w")[0] == b"new":
                    break
                time.sleep(0.01)
            # kazoo's reader pops the watcher when it reads the event, before
            # it reads any later reply; callbacks run later on another thread.
            assert (root + "/w") not in other._data_watchers, "new data read before its watch event"
        finally:
            other.stop()
            other.close()

    @check("sync")
    def _():
        eq(zk.sync(root), root, "sync path")

    @check("server_version")
    def _():
        v = zk.server_version()  # parses envi's zookeeper.version
        assert isinstance(v, tuple) and len(v) >= 2 and v >= (3, 5), v

    @check("4lw.ruok")
    def _():
        eq(four_letter(host, port, b"ruok"), "imok", "ruok")

    @check("4lw.srvr")
    def _():
        out = four_letter(host, port, b"srvr")
        for key in ("Zookeeper version: ", "Latency min/avg/max: ", "Received: ", "Sent: ",
                    "Connections: ", "Outstanding: ", "Zxid: 0x", "Mode: ", "Node count: "):
            assert key in out, "srvr lacks %r:\n%s" % (key, out)

    @check("4lw.mntr")
    def _():
        out = four_letter(host, port, b"mntr")
        keys = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
        for key in ("zk_version", "zk_server_state", "zk_znode_count", "zk_num_alive_connections",
                    "zk_avg_latency", "zk_outstanding_requests", "zk_watch_count", "zk_ephemerals_count"):
            assert key in keys, "mntr lacks %s" % key
        assert int(keys["zk_znode_count"]) > 0, keys["zk_znode_count"]

    @check("cleanup")
    def _():
        zk.delete(root, recursive=True)
        eq(zk.exists(root), None, "root after recursive delete")

    zk.stop()
    zk.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

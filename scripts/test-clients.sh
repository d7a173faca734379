#!/usr/bin/env bash
# Scripted checks of a ZooKeeper-compatible server with the clients people
# actually run: the Java zkCli.sh (Debian package `zookeeper`), the C client
# cli_mt (`zookeeper-bin`) and kazoo (`python3-kazoo`, run with /usr/bin/python3).
#
# usage: scripts/test-clients.sh HOST:PORT
#
# Each check prints "PASS name" or "FAIL name: detail"; the last line is
# "N passed, M failed" and the exit status is non-zero if anything failed.
# Everything lives under a fresh /tc-<random> root, so the script can run
# again and again against the same server.
#
# Environment:
#   ZKCLI          zkCli.sh          (default /usr/share/zookeeper/bin/zkCli.sh)
#   CLI_MT         C client shell    (default /usr/lib/zookeeper/bin/cli_mt)
#   PYTHON         python with kazoo (default /usr/bin/python3)
#   TC_REAP_WAIT   seconds to wait for container/TTL reaping (default 20). The
#                  server's container check interval must be shorter: Apache
#                  ZooKeeper's default is 60 s (znode.container.checkIntervalMs).
#                  0 leaves the reaping checks out (they are then reported as
#                  not run, never as passed).
#   TC_CMD_TIMEOUT seconds before a single client command is abandoned (default 60)
#   CLIENT_JVMFLAGS  JVM flags for zkCli (default: quick-start flags)

set -u

ADDR=${1:-}
if [[ -z "$ADDR" || "$ADDR" != *:* ]]; then
	echo "usage: $0 HOST:PORT" >&2
	exit 2
fi
HOST=${ADDR%:*}
PORT=${ADDR##*:}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
CLI_MT=${CLI_MT:-/usr/lib/zookeeper/bin/cli_mt}
PYTHON=${PYTHON:-/usr/bin/python3}
REAP_WAIT=${TC_REAP_WAIT:-20}
CMD_TIMEOUT=${TC_CMD_TIMEOUT:-60}
# zkCli starts a JVM per command; C1-only JIT and the serial GC start fastest.
export CLIENT_JVMFLAGS=${CLIENT_JVMFLAGS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}

TAB=$'\t'
R=/tc-$(date +%s)-$RANDOM$RANDOM
TMP=$(mktemp -d)
ZKS_PID=
CS_PID=
passed=0
failed=0

cleanup() {
	# Only the background clients this script started, by their pids.
	[[ -n "$ZKS_PID" ]] && kill "$ZKS_PID" 2>/dev/null
	[[ -n "$CS_PID" ]] && kill "$CS_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

pass() {
	echo "PASS $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1${2:+: $2}"
	failed=$((failed + 1))
}

oneline() { head -c 400 | tr '\n' '|'; }

# expect NAME STATUS REGEX CMD...: PASS when CMD exits with STATUS and some
# line of its output (stdout and stderr) matches the extended REGEX.
expect() {
	local name=$1 want=$2 pat=$3 out rc
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [[ $rc -eq $want ]] && grep -q -E -e "$pat" <<<"$out"; then
		pass "$name"
	else
		fail "$name" "status $rc (want $want), want /$pat/ in: $(oneline <<<"$out")"
	fi
}

# ---------------------------------------------------------------- zkCli.sh

# zkcli ARGS...: one zkCli command; its output without the connection chatter.
zkcli() {
	local out rc
	# zkCli retries a dead server forever; bound every call.
	out=$(timeout "$CMD_TIMEOUT" "$ZKCLI" -server "$ADDR" "$@" 2>&1)
	rc=$?
	grep -v -E '^(SLF4J: |Connecting to |Welcome to ZooKeeper!|JLine support is |WATCHER::$|WatchedEvent state:SyncConnected type:None path:null$|WatchedEvent state:Closed type:None path:null$|$)' <<<"$out"
	return $rc
}

# An interactive zkCli session fed through a FIFO, for what needs one session
# (ephemerals, auth, watches).
zks_start() {
	mkfifo "$TMP/zks.in"
	"$ZKCLI" -server "$ADDR" <"$TMP/zks.in" >"$TMP/zks.out" 2>&1 &
	ZKS_PID=$!
	exec 7>"$TMP/zks.in"
}
zks() { printf '%s\n' "$*" >&7; }
# wait_for FILE REGEX [SECONDS]: until a line of FILE matches.
wait_for() {
	local file=$1 pat=$2 limit=${3:-20} i
	for ((i = 0; i < limit * 10; i++)); do
		grep -q -E -e "$pat" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
zks_stop() {
	zks quit
	exec 7>&-
	wait "$ZKS_PID" 2>/dev/null
	ZKS_PID=
}
# zks_expect NAME REGEX: the session's output so far has a matching line.
zks_expect() {
	if wait_for "$TMP/zks.out" "$2" 20; then
		pass "$1"
	else
		fail "$1" "want /$2/ in session output: $(grep -v SLF4J "$TMP/zks.out" | tail -n 8 | oneline)"
	fi
}

# ---------------------------------------------------------------- cli_mt

# cmt COMMAND: the C client in batch mode (-c); it always exits 0, so checks
# read its "rc = N" lines.
cmt() { timeout 30 "$CLI_MT" -h "$ADDR" -c "$*" 2>&1 | grep -v -E 'ZOO_(INFO|DEBUG)'; }

# ---------------------------------------------------------------- four-letter words

# flw WORD: send a four-letter word over bash's /dev/tcp and print the answer.
flw() {
	local out
	{ exec 8<>"/dev/tcp/$HOST/$PORT"; } 2>/dev/null || return 1
	printf '%s' "$1" >&8
	out=$(timeout 10 cat <&8)
	exec 8<&- 8>&-
	printf '%s\n' "$out"
}

echo "# test-clients against $ADDR, root $R"

# ---------------------------------------------------------------- preflight
missing=0
for bin in "$ZKCLI" "$CLI_MT" "$PYTHON"; do
	if [[ -x "$bin" ]]; then
		pass "preflight.$(basename "$bin")"
	else
		fail "preflight.$(basename "$bin")" "$bin is missing (apt-get install zookeeper zookeeper-bin python3-kazoo)"
		missing=1
	fi
done
if "$PYTHON" -c 'import kazoo' 2>/dev/null; then
	pass "preflight.kazoo"
else
	fail "preflight.kazoo" "$PYTHON cannot import kazoo"
	missing=1
fi
if [[ $missing -ne 0 ]]; then
	echo "$passed passed, $failed failed"
	exit 1
fi

if (exec 8<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
	pass preflight.reachable
else
	fail preflight.reachable "nothing listens on $ADDR"
	echo "$passed passed, $failed failed"
	exit 1
fi

# ---------------------------------------------------------------- 4lw
expect 4lw.ruok 0 '^imok$' flw ruok
expect 4lw.srvr 0 '^Mode: (standalone|leader|follower)$' flw srvr
expect 4lw.mntr 0 "^zk_znode_count${TAB}[0-9]+\$" flw mntr

# ---------------------------------------------------------------- zkCli one-shot
expect zkcli.create.root 0 "^Created $R\$" zkcli create "$R"
expect zkcli.create.persistent 0 "^Created $R/zk\$" zkcli create "$R/zk" d0
expect zkcli.get 0 '^d0$' zkcli get "$R/zk"
expect zkcli.create.exists 1 "Node already exists: $R/zk" zkcli create "$R/zk" again
expect zkcli.get.missing 1 "Node does not exist: $R/nope" zkcli get "$R/nope"
expect zkcli.set.version 0 '^dataVersion = 1$' zkcli set -s -v 0 "$R/zk" d1
expect zkcli.set.badversion 1 'version No is not valid' zkcli set -v 0 "$R/zk" d2
expect zkcli.stat 0 '^dataLength = 2$' zkcli stat "$R/zk"
expect zkcli.get.stat 0 "^mZxid = 0x[0-9a-f]+\$" zkcli get -s "$R/zk"
expect zkcli.create.sequential 0 "^Created $R/zk/s-0000000000\$" zkcli create -s "$R/zk/s-" x
expect zkcli.create.container 0 "^Created $R/zkc\$" zkcli create -c "$R/zkc"
expect zkcli.create.ttl 0 "^Created $R/zkt\$" zkcli create -t 60000 "$R/zkt" t
# Container and TTL nodes show ephemeralOwner 0 (reference section 8, item 3).
expect zkcli.stat.container 0 '^ephemeralOwner = 0x0$' zkcli stat "$R/zkc"
expect zkcli.stat.ttl 0 '^ephemeralOwner = 0x0$' zkcli stat "$R/zkt"
expect zkcli.ls 0 '^\[s-0000000000\]$' zkcli ls "$R/zk"
expect zkcli.ls.stat 0 '^numChildren = 3$' zkcli ls -s "$R"
expect zkcli.ls.recursive 0 "^$R/zk/s-0000000000\$" zkcli ls -R "$R"
expect zkcli.getAllChildrenNumber 0 '^4$' zkcli getAllChildrenNumber "$R"
expect zkcli.whoami 0 '^Auth scheme: User$' zkcli whoami
expect zkcli.sync 0 'Sync is OK' zkcli sync "$R"
expect zkcli.getAcl 0 "^'world,'anyone\$" zkcli getAcl "$R/zk"
expect zkcli.setAcl 0 '^aclVersion = 1$' zkcli setAcl -s "$R/zkt" world:anyone:r
expect zkcli.getAcl.after 0 '^: r$' zkcli getAcl "$R/zkt"
expect zkcli.set.noauth 1 'Insufficient permission' zkcli set "$R/zkt" x
expect zkcli.delete.badversion 1 'version No is not valid' zkcli delete -v 5 "$R/zk/s-0000000000"
expect zkcli.delete 0 '.*' zkcli delete -v 0 "$R/zk/s-0000000000"
expect zkcli.delete.gone 1 "Node does not exist: $R/zk/s-0000000000" zkcli stat "$R/zk/s-0000000000"
delete_parent() {
	zkcli create "$R/zk/kid" >/dev/null
	zkcli delete "$R/zk"
}
expect zkcli.delete.notempty 1 "Node not empty: $R/zk" delete_parent
expect zkcli.config 0 '.*' zkcli config

# ---------------------------------------------------------------- zkCli session
zkcli create "$R/zkw" w0 >/dev/null
zks_start
zks "create -e $R/zk/eph e"
zks "getEphemerals $R"
zks_expect zkcli.getEphemerals "^\[$R/zk/eph\]\$"
zks "get -w $R/zkw"
zks_expect zkcli.get.watch.set '^w0$'
zkcli set "$R/zkw" w1 >/dev/null
zks_expect zkcli.get.watch.fired "^WatchedEvent state:SyncConnected type:NodeDataChanged path:$R/zkw\$"
zks "addWatch $R/zkw"
zks "sync $R"
zks_expect zkcli.addWatch.set 'Sync is OK'
zkcli create "$R/zkw/c" >/dev/null
zks_expect zkcli.addWatch.created "^WatchedEvent state:SyncConnected type:NodeCreated path:$R/zkw/c\$"
zkcli set "$R/zkw/c" x >/dev/null
zks_expect zkcli.addWatch.changed "^WatchedEvent state:SyncConnected type:NodeDataChanged path:$R/zkw/c\$"
zks "addauth digest u1:p1"
zks "create $R/zka sec auth:u1:p1:cdrwa"
zks "whoami"
zks_expect zkcli.whoami.digest '^digest: u1$'
zks "getAcl $R/zka"
zks_expect zkcli.acl.auth "^'digest,'u1:[A-Za-z0-9+/=]+\$"
zks "get $R/zka"
zks_expect zkcli.acl.read '^sec$'
zks "stat $R/zk/eph"
zks_expect zkcli.ephemeral.owner '^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$'
zks_stop
expect zkcli.acl.noauth 1 'Insufficient permission' zkcli get "$R/zka"
# Closing the session removed its ephemeral.
expect zkcli.ephemeral.gone 1 "Node does not exist: $R/zk/eph" zkcli stat "$R/zk/eph"
deleteall_then_stat() {
	zkcli deleteall "$R/zk" || return
	zkcli stat "$R/zk"
}
expect zkcli.deleteall 1 "Node does not exist: $R/zk" deleteall_then_stat

# ---------------------------------------------------------------- C client
expect cclient.create 0 "^\[$R/c\]: rc = 0\$" cmt create "$R/c"
expect cclient.create.ephemeral 0 "^\[$R/c/e\]: rc = 0\$" cmt create +e "$R/c/e"
expect cclient.create.sequential 0 "name = $R/c/s-[0-9]{10}\$" cmt create +s "$R/c/s-"
expect cclient.create.container 0 "^\[$R/cc\]: rc = 0\$" cmt create +c "$R/cc"
expect cclient.create.ttl 0 "^\[$R/ct\]: rc = 0\$" cmt create +t=60000 "$R/ct"
expect cclient.get 0 'value_len = 3' cmt get "$R/c"
expect cclient.set 0 'version=1' cmt set "$R/c" hello
expect cclient.get.after_set 0 '^hello$' cmt get "$R/c"
expect cclient.ls 0 "^${TAB}s-[0-9]{10}\$" cmt ls "$R/c"
expect cclient.ls2 0 "^${TAB}s-[0-9]{10}\$" cmt ls2 "$R/c"
expect cclient.sync 0 "^\[$R/c\]: rc = 0\$" cmt sync "$R/c"
expect cclient.delete 0 "^$R/cc: rc = 0\$" cmt delete "$R/cc"
expect cclient.get.missing 0 "^$R/cc: rc = -101\$" cmt get "$R/cc"
expect cclient.get.noauth 0 "^$R/zka: rc = -102\$" cmt get "$R/zka"

# An interactive cli_mt session: auth, then a watch firing.
mkfifo "$TMP/cs.in"
"$CLI_MT" -h "$ADDR" <"$TMP/cs.in" >"$TMP/cs.out" 2>&1 &
CS_PID=$!
exec 6>"$TMP/cs.in"
if wait_for "$TMP/cs.out" 'Got a new session id' 20; then
	printf 'addauth digest u1:p1\n' >&6
	printf 'get %s\n' "$R/zka" >&6
	if wait_for "$TMP/cs.out" '^sec$' 20; then pass cclient.addauth; else fail cclient.addauth "$(tail -n 5 "$TMP/cs.out" | oneline)"; fi
	printf 'wexists %s\n' "$R/c" >&6
	# wexists prints nothing on success; a get after it is answered after it.
	printf 'get %s\n' "$R/c" >&6
	wait_for "$TMP/cs.out" '^hello$' 20
	zkcli set "$R/c" again >/dev/null
	if wait_for "$TMP/cs.out" "Watcher CHANGED_EVENT state = CONNECTED_STATE for path $R/c\$" 20; then
		pass cclient.watch
	else
		fail cclient.watch "$(grep -v ZOO_ "$TMP/cs.out" | tail -n 5 | oneline)"
	fi
else
	fail cclient.session "no session: $(tail -n 5 "$TMP/cs.out" | oneline)"
fi
printf 'quit\n' >&6
exec 6>&-
wait "$CS_PID" 2>/dev/null
CS_PID=

# ---------------------------------------------------------------- kazoo
"$PYTHON" "$HERE/kazoo_check.py" "$ADDR" "$R-kazoo" >"$TMP/kazoo.out" 2>&1
krc=$?
grep -E '^(PASS|FAIL) ' "$TMP/kazoo.out"
kp=$(grep -c '^PASS ' "$TMP/kazoo.out")
kf=$(grep -c '^FAIL ' "$TMP/kazoo.out")
passed=$((passed + kp))
failed=$((failed + kf))
if [[ $krc -ne 0 && $kf -eq 0 ]]; then
	fail kazoo.script "exit $krc: $(tail -n 5 "$TMP/kazoo.out" | oneline)"
fi

# ---------------------------------------------------------------- reaping
if [[ "$REAP_WAIT" -gt 0 ]]; then
	zkcli create -c "$R/reap-c" >/dev/null
	zkcli create "$R/reap-c/kid" >/dev/null
	zkcli delete "$R/reap-c/kid" >/dev/null
	zkcli create -c "$R/reap-never" >/dev/null
	zkcli create -t 500 "$R/reap-t" x >/dev/null
	out=$("$PYTHON" - "$ADDR" "$R" "$REAP_WAIT" <<'EOF'
import sys, time
from kazoo.client import KazooClient
addr, root, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
zk = KazooClient(hosts=addr, timeout=10)
zk.start(timeout=15)
deadline = time.time() + wait
gone = {}
while time.time() < deadline and len(gone) < 2:
    for p in ("/reap-c", "/reap-t"):
        if p not in gone and zk.exists(root + p) is None:
            gone[p] = True
    time.sleep(0.2)
print("container", "reaped" if "/reap-c" in gone else "kept")
print("ttl", "reaped" if "/reap-t" in gone else "kept")
# A container that never had a child is never reaped.
print("never", "kept" if zk.exists(root + "/reap-never") else "reaped")
zk.stop()
EOF
)
	grep -q '^container reaped$' <<<"$out" && pass reap.container || fail reap.container "not reaped within ${REAP_WAIT}s (server check interval too long?)"
	grep -q '^ttl reaped$' <<<"$out" && pass reap.ttl || fail reap.ttl "not reaped within ${REAP_WAIT}s"
	grep -q '^never kept$' <<<"$out" && pass reap.container.never_used || fail reap.container.never_used "a container that never had a child was reaped"
else
	echo "# reaping checks not run (TC_REAP_WAIT=0)"
fi

# ---------------------------------------------------------------- cleanup
# With u1's credentials, since $R/zka only lets u1 list its children.
"$PYTHON" - "$ADDR" "$R" <<'EOF' || fail cleanup.delete "recursive delete of $R failed"
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start(timeout=15)
zk.add_auth("digest", "u1:p1")
zk.delete(sys.argv[2], recursive=True)
zk.stop()
EOF
expect cleanup 1 "Node does not exist: $R\$" zkcli stat "$R"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

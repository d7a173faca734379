#!/usr/bin/env bash
# make bench-cluster: the workloads of make bench against a fresh 3-member
# Corral ensemble (default settings, loopback, free ports, temporary data
# directories) and a 3-member Apache ZooKeeper 3.8 ensemble (Debian package,
# started by corral-bench as zkref:3), cell by cell, then the side-by-side
# table with ratios (corral/zookeeper). Each session connects to one member,
# round-robin with the leader last, so reads spread over all members; no RSS
# (several processes per target).
#
# Environment (defaults in parentheses):
#   BENCH_WORKLOADS (all)  BENCH_SESSIONS (1,8,32)  BENCH_DURATION (10s)
#   BENCH_INFLIGHT (1)     BENCH_JSON (bin/bench-cluster-results.json)
#   BENCH_KEEP_DIR (empty: remove the members' data and logs afterwards)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
CORRAL=${CORRAL:-$BIN/corral}
if [[ ! -x "$BIN/corral-bench" || ! -x "$CORRAL" ]]; then
	go build -o "$BIN/" ./cmd/corral ./cmd/corral-bench || exit 1
fi

. scripts/lib-corral.sh # ruok

SIZE=3
DIR=$(mktemp -d -t corral-bench-cluster.XXXXXX)
PIDS=()

# free_ports N: N distinct loopback ports, all held at once while picking.
free_ports() {
	/usr/bin/python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# mode ADDR: the Mode line of the srvr four-letter word, or nothing.
mode() {
	local out
	{ exec 8<>"/dev/tcp/${1%:*}/${1##*:}"; } 2>/dev/null || return 1
	printf 'srvr' >&8
	out=$(timeout 3 cat <&8)
	exec 8<&- 8>&-
	sed -n 's/^Mode: //p' <<<"$out"
}

# stop_members signals exactly the pids this script started.
stop_members() {
	local pid i
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "# corral pid $pid did not stop within 15s of SIGTERM: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	PIDS=()
	if [[ -n "${BENCH_KEEP_DIR:-}" ]]; then
		echo "# corral members' data and logs kept in $DIR"
	else
		rm -rf "$DIR"
	fi
}
trap stop_members EXIT
trap 'exit 130' INT TERM

logs_tail() {
	local i
	for ((i = 1; i <= SIZE; i++)); do
		echo "--- member $i ($DIR/member-$i/corral.log)" >&2
		tail -n 20 "$DIR/member-$i/corral.log" >&2
	done
}

read -r -a ports <<<"$(free_ports $((2 * SIZE)))"
if [[ ${#ports[@]} -ne $((2 * SIZE)) ]]; then
	echo "could not pick $((2 * SIZE)) free ports" >&2
	exit 1
fi
clients=()
members=""
for ((i = 1; i <= SIZE; i++)); do
	client=127.0.0.1:${ports[2 * i - 2]}
	peer=127.0.0.1:${ports[2 * i - 1]}
	clients+=("$client")
	members+="  - {id: $i, peer: \"$peer\", client: \"$client\"}"$'\n'
done
# Only what a member must be told; everything else (raft and bolt with
# their default timeouts and fsync, tickTime 2s, ...) stays at the defaults.
for ((i = 1; i <= SIZE; i++)); do
	mkdir -p "$DIR/member-$i"
	cat >"$DIR/member-$i/corral.yaml" <<EOF
node_id: $i
data_dir: "$DIR/member-$i/data"
members:
${members}protocols:
  - {type: native, listen: "${clients[i - 1]}"}
EOF
done
for ((i = 1; i <= SIZE; i++)); do
	"$CORRAL" serve --config "$DIR/member-$i/corral.yaml" >"$DIR/member-$i/corral.log" 2>&1 &
	PIDS+=($!)
	echo "# corral member $i pid $! on ${clients[i - 1]}"
done
for ((i = 1; i <= SIZE; i++)); do
	for ((n = 0; ; n++)); do
		ruok "${clients[i - 1]}" && break
		if ! kill -0 "${PIDS[i - 1]}" 2>/dev/null; then
			echo "corral member $i exited during start-up" >&2
			logs_tail
			exit 1
		fi
		if ((n >= 300)); then
			echo "corral member $i did not answer ruok on ${clients[i - 1]} within 30s" >&2
			logs_tail
			exit 1
		fi
		sleep 0.1
	done
done
leader=""
for ((n = 0; n < 300; n++)); do
	for ((i = 1; i <= SIZE; i++)); do
		if [[ "$(mode "${clients[i - 1]}")" == leader ]]; then
			leader=$i
			break
		fi
	done
	[[ -n "$leader" ]] && break
	sleep 0.1
done
if [[ -z "$leader" ]]; then
	echo "no corral leader within 30s" >&2
	logs_tail
	exit 1
fi
echo "# corral ensemble up, leader member $leader; data in $DIR"

connect=$(
	IFS=,
	echo "${clients[*]}"
)
"$BIN/corral-bench" compare \
	--target "corral=$connect" \
	--target "zookeeper=zkref:$SIZE" \
	--workload "${BENCH_WORKLOADS:-all}" \
	--sessions "${BENCH_SESSIONS:-1,8,32}" \
	--duration "${BENCH_DURATION:-10s}" \
	--inflight "${BENCH_INFLIGHT:-1}" \
	--json "${BENCH_JSON:-$BIN/bench-cluster-results.json}"
rc=$?
for ((i = 1; i <= SIZE; i++)); do
	if ! kill -0 "${PIDS[i - 1]}" 2>/dev/null; then
		echo "corral member $i is no longer running" >&2
		logs_tail
		rc=1
	fi
done
exit $rc

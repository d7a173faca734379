#!/usr/bin/env bash
# make bench: the same workloads against a fresh Corral server and against
# Apache ZooKeeper 3.8 from the Debian package, on this machine, cell by cell,
# then a side-by-side table with ratios (corral/zookeeper) and both servers'
# RSS with BENCH_ZNODES znodes.
#
# Environment (defaults in parentheses):
#   BENCH_WORKLOADS (all)  BENCH_SESSIONS (1,8,32)  BENCH_DURATION (10s)
#   BENCH_INFLIGHT (1)     BENCH_ZNODES (100000)    BENCH_JSON (bin/bench-results.json)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
if [[ ! -x "$BIN/corral-bench" ]]; then
	go build -o "$BIN/" ./cmd/corral-bench || exit 1
fi

. scripts/lib-corral.sh
start_corral || exit 1
"$BIN/corral-bench" compare \
	--target "corral=$CORRAL_ADDR" --pid "corral=$CORRAL_PID" \
	--target zookeeper=zkref \
	--workload "${BENCH_WORKLOADS:-all}" \
	--sessions "${BENCH_SESSIONS:-1,8,32}" \
	--duration "${BENCH_DURATION:-10s}" \
	--inflight "${BENCH_INFLIGHT:-1}" \
	--znodes "${BENCH_ZNODES:-100000}" \
	--json "${BENCH_JSON:-$BIN/bench-results.json}"

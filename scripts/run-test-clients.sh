#!/usr/bin/env bash
# make test-clients: start a fresh Corral server (bin/corral, a temporary data
# directory, a free loopback port), run scripts/test-clients.sh against it
# with the real zkCli.sh, cli_mt and kazoo, then stop it.
#
#   scripts/run-test-clients.sh               against Corral
#   scripts/run-test-clients.sh --zookeeper   the same script against Apache
#                                             ZooKeeper 3.8 (proves the script)
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == --zookeeper ]]; then
	CORRAL_TEST_CLIENTS=1 exec go test -count=1 -run TestClientsScriptAgainstZooKeeper -v ./conformance/zkref
fi

. scripts/lib-corral.sh
start_corral || exit 1
scripts/test-clients.sh "$CORRAL_ADDR"
rc=$?
if [[ $rc -ne 0 ]]; then
	echo "# last lines of the corral log ($CORRAL_DIR/corral.log):"
	tail -n 20 "$CORRAL_DIR/corral.log"
fi
exit $rc

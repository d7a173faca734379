# Shared by run-test-clients.sh and bench.sh: start a throwaway Corral server.
# Source it, then call start_corral; it sets CORRAL_ADDR, CORRAL_PID and
# CORRAL_DIR and registers stop_corral on exit.

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ruok() {
	local out
	{ exec 9<>"/dev/tcp/${1%:*}/${1##*:}"; } 2>/dev/null || return 1
	printf 'ruok' >&9
	out=$(timeout 5 cat <&9)
	exec 9<&- 9>&-
	[[ "$out" == imok ]]
}

stop_corral() {
	if [[ -n "${CORRAL_PID:-}" ]]; then
		kill "$CORRAL_PID" 2>/dev/null
		wait "$CORRAL_PID" 2>/dev/null
		CORRAL_PID=
	fi
	[[ -n "${CORRAL_DIR:-}" ]] && rm -rf "$CORRAL_DIR"
	return 0
}

# start_corral: bin/corral (or $CORRAL) on a free loopback port with a fresh
# data directory, waiting until it answers ruok.
start_corral() {
	local corral=${CORRAL:-bin/corral} i
	if [[ ! -x "$corral" ]]; then
		go build -o bin/ ./cmd/corral || return 1
	fi
	CORRAL_DIR=$(mktemp -d)
	CORRAL_ADDR=127.0.0.1:$(free_port)
	"$corral" serve --listen "$CORRAL_ADDR" --data-dir "$CORRAL_DIR/data" >"$CORRAL_DIR/corral.log" 2>&1 &
	CORRAL_PID=$!
	trap stop_corral EXIT
	for ((i = 0; i < 300; i++)); do
		if ruok "$CORRAL_ADDR"; then
			echo "# corral pid $CORRAL_PID on $CORRAL_ADDR, data in $CORRAL_DIR/data"
			return 0
		fi
		if ! kill -0 "$CORRAL_PID" 2>/dev/null; then
			echo "corral exited during start-up:" >&2
			tail -n 30 "$CORRAL_DIR/corral.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "corral did not answer ruok on $CORRAL_ADDR within 30s" >&2
	tail -n 30 "$CORRAL_DIR/corral.log" >&2
	return 1
}

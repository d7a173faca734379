#!/usr/bin/env bash
# A local Corral ensemble on loopback, from examples/cluster-N/member-*.yaml.
#
#   scripts/cluster.sh start  [N]   start every member in the background (N = 3 or 5, default 3)
#   scripts/cluster.sh stop   [N]   stop the members this script started
#   scripts/cluster.sh status [N]   pid, liveness and role of each member
#
# Pids and logs go to ./data/cluster-N/member-I.{pid,log}; the members keep
# their data under ./data/cluster-N/member-I (set in the example configs).
# stop signals exactly the recorded pids, after checking that each one is
# still the corral process started with that member's config (a pid can be
# reused once its process is gone); it never looks processes up by name.
#
# Environment: CORRAL (default bin/corral) is the server binary.
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/lib-corral.sh # ruok

usage() {
	echo "usage: $0 start|stop|status [3|5]" >&2
	exit 2
}

cmd=${1:-}
size=${2:-3}
[[ "$size" =~ ^[0-9]+$ ]] || usage
examples=examples/cluster-$size
state=data/cluster-$size
corral=${CORRAL:-bin/corral}

configs=()
for f in "$examples"/member-*.yaml; do
	[[ -e "$f" ]] && configs+=("$f")
done
if [[ ${#configs[@]} -eq 0 ]]; then
	echo "no member configs in $examples" >&2
	exit 1
fi

member_of() { # examples/cluster-3/member-2.yaml -> member-2
	local b=${1##*/}
	echo "${b%.yaml}"
}

# client_addr prints the member's native listen address, as the server
# itself resolves its config (so the script needs no YAML parser).
client_addr() {
	"$corral" config validate --config "$1" 2>/dev/null | sed -n 's/^ *listen: *//p' | head -n 1
}

# ours PID CONFIG: is PID alive and the corral process started with CONFIG?
ours() {
	local pid=$1 cfg=$2 args
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	else
		args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
	fi
	[[ "$args" == *" serve --config $cfg"* ]]
}

# fourletter ADDR WORD prints the reply, or nothing.
fourletter() {
	{ exec 8<>"/dev/tcp/${1%:*}/${1##*:}"; } 2>/dev/null || return 1
	printf '%s' "$2" >&8
	timeout 3 cat <&8
	exec 8<&- 8>&-
}

mode() { fourletter "$1" srvr 2>/dev/null | sed -n 's/^Mode: //p'; }

port_busy() {
	{ exec 7<>"/dev/tcp/${1%:*}/${1##*:}"; } 2>/dev/null || return 1
	exec 7<&- 7>&-
	return 0
}

connect_string() {
	local f out=()
	for f in "${configs[@]}"; do out+=("$(client_addr "$f")"); done
	local IFS=,
	echo "${out[*]}"
}

start() {
	if [[ ! -x "$corral" ]]; then
		echo "$corral is missing: run make build" >&2
		return 1
	fi
	mkdir -p "$state"
	local f m pid addr started=() i
	# Refuse before starting anything: a port held by another server would
	# answer our health checks and hide the failure.
	for f in "${configs[@]}"; do
		m=$(member_of "$f")
		addr=$(client_addr "$f")
		if [[ -z "$addr" ]]; then
			echo "$f: invalid config:" >&2
			"$corral" config validate --config "$f" >/dev/null
			return 1
		fi
		if ours "$(cat "$state/$m.pid" 2>/dev/null)" "$f"; then
			echo "$m already running (pid $(cat "$state/$m.pid")); use: $0 stop $size" >&2
			return 1
		fi
		if port_busy "$addr"; then
			echo "$m: $addr is already in use by another process (make run? another cluster?)" >&2
			return 1
		fi
	done
	for f in "${configs[@]}"; do
		m=$(member_of "$f")
		echo "=== $(date '+%F %T') start $f" >>"$state/$m.log"
		# nohup: the members outlive the shell (and terminal) that started them.
		nohup "$corral" serve --config "$f" </dev/null >>"$state/$m.log" 2>&1 &
		pid=$!
		echo "$pid" >"$state/$m.pid"
		started+=("$m")
		echo "# $m pid $pid, log $state/$m.log"
	done
	# Every member answers ruok, then one of them leads.
	for f in "${configs[@]}"; do
		m=$(member_of "$f")
		addr=$(client_addr "$f")
		for ((i = 0; ; i++)); do
			ruok "$addr" && break
			if ! ours "$(cat "$state/$m.pid")" "$f"; then
				echo "$m exited during start-up; last lines of $state/$m.log:" >&2
				tail -n 20 "$state/$m.log" >&2
				stop
				return 1
			fi
			if ((i >= 300)); then
				echo "$m did not answer ruok on $addr within 30s" >&2
				tail -n 20 "$state/$m.log" >&2
				stop
				return 1
			fi
			sleep 0.1
		done
	done
	for ((i = 0; i < 300; i++)); do
		for f in "${configs[@]}"; do
			if [[ "$(mode "$(client_addr "$f")")" == leader ]]; then
				echo "# leader: $(member_of "$f"); stop with: $0 stop $size"
				echo "connect string: $(connect_string)"
				return 0
			fi
		done
		sleep 0.1
	done
	echo "no leader within 30s; members are still running (see $state/*.log, $0 stop $size)" >&2
	return 1
}

stop() {
	local f m pid pidf waiting=() i rc=0
	for f in "${configs[@]}"; do
		m=$(member_of "$f")
		pidf=$state/$m.pid
		[[ -f "$pidf" ]] || continue
		pid=$(cat "$pidf")
		if ours "$pid" "$f"; then
			kill -TERM "$pid" && waiting+=("$pid:$f:$m")
		else
			echo "# $m (pid $pid) is not running; removing its stale pid file"
			rm -f "$pidf"
		fi
	done
	for w in "${waiting[@]}"; do
		pid=${w%%:*}
		f=${w#*:}
		f=${f%:*}
		m=${w##*:}
		for ((i = 0; i < 150; i++)); do
			ours "$pid" "$f" || break
			sleep 0.1
		done
		if ours "$pid" "$f"; then
			echo "# $m (pid $pid) did not stop within 15s of SIGTERM: SIGKILL" >&2
			kill -KILL "$pid"
			rc=1
		else
			echo "# $m (pid $pid) stopped"
		fi
		rm -f "$state/$m.pid"
	done
	return $rc
}

status() {
	local f m pid addr role down=0
	for f in "${configs[@]}"; do
		m=$(member_of "$f")
		addr=$(client_addr "$f")
		pid=$(cat "$state/$m.pid" 2>/dev/null)
		if ours "$pid" "$f"; then
			role=$(mode "$addr")
			echo "$m pid $pid on $addr: ${role:-not answering}"
		else
			echo "$m on $addr: not running"
			down=1
		fi
	done
	return $down
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac

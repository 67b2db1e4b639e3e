#!/usr/bin/env bash
# scripts/demo.sh - the whole product in a few minutes, with one command.
#
# Installs what is missing, builds, then starts on this machine only
# (127.0.0.1): a mosquitto broker on a free port (or uses --broker), the
# plant simulator (tools/plantsim: three pumps over Modbus TCP and MQTT)
# and pdmd with the demo configuration of etc/demo. pdmd learns the plant
# for a minute or two (a first model, then learning until a model scores the
# running quietly); then the demo injects a bearing fault into pump-a, an
# explained alert arrives over MQTT, and it clears when the fault ends.
#
#   ./scripts/demo.sh                  live view (pdmctl watch) until Ctrl-C
#   ./scripts/demo.sh --for 300        JSON lines, stop after the first
#                                      `cleared` alert or 300 s
#   ./scripts/demo.sh --broker tcp://127.0.0.1:1883   use a running broker
#   ./scripts/demo.sh --no-build       skip installing and building
#
# When stdout is not a terminal (or with --for) each alert is printed as one
# JSON line exactly as SCADA receives it, and the exit status is 0 only if an
# alert arrived. Ctrl-C stops everything; nothing is left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

limit=""
broker=""
build=1
while [ $# -gt 0 ]; do
	case "$1" in
	--for) limit="${2:?--for needs SECONDS}"; shift 2 ;;
	--broker) broker="${2:?--broker needs a URI}"; shift 2 ;;
	--no-build) build=0; shift ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "demo.sh: unknown argument: $1 (try --help)" >&2; exit 64 ;;
	esac
done
case "$limit" in
'' | *[!0-9]*) [ -z "$limit" ] || { echo "demo.sh: --for needs a number of seconds" >&2; exit 64; } ;;
esac
live=0
if [ -z "$limit" ] && [ -t 1 ]; then
	live=1
fi
[ -n "$limit" ] || limit=300

if [ $build -eq 1 ]; then
	pdm_install "${PDM_BUILD_PKGS[@]}" "${PDM_DEMO_PKGS[@]}"
	pdm_build build
fi
B="${PDM_BUILD_DIR:-$PDM_ROOT/build}"
need=("$B/daemon/pdmd" "$B/tools/plantsim")
[ $live -eq 0 ] || need+=("$B/tools/pdmctl")
for exe in "${need[@]}"; do
	[ -x "$exe" ] || { echo "demo.sh: $exe is missing; run without --no-build" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/pdmd-demo.XXXXXX")"
pids=()
cleanup() {
	trap - EXIT INT TERM
	# pdmd first, so it publishes "offline" while the broker is still up.
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${PDM_DEMO_KEEP:-0}" = 1 ]; then
		pdm_log "demo files kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- broker ---------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "$broker" ]; then
	mkdir -p "$work/broker"
	started=0
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		port_open "$port" && continue
		{
			echo "listener $port 127.0.0.1"
			echo "allow_anonymous true"
			echo "persistence false"
			echo "log_dest file $work/broker/mosquitto.log"
			[ "$(id -u)" != 0 ] || echo "user root"
		} >"$work/broker/mosquitto.conf"
		/usr/sbin/mosquitto -c "$work/broker/mosquitto.conf" >/dev/null 2>&1 &
		bpid=$!
		for _ in $(seq 50); do
			if port_open "$port"; then
				started=1
				break
			fi
			kill -0 "$bpid" 2>/dev/null || break
			sleep 0.1
		done
		if [ $started -eq 1 ]; then
			pids=("$bpid" "${pids[@]}")
			break
		fi
		kill "$bpid" 2>/dev/null || true
		wait "$bpid" 2>/dev/null || true
	done
	[ $started -eq 1 ] || { echo "demo.sh: could not start mosquitto" >&2; exit 1; }
	broker="tcp://127.0.0.1:$port"
fi
bhost="${broker#*://}"
bport="${bhost##*:}"
bhost="${bhost%:*}"
pdm_log "broker: $broker"

# --- plant simulator --------------------------------------------------------
# The fault waits in the scenario far in the future; the demo releases it
# (SIGUSR1) as soon as pump-a's first model is in use, however long training
# took on this machine.
cat >"$work/demo.scen" <<'EOF'
at 2h fault pump-a bearing_wear severity=0.4 for 40s ramp=10s
EOF
"$B/tools/plantsim" --modbus-port 0 --mqtt "$broker" --regime-time 30m --no-stops \
	--scenario "$work/demo.scen" --log-level warning >"$work/plantsim.out" 2>"$work/plantsim.log" &
sim=$!
pids=("$sim" "${pids[@]}")
mbport=""
for _ in $(seq 100); do
	mbport="$(sed -n 's/^modbus_port \([0-9]*\)$/\1/p' "$work/plantsim.out" 2>/dev/null | head -1)"
	[ -n "$mbport" ] && break
	kill -0 "$sim" 2>/dev/null || break
	sleep 0.1
done
[ -n "$mbport" ] || { cat "$work/plantsim.log" >&2; echo "demo.sh: the simulator did not start" >&2; exit 1; }
pdm_log "plant simulator: Modbus TCP on 127.0.0.1:$mbport, MQTT telemetry on $broker"

# --- pdmd ---------------------------------------------------------------------
conf="$work/etc"
mkdir -p "$conf/conf.d" "$work/state"
for f in "$PDM_ROOT"/etc/demo/pdmd.conf "$PDM_ROOT"/etc/demo/conf.d/*.conf; do
	rel="${f#"$PDM_ROOT"/etc/demo/}"
	sed -e "s#@MODBUS_PORT@#$mbport#g" -e "s#@MQTT_URI@#$broker#g" \
		-e "s#@STATE_DIR@#$work/state#g" "$f" >"$conf/$rel"
done
"$B/daemon/pdmd" check -c "$conf" >/dev/null
"$B/daemon/pdmd" run -c "$conf" 2>"$work/pdmd.log" &
daemon=$!
pids=("$daemon" "${pids[@]}")
pdm_log "pdmd running (log: $work/pdmd.log); models train after about a minute, then learn"

# Releases the fault once pump-a has learned: its first model, then learning
# without alerts until a model has scored its running quietly for a while.
inject_when_trained() {
	for _ in $(seq 6000); do
		if grep -q 'asset\[pump-a\]: .*alerts are on again' "$work/pdmd.log" 2>/dev/null; then
			sleep 5 # a little normal running first
			kill -USR1 "$sim" 2>/dev/null || return 0
			pdm_log "pump-a has learned; fault injected: pump-a bearing wear (40 s)"
			return 0
		fi
		kill -0 "$daemon" 2>/dev/null || return 0
		sleep 0.2
	done
}
inject_when_trained &
pids=("$!" "${pids[@]}")

if [ $live -eq 1 ]; then
	"$B/tools/pdmctl" -c "$conf" watch || true
	exit 0
fi

# Headless: every alert as one JSON line, as SCADA receives it.
got=0
end=$((SECONDS + limit))
exec 4< <(exec mosquitto_sub -h "$bhost" -p "$bport" -q 1 -t 'pdm/alerts/#' -W "$limit" 2>/dev/null)
while [ $SECONDS -lt $end ]; do
	rc=0
	IFS= read -r -t 1 line <&4 || rc=$?
	if [ $rc -ne 0 ]; then
		# > 128: timeout, keep waiting; else end of stream: mosquitto_sub gave up
		[ $rc -gt 128 ] || break
		kill -0 "$daemon" 2>/dev/null || { echo "demo.sh: pdmd stopped:" >&2; tail -20 "$work/pdmd.log" >&2; exit 1; }
		continue
	fi
	[ -n "$line" ] || continue
	printf '%s\n' "$line"
	got=1
	case "$line" in
	*'"event":"cleared"'*) break ;;
	esac
done
if [ $got -eq 1 ]; then
	exit 0
fi
echo "demo.sh: no alert within ${limit}s; pdmd log:" >&2
tail -20 "$work/pdmd.log" >&2
exit 1

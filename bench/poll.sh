#!/bin/sh
# RW-POLL: Modbus TCP round trips per second on loopback, our connector
# against the bare libmodbus loop, in the same run against the same server.
#
# usage: bench/poll.sh [BUILD_DIR=build] [N=20000] [ROUNDS=3]
# Builds the shared peer programs (../shared/bench/poll, or $PDM_BENCH_PEERS)
# with cc into a temporary directory, starts modbus_server.c on a free port,
# then alternates the raw client and bench_poll ROUNDS times and prints the
# medians and their ratio:
#   poll_raw_rt_per_s, poll_ours_rt_per_s, poll_ratio_vs_raw (target >= 0.9)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
n=${2:-20000}
rounds=${3:-3}
peers=${PDM_BENCH_PEERS:-$here/../shared/bench/poll}
case $build in /*) ;; *) build=$here/$build ;; esac
ours=$build/bench/bench_poll

[ -x "$ours" ] || { echo "poll.sh: $ours not built (ninja -C $build)" >&2; exit 1; }
tmp=$(mktemp -d)
srv_pid=
cleanup() {
	rc=$?
	if [ -n "$srv_pid" ]; then
		kill "$srv_pid" 2>/dev/null || true
		wait "$srv_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

flags=$(pkg-config --cflags --libs libmodbus)
# shellcheck disable=SC2086
cc -O2 "$peers/modbus_server.c" -o "$tmp/modbus_server" $flags
# shellcheck disable=SC2086
cc -O2 "$peers/modbus_client.c" -o "$tmp/modbus_client" $flags

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/modbus_server" "$port" 2>"$tmp/server.log" &
srv_pid=$!
i=0
until /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "poll.sh: server did not start" >&2; exit 1; }
	sleep 0.05
done

# The server takes one client at a time; each run connects, polls, leaves.
r=1
while [ $r -le "$rounds" ]; do
	"$tmp/modbus_client" "$port" "$n" raw | awk '$1=="poll_raw_rt_per_s"{print $2}' >>"$tmp/raw"
	"$ours" "$port" "$n" ours | awk '$1=="poll_ours_rt_per_s"{print $2}' >>"$tmp/ours"
	r=$((r + 1))
done

median() { sort -n "$1" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
raw=$(median "$tmp/raw")
our=$(median "$tmp/ours")
echo "poll_raw_rt_per_s $raw rt/s"
echo "poll_ours_rt_per_s $our rt/s"
awk -v a="$our" -v b="$raw" 'BEGIN{printf "poll_ratio_vs_raw %.3f ratio\n", a/b}'

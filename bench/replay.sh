#!/bin/sh
# Replay throughput: `pdmd replay` over a long plantsim export (pump-a,
# 7 sensors, 10 Hz), the demo asset's windowing (32 x 0.1 s, hop 4) with an
# mlp_ae trained once on the first hour. Prints 'name value unit' lines:
# rows/s with the training included and with it excluded.
#
# usage: bench/replay.sh [BUILD_DIR]   (default: build)
# env:   REPLAY_BENCH_SECONDS  simulated seconds of data (86400: 864,000 rows)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
secs=${REPLAY_BENCH_SECONDS:-86400}
[ -x "$build/daemon/pdmd" ] && [ -x "$build/tools/plantsim" ] ||
	{ echo "replay.sh: build first: ninja -C $build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/etc"
cat >"$tmp/etc/pdmd.conf" <<CONF
[daemon]
state_dir = $tmp/state
host = bench
[mqtt]
uri = tcp://127.0.0.1:1883
[source hist]
type = mqtt
topic = bench/x
format = json
[asset pump-a]
model = mlp_ae
sample_interval = 100ms
window = 32
hop = 4
train_after = 150
retrain = 0
train_max_windows = 20000
learn_min = 0
[sensor pump-a.speed]
source = hist
[sensor pump-a.flow]
source = hist
[sensor pump-a.pressure]
source = hist
[sensor pump-a.current]
source = hist
[sensor pump-a.vibration_rms]
source = hist
[sensor pump-a.bearing_temp]
source = hist
[sensor pump-a.motor_temp]
source = hist
CONF
"$build/tools/plantsim" --fast --duration "$secs" --csv pump-a --start-ts 1700000000000 \
	>"$tmp/data.csv" 2>/dev/null
# Rows of the first hour train the model; the rest is scoring only.
"$build/daemon/pdmd" replay -c "$tmp/etc" --asset pump-a --csv "$tmp/data.csv" \
	--train-rows 36000 --alerts "$tmp/alerts.jsonl" --scores "$tmp/scores.csv" \
	--no-progress 2>"$tmp/err.txt" || { cat "$tmp/err.txt" >&2; exit 1; }
# The summary: "replay: pump-a: R rows, ... N trainings (T s), S s total, ..."
awk '/^replay: pump-a: / {
	for (i = 1; i <= NF; i++) {
		if ($i == "rows,") rows = $(i - 1)
		if ($i == "trainings") { t = $(i + 1); gsub(/[(]/, "", t) }
		if ($i == "total,") total = $(i - 2)
	}
}
END {
	if (!rows || !total) { print "replay.sh: no summary line" > "/dev/stderr"; exit 1 }
	printf "replay_rows %d rows\n", rows
	printf "replay_seconds %.2f s\n", total
	printf "replay_train_seconds %.2f s\n", t
	printf "replay_rows_per_s %.0f rows/s\n", rows / total
	if (total > t) printf "replay_rows_per_s_scoring %.0f rows/s\n", rows / (total - t)
}' "$tmp/err.txt"

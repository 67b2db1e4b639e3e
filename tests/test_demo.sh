#!/usr/bin/env bash
# The README's demo command, headless: it must print an alert that arrived
# over MQTT with the injected fault's sensor (pump-a's bearing wear shows
# in vibration_rms) as the top contributor, and then its `cleared`.
# Usage: test_demo.sh SOURCE_ROOT BUILD_DIR   (TAP output)
set -uo pipefail
root="$1"
build="$2"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

echo "1..3"
PDM_BUILD_DIR="$build" "$root/scripts/demo.sh" --no-build --for 270 >"$out"
rc=$?
cat "$out" | sed 's/^/# /'
if [ $rc -eq 0 ]; then echo "ok 1 - demo exits 0 (an alert arrived)"; else echo "not ok 1 - demo exit status $rc"; fi
first="$(grep -m1 '"asset":"pump-a"' "$out" || true)"
if printf '%s' "$first" | grep -q '"event":"raised".*"contributors":\[{"sensor":"vibration_rms"'; then
	echo "ok 2 - pump-a raised with vibration_rms as top contributor"
else
	echo "not ok 2 - no pump-a alert led by vibration_rms: $first"
fi
if grep -q '"asset":"pump-a","event":"cleared"' "$out"; then
	echo "ok 3 - the episode cleared"
else
	echo "not ok 3 - no cleared alert for pump-a"
fi

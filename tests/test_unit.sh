#!/bin/sh
# test_unit.sh - the systemd unit passes `systemd-analyze verify` and its
# sandbox exposure stays at or below 2.0. TAP output.
# Usage: test_unit.sh UNIT PDMD
set -u
unit="$1"
pdmd="$2"
echo "1..2"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "ok 1 # SKIP systemd-analyze not installed"
	echo "ok 2 # SKIP systemd-analyze not installed"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# verify checks that ExecStart exists: point it at the binary just built.
sed "s|/usr/sbin/pdmd|$pdmd|" "$unit" > "$dir/pdmd.service"
if out=$(systemd-analyze verify "$dir/pdmd.service" 2>&1); then
	echo "ok 1 - systemd-analyze verify"
else
	echo "not ok 1 - systemd-analyze verify"
	echo "$out" | sed 's/^/# /'
fi
level=$(systemd-analyze security --offline=yes "$dir/pdmd.service" 2>/dev/null |
	sed -n 's/.*Overall exposure level for pdmd.service: \([0-9.]*\).*/\1/p')
echo "# exposure $level"
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
	echo "ok 2 - exposure $level <= 2.0"
else
	echo "not ok 2 - exposure '$level' > 2.0"
fi

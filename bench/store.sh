#!/bin/sh
# RW-STORE (shared/bench/REFERENCE.md): our store module and the raw-SQLite
# peer on the same work in the same run; prints 'name value unit' lines and
# the ratio of our append rate to the peer's fastest scheme.
#
# The machine is shared and noisy, so the peer and ours run alternately
# STORE_BENCH_REPS times and the figures printed last are medians.
#
# usage: bench/store.sh [BUILD_DIR]   (default: build)
# env:   PDM_BENCH_PEERS  folder holding store/rw_store.c (default ../shared/bench
#                         relative to the repository root)
#        STORE_BENCH_ROWS / STORE_BENCH_KEEP  workload size (1000000 / 200000)
#        STORE_BENCH_REPS alternating repetitions (3)
#        STORE_BENCH_DIR  where the databases go (/var/tmp)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
peers=${PDM_BENCH_PEERS:-$root/../shared/bench}
rows=${STORE_BENCH_ROWS:-1000000}
keep=${STORE_BENCH_KEEP:-200000}
reps=${STORE_BENCH_REPS:-3}
dir=${STORE_BENCH_DIR:-/var/tmp}

[ -f "$peers/store/rw_store.c" ] || { echo "store.sh: no $peers/store/rw_store.c (set PDM_BENCH_PEERS)" >&2; exit 1; }
[ -x "$build/bench/store_bench" ] || { echo "store.sh: build first: ninja -C $build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 "$peers/store/rw_store.c" -o "$tmp/rw_store" -lsqlite3

i=1
while [ "$i" -le "$reps" ]; do
	"$tmp/rw_store" --mode delete_sensor --without-rowid --batch 1000 --rows "$rows" \
		--keep "$keep" --dir "$dir" >>"$tmp/raw.txt"
	extra=--no-extra
	[ "$i" -eq 1 ] && extra=
	# The full-queue warnings are expected: the benchmark submits as fast
	# as it can and retries.
	"$build/bench/store_bench" --rows "$rows" --keep "$keep" --batch 1000 --dir "$dir" \
		$extra 2>/dev/null >>"$tmp/ours.txt"
	i=$((i + 1))
done

# Medians per name, peer lines renamed to store_raw_*.
median() {
	sort -k1,1 -k2,2g "$1" | awk '
		function flush() { if (n) printf "%s %s %s\n", name, v[int((n + 1) / 2)], unit }
		$1 != name { flush(); name = $1; n = 0; unit = $3 }
		{ v[++n] = $2 }
		END { flush() }'
}
median "$tmp/raw.txt" | sed 's/^store_delete_sensor_wr_b1000_normal_/store_raw_/' >"$tmp/raw_med.txt"
median "$tmp/ours.txt" >"$tmp/ours_med.txt"
cat "$tmp/raw_med.txt" "$tmp/ours_med.txt"

awk -v keep="$keep" '
	FNR == NR && $1 == "store_raw_rows_per_s" { raw = $2 }
	FNR == NR && $1 == "store_raw_db_bytes_closed" { rawbytes = $2 }
	FNR != NR && $1 == "store_writer_rows_per_s" { wr = $2 }
	FNR != NR && $1 == "store_append_rows_per_s" { ap = $2 }
	END {
		if (raw > 0) {
			printf "store_raw_bytes_per_sample %.2f bytes\n", rawbytes / keep
			printf "store_append_direct_ratio_vs_raw %.3f ratio\n", ap / raw
			printf "store_append_ratio_vs_raw %.3f ratio\n", wr / raw
		}
	}' "$tmp/raw_med.txt" "$tmp/ours_med.txt"

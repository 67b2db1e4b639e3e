#!/usr/bin/env bash
# scripts/fuzz.sh - builds the libFuzzer harnesses listed in tests/fuzz/targets
# with clang (-fsanitize=fuzzer,address,undefined) into a temporary directory
# and runs each for a bounded time from its seed corpus. Exits non-zero on any
# crash, leak, undefined behaviour or timeout, keeping the failing input.
#
#   ./scripts/fuzz.sh [SECONDS] [NAME...]
#
#   SECONDS  run time per harness (default 60); 0 only replays the seed corpus
#   NAME     harnesses to run (default: all in tests/fuzz/targets)
#
# Environment: CLANG (default clang), FUZZ_KEEP=1 keeps the work directory,
# FUZZ_ARTIFACTS=DIR where failing inputs are copied (default: ./fuzz-artifacts),
# FUZZ_SEED=N libFuzzer's random seed (default: a new one each run, printed).
# Exits 77 (skipped) when clang or its fuzzer runtime is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGETS="$ROOT/tests/fuzz/targets"
CLANG="${CLANG:-clang}"
SECS="${1:-60}"
shift || true

case "$SECS" in
'' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$SECS'" >&2; exit 64 ;;
esac
if ! command -v "$CLANG" >/dev/null; then
	echo "fuzz.sh: $CLANG not found; install clang and libclang-rt-14-dev" >&2
	exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/pdm-fuzz-XXXXXX")"
cleanup() { [ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

cflags=(-g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-Wall -Wextra -Werror -Wno-unused-parameter)

# Probe the runtime once so a machine without it skips instead of failing.
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$work/probe.c"
if ! "$CLANG" "${cflags[@]}" "$work/probe.c" -o "$work/probe" 2>"$work/probe.log"; then
	echo "fuzz.sh: $CLANG cannot build fuzzers (libclang-rt-14-dev missing?):" >&2
	cat "$work/probe.log" >&2
	exit 77
fi

# Reads tests/fuzz/targets: "NAME SOURCES..." per line, '#' comments. A source
# word "pkg:NAME" adds `pkg-config --cflags --libs NAME`; a word starting with
# '-' is passed to the compiler as is (e.g. -lpthread).
declare -A sources=()
order=()
while read -r name srcs; do
	case "$name" in '' | '#'*) continue ;; esac
	sources[$name]="$srcs"
	order+=("$name")
done <"$TARGETS"

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${order[@]}")

status=0
for name in "${wanted[@]}"; do
	if [ -z "${sources[$name]+x}" ]; then
		echo "fuzz.sh: no harness '$name' in $TARGETS" >&2
		exit 64
	fi
	harness="$ROOT/tests/fuzz/fuzz_$name.c"
	seeds="$ROOT/tests/fuzz/corpus/$name"
	src=()
	incs=()
	libs=()
	for s in ${sources[$name]}; do
		case "$s" in
		pkg:*)
			# A library the sources need, resolved like the meson build does.
			if ! flags=$(pkg-config --cflags --libs "${s#pkg:}"); then
				echo "fuzz.sh: fuzz_$name needs pkg-config package '${s#pkg:}'" >&2
				exit 77
			fi
			read -r -a more <<<"$flags"
			libs+=("${more[@]}")
			;;
		-*) libs+=("$s") ;;
		*)
			src+=("$ROOT/$s")
			incs+=(-I "$ROOT/$(dirname "$s")")
			;;
		esac
	done
	bin="$work/fuzz_$name"
	echo "==> fuzz_$name: building"
	"$CLANG" "${cflags[@]}" -I "$ROOT/common" "${incs[@]}" "$harness" "${src[@]}" \
		"${libs[@]}" -lm -o "$bin"

	# New inputs go to a scratch corpus; the seed corpus in the tree is only read.
	mkdir -p "$work/corpus_$name" "$work/art_$name"
	# Inputs may grow to 64 KiB, or to the largest seed (model files are bigger).
	maxlen=65536
	while read -r sz; do
		[ "$sz" -le "$maxlen" ] || maxlen=$sz
	done < <(find "$seeds" -type f -printf '%s\n')
	# The seed is printed so a failure can be replayed exactly (FUZZ_SEED=N).
	seed="${FUZZ_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}"
	args=(-seed="$seed" -timeout=10 -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1
		-artifact_prefix="$work/art_$name/")
	if [ "$SECS" -eq 0 ]; then
		args+=(-runs=0)
	else
		args+=(-max_total_time="$SECS")
	fi
	echo "==> fuzz_$name: running ${SECS}s from $(find "$seeds" -type f | wc -l) seeds, -seed=$seed"
	if "$bin" "${args[@]}" "$work/corpus_$name" "$seeds" >"$work/log_$name" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log_$name")
		# libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/SIZE ..."
		done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$work/log_$name" | tail -n 1)
		cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
		corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")
		echo "fuzz_${name}_execs ${execs:-0} runs"
		echo "fuzz_${name}_corpus ${corp:-?} units/bytes"
		echo "fuzz_${name}_cov ${cov:-?} edges"
		echo "fuzz_${name}_time $SECS s"
	else
		status=1
		echo "==> fuzz_$name: FAILED" >&2
		tail -n 60 "$work/log_$name" >&2
		dest="${FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}"
		mkdir -p "$dest"
		for a in "$work/art_$name"/*; do
			[ -e "$a" ] || continue
			cp "$a" "$dest/${name}-$(basename "$a")"
			echo "==> failing input kept: $dest/${name}-$(basename "$a")" >&2
		done
	fi
done
exit $status

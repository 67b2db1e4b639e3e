#!/usr/bin/env bash
# scripts/test.sh - installs what is missing, builds pdmd twice (normal, and
# with AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole test
# suite in both. Exits non-zero if anything fails.
#
#   ./scripts/test.sh              everything
#   ./scripts/test.sh --suite nn   one suite (unit | nn | integration)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--suite) suite_args+=(--suite "$2"); shift 2 ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown argument: $1" >&2; exit 64 ;;
	esac
done

pdm_install "${PDM_BUILD_PKGS[@]}" "${PDM_TEST_PKGS[@]}"

pdm_build build
pdm_build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$PDM_ROOT/tests/lsan.supp:print_suppressions=0"
# Four tests at a time on two cores: the long integration and fault tests
# mostly wait on the simulated plant's clock (load stays near 1), so running
# them side by side halves the wall time. Each test keeps OpenBLAS to one
# thread unless it asks otherwise (two thread pools on two cores fight).
jobs=${PDM_TEST_JOBS:-4}

status=0
for dir in build build-asan; do
	pdm_log "testing $dir"
	if ! meson test -C "$PDM_ROOT/$dir" --print-errorlogs --num-processes "$jobs" \
		"${suite_args[@]}"; then
		status=1
		pdm_log "FAILED in $dir"
	fi
done
if [ $status -eq 0 ]; then
	pdm_log "all tests passed (normal and sanitizer builds)"
fi
exit $status

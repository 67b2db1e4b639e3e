#!/bin/sh
# soak.sh - the long fault-injection run (docs/reliability.md).
#
# usage: tests/faults/soak.sh [-k KILLS] [-o OUTAGE_S] [-b BUILD_DIR] [-r REPORT] [-c CPU]
#   -k  kill -9 count (default 120)
#   -o  broker outage in seconds during an active fault (default 300)
#   -b  build directory holding daemon/pdmd and tools/plantsim (default build)
#   -r  file the FAULTS_RESULT lines are appended to (default soak-results.txt)
#   -c  the one CPU everything runs on (taskset; default 0)
# Runs every scenario of tests/faults/faults.py once, the kill and outage ones
# with the long parameters, pinned to one CPU at low priority. Exit status 1
# if any scenario failed. PDM_ENDURE_MINUTES sets the length of the
# endurance run (default 30).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kills=120 outage=300 build="$root/build" report=soak-results.txt cpu=0
while getopts k:o:b:r:c: opt; do
	case $opt in
	k) kills=$OPTARG ;;
	o) outage=$OPTARG ;;
	b) build=$OPTARG ;;
	r) report=$OPTARG ;;
	c) cpu=$OPTARG ;;
	*) sed -n '2,13p' "$0"; exit 64 ;;
	esac
done
export PDMD="$build/daemon/pdmd" PLANTSIM="$build/tools/plantsim" PDM_ETC="$root/etc"
export OPENBLAS_NUM_THREADS=1
for f in "$PDMD" "$PLANTSIM"; do
	[ -x "$f" ] || { echo "soak: $f missing: build first (ninja -C $build)" >&2; exit 2; }
done
run() {
	echo "==> $*"
	taskset -c "$cpu" nice -n 10 /usr/bin/python3 "$here/faults.py" "$@" --report "$report" ||
		failed=1
}
failed=0
start=$(date +%s)
run kill --kills "$kills" --min-up 2 --max-up 12 --fault-period 20
run outage --outage "$outage"
run backlog --backlog 6000 --bounces 6
run plc
run sensors
run disk
run model
run hup
run term --kills 10
run clock
run skew
run mixed
run sparse
run tags
run maint
run noack
run endure --minutes "${PDM_ENDURE_MINUTES:-30}"
echo "soak: $(( $(date +%s) - start )) s; results in $report"
exit $failed

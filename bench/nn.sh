#!/bin/sh
# bench/nn.sh - RW-NN: our autoencoders and the PyTorch peer in one run.
#
# usage: bench/nn.sh [BUILD_DIR] [nn_bench options...]
# Builds nn_bench in BUILD_DIR (default: build; configured if missing), then
# runs it; it runs the peer itself and prints the speedup_* ratios last.
# Environment:
#   PDM_TORCH_RW_NN  the peer script (default: ../shared/bench/nn/torch_rw_nn.py
#                    next to the repository root); "none" skips it
#   PDM_PYTHON       Python with torch (default /usr/bin/python3, Debian's)
#   PDM_OPENBLAS_CORETYPE  OpenBLAS kernel set for both sides (e.g. Haswell);
#                    default: OpenBLAS's own detection. An OPENBLAS_CORETYPE
#                    already in the environment is ignored so that both sides
#                    always run the same kernels (measured here: the detected
#                    AVX-512 Cooperlake kernels beat Haswell's on every figure)
# The peer runs all three of its thread settings (1, 2, 1x2), since the
# ratios are against PyTorch's best one; its "2" setting oversubscribes a
# 2-core machine, so the whole run takes several minutes.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
[ $# -gt 0 ] && shift
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$root" >/dev/null
fi
ninja -C "$build" -j2 bench/nn_bench >/dev/null
: "${PDM_TORCH_RW_NN:=$root/../shared/bench/nn/torch_rw_nn.py}"
export PDM_TORCH_RW_NN
unset OPENBLAS_CORETYPE
if [ -n "${PDM_OPENBLAS_CORETYPE:-}" ]; then
	OPENBLAS_CORETYPE="$PDM_OPENBLAS_CORETYPE"
	export OPENBLAS_CORETYPE
fi
if [ "$PDM_TORCH_RW_NN" != none ] && [ ! -f "$PDM_TORCH_RW_NN" ]; then
	echo "bench/nn.sh: peer $PDM_TORCH_RW_NN not found (set PDM_TORCH_RW_NN, or none)" >&2
	exit 1
fi
# The peer's own 20,000 windows (its rwnn_common.make_windows), so both sides
# train on the same numbers, followed by 1,000 of them again as our
# validation tail (nn_train always holds one out; it does not touch the
# training figures). Falls back to nn_bench's generator of the same recipe.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$PDM_TORCH_RW_NN" != none ] &&
	"${PDM_PYTHON:-/usr/bin/python3}" -c "
import sys; sys.path.insert(0, sys.argv[1])
import numpy as np
from rwnn_common import make_windows
x = make_windows()
np.concatenate([x, x[-1000:]]).tofile(sys.argv[2])" "$(dirname "$PDM_TORCH_RW_NN")" "$tmp/windows.f32"; then
	set -- --data "$tmp/windows.f32" "$@"
fi
"$build/bench/nn_bench" "$@"

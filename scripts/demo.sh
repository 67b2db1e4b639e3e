#!/usr/bin/env bash
# scripts/demo.sh - installs what is missing, builds pdmd, and runs the demo.
#
# The demo validates the example configuration in etc/ with `pdmd check`
# and prints the resolved setup.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pdm_install "${PDM_BUILD_PKGS[@]}"
pdm_build build
pdm_log "pdmd check -c etc"
"$PDM_ROOT/build/daemon/pdmd" --version
"$PDM_ROOT/build/daemon/pdmd" check -c "$PDM_ROOT/etc"

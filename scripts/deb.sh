#!/bin/bash
# scripts/deb.sh [OUTDIR] - builds the Debian package of pdmd (debian/) from
# a copy of this source tree and puts pdmd_VERSION_ARCH.deb into OUTDIR
# (default: dist/). Installs what is missing to build it (Debian packages,
# apt-get), as the other scripts do. Install the result on an edge box with
#     apt-get install ./pdmd_VERSION_ARCH.deb
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:-$PDM_ROOT/dist}
pdm_install "${PDM_BUILD_PKGS[@]}" "${PDM_DEB_PKGS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree as it is (committed or not), without build directories: the
# package's build starts clean.
mkdir "$work/pdmd"
tar -C "$PDM_ROOT" --exclude=./.git --exclude='./build*' --exclude=./dist \
	--exclude='./obj-*' --exclude=./debian/pdmd --exclude=./debian/.debhelper -cf - . |
	tar -C "$work/pdmd" -xf -
pdm_log "building the Debian package"
(cd "$work/pdmd" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
	tail -n 40 "$work/build.log" >&2
	pdm_log "dpkg-buildpackage failed (the last lines of its log are above)"
	exit 1
}
mkdir -p "$out"
for deb in "$work"/*.deb; do
	cp "$deb" "$out/"
	echo "$out/$(basename "$deb")"
done

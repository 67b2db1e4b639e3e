#!/bin/sh
# test_deb.sh - the Debian package (scripts/deb.sh) builds from this tree,
# depends on the runtime libraries it links, holds the daemon, pdmctl, the
# unit where Debian 12's systemd finds it (enabled and started on install,
# restarted after an upgrade), the example configuration as a conffile
# (an upgrade keeps the user's edits) and the manuals; and the daemon it
# holds runs, hardened (PIE, full RELRO), and says the package's version.
# TAP output.
# Usage: test_deb.sh SOURCE_ROOT
set -u
root="$1"
echo "1..5"
if ! command -v dpkg-buildpackage >/dev/null 2>&1 || ! command -v dh >/dev/null 2>&1; then
	for i in 1 2 3 4 5; do echo "ok $i # SKIP dpkg-dev and debhelper are not installed"; done
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# 1: it builds (deb.sh installs nothing when the build packages are there)
if out=$("$root/scripts/deb.sh" "$dir/out" 2>&1); then
	echo "ok 1 - scripts/deb.sh built the package"
else
	echo "not ok 1 - scripts/deb.sh failed"
	echo "$out" | sed 's/^/# /'
	for i in 2 3 4 5; do echo "not ok $i # no package"; done
	exit 0
fi
deb=$(ls "$dir"/out/pdmd_*.deb)
echo "# $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"

# 2: the runtime libraries it links, from the shared-library dependencies
deps=$(dpkg-deb -f "$deb" Depends)
echo "# Depends: $deps"
missing=""
for lib in libmodbus5 libpaho-mqtt1.3 libopenblas0 libsqlite3-0 libinih1 libcjson1 libsystemd0; do
	case "$deps" in *"$lib"*) ;; *) missing="$missing $lib" ;; esac
done
if [ -z "$missing" ]; then
	echo "ok 2 - depends on the libraries it links"
else
	echo "not ok 2 - Depends lacks:$missing"
fi

# 3: its files, and the configuration as a conffile
list=$(dpkg-deb -c "$deb" | awk '{print $6}')
mkdir "$dir/ctl"
dpkg-deb -e "$deb" "$dir/ctl"
missing=""
for f in ./usr/sbin/pdmd ./usr/bin/pdmctl ./usr/bin/plantsim ./lib/systemd/system/pdmd.service \
	./etc/pdmd/pdmd.conf ./usr/share/man/man8/pdmd.8.gz ./usr/share/man/man8/pdmctl.8.gz \
	./usr/share/man/man5/pdmd.conf.5.gz ./usr/share/doc/pdmd/examples/conf.d/10-pump-a.conf \
	./usr/share/doc/pdmd/copyright; do
	echo "$list" | grep -qxF "$f" || missing="$missing $f"
done
grep -qxF /etc/pdmd/pdmd.conf "$dir/ctl/conffiles" 2>/dev/null || missing="$missing conffile"
if [ -z "$missing" ]; then
	echo "ok 3 - files and conffile"
else
	echo "not ok 3 - missing:$missing"
fi

# 4: the unit enabled and started on install, restarted after an upgrade
if grep -q "deb-systemd-helper enable 'pdmd.service'" "$dir/ctl/postinst" 2>/dev/null &&
	grep -q "restart" "$dir/ctl/postinst" && grep -q "pdmd.service" "$dir/ctl/postrm"; then
	echo "ok 4 - maintainer scripts enable, start and restart the unit"
else
	echo "not ok 4 - maintainer scripts do not handle pdmd.service"
	cat "$dir/ctl/postinst" 2>/dev/null | sed 's/^/# /'
fi

# 5: the packaged daemon checks the packaged configuration; hardened
dpkg-deb -x "$deb" "$dir/x"
why=""
out=$("$dir/x/usr/sbin/pdmd" check -c "$dir/x/etc/pdmd" 2>&1) || why="pdmd check failed: $out"
case "$out" in *"configuration OK"*) ;; *) why="${why:-pdmd check said: $out}" ;; esac
# the version is written twice (meson.build, debian/changelog): the same
ver=$(dpkg-deb -f "$deb" Version)
got=$("$dir/x/usr/sbin/pdmd" --version 2>&1)
[ "$got" = "pdmd $ver" ] || why="$why; package version $ver but '$got' (bump both)"
if command -v readelf >/dev/null 2>&1; then
	readelf -h "$dir/x/usr/sbin/pdmd" | grep -q 'Type:.*DYN' || why="$why; not PIE"
	readelf -d "$dir/x/usr/sbin/pdmd" | grep -q 'BIND_NOW' || why="$why; no BIND_NOW"
fi
if [ -z "$why" ]; then
	echo "ok 5 - the packaged pdmd $ver checks the packaged configuration; PIE, BIND_NOW"
else
	echo "not ok 5 - ${why#; }"
fi

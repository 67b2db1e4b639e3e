# scripts/lib.sh - shared by demo.sh and test.sh: installs the Debian
# packages that are missing (and only those) and builds pdmd.
# shellcheck shell=bash

PDM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Packages to build pdmd and run its suite.
PDM_BUILD_PKGS=(gcc libc6-dev meson ninja-build pkg-config
	libmodbus-dev libpaho-mqtt-dev libopenblas-dev libsqlite3-dev libcmocka-dev
	libinih-dev libcjson-dev libsystemd-dev libplplot-dev plplot-driver-cairo)
PDM_TEST_PKGS=(mosquitto mosquitto-clients python3 python3-pymodbus python3-serial python3-serial-asyncio
	socat sqlite3 systemd procps clang libclang-rt-14-dev)

# tests/faults drives pdmd from Python with a paho MQTT subscriber.
PDM_TEST_PKGS+=(python3-paho-mqtt)

# The clock scenario of tests/faults sets the daemon's clock with libfaketime.
PDM_TEST_PKGS+=(faketime)

# The MQTT TLS tests make their own CA and certificates with openssl.
PDM_TEST_PKGS+=(openssl)
# The Debian package (scripts/deb.sh, and its test in the suite).
PDM_DEB_PKGS=(debhelper dpkg-dev build-essential)
PDM_TEST_PKGS+=("${PDM_DEB_PKGS[@]}")
# The demo: a broker, and its client to show alerts as SCADA receives them.
PDM_DEMO_PKGS=(mosquitto mosquitto-clients)

pdm_log() { printf '==> %s\n' "$*" >&2; }

# pdm_install PKG... : apt-get install whatever of PKG is not installed yet.
pdm_install() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	pdm_log "installing: ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null; then
			sudo=(sudo)
		else
			echo "error: need root to install: ${missing[*]}" >&2
			return 1
		fi
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pdm_build DIR [meson options...] : configure (once) and build.
pdm_build() {
	local dir="$1"
	shift
	if [ ! -f "$PDM_ROOT/$dir/build.ninja" ]; then
		pdm_log "configuring $dir"
		meson setup "$PDM_ROOT/$dir" "$PDM_ROOT" -Dwerror=true "$@" >/dev/null
	fi
	pdm_log "building $dir"
	ninja -C "$PDM_ROOT/$dir" >/dev/null || ninja -C "$PDM_ROOT/$dir"
}

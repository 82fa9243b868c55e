#!/usr/bin/env bash
# Builds the agentsafe .deb (scripts/package.sh, Release) and installs it
# with apt in a clean Debian 12 container made from the offline debootstrap
# base image (scripts/base-image.sh), with this host's apt sources, apt
# proxy settings and CA bundle. Inside: the dependencies resolve, the
# postinst gives agentsafe-launch cap_net_admin, --version works on every
# binary, the example policy loads, and doctor prints its screen (it may
# report misses there: no engine in the container).
set -euo pipefail
SRC=${AGENTSAFE_SOURCE_DIR:?}
BUILD=${AGENTSAFE_BUILD_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "package test: needs root (docker, debootstrap)" >&2; exit 1; }
# shellcheck source=../../../scripts/base-image.sh
. "$SRC/scripts/base-image.sh"
# shellcheck source=../../lib/dockerd.sh
. "$SRC/tests/lib/dockerd.sh"

W=$(mktemp -d /var/tmp/agentsafe-pkgtest.XXXXXX)
trap 'rm -rf "$W"; images_sweep; dockerd_down' EXIT
dockerd_up >&2
images_mark
echo "package test: building the .deb"
DEB=$(timeout 900 "$SRC/scripts/package.sh" "$BUILD/package" | tail -n1)
[ -f "$DEB" ] || { echo "package test: no .deb from scripts/package.sh" >&2; exit 1; }
mkdir -p "$W/deb" "$W/apt/sources.list.d" "$W/apt/apt.conf.d"
cp "$DEB" "$W/deb/"
# What apt on this host needs to reach its mirror: sources, proxy
# settings, and the CA bundle (a TLS-intercepting gateway).
cp /etc/apt/sources.list "$W/apt/" 2>/dev/null || : >"$W/apt/sources.list"
cp /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources "$W/apt/sources.list.d/" 2>/dev/null || true
for f in /etc/apt/apt.conf.d/*; do
	if grep -q -i -E 'Acquire::[a-z]+::Proxy' "$f" 2>/dev/null; then cp "$f" "$W/apt/apt.conf.d/"; fi
done
cp /etc/ssl/certs/ca-certificates.crt "$W/ca.crt"

agentsafe_base_image "$AGENTSAFE_BASE_IMAGE_DEFAULT" >&2
cat >"$W/inside.sh" <<'SH'
set -eu
cp /host/apt/sources.list /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
cp /host/apt/sources.list.d/* /etc/apt/sources.list.d/ 2>/dev/null || true
cp /host/apt/apt.conf.d/* /etc/apt/apt.conf.d/ 2>/dev/null || true
cp /host/ca.crt /etc/ssl/certs/ca-certificates.crt
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Recommends (docker.io) left out to keep the test short; Depends must
# be enough for every binary to start.
apt-get install -y -qq --no-install-recommends /host/deb/agentsafe_*.deb
echo "--- installed"
agentsafe --version
agentsafe-proxy --version
agentsafe-launch --help >/dev/null
getcap /usr/bin/agentsafe-launch
agentsafe policy check -f /usr/share/agentsafe/examples/policy.yaml
echo "--- doctor"
rc=0; agentsafe doctor || rc=$?
echo "--- doctor exit $rc"
SH
echo "package test: apt install in a clean Debian 12 container"
rc=0
timeout -k 10 600 docker run --rm -v "$W:/host:ro" "$AGENTSAFE_BASE_IMAGE_DEFAULT" \
	bash /host/inside.sh >"$W/out" 2>&1 || rc=$?
cat "$W/out"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ "$rc" = 0 ] || fail "the container run exited $rc"
grep -qE '^agentsafe 0\.[0-9]+\.[0-9]+' "$W/out" || fail "no agentsafe --version line"
grep -qE '^agentsafe-proxy 0\.[0-9]+\.[0-9]+' "$W/out" || fail "no agentsafe-proxy --version line"
grep -q 'cap_net_admin=p' "$W/out" || fail "the postinst did not setcap agentsafe-launch"
grep -q 'policy.yaml: ok (' "$W/out" || fail "the installed example policy does not load"
grep -q '^agentsafe doctor ' "$W/out" || fail "doctor printed no screen"
grep -qE '^  (ok|MISS|warn|info) +docker ' "$W/out" || fail "doctor printed no docker line"
grep -qE '^--- doctor exit [01]$' "$W/out" || fail "doctor exit code is neither 0 nor 1"
[ "$fails" = 0 ] || exit 1
echo "package test: the .deb installs and runs"

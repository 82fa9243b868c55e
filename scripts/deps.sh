#!/usr/bin/env bash
# Installs (apt-get, Debian 12) everything AgentSafe needs to build, test,
# benchmark and run. Idempotent: skips apt when every package is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates python3
  libevent-dev libssl-dev libcurl4-openssl-dev libnftnl-dev libmnl-dev
  libcap-dev libyaml-dev libgit2-dev libjansson-dev libcmocka-dev
  nftables iproute2 curl openssl openssh-client procps psmisc util-linux man-db
  docker.io debootstrap
  tinyproxy squid
  clang libclang-rt-14-dev clang-format clang-tidy shellcheck pyflakes3
)

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Baseline proxies are started by the bench on loopback only; Debian starts
# their system services on install, which we neither need nor want.
for svc in tinyproxy squid; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done

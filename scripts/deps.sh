#!/usr/bin/env bash
# Installs (apt-get, Debian 12) what AgentSafe needs. Idempotent: skips apt
# when every package is present.
#
#   scripts/deps.sh          build + runtime: what the quick start needs
#   scripts/deps.sh --test   and the test toolchain (scripts/test.sh):
#                            cmocka, clang + sanitizer runtime, clang-format,
#                            clang-tidy, shellcheck, pyflakes3, the bench's
#                            baseline proxies, and the tools the suites drive
set -euo pipefail

BUILD=(
  build-essential cmake pkg-config git ca-certificates
  libevent-dev libssl-dev libcurl4-openssl-dev libnftnl-dev libmnl-dev
  libcap-dev libyaml-dev libgit2-dev libjansson-dev
)
RUNTIME=(
  nftables docker.io libcap2-bin man-db debootstrap
)
TEST=(
  libcmocka-dev python3
  iproute2 curl openssl openssh-client procps psmisc util-linux
  tinyproxy squid-openssl
  clang libclang-rt-14-dev clang-format clang-tidy shellcheck pyflakes3
)

case "${1:-}" in
  -h | --help) sed -n 2,9p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --test) PACKAGES=("${BUILD[@]}" "${RUNTIME[@]}" "${TEST[@]}") ;;
  "") PACKAGES=("${BUILD[@]}" "${RUNTIME[@]}") ;;
  *) echo "deps.sh: unknown option '$1' (--test, --help)" >&2; exit 2 ;;
esac

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
# squid-openssl is squid built with OpenSSL: the bench's plain CONNECT
# baseline and its ssl-bump one (inspected mode). It conflicts with (and
# replaces) Debian's GnuTLS `squid` package, which has no ssl-bump.
# Baseline proxies are started by the bench on loopback only; Debian starts
# their system services on install, which we neither need nor want.
if [ "${1:-}" = --test ]; then
  for svc in tinyproxy squid; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

#!/usr/bin/env bash
# TLS inspection suite: a network namespace of its own (loopback only), the
# real agentsafe-proxy with a session CA minted by certs/ (mint_ca), real
# TLS upstreams (python ssl, git http-backend behind TLS) and real clients.
# Needs root (ip netns). Every *.test name resolves through the test's own
# hosts file; nothing leaves the namespace.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "inspect integration: needs root (ip netns)" >&2; exit 1; }
for t in ip curl openssl python3 git; do
  command -v "$t" >/dev/null || { echo "inspect integration: $t missing" >&2; exit 1; }
done
for b in agentsafe-proxy mint_ca; do
  [ -x "$BIN/$b" ] || { echo "inspect integration: $BIN/$b missing" >&2; exit 1; }
done
NS=asinsp-$$
W=$(mktemp -d /tmp/asinsp.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 "$SRC/tests/integration/inspect/inspect_suite.py" \
  --bin "$BIN" --work "$W" "$@"

#!/usr/bin/env bash
# Proxy integration suite: a network namespace of its own (no route to any
# real network, loopback only), the real agentsafe-proxy (sanitizer build),
# real TLS upstreams with a test CA, real curl and hostile raw clients.
# Needs root (ip netns). Every *.test name resolves through the test's own
# hosts file; nothing leaves the namespace.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "proxy integration: needs root (ip netns)" >&2; exit 1; }
for t in ip curl openssl python3; do
  command -v "$t" >/dev/null || { echo "proxy integration: $t missing" >&2; exit 1; }
done
[ -x "$BIN/agentsafe-proxy" ] || { echo "proxy integration: $BIN/agentsafe-proxy missing" >&2; exit 1; }
NS=asprx-$$
W=$(mktemp -d /tmp/asprx.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# IPv6 loopback for the v6 literal case.
ip netns exec "$NS" sysctl -qw net.ipv6.conf.lo.disable_ipv6=0 2>/dev/null || true
ip netns exec "$NS" python3 "$SRC/tests/integration/proxy/proxy_suite.py" \
  --bin "$BIN" --work "$W" "$@"

#!/usr/bin/env bash
# Live approvals and upload budgets on the real agentsafe-proxy in a network
# namespace of the test's own (loopback only): real TLS upstream, real curl,
# the real `agentsafe approve`. Needs root (ip netns). Only *.test names,
# resolved through the test's hosts file.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "approval integration: needs root (ip netns)" >&2; exit 1; }
for t in ip curl openssl python3; do
  command -v "$t" >/dev/null || { echo "approval integration: $t missing" >&2; exit 1; }
done
NS=asapr-$$
W=$(mktemp -d /tmp/asapr.XXXXXX)
chmod 755 "$W"
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 "$SRC/tests/integration/approval/approval_suite.py" \
  --bin "$BIN" --work "$W" "$@"

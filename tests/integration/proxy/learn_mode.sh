#!/usr/bin/env bash
# Learn mode against the real proxy, in a network namespace of its own
# (loopback only), with the proxy suite's upstreams and helpers. Needs root.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "learn mode: needs root (ip netns)" >&2; exit 1; }
NS=aslearn-$$
W=$(mktemp -d /tmp/aslearn.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 "$SRC/tests/integration/proxy/learn_mode.py" \
  --bin "$BIN" --work "$W" "$@"

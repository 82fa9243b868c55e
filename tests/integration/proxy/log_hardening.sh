#!/usr/bin/env bash
# egress.log hardening suite: its own network namespace (loopback only) and,
# through `ip netns exec`, its own mount namespace, where it mounts the small
# tmpfs it fills. Needs root.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "log hardening: needs root (ip netns, mount)" >&2; exit 1; }
NS=aslog-$$
W=$(mktemp -d /tmp/aslog.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 "$SRC/tests/integration/proxy/log_hardening.py" \
  --bin "$BIN" --work "$W" "$@"

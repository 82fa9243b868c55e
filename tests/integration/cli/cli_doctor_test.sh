#!/usr/bin/env bash
# `agentsafe doctor` on this machine: every check prints, the exit code
# agrees with the required checks (--json "ok"), a missing engine is a miss
# with a fix and exit 1, a user without the docker group or the launcher's
# capability is told how to fix both, and the host's nftables ruleset is
# never touched (the probe table lives in a scratch namespace).
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
A=$BIN/agentsafe
T=$(mktemp -d /tmp/agentsafe-cli-doctor.XXXXXX)
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { grep -qF -- "$2" "$1" || { fail "$(basename "$1") lacks '$2'"; sed 's/^/  /' "$1"; }; }
status_of() { # CHECK JSONFILE -> status
	python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); print([c["status"] for c in d["checks"] if c["check"]==sys.argv[1]][0])' "$1" "$2"
}

ruleset_before=$(nft list tables 2>/dev/null || true)
rc=0; "$A" doctor >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out"
for c in privilege nftables docker disk cgroup gpu; do
	grep -qE "^  (ok|MISS|warn|info) +$c " "$T/out" || fail "no $c line"
done
rc_json=0; "$A" doctor --json >"$T/json" || rc_json=$?
python3 - "$T/json" "$rc" "$rc_json" <<'PY' || fail "--json disagrees with the exit code or the screen"
import json, sys
d = json.load(open(sys.argv[1]))
rc, rcj = int(sys.argv[2]), int(sys.argv[3])
req_miss = [c for c in d["checks"] if c["required"] and c["status"] == "miss"]
assert d["ok"] == (not req_miss), d
assert rc == rcj == (0 if d["ok"] else 1), (rc, rcj, d["ok"])
for c in d["checks"]:
    assert c["status"] == "ok" or c["status"] == "info" or c["fix"], c
PY
[ "$(nft list tables 2>/dev/null || true)" = "$ruleset_before" ] || fail "the host's nftables tables changed"

# The engine this test suite starts (e2e, launcher tests): reachable means
# ok; not running means a miss, exit 1.
if curl -s --max-time 5 --unix-socket /var/run/docker.sock http://localhost/_ping | grep -q OK; then
	[ "$(status_of docker "$T/json")" = ok ] || fail "dockerd answers but doctor says $(status_of docker "$T/json")"
else
	[ "$(status_of docker "$T/json")" = miss ] || fail "no dockerd but doctor says $(status_of docker "$T/json")"
	[ "$rc" = 1 ] || fail "no dockerd but doctor exited $rc"
fi

# No engine at DOCKER_HOST: a miss with a fix, exit 1.
rc=0; DOCKER_HOST=unix://$T/nothing.sock "$A" doctor >"$T/out" || rc=$?
[ "$rc" = 1 ] || fail "doctor without an engine exited $rc, want 1"
has "$T/out" "MISS  docker     no engine socket at $T/nothing.sock"
has "$T/out" "fix: start it: sudo systemctl start docker"
# A tcp:// engine is not what the launcher uses.
rc=0; DOCKER_HOST=tcp://127.0.0.1:1 "$A" doctor >"$T/out" || rc=$?
[ "$rc" = 1 ] || fail "doctor with DOCKER_HOST=tcp:// exited $rc, want 1"

# A socket that does not speak: a miss naming curl's error.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/mute.sock"
rc=0; DOCKER_HOST=unix://$T/mute.sock "$A" doctor >"$T/out" || rc=$?
[ "$rc" = 1 ] || fail "doctor with a mute socket exited $rc, want 1"
has "$T/out" "does not answer"

# An ordinary user without the docker group and with a launcher lacking
# cap_net_admin: both misses say what to run.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ -S /var/run/docker.sock ]; then
	cp "$BIN/agentsafe" "$T/agentsafe"
	printf '#!/bin/sh\n' >"$T/agentsafe-launch"; chmod 755 "$T/agentsafe" "$T/agentsafe-launch"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent \
		DOCKER_HOST=unix:///var/run/docker.sock "$T/agentsafe" doctor >"$T/out" 2>&1 || rc=$?
	cat "$T/out"
	[ "$rc" = 1 ] || fail "doctor as nobody exited $rc, want 1"
	has "$T/out" "fix: sudo setcap cap_net_admin+p $T/agentsafe-launch"
	if [ "$(stat -c %a /var/run/docker.sock)" != 666 ]; then
		has "$T/out" "fix: sudo usermod -aG docker \$USER"
	fi
	# The same launcher with the capability: the privilege check passes.
	if command -v setcap >/dev/null && setcap cap_net_admin+p "$T/agentsafe-launch" 2>/dev/null; then
		setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent \
			"$T/agentsafe" doctor --json >"$T/json2" 2>/dev/null || true
		[ "$(status_of privilege "$T/json2")" = ok ] || fail "cap_net_admin on the launcher not seen"
	fi
fi

rc=0; "$A" doctor --jsn >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "doctor --jsn exited $rc, want 2"
has "$T/err" "did you mean '--json'?"

[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "doctor: all checks passed"

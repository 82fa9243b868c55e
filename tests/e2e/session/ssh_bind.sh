#!/usr/bin/env bash
# --ssh ADDR:PORT on a non-loopback address: from another network namespace
# (made here, a veth to the host; both addresses are this test's), ssh with
# the user's key reaches the session's sshd, without it it does not; the
# launcher warns and records the bind in session.json; `stop` prints the
# session's end and exits with its verdict. Also: the default (loopback)
# bind is not reachable from the namespace.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$HERE/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/bin}
L=$BIN/agentsafe-launch
# shellcheck source=images.sh
. "$HERE/images.sh"
N=$$
NS=assshns$N
VH=assshh$N
A=$((N % 250 + 1))
HOSTIP=198.18.$A.1 # benchmark space (RFC 2544): the veth's two ends only
NSIP=198.18.$A.2
T=$(mktemp -d /tmp/asssh.XXXXXX)
NAME=asssh-$N
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	"$L" stop "$NAME" >/dev/null 2>&1
	"$L" stop "$NAME-lo" >/dev/null 2>&1
	session_leftovers "$T/home"
	ip link del "$VH" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
	e2e_dockerd_down
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root"; exit 1; }
e2e_dockerd_up || exit 1
IMG=$E2E_AGENT_IMAGE
# The e2e image with sshd, as the session test last built it: the session
# runs for the uid it was built for, so nothing is rebuilt. Without one, the
# first launch builds it (as the session test does).
BUILD=()
if [ "$(docker image inspect "$IMG" --format '{{index .Config.Labels "agentsafe.sshd"}}' 2>/dev/null)" = 1 ]; then
	UIDL=$(docker image inspect "$IMG" --format '{{index .Config.Labels "agentsafe.uid"}}')
	GIDL=$(docker image inspect "$IMG" --format '{{index .Config.Labels "agentsafe.gid"}}')
else
	e2e_base_image || exit 1
	e2e_test_ca
	UIDL=1000 GIDL=1000
	BUILD=(--build --build-arg BASE_IMAGE="$E2E_BASE_IMAGE" --ca-bundle "$E2E_CACHE/extra-ca.pem")
fi

# The other machine: a namespace behind a veth; the host end's address is
# the one the session publishes on.
ip netns add "$NS" && ip link add "$VH" type veth peer name eth0 netns "$NS" &&
	ip addr add "$HOSTIP/30" dev "$VH" && ip link set "$VH" up &&
	ip -n "$NS" addr add "$NSIP/30" dev eth0 && ip -n "$NS" link set eth0 up &&
	ip -n "$NS" link set lo up || { echo "FAIL: netns"; exit 1; }

export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
mkdir -p "$HOME"/.ssh "$T"/repo
ssh-keygen -q -t ed25519 -N '' -C asssh -f "$T"/key
ssh-keygen -q -t ed25519 -N '' -C other -f "$T"/other
cp "$T"/key.pub "$HOME"/.ssh/id_ed25519.pub
git -C "$T"/repo init -q && git -C "$T"/repo -c user.name=t -c user.email=t@t.test \
	commit -q --allow-empty -m one
printf 'version: 1\nallow:\n  - allowed.test\n' >"$T"/policy.yaml
chown -R "$UIDL:$GIDL" "$T"
PORT=$((40000 + N % 20000))
launch() {
	(cd "$T"/repo && env SUDO_UID="$UIDL" SUDO_GID="$GIDL" AGENTSAFE_CONTAINER_DIR="$SRC/container" \
		"$L" --policy "$T"/policy.yaml --image "$IMG" --agent shell --gpu none --no-verify \
		--detach "$@" -- sleep 600) </dev/null >/dev/null 2>>"$T"/launch.err
}
sshns() {
	ip netns exec "$NS" ssh -p "$PORT" -o BatchMode=yes -o ConnectTimeout=3 \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		-o IdentitiesOnly=yes "$@"
}

# 1. Hostile first: the default bind (loopback) is not reachable from the
#    namespace even with the key.
launch --name "$NAME-lo" --ssh "$PORT" "${BUILD[@]}" || fail "loopback session did not start: $(tail -3 "$T"/launch.err)"
ok=
for _ in $(seq 60); do
	ssh -i "$T"/key -p "$PORT" -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes \
		agent@127.0.0.1 true 2>/dev/null && { ok=1; break; }
	sleep 1
done
[ -n "$ok" ] && ! sshns -i "$T"/key agent@"$HOSTIP" true 2>/dev/null &&
	pass "--ssh PORT: reachable on 127.0.0.1, not from another namespace" ||
	fail "--ssh PORT: loopback ok='$ok', or reachable from the namespace"
"$L" stop "$NAME-lo" >/dev/null 2>&1

# 2. --ssh HOSTIP:PORT: warned, recorded, key-only from the namespace.
launch --name "$NAME" --ssh "$HOSTIP:$PORT" || fail "session did not start: $(tail -3 "$T"/launch.err)"
grep -q "WARNING: $HOSTIP:$PORT is reachable from beyond this machine" "$T"/launch.err &&
	pass "non-loopback bind: highlighted warning" || fail "no warning: $(tail -5 "$T"/launch.err)"
ok=
for _ in $(seq 90); do
	out=$(sshns -i "$T"/key agent@"$HOSTIP" 'id -un' 2>/dev/null) && { ok=$out; break; }
	sleep 1
done
[ "$ok" = agent ] && pass "ssh from the namespace to $HOSTIP:$PORT with the key: logged in as agent" ||
	fail "ssh with the key from the namespace: '$ok'"
sshns -i "$T"/other agent@"$HOSTIP" true 2>/dev/null &&
	fail "another key got in" || pass "another key: refused"
methods=$(ip netns exec "$NS" ssh -p "$PORT" -o BatchMode=yes -o PreferredAuthentications=none \
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null agent@"$HOSTIP" true 2>&1 |
	sed -n 's/.*Permission denied (\(.*\)).*/\1/p')
[ "$methods" = publickey ] && pass "without a key: refused, sshd offers publickey only" ||
	fail "auth methods offered: '$methods'"
j=$(grep -l "\"$NAME\"" "$HOME"/.local/state/agentsafe/sessions/*/session.json | head -1)
python3 - "$j" "$HOSTIP" "$PORT" <<'PY' && pass "session.json records the bind" || fail "bind not recorded in $j"
import json, sys
d = json.load(open(sys.argv[1]))
assert any(b["addr"] == sys.argv[2] and b["first"] == int(sys.argv[3]) and b["ssh"]
           for b in d["binds"]), d.get("binds")
PY

# 3. stop prints the end summary and exits with the verdict.
out=$("$L" stop "$NAME" 2>&1)
rc=$?
[ $rc = 0 ] && echo "$out" | grep -q "session $NAME ([0-9a-f]*) ended with exit 143; no new commits; [0-9]* denials\?, [0-9]* drops\?" &&
	pass "stop: end summary printed, exit 0" || fail "stop: rc=$rc $out"

echo "$fails failure(s)"
[ $fails = 0 ]

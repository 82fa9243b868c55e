#!/usr/bin/env bash
# The launch self-check fails closed, and fast, on a real Docker engine: a
# session without its fence, one whose fence lacks its log + drop rules,
# and one whose proxy lets a --probe-deny host through must each end with
# exit 125 before the agent runs, the self-check taking under 1 s. A good
# session passes it and runs the agent. The broken fences come from the
# launcher's test hook (AGENTSAFE_TEST_SABOTAGE, honoured only by a Debug
# build: step_net.c); the leaky proxy from a policy that allows the host.
# Only *.test names; the "upstream" is 127.0.0.1 on a port nobody serves.
set -euo pipefail
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/test/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "selfcheck: needs root (dockerd, nftables)" >&2; exit 1; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=images.sh
. "$HERE/images.sh"

W=$(mktemp -d /tmp/asselfcheck.XXXXXX)
chmod 755 "$W"
IMG=agentsafe-selfcheck-test:$$
cleanup() {
	set +e
	docker image rm "$IMG" >/dev/null 2>&1
	rm -rf "$W"
	e2e_dockerd_down
}
trap cleanup EXIT

e2e_dockerd_up
# The e2e's agent image, under a name of our own (another run may retag
# agentsafe-e2e:latest meanwhile); built offline only when missing.
if ! docker image inspect "$E2E_AGENT_IMAGE" >/dev/null 2>&1; then
	e2e_base_image
	e2e_agent_image "$SRC"
fi
docker tag "$E2E_AGENT_IMAGE" "$IMG"
label() { docker image inspect "$IMG" --format "{{index .Config.Labels \"agentsafe.$1\"}}"; }
U=$(label uid)
G=$(label gid)
if [ -z "$U" ] || [ -z "$G" ]; then fail "$IMG has no agentsafe.uid/gid labels"; fi

mkdir -p "$W/home/proj"
git -C "$W/home/proj" init -q -b main
git -C "$W/home/proj" -c user.name=t -c user.email=t@agentsafe.test commit -q --allow-empty -m fixture
PORT=$(( 40000 + $$ % 1000 ))
printf '127.0.0.1 denied.test\n' >"$W/hosts"
cat >"$W/strict.yaml" <<'YAML'
version: 1
allow:
  - allowed.test
YAML
cat >"$W/leaky.yaml" <<YAML
version: 1
allow:
  - denied.test
  - host: 127.0.0.1
defaults:
  ports: [$PORT]
YAML
chown -R "$U:$G" "$W/home"

# launch NAME POLICY [sabotage]: the session's stderr in $W/NAME.err.
launch() {
	local name=$1 policy=$2 sab=${3:-} rc=0
	(cd "$W/home/proj" && env HOME="$W/home" SUDO_UID="$U" SUDO_GID="$G" \
		${sab:+AGENTSAFE_TEST_SABOTAGE=$sab} \
		timeout -k 10 120 "$BIN/agentsafe-launch" --timings --agent shell \
		--image "$IMG" --policy "$W/$policy" --hosts "$W/hosts" --gpu none \
		--probe-deny "denied.test:$PORT" \
		-- sh -c "echo AGENT-RAN-$name") </dev/null >"$W/$name.out" 2>"$W/$name.err" || rc=$?
	echo "$rc"
}
selfcheck_ms() { sed -n 's/.*timing: self-check *\([0-9]*\) ms/\1/p' "$W/$1.err"; }
# Each broken setup: exit 125, the agent never ran, the self-check said
# so (its phase is timed even when it fails) in under 1000 ms.
must_fail() {
	local name=$1 rc ms
	rc=$(launch "$@")
	ms=$(selfcheck_ms "$name")
	if [ "$rc" != 125 ] || grep -q "AGENT-RAN" "$W/$name.out" ||
		! grep -q "self-verification failed" "$W/$name.err" ||
		[ -z "$ms" ] || [ "$ms" -ge 1000 ]; then
		cat "$W/$name.err" >&2
		fail "$name: exit $rc, self-check ${ms:-?} ms (want 125, no agent, < 1000 ms)"
	fi
	echo "ok   $name: refused in $ms ms ($(grep -c 'FAIL' "$W/$name.err") FAIL lines)"
}

rc=$(launch good strict.yaml)
if [ "$rc" != 0 ] || ! grep -q "AGENT-RAN-good" "$W/good.out"; then
	cat "$W/good.err" >&2
	fail "good: exit $rc, the agent did not run"
fi
grep -q "self-verification passed" "$W/good.err" || fail "good: no self-check verdict"
grep -q "ok: drop record for" "$W/good.err" || fail "good: no drop record as proof"
LOG=$(sed -n 's/.*egress log: \(.*egress.log\)$/\1/p' "$W/good.err")
grep -q '"origin":"selfcheck"' "$LOG" || fail "good: the self-check's drops are not labelled in $LOG"
echo "ok   good: passed in $(selfcheck_ms good) ms, drops labelled origin=selfcheck"

must_fail nofence strict.yaml no-fence
grep -q "TEST BUILD: sabotaging" "$W/nofence.err" ||
	fail "the launcher at $BIN ignores AGENTSAFE_TEST_SABOTAGE: not a Debug build?"
must_fail nodrop strict.yaml no-drop-rule
must_fail leakyproxy leaky.yaml
echo "PASS"

#!/bin/bash
# A new user's first days: `sudo agentsafe-launch` in their repo, then
# sessions as themselves (a setcap'd copy of the launcher). The fetch back
# into their repo must run as them: no root-owned file may appear in their
# home, the next session as the user must still fetch, and a fetch that
# fails is a non-zero exit with a highlighted line.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
BIN=${AGENTSAFE_BIN:?}
L=$BIN/agentsafe-launch
IMG=aslaunch-sudo:$$
T=$(mktemp -d /tmp/aslaunch-sudo.XXXXXX)
U=assudo$$
UH=$T/home
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	session_leftovers "$UH"
	docker rmi -f "$IMG" >/dev/null 2>&1
	userdel "$U" 2>/dev/null
	rm -rf "$T"
	images_sweep
	dockerd_down
}
trap cleanup EXIT
# shellcheck source=../../lib/dockerd.sh
. "$(dirname "$0")"/../../lib/dockerd.sh

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (useradd, setcap, nftables)"; exit 1; }
dockerd_up || exit 1
images_mark
# shellcheck source=image.sh
. "$(dirname "$0")"/image.sh
aslaunch_image "$IMG" "$T" || exit 1

# The user, in the docker group (as the install guide says), with a repo.
chmod 755 "$T"
useradd -M -d "$UH" -G docker -s /bin/sh "$U" || { echo "FAIL: useradd"; exit 1; }
UID_=$(id -u "$U"); GID_=$(id -g "$U")
mkdir -p "$UH"/repo && chown -R "$U:$U" "$UH"
as_user() { setpriv --reuid="$U" --regid="$U" --init-groups env HOME="$UH" "$@"; }
as_user git -C "$UH"/repo init -q &&
	as_user sh -c "echo one >'$UH'/repo/f" && as_user git -C "$UH"/repo add f &&
	as_user git -C "$UH"/repo -c user.name=u -c user.email=u@u.test commit -qm one ||
	{ echo "FAIL: user repo"; exit 1; }
printf 'version: 1\nallow:\n  - allowed.test\n' >"$T"/policy.yaml
printf '127.0.0.1 allowed.test\n' >"$T"/hosts
chmod 644 "$T"/policy.yaml "$T"/hosts
COMMON=(--policy "$T"/policy.yaml --image "$IMG" --hosts "$T"/hosts --no-verify)
COMMIT='cd /work/repo && echo $$ >>f && git add f && git commit -qm inside'
# The user's own install: a copy with CAP_NET_ADMIN (and its proxy beside).
mkdir -p "$T"/bin && cp "$L" "$BIN"/agentsafe-proxy "$T"/bin/ &&
	chmod 755 "$T"/bin "$T"/bin/* && setcap cap_net_admin+p "$T"/bin/agentsafe-launch ||
	{ echo "FAIL: setcap copy"; exit 1; }
session_id() { sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$1"; }

# 1. sudo agentsafe-launch: HOME is root's, SUDO_* name the user.
(cd "$UH"/repo && env HOME=/root SUDO_USER="$U" SUDO_UID="$UID_" SUDO_GID="$GID_" \
	"$L" "${COMMON[@]}" --agent shell -- sh -c "$COMMIT") </dev/null >/dev/null 2>"$T"/e1
rc=$?
id1=$(session_id "$T"/e1)
as_user git -C "$UH"/repo rev-parse -q --verify "agentsafe/$id1" >/dev/null &&
	[ $rc = 0 ] && pass "sudo session: commit fetched back as agentsafe/$id1" ||
	fail "sudo session: rc=$rc $(tail -5 "$T"/e1)"
rootfiles=$(find "$UH" -user root | head -5)
[ -z "$rootfiles" ] && pass "sudo session: no root-owned file in the user's home" ||
	fail "root-owned files in the user's home: $rootfiles"

# 2. the next session as the user (setcap'd copy) still fetches.
(cd "$UH"/repo && as_user "$T"/bin/agentsafe-launch "${COMMON[@]}" --agent shell -- \
	sh -c "$COMMIT") </dev/null >/dev/null 2>"$T"/e2
rc=$?
id2=$(session_id "$T"/e2)
[ $rc = 0 ] && [ -n "$id2" ] &&
	as_user git -C "$UH"/repo rev-parse -q --verify "agentsafe/$id2" >/dev/null &&
	pass "user session after the sudo one: fetched as agentsafe/$id2" ||
	fail "user session: rc=$rc $(tail -5 "$T"/e2)"

# 3. a fetch that fails (the user made their refs/heads/agentsafe read-only:
#    root would write anyway, the user cannot) is exit 124, highlighted,
#    and the commit stays in the kept clone.
chmod 555 "$UH"/repo/.git/refs/heads/agentsafe
(cd "$UH"/repo && env HOME=/root SUDO_USER="$U" SUDO_UID="$UID_" SUDO_GID="$GID_" \
	"$L" "${COMMON[@]}" --agent shell -- sh -c "$COMMIT") </dev/null >/dev/null 2>"$T"/e3
rc=$?
chmod 755 "$UH"/repo/.git/refs/heads/agentsafe
id3=$(session_id "$T"/e3)
[ $rc = 124 ] && grep -q 'WARNING: .*NOT all back' "$T"/e3 &&
	grep -q "1 commit NOT fetched" "$T"/e3 &&
	! as_user git -C "$UH"/repo rev-parse -q --verify "agentsafe/$id3" >/dev/null &&
	pass "failed fetch as the user: exit 124, highlighted, not written as root" ||
	fail "failed fetch: rc=$rc $(tail -5 "$T"/e3)"
rootfiles=$(find "$UH" -user root | head -5)
[ -z "$rootfiles" ] && pass "after all sessions: no root-owned file in the user's home" ||
	fail "root-owned files in the user's home: $rootfiles"

echo "$fails failure(s)"
[ $fails = 0 ]

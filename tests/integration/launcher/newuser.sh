#!/bin/bash
# The new user's path, replayed as a fresh sudo user with a README-only repo:
# the sudo quick start (the real scripts/quickstart.sh), then sessions as
# themselves (a setcap'd copy, the docker group): the fetch works and
# nothing under their home is root's; a detached session ended with `stop`
# and one ended while attached both print the end summary; and each
# session's egress.log labels the self-check's records (hidden by default
# in `agentsafe log`) while the agent's own copies of the probe's attempts,
# made right after it, stay unlabelled and shown.
#
# What differs from `sudo scripts/quickstart.sh` on a fresh machine: the
# script runs from a copy of the tree that holds it and, at build/release,
# this build's binaries, with --no-build: apt-get, the Release build as the
# user and `cmake --install` are skipped (they need the network and minutes;
# tests/e2e/package covers the install). sudo is stood in for by its
# variables (SUDO_USER, SUDO_UID, SUDO_GID; HOME root's), and the agent
# image is the test image (--image), so nothing is pulled or built.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
BIN=${AGENTSAFE_BIN:?}
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
IMG=aslaunch-newuser:$$
T=$(mktemp -d /tmp/aslaunch-newuser.XXXXXX)
U=asnew$$
UH=$T/home
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	session_leftovers "$UH"
	docker rm -f "nu-stop-$$" "nu-att-$$" >/dev/null 2>&1
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

# A fresh user in the docker group (as the guide says) with a README repo.
chmod 755 "$T"
useradd -M -d "$UH" -G docker -s /bin/sh "$U" || { echo "FAIL: useradd"; exit 1; }
UID_=$(id -u "$U"); GID_=$(id -g "$U")
mkdir -p "$UH"/repo && chown -R "$U:$U" "$UH"
as_user() { setpriv --reuid="$U" --regid="$U" --init-groups env HOME="$UH" "$@"; }
as_user git -C "$UH"/repo init -q &&
	as_user sh -c "echo '# my project' >'$UH'/repo/README.md" &&
	as_user git -C "$UH"/repo add README.md &&
	as_user git -C "$UH"/repo -c user.name=u -c user.email=u@u.test commit -qm readme ||
	{ echo "FAIL: user repo"; exit 1; }
printf 'version: 1\nallow:\n  - allowed.test\n' >"$T"/policy.yaml
printf '127.0.0.1 allowed.test\n' >"$T"/hosts
chmod 644 "$T"/policy.yaml "$T"/hosts
# The self-check runs (no --no-verify): a direct connection to the gateway
# must be dropped, and probe-denied.test refused by the proxy.
COMMON=(--policy "$T"/policy.yaml --image "$IMG" --hosts "$T"/hosts --agent shell
	--probe-deny probe-denied.test)
COMMIT='cd /work/repo && echo $$ >>notes && git add notes && git commit -qm inside'
# The agent then does what the probe did, plus its own refused request:
# none of it may be labelled as the self-check's.
# shellcheck disable=SC2016  # the container's shell expands
MIMIC='gw=${HTTPS_PROXY#http://}; gw=${gw%:*};
curl -s -o /dev/null --noproxy "*" --connect-timeout 1 -m 1 "http://$gw:80/";
curl -s -o /dev/null -m 5 "https://probe-denied.test/";
curl -s -o /dev/null -m 5 "https://agent-denied.test/"; '"$COMMIT"
session_id() { sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$1"; }
no_root_files() { # what
	local r
	r=$(find "$UH" -user root | head -5)
	[ -z "$r" ] && pass "$1: nothing under the user's home is root's" ||
		fail "$1: root-owned files: $r"
}
# egress.log of session $1: the count of records matching jq filter $2.
nrec() { jq -c "select($2)" "$UH/.local/state/agentsafe/sessions/$1/egress.log" | wc -l; }

# --- 1. the sudo quick start, the real script -------------------------------
mkdir -p "$T"/src/scripts "$T"/src/build/release/bin
cp "$SRC"/scripts/quickstart.sh "$T"/src/scripts/
cp "$BIN"/agentsafe-launch "$BIN"/agentsafe-proxy "$T"/src/build/release/bin/
QS=("$T"/src/scripts/quickstart.sh)
if [ -x /usr/local/bin/agentsafe-launch ]; then
	# The script would run that install instead: run its last line here.
	echo "NOTE: /usr/local/bin/agentsafe-launch exists; running the quick start's exec line"
	QS=(env HOME="$UH" "$T"/src/build/release/bin/agentsafe-launch)
else
	QS+=(--no-build)
fi
(cd "$UH"/repo && env HOME=/root SUDO_USER="$U" SUDO_UID="$UID_" SUDO_GID="$GID_" \
	"${QS[@]}" "${COMMON[@]}" -- sh -c "$COMMIT") </dev/null >"$T"/o1 2>"$T"/e1
rc=$?
id1=$(session_id "$T"/e1)
[ $rc = 0 ] && [ -n "$id1" ] && grep -q "quickstart: starting a session for $U" "$T"/o1 &&
	grep -q 'self-verification passed' "$T"/e1 &&
	as_user git -C "$UH"/repo rev-parse -q --verify "agentsafe/$id1" >/dev/null &&
	pass "sudo quick start: self-check passed, the commit fetched back as agentsafe/$id1" ||
	fail "quick start: rc=$rc $(cat "$T"/o1; tail -8 "$T"/e1)"
no_root_files "after the quick start"
[ "$(nrec "$id1" '.origin=="selfcheck" and .event=="drop"')" -ge 1 ] &&
	[ "$(nrec "$id1" '.origin=="selfcheck" and .event=="deny" and .host=="probe-denied.test"')" = 1 ] &&
	pass "quick start session: the probe's drop and deny records are labelled selfcheck" ||
	fail "quick start session's labels: $(cat "$UH/.local/state/agentsafe/sessions/$id1/egress.log")"

# The user's own launcher from now on (setcap copy; the docker group).
mkdir -p "$T"/bin && cp "$BIN"/agentsafe-launch "$BIN"/agentsafe-proxy "$BIN"/agentsafe "$T"/bin/ &&
	chmod 755 "$T"/bin "$T"/bin/* && setcap cap_net_admin+p "$T"/bin/agentsafe-launch ||
	{ echo "FAIL: setcap copy"; exit 1; }
L=$T/bin/agentsafe-launch

# --- 2. a session as the user: the agent mimics the probe -------------------
(cd "$UH"/repo && as_user "$L" "${COMMON[@]}" -- sh -c "$MIMIC") </dev/null >/dev/null 2>"$T"/e2
rc=$?
id2=$(session_id "$T"/e2)
[ $rc = 0 ] && [ -n "$id2" ] &&
	as_user git -C "$UH"/repo rev-parse -q --verify "agentsafe/$id2" >/dev/null &&
	pass "user session after the quick start: fetched as agentsafe/$id2" ||
	fail "user session: rc=$rc $(tail -8 "$T"/e2)"
grep -q "ended with exit 0; 1 commit back on agentsafe/$id2.*; 2 denials, 1 drop" "$T"/e2 &&
	pass "end summary: the agent's 2 denials and 1 drop, not the self-check's" ||
	fail "end summary: $(grep 'ended' "$T"/e2)"
no_root_files "after the user's session"
gw80='.event=="drop" and .proto=="tcp" and .dport==80'
[ "$(nrec "$id2" "$gw80 and .origin==\"selfcheck\"")" -ge 1 ] &&
	[ "$(nrec "$id2" "$gw80 and (has(\"origin\")|not)")" -ge 1 ] &&
	[ "$(nrec "$id2" '.host=="probe-denied.test" and .origin=="selfcheck"')" = 1 ] &&
	[ "$(nrec "$id2" '.host=="probe-denied.test" and (has("origin")|not)')" = 1 ] &&
	[ "$(nrec "$id2" '.host=="agent-denied.test" and (has("origin")|not)')" = 1 ] &&
	[ "$(nrec "$id2" '.origin!=null and .origin!="selfcheck"')" = 0 ] &&
	pass "the probe's records labelled; the agent's copies of them and its own denial not" ||
	fail "labels: $(cat "$UH/.local/state/agentsafe/sessions/$id2/egress.log")"
as_user "$T"/bin/agentsafe log --no-pager --session "$id2" >"$T"/l2 2>&1
as_user "$T"/bin/agentsafe log --no-pager --all-origins --session "$id2" >"$T"/l2all 2>&1
hidden=$(nrec "$id2" 'has("origin")')
grep -q 'agent-denied.test:443' "$T"/l2 && grep -q 'CONNECT probe-denied.test:443' "$T"/l2 &&
	grep -q 'FW .*tcp .*:80 ' "$T"/l2 && ! grep -q 'origin=selfcheck' "$T"/l2 &&
	grep -qx "$hidden records\{0,1\} of the launcher's self-check hidden (--all-origins shows them)" "$T"/l2 &&
	[ "$(grep -c 'origin=selfcheck' "$T"/l2all)" = "$hidden" ] &&
	pass "agentsafe log: $hidden self-check records hidden and counted, the agent's shown; --all-origins shows them" ||
	fail "agentsafe log: $(cat "$T"/l2; echo ---; cat "$T"/l2all)"

# --- 3. detached, then stop: the end summary --------------------------------
(cd "$UH"/repo && as_user "$L" "${COMMON[@]}" --detach --name "nu-stop-$$" -- sh -c \
	"$COMMIT; sleep 300") </dev/null >/dev/null 2>"$T"/e3
rc=$?
[ $rc = 0 ] || fail "detach: rc=$rc $(tail -5 "$T"/e3)"
sleep 1 # the commit is made right after the start
as_user timeout 60 "$L" stop "nu-stop-$$" >"$T"/o3 2>"$T"/s3
rc=$?
[ $rc = 0 ] && grep -q "session nu-stop-$$ ([0-9a-f]*) ended .*1 commit back on agentsafe/" "$T"/s3 &&
	pass "stop: the end summary (1 commit back), exit 0" || fail "stop: rc=$rc $(cat "$T"/s3)"
grep -q "ended .*; 0 denials, 0 drops" "$T"/s3 &&
	pass "stop: a session whose agent sent nothing shows 0 denials, 0 drops" ||
	fail "stop summary counts the self-check: $(grep 'ended' "$T"/s3); unlabelled: $(
		id3=$(sed -n 's/.*(\([0-9a-f]\{12\}\)) ended.*/\1/p' "$T"/s3)
		jq -c 'select(.origin==null and (.event=="drop" or .event=="deny"))' \
			"$UH/.local/state/agentsafe/sessions/$id3/egress.log")"

# --- 4. detached, then attach until it ends: the summary and the verdict ----
# shellcheck disable=SC2016  # the container's shell expands
(cd "$UH"/repo && as_user "$L" "${COMMON[@]}" --detach --name "nu-att-$$" -- sh -c \
	'read x; cd /work/repo && echo $x >k && git add k && git commit -qm k; exit 6') \
	</dev/null >/dev/null 2>"$T"/e4
out=$(echo hello | as_user timeout 120 "$L" attach "nu-att-$$" 2>"$T"/a4)
rc=$?
[ $rc = 6 ] && grep -q "session nu-att-$$ ([0-9a-f]*) ended with exit 6; 1 commit back" "$T"/a4 &&
	pass "attach: the end summary, exit 6" || fail "attach: rc=$rc out='$out' $(cat "$T"/e4 "$T"/a4)"
no_root_files "after every session"
n=$(as_user git -C "$UH"/repo branch --list 'agentsafe/*' | wc -l)
[ "$n" = 4 ] && pass "4 sessions, 4 branches back in the user's repo" ||
	fail "branches: $(as_user git -C "$UH"/repo branch --list 'agentsafe/*')"

echo "$fails failure(s)"
[ $fails = 0 ]

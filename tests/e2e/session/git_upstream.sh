#!/usr/bin/env bash
# The git broker end to end with an upstream and an EMPTY allowlist: a real
# agentsafe-launch session (shell agent, real dockerd, the e2e image) whose
# host repo has `origin` = a bare repo on the host (the forge stand-in: the
# session reaches it only through the broker, as the user). Inside, the
# agent fetches and sees an upstream commit made after the session started,
# commits, pushes for review to agentsafe/<id>; with --push-upstream the
# upstream receives agentsafe/<id> and nothing else changes there (every
# ref compared before/after; the agent's pushes to main are refused).
# A second session's upstream refuses pushes (a pre-receive hook): the
# failure is reported at the end and the launcher exits 123, while the
# commits still come back to the host repo.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$HERE/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/bin}
L=$BIN/agentsafe-launch
# shellcheck source=images.sh
. "$HERE/images.sh"
T=$(mktemp -d /tmp/asgitup-e2e.XXXXXX)
chmod 755 "$T"
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	session_leftovers "$T/home"
	rm -rf "$T"
	e2e_dockerd_down
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root"; exit 1; }
[ -x "$L" ] || { echo "FAIL: $L missing"; exit 1; }
e2e_dockerd_up || exit 1
e2e_session_image || exit 1

export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
mkdir -p "$HOME"
printf 'version: 1\nallow: []\n' >"$T/policy.yaml"
: >"$T/hosts"
hgit() { git -c safe.directory="*" "$@"; }
hg() { hgit -c user.name=human -c user.email=human@agentsafe.test "$@"; }

# An upstream bare repo and the user's clone of it (origin = the upstream).
# $1: name; $2: "refuse" for an upstream whose pre-receive hook refuses.
mkrepo() {
	hgit init -q --bare -b main "$T/up-$1.git"
	hgit init -q -b main "$T/seed-$1"
	echo seed >"$T/seed-$1/README"
	hg -C "$T/seed-$1" add README
	hg -C "$T/seed-$1" commit -qm seed
	hgit -C "$T/seed-$1" tag v1
	hgit -C "$T/seed-$1" push -q "$T/up-$1.git" main v1
	if [ "${2:-}" = refuse ]; then
		printf '#!/bin/sh\necho "upstream: read-only" >&2\nexit 1\n' \
			>"$T/up-$1.git/hooks/pre-receive"
		chmod 755 "$T/up-$1.git/hooks/pre-receive"
	fi
	hgit clone -q "$T/up-$1.git" "$HOME/$1"
	chown -R "$UIDL:$GIDL" "$HOME" "$T/up-$1.git" "$T/seed-$1"
}

# Runs one session in $HOME/$1 (--upstream origin --push-upstream) with the
# agent script $T/agent-$1.sh; its exit status in $T/rc-$1.
session() {
	(cd "$HOME/$1" && timeout -k 20 300 env SUDO_UID="$UIDL" SUDO_GID="$GIDL" \
		AGENTSAFE_CONTAINER_DIR="$SRC/container" \
		"$L" --repo "$HOME/$1" --policy "$T/policy.yaml" --image "$IMG" "${BUILD[@]}" \
		--ca-bundle "$E2E_CACHE/extra-ca.pem" --hosts "$T/hosts" --agent shell --gpu none \
		--no-verify --upstream origin --push-upstream \
		-- bash -c "$(cat "$T/agent-$1.sh")") </dev/null >"$T/out-$1" 2>"$T/err-$1"
	echo $? >"$T/rc-$1"
}
sid_of() { sed -n 's|.*sessions/\([0-9a-f]*\)/egress.log.*|\1|p' "$T/err-$1" "$T/out-$1" | head -n1; }

# --- session 1: fetch, commit, push for review, forwarded upstream ---------
mkrepo proj
cat >"$T/agent-proj.sh" <<'SH'
set -u
cd /work/proj
echo "AGENT origin $(git remote get-url origin)"
echo "AGENT clone-has-it $(git log --all --format=%s | grep -c 'upstream after start')"
echo "AGENT ready"
seen=no
for _ in $(seq 1 80); do
	git fetch -q upstream 2>/tmp/fetch.err &&
		[ "$(git log -1 --format=%s upstream/main 2>/dev/null)" = "upstream after start" ] &&
		{ seen=yes; break; }
	sleep 0.5
done
echo "AGENT fetch-saw-upstream $seen"
git reset -q --hard upstream/main 2>/dev/null
echo agent >agent.txt && git add agent.txt &&
	git -c user.name=agent -c user.email=agent@agentsafe.test commit -qm "agent work" &&
	echo "AGENT commit $(git rev-parse HEAD)"
git push -q origin "HEAD:refs/heads/agentsafe/$AGENTSAFE_SESSION" 2>/tmp/push.err &&
	echo "AGENT push review ok" || { echo "AGENT push review failed"; sed 's/^/AGENT   /' /tmp/push.err; }
git push -q origin HEAD:refs/heads/main 2>/tmp/main.err && echo "AGENT push main ok" ||
	echo "AGENT push main refused: $(grep -o 'agentsafe: pushes go to[^;]*' /tmp/main.err | head -1)"
git push -q upstream HEAD:refs/heads/main 2>/dev/null && echo "AGENT push upstream-main ok" ||
	echo "AGENT push upstream-main refused"
git push -q --delete origin v1 2>/dev/null && echo "AGENT delete tag ok" || echo "AGENT delete tag refused"
exit 0
SH
T1=$(date +%s)
session proj &
S1=$!
# The upstream moves after the session started (its clone is made): the
# agent can only see this commit through the broker's upstream fetch.
for _ in $(seq 1 600); do grep -q '^AGENT ready' "$T/out-proj" 2>/dev/null && break; sleep 0.2; done
# As the user (the upstream is theirs; root-made object dirs would stop the
# broker's push on).
asu() { setpriv --reuid="$UIDL" --regid="$GIDL" --clear-groups "$@"; }
asu git -C "$T/seed-proj" pull -q --no-rebase "$T/up-proj.git" main
echo after | asu tee "$T/seed-proj/after.txt" >/dev/null
asu git -C "$T/seed-proj" add after.txt
asu git -C "$T/seed-proj" -c user.name=human -c user.email=human@agentsafe.test \
	commit -qm "upstream after start"
asu git -C "$T/seed-proj" push -q "$T/up-proj.git" main
hgit --git-dir "$T/up-proj.git" for-each-ref --format='%(refname) %(objectname)' | sort >"$T/refs-before"
wait "$S1"
echo "session 1: $(($(date +%s) - T1)) s"
sed -n 's/^AGENT //p' "$T/out-proj"
RC=$(cat "$T/rc-proj")
SID=$(sid_of proj)
[ "$RC" = 0 ] && pass "session 1 ran (exit 0)" || { fail "session 1: launcher exit $RC"; tail -20 "$T/err-proj"; }
grep -q '^AGENT origin http://git.agentsafe.internal/' "$T/out-proj" &&
	pass "origin inside is the broker" || fail "origin: $(grep 'AGENT origin' "$T/out-proj")"
grep -q '^AGENT clone-has-it 0' "$T/out-proj" && grep -q '^AGENT fetch-saw-upstream yes' "$T/out-proj" &&
	pass "git fetch inside saw an upstream commit made after the session started (empty allowlist)" ||
	fail "the upstream commit was not fetched: $(head -5 "$T/out-proj")"
grep -q '^AGENT push review ok' "$T/out-proj" && pass "push to agentsafe/$SID through the broker" ||
	fail "review push: $(grep AGENT "$T/out-proj")"
grep -q "^AGENT push main refused: agentsafe: pushes go to agentsafe/$SID" "$T/out-proj" &&
	pass "push to main refused with the message" || fail "main push: $(grep 'push main' "$T/out-proj")"
grep -q '^AGENT push upstream-main refused' "$T/out-proj" && grep -q '^AGENT delete tag refused' "$T/out-proj" &&
	pass "push to main via the upstream remote and a tag delete refused" ||
	fail "other pushes: $(grep AGENT "$T/out-proj")"
AC=$(sed -n 's/^AGENT commit //p' "$T/out-proj")
hgit --git-dir "$T/up-proj.git" for-each-ref --format='%(refname) %(objectname)' | sort >"$T/refs-after"
{ cat "$T/refs-before"; echo "refs/heads/agentsafe/$SID $AC"; } | sort >"$T/refs-want"
[ -n "$AC" ] && [ -n "$SID" ] && diff -u "$T/refs-want" "$T/refs-after" >"$T/refs-diff" &&
	pass "the upstream received agentsafe/$SID at the agent's commit; every other ref unchanged" ||
	fail "upstream refs: $(cat "$T/refs-diff")"
[ "$(hgit --git-dir "$T/up-proj.git" log -1 --format=%s "agentsafe/$SID~1" 2>/dev/null)" = "upstream after start" ] &&
	pass "the review branch is on top of the upstream commit" || fail "the review branch's parent"
[ "$(hgit -C "$HOME/proj" rev-parse "agentsafe/$SID" 2>/dev/null)" = "$AC" ] &&
	pass "the host repo has agentsafe/$SID" || fail "host repo lacks agentsafe/$SID"
LOG=$HOME/.local/state/agentsafe/sessions/$SID/egress.log
python3 - "$LOG" "$SID" <<'PY' && pass "egress.log: upstream_fetch, push and push_upstream records, ok" ||
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
g = [r for r in recs if r["event"] == "git"]
ops = {(r.get("op"), r.get("result")) for r in g}
assert ("upstream_fetch", "ok") in ops, ops
up = [r for r in g if r.get("op") == "push_upstream"]
assert len(up) == 1 and up[0]["result"] == "ok", up
assert up[0]["ref"] == "refs/heads/agentsafe/" + sys.argv[2], up
assert any(r.get("op") == "push" and r.get("result") != "ok" for r in g), g
PY
	fail "egress.log records: $(grep '"git"' "$LOG" | head -8)"

# --- session 2: the upstream refuses: reported, exit 123 -------------------
mkrepo ro refuse
cat >"$T/agent-ro.sh" <<'SH'
cd /work/ro
echo x >x && git add x && git -c user.name=agent -c user.email=agent@agentsafe.test commit -qm "agent ro"
git push -q origin "HEAD:refs/heads/agentsafe/$AGENTSAFE_SESSION" && echo "AGENT push review ok"
exit 0
SH
hgit --git-dir "$T/up-ro.git" for-each-ref --format='%(refname) %(objectname)' | sort >"$T/ro-before"
T2=$(date +%s)
session ro
echo "session 2: $(($(date +%s) - T2)) s"
RC=$(cat "$T/rc-ro")
SID2=$(sid_of ro)
grep -q '^AGENT push review ok' "$T/out-ro" && pass "session 2: the review push reached the broker" ||
	fail "session 2 push: $(cat "$T/out-ro")"
[ "$RC" = 123 ] && pass "a refused --push-upstream makes the launcher exit 123" ||
	{ fail "session 2: launcher exit $RC, want 123"; tail -20 "$T/err-ro"; }
grep -q -- "--push-upstream: 1 push(es) to origin failed" "$T/err-ro" &&
	grep -q "exit 123 (the command's was 0)" "$T/err-ro" &&
	pass "the failure is reported at session end" || fail "no end-of-session report: $(tail -5 "$T/err-ro")"
hgit --git-dir "$T/up-ro.git" for-each-ref --format='%(refname) %(objectname)' | sort | cmp -s - "$T/ro-before" &&
	pass "the refusing upstream is unchanged" || fail "the refusing upstream changed"
hgit -C "$HOME/ro" rev-parse -q --verify "agentsafe/$SID2" >/dev/null &&
	pass "the commits still came back to the host repo" || fail "host repo lacks agentsafe/$SID2"

echo "$fails failure(s)"
[ $fails = 0 ]

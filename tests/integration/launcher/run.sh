#!/bin/bash
# agentsafe-launch on a real Docker engine. The image is imported from a
# tarball of host binaries (sh, curl, getent, git and their libraries), so
# nothing is pulled. Every container/network/nft table this test creates is
# named after a session id the launcher prints; the trap removes leftovers.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
BIN=${AGENTSAFE_BIN:?}
: "${AGENTSAFE_SOURCE_DIR:?}"
L=$BIN/agentsafe-launch
IMG=aslaunch-it:$$
T=$(mktemp -d /tmp/aslaunch-it.XXXXXX)
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	# Only what this test made: sessions recorded under its own HOME.
	session_leftovers "$T/home"
	docker rm -f aslaunch-it-det-$$ aslaunch-it-att-$$ >/dev/null 2>&1
	docker rmi -f "$IMG" >/dev/null 2>&1
	rm -rf "$T"
	# Leave the machine as we found it: a dockerd this test started goes.
	images_sweep
	dockerd_down
}
trap cleanup EXIT
# shellcheck source=../../lib/dockerd.sh
. "$(dirname "$0")"/../../lib/dockerd.sh

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (nftables, dockerd)"; exit 1; }
[ -x "$L" ] || { echo "FAIL: $L not built"; exit 1; }
dockerd_up || exit 1
images_mark

# --- the image -----------------------------------------------------------
# shellcheck source=image.sh
. "$(dirname "$0")"/image.sh
aslaunch_image "$IMG" "$T" || exit 1

# --- a host repo, a policy, a hosts file ---------------------------------
export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
mkdir -p "$HOME" "$T"/repo
git -C "$T"/repo init -q && echo one >"$T"/repo/f &&
	git -C "$T"/repo add f &&
	git -C "$T"/repo -c user.name=t -c user.email=t@t commit -qm one
HEAD0=$(git -C "$T"/repo rev-parse HEAD)
cat >"$T"/policy.yaml <<'P'
version: 1
allow:
  - allowed.test
deny:
  - denied.test
P
# allowed.test resolves to loopback: the proxy refuses the private address
# (403), which is what the failing-probe case needs.
printf '127.0.0.1 allowed.test denied.test\n' >"$T"/hosts
COMMON=(--policy "$T"/policy.yaml --image "$IMG" --hosts "$T"/hosts)
cd "$T"/repo || exit 1

# 1. exit code, clean stdout, the probe ran, its drop was logged.
"$L" "${COMMON[@]}" --probe-deny denied.test --agent shell -- \
	sh -c 'echo out; echo err >&2; exit 3' </dev/null >"$T"/o1 2>"$T"/e1
rc=$?
[ $rc = 3 ] && pass "exit code 3 propagated" || fail "exit code $rc, want 3"
[ "$(cat "$T"/o1)" = out ] && pass "stdout holds only the command's output" ||
	fail "stdout: $(head -c 300 "$T"/o1)"
grep -q '^err$' "$T"/e1 && pass "command stderr on stderr" || fail "no err line"
grep -q 'agentsafe-launch: self-verification passed' "$T"/e1 &&
	grep -q 'ok: denied denied.test:443 refused by the proxy (403)' "$T"/e1 &&
	pass "probe passed (DNS, direct drop, 403)" || fail "probe: $(cat "$T"/e1)"
id1=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/e1)
LOG=$HOME/.local/state/agentsafe/sessions/$id1/egress.log
grep -q '"event":"drop"' "$LOG" 2>/dev/null && pass "firewall drop in egress.log" ||
	fail "no drop record in $LOG"
grep -q '"reason":"denied_by_rule"' "$LOG" && pass "proxy deny in the same egress.log" ||
	fail "no proxy deny record"
grep -q "egress log: $LOG" "$T"/e1 && pass "egress.log path printed" || fail "path not printed"

# 2. nothing left behind.
left=$(docker ps -aq --filter label=agentsafe.session="$id1")
nets=$(docker network ls -q --filter name="agentsafe-$id1")
if [ -z "$left$nets" ] && ! nft list table inet "agentsafe_$id1" >/dev/null 2>&1 &&
	! ip link show "as-$id1" >/dev/null 2>&1; then
	pass "container, network, bridge and nft table removed"
else
	fail "leftovers: containers '$left' networks '$nets'"
fi

# 3. a commit inside comes back as agentsafe/<id>; host HEAD untouched.
"$L" "${COMMON[@]}" --no-verify -- sh -c \
	'cd /work/repo && echo two >g && git add g && git commit -qm two && rm -rf /work/repo/f' \
	</dev/null >/dev/null 2>"$T"/e3
rc=$?
id3=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/e3)
if [ $rc = 0 ] && git -C "$T"/repo rev-parse -q --verify "agentsafe/$id3" >/dev/null &&
	[ "$(git -C "$T"/repo log --format=%s -1 "agentsafe/$id3")" = two ] &&
	[ "$(git -C "$T"/repo rev-parse HEAD)" = "$HEAD0" ] && [ -f "$T"/repo/f ]; then
	pass "commit inside fetched back as agentsafe/$id3, host HEAD and files intact"
else
	fail "fetch-back: rc=$rc $(tail -5 "$T"/e3)"
fi
grep -q -- '--no-verify' "$T"/e3 && pass "--no-verify announced" || fail "--no-verify silent"

# 4. a failing probe stops the session before the command runs.
"$L" "${COMMON[@]}" --probe-allow allowed.test -- sh -c 'echo RAN' \
	</dev/null >"$T"/o4 2>"$T"/e4
rc=$?
[ $rc = 125 ] && ! grep -q RAN "$T"/o4 &&
	grep -q 'self-verification failed' "$T"/e4 &&
	grep -q 'FAIL: allowed allowed.test:443 not reachable' "$T"/e4 &&
	pass "failed probe: exit 125, command never ran, reason printed" ||
	fail "failed probe: rc=$rc $(tail -5 "$T"/e4)"

# 5. SIGTERM to the launcher tears everything down.
"$L" "${COMMON[@]}" --no-verify -- sleep 60 </dev/null >/dev/null 2>"$T"/e5 &
lp=$!
for _ in $(seq 60); do grep -q 'fence agentsafe_' "$T"/e5 && break; sleep 0.5; done
id5=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/e5)
for _ in $(seq 40); do
	[ -n "$(docker ps -q --filter name="agentsafe-$id5")" ] && break; sleep 0.5
done
# SIGUSR1/SIGUSR2 (meant for the proxy, sent to the wrong pid) change nothing.
kill -USR1 $lp; kill -USR2 $lp; sleep 1
kill -0 $lp 2>/dev/null && [ -n "$(docker ps -q --filter name="agentsafe-$id5")" ] &&
	pass "SIGUSR1/SIGUSR2 to the launcher: ignored, session still running" ||
	fail "SIGUSR1/SIGUSR2 ended the launcher"
kill -TERM $lp
wait $lp
rc=$?
if [ $rc = 143 ] && [ -z "$(docker ps -aq --filter label=agentsafe.session="$id5")" ] &&
	! nft list table inet "agentsafe_$id5" >/dev/null 2>&1; then
	pass "SIGTERM: exit 143, session torn down"
else
	fail "SIGTERM: rc=$rc $(tail -3 "$T"/e5)"
fi

# 6. the container dying ends the session with its status; --gpu all fails
#    clearly without a GPU, and passes the GPU in when there is one.
"$L" "${COMMON[@]}" --no-verify -- sh -c 'kill -KILL $$' </dev/null >/dev/null 2>"$T"/e6
rc=$?
[ $rc = 137 ] && pass "killed command: exit 137" || fail "killed command: rc=$rc"
"$L" "${COMMON[@]}" --no-verify --gpu all -- ls /dev/nvidiactl </dev/null >"$T"/o7 2>"$T"/e7
rc=$?
if [ ! -e /dev/nvidiactl ]; then
	[ $rc = 125 ] && grep -q 'nvidiactl' "$T"/e7 && pass "--gpu all without a GPU: clear error" ||
		fail "--gpu all: rc=$rc $(cat "$T"/e7)"
elif [ $rc = 0 ]; then
	grep -q '^/dev/nvidiactl$' "$T"/o7 && pass "--gpu all with a GPU: the device is in the container" ||
		fail "--gpu all: exit 0 but no /dev/nvidiactl inside: $(cat "$T"/o7)"
else
	# A GPU, but an engine without the NVIDIA runtime or a CDI spec for it.
	[ $rc = 125 ] && grep -q -i 'nvidia\|cdi' "$T"/e7 &&
		pass "--gpu all with a GPU the engine cannot pass in: clear error ($(tail -n1 "$T"/e7))" ||
		fail "--gpu all with a GPU: rc=$rc $(cat "$T"/e7)"
fi

# 7. detach, ls, stop.
"$L" "${COMMON[@]}" --no-verify --detach --name aslaunch-it-det-$$ -- sleep 120 \
	</dev/null >/dev/null 2>"$T"/e8
rc=$?
if [ $rc = 0 ] && "$L" ls | grep -q "aslaunch-it-det-$$ *running" &&
	"$L" stop aslaunch-it-det-$$ 2>/dev/null &&
	[ -z "$(docker ps -aq --filter name=aslaunch-it-det-$$)" ] &&
	! "$L" ls | grep -q "aslaunch-it-det-$$"; then
	pass "--detach, ls, stop"
else
	fail "detach: rc=$rc $(tail -3 "$T"/e8)"
fi

# 8. attach feeds stdin to a detached session and returns its status.
# shellcheck disable=SC2016  # $x is the container shell's
"$L" "${COMMON[@]}" --no-verify --detach --name aslaunch-it-att-$$ -- \
	sh -c 'read x; echo got $x; exit 5' </dev/null >/dev/null 2>"$T"/e9
out=$(echo hello | timeout 60 "$L" attach aslaunch-it-att-$$ 2>/dev/null)
rc=$?
[ $rc = 5 ] && [ "$out" = "got hello" ] && pass "attach: stdin in, output and exit status 5 out" ||
	fail "attach: rc=$rc out='$out' $(tail -3 "$T"/e9)"

# 9. a --ca-bundle that is not a CA bundle: refused before anything starts,
# naming the file and line (certs/ checks it).
printf 'a comment line\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' >"$T"/notca.pem
before=$(find "$HOME"/.local/state/agentsafe/sessions -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
"$L" "${COMMON[@]}" --ca-bundle "$T"/notca.pem -- true </dev/null >/dev/null 2>"$T"/e10
rc=$?
after=$(find "$HOME"/.local/state/agentsafe/sessions -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ $rc = 125 ] && grep -q "notca.pem:2" "$T"/e10 && [ "$before" = "$after" ] &&
	pass "--ca-bundle with a private key: exit 125, FILE:LINE named, no session started" ||
	fail "--ca-bundle check: rc=$rc sessions $before->$after: $(tail -2 "$T"/e10)"

# 10. each agent's credentials reach only its own sessions.
mkdir -p "$HOME"/.claude && echo '{}' >"$HOME"/.claude.json
o_claude=$("$L" "${COMMON[@]}" --no-verify --agent claude </dev/null 2>/dev/null | tr '\n' ' ')
o_codex=$("$L" "${COMMON[@]}" --no-verify --agent codex </dev/null 2>/dev/null | tr '\n' ' ')
o_shell=$("$L" "${COMMON[@]}" --no-verify -- sh -c 'ls /run/agentsafe/seed 2>/dev/null; ls -d /home/agent/.codex 2>/dev/null; true' </dev/null 2>/dev/null | tr '\n' ' ')
[ "$o_claude" = "claude claude.json " ] && [ "$o_codex" = "/home/agent/.codex " ] && [ -z "$o_shell" ] &&
	pass "credentials: Claude seed only for claude, Codex home only for codex, none for a command" ||
	fail "credentials: claude='$o_claude' codex='$o_codex' command='$o_shell'"

# 11. the launcher killed after its proxy rotated Claude's login (which
#     retires the user's refresh token at the token host): `stop` sweeps
#     the session and saves the new pair into the user's file. The store
#     is written here as the proxy writes it (the rotation itself is
#     tests/e2e/session/claude_login.sh's).
cat >"$HOME"/.claude/.credentials.json <<'J'
{"claudeAiOauth": {"accessToken": "sk-ant-oat01-it-access-0", "refreshToken": "sk-ant-ort01-it-refresh-0", "expiresAt": 1}, "keep": 1}
J
printf 'version: 1\nallow:\n  - host: api.anthropic.test\n    inspect: true\n  - host: platform.claude.test\n    inspect: true\n' \
	>"$T"/policy-claude.yaml
printf '#!/bin/sh\nexec sleep 120\n' >"$T"/repo/claude && chmod 755 "$T"/repo/claude &&
	git -C "$T"/repo add claude && git -C "$T"/repo -c user.name=t -c user.email=t@t commit -qm claude
env AGENTSAFE_BUILTIN_CRED_TLD=test "$L" --policy "$T"/policy-claude.yaml --image "$IMG" \
	--hosts "$T"/hosts --no-verify -- /work/repo/claude </dev/null >/dev/null 2>"$T"/e11 &
lp=$!
id11=
for _ in $(seq 60); do
	id11=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/e11)
	[ -n "$id11" ] && [ -n "$(docker ps -q --filter label=agentsafe.session="$id11")" ] && break
	sleep 0.5
done
SD=$HOME/.local/state/agentsafe/sessions/$id11
if [ -n "$id11" ] && [ -f "$SD"/claude-oauth.json ] && [ -f "$SD"/claude-login.json ]; then
	printf '{"access_token": "sk-ant-oat01-it-access-1", "refresh_token": "sk-ant-ort01-it-refresh-1", "expires_in": 3600, "obtained_ms": %s}' \
		"$(($(date +%s) * 1000))" >"$SD"/claude-oauth.json
	kill -KILL $lp
	wait $lp 2>/dev/null
	"$L" stop "$id11" >/dev/null 2>"$T"/s11
	python3 - "$HOME"/.claude/.credentials.json <<'PY' &&
import json, sys, time
j = json.load(open(sys.argv[1]))
o = j["claudeAiOauth"]
assert o["accessToken"] == "sk-ant-oat01-it-access-1", o
assert o["refreshToken"] == "sk-ant-ort01-it-refresh-1", o
assert o["expiresAt"] > time.time() * 1000 and j["keep"] == 1, j
PY
		grep -q "refreshed in a session whose launcher was killed; the new tokens are saved" "$T"/s11 &&
		! ls "$SD"/claude-* >/dev/null 2>&1 &&
		[ -z "$(docker ps -aq --filter label=agentsafe.session="$id11")" ] &&
		pass "launcher killed after a rotation: \`stop\` saved the new tokens, removed the session's login files" ||
		fail "sweep of a killed Claude session: $(cat "$T"/s11; cat "$HOME"/.claude/.credentials.json; ls "$SD")"
else
	kill -KILL $lp 2>/dev/null
	fail "Claude session with the login kept on the host did not start: $(tail -5 "$T"/e11; ls "$SD" 2>&1)"
fi

echo "$fails failure(s)"
[ $fails = 0 ]

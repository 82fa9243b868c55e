#!/bin/bash
# Daily use as a new user meets it: refusals before any setup (a bad
# --name, no repo), the image build as one status line with its log, the
# history of sessions (agentsafe sessions / review / prune) made by real
# shell sessions, and attach printing the session's end. Hostile cases
# first: prune and review never act outside the state and cache dirs,
# whatever a record or an id says.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
BIN=${AGENTSAFE_BIN:?}
L=$BIN/agentsafe-launch
A=$BIN/agentsafe
IMG=aslaunch-daily:$$
T=$(mktemp -d /tmp/aslaunch-daily.XXXXXX)
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	session_leftovers "$T/home"
	docker rm -f asdaily-att-$$ >/dev/null 2>&1
	docker rmi -f "$IMG" "$IMG-bad" "$IMG-good" >/dev/null 2>&1
	rm -rf "$T"
	images_sweep
	dockerd_down
}
trap cleanup EXIT
# shellcheck source=../../lib/dockerd.sh
. "$(dirname "$0")"/../../lib/dockerd.sh

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (nftables, dockerd)"; exit 1; }
dockerd_up || exit 1
images_mark
# shellcheck source=image.sh
. "$(dirname "$0")"/image.sh
aslaunch_image "$IMG" "$T" || exit 1

export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
S=$HOME/.local/state/agentsafe/sessions
C=$HOME/.cache/agentsafe/sessions
mkdir -p "$HOME" "$T"/repo "$T"/norepo
git -C "$T"/repo init -q -b main && echo one >"$T"/repo/f && git -C "$T"/repo add f &&
	git -C "$T"/repo -c user.name=t -c user.email=t@t.test commit -qm one
printf 'version: 1\nallow:\n  - allowed.test\n' >"$T"/policy.yaml
printf '127.0.0.1 allowed.test\n' >"$T"/hosts
COMMON=(--policy "$T"/policy.yaml --image "$IMG" --hosts "$T"/hosts --no-verify --agent shell)
nsessions() { find "$S" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# --- 1. refusals before any setup ------------------------------------------
for bad in a _x -x .x 'x y' 'x/../y' 'caf'$'\xc3\xa9'; do
	before=$(nsessions)
	(cd "$T"/repo && "$L" "${COMMON[@]}" --name "$bad" -- sh -c :) </dev/null >/dev/null 2>"$T"/e
	rc=$?
	[ $rc = 125 ] && grep -q 'letter or digit first' "$T"/e && [ "$(nsessions)" = "$before" ] ||
		fail "--name '$bad': rc=$rc $(cat "$T"/e)"
done
pass "bad --name values: exit 125 at parse time, nothing started"
(cd "$T"/norepo && "$L" "${COMMON[@]}" -- sh -c :) </dev/null >/dev/null 2>"$T"/e
rc=$?
[ $rc = 125 ] && grep -q "norepo is not in a git repo.*--no-repo" "$T"/e && [ "$(nsessions)" = 0 ] &&
	pass "outside a git repo: refused (exit 125), --no-repo named" || fail "no repo: rc=$rc $(cat "$T"/e)"
(cd "$T"/norepo && "$L" "${COMMON[@]}" --no-repo -- sh -c :) </dev/null >/dev/null 2>"$T"/e
rc=$?
[ $rc = 0 ] && pass "--no-repo: the session runs" || fail "--no-repo: rc=$rc $(tail -3 "$T"/e)"

# --- 2. the image build: one status line, the whole output in a log -------
mkdir -p "$T"/ctx-bad "$T"/ctx-good
# shellcheck disable=SC2016  # the build's shell expands
printf 'FROM %s\nRUN printf "\\033[31mred-marker\\033[0m\\n"; echo bad-$((1+1))-marker; exit 3\n' "$IMG" \
	>"$T"/ctx-bad/Dockerfile
# shellcheck disable=SC2016
printf 'FROM %s\nRUN echo good-$((1+1))-marker\n' "$IMG" >"$T"/ctx-good/Dockerfile
BLOG=$HOME/.local/state/agentsafe/build.log
(cd "$T"/repo && "$L" "${COMMON[@]/$IMG/$IMG-bad}" --build --container-dir "$T"/ctx-bad -- sh -c :) \
	</dev/null >/dev/null 2>"$T"/eb
rc=$?
[ $rc = 125 ] && grep -q 'the end of the build log' "$T"/eb && grep -q '^bad-2-marker' "$T"/eb &&
	grep -q "full build log: $BLOG" "$T"/eb && ! grep -q $'\033' "$T"/eb &&
	grep -q 'red-marker' "$BLOG" && ! grep -q $'\033' "$BLOG" &&
	pass "failed build: exit 125, the log's end shown, log kept, no escape codes" ||
	fail "failed build: rc=$rc $(cat -v "$T"/eb | tail -8)"
(cd "$T"/repo && "$L" "${COMMON[@]/$IMG/$IMG-good}" --build --container-dir "$T"/ctx-good -- sh -c :) \
	</dev/null >/dev/null 2>"$T"/eg
rc=$?
[ $rc = 0 ] && ! grep -q 'good-2-marker' "$T"/eg && grep -q 'building .*: Step 2/' "$T"/eg &&
	grep -q 'good-2-marker' "$BLOG" && pass "build: step lines only on stderr, the output in build.log" ||
	fail "build: rc=$rc $(tail -5 "$T"/eg)"
# A new step: the layer cache would skip the RUN.
# shellcheck disable=SC2016
mkdir -p "$T"/ctx-v && printf 'FROM %s\nRUN echo verbose-$((2+2))-marker\n' "$IMG" >"$T"/ctx-v/Dockerfile
(cd "$T"/repo && "$L" "${COMMON[@]/$IMG/$IMG-good}" -v --build --container-dir "$T"/ctx-v -- sh -c :) \
	</dev/null >/dev/null 2>"$T"/ev
grep -q '^verbose-4-marker' "$T"/ev && pass "-v: the build's every line on stderr" || fail "-v: $(tail -5 "$T"/ev)"

# --- 3. history made by real sessions --------------------------------------
# shellcheck disable=SC2016  # the container's shell expands
(cd "$T"/repo && "$L" "${COMMON[@]}" -- sh -c \
	'cd /work/repo && echo two >g && git add g && git commit -qm "$(printf "two\033[2Jcleared")" && exit 4') \
	</dev/null >/dev/null 2>"$T"/s1
rc1=$?
id1=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/s1)
grep -q "session agentsafe-$id1 ($id1) ended with exit 4; 1 commit back on agentsafe/$id1" "$T"/s1 &&
	[ $rc1 = 4 ] && pass "end summary at the session's end" || fail "end summary: rc=$rc1 $(tail -4 "$T"/s1)"
(cd "$T"/repo && "$L" "${COMMON[@]}" -- sh -c 'cd /work/repo && echo three >h && git add h && git commit -qm three') \
	</dev/null >/dev/null 2>"$T"/s2
id2=$(sed -n 's/.*session \([0-9a-f]\{12\}\) starting.*/\1/p' "$T"/s2)
"$A" sessions >"$T"/ls
grep -q "^$id1 .* command .* 4 .* 1 .*$T/repo" "$T"/ls && grep -q "^$id2 .* command .* 0 .* 1 " "$T"/ls &&
	[ "$(sed -n 2p "$T"/ls | cut -c1-12)" = "$id2" ] &&
	pass "agentsafe sessions: both, newest first, exit codes and commits" || fail "sessions: $(cat "$T"/ls)"
"$A" review "$id1" >"$T"/rv 2>&1
grep -q 'two\\x1b\[2Jcleared' "$T"/rv && ! grep -q $'\033' "$T"/rv && grep -q ' g | 1 +' "$T"/rv &&
	grep -q 'egress:' "$T"/rv && pass "review: log and diffstat, the agent's escape codes escaped" ||
	fail "review: $(cat -v "$T"/rv)"
"$A" review "$id2" --merge >"$T"/rm 2>&1 && [ -f "$T"/repo/h ] &&
	! git -C "$T"/repo rev-parse -q --verify "agentsafe/$id2" >/dev/null &&
	pass "review --merge: merged into main, branch gone" || fail "--merge: $(cat "$T"/rm)"
"$A" review "$id1" --discard >"$T"/rd 2>&1 && [ ! -f "$T"/repo/g ] &&
	! git -C "$T"/repo rev-parse -q --verify "agentsafe/$id1" >/dev/null &&
	pass "review --discard: branch gone, main untouched" || fail "--discard: $(cat "$T"/rd)"
"$A" review ../../etc >/dev/null 2>&1 && fail "review ../../etc found something" ||
	pass "review ../../etc: no such session"

# --- 4. prune: only the state and cache dirs, whatever records say ---------
mkdir -p "$T"/victim/.git && echo keep >"$T"/victim/precious
old=2020-01-01T00:00:00.000Z
mk() { # id clone-path host-path
	mkdir -p "$S/$1"
	printf '{"id":"%s","name":"x","finished":true,"started":"%s","exit_code":0,"egress_log":"%s","repos":[{"name":"r","host":"%s","clone":"%s","branch":"agentsafe/%s","base":"00","commits":0,"fetched":false}]}\n' \
		"$1" "$old" "$T/victim/precious" "$3" "$2" "$1" >"$S/$1/session.json"
}
mk aaaaaaaaaaaa "$T/victim" "$T/victim"
mk bbbbbbbbbbbb "$T/victim/.git" "$T/victim/.git"
mkdir -p "$C"
ln -s "$T/victim" "$C/aaaaaaaaaaaa"          # a clones dir that is a symlink
ln -s "$T/victim" "$S/cccccccccccc"          # a state dir that is a symlink
"$A" prune --dry-run >"$T"/pd 2>&1
[ -d "$S/aaaaaaaaaaaa" ] && grep -q "would remove state $S/aaaaaaaaaaaa" "$T"/pd &&
	pass "prune --dry-run: lists, removes nothing" || fail "dry run: $(cat "$T"/pd)"
"$A" prune --older-than 1d >"$T"/pr 2>&1
[ -f "$T"/victim/precious ] && [ -d "$T"/victim/.git ] && [ ! -e "$S/aaaaaaaaaaaa" ] &&
	[ ! -e "$S/bbbbbbbbbbbb" ] && [ -d "$S/$id2" ] &&
	pass "prune: old records gone; paths the records name untouched; today's kept" ||
	fail "prune: $(cat "$T"/pr; ls -la "$T"/victim "$S")"
[ -L "$C/aaaaaaaaaaaa" ] || [ -f "$T"/victim/precious ] &&
	pass "prune: a symlinked clones dir is not followed" || fail "prune followed a symlink"

# --- 5. attach prints the session's end and carries its verdict ------------
# shellcheck disable=SC2016  # the container's shell expands
(cd "$T"/repo && "$L" "${COMMON[@]}" --detach --name asdaily-att-$$ -- sh -c \
	'read x; cd /work/repo && echo $x >k && git add k && git commit -qm k; exit 6') \
	</dev/null >/dev/null 2>"$T"/ed
out=$(echo hello | timeout 120 "$L" attach asdaily-att-$$ 2>"$T"/ea)
rc=$?
[ $rc = 6 ] && grep -q "session asdaily-att-$$ ([0-9a-f]*) ended with exit 6; 1 commit back" "$T"/ea &&
	pass "attach: the end summary, exit 6" || fail "attach: rc=$rc out='$out' $(cat "$T"/ea)"

echo "$fails failure(s)"
[ $fails = 0 ]

#!/usr/bin/env bash
# `agentsafe sessions` shows each session's credential_misuse refusals: the
# count the launcher recorded at the end (session.json), or for a session
# whose record has none, the count from its egress.log (the agent's deny
# records with that reason; the self-check's do not count). Bold red on a
# terminal when not 0, plain otherwise.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
BIN=${AGENTSAFE_BIN:?}
T=$(mktemp -d /tmp/as-sessmis.XXXXXX)
trap 'rm -rf "$T"' EXIT
export XDG_STATE_HOME=$T/state
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
D=$XDG_STATE_HOME/agentsafe/sessions
A=aaaaaaaaaaa1
B=bbbbbbbbbbb2
C=ccccccccccc3
mkdir -p "$D/$A" "$D/$B" "$D/$C"
deny() { # id reason [extra json]
	printf '{"ts":"2026-12-01T10:00:00.000Z","session":"s","id":"%s","event":"deny","client":"172.18.0.2","host":"o.test","port":443,"reason":"%s"%s}\n' "$1" "$2" "${3:-}"
}
{ deny 1 credential_misuse; deny 2 not_allowed; deny 3 credential_misuse ',"origin":"selfcheck"'; } >"$D/$B/egress.log"
: >"$D/$C/egress.log"
rec() { # id started misuse-json
	printf '{"id":"%s","name":"agentsafe-%s","pid":1,"finished":true,"agent":"shell","started":"%s","exit_code":0,"denials":1,"drops":0%s,"egress_log":"%s","repos":[]}\n' \
		"$1" "$1" "$2" "$3" "$D/$1/egress.log"
}
rec "$A" 2026-12-01T10:00:00.000Z ',"credential_misuse":3' >"$D/$A/session.json"
rec "$B" 2026-12-01T09:00:00.000Z '' >"$D/$B/session.json"
rec "$C" 2026-12-01T08:00:00.000Z ',"credential_misuse":0' >"$D/$C/session.json"
"$BIN/agentsafe" sessions >"$T/out" 2>"$T/err" || fail "sessions exit $?: $(cat "$T/err")"
head -1 "$T/out" | grep -q " DROPS MISUSE  REPO$" && pass "a MISUSE column" || fail "header: $(head -1 "$T/out")"
col() { awk -v id="$1" '$1 == id { print $8 }' "$T/out"; }
[ "$(col $A)" = 3 ] && pass "the recorded count" || fail "recorded: $(grep $A "$T/out")"
[ "$(col $B)" = 1 ] && pass "counted from egress.log, the self-check's not" || fail "from the log: $(grep $B "$T/out")"
[ "$(col $C)" = 0 ] && pass "none" || fail "none: $(grep $C "$T/out")"
grep -q $'\033' "$T/out" && fail "escape codes without a terminal" || pass "plain when not a terminal"
if command -v script >/dev/null; then
	script -qec "$BIN/agentsafe sessions" /dev/null >"$T/tty" 2>&1
	grep -q $'\033\[1;31m *3\033\[0m' "$T/tty" && ! grep "$C" "$T/tty" | grep -q $'\033' &&
		pass "highlighted on a terminal when not 0" || fail "terminal: $(cat -v "$T/tty")"
fi
echo "$fails failure(s)"
[ $fails = 0 ]

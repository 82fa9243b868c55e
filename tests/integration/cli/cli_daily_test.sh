#!/usr/bin/env bash
# Daily use of `agentsafe`: --version on every binary, one-line typo
# suggestions, the user's policy as default with -f to override, policy
# edit refusing a broken file (visudo-style), and log tables that fit
# $COLUMNS with an ellipsis while --json is never cut.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
A=$BIN/agentsafe
T=$(mktemp -d /tmp/agentsafe-cli-daily.XXXXXX)
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME=$T/config HOME=$T/home
mkdir -p "$HOME"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { # EXPECTED_RC CMD... ; stdout in $T/out, stderr in $T/err
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || { fail "'$*' exited $rc, want $want"; sed 's/^/  /' "$T/out" "$T/err"; }
}
has() { grep -qF -- "$2" "$1" || { fail "$(basename "$1") lacks '$2'"; sed 's/^/  /' "$1"; }; }
lines() { [ "$(wc -l <"$1")" = "$2" ] || { fail "$(basename "$1") has $(wc -l <"$1") lines, want $2"; sed 's/^/  /' "$1"; }; }

# 1. --version on every binary
run 0 "$A" --version
grep -qE '^agentsafe [0-9]+\.[0-9]+\.[0-9]+' "$T/out" || fail "agentsafe --version: $(cat "$T/out")"
run 0 "$BIN/agentsafe-proxy" --version
grep -qE '^agentsafe-proxy [0-9]+\.[0-9]+\.[0-9]+' "$T/out" || fail "agentsafe-proxy --version: $(cat "$T/out")"

# 2. typos: one line with the closest command or option, and a hint
run 2 "$A" lgo
has "$T/err" "agentsafe: unknown command 'lgo'; did you mean 'log'?"
lines "$T/err" 2
run 2 "$A" policy expalin
has "$T/err" "did you mean 'explain'?"
run 2 "$A" log --sumary
has "$T/err" "agentsafe log: unknown option '--sumary'; did you mean '--summary'?"
lines "$T/err" 2
run 2 "$A" log --since
has "$T/err" "option '--since' needs a value"
run 2 "$A" log suggest --wildcrads
has "$T/err" "did you mean '--wildcards'?"
run 2 "$A" log --summary=yes
has "$T/err" "option '--summary=yes' takes no value"
run 2 "$A" frobnicate
has "$T/err" "agentsafe: unknown command 'frobnicate'"
grep -q "did you mean" "$T/err" && fail "a suggestion for a word nothing like a command"
# a hostile word is escaped, not sent raw to the terminal
run 2 "$A" $'l\033[2Jg'
grep -q $'\033' "$T/err" && fail "an escape byte from argv reached stderr raw"

# 3. the default policy, and -f / the old positional form
run 2 "$A" policy check
has "$T/err" "you have no policy yet ($XDG_CONFIG_HOME/agentsafe/policy.yaml)"
mkdir -p "$XDG_CONFIG_HOME/agentsafe"
printf 'version: 1\nallow:\n  - api.pkg.test\n' >"$XDG_CONFIG_HOME/agentsafe/policy.yaml"
printf 'version: 1\nallow:\n  - other.pkg.test\n  - more.pkg.test\n' >"$T/other.yaml"
run 0 "$A" policy check
has "$T/out" "$XDG_CONFIG_HOME/agentsafe/policy.yaml: ok (1 rules)"
run 0 "$A" policy check -f "$T/other.yaml"
has "$T/out" "$T/other.yaml: ok (2 rules)"
run 0 "$A" policy check "$T/other.yaml"
run 0 "$A" policy explain api.pkg.test
run 3 "$A" policy explain other.pkg.test
run 0 "$A" policy explain -f "$T/other.yaml" other.pkg.test
run 0 "$A" policy explain "$T/other.yaml" other.pkg.test
run 0 "$A" policy explain --record '{"event":"deny","host":"api.pkg.test","port":443,"reason":"not_allowed"}'
has "$T/out" "change:  yes - was denied, now allowed"
run 2 "$A" policy explain "$T/other.yaml"
run 2 "$A" policy check --flie x
has "$T/err" "did you mean '--file'?"

# 4. policy edit: a broken edit is refused and offered again; the policy
# in place is untouched until an edit loads.
POL=$XDG_CONFIG_HOME/agentsafe/policy.yaml
cp "$POL" "$T/before"
cat >"$T/editor.sh" <<'SH'
#!/bin/sh
# First call writes a typo, the second a good policy.
n=$(cat "$EDIT_COUNT" 2>/dev/null || echo 0); n=$((n + 1)); echo $n >"$EDIT_COUNT"
cp "$1" "$EDIT_SEEN.$n"
if [ $n = 1 ]; then printf 'version: 1\nalow:\n  - x.pkg.test\n' >"$1"
else printf 'version: 1\nallow:\n  - api.pkg.test\n  - new.pkg.test\n' >"$1"; fi
SH
chmod +x "$T/editor.sh"
export EDIT_COUNT=$T/count EDIT_SEEN=$T/seen
rc=0; printf 'e\n' | EDITOR=$T/editor.sh VISUAL='' "$A" policy edit >"$T/out" 2>"$T/err" || rc=$?
[ $rc = 0 ] || { fail "policy edit (typo, then fixed) exited $rc"; cat "$T/err"; }
has "$T/err" "unknown key 'alow'"
has "$T/err" "What now?"
has "$T/out" "$POL: ok (2 rules), installed"
[ "$(cat "$T/count")" = 2 ] || fail "the editor ran $(cat "$T/count") times, want 2"
cmp -s "$T/seen.1" "$T/before" || fail "the editor did not start from the current policy"
grep -q new.pkg.test "$POL" || fail "the fixed edit was not installed"
for f in "$XDG_CONFIG_HOME"/agentsafe/*edit-*; do [ -e "$f" ] && fail "a temporary copy was left behind: $f"; done
# a broken edit, then no answer: nothing installed, exit 1
cp "$POL" "$T/before2"; rm -f "$T/count"
rc=0; EDITOR=$T/editor.sh "$A" policy edit </dev/null >"$T/out" 2>"$T/err" || rc=$?
[ $rc = 1 ] || fail "policy edit (typo, no answer) exited $rc, want 1"
cmp -s "$POL" "$T/before2" || fail "a broken edit replaced the policy"
# VISUAL wins over EDITOR; an editor failing leaves the policy alone
rc=0; VISUAL=false EDITOR=$T/editor.sh "$A" policy edit </dev/null >"$T/out" 2>"$T/err" || rc=$?
[ $rc = 1 ] || fail "policy edit with a failing VISUAL exited $rc, want 1"
cmp -s "$POL" "$T/before2" || fail "a failed editor changed the policy"
# no policy yet: starts from the installed example
rm -rf "$XDG_CONFIG_HOME"; rm -f "$T/count"
rc=0; EDITOR=$T/editor.sh "$A" policy edit </dev/null >"$T/out" 2>"$T/err" || rc=$?
grep -q '^version: 1' "$T/seen.1" || fail "a first edit did not start from the example"

# 5. tables fit $COLUMNS (not a terminal here); --json is never cut
LONG=very-long-subdomain-name-that-goes-on-and-on.and-on-and-on.pkg.test
cat >"$T/egress.log" <<JSON
{"ts":"2026-11-25T02:47:57.123Z","session":"s1","id":"c1","event":"deny","client":"172.30.0.2:40000","method":"CONNECT","host":"$LONG","port":443,"reason":"not_allowed","message":"no allow rule matches this host"}
{"ts":"2026-11-25T02:47:58.000Z","session":"s1","id":"c2","event":"open","client":"172.30.0.2:40001","method":"CONNECT","host":"api.pkg.test","port":443,"ip":"10.9.0.1","rule":"policy.yaml:3"}
JSON
COLUMNS=80 "$A" log --no-pager "$T/egress.log" >"$T/out" 2>"$T/err" || fail "log listing failed: $(cat "$T/err")"
# widest LINES...: the longest line in characters (a UTF-8 ellipsis is one)
widest() { python3 -c 'import sys; print(max(len(l.rstrip("\n")) for l in open(sys.argv[1], encoding="utf-8")))' "$1"; }
[ "$(widest "$T/out")" -le 80 ] || { fail "a listing line is wider than COLUMNS=80"; cat "$T/out"; }
has "$T/out" "…"
COLUMNS=80 "$A" log --summary "$T/egress.log" >"$T/out" 2>&1
sed '/^$/,$d' "$T/out" >"$T/table" # the table; the Total sentence is prose
[ "$(widest "$T/table")" -le 80 ] || { fail "a summary row is wider than 80"; cat "$T/out"; }
has "$T/table" "very-long-subdo…"
has "$T/out" "Total: 2 records"
COLUMNS=80 "$A" log --json "$T/egress.log" >"$T/out"
has "$T/out" "$LONG"
grep -q "…" "$T/out" && fail "--json output was cut"
# not a terminal and no COLUMNS: nothing is cut
env -u COLUMNS "$A" log --no-pager "$T/egress.log" >"$T/out"
has "$T/out" "$LONG"

[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "cli daily use: all checks passed"

#!/usr/bin/env bash
# `agentsafe policy check|explain` as a user runs it: exact error line and
# exit 1 on a typo'd policy, the deciding rule with file:line from explain,
# exit codes 0/1/2/3, [v6]:port targets and --record with an egress.log line.
set -euo pipefail
BIN="${AGENTSAFE_BIN:?AGENTSAFE_BIN not set}/agentsafe"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
T=$(mktemp -d /tmp/agentsafe-policy-cli.XXXXXX)
# No user policy here: without FILE, check/explain fall back to it.
export XDG_CONFIG_HOME="$T/config"
trap 'rm -rf "$T"' EXIT
fails=0

# run EXPECTED_RC CMD... ; leaves stdout in $T/out and stderr in $T/err
run() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: '$*' exited $rc, want $want"
		sed 's/^/  out: /' "$T/out"; sed 's/^/  err: /' "$T/err"
		fails=$((fails + 1))
	fi
}
expect_file() { # FILE EXACT-CONTENT
	if [ "$(cat "$1")" != "$2" ]; then
		echo "FAIL: $(basename "$1") is:"; sed 's/^/  /' "$1"
		echo "  want: $2"
		fails=$((fails + 1))
	fi
}
expect_grep() { # FILE FIXED-STRING
	if ! grep -qF -- "$2" "$1"; then
		echo "FAIL: $(basename "$1") lacks '$2':"; sed 's/^/  /' "$1"
		fails=$((fails + 1))
	fi
}

cat >"$T/policy.yaml" <<'YAML'
version: 1
allow:
  - github.com
  - "*.githubusercontent.com"
  - host: ssh.code.test
    ports: [22]
    tls: false
  - host: "2001:db8::/32"
    ports: [8443]
deny:
  - gist.github.com
limits:
  idle_timout: 10m
YAML
# 1. a typo: exact FILE:LINE:COL message on stderr, nothing on stdout, exit 1
run 1 "$BIN" policy check "$T/policy.yaml"
expect_file "$T/err" "$T/policy.yaml:13:3: unknown key 'idle_timout' in limits (expected max_connections, header_timeout, connect_timeout, idle_timeout)"
expect_file "$T/out" ""
run 1 "$BIN" policy explain "$T/policy.yaml" github.com
expect_grep "$T/err" "$T/policy.yaml:13:3: unknown key 'idle_timout'"

# 2. fixed: ok with the rule count
sed -i 's/idle_timout/idle_timeout/' "$T/policy.yaml"
run 0 "$BIN" policy check "$T/policy.yaml"
expect_file "$T/out" "$T/policy.yaml: ok (5 rules)"

# 3. explain names the rule and its line
run 0 "$BIN" policy explain "$T/policy.yaml" github.com
expect_grep "$T/out" "verdict: ALLOW"
expect_grep "$T/out" "rule:    allow github.com ($T/policy.yaml:3)"
expect_grep "$T/out" "tls:     required"
run 0 "$BIN" policy explain "$T/policy.yaml" raw.githubusercontent.com:443
expect_grep "$T/out" "*.githubusercontent.com ($T/policy.yaml:4)"
run 3 "$BIN" policy explain "$T/policy.yaml" gist.github.com
expect_grep "$T/out" "reason:  denied_by_rule"
expect_grep "$T/out" "rule:    deny gist.github.com ($T/policy.yaml:11)"
run 3 "$BIN" policy explain "$T/policy.yaml" github.com:22
expect_grep "$T/out" "reason:  port_not_allowed"
run 0 "$BIN" policy explain "$T/policy.yaml" ssh.code.test:22
expect_grep "$T/out" "not required (rule says tls: false)"
run 3 "$BIN" policy explain "$T/policy.yaml" 'github.com@evil.test'
expect_grep "$T/out" "reason:  bad_host"
run 3 "$BIN" policy explain "$T/policy.yaml" evil.test
expect_grep "$T/out" "reason:  not_allowed"
run 0 "$BIN" policy explain "$T/policy.yaml" '[2001:db8::5]:8443'
expect_grep "$T/out" "rule:    allow 2001:db8::/32 ($T/policy.yaml:8)"
run 3 "$BIN" policy explain "$T/policy.yaml" '[2001:db8::5]'
expect_grep "$T/out" "reason:  port_not_allowed"
run 3 "$BIN" policy explain "$T/policy.yaml" 10.0.0.1
expect_grep "$T/out" "reason:  ip_literal"

# 4. usage errors exit 2
run 2 "$BIN" policy explain "$T/policy.yaml" github.com:0
run 2 "$BIN" policy explain "$T/policy.yaml" github.com:70000
run 2 "$BIN" policy explain "$T/policy.yaml" '[::1'
run 2 "$BIN" policy explain "$T/policy.yaml"
run 2 "$BIN" policy explain "$T/policy.yaml" --record
run 2 "$BIN" policy check
run 2 "$BIN" policy frobnicate
run 1 "$BIN" policy check "$T/missing.yaml"
expect_file "$T/err" "$T/missing.yaml:1:1: cannot open: No such file or directory"
run 0 "$BIN" policy check --help
expect_grep "$T/out" "usage: agentsafe policy check FILE"
run 0 "$BIN" policy explain --help
expect_grep "$T/out" "--record"

# 5. --record: a past denial that the policy now allows, and one unchanged
run 0 "$BIN" policy explain "$T/policy.yaml" --record \
	'{"ts":"2026-01-01T00:00:00.000Z","session":"s","id":1,"event":"deny","client":"10.0.0.2:5000","host":"github.com","port":443,"reason":"not_allowed"}'
expect_grep "$T/out" "change:  yes - was denied, now allowed"
echo '{"event":"deny","host":"gist.github.com","port":443,"reason":"denied_by_rule"}' >"$T/rec"
run 3 "$BIN" policy explain "$T/policy.yaml" --record - <"$T/rec"
expect_grep "$T/out" "change:  no - still denied"
expect_grep "$T/out" "gist.github.com ($T/policy.yaml:11)"
run 3 "$BIN" policy explain "$T/policy.yaml" --record '{"event":"open","sni":"evil.test","port":443}'
expect_grep "$T/out" "change:  yes - was allowed, now denied"
run 3 "$BIN" policy explain "$T/policy.yaml" --record '{"event":"deny","host":"github.com","port":443,"ip":"10.0.0.5","reason":"private_address"}'
expect_grep "$T/out" "address: 10.0.0.5 -> DENY (private_address)"
expect_grep "$T/out" "change:  no - still denied"
run 0 "$BIN" policy explain "$T/policy.yaml" --record '{"event":"deny","host":"github.com","port":443,"reason":"no_sni"}'
expect_grep "$T/out" "change:  no - the policy still allows it; it was refused for no_sni"
run 2 "$BIN" policy explain "$T/policy.yaml" --record 'not json'
run 2 "$BIN" policy explain "$T/policy.yaml" --record '{"event":"deny"}'

# 6. the shipped example policy is valid
run 0 "$BIN" policy check "${AGENTSAFE_SOURCE_DIR:?}/examples/policy.yaml"
expect_grep "$T/out" "examples/policy.yaml: ok ("
# ... and so is every commented-out alternative it offers, once uncommented
sed -E 's/^  # (- (host: )?["a-z0-9*]|  (ports|tls):)/  \1/' \
	"$AGENTSAFE_SOURCE_DIR/examples/policy.yaml" >"$T/example-all.yaml"
if cmp -s "$AGENTSAFE_SOURCE_DIR/examples/policy.yaml" "$T/example-all.yaml"; then
	echo "FAIL: found no commented-out rules in the example to uncomment"
	fails=$((fails + 1))
fi
run 0 "$BIN" policy check "$T/example-all.yaml"

# 7. request rules of an inspected host: explain --method down to the
# http: entry's file:line
cat >"$T/inspect.yaml" <<'EOF'
version: 1
allow:
  - host: api.github.test
    inspect: true
    http:
      - methods: [GET]
        paths: ["/repos/**"]
      - methods: [POST]
        paths: ["/repos/me/*/pulls"]
  - plain.test
EOF
run 3 "$BIN" policy explain "$T/inspect.yaml" https://api.github.test/repos/a/b/pulls --method POST
expect_grep "$T/out" "http:    DENY path_not_allowed"
run 0 "$BIN" policy explain -f "$T/inspect.yaml" --method POST https://api.github.test/repos/me/b/pulls
expect_grep "$T/out" "ALLOW by POST /repos/me/"
expect_grep "$T/out" "/pulls ($T/inspect.yaml:8)"
run 3 "$BIN" policy explain "$T/inspect.yaml" --method DELETE https://api.github.test/repos/a
expect_grep "$T/out" "http:    DENY method_not_allowed"
run 0 "$BIN" policy explain "$T/inspect.yaml" https://plain.test/x
expect_grep "$T/out" "inspect: no"
run 2 "$BIN" policy explain "$T/inspect.yaml" --method get https://plain.test/x
run 2 "$BIN" policy explain "$T/inspect.yaml" --method GET plain.test
# websocket: true shows for the deciding entry only
cat >"$T/ws.yaml" <<'EOF'
version: 1
allow:
  - host: chat.test
    inspect: true
    http:
      - methods: [GET]
        paths: ["/ws/**"]
        websocket: true
      - methods: [GET]
        paths: ["/**"]
EOF
run 0 "$BIN" policy explain "$T/ws.yaml" https://chat.test/ws/room
expect_grep "$T/out" "websocket: yes"
run 0 "$BIN" policy explain "$T/ws.yaml" https://chat.test/wsx
expect_grep "$T/out" "websocket: no"

if [ "$fails" != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "policy CLI: all checks passed"

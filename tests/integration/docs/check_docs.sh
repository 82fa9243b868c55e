#!/usr/bin/env bash
# Docs agree with the binaries: every long option a command's --help lists
# is in its man page and every option a man page documents is in --help;
# each page renders without groff warnings; the policy.yaml(5) example is a
# policy the real loader accepts.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}; SRC=${AGENTSAFE_SOURCE_DIR:?}
MAN=$SRC/docs/man
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
status=0
bad() { echo "docs: $*" >&2; status=1; }

opts_help() { grep -oE -- '--[a-z][a-z0-9-]+' | sort -u; }
opts_man() { grep -oE -- '\\-\\-[a-z][a-z0-9\\-]+' | sed 's/\\-/-/g' | sort -u; }

check() { # man page, then commands whose --help together make the interface
  local page=$1; shift
  [ -f "$MAN/$page" ] || { bad "$page missing"; return; }
  : > "$W/help"
  for cmd in "$@"; do
    # shellcheck disable=SC2086
    $cmd --help >> "$W/help" 2>&1 || true
  done
  [ -s "$W/help" ] || { bad "no --help output from: $*"; return; }
  opts_help < "$W/help" > "$W/h"
  opts_man < "$MAN/$page" > "$W/m"
  local missing extra
  missing=$(comm -23 "$W/h" "$W/m" | tr '\n' ' ')
  extra=$(comm -13 "$W/h" "$W/m" | grep -vx -- '--help' | tr '\n' ' ' || true)
  [ -z "$missing" ] || bad "$page does not document: $missing"
  [ -z "$extra" ] || bad "$page documents options --help does not list: $extra"
  local warn
  warn=$(MANWIDTH=80 man --warnings -l "$MAN/$page" 2>&1 >/dev/null || true)
  [ -z "$warn" ] || bad "$page renders with warnings: $warn"
  echo "docs: $page matches --help of: $* ($(wc -l < "$W/h") options)"
}

command -v man >/dev/null || { echo "docs: man (man-db) is not installed" >&2; exit 1; }
for b in agentsafe agentsafe-proxy; do
  [ -x "$BIN/$b" ] || { echo "docs: $BIN/$b missing" >&2; exit 1; }
done
check agentsafe.1 "$BIN/agentsafe" "$BIN/agentsafe policy" "$BIN/agentsafe policy edit" "$BIN/agentsafe log" \
  "$BIN/agentsafe log suggest" "$BIN/agentsafe policy replay" "$BIN/agentsafe doctor" "$BIN/agentsafe sessions" "$BIN/agentsafe review" \
  "$BIN/agentsafe prune" "$BIN/agentsafe approve"
check agentsafe-proxy.8 "$BIN/agentsafe-proxy"
if [ -x "$BIN/agentsafe-launch" ]; then
  check agentsafe-launch.1 "$BIN/agentsafe-launch"
fi

# The policy.yaml(5) example loads as written.
awk '/^\.SH FORMAT/{f=1;next} f&&/^\.nf/{p=1;next} p&&/^\.fi/{exit} p' "$MAN/policy.yaml.5" \
  | sed 's/\\-/-/g' > "$W/policy.yaml"
grep -q '^version: 1' "$W/policy.yaml" || bad "no example found in policy.yaml.5"
"$BIN/agentsafe" policy check "$W/policy.yaml" >/dev/null || bad "the policy.yaml.5 example does not load"
MANWIDTH=80 man --warnings -l "$MAN/policy.yaml.5" 2>&1 >/dev/null | grep -q . && bad "policy.yaml.5 renders with warnings"
exit $status

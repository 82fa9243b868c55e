#!/usr/bin/env bash
# The e2e host .git check, without Docker: what a session legitimately adds
# (a fetched branch and its objects) passes; a new hook, a changed config,
# a removed file, a new alternates file or a mode change each fail it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
M="python3 $HERE/git_manifest.py"
W=$(mktemp -d /tmp/asgitm.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
g() { git -C "$W/host" -c user.name=t -c user.email=t@agentsafe.test "$@"; }
ID=0123456789ab
git init -q -b main "$W/host"
echo a >"$W/host/a"; g add a; g commit -q -m one
git clone -q "$W/host" "$W/clone"
git -C "$W/clone" -c user.name=t -c user.email=t@agentsafe.test commit -q --allow-empty -m two
$M snap "$W/host/.git" "$W/before.json"
# What the launcher does at the end of a session: fetch the one branch.
g fetch -q "$W/clone" "main:refs/heads/agentsafe/$ID"
$M compare "$W/before.json" "$W/host/.git" "$ID" || fail "a legitimate session fetch was flagged"
echo "ok   the review branch and its objects pass"
cp -a "$W/host" "$W/pristine"
try() { # description, command run in the host .git; the compare must fail
  rm -rf "$W/host"; cp -a "$W/pristine" "$W/host"
  (cd "$W/host/.git" && eval "$2")
  if out=$($M compare "$W/before.json" "$W/host/.git" "$ID"); then fail "$1: not detected"; fi
  echo "ok   detected: $1 ($out)"
}
try "a new hooks/post-checkout" 'printf "#!/bin/sh\necho pwned\n" >hooks/post-checkout; chmod +x hooks/post-checkout'
try "a new non-executable hook" 'echo x >hooks/pre-commit'
try "a changed config" 'git config core.fsmonitor "sh -c id"'
try "a new alternates file" 'echo /tmp >objects/info/alternates'
try "a removed file" 'rm description'
try "a mode change" 'chmod +x description'
try "another branch" 'cp refs/heads/main refs/heads/other'
# shellcheck disable=SC2016  # expanded by eval inside try
try "an executable new object file" 'f=$(find objects -type f -path "objects/??/*" | head -n1); cp "$f" "$f.x"; mv "$f.x" "$(dirname "$f")/ffffffffffffffffffffffffffffffffffffff"; chmod 755 "$(dirname "$f")/ffffffffffffffffffffffffffffffffffffff"'
echo "git manifest: the host .git check catches every change but the session's own"

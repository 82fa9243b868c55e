#!/usr/bin/env bash
# The session's git broker with real git clients, through the real
# agentsafe-proxy (empty allowlist) on loopback, no Docker: the "agent" is a
# git client whose only way out is the proxy. The host repo's upstream is a
# local bare repo (the remote the broker fetches with --upstream).
# Proves: fetch sees an upstream commit made after the start; a push to
# agentsafe/<id>/x lands in the host repo; main, a tag, another session's
# branch, a delete of another ref, a force over a ref no push created,
# another repo and a traversal name are refused with the message; egress.log
# has one git record per fetch and per pushed ref.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
DRV=$BIN/broker_driver
[ -x "$DRV" ] || { echo "broker test: $DRV missing" >&2; exit 1; }
W=$(mktemp -d /tmp/asbrk.XXXXXX)
ID=s1brk$$
MSG="agentsafe: pushes go to agentsafe/$ID/…; main is the human's"
cleanup() {
  [ -z "${PROXY:-}" ] || kill "$PROXY" 2>/dev/null || true
  [ -z "${DRVPID:-}" ] || kill "$DRVPID" 2>/dev/null || true
  [ -z "${APIPID:-}" ] || kill "$APIPID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ ! -f "$W/egress.log" ] || cat "$W/egress.log" >&2; exit 1; }
ok() { echo "ok - $*"; }

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$W/gitconfig GIT_TERMINAL_PROMPT=0
git config --global user.name tester
git config --global user.email tester@example.test
git config --global init.defaultBranch main
git config --global advice.detachedHead false

# upstream (bare) <- host work tree (origin = upstream) ; the human's work
git init -q --bare "$W/upstream.git"
git clone -q "$W/upstream.git" "$W/seed" 2>/dev/null
echo one >"$W/seed/f"; git -C "$W/seed" add f; git -C "$W/seed" commit -qm one
git -C "$W/seed" push -q origin main
git clone -q "$W/upstream.git" "$W/host/proj"
git -C "$W/host/proj" branch feature
MAIN0=$(git -C "$W/host/proj" rev-parse main)
# a ref no push created, on a commit the agent's work does not descend from
HUMAN=$(git -C "$W/host/proj" commit-tree -p main -m human 'main^{tree}')
git -C "$W/host/proj" update-ref "refs/heads/agentsafe/$ID/human" "$HUMAN"

# a fake GitHub API (--pr), the broker and the proxy
HERE=$(cd "$(dirname "$0")" && pwd)
coproc API_CO { exec python3 "$HERE/fake_github.py" "$W/api.log"; }
APIPID=$API_CO_PID
read -r APIPORT <&"${API_CO[0]}"
TOKEN=ghs-host-only-$$-$RANDOM
mkdir -p "$W/state"
coproc DRV_CO { AGENTSAFE_GITHUB_API=http://127.0.0.1:$APIPORT AGENTSAFE_GITHUB_TOKEN=$TOKEN \
  exec "$DRV" "$W/state/git" "$ID" "$W/egress.log" origin+pr \
  "proj=$W/host/proj=$W/host/proj/.git"; }
DRVPID=$DRV_CO_PID
read -r line <&"${DRV_CO[0]}"
[ "$line" = ready ] || fail "broker driver: $line"
printf 'version: 1\nallow: []\n' >"$W/policy.yaml"
"$BIN/agentsafe-proxy" --policy "$W/policy.yaml" --listen 127.0.0.1:0 \
  --log "$W/egress.log" --session "$ID" \
  --git-broker "$W/state/git/git-broker.sock" 2>"$W/proxy.err" &
PROXY=$!
for _ in $(seq 100); do grep -q 'listening on' "$W/proxy.err" && break; sleep 0.05; done
PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/proxy.err" | head -1)
[ -n "$PORT" ] || fail "proxy did not start: $(cat "$W/proxy.err")"
export http_proxy=http://127.0.0.1:$PORT HTTP_PROXY=http://127.0.0.1:$PORT
URL=http://git.agentsafe.internal/proj
[ "$(stat -c %a "$W/state/git/git-broker.sock")" = 600 ] || fail "socket mode"

# the agent's clone, origin = the broker (as the launcher sets it)
git clone -q "$URL" "$W/agent" || fail "clone through the broker"
git -C "$W/agent" remote add upstream "$URL"
git -C "$W/agent" config remote.upstream.fetch '+refs/remotes/origin/*:refs/remotes/upstream/*'
ok "clone through the proxy and the broker"

# an upstream commit after the start: the agent's fetch sees it
echo two >>"$W/seed/f"; git -C "$W/seed" commit -qam two; git -C "$W/seed" push -q origin main
UP=$(git -C "$W/seed" rev-parse main)
git -C "$W/agent" fetch -q upstream || fail "fetch"
[ "$(git -C "$W/agent" rev-parse upstream/main)" = "$UP" ] || fail "upstream commit not seen"
ok "fetch sees the upstream commit made after the start"

# push to the session's branch lands on the host
cd "$W/agent"
echo agent >g; git add g; git commit -qm agent
TIP=$(git rev-parse HEAD)
git push -q origin "HEAD:refs/heads/agentsafe/$ID/x" || fail "push to own branch"
[ "$(git -C "$W/host/proj" rev-parse "agentsafe/$ID/x")" = "$TIP" ] || fail "push did not land"
[ "$(git -C "$W/upstream.git" rev-parse "agentsafe/$ID/x")" = "$TIP" ] ||
  fail "--push-upstream: the upstream did not get agentsafe/$ID/x"
ok "push to agentsafe/$ID/x lands on the host, and (--push-upstream) on the upstream"
python3 - "$W/api.log" "$TOKEN" "$ID" <<'PY' || fail "--pr: $(cat "$W/api.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
token, sid = sys.argv[2], sys.argv[3]
posts = [r for r in reqs if r["method"] == "POST" and r["path"].endswith("/pulls")]
assert len(posts) == 1, posts
p = posts[0]
assert p["auth"] == "Bearer " + token, p["auth"]
assert p["body"]["draft"] is True and p["body"]["head"] == f"agentsafe/{sid}/x", p
assert p["body"]["base"] == "main", p
PY
! grep -rqF "$TOKEN" "$W/agent" "$W/egress.log" || fail "the host token reached the agent's side or the log"
ok "--pr: one draft pull request, with the host's token, which the agent's side never sees"

refused() { # what, git args...
  local what=$1; shift
  if "$@" >"$W/out" 2>&1; then fail "$what was accepted"; fi
  grep -qF "$MSG" "$W/out" || fail "$what: no message: $(cat "$W/out")"
  ok "$what refused with the message"
}
refused "push to main" git push origin HEAD:main
git tag v1
refused "push of a tag" git push origin v1
refused "push to another session's branch" git push origin "HEAD:refs/heads/agentsafe/other/x"
refused "push to a lookalike branch" git push origin "HEAD:refs/heads/agentsafe/${ID}x"
refused "delete of another ref" git push origin :feature
refused "delete of a ref no push created" git push origin ":agentsafe/$ID/human"
git commit -q --amend -m rewritten
refused "force over a ref no push created" git push -f origin "HEAD:refs/heads/agentsafe/$ID/human"
[ "$(git -C "$W/host/proj" rev-parse "agentsafe/$ID/human")" = "$HUMAN" ] || fail "human's ref moved"
refused "push to another repo" git push "http://git.agentsafe.internal/other" "HEAD:refs/heads/agentsafe/$ID/y"
refused "fetch from another repo" git ls-remote "http://git.agentsafe.internal/proj2"
# curl would fold ../ away: send it as is
for path in "/../host/proj" "/..%2fhost%2fproj" "/proj/../proj" "/%2e%2e/proj"; do
  code=$(curl -s -o "$W/out" -w '%{http_code}' --path-as-is -x "$http_proxy" \
    "http://git.agentsafe.internal$path/info/refs?service=git-upload-pack")
  [ "$code" = 404 ] || fail "traversal $path answered $code"
  grep -qF "$MSG" "$W/out" || fail "traversal $path: no message"
done
ok "traversal names refused with the message"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "$http_proxy" "$URL/HEAD")
[ "$code" = 404 ] || fail "dumb protocol answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "$http_proxy" -p "https://git.agentsafe.internal/" || true)
[ "$code" != 200 ] || fail "CONNECT to the broker name was tunnelled"
ok "dumb protocol and CONNECT refused"
# a proxy without --git-broker refuses the name, and never resolves it
"$BIN/agentsafe-proxy" --policy "$W/policy.yaml" --listen 127.0.0.1:0 \
  --log "$W/egress2.log" --session "$ID" 2>"$W/proxy2.err" &
PROXY2=$!
for _ in $(seq 100); do grep -q 'listening on' "$W/proxy2.err" && break; sleep 0.05; done
PORT2=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/proxy2.err" | head -1)
code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$PORT2" "$URL/info/refs?service=git-upload-pack")
kill "$PROXY2"
[ "$code" = 403 ] || fail "no broker: answered $code"
grep -q '"reason":"not_allowed".*no git broker' "$W/egress2.log" || fail "no broker: $(cat "$W/egress2.log")"
ok "without a broker the name is refused (not_allowed), never resolved"

# force over (and delete of) a ref this session's push created: allowed
git push -q -f origin "HEAD:refs/heads/agentsafe/$ID/x" || fail "force over own ref"
git push -q origin ":agentsafe/$ID/x" || fail "delete of own ref"
# (agentsafe/<id> and agentsafe/<id>/... cannot coexist in one repo: git)
git -C "$W/host/proj" update-ref -d "refs/heads/agentsafe/$ID/human"
git push -q origin "HEAD:refs/heads/agentsafe/$ID" || fail "push to the session branch"
[ "$(git -C "$W/host/proj" rev-parse "agentsafe/$ID")" = "$(git rev-parse HEAD)" ] ||
  fail "the session branch did not land"
ok "force and delete of the session's own pushed ref; then the session branch"

# a push larger than git's post buffer goes chunked through the proxy
head -c 3000000 /dev/urandom >big; git add big; git commit -qm big
git push -q origin "HEAD:refs/heads/agentsafe/$ID" >"$W/out" 2>&1 || fail "chunked push: $(cat "$W/out"; cat "$W/state/git/broker.log")"
[ "$(git -C "$W/host/proj" rev-parse "agentsafe/$ID")" = "$(git rev-parse HEAD)" ] ||
  fail "the chunked push did not land"
ok "a 3 MB (chunked) push lands"

# a hook git cannot run would let every push through: no hook, no push
chmod -x "$W/state/git/hooks/pre-receive"
if git push origin "HEAD:refs/heads/agentsafe/$ID/z" >"$W/out" 2>&1; then
  fail "push accepted while the hook could not run"
fi
grep -q "pushes are off" "$W/out" || fail "no reason given: $(cat "$W/out")"
chmod +x "$W/state/git/hooks/pre-receive"
git -C "$W/host/proj" rev-parse -q --verify "agentsafe/$ID/z" >/dev/null && fail "z landed"
ok "no runnable hook: pushes refused"

# the host: main, feature, tags untouched
[ "$(git -C "$W/host/proj" rev-parse main)" = "$MAIN0" ] || fail "host main moved"
git -C "$W/host/proj" rev-parse -q --verify feature >/dev/null || fail "feature deleted"
[ -z "$(git -C "$W/host/proj" tag)" ] || fail "a tag landed on the host"
# the upstream: only what the agent pushed for review, nothing else
[ "$(git -C "$W/upstream.git" for-each-ref --format='%(refname)' | sort | tr '\n' ' ')" = \
  "refs/heads/agentsafe/$ID/x refs/heads/main " ] ||
  fail "upstream refs: $(git -C "$W/upstream.git" for-each-ref)"
[ "$(git -C "$W/upstream.git" rev-parse main)" = "$UP" ] || fail "upstream main moved"
[ -z "$(git -C "$W/upstream.git" tag)" ] || fail "a tag reached the upstream"
# (the force over x and the delete of x are not passed on: never forced,
# no deletes; so agentsafe/$ID could not be created beside x up there)
[ "$(git -C "$W/upstream.git" rev-parse "agentsafe/$ID/x")" = "$TIP" ] || fail "upstream x was forced"
ok "host refs untouched; the upstream got only agentsafe/$ID/x, never forced"

# egress.log: git records
python3 - "$W/egress.log" "$ID" <<'PY' || fail "egress.log git records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
sid = sys.argv[2]
git = [r for r in recs if r["event"] == "git"]
def has(**kw):
    return any(all(r.get(k) == v for k, v in kw.items()) for r in git)
assert all(r["session"] == sid for r in git)
assert has(op="upstream_fetch", repo="proj", result="ok"), "upstream fetch"
assert has(op="push_upstream", ref=f"refs/heads/agentsafe/{sid}/x", result="ok"), "push upstream"
assert has(op="pr", ref=f"refs/heads/agentsafe/{sid}/x", result="ok"), "pr"
assert has(op="push_upstream", ref=f"refs/heads/agentsafe/{sid}", result="error"), "push upstream refused"
assert has(op="fetch", repo="proj", result="ok"), "fetch"
assert has(op="push", ref=f"refs/heads/agentsafe/{sid}/x", result="ok"), "push ok"
assert has(op="push", ref="refs/heads/main", result="refused"), "main refused"
assert has(op="push", ref="refs/tags/v1", result="refused"), "tag refused"
assert has(op="push", ref="refs/heads/feature", result="refused",
           new="0" * 40), "delete refused"
assert has(op="push", ref=f"refs/heads/agentsafe/{sid}/human",
           result="not_created"), "force refused"
assert has(op="push", result="refused", repo=None), "other repo refused"
for r in git:
    if r["op"] == "push" and r.get("ref"):
        assert len(r["old"]) == 40 and len(r["new"]) == 40, r
assert not any(r["event"] == "open" and r.get("host") == "git.agentsafe.internal"
               and r.get("ip") not in (None, "?") for r in recs), "resolved"
PY
ok "egress.log has the git records"

# the provenance note counts what egress.log says
"$DRV" --note "$ID" "$W/egress.log" "$W/policy.yaml" >"$W/note"
python3 - "$W/egress.log" "$W/note" "$W/policy.yaml" <<'PY' || { cat "$W/note" >&2; fail "note counts"; }
import collections, hashlib, json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
note = open(sys.argv[2]).read()
digest = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
assert f"sha256:{digest}" in note, "policy digest"
closes = [r for r in recs if r["event"] == "close"]
up = sum(r.get("bytes_up", 0) for r in closes)
down = sum(r.get("bytes_down", 0) for r in closes)
line = f"  git.agentsafe.internal: {len(closes)} requests, {up} B up, {down} B down"
assert line in note.splitlines(), line
denies = collections.Counter(r["reason"] for r in recs if r["event"] == "deny")
assert f"denied: {sum(denies.values())}" in note.splitlines(), denies
for reason, n in denies.items():
    assert f"  {reason}: {n}" in note.splitlines(), reason
pushed = sum(1 for r in recs if r["event"] == "git" and r.get("op") == "push"
             and r.get("ref") and r["result"] == "ok")
refused = sum(1 for r in recs if r["event"] == "git" and r.get("op") == "push"
              and r.get("ref") and r["result"] != "ok")
fetches = sum(1 for r in recs if r["event"] == "git" and r.get("op") == "fetch")
want = f"git: {fetches} fetches, {pushed} refs pushed, {refused} refused"
assert want in note.splitlines(), want
assert re.search(r"^log: agentsafe log --session \S+$", note, re.M)
PY
ok "the provenance note counts hosts, bytes, denials and pushes as egress.log has them"

# failed forwarding is counted (the launcher's exit 123): the refused
# push_upstream records above; a failed pr as the broker writes it (the ok record
# with result error) added to a copy of the log
UPF=$(python3 -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) for r in [json.loads(l)]
          if r["event"] == "git" and r.get("op") == "push_upstream" and r["result"] != "ok"))' "$W/egress.log")
{ [ "$UPF" -ge 1 ] && grep -qx "driver: upstream_errors=$UPF pr_errors=0" "$W/note"; } ||
	fail "failed forwarding counts: $(grep '^driver:' "$W/note")"
python3 - "$W/egress.log" >"$W/egress-prfail.log" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    sys.stdout.write(l)
    r = json.loads(l)
    if r["event"] == "git" and r.get("op") == "pr":
        r.update(result="error", message="draft pull request o/r: HTTP 422")
        sys.stdout.write(json.dumps(r) + "\n")
PY
"$DRV" --note "$ID" "$W/egress-prfail.log" "$W/policy.yaml" >"$W/note2"
{ grep -qx "driver: upstream_errors=$UPF pr_errors=1" "$W/note2" &&
	grep -qx "draft pull requests failed: 1" "$W/note2"; } ||
	fail "a failed pr not counted: $(grep '^driver:\|^draft' "$W/note2")"
ok "failed push_upstream and pr records are counted (what makes the launcher exit 123)"

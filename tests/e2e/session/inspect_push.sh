#!/usr/bin/env bash
# TLS inspection end to end: a real agentsafe-launch session (shell agent,
# real dockerd, the e2e image) whose policy inspects git.test, names the
# requests it may make and holds its token on the host. In the container
# git clones two repositories over HTTPS (the proxy injects the token),
# pushes to the allowed one (lands) and to the other (refused by the
# git-receive-pack path rule); the token is nowhere the container can read,
# and egress.log has a record for each push. The upstream is a
# `git http-backend` behind TLS in a namespace of this test's own (a veth
# in RFC 2544 benchmark space), demanding the token.
# `cond && pass ... || fail ...` is an if/else here: pass only echoes.
# shellcheck disable=SC2015
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$HERE/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/bin}
L=$BIN/agentsafe-launch
# shellcheck source=images.sh
. "$HERE/images.sh"
N=$$
NS=asinspns$N
VH=asinsph$N
A=$((N % 250 + 1))
HOSTIP=198.19.$A.1
UPIP=198.19.$A.2
T=$(mktemp -d /tmp/asinsp-e2e.XXXXXX)
chmod 755 "$T"
SECRET=ghs_e2e-secret-$N-$RANDOM$RANDOM
SECRET_REV=$(printf '%s' "$SECRET" | rev)
# The user's own API keys: a built-in binding (ANTHROPIC_API_KEY, its host
# inspected: a placeholder inside) and one whose host is not inspected
# (OPENAI_API_KEY: left out, said once). The *.test stand-ins of the
# built-in hosts are selected by AGENTSAFE_BUILTIN_CRED_TLD=test.
KEY_A=sk-ant-e2e-$N-$RANDOM$RANDOM
KEY_O=sk-oai-e2e-$N-$RANDOM$RANDOM
KA_REV=$(printf '%s' "$KEY_A" | rev)
KO_REV=$(printf '%s' "$KEY_O" | rev)
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
	[ -n "${UP_PID:-}" ] && kill "$UP_PID" 2>/dev/null
	session_leftovers "$T/home"
	ip link del "$VH" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
	e2e_dockerd_down
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root"; exit 1; }
e2e_dockerd_up || exit 1
e2e_session_image || exit 1

# --- the upstream: git http-backend behind TLS, demanding the token --------
e2e_upstream_netns "$NS" "$VH" "$HOSTIP" "$UPIP" || { echo "FAIL: netns"; exit 1; }
e2e_server_cert "$T" git "DNS:git.test" || { echo "FAIL: cert"; exit 1; }
mkdir -p "$T/repos" "$T/seed"
for r in allowed other; do
	git init -q --bare -b main "$T/repos/$r.git"
	git -C "$T/repos/$r.git" config http.receivepack true
done
git -C "$T/seed" init -q -b main
echo seed >"$T/seed/README"
git -C "$T/seed" add README
git -C "$T/seed" -c user.name=t -c user.email=t@t.test commit -qm seed
for r in allowed other; do git -C "$T/seed" push -q "$T/repos/$r.git" main; done
cat >"$T/git_tls.py" <<'PY'
# git http-backend over HTTPS on ADDR:443; every request must carry
# Authorization: Basic base64(x-access-token:SECRET), else 401. Logs each
# request's method, path and whether the token was right.
import base64, http.server, os, ssl, subprocess, sys
addr, root, cert, key, secret, log = sys.argv[1:7]
want = "Basic " + base64.b64encode(("x-access-token:" + secret).encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_any(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        ok = self.headers.get("Authorization") == want
        with open(log, "a") as f:
            f.write("%s %s token=%s\n" % (self.command, self.path, "ok" if ok else "bad"))
        if not ok:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        p, _, q = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=p,
                   QUERY_STRING=q, REQUEST_METHOD=self.command, CONTENT_LENGTH=str(n),
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), REMOTE_USER="agent",
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, data = out.partition(b"\r\n\r\n")
        status, hdrs = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                hdrs.append((k, v.strip()))
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = handle_any
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
ip netns exec "$NS" python3 "$T/git_tls.py" "$UPIP" "$T/repos" "$T/git.pem" "$T/git.key" \
	"$SECRET" "$T/upstream.log" &
UP_PID=$!
for _ in $(seq 50); do
	curl -s -o /dev/null --max-time 1 --cacert "$E2E_CACHE/testca.pem" --resolve "git.test:443:$UPIP" \
		https://git.test/ && break
	sleep 0.2
done
: >"$T/upstream.log" # the readiness probe carried no token

# --- the user's policy: git.test inspected, the token on the host ----------
export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
mkdir -p "$HOME" "$T/work"
printf '%s\n' "$SECRET" >"$T/git-token"
chmod 600 "$T/git-token"
# The user's own file: the proxy runs as the user.
chown "$UIDL:$GIDL" "$T/git-token"
cat >"$T/policy.yaml" <<YAML
version: 1
allow:
  - host: git.test
    inspect: true
    credential: GIT_TOKEN
    http:
      - methods: [GET]
        paths: ["/*.git/info/refs"]
      - methods: [POST]
        paths: ["/*.git/git-upload-pack", "/allowed.git/git-receive-pack"]
  - host: api.anthropic.test
    inspect: true
  - api.openai.test
  - host: $UPIP
credentials:
  GIT_TOKEN:
    file: $T/git-token
    basic: x-access-token
defaults:
  ports: [443]
YAML
printf '%s git.test\n' "$UPIP" >"$T/hosts"
cat >"$T/work/agent.sh" <<SH
set -u
cd /tmp
for r in allowed other; do
	git clone -q https://git.test/\$r.git \$r && echo "AGENT clone \$r ok" || echo "AGENT clone \$r failed"
	(cd \$r && echo change > new && git add new &&
	 git -c user.name=a -c user.email=a@a.test commit -qm "agent change" &&
	 git push -q origin main 2>/tmp/push-\$r.err && echo "AGENT push \$r ok" || { echo "AGENT push \$r refused"; sed 's/^/AGENT   /' /tmp/push-\$r.err; })
done
# Where the token could be: the environment, files, process memory. The
# script holds it reversed only, and hands it to grep on stdin, so neither
# this file nor a command line is a sighting.
S=\$(python3 -c 'import sys; print(sys.argv[1][::-1])' "$SECRET_REV")
n=0
env | grep -qF -- "\$S" && n=\$((n + 1))
printf '%s\\n' "\$S" | grep -rslFf - /etc /home /tmp /work /run /root 2>/dev/null | grep -q . && n=\$((n + 1))
for p in /proc/[0-9]*; do
	printf '%s\\n' "\$S" | grep -qsFf - \$p/environ && n=\$((n + 1))
done
echo "AGENT secret-sightings \$n"
# The user's API keys: placeholders or nothing, never the values.
python3 -c 'import sys; print(sys.argv[1][::-1]); print(sys.argv[2][::-1])' "$KA_REV" "$KO_REV" >/tmp/keys
k=0
env | grep -qFf /tmp/keys && k=\$((k + 1))
for p in /proc/[0-9]*; do
	grep -qsFf /tmp/keys \$p/environ && k=\$((k + 1))
done
rm -f /tmp/keys
echo "AGENT key-sightings \$k"
echo "AGENT anthropic=\${ANTHROPIC_API_KEY:-unset} openai=\${OPENAI_API_KEY:-unset}"
SH
chown -R "$UIDL:$GIDL" "$T/home" "$T/work"

(cd "$T/work" && timeout -k 20 900 env SUDO_UID="$UIDL" SUDO_GID="$GIDL" \
	AGENTSAFE_CONTAINER_DIR="$SRC/container" \
	ANTHROPIC_API_KEY="$KEY_A" OPENAI_API_KEY="$KEY_O" AGENTSAFE_BUILTIN_CRED_TLD=test \
	"$L" --no-repo --policy "$T/policy.yaml" --image "$IMG" "${BUILD[@]}" \
	--ca-bundle "$E2E_CACHE/extra-ca.pem" --hosts "$T/hosts" --agent shell --gpu none \
	--no-verify -- bash -c "$(cat "$T/work/agent.sh")") </dev/null >"$T/launch.out" 2>"$T/launch.err"
rc=$?
sed -n 's/^AGENT //p' "$T/launch.out"
[ $rc = 0 ] && pass "session ran (exit 0)" || { fail "launcher exit $rc"; tail -20 "$T/launch.err"; }
grep -q "^AGENT clone allowed ok" "$T/launch.out" && grep -q "^AGENT clone other ok" "$T/launch.out" &&
	pass "git clone through the inspected tunnel, token injected by the proxy" ||
	fail "clone: $(grep AGENT "$T/launch.out" | head -5)"
grep -q "^AGENT push allowed ok" "$T/launch.out" &&
	[ "$(git --git-dir "$T/repos/allowed.git" log -1 --format=%s)" = "agent change" ] &&
	pass "push to the allowed repository path landed" || fail "allowed push: $(grep AGENT "$T/launch.out")"
grep -q "^AGENT push other refused" "$T/launch.out" &&
	[ "$(git --git-dir "$T/repos/other.git" log -1 --format=%s)" = seed ] &&
	pass "push to another repository refused (path rule on git-receive-pack)" ||
	fail "other push: $(grep AGENT "$T/launch.out")"
grep -q "^AGENT secret-sightings 0$" "$T/launch.out" &&
	pass "the token is nowhere in the container (env, files, /proc)" ||
	fail "token seen in the container: $(grep sightings "$T/launch.out")"
grep -q "^AGENT key-sightings 0$" "$T/launch.out" &&
	grep -Eq "^AGENT anthropic=agentsafe-ANTHROPIC_API_KEY-[0-9a-f]{32} openai=unset$" "$T/launch.out" &&
	pass "built-in bindings: a placeholder for the inspected host's key, nothing for the other" ||
	fail "API keys in the container: $(grep -E 'key-sightings|anthropic=' "$T/launch.out")"
[ "$(grep -c "not passed into the sandbox: OPENAI_API_KEY " "$T/launch.err")" = 1 ] &&
	! grep -qF -- "$KEY_O" "$T/launch.err" && ! grep -qF -- "$KEY_A" "$T/launch.err" &&
	pass "the key of the uninspected host is left out and said once" ||
	fail "no single notice for OPENAI_API_KEY: $(grep -i openai "$T/launch.err")"
grep -q "token=bad" "$T/upstream.log" && fail "a request reached the upstream without the token" ||
	pass "every upstream request carried the real token ($(wc -l <"$T/upstream.log") requests)"
grep -q "POST /other.git/git-receive-pack" "$T/upstream.log" &&
	fail "the refused push reached the upstream" || pass "the refused push never reached the upstream"
LOG=$(find "$HOME"/.local/state/agentsafe/sessions -name egress.log | head -1)
python3 - "$LOG" <<'PY' && pass "egress.log: a request record for the push, a deny for the refused one" ||
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in recs if r["event"] == "request" and r.get("path") == "/allowed.git/git-receive-pack"]
bad = [r for r in recs if r["event"] == "deny" and r.get("path") == "/other.git/git-receive-pack"]
assert ok and ok[0]["status"] == 200 and ok[0]["credential"] == "GIT_TOKEN", ok
assert bad and bad[0]["reason"] == "path_not_allowed", bad
PY
	fail "egress.log lacks the request/deny records"
grep -rqsF -e "$SECRET" -e "$KEY_A" -e "$KEY_O" "$HOME/.local/state/agentsafe/sessions/" && fail "the token is in the session's files" ||
	pass "the token is in no log or state file"
ls "$HOME"/.local/state/agentsafe/sessions/*/session-ca.key >/dev/null 2>&1 &&
	fail "the session CA key outlived the session" || pass "the session CA key was removed at teardown"

echo "$fails failure(s)"
[ $fails = 0 ]

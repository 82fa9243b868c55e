#!/usr/bin/env bash
# Claude Code's OAuth login kept on the host, end to end: a real
# agentsafe-launch session running the real Claude Code CLI of the e2e
# image, whose policy inspects the *.test stand-ins of the API host and the
# token host (AGENTSAFE_BUILTIN_CRED_TLD=test). The user's
# ~/.claude/.credentials.json holds real-looking tokens; the container's
# copy holds placeholders. In the container the real CLI answers a prompt
# through the stand-in API (ANTHROPIC_BASE_URL), which sees the real access
# token; a refresh made the way the CLI makes it gets new placeholders only;
# the CLI then uses the new placeholder (the API sees the new real token);
# an expired login makes the CLI try its own token host, which the policy
# does not allow (refused, never contacted). At the end the user's file
# holds the rotated real tokens. The stand-ins run in a namespace of this
# test's own (a veth in RFC 2544 benchmark space).
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
NS=asclns$N
VH=ascl$N
A=$((N % 250 + 1))
HOSTIP=198.19.$A.1
UPIP=198.19.$A.2
T=$(mktemp -d /tmp/asclaude-e2e.XXXXXX)
chmod 755 "$T"
# The user's login: generation 0 on the host, 1 after one refresh.
ACC0=sk-ant-oat01-e2e-access0-$N-$RANDOM$RANDOM
REF0=sk-ant-ort01-e2e-refresh0-$N-$RANDOM$RANDOM
ACC1=sk-ant-oat01-e2e-access1-$N-$RANDOM$RANDOM
REF1=sk-ant-ort01-e2e-refresh1-$N-$RANDOM$RANDOM
# The container's script holds them reversed only (never a sighting).
REVS=$(for t in "$ACC0" "$REF0" "$ACC1" "$REF1"; do printf '%s ' "$(printf '%s' "$t" | rev)"; done)
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

# --- the stand-ins: the API and the token endpoint behind TLS ---------------
e2e_upstream_netns "$NS" "$VH" "$HOSTIP" "$UPIP" || { echo "FAIL: netns"; exit 1; }
e2e_server_cert "$T" up "DNS:api.anthropic.test,DNS:platform.claude.test" || { echo "FAIL: cert"; exit 1; }
cat >"$T/standin.py" <<'PY'
# api.anthropic.test: logs which token each request carried (acc0, acc1,
# a placeholder, none) and answers a Messages call (streamed when asked).
# platform.claude.test/v1/oauth/token: a refresh with the current real
# refresh token gets the next pair. One log line per request.
import http.server, json, ssl, sys
addr, cert, key, log, acc0, ref0, acc1, ref1 = sys.argv[1:9]
state = {"refresh": ref0}
def who(v):
    v = v or ""
    for name, t in (("acc0", acc0), ("acc1", acc1), ("ref0", ref0), ("ref1", ref1)):
        if t in v:
            return name
    return "placeholder" if "agentsafe-" in v else "none"
def sse(h, text):
    ev = [("message_start", {"type": "message_start", "message": {
              "id": "msg_standin", "type": "message", "role": "assistant", "model": "claude-standin",
              "content": [], "stop_reason": None, "stop_sequence": None,
              "usage": {"input_tokens": 1, "output_tokens": 1}}}),
          ("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
          ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": text}}),
          ("content_block_stop", {"type": "content_block_stop", "index": 0}),
          ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                             "stop_sequence": None}, "usage": {"output_tokens": 3}}),
          ("message_stop", {"type": "message_stop"})]
    out = "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d)) for e, d in ev).encode()
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Content-Length", str(len(out)))
    h.end_headers()
    h.wfile.write(out)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, status, obj):
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def handle_any(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n)
        host = self.headers.get("Host", "")
        path = self.path.partition("?")[0]
        auth = self.headers.get("Authorization") or self.headers.get("x-api-key")
        if host.startswith("platform.claude.test"):
            try:
                req = json.loads(body)
            except ValueError:
                req = {}
            got = who(req.get("refresh_token"))
            with open(log, "a") as f:
                f.write("TOKEN %s %s refresh=%s grant=%s\n" % (self.command, path, got, req.get("grant_type")))
            if path == "/v1/oauth/token" and req.get("refresh_token") == state["refresh"] == ref0:
                state["refresh"] = ref1
                self.reply(200, {"token_type": "Bearer", "access_token": acc1, "refresh_token": ref1,
                                 "expires_in": 28800, "scope": "user:inference user:profile",
                                 "account": {"uuid": "u-e2e", "email_address": "dev@example.test"}})
            else:
                self.reply(400, {"error": "invalid_grant"})
            return
        with open(log, "a") as f:
            f.write("API %s %s auth=%s\n" % (self.command, path, who(auth)))
        if who(auth) not in ("acc0", "acc1"):
            self.reply(401, {"type": "error", "error": {"type": "authentication_error",
                                                        "message": "stand-in: no valid token"}})
        elif path == "/v1/messages":
            try:
                stream = json.loads(body).get("stream")
            except ValueError:
                stream = False
            text = "standin-reply-%s" % who(auth)
            if b"slow-please" in body:
                import time
                time.sleep(25)  # the container scans the CLI's memory meanwhile
            if stream:
                sse(self, text)
            else:
                self.reply(200, {"id": "msg_standin", "type": "message", "role": "assistant",
                                 "model": "claude-standin", "content": [{"type": "text", "text": text}],
                                 "stop_reason": "end_turn", "stop_sequence": None,
                                 "usage": {"input_tokens": 1, "output_tokens": 3}})
        else:
            self.reply(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
    do_GET = do_POST = handle_any
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
ip netns exec "$NS" python3 "$T/standin.py" "$UPIP" "$T/up.pem" "$T/up.key" "$T/upstream.log" \
	"$ACC0" "$REF0" "$ACC1" "$REF1" &
UP_PID=$!
for _ in $(seq 50); do
	curl -s -o /dev/null --max-time 1 --cacert "$E2E_CACHE/testca.pem" \
		--resolve "api.anthropic.test:443:$UPIP" https://api.anthropic.test/ && break
	sleep 0.2
done
: >"$T/upstream.log" # the readiness probe carried no token

# --- the user: a Claude login on the host, a policy inspecting its hosts ---
export HOME=$T/home
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
mkdir -p "$HOME/.claude" "$T/work"
EXP=$(($(date +%s) * 1000 + 8 * 3600 * 1000))
cat >"$HOME/.claude/.credentials.json" <<JSON
{"claudeAiOauth": {"accessToken": "$ACC0", "refreshToken": "$REF0", "expiresAt": $EXP,
 "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"}}
JSON
chmod 600 "$HOME/.claude/.credentials.json"
cat >"$T/policy.yaml" <<YAML
version: 1
allow:
  - host: api.anthropic.test
    inspect: true
  - host: platform.claude.test
    inspect: true
  - host: $UPIP
defaults:
  ports: [443]
YAML
printf '%s api.anthropic.test platform.claude.test\n' "$UPIP" >"$T/hosts"
# The session's command is named `claude` (the launcher seeds Claude's
# login only for Claude sessions); it runs the checks and the real CLI.
cat >"$T/work/claude" <<SH
#!/bin/bash
set -u
C=\$HOME/.claude/.credentials.json
python3 - "\$C" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["claudeAiOauth"]
print("AGENT seed access=%s refresh=%s sub=%s" % (
    o["accessToken"].startswith("sk-ant-oat01-agentsafe-CLAUDE_OAUTH_ACCESS-"),
    o["refreshToken"].startswith("sk-ant-ort01-agentsafe-CLAUDE_OAUTH_REFRESH-"),
    o.get("subscriptionType")))
PY
# The real Claude Code, logged in with placeholders only.
export ANTHROPIC_BASE_URL=https://api.anthropic.test CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
cli() {
	timeout 120 /usr/local/bin/claude -p "say hi" >/tmp/cli.out 2>/tmp/cli.err
	echo "AGENT cli\$1 rc=\$? out=\$(head -c 200 /tmp/cli.out | tr '\\n' ' ')"
	sed 's/^/AGENT   cli-err /' /tmp/cli.err | head -5
}
cli 1
# A refresh as Claude Code makes it (POST JSON to the token endpoint),
# its answer written back the way the CLI does.
python3 - "\$C" <<'PY'
import json, sys, time, urllib.request
c = json.load(open(sys.argv[1]))
o = c["claudeAiOauth"]
req = urllib.request.Request("https://platform.claude.test/v1/oauth/token", method="POST",
    data=json.dumps({"grant_type": "refresh_token", "refresh_token": o["refreshToken"],
                     "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
                     "scope": "user:inference user:profile"}).encode(),
    headers={"Content-Type": "application/json"})
j = json.load(urllib.request.urlopen(req, timeout=30))
new = (j["access_token"] != o["accessToken"] and j["refresh_token"] != o["refreshToken"] and
       j["access_token"].startswith("sk-ant-oat01-agentsafe-") and
       j["refresh_token"].startswith("sk-ant-ort01-agentsafe-"))
print("AGENT refresh new-placeholders=%s" % new)
o.update(accessToken=j["access_token"], refreshToken=j["refresh_token"],
         expiresAt=int(time.time() * 1000) + j["expires_in"] * 1000)
json.dump(c, open(sys.argv[1], "w"))
# The refresh placeholder toward the API host: misuse, refused.
try:
    urllib.request.urlopen(urllib.request.Request("https://api.anthropic.test/v1/models",
        headers={"Authorization": "Bearer " + o["refreshToken"]}), timeout=30)
    print("AGENT misuse status=200")
except urllib.error.HTTPError as e:
    print("AGENT misuse status=%d" % e.code)
PY
cli 2
# An expired login: the CLI refreshes at its own token host, which the
# policy does not name (refused by the proxy, never contacted).
python3 - "\$C" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["claudeAiOauth"]["expiresAt"] = 1000
json.dump(c, open(sys.argv[1], "w"))
PY
cli 3
# The CLI's own memory while it waits for an answer: the placeholder it
# sends is there (the scan sees what it loaded), no real token is.
python3 - "\$C" $REVS <<'PY'
import json, os, re, subprocess, sys, time
toks = [t[::-1].encode() for t in sys.argv[2:]]
ph = json.load(open(sys.argv[1]))["claudeAiOauth"]["accessToken"].encode()
p = subprocess.Popen(["/usr/local/bin/claude", "-p", "slow-please"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def pids(root):
    out = [root]
    for t in os.listdir("/proc/%d/task" % root):
        try:
            out += [int(c) for c in open("/proc/%d/task/%s/children" % (root, t)).read().split()]
        except OSError:
            pass
    return out
def scan():
    scanned = hits = seen_ph = 0
    for pid in set(pids(p.pid)):
        try:
            maps = open("/proc/%d/maps" % pid).read().splitlines()
            mem = open("/proc/%d/mem" % pid, "rb", 0)
        except OSError:
            continue
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if not m or "[vvar]" in line or "[vsyscall]" in line:
                continue
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            scanned += len(data)
            hits += sum(data.count(t) for t in toks)
            seen_ph += data.count(ph)
    return scanned, hits, seen_ph
# Scan until the CLI holds its placeholder (it has read its login and is
# waiting on the stand-in, which holds the answer back), 40 s at most.
deadline = time.time() + 40
while True:
    time.sleep(1)
    scanned, hits, seen_ph = scan()
    if seen_ph > 0 or hits > 0 or time.time() > deadline or p.poll() is not None:
        break
p.kill()
p.wait()
print("AGENT memscan mb=%d placeholder=%s real-tokens=%d" % (scanned >> 20, seen_ph > 0, hits))
PY
# Where the real tokens could be: the environment, files, process memory.
python3 -c 'import sys; print("\\n".join(t[::-1] for t in sys.argv[1:]))' $REVS >/tmp/toks
n=0
env | grep -qFf /tmp/toks && n=\$((n + 1))
grep -rslFf /tmp/toks /etc /home /work /run /root 2>/dev/null | grep -q . && n=\$((n + 1))
for p in /proc/[0-9]*; do
	grep -qsFf /tmp/toks \$p/environ && n=\$((n + 1))
done
rm -f /tmp/toks
echo "AGENT token-sightings \$n"
SH
chmod 755 "$T/work/claude"
# A repository of the user's holds it: the session mounts its clone.
git -C "$T/work" init -q -b main && git -C "$T/work" add claude &&
	git -C "$T/work" -c user.name=t -c user.email=t@t.test commit -qm script
chown -R "$UIDL:$GIDL" "$T/home" "$T/work"

(cd "$T/work" && timeout -k 20 900 env SUDO_UID="$UIDL" SUDO_GID="$GIDL" \
	AGENTSAFE_CONTAINER_DIR="$SRC/container" AGENTSAFE_BUILTIN_CRED_TLD=test \
	"$L" --repo "$T/work" --policy "$T/policy.yaml" --image "$IMG" "${BUILD[@]}" \
	--ca-bundle "$E2E_CACHE/extra-ca.pem" --hosts "$T/hosts" --gpu none \
	--no-verify -- "/work/$(basename "$T/work")/claude") </dev/null >"$T/launch.out" 2>"$T/launch.err"
rc=$?
sed -n 's/^AGENT //p' "$T/launch.out"
echo "--- stand-ins saw:"
cat "$T/upstream.log"
[ $rc = 0 ] && pass "session ran (exit 0)" || { fail "launcher exit $rc"; tail -20 "$T/launch.err"; }
grep -q "^AGENT seed access=True refresh=True sub=max$" "$T/launch.out" &&
	pass "the container's credentials file holds typed placeholders, the rest kept" ||
	fail "seed: $(grep 'AGENT seed' "$T/launch.out")"
grep -q "^AGENT cli1 rc=0 out=standin-reply-acc0" "$T/launch.out" &&
	pass "the real Claude Code answered through the stand-in API with the real token swapped in" ||
	fail "cli1: $(grep 'AGENT cli1' "$T/launch.out")"
grep -q "^AGENT refresh new-placeholders=True$" "$T/launch.out" &&
	grep -q "^TOKEN POST /v1/oauth/token refresh=ref0 grant=refresh_token$" "$T/upstream.log" &&
	pass "refresh: the token endpoint got the real refresh token, the container new placeholders" ||
	fail "refresh: $(grep -E 'AGENT refresh|^TOKEN' "$T/launch.out" "$T/upstream.log")"
grep -q "^AGENT misuse status=403$" "$T/launch.out" &&
	pass "the refresh placeholder toward the API host is refused" ||
	fail "misuse: $(grep 'AGENT misuse' "$T/launch.out")"
grep -q "^AGENT cli2 rc=0 out=standin-reply-acc1" "$T/launch.out" &&
	pass "after the refresh the CLI's new placeholder carries the new real token" ||
	fail "cli2: $(grep 'AGENT cli2' "$T/launch.out")"
grep -Eq "auth=(placeholder|none|ref)" "$T/upstream.log" &&
	fail "a request reached the API without a real access token" ||
	pass "every API request carried a real access token ($(grep -c ^API "$T/upstream.log"))"
grep -Eq "^AGENT memscan mb=[1-9][0-9]* placeholder=True real-tokens=0$" "$T/launch.out" &&
	pass "the running CLI's memory holds its placeholder and no real token" ||
	fail "memory scan: $(grep 'AGENT memscan' "$T/launch.out")"
grep -q "^AGENT token-sightings 0$" "$T/launch.out" &&
	pass "no real token in the container (env, files, /proc)" ||
	fail "tokens seen in the container: $(grep sightings "$T/launch.out")"
LOG=$(find "$HOME"/.local/state/agentsafe/sessions -name egress.log | head -1)
python3 - "$LOG" <<'PY' && pass "egress.log: API requests, the rotation, the misuse and the CLI's own token host" ||
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
req = [r for r in recs if r["event"] == "request"]
assert any(r.get("credential") == "CLAUDE_OAUTH_ACCESS" and r["host"] == "api.anthropic.test" for r in req), req
rot = [r for r in req if r.get("credential") == "CLAUDE_OAUTH_REFRESH"]
assert rot and "rotated" in rot[0].get("message", ""), rot
assert any(r["event"] == "deny" and r.get("reason") == "credential_misuse" for r in recs)
# The expired login: the CLI's refresh went to its real token host, refused.
assert any(r["event"] == "deny" and r.get("host") == "platform.claude.com" for r in recs), \
    sorted({(r["event"], r.get("host")) for r in recs})
PY
	fail "egress.log lacks the records"
python3 - "$HOME/.claude/.credentials.json" "$ACC1" "$REF1" <<'PY' &&
import json, sys, time
o = json.load(open(sys.argv[1]))["claudeAiOauth"]
assert o["accessToken"] == sys.argv[2] and o["refreshToken"] == sys.argv[3], o
assert o["expiresAt"] > time.time() * 1000 + 7 * 3600 * 1000 and o["subscriptionType"] == "max", o
PY
	grep -q "Claude's login was refreshed in the session; the new tokens are saved" "$T/launch.err" &&
	pass "the user's credentials file holds the rotated real tokens" ||
	fail "host credentials not updated: $(cat "$HOME/.claude/.credentials.json")"
grep -rqsF -e "$ACC0" -e "$REF0" -e "$ACC1" -e "$REF1" "$HOME/.local/state/agentsafe/sessions/" "$T/launch.err" &&
	fail "a real token is in the session's files or the launcher's output" ||
	pass "no real token in any log, state file or output"

echo "$fails failure(s)"
[ $fails = 0 ]

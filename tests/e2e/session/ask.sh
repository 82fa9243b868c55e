#!/usr/bin/env bash
# agentsafe-launch --ask on a real Docker engine: the agent (a shell
# stand-in) needs new.test, which no rule names; its request waits while a
# second process, `agentsafe approve --session ID new.test:PORT --once`,
# answers; the agent gets its page and carries on, and egress.log tells the
# story (approval asked, answered by the user's uid, open, close). Only *.test
# names; the upstream is a TLS server of the test's own on the host's
# 127.0.0.1, with a certificate from the e2e test CA the image trusts.
set -euo pipefail
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/test/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "ask: needs root (dockerd, nftables)" >&2; exit 1; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=images.sh
. "$HERE/images.sh"

W=$(mktemp -d /tmp/asask.XXXXXX)
chmod 755 "$W"
IMG=agentsafe-ask-test:$$
UPID=
cleanup() {
	set +e
	[ -n "$UPID" ] && kill "$UPID" 2>/dev/null
	docker image rm "$IMG" >/dev/null 2>&1
	rm -rf "$W"
	e2e_dockerd_down
}
trap cleanup EXIT

e2e_dockerd_up
e2e_test_ca
if ! docker image inspect "$E2E_AGENT_IMAGE" >/dev/null 2>&1; then
	e2e_base_image
	e2e_agent_image "$SRC"
fi
docker tag "$E2E_AGENT_IMAGE" "$IMG"
label() { docker image inspect "$IMG" --format "{{index .Config.Labels \"agentsafe.$1\"}}"; }
U=$(label uid)
G=$(label gid)
if [ -z "$U" ] || [ -z "$G" ]; then fail "$IMG has no agentsafe.uid/gid labels"; fi

# The upstream: new.test on 127.0.0.1:PORT, certificate from the test CA.
PORT=$(( 42000 + $$ % 1000 ))
openssl req -newkey rsa:2048 -nodes -subj /CN=new.test -keyout "$W/up.key" \
	-out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:new.test\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$E2E_CACHE/testca.pem" -CAkey "$E2E_CACHE/testca.key" \
	-CAcreateserial -CAserial "$W/serial" -days 1 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
python3 - "$W" "$PORT" <<'PY' &
import http.server, ssl, sys
w, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"APPROVED-PAGE\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(w + "/up.pem", w + "/up.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
UPID=$!

mkdir -p "$W/home/proj"
git -C "$W/home/proj" init -q -b main
git -C "$W/home/proj" -c user.name=t -c user.email=t@agentsafe.test commit -q --allow-empty -m fixture
printf '127.0.0.1 new.test\n' >"$W/hosts"
cat >"$W/policy.yaml" <<YAML
version: 1
allow:
  - host: 127.0.0.1   # the upstream's address; the name new.test is in no rule
    ports: [$PORT]
limits:
  approval_timeout: 90s
YAML
chown -R "$U:$G" "$W/home"

# The agent: one request to a host no rule names, then proof it carried on.
AGENT="curl -sS --max-time 100 https://new.test:$PORT/ && echo AGENT-CARRIED-ON"
(cd "$W/home/proj" && env HOME="$W/home" SUDO_UID="$U" SUDO_GID="$G" \
	timeout -k 10 240 "$BIN/agentsafe-launch" --ask --agent shell \
	--image "$IMG" --policy "$W/policy.yaml" --hosts "$W/hosts" --gpu none \
	-- sh -c "$AGENT") </dev/null >"$W/agent.out" 2>"$W/agent.err" &
LPID=$!

# The second process: find the session's socket and its question, answer.
SDIR="$W/home/.local/state/agentsafe/sessions"
ID=
for _ in $(seq 1 1200); do
	for s in "$SDIR"/*/approve.sock; do
		[ -S "$s" ] || continue
		d=$(dirname "$s")
		if grep -q '"step":"asked"' "$d/egress.log" 2>/dev/null; then
			ID=$(basename "$d")
		fi
	done
	[ -n "$ID" ] && break
	kill -0 "$LPID" 2>/dev/null || break
	sleep 0.2
done
if [ -z "$ID" ]; then
	cat "$W/agent.err" "$SDIR"/*/egress.log "$SDIR"/*/proxy.log >&2 || true
	fail "no approval question appeared"
fi
perm=$(stat -c '%a %u' "$SDIR/$ID/approve.sock")
[ "$perm" = "600 $U" ] || fail "approve.sock is '$perm', want '600 $U'"
# As the session's user, in their own terminal.
setpriv --reuid "$U" --regid "$G" --clear-groups env HOME="$W/home" \
	"$BIN/agentsafe" approve --session "$ID" "new.test:$PORT" --once >"$W/approve.out" 2>&1 ||
	{ cat "$W/approve.out" >&2; fail "agentsafe approve failed"; }
rc=0
wait "$LPID" || rc=$?
[ "$rc" = 0 ] || { cat "$W/agent.err" >&2; fail "session exit $rc"; }
grep -q APPROVED-PAGE "$W/agent.out" || { cat "$W/agent.out" "$W/agent.err" >&2; fail "the agent did not get the page"; }
grep -q AGENT-CARRIED-ON "$W/agent.out" || fail "the agent did not carry on"
# The launcher's stderr (not a terminal here) got the notice as a line.
grep -q "agentsafe: approval needed: new.test:$PORT" "$W/agent.err" ||
	{ cat "$W/agent.err" >&2; fail "no notice in the launcher's stderr"; }

LOG="$SDIR/$ID/egress.log"
python3 - "$LOG" "$PORT" "$U" <<'PY' || { cat "$LOG" >&2; fail "egress.log does not tell the story"; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
port, uid = int(sys.argv[2]), int(sys.argv[3])
mine = [r for r in recs if r.get("host") == "new.test" and r.get("port") == port]
steps = [(r["event"], r.get("step")) for r in mine]
asked = steps.index(("approval", "asked"))
answered = steps.index(("approval", "answered"))
opened = steps.index(("open", None))
closed = steps.index(("close", None))
assert asked < answered < opened < closed, steps
a = mine[answered]
assert a["decision"] == "allow" and a["scope"] == "once" and a["uid"] == uid, a
assert not [r for r in mine if r["event"] == "deny"], mine
print("ok   egress.log: " + " -> ".join("%s%s" % (e, "/" + s if s else "") for e, s in steps))
PY
echo "PASS"

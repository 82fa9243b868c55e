#!/usr/bin/env bash
# End to end on a real Docker engine (root): builds the offline base image
# and the real agent image, then runs a real `agentsafe-launch --agent shell`
# session whose probe (probe.py, inside the container) tries the allowed path
# and every way around it. Upstream hosts live in network namespaces this
# script creates (allowed.test over HTTPS with a test CA, denied.test),
# reached from the root namespace over a veth; only *.test names, resolved
# from the test's own hosts file. Afterwards: container, network and nft
# table gone, egress.log matches what the probe did, the commit made inside
# is on the host branch agentsafe/<id>.
set -euo pipefail
SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
BIN=${AGENTSAFE_BIN:-$SRC/build/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "e2e: needs root (dockerd, ip netns, nftables)" >&2; exit 1; }
T0=$(date +%s)
say() { echo "e2e [$(( $(date +%s) - T0 ))s]: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SRC/scripts/deps.sh" >/dev/null
LAUNCH=$BIN/agentsafe-launch
[ -x "$LAUNCH" ] || fail "$LAUNCH missing (build the agentsafe-launch target)"
# shellcheck source=images.sh
. "$HERE/images.sh"

N=$$
NS=ase2e-up-$N
VH=ase2eh$N         # host end of the veth (<= 15 bytes)
K=$(( N % 200 + 20 ))
NET=10.218.$K
ALLOWED_IP=$NET.2
DENIED_IP=$NET.3
W=$(mktemp -d /tmp/ase2e.XXXXXX)
chmod 755 "$W"
TUSER=ase2e$N
SESSION_ID=

cleanup() {
	set +e
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
	[ -n "${HOSTSVC_PID:-}" ] && kill "$HOSTSVC_PID" 2>/dev/null
	sleep 0.2
	ip netns del "$NS" 2>/dev/null
	ip link del "$VH" 2>/dev/null
	if [ -n "$SESSION_ID" ]; then
		# A failed run must not leave the session behind for the next one.
		docker rm -f "agentsafe-$SESSION_ID" >/dev/null 2>&1
		nft delete table inet "agentsafe_$SESSION_ID" 2>/dev/null
	fi
	id "$TUSER" >/dev/null 2>&1 && userdel "$TUSER" 2>/dev/null
	getent group "$TUSER" >/dev/null && groupdel "$TUSER" 2>/dev/null
	rm -rf "$W"
	e2e_dockerd_down
}
trap cleanup EXIT

# --- images (slow, cached) -------------------------------------------------
e2e_dockerd_up
e2e_base_image
e2e_test_ca
say "images: base ready"

# --- upstream hosts in our own namespace -----------------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add "$VH" type veth peer name eth0 netns "$NS"
ip addr add "$NET.1/24" dev "$VH"
ip link set "$VH" up
ip -n "$NS" addr add "$ALLOWED_IP/24" dev eth0
ip -n "$NS" addr add "$DENIED_IP/24" dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" route add default via "$NET.1"

openssl req -newkey rsa:2048 -nodes -subj "/CN=allowed.test" \
	-keyout "$W/allowed.key" -out "$W/allowed.csr" 2>/dev/null
printf 'subjectAltName=DNS:allowed.test,DNS:denied.test\nextendedKeyUsage=serverAuth\n' >"$W/ext"
openssl x509 -req -in "$W/allowed.csr" -CA "$E2E_CACHE/testca.pem" -CAkey "$E2E_CACHE/testca.key" \
	-CAcreateserial -CAserial "$W/ca.srl" -days 2 -extfile "$W/ext" -out "$W/allowed.pem" 2>/dev/null
TOKEN=ase2e-token-$N-$RANDOM
mkdir -p "$W/www"
echo "$TOKEN" >"$W/www/index.html"
cat >"$W/upstream.py" <<'PY'
# An HTTPS server on ADDR:443 that serves DIR and appends every request it
# sees to LOG (so the test can tell which hosts were really contacted).
import functools, http.server, ssl, sys
addr, d, cert, key, log = sys.argv[1:6]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *a):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.client_address[0], fmt % a))
srv = http.server.ThreadingHTTPServer((addr, 443), functools.partial(H, directory=d))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
cat >"$W/sink.py" <<'PY'
# Records anything that arrives on UDP/TCP ADDR:PORT (a bypass that leaked).
import socket, sys, threading
addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def note(what):
    with open(log, "a") as f:
        f.write(what + "\n")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((addr, port)); t.listen(8)
def tcp():
    while True:
        c, a = t.accept(); note("tcp %s" % a[0]); c.close()
threading.Thread(target=tcp, daemon=True).start()
while True:
    data, a = u.recvfrom(2048); note("udp %s %r" % (a[0], data[:32]))
PY
ip netns exec "$NS" python3 "$W/upstream.py" "$ALLOWED_IP" "$W/www" "$W/allowed.pem" "$W/allowed.key" "$W/allowed.log" &
ip netns exec "$NS" python3 "$W/upstream.py" "$DENIED_IP" "$W/www" "$W/allowed.pem" "$W/allowed.key" "$W/denied.log" &
HOST_PORT=$(( 47000 + N % 1000 ))
UDP_PORT=$(( 48000 + N % 1000 ))
# A host service on every host address: the container must not reach it.
python3 "$W/sink.py" 0.0.0.0 "$HOST_PORT" "$W/hostsvc.log" &
HOSTSVC_PID=$!
for _ in $(seq 1 50); do
	curl -s --max-time 1 --cacert "$E2E_CACHE/testca.pem" --resolve "allowed.test:443:$ALLOWED_IP" \
		https://allowed.test/ 2>/dev/null | grep -q "$TOKEN" && break
	sleep 0.2
done
curl -s --max-time 2 --cacert "$E2E_CACHE/testca.pem" --resolve "allowed.test:443:$ALLOWED_IP" \
	https://allowed.test/ | grep -q "$TOKEN" || fail "control: the upstream is not reachable from the host namespace"
: >"$W/allowed.log"
say "upstreams up (allowed.test=$ALLOWED_IP, denied.test=$DENIED_IP)"

# --- the user, their repo and policy ---------------------------------------
# The session runs for a normal user, as `sudo agentsafe-launch` would: the
# launcher takes SUDO_UID/SUDO_GID/SUDO_USER for the container user, and the
# user's home from the password database when HOME is root's (Debian's sudo).
useradd -M -d "$W/home" -s /bin/sh "$TUSER"
TUID=$(id -u "$TUSER"); TGID=$(id -g "$TUSER")
mkdir -p "$W/home/.config/agentsafe"
MARKER=ase2e-policy-marker-$N
cat >"$W/home/.config/agentsafe/policy.yaml" <<YAML
# $MARKER
version: 1
allow:
  - allowed.test
  - host: $ALLOWED_IP     # allowed.test resolves into private space; naming it lets it in
defaults:
  ports: [443]
YAML
printf '%s allowed.test\n%s denied.test\n' "$ALLOWED_IP" "$DENIED_IP" >"$W/hosts"
REPO=$W/home/proj
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
cp "$HERE/probe.py" "$REPO/probe.py"
cat >"$REPO/e2e.json" <<JSON
{"allowed": "allowed.test", "denied": "denied.test", "allowed_ip": "$ALLOWED_IP",
 "host_port": $HOST_PORT, "udp_port": $UDP_PORT, "policy_name": "policy.yaml",
 "policy_marker": "$MARKER", "host_repo": "$REPO", "ssh_marker": ".ase2e-ssh-$N"}
JSON
git -C "$REPO" add probe.py e2e.json
git -C "$REPO" -c user.name=host -c user.email=host@agentsafe.test commit -q -m "e2e fixture"
# Long-lived mode: the user's public key, and a free port for sshd.
mkdir -p "$W/home/.ssh"
ssh-keygen -q -t ed25519 -N '' -C ase2e -f "$W/id_ed25519"
cp "$W/id_ed25519.pub" "$W/home/.ssh/id_ed25519.pub"
SSH_PORT=$(( 49000 + N % 1000 ))
chown -R "$TUSER:$TUSER" "$W/home"
# The whole host .git before the session (every path, mode and content
# hash), to prove the session only added its review branch.
python3 "$HERE/git_manifest.py" snap "$REPO/.git" "$W/git-before.json"

# --- the session -----------------------------------------------------------
say "session: agentsafe-launch --agent shell (builds the agent image through the launcher)"
# From the host, as the user would: ssh to 127.0.0.1:PORT with the key,
# leaving a marker the probe waits for; a password login must fail.
(
	for _ in $(seq 1 600); do
		if ssh -i "$W/id_ed25519" -p "$SSH_PORT" -o BatchMode=yes -o ConnectTimeout=2 \
			-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
			agent@127.0.0.1 "echo \"uid=\$(id -u) via ssh\" > /work/proj/.ase2e-ssh-$N" 2>>"$W/ssh.err"; then
			echo ok >"$W/ssh.out"
			# The agent runs: the launcher (every process of it) must hold
			# no effective capability now (CAP_NET_ADMIN is raised only
			# around the fence set-up and teardown).
			for p in $(pgrep -f "^$LAUNCH " || true); do
				sed -n 's/^CapEff:[[:space:]]*/'"$p"' /p' "/proc/$p/status"
			done >"$W/launcher-caps" 2>/dev/null
			# The methods the server offers ("Permission denied (...)").
			ssh -p "$SSH_PORT" -o BatchMode=yes -o PreferredAuthentications=none \
				-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
				agent@127.0.0.1 true 2>&1 | sed -n 's/.*Permission denied (\(.*\)).*/methods=\1/p' >>"$W/ssh.out"
			break
		fi
		sleep 0.5
	done
) &
SSH_LOOP=$!
set +e
( cd "$REPO" && timeout -k 20 1500 env HOME=/root SUDO_USER="$TUSER" SUDO_UID="$TUID" SUDO_GID="$TGID" \
	AGENTSAFE_CONTAINER_DIR="$SRC/container" \
	"$LAUNCH" --agent shell --repo "$REPO" --policy "$W/home/.config/agentsafe/policy.yaml" \
	--image "$E2E_AGENT_IMAGE" --build --build-arg BASE_IMAGE="$E2E_BASE_IMAGE" \
	--ca-bundle "$E2E_CACHE/extra-ca.pem" --hosts "$W/hosts" \
	--probe-allow allowed.test --probe-deny denied.test --gpu none --ssh "$SSH_PORT" \
	-- python3 /work/proj/probe.py ) </dev/null >"$W/launch.out" 2>"$W/launch.err"
RC=$?
kill "$SSH_LOOP" 2>/dev/null
wait "$SSH_LOOP" 2>/dev/null
set -e
cat "$W/launch.err" >&2
RES=$(sed -n 's/^ASE2E-RESULT //p' "$W/launch.out")
[ "$RC" -eq 0 ] || { cat "$W/launch.out"; fail "agentsafe-launch exited $RC"; }
[ -n "$RES" ] || { cat "$W/launch.out"; fail "the probe printed no result"; }
SESSION_ID=$(grep -o 'sessions/[0-9a-f]*/egress.log' "$W/launch.err" "$W/launch.out" | head -n1 | sed 's|.*sessions/||; s|/egress.log||')
[ -n "$SESSION_ID" ] || fail "the launcher did not print the session's egress.log path"
LOG=$W/home/.local/state/agentsafe/sessions/$SESSION_ID/egress.log
say "session $SESSION_ID done; checking"
echo "$RES" >"$W/result.json"

# --- assertions ------------------------------------------------------------
if python3 - "$W/result.json" "$LOG" "$TOKEN" "$W" "$HOST_PORT" "$UDP_PORT" "$ALLOWED_IP" <<'PY'
import json, sys, os
res = json.load(open(sys.argv[1])); logp, token, W = sys.argv[2], sys.argv[3], sys.argv[4]
host_port, udp_port, allowed_ip = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
bad = []
passed = []
skipped = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (passed if cond else bad).append(what)
def skip(what):
    # Not a pass: the check could not run here, and says so.
    print("SKIPPED " + what)
    skipped.append(what)
recs = [json.loads(l) for l in open(logp) if l.strip()]
check(res["allowed"][0] == 0 and token in res["allowed"][1], "allowed.test over HTTPS via the proxy, certificate verified: %r" % (res["allowed"],))
check(res["denied"][1].startswith("403"), "denied.test refused by the proxy with 403: %r" % (res["denied"],))
check(res["why"][0] == 0 and "refused CONNECT denied.test:443 because of not_allowed" in res["why"][1],
      "agentsafe-why in the container names the refusal of denied.test: %r" % (res["why"],))
check(res["dns_lookup"].startswith("failed"), "DNS does not resolve inside: %s" % res["dns_lookup"])
# A drop is a timeout: "refused" means something answered, and an error
# before sending means the probe never tried; neither proves the fence.
check(res["tcp_direct_allowed_ip"] == "timeout", "direct TCP to allowed.test's address times out (dropped): %s" % res["tcp_direct_allowed_ip"])
check(res["tcp_host_service"] == "timeout", "TCP to a host service times out (dropped): %s" % res["tcp_host_service"])
check(res["docker_dns"].startswith("none") or res["docker_dns"].endswith("answers=0"), "Docker's embedded DNS (127.0.0.11) resolves nothing: %s" % res["docker_dns"])
check(res["udp_reply"] in ("none (timeout)", "none (TimeoutError)"), "UDP gets no reply (timeout): %s" % res["udp_reply"])
check(res["icmp"] == "timeout", "ICMP echo to the gateway was sent and got no reply: %s" % res["icmp"])
v6_drops = [r for r in recs if r.get("event") == "drop" and
            (r.get("proto") == "icmpv6" or ":" in r.get("dst", ""))]
if not res.get("ipv6_addrs"):
    skip("IPv6 TCP: the container has no IPv6 address besides lo (disable_ipv6=%s; probe: %s)"
         % (res.get("ipv6_disabled"), res["tcp6_link_local"]))
else:
    # Neighbour discovery is dropped too, so EHOSTUNREACH is a drop as
    # well; the drop record proves the packets left the probe.
    check(res["tcp6_link_local"] in ("timeout", "EHOSTUNREACH") and len(v6_drops) >= 1,
          "IPv6 TCP sent and dropped: %s, %d IPv6 drop records (container IPv6 addresses: %r)"
          % (res["tcp6_link_local"], len(v6_drops), res.get("ipv6_addrs")))
check(res["caps"].get("CapEff") == "0000000000000000" and res["caps"].get("CapPrm") == "0000000000000000", "no capabilities: %r" % res["caps"])
check(res["caps"].get("NoNewPrivs") == "1", "no_new_privs set")
check(res["uid"] != 0, "the agent is not root (uid %d)" % res["uid"])
check(res["policy_files"] == [] and not res["policy_marker_in_env"], "policy.yaml not visible: %r" % res["policy_files"])
check(res["host_git_targets"] != [] and res["host_git_writable"] == [], "host .git read-only inside: targets %r writable %r" % (res["host_git_targets"], res["host_git_writable"]))
sshout = open(os.path.join(W, "ssh.out")).read() if os.path.exists(os.path.join(W, "ssh.out")) else ""
check(res["ssh_from_host"] == "uid=%d via ssh" % res["uid"] and sshout.startswith("ok\n"),
      "long-lived mode: ssh from the host with the user's key, as the agent user (%r, %r)" % (res["ssh_from_host"], sshout))
check(res.get("sshd_user", [1, ""])[1].split()[:1] == ["agent"], "sshd runs as the agent user: %r" % (res.get("sshd_user"),))
check("methods=publickey\n" in sshout, "sshd offers public-key login only: %r" % sshout)
check(res["claude_version"][0] == 0, "claude --version: %r" % (res["claude_version"],))
check(res["codex_version"][0] == 0, "codex --version: %r" % (res["codex_version"],))
check(res["build_tools"] == [], "no build tools in the image: %r" % res["build_tools"])
check(res["commit"][0] == 0, "commit inside: %r" % (res["commit"],))
# Nothing leaked to the upstreams or the host service.
for f in ("denied.log", "hostsvc.log"):
    p = os.path.join(W, f)
    check(not os.path.exists(p) or open(p).read() == "", "nothing reached %s" % f)
# egress.log: the records for exactly what the probe did.
def has(**kw):
    return [r for r in recs if all(r.get(k) == v for k, v in kw.items())]
opens = has(event="open", host="allowed.test", port=443)
check(len(opens) >= 1, "egress.log: open record for allowed.test:443")
check(len(opens) >= 1 and opens[0].get("rule", "").endswith("/.config/agentsafe/policy.yaml:4)"),
      "egress.log: the deciding rule names the user's policy file and line: %r" % (opens[0].get("rule") if opens else None))
closes = [r for r in has(event="close") if any(r.get("id") == o.get("id") for o in opens)]
check(len(closes) >= 1 and all("bytes_down" in c for c in closes), "egress.log: close record with byte counts sharing the open's id")
check(len(has(event="deny", host="denied.test")) >= 1, "egress.log: deny record for denied.test")
drops = has(event="drop")
def drop(proto, dport=None):
    return [d for d in drops if d.get("proto") == proto and (dport is None or d.get("dport") == dport)]
check(len(drop("tcp", host_port)) >= 1, "egress.log: drop record for TCP to the host service port %d" % host_port)
check(len(drop("udp", udp_port)) >= 1, "egress.log: drop record for UDP port %d" % udp_port)
check(len(drop("udp", 53)) >= 1, "egress.log: drop record for DNS (UDP 53)")
check(len([d for d in drops if d.get("proto") == "icmp"]) >= 1, "egress.log: drop record for ICMP")
check(len([d for d in drops if d.get("dst") == allowed_ip and d.get("proto") == "tcp"]) >= 1,
      "egress.log: drop record for the direct TCP to %s" % allowed_ip)
allowed_hosts = {r.get("host") for r in recs if r.get("event") in ("open", "close")}
# git.agentsafe.internal is the session's git broker (never resolved).
check(allowed_hosts <= {"allowed.test", "git.agentsafe.internal"}, "egress.log: no other allowed traffic: %r" % allowed_hosts)
check(res["git_origin"][1].startswith("http://git.agentsafe.internal/"), "origin is the git broker: %r" % (res["git_origin"],))
check(res["git_fetch"][0] == 0, "git fetch origin through the broker: %r" % (res["git_fetch"],))
check(res["git_push"][0] == 0, "git push of the review branch through the broker: %r" % (res["git_push"],))
check(res["git_push_main"][0] != 0 and "main is the human's" in res["git_push_main"][1],
      "git push to main refused with the message: %r" % (res["git_push_main"],))
check(len(has(event="git", op="push", ref="refs/heads/main", result="refused")) == 1
      and len(has(event="git", op="push", result="ok")) == 1, "egress.log: git records of the pushes")
print("egress.log: %d records (%s)" % (len(recs), ", ".join(sorted({r["event"] for r in recs}))))
print("%d passed, %d SKIPPED, %d failed" % (len(passed), len(skipped), len(bad)))
sys.exit(1 if bad else 0)
PY
then :; else
	# Make the likeliest cause of missing drop records visible.
	if grep -q "removing nftables table .*No such file" "$W/launch.err"; then
		echo "NOTE: the session's nftables table was already gone at teardown: something removed" >&2
		echo "      the fence during the session (another agentsafe-launch's stale sweep?)" >&2
	fi
	[ -s "$W/ssh.err" ] && { echo "ssh client errors (last 5):" >&2; tail -5 "$W/ssh.err" >&2; }
	fail "assertions failed (above)"
fi

# The repo is the test user's; root's git refuses it without this.
hgit() { git -c safe.directory="$REPO" -C "$REPO" "$@"; }

# While the agent ran, the launcher held no effective capability.
[ -s "$W/launcher-caps" ] || fail "could not read the launcher's capabilities during the session"
if awk '$2 != "0000000000000000" { bad = 1 } END { exit !bad }' "$W/launcher-caps"; then
	fail "the launcher held effective capabilities while the agent ran: $(tr '\n' ' ' <"$W/launcher-caps")"
fi
echo "ok   the launcher held no effective capability while the agent ran ($(wc -l <"$W/launcher-caps") processes)"

# After exit: nothing of the session left running.
[ -z "$(docker ps -aq --filter "name=$SESSION_ID")" ] || fail "a container of session $SESSION_ID is still there"
[ -z "$(docker network ls -q --filter "name=$SESSION_ID")" ] || fail "the network of session $SESSION_ID is still there"
! nft list tables 2>/dev/null | grep -q "$SESSION_ID" || fail "the nft table of session $SESSION_ID is still there"
echo "ok   container, network and nft table of session $SESSION_ID are gone"
# The commit made inside is on the host's review branch; the host .git was
# only extended by it (no file that existed before was touched).
hgit rev-parse -q --verify "refs/heads/agentsafe/$SESSION_ID" >/dev/null ||
	fail "host branch agentsafe/$SESSION_ID missing"
hgit show "agentsafe/$SESSION_ID:e2e-result.json" | grep -q '"allowed"' ||
	fail "agentsafe/$SESSION_ID does not carry the commit made inside"
echo "ok   the commit made inside is on host branch agentsafe/$SESSION_ID"
[ "$(hgit rev-parse main)" = "$(hgit rev-parse "agentsafe/$SESSION_ID~1")" ] ||
	fail "agentsafe/$SESSION_ID is not one commit on top of main"
# What the session may add to the host .git: the review branch's ref and
# reflog, its objects; reflogs and FETCH_HEAD may grow. Everything else,
# new files (hooks above all) included, must be as it was.
# The review branch carries the provenance note, with egress.log's counts.
hgit notes --ref=agentsafe show "agentsafe/$SESSION_ID" >"$W/note" ||
	fail "agentsafe/$SESSION_ID has no note under refs/notes/agentsafe"
STATE=$W/home/.local/state/agentsafe/sessions/$SESSION_ID
python3 - "$W/note" "$LOG" "$STATE/session.json" "$W/home/.config/agentsafe/policy.yaml" "$SESSION_ID" <<'PY' ||
import collections, hashlib, json, sys
note = open(sys.argv[1]).read().splitlines()
recs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
sess = json.load(open(sys.argv[3]))
digest = hashlib.sha256(open(sys.argv[4], "rb").read()).hexdigest()
sid = sys.argv[5]
sc = sess.get("selfcheck") or {}
def agent_rec(r):  # the probe's records are not the agent's
    return not (sc.get("start") and sc.get("end") and sc["start"] <= r["ts"] <= sc["end"])
recs = [r for r in recs if agent_rec(r)]
assert note[0] == "agentsafe session " + sid, note[0]
assert any(l.startswith("policy: ") and l.endswith("sha256:" + digest) for l in note), "policy digest"
assert any(l.startswith("image: ") and "sha256:" in l for l in note), "image id"
for host in sorted({r["host"] for r in recs if r["event"] == "close"}):
    c = [r for r in recs if r["event"] == "close" and r["host"] == host]
    want = "  %s: %d requests, %d B up, %d B down" % (host, len(c),
            sum(r.get("bytes_up", 0) for r in c), sum(r.get("bytes_down", 0) for r in c))
    assert want in note, want
deny = collections.Counter(r["reason"] for r in recs if r["event"] == "deny")
drop = collections.Counter(r["reason"] for r in recs if r["event"] == "drop")
assert "denied: %d" % sum(deny.values()) in note, ("denied", deny)
assert "dropped: %d" % sum(r.get("count", 1) for r in recs if r["event"] == "drop") in note, ("dropped", drop)
assert "git: %d fetches, 1 refs pushed, 1 refused" % sum(
    1 for r in recs if r["event"] == "git" and r.get("op") == "fetch") in note, "git line"
assert "log: agentsafe log --session " + sid in note
print("ok   agentsafe/%s carries the provenance note with egress.log's counts" % sid)
PY
	{ cat "$W/note" >&2; fail "the provenance note does not match egress.log"; }
# ... and `agentsafe log --session` points back at it.
env -u XDG_STATE_HOME HOME="$W/home" "$BIN/agentsafe" log --session "$SESSION_ID" --no-pager \
	>/dev/null 2>"$W/loglink" || true
grep -qF "log --notes=agentsafe agentsafe/$SESSION_ID" "$W/loglink" ||
	fail "agentsafe log --session does not link the review branch: $(cat "$W/loglink")"
echo "ok   agentsafe log --session links back to the review branch"
changed=$(python3 "$HERE/git_manifest.py" compare "$W/git-before.json" "$REPO/.git" "$SESSION_ID") ||
	fail "the session changed the host .git: $changed"
echo "ok   the host .git only gained the review branch ($(grep -c '"' "$W/git-before.json") paths compared)"
say "PASS"

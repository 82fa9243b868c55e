#!/usr/bin/env python3
"""Runs INSIDE the agent container (as the agent user) during the e2e session:
tries the allowed path and every way around it, writes one JSON object with
what happened to e2e-result.json in the repo, commits it, and prints it.
The host side (run.sh) asserts on the result and on egress.log."""
import errno
import json
import os
import socket
import subprocess
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = json.load(open(os.path.join(HERE, "e2e.json")))
R = {}


def run(cmd, timeout=60):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()
    except Exception as e:  # a missing binary is a result too
        return -1, repr(e)


def tcp(host, port, fam=socket.AF_INET, timeout=3.0):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or ""
pu = urllib.parse.urlsplit(proxy)
R["proxy"] = proxy
gw = pu.hostname or ""

# 1. Allowed host over HTTPS through the proxy, certificate verified by curl
#    against the image's trust store (the test CA came in as the extra CA).
R["allowed"] = run(["curl", "-sS", "--max-time", "20", "https://%s/" % CFG["allowed"]])
# 2. Denied host: the proxy answers CONNECT with 403.
R["denied"] = run(["curl", "-sS", "--max-time", "20", "-o", "/dev/null",
                   "-w", "%{http_connect}", "https://%s/" % CFG["denied"]])
# 2b. What the agent can learn about it: the proxy's own page, through
#     the image's agentsafe-why (no policy or log mounted).
R["why"] = run(["agentsafe-why"])
# 3. Bypasses. Each must fail; those that leave the container are dropped
#    by the fence and must show up as drop records on the host.
R["dns_lookup"] = "resolved"
try:
    socket.getaddrinfo(CFG["allowed"], 443)
except socket.gaierror as e:
    R["dns_lookup"] = "failed: %s" % e
R["tcp_direct_allowed_ip"] = tcp(CFG["allowed_ip"], 443)
R["tcp_host_service"] = tcp(gw, CFG["host_port"])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"ase2e-udp", (gw, CFG["udp_port"]))
u.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07allowed\x04test\x00\x00\x01\x00\x01",
         (gw, 53))
u.settimeout(2.0)
try:
    u.recvfrom(512)
    R["udp_reply"] = "reply"
except (socket.timeout, OSError) as e:
    R["udp_reply"] = "none (%s)" % type(e).__name__
u.close()
# Docker's embedded resolver: whatever it cannot answer itself must not be
# forwarded anywhere that answers.
def dns_answers(server):
    q = b"\x56\x78\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07allowed\x04test\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(4.0)
    try:
        s.sendto(q, (server, 53))
        data, _ = s.recvfrom(2048)
        return "rcode=%d answers=%d" % (data[3] & 0x0F, int.from_bytes(data[6:8], "big"))
    except (socket.timeout, OSError) as e:
        return "none (%s)" % type(e).__name__
    finally:
        s.close()


R["docker_dns"] = dns_answers("127.0.0.11")
# ICMP: an unprivileged ping socket (Docker's ping_group_range allows it).
try:
    ic = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    ic.settimeout(2.0)
    ic.sendto(b"\x08\x00\x00\x00\x00\x01\x00\x01ase2e", (gw, 0))
    try:
        ic.recvfrom(512)
        R["icmp"] = "reply"
    except socket.timeout:
        R["icmp"] = "timeout"
    ic.close()
except OSError as e:
    R["icmp"] = "socket: %s" % errno.errorcode.get(e.errno, e.errno)
# Which IPv6 addresses the container has besides loopback (Docker disables
# IPv6 on networks that do not ask for it).
R["ipv6_addrs"] = [l.split()[0] for l in open("/proc/net/if_inet6")
                   if l.split()[-1] != "lo"] if os.path.exists("/proc/net/if_inet6") else []
try:
    R["ipv6_disabled"] = open("/proc/sys/net/ipv6/conf/all/disable_ipv6").read().strip()
except OSError as e:
    R["ipv6_disabled"] = "unknown (%s)" % e
R["tcp6_link_local"] = "n/a"
try:
    ifs = [n for _, n in socket.if_nameindex() if n != "lo"]
    if ifs:
        R["tcp6_link_local"] = tcp("fe80::1%%%s" % ifs[0], 443, socket.AF_INET6)
except OSError as e:
    R["tcp6_link_local"] = "socket: %s" % e
# 4. Privilege and secrets.
st = open("/proc/self/status").read()
R["caps"] = {l.split(":")[0]: l.split()[1] for l in st.splitlines()
             if l.startswith(("CapEff", "CapPrm", "CapBnd", "NoNewPrivs"))}
R["uid"] = os.getuid()
found = []
for root, dirs, files in os.walk("/", topdown=True):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for f in files:
        if f == "policy.yaml" or f == CFG["policy_name"]:
            found.append(os.path.join(root, f))
R["policy_files"] = found
R["policy_marker_in_env"] = CFG["policy_marker"] in json.dumps(dict(os.environ))
# 5. The host repo's .git: every mount that carries it must refuse writes.
gitdir = run(["git", "-C", HERE, "rev-parse", "--git-common-dir"])[1]
alt = os.path.join(HERE, gitdir, "objects/info/alternates") if not gitdir.startswith("/") \
    else os.path.join(gitdir, "objects/info/alternates")
targets = []
if os.path.exists(alt):
    targets += [l.strip() for l in open(alt) if l.strip()]
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if CFG["host_repo"] in f[3]:
        targets.append(f[4])
R["host_git_targets"] = sorted(set(targets))
writable = []
for t in set(targets):
    p = os.path.join(t, "ase2e-canary")
    try:
        with open(p, "w") as fh:
            fh.write("x")
        writable.append(t)
    except OSError:
        pass
R["host_git_writable"] = writable
# 6. The agents themselves.
R["claude_version"] = run(["claude", "--version"])
R["codex_version"] = run(["codex", "--version"])
R["build_tools"] = [t for t in ("gcc", "cc", "make", "g++") if
                    any(os.access(os.path.join(d, t), os.X_OK)
                        for d in os.environ.get("PATH", "").split(":"))]
# 6b. Long-lived mode: the host logs in over ssh on the published port
#     (key only) and leaves a marker here; wait for it.
R["ssh_from_host"] = None
if CFG.get("ssh_marker"):
    marker = os.path.join(HERE, CFG["ssh_marker"])
    for _ in range(120):
        if os.path.exists(marker):
            break
        time.sleep(0.5)
    R["ssh_from_host"] = open(marker).read().strip() if os.path.exists(marker) else "no login"
    if os.path.exists(marker):
        os.remove(marker)
    R["sshd_user"] = run(["sh", "-c", "ps -o user=,args= -C sshd | head -n1"])
# 7. A commit inside, which must come back as the host's agentsafe/<id> branch.
with open(os.path.join(HERE, "e2e-result.json"), "w") as fh:
    json.dump(R, fh, indent=1, sort_keys=True)
run(["git", "-C", HERE, "add", "e2e-result.json"])
R["commit"] = run(["git", "-C", HERE, "-c", "user.name=ase2e", "-c", "user.email=ase2e@agentsafe.test",
                   "commit", "-q", "-m", "e2e probe result"])
# 8. The git broker: origin is http://git.agentsafe.internal/<repo> through
#    the proxy (the policy does not name it); a fetch works, the review
#    branch can be pushed, main cannot.
sid = run(["git", "-C", HERE, "config", "agentsafe.session"])[1]
R["git_origin"] = run(["git", "-C", HERE, "remote", "get-url", "origin"])
R["git_fetch"] = run(["git", "-C", HERE, "fetch", "origin"])
R["git_push"] = run(["git", "-C", HERE, "push", "origin", "HEAD:refs/heads/agentsafe/" + sid])
R["git_push_main"] = run(["git", "-C", HERE, "push", "origin", "HEAD:refs/heads/main"])
print("ASE2E-RESULT " + json.dumps(R, sort_keys=True))

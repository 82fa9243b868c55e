#!/usr/bin/env python3
"""unknown: ask and upload budgets, end to end (run.sh made the namespace).

A TLS upstream on 127.0.0.10:443 answers HTTP for every *.test name; a raw
sink on 127.0.0.13:443 counts the bytes it receives. The proxy runs with
--approval-socket; answers come from the real `agentsafe approve`.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("cases", nargs="*")
args = ap.parse_args()
BIN, W = args.bin, args.work
PROXY_BIN = os.path.join(BIN, "agentsafe-proxy")
CLI = os.path.join(BIN, "agentsafe")

TLS_UP = "127.0.0.10"
SINK_UP = "127.0.0.13"
NAMES = ["new.test", "two.test", "three.test", "four.test", "five.test",
         "six.test", "deny.test", "other.test", "seven.test", "probe.test"]
HOSTS = ("%s %s\n127.0.0.12 priv2.test\n%s sink.test\n"
         % (TLS_UP, " ".join(NAMES), SINK_UP))
BUDGET = 1000

POLICY = """version: 1
# the user's own comment: it must survive agentsafe approve --always
unknown: ask
allow:
  # the upstreams' addresses (private space is closed otherwise)
  - host: 127.0.0.10
  - host: 127.0.0.13
  - host: sink.test
    tls: false
    upload_budget: %d
deny:
  - deny.test   # an explicit deny is never asked about
limits:
  approval_timeout: 3s
""" % BUDGET


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_pki():
    def o(*a):
        sh("openssl", *a, cwd=W)
    o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", "ca.key", "-subj", "/CN=AgentSafe Test CA", "-days", "2",
      "-addext", "basicConstraints=critical,CA:TRUE", "-out", "ca.pem")
    o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", "srv.key", "-subj", "/CN=new.test", "-out", "srv.csr")
    with open(os.path.join(W, "ext"), "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + n for n in NAMES + ["priv2.test"]) + "\n")
    o("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
      "-CAcreateserial", "-days", "1", "-extfile", "ext", "-out", "srv.pem")


def serve_forever(sock, handler):
    def loop():
        while True:
            c, _ = sock.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def listen(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    return s


def tls_upstream():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(W, "srv.pem"), os.path.join(W, "srv.key"))

    def handle(c):
        try:
            c.settimeout(10)
            t = ctx.wrap_socket(c, server_side=True)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = t.recv(4096)
                if not d:
                    return
                buf += d
            body = b"hello from the upstream\n"
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(body) + body)
            t.close()
        except Exception:
            pass
    serve_forever(listen(TLS_UP, 443), handle)


SINK_TOTAL = [0]


def sink_upstream():
    """Counts every byte received; answers each read with the total so far."""
    def handle(c):
        try:
            c.settimeout(10)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                SINK_TOTAL[0] += len(d)
                c.sendall(b"%d\n" % SINK_TOTAL[0])
        except Exception:
            pass
        finally:
            c.close()
    serve_forever(listen(SINK_UP, 443), handle)


class Proxy:
    def __init__(self, name, port, env_extra=None):
        self.dir = os.path.join(W, name)
        os.makedirs(self.dir, exist_ok=True)
        self.policy = os.path.join(self.dir, "policy.yaml")
        self.log = os.path.join(self.dir, "egress.log")
        self.sock = os.path.join(self.dir, "approve.sock")
        self.port = port
        with open(self.policy, "w") as f:
            f.write(POLICY)
        with open(os.path.join(W, "hosts"), "w") as f:
            f.write(HOSTS)
        self.errf = open(os.path.join(self.dir, "stderr"), "w+")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.update(env_extra or {})
        self.p = subprocess.Popen(
            [PROXY_BIN, "--policy", self.policy, "--listen", "127.0.0.1:%d" % port,
             "--log", self.log, "--session", name, "--hosts", os.path.join(W, "hosts"),
             "--approval-socket", self.sock, "--workers", "2", "--never-ask", "probe.test"],
            stderr=self.errf, env=env)
        deadline = time.time() + 20
        while "listening on" not in self.stderr():
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError("proxy did not start: " + self.stderr())
            time.sleep(0.05)

    def stderr(self):
        self.errf.flush()
        with open(self.errf.name) as f:
            return f.read()

    def records(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def wait_for(self, pred, n=1, timeout=8.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            hits = [r for r in self.records() if pred(r)]
            if len(hits) >= n:
                return hits
            time.sleep(0.05)
        raise AssertionError("no record as expected; log:\n" +
                             "\n".join(json.dumps(r) for r in self.records()[-12:]))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=15)
        err = self.stderr()
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err
        assert "LeakSanitizer" not in err, err


def asked(host):
    return lambda r: r.get("event") == "approval" and r.get("step") == "asked" and r.get("host") == host


def curl_bg(P, host, out):
    def run():
        r = subprocess.run(
            ["curl", "-s", "-o", "-", "-w", "\n%{http_code} %{http_connect}", "--max-time", "20",
             "--cacert", os.path.join(W, "ca.pem"), "-x", "http://127.0.0.1:%d" % P.port,
             "https://%s/" % host], capture_output=True, text=True)
        out.append(r.stdout)
    t = threading.Thread(target=run)
    t.start()
    return t


def approve(P, target, flag, check=True):
    r = subprocess.run([CLI, "approve", "--socket", P.sock, target, flag],
                       capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def approved_once_goes_through_and_the_next_request_asks_again(P):
    out = []
    t = curl_bg(P, "new.test", out)
    P.wait_for(asked("new.test"))
    approve(P, "new.test:443", "--once")
    t.join()
    assert "hello from the upstream" in out[0], out
    ans = P.wait_for(lambda r: r.get("event") == "approval" and r.get("step") == "answered"
                     and r.get("host") == "new.test")[0]
    assert ans["decision"] == "allow" and ans["scope"] == "once" and ans["uid"] == os.getuid(), ans
    P.wait_for(lambda r: r.get("event") == "open" and r.get("host") == "new.test")
    out2 = []
    t = curl_bg(P, "new.test", out2)
    P.wait_for(asked("new.test"), n=2)
    approve(P, "new.test", "--deny")
    t.join()
    assert out2[0].strip().endswith("403"), out2
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "new.test")[0]
    assert d["reason"] == "not_allowed", d
    assert P.wait_for(lambda r: r.get("step") == "answered" and r.get("decision") == "deny")


@case
def approved_for_the_session_is_not_asked_again(P):
    out = []
    t = curl_bg(P, "two.test", out)
    P.wait_for(asked("two.test"))
    approve(P, "two.test", "--for-session")
    t.join()
    assert "hello from the upstream" in out[0], out
    out2 = []
    curl_bg(P, "two.test", out2).join()
    assert "hello from the upstream" in out2[0], out2
    assert len([r for r in P.records() if asked("two.test")(r)]) == 1


@case
def approved_always_writes_the_rule_keeps_comments_and_reloads(P):
    out = []
    t = curl_bg(P, "three.test", out)
    P.wait_for(asked("three.test"))
    approve(P, "three.test", "--always")
    t.join()
    assert "hello from the upstream" in out[0], out
    text = open(P.policy).read()
    assert "three.test" in text and "the user's own comment" in text, text
    assert "deny.test   # an explicit deny" in text, text
    assert any(f.startswith("policy.yaml.") and f.endswith(".bak") for f in os.listdir(P.dir))
    rel = P.wait_for(lambda r: r.get("step") == "reloaded")[0]
    assert rel.get("reason") is None, rel
    r = subprocess.run([CLI, "policy", "check", P.policy], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@case
def unanswered_request_ends_as_403_approval_timeout(P):
    out = []
    t0 = time.time()
    curl_bg(P, "four.test", out).join()
    assert out[0].strip().endswith("403"), out
    assert time.time() - t0 >= 2.5
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "four.test")[0]
    assert d["reason"] == "approval_timeout", d
    P.wait_for(lambda r: r.get("step") == "timeout" and r.get("host") == "four.test")


@case
def two_requests_for_one_host_wait_on_one_question(P):
    outs = [[], []]
    ts = [curl_bg(P, "five.test", outs[0]), curl_bg(P, "five.test", outs[1])]
    P.wait_for(asked("five.test"))
    deadline = time.time() + 5
    while True:
        r = subprocess.run([CLI, "approve", "--socket", P.sock], input="k\n",
                           capture_output=True, text=True)
        if "2 waiting" in r.stdout or time.time() > deadline:
            break
        time.sleep(0.1)
    assert "five.test:443 (2 waiting" in r.stdout, r.stdout
    r = approve(P, "five.test", "--once")
    assert "2 request(s)" in r.stdout, r.stdout
    for t in ts:
        t.join()
    for o in outs:
        assert "hello from the upstream" in o[0], outs
    assert len([r for r in P.records() if asked("five.test")(r)]) == 1


@case
def explicit_deny_and_other_refusals_are_never_asked(P):
    out = []
    curl_bg(P, "deny.test", out).join()
    assert out[0].strip().endswith("403"), out
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "deny.test")[0]
    assert d["reason"] == "denied_by_rule", d
    assert not [r for r in P.records() if asked("deny.test")(r)]
    # The launcher's self-check targets (--never-ask): refused at once.
    out = []
    t0 = time.time()
    curl_bg(P, "probe.test", out).join()
    assert out[0].strip().endswith("403") and time.time() - t0 < 2.5, out
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "probe.test")[0]
    assert d["reason"] == "not_allowed", d
    assert not [r for r in P.records() if asked("probe.test")(r)]


@case
def approved_host_still_meets_the_address_guard(P):
    out = []
    t = curl_bg(P, "priv2.test", out)
    P.wait_for(asked("priv2.test"))
    approve(P, "priv2.test", "--once")
    t.join()
    assert out[0].strip().endswith("403"), out
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "priv2.test")[0]
    assert d["reason"] == "private_address", d


@case
def approved_host_still_meets_the_sni_check(P):
    s = socket.create_connection(("127.0.0.1", P.port), timeout=10)
    s.sendall(b"CONNECT six.test:443 HTTP/1.1\r\nHost: six.test:443\r\n\r\n")
    P.wait_for(asked("six.test"))
    approve(P, "six.test", "--once")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 200 " in head, head
    ctx = ssl.create_default_context(cafile=os.path.join(W, "ca.pem"))
    inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outb, server_hostname="other.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s.sendall(outb.read())
    s.settimeout(5)
    assert s.recv(100) == b"", "tunnel with a foreign SNI was not closed"
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "six.test")[0]
    assert d["reason"] == "sni_mismatch", d


@case
def approval_socket_is_private_and_refuses_another_uid(P):
    st = os.lstat(P.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    # Past the file mode (opened on purpose): the proxy's own peer check.
    os.chmod(P.sock, 0o666)
    os.chmod(P.dir, 0o755)
    out = []
    t = curl_bg(P, "seven.test", out)
    P.wait_for(asked("seven.test"))
    code = ("import socket,sys,time\n"
            "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);time.sleep(0.2)\n"
            "try:\n"
            "  s.sendall(b'{\"op\":\"answer\",\"host\":\"seven.test\",\"decision\":\"once\"}\\n')\n"
            "except OSError:\n"
            "  pass\n"
            "s.settimeout(5);print(s.recv(4096).decode())")
    r = subprocess.run(["python3", "-c", code, P.sock], capture_output=True, text=True,
                       preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert "permission denied" in r.stdout, (r.stdout, r.stderr)
    t.join()
    assert out[0].strip().endswith("403"), out  # nobody answered: timeout
    assert not [r for r in P.records() if r.get("step") == "answered" and r.get("host") == "seven.test"]
    os.chmod(P.sock, 0o600)


def sink_tunnel(P):
    s = socket.create_connection(("127.0.0.1", P.port), timeout=10)
    s.sendall(b"CONNECT sink.test:443 HTTP/1.1\r\nHost: sink.test:443\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    return s, head


def sink_send(s, n):
    """Send n bytes and wait for the sink's running total (None: closed)."""
    s.sendall(b"x" * n)
    s.settimeout(5)
    line = b""
    try:
        while True:
            d = s.recv(64)
            if not d:
                return None
            line += d
            totals = line.split(b"\n")
            if len(totals) > 1 and totals[-2]:
                want = totals[-2]
                # drain further totals already queued
                return int(want)
    except (socket.timeout, ConnectionResetError):
        return None


def budget_cut_at_the_exact_byte(P):
    SINK_TOTAL[0] = 0
    s, head = sink_tunnel(P)
    assert b" 200 " in head, head
    assert sink_send(s, BUDGET - 1) == BUDGET - 1
    # Half the budget passed: one warning.
    w = P.wait_for(lambda r: r.get("event") == "warning" and r.get("host") == "sink.test")
    assert len(w) == 1, w
    assert sink_send(s, 1) == BUDGET          # byte BUDGET: still within
    assert sink_send(s, 1) is None            # byte BUDGET+1: cut
    assert SINK_TOTAL[0] == BUDGET, SINK_TOTAL[0]
    c = P.wait_for(lambda r: r.get("event") == "close" and r.get("host") == "sink.test")[0]
    assert c["reason"] == "upload_budget_exceeded" and c["bytes_up"] == BUDGET, c
    s2, head = sink_tunnel(P)
    assert b" 403 " in head and b"upload_budget_exceeded" in head, head
    d = P.wait_for(lambda r: r.get("event") == "deny" and r.get("host") == "sink.test")[0]
    assert d["reason"] == "upload_budget_exceeded", d
    assert len([r for r in P.records() if r.get("event") == "warning"]) == 1


def budget_closes_open_tunnels_to_the_host(P):
    SINK_TOTAL[0] = 0
    a, _ = sink_tunnel(P)
    b, _ = sink_tunnel(P)
    assert sink_send(a, 10) == 10
    assert sink_send(b, BUDGET - 10) == BUDGET
    assert sink_send(b, 1) is None
    a.settimeout(5)
    assert a.recv(10) == b"", "the other open tunnel to the host stayed open"
    closes = P.wait_for(lambda r: r.get("event") == "close" and r.get("host") == "sink.test", n=2)
    assert all(c["reason"] == "upload_budget_exceeded" for c in closes), closes


def budget_counts_bytes_sent_with_the_connect(P):
    """Bytes that arrive with the CONNECT head are in the proxy's buffer
    before the tunnel starts: they are charged too, and passing the
    budget with them ends the tunnel at once."""
    SINK_TOTAL[0] = 0
    s = socket.create_connection(("127.0.0.1", P.port), timeout=10)
    s.sendall(b"CONNECT sink.test:443 HTTP/1.1\r\nHost: sink.test:443\r\n\r\n" +
              b"y" * (BUDGET + 1))
    c = P.wait_for(lambda r: r.get("event") == "close" and r.get("host") == "sink.test")[0]
    assert c["reason"] == "upload_budget_exceeded" and c["bytes_up"] == BUDGET, c
    time.sleep(0.3)
    assert SINK_TOTAL[0] <= BUDGET, SINK_TOTAL[0]


def main():
    make_pki()
    tls_upstream()
    sink_upstream()
    port = 18000
    failed = []
    P = Proxy("ask", port)
    for fn in CASES:
        if args.cases and fn.__name__ not in args.cases:
            continue
        try:
            fn(P)
            print("ok   " + fn.__name__)
        except Exception as e:  # report and go on
            failed.append(fn.__name__)
            print("FAIL %s: %r" % (fn.__name__, e))
    P.stop()
    for mode, env in (("splice", {}), ("copy", {"AGENTSAFE_PROXY_NO_SPLICE": "1"})):
        for fn in (budget_cut_at_the_exact_byte, budget_closes_open_tunnels_to_the_host,
                   budget_counts_bytes_sent_with_the_connect):
            name = "%s_%s" % (fn.__name__, mode)
            if args.cases and fn.__name__ not in args.cases and name not in args.cases:
                continue
            port += 1
            B = Proxy("budget-%s-%d" % (mode, port), port, env)
            try:
                fn(B)
                print("ok   " + name)
            except Exception as e:
                failed.append(name)
                print("FAIL %s: %r" % (name, e))
            B.stop()
    if failed:
        print("FAILED: " + ", ".join(failed))
        sys.exit(1)


main()

#!/usr/bin/env python3
"""TLS inspection suite (run.sh made the network namespace). Upstreams on
127.0.0.20-22 serve TLS with a test CA (python ssl; git http-backend for
git.test), a self-signed certificate, and a certificate for another name.
The real proxy runs with a session CA minted by certs/ (mint_ca). Every case
asserts what the client saw, what the upstream received, and the egress.log
records. Exit status 1 when any case fails."""

import argparse
import base64
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

A = argparse.ArgumentParser()
A.add_argument("--bin", required=True)
A.add_argument("--work", required=True)
A.add_argument("-k", default="", help="run only cases whose name contains this")
ARGS = A.parse_args()
W = ARGS.work
BIN = ARGS.bin
PORT = 3128
UP = "127.0.0.20"        # api.test, git.test, other.test
UP_SELF = "127.0.0.21"   # self.test: self-signed
UP_WRONG = "127.0.0.22"  # wrong.test: a certificate for another name
UP_CERTREQ = "127.0.0.23"  # certreq.test: demands a client certificate

SECRET = "s3cr3t-token-for-api-only-7c1d"
GIT_SECRET = "ghp_gitsecretvalue0123456789"
HDR_SECRET = "hdr-secret-from-command-91f"
PLACEHOLDER = "agentsafe-API_TOKEN-" + "5f0c" * 8
RANDOM = PLACEHOLDER.rsplit("-", 1)[1]
# The launcher's built-in binding of ANTHROPIC_API_KEY, as it hands it to
# the proxy (here bound to the api.test stand-in).
BUILTIN_SECRET = "sk-ant-builtin-real-value-3e9a"
REFRESH_OLD = "refresh-old-token-0a1"
REFRESH_NEW = "refresh-new-token-0b2"
REFRESH_NEWER = "refresh-newer-token-0c3"
BUILTIN_PH = "agentsafe-ANTHROPIC_API_KEY-" + "a1b2" * 8
# Claude Code's OAuth login as the launcher hands it to the proxy: the real
# tokens (ACC[0], REF[0]) stay here, the client holds placeholders that
# keep the tokens' type prefix; token.test stands in for the token
# endpoint and issues ACC[n]/REF[n] on the n-th refresh.
ACC = ["sk-ant-oat01-real-access-%d-9d3e1f" % i for i in range(6)]
REF = ["sk-ant-ort01-real-refresh-%d-77ab0c" % i for i in range(6)]
ACC_PH = "sk-ant-oat01-agentsafe-CLAUDE_OAUTH_ACCESS-" + "c0de" * 8
REF_PH = "sk-ant-ort01-agentsafe-CLAUDE_OAUTH_REFRESH-" + "beef" * 8
TOKEN_URL = "https://token.test/v1/oauth/token"
TOKENS = {"n": 0}
WS_SECRET = "ws-header-secret-5d2e"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# GH_TOKEN: a placeholder bound to gh.test (a stand-in for github.com that
# runs git http-backend behind HTTP Basic auth); git sends it base64-encoded.
GH_SECRET = "ghp_realGitHubTokenValue0123456789ab"
GH_PH = "agentsafe-GH_TOKEN-" + "9e7d" * 8
GH_RANDOM = GH_PH.rsplit("-", 1)[1]
# `command:` credentials whose re-run fails: exits non-zero (fail1), prints
# nothing (fail2).
FAIL_OLD = {"fail1.test": "fail1-old-token-4d2", "fail2.test": "fail2-old-token-5e3"}
FAIL1_NEW = "fail1-new-token-never-used-6f4"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def path(*p):
    return os.path.join(W, *p)


# ---------------------------------------------------------------- PKI

def make_pki():
    def o(*a):
        sh("openssl", *a, cwd=W)
    o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", "upca.key", "-subj", "/CN=Upstream Test CA", "-days", "2",
      "-addext", "basicConstraints=critical,CA:TRUE", "-out", "upca.pem")
    for name, sans in (("srv", "DNS:api.test,DNS:git.test,DNS:other.test,DNS:certreq.test,DNS:refresh.test,"
                       "DNS:token.test,DNS:ws.test,DNS:budget.test,DNS:wsbudget.test,"
                       "DNS:gh.test,DNS:fail1.test,DNS:fail2.test"),
                       ("wrong", "DNS:nottheone.test")):
        o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", name + ".key", "-subj", "/CN=" + name, "-out", name + ".csr")
        with open(path(name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % sans)
        o("x509", "-req", "-in", name + ".csr", "-CA", "upca.pem", "-CAkey", "upca.key",
          "-CAcreateserial", "-days", "1", "-extfile", name + ".ext", "-out", name + ".pem")
    o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", "self.key", "-subj", "/CN=self.test", "-days", "1",
      "-addext", "subjectAltName=DNS:self.test", "-out", "self.pem")
    # The session CA, minted by the product code for the inspected hosts.
    sh(os.path.join(BIN, "mint_ca"), path("session-ca.pem"), path("session-ca.key"), "3600",
       "api.test", "git.test", "other.test", "self.test", "wrong.test", "certreq.test",
       "refresh.test", "token.test", "ws.test", "budget.test",
       "wsbudget.test", "gh.test", "fail1.test", "fail2.test")


# ---------------------------------------------------------------- upstreams

SEEN = []  # (host, method, path, headers dict, body length) per request
SEEN_LOCK = threading.Lock()


# ---------------------------------------------------------------- WebSocket
# A minimal RFC 6455 implementation (stdlib only): handshake and frames.

def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_mask(key, data):
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def ws_frame(opcode, payload, mask):
    n = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + ws_mask(key, payload)


def ws_read_frame(read):
    """(opcode, payload) of the next frame; read(n) returns exactly n bytes."""
    b0, b1 = read(2)
    n = b1 & 0x7f
    if n == 126:
        n = int.from_bytes(read(2), "big")
    elif n == 127:
        n = int.from_bytes(read(8), "big")
    key = read(4) if b1 & 0x80 else None
    data = read(n)
    if key:
        data = ws_mask(key, data)
    return b0 & 0x0f, data


def ws_upstream(h):
    """The upstream's side of an upgrade: it switches whatever was asked
    (a careless server), so only the proxy stands between the client and
    an h2c or unrequested switch. /ws/h2c answers a websocket request
    with another protocol. Then: a welcome frame, and echo until close."""
    asked = h.headers.get("Upgrade") or "websocket"
    proto = "h2c" if h.path.startswith("/ws/h2c") else asked
    h.send_response(101)
    h.send_header("Upgrade", proto)
    h.send_header("Connection", "Upgrade")
    key = h.headers.get("Sec-WebSocket-Key")
    if key:
        h.send_header("Sec-WebSocket-Accept", ws_accept(key))
    h.end_headers()
    h.close_connection = True
    h.wfile.write(ws_frame(0x1, b"welcome", False))
    h.wfile.flush()

    def read(n):
        d = h.rfile.read(n)
        if len(d) != n:
            raise EOFError
        return d
    try:
        while True:
            op, data = ws_read_frame(read)
            if op == 0x8:
                h.wfile.write(ws_frame(0x8, data, False))
                h.wfile.flush()
                return
            if op == 0x1 and data.startswith(b"flood "):
                for i in range(int(data[6:])):
                    h.wfile.write(ws_frame(0x2, bytes([i]) * (1 << 20), False))
                h.wfile.flush()
                continue
            h.wfile.write(ws_frame(op, data, False))
            h.wfile.flush()
    except (EOFError, OSError, ValueError):
        pass


def git_backend(h, body):
    env = dict(os.environ)
    p, _, q = h.path.partition("?")
    env.update({"GIT_PROJECT_ROOT": path("repos"), "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": p, "QUERY_STRING": q, "REQUEST_METHOD": h.command,
                "CONTENT_TYPE": h.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GIT_PROTOCOL": h.headers.get("Git-Protocol", ""),
                "REMOTE_ADDR": "127.0.0.1"})
    r = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
    head, _, out = r.stdout.partition(b"\r\n\r\n")
    status = 200
    hdrs = []
    for line in head.split(b"\r\n"):
        k, _, v = line.decode().partition(":")
        if k.lower() == "status":
            status = int(v.split()[0])
        elif k:
            hdrs.append((k, v.strip()))
    h.send_response(status)
    for k, v in hdrs:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(out)))
    h.end_headers()
    h.wfile.write(out)


def token_endpoint(h, body):
    """OAuth token endpoint stand-in: a refresh with the current real
    refresh token gets the next pair. ?chunked answers chunked, ?gzip
    compressed, ?echo echoes the request (a reflecting endpoint)."""
    q = h.path.partition("?")[2]
    try:
        req = json.loads(body)
    except ValueError:
        req = {}
    n = TOKENS["n"]
    if q == "echo" or h.path.startswith("/v1/oauth/token/"):
        out, status = json.dumps({"got": body.decode()}).encode(), 200
    elif req.get("grant_type") == "refresh_token" and req.get("refresh_token") == REF[n]:
        TOKENS["n"] = n + 1
        out, status = json.dumps({
            "token_type": "Bearer", "access_token": ACC[n + 1], "refresh_token": REF[n + 1],
            "expires_in": 28800, "scope": "user:inference user:profile",
            "account": {"uuid": "u-1", "email_address": "dev@example.test"}}).encode(), 200
    else:
        out, status = b'{"error": "invalid_grant"}', 400
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    if q == "gzip":
        import gzip
        out = gzip.compress(out)
        h.send_header("Content-Encoding", "gzip")
    if q == "chunked":
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(0, len(out), 40):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(out[i:i + 40]), out[i:i + 40]))
        h.wfile.write(b"0\r\n\r\n")
        return
    h.send_header("Content-Length", str(len(out)))
    h.end_headers()
    h.wfile.write(out)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def handle_any(self):
        body = self.body()
        host = self.headers.get("Host", "")
        with SEEN_LOCK:
            SEEN.append((host, self.command, self.path, dict(self.headers), len(body), body))
        if host == "git.test":
            git_backend(self, body)
            return
        if host == "token.test":
            token_endpoint(self, body)
            return
        if self.path.startswith("/ws/refuse"):
            # A server that declines the upgrade and keeps the connection.
            self.send_response(426)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "Upgrade" in self.headers or self.path.startswith("/plain/switch"):
            ws_upstream(self)
            return
        if host == "gh.test":
            # As GitHub: Basic with the real token as the password, else 401.
            want = "Basic " + base64.b64encode(("x:" + GH_SECRET).encode()).decode()
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="gh"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            git_backend(self, body)
            return
        if host in ("refresh.test", "fail1.test", "fail2.test"):
            # Only the token in <name>-valid is accepted: 401 otherwise.
            with open(path(host.split(".")[0] + "-valid")) as f:
                valid = f.read().strip()
            ok = self.headers.get("Authorization") == "Bearer " + valid
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = ("%s %s host=%s len=%d\n" % (self.command, self.path, host, len(body))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, *a):
        pass


def serve(addr, cert, key, client_cert=False):
    srv = http.server.ThreadingHTTPServer((addr, 443), Handler)
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # refused handshakes are expected
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path(cert), path(key))
    if client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(path("upca.pem"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def make_repos():
    os.makedirs(path("repos"))
    for name in ("repo.git", "allowed.git", "gh.git"):
        sh("git", "init", "-q", "--bare", "-b", "main", path("repos", name))
        sh("git", "-C", path("repos", name), "config", "http.receivepack", "true")
    seed = path("seed")
    sh("git", "init", "-q", "-b", "main", seed)
    with open(os.path.join(seed, "README"), "w") as f:
        f.write("seed\n")
    sh("git", "-C", seed, "add", "README")
    sh("git", "-C", seed, "-c", "user.name=t", "-c", "user.email=t@t.test", "commit", "-qm", "seed")
    for name in ("repo.git", "allowed.git", "gh.git"):
        sh("git", "-C", seed, "push", "-q", path("repos", name), "main")


# ---------------------------------------------------------------- proxy

POLICY = """\
version: 1
allow:
  - host: api.test
    inspect: true
    http:
      - methods: [GET, HEAD]
        paths: ["/ok/**", "/q"]
      - methods: [POST, PUT]
        paths: ["/upload", "/ok/*"]
  - host: git.test
    inspect: true
    http:
      - methods: [GET]
        paths: ["/*.git/info/refs"]
      - methods: [POST]
        paths: ["/*.git/git-upload-pack", "/allowed.git/git-receive-pack"]
  - host: other.test
    inspect: true
  - host: self.test
    inspect: true
  - host: wrong.test
    inspect: true
  - host: certreq.test
    inspect: true
  - host: refresh.test
    inspect: true
  - host: token.test
    inspect: true
  - host: budget.test
    inspect: true
    upload_budget: 64KiB
  - host: wsbudget.test
    inspect: true
    upload_budget: 64KiB
    http:
      - methods: [GET]
        paths: ["/ws/**"]
        websocket: true
  - host: ws.test
    inspect: true
    http:
      - methods: [GET]
        paths: ["/ws/**"]
        websocket: true
      - methods: [GET]
        paths: ["/plain/**"]
  - host: gh.test
    inspect: true
  - host: fail1.test
    inspect: true
  - host: fail2.test
    inspect: true
  - host: 127.0.0.20
  - host: 127.0.0.21
  - host: 127.0.0.22
  - host: 127.0.0.23
credentials:
  API_TOKEN:
    env: AS_TEST_API_TOKEN
    hosts: [api.test]
    placeholder: true
  GIT_TOKEN:
    file: %(work)s/git-token
    hosts: [git.test]
    basic: x-access-token
  HDR_TOKEN:
    command: "printf %%s %(hdr)s"
    hosts: [other.test]
    header: "X-Api-Key: {}"
  REFRESH_TOKEN:
    command: "cat %(work)s/refresh-token"
    hosts: [refresh.test]
    header: "Authorization: Bearer {}"
  WS_TOKEN:
    command: "printf %%s %(ws)s"
    hosts: [ws.test]
    header: "X-Ws-Key: {}"
  GH_TOKEN:
    env: AS_TEST_GH_TOKEN
    hosts: [gh.test]
    placeholder: true
  FAIL1_TOKEN:
    command: "sh %(work)s/fail1.sh"
    hosts: [fail1.test]
    header: "Authorization: Bearer {}"
  FAIL2_TOKEN:
    command: "sh %(work)s/fail2.sh"
    hosts: [fail2.test]
    header: "Authorization: Bearer {}"
defaults:
  ports: [443]
limits:
  header_timeout: 3s
  idle_timeout: 20s
"""

HOSTS = """\
127.0.0.20 api.test git.test other.test refresh.test token.test ws.test budget.test wsbudget.test gh.test fail1.test fail2.test
127.0.0.21 self.test
127.0.0.22 wrong.test
127.0.0.23 certreq.test
"""


class Proxy:
    def __init__(self):
        with open(path("policy.yaml"), "w") as f:
            f.write(POLICY % {"work": W, "hdr": HDR_SECRET, "ws": WS_SECRET})
        with open(path("git-token"), "w") as f:
            f.write(GIT_SECRET + "\n")
        for name in ("refresh-token", "refresh-valid"):
            with open(path(name), "w") as f:
                f.write(REFRESH_OLD + "\n")
        for host, old in FAIL_OLD.items():
            name = host.split(".")[0]
            with open(path(name + ".sh"), "w") as f:
                f.write("printf %%s %s\n" % old)
            with open(path(name + "-valid"), "w") as f:
                f.write(old + "\n")
        with open(path("hosts"), "w") as f:
            f.write(HOSTS)
        self.log = path("egress.log")
        self.errf = open(path("proxy.stderr"), "w+")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env["AS_TEST_API_TOKEN"] = SECRET
        env["AGENTSAFE_PLACEHOLDER_API_TOKEN"] = PLACEHOLDER
        env["ANTHROPIC_API_KEY"] = BUILTIN_SECRET
        env["AGENTSAFE_PLACEHOLDER_ANTHROPIC_API_KEY"] = BUILTIN_PH
        env["AGENTSAFE_BUILTIN_CREDENTIALS"] = (
            "ANTHROPIC_API_KEY=api.test;CLAUDE_OAUTH_ACCESS=api.test;"
            "CLAUDE_OAUTH_REFRESH=token.test/v1/oauth/token")
        env["CLAUDE_OAUTH_ACCESS"] = ACC[0]
        env["CLAUDE_OAUTH_REFRESH"] = REF[0]
        env["AGENTSAFE_PLACEHOLDER_CLAUDE_OAUTH_ACCESS"] = ACC_PH
        env["AGENTSAFE_PLACEHOLDER_CLAUDE_OAUTH_REFRESH"] = REF_PH
        env["AGENTSAFE_OAUTH_ROTATE"] = (
            "token.test/v1/oauth/token,CLAUDE_OAUTH_ACCESS,CLAUDE_OAUTH_REFRESH")
        env["AGENTSAFE_OAUTH_STORE"] = path("oauth-store.json")
        open(path("oauth-store.json"), "w").close()
        env["AS_TEST_GH_TOKEN"] = GH_SECRET
        env["AGENTSAFE_PLACEHOLDER_GH_TOKEN"] = GH_PH
        self.p = subprocess.Popen(
            [os.path.join(BIN, "agentsafe-proxy"), "--policy", path("policy.yaml"),
             "--listen", "127.0.0.1:%d" % PORT, "--log", self.log, "--session", "insp",
             "--hosts", path("hosts"), "--inspect-ca", path("session-ca.pem"),
             "--inspect-key", path("session-ca.key"), "--ca-bundle", path("upca.pem"),
             "--workers", "2"],
            stderr=self.errf, env=env)
        deadline = time.time() + 20
        while "listening on" not in self.stderr():
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError("proxy did not start: " + self.stderr())
            time.sleep(0.05)
        self.seen = 0

    def stderr(self):
        self.errf.flush()
        with open(self.errf.name) as f:
            return f.read()

    def records(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def new(self, pred, want=1, timeout=5.0):
        """Records since the last call, once `want` of them match pred."""
        deadline = time.time() + timeout
        while True:
            recs = self.records()[self.seen:]
            if len([r for r in recs if pred(r)]) >= want or time.time() > deadline:
                self.seen += len(recs)
                return recs
            time.sleep(0.05)

    def mark(self):
        self.seen = len(self.records())

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=15)
        return self.p.returncode


def only(recs, **kw):
    hits = [r for r in recs if all(r.get(k) == v for k, v in kw.items())]
    assert len(hits) == 1, "want one record %r, got %d in %s" % (kw, len(hits), recs)
    return hits[0]


def seen_since(n):
    with SEEN_LOCK:
        return list(SEEN[n:])


def curl(*args, ca=True):
    cmd = ["curl", "-sS", "--max-time", "20", "-x", "http://127.0.0.1:%d" % PORT,
           "-o", "/dev/stdout", "-w", "\\n%{http_code}"]
    if ca:
        cmd += ["--cacert", path("session-ca.pem")]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.stderr


def tunnel(host):
    """CONNECT, then TLS to the proxy's leaf for host. Returns the socket."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 200"), buf
    ctx = ssl.create_default_context(cafile=path("session-ca.pem"))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx.wrap_socket(s, server_hostname=host)


def read_all(s):
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (ssl.SSLError, OSError):
        pass
    return out


# ---------------------------------------------------------------- cases

def curl_get_allowed_and_logged(P):
    n = len(SEEN)
    code, body, err = curl("https://api.test/ok/a/b?token=zzz", "https://api.test/ok/c")
    assert code == 200, (code, body, err)
    assert "GET /ok/a/b?token=zzz host=api.test" in body, body
    recs = P.new(lambda r: r["event"] == "close")
    reqs = [r for r in recs if r["event"] == "request"]
    assert len(reqs) == 2, recs
    # Both requests in one kept-alive tunnel: one id, two records.
    assert reqs[0]["id"] == reqs[1]["id"], reqs
    r = reqs[0]
    assert r["method"] == "GET" and r["path"] == "/ok/a/b" and r["status"] == 200, r
    assert "zzz" not in json.dumps(recs), "the query string reached the log"
    assert r["rule"].startswith("GET,HEAD /ok/**,/q (") and \
        r["rule"].endswith("/policy.yaml:6)"), r
    assert r["bytes_up"] > 0 and r["bytes_down"] > 0, r
    assert only(recs, event="open")["message"] == "TLS inspected"
    assert len(seen_since(n)) == 2


def path_and_method_rules(P):
    n = len(SEEN)
    code, body, _ = curl("https://api.test/secret")
    assert code == 403 and "path_not_allowed" in body, (code, body)
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "path_not_allowed" and d["path"] == "/secret" and d["status"] == 403, d
    code, body, _ = curl("-X", "DELETE", "https://api.test/ok/a")
    assert code == 403 and "method_not_allowed" in body, (code, body)
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "method_not_allowed" and d["method"] == "DELETE", d
    # `*` is one segment: /ok/* allows POST /ok/x, not /ok/x/y.
    code, _, _ = curl("-d", "x", "https://api.test/ok/x")
    assert code == 200
    code, body, _ = curl("-d", "x", "https://api.test/ok/x/y")
    assert code == 403 and "path_not_allowed" in body, (code, body)
    P.new(lambda r: r["event"] == "close", want=2)
    assert [s[2] for s in seen_since(n)] == ["/ok/x"], seen_since(n)


def host_header_must_equal_sni(P):
    n = len(SEEN)
    code, body, _ = curl("-H", "Host: other.test", "https://api.test/ok/a")
    assert code == 421 and "host_mismatch" in body, (code, body)
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "host_mismatch" and d["sni"] == "api.test", d
    # A name that extends the tunnel's host is another host.
    code, body, _ = curl("-H", "Host: api.test.other.test", "https://api.test/ok/a")
    assert code == 421 and "host_mismatch" in body, (code, body)
    P.new(lambda r: r["event"] == "close")
    # The same with an explicit port, and with a port that is not the tunnel's.
    code, _, _ = curl("-H", "Host: api.test:443", "https://api.test/ok/a")
    assert code == 200
    code, _, _ = curl("-H", "Host: api.test:8443", "https://api.test/ok/a")
    assert code == 421
    P.new(lambda r: r["event"] == "close", want=2)
    assert len(seen_since(n)) == 1, seen_since(n)


def h2_preface_refused(P):
    n = len(SEEN)
    s = tunnel("api.test")
    # Only http/1.1 is offered, whatever the client asks for.
    assert s.selected_alpn_protocol() in (None, "http/1.1"), s.selected_alpn_protocol()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 400") and b"HTTP/2" in out, out
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "bad_request", d
    assert seen_since(n) == []


def pipelined_second_request_decided(P):
    n = len(SEEN)
    s = tunnel("api.test")
    s.sendall(b"GET /ok/1 HTTP/1.1\r\nHost: api.test\r\n\r\n"
              b"GET /secret HTTP/1.1\r\nHost: api.test\r\n\r\n")
    out = read_all(s)
    assert out.count(b"HTTP/1.1 200") == 1 and b"HTTP/1.1 403" in out, out
    assert b"path_not_allowed" in out
    recs = P.new(lambda r: r["event"] == "close")
    assert only(recs, event="request")["path"] == "/ok/1"
    assert only(recs, event="deny")["path"] == "/secret"
    assert [x[2] for x in seen_since(n)] == ["/ok/1"], seen_since(n)


def smuggling_in_the_tunnel_refused(P):
    n = len(SEEN)
    s = tunnel("api.test")
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /secret HTTP/1.1\r\nHost: api.test\r\n\r\n")
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 400"), out
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "bad_request", d
    assert seen_since(n) == []


def large_body_streams_and_refused_one_never_leaves(P):
    big = path("big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20 * 1024 * 1024))
    n = len(SEEN)
    code, body, err = curl("--data-binary", "@" + big, "-H", "Content-Type: application/x",
                           "https://api.test/upload")
    assert code == 200 and "len=20971520" in body, (code, body, err)
    r = only(P.new(lambda r: r["event"] == "close", timeout=20), event="request")
    assert r["bytes_up"] > 20971520 and r["status"] == 200, r
    code, body, _ = curl("--data-binary", "@" + big, "https://api.test/elsewhere")
    assert code in (403, 0), (code, body)
    d = only(P.new(lambda r: r["event"] == "close", timeout=20), event="deny")
    assert d["reason"] == "path_not_allowed", d
    assert [x[4] for x in seen_since(n)] == [20971520], [x[:5] for x in seen_since(n)]


def upstream_certificate_failures(P):
    for host, why in (("self.test", "self-signed"), ("wrong.test", "mismatch")):
        code, body, _ = curl("https://%s/" % host)
        assert code == 502 and "upstream_cert_invalid" in body, (host, code, body)
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "upstream_cert_invalid" and why in d["message"], d


def upstream_demanding_a_client_certificate(P):
    # The proxy has none to give: the upstream refuses the handshake and
    # the client's request is answered 502, nothing sent.
    n = len(SEEN)
    code, body, _ = curl("https://certreq.test/")
    assert code == 502, (code, body)
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    # TLS 1.3: the proxy's handshake ends before the server's alert, which
    # arrives before the request or after it. The alert names the missing
    # certificate; a close that beat it (seen once under load in CI) can
    # only say the upstream closed.
    assert d["reason"] in ("upstream_error", "upstream_closed"), d
    assert "certificate" in d["message"] or (
        d["reason"] == "upstream_closed" and "closed" in d["message"]), d
    assert seen_since(n) == []


def client_without_the_session_ca_fails_closed(P):
    n = len(SEEN)
    code, _, err = curl("https://api.test/ok/a", ca=False)
    assert code == 0 and "certificate" in err, (code, err)
    P.new(lambda r: r["event"] == "deny")
    assert seen_since(n) == []


def git_fetch_works_push_refused_by_path_rule(P):
    env = dict(os.environ, GIT_SSL_CAINFO=path("session-ca.pem"),
               HTTPS_PROXY="http://127.0.0.1:%d" % PORT, GIT_TERMINAL_PROMPT="0",
               HOME=W)
    for name in ("repo", "allowed"):
        dst = path("clone-" + name)
        r = subprocess.run(["git", "clone", "-q", "https://git.test/%s.git" % name, dst],
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(dst, "new"), "w") as f:
            f.write("change\n")
        sh("git", "-C", dst, "add", "new")
        sh("git", "-C", dst, "-c", "user.name=t", "-c", "user.email=t@t.test", "commit", "-qm", "c")
    P.mark()
    r = subprocess.run(["git", "-C", path("clone-repo"), "push", "origin", "main"],
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "403" in r.stderr, r.stderr
    recs = P.new(lambda r: r.get("reason") == "path_not_allowed")
    d = only(recs, event="deny", reason="path_not_allowed")
    assert d["path"] == "/repo.git/git-receive-pack" and d["method"] == "POST", d
    r = subprocess.run(["git", "-C", path("clone-allowed"), "push", "origin", "main"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    recs = P.new(lambda r: r.get("path") == "/allowed.git/git-receive-pack")
    ok = only(recs, event="request", path="/allowed.git/git-receive-pack")
    assert ok["status"] == 200 and ok["rule"].endswith("/policy.yaml:15)"), ok
    head = sh("git", "--git-dir", path("repos", "allowed.git"), "log", "--format=%s", "-1").stdout
    assert head.strip() == "c", head
    head = sh("git", "--git-dir", path("repos", "repo.git"), "log", "--format=%s", "-1").stdout
    assert head.strip() == "seed", head


def python_and_node_clients(P):
    code = (
        "import urllib.request, ssl\n"
        "ctx = ssl.create_default_context(cafile=%r)\n"
        "o = urllib.request.build_opener(urllib.request.ProxyHandler({'https': 'http://127.0.0.1:%d'}),"
        " urllib.request.HTTPSHandler(context=ctx))\n"
        "print(o.open('https://api.test/ok/py').read().decode())\n"
    ) % (path("session-ca.pem"), PORT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "GET /ok/py host=api.test" in r.stdout, r
    only(P.new(lambda r: r["event"] == "close"), event="request", path="/ok/py")
    if subprocess.run(["sh", "-c", "command -v node"], capture_output=True).returncode != 0:
        print("  (node missing: node client skipped)")
        return
    # Node 20's fetch has no proxy support: its https client over a CONNECT
    # tunnel, trusting the session CA through NODE_EXTRA_CA_CERTS as the
    # container does.
    js = (
        "const http=require('http'),https=require('https');"
        "http.request({host:'127.0.0.1',port:%d,method:'CONNECT',path:'api.test:443'})"
        ".on('connect',(res,sock)=>{https.get({host:'api.test',path:'/ok/node',socket:sock,"
        "agent:false},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>{console.log(r.statusCode,b);"
        "process.exit(0)})}).on('error',e=>{console.error(e.message);process.exit(1)})}).end();"
    ) % PORT
    r = subprocess.run(["node", "-e", js], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, NODE_EXTRA_CA_CERTS=path("session-ca.pem")))
    assert r.returncode == 0 and "200 GET /ok/node" in r.stdout, r
    only(P.new(lambda r: r["event"] == "close"), event="request", path="/ok/node")


def placeholder_swapped_only_toward_bound_host(P):
    n = len(SEEN)
    code, body, _ = curl("-H", "Authorization: Bearer " + PLACEHOLDER,
                         "https://api.test/ok/cred?k=" + PLACEHOLDER)
    assert code == 200, (code, body)
    got = seen_since(n)
    assert len(got) == 1
    host, method, p, hdrs, _, _ = got[0]
    assert hdrs["Authorization"] == "Bearer " + SECRET, hdrs
    assert p == "/ok/cred?k=" + SECRET, p
    r = only(P.new(lambda r: r["event"] == "close"), event="request")
    assert r["credential"] == "API_TOKEN", r


def header_injected_for_bound_hosts(P):
    n = len(SEEN)
    code, _, _ = curl("-H", "X-Api-Key: mine", "https://other.test/h")
    assert code == 200
    code, _, _ = curl("https://git.test/repo.git/info/refs?service=git-upload-pack")
    assert code == 200
    got = seen_since(n)
    assert got[0][3]["X-Api-Key"] == HDR_SECRET, got[0][3]
    assert list(got[0][3]).count("X-Api-Key") == 1
    import base64
    want = "Basic " + base64.b64encode(("x-access-token:" + GIT_SECRET).encode()).decode()
    assert got[1][3]["Authorization"] == want, got[1][3]
    recs = P.new(lambda r: r["event"] == "close", want=2)
    assert {r["credential"] for r in recs if r["event"] == "request"} == {"HDR_TOKEN", "GIT_TOKEN"}


def placeholder_elsewhere_is_misuse(P):
    n = len(SEEN)
    attempts = [
        ("header", ["-H", "Authorization: Bearer " + PLACEHOLDER, "https://other.test/x"]),
        ("query", ["https://other.test/x?leak=" + PLACEHOLDER]),
        ("split", ["-H", "X-A: agentsafe-API_TOKEN-", "-H", "X-B: " + RANDOM, "https://other.test/x"]),
        ("random part, upper case", ["-H", "X-B: " + RANDOM.upper(), "https://other.test/x"]),
        ("body", ["-d", "token=" + PLACEHOLDER, "https://git.test/repo.git/git-upload-pack"]),
    ]
    for what, args in attempts:
        code, body, _ = curl(*args)
        assert code == 403 and "credential_misuse" in body, (what, code, body)
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "credential_misuse" and d["credential"] == "API_TOKEN", (what, d)
    assert seen_since(n) == [], seen_since(n)
    # Outside inspected tunnels: a CONNECT target and a plain-HTTP request.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    t = "agentsafe-api_token-%s.other.test:443" % RANDOM
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, t)).encode())
    assert read_all(s).startswith(b"HTTP/1.1 403"), "CONNECT with a placeholder"
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(("GET http://api.test/?t=%s HTTP/1.1\r\nHost: api.test\r\n\r\n" % PLACEHOLDER).encode())
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 403") and b"credential_misuse" in out, out
    recs = P.new(lambda r: r["event"] == "deny", want=2)
    assert [r["reason"] for r in recs if r["event"] == "deny"] == ["credential_misuse"] * 2, recs
    assert P.stderr().count("CREDENTIAL MISUSE") >= 7


def builtin_binding_swapped_toward_its_host_only(P):
    n = len(SEEN)
    code, body, _ = curl("-H", "x-api-key: " + BUILTIN_PH, "https://api.test/ok/builtin")
    assert code == 200, (code, body)
    got = seen_since(n)
    assert len(got) == 1 and got[0][3]["x-api-key"] == BUILTIN_SECRET, got
    r = only(P.new(lambda r: r["event"] == "close"), event="request")
    assert r["credential"] == "ANTHROPIC_API_KEY", r
    code, body, _ = curl("-H", "Authorization: Bearer " + BUILTIN_PH, "https://other.test/x")
    assert code == 403 and "credential_misuse" in body, (code, body)
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "credential_misuse" and d["credential"] == "ANTHROPIC_API_KEY", d
    assert len(seen_since(n)) == 1


def command_credential_rerun_on_401(P):
    def rotate(v):
        for name in ("refresh-token", "refresh-valid"):
            with open(path(name), "w") as f:
                f.write(v + "\n")
    n = len(SEEN)
    assert curl("https://refresh.test/a")[0] == 200
    # The token expires (the host's `gh auth token` now says another).
    rotate(REFRESH_NEW)
    assert curl("https://refresh.test/b")[0] == 401  # the old one, once
    assert curl("https://refresh.test/c")[0] == 200  # re-run: the new one
    auth = [h["Authorization"] for _, _, _, h, _, _ in seen_since(n)]
    assert auth == ["Bearer " + v for v in (REFRESH_OLD, REFRESH_OLD, REFRESH_NEW)], auth
    # At most once per interval: a second expiry right away is not re-run.
    rotate(REFRESH_NEWER)
    assert curl("https://refresh.test/d")[0] == 401
    assert curl("https://refresh.test/e")[0] == 401
    auth = [h["Authorization"] for _, _, _, h, _, _ in seen_since(n)][3:]
    assert auth == ["Bearer " + REFRESH_NEW] * 2, auth
    recs = P.new(lambda r: r["event"] == "close", want=5)
    assert [r.get("credential") for r in recs if r["event"] == "request"] == ["REFRESH_TOKEN"] * 5


def refresh(token, query="", extra=()):
    body = json.dumps({"grant_type": "refresh_token", "refresh_token": token,
                       "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
                       "scope": "user:inference user:profile"})
    code, out, err = curl("--compressed", "-H", "Content-Type: application/json",
                          "--data-binary", body, *extra, TOKEN_URL + query)
    try:
        return code, json.loads(out), out
    except ValueError:
        return code, None, out + err


def oauth_refresh_hands_out_new_placeholders_only(P):
    n = len(SEEN)
    # Claude Code's refresh, as its client sends it (JSON body, axios).
    code, j, raw = refresh(REF_PH)
    assert code == 200, (code, raw)
    got = seen_since(n)
    assert len(got) == 1 and json.loads(got[0][5])["refresh_token"] == REF[0], got
    assert "Accept-Encoding" not in got[0][3], got[0][3]  # the answer must be readable
    acc1, ref1 = j["access_token"], j["refresh_token"]
    assert acc1.startswith("sk-ant-oat01-agentsafe-CLAUDE_OAUTH_ACCESS-") and acc1 != ACC_PH, j
    assert ref1.startswith("sk-ant-ort01-agentsafe-CLAUDE_OAUTH_REFRESH-") and ref1 != REF_PH, j
    assert j["expires_in"] == 28800 and j["account"]["uuid"] == "u-1", j
    assert not any(t in raw for t in ACC + REF), raw
    r = only(P.new(lambda r: r["event"] == "close"), event="request")
    assert r["credential"] == "CLAUDE_OAUTH_REFRESH" and "rotated" in r["message"], r
    # The new access placeholder, and the retired one, stand for ACC[1].
    for ph in (acc1, ACC_PH):
        assert curl("-H", "Authorization: Bearer " + ph, "https://api.test/ok/oauth")[0] == 200
    got = seen_since(n)[1:]
    assert [g[3]["Authorization"] for g in got] == ["Bearer " + ACC[1]] * 2, got
    # A chunked answer to the next refresh, with the new refresh placeholder.
    code, j, raw = refresh(ref1, "?chunked")
    assert code == 200 and json.loads(seen_since(n)[-1][5])["refresh_token"] == REF[1], raw
    assert j["access_token"].startswith("sk-ant-oat01-agentsafe-") and ACC[2] not in raw, raw
    # The launcher's file holds the newest real pair, for the user's login.
    with open(path("oauth-store.json")) as f:
        store = json.load(f)
    assert (store["access_token"], store["refresh_token"], store["expires_in"]) == \
        (ACC[2], REF[2], 28800), store
    P.new(lambda r: r["event"] == "close", want=3)


def oauth_refresh_token_goes_nowhere_else(P):
    n = len(SEEN)
    ph = REF_PH  # retired by now, still recognised
    # To another host, to another path of the token host (revoke: the
    # agent must not log the user out), in a query string.
    for what, args in [
            ("api host", ["-H", "Authorization: Bearer " + ph, "https://api.test/ok/x"]),
            ("revoke", ["--data-binary", '{"token": "%s"}' % ph, TOKEN_URL + "/revoke"]),
            ("query", [TOKEN_URL.replace("/v1/oauth/token", "/v1/x") + "?t=" + ph])]:
        code, body, _ = curl(*args)
        assert code == 403 and "credential_misuse" in body, (what, code, body)
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["credential"] == "CLAUDE_OAUTH_REFRESH", (what, d)
    assert seen_since(n) == []
    # A reflecting endpoint: the swapped token comes back, never to the client.
    code, _, raw = refresh(REF_PH, "?echo")
    assert code == 502 and not any(t in raw for t in REF), (code, raw)
    # A compressed answer cannot be rewritten: refused, not passed.
    code, _, raw = refresh(REF_PH, "?gzip")
    assert code == 502, (code, raw)
    # A token request body the proxy cannot take whole.
    code, body, _ = curl("-H", "Transfer-Encoding: chunked", "--data-binary",
                         '{"refresh_token": "%s"}' % REF_PH, TOKEN_URL)
    assert code == 413, (code, body)
    with open(path("big.json"), "w") as f:
        f.write('{"pad": "%s", "refresh_token": "%s"}' % ("x" * 70000, REF_PH))
    code, body, _ = curl("--data-binary", "@" + path("big.json"), TOKEN_URL)
    assert code == 413, (code, body)
    assert [g[2] for g in seen_since(n)] == ["/v1/oauth/token?echo", "/v1/oauth/token?gzip"]
    recs = P.new(lambda r: r["event"] == "close", want=4)
    assert [r["status"] for r in recs if r["event"] == "deny"] == [502, 502, 413, 413], recs
# ---------------------------------------------------------------- WebSocket cases

def ws_handshake(host, target, extra=b"", upgrade=b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
                 method=b"GET", then=b""):
    """A tunnel to host, the upgrade request (plus `then`, sent with it);
    returns (socket, response head, bytes after the head, key)."""
    s = tunnel(host)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" +
              upgrade + b"Sec-WebSocket-Key: " + key.encode() +
              b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n" + then)
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            d = s.recv(65536)
        except (ssl.SSLError, OSError):
            d = b""
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head, rest, key


def websocket_refused_without_websocket_true(P):
    # Hostile first: the same handshake toward a path whose entry allows
    # GET but does not say websocket: true, and toward an inspected host
    # without an http: list. The upstream would switch; the proxy refuses.
    n = len(SEEN)
    for host, target, rule in (("ws.test", b"/plain/chat", "GET /plain/** ("),
                               ("other.test", b"/ws/echo", "other.test (")):
        s, head, rest, _ = ws_handshake(host, target)
        out = head + rest + read_all(s)
        assert out.startswith(b"HTTP/1.1 403") and b"bad_request" in out, out
        assert b"websocket: true" in out, out
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "bad_request" and d["status"] == 403, d
        assert d["path"] == target.decode() and d["method"] == "GET", d
        assert d["rule"].startswith(rule) and "websocket: true" in d["message"], d
    assert seen_since(n) == [], seen_since(n)


def websocket_other_upgrades_refused(P):
    # h2c (and anything that is not exactly a WebSocket handshake) is
    # refused even on the path whose entry says websocket: true.
    n = len(SEEN)
    variants = [
        ("h2c", b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", b"GET", "h2c"),
        ("two protocols", b"Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n", b"GET",
         "websocket, h2c"),
        ("two Upgrade headers", b"Upgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n",
         b"GET", "more than one"),
        ("no Connection: upgrade", b"Upgrade: websocket\r\nConnection: keep-alive\r\n", b"GET",
         "without Connection"),
        ("POST", b"Upgrade: websocket\r\nConnection: Upgrade\r\n", b"POST", "is a GET"),
    ]
    for what, upgrade, method, why in variants:
        s, head, rest, _ = ws_handshake("ws.test", b"/ws/echo", upgrade=upgrade, method=method)
        out = head + rest + read_all(s)
        assert out.startswith(b"HTTP/1.1 403") and b"bad_request" in out, (what, out)
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "bad_request" and why in d["message"], (what, d)
    assert seen_since(n) == [], seen_since(n)


def websocket_unrequested_or_wrong_101_refused(P):
    # A 101 to a request that asked for no upgrade, and a 101 to a
    # WebSocket request that switches to another protocol: 502, and not
    # one byte of what follows reaches the client.
    s = tunnel("ws.test")
    s.sendall(b"GET /plain/switch HTTP/1.1\r\nHost: ws.test\r\n\r\n")
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 502") and b"bad_response" in out, out
    assert b"101" not in out.split(b"\r\n\r\n", 1)[0] and b"welcome" not in out, out
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "bad_response" and d["message"] == "upstream switched protocols", d
    s, head, rest, _ = ws_handshake("ws.test", b"/ws/h2c")
    out = head + rest + read_all(s)
    assert out.startswith(b"HTTP/1.1 502") and b"welcome" not in out, out
    d = only(P.new(lambda r: r["event"] == "close"), event="deny")
    assert d["reason"] == "bad_response" and "websocket" in d["message"], d


def websocket_declined_upgrade_is_not_a_tunnel(P):
    # WebSocket smuggling: the upgrade goes to an allowed path, the server
    # declines it (426), and a forbidden request rides behind it. The proxy
    # switches only on a real 101, so the second request is decided (and
    # refused) like any other.
    n = len(SEEN)
    s, head, rest, _ = ws_handshake("ws.test", b"/ws/refuse",
                                    then=b"GET /admin/x HTTP/1.1\r\nHost: ws.test\r\n\r\n")
    out = head + b"\r\n\r\n" + rest + read_all(s)
    assert head.startswith(b"HTTP/1.1 426"), out
    assert b"HTTP/1.1 403" in out and b"path_not_allowed" in out, out
    recs = P.new(lambda r: r["event"] == "close")
    assert only(recs, event="request")["status"] == 426
    assert only(recs, event="deny")["path"] == "/admin/x"
    assert [x[2] for x in seen_since(n)] == ["/ws/refuse"], seen_since(n)


def websocket_upgrade_with_placeholder_is_misuse(P):
    # API_TOKEN is bound to api.test: its placeholder in an upgrade head to
    # ws.test (a header, or the query) is misuse, allowed path or not.
    n = len(SEEN)
    for extra, target in ((b"Authorization: Bearer " + PLACEHOLDER.encode() + b"\r\n", b"/ws/echo"),
                          (b"", b"/ws/echo?t=" + PLACEHOLDER.encode())):
        s, head, rest, _ = ws_handshake("ws.test", target, extra=extra)
        out = head + rest + read_all(s)
        assert out.startswith(b"HTTP/1.1 403") and b"credential_misuse" in out, out
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "credential_misuse" and d["credential"] == "API_TOKEN", d
    assert seen_since(n) == [], seen_since(n)
    assert "CREDENTIAL MISUSE" in P.stderr()


def websocket_allowed_relays_frames_both_ways(P):
    n = len(SEEN)
    # An early frame sent with the handshake waits for the 101, then goes.
    s, head, rest, key = ws_handshake("ws.test", b"/ws/echo",
                                      then=ws_frame(0x1, b"early", True))
    assert head.startswith(b"HTTP/1.1 101"), head
    fields = dict((k.strip().lower(), v.strip()) for k, _, v in
                  (line.decode().partition(":") for line in head.split(b"\r\n")[1:]))
    assert fields.get("sec-websocket-accept") == ws_accept(key), head
    buf = bytearray(rest)

    def read(k):
        while len(buf) < k:
            d = s.recv(65536)
            if not d:
                raise EOFError("tunnel closed")
            buf.extend(d)
        out = bytes(buf[:k])
        del buf[:k]
        return out
    # The upstream's frame that came right behind its 101.
    assert ws_read_frame(read) == (0x1, b"welcome")
    assert ws_read_frame(read) == (0x1, b"early")
    s.sendall(ws_frame(0x1, b"hello through the proxy", True))
    assert ws_read_frame(read) == (0x1, b"hello through the proxy")
    big = os.urandom(3 * 1024 * 1024)  # well past RELAY_BUF_MAX both ways
    s.sendall(ws_frame(0x2, big, True))
    op, data = ws_read_frame(read)
    assert op == 0x2 and data == big, (op, len(data))
    # The server pushes 8 MiB while the client reads nothing for a while:
    # the relay holds back (RELAY_BUF_MAX), then delivers every byte.
    s.sendall(ws_frame(0x1, b"flood 8", True))
    time.sleep(1.0)
    for i in range(8):
        assert ws_read_frame(read) == (0x2, bytes([i]) * (1 << 20)), i
    s.sendall(ws_frame(0x8, b"\x03\xe8bye", True))
    assert ws_read_frame(read) == (0x8, b"\x03\xe8bye")
    s.close()
    recs = P.new(lambda r: r["event"] == "close")
    r = only(recs, event="request")
    assert r["status"] == 101 and r["method"] == "GET" and r["path"] == "/ws/echo", r
    assert r["rule"].startswith("GET /ws/** (") and "WebSocket" in r["message"], r
    assert r["credential"] == "WS_TOKEN", r
    c = only(recs, event="close")
    assert c["reason"] == "eof" and c["bytes_up"] > len(big), c
    assert c["bytes_down"] > len(big) + (8 << 20), c
    got = seen_since(n)
    assert len(got) == 1 and got[0][2] == "/ws/echo", got
    # The credential is injected into the upgrade head like any request's.
    assert got[0][3]["X-Ws-Key"] == WS_SECRET, got[0][3]


def upload_budget_counts_inside_inspected_tunnels(P):
    # Decrypted requests count against the host's budget like tunnelled
    # bytes: the first 64 KiB pass, a byte past them is refused, and so is
    # every later request to the host.
    n = len(SEEN)
    with open(path("40k"), "wb") as f:
        f.write(b"a" * 40000)
    code, body, _ = curl("--data-binary", "@" + path("40k"), "https://budget.test/up")
    assert code == 200 and "len=40000" in body, (code, body)
    # An idle keep-alive tunnel to the host, open while another passes it.
    idle = tunnel("budget.test")
    idle.sendall(b"GET /idle HTTP/1.1\r\nHost: budget.test\r\n\r\n")
    got_idle = b""
    while b"len=0" not in got_idle:
        got_idle += idle.recv(4096)
    P.new(lambda r: r["event"] == "request")
    code, body, err = curl("--data-binary", "@" + path("40k"), "https://budget.test/up")
    assert code == 403 and "upload_budget_exceeded" in body, (code, body, err)
    # The idle tunnel is closed too, with its own record.
    idle.settimeout(5)
    t0 = time.time()
    assert read_all(idle) == b"" and time.time() - t0 < 4, "the idle tunnel stayed open"
    code, body, err = curl("https://budget.test/small")  # refused at CONNECT
    assert "CONNECT tunnel failed, response 403" in err, (code, body, err)
    got = seen_since(n)
    # The cut request never completed: what reached the upstream stops
    # inside the budget (64 KiB less the first request and the heads).
    lens = [g[4] for g in got]
    assert lens[0] == 40000 and all(x < 65536 - 40000 for x in lens[1:]), lens
    recs = P.new(lambda r: r["event"] == "close", want=4)
    d = [r for r in recs if r["event"] == "deny"]
    assert [r["reason"] for r in d] == ["upload_budget_exceeded"] * 2, recs
    closed = [r for r in recs if r["event"] == "close" and
              r.get("message", "").startswith("another connection passed")]
    assert len(closed) == 1 and closed[0]["reason"] == "upload_budget_exceeded", recs
    # A WebSocket's frames count too: past the budget the relay ends.
    s, head, rest, _ = ws_handshake("wsbudget.test", b"/ws/echo")
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(ws_frame(0x2, os.urandom(100000), True))
    read_all(s)
    c = only(P.new(lambda r: r["event"] == "close"), event="close")
    assert c["reason"] == "upload_budget_exceeded" and c["bytes_up"] <= 65536, c
def command_credential_refresh_failure_keeps_old_value(P):
    for host, name, broken in (("fail1.test", "FAIL1_TOKEN", "printf %%s %s; exit 3\n" % FAIL1_NEW),
                               ("fail2.test", "FAIL2_TOKEN", "true\n")):
        short = host.split(".")[0]
        old = FAIL_OLD[host]

        def valid(v):
            with open(path(short + "-valid"), "w") as f:
                f.write(v + "\n")
        n = len(SEEN)
        P.mark()
        assert curl("https://%s/a" % host)[0] == 200
        # The token expires and the command that would renew it fails.
        with open(path(short + ".sh"), "w") as f:
            f.write(broken)
        valid(FAIL1_NEW)
        code, body, err = curl("https://%s/b" % host)
        assert code == 401, (host, code, body, err)  # the 401 reaches the client
        line = "credential %s: refreshing after a 401 failed" % name
        assert P.stderr().count(line) == 1, P.stderr()[-2000:]
        assert curl("https://%s/c" % host)[0] == 401
        valid(old)  # the old value is still the one sent
        assert curl("https://%s/d" % host)[0] == 200
        auth = [h.get("Authorization") for _, _, _, h, _, _ in seen_since(n)]
        assert auth == ["Bearer " + old] * 4, (host, auth)
        recs = P.new(lambda r: r["event"] == "close", want=4)
        reqs = [r for r in recs if r["event"] == "request"]
        assert [r["status"] for r in reqs] == [200, 401, 401, 200], (host, reqs)
        assert {r.get("credential") for r in reqs} == {name}, reqs
        assert P.p.poll() is None, "proxy died"


def git_env(**kw):
    env = dict(os.environ, GIT_SSL_CAINFO=path("session-ca.pem"),
               HTTPS_PROXY="http://127.0.0.1:%d" % PORT, GIT_TERMINAL_PROMPT="0",
               HOME=W, GH_TOKEN=GH_PH)
    env.update(kw)
    return env


def git_basic_placeholder_swapped_for_clone_and_push(P):
    """git over HTTPS with GH_TOKEN=<placeholder> as the password: from a
    credential helper, then from the URL. git sends it base64-encoded in
    `Authorization: Basic`; the proxy swaps it toward gh.test only."""
    helper = ["-c", "credential.helper=",
              "-c", "credential.helper=!f() { echo username=x; echo password=$GH_TOKEN; }; f"]
    n = len(SEEN)
    dst = path("clone-gh")
    r = subprocess.run(["git"] + helper + ["clone", "-q", "https://gh.test/gh.git", dst],
                       env=git_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(dst, "gh"), "w") as f:
        f.write("pushed through a placeholder\n")
    sh("git", "-C", dst, "add", "gh")
    sh("git", "-C", dst, "-c", "user.name=t", "-c", "user.email=t@t.test", "commit", "-qm", "gh")
    r = subprocess.run(["git"] + helper + ["-C", dst, "push", "origin", "main"],
                       env=git_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    head = sh("git", "--git-dir", path("repos", "gh.git"), "log", "--format=%s", "-1").stdout
    assert head.strip() == "gh", head
    # The password in the URL (git's other way), no helper.
    r = subprocess.run(["git", "-c", "credential.helper=", "clone", "-q",
                        "https://x:%s@gh.test/gh.git" % GH_PH, path("clone-gh-url")],
                       env=git_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = [g for g in seen_since(n) if g[0] == "gh.test"]
    want = "Basic " + base64.b64encode(("x:" + GH_SECRET).encode()).decode()
    authed = [g for g in got if "Authorization" in g[3]]
    assert len(authed) >= 4, got
    assert all(g[3]["Authorization"] == want for g in authed), [g[3] for g in authed]
    assert not any(GH_PH in repr(g) or GH_RANDOM in repr(g) for g in got), got
    assert any(g[1] == "POST" and g[2] == "/gh.git/git-receive-pack" for g in authed), got
    recs = P.new(lambda r: r.get("path") == "/gh.git/git-upload-pack" and r["event"] == "request",
                 want=2, timeout=10)
    push = [r for r in recs if r["event"] == "request" and r["path"] == "/gh.git/git-receive-pack"]
    assert len(push) == 1 and push[0]["status"] == 200 and push[0]["credential"] == "GH_TOKEN", recs
    # The scheme is case-insensitive: `basic` is swapped (and sent as Basic).
    n = len(SEEN)
    raw = base64.b64encode(("x:" + GH_PH).encode()).decode()
    code, _, _ = curl("-H", "Authorization: basic " + raw,
                      "https://gh.test/gh.git/info/refs?service=git-upload-pack")
    assert code == 200 and seen_since(n)[0][3]["Authorization"] == want, seen_since(n)


def basic_placeholder_elsewhere_is_misuse(P):
    """The placeholder Basic-encoded (or %-encoded) toward a host it is not
    bound to: refused as credential_misuse, inside a tunnel and outside."""
    def b64(s, url=False):
        return (base64.urlsafe_b64encode if url else base64.b64encode)(s.encode()).decode()
    url_form = b64("~~~:" + GH_RANDOM.upper(), url=True)
    pct = "".join("%%%02x" % ord(ch) for ch in GH_PH)  # every byte escaped
    assert "-" in url_form or "_" in url_form, url_form
    n = len(SEEN)
    attempts = [
        ("curl -u toward another host", ["-u", "x:" + GH_PH, "https://other.test/x"]),
        ("scheme in lower case, padding dropped",
         ["-H", "Authorization: basic " + b64("x:" + GH_PH).rstrip("="), "https://other.test/x"]),
        ("random part in upper case, URL-safe alphabet",
         ["-H", "Authorization: Basic " + url_form, "https://other.test/x"]),
        ("prefix only, Proxy-Authorization inside the tunnel",
         ["-H", "Proxy-Authorization: Basic " + b64("agentsafe-gh_token-:x"), "https://other.test/x"]),
        ("bound to another host than this one: git.test",
         ["-H", "Authorization: Basic " + b64("x:" + GH_PH),
          "https://git.test/repo.git/info/refs?service=git-upload-pack"]),
        ("percent-encoded in the query", ["https://other.test/x?t=" + pct]),
        ("percent-encoded inside Basic", ["-u", "x:" + pct.upper(), "https://other.test/x"]),
    ]
    for what, args in attempts:
        code, body, _ = curl(*args)
        assert code == 403 and "credential_misuse" in body, (what, code, body)
        d = only(P.new(lambda r: r["event"] == "close"), event="deny")
        assert d["reason"] == "credential_misuse" and d["credential"] == "GH_TOKEN", (what, d)
    assert seen_since(n) == [], seen_since(n)
    # Outside inspected tunnels: Basic in a plain-HTTP request (to the
    # server and to the proxy) and in a CONNECT head, even toward gh.test.
    before = P.stderr().count("CREDENTIAL MISUSE")
    for what, args in (("plain HTTP, Authorization", ["-u", "x:" + GH_PH, "http://api.test/p"]),
                       ("plain HTTP, Proxy-Authorization", ["-U", "x:" + GH_PH, "http://api.test/p"])):
        code, body, _ = curl(*args)
        assert code == 403 and "credential_misuse" in body, (what, code, body)
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(("CONNECT gh.test:443 HTTP/1.1\r\nHost: gh.test:443\r\n"
               "Proxy-Authorization: Basic %s\r\n\r\n" % b64("x:" + GH_PH)).encode())
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 403") and b"credential_misuse" in out, out
    recs = P.new(lambda r: r["event"] == "deny", want=3)
    denies = [r for r in recs if r["event"] == "deny"]
    assert [r["reason"] for r in denies] == ["credential_misuse"] * 3, recs
    assert P.stderr().count("CREDENTIAL MISUSE") == before + 3
    assert seen_since(n) == [], seen_since(n)


def malformed_basic_values_pass_untouched(P):
    """Basic values that are no base64 are neither decoded nor a crash;
    Basic without a placeholder is left alone, toward any host."""
    n = len(SEEN)
    values = ["Basic", "Basic ", "basic !!!!", "Basic =", "Basic a", "Basic ab=c",
              "Basic YQ===", "Basic " + "A" * 6001, "Basic  " + "QUJD" * 3 + "\tx",
              "Basic " + base64.b64encode(b"user:not-a-placeholder").decode(),
              "Basic " + base64.b64encode(b"\x00\xff:" + b"\xfe" * 40).decode(),
              "Bearer " + base64.b64encode(b"x:y").decode()]
    for v in values:
        code, body, _ = curl("-H", "Authorization: " + v, "https://other.test/m")
        assert code == 200, (v[:40], code, body)
    got = seen_since(n)
    assert [g[3].get("Authorization") for g in got] == [v.strip() for v in values], got
    code, _, _ = curl("-H", "Authorization: Basic %%%%", "https://gh.test/gh.git/info/refs")
    assert code == 401
    assert P.p.poll() is None, "proxy died"


CASES = [
    curl_get_allowed_and_logged,
    path_and_method_rules,
    host_header_must_equal_sni,
    h2_preface_refused,
    pipelined_second_request_decided,
    smuggling_in_the_tunnel_refused,
    large_body_streams_and_refused_one_never_leaves,
    upstream_certificate_failures,
    upstream_demanding_a_client_certificate,
    client_without_the_session_ca_fails_closed,
    git_fetch_works_push_refused_by_path_rule,
    python_and_node_clients,
    placeholder_swapped_only_toward_bound_host,
    header_injected_for_bound_hosts,
    placeholder_elsewhere_is_misuse,
    builtin_binding_swapped_toward_its_host_only,
    command_credential_rerun_on_401,
    oauth_refresh_hands_out_new_placeholders_only,
    oauth_refresh_token_goes_nowhere_else,
    websocket_refused_without_websocket_true,
    websocket_other_upgrades_refused,
    websocket_unrequested_or_wrong_101_refused,
    websocket_declined_upgrade_is_not_a_tunnel,
    websocket_upgrade_with_placeholder_is_misuse,
    websocket_allowed_relays_frames_both_ways,
    upload_budget_counts_inside_inspected_tunnels,
    command_credential_refresh_failure_keeps_old_value,
    git_basic_placeholder_swapped_for_clone_and_push,
    basic_placeholder_elsewhere_is_misuse,
    malformed_basic_values_pass_untouched,
]


def main():
    make_pki()
    make_repos()
    serve(UP, "srv.pem", "srv.key")
    serve(UP_SELF, "self.pem", "self.key")
    serve(UP_WRONG, "wrong.pem", "wrong.key")
    serve(UP_CERTREQ, "srv.pem", "srv.key", client_cert=True)
    P = Proxy()
    failed = []
    for case in CASES:
        if ARGS.k and ARGS.k not in case.__name__:
            continue
        t0 = time.time()
        P.mark()
        try:
            case(P)
            print("ok   %s (%.1fs)" % (case.__name__, time.time() - t0))
        except Exception:
            failed.append(case.__name__)
            print("FAIL %s" % case.__name__)
            traceback.print_exc()
    rc = P.stop()
    err = P.stderr()
    # No secret in any record or message: the whole log and stderr.
    with open(P.log) as f:
        log = f.read()
    for secret in (SECRET, GIT_SECRET, HDR_SECRET, BUILTIN_SECRET, REFRESH_OLD, REFRESH_NEW,
                   WS_SECRET, *ACC, *REF, GH_SECRET, FAIL1_NEW) + tuple(FAIL_OLD.values()):
        if secret in log or secret in err:
            failed.append("a secret reached egress.log or stderr")
    if "ERROR: AddressSanitizer" in err or "runtime error" in err or rc != 0:
        failed.append("proxy exit %s / sanitizer: %s" % (rc, err[-2000:]))
    if failed:
        print("FAILED:", ", ".join(failed))
        sys.exit(1)
    print("all %d cases passed" % len(CASES))


if __name__ == "__main__":
    main()

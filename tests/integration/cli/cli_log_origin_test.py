#!/usr/bin/env python3
"""The self-check's own records, end to end with the real writers: the real
agentsafe-proxy, given its window with --selfcheck-fd as agentsafe-launch
gives it, labels the connections it accepts before the launcher's byte
(`"origin": "selfcheck"`) and never one after it, whatever the client sends;
then every view of `agentsafe log` (listing, filters, --json, --summary,
suggest) hides the labelled records by default with one line saying how
many, and shows them with --all-origins; suggest never proposes a rule from
one. Traffic: loopback only; the policy names only *.test hosts."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("AGENTSAFE_BIN", "build/test/bin")
A = os.path.join(BIN, "agentsafe")
PROXY = os.path.join(BIN, "agentsafe-proxy")
W = tempfile.mkdtemp(prefix="aslog-origin-")
POLICY = os.path.join(W, "policy.yaml")
with open(POLICY, "w") as f:
    f.write("version: 1\nallow:\n  - allowed.test\n")
results = []


def case(fn):
    try:
        fn()
        results.append((fn.__name__, None))
        print("PASS", fn.__name__)
    except Exception as e:  # noqa: BLE001 - report every failure, keep going
        results.append((fn.__name__, e))
        print("FAIL", fn.__name__, "-", repr(e))
    return fn


def run(*args):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e["PAGER"] = "cat"
    p = subprocess.run([A, *args], capture_output=True, text=True, env=e,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


PROXIES = []


class Proxy:
    """agentsafe-proxy on 127.0.0.1 with a self-check window (the far end
    of a socket pair, as the launcher hands it over), writing log."""

    def __init__(self, log, window=True):
        self.log = log
        self.far, self.near = socket.socketpair()
        args = [PROXY, "--policy", POLICY, "--listen", "127.0.0.1:0",
                "--log", log, "--session", "s1", "--workers", "2"]
        fds = ()
        if window:
            args += ["--selfcheck-fd", str(self.far.fileno())]
            fds = (self.far.fileno(),)
        self.p = subprocess.Popen(args, pass_fds=fds, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        PROXIES.append(self.p)
        self.far.close()
        self.port = None
        deadline = time.time() + 10
        while self.port is None and time.time() < deadline:
            m = re.search(r"listening on .*:(\d+)", self.p.stderr.readline())
            if m:
                self.port = int(m.group(1))
        assert self.port, "the proxy did not start"

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def deny(self, host, port=443, sock=None):
        s = sock or self.connect()
        s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "\r\n".encode())
        head = s.recv(200)
        assert head.startswith(b"HTTP/1.1 403"), head
        if sock is None:
            s.close()

    def end_window(self):
        self.near.send(b"x")

    def stop(self):
        self.near.close()
        self.p.terminate()
        self.p.wait(timeout=10)

    def records(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]


def by_host(recs):
    return {(r["host"], r.get("origin")) for r in recs}


# One session's log: the probe's denial (and a hostile client's attempt to
# look like the probe), then the agent's. Written once, read by every case.
LOG = os.path.join(W, "egress.log")


def session_log():
    px = Proxy(LOG)
    px.deny("denied-probe.test")
    px.deny("shared.test")
    px.end_window()
    time.sleep(0.05)
    px.deny("shared.test")
    px.deny("agent-only.test")
    # An agent that sends what the probe would: no header or host makes a record
    # after the window labelled.
    s = px.connect()
    s.sendall(b"CONNECT denied-probe.test:443 HTTP/1.1\r\nHost: denied-probe.test"
              b"\r\nX-AgentSafe-Origin: selfcheck\r\nOrigin: selfcheck\r\n\r\n")
    s.recv(200)
    s.close()
    time.sleep(0.2)
    px.stop()
    return px.records()


def kill_proxies():
    for p in PROXIES:
        if p.poll() is None:
            p.kill()


try:
    RECS = session_log()
except Exception as e:  # noqa: BLE001 - the proxy must not outlive us
    kill_proxies()
    print("FAIL writing the session log -", repr(e))
    sys.exit(1)


@case
def the_proxy_labels_only_connections_accepted_before_the_byte():
    got = [(r["host"], r.get("origin")) for r in RECS]
    assert got == [("denied-probe.test", "selfcheck"),
                   ("shared.test", "selfcheck"),
                   ("shared.test", None),
                   ("agent-only.test", None),
                   ("denied-probe.test", None)], got


@case
def eof_ends_the_window_too_and_no_window_labels_nothing():
    log = os.path.join(W, "eof.log")
    p = Proxy(log)
    p.deny("before.test")
    p.near.close()  # the launcher gone: EOF, the window is over
    time.sleep(0.05)
    p.deny("after.test")
    p.stop()
    assert by_host(p.records()) == {("before.test", "selfcheck"),
                                    ("after.test", None)}, p.records()
    log = os.path.join(W, "none.log")
    p = Proxy(log, window=False)
    p.deny("x.test")
    p.stop()
    assert by_host(p.records()) == {("x.test", None)}, p.records()


@case
def a_standard_stream_or_closed_fd_is_refused_as_the_window():
    for fd in ("0", "2", "63", "x"):
        p = subprocess.run([PROXY, "--policy", POLICY, "--selfcheck-fd", fd],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "--selfcheck-fd" in p.stderr, (fd, p)


@case
def listing_hides_labelled_records_and_says_how_many():
    rc, out, err = run("log", "--no-pager", LOG)
    assert rc == 0, err
    rows = [l for l in out.splitlines() if l.startswith("20")]
    assert len(rows) == 3 and "selfcheck" not in "".join(rows), out
    assert out.splitlines()[-1] == (
        "2 records of the launcher's self-check hidden (--all-origins "
        "shows them)"), out
    rc, out, err = run("log", "--no-pager", "--all-origins", LOG)
    rows = [l for l in out.splitlines() if l.startswith("20")]
    assert rc == 0 and len(rows) == 5, out
    assert sum("origin=selfcheck" in l for l in rows) == 2, out
    assert "hidden" not in out, out


@case
def filters_count_only_what_they_would_have_shown():
    rc, out, _ = run("log", "--no-pager", "--host", "shared.test", LOG)
    assert rc == 0 and "1 record of the launcher's self-check hidden" in out, out
    rc, out, _ = run("log", "--no-pager", "--host", "agent-only.test", LOG)
    assert rc == 0 and "hidden" not in out, out
    rc, out, _ = run("log", "--no-pager", "--denied", LOG)
    assert "2 records of the launcher's self-check hidden" in out, out


@case
def json_stays_json_and_the_count_goes_to_stderr():
    rc, out, err = run("log", "--json", LOG)
    recs = [json.loads(l) for l in out.splitlines()]
    assert rc == 0 and len(recs) == 3, out
    assert all("origin" not in r for r in recs), out
    assert "2 records of the launcher's self-check hidden" in err, err
    rc, out, err = run("log", "--json", "--all-origins", LOG)
    assert len(out.splitlines()) == 5 and err == "", (out, err)


@case
def summary_counts_without_them_and_says_so():
    rc, out, _ = run("log", "--summary", "--json", LOG)
    t = json.loads(out)["totals"]
    assert rc == 0 and t["denied"] == 3 and t["hidden_origin"] == 2, t
    rc, out, _ = run("log", "--summary", "--json", "--all-origins", LOG)
    t = json.loads(out)["totals"]
    assert t["denied"] == 5 and t["hidden_origin"] == 0, t
    rc, out, _ = run("log", "--summary", LOG)
    assert "Total: 3 records" in out, out
    assert "2 records of the launcher's self-check not counted" in out, out


@case
def suggest_never_proposes_a_rule_from_the_self_check():
    rc, out, err = run("log", "suggest", LOG)
    assert rc == 0, err
    assert "agent-only.test" in out and "shared.test" in out, out
    # denied-probe.test: the probe's denial, and the agent's copy of it
    assert "- denied-probe.test" in out, out
    assert "shared.test  # agentsafe log suggest: 1 denied" in out, out
    assert "denied-probe.test  # agentsafe log suggest: 1 denied" in out, out
    assert "2 records of the launcher's self-check ignored" in err, err
    rc, out, err = run("log", "suggest", "--all-origins", LOG)
    assert rc == 0, err
    assert "shared.test  # agentsafe log suggest: 1 denied" in out, out
    assert "# not suggested: shared.test:443 (not_allowed, origin " \
        "selfcheck)" in out, out
    # a log of only the probe's denials suggests nothing at all
    probe_only = os.path.join(W, "probe-only.log")
    with open(probe_only, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in RECS if r.get("origin"))
    rc, out, err = run("log", "suggest", "--all-origins", probe_only)
    assert rc == 0 and "# nothing to suggest" in out, out


@case
def help_and_man_page_name_the_option():
    rc, out, _ = run("log", "--help")
    assert "--all-origins" in out, out
    rc, out, _ = run("log", "suggest", "--help")
    assert "--all-origins" in out, out


kill_proxies()
shutil.rmtree(W, ignore_errors=True)
failed = [n for n, e in results if e is not None]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)

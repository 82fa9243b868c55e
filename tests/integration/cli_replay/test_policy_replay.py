#!/usr/bin/env python3
"""Drives the real `agentsafe policy replay` over egress.log files written in
the writer's exact format: a generated 100 000-record log whose flips are
counted here by an independent decision procedure (a few lines of Python
for the test policy's rules), hostile records (escape sequences, bidi
controls, truncated lines, unknown fields), folded summaries, --since,
--session/--all over a state directory, exit codes and policy errors."""
import atexit
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(os.environ.get("AGENTSAFE_BIN", "build/test/bin"), "agentsafe")
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


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("COLUMNS", None)
    if env:
        e.update(env)
    p = subprocess.run([BIN, *args], capture_output=True, env=e, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


W = tempfile.mkdtemp(prefix="asreplay-")
atexit.register(shutil.rmtree, W, True)
NEW = os.path.join(W, "new.yaml")
with open(NEW, "w") as f:
    f.write("""version: 1
# the candidate policy
allow:
  - keep.test
  - "*.cdn.test"
  - host: api.test
    ports: [443, 8443]
  - host: mirror.test
    ports: [80]
    tls: false
  - newly.test
  - host: 10.1.0.0/16
    ports: [443]
deny:
  - bad.cdn.test
""")

# The same policy, decided independently of the C code.
EXACT = {"keep.test": ([443], True), "api.test": ([443, 8443], True),
         "mirror.test": ([80], False), "newly.test": ([443], True)}
WILD = {"cdn.test": ([443], True)}
DENY = {"bad.cdn.test"}
LAN = ipaddress.ip_network("10.1.0.0/16")
LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")


def internal(ip):
    a = ipaddress.ip_address(ip)
    return any(a in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "127.0.0.0/8", "192.168.0.0/16"))


def valid_name(h):
    labels = h.split(".")
    return all(LABEL.match(x) for x in labels) and not labels[-1].isdigit()


def decide(host, port, method, ip):
    """allow (True) or deny (False) under NEW, as the proxy decides."""
    h = host.lower()
    try:
        a = ipaddress.ip_address(h)
        if not (a in LAN and port == 443):
            return False
        # the literal is its own address, allowed by the LAN rule, which
        # expects TLS on 443
        return method == "CONNECT"
    except ValueError:
        pass
    if not valid_name(h):
        return False
    if h in DENY:
        return False
    rule = EXACT.get(h)
    if rule is None:
        for i in range(1, len(h.split("."))):
            rule = WILD.get(".".join(h.split(".")[i:])) or rule
            if rule:
                break
    if rule is None or port not in rule[0]:
        return False
    if method != "CONNECT" and port == 443 and rule[1]:
        return False  # plain HTTP to a TLS rule's 443
    if ip is not None and internal(ip) and not (ipaddress.ip_address(ip) in LAN and port == 443):
        return False
    return True


POLICY_REASONS = {"not_allowed", "port_not_allowed", "denied_by_rule", "bad_host",
                  "ip_literal", "private_address", "approval_timeout"}


def rec(**kw):
    """One record in the writer's field order and compact form."""
    order = ["ts", "session", "id", "event", "client", "method", "host", "port", "sni", "ip",
             "rule", "reason", "bytes_up", "bytes_down", "duration_ms", "proto", "dst", "dport",
             "message", "count", "origin", "would_deny"]
    d = {k: kw[k] for k in order if k in kw and kw[k] is not None}
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


HOSTS = ["keep.test", "api.test", "mirror.test", "newly.test", "gone.test", "x.cdn.test",
         "a.b.cdn.test", "cdn.test", "bad.cdn.test", "other.test", "API.test", "10.1.2.3",
         "10.2.0.1", "203.0.113.9", "ex\x1b[2J.test", "bidi\u202etset.test"]
PORTS = [443, 443, 443, 80, 8443, 22]
IPS = [None, "203.0.113.5", "10.1.4.4", "10.9.9.9", "127.0.0.1", "2001:db8::1"]


def generate(path, n, seed, sessions, since_ms=None, bad_every=0):
    """Writes n lines; returns the expected flips {(dir, host, port): [count, {sessions}]}
    and the totals, counting only what the reader accepts."""
    rnd = random.Random(seed)
    flips = {}
    to_deny = to_allow = 0
    t0 = 1764547200000  # 2025-12-01T00:00:00Z
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            ms = t0 + i * 10
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)
            s = sessions[(i * len(sessions)) // n]
            host = rnd.choice(HOSTS)
            port = rnd.choice(PORTS)
            method = rnd.choice(["CONNECT", "CONNECT", "GET"])
            ip = rnd.choice(IPS)
            kind = rnd.random()
            if bad_every and i % bad_every == bad_every - 1:
                if rnd.random() < 0.5:
                    f.write(rec(ts=ts, session=s, id="b%d" % i, event="open", host=host, port=port)[:-7] + "\n")
                else:
                    f.write(rec(ts=ts, session=s, id="b%d" % i, event="deny", host=host, port=port,
                                reason="not_allowed")[:-1] + ',"newfield":1}\n')
                continue
            count = None
            if kind < 0.35:
                r = dict(event="open", ip=ip or "203.0.113.5")
            elif kind < 0.45:
                r = dict(event="close", ip=ip, reason="eof", bytes_up=1, bytes_down=2, duration_ms=3)
            elif kind < 0.75:
                r = dict(event="deny", reason=rnd.choice(sorted(POLICY_REASONS)),
                         ip=ip if rnd.random() < 0.3 else None)
            elif kind < 0.8:
                r = dict(event="deny", reason="not_allowed")
                count = rnd.randint(1, 500)
            elif kind < 0.88:
                r = dict(event="deny", reason=rnd.choice(["sni_mismatch", "no_sni", "dns_failure",
                                                          "timeout", "not_tls", "max_connections"]))
            elif kind < 0.93:
                r = dict(event="drop", reason="firewall", proto="udp", dst="10.9.9.9", dport=53)
                host = None
            else:
                r = dict(event="error", reason="internal", message="out of memory")
            r.update(ts=ts, session=s, id="%08x-%d" % (seed, i), client="172.18.0.2:%d" % (1024 + i % 60000),
                     count=count)
            if r["event"] != "drop":
                r.update(method=method, host=host, port=port)
                if re.match(r"^[0-9.]+$", host) and r.get("ip"):
                    r["ip"] = host  # a literal is its own address
            f.write(rec(**r) + "\n")
            if since_ms is not None and ms < since_ms:
                continue
            ev = r["event"]
            if ev not in ("open", "deny") or host is None:
                continue
            if ev == "deny" and r["reason"] not in POLICY_REASONS and not (
                    r["reason"] == "not_tls" and method != "CONNECT"):
                continue
            was = ev == "open"
            now = decide(host, port, method, r.get("ip"))
            if was == now:
                continue
            w = count if count is not None else 1
            k = ("allow->deny" if was else "deny->allow", host, port)
            e = flips.setdefault(k, [0, set()])
            e[0] += w
            e[1].add(s)
            if was:
                to_deny += w
            else:
                to_allow += w
    return flips, to_deny, to_allow


def as_flips(out):
    j = json.loads(out)
    return j, {(x["change"], x["host"], x["port"]): [x["count"], set(x["sessions"])] for x in j["flips"]}


BIG = os.path.join(W, "big.log")
EXPECT, EXP_DENY, EXP_ALLOW = generate(BIG, 100000, 7, ["s%02d" % i for i in range(12)], bad_every=997)


@case
def generated_100k_log_flips_match_an_independent_count():
    t = time.monotonic()
    rc, out, err = run("policy", "replay", NEW, BIG, "--json")
    took = time.monotonic() - t
    print("  figure: replay of 100 000 records took %.2f s (sanitized Debug build)" % took)
    assert rc == 1, (rc, err[-500:])
    j, got = as_flips(out)
    assert j["allow_to_deny"] == EXP_DENY and j["deny_to_allow"] == EXP_ALLOW, (j["allow_to_deny"], EXP_DENY, j["deny_to_allow"], EXP_ALLOW)
    missing = {k: v for k, v in EXPECT.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in EXPECT}
    assert not missing and not extra, ("missing/different", list(missing.items())[:5], "extra", list(extra.items())[:5])
    assert j["bad_lines"] == 100000 // 997, j["bad_lines"]
    assert j["records"] == 100000 - j["bad_lines"]
    assert "big.log:997:" in err, err[:300]


@case
def human_table_names_every_flip_with_counts_and_escapes_hostile_bytes():
    rc, out, err = run("policy", "replay", NEW, BIG)
    assert rc == 1
    assert "\x1b" not in out and "\u202e" not in out, "raw control reached the terminal"
    assert "ex\\x1b[2J.test" in out and "bidi\\u202etset.test" in out, out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["CHANGE", "HOST:PORT", "COUNT", "SESSIONS"], lines[1]
    rows = [l for l in lines if l.startswith(("allow->deny", "deny->allow"))]
    assert len(rows) == len(EXPECT), (len(rows), len(EXPECT))
    for l in rows:
        parts = l.split()
        host, port = parts[1].rsplit(":", 1)
        host = host.replace("\\x1b", "\x1b").replace("\\u202e", "\u202e")
        exp = EXPECT[(parts[0], host, int(port))]
        assert int(parts[2]) == exp[0], (l, exp)
        assert parts[3] == "%d:" % len(exp[1]), (l, exp)
    assert ("%d flips: %d allow->deny, %d deny->allow" % (EXP_DENY + EXP_ALLOW, EXP_DENY, EXP_ALLOW)) in out
    # allow->deny (what a change breaks) comes first
    first_allow = next(i for i, l in enumerate(rows) if l.startswith("deny->allow"))
    assert all(l.startswith("allow->deny") for l in rows[:first_allow])


@case
def table_fits_the_terminal_width():
    rc, out, _ = run("policy", "replay", NEW, BIG, env={"COLUMNS": "50"})
    assert rc == 1
    for l in out.splitlines()[1:-2]:
        assert len(l) <= 50, l


@case
def since_replays_only_later_decisions():
    path = os.path.join(W, "since.log")
    since = 1764547200000 + 5000 * 10
    exp, d, a = generate(path, 10000, 11, ["early", "late"], since_ms=since)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since // 1000)) + ".000Z"
    rc, out, err = run("policy", "replay", NEW, path, "--since", ts, "--json")
    j, got = as_flips(out)
    assert got == exp, "since filter differs"
    assert j["allow_to_deny"] == d and j["deny_to_allow"] == a


@case
def nothing_flips_exit_0_and_folded_summary_counts_its_repeats():
    path = os.path.join(W, "same.log")
    with open(path, "w") as f:
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="a", event="open", method="CONNECT",
                    host="keep.test", port=443, ip="203.0.113.5") + "\n")
        f.write(rec(ts="2026-11-25T01:00:01.000Z", session="s1", id="b", event="deny", method="CONNECT",
                    host="gone.test", port=443, reason="not_allowed", count=290) + "\n")
        f.write(rec(ts="2026-11-25T01:00:02.000Z", session="s1", id="c", event="deny", method="CONNECT",
                    host="newly.test", port=443, sni="evil.test", reason="sni_mismatch") + "\n")
    rc, out, err = run("policy", "replay", NEW, path)
    assert rc == 0, (rc, out, err)
    assert "0 flips" in out and "291 decisions" in out.replace("290", "290"), out
    # the same summary under a policy that allows it flips 290 times
    allow = os.path.join(W, "allow-gone.yaml")
    with open(allow, "w") as f:
        f.write("version: 1\nallow:\n  - keep.test\n  - gone.test\n")
    rc, out, _ = run("policy", "replay", allow, path, "--json")
    assert rc == 1
    j = json.loads(out)
    assert j["deny_to_allow"] == 290 and j["flips"][0]["now"] == "allowed by gone.test (%s:4)" % allow, out
    # the SNI refusal is not re-decided: the policy does not decide it
    assert j["after_policy"] == 1


@case
def recorded_private_address_is_rechecked_by_the_address_guard():
    path = os.path.join(W, "addr.log")
    with open(path, "w") as f:
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="a", event="open", method="CONNECT",
                    host="keep.test", port=443, ip="10.9.9.9") + "\n")
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="b", event="deny", method="CONNECT",
                    host="newly.test", port=443, ip="10.1.2.2", reason="private_address") + "\n")
    rc, out, _ = run("policy", "replay", NEW, path, "--json")
    j, got = as_flips(out)
    assert got == {("allow->deny", "keep.test", 443): [1, {"s1"}],
                   ("deny->allow", "newly.test", 443): [1, {"s1"}]}, got
    assert j["flips"][0]["now"] == "private_address"


@case
def learn_mode_candidate_keeps_unknown_names_allowed():
    learn = os.path.join(W, "learn.yaml")
    with open(learn, "w") as f:
        f.write("version: 1\nmode: learn\nallow:\n  - keep.test\ndeny:\n  - gone.test\n")
    path = os.path.join(W, "learn.log")
    with open(path, "w") as f:
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="a", event="open", method="CONNECT",
                    host="unknown.test", port=443, ip="203.0.113.5", reason="not_allowed",
                    would_deny=True) + "\n")
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="b", event="open", method="CONNECT",
                    host="gone.test", port=443, ip="203.0.113.5") + "\n")
    rc, out, err = run("policy", "replay", learn, path, "--json")
    j, got = as_flips(out)
    assert got == {("allow->deny", "gone.test", 443): [1, {"s1"}]}, (got, err)
    # the same learned session against an enforcing policy: the learned name flips
    rc, out, _ = run("policy", "replay", NEW, path, "--json")
    _, got = as_flips(out)
    assert ("allow->deny", "unknown.test", 443) in got, got


@case
def session_and_all_read_the_state_directory():
    state = os.path.join(W, "state")
    for sid, host in (("20261125T010000Z-aaaa", "gone.test"), ("20261126T010000Z-bbbb", "other.test")):
        d = os.path.join(state, "agentsafe", "sessions", sid)
        os.makedirs(d)
        with open(os.path.join(d, "egress.log"), "w") as f:
            f.write(rec(ts="2026-11-25T01:00:00.000Z", session=sid, id="a", event="open",
                        method="CONNECT", host=host, port=443, ip="203.0.113.5") + "\n")
    env = {"XDG_STATE_HOME": state}
    rc, out, _ = run("policy", "replay", NEW, "--all", "--json", env=env)
    _, got = as_flips(out)
    assert set(got) == {("allow->deny", "gone.test", 443), ("allow->deny", "other.test", 443)}, got
    rc, out, _ = run("policy", "replay", NEW, "--session", "20261125T010000Z-aaaa", "--json", env=env)
    _, got = as_flips(out)
    assert set(got) == {("allow->deny", "gone.test", 443)}, got
    rc, out, err = run("policy", "replay", NEW, "--session", "../x", env=env)
    assert rc == 2 and "bad session id" in err, (rc, err)


@case
def bad_policy_is_exit_2_with_file_line_col():
    bad = os.path.join(W, "bad.yaml")
    with open(bad, "w") as f:
        f.write("version: 1\nallow:\n  - host: a.test\n    prots: [1]\n")
    rc, out, err = run("policy", "replay", bad, BIG)
    assert rc == 2 and err.startswith(bad + ":4:5: unknown key 'prots'"), (rc, err)
    rc, out, err = run("policy", "replay", NEW, os.path.join(W, "missing.log"))
    assert rc == 2 and "cannot open" in err, (rc, err)
    rc, out, err = run("policy", "replay")
    assert rc == 2 and "usage" in err
    rc, out, err = run("policy", "replay", NEW, BIG, "--sinse", "1h")
    assert rc == 2 and "--since" in err, err
    rc, out, err = run("policy", "replay", NEW, BIG, "--since", "yesterday")
    assert rc == 2, err


@case
def hostile_lines_are_reported_escaped_and_skipped():
    path = os.path.join(W, "hostile.log")
    with open(path, "wb") as f:
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s\x1b]0;pwned\x07", id="a", event="open",
                    method="CONNECT", host="gone.test", port=443, ip="203.0.113.5").encode() + b"\n")
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"open","host":"gone.test","port":443,"\x1b[31mx":1}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"deny","host":"\xff\xfe.test","port":443,"reason":"not_allowed"}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"open","host":"gone.test","port":"443"}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"open","host":"gone.test","port":70000}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"open","host":"gone.test","port":443,"would_deny":"yes"}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"deny","host":"gone.test","port":443,"reason":"brand_new_code"}\n')
        f.write(b'{"ts":"2026-11-25T01:00:00.000Z","event":"open","host":"gone.test"')
    rc, out, err = run("policy", "replay", NEW, path, "--json")
    assert rc == 1
    j = json.loads(out)
    assert j["allow_to_deny"] == 1 and j["bad_lines"] == 5, j
    assert j["without_host"] == 2, j  # port 70000, an unknown reason code
    rc, out, err = run("policy", "replay", NEW, path)
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream, repr(stream)
    assert "s\\x1b]0;pwned\\x07" in out, out


@case
def log_suggest_turns_learned_opens_into_rules():
    path = os.path.join(W, "learned.log")
    with open(path, "w") as f:
        f.write(rec(ts="2026-11-25T01:00:00.000Z", session="s1", id="a", event="open", method="CONNECT",
                    host="pkg.learned.test", port=443, ip="203.0.113.5", reason="not_allowed",
                    would_deny=True) + "\n")
        f.write(rec(ts="2026-11-25T01:00:01.000Z", session="s1", id="b", event="open", method="CONNECT",
                    host="keep.test", port=443, ip="203.0.113.5") + "\n")
    learn = os.path.join(W, "learn2.yaml")
    with open(learn, "w") as f:
        f.write("version: 1\nmode: learn\nallow:\n  - keep.test\n")
    rc, out, err = run("log", "suggest", "--policy", learn, path)
    assert rc == 0, (rc, err)
    assert "  - pkg.learned.test" in out and "keep.test" not in out, out


failed = [n for n, e in results if e is not None]
print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
sys.exit(1 if failed else 0)

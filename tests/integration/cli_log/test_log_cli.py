#!/usr/bin/env python3
"""Drives the real `agentsafe log` binary over hand-made and generated
egress.log files: every filter, --json pass-through, summary totals checked
against totals computed independently here, bad lines reported with their
line numbers, --follow across rotation, and `log suggest` / `--apply`
(comments and order preserved, a bad result never written, backup kept)."""
import json
import os
import random
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


def run(*args, env=None, input=None):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e["PAGER"] = "cat"
    if env:
        e.update(env)
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=e,
                       input=input, timeout=120)
    return p.returncode, p.stdout, p.stderr


def rec(ts, event, **kw):
    d = {"ts": ts, "session": kw.pop("session", "s1"), "id": kw.pop("id", "x"),
         "event": event}
    d.update(kw)
    return json.dumps(d, separators=(",", ":"))


W = tempfile.mkdtemp(prefix="aslog-")
HAND = os.path.join(W, "hand.log")
LINES = [
    rec("2026-11-25T01:00:00.000Z", "open", id="a1", client="10.0.0.2:4000", method="CONNECT",
        host="api.test", port=443, sni="api.test", ip="10.9.0.1", rule="api.test (p.yaml:3)"),
    rec("2026-11-25T01:00:05.000Z", "close", id="a1", client="10.0.0.2:4000", host="api.test",
        port=443, bytes_up=100, bytes_down=2000, duration_ms=5000, reason="eof"),
    rec("2026-11-25T02:00:00.000Z", "deny", id="a2", client="10.0.0.2:4001", method="CONNECT",
        host="a.pkg.test", port=443, reason="not_allowed"),
    rec("2026-11-25T02:30:00.000Z", "deny", id="a3", client="10.0.0.2:4002", method="CONNECT",
        host="b.pkg.test", port=8443, reason="not_allowed"),
    rec("2026-11-25T03:00:00.000Z", "deny", id="a4", client="10.0.0.2:4003", method="CONNECT",
        host="evil.test", port=443, sni="other.test", reason="sni_mismatch"),
    rec("2026-11-25T03:10:00.000Z", "drop", id="f1", client="10.0.0.2:5353", proto="udp",
        dst="10.9.9.9", dport=53, reason="firewall"),
    rec("2026-11-25T03:20:00.000Z", "deny", id="a5", client="10.0.0.2:4004", method="CONNECT",
        host="gist.api.test", port=443, reason="denied_by_rule", rule="gist.api.test (p.yaml:6)"),
    rec("2026-11-25T03:30:00.000Z", "open", id="a6", client="10.0.0.2:4005", method="GET",
        host="mirror.test", port=80, ip="10.9.0.2", rule="mirror.test (p.yaml:4)"),
    rec("2026-11-25T03:30:01.000Z", "close", id="a6", client="10.0.0.2:4005", host="mirror.test",
        port=80, bytes_up=50, bytes_down=7000, duration_ms=1000, reason="eof"),
]
with open(HAND, "w") as f:
    f.write("\n".join(LINES) + "\n")


@case
def filters_denied_shows_only_deny_and_drop_records():
    rc, out, err = run("log", "--denied", "--json", "--no-pager", HAND)
    assert rc == 0, err
    evs = [json.loads(l)["event"] for l in out.splitlines()]
    assert evs == ["deny", "deny", "deny", "drop", "deny"], evs


@case
def json_output_passes_records_through_unchanged():
    rc, out, _ = run("log", "--json", HAND)
    assert rc == 0
    assert out.splitlines() == LINES


@case
def since_and_until_take_rfc3339_bounds():
    rc, out, _ = run("log", "--json", "--since", "2026-11-25T02:00:00Z",
                     "--until", "2026-11-25T03:00:00.000Z", HAND)
    assert rc == 0
    ids = [json.loads(l)["id"] for l in out.splitlines()]
    assert ids == ["a2", "a3"], ids


@case
def since_takes_relative_durations():
    now = time.time()
    fresh = os.path.join(W, "fresh.log")
    def ts(ago):
        t = time.gmtime(now - ago)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".000Z"
    with open(fresh, "w") as f:
        f.write(rec(ts(7200), "deny", id="old", host="x.test", port=443, reason="not_allowed") + "\n")
        f.write(rec(ts(60), "deny", id="new", host="y.test", port=443, reason="not_allowed") + "\n")
    rc, out, _ = run("log", "--json", "--since", "10m", fresh)
    assert [json.loads(l)["id"] for l in out.splitlines()] == ["new"], out
    rc, out, _ = run("log", "--json", "--until", "1h", fresh)
    assert [json.loads(l)["id"] for l in out.splitlines()] == ["old"], out


@case
def host_pattern_matches_hosts_and_drop_destinations():
    rc, out, _ = run("log", "--json", "--host", "*.PKG.test", HAND)
    assert [json.loads(l)["id"] for l in out.splitlines()] == ["a2", "a3"], out
    rc, out, _ = run("log", "--json", "--host", "10.9.9.*", HAND)
    assert [json.loads(l)["id"] for l in out.splitlines()] == ["f1"], out


@case
def session_option_reads_that_sessions_log_from_the_state_dir():
    state = os.path.join(W, "state")
    for sid, host in (("20261125T010000Z-aaaa", "one.test"), ("20261125T020000Z-bbbb", "two.test")):
        d = os.path.join(state, "agentsafe", "sessions", sid)
        os.makedirs(d)
        with open(os.path.join(d, "egress.log"), "w") as f:
            f.write(rec("2026-11-25T01:00:00.000Z", "deny", session=sid, host=host, port=443,
                        reason="not_allowed") + "\n")
    os.utime(os.path.join(state, "agentsafe", "sessions", "20261125T010000Z-aaaa", "egress.log"),
             (1, 1))
    env = {"XDG_STATE_HOME": state}
    rc, out, _ = run("log", "--json", env=env)  # latest session by default
    assert [json.loads(l)["host"] for l in out.splitlines()] == ["two.test"], out
    rc, out, _ = run("log", "--json", "--session", "20261125T010000Z-aaaa", env=env)
    assert [json.loads(l)["host"] for l in out.splitlines()] == ["one.test"], out
    rc, out, _ = run("log", "--json", "--all", env=env)
    assert [json.loads(l)["host"] for l in out.splitlines()] == ["one.test", "two.test"], out
    rc, out, err = run("log", "--json", env={"XDG_STATE_HOME": os.path.join(W, "none")})
    assert rc == 1 and "no session logs" in err, err


@case
def human_output_is_aligned_and_highlights_denials_only_on_a_terminal():
    rc, out, _ = run("log", "--no-pager", HAND)
    lines = out.splitlines()
    assert len(lines) == len(LINES)
    assert "\x1b[" not in out  # not a terminal: no colour
    assert "deny " in lines[2] and "a.pkg.test:443" in lines[2] and "not_allowed" in lines[2]
    assert "udp 10.9.9.9:53" in lines[5]
    col = lines[0].index("CONNECT")
    assert lines[2].index("CONNECT") == col  # aligned columns


@case
def summary_totals_match_an_independent_count():
    rng = random.Random(42)
    gen = os.path.join(W, "gen.log")
    exp = {}
    tot = {"allowed": 0, "denied": 0, "drops": 0, "up": 0, "down": 0}
    with open(gen, "w") as f:
        for i in range(20000):
            h = "h%d.test" % rng.randrange(50)
            ts = "2026-11-25T%02d:%02d:%02d.%03dZ" % (i // 3600 % 24, i // 60 % 60, i % 60, i % 1000)
            k = rng.random()
            e = exp.setdefault(h, {"allowed": 0, "denied": 0, "up": 0, "down": 0})
            if k < 0.4:
                up, down = rng.randrange(1, 10000), rng.randrange(1, 100000)
                f.write(rec(ts, "open", id="o%d" % i, host=h, port=443) + "\n")
                f.write(rec(ts, "close", id="o%d" % i, host=h, port=443, bytes_up=up,
                            bytes_down=down) + "\n")
                e["allowed"] += 1; e["up"] += up; e["down"] += down
                tot["allowed"] += 1; tot["up"] += up; tot["down"] += down
            elif k < 0.9:
                f.write(rec(ts, "deny", id="d%d" % i, host=h, port=443, reason="not_allowed") + "\n")
                e["denied"] += 1; tot["denied"] += 1
            else:
                f.write(rec(ts, "drop", id="f%d" % i, proto="tcp", dst="10.1.1.1", dport=22) + "\n")
                tot["drops"] += 1
    rc, out, err = run("log", "--summary", "--json", gen)
    assert rc == 0, err
    s = json.loads(out)
    got = {h["host"]: h for h in s["hosts"]}
    for h, e in exp.items():
        if e["allowed"] + e["denied"] == 0:
            continue
        g = got[h]
        assert (g["allowed"], g["denied"], g["bytes_up"], g["bytes_down"]) == \
            (e["allowed"], e["denied"], e["up"], e["down"]), (h, g, e)
    t = s["totals"]
    assert (t["allowed"], t["denied"], t["drops"], t["bytes_up"], t["bytes_down"]) == \
        (tot["allowed"], tot["denied"], tot["drops"], tot["up"], tot["down"]), (t, tot)
    assert s["drops"] == [{"destination": "tcp 10.1.1.1:22", "count": tot["drops"],
                           "first": s["drops"][0]["first"], "last": s["drops"][0]["last"]}]
    rc, out, _ = run("log", "--summary", gen)
    assert "Total: " in out and "%d allowed" % tot["allowed"] in out, out


@case
def summary_names_the_deciding_rule_and_first_last_seen():
    rc, out, _ = run("log", "--summary", "--json", HAND)
    h = {x["host"]: x for x in json.loads(out)["hosts"]}
    assert h["api.test"]["rule"] == "api.test (p.yaml:3)"
    assert h["api.test"]["first"] == "2026-11-25T01:00:00.000Z"
    assert h["api.test"]["last"] == "2026-11-25T01:00:05.000Z"
    assert h["api.test"]["bytes_down"] == 2000


@case
def summary_counts_fence_summary_records_as_packets_not_a_destination():
    # The fence itemises the first packet of each flow and counts the rest of
    # a scan in summary records (no proto/dst; the count leads the message).
    p = os.path.join(W, "fence.log")
    msg = ("%d dropped packets of new flows not itemised (record rate limit); "
           "0 log overflows (the kernel dropped log messages)")
    with open(p, "w") as f:
        for i in range(3):
            f.write(rec("2026-11-25T04:00:0%d.000Z" % i, "drop", id="f%d" % i,
                        client="10.0.0.2:%d" % (5000 + i), proto="tcp",
                        dst="10.9.9.9", dport=22, reason="firewall") + "\n")
        f.write(rec("2026-11-25T04:00:05.000Z", "drop", id="s1", reason="firewall",
                    message=msg % 784) + "\n")
        f.write(rec("2026-11-25T04:00:10.000Z", "drop", id="s2", reason="firewall",
                    message=msg % 16) + "\n")
    rc, out, err = run("log", "--summary", "--json", p)
    assert rc == 0, err
    s = json.loads(out)
    assert [d["destination"] for d in s["drops"]] == ["tcp 10.9.9.9:22"], s["drops"]
    assert s["drops"][0]["count"] == 3
    assert s["totals"]["drops"] == 3 and s["totals"]["drops_not_itemised"] == 800, s["totals"]
    rc, out, _ = run("log", "--summary", p)
    assert "ATTEMPTS" in out and "800 more dropped packets were not itemised" in out, out
    assert "? ?" not in out, out


@case
def bad_lines_are_reported_with_line_numbers_skipped_and_never_counted():
    bad = os.path.join(W, "bad.log")
    with open(bad, "w") as f:
        f.write(LINES[0] + "\n")
        f.write("this is not json\n")                                   # line 2
        f.write(rec("2026-11-25T01:00:00.000Z", "deny", host="n.test", port=443,
                    future_field=1) + "\n")                              # line 3
        f.write('{"ts":"2026-11-25T01:00:00.000Z","event":"teleport"}\n')  # line 4
        f.write('{"ts":"yesterday","event":"deny"}\n')                   # line 5
        f.write('{"ts":"2026-11-25T01:00:00.000Z","event":"deny","port":"443"}\n')  # line 6
        f.write("\x00\x01binary\n")                                      # line 7
        f.write(LINES[2] + "\n")
        f.write(LINES[3][:40])                                           # line 9, truncated
    rc, out, err = run("log", "--summary", "--json", bad)
    assert rc == 1, (rc, err)
    for n in (2, 3, 4, 5, 6, 7, 9):
        assert "bad.log:%d:" % n in err, (n, err)
    assert "unknown field" in err and "truncated" in err
    t = json.loads(out)["totals"]
    assert t["records"] == 2 and t["skipped_lines"] == 7, t


@case
def follow_survives_rotation():
    live = os.path.join(W, "live.log")
    with open(live, "w") as f:
        f.write(LINES[2] + "\n")
    e = dict(os.environ, PAGER="cat")
    p = subprocess.Popen([BIN, "log", "--follow", "--json", live], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e)
    try:
        time.sleep(0.6)
        with open(live, "a") as f:
            f.write(LINES[3] + "\n")
        time.sleep(0.6)
        os.rename(live, live + ".1")  # logrotate moves the file ...
        with open(live, "w") as f:    # ... and the proxy reopens a new one (SIGUSR1)
            f.write(LINES[5] + "\n")
        time.sleep(1.0)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
    ids = [json.loads(l)["id"] for l in out.splitlines()]
    assert ids == ["a2", "a3", "f1"], (ids, err)


@case
def suggest_proposes_rules_only_for_fixable_denials():
    rc, out, err = run("log", "suggest", HAND)
    assert rc == 0, err
    assert "  - a.pkg.test" in out
    assert "  - host: b.pkg.test" in out and "ports: [8443]" in out
    assert "# not suggested: evil.test:443 (sni_mismatch)" in out
    assert "# not suggested: gist.api.test:443 (denied_by_rule)" in out
    assert "evil.test  #" not in out and "- gist" not in out


@case
def suggest_wildcards_folds_siblings_only_when_asked():
    rc, out, _ = run("log", "suggest", "--wildcards", HAND)
    assert '"*.pkg.test"' in out and "- a.pkg.test" not in out, out


POLICY = """# Team policy - keep this comment
version: 1

allow:
  # the model API
  - api.test          # inline comment stays
  - host: mirror.test
    ports: [80]

deny:
  - gist.api.test   # never
defaults:
  ports: [443]
"""


@case
def apply_merges_into_allow_keeping_comments_and_order_with_a_backup():
    d = tempfile.mkdtemp(dir=W)
    pol = os.path.join(d, "policy.yaml")
    with open(pol, "w") as f:
        f.write(POLICY)
    rc, out, err = run("log", "suggest", "--apply", pol, HAND)
    assert rc == 0, err
    new = open(pol).read()
    old_lines = POLICY.splitlines()
    new_lines = new.splitlines()
    # every original line is still there, in the same order
    it = iter(new_lines)
    assert all(any(l == n for n in it) for l in old_lines), new
    assert new.index("a.pkg.test") < new.index("deny:")
    assert new.index("mirror.test") < new.index("a.pkg.test")
    backups = [x for x in os.listdir(d) if x.endswith(".bak")]
    assert len(backups) == 1 and open(os.path.join(d, backups[0])).read() == POLICY
    rc, out, err = run("policy", "check", pol)
    assert rc == 0, (out, err)
    rc, out, err = run("policy", "explain", pol, "b.pkg.test:8443")
    assert rc == 0, (out, err)
    # nothing left to suggest against the updated policy
    rc, out, _ = run("log", "suggest", "--policy", pol, HAND)
    assert "nothing to suggest" in out, out


@case
def apply_never_writes_a_result_that_fails_policy_check():
    d = tempfile.mkdtemp(dir=W)
    pol = os.path.join(d, "policy.yaml")
    broken = POLICY.replace("defaults:\n  ports: [443]\n", "defaults:\n  ports: [443]\nbogus_key: 1\n")
    with open(pol, "w") as f:
        f.write(broken)
    rc, out, err = run("log", "suggest", "--apply", pol, HAND)
    assert rc == 1 and "policy.yaml:" in err, err
    assert open(pol).read() == broken
    assert [x for x in os.listdir(d)] == ["policy.yaml"], os.listdir(d)


@case
def apply_refuses_a_flow_style_allow_list_and_leaves_the_file():
    d = tempfile.mkdtemp(dir=W)
    pol = os.path.join(d, "policy.yaml")
    flow = "version: 1\nallow: [api.test]\n"
    with open(pol, "w") as f:
        f.write(flow)
    rc, out, err = run("log", "suggest", "--apply", pol, HAND)
    assert rc == 1 and "flow style" in err, err
    assert open(pol).read() == flow and os.listdir(d) == ["policy.yaml"]


@case
def apply_when_the_result_would_still_refuse_keeps_the_old_file():
    d = tempfile.mkdtemp(dir=W)
    pol = os.path.join(d, "policy.yaml")
    # a deny wildcard beats whatever allow rule gets added
    text = "version: 1\nallow:\n  - api.test\ndeny:\n  - \"*.pkg.test\"\n"
    with open(pol, "w") as f:
        f.write(text)
    logf = os.path.join(W, "deny-pkg.log")
    with open(logf, "w") as f:
        f.write(LINES[2] + "\n")
    # --policy-less suggest would propose a.pkg.test; with the policy it is
    # recognised as denied on purpose and not proposed
    rc, out, err = run("log", "suggest", "--apply", pol, logf)
    assert rc == 0 and "nothing to suggest" in out, (out, err)
    assert open(pol).read() == text


# Every deny reason other than not_allowed / port_not_allowed is a refusal
# a new allow rule must not undo (log_suggest.c's usage promises it): each
# is tried alone, so one that slips through cannot hide behind another.
NEVER_SUGGESTED = [
    ("denied_by_rule", "gist.kind.test", 443),
    ("sni_mismatch", "front.kind.test", 443),
    ("no_sni", "nosni.kind.test", 443),
    ("not_tls", "nottls.kind.test", 443),
    ("bad_clienthello", "hello.kind.test", 443),
    ("private_address", "priv.kind.test", 443),
    ("ip_literal", "203.0.113.7", 443),
    ("bad_request", "req.kind.test", 80),
    ("bad_host", "host.kind.test", 443),
    ("dns_failure", "dns.kind.test", 443),
    ("timeout", "slow.kind.test", 443),
    ("upstream_unreachable", "down.kind.test", 443),
    ("max_connections", "busy.kind.test", 443),
    ("client_reset", "reset.kind.test", 443),
    ("client_closed", "gone.kind.test", 443),
    # fixable reasons, but for an IP literal: a name rule cannot fix it
    ("not_allowed", "198.51.100.9", 443),
    ("port_not_allowed", "[2001:db8::9]", 8443),
]


@case
def suggest_never_proposes_a_rule_for_any_other_denial_kind():
    bad = []
    for i, (reason, host, port) in enumerate(NEVER_SUGGESTED):
        logf = os.path.join(W, "kind-%d.log" % i)
        with open(logf, "w") as f:
            f.write(rec("2026-11-25T04:00:00.000Z", "deny", id="k%d" % i, client="10.0.0.2:4100",
                        method="CONNECT", host=host, port=port, reason=reason) + "\n")
        rc, out, err = run("log", "suggest", logf)
        if rc != 0 or "nothing to suggest" not in out or "allow:" in out or \
                "# not suggested: %s:%d (%s)" % (host, port, reason) not in out:
            bad.append((reason, rc, out, err))
    assert not bad, bad


# ---- hostile records: a field may hold anything JSON can carry ----
# What must never reach the terminal or a suggested policy raw: C0 controls
# (the line break is checked by counting lines), DEL, C1 controls (U+0085 is
# a line break to YAML), Unicode bidi controls, and U+2028/U+2029 (line
# breaks to YAML as well).
BIDI = {0x061C, 0x200E, 0x200F, 0x2028, 0x2029} | set(range(0x202A, 0x202F)) | \
    set(range(0x2066, 0x206A))


def hostile_chars(text):
    return [hex(ord(c)) for c in text
            if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or ord(c) in BIDI]


HOSTILE = os.path.join(W, "hostile.log")
HOSTILE_LINES = [
    rec("2026-11-25T05:00:00.000Z", "deny", id="h1", client="10.0.0.2:1\nFORGED 1",
        method="CONNECT", host="evil.test", port=443, sni="x.test\n2026-11-25 open api.test",
        reason="sni_mismatch", message="\x1b[2K\x1b[1Aall good"),
    rec("2026-11-25T05:00:01.000Z", "deny", id="h2", client="10.0.0.2:2", method="GET\u202e",
        host="\u202etset.live", port=80, reason="not_allowed\r", rule="r\u2066 (p.yaml:1)\u2069"),
    rec("2026-11-25T05:00:02.000Z", "drop", id="h3", client="10.0.0.2\x7f", proto="tcp\u0085x",
        dst="10.9.9.9\x1b]0;pwned\x07", dport=22, reason="firewall"),
    rec("2026-11-25T05:00:03.000Z", "close", id="h4", client="10.0.0.2:3", host="api.test\u2028x",
        port=443, bytes_up=1, bytes_down=1, duration_ms=1, reason="eof\u200f"),
]
with open(HOSTILE, "w") as f:
    f.write("\n".join(HOSTILE_LINES) + "\n")


@case
def listing_escapes_control_and_bidi_characters_in_every_field():
    rc, out, err = run("log", "--no-pager", HOSTILE)
    assert rc == 0, err
    assert hostile_chars(out + err) == [], hostile_chars(out + err)
    assert len(out.splitlines()) == len(HOSTILE_LINES), out
    for shown in ("\\x1b[2K", "\\u202e", "\\x0a", "\\x7f", "\\u0085", "\\u2028",
                  "\\u2066", "\\u200f", "\\x0d", "\\x07"):
        assert shown in out, (shown, out)
    # the rest of each field is kept, so the record stays readable
    assert "2026-11-25 open api.test" in out and "all good" in out, out
    rc, out, err = run("log", "--no-pager", "--denied", HOSTILE)
    assert rc == 0 and hostile_chars(out + err) == [] and len(out.splitlines()) == 3, out


@case
def summary_escapes_control_and_bidi_characters_in_every_field():
    rc, out, err = run("log", "--no-pager", "--summary", HOSTILE)
    assert rc == 0, err
    assert hostile_chars(out + err) == [], hostile_chars(out + err)
    assert "\\u202etset.live" in out and "\\u2066" in out and "\\x1b]0;pwned" in out, out
    assert not any(l.startswith(("x ", "FORGED")) for l in out.splitlines()), out


@case
def suggest_comments_cannot_inject_lines_into_the_suggested_policy():
    logf = os.path.join(W, "hostile-suggest.log")
    with open(logf, "w") as f:
        f.write("\n".join([
            rec("2026-11-25T06:00:00.000Z", "deny", id="s1", client="10.0.0.2:1",
                method="CONNECT", host="x.test\nallow:\n  - evil.test", port=443,
                reason="not_allowed"),
            rec("2026-11-25T06:00:01.000Z", "deny", id="s2", client="10.0.0.2:2",
                method="CONNECT", host="y.test", port=443,
                reason="bad_request\u2028  - evil2.test\u0085  - evil3.test\x1b[2K"),
            rec("2026-11-25T06:00:02.000Z", "deny", id="s3", client="10.0.0.2:3",
                method="CONNECT", host="good.test", port=443, reason="not_allowed"),
        ]) + "\n")
    rc, out, err = run("log", "suggest", logf)
    assert rc == 0, err
    assert hostile_chars(out + err) == [], hostile_chars(out + err)
    lines = out.splitlines()
    assert lines[-2:] == ["allow:", lines[-1]] and "- good.test" in lines[-1], out
    assert all(l.startswith("#") for l in lines[:-2]), out
    assert len(lines) == 4, out


@case
def bad_line_warnings_escape_what_they_quote():
    logf = os.path.join(W, "hostile-bad.log")
    with open(logf, "w") as f:
        f.write('{"ts":"2026-11-25T06:00:00.000Z","event":"open","\\u001b[2Kx\\u202e":1}\n')
        f.write('{"ts":"2026-11-25T06:00:00.000Z","event":"\\u001b[2K\\nop\\u202een"}\n')
        f.write('{"ts":"2026-11-25T06:00:00.000Z","event":"open"} \x1b[2K\u202e\n')
    rc, out, err = run("log", "--no-pager", logf)
    assert rc == 1, (rc, err)
    assert hostile_chars(out + err) == [], hostile_chars(out + err)
    assert len(err.splitlines()) == 3, err



@case
def json_output_turns_a_cr_between_tokens_into_a_space():
    logf = os.path.join(W, "hostile-json.log")
    line = '{"ts":"2026-11-25T06:00:00.000Z",\r"event":"open",\t"host":"a.test"}'
    with open(logf, "w", newline="") as f:
        f.write(line + "\n")
    # bytes, not text: universal newlines would hide a CR
    p = subprocess.run([BIN, "log", "--no-pager", "--json", logf], capture_output=True,
                       timeout=120, env=dict(os.environ, PAGER="cat"))
    assert p.returncode == 0, p.stderr
    assert b"\r" not in p.stdout and b"\t" not in p.stdout, p.stdout
    assert json.loads(p.stdout) == json.loads(line), p.stdout


shutil.rmtree(W, ignore_errors=True)
failed = [n for n, e in results if e is not None]
print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
sys.exit(1 if failed else 0)

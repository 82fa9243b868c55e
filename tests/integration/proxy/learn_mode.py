#!/usr/bin/env python3
"""Learn mode (`mode: learn`, `agentsafe-proxy --learn`) against the real
proxy, with the proxy suite's upstreams: a name no rule allows is let
through and its open record says would_deny with the reason it would have
had; a private address no rule names is still never opened, an explicit
deny still denies, and an SNI other than the CONNECT host is still refused
before anything reaches the upstream. Exit status 1 when a case fails."""

import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_suite as S  # noqa: E402 - parses the same --bin/--work/-k

# Names of the suite's hosts file; the policy names only addresses (so the
# address guard lets the loopback upstreams through) and ok.test.
POLICY = """\
version: 1
%(mode)sallow:
  - ok.test
  - host: 127.0.0.10
  - host: 127.0.0.11
    ports: [80]
deny:
  - bad.wild.test
limits:
  header_timeout: 2s
  connect_timeout: 2s
"""

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def learned(P, host, port, reason="not_allowed"):
    recs = P.new(1, pred=lambda r: r["event"] == "open")
    r = S.only(recs, event="open", host=host)
    assert r.get("would_deny") is True and r.get("reason") == reason, r
    assert r["port"] == port, r
    return recs


@case
def unknown_name_is_allowed_and_its_open_record_marked(P):
    code, body, err = S.curl(P.port, "https://a.wild.test/")
    assert code == 200 and "hello from ok.test" in body, (code, err)
    learned(P, "a.wild.test", 443)


@case
def unknown_name_over_plain_http_is_forwarded_and_marked(P):
    code, body, err = S.curl(P.port, "http://fwd.test/x")
    assert code == 200, (code, err)
    learned(P, "fwd.test", 80)


@case
def allowed_name_is_not_marked(P):
    code, _, err = S.curl(P.port, "https://ok.test/")
    assert code == 200, (code, err)
    recs = P.new(1, pred=lambda r: r["event"] == "open")
    r = S.only(recs, event="open", host="ok.test")
    assert "would_deny" not in r and "reason" not in r, r


@case
def private_address_no_rule_names_is_never_opened(P):
    before = S.UPS["priv"].accepted
    s, code, _ = S.connect_tunnel(P.port, "priv.test:443")
    s.close()
    assert code == 403, code
    recs = P.new(1, pred=lambda r: r["event"] == "deny")
    r = S.only(recs, event="deny", host="priv.test")
    assert r["reason"] == "private_address" and r["ip"] == S.UP_PRIV, r
    assert not [x for x in recs if x["event"] == "open"], recs
    time.sleep(0.2)
    assert S.UPS["priv"].accepted == before, "the private upstream was reached"


@case
def explicit_deny_still_denies(P):
    s, code, _ = S.connect_tunnel(P.port, "bad.wild.test:443")
    s.close()
    assert code == 403, code
    recs = P.new(1)
    r = S.only(recs, event="deny", host="bad.wild.test")
    assert r["reason"] == "denied_by_rule" and "would_deny" not in r, r


@case
def ip_literal_no_rule_names_still_refused(P):
    s, st, _ = S.connect_tunnel(P.port, "127.0.0.12:443")
    s.close()
    assert st == 403, st
    r = S.only(P.new(1), event="deny", host="127.0.0.12")
    assert r["reason"] == "ip_literal", r


@case
def sni_mismatch_still_refused_before_the_upstream(P):
    before = S.UPS["tls"].accepted
    s, st, _ = S.connect_tunnel(P.port, "a.wild.test:443")
    assert st == 200, st
    _, _, _, hello = S.client_hello("evil.test", check_hostname=False)
    s.sendall(hello)
    assert S.closed_without_data(s)
    s.close()
    r = S.only(P.new(1), event="deny", host="a.wild.test")
    assert r["reason"] == "sni_mismatch", r
    time.sleep(0.2)
    assert S.UPS["tls"].accepted == before, "the upstream was reached"


def run_cases(P, label, failed):
    for fn in CASES:
        name = "%s: %s" % (label, fn.__name__)
        if S.ARGS.k not in name:
            continue
        t0 = time.time()
        try:
            P.new(0, timeout=0)
            fn(P)
            print("ok   %-75s %.2fs" % (name, time.time() - t0), flush=True)
        except Exception:
            failed.append(name)
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
    rc = P.stop()
    err = P.stderr()
    if rc != 0 or "Sanitizer" in err or "runtime error" in err:
        failed.append("%s: proxy exit rc=%s" % (label, rc))
        print("FAIL %s proxy exit rc=%s\n%s" % (label, rc, err[-3000:]))


def main():
    S.make_pki()
    S.UPS = {
        "tls": S.Upstream(S.UP_TLS, 443, S.tls_http_or_echo, tls=True),
        "http": S.Upstream(S.UP_HTTP, 80, S.http_upstream),
        "priv": S.Upstream(S.UP_PRIV, 443, S.tls_http_or_echo, tls=True),
    }
    failed = []
    # mode: learn in the file
    run_cases(S.Proxy("file", 3290, policy=POLICY % {"mode": "mode: learn\n"}),
              "mode: learn", failed)
    # an enforcing file, learn mode from the command line (agentsafe-launch --learn)
    run_cases(S.Proxy("flag", 3291, policy=POLICY % {"mode": ""}, extra=["--learn"]),
              "--learn", failed)
    # the same enforcing file without --learn: the unknown name is refused
    P = S.Proxy("enforce", 3292, policy=POLICY % {"mode": ""})
    try:
        s, code, _ = S.connect_tunnel(P.port, "a.wild.test:443")
        s.close()
        r = S.only(P.new(1), event="deny", host="a.wild.test")
        assert code == 403 and r["reason"] == "not_allowed", (code, r)
        print("ok   enforce: unknown_name_refused_without_learn_mode", flush=True)
    except Exception:
        failed.append("enforce")
        print("FAIL enforce\n%s" % traceback.format_exc(), flush=True)
    P.stop()
    if failed:
        print("\n%d failed: %s" % (len(failed), ", ".join(failed)))
        sys.exit(1)
    print("\nall learn-mode cases passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The session fence on real nftables, without Docker (needs root): a "host"
# namespace with two session bridges, a "container" on each, and an
# upstream host routed from the host namespace. The launcher's fence code
# (via fence_driver) programs the host namespace; the container then tries
# every way around the proxy, and each must be dropped AND leave a `drop`
# record read back from NFLOG (a timeout, not a refusal). Also: published
# ports in from outside (others not), a one-flow flood logged once without
# hiding a new flow, remove, and the stale-session sweep (dead owner, a
# planted table). Every namespace is the test's own; nothing reaches a real
# network; a trap removes them all.
set -euo pipefail
BIN=${AGENTSAFE_BIN:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fence test: needs root (ip netns, nftables)" >&2; exit 1; }
DRV=$BIN/fence_driver
PROBE=(python3 "$HERE/probe.py")
[ -x "$DRV" ] || { echo "fence test: $DRV missing" >&2; exit 1; }

T=f$$                       # short: interface names have 15 bytes
H=asfen-h-$$; C1=asfen-c1-$$; C2=asfen-c2-$$; U=asfen-u-$$
W=$(mktemp -d /tmp/asfen.XXXXXX)
TABLE1=agentsafe_s1$T; TABLE2=agentsafe_s2$T
GROUP=$(( 3000 + $$ % 1000 ))
cleanup() {
  [ -z "${OWNER2:-}" ] || kill "$OWNER2" 2>/dev/null || true
  for ns in $H $C1 $C2 $U; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.2
  for ns in $H $C1 $C2 $U; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
inH() { ip netns exec "$H" "$@"; }
inC1() { ip netns exec "$C1" "$@"; }

for ns in $H $C1 $C2 $U; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
inH sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# Session bridges (what Docker would create per session network).
ip -n "$H" link add b1$T type bridge; ip -n "$H" link add b2$T type bridge
ip -n "$H" addr add 10.213.0.1/24 dev b1$T
ip -n "$H" addr add fd00:213::1/64 dev b1$T nodad
ip -n "$H" addr add 10.215.0.1/24 dev b2$T
ip -n "$H" link set b1$T up; ip -n "$H" link set b2$T up
# Container 1 on bridge 1, container 2 on bridge 2.
ip link add c1$T netns "$H" type veth peer name eth0 netns "$C1"
ip -n "$H" link set c1$T master b1$T up
ip -n "$C1" addr add 10.213.0.2/24 dev eth0
ip -n "$C1" addr add fd00:213::2/64 dev eth0 nodad
ip -n "$C1" link set eth0 up
ip -n "$C1" route add default via 10.213.0.1
ip -n "$C1" -6 route add default via fd00:213::1
ip link add c2$T netns "$H" type veth peer name eth0 netns "$C2"
ip -n "$H" link set c2$T master b2$T up
ip -n "$C2" addr add 10.215.0.2/24 dev eth0; ip -n "$C2" link set eth0 up
ip -n "$C2" route add default via 10.215.0.1
# The "internet": an upstream host routed from the host namespace.
ip link add u$T netns "$H" type veth peer name eth0 netns "$U"
ip -n "$H" addr add 10.214.0.1/24 dev u$T; ip -n "$H" link set u$T up
ip -n "$U" addr add 10.214.0.2/24 dev eth0; ip -n "$U" link set eth0 up
ip -n "$U" route add default via 10.214.0.1
# IPv6 neighbour discovery is itself dropped by the fence (as all IPv6 is);
# a static entry lets the container's TCP SYN out so we see it dropped.
BRMAC=$(ip -n "$H" -j link show b1$T | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
ip -n "$C1" -6 neigh add fd00:213::1 lladdr "$BRMAC" dev eth0 nud permanent

# Listeners: the "proxy" and a host service in H; services in U and C2.
# Non-TCP listeners on the proxy's own address and port: UDP (v4 and v6),
# UDP-Lite when the kernel has it, and a raw catcher for SCTP.
UDPLITE=yes
python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)' 2>/dev/null || UDPLITE=
inH "${PROBE[@]}" listen "$W/h.hits" tcp:10.213.0.1:3128 tcp:10.215.0.1:3128 tcp:0.0.0.0:2222 udp:0.0.0.0:53 \
  tcp:0.0.0.0:53 "tcp:[::]:3128" udp:10.213.0.1:3128 "udp:[::]:3128" raw132:10.213.0.1:0 \
  ${UDPLITE:+udplite:10.213.0.1:3128} > "$W/h.ready" &
ip netns exec "$U" "${PROBE[@]}" listen "$W/u.hits" tcp:10.214.0.2:443 udp:10.214.0.2:9999 \
  udp:10.214.0.2:53 > "$W/u.ready" &
ip netns exec "$C2" "${PROBE[@]}" listen "$W/c2.hits" tcp:10.215.0.2:8080 > "$W/c2.ready" &
# In container 1: a published web port and one that is not published.
inC1 "${PROBE[@]}" listen "$W/c1.hits" tcp:0.0.0.0:8000 tcp:0.0.0.0:9000 > "$W/c1.ready" &
for f in h u c2 c1; do
  for _ in $(seq 50); do grep -q listening "$W/$f.ready" 2>/dev/null && break; sleep 0.1; done
  grep -q listening "$W/$f.ready" || fail "listener $f did not start"
done

# Control: without the fence every path is open, so the checks below can
# fail (a test that cannot fail proves nothing).
inC1 "${PROBE[@]}" tcp 10.214.0.2 443 || fail "control: no route to the upstream before the fence"
inC1 "${PROBE[@]}" tcp 10.213.0.1 2222 || fail "control: host service unreachable before the fence"
inC1 "${PROBE[@]}" tcp 10.215.0.2 8080 || fail "control: other session unreachable before the fence"
inC1 "${PROBE[@]}" tcp 10.215.0.1 3128 || fail "control: other session's proxy unreachable before the fence"
inC1 "${PROBE[@]}" icmp 10.214.0.2 || fail "control: ping failed before the fence"
ip netns exec "$U" "${PROBE[@]}" tcp 10.213.0.2 9000 || fail "control: the container's port 9000 unreachable before the fence"
inC1 "${PROBE[@]}" udp 10.214.0.2 9999; sleep 0.3
grep -q "udp:10.214.0.2:9999" "$W/u.hits" || fail "control: UDP did not arrive before the fence"
# The same for what goes to the proxy's own address and port, other than TCP.
inC1 "${PROBE[@]}" icmp 10.213.0.1 || fail "control: ping of the proxy's address failed before the fence"
inC1 "${PROBE[@]}" udp 10.213.0.1 3128
inC1 "${PROBE[@]}" sctp 10.213.0.1 3128 || fail "control: could not send SCTP"
[ -z "$UDPLITE" ] || inC1 "${PROBE[@]}" udplite 10.213.0.1 3128
sleep 0.3
grep -q "^udp:10.213.0.1:3128 " "$W/h.hits" || fail "control: UDP to the proxy port did not arrive before the fence"
grep -q "^raw132:10.213.0.1:0 " "$W/h.hits" || fail "control: SCTP to the proxy address did not arrive before the fence"
[ -z "$UDPLITE" ] || grep -q "^udplite:10.213.0.1:3128 " "$W/h.hits" \
  || fail "control: UDP-Lite to the proxy port did not arrive before the fence"
if python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)' 2>/dev/null; then
  echo "note: the kernel has SCTP; the raw INIT below is the same packet a socket would send first"
else
  echo "note: the kernel has no SCTP sockets (EPROTONOSUPPORT); SCTP is sent as a raw IP packet"
fi
[ -n "$UDPLITE" ] || echo "SKIPPED: UDP-Lite to the proxy port (the kernel has no UDP-Lite sockets)"
: > "$W/u.hits"; : > "$W/h.hits"; : > "$W/c2.hits"

# The fence, for session 1 (bridge 1, proxy 10.213.0.1:3128, web port
# 8000-8099 published) and session 2, plus the NFLOG reader of session 1.
ip netns exec "$H" "$DRV" nflog "$GROUP" "$W/egress.log" "s1$T" 2> "$W/nflog.err" &
NFLOG_PID=$!
for _ in $(seq 50); do grep -q "nflog ready" "$W/nflog.err" 2>/dev/null && break; sleep 0.1; done
grep -q "nflog ready" "$W/nflog.err" || fail "NFLOG reader did not start: $(cat "$W/nflog.err")"
# Owners (for the sweep): session 1 is owned by its NFLOG reader, session
# 2 by a stand-in process; both live for the whole test.
sleep 600 & OWNER2=$!
inH "$DRV" apply "$TABLE1" b1$T 10.213.0.1 3128 "$GROUP" 8000-8099 owner=$NFLOG_PID
inH "$DRV" apply "$TABLE2" b2$T 10.215.0.1 3128 $((GROUP + 1)) owner=$OWNER2
inH nft list table inet "$TABLE1" > "$W/ruleset.txt"
grep -q 'iifname "b1'"$T"'" ip daddr 10.213.0.1 tcp dport 3128' "$W/ruleset.txt" \
  || fail "proxy accept rule not found in: $(cat "$W/ruleset.txt")"
grep -q 'log prefix "agentsafe s1'"$T"'" group '"$GROUP" "$W/ruleset.txt" || fail "log rule missing"
# Applying again replaces the table atomically: same rules, not twice.
inH "$DRV" apply "$TABLE1" b1$T 10.213.0.1 3128 "$GROUP" 8000-8099 owner=$NFLOG_PID
inH nft list table inet "$TABLE1" > "$W/ruleset2.txt"
[ "$(grep -c 'log prefix "agentsafe s1'"$T"'" group' "$W/ruleset2.txt")" = 12 ] || fail "re-apply: $(grep -c 'log prefix' "$W/ruleset2.txt") log rules, expected 12"
# ... and as many for new flows that find the flow set full (tagged).
[ "$(grep -c 'log prefix "agentsafe s1'"$T"' setfull" group' "$W/ruleset2.txt")" = 12 ] || fail "re-apply: set-full log rules, expected 12: $(cat "$W/ruleset2.txt")"
# What Docker (iptables-nft) does: ACCEPT rules in its own tables, at its
# priority 0 and even earlier. An accept only ends its own chain; the
# fence's drop still applies.
inH nft -f - <<NFT
table inet asfen_docker$T {
  chain early_in { type filter hook input priority -200; iifname "b1$T" accept; }
  chain early_fw { type filter hook forward priority -200; iifname "b1$T" accept; }
  chain input { type filter hook input priority 0; iifname "b1$T" accept; }
  chain forward { type filter hook forward priority 0; iifname "b1$T" accept; }
}
NFT

# The proxy path works.
inC1 "${PROBE[@]}" tcp 10.213.0.1 3128 || fail "the proxy is unreachable through the fence"
# Inbound: the published port is reachable from outside, another is not.
ip netns exec "$U" "${PROBE[@]}" tcp 10.213.0.2 8000 || fail "the published port 8000 is unreachable through the fence"
rc=0; ip netns exec "$U" "${PROBE[@]}" tcp 10.213.0.2 9000 || rc=$?
[ "$rc" -eq 1 ] || fail "an unpublished container port was reachable from outside (exit $rc)"
# The host itself (the proxy's side) still reaches the upstream.
inH "${PROBE[@]}" tcp 10.214.0.2 443 || fail "the host lost its own route to the upstream"
: > "$W/u.hits"; : > "$W/h.hits"

# The bypass matrix: each must fail from the container.
declare -a EXPECT=()
blocked() { # description, expected record "proto dst dport", probe args...
  local what=$1 rec=$2 rc=0; shift 2
  inC1 "${PROBE[@]}" "$@" || rc=$?
  [ "$rc" -ne 0 ] || fail "$what: went through the fence"
  # A timeout, not a refusal: the packet was dropped, nobody answered.
  [ "$rc" -eq 1 ] || fail "$what: failed other than by a timeout (exit $rc)"
  EXPECT+=("$what|$rec")
  echo "dropped: $what"
}
blocked "TCP to another port on the proxy's address" "tcp 10.213.0.1 3129" tcp 10.213.0.1 3129
blocked "TCP to a host service on the bridge address" "tcp 10.213.0.1 2222" tcp 10.213.0.1 2222
blocked "TCP to a host service on its LAN address" "tcp 10.214.0.1 2222" tcp 10.214.0.1 2222
blocked "TCP straight to the allowed upstream's IP" "tcp 10.214.0.2 443" tcp 10.214.0.2 443
blocked "TCP to another session's container" "tcp 10.215.0.2 8080" tcp 10.215.0.2 8080
blocked "TCP to another session's proxy" "tcp 10.215.0.1 3128" tcp 10.215.0.1 3128
blocked "DNS over TCP to the host" "tcp 10.213.0.1 53" tcp 10.213.0.1 53
blocked "IPv6 TCP to the proxy port" "tcp fd00:213::1 3128" tcp fd00:213::1 3128
blocked "ICMP echo to the upstream" "icmp 10.214.0.2 -" icmp 10.214.0.2
blocked "ICMPv6 echo to the host" "icmpv6 fd00:213::1 -" icmp fd00:213::1
inC1 "${PROBE[@]}" udp 10.214.0.2 9999; EXPECT+=("UDP to the upstream|udp 10.214.0.2 9999")
inC1 "${PROBE[@]}" udp 10.213.0.1 53; EXPECT+=("DNS over UDP to the host|udp 10.213.0.1 53")
inC1 "${PROBE[@]}" udp 10.214.0.2 53; EXPECT+=("DNS over UDP to the upstream|udp 10.214.0.2 53")
# Only TCP may reach the proxy's address and port: everything else sent to
# exactly that address and port is dropped and logged.
blocked "ICMP echo to the proxy's address" "icmp 10.213.0.1 -" icmp 10.213.0.1
inC1 "${PROBE[@]}" udp 10.213.0.1 3128; EXPECT+=("UDP to the proxy's address and port|udp 10.213.0.1 3128")
inC1 "${PROBE[@]}" udp fd00:213::1 3128; EXPECT+=("IPv6 UDP to the proxy port|udp fd00:213::1 3128")
inC1 "${PROBE[@]}" sctp 10.213.0.1 3128 || fail "could not send SCTP"
EXPECT+=("SCTP INIT to the proxy's address and port|132 10.213.0.1 -")
if [ -n "$UDPLITE" ]; then
  inC1 "${PROBE[@]}" udplite 10.213.0.1 3128
  EXPECT+=("UDP-Lite to the proxy's address and port|136 10.213.0.1 -")
fi
# A flood of one flow neither fills the log nor hides a new flow's first
# packet sent in the middle of it.
inC1 "${PROBE[@]}" flood 10.214.0.2 7777 7778 3000
EXPECT+=("UDP flood, one record|udp 10.214.0.2 7777 once")
EXPECT+=("a new flow inside the flood|udp 10.214.0.2 7778 once")
sleep 1
[ ! -s "$W/u.hits" ] || fail "the upstream received: $(cat "$W/u.hits")"
grep -v "tcp:10.213.0.1:3128" "$W/h.hits" | grep -q . && fail "the host received: $(cat "$W/h.hits")"
[ ! -s "$W/c2.hits" ] || fail "the other session received: $(cat "$W/c2.hits")"

# Every attempt is in egress.log as a drop record; the proxy path is not.
python3 - "$W/egress.log" "s1$T" "${EXPECT[@]}" <<'PY'
import json, sys
path, session, expect = sys.argv[1], sys.argv[2], sys.argv[3:]
recs = [json.loads(l) for l in open(path)]
assert recs, "no records at all"
for r in recs:
    assert r["event"] == "drop" and r["reason"] == "firewall" and r["session"] == session, r
    assert "not itemised" not in r.get("message", ""), "record budget hit: %s" % r
    assert r["client"].startswith(("10.213.0.2", "[fd00:213::2]", "fd00:213::2", "fe80:")), r
bad = []
for e in expect:
    what, spec = e.split("|")
    f = spec.split()
    proto, dst = f[0], f[1]
    port = int(f[2]) if len(f) > 2 and f[2] != "-" else None
    hits = [r for r in recs if r.get("dst") == dst and r.get("proto") == proto and
            (port is None or r.get("dport") == port)]
    if len(f) > 3 and f[3] == "once" and len(hits) > 1:
        bad.append("%s: %d records, expected one" % (what, len(hits)))
    if proto == "icmpv6":
        hits = [r for r in recs if r.get("dst") == dst and r.get("proto") == "icmpv6"
                and "type 128" in r.get("message", "")]
    print("%-45s %s" % (what, "logged" if hits else "NOT LOGGED"))
    if not hits:
        bad.append(what)
proxy = [r for r in recs if r.get("dst") == "10.213.0.1" and r.get("dport") == 3128 and r.get("proto") == "tcp"]
assert not proxy, "the allowed proxy path was logged as a drop: %s" % proxy
assert not bad, "missing drop records for: %s\nrecords: %s" % (bad, recs)
PY

# A scan of 400 ports outruns the record budget (burst 200): every port is
# either itemised or counted in a summary record (written at the latest
# when the reader closes), none lost.
inC1 "${PROBE[@]}" scan 10.214.0.2 30000 400
sleep 1
# A scan past the 4096 flows a family's set holds, from session 2 with a
# reader of its own: the new flows that found the set full are not silent,
# the summary counts them, and every port is accounted for.
ip netns exec "$H" "$DRV" nflog $((GROUP + 1)) "$W/egress3.log" "s2$T" 2> "$W/nflog3.err" & R3=$!
for _ in $(seq 50); do grep -q "nflog ready" "$W/nflog3.err" 2>/dev/null && break; sleep 0.1; done
# One datagram first, so the container's neighbour entry is resolved and
# no scan packet waits (or is lost) before reaching the fence.
ip netns exec "$C2" "${PROBE[@]}" scan 10.214.0.2 19999 1
sleep 0.5
ip netns exec "$C2" "${PROBE[@]}" scan 10.214.0.2 20000 5000
# The kernel batches log messages up to 1 s (NFULNL_TIMEOUT_DEFAULT).
sleep 2
kill "$R3"; wait "$R3" || fail "the second NFLOG reader exited with an error: $(cat "$W/nflog3.err")"
python3 - "$W/egress3.log" <<'PY' || fail "set-full accounting"
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ports = {r["dport"] for r in recs if r.get("dst") == "10.214.0.2"
         and r.get("proto") == "udp" and 20000 <= r.get("dport", 0) < 25000}
summ = [r for r in recs if "not itemised" in r.get("message", "")]
nums = [[int(x) for x in re.findall(r"(\d+) (?:dropped|log)", r["message"])] for r in summ]
budget = sum(n[0] for n in nums)
lost = sum(n[1] for n in nums)
full = sum(n[2] for n in nums if len(n) > 2)
print("scan of 5000 ports: %d itemised, %d counted (record budget), %d counted (flow set "
      "full), %d log overflows" % (len(ports), budget, full, lost))
assert lost == 0, "the reader fell behind; the accounting below would not be exact"
assert full > 0, "no drop was counted as 'flow set full' past 4096 flows"
assert len(ports) + budget + full == 5000, (len(ports), budget, full)
assert all(r.get("count") == n[0] + n[2] for r, n in zip(summ, nums))
PY

# Removal: both tables gone, the path is open again; the reader exits clean.
inH "$DRV" remove "$TABLE1"; inH "$DRV" remove "$TABLE2"
inH nft list tables > "$W/tables.txt"
grep -q "$TABLE1\|$TABLE2" "$W/tables.txt" && fail "tables left after remove"
inC1 "${PROBE[@]}" tcp 10.214.0.2 443 || fail "path still blocked after fence_remove"
kill "$NFLOG_PID"; wait "$NFLOG_PID" || fail "the NFLOG reader exited with an error: $(cat "$W/nflog.err")"
python3 - "$W/egress.log" <<'PY' || fail "scan accounting"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ports = {r["dport"] for r in recs if r.get("dst") == "10.214.0.2"
         and r.get("proto") == "udp" and 30000 <= r.get("dport", 0) < 30400}
summ = [r for r in recs if "not itemised" in r.get("message", "")]
counted = sum(int(r["message"].split()[0]) for r in summ)
print("scan of 400 ports: %d itemised, %d counted in %d summary record(s)"
      % (len(ports), counted, len(summ)))
assert summ and all(r["event"] == "drop" and r["reason"] == "firewall" for r in summ)
assert 150 <= len(ports) <= 300, len(ports)  # the budget: burst 200 + 20/s
assert len(ports) + counted == 400, (len(ports), counted)
PY
folded=$(sed -n 's/^nflog folded //p' "$W/nflog.err")
[ "${folded:-0}" -gt 0 ] || fail "the flood reached the reader without folding: $(cat "$W/nflog.err")"
echo "flood: the reader folded $folded repeats into one record"
# Closing the reader released its group: a new reader binds it (EBUSY if not).
ip netns exec "$H" "$DRV" nflog "$GROUP" "$W/egress2.log" "s1$T" 2> "$W/nflog2.err" & R2=$!
for _ in $(seq 50); do grep -q "nflog ready" "$W/nflog2.err" 2>/dev/null && break; sleep 0.1; done
grep -q "nflog ready" "$W/nflog2.err" || fail "group $GROUP not released: $(cat "$W/nflog2.err")"
kill "$R2"; wait "$R2" || fail "second reader failed: $(cat "$W/nflog2.err")"

# Sweep after a crash (owner check recorded in the table comment): a table
# whose owner exited, and one planted by hand whose owner pid 1 has another
# start time (pid reuse), go; a live owner's table and a table without an
# owner comment (cannot judge) stay.
sleep 600 & DEAD=$!
inH "$DRV" apply agentsafe_stale$T b2$T 10.215.0.1 3128 $((GROUP + 2)) owner=$DEAD
kill "$DEAD"; wait "$DEAD" 2>/dev/null || true
inH "$DRV" apply agentsafe_live$T b1$T 10.213.0.1 3128 $((GROUP + 3)) owner=$OWNER2
NS=$(stat -L -c %i /proc/self/ns/pid)
inH nft add table inet agentsafe_planted$T "{ comment \"agentsafe owner pid=1 start=1 pidns=$NS\"; }"
inH nft add table inet agentsafe_nocomment$T
inH nft list tables > "$W/tables.txt"
grep -q "agentsafe_planted$T" "$W/tables.txt" || fail "could not plant a stale table"
inH nft list table inet agentsafe_live$T > "$W/live.txt"
grep -q "comment \"agentsafe owner pid=$OWNER2 start=" "$W/live.txt" \
  || fail "owner comment missing: $(head -3 "$W/live.txt")"
n=$(inH "$DRV" sweep)
inH nft list tables > "$W/tables.txt"
[ "$n" = 2 ] || fail "sweep removed $n tables, expected 2: $(cat "$W/tables.txt")"
grep -q "agentsafe_stale$T" "$W/tables.txt" && fail "the dead owner's table survived the sweep"
grep -q "agentsafe_planted$T" "$W/tables.txt" && fail "the planted stale table survived the sweep"
grep -q "agentsafe_live$T" "$W/tables.txt" || fail "sweep removed a live session's table"
grep -q "agentsafe_nocomment$T" "$W/tables.txt" || fail "sweep removed a table it cannot judge"
# The caller's own liveness check, when given, decides instead.
n=$(inH "$DRV" sweep --live "live$T")
[ "$n" = 1 ] || fail "sweep --live removed $n tables, expected 1"
inH nft list tables > "$W/tables.txt"
grep -q "agentsafe_nocomment$T" "$W/tables.txt" && fail "sweep --live kept a table not listed"
inH "$DRV" remove agentsafe_live$T
kill "$OWNER2"; wait "$OWNER2" 2>/dev/null || true
# Bad input is refused with a message, and nothing is installed.
if inH "$DRV" apply "not_ours" b1$T 10.213.0.1 3128 1 2> "$W/bad.err"; then fail "accepted a foreign table name"; fi
grep -q "table name must be" "$W/bad.err" || fail "unclear error: $(cat "$W/bad.err")"
echo "fence: bypass matrix dropped and logged; remove and sweep work"

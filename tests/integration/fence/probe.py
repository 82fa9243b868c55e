#!/usr/bin/env python3
"""Probe and listener helper for the fence test.
  probe.py tcp ADDR PORT        exit 0 when a TCP connection opens, 1 when
                                it times out (1 s: dropped), 3 on another
                                error (refused, unreachable)
  probe.py udp ADDR PORT        send one datagram
  probe.py flood ADDR A B N     N datagrams to port A, one to port B after
                                the first half of them
  probe.py scan ADDR FIRST N    one datagram to each of N ports from FIRST
  probe.py icmp ADDR            exit 0 when an echo reply arrives (1 s)
  probe.py udplite ADDR PORT    send one UDP-Lite datagram (exit 4: the
                                kernel has no UDP-Lite)
  probe.py sctp ADDR PORT       send one SCTP INIT as a raw IP packet
                                (protocol 132: needs no SCTP in the kernel)
  probe.py listen FILE SPEC...  SPEC = tcp:ADDR:PORT | udp:ADDR:PORT |
                                udplite:ADDR:PORT | raw132:ADDR:0 (every
                                SCTP packet to ADDR); appends one line per
                                connection/datagram/packet to FILE"""
import os
import socket
import struct
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp(addr, port):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect((addr, int(port)))
        return 0
    except socket.timeout:
        return 1
    except OSError as e:
        print("probe: tcp %s:%s: %s" % (addr, port, e), file=sys.stderr)
        return 3


def flood(addr, a, b, n):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    for i in range(int(n)):
        if i == int(n) // 2:
            s.sendto(b"new flow", (addr, int(b)))
        try:
            s.sendto(b"flood", (addr, int(a)))
        except OSError:
            pass
    return 0


def udp(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    try:
        s.sendto(b"agentsafe-fence-probe", (addr, int(port)))
    except OSError:
        pass
    return 0


IPPROTO_UDPLITE = 136
IPPROTO_SCTP = 132


def udplite(addr, port):
    try:
        s = socket.socket(family(addr), socket.SOCK_DGRAM, IPPROTO_UDPLITE)
    except OSError as e:
        print("probe: no UDP-Lite: %s" % e, file=sys.stderr)
        return 4
    try:
        s.sendto(b"agentsafe-fence-probe", (addr, int(port)))
    except OSError:
        pass
    return 0


def sctp(addr, port):
    # Common header (ports, verification tag 0, checksum left 0: nothing on
    # the path validates it) and one INIT chunk.
    init = struct.pack("!BBHIIHHI", 1, 0, 20, 0x41534146, 65536, 1, 1, 1)
    pkt = struct.pack("!HHII", 40000, int(port), 0, 0) + init
    s = socket.socket(family(addr), socket.SOCK_RAW, IPPROTO_SCTP)
    try:
        s.sendto(pkt, (addr, 0))
    except OSError as e:
        print("probe: sctp %s: %s" % (addr, e), file=sys.stderr)
        return 3
    return 0


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def icmp(addr):
    v6 = ":" in addr
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    s = socket.socket(family(addr), socket.SOCK_RAW, proto)
    s.settimeout(1.0)
    typ = 128 if v6 else 8
    body = struct.pack("!HH", os.getpid() & 0xffff, 1) + b"fence"
    hdr = struct.pack("!BBH", typ, 0, 0)
    pkt = hdr + body
    if not v6:  # the kernel fills in the ICMPv6 checksum
        pkt = struct.pack("!BBH", typ, 0, checksum(pkt)) + body
    s.sendto(pkt, (addr, 0))
    deadline = time.time() + 1.0
    while time.time() < deadline:
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            return 1
        t = data[0] if v6 else data[(data[0] & 0x0f) * 4]
        if t == (129 if v6 else 0):
            return 0
    return 1


def listen(path, specs):
    out = open(path, "a", buffering=1)

    def serve_tcp(s, spec):
        while True:
            c, a = s.accept()
            out.write("%s from %s\n" % (spec, a[0]))
            c.close()

    def serve_udp(s, spec):
        while True:
            d, a = s.recvfrom(2048)
            out.write("%s from %s\n" % (spec, a[0]))

    def serve_raw(s, spec, dst):
        while True:
            d, a = s.recvfrom(65536)
            if socket.inet_ntoa(d[16:20]) == dst:
                out.write("%s from %s\n" % (spec, a[0]))

    for spec in specs:
        kind, rest = spec.split(":", 1)
        addr, port = rest.rsplit(":", 1)
        addr = addr.strip("[]")
        if kind == "raw132":
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
            threading.Thread(target=serve_raw, args=(s, spec, addr), daemon=True).start()
            continue
        st = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family(addr), st, IPPROTO_UDPLITE if kind == "udplite" else 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family(addr) == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, int(port)))
        if kind == "tcp":
            s.listen(64)
        threading.Thread(target=serve_tcp if kind == "tcp" else serve_udp,
                         args=(s, spec), daemon=True).start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "tcp":
        sys.exit(tcp(sys.argv[2], sys.argv[3]))
    if cmd == "udp":
        sys.exit(udp(sys.argv[2], sys.argv[3]))
    if cmd == "scan":
        so = socket.socket(family(sys.argv[2]), socket.SOCK_DGRAM)
        for p in range(int(sys.argv[3]), int(sys.argv[3]) + int(sys.argv[4])):
            so.sendto(b"scan", (sys.argv[2], p))
        sys.exit(0)
    if cmd == "flood":
        sys.exit(flood(*sys.argv[2:6]))
    if cmd == "icmp":
        sys.exit(icmp(sys.argv[2]))
    if cmd == "udplite":
        sys.exit(udplite(sys.argv[2], sys.argv[3]))
    if cmd == "sctp":
        sys.exit(sctp(sys.argv[2], sys.argv[3]))
    if cmd == "listen":
        listen(sys.argv[2], sys.argv[3:])
    sys.exit(2)

#!/usr/bin/env python3
"""Simulated nodes against one cluster manager (driven by cluster_scale.sh).

Every simulated node is a thread that does what a node manager does:
AllocateSubnet, RegisterKey with a real X25519 public key, then ListPeers long
polls (since the last revision) until its peer list holds every other node.
Messages travel as application/proto (hand-encoded: the stdlib has no
protobuf), one keep-alive connection per node. Prints one line of figures as
key=value pairs. Standard library only.
"""
import argparse
import base64
import http.client
import os
import sys
import threading
import time

SVC = "/wgcni.cluster.v1.ClusterService/"

# --- X25519 (RFC 7748), enough to derive public keys -------------------------
P = 2**255 - 19


def x25519_base(scalar: bytes) -> bytes:
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    x1, x2, z2, x3, z3, swap = 9, 1, 0, 9, 1, 0
    for t in range(254, -1, -1):
        kt = (k >> t) & 1
        swap ^= kt
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = kt
        a = x2 + z2
        aa = a * a % P
        b = x2 - z2
        bb = b * b % P
        e = aa - bb
        c = x3 + z3
        d = x3 - z3
        da = d * a % P
        cb = c * b % P
        x3 = (da + cb) ** 2 % P
        z3 = x1 * (da - cb) ** 2 % P
        x2 = aa * bb % P
        z2 = e * (aa + 121665 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def keypair():
    priv = os.urandom(32)
    return base64.b64encode(priv).decode(), base64.b64encode(x25519_base(priv)).decode()


# --- protobuf wire format, the few bits we need ------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_str(field: int, s: str) -> bytes:
    data = s.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def f_int(field: int, n: int) -> bytes:
    return varint(field << 3) + varint(n) if n else b""


def read_varint(buf: bytes, i: int):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def list_peers_summary(buf: bytes):
    """(number of peers, revision) of a ListPeersResponse."""
    i, peers, rev = 0, 0, 0
    while i < len(buf):
        tag, i = read_varint(buf, i)
        wt = tag & 7
        if wt == 0:
            v, i = read_varint(buf, i)
            if tag >> 3 == 2:
                rev = v
        elif wt == 2:
            ln, i = read_varint(buf, i)
            i += ln
            if tag >> 3 == 1:
                peers += 1
        else:
            raise ValueError("unexpected wire type %d" % wt)
    return peers, rev


def list_peers_summary_fast(buf: bytes):
    """The same at C speed for this benchmark's own names: each Peer starts
    with its name field, 0x0a 0x09 "node-NNNN", and nothing else in a peer
    (base64 key, endpoint, CIDRs) can hold "node-". The revision (field 2) is
    serialized last: a varint after a 0x10 tag at the end of the buffer."""
    peers = buf.count(b"\x0a\x09node-")
    i = len(buf) - 1
    if i < 1 or buf[i] & 0x80:
        return list_peers_summary(buf)
    i -= 1
    while i >= 0 and buf[i] & 0x80:
        i -= 1
    if i < 0 or buf[i] != 0x10:
        return list_peers_summary(buf)
    rev, _ = read_varint(buf, i + 1)
    return peers, rev


# --- the simulated node -------------------------------------------------------
class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.polls = 0
        self.bytes = 0
        self.errors = []
        self.registered = []
        self.converged = []
        self.change_at = None
        self.change_key = None
        self.polls_after_change = 0
        self.saw_change = []


def call(conn, method, body, timeout_s):
    conn.timeout = timeout_s
    if conn.sock:
        conn.sock.settimeout(timeout_s)
    conn.request("POST", SVC + method, body=body,
                 headers={"Content-Type": "application/proto"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("%s: HTTP %d %s" % (method, r.status, data[:200]))
    return data


def node(idx, args, pub, start, stats, deadline):
    """Phase 1: join and poll until every other node is listed. Phase 2: keep
    long-polling until the one change main() makes (a new key for node 0)
    arrives."""
    name = "node-%04d" % idx
    want = args.nodes - 1
    conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    converged = False
    try:
        call(conn, "AllocateSubnet", f_str(1, name), 30)
        ep = "192.0.%d.%d:51820" % (2 + idx // 250, 1 + idx % 250)
        call(conn, "RegisterKey", f_str(1, name) + f_str(2, pub) + f_str(3, ep), 30)
        with stats.lock:
            stats.registered.append(time.monotonic() - start)
        rev = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s: gave up, deadline passed" % name)
            wait = max(1, min(30, int(left)))
            data = call(conn, "ListPeers",
                        f_str(1, name) + f_int(2, rev) + f_int(3, wait), wait + 10)
            now = time.monotonic()
            peers, rev = list_peers_summary_fast(data)
            with stats.lock:
                stats.polls += 1
                stats.bytes += len(data)
                check = stats.polls % 97 == 0
                change_at, change_key = stats.change_at, stats.change_key
                if change_at and now >= change_at:
                    stats.polls_after_change += 1
            if check and list_peers_summary(data) != (peers, rev):
                raise RuntimeError("%s: fast and full decoding disagree" % name)
            if peers > want:
                raise RuntimeError("%s: %d peers, more than %d" % (name, peers, want))
            if peers == want and not converged:
                converged = True
                with stats.lock:
                    stats.converged.append(now - start)
            if change_at and now >= change_at and peers == want and \
               (idx == 0 or change_key in data):
                with stats.lock:
                    stats.saw_change.append(now - change_at)
                return
    except Exception as e:  # noqa: BLE001 - reported, counted as a failure
        with stats.lock:
            stats.errors.append(str(e))
    finally:
        conn.close()


def metric(args, name):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split(" ")[1])
    finally:
        conn.close()
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=100.0)
    ap.add_argument("--check-key", help="private,public pair from wg to check X25519")
    args = ap.parse_args()

    if args.check_key:
        priv, pub = args.check_key.split(",")
        got = base64.b64encode(x25519_base(base64.b64decode(priv))).decode()
        if got != pub:
            sys.exit("X25519 self-check failed: %s != %s" % (got, pub))

    t = time.monotonic()
    keys = [keypair()[1] for _ in range(args.nodes)]
    keygen = time.monotonic() - t
    if len(set(keys)) != args.nodes:
        sys.exit("duplicate keys generated")

    threading.stack_size(256 * 1024)
    stats = Stats()
    start = time.monotonic()
    deadline = start + args.timeout
    threads = [threading.Thread(target=node, args=(i, args, keys[i], start, stats, deadline),
                                daemon=True) for i in range(args.nodes)]
    for th in threads:
        th.start()

    # Phase 2: once every node is converged and waiting, one change.
    waiting = None
    while time.monotonic() < deadline and not stats.errors:
        if len(stats.converged) == args.nodes:
            waiting = metric(args, "wgcni_long_polls")
            if waiting == args.nodes:
                break
        time.sleep(0.05)
    ok = len(stats.converged)
    if ok == args.nodes and waiting == args.nodes:
        new_key = keypair()[1]
        conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
        with stats.lock:
            stats.change_key = new_key.encode()
            stats.change_at = time.monotonic()
        call(conn, "RegisterKey", f_str(1, "node-0000") + f_str(2, new_key) +
             f_str(3, "192.0.2.1:51821"), 30)
        answered = time.monotonic() - stats.change_at
        conn.close()
    for th in threads:
        th.join(max(0.1, deadline + 15 - time.monotonic()))
    total = time.monotonic() - start

    seen = len(stats.saw_change)
    print("nodes=%d keygen_s=%.2f registered=%d all_registered_s=%.2f converged=%d "
          "all_converged_s=%.2f wall_s=%.2f list_peers_calls=%d list_peers_mb=%.1f errors=%d"
          % (args.nodes, keygen, len(stats.registered),
             max(stats.registered) if stats.registered else -1, ok,
             max(stats.converged) if ok == args.nodes else -1, total, stats.polls,
             stats.bytes / 1e6, len(stats.errors)))
    if seen:
        print("one change with %d long polls waiting: RegisterKey answered in %.1f ms, "
              "all %d nodes saw it within %.1f ms, ListPeers answers after the change=%d "
              "(%.2f per node)"
              % (args.nodes, answered * 1e3, seen, max(stats.saw_change) * 1e3,
                 stats.polls_after_change, stats.polls_after_change / args.nodes))
    for e in stats.errors[:5]:
        print("error: " + e, file=sys.stderr)
    sys.exit(0 if ok == args.nodes and seen == args.nodes and not stats.errors else 1)


if __name__ == "__main__":
    main()

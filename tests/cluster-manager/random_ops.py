#!/usr/bin/env python3
"""Random AllocateSubnet/RegisterKey/DeleteNode calls checked against a naive
model (a dict of node -> subnets) kept in a JSON file between daemon restarts.

usage: random_ops.py MODEL_FILE SEED OPS CAPACITY
Exits 1 with a message on the first disagreement. Standard library only.
"""
import base64
import http.client
import ipaddress
import json
import os
import random
import sys

SVC = "/wgcni.cluster.v1.ClusterService/"


def call(method, body):
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=20)
    try:
        conn.request("POST", SVC + method, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def fail(msg):
    print("random_ops: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    path, seed, ops, capacity = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    model = json.load(open(path)) if os.path.exists(path) else {"nodes": {}, "keys": {}}
    nodes, keys = model["nodes"], model["keys"]
    rng = random.Random(seed)
    names = ["node-%d" % i for i in range(capacity * 2)]
    for _ in range(ops):
        name = rng.choice(names)
        op = rng.choice(["alloc", "alloc", "key", "delete"])
        if op == "alloc":
            st, out = call("AllocateSubnet", {"nodeName": name})
            if name in nodes:
                if st != 200 or out.get("subnets") != nodes[name]:
                    fail("%s: known node got %d %s, model %s" % (name, st, out, nodes[name]))
            elif len(nodes) >= capacity:
                if st != 429 or out.get("code") != "resource_exhausted":
                    fail("%s: full pool answered %d %s" % (name, st, out))
            else:
                if st != 200 or len(out.get("subnets", [])) != 2:
                    fail("%s: new node got %d %s" % (name, st, out))
                new = [ipaddress.ip_network(s) for s in out["subnets"]]
                for other, subs in nodes.items():
                    for s in subs:
                        for n in new:
                            if n.version == ipaddress.ip_network(s).version and \
                               n.overlaps(ipaddress.ip_network(s)):
                                fail("%s got %s overlapping %s of %s" % (name, n, s, other))
                nodes[name] = out["subnets"]
        elif op == "key":
            key = base64.b64encode(os.urandom(32)).decode()
            st, out = call("RegisterKey", {"nodeName": name, "publicKey": key,
                                           "endpoint": "192.0.2.1:%d" % rng.randint(1, 65535)})
            if name in nodes:
                if st != 200 or out["node"]["publicKey"] != key:
                    fail("%s: RegisterKey got %d %s" % (name, st, out))
                keys[name] = key
            elif st != 412:
                fail("%s: RegisterKey of unknown node got %d %s" % (name, st, out))
        else:
            st, out = call("DeleteNode", {"nodeName": name})
            if st != (200 if name in nodes else 404):
                fail("%s: DeleteNode got %d %s (known: %s)" % (name, st, out, name in nodes))
            nodes.pop(name, None)
            keys.pop(name, None)
        json.dump(model, open(path + ".tmp", "w"))
        os.replace(path + ".tmp", path)

    # Whole-state check: ListNodes and every node's peer list.
    st, out = call("ListNodes", {})
    got = {n["name"]: n.get("subnets", []) for n in out.get("nodes", [])}
    if st != 200 or got != nodes:
        fail("ListNodes %d disagrees: %s vs model %s" % (st, got, nodes))
    for name in nodes:
        st, out = call("ListPeers", {"nodeName": name})
        peers = {p["name"]: (p["publicKey"], p.get("allowedIps")) for p in out.get("peers", [])}
        want = {n: (keys[n], nodes[n]) for n in keys if n != name}
        if st != 200 or peers != want:
            fail("ListPeers(%s) %d: %s, model %s" % (name, st, peers, want))
    print("random_ops: seed %d: %d ops, %d nodes, %d with keys, model agrees"
          % (seed, ops, len(nodes), len(keys)))


if __name__ == "__main__":
    main()

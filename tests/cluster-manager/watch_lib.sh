# WatchPeers helpers for the cluster manager tests (sourced after
# ../lib_cluster.sh, whose cluster manager they call):
#
#   watch_peers NODE SINCE [WAIT]  the JSON answer, normalized: revision as
#                                  a number, full as a boolean, peers sorted
#                                  by name, removed sorted
#   watch_proto NODE SINCE         the same call in application/proto,
#                                  decoded and normalized the same way
#   watch_peer_set JSON            a normalized answer's peers as {name: peer}
#   watch_apply SET JSON           SET after the answer (full: replaced)
#   watch_names JSON               the answer's peer names, in order

WATCH_NORM='{revision: ((.revision // "0") | tonumber), full: (.full // false),
	peers: ([.peers[]? | {name, publicKey, endpoint, allowedIps: (.allowedIps // [])}]
		| sort_by(.name)),
	removed: ((.removed // []) | sort)}'

watch_peers() {
	local body
	body=$(c_cm_json WatchPeers "{\"nodeName\":\"$1\",\"sinceRevision\":\"$2\",\"waitSeconds\":${3:-0}}")
	jq -cS "$WATCH_NORM" <<<"$body"
}

# A tiny protobuf wire codec: enough for WatchPeersRequest/Response.
watch_proto() {
	local auth
	auth=$(c_auth_h)
	python3 - "$1" "$2" >"$T_TMP/watch_req.pb" <<'PY'
import sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7f
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out
name = sys.argv[1].encode()
msg = b"\x0a" + varint(len(name)) + name + b"\x10" + varint(int(sys.argv[2]))
sys.stdout.buffer.write(msg)
PY
	nq cm curl -sS -m 10 "${C_CURL[@]}" -o "$T_TMP/watch_resp.pb" -w '%{http_code}' \
		-H 'Content-Type: application/proto' ${auth:+-H "$auth"} \
		--data-binary @"$T_TMP/watch_req.pb" \
		"$C_CM_URL/$C_CM_SVC/WatchPeers" >"$T_TMP/watch_proto.code"
	[ "$(cat "$T_TMP/watch_proto.code")" = 200 ] || return 1
	python3 - "$T_TMP/watch_resp.pb" <<'PY' | jq -cS "$WATCH_NORM"
import json, sys
def fields(buf):
    i = 0
    while i < len(buf):
        key, i = rd(buf, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = rd(buf, i)
        elif t == 2:
            n, i = rd(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise SystemExit("unexpected wire type %d" % t)
        yield f, v
def rd(buf, i):
    n = s = 0
    while True:
        b = buf[i]; i += 1
        n |= (b & 0x7f) << s; s += 7
        if not b & 0x80:
            return n, i
resp = {"revision": "0", "peers": [], "removed": []}
for f, v in fields(open(sys.argv[1], "rb").read()):
    if f == 1: resp["revision"] = str(v)
    elif f == 2: resp["full"] = bool(v)
    elif f == 4: resp["removed"].append(v.decode())
    elif f == 3:
        p = {"allowedIps": []}
        for g, w in fields(v):
            k = {1: "name", 2: "publicKey", 3: "endpoint", 4: "allowedIps"}[g]
            if k == "allowedIps": p[k].append(w.decode())
            else: p[k] = w.decode()
        resp["peers"].append(p)
print(json.dumps(resp))
PY
}

watch_peer_set() { jq -cS '[.peers[] | {(.name): .}] | add // {}' <<<"$1"; }

watch_apply() {
	jq -cSn --argjson s "$1" --argjson d "$2" '
		($d.peers | map({(.name): .}) | add // {}) as $up
		| if $d.full then $up else ($s | del(.[$d.removed[]])) + $up end'
}

watch_names() { jq -c '[.peers[].name]' <<<"$1"; }

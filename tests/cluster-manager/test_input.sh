#!/bin/bash
# Bad input: each gets invalid_argument (400) with a message naming the
# problem, 415 for a wrong content type, and none of it changes anything.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
c_cm_start

c_cm_json AllocateSubnet '{"nodeName":"n1"}' >/dev/null
key=$(c_pubkey)
c_cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$key\",\"endpoint\":\"10.0.0.1:51820\"}" >/dev/null
nodes_before=$(c_cm_json ListNodes '{}')
rev_before=$(c_cm_metric wgcni_revision)

# expect_bad "what" Method body regex-the-message-must-match
expect_bad() {
	local what=$1 method=$2 body=$3 re=$4 out msg
	out=$(c_cm_call "$method" "$body")
	msg=$(jq -r .message <<<"$out" 2>/dev/null || echo "(not JSON: $out)")
	t_eq "$what: HTTP 400" 400 "$(t_http)"
	t_eq "$what: invalid_argument" invalid_argument "$(jq -r .code <<<"$out" 2>/dev/null)"
	t_ok "$what: message names the problem ($msg)" grep -Eqi -- "$re" <<<"$msg"
}
rk() { printf '{"nodeName":"%s","publicKey":"%s","endpoint":"%s"}' "$1" "$2" "$3"; }

b64() { python3 -c 'import base64,sys; sys.stdout.write(base64.b64encode(bytes(range(int(sys.argv[1])))).decode())' "$1"; }
k43=${key:0:43}
k45="${key}A"
knot="${key:0:20}!${key:21}"
k31=$(b64 31)
t_eq "the 31-byte key is 44 characters" 44 "${#k31}"

expect_bad "malformed JSON" AllocateSubnet '{"nodeName":' 'json|pars'
expect_bad "not an object" AllocateSubnet '["n1"]' 'object'
expect_bad "unknown field" AllocateSubnet '{"nodeName":"x1","color":"blue"}' 'color'
expect_bad "wrong JSON type" AllocateSubnet '{"nodeName":5}' 'nodeName|node_name'
expect_bad "empty node name" AllocateSubnet '{"nodeName":""}' 'nodeName.*empty'
expect_bad "missing node name" AllocateSubnet '{}' 'nodeName.*empty'
expect_bad "node name with a slash" AllocateSubnet '{"nodeName":"a/b"}' 'nodeName.*letters'
long=$(printf 'a%.0s' $(seq 1 254))
expect_bad "node name of 254 characters" AllocateSubnet "{\"nodeName\":\"$long\"}" 'nodeName.*253'
expect_bad "key of 43 characters" RegisterKey "$(rk n1 "$k43" 10.0.0.1:51820)" 'publicKey.*44.*43'
expect_bad "key of 45 characters" RegisterKey "$(rk n1 "$k45" 10.0.0.1:51820)" 'publicKey.*45'
expect_bad "key not base64" RegisterKey "$(rk n1 "$knot" 10.0.0.1:51820)" 'publicKey.*base64'
expect_bad "key decoding to 31 bytes" RegisterKey "$(rk n1 "$k31" 10.0.0.1:51820)" 'publicKey.*31 bytes'
expect_bad "empty key" RegisterKey "$(rk n1 "" 10.0.0.1:51820)" 'publicKey'
expect_bad "endpoint without port" RegisterKey "$(rk n1 "$key" 10.0.0.1)" 'endpoint.*10.0.0.1.*no port'
expect_bad "endpoint port 0" RegisterKey "$(rk n1 "$key" 10.0.0.1:0)" 'endpoint.*port 0'
expect_bad "endpoint port 70000" RegisterKey "$(rk n1 "$key" 10.0.0.1:70000)" 'endpoint.*70000'
expect_bad "endpoint v6 without brackets" RegisterKey "$(rk n1 "$key" fd00::1:51820)" 'endpoint'
expect_bad "empty endpoint" RegisterKey "$(rk n1 "$key" "")" 'endpoint'
expect_bad "bad name in ListPeers" ListPeers '{"nodeName":"-x y"}' 'nodeName'
expect_bad "negative waitSeconds" ListPeers '{"nodeName":"n1","waitSeconds":-1}' 'waitSeconds|wait_seconds'
expect_bad "bad name in DeleteNode" DeleteNode '{"nodeName":""}' 'nodeName'

# A body over 1 MiB.
python3 -c 'import sys; sys.stdout.write("{\"nodeName\":\"" + "a" * (1 << 20) + "\"}")' >"$T_TMP/big.json"
out=$(c_cm_call AllocateSubnet "@$T_TMP/big.json")
t_eq "body over 1 MiB: 400" 400 "$(t_http)"
t_eq "body over 1 MiB: invalid_argument" invalid_argument "$(jq -r .code <<<"$out")"
t_ok "body over 1 MiB: message says so ($(jq -r .message <<<"$out"))" \
	grep -q '1 MiB' <<<"$(jq -r .message <<<"$out")"

# Wrong content type.
out=$(C_CM_CT=text/plain c_cm_call AllocateSubnet '{"nodeName":"x2"}')
t_eq "text/plain: 415" 415 "$(t_http)"
# Unknown method and GET on a method.
c_cm_call NoSuchMethod '{}' >/dev/null
t_eq "unknown method: 404" 404 "$(t_http)"

t_eq "nothing changed: ListNodes identical" "$nodes_before" "$(c_cm_json ListNodes '{}')"
t_eq "nothing changed: revision" "$rev_before" "$(c_cm_metric wgcni_revision)"
t_ok "the daemon is still healthy" c_cm_healthy
t_ok "the daemon logged no sanitizer report" bash -c "! grep -q 'Sanitizer' '$C_CM_LOG'"

# application/proto works too (an empty ListNodes request is zero bytes).
nq cm curl -sS -m 5 -o "$T_TMP/nodes.pb" -w '%{http_code}' -H 'Content-Type: application/proto' \
	--data-binary @/dev/null "$C_CM_URL/$C_CM_SVC/ListNodes" >"$T_TMP/pb.code"
t_eq "application/proto ListNodes: 200" 200 "$(cat "$T_TMP/pb.code")"
t_ok "application/proto answer carries n1" grep -q n1 "$T_TMP/nodes.pb"

c_cm_stop TERM
t_eq "SIGTERM: exit 0" 0 "$C_CM_RC"
c_leak_check
t_done

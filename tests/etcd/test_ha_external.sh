#!/bin/bash
# External peers with two cluster managers on one etcd: a peer registered
# through one is served by a gateway that registered through the other, and
# the gateway's peer entry on both carries its address; concurrent
# registrations through both get distinct addresses (claimed by
# compare-and-swap); a gateway deleted through one hands its peers on, seen
# by the other; a peer deleted through one is gone on the other and its
# address is free again; etcd holds one claim per address, no other.
# One etcd member and both managers in namespace cm on loopback, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR=10.100.0.0/16 C_NODE_PREFIX= C_DATASTORE=etcd C_ETCD_NS=cm
C_CM_FLAGS=(--external-cidr 10.200.0.0/28)
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_etcd_need
c_cm_host
c_etcd_start 1
t_ok "manager A healthy" c_cmx_start 1
t_ok "manager B healthy" c_cmx_start 2
A=1 B=2

node() { # manager name gateway location
	c_cmx_json "$1" AllocateSubnet "{\"nodeName\":\"$2\"}" >/dev/null &&
		c_cmx_json "$1" RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"192.0.2.${2#g}:51820\",\"gateway\":$3,\"location\":\"$4\"}" >/dev/null
}
reg() { c_cmx_json "$1" RegisterExternalPeer "{\"name\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"location\":\"eu\"}"; }
# "name gateway address" per external peer, as manager K lists them
ext_on() {
	c_cmx_json "$1" ListExternalPeers '{}' |
		jq -r '[.externalPeers[]? | "\(.name) \(.gateway.name // "-") \(.address)"] | sort | join(";")'
}
# the allowedIps of gateway G in the peer list manager K gives node n9
allowed_on() {
	c_cmx_json "$1" ListPeers '{"nodeName":"n9"}' |
		jq -r --arg g "$2" '.peers[] | select(.name == $g) | .allowedIps | join(",")'
}

t_ok "g1 (gateway, eu) through A" node "$A" g1 true eu
t_ok "g2 (gateway, eu) through B" node "$B" g2 true eu
t_ok "n9 (no gateway) through A" node "$A" n9 false ""

t_ok "laptop registered through B" reg "$B" laptop
t_eq "A: laptop served by g1 (fewest peers, then by name), first address" \
	"laptop g1 10.200.0.1/32" "$(ext_on "$A")"
t_eq "A: g1's peer entry carries laptop's address" "10.100.0.0/24,10.200.0.1/32" \
	"$(allowed_on "$A" g1)"
t_eq "B: the same" "10.100.0.0/24,10.200.0.1/32" "$(allowed_on "$B" g1)"

# Concurrent: six through A, six through B.
for i in 1 2 3 4 5 6; do
	echo "$A {\"name\":\"pa$i\",\"publicKey\":\"$(c_pubkey)\",\"location\":\"eu\"}"
	echo "$B {\"name\":\"pb$i\",\"publicKey\":\"$(c_pubkey)\",\"location\":\"eu\"}"
done >"$T_TMP/ext.calls"
t_eq "12 concurrent registrations: all 200" 12 \
	"$(c_cmx_parallel RegisterExternalPeer "$T_TMP/ext.calls" | grep -c ' 200$')"
t_eq "13 external peers on A" 13 "$(ext_on "$A" | tr ';' '\n' | grep -c .)"
t_eq "A and B agree" "$(ext_on "$A")" "$(ext_on "$B")"
t_eq "13 distinct addresses" 13 "$(ext_on "$A" | tr ';' '\n' | awk '{ print $3 }' | sort -u | grep -c .)"
t_eq "etcd: one claim per address" 13 \
	"$(c_etcdctl get --prefix /wgcni/extaddrs/ --keys-only | grep -c .)"
t_eq "the gateways share them (7 and 6)" "6 7" \
	"$(ext_on "$A" | tr ';' '\n' | awk '{ print $2 }' | sort | uniq -c | awk '{ print $1 }' | sort -n | xargs)"

# g1 deleted through B: its peers go to g2, as A sees it.
t_ok "g1 deleted through B" c_cmx_json "$B" DeleteNode '{"nodeName":"g1"}'
t_eq "A: every peer served by g2" g2 \
	"$(ext_on "$A" | tr ';' '\n' | awk '{ print $2 }' | sort -u | xargs)"
t_eq "A: g2's entry carries all 13 addresses" 14 "$(allowed_on "$A" g2 | tr ',' '\n' | grep -c .)"

# laptop deleted through A: gone on B, its address free for the next one.
t_ok "laptop deleted through A" c_cmx_json "$A" DeleteExternalPeer '{"name":"laptop"}'
laptop_gone_on_b() { ! ext_on "$B" | grep -q laptop; }
t_ok "B: laptop gone within 1 s" t_wait "laptop gone on B" 1 laptop_gone_on_b
out=$(reg "$B" phone)
t_eq "phone gets laptop's address" 10.200.0.1/32 "$(jq -r .externalPeer.address <<<"$out")"

c_cmx_stop_all
c_leak_check
t_done

#!/bin/bash
# External peers with two cluster managers on one etcd: a peer registered
# through one is served by a gateway that registered through the other, and
# the gateway's peer entry on both carries its address; concurrent
# registrations through both get distinct addresses (claimed by
# compare-and-swap); a gateway deleted through one hands its peers on, seen
# by the other; a peer deleted through one is gone on the other and its
# address is free again; etcd holds one claim per address, no other.
# One etcd member and both managers in namespace cm on loopback, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR=10.100.0.0/16 C_NODE_PREFIX= C_DATASTORE=etcd
C_CM_FLAGS=(--external-cidr 10.200.0.0/28)
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_etcd_need
c_cm_host
c_cm_start
A=$C_CM_URL
t_ok "manager B healthy" c_cm2_start 8081
B=$C_CM2_URL

node() { # url name gateway location
	c_on "$1" c_cm_json AllocateSubnet "{\"nodeName\":\"$2\"}" >/dev/null &&
		c_on "$1" c_cm_json RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"192.0.2.${2#g}:51820\",\"gateway\":$3,\"location\":\"$4\"}" >/dev/null
}
reg() { c_on "$1" c_cm_json RegisterExternalPeer "{\"name\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"location\":\"eu\"}"; }
# "name gateway address" per external peer, as manager URL lists them
ext_on() {
	c_on "$1" c_cm_json ListExternalPeers '{}' |
		jq -r '[.externalPeers[]? | "\(.name) \(.gateway.name // "-") \(.address)"] | sort | join(";")'
}
# the allowedIps of gateway G in the peer list manager URL gives node n9
allowed_on() {
	c_on "$1" c_cm_json ListPeers '{"nodeName":"n9"}' |
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
calls=()
for i in 1 2 3 4 5 6; do
	C_CM_OUT=ra$i reg "$A" "pa$i" >/dev/null & calls+=($!)
	C_CM_OUT=rb$i reg "$B" "pb$i" >/dev/null & calls+=($!)
done
wait "${calls[@]}"
t_eq "13 external peers on A" 13 "$(ext_on "$A" | tr ';' '\n' | grep -c .)"
t_eq "A and B agree" "$(ext_on "$A")" "$(ext_on "$B")"
t_eq "13 distinct addresses" 13 "$(ext_on "$A" | tr ';' '\n' | awk '{ print $3 }' | sort -u | grep -c .)"
t_eq "etcd: one claim per address" 13 \
	"$(c_etcdctl get --prefix /wgcni/extaddrs/ --keys-only | grep -c .)"
t_eq "the gateways share them (7 and 6)" "6 7" \
	"$(ext_on "$A" | tr ';' '\n' | awk '{ print $2 }' | sort | uniq -c | awk '{ print $1 }' | sort -n | xargs)"

# g1 deleted through B: its peers go to g2, as A sees it.
t_ok "g1 deleted through B" c_on "$B" c_cm_json DeleteNode '{"nodeName":"g1"}'
t_eq "A: every peer served by g2" g2 \
	"$(ext_on "$A" | tr ';' '\n' | awk '{ print $2 }' | sort -u | xargs)"
t_eq "A: g2's entry carries all 13 addresses" 14 "$(allowed_on "$A" g2 | tr ',' '\n' | grep -c .)"

# laptop deleted through A: gone on B, its address free for the next one.
t_ok "laptop deleted through A" c_on "$A" c_cm_json DeleteExternalPeer '{"name":"laptop"}'
laptop_gone_on_b() { ! ext_on "$B" | grep -q laptop; }
t_ok "B: laptop gone within 1 s" t_wait "laptop gone on B" 1 laptop_gone_on_b
out=$(reg "$B" phone)
t_eq "phone gets laptop's address" 10.200.0.1/32 "$(jq -r .externalPeer.address <<<"$out")"

c_cm2_stop
t_eq "manager B: clean exit (ASan: no leaks)" 0 "$C_CM2_RC"
c_cm_stop
t_eq "manager A: clean exit" 0 "$C_CM_RC"
c_leak_check
t_done

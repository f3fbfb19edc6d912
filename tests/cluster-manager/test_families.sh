#!/bin/bash
# Exhaustion, DeleteNode freeing a subnet, IPv6-only and dual-stack clusters.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host

# 10.9.0.0/30 split into /31s: room for exactly two nodes.
C_CM_STATE=$T_TMP/small
c_cm_start --cluster-cidr 10.9.0.0/30 --node-prefix-length 31
t_eq "small: a gets 10.9.0.0/31" 10.9.0.0/31 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"a"}' | jq -r '.subnets[0]')"
t_eq "small: b gets 10.9.0.2/31" 10.9.0.2/31 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"b"}' | jq -r '.subnets[0]')"
out=$(c_cm_call AllocateSubnet '{"nodeName":"c"}')
t_eq "small: c is refused with 429" 429 "$(t_http)"
t_eq "small: code resource_exhausted" resource_exhausted "$(jq -r .code <<<"$out")"
t_ok "small: message names node and CIDR ($(jq -r .message <<<"$out"))" \
	grep -q '"c".*10.9.0.0/30' <<<"$(jq -r .message <<<"$out")"
t_eq "small: c was not created" "a b" \
	"$(c_cm_json ListNodes '{}' | jq -r '[.nodes[].name] | join(" ")')"
t_eq "small: metrics used=2" 2 "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "small: metrics free=0" 0 "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="free"}')"

# Deleting a node frees its subnet for the next node.
c_cm_json DeleteNode '{"nodeName":"a"}' >/dev/null
t_eq "DeleteNode: answer is {}" '{}' "$(c_cm_json DeleteNode '{"nodeName":"b"}' | jq -c .)"
out=$(c_cm_call DeleteNode '{"nodeName":"a"}')
t_eq "DeleteNode unknown: 404" 404 "$(t_http)"
t_eq "DeleteNode unknown: not_found" not_found "$(jq -r .code <<<"$out")"
t_eq "after delete: c gets the freed 10.9.0.0/31" 10.9.0.0/31 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"c"}' | jq -r '.subnets[0]')"
# ... and the deletion survived a crash.
c_cm_stop KILL
c_cm_start --cluster-cidr 10.9.0.0/30 --node-prefix-length 31
t_eq "after kill -9: only c is left" "c" \
	"$(c_cm_json ListNodes '{}' | jq -r '[.nodes[].name] | join(" ")')"
t_eq "after kill -9: d gets 10.9.0.2/31" 10.9.0.2/31 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"d"}' | jq -r '.subnets[0]')"
c_cm_json AllocateSubnet '{"nodeName":"e"}' >/dev/null || true
t_eq "after kill -9: still exhausted at two nodes" 429 "$(t_http)"
c_cm_stop TERM
t_eq "small: SIGTERM exit 0" 0 "$C_CM_RC"

# IPv6 only.
C_CM_STATE=$T_TMP/v6
c_cm_start --cluster-cidr fd10:100::/48
out=$(c_cm_json AllocateSubnet '{"nodeName":"v1"}')
t_eq "v6: subnet" '["fd10:100::/64"]' "$(jq -c .subnets <<<"$out")"
t_eq "v6: clusterCidrs" '["fd10:100::/48"]' "$(jq -c .clusterCidrs <<<"$out")"
t_eq "v6: second node" '["fd10:100:0:1::/64"]' \
	"$(c_cm_json AllocateSubnet '{"nodeName":"v2"}' | jq -c .subnets)"
t_eq "v6: address" "fd10:100::1/64" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[0].address')"
t_eq "v6: metrics ipv6 free" 65534 "$(c_cm_metric 'wgcni_subnets{family="ipv6",state="free"}')"
c_cm_stop TERM

# Dual stack, both families from one comma-separated environment value.
C_CM_STATE=$T_TMP/dual
WGCNI_CLUSTER_CIDR=10.100.0.0/16,fd10:100::/48 WGCNI_NODE_PREFIX_LENGTH_V6=80 c_cm_start
out=$(c_cm_json AllocateSubnet '{"nodeName":"d1"}')
t_eq "dual: two subnets, IPv4 first" '["10.100.0.0/24","fd10:100::/80"]' "$(jq -c .subnets <<<"$out")"
t_eq "dual: clusterCidrs" '["10.100.0.0/16","fd10:100::/48"]' "$(jq -c .clusterCidrs <<<"$out")"
out=$(c_cm_json AllocateSubnet '{"nodeName":"d2"}')
t_eq "dual: d2" '["10.100.1.0/24","fd10:100:0:0:1::/80"]' "$(jq -c .subnets <<<"$out")"
key=$(c_pubkey)
c_cm_json RegisterKey "{\"nodeName\":\"d1\",\"publicKey\":\"$key\",\"endpoint\":\"[fd00::1]:51820\"}" >/dev/null
t_eq "dual: address of both families" "10.100.0.1/24,fd10:100::1/80" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[0].address')"
t_eq "dual: peer allowedIps hold both subnets" '["10.100.0.0/24","fd10:100::/80"]' \
	"$(c_cm_json ListPeers '{"nodeName":"d2"}' | jq -c '.peers[0].allowedIps')"
c_cm_stop TERM

# The same state opened as IPv4-only keeps d1's IPv6 subnet (with a warning).
WGCNI_CLUSTER_CIDR=10.100.0.0/16 c_cm_start
t_eq "IPv4-only restart: d1 keeps both subnets" '["10.100.0.0/24","fd10:100::/80"]' \
	"$(c_cm_json AllocateSubnet '{"nodeName":"d1"}' | jq -c .subnets)"
t_ok "IPv4-only restart: the IPv6 subnet is warned about" \
	grep -q 'outside the cluster CIDRs.*subnet=fd10:100::/80' "$C_CM_LOG"
t_eq "IPv4-only restart: a new node gets IPv4 only" '["10.100.2.0/24"]' \
	"$(c_cm_json AllocateSubnet '{"nodeName":"d3"}' | jq -c .subnets)"
c_cm_stop TERM

# An IPv6 CIDR added later gives existing nodes their missing family.
C_CM_STATE=$T_TMP/grow
c_cm_start --cluster-cidr 10.100.0.0/16
c_cm_json AllocateSubnet '{"nodeName":"g1"}' >/dev/null
c_cm_stop TERM
c_cm_start --cluster-cidr 10.100.0.0/16 --cluster-cidr fd10:100::/48
t_eq "grow: g1 gains an IPv6 subnet, keeps its IPv4 one" '["10.100.0.0/24","fd10:100::/64"]' \
	"$(c_cm_json AllocateSubnet '{"nodeName":"g1"}' | jq -c .subnets)"
c_cm_stop TERM
t_eq "grow: SIGTERM exit 0" 0 "$C_CM_RC"

c_leak_check
t_done

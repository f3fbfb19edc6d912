#!/bin/bash
# Exhaustion, DeleteNode freeing a subnet, IPv6-only and dual-stack clusters.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cm_lib.sh"

cm_setup

# 10.9.0.0/30 split into /31s: room for exactly two nodes.
CM_STATE=$T_TMP/small
cm_start --cluster-cidr 10.9.0.0/30 --node-prefix-length 31
t_eq "small: a gets 10.9.0.0/31" 10.9.0.0/31 \
	"$(cm_json AllocateSubnet '{"nodeName":"a"}' | jq -r '.subnets[0]')"
t_eq "small: b gets 10.9.0.2/31" 10.9.0.2/31 \
	"$(cm_json AllocateSubnet '{"nodeName":"b"}' | jq -r '.subnets[0]')"
out=$(cm_call AllocateSubnet '{"nodeName":"c"}')
t_eq "small: c is refused with 429" 429 "$(t_http)"
t_eq "small: code resource_exhausted" resource_exhausted "$(jq -r .code <<<"$out")"
t_ok "small: message names node and CIDR ($(jq -r .message <<<"$out"))" \
	grep -q '"c".*10.9.0.0/30' <<<"$(jq -r .message <<<"$out")"
t_eq "small: c was not created" "a b" \
	"$(cm_json ListNodes '{}' | jq -r '[.nodes[].name] | join(" ")')"
t_eq "small: metrics used=2" 2 "$(cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "small: metrics free=0" 0 "$(cm_metric 'wgcni_subnets{family="ipv4",state="free"}')"

# Deleting a node frees its subnet for the next node.
cm_json DeleteNode '{"nodeName":"a"}' >/dev/null
t_eq "DeleteNode: answer is {}" '{}' "$(cm_json DeleteNode '{"nodeName":"b"}' | jq -c .)"
out=$(cm_call DeleteNode '{"nodeName":"a"}')
t_eq "DeleteNode unknown: 404" 404 "$(t_http)"
t_eq "DeleteNode unknown: not_found" not_found "$(jq -r .code <<<"$out")"
t_eq "after delete: c gets the freed 10.9.0.0/31" 10.9.0.0/31 \
	"$(cm_json AllocateSubnet '{"nodeName":"c"}' | jq -r '.subnets[0]')"
# ... and the deletion survived a crash.
cm_stop KILL
cm_start --cluster-cidr 10.9.0.0/30 --node-prefix-length 31
t_eq "after kill -9: only c is left" "c" \
	"$(cm_json ListNodes '{}' | jq -r '[.nodes[].name] | join(" ")')"
t_eq "after kill -9: d gets 10.9.0.2/31" 10.9.0.2/31 \
	"$(cm_json AllocateSubnet '{"nodeName":"d"}' | jq -r '.subnets[0]')"
cm_json AllocateSubnet '{"nodeName":"e"}' >/dev/null || true
t_eq "after kill -9: still exhausted at two nodes" 429 "$(t_http)"
cm_stop TERM
t_eq "small: SIGTERM exit 0" 0 "$CM_RC"

# IPv6 only.
CM_STATE=$T_TMP/v6
cm_start --cluster-cidr fd10:100::/48
out=$(cm_json AllocateSubnet '{"nodeName":"v1"}')
t_eq "v6: subnet" '["fd10:100::/64"]' "$(jq -c .subnets <<<"$out")"
t_eq "v6: clusterCidrs" '["fd10:100::/48"]' "$(jq -c .clusterCidrs <<<"$out")"
t_eq "v6: second node" '["fd10:100:0:1::/64"]' \
	"$(cm_json AllocateSubnet '{"nodeName":"v2"}' | jq -c .subnets)"
t_eq "v6: address" "fd10:100::1/64" \
	"$(cm_json ListNodes '{}' | jq -r '.nodes[0].address')"
t_eq "v6: metrics ipv6 free" 65534 "$(cm_metric 'wgcni_subnets{family="ipv6",state="free"}')"
cm_stop TERM

# Dual stack, both families from one comma-separated environment value.
CM_STATE=$T_TMP/dual
WGCNI_CLUSTER_CIDR=10.100.0.0/16,fd10:100::/48 WGCNI_NODE_PREFIX_LENGTH_V6=80 cm_start
out=$(cm_json AllocateSubnet '{"nodeName":"d1"}')
t_eq "dual: two subnets, IPv4 first" '["10.100.0.0/24","fd10:100::/80"]' "$(jq -c .subnets <<<"$out")"
t_eq "dual: clusterCidrs" '["10.100.0.0/16","fd10:100::/48"]' "$(jq -c .clusterCidrs <<<"$out")"
out=$(cm_json AllocateSubnet '{"nodeName":"d2"}')
t_eq "dual: d2" '["10.100.1.0/24","fd10:100:0:0:1::/80"]' "$(jq -c .subnets <<<"$out")"
key=$(cm_pubkey)
cm_json RegisterKey "{\"nodeName\":\"d1\",\"publicKey\":\"$key\",\"endpoint\":\"[fd00::1]:51820\"}" >/dev/null
t_eq "dual: address of both families" "10.100.0.1/24,fd10:100::1/80" \
	"$(cm_json ListNodes '{}' | jq -r '.nodes[0].address')"
t_eq "dual: peer allowedIps hold both subnets" '["10.100.0.0/24","fd10:100::/80"]' \
	"$(cm_json ListPeers '{"nodeName":"d2"}' | jq -c '.peers[0].allowedIps')"
cm_stop TERM

# The same state opened as IPv4-only keeps d1's IPv6 subnet (with a warning).
WGCNI_CLUSTER_CIDR=10.100.0.0/16 cm_start
t_eq "IPv4-only restart: d1 keeps both subnets" '["10.100.0.0/24","fd10:100::/80"]' \
	"$(cm_json AllocateSubnet '{"nodeName":"d1"}' | jq -c .subnets)"
t_ok "IPv4-only restart: the IPv6 subnet is warned about" \
	grep -q 'outside the cluster CIDRs.*subnet=fd10:100::/80' "$CM_LOG"
t_eq "IPv4-only restart: a new node gets IPv4 only" '["10.100.2.0/24"]' \
	"$(cm_json AllocateSubnet '{"nodeName":"d3"}' | jq -c .subnets)"
cm_stop TERM

# An IPv6 CIDR added later gives existing nodes their missing family.
CM_STATE=$T_TMP/grow
cm_start --cluster-cidr 10.100.0.0/16
cm_json AllocateSubnet '{"nodeName":"g1"}' >/dev/null
cm_stop TERM
cm_start --cluster-cidr 10.100.0.0/16 --cluster-cidr fd10:100::/48
t_eq "grow: g1 gains an IPv6 subnet, keeps its IPv4 one" '["10.100.0.0/24","fd10:100::/64"]' \
	"$(cm_json AllocateSubnet '{"nodeName":"g1"}' | jq -c .subnets)"
cm_stop TERM
t_eq "grow: SIGTERM exit 0" 0 "$CM_RC"

t_done

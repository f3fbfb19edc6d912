#!/bin/bash
# RegisterExternalPeer, ListExternalPeers, DeleteExternalPeer, ListLocations:
# addresses from --external-cidr (IPv4 and IPv6, one of each per
# peer), kept for the name; gateway choice by location, then load (fewest
# external peers, ties by name), any gateway when the location has none; no
# gateway: failed_precondition; pool exhausted: resource_exhausted; bad input
# refused, changing nothing; the gateway's peer entry carries its external
# peers' addresses and moves with them (ListPeers and WatchPeers deltas); a
# deleted gateway's external peers move on; everything survives a restart;
# wgcni_external_peers{gateway}. The cluster manager alone, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1
. "$(dirname "$0")/../lib_cluster.sh"

C_CM_FLAGS=(--external-cidr 10.200.0.0/29 --external-cidr fd20::/126)
c_need
c_cm_host
c_cm_start

ext_list() { c_cm_json ListExternalPeers '{}' | jq -c '.externalPeers // []'; }
reg() { # name key [location]
	c_cm_call RegisterExternalPeer "{\"name\":\"$1\",\"publicKey\":\"$2\",\"location\":\"${3:-}\"}"
}
rev() { c_cm_json ListPeers '{"nodeName":"n4"}' | jq -r '.revision // "0"'; }
node() { # name gateway location [public endpoint]
	local k
	k=$(c_pubkey)
	c_cm_json AllocateSubnet "{\"nodeName\":\"$1\"}" >/dev/null
	c_cm_json RegisterKey "{\"nodeName\":\"$1\",\"publicKey\":\"$k\",\"endpoint\":\"192.0.2.$((10 + ${#NODES[@]})):51820\",\"gateway\":$2,\"location\":\"$3\",\"publicEndpoint\":\"${4:-}\"}" >/dev/null
	NODES+=("$1")
	KEY[$1]=$k
}
declare -A KEY
NODES=()
la=$(c_pubkey); lb=$(c_pubkey); lc=$(c_pubkey); ld=$(c_pubkey); le=$(c_pubkey)

node n4 false ""
out=$(reg laptop "$la" eu)
t_eq "no gateway yet: failed_precondition" "412 failed_precondition" "$(t_http) $(jq -r .code <<<"$out")"
t_eq "no gateway yet: nothing stored" "[]" "$(ext_list)"

node g1 true eu 203.0.113.1:443
node g2 true us
node g3 true us
t_eq "ListNodes: g1's location, gateway, publicEndpoint" "eu true 203.0.113.1:443" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "g1") | "\(.location) \(.gateway) \(.publicEndpoint)"')"
t_eq "ListNodes: g2's publicEndpoint defaults to its endpoint" "192.0.2.12:51820" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "g2") | .publicEndpoint')"
t_eq "ListLocations: the gateways' locations" '["eu","us"]' \
	"$(c_cm_json ListLocations '{}' | jq -c '.locations')"
out=$(c_cm_call RegisterKey "{\"nodeName\":\"g3\",\"publicKey\":\"${KEY[g3]}\",\"endpoint\":\"192.0.2.13:51820\",\"location\":\"bad location!\"}")
t_eq "RegisterKey with a bad location: invalid_argument" "400 invalid_argument" "$(t_http) $(jq -r .code <<<"$out")"

rev0=$(rev)
out=$(reg laptop "$la" eu)
t_eq "laptop (eu): registered" 200 "$(t_http)"
t_eq "laptop (eu): its gateway is g1, with its public endpoint and key" "g1 203.0.113.1:443 ${KEY[g1]}" \
	"$(jq -r '.externalPeer.gateway | "\(.name) \(.endpoint) \(.publicKey)"' <<<"$out")"
t_eq "laptop: one address of each family" "10.200.0.1/32,fd20::1/128" "$(jq -r .externalPeer.address <<<"$out")"
t_eq "laptop: the gateway routes the cluster CIDRs" '["10.100.0.0/16"]' "$(jq -c .externalPeer.gateway.allowedIps <<<"$out")"
t_eq "laptop: name, key, location" "laptop $la eu" \
	"$(jq -r '.externalPeer | "\(.name) \(.publicKey) \(.location)"' <<<"$out")"
rev1=$(rev)
t_ok "the peer set moved ($rev0 -> $rev1)" test "$rev1" -gt "$rev0"
again=$(reg laptop "$la" eu)
t_eq "the same name and key again: the same answer" "$out" "$again"
t_eq "the same name and key again: the revision stays" "$rev1" "$(rev)"

p=$(c_cm_json ListPeers '{"nodeName":"n4"}')
t_eq "ListPeers: g1's allowedIps = its subnet and laptop's addresses" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "g1") | .subnets[0]'),10.200.0.1/32,fd20::1/128" \
	"$(jq -r '.peers[] | select(.name == "g1") | .allowedIps | join(",")' <<<"$p")"
t_eq "ListPeers: peers are the nodes only" "g1 g2 g3" "$(jq -r '[.peers[].name] | join(" ")' <<<"$p")"
w=$(c_cm_json WatchPeers "{\"nodeName\":\"n4\",\"sinceRevision\":\"$rev0\"}")
t_eq "WatchPeers delta since before: g1 changed, with the addresses" "g1 10.200.0.1/32" \
	"$(jq -r '[.peers[] | select(.name == "g1")][0] | "\(.name) \(.allowedIps[1])"' <<<"$w")"
t_eq "WatchPeers delta: no external peer as a peer" 0 "$(jq '[.peers[] | select(.name == "laptop")] | length' <<<"$w")"

out=$(reg tablet "$lb" us)
t_eq "tablet (us): g2 (g2 and g3 tie, by name)" g2 "$(jq -r .externalPeer.gateway.name <<<"$out")"
out=$(reg phone "$lc" us)
t_eq "phone (us): g3 (g2 has one already)" g3 "$(jq -r .externalPeer.gateway.name <<<"$out")"
t_eq "phone: the third addresses" "10.200.0.3/32,fd20::3/128" "$(jq -r .externalPeer.address <<<"$out")"
before=$(ext_list)
out=$(reg watch "$ld" us)
t_eq "no IPv6 address left: resource_exhausted" "429 resource_exhausted" "$(t_http) $(jq -r .code <<<"$out")"
t_eq "exhausted: nothing changed" "$before" "$(ext_list)"

# Bad input: refused, nothing changes.
expect_bad() { # what body
	local out
	out=$(c_cm_call RegisterExternalPeer "$2")
	t_eq "$1: invalid_argument" "400 invalid_argument" "$(t_http) $(jq -r .code <<<"$out")"
	t_eq "$1: nothing changed" "$before" "$(ext_list)"
}
expect_bad "bad key" '{"name":"x1","publicKey":"notakey"}'
expect_bad "bad name" "{\"name\":\"Bad Name\",\"publicKey\":\"$ld\"}"
expect_bad "empty name" "{\"name\":\"\",\"publicKey\":\"$ld\"}"
expect_bad "unknown field" "{\"name\":\"x1\",\"publicKey\":\"$ld\",\"color\":\"blue\"}"
expect_bad "bad location" "{\"name\":\"x1\",\"publicKey\":\"$ld\",\"location\":\"a/b\"}"
out=$(reg x1 "${KEY[g2]}")
t_eq "a node's key: already_exists" "409 already_exists" "$(t_http) $(jq -r .code <<<"$out")"
out=$(reg x1 "$la")
t_eq "another external peer's key: already_exists" "409 already_exists" "$(t_http) $(jq -r .code <<<"$out")"
t_eq "refused keys: nothing changed" "$before" "$(ext_list)"

# Without a location (or one no gateway has): the least-loaded gateway.
c_cm_json DeleteExternalPeer '{"name":"phone"}' >/dev/null
t_eq "phone deleted" '["laptop","tablet"]' "$(ext_list | jq -c '[.[].name]')"
out=$(reg phone "$lc")
t_eq "phone (no location): g3, the least loaded" g3 "$(jq -r .externalPeer.gateway.name <<<"$out")"
t_eq "phone: its freed addresses again" "10.200.0.3/32,fd20::3/128" "$(jq -r .externalPeer.address <<<"$out")"
c_cm_json DeleteExternalPeer '{"name":"phone"}' >/dev/null
out=$(reg phone "$lc" mars)
t_eq "phone (mars, no gateway there): g3, the least loaded" g3 "$(jq -r .externalPeer.gateway.name <<<"$out")"

# A new key for a name replaces the old one; the address stays.
out=$(reg laptop "$le" eu)
t_eq "laptop's new key: same address and gateway" "$le 10.200.0.1/32,fd20::1/128 g1" \
	"$(jq -r '.externalPeer | "\(.publicKey) \(.address) \(.gateway.name)"' <<<"$out")"
t_eq "the old key is gone" 0 "$(ext_list | grep -c -- "$la" || true)"

m=$(c_cm_metrics)
t_eq "wgcni_external_peers{gateway=\"g1\"}" 1 "$(awk '$1 == "wgcni_external_peers{gateway=\"g1\"}" { print $2 }' <<<"$m")"
t_eq "wgcni_external_peers{gateway=\"g3\"}" 1 "$(awk '$1 == "wgcni_external_peers{gateway=\"g3\"}" { print $2 }' <<<"$m")"

# A deleted gateway's external peers move to another gateway.
rev2=$(rev)
c_cm_json DeleteNode '{"nodeName":"g1"}' >/dev/null
gw=$(ext_list | jq -r '.[] | select(.name == "laptop") | .gateway.name')
t_eq "laptop moved off deleted g1 to the least-loaded gateway by name" g2 "$gw"
w=$(c_cm_json WatchPeers "{\"nodeName\":\"n4\",\"sinceRevision\":\"$rev2\"}")
t_eq "WatchPeers delta: g2 now carries laptop's address" 1 \
	"$(jq '[.peers[] | select(.name == "g2") | .allowedIps[] | select(. == "10.200.0.1/32")] | length' <<<"$w")"
t_eq "WatchPeers delta: g1 removed" '["g1"]' "$(jq -c .removed <<<"$w")"
out=$(reg laptop "$le" eu)
t_eq "laptop's next RegisterExternalPeer returns g2" g2 "$(jq -r .externalPeer.gateway.name <<<"$out")"

# Everything survives a restart.
before=$(ext_list)
c_cm_stop
c_cm_start
t_eq "after a restart: the same external peers" "$before" "$(ext_list)"
t_eq "after a restart: g2's peer entry still carries laptop and tablet" \
	"10.200.0.1/32 fd20::1/128 10.200.0.2/32 fd20::2/128" \
	"$(c_cm_json ListPeers '{"nodeName":"n4"}' | jq -r '.peers[] | select(.name == "g2") | .allowedIps[1:] | join(" ")')"

out=$(c_cm_call DeleteExternalPeer '{"name":"laptop"}')
t_eq "DeleteExternalPeer" 200 "$(t_http)"
t_eq "laptop's address left g2's peer entry" 0 \
	"$(c_cm_json ListPeers '{"nodeName":"n4"}' | jq '[.peers[].allowedIps[] | select(. == "10.200.0.1/32")] | length')"
out=$(c_cm_call DeleteExternalPeer '{"name":"laptop"}')
t_eq "DeleteExternalPeer again: not_found" "404 not_found" "$(t_http) $(jq -r .code <<<"$out")"
out=$(c_cm_call DeleteExternalPeer '{"name":"Bad Name"}')
t_eq "DeleteExternalPeer bad name: invalid_argument" "400 invalid_argument" "$(t_http) $(jq -r .code <<<"$out")"

# Without --external-cidr: failed_precondition.
c_cm_stop
C_CM_FLAGS=()
c_cm_start
out=$(reg other "$(c_pubkey)")
t_eq "no --external-cidr: failed_precondition" "412 failed_precondition" "$(t_http) $(jq -r .code <<<"$out")"
c_cm_stop
rc=0
"$C_CM_BIN" --listen 127.0.0.1:1 --state-dir "$T_TMP/cm2" --cluster-cidr 10.100.0.0/16 \
	--external-cidr 10.100.5.0/24 >"$T_TMP/overlap.log" 2>&1 || rc=$?
t_ok "an external CIDR inside the cluster CIDR is refused (rc $rc)" test "$rc" != 0
t_ok "... saying so" grep -q "overlaps cluster CIDR" "$T_TMP/overlap.log"

c_leak_check
t_done

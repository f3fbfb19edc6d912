#!/bin/bash
# Dual stack: with an IPv4 and an IPv6 cluster CIDR the container gets a /32
# and a /128, both default routes, and reaches the other node's container
# over both families; the result lists both addresses on interface 0 with
# routes 0.0.0.0/0 and ::/0; CHECK covers both; DEL leaves nothing.
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
c_cluster 2 --cluster-cidr fd10:131::/48
nodeaddrs=$(c_nm_rpc n1 GetNode | jq -r .node.address)
if ! grep -q : <<<"$nodeaddrs"; then
	echo "not ok - node manager gave n1 no IPv6 address ($nodeaddrs)"
	exit 1
fi

t_netns_add a
t_netns_add b
rc=0; out=$(c_plugin ADD n1 a eth0 0.4.0) || rc=$?
t_eq "ADD a" 0 "$rc"
t_eq "two addresses, /32 and /128, both on interface 0" "4:32:0 6:128:0" \
	"$(jq -r '[.ips[] | "\(.version):\(.address|split("/")[1]):\(.interface)"] | sort | join(" ")' <<<"$out")"
t_eq "both default routes" "0.0.0.0/0 ::/0" "$(jq -r '[.routes[].dst] | join(" ")' <<<"$out")"
A6=$(jq -r '.ips[] | select(.version == "6") | .address' <<<"$out" | cut -d/ -f1)
rc=0; out=$(c_plugin ADD n2 b) || rc=$?
t_eq "ADD b" 0 "$rc"
B4=$(jq -r '.ips[] | select(.address | contains(".")) | .address' <<<"$out" | cut -d/ -f1)
B6=$(jq -r '.ips[] | select(.address | contains(":")) | .address' <<<"$out" | cut -d/ -f1)
t_ok "b has an IPv6 address" test -n "$B6"
t_ok "IPv6 default route in a" sh -c "ip -n $(t_ns a) -6 route show default | grep -q 'dev eth0'"
t_ok "a's /128 is on eth0" sh -c "ip -n $(t_ns a) -6 addr show dev eth0 | grep -q '$A6/128'"
t_wait "IPv6 DAD done in a" 5 sh -c "! ip -n $(t_ns a) -6 addr show dev eth0 tentative | grep -q inet6"
t_wait "IPv6 DAD done in b" 5 sh -c "! ip -n $(t_ns b) -6 addr show dev eth0 tentative | grep -q inet6"
t_ok "a pings b over IPv4 ($B4)" nq a ping -c 1 -W 2 "$B4"
t_ok "a pings b over IPv6 ($B6)" nq a ping -6 -c 1 -W 2 "$B6"
t_ok "CHECK a" c_plugin CHECK n1 a eth0 0.4.0
n a ip -6 route del default dev eth0
rc=0; c_plugin CHECK n1 a eth0 0.4.0 >"$T_TMP/out" || rc=$?
t_eq "CHECK notices the missing IPv6 route" "default route missing" "$(jq -r .msg "$T_TMP/out")"
t_ok "... naming ::/0" grep -q '::/0' "$T_TMP/out"
t_ok "DEL a" c_plugin DEL n1 a eth0 0.4.0
t_ok "DEL b" c_plugin DEL n2 b
c_no_leftovers n1 a
c_no_leftovers n2 b
t_eq "n1 back to its one node peer" 1 "$(c_peer_count n1)"
c_leak_check
t_done

#!/bin/bash
# CHECK passes after ADD and fails, with a message naming what differs,
# after each of: interface deleted, address removed, route removed, peer
# removed on the node, allocation released. Each case uses a fresh container.
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
c_cluster 2

# check_fails WHAT CTR PATTERN [EXTRA]: CHECK exits non-zero, code 102, and
# msg + details match PATTERN (extended regex). EXTRA: more config members.
check_fails() {
	local what=$1 c=$2 pat=$3 extra=${4:-} rc=0
	c_plugin CHECK n1 "$c" eth0 1.0.0 "$extra" >"$T_TMP/out" || rc=$?
	t_ok "$what: CHECK fails" test "$rc" -ne 0
	t_eq "$what: code" 102 "$(jq -r .code "$T_TMP/out" 2>/dev/null)"
	t_ok "$what: message names it ($(jq -r '.msg + ": " + .details' "$T_TMP/out" 2>/dev/null))" \
		sh -c "jq -r '.msg + \" \" + .details' '$T_TMP/out' | grep -Eq '$pat'"
}

add() {
	local rc=0
	t_netns_add "$1"
	c_plugin ADD n1 "$1" >"$T_TMP/add-$1.json" || rc=$?
	t_eq "ADD $1" 0 "$rc"
	t_ok "CHECK $1 passes right after ADD" c_plugin CHECK n1 "$1"
	IP=$(jq -r '.ips[0].address' "$T_TMP/add-$1.json")
}

add a
prev=$(jq -c . "$T_TMP/add-a.json")
t_ok "CHECK a with ADD's result as prevResult" c_plugin CHECK n1 a eth0 1.0.0 "\"prevResult\":$prev"
check_fails "prevResult with another address" a "prevResult lacks the address.*${IP%/*}" \
	"\"prevResult\":$(jq -c '.ips[0].address = "192.0.2.1/32"' <<<"$prev")"
check_fails "prevResult with another interface" a "prevResult lacks the interface.*eth0" \
	"\"prevResult\":$(jq -c '.interfaces[0].name = "net1"' <<<"$prev")"
n a ip link del eth0
check_fails "interface deleted" a "interface missing.*eth0"

add b
n b ip addr del "$IP" dev eth0
check_fails "address removed" b "address missing.*${IP%/*}"

add c
n c ip route del default dev eth0
check_fails "route removed" c "default route missing.*0\.0\.0\.0/0"

add d
n d ip link set eth0 down
check_fails "interface down" d "interface is down"

add e
pub=$(c_nm_rpc n1 ListAllocations | jq -r --arg id "ctr-$$-e" '.allocations[] | select(.containerId == $id) | .publicKey')
t_ok "e's public key is known to n1" test -n "$pub"
n n1 wg set "$(c_ifname 1)" peer "$pub" remove
check_fails "peer removed on the node" e "node interface has no peer.*$(c_ifname 1)"

add f
t_ok "Release f behind the plugin's back" c_nm_rpc n1 Release "{\"containerId\":\"ctr-$$-f\",\"ifname\":\"eth0\"}"
check_fails "allocation released" f "no allocation.*ctr-$$-f"

add g
n g ip link set eth0 mtu 1300
check_fails "MTU changed" g "MTU differs.*1300"

add h
tmp=$(c_tmpname h)
n n1 wg set "$tmp" peer "$(c_nm_rpc n1 GetNode | jq -r .node.publicKey)" remove
check_fails "container lost its node peer" h "peer for the node missing"

rc=0; C_NETNS_OVERRIDE=/run/netns/$T_ID-missing c_plugin CHECK n1 a >"$T_TMP/out" || rc=$?
t_eq "CHECK with a missing netns: code 3" 3 "$(jq -r .code "$T_TMP/out")"

for c in a b c d e f g h; do
	t_ok "DEL $c" c_plugin DEL n1 "$c"
	c_no_leftovers n1 "$c"
done
t_eq "n1 back to its one node peer" 1 "$(c_peer_count n1)"
c_leak_check
t_done

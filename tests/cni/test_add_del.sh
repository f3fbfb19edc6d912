#!/bin/bash
# ADD and DEL through the real plugin on a 2-node cluster (userspace
# backend): results for 1.0.0, 0.4.0 and 1.1.0 checked field by field, the
# container's interface, /32 and default route, pings to its node, to a
# container on the same node and to one on the other node, a chained ADD
# keeping prevResult, CHECK passing; then DEL twice, DEL with an empty
# CNI_NETNS, DEL after the container namespace was deleted, DEL after a
# node manager restart: all exit 0 and leave nothing behind.
# ADD and DEL through nodeManager http://127.0.0.1:PORT too (n2's node
# manager also serves the API on its loopback).
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
declare -A C_NODE_FLAGS=([2]="--listen 127.0.0.1:18091")
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
c_cluster 2

for c in a b c d e f; do t_netns_add "$c"; done

# --- 1.0.0 on n1
rc=0; out=$(c_plugin ADD n1 a) || rc=$?
t_eq "ADD a (1.0.0) exits 0" 0 "$rc"
t_eq "result cniVersion" 1.0.0 "$(jq -r .cniVersion <<<"$out")"
t_eq "one interface, named eth0, zero MAC, sandbox" \
	"[{\"name\":\"eth0\",\"mac\":\"00:00:00:00:00:00\",\"sandbox\":\"/run/netns/$(t_ns a)\"}]" \
	"$(jq -c '.interfaces' <<<"$out")"
t_eq "one /32 on interface 0 with the node as gateway" "1 0 ${C_GW[1]} 32 null" \
	"$(jq -r '[(.ips|length), .ips[0].interface, .ips[0].gateway, (.ips[0].address|split("/")[1]), .ips[0].version] | join(" ")' <<<"$out" | sed 's/ $/ null/')"
t_eq "default route" '[{"dst":"0.0.0.0/0"}]' "$(jq -c .routes <<<"$out")"
IP_a=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
t_ok "address lies in n1's subnet" jq -e --arg ip "$IP_a" \
	'.node.subnets[0] | split("/")[0] | split(".")[0:3] == ($ip | split(".")[0:3])' \
	<<<"$(c_nm_rpc n1 GetNode)"
t_eq "eth0 in a holds exactly the /32" "$IP_a/32" \
	"$(nq a ip -o -4 addr show dev eth0 | awk '{print $4}')"
t_ok "eth0 in a is up" sh -c "ip -n $(t_ns a) link show eth0 | grep -q ',UP'"
t_eq "default route in a through eth0" "default dev eth0" \
	"$(nq a ip route show default | awk '{print $1, $2, $3}')"
t_eq "MTU is the node's" "$(c_nm_rpc n1 GetNode | jq -r .node.mtu)" \
	"$(nq a ip -o link show eth0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
t_eq "allocation recorded on n1" 1 "$(c_allocs n1)"
t_ok "the allocation carries a public key" jq -e '.allocations[0].publicKey | length == 44' <<<"$(c_nm_rpc n1 ListAllocations)"
t_eq "n1 now has 2 peers (n2 + a)" 2 "$(c_peer_count n1)"
t_ok "no temporary device left on the node" sh -c "! ip -n $(t_ns n1) -o link show | grep -q ' wgc'"
t_ok "a pings its node n1 (${C_GW[1]})" nq a ping -c 1 -W 2 "${C_GW[1]}"
# The runtime waits for the plugin's stdout to close: the userspace process
# must not hold it (the $(...) above returning already shows it closed).
tmp=$(c_tmpname a)
pid=$(pgrep -f -- "[w]${tmp#w}" | head -1)
t_ok "a's wireguard-go runs ($tmp, pid ${pid:-none})" test -n "$pid"
t_eq "its stdin/stdout/stderr are /dev/null" "/dev/null /dev/null /dev/null" \
	"$(readlink "/proc/$pid/fd/0" "/proc/$pid/fd/1" "/proc/$pid/fd/2" | xargs)"
t_ok "its UAPI socket carries the temporary name" test -S "/var/run/wireguard/$tmp.sock"
t_ok "it runs with GOMAXPROCS=1 (one container's traffic)" \
	grep -qx GOMAXPROCS=1 <(tr '\0' '\n' <"/proc/$pid/environ")
# Receive buffer of pid's UDP socket(s) in namespace $1, the smallest
# (ss's rb: the kernel doubles what was set).
udp_rb() {
	nq "$1" ss -uampnH | awk -v p="pid=$2," 'index($0, p) { getline;
		if (match($0, /rb[0-9]+/)) print substr($0, RSTART + 2, RLENGTH - 2) }' | sort -n | head -n 1
}
t_ok "its UDP socket has 7 MiB buffers (rb $(udp_rb n1 "$pid"))" test "$(udp_rb n1 "$pid")" -ge 7340032
npid=$(pgrep -x -f "$C_IMPL $(c_ifname 1)" | head -n 1)
t_ok "so has the node interface's (rb $(udp_rb n1 "$npid"))" test "$(udp_rb n1 "$npid")" -ge 7340032

# --- 0.4.0 on n1, 1.1.0 on n2
rc=0; out=$(c_plugin ADD n1 b eth0 0.4.0) || rc=$?
t_eq "ADD b (0.4.0) exits 0" 0 "$rc"
t_eq "0.4.0 result version" 0.4.0 "$(jq -r .cniVersion <<<"$out")"
t_eq "0.4.0 ips carry version 4" 4 "$(jq -r '.ips[0].version' <<<"$out")"
t_eq "0.4.0 interface has no mtu field" null "$(jq -r '.interfaces[0].mtu' <<<"$out")"
IP_b=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
rc=0; out=$(c_plugin ADD n2 c eth0 1.1.0) || rc=$?
t_eq "ADD c (1.1.0) exits 0" 0 "$rc"
t_eq "1.1.0 result version" 1.1.0 "$(jq -r .cniVersion <<<"$out")"
t_eq "1.1.0 interface carries the mtu" "$(c_nm_rpc n2 GetNode | jq -r .node.mtu)" "$(jq -r '.interfaces[0].mtu' <<<"$out")"
t_eq "1.1.0 ips carry no version" null "$(jq -r '.ips[0].version' <<<"$out")"
IP_c=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
t_ok "addresses differ" test "$IP_a" != "$IP_b" -a "$IP_a" != "$IP_c"

t_ok "a pings b on the same node ($IP_b)" nq a ping -c 1 -W 2 "$IP_b"
t_ok "a pings c on the other node ($IP_c)" nq a ping -c 1 -W 2 "$IP_c"
t_ok "c pings a across nodes" nq c ping -c 1 -W 2 "$IP_a"
t_ok "c pings node n1" nq c ping -c 1 -W 2 "${C_GW[1]}"

t_ok "CHECK a passes" c_plugin CHECK n1 a
t_ok "CHECK b (0.4.0) passes" c_plugin CHECK n1 b eth0 0.4.0
t_ok "CHECK c (1.1.0) passes" c_plugin CHECK n2 c eth0 1.1.0

# --- chained: a prevResult is kept and extended
PREV='"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"lo0","sandbox":"/run/netns/x"}],"ips":[{"address":"192.0.2.5/24","interface":0}],"routes":[{"dst":"192.0.2.0/24"}],"dns":{"nameservers":["192.0.2.53"]}}'
rc=0; out=$(c_plugin ADD n1 d wg1 1.0.0 "$PREV") || rc=$?
t_eq "chained ADD d exits 0" 0 "$rc"
t_eq "chained: interfaces kept and ours appended" "lo0 wg1" "$(jq -r '[.interfaces[].name] | join(" ")' <<<"$out")"
t_eq "chained: our ip points at interface 1" 1 "$(jq -r '.ips[1].interface' <<<"$out")"
t_eq "chained: previous ip kept" 192.0.2.5/24 "$(jq -r '.ips[0].address' <<<"$out")"
t_eq "chained: routes kept and ours appended" "192.0.2.0/24 0.0.0.0/0" "$(jq -r '[.routes[].dst] | join(" ")' <<<"$out")"
t_eq "chained: dns kept" 192.0.2.53 "$(jq -r '.dns.nameservers[0]' <<<"$out")"
t_ok "chained: wg1 exists in d" nq d ip link show wg1

# --- DEL twice
peers_before=$(c_peer_count n1)
t_ok "DEL a" c_plugin DEL n1 a
t_ok "DEL a again" c_plugin DEL n1 a
c_no_leftovers n1 a
t_eq "a's peer removed from n1" $((peers_before - 1)) "$(c_peer_count n1)"

# --- DEL with an empty CNI_NETNS (containerd); the namespace then goes away
C_NETNS_OVERRIDE= t_ok "DEL b with empty CNI_NETNS" c_plugin DEL n1 b
ip netns del "$(t_ns b)"
c_no_leftovers n1 b

# --- DEL after the container namespace was deleted
ip netns del "$(t_ns c)"
t_ok "DEL c after its namespace is gone" c_plugin DEL n2 c eth0 1.1.0
c_no_leftovers n2 c
t_eq "n2 back to its one node peer" 1 "$(c_peer_count n2)"

# --- DEL after a node manager restart
c_nm_stop n1
c_nm_up n1
t_ok "d's allocation survived the restart" c_has_alloc n1 d wg1
t_ok "DEL d after n1's node manager restarted" c_plugin DEL n1 d wg1 1.0.0 "$PREV"
c_no_leftovers n1 d wg1
t_eq "n1 back to its one node peer" 1 "$(c_peer_count n1)"
t_eq "no allocations left on n1" 0 "$(c_allocs n1)"
t_eq "no allocations left on n2" 0 "$(c_allocs n2)"

# --- containerd's way: ADD with CNI_NETNS=/proc/<pid>/ns/net of a process
# in its own namespace, DEL with an empty CNI_NETNS while it still runs.
unshare -n sleep 600 &
spid=$!
T_PIDS+=("$spid")
own_ns() { [ "$(readlink "/proc/$spid/ns/net")" != "$(readlink /proc/self/ns/net)" ]; }
t_wait "sleeper in its own namespace" 5 own_ns
rc=0; out=$(C_NETNS_OVERRIDE=/proc/$spid/ns/net c_plugin ADD n1 f) || rc=$?
t_eq "ADD f with a /proc/PID/ns/net path" 0 "$rc"
t_eq "result sandbox is that path" "/proc/$spid/ns/net" "$(jq -r '.interfaces[0].sandbox' <<<"$out")"
t_ok "f pings its node" nsenter -t "$spid" -n ping -c 1 -W 2 "${C_GW[1]}"
C_NETNS_OVERRIDE= t_ok "DEL f with an empty CNI_NETNS" c_plugin DEL n1 f
t_wait "f's interface gone with its process" 5 sh -c "! nsenter -t $spid -n ip link show eth0"
t_fail "no eth0 left in f's namespace" nsenter -t "$spid" -n ip link show eth0
t_fail "no allocation left for f" c_has_alloc n1 f
tmp=$(c_tmpname f)
t_fail "no socket left for f" test -e "/var/run/wireguard/$tmp.sock"
t_fail "no process left for f" pgrep -f -- "[w]${tmp#w}"
t_stop_pid "$spid"

# --- nodeManager over TCP (http://), as SPEC §4 allows: the plugin's own
# HTTP/1.1 client (cni/nmhttp.c), several calls on one connection
HTTPCONF='{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni","nodeManager":"http://127.0.0.1:18091","userspaceImplementation":"'"$C_IMPL"'"}'
plugin_http() {
	ip netns exec "$(t_ns n2)" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="ctr-$$-e" \
		CNI_NETNS="/run/netns/$(t_ns e)" CNI_IFNAME=eth0 CNI_PATH="$C_BINDIR" \
		"$C_PLUGIN" <<<"$HTTPCONF" 2>"$T_TMP/plugin.err"
}
rc=0; out=$(plugin_http ADD) || rc=$?
t_eq "ADD e over http://127.0.0.1 exits 0" 0 "$rc"
t_ok "the result holds e's address" jq -e '.ips[0].address | length > 0' <<<"$out"
t_ok "allocation recorded on n2 (asked over TCP)" c_has_alloc n2 e
t_ok "e pings node n2" nq e ping -c 1 -W 2 "${C_GW[2]}"
t_ok "DEL e over http" plugin_http DEL
c_no_leftovers n2 e

# --- ADD after everything was released works again (state is clean)
rc=0; c_plugin ADD n2 e >/dev/null || rc=$?
t_eq "ADD e after everything was released" 0 "$rc"
t_ok "e pings node n2" nq e ping -c 1 -W 2 "${C_GW[2]}"
t_ok "DEL e" c_plugin DEL n2 e
c_no_leftovers n2 e

c_leak_check
t_done

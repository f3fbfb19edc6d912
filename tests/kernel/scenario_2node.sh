#!/bin/bash
# Two nodes, two containers each, attached by the real `wgcni` plugin invoked
# as a runtime does, with the backend named by WGCNI_TEST_BACKEND (kernel in
# the VM of tests/kernel/test_kernel.sh; userspace works on any host).
# Proves: node interfaces and peers, every container reaches every container
# and node address, a node manager killed with -9 and restarted drops no
# packet of a running ping (kernel: the tunnel lives in the kernel), DEL
# leaves nothing, `cleanup` leaves nothing.
. "$(dirname "$0")/../lib.sh"

BACKEND=${WGCNI_TEST_BACKEND:-kernel}
CM=$T_BIN/wgcni-cluster-manager
NM=$T_BIN/wgcni-node-manager
PLUGIN=$T_BIN/wgcni
UL=192.168.231

# --- underlay: a bridge in its own namespace, a veth to each host
t_netns_add ul
n ul ip link add br0 type bridge
n ul ip link set br0 up
i=1
for h in cm n1 n2; do
	t_netns_add "$h"
	ip -n "$(t_ns ul)" link add "u-$h" type veth peer name eth0 netns "$(t_ns "$h")"
	n ul ip link set "u-$h" master br0 up
	n "$h" ip addr add "$UL.$i/24" dev eth0
	n "$h" ip link set eth0 up
	i=$((i + 1))
done

t_spawn cm "$T_TMP/cm.log" ip netns exec "$(t_ns cm)" "$CM" --listen "$UL.1:8080" \
	--state-dir "$T_TMP/cm" --cluster-cidr 10.120.0.0/16
t_wait "cluster manager healthy" 10 nq cm curl -sf "http://$UL.1:8080/healthz"

IF1=wk$$a IF2=wk$$b
start_nm() { # host ifname ip
	t_spawn "nm_$1" "$T_TMP/nm-$1.log" ip netns exec "$(t_ns "$1")" "$NM" \
		--cluster-manager "http://$UL.1:8080" --node-name "$1" \
		--endpoint "$3:51820" --interface "$2" --listen-port 51820 \
		--socket "$T_TMP/$1.sock" --state-dir "$T_TMP/state-$1" --backend "$BACKEND"
}
nm_ready() { curl -sf --unix-socket "$T_TMP/$1.sock" -H 'Content-Type: application/json' \
	-d '{}' http://nm/wgcni.node.v1.NodeService/GetNode; }
start_nm n1 "$IF1" "$UL.2"
start_nm n2 "$IF2" "$UL.3"
t_wait "node manager n1 ready" 20 nm_ready n1
t_wait "node manager n2 ready" 20 nm_ready n2
peers() { nq "$1" wg show "$2" peers | wc -l; }
t_wait "n1 has n2 as a peer" 10 test "$(peers n1 "$IF1")" = 1
t_wait "n2 has n1 as a peer" 10 test "$(peers n2 "$IF2")" = 1

addr1=$(nm_ready n1 | jq -r '.node.address' | cut -d/ -f1)
addr2=$(nm_ready n2 | jq -r '.node.address' | cut -d/ -f1)
t_eq "n1 reports the $BACKEND backend" "$BACKEND" "$(nm_ready n1 | jq -r .node.backend)"
t_ok "n1 pings n2's interface address through the tunnel" n n1 ping -c 2 -W 2 "$addr2"

conf() { cat <<EOF
{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni","nodeManager":"unix://$T_TMP/$1.sock","backend":"$BACKEND"}
EOF
}
cni() { # cmd node container
	conf "$2" | nq "$2" env CNI_COMMAND="$1" CNI_CONTAINERID="ctr-$$-$3" \
		CNI_NETNS="/run/netns/$(t_ns "$3")" CNI_IFNAME=eth0 CNI_PATH="$T_BIN" "$PLUGIN"
}
declare -A IP
for c in c11 c12 c21 c22; do
	node=n${c:1:1}
	t_netns_add "$c"
	out=$(cni ADD "$node" "$c")
	IP[$c]=$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)
	t_ok "ADD $c on $node gives an address" test -n "${IP[$c]}" -a "${IP[$c]}" != null
done
for src in c11 c12 c21 c22; do
	for dst in c11 c12 c21 c22; do
		[ "$src" = "$dst" ] && continue
		t_ok "$src pings $dst (${IP[$dst]})" nq "$src" ping -c 1 -W 2 "${IP[$dst]}"
	done
	t_ok "$src pings node n1" nq "$src" ping -c 1 -W 2 "$addr1"
	t_ok "$src pings node n2" nq "$src" ping -c 1 -W 2 "$addr2"
done
t_ok "CHECK passes for c11" cni CHECK n1 c11

# --- kill -9 of a node manager under a running ping
nq c11 ping -i 0.1 -c 60 -W 1 "${IP[c21]}" >"$T_TMP/ping.log" 2>&1 &
ping_pid=$!
T_PIDS+=("$ping_pid")
t_wait "ping running" 5 grep -q 'bytes from' "$T_TMP/ping.log"
kill -9 "$T_PID_nm_n1"
wait "$T_PID_nm_n1" 2>/dev/null || true
start_nm n1 "$IF1" "$UL.2"
t_wait "node manager n1 back" 20 nm_ready n1
wait "$ping_pid" || true
lost=$(grep -o '[0-9]* received' "$T_TMP/ping.log" | cut -d' ' -f1)
t_eq "no packet lost across a kill -9 restart ($BACKEND)" 60 "$lost"
t_eq "n1 still has its one node peer plus 2 containers" 3 "$(peers n1 "$IF1")"

for c in c11 c12 c21 c22; do
	t_ok "DEL $c" cni DEL "n${c:1:1}" "$c"
	t_ok "DEL $c again" cni DEL "n${c:1:1}" "$c"
	t_fail "no eth0 left in $c" nq "$c" ip link show eth0
done
t_eq "no allocations left on n1" 0 "$(curl -sf --unix-socket "$T_TMP/n1.sock" -H 'Content-Type: application/json' \
	-d '{}' http://nm/wgcni.node.v1.NodeService/ListAllocations | jq '.allocations // [] | length')"
t_eq "only the node peer left on n1" 1 "$(peers n1 "$IF1")"

for h in n1 n2; do
	pid_var=T_PID_nm_$h
	t_stop_pid "${!pid_var}"
	t_ok "cleanup on $h" nq "$h" "$NM" cleanup --interface "$(eval echo \$IF${h:1:1})" \
		--socket "$T_TMP/$h.sock" --state-dir "$T_TMP/state-$h" --backend "$BACKEND"
	t_fail "no interface left on $h" nq "$h" ip link show "$(eval echo \$IF${h:1:1})"
	t_fail "no WGCNI chain left on $h" sh -c "ip netns exec $(t_ns "$h") iptables-legacy-save | grep -q WGCNI"
done
t_done

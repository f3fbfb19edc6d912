#!/bin/bash
# 3 nodes x 3 containers attached by the real plugin through libcni:
# every container reaches every other container (72 ordered pairs) and every
# node address; CHECK passes; TCP carries a megabyte intact on one node and
# across nodes; the receiver sees the sender's own address (no NAT); a packet
# of the full interface MTU crosses nodes with DF set and one byte more is
# refused locally with "message too long" (no blackhole); traffic leaving the
# cluster is masqueraded; nothing leaks.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 3
CTRS=()
for i in 1 2 3; do
	for s in a b c; do
		t_ok "ADD c$i$s on node $i" c_ctr_add "$i" "c$i$s"
		CTRS+=("c$i$s")
	done
done
t_eq "9 distinct container addresses" 9 \
	"$(for c in "${CTRS[@]}"; do echo "${C_ADDR[$c]}"; done | sort -u | grep -c .)"
for i in 1 2 3; do
	t_eq "node $i: 3 container peers on the node interface" 3 "$(c_container_peers "$i" | grep -c . || true)"
done

addrs=()
for c in "${CTRS[@]}"; do addrs+=("${C_ADDR[$c]}"); done
t_eq "all 72 ordered container pairs ping" "ok 72" "$(c_ping_all "${CTRS[@]}" -- "${addrs[@]}")"
naddrs=()
for i in 1 2 3; do naddrs+=("$(c_node_addr "$i")"); done
t_eq "every container pings every node address (27)" "ok 27" "$(c_ping_all "${CTRS[@]}" -- "${naddrs[@]}")"

for c in "${CTRS[@]}"; do
	t_ok "CHECK $c through libcni" c_cni check "${C_NODE[$c]}" "$c"
done

# --- TCP, and the source address the receiver sees
head -c 1048576 /dev/urandom >"$T_TMP/blob"
want_sum=$(sha256sum <"$T_TMP/blob" | cut -d' ' -f1)
listening() { nq "$1" ss -Hltn 'sport = :5001' | grep -q .; }
tcp_pair() { # src dst label
	local src=$1 dst=$2 what=$3 pid got peer
	nq "$dst" timeout 30 nc -v -n -l 5001 >"$T_TMP/tcp.out" 2>"$T_TMP/tcp.err" &
	pid=$!
	T_PIDS+=("$pid")
	t_wait "listener in $dst" 10 listening "$dst"
	t_ok "$what: $src sends 1 MiB to $dst" nq "$src" timeout 30 nc -N -n "${C_ADDR[$dst]}" 5001 <"$T_TMP/blob"
	wait "$pid" || true
	got=$(stat -c %s "$T_TMP/tcp.out")
	t_eq "$what: byte count at $dst" 1048576 "$got"
	t_eq "$what: content intact" "$want_sum" "$(sha256sum <"$T_TMP/tcp.out" | cut -d' ' -f1)"
	peer=$(sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$T_TMP/tcp.err")
	t_eq "$what: $dst sees $src's own address (no NAT)" "${C_ADDR[$src]}" "$peer"
}
# Leaving the cluster (to the cluster manager's host on the underlay) is
# masqueraded to the node's underlay address: the counterpart of no NAT.
nq cm timeout 20 nc -v -n -l 5002 >/dev/null 2>"$T_TMP/egress.err" &
egress_pid=$!
T_PIDS+=("$egress_pid")
t_wait "listener in cm" 10 sh -c "ip netns exec $(t_ns cm) ss -Hltn 'sport = :5002' | grep -q ."
t_ok "c2b connects out of the cluster to $C_UL.1" sh -c "echo hi | ip netns exec $(t_ns c2b) nc -N -n -w 5 $C_UL.1 5002"
wait "$egress_pid" || true
t_eq "egress is masqueraded to node 2's underlay address" "$C_UL.12" \
	"$(sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$T_TMP/egress.err")"

tcp_pair c1a c1b "same node"
tcp_pair c1a c2b "across nodes"
tcp_pair c3c c2a "across nodes, other direction"

# --- MTU: full size crosses with DF, one byte more is refused, not dropped
mtu=$(nq c1a cat /sys/class/net/eth0/mtu)
t_eq "container MTU is the node manager's" "$(c_nm_rpc 1 GetNode '{}' | jq -r .node.mtu)" "$mtu"
df_ping() { nq "$1" ping -n -q -c 2 -i 0.2 -w 5 -M do -s "$2" "$3" >/dev/null; }
t_ok "a ${mtu}-byte packet with DF crosses nodes (c1a -> c2a)" df_ping c1a $((mtu - 28)) "${C_ADDR[c2a]}"
t_ok "a ${mtu}-byte packet with DF reaches a node address (c3b -> node 1)" df_ping c3b $((mtu - 28)) "${naddrs[0]}"
nq c1a ping -n -c 1 -W 2 -M do -s $((mtu - 27)) "${C_ADDR[c2a]}" >"$T_TMP/big.out" 2>&1 || true
t_ok "$((mtu + 1)) bytes with DF: refused with 'message too long'" \
	grep -qi 'message too long' "$T_TMP/big.out"
t_fail "$((mtu + 1)) bytes with DF: no reply" grep -q ' 1 received' "$T_TMP/big.out"

for i in 1 2 3; do
	t_ok "node $i: wgcni firewall chains present while running (the leak check can fail)" \
		test -n "$(c_fw_rules "h$i")"
done

c_leak_check
t_done

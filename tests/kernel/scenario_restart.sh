#!/bin/bash
# What only the kernel backend shows, on the e2e harness (lib_cluster.sh),
# in the VM of test_kernel.sh: with --backend auto and the plugin's
# "backend": "auto" the kernel is chosen (GetNode says so, node and
# container interfaces are kernel WireGuard links, no wireguard-go runs);
# a container's UDP socket stays in its node's namespace; CHECK passes and
# the containers reach each other; and a node manager
# killed with -9, and another stopped with SIGTERM, then both restarted, lose
# not one packet of pings running through them (the tunnels live in the
# kernel; a restart only adopts the interface).
# Outside a kernel with the module it exits 77 (skip); in the VM a skip is
# a failure (in-vm.sh counts only exit 0 as a pass).
. "$(dirname "$0")/../lib_cluster.sh"

t_netns_add probe
if ! ip -n "$(t_ns probe)" link add wgprobe type wireguard 2>/dev/null; then
	t_log "skipped: this kernel has no WireGuard module"
	exit 77
fi

C_BACKEND=auto
c_cluster 2
for i in 1 2; do
	t_eq "node $i: auto chose the kernel backend (GetNode)" kernel \
		"$(c_nm_rpc "$i" GetNode '{}' | jq -r .node.backend)"
	t_ok "node $i: its interface is a kernel wireguard link" \
		sh -c "ip -n $(t_ns "h$i") -d link show $(c_ifname "$i") | grep -qw wireguard"
done
for i in 1 2; do
	t_ok "node $i: WGCNI-FORWARD chain and its jump are in the kernel's (legacy) filter table" \
		sh -c "ip netns exec $(t_ns "h$i") iptables-legacy-save -t filter | grep -q -- '-A FORWARD -j WGCNI-FORWARD'"
	t_ok "node $i: WGCNI-POSTROUTING chain and its jump are in the nat table" \
		sh -c "ip netns exec $(t_ns "h$i") iptables-legacy-save -t nat | grep -q -- '-A POSTROUTING -j WGCNI-POSTROUTING'"
done
for c in c1a c1b c2a; do t_ok "ADD $c" c_ctr_add "${c:1:1}" "$c"; done
t_ok "c1a's eth0 is a kernel wireguard link" \
	sh -c "ip -n $(t_ns c1a) -d link show eth0 | grep -qw wireguard"
t_fail "no wireguard-go process anywhere" pgrep -x wireguard-go
for c in c1a c1b c2a; do t_ok "CHECK $c through libcni" c_cni check "${C_NODE[$c]}" "$c"; done
t_eq "the 3 containers ping each other" "ok 6" \
	"$(c_ping_all c1a c1b c2a -- "${C_ADDR[c1a]}" "${C_ADDR[c1b]}" "${C_ADDR[c2a]}")"

# The container's socket: created in the node namespace, stays there.
port=$(nq c1a wg show eth0 listen-port)
t_ok "c1a's interface has a listen port ($port)" test -n "$port" -a "$port" != 0
t_ok "its UDP socket is in node 1's namespace" \
	sh -c "ip netns exec $(t_ns h1) ss -Hunl 'sport = :$port' | grep -q ."
t_eq "c1a's namespace has no UDP socket" "" "$(nq c1a ss -Hunl | xargs)"

# --- restarts under running pings: not one packet lost
stats1=$(c_peer_stats 1)
stats2=$(c_peer_stats 2)
idx1=$(c_ifindex 1)
idx2=$(c_ifindex 2)
# 10 pings a second until stopped; afterwards every icmp_seq from 1 to the
# last one answered must have been answered (a gap is a lost packet), and
# replies must have come after the restarts too (the ping spanned them).
# Only the few still in flight when ping is stopped, after the restarts,
# may be unanswered (at most 3, 300 ms: the emulated VM can be slow).
ping_start() { # tag src addr
	ip netns exec "$(t_ns "$2")" ping -n -i 0.1 "$3" >"$T_TMP/ping.$1" 2>&1 &
	local pid=$!
	T_PIDS+=("$pid")
	printf -v "PING_$1" '%s' "$pid"
	t_wait "ping $2 -> $3 answering" 10 grep -q 'bytes from' "$T_TMP/ping.$1"
}
ping_replies() { grep -c 'bytes from' "$T_TMP/ping.$1" || true; }
more_replies() { [ "$(ping_replies "$1")" -gt "$2" ]; } # tag count
ping_check() { # tag: stop it, then judge it
	local v=PING_$1 tx seqs last distinct
	kill -INT "${!v}" 2>/dev/null || true
	wait "${!v}" 2>/dev/null || true
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$T_TMP/ping.$1")
	seqs=$(grep -o 'icmp_seq=[0-9]*' "$T_TMP/ping.$1" | cut -d= -f2 | sort -n | uniq)
	last=$(tail -n 1 <<<"$seqs")
	distinct=$(grep -c . <<<"$seqs")
	t_log "ping $1: $tx sent, replies to $distinct distinct seqs, last $last"
	[ -n "$tx" ] && [ -n "$last" ] && [ "$distinct" = "$last" ] && [ $((tx - last)) -le 3 ]
}
ping_start x c1a "${C_ADDR[c2a]}"
ping_start s c1b "${C_ADDR[c1a]}"

pp kill -KILL "$(c_nm_pid 1)"
wait "$(c_nm_pid 1)" 2>/dev/null || true
t_fail "node manager 1 is gone" c_nm_ready 1
c_nm_start 1
c_nm_wait 1
c_nm_stop 2 TERM
t_fail "node manager 2 is gone" c_nm_ready 2
c_nm_start 2
c_nm_wait 2
t_ok "mesh converged after both restarts" t_wait "mesh" 20 c_converged
t_ok "the cross-node ping was still running after both restarts" kill -0 "$PING_x"
t_ok "the same-node ping was still running after both restarts" kill -0 "$PING_s"
for tag in x s; do
	n=$(ping_replies "$tag")
	t_ok "ping $tag: answered again after both restarts (so it spans them)" \
		t_wait "a reply after the restarts" 10 more_replies "$tag" "$n"
done
t_ok "cross-node ping c1a -> c2a: no packet lost across both restarts" ping_check x
t_ok "same-node ping c1b -> c1a: no packet lost across both restarts" ping_check s
t_eq "node 1: interface adopted, not recreated (ifindex)" "$idx1" "$(c_ifindex 1)"
t_eq "node 2: interface adopted, not recreated (ifindex)" "$idx2" "$(c_ifindex 2)"
t_ok "node 1: peers kept their counters and handshakes" c_stats_kept "$stats1" "$(c_peer_stats 1)"
t_ok "node 2: peers kept their counters and handshakes" c_stats_kept "$stats2" "$(c_peer_stats 2)"

c_leak_check
t_done

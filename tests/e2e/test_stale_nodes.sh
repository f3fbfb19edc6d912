#!/bin/bash
# Stale nodes end to end (--node-ttl): two nodes; healthy node
# managers (their long polls cut to half the ttl by the cluster manager)
# never turn stale; node manager 2 killed with -9: within the ttl plus one
# sync round node 1 has no peer for it, ListNodes says stale, the metric
# says 1, wgcnictl shows it; restarted, it has the same subnet and is a peer
# again (metric 0). Then with --delete-after: a dead node is deleted, its
# subnet freed, and node 1 drops it.
. "$(dirname "$0")/../lib_cluster.sh"

TTL=3
C_CM_FLAGS=(--node-ttl "${TTL}s")
c_cluster 2
c_need_ctl
key2=$(c_node_key 2)
subnet_of() { c_cm_rpc ListNodes '{}' | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .subnets | join(",")'; }
stale_of() { c_cm_rpc ListNodes '{}' | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .stale // false'; }
has_peer() { c_node_peers "$1" | grep -qx "$2"; }
no_peer() { ! has_peer "$@"; }
sub2=$(subnet_of node2)

# Healthy: over two ttls nothing turns stale (sampled all along).
never_stale() {
	local end=$(( $(c_now_ms) + TTL * 2000 ))
	while [ "$(c_now_ms)" -lt "$end" ]; do
		[ "$(c_cm_metric wgcni_stale_nodes)" = 0 ] || return 1
		sleep 0.2
	done
}
t_ok "healthy node managers never turn stale (two ttls)" never_stale
t_ok "node 1 has node 2 as a peer" has_peer 1 "$key2"

pp kill -KILL "$(c_nm_pid 2)"
wait "$(c_nm_pid 2)" 2>/dev/null || true
c_node_forget 2
t0=$(c_now_ms)
# The ttl, plus one sync round (a long poll waits at most half the ttl and
# counts as seen when it ends), plus slack for a loaded machine.
ROUND=$(( TTL * 3 / 2 + 4 ))
t_ok "within the ttl plus one round node 1 has no peer for node 2" \
	t_wait "node 1 drops node 2" "$ROUND" no_peer 1 "$key2"
t_log "node 1 dropped node 2 after $(( $(c_now_ms) - t0 )) ms (ttl ${TTL}s)"
t_eq "ListNodes: node2 stale, node1 not" "true false" "$(stale_of node2) $(stale_of node1)"
t_eq "wgcni_stale_nodes 1" 1 "$(c_cm_metric wgcni_stale_nodes)"
t_eq "its subnet is kept" "$sub2" "$(subnet_of node2)"
t_eq "ListPeers leaves it out" '[]' \
	"$(c_cm_rpc ListPeers '{"nodeName":"node1"}' | jq -c '[.peers[]?.name]')"
t_ok "node 1 is still converged (peers: the running nodes)" c_converged
out=$(c_ctl nodes)
t_ok "wgcnictl nodes: STALE column" grep -Eq '^NAME .* STALE +PUBLIC KEY$' <<<"$out"
t_ok "wgcnictl nodes: node2 stale" grep -Eq '^node2 .* ago +yes ' <<<"$out"
t_ok "wgcnictl nodes: node1 live" grep -Eq '^node1 .* ago +no ' <<<"$out"
t_eq "wgcnictl -o json nodes: stale" "true" \
	"$(c_ctl -o json nodes | jq -r '.nodes[] | select(.name == "node2") | .stale')"
t_ok "wgcnictl node node2: Stale: yes" grep -q '^Stale: *yes' <<<"$(c_ctl node node2)"

c_nm_start 2
C_NODES+=(2)
c_nm_wait 2
t_ok "restarted: a peer of node 1 again" t_wait "node 1 has node 2" 15 has_peer 1 "$key2"
t_ok "mesh converged" t_wait "mesh" 15 c_converged
t_eq "restarted: live, the same subnet" "false $sub2" "$(stale_of node2) $(subnet_of node2)"
t_eq "wgcni_stale_nodes 0" 0 "$(c_cm_metric wgcni_stale_nodes)"
t_ok "traffic between the nodes again" t_wait "handshake" 20 c_handshaken 1 2

# --- --delete-after: a dead node goes, with its subnet ------------------------
c_cm_stop
c_cm_start --delete-after 2s
t_ok "node managers back on the restarted cluster manager" t_wait "mesh" 20 c_converged
used=$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')
pp kill -KILL "$(c_nm_pid 2)"
wait "$(c_nm_pid 2)" 2>/dev/null || true
c_node_forget 2
gone() { ! c_cm_rpc ListNodes '{}' | jq -e '.nodes[] | select(.name == "node2")' >/dev/null; }
t_ok "node2 is deleted after ttl + delete-after" t_wait "node2 deleted" $(( TTL * 3 / 2 + 2 + 6 )) gone
t_eq "its subnet is free" "$((used - 1))" "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "no stale node left" 0 "$(c_cm_metric wgcni_stale_nodes)"
t_ok "node 1 has no peer for it" t_wait "node 1 converged" 10 c_converged

c_leak_check
t_done

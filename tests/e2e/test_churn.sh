#!/bin/bash
# A node joins and leaves while traffic flows. The other nodes add the new
# node as a peer within 2 s of it being ready and drop it within 2 s of
# DeleteNode; the tunnels that existed before are never disturbed: the
# running pings lose nothing, peer counters never go back, handshakes are
# not reset and the node interfaces are the same links throughout.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 3
for i in 1 2 3; do t_ok "ADD c${i}a on node $i" c_ctr_add "$i" "c${i}a"; done
t_eq "the 3 containers ping each other" "ok 6" \
	"$(c_ping_all c1a c2a c3a -- "${C_ADDR[c1a]}" "${C_ADDR[c2a]}" "${C_ADDR[c3a]}")"

c_ping_bg a c1a "${C_ADDR[c2a]}"
c_ping_bg b c2a "${C_ADDR[c3a]}"
c_ping_bg c c3a "${C_ADDR[c1a]}"
declare -A before idx
for i in 1 2 3; do
	before[$i]=$(c_peer_stats "$i")
	idx[$i]=$(c_ifindex "$i")
done

# --- join
c_host_add h4 14
c_nm_start 4
C_NODES+=(4)
c_nm_wait 4
t0=$(date +%s%N)
t_ok "nodes 1-4 converge after node 4 joins" t_wait "mesh with node 4" 10 c_converged
ms=$(c_ms_since "$t0")
t_log "join converged in ${ms} ms"
t_ok "join converged within 2 s (${ms} ms)" test "$ms" -le 2000
t_ok "ADD c4a on node 4" c_ctr_add 4 c4a
t_eq "c4a and the old containers reach each other" "ok 6" \
	"$(c_ping_all c4a c1a c3a -- "${C_ADDR[c4a]}" "${C_ADDR[c1a]}" "${C_ADDR[c3a]}")"

# --- leave: drain node 4 as an operator would, then DeleteNode
key4=$(c_node_key 4)
t_ok "DEL c4a" c_ctr_del c4a
unset 'C_NODE[c4a]'
c_nm_stop 4
t_ok "node 4: wgcni-node-manager cleanup" c_nm_cleanup 4
c_node_forget 4
has_key4() { local i; for i in 1 2 3; do c_node_peers "$i" | grep -qx "$key4" && return 0; done; return 1; }
t_ok "node 4 is still a peer before DeleteNode (the check below can fail)" has_key4
t0=$(date +%s%N)
t_ok "DeleteNode node4" c_cm_rpc DeleteNode '{"nodeName":"node4"}'
t_ok "nodes 1-3 drop node 4" t_wait "node 4 gone from every peer list" 10 c_converged
ms=$(c_ms_since "$t0")
t_log "leave converged in ${ms} ms"
t_ok "leave converged within 2 s (${ms} ms)" test "$ms" -le 2000
t_fail "node 4 is no peer anywhere" has_key4
t_eq "ListNodes no longer has node4" "" \
	"$(c_cm_rpc ListNodes '{}' | jq -r '.nodes[]?.name' | grep -x node4 || true)"

# --- nothing that existed before was disturbed
for i in 1 2 3; do
	t_ok "node $i: old peers kept their counters and handshakes" \
		c_stats_kept "${before[$i]}" "$(c_peer_stats "$i")"
	t_eq "node $i: interface never recreated (ifindex)" "${idx[$i]}" "$(c_ifindex "$i")"
done
t_ok "ping c1a -> c2a ran through it all (at most 1 lost)" c_ping_bg_ok a 1
t_ok "ping c2a -> c3a ran through it all (at most 1 lost)" c_ping_bg_ok b 1
t_ok "ping c3a -> c1a ran through it all (at most 1 lost)" c_ping_bg_ok c 1

c_leak_check
t_done

#!/bin/bash
# The cluster manager crashes (kill -9) and comes back. Meanwhile the nodes
# keep working: tunnels carry traffic, containers are added and deleted
# (a node owns its subnet). The restarted cluster manager has kept every
# node's subnet and key, and the node managers re-sync: a node that joins
# afterwards becomes a peer of the old ones, and they of it.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 2
t_ok "ADD c1a" c_ctr_add 1 c1a
t_ok "ADD c2a" c_ctr_add 2 c2a
nodes_before=$(c_cm_rpc ListNodes '{}' | jq -c '[.nodes[] | {name, subnets, publicKey, endpoint}] | sort_by(.name)')
c_ping_bg x c1a "${C_ADDR[c2a]}"

c_cm_stop KILL
t_fail "cluster manager is down" c_cm_healthy
t_ok "node 1 still answers GetNode" c_nm_rpc 1 GetNode '{}'
t_ok "ADD c1b while the cluster manager is down" c_ctr_add 1 c1b
t_ok "c1b reaches c2a across nodes meanwhile" c_ping c1b "${C_ADDR[c2a]}"
t_ok "DEL c1b while the cluster manager is down" c_ctr_del c1b
unset 'C_NODE[c1b]'
t_ok "cross-node ping c1a -> c2a (at most 1 lost)" c_ping_bg_ok x 1

c_cm_start
t_eq "nodes, subnets and keys survived the kill -9" "$nodes_before" \
	"$(c_cm_rpc ListNodes '{}' | jq -c '[.nodes[] | {name, subnets, publicKey, endpoint}] | sort_by(.name)')"
c_host_add h3 13
c_nm_start 3
C_NODES+=(3)
c_nm_wait 3
t_ok "old nodes re-synced: node 3 is their peer, they are node 3's" \
	t_wait "mesh with node 3" 30 c_converged
t_ok "ADD c3a" c_ctr_add 3 c3a
t_eq "c1a, c2a, c3a reach each other" "ok 6" \
	"$(c_ping_all c1a c2a c3a -- "${C_ADDR[c1a]}" "${C_ADDR[c2a]}" "${C_ADDR[c3a]}")"
t_eq "node 3's subnet is new" "" \
	"$(jq -r '.[].subnets[]' <<<"$nodes_before" | grep -xF "$(c_nm_rpc 3 GetNode '{}' | jq -r '.node.subnets[0]')" || true)"

# A clean restart (SIGTERM) as well, then node 3 leaves again.
c_cm_stop TERM
c_cm_start
t_ok "DEL c3a" c_ctr_del c3a
unset 'C_NODE[c3a]'
c_nm_stop 3
t_ok "node 3: wgcni-node-manager cleanup" c_nm_cleanup 3
c_node_forget 3
t_ok "DeleteNode node3 after a clean restart" c_cm_rpc DeleteNode '{"nodeName":"node3"}'
t_ok "nodes 1 and 2 drop node 3" t_wait "node 3 gone" 10 c_converged

c_leak_check
t_done

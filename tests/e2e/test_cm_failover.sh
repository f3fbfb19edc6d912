#!/bin/bash
# Cluster manager failover (SPEC §3): node managers and wgcnictl are given
# --cluster-manager URL1,URL2 and use the next URL when one is unreachable.
#
# Two cluster managers do not share state yet (no shared datastore), so the
# scenario is one cluster manager with one state directory moving between
# the two addresses of the list: the same state, the same revisions, as
# replicas sharing a datastore would have. At first URL1 ($C_UL.2, on the
# cluster manager's host but with nothing listening: refused) is dead and
# the nodes register and mesh through URL2 ($C_UL.1). Then the cluster
# manager stops and starts on URL1's address only: the nodes' long polls
# break, move to URL1 and continue from their revision (no full answer),
# and a node joining afterwards reaches them.
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_need_ctl
URL_A=http://$C_UL.2:$C_CM_PORT   # dead at first
URL_B=http://$C_UL.1:$C_CM_PORT   # the cluster manager at first
C_NM_FLAGS=(--cluster-manager "$URL_A,$URL_B")

c_cm_host
n cm ip addr add "$C_UL.2/24" dev eth0
c_cm_start
t_fail "nothing answers at $URL_A" nq cm curl -sf -m 2 -o /dev/null "$URL_A/healthz"
for i in 1 2; do
	c_node_host "$i"
	c_nm_start "$i"
	C_NODES+=("$i")
done
for i in 1 2; do c_nm_wait "$i"; done
t_ok "nodes 1 and 2 mesh through the second URL" t_wait "mesh" 30 c_converged
for i in 1 2; do
	t_ok "node $i logged the switch to $URL_B" \
		grep -q "cluster manager switched.*from=$URL_A to=$URL_B" "$(c_nm_log "$i")"
done
t_eq "GetNode lists both cluster managers" "[\"$URL_A\",\"$URL_B\"]" \
	"$(c_nm_rpc 1 GetNode '{}' | jq -c '.node.clusterManagers')"

# wgcnictl fails over the same way.
ctl() { nq "$(c_host 1)" "$C_CTL" --cluster-manager "$URL_A,$URL_B" \
	$([ "$C_AUTH" = token ] && echo --token-file "$C_TOKEN") "$@"; }
t_eq "wgcnictl nodes with a dead first URL" "node1 node2" \
	"$(ctl -o json nodes | jq -r '[.nodes[].name] | sort | join(" ")')"
out=$(ctl node nosuch 2>&1 || true)
t_ok "an unknown node is an answer, named at the URL that answered" \
	c_match "$out" "not found on the cluster manager at \`$URL_B'"
out=$(nq "$(c_host 1)" "$C_CTL" --cluster-manager "$URL_A,http://$C_UL.3:1" \
	$([ "$C_AUTH" = token ] && echo --token-file "$C_TOKEN") --timeout 5 nodes 2>&1 || true)
t_ok "all URLs dead: wgcnictl names them" c_match "$out" "cannot reach the cluster manager at \`$URL_A,http://$C_UL.3:1'"

# The cluster manager moves to the other address of the list.
t_ok "both nodes long-poll the cluster manager at $URL_B" \
	t_wait_eq "2 watchers" 20 2 c_cm_metric wgcni_watchers
for i in 1 2; do lines[$i]=$(wc -l <"$(c_nm_log "$i")"); done
c_cm_stop TERM
C_CM_ADDR=$C_UL.2
c_cm_start
t_fail "nothing answers at $URL_B now" nq cm curl -sf -m 2 -o /dev/null "$URL_B/healthz"
after() { tail -n +"$((lines[$1] + 1))" "$(c_nm_log "$1")"; }
switched() { after "$1" | grep -q "cluster manager switched.*from=$URL_B to=$URL_A"; }
for i in 1 2; do
	t_ok "node $i switched to $URL_A" t_wait "node $i switch" 40 switched "$i"
done
t_ok "both long polls moved to $URL_A" t_wait_eq "2 watchers" 20 2 c_cm_metric wgcni_watchers
t_ok "the moved nodes still mesh" c_converged

# A change after the move reaches the nodes, as a delta from their revision.
c_node_join 3
t_ok "node 3 (same list) meshes with nodes 1 and 2" t_wait "mesh with node 3" 30 c_converged
for i in 1 2; do
	t_ok "node $i got node 3 as a delta (full=false)" \
		c_match "$(after "$i" | grep 'node peers synced' || true)" "full=false"
	t_eq "node $i had no full resync after the move" "" \
		"$(after "$i" | grep 'node peers synced' | grep 'full=true' || true)"
done

c_leak_check
t_done

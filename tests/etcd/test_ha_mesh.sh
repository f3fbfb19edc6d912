#!/bin/bash
# Real node managers (wireguard-go) on two cluster managers sharing one
# 3-member etcd (--datastore etcd), every node given both
# (--cluster-manager URL1,URL2, SPEC §3): two nodes mesh and their
# containers ping; cluster manager 1 is killed (-9); the nodes move their
# long polls to manager 2 and keep meshing; a node that joins afterwards
# (the same list, its first URL dead) meshes with them and its container
# reaches theirs through the tunnels. Then manager 1 comes back, and a node
# joining through it alone reaches the nodes that stayed on manager 2.
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
c_need
c_need_driver
URLS=$(c_cmx_urls 1 2)
C_NM_FLAGS=(--cluster-manager "$URLS")

c_cm_host
c_etcd_start 3
c_cmx_start 1
c_cmx_start 2
for i in 1 2; do c_node_host "$i"; c_nm_start "$i"; C_NODES+=("$i"); done
for i in 1 2; do c_nm_wait "$i"; done
t_ok "nodes 1 and 2 mesh" t_wait "mesh" 30 c_converged
c_ctr_add 1 c1a
c_ctr_add 2 c2a
t_ok "c1a reaches c2a" c_ping c1a "${C_ADDR[c2a]}"

watchers() { nq cm curl -sf -m 5 "$(c_cmx_url "$1")/metrics" | awk '$1 == "wgcni_watchers" {print $2}'; }
t_ok "both nodes long-poll manager 1 (first in their list)" t_wait_eq "2 watchers on 1" 20 2 watchers 1
for i in 1 2; do lines[$i]=$(wc -l <"$(c_nm_log "$i")"); done
c_cmx_kill 1 KILL
t_fail "manager 1 is gone" c_cmx_healthy 1
after() { tail -n +"$((lines[$1] + 1))" "$(c_nm_log "$1")"; }
switched() { after "$1" | grep -q "cluster manager switched.*to=$(c_cmx_url 2)"; }
for i in 1 2; do
	t_ok "node $i switched to manager 2" t_wait "node $i switch" 40 switched "$i"
done
t_ok "both long polls on manager 2" t_wait_eq "2 watchers on 2" 20 2 watchers 2
t_ok "the nodes still mesh" c_converged
t_ok "c2a still reaches c1a" c_ping c2a "${C_ADDR[c1a]}"

c_node_join 3
t_ok "node 3 (manager 1 dead) meshes with nodes 1 and 2" t_wait "mesh with node 3" 30 c_converged
c_ctr_add 3 c3a
t_ok "c3a reaches c1a" c_ping c3a "${C_ADDR[c1a]}"
t_ok "c1a reaches c3a" c_ping c1a "${C_ADDR[c3a]}"
t_ok "c2a reaches c3a" c_ping c2a "${C_ADDR[c3a]}"
t_ok "etcd's contents are consistent" c_etcd_consistent

# Manager 1 back: node 4, given manager 1 alone, joins through it; the
# nodes watching manager 2 learn of it.
c_cmx_start 1
C_NODE_FLAGS[4]="--cluster-manager $(c_cmx_url 1)"
c_node_join 4
t_ok "node 4 (through manager 1 only) meshes with nodes 1-3 (on manager 2)" \
	t_wait "mesh with node 4" 30 c_converged
c_ctr_add 4 c4a
t_ok "c4a reaches c2a" c_ping c4a "${C_ADDR[c2a]}"
t_ok "c1a reaches c4a" c_ping c1a "${C_ADDR[c4a]}"

c_cmx_stop_all
c_leak_check
t_done

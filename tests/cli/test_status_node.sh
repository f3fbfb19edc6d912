#!/bin/bash
# `wgcnictl status` on a node without --cluster-manager checks the cluster
# managers that node manager uses (GetNode's clusterManagers), not the
# default http://127.0.0.1:8080 (nothing listens there in h1: the cluster
# manager is on 192.168.77.1, in its own namespace). An explicit
# --cluster-manager still wins, and may list several (comma separated):
# each is checked.
# Two nodes with the token; each node manager also serves its API on
# 127.0.0.1:5242 in its namespace.
C_NM_FLAGS=(--listen 127.0.0.1:5242)
. "$(dirname "$0")/../lib_cluster.sh"

c_need_ctl
c_cluster 2
t_wait "handshake between the nodes" 30 c_handshaken 1 2

# On node 1 as an operator would: the node manager's socket, the token, no
# --cluster-manager (nor WGCNI_CLUSTER_MANAGER).
on_node() { nq h1 env -u WGCNI_CLUSTER_MANAGER "$C_CTL" --node-manager "unix://$(c_sock 1)" \
	--token-file "$C_TOKEN" "$@"; }

t_eq "GetNode: clusterManagers are the node manager's --cluster-manager" "[\"$C_CM_URL\"]" \
	"$(c_nm_rpc 1 GetNode '{}' | jq -c .node.clusterManagers)"
t_fail "nothing answers the default URL in h1" nq h1 curl -sf -m 2 http://127.0.0.1:8080/healthz

c_run st on_node status
t_eq "status without --cluster-manager: exit 0 on a healthy node" 0 "$(c_rc st)"
t_ok "cluster manager ok: the node manager's" \
	grep -Eq "^cluster manager +ok +$C_CM_URL healthy" "$T_TMP/st.out"
t_ok "registered ok" grep -Eq "^registered +ok +node \`node1' registered" "$T_TMP/st.out"
t_eq "nothing on stderr" "" "$(cat "$T_TMP/st.err")"

c_run stj on_node -o json status
t_eq "-o json: ok" true "$(jq .ok "$T_TMP/stj.out")"
t_eq "-o json: every check ok" "ok ok ok ok ok" \
	"$(jq -r '[.checks[].state] | join(" ")' "$T_TMP/stj.out")"
t_eq "-o json: the cluster managers checked" "[{\"url\":\"$C_CM_URL\",\"healthy\":true}]" \
	"$(jq -c .clusterManagers "$T_TMP/stj.out")"

# An explicit --cluster-manager wins over the node manager's.
c_run stx on_node --cluster-manager http://127.0.0.1:1 status
t_eq "--cluster-manager given: exit 1 when it is down" 1 "$(c_rc stx)"
t_ok "--cluster-manager given: that one is checked" \
	grep -Eq "^cluster manager +FAIL +cannot reach the cluster manager at \`http://127.0.0.1:1'" "$T_TMP/stx.out"
t_ok "--cluster-manager given: registered skipped" grep -Eq "^registered +- " "$T_TMP/stx.out"
c_run stenv nq h1 env WGCNI_CLUSTER_MANAGER=http://127.0.0.1:1 "$C_CTL" \
	--node-manager "unix://$(c_sock 1)" --token-file "$C_TOKEN" status
t_eq "WGCNI_CLUSTER_MANAGER wins too" 1 "$(c_rc stenv)"

# A list: each is checked; one healthy is enough (a warning, exit 0).
c_run stl on_node --cluster-manager "http://127.0.0.1:1,$C_CM_URL" -o json status
t_eq "list: exit 0 with one of two healthy" 0 "$(c_rc stl)"
t_eq "list: both checked, in order" "http://127.0.0.1:1 false $C_CM_URL true" \
	"$(jq -r '[.clusterManagers[] | "\(.url) \(.healthy)"] | join(" ")' "$T_TMP/stl.out")"
t_eq "list: cluster manager warn" warn "$(jq -r '.checks["cluster manager"].state' "$T_TMP/stl.out")"
t_ok "list: detail counts 1/2 healthy" \
	jq -e '.checks["cluster manager"].detail | startswith("1/2 healthy: ")' "$T_TMP/stl.out" >/dev/null
t_eq "list: registered checked on the healthy one" ok \
	"$(jq -r '.checks.registered.state' "$T_TMP/stl.out")"

# Node manager down and no --cluster-manager: only the default is left.
c_run stdown nq h1 env -u WGCNI_CLUSTER_MANAGER "$C_CTL" \
	--node-manager "unix://$T_TMP/none.sock" status
t_eq "node manager down: exit 1" 1 "$(c_rc stdown)"
t_ok "node manager down: the default cluster manager URL is checked" \
	grep -Eq "^cluster manager +FAIL +.*\`http://127.0.0.1:8080'" "$T_TMP/stdown.out"

# Every run above used the ASan/UBSan build: none may have complained.
t_fail "no sanitizer reports from wgcnictl" grep -lE 'AddressSanitizer|LeakSanitizer|runtime error' "$T_TMP"/*.err

c_leak_check
t_done

#!/bin/bash
# `wgcni-node-manager plan' and drift repair. On a converged node plan has
# nothing to say (exit 0), also while the daemon runs. A running node
# manager puts back a node peer, a container peer and the cluster route
# removed by hand within its repair period. With the node manager stopped
# and a peer and the route removed by hand, plan exits 2, names both, and
# changes nothing (the peer is still absent afterwards); started, the node
# manager restores them and plan exits 0 again.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 2
t_ok "ADD c1a" c_ctr_add 1 c1a
t_ok "ADD c2a" c_ctr_add 2 c2a
t_ok "c1a -> c2a" c_ping c1a "${C_ADDR[c2a]}"

IF1=$(c_ifname 1)
# plan_out I: plan on node I with the daemon's flags; output in $T_TMP/plan.out,
# exit code printed.
plan_out() {
	local rc=0
	nq "h$1" "$C_NM_BIN" plan --cluster-manager "$C_CM_URL" --node-name "node$1" \
		--endpoint "$(c_endpoint "$1")" --interface "$(c_ifname "$1")" --listen-port 51820 \
		--socket "$(c_sock "$1")" --state-dir "$T_TMP/h$1/state" \
		--token-file "$C_TOKEN" --backend "$C_BACKEND" >"$T_TMP/plan.out" 2>"$T_TMP/plan.err" || rc=$?
	sed 's/^/#   plan: /' "$T_TMP/plan.out" >&2
	echo "$rc"
}
has_peer() { nq h1 wg show "$IF1" peers | grep -qxF "$1"; }
no_peer() { ! has_peer "$1"; }
has_route() { [ -n "$(nq h1 ip route show "$C_CIDR" dev "$IF1")" ]; }
K2=$(c_node_key 2)
KC=$(c_container_peers 1 | head -n 1)

t_eq "plan on a converged node, daemon running: exit 0" 0 "$(plan_out 1)"
t_ok "plan says nothing to change" grep -qx 'nothing to change' "$T_TMP/plan.out"

# --- drift while running ---------------------------------------------------
pp nq h1 wg set "$IF1" peer "$K2" remove
pp nq h1 wg set "$IF1" peer "$KC" remove
pp nq h1 ip route del "$C_CIDR" dev "$IF1"
t_ok "plan while running sees the drift: exit 2" test "$(plan_out 1)" = 2
t_ok "running: node peer restored within the repair period" t_wait "node peer back" 15 has_peer "$K2"
t_ok "running: container peer restored" t_wait "container peer back" 5 has_peer "$KC"
t_ok "running: cluster route restored" t_wait "route back" 5 has_route
t_ok "the log says what drift was repaired" grep -q 'drift repaired.*peer add' "$(c_nm_log 1)"
t_ok "c1a -> c2a after the repair" c_ping c1a "${C_ADDR[c2a]}"

# --- drift while stopped -----------------------------------------------------
c_nm_stop 1
pp nq h1 wg set "$IF1" peer "$K2" remove
pp nq h1 ip route del "$C_CIDR" dev "$IF1"
fw_before=$(c_fw_rules h1)
state_before=$(ls -A "$T_TMP/h1/state")
t_eq "plan with the node manager stopped: exit 2" 2 "$(plan_out 1)"
t_ok "plan names the removed node peer" grep -q "^peer add $K2 node=node2 " "$T_TMP/plan.out"
t_ok "plan names the removed route" grep -qx "route add $C_CIDR dev $IF1" "$T_TMP/plan.out"
t_eq "plan names only those two changes" 2 "$(grep -c . "$T_TMP/plan.out")"
t_ok "plan left the peer absent" no_peer "$K2"
t_ok "plan left the route absent" test -z "$(nq h1 ip route show "$C_CIDR" dev "$IF1")"
t_eq "plan left the firewall as it was" "$fw_before" "$(c_fw_rules h1)"
t_eq "plan left the state directory as it was ($state_before)" "$state_before" "$(ls -A "$T_TMP/h1/state")"
t_ok "plan registered nothing (the cluster still has node 1's key)" \
	test "$(c_cm_rpc ListNodes '{}' | jq -r '.nodes[] | select(.name == "node1") | .publicKey')" = "$(c_node_key 1)"

c_nm_start 1
c_nm_wait 1
t_ok "started: the node peer is restored" t_wait "node peer back" 10 has_peer "$K2"
t_ok "started: the route is restored" t_wait "route back" 10 has_route
t_eq "plan after the start: exit 0" 0 "$(plan_out 1)"
t_ok "c1a -> c2a after the start" c_ping c1a "${C_ADDR[c2a]}"

# --- a node that never ran -------------------------------------------------
rc=0
nq h2 "$C_NM_BIN" plan --cluster-manager "$C_CM_URL" --node-name node9 \
	--endpoint "$C_UL.99:51820" --interface "w$$n9" --state-dir "$T_TMP/h9/state" \
	--socket "$T_TMP/h9/nm.sock" --token-file "$C_TOKEN" --backend "$C_BACKEND" \
	>"$T_TMP/plan9.out" 2>&1 || rc=$?
sed 's/^/#   plan node9: /' "$T_TMP/plan9.out" >&2
t_eq "plan for an unknown node: exit 2" 2 "$rc"
t_ok "plan says it would register the node" grep -q '^cluster: register node node9' "$T_TMP/plan9.out"
t_ok "plan created no state directory" test ! -e "$T_TMP/h9"
t_eq "plan registered no node" "" "$(c_cm_rpc ListNodes '{}' | jq -r '.nodes[] | select(.name == "node9") | .name')"

c_leak_check
t_done

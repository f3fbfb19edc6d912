#!/bin/bash
# The cluster manager goes away: a node manager with a stored subnet comes up
# at once with its last known peers (tunnels keep working), counts sync
# errors and catches up when the cluster manager is back. Without a stored
# subnet it waits; SIGHUP re-reads a changed token file.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nm_lib.sh"

nm_need "$NM_BIN" "$CM_BIN"
nm_underlay
nm_node_ns n1 1
nm_node_ns n2 2
nm_node_ns n3 3
echo good-token >"$T_TMP/cm.token"
echo good-token >"$T_TMP/n.token"
nm_cm_start --token-file "$T_TMP/cm.token"
nm_start n1 1 --token-file "$T_TMP/n.token"
nm_start n2 2 --token-file "$T_TMP/n.token"
nm_wait_ready n1
nm_wait_ready n2
IF1=$(nm_if 1) IF2=$(nm_if 2)
KEY2=$(nm_call n2 GetNode '{}' | jq -r .node.publicKey)
A2=$(nm_call n2 GetNode '{}' | jq -r .node.address); A2=${A2%/*}
t_wait "n1 peers with n2" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY2'"

errors() { nm_metrics n1 | awk '$1=="wgcni_sync_errors_total"{print $2}'; }
t_eq "no sync errors while the cluster manager is up" 0 "$(errors)"

# --- cluster manager down, n1 restarted (kill -9)
t_stop_pid "$T_PID_cm"
pid=$(nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
nm_start n1 1 --token-file "$T_TMP/n.token"
t_ok "n1 ready within 10 s with the cluster manager down" t_wait "n1 ready" 10 nm_healthy n1
t_eq "n1 kept n2 as its peer" "$KEY2" "$(wg show "$IF1" peers)"
t_ok "n1 pings n2 through the tunnel" n n1 ping -c 3 -W 2 -i 0.2 "$A2"
t_ok "sync errors counted" t_wait "sync errors > 0" 10 bash -c \
	"[ \"\$(curl -sf --unix-socket $(nm_sock n1) http://nm/metrics | awk '\$1==\"wgcni_sync_errors_total\"{print \$2}')\" -gt 0 ]"
nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0"}' >/dev/null
t_eq "AllocateIP works while the cluster manager is down" 200 "$(t_http)"

# --- the cluster manager returns; a new node reaches n1
nm_cm_start --token-file "$T_TMP/cm.token"
nm_start n3 3 --token-file "$T_TMP/n.token"
nm_wait_ready n3
KEY3=$(nm_call n3 GetNode '{}' | jq -r .node.publicKey)
t_ok "n1 picks up n3 after the cluster manager is back" \
	t_wait "n3 on n1" 40 bash -c "wg show $IF1 peers | grep -qx '$KEY3'"
t_ok "n1 still has n2" bash -c "wg show $IF1 peers | grep -qx '$KEY2'"

# --- no stored subnet + wrong token: waits; SIGHUP after fixing the file
echo wrong-token >"$T_TMP/n4.token"
t_netns_add n4
n cm ip link add u4 type veth peer name eth0 netns "$(t_ns n4)"
n cm ip link set u4 master br0 up
n n4 ip addr add 192.168.77.14/24 dev eth0
n n4 ip link set eth0 up
nm_start n4 4 --token-file "$T_TMP/n4.token"
t_wait "n4 refused by the cluster manager" 10 grep -q 'AllocateSubnet failed.*unauthenticated' "$T_TMP/nm-n4.log"
t_fail "n4 not ready with a wrong token" nm_healthy n4
echo good-token >"$T_TMP/n4.token"
kill -HUP "$(nm_pid n4)"
t_ok "after SIGHUP with the right token n4 becomes ready" t_wait "n4 ready" 40 nm_healthy n4
KEY4=$(nm_call n4 GetNode '{}' | jq -r .node.publicKey)
t_ok "n1 gets n4 as a peer" t_wait "n4 on n1" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY4'"

for nd in n1 n2 n3 n4; do
	pid=$(nm_pid $nd); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
	t_eq "$nd exits 0 on SIGTERM" 0 "$rc"
done
t_done

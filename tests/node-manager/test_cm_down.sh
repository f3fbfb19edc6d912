#!/bin/bash
# The cluster manager goes away: a node manager with a stored subnet comes up
# at once with its last known peers (tunnels keep working), counts sync
# errors and catches up when the cluster manager is back. Without a stored
# subnet it waits; SIGHUP re-reads a changed token file.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 3
echo good-token >"$T_TMP/cm.token"
echo good-token >"$T_TMP/n.token"
c_cm_start --token-file "$T_TMP/cm.token"
c_nm_start n1 --token-file "$T_TMP/n.token"
c_nm_start n2 --token-file "$T_TMP/n.token"
c_nm_wait_healthy n1
c_nm_wait_healthy n2
IF1=$(c_ifname 1) IF2=$(c_ifname 2)
KEY2=$(c_nm_call n2 GetNode '{}' | jq -r .node.publicKey)
A2=$(c_nm_call n2 GetNode '{}' | jq -r .node.address); A2=${A2%/*}
t_wait "n1 peers with n2" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY2'"

errors() { c_nm_metrics n1 | awk '$1=="wgcni_sync_errors_total"{print $2}'; }
t_eq "no sync errors while the cluster manager is up" 0 "$(errors)"

# --- cluster manager down, n1 restarted (kill -9)
t_stop_pid "$T_PID_cm"
pid=$(c_nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
c_nm_start n1 --token-file "$T_TMP/n.token"
t_ok "n1 ready within 10 s with the cluster manager down" t_wait "n1 ready" 10 c_nm_healthy n1
t_eq "n1 kept n2 as its peer" "$KEY2" "$(wg show "$IF1" peers)"
t_ok "n1 pings n2 through the tunnel" n n1 ping -c 3 -W 2 -i 0.2 "$A2"
t_ok "sync errors counted" t_wait "sync errors > 0" 10 bash -c \
	"[ \"\$(curl -sf --unix-socket $(c_sock n1) http://nm/metrics | awk '\$1==\"wgcni_sync_errors_total\"{print \$2}')\" -gt 0 ]"
c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0"}' >/dev/null
t_eq "AllocateIP works while the cluster manager is down" 200 "$(t_http)"

# --- the cluster manager returns; a new node reaches n1
c_cm_start --token-file "$T_TMP/cm.token"
c_nm_start n3 --token-file "$T_TMP/n.token"
c_nm_wait_healthy n3
KEY3=$(c_nm_call n3 GetNode '{}' | jq -r .node.publicKey)
t_ok "n1 picks up n3 after the cluster manager is back" \
	t_wait "n3 on n1" 40 bash -c "wg show $IF1 peers | grep -qx '$KEY3'"
t_ok "n1 still has n2" bash -c "wg show $IF1 peers | grep -qx '$KEY2'"

# --- no stored subnet + wrong token: waits; SIGHUP after fixing the file
echo wrong-token >"$T_TMP/n4.token"
c_node_host 4
c_nm_start n4 --token-file "$T_TMP/n4.token"
t_wait "n4 refused by the cluster manager" 10 grep -q 'AllocateSubnet failed.*unauthenticated' "$(c_nm_log n4)"
t_fail "n4 not ready with a wrong token" c_nm_healthy n4
echo good-token >"$T_TMP/n4.token"
kill -HUP "$(c_nm_pid n4)"
t_ok "after SIGHUP with the right token n4 becomes ready" t_wait "n4 ready" 40 c_nm_healthy n4
KEY4=$(c_nm_call n4 GetNode '{}' | jq -r .node.publicKey)
t_ok "n1 gets n4 as a peer" t_wait "n4 on n1" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY4'"

for nd in n1 n2 n3 n4; do
	pid=$(c_nm_pid $nd); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
	t_eq "$nd exits 0 on SIGTERM" 0 "$rc"
done
c_leak_check
t_done

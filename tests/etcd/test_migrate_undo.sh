#!/bin/bash
# migrate copies a cluster in several transactions and, when one fails,
# removes what the earlier ones wrote. A dual-stack SQLite cluster of 70
# nodes (4 operations a node: record, two claims, lastSeen) is 3
# transactions: 31 nodes with P/config (125 operations), 32 nodes (128),
# 7 nodes. etcd started with --max-txn-ops 127 takes the first and refuses
# the second: migrate fails (exit 1), says the copy was removed again, and
# etcd holds nothing under the prefix. Into an etcd with the default limit
# (128) the same cluster is copied whole and consistent.
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
c_need
C_CM_ADDR=127.0.0.1
C_ETCD_NS=cm
C_CIDR6=fd10:100::/48
MIG_BIN=$T_SANBIN/wgcni-cluster-manager
[ -x "$MIG_BIN" ] || { t_log "missing $MIG_BIN: make sanitized"; exit 1; }

c_cm_host
c_cm_start
for i in $(seq 1 70); do echo "{\"nodeName\":\"n$i\"}"; done >"$T_TMP/bodies"
t_eq "70 dual-stack allocations" "$(printf '200\n%.0s' $(seq 1 70))" \
	"$(c_cm_parallel AllocateSubnet "$T_TMP/bodies")"
c_cm_stop TERM

migrate() {
	local rc=0
	nq cm "$MIG_BIN" migrate --from sqlite --state-dir "$C_CM_STATE" --to etcd \
		--etcd-endpoints "$C_ETCD_ENDPOINTS" --cluster-cidr "$C_CIDR,$C_CIDR6" \
		>"$T_TMP/mig.out" 2>"$T_TMP/mig.err" || rc=$?
	echo "$rc"
}

c_etcd_start 1 --max-txn-ops 127
t_eq "migrate into etcd --max-txn-ops 127: exit 1 (the second transaction refused)" 1 "$(migrate)"
cat "$T_TMP/mig.err" >&2
t_ok "  says what was written is removed again" grep -q "max-txn-ops.*what was written is removed again" "$T_TMP/mig.err"
t_eq "  etcd holds nothing under /wgcni/" 0 "$(c_etcd_count /wgcni/)"
t_ok "  though it wrote and deleted (the first transaction went through)" \
	test "$(c_etcd_revision)" -ge 3
c_etcd_stop

c_etcd_start 1
t_eq "migrate into etcd with the default limit: exit 0" 0 "$(migrate)"
t_ok "  70 nodes, 70 IPv4 and 70 IPv6 subnets, in 3 transactions" \
	grep -q "migrated 70 node(s), 70 IPv4 and 70 IPv6 subnet(s) .* in 3 transaction(s)" "$T_TMP/mig.out"
t_ok "  consistent" c_etcd_consistent
t_eq "  140 claims" 140 "$(c_etcd_count /wgcni/subnets/)"
t_eq "  n7 has an IPv4 and an IPv6 subnet" 2 \
	"$(c_etcdctl get /wgcni/nodes/n7 --print-value-only | jq '.subnets | length')"

c_leak_check
t_done

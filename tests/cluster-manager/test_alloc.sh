#!/bin/bash
# Subnet allocation: distinct subnets inside the CIDR, the same answer for the
# same node, across SIGTERM and kill -9 restarts, no subnet twice, and the
# exact operator curl from the issue.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
c_cm_start --cluster-cidr 10.100.0.0/16

# The operator's curl, verbatim.
out=$(nq cm curl -s -H 'Content-Type: application/json' -d '{"nodeName":"n1"}' http://127.0.0.1:8080/wgcni.cluster.v1.ClusterService/AllocateSubnet)
t_log "operator curl: $out"
t_eq "operator curl: n1 gets a /24 of 10.100.0.0/16" 1 \
	"$(jq -r '[.subnets[] | select(test("^10\\.100\\.[0-9]+\\.0/24$"))] | length' <<<"$out")"
t_eq "operator curl: clusterCidrs" '["10.100.0.0/16"]' "$(jq -c .clusterCidrs <<<"$out")"

a1=$(c_cm_json AllocateSubnet '{"nodeName":"n1"}')
a2=$(c_cm_json AllocateSubnet '{"nodeName":"n2"}')
s1=$(jq -r '.subnets[0]' <<<"$a1")
s2=$(jq -r '.subnets[0]' <<<"$a2")
t_eq "n1 again: same answer" "$out" "$a1"
t_ok "n1 and n2 get different subnets ($s1, $s2)" test "$s1" != "$s2"
t_ok "n2's subnet is a /24 inside 10.100.0.0/16" c_match "$s2" '^10\.100\.[0-9]+\.0/24$'
t_eq "n2 again: same answer" "$a2" "$(c_cm_json AllocateSubnet '{"nodeName":"n2"}')"
t_eq "lowest free first: n1 gets 10.100.0.0/24" 10.100.0.0/24 "$s1"

# Node.address is the first host address with the subnet's prefix.
nodes=$(c_cm_json ListNodes '{}')
t_eq "ListNodes lists both, sorted" "n1 n2" "$(jq -r '[.nodes[].name] | join(" ")' <<<"$nodes")"
t_eq "n1 address" "10.100.0.1/24" "$(jq -r '.nodes[0].address' <<<"$nodes")"
t_ok "n1 lastSeen is RFC 3339" c_match "$(jq -r '.nodes[0].lastSeen' <<<"$nodes")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

# A second manager on the same state directory refuses to start.
set +e
timeout 10 ip netns exec "$(t_ns cm)" "$C_CM_BIN" --listen 127.0.0.1:8081 --state-dir "$C_CM_STATE" \
	--cluster-cidr 10.100.0.0/16 2>"$T_TMP/second.err"
rc=$?
set -e
t_eq "second manager on the same state: exit 1" 1 "$rc"
t_ok "second manager says the state is in use" grep -q 'in use by another cluster manager' "$T_TMP/second.err"
t_eq "first manager unaffected" "$a1" "$(c_cm_json AllocateSubnet '{"nodeName":"n1"}')"

# Clean restart.
c_cm_stop TERM
t_eq "SIGTERM: exit 0 (ASan: no leaks)" 0 "$C_CM_RC"
t_ok "shutdown logged" grep -q 'msg="shutting down"' "$C_CM_LOG"
c_cm_start --cluster-cidr 10.100.0.0/16
t_eq "after restart: n1 same answer" "$a1" "$(c_cm_json AllocateSubnet '{"nodeName":"n1"}')"
t_eq "after restart: n2 same answer" "$a2" "$(c_cm_json AllocateSubnet '{"nodeName":"n2"}')"

# Allocate, then crash right after the answer.
a3=$(c_cm_json AllocateSubnet '{"nodeName":"n3"}')
s3=$(jq -r '.subnets[0]' <<<"$a3")
c_cm_stop KILL
c_cm_start --cluster-cidr 10.100.0.0/16
t_eq "after kill -9: n3 same answer" "$a3" "$(c_cm_json AllocateSubnet '{"nodeName":"n3"}')"
t_eq "after kill -9: n1 same answer" "$a1" "$(c_cm_json AllocateSubnet '{"nodeName":"n1"}')"
a4=$(c_cm_json AllocateSubnet '{"nodeName":"n4"}')
s4=$(jq -r '.subnets[0]' <<<"$a4")
t_log "subnets: n1=$s1 n2=$s2 n3=$s3 n4=$s4"
t_eq "no subnet twice among 4 nodes across restarts" 4 \
	"$(printf '%s\n' "$s1" "$s2" "$s3" "$s4" | sort -u | wc -l)"
t_ok "n4 gets a fresh subnet inside the CIDR" c_match "$s4" '^10\.100\.[0-9]+\.0/24$'

# The database agrees: one row per subnet, primary key on the CIDR.
if command -v sqlite3 >/dev/null; then
	t_eq "subnets table holds 4 distinct CIDRs" 4 \
		"$(sqlite3 "$C_CM_STATE/cluster.db" 'SELECT COUNT(DISTINCT cidr) FROM subnets')"
fi

# 40 concurrent new nodes plus 10 concurrent calls for one name.
pids=()
for i in $(seq 1 40); do
	nq cm curl -sS -m 20 -H 'Content-Type: application/json' -d "{\"nodeName\":\"p$i\"}" \
		"$C_CM_URL/$C_CM_SVC/AllocateSubnet" >"$T_TMP/par.$i" &
	pids+=($!)
done
for i in $(seq 1 10); do
	nq cm curl -sS -m 20 -H 'Content-Type: application/json' -d '{"nodeName":"same"}' \
		"$C_CM_URL/$C_CM_SVC/AllocateSubnet" >"$T_TMP/same.$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t_eq "concurrent: 40 new nodes, 40 distinct subnets" 40 \
	"$(cat "$T_TMP"/par.* | jq -r '.subnets[0]' | grep '^10\.100\.' | sort -u | wc -l)"
t_eq "concurrent: no subnet twice among all nodes" "$(c_cm_json ListNodes '{}' | jq '.nodes | length')" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[].subnets[0]' | sort -u | wc -l)"
t_eq "concurrent: one name, one answer" 1 "$(cat "$T_TMP"/same.* | sort -u | wc -l)"

# Restart with a different CIDR: old subnets are kept (with a warning).
c_cm_stop TERM
c_cm_start --cluster-cidr 10.200.0.0/16
t_eq "CIDR changed: n1 keeps its subnet" "$s1" \
	"$(c_cm_json AllocateSubnet '{"nodeName":"n1"}' | jq -r '.subnets[0]')"
t_ok "CIDR changed: a warning names the kept subnet" \
	grep -q "outside the cluster CIDRs.*subnet=$s1" "$C_CM_LOG"
t_eq "CIDR changed: a new node gets a subnet of the new CIDR" 10.200.0.0/24 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"n5"}' | jq -r '.subnets[0]')"
c_cm_stop TERM
t_eq "final SIGTERM: exit 0" 0 "$C_CM_RC"

c_leak_check
t_done

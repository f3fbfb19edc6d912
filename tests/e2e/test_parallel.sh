#!/bin/bash
# 30 ADDs at once on one node, as a runtime starting a deployment would:
# 30 distinct addresses, 30 container peers, every container reachable from
# another node; then 30 DELs at once leave nothing behind. Then GC through
# libcni's plugin protocol releases what is not listed as valid.
. "$(dirname "$0")/../lib_cluster.sh"

N=30
c_cluster 2
t_ok "ADD c2a" c_ctr_add 2 c2a
P=()
for k in $(seq -w 1 $N); do
	c_ctr_new 1 "p$k"
	P+=("p$k")
done
pids=()
t0=$(date +%s%N)
for c in "${P[@]}"; do
	( c_cni add 1 "$c" >"$T_TMP/result-$c.json" 2>"$T_TMP/add-$c.err"; echo $? >"$T_TMP/add-$c.rc" ) &
	pids+=($!)
done
wait "${pids[@]}"
t_log "$N parallel ADDs took $(c_ms_since "$t0") ms"
ok=0
for c in "${P[@]}"; do
	if [ "$(cat "$T_TMP/add-$c.rc")" = 0 ]; then
		ok=$((ok + 1))
		C_ADDR[$c]=$(jq -r '.ips[0].address' "$T_TMP/result-$c.json" | cut -d/ -f1)
		C_CTRS+=("$c")
	else
		t_log "ADD $c: $(cat "$T_TMP/add-$c.err")"
	fi
done
c_scan_wg
t_eq "$N parallel ADDs succeeded" $N $ok
addrs=()
for c in "${P[@]}"; do addrs+=("${C_ADDR[$c]:-none}"); done
t_eq "$N distinct addresses" $N "$(printf '%s\n' "${addrs[@]}" | grep -v none | sort -u | grep -c .)"
t_eq "$N allocations on node 1" $N "$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations // [] | length')"
t_eq "$N container peers on node 1" $N "$(c_container_peers 1 | grep -c . || true)"
t_eq "all $N reachable from c2a on node 2" "ok $N" "$(c_ping_all c2a -- "${addrs[@]}")"
t_eq "same node: p01 reaches p$N" "ok 1" \
	"$(c_ping_all p01 -- "${C_ADDR[p$N]}")"

pids=()
t0=$(date +%s%N)
for c in "${P[@]}"; do
	( c_cni del 1 "$c" >/dev/null 2>"$T_TMP/del-$c.err"; echo $? >"$T_TMP/del-$c.rc" ) &
	pids+=($!)
done
wait "${pids[@]}"
t_log "$N parallel DELs took $(c_ms_since "$t0") ms"
ok=0
for c in "${P[@]}"; do
	if [ "$(cat "$T_TMP/del-$c.rc")" = 0 ]; then ok=$((ok + 1)); else t_log "DEL $c: $(cat "$T_TMP/del-$c.err")"; fi
done
t_eq "$N parallel DELs succeeded" $N $ok
C_CTRS=(c2a)
for c in "${P[@]}"; do unset "C_NODE[$c]"; done
t_eq "no allocation left on node 1" 0 "$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations // [] | length')"
t_eq "no container peer left on node 1" "" "$(c_container_peers 1 | xargs)"
left=0
for c in "${P[@]}"; do [ "$(c_links "$c")" = lo ] || left=$((left + 1)); done
t_eq "no interface left in the $N container namespaces" 0 $left

# GC as a 1.1.0 runtime sends it: only g1 is still valid; g2 and g3 lose
# their allocations, and a later DEL still removes their interfaces.
for c in g1 g2 g3; do t_ok "ADD $c" c_ctr_add 1 "$c"; done
t_ok "CNI GC keeping only g1" c_cni_net gc 1 "${C_ID[g1]}/eth0"
t_eq "after GC node 1 holds only g1's allocation" "${C_ID[g1]}" \
	"$(c_nm_rpc 1 ListAllocations '{}' | jq -r '.allocations[]?.containerId' | xargs)"
t_ok "g1 still reaches c2a after GC" c_ping g1 "${C_ADDR[c2a]}"

c_leak_check
t_done

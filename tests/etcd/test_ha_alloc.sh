#!/bin/bash
# Several cluster managers on one etcd (SPEC §2, --datastore etcd): a
# 3-member etcd and three cluster managers on loopback in one namespace.
# 120 AllocateSubnet calls at once, spread over the three, get 120 distinct
# subnets; each node asked again through another manager gets the same one;
# every manager lists the same 120; etcd's contents hold together (every
# claim in its node's record and back). A change through one manager wakes
# a WatchPeers long poll waiting on another within 1 s (measured 5 times).
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
c_need
C_CM_ADDR=127.0.0.1
C_ETCD_NS=cm
N=${HA_ALLOC_N:-120}

c_cm_host
c_etcd_start 3
for k in 1 2 3; do c_cmx_start "$k"; done

# 120 at once, node n<i> through manager 1 + i % 3.
for i in $(seq 1 "$N"); do echo "$((1 + i % 3)) {\"nodeName\":\"n$i\"}"; done >"$T_TMP/alloc1"
start=$(date +%s%N)
c_cmx_parallel AllocateSubnet "$T_TMP/alloc1" >"$T_TMP/codes1"
t_log "$N concurrent AllocateSubnet over 3 managers: $(( ($(date +%s%N) - start) / 1000000 )) ms"
t_eq "$N answers 200" "$N" "$(awk '$2 == 200' "$T_TMP/codes1" | wc -l)"
for i in $(awk '$2 != 200 {print $1}' "$T_TMP/codes1"); do
	t_log "n$i through manager $((1 + i % 3)): HTTP $(awk -v n="$i" '$1 == n {print $2}' "$T_TMP/codes1"): $(cat "$T_TMP/par/$i.json")"
done
subnets() { local i; for i in $(seq 1 "$N"); do echo "n$i $(jq -r '.subnets | join(",")' "$T_TMP/par/$i.json" 2>/dev/null)"; done; }
subnets >"$T_TMP/subnets1"
t_eq "$N distinct subnets" "$N" "$(awk '$2 != "" {print $2}' "$T_TMP/subnets1" | sort -u | wc -l)"
t_eq "every one a /24 of 10.100.0.0/16" "$N" "$(grep -cE ' 10\.100\.[0-9]+\.0/24$' "$T_TMP/subnets1")"

# The same nodes again, each through another manager, again all at once.
for i in $(seq 1 "$N"); do echo "$((1 + (i + 1) % 3)) {\"nodeName\":\"n$i\"}"; done >"$T_TMP/alloc2"
c_cmx_parallel AllocateSubnet "$T_TMP/alloc2" >"$T_TMP/codes2"
t_eq "$N answers 200 the second time" "$N" "$(awk '$2 == 200' "$T_TMP/codes2" | wc -l)"
subnets >"$T_TMP/subnets2"
t_eq "every node got the same subnet through another manager" "" \
	"$(diff "$T_TMP/subnets1" "$T_TMP/subnets2" | head -n 5)"
t_ok "etcd's contents are consistent" c_etcd_consistent
t_eq "etcd holds $N node records" "$N" "$(c_etcd_count /wgcni/nodes/)"
t_eq "and $N subnet claims" "$N" "$(c_etcd_count /wgcni/subnets/)"

listed() { c_cmx_json "$1" ListNodes '{}' | jq -r '[.nodes[] | "\(.name) \(.subnets | join(","))"] | sort | join(";")'; }
want=$(sort "$T_TMP/subnets1" | paste -sd';')
for k in 1 2 3; do
	t_ok "manager $k lists the same $N nodes and subnets" t_wait_eq "manager $k list" 5 "$want" listed "$k"
done

# Wake-up across managers: w0 waits on manager 2, w1..w5 (allocated
# beforehand, so only their keys change) register through manager 1.
key() { c_pubkey; }
register() { # K NAME
	c_cmx_json "$1" RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(key)\",\"endpoint\":\"192.0.2.$((RANDOM % 250 + 1)):51820\"}" >/dev/null
}
for j in 0 1 2 3 4 5; do c_cmx_json 1 AllocateSubnet "{\"nodeName\":\"w$j\"}" >/dev/null; done
t_ok "w0 registered through manager 2" register 2 w0
has_w5() { c_cmx_json 2 ListNodes '{}' | jq -e '[.nodes[].name] | index("w5")' >/dev/null; }
t_ok "manager 2 has seen the allocations" t_wait "w5 on manager 2" 5 has_w5
rev=$(c_cmx_json 2 WatchPeers '{"nodeName":"w0"}' | jq -r '.revision')
t_ok "WatchPeers answers a revision" c_match "$rev" '^[0-9]+$'
watchers() { nq cm curl -sf -m 5 "$(c_cmx_url 2)/metrics" | awk '$1 == "wgcni_watchers" {print $2}'; }
auth=$(c_auth_h)
settled() {
	local out
	out=$(c_cmx_json 2 WatchPeers "{\"nodeName\":\"w0\",\"sinceRevision\":\"$rev\",\"waitSeconds\":0}") || return 1
	[ "$(jq '.peers // [] | length' <<<"$out")" = 0 ] && return 0
	rev=$(jq -r .revision <<<"$out")
	return 1
}
lat=()
for j in 1 2 3 4 5; do
	rm -f "$T_TMP/poll.done"
	( nq cm curl -sS -m 30 -H 'Content-Type: application/json' ${auth:+-H "$auth"} \
		-d "{\"nodeName\":\"w0\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" \
		"$(c_cmx_url 2)/$C_CM_SVC/WatchPeers" >"$T_TMP/poll.json" 2>"$T_TMP/poll.err"
	  date +%s%N >"$T_TMP/poll.done" ) &
	poll=$!
	t_ok "poll $j waits on manager 2" t_wait_eq "a watcher on manager 2" 10 1 watchers
	t0=$(date +%s%N)
	t_ok "w$j registered through manager 1" register 1 "w$j"
	t_ok "poll $j answered" t_wait "poll $j" 25 test -s "$T_TMP/poll.done"
	wait "$poll" || true
	ms=$(( ($(cat "$T_TMP/poll.done") - t0) / 1000000 ))
	lat+=("$ms")
	t_ok "poll $j answered within 1 s of the change (${ms} ms)" test "$ms" -lt 1000
	t_eq "poll $j brings w$j" "w$j" \
		"$(jq -r --arg n "w$j" '[.peers[]?.name | select(. == $n)] | join(",")' "$T_TMP/poll.json")"
	rev=$(jq -r '.revision' "$T_TMP/poll.json")
	# RegisterKey on etcd may be more than one revision (the key, then the
	# gateway settings): catch up before the next poll.
	t_ok "poll $j: manager 2 settles" t_wait "no change after $rev" 5 settled
done
t_log "cross-manager wake-up latency (ms): ${lat[*]}"

c_cmx_stop_all
c_leak_check
t_done

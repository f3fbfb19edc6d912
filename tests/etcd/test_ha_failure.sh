#!/bin/bash
# Failures under several cluster managers on one etcd (SPEC §2: losing a
# minority of etcd members or any cluster manager loses nothing and stops
# nothing). Three etcd members and three cluster managers on loopback:
#  - kill -9 of a cluster manager: the other two answer every call
#    (allocate, register, list, watch, delete); restarted, it has the state,
#    changes made while it was down included;
#  - kill -9 of one etcd member: allocation and watching go on;
#  - two members gone: writes fail with the Connect code `unavailable`, and
#    nothing is half-written (every node record's subnets claimed for it,
#    every claim in its node's record);
#  - the members back: everything works again, every manager agrees.
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
c_need
C_CM_ADDR=127.0.0.1
C_ETCD_NS=cm

c_cm_host
c_etcd_start 3
for k in 1 2 3; do c_cmx_start "$k"; done

register() { # K NAME: allocate (again: the same subnet) and register a fresh key
	c_cmx_json "$1" AllocateSubnet "{\"nodeName\":\"$2\"}" >/dev/null &&
	c_cmx_json "$1" RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"192.0.2.$((RANDOM % 250 + 1)):51820\"}" >/dev/null
}
listed() { c_cmx_json "$1" ListNodes '{}' | jq -r '[.nodes[] | "\(.name) \(.subnets | join(",")) \(.publicKey // "")"] | sort | join(";")'; }
agree() { # every running manager lists what manager $1 lists
	local want k; want=$(listed "$1") || return 1
	for k in 1 2 3; do c_cmx_alive "$k" || continue; [ "$(listed "$k")" = "$want" ] || return 1; done
}
# watch_wakes WAITK CHANGEK NAME: a long poll on manager WAITK (for node
# watcher) is answered with NAME after NAME registers through CHANGEK.
watch_wakes() {
	local wk=$1 ck=$2 name=$3 rev auth pid
	# Allocated first: an allocation is a change too (peers see none).
	c_cmx_json "$ck" AllocateSubnet "{\"nodeName\":\"$name\"}" >/dev/null || return 1
	rev=$(c_cmx_json "$wk" WatchPeers '{"nodeName":"watcher"}' | jq -r '.revision') || return 1
	# Caught up: nothing after rev (a RegisterKey on etcd may be two
	# revisions, the key then the gateway settings).
	settled() {
		local out
		out=$(c_cmx_json "$wk" WatchPeers "{\"nodeName\":\"watcher\",\"sinceRevision\":\"$rev\",\"waitSeconds\":0}") || return 1
		[ "$(jq '.peers // [] | length' <<<"$out")" = 0 ] && [ "$(jq '.removed // [] | length' <<<"$out")" = 0 ] && return 0
		rev=$(jq -r .revision <<<"$out")
		return 1
	}
	t_wait "manager $wk caught up" 5 settled || return 1
	auth=$(c_auth_h)
	rm -f "$T_TMP/poll.json"
	nq cm curl -sS -m 30 -H 'Content-Type: application/json' ${auth:+-H "$auth"} \
		-d "{\"nodeName\":\"watcher\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" \
		"$(c_cmx_url "$wk")/$C_CM_SVC/WatchPeers" >"$T_TMP/poll.json" 2>/dev/null &
	pid=$!
	watchers() { nq cm curl -sf -m 5 "$(c_cmx_url "$wk")/metrics" | awk '$1 == "wgcni_watchers" {print $2}'; }
	t_wait_eq "a watcher on manager $wk" 10 1 watchers || { kill "$pid"; wait "$pid"; return 1; }
	register "$ck" "$name" || { kill "$pid"; wait "$pid"; return 1; }
	wait "$pid" || return 1
	jq -e --arg n "$name" '[.peers[]?.name] | index($n)' "$T_TMP/poll.json" >/dev/null ||
		{ t_log "the poll on manager $wk answered without $name: $(head -c 300 "$T_TMP/poll.json")"; return 1; }
}

for i in $(seq 1 30); do register $((1 + i % 3)) "n$i"; done
t_ok "watcher registered" register 1 watcher
t_ok "the three managers agree on 31 nodes" t_wait "agreement" 5 agree 1
t_eq "  31 of them" 31 "$(c_cmx_json 1 ListNodes '{}' | jq '.nodes | length')"
subnet_of() { c_cmx_json "$1" ListNodes '{}' | jq -r --arg n "$2" '.nodes[] | select(.name == $n) | .subnets | join(",")'; }
N1=$(subnet_of 1 n1)

# --- kill -9 of cluster manager 1 ---
c_cmx_kill 1 KILL
t_fail "manager 1 is gone" c_cmx_healthy 1
for k in 2 3; do
	t_ok "manager $k: AllocateSubnet of a new node" c_cmx_json "$k" AllocateSubnet "{\"nodeName\":\"d$k\"}"
	t_ok "manager $k: RegisterKey" register "$k" "d$k"
	t_ok "manager $k: AllocateSubnet of an old node" c_cmx_json "$k" AllocateSubnet '{"nodeName":"n1"}'
	t_ok "manager $k: ListNodes" c_cmx_json "$k" ListNodes '{}'
	t_ok "manager $k: ListPeers" c_cmx_json "$k" ListPeers '{"nodeName":"n2"}'
	t_ok "manager $k: DeleteNode" c_cmx_json "$k" DeleteNode "{\"nodeName\":\"n$((10 + k))\"}"
done
t_ok "a poll on manager 2 wakes on a change through manager 3" watch_wakes 2 3 d4
c_cmx_start 1
t_ok "restarted, manager 1 has the state (the changes while it was down too)" \
	t_wait "agreement" 10 agree 2
t_eq "  d2, d3, d4 there, n12 and n13 gone" "d2 d3 d4" \
	"$(c_cmx_json 1 ListNodes '{}' | jq -r '[.nodes[].name | select(test("^(d[0-9]|n1[23])$"))] | sort | join(" ")')"
t_ok "etcd's contents are consistent" c_etcd_consistent

# --- kill -9 of one etcd member ---
c_etcd_kill 1
t_ok "etcd member m1 is down" c_etcd_down 1
start=$(date +%s%N)
t_ok "allocation goes on through manager 1 (m1 first in its list)" \
	t_wait "an allocation through manager 1" 15 c_cmx_json 1 AllocateSubnet '{"nodeName":"e1"}'
t_log "first allocation after m1's death: $(( ($(date +%s%N) - start) / 1000000 )) ms"
for k in 1 2 3; do
	t_ok "manager $k: allocation and registration with m1 dead" register "$k" "e1$k"
done
t_ok "watching goes on: a poll on manager 1 wakes on a change through manager 2" watch_wakes 1 2 e2
t_ok "the managers agree" t_wait "agreement" 10 agree 3

# --- two members gone: no quorum ---
c_etcd_kill 2
t_ok "etcd member m2 is down" c_etcd_down 2
for i in $(seq 1 12); do echo "$((1 + i % 3)) {\"nodeName\":\"q$i\"}"; done >"$T_TMP/q"
start=$(date +%s%N)
c_cmx_parallel AllocateSubnet "$T_TMP/q" >"$T_TMP/q.codes"
t_log "12 allocations without quorum answered in $(( ($(date +%s%N) - start) / 1000000 )) ms: $(awk '{print $2}' "$T_TMP/q.codes" | sort | uniq -c | xargs)"
t_eq "no allocation of a new node succeeds without quorum" 0 "$(awk '$2 == 200' "$T_TMP/q.codes" | wc -l)"
t_eq "each fails as unavailable (503, code unavailable)" 12 \
	"$(for i in $(seq 1 12); do
		[ "$(awk -v n="$i" '$1 == n {print $2}' "$T_TMP/q.codes")" = 503 ] &&
		jq -e '.code == "unavailable"' "$T_TMP/par/$i.json" >/dev/null && echo "$i"
	done | wc -l)"
out=$(c_cmx_rpc 2 RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"192.0.2.9:51820\"}")
t_eq "RegisterKey without quorum: 503" 503 "$(c_cmx_http 2)"
t_eq "  code unavailable" unavailable "$(jq -r .code <<<"$out")"
out=$(c_cmx_rpc 3 DeleteNode '{"nodeName":"n1"}')
t_eq "DeleteNode without quorum: 503" 503 "$(c_cmx_http 3)"
t_eq "  code unavailable" unavailable "$(jq -r .code <<<"$out")"

# --- the members back ---
start=$(date +%s%N)
c_etcd_restart 2
c_etcd_restart 1
t_log "quorum back after $(( ($(date +%s%N) - start) / 1000000 )) ms"
t_ok "nothing half-written: etcd's contents are consistent" c_etcd_consistent
for k in 1 2 3; do
	t_ok "manager $k: allocation and registration work again" \
		t_wait "manager $k works" 20 register "$k" "r$k"
done
t_ok "a poll on manager 3 wakes on a change through manager 1" watch_wakes 3 1 r4
t_ok "the managers agree" t_wait "agreement" 10 agree 1
t_eq "n1 kept its subnet through it all" "$N1" "$(subnet_of 1 n1)"
t_ok "etcd's contents are consistent at the end" c_etcd_consistent

c_cmx_stop_all
c_leak_check
t_done

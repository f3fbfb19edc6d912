#!/bin/bash
# Stale nodes with two cluster managers on one etcd (--node-ttl 4s): a node
# that calls only manager A is not stale on manager B (B hears of it through
# the lastSeen every manager stores, within an eighth of the ttl); a node
# that stops calling turns stale on both, once (one tombstone: the managers'
# compare-and-swap), and its next call, through either manager, brings it
# back on both and into the other nodes' deltas.
# One etcd member and both managers in namespace cm on loopback, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX= C_DATASTORE=etcd
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_etcd_need
c_cm_host
TTL=4
c_cm_start --node-ttl "${TTL}s"
PID_A=$C_CM_PID
URL_A=$C_CM_URL
URL_B=http://127.0.0.1:8081
c_spawn cmb "$T_TMP/cmb.log" ip netns exec "$(t_ns cm)" "$C_CM_BIN" --listen 127.0.0.1:8081 \
	$(c_cm_datastore_flags) --node-ttl "${TTL}s"
PID_B=$T_PID_cmb
t_ok "manager B healthy" t_wait "manager B /healthz" 15 nq cm curl -sf -m 2 -o /dev/null "$URL_B/healthz"

on() { local url=$1; shift; C_CM_URL=$url "$@"; }
alloc_reg() {
	on "$1" c_cm_json AllocateSubnet "{\"nodeName\":\"$2\"}" >/dev/null &&
		on "$1" c_cm_json RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"10.0.0.$3:51820\"}" >/dev/null
}
# "true"/"false": whether manager URL lists node NAME as stale.
stale_on() {
	on "$1" c_cm_json ListNodes '{}' | jq -r --arg n "$2" '.nodes[] | select(.name == $n) | .stale // false'
}
ping_node() { on "$1" c_cm_json ListPeers "{\"nodeName\":\"$2\"}" >/dev/null; }
# calls NAME through URL every 0.4 s for SECONDS (bounded), in the background
keep_calling() {
	local url=$1 name=$2 secs=$3 i
	for i in $(seq 1 $((secs * 5 / 2))); do
		C_CM_OUT=keep_$name on "$url" c_cm_call ListPeers "{\"nodeName\":\"$name\"}" >/dev/null
		sleep 0.4
	done
}

t_ok "n1 through A" alloc_reg "$URL_A" n1 1
t_ok "n2 through B" alloc_reg "$URL_B" n2 2
t_ok "n3 through A" alloc_reg "$URL_A" n3 3

# --- n1 calls only A, n2 only B, for three ttls; n3 stops at once.
keep_calling "$URL_A" n1 $((3 * TTL)) & K1=$!
keep_calling "$URL_B" n2 $((3 * TTL)) & K2=$!
t_ok "n3 (silent) turns stale on A" t_wait_eq "n3 stale on A" $((3 * TTL)) true stale_on "$URL_A" n3
t_ok "n3 turns stale on B" t_wait_eq "n3 stale on B" 5 true stale_on "$URL_B" n3
wait "$K1" "$K2"
t_eq "n1, calling only A for 3 ttls, is live on B" false "$(stale_on "$URL_B" n1)"
t_eq "n2, calling only B for 3 ttls, is live on A" false "$(stale_on "$URL_A" n2)"
t_eq "n1 live on A" false "$(stale_on "$URL_A" n1)"
t_eq "n2 live on B" false "$(stale_on "$URL_B" n2)"
t_eq "one tombstone for n3, written once" 1 \
	"$(c_etcdctl get --prefix /wgcni/tombstones/n3 --keys-only | grep -c .)"
t_eq "n3's tombstone has one version (the compare-and-swap: one writer)" 1 \
	"$(c_etcdctl get /wgcni/tombstones/n3 -w json | jq -r '.kvs[0].version')"

# --- n1 and n2 stop; n2's peers through A no longer hold them.
t_ok "n1 stale on B" t_wait_eq "n1 stale on B" $((3 * TTL)) true stale_on "$URL_B" n1
t_ok "n2 stale on A" t_wait_eq "n2 stale on A" $((3 * TTL)) true stale_on "$URL_A" n2
t_eq "A counts 3 stale nodes" 3 "$(c_cm_metric wgcni_stale_nodes)"
rev=$(on "$URL_A" c_cm_json WatchPeers '{"nodeName":"n2","sinceRevision":"0"}' | jq -r .revision)

# --- n3 calls B: live on both, and in the delta A gives n2.
t_ok "n3 calls B" ping_node "$URL_B" n3
t_ok "n3 live on A within 1 s" t_wait_eq "n3 live on A" 1 false stale_on "$URL_A" n3
t_eq "n3 live on B" false "$(stale_on "$URL_B" n3)"
d=$(on "$URL_A" c_cm_json WatchPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\"}")
# (a delta is one answer for every node at that revision: n2's own entry,
# back with its call, is for the others)
t_eq "A's delta for n2 brings n3 back" n3 \
	"$(jq -r '[.peers[]?.name | select(. != "n2")] | join(",")' <<<"$d")"

kill -TERM "$PID_B"
t_ok "manager B stops" t_wait "B gone" 10 sh -c "! kill -0 $PID_B"
wait "$PID_B"; rc=$?
t_eq "manager B: clean exit (ASan: no leaks)" 0 "$rc"
c_cm_stop
t_eq "manager A: clean exit" 0 "$C_CM_RC"
: "$PID_A"
c_leak_check
t_done

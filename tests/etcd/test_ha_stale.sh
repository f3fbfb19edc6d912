#!/bin/bash
# Stale nodes with two cluster managers on one etcd (--node-ttl 4s): a node
# that calls only manager A is not stale on manager B (B hears of it through
# the lastSeen every manager stores, within an eighth of the ttl); a node
# that stops calling turns stale on both, once (one tombstone: the managers'
# compare-and-swap), and its next call, through either manager, brings it
# back on both and into the other nodes' deltas.
# One etcd member and both managers in namespace cm on loopback, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX= C_DATASTORE=etcd C_ETCD_NS=cm
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_etcd_need
c_cm_host
TTL=4
c_etcd_start 1
t_ok "manager A healthy" c_cmx_start 1 --node-ttl "${TTL}s"
t_ok "manager B healthy" c_cmx_start 2 --node-ttl "${TTL}s"
MA=1 MB=2
alloc_reg() {
	c_cmx_json "$1" AllocateSubnet "{\"nodeName\":\"$2\"}" >/dev/null &&
		c_cmx_json "$1" RegisterKey "{\"nodeName\":\"$2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"10.0.0.$3:51820\"}" >/dev/null
}
# "true"/"false": whether manager K lists node NAME as stale.
stale_on() {
	c_cmx_json "$1" ListNodes '{}' | jq -r --arg n "$2" '.nodes[] | select(.name == $n) | .stale // false'
}
ping_node() { c_cmx_json "$1" ListPeers "{\"nodeName\":\"$2\"}" >/dev/null; }
# calls NAME through manager K every 0.4 s for SECONDS (bounded), in the background
keep_calling() {
	local url=$1 name=$2 secs=$3 i
	for i in $(seq 1 $((secs * 5 / 2))); do
		# (not c_cmx_rpc: its files are the foreground's)
		nq cm curl -s -m 5 -o /dev/null -H 'Content-Type: application/json' \
			-d "{\"nodeName\":\"$name\"}" "$(c_cmx_url "$url")/$C_CM_SVC/ListPeers" || true
		sleep 0.4
	done
}

t_ok "n1 through A" alloc_reg "$MA" n1 1
t_ok "n2 through B" alloc_reg "$MB" n2 2
t_ok "n3 through A" alloc_reg "$MA" n3 3

# --- n1 calls only A, n2 only B, for three ttls; n3 stops at once.
keep_calling "$MA" n1 $((3 * TTL)) & K1=$!
keep_calling "$MB" n2 $((3 * TTL)) & K2=$!
t_ok "n3 (silent) turns stale on A" t_wait_eq "n3 stale on A" $((3 * TTL)) true stale_on "$MA" n3
t_ok "n3 turns stale on B" t_wait_eq "n3 stale on B" 5 true stale_on "$MB" n3
wait "$K1" "$K2"
t_eq "n1, calling only A for 3 ttls, is live on B" false "$(stale_on "$MB" n1)"
t_eq "n2, calling only B for 3 ttls, is live on A" false "$(stale_on "$MA" n2)"
t_eq "n1 live on A" false "$(stale_on "$MA" n1)"
t_eq "n2 live on B" false "$(stale_on "$MB" n2)"
t_eq "one tombstone for n3, written once" 1 \
	"$(c_etcdctl get --prefix /wgcni/tombstones/n3 --keys-only | grep -c .)"
t_eq "n3's tombstone has one version (the compare-and-swap: one writer)" 1 \
	"$(c_etcdctl get /wgcni/tombstones/n3 -w json | jq -r '.kvs[0].version')"

# --- n1 and n2 stop; n2's peers through A no longer hold them.
t_ok "n1 stale on B" t_wait_eq "n1 stale on B" $((3 * TTL)) true stale_on "$MB" n1
t_ok "n2 stale on A" t_wait_eq "n2 stale on A" $((3 * TTL)) true stale_on "$MA" n2
t_eq "A counts 3 stale nodes" 3 "$(nq cm curl -sf -m 5 "$(c_cmx_url 1)/metrics" |
	awk '$1 == "wgcni_stale_nodes" { print $2 }')"
rev=$(c_cmx_json "$MA" WatchPeers '{"nodeName":"n2","sinceRevision":"0"}' | jq -r .revision)

# --- n3 calls B: live on both, and in the delta A gives n2.
t_ok "n3 calls B" ping_node "$MB" n3
t_ok "n3 live on A within 1 s" t_wait_eq "n3 live on A" 1 false stale_on "$MA" n3
t_eq "n3 live on B" false "$(stale_on "$MB" n3)"
d=$(c_cmx_json "$MA" WatchPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\"}")
# (a delta is one answer for every node at that revision: n2's own entry,
# back with its call, is for the others)
t_eq "A's delta for n2 brings n3 back" n3 \
	"$(jq -r '[.peers[]?.name | select(. != "n2")] | join(",")' <<<"$d")"

c_cmx_stop_all
c_leak_check
t_done

#!/bin/bash
# `wgcni-cluster-manager migrate --from sqlite --to etcd` on a live cluster:
# a SQLite cluster manager with two real node managers (wireguard-go) and a
# container on each, pinging; a third node only allocated (no key yet).
# migrate refuses while the SQLite manager runs (its lock), on usage errors
# (exit 2), with a prefix length the stored subnets do not have; then, the
# manager stopped, it copies everything into a 3-member etcd (consistent:
# every claim in its node's record and back, the keys as registered), and
# refuses a second time without writing. Two cluster managers on etcd then
# start at the addresses the nodes know (--cluster-manager URL1,URL2): the
# nodes keep their subnets, find their way back and still reach each other.
# Last, the same state into an etcd member that wants TLS and a client
# certificate (--etcd-ca-file, --etcd-cert-file, --etcd-key-file).
# Needs `make all sanitized`; migrate itself runs sanitized.
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
c_need
c_need_driver
MIG_BIN=$T_SANBIN/wgcni-cluster-manager
[ -x "$MIG_BIN" ] || { t_log "missing $MIG_BIN: make sanitized"; exit 1; }
# The SQLite manager is cluster manager 1's address; both etcd ones are listed.
C_NM_FLAGS=(--cluster-manager "$(c_cmx_urls 1 2)")

c_cm_host
c_cm_start
for i in 1 2; do c_node_host "$i"; c_nm_start "$i"; C_NODES+=("$i"); done
for i in 1 2; do c_nm_wait "$i"; done
t_ok "two nodes mesh on the SQLite cluster manager" t_wait "mesh" 30 c_converged
c_cm_json AllocateSubnet '{"nodeName":"spare"}' -H "$(c_auth_h)" >/dev/null
c_ctr_add 1 c1a
c_ctr_add 2 c2a
t_ok "c1a reaches c2a" c_ping c1a "${C_ADDR[c2a]}"

nodes_of() { jq -r '[.nodes[] | "\(.name)=\(.subnets | join(","))=\(.publicKey // "")"] | sort | join(" ")'; }
BEFORE=$(c_cm_rpc ListNodes '{}' | nodes_of)
t_log "SQLite: $BEFORE"
t_eq "three nodes stored" 3 "$(wc -w <<<"$BEFORE")"
for i in 1 2; do ADDR_BEFORE[$i]=$(c_node_addr "$i"); done

c_etcd_start 3
migrate() {
	nq cm "$MIG_BIN" migrate "$@" >"$T_TMP/mig.out" 2>"$T_TMP/mig.err"
}
mig_rc() { local rc=0; migrate "$@" || rc=$?; echo "$rc"; }
ARGS=(--from sqlite --state-dir "$C_CM_STATE" --to etcd --etcd-endpoints "$C_ETCD_ENDPOINTS"
	--cluster-cidr "$C_CIDR" --node-prefix-length "$C_NODE_PREFIX")
etcd_keys() { c_etcd_count /wgcni/; }

t_eq "migrate with the manager running: exit 1" 1 "$(mig_rc "${ARGS[@]}")"
t_ok "  says the state directory is in use" grep -q "in use by a running cluster manager" "$T_TMP/mig.err"
t_eq "  nothing in etcd" 0 "$(etcd_keys)"
t_eq "migrate without --etcd-endpoints: exit 2" 2 \
	"$(mig_rc --from sqlite --state-dir "$C_CM_STATE" --to etcd)"
t_ok "  names the missing flag" grep -q -- "--etcd-endpoints is required" "$T_TMP/mig.err"
t_eq "migrate --to consul: exit 2" 2 "$(mig_rc "${ARGS[@]}" --to consul)"
t_eq "migrate --help: exit 0" 0 "$(mig_rc --help)"
t_ok "  usage names --from sqlite" grep -q -- "--from sqlite" "$T_TMP/mig.out"

t_ok "both nodes long-poll the SQLite manager" t_wait_eq "2 watchers" 20 2 c_cm_metric wgcni_watchers
SQLITE_REV=$(c_cm_rpc WatchPeers '{"nodeName":"spare","sinceRevision":"0"}' | jq -r '.revision')
# the peers every node knows: the nodes with a key (sorted)
nodes_with_keys() { c_cm_rpc ListNodes '{}' | jq -r '[.nodes[] | select(.publicKey) | .name] | sort | join(" ")'; }
KEYED=$(nodes_with_keys)
c_cm_stop TERM
t_eq "the SQLite manager stopped cleanly" 0 "$C_CM_RC"
t_ok "containers still reach each other without a cluster manager" c_ping c1a "${C_ADDR[c2a]}"

t_eq "migrate with another --node-prefix-length: exit 1" 1 \
	"$(mig_rc "${ARGS[@]}" --node-prefix-length 25)"
t_ok "  says the subnets are not /25s" grep -q "is not a /25" "$T_TMP/mig.err"
t_eq "  nothing in etcd" 0 "$(etcd_keys)"
t_eq "migrate --dry-run: exit 0" 0 "$(mig_rc "${ARGS[@]}" --dry-run)"
t_ok "  says it would migrate 3 nodes" grep -q "would migrate 3 node(s)" "$T_TMP/mig.out"
t_eq "  nothing in etcd" 0 "$(etcd_keys)"

# External peers are not supported on etcd: a copy of the state with one.
mkdir -m 700 "$T_TMP/ext"
cp "$C_CM_STATE/cluster.db" "$T_TMP/ext/"
sqlite3 "$T_TMP/ext/cluster.db" "INSERT INTO external_peers (name, public_key, address) VALUES ('laptop', '$(c_pubkey)', '10.200.0.1/32')"
t_eq "migrate a state with an external peer: exit 1" 1 "$(mig_rc "${ARGS[@]}" --state-dir "$T_TMP/ext")"
t_ok "  says external peers are not supported on etcd" \
	grep -q "external peers are not supported on etcd" "$T_TMP/mig.err"
t_eq "  nothing in etcd" 0 "$(etcd_keys)"

start=$(date +%s%N)
t_eq "migrate: exit 0" 0 "$(mig_rc "${ARGS[@]}")"
t_log "migrate took $(( ($(date +%s%N) - start) / 1000000 )) ms: $(tail -n 3 "$T_TMP/mig.out" | head -n 1)"
cat "$T_TMP/mig.err" >&2
t_ok "  says it migrated 3 nodes, 3 IPv4 subnets" \
	grep -q "migrated 3 node(s), 3 IPv4 and 0 IPv6 subnet(s)" "$T_TMP/mig.out"
t_ok "  stores the SQLite revision as the revision offset" \
	grep -q "^/wgcni/revision-offset [0-9][0-9]*$" "$T_TMP/mig.out"
t_ok "etcd's contents are consistent" c_etcd_consistent
etcd_nodes() {
	c_etcdctl get --prefix /wgcni/nodes/ -w json | jq -r '[(.kvs // [])[]
		| "\(.key | @base64d | ltrimstr("/wgcni/nodes/"))=\(.value | @base64d | fromjson
		| "\(.subnets | join(","))=\(.publicKey)")"] | sort | join(" ")'
}
t_eq "etcd holds every node with its subnets and key" "$BEFORE" "$(etcd_nodes)"
t_eq "P/config from the flags" \
	"{\"clusterCidrs\":[\"$C_CIDR\"],\"nodePrefixLength\":$C_NODE_PREFIX,\"nodePrefixLengthV6\":64,\"externalCidrs\":[]}" \
	"$(c_etcdctl get /wgcni/config --print-value-only)"
t_eq "a lastSeen per node" 3 "$(c_etcd_count /wgcni/seen/)"
t_eq "endpoints copied" "$(c_endpoint 1)" \
	"$(c_etcdctl get /wgcni/nodes/"$(c_name 1)" --print-value-only | jq -r .endpoint)"

rev=$(c_etcd_revision)
t_eq "migrate again: exit 1" 1 "$(mig_rc "${ARGS[@]}")"
t_ok "  says etcd holds nodes already" grep -q "already holds 3 key(s) under \`/wgcni/nodes/'" "$T_TMP/mig.err"
t_eq "  nothing written (revision unchanged)" "$rev" "$(c_etcd_revision)"
t_eq "migrate --dry-run into another prefix (/other/): exit 0" 0 \
	"$(mig_rc "${ARGS[@]}" --etcd-prefix /other/ --dry-run)"

# Two cluster managers on etcd at the addresses the nodes know.
c_cmx_start 1
c_cmx_start 2
for k in 1 2; do
	t_eq "cluster manager $k lists the migrated nodes" "$BEFORE" \
		"$(c_cmx_json "$k" ListNodes '{}' | nodes_of)"
done
# Revisions go on from the SQLite one (P/revision-offset): a node that
# comes back with a revision from before gets the full set, with what
# joined on etcd since.
t_ok "late joins through manager 1" c_cmx_json 1 AllocateSubnet '{"nodeName":"late"}'
t_ok "  registers a key" c_cmx_json 1 RegisterKey "{\"nodeName\":\"late\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"192.0.2.99:51820\"}"
w=$(c_cmx_json 2 WatchPeers "{\"nodeName\":\"spare\",\"sinceRevision\":\"$SQLITE_REV\"}")
# (since the offset itself: every node is newer, a delta holding them all)
t_eq "since the SQLite revision ($SQLITE_REV): every peer, late too" "$(echo $KEYED late | tr ' ' '\n' | sort | xargs)" \
	"$(jq -r '[.peers[]?.name] | sort | join(" ")' <<<"$w")"
w=$(c_cmx_json 2 WatchPeers "{\"nodeName\":\"spare\",\"sinceRevision\":\"$((SQLITE_REV - 1))\"}")
t_eq "since an older SQLite revision: a full set" true "$(jq -r '.full // false' <<<"$w")"
t_ok "  at a revision past the SQLite one" test "$(jq -r .revision <<<"$w")" -gt "$SQLITE_REV"
t_ok "late deleted again" c_cmx_json 2 DeleteNode '{"nodeName":"late"}'
got_subnet() { c_cmx_json 2 AllocateSubnet '{"nodeName":"spare"}' | jq -r '.subnets | join(",")'; }
t_eq "the spare node gets its old subnet back" \
	"$(tr ' ' '\n' <<<"$BEFORE" | awk -F= '$1 == "spare" {print $2}')" "$(got_subnet)"
watchers() {
	local k n=0 w
	for k in 1 2; do
		w=$(nq cm curl -sf -m 5 "$(c_cmx_url "$k")/metrics" | awk '$1 == "wgcni_watchers" {print $2}')
		n=$((n + ${w:-0}))
	done
	echo "$n"
}
t_ok "both nodes long-poll the etcd cluster managers" t_wait_eq "2 watchers" 40 2 watchers
for i in 1 2; do
	t_eq "node $i kept its address" "${ADDR_BEFORE[$i]}" "$(c_node_addr "$i")"
done
t_ok "the nodes still mesh" t_wait "mesh" 20 c_converged
t_ok "c1a still reaches c2a" c_ping c1a "${C_ADDR[c2a]}"
t_ok "c2a reaches c1a" c_ping c2a "${C_ADDR[c1a]}"
t_ok "etcd's contents are still consistent" c_etcd_consistent

# Into an etcd that wants TLS and a client certificate (a member of its
# own; the SQLite state is still there, its manager still stopped).
C_ETCD_TLS=1
c_etcd_start 1
TLS=(--from sqlite --state-dir "$C_CM_STATE" --to etcd --etcd-endpoints "$C_ETCD_ENDPOINTS")
t_eq "migrate to TLS etcd without its CA: exit 1" 1 "$(mig_rc "${TLS[@]}")"
t_ok "  says the certificate is not trusted" grep -q "not trusted" "$T_TMP/mig.err"
t_eq "migrate to TLS etcd without a client certificate: exit 1" 1 \
	"$(mig_rc "${TLS[@]}" --etcd-ca-file "$C_ETCD_CA")"
t_eq "migrate --etcd-cert-file without --etcd-key-file: exit 2" 2 \
	"$(mig_rc "${TLS[@]}" --etcd-ca-file "$C_ETCD_CA" --etcd-cert-file "$C_ETCD_CERT")"
t_eq "migrate to TLS etcd with the CA and a client certificate: exit 0" 0 \
	"$(mig_rc "${TLS[@]}" --etcd-ca-file "$C_ETCD_CA" --etcd-cert-file "$C_ETCD_CERT" --etcd-key-file "$C_ETCD_KEY")"
cat "$T_TMP/mig.err" >&2
t_eq "  etcd holds every node with its subnets and key" "$BEFORE" "$(etcd_nodes)"
t_ok "  consistent" c_etcd_consistent

c_cmx_stop_all
c_leak_check
t_done

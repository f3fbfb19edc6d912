#!/bin/bash
# Both daemons' /metrics are valid Prometheus text exposition (checked with
# promtool when installed and with the Python client's parser), hold every
# name the product promises (README, docs/operations.md) with values that match the cluster, and a deleted
# peer's series are gone on the next scrape (Release of a container; DeleteNode
# of a node).
# Two nodes with the token; each node manager also serves its API on
# 127.0.0.1:5242 in its namespace, and /healthz and /metrics alone
# (--metrics-listen, the Prometheus scrape address) on its underlay address
# port 9102. Containers are attachments made through
# the node manager's API (c_api_attach): what wgcnictl shows does not depend
# on the CNI plugin.
C_NM_FLAGS=(--listen 127.0.0.1:5242)
. "$(dirname "$0")/../lib_cluster.sh"
C_NODE_FLAGS[1]="--metrics-listen $C_UL.11:9102"

PY=/usr/bin/python3
if ! "$PY" -c 'import prometheus_client' 2>/dev/null; then
	t_log "SKIP: python3-prometheus-client (Debian) is not installed: no reference parser"
	exit 77
fi

# parse FILE: the samples as "name{sorted labels} value" lines, via the
# reference parser; fails on anything it rejects.
parse() {
	"$PY" - "$1" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
import re
text = open(sys.argv[1]).read()
# The client names a counter's samples <family>_total even when the text
# says <family>: report the name as exposed.
exposed = {re.split(r"[{ \t]", l, 1)[0] for l in text.splitlines()
           if l.strip() and not l.startswith("#")}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        name = s.name
        if name not in exposed and name.endswith("_total") and name[:-6] in exposed:
            name = name[:-6]
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %r %s" % (name, labels, s.value, fam.type))
PY
}

# promtool: exit 1 is a parse error; 3 lint problems. The only lint
# accepted is the "_total" suffix on the byte counters the documented names lack.
promtool_ok() {
	local f=$1 rc=0
	command -v promtool >/dev/null || return 0
	promtool check metrics <"$f" >"$f.lint" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] && return 0
	[ "$rc" -eq 3 ] || { cat "$f.lint" >&2; return 1; }
	! grep -v -E '^wgcni_peer_(rx|tx)_bytes counter metrics should have "_total" suffix$' "$f.lint" | grep -q . ||
		{ cat "$f.lint" >&2; return 1; }
}

# sample FILE NAME LABELS: the value of one series ("" when absent).
sample() { awk -v k="$2{$3}" '$1 == k { print $2 }' "$1.parsed"; }
has_family() { grep -q "^$2[{]" "$1.parsed"; }

scrape() { # NAME cmd...
	local name=$1; shift
	"$@" >"$T_TMP/$name.prom"
	parse "$T_TMP/$name.prom" >"$T_TMP/$name.prom.parsed"
}

# The parsers must be able to say no.
printf '# TYPE x gauge\nx{a="b} 1\n' >"$T_TMP/broken.prom"
t_fail "python parser rejects a broken exposition" parse "$T_TMP/broken.prom" 2>/dev/null
if command -v promtool >/dev/null; then
	t_fail "promtool rejects a broken exposition" promtool_ok "$T_TMP/broken.prom" 2>/dev/null
else
	t_log "promtool not installed (Debian package prometheus): python parser only"
fi

c_need_ctl
c_cluster 2
t_wait "handshake between the nodes" 30 c_handshaken 1 2

id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
pub=$(c_api_attach 1 "$id" eth0)
key2=$(c_nm_rpc 2 GetNode '{}' | jq -r .node.publicKey)
t_wait "node1 handshook with node2" 20 c_handshaken 1 2

t_ok "node manager /metrics parses" scrape nm1 c_nm_metrics 1
t_ok "node manager /metrics passes promtool" promtool_ok "$T_TMP/nm1.prom"
t_ok "cluster manager /metrics parses" scrape cm c_cm_metrics
t_ok "cluster manager /metrics passes promtool" promtool_ok "$T_TMP/cm.prom"
# The scrape address: what the socket serves, and nothing else.
scrape_url() { nq h1 curl -sS -m 5 -o "$T_TMP/scrape.out" -w '%{http_code}' "$@"; }
t_eq "--metrics-listen: /metrics 200" 200 "$(scrape_url "http://$C_UL.11:9102/metrics")"
t_ok "  with the node's series" grep -q '^wgcni_peers{kind="node"}' "$T_TMP/scrape.out"
t_eq "--metrics-listen: /healthz 200" 200 "$(scrape_url "http://$C_UL.11:9102/healthz")"
t_eq "--metrics-listen: an API method 404" 404 \
	"$(scrape_url -H 'Content-Type: application/json' -d '{}' \
		"http://$C_UL.11:9102/wgcni.node.v1.NodeService/ListAllocations")"
t_ok "  and no allocation listed" sh -c "! grep -q allocations '$T_TMP/scrape.out'"
ctype=$(curl -sS -m 5 -o /dev/null -w '%{content_type}' --unix-socket "$(c_sock 1)" http://nm/metrics)
t_ok "node manager Content-Type is text 0.0.4 ($ctype)" grep -q '^text/plain; *version=0.0.4' <<<"$ctype"

# the documented names.
for m in wgcni_peers wgcni_allocations wgcni_pool_addresses wgcni_peer_rx_bytes \
	wgcni_peer_tx_bytes wgcni_peer_last_handshake_seconds wgcni_sync_errors_total; do
	t_ok "node manager has $m" has_family "$T_TMP/nm1.prom" "$m"
done
for m in wgcni_nodes wgcni_subnets wgcni_api_requests_total; do
	t_ok "cluster manager has $m" has_family "$T_TMP/cm.prom" "$m"
done

# Values that follow from the cluster.
t_eq "wgcni_peers{kind=node}" 1.0 "$(sample "$T_TMP/nm1.prom" wgcni_peers 'kind="node"')"
t_eq "wgcni_peers{kind=container}" 1.0 "$(sample "$T_TMP/nm1.prom" wgcni_peers 'kind="container"')"
t_eq "wgcni_allocations" 1.0 "$(sample "$T_TMP/nm1.prom" wgcni_allocations '')"
t_eq "wgcni_pool_addresses{state=used}" 1.0 "$(sample "$T_TMP/nm1.prom" wgcni_pool_addresses 'state="used"')"
t_ok "wgcni_pool_addresses{state=free} > 0" \
	awk -v v="$(sample "$T_TMP/nm1.prom" wgcni_pool_addresses 'state="free"')" 'BEGIN { exit !(v > 0) }'
t_eq "node2's rx series names it" 1 \
	"$(grep -c "^wgcni_peer_rx_bytes{name=\"node2\",peer=\"$key2\"} " "$T_TMP/nm1.prom.parsed")"
t_ok "node2's rx bytes > 0" awk -v v="$(sample "$T_TMP/nm1.prom" wgcni_peer_rx_bytes "name=\"node2\",peer=\"$key2\"")" 'BEGIN { exit !(v > 0) }'
wg_hs=$(wg show "$(c_ifname 1)" latest-handshakes | awk -v k="$key2" '$1 == k { print $2 }')
t_ok "node2's last handshake is the interface's ($wg_hs)" \
	awk -v v="$(sample "$T_TMP/nm1.prom" wgcni_peer_last_handshake_seconds "name=\"node2\",peer=\"$key2\"")" \
	-v w="$wg_hs" 'BEGIN { exit !(int(v) == w) }'
t_eq "container's series names it" 1 \
	"$(grep -c "^wgcni_peer_tx_bytes{name=\"$id/eth0\",peer=\"$pub\"} " "$T_TMP/nm1.prom.parsed")"
t_eq "wgcni_nodes" 2.0 "$(sample "$T_TMP/cm.prom" wgcni_nodes '')"
t_ok "wgcni_subnets has a used state" grep -q '^wgcni_subnets{.*state="used"' "$T_TMP/cm.prom.parsed"
t_eq "wgcni_subnets{state=used} sums to 2" 2 \
	"$(awk '/^wgcni_subnets\{.*state="used"/ { s += $2 } END { print s + 0 }' "$T_TMP/cm.prom.parsed")"

# wgcni_api_requests_total counts calls by method and code.
before=$(sample "$T_TMP/cm.prom" wgcni_api_requests_total 'code="ok",method="ListNodes"')
c_cm_rpc ListNodes '{}' >/dev/null
c_cm_rpc ListNodes '{}' >/dev/null
scrape cm2 c_cm_metrics
after=$(sample "$T_TMP/cm2.prom" wgcni_api_requests_total 'code="ok",method="ListNodes"')
t_ok "wgcni_api_requests_total{ListNodes,ok} grew by 2 ($before -> $after)" \
	awk -v a="${before:-0}" -v b="$after" 'BEGIN { exit !(b - a == 2) }'
c_cm_rpc DeleteNode '{"nodeName":"no-such-node"}' >/dev/null 2>&1 || true
scrape cm3 c_cm_metrics
t_ok "wgcni_api_requests_total counts errors by code" \
	test -n "$(sample "$T_TMP/cm3.prom" wgcni_api_requests_total 'code="not_found",method="DeleteNode"')"

# A released container's series disappear on the next scrape.
c_nm_rpc 1 Release "{\"containerId\":\"$id\",\"ifname\":\"eth0\"}" >/dev/null
scrape nm1b c_nm_metrics 1
t_eq "released container: no series left" 0 "$(grep -c "$pub" "$T_TMP/nm1b.prom.parsed" || true)"
t_eq "released container: wgcni_peers{kind=container} 0" 0.0 "$(sample "$T_TMP/nm1b.prom" wgcni_peers 'kind="container"')"
t_eq "released container: wgcni_allocations 0" 0.0 "$(sample "$T_TMP/nm1b.prom" wgcni_allocations '')"

# A deleted node's series disappear once node1 has synced.
t_stop_pid "$T_PID_nm2"
c_cm_rpc DeleteNode '{"nodeName":"node2"}' >/dev/null
node2_gone() { ! c_nm_metrics 1 | grep -q "$key2"; }
t_wait "node2's series gone from node1's /metrics" 30 node2_gone && r=0 || r=1
t_eq "deleted node: series gone" 0 "$r"
scrape nm1c c_nm_metrics 1
t_eq "deleted node: wgcni_peers{kind=node} 0" 0.0 "$(sample "$T_TMP/nm1c.prom" wgcni_peers 'kind="node"')"
scrape cm4 c_cm_metrics
t_eq "deleted node: wgcni_nodes 1" 1.0 "$(sample "$T_TMP/cm4.prom" wgcni_nodes '')"

c_leak_check
t_done

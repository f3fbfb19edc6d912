#!/bin/bash
# STATUS (CNI 1.1.0): 0 while the node manager answers, 50 when it is down.
# GC: releases exactly the allocations not in cni.dev/valid-attachments (and
# the older cni.dev/attachments), with their node peers.
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
c_cluster 2

t_ok "STATUS with the node manager up" c_plugin STATUS n1 x eth0 1.1.0
t_eq "STATUS prints nothing on success" "" "$(c_plugin STATUS n1 x eth0 1.1.0)"

for c in a b c d; do
	t_netns_add "$c"
done
for c in a b c d; do
	rc=0; c_plugin ADD n1 "$c" >/dev/null || rc=$?
	t_eq "ADD $c" 0 "$rc"
done
t_eq "4 allocations" 4 "$(c_allocs n1)"

att() { printf '{"containerID":"ctr-%s-%s","ifname":"eth0"}' "$$" "$1"; }
rc=0; c_plugin GC n1 x eth0 1.1.0 "\"cni.dev/valid-attachments\":[$(att a),$(att c)]" >"$T_TMP/out" || rc=$?
t_eq "GC exits 0" 0 "$rc"
t_eq "GC keeps exactly a and c" "ctr-$$-a ctr-$$-c" \
	"$(c_nm_rpc n1 ListAllocations | jq -r '[.allocations[].containerId] | sort | join(" ")')"
t_eq "GC removed b's and d's peers" 3 "$(c_peer_count n1)"
t_ok "a still reaches its node after GC" nq a ping -c 1 -W 2 "${C_GW[1]}"

rc=0; c_plugin GC n1 x eth0 1.1.0 "\"cni.dev/attachments\":[$(att a)]" >"$T_TMP/out" || rc=$?
t_eq "GC with cni.dev/attachments exits 0" 0 "$rc"
t_eq "GC (older key) keeps exactly a" "ctr-$$-a" \
	"$(c_nm_rpc n1 ListAllocations | jq -r '[.allocations[].containerId] | join(" ")')"

rc=0; c_plugin GC n1 x eth0 1.1.0 >"$T_TMP/out" || rc=$?
t_eq "GC without a list refuses (7) rather than releasing everything" 7 "$(jq -r .code "$T_TMP/out")"
t_eq "... and released nothing" 1 "$(c_allocs n1)"

for c in a b c d; do t_ok "DEL $c" c_plugin DEL n1 "$c"; c_no_leftovers n1 "$c"; done

c_nm_stop n1
rc=0; c_plugin STATUS n1 x eth0 1.1.0 >"$T_TMP/out" || rc=$?
t_ok "STATUS with the node manager down fails" test "$rc" -ne 0
t_eq "STATUS down: code 50" 50 "$(jq -r .code "$T_TMP/out")"
t_ok "STATUS down: details name the URL" grep -q "unix://$(c_sock 1)" "$T_TMP/out"
c_nm_up n1
t_ok "STATUS after the restart" c_plugin STATUS n1 x eth0 1.1.0
c_leak_check
t_done

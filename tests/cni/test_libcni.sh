#!/bin/bash
# The plugin under libcni 1.1.2 (what podman 4.3 and containerd 1.6 are
# built on), through tests/cnidriver: VERSION probing, AddNetworkList (the
# result must parse as a 1.0.0 result), CheckNetworkList with libcni's
# cached result as prevResult, DelNetworkList twice, and STATUS/GC as
# libcni 1.2 would send them.
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
bash "$T_ROOT/tests/cnidriver/build.sh"
DRV=$BUILDDIR/cnidriver
c_cluster 2

mkdir -p "$T_TMP/cnibin" "$T_TMP/cache"
ln -s "$PLUGIN" "$T_TMP/cnibin/wgcni"
cat >"$T_TMP/net.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "wgnet",
  "plugins": [ { "type": "wgcni", "nodeManager": "unix://$(c_sock 1)",
                 "backend": "userspace", "userspaceImplementation": "$C_IMPL" } ] }
JSON
drv() { nq n1 env CNI_PATH="$T_TMP/cnibin" CNI_CACHE_DIR="$T_TMP/cache" \
	CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=a" "$DRV" "$@"; }
ID=ctr-$$-a

t_eq "libcni reads our VERSION" '{"wgcni":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}' \
	"$(drv version "$T_TMP/net.conflist")"

t_netns_add a
rc=0; out=$(drv add "$T_TMP/net.conflist" "$ID" "/run/netns/$(t_ns a)" eth0) || rc=$?
t_eq "AddNetworkList" 0 "$rc"
t_eq "libcni's result: interface with our MAC and sandbox" \
	"eth0 00:00:00:00:00:00 /run/netns/$(t_ns a)" \
	"$(jq -r '.interfaces[0] | "\(.name) \(.mac) \(.sandbox)"' <<<"$out")"
t_eq "libcni's result: one IPv4 address on interface 0, gateway = node" "0 ${C_GW[1]}" \
	"$(jq -r '.ips[0] | "\(.interface) \(.gateway)"' <<<"$out")"
t_ok "a pings its node" nq a ping -c 1 -W 2 "${C_GW[1]}"
t_ok "CheckNetworkList passes" drv check "$T_TMP/net.conflist" "$ID" "/run/netns/$(t_ns a)" eth0
n a ip route del default dev eth0
t_fail "CheckNetworkList fails without the default route" \
	drv check "$T_TMP/net.conflist" "$ID" "/run/netns/$(t_ns a)" eth0

t_ok "status (1.1.0 STATUS)" drv status "$T_TMP/net.conflist"
t_ok "gc keeping a (1.1.0 GC)" drv gc "$T_TMP/net.conflist" "$ID/eth0"
t_eq "a's allocation kept" 1 "$(c_allocs n1)"

t_ok "DelNetworkList" drv del "$T_TMP/net.conflist" "$ID" "/run/netns/$(t_ns a)" eth0
t_ok "DelNetworkList again" drv del "$T_TMP/net.conflist" "$ID" "/run/netns/$(t_ns a)" eth0
c_no_leftovers n1 a
t_eq "n1 back to its one node peer" 1 "$(c_peer_count n1)"

c_nm_stop n1
t_fail "status with the node manager down" drv status "$T_TMP/net.conflist"
c_leak_check
t_done

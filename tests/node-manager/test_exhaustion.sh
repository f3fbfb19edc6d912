#!/bin/bash
# A small node subnet (/29 from the cluster manager): 5 container addresses
# (8 - network - gateway - broadcast), then resource_exhausted, never a
# duplicate; a released address is handed out again; state survives kill -9.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need

# Options: the command line, the environment, refusals.
t_eq "--version" "wgcni-node-manager" "$("$C_NM_BIN" --version | awk '{print $1}')"
t_eq "WGCNI_VERSION=1 is --version" "$("$C_NM_BIN" --version)" "$(WGCNI_VERSION=1 "$C_NM_BIN")"
t_ok "--help lists the options" bash -c "'$C_NM_BIN' --help | grep -q -- '--userspace-implementation'"
rc=0; "$C_NM_BIN" --mtu abc 2>"$T_TMP/err" || rc=$?
t_eq "--mtu abc refused with exit 2" 2 "$rc"
t_ok "the refusal names the option and quotes the value" grep -qF "invalid value for --mtu: \`abc'" "$T_TMP/err"
rc=0; WGCNI_BACKEND=bogus "$C_NM_BIN" 2>/dev/null || rc=$?
t_eq "WGCNI_BACKEND=bogus refused" 2 "$rc"
rc=0; "$C_NM_BIN" --bogus 2>/dev/null || rc=$?
t_eq "unknown option refused" 2 "$rc"
rc=0; "$C_NM_BIN" frobnicate 2>/dev/null || rc=$?
t_eq "unknown command refused" 2 "$rc"

c_cm_host
c_node_host 1
c_cm_start --node-prefix-length 29
WGCNI_MTU=1380 c_nm_start n1
c_nm_wait_healthy n1
SUB=$(c_nm_call n1 GetNode '{}' | jq -r '.node.subnets[0]')
t_eq "WGCNI_MTU from the environment: GetNode mtu" 1380 "$(c_nm_call n1 GetNode '{}' | jq -r .node.mtu)"
t_ok "WGCNI_MTU from the environment: link mtu" bash -c "ip -n $(t_ns n1) link show dev $(c_ifname 1) | grep -q 'mtu 1380 '"
t_ok "node got a /29 ($SUB)" bash -c "[[ '$SUB' == */29 ]]"

for i in 1 2 3 4 5; do
	c_nm_call n1 AllocateIP "{\"containerId\":\"x$i\",\"ifname\":\"eth0\"}" | jq -r '.addresses[0]' >>"$T_TMP/addrs"
	t_eq "allocation $i of 5 answers 200" 200 "$(t_http)"
done
t_eq "5 distinct addresses" 5 "$(sort -u "$T_TMP/addrs" | grep -c /32)"
base=${SUB%/29}; pfx=${base%.*}; last=${base##*.}
t_ok "none is network, gateway or broadcast" bash -c "! grep -qxE '$pfx\\.($last|$((last + 1))|$((last + 7)))/32' $T_TMP/addrs"
out=$(c_nm_call n1 AllocateIP '{"containerId":"x6","ifname":"eth0"}')
t_eq "6th allocation: HTTP 429" 429 "$(t_http)"
t_eq "6th allocation: resource_exhausted" resource_exhausted "$(jq -r .code <<<"$out")"
t_eq "exhausted: still 5 allocations" 5 "$(c_nm_call n1 ListAllocations '{}' | jq '.allocations | length')"
t_ok "metrics: pool free 0" bash -c "curl -sf --unix-socket $(c_sock n1) http://nm/metrics | grep -qx 'wgcni_pool_addresses{state=\"free\"} 0'"

freed=$(sed -n 3p "$T_TMP/addrs")
c_nm_call n1 Release '{"containerId":"x3","ifname":"eth0"}' >/dev/null
t_eq "release x3" 200 "$(t_http)"
pid=$(c_nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
c_nm_start n1
c_nm_wait_healthy n1
out=$(c_nm_call n1 AllocateIP '{"containerId":"x6","ifname":"eth0"}')
t_eq "after release and kill -9, x6 gets the freed address" "$freed" "$(jq -r '.addresses[0]' <<<"$out")"
out=$(c_nm_call n1 AllocateIP '{"containerId":"x7","ifname":"eth0"}')
t_eq "and then it is exhausted again" resource_exhausted "$(jq -r .code <<<"$out")"
pid=$(c_nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "SIGTERM: exit 0" 0 "$rc"
c_leak_check
t_done

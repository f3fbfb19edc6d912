#!/bin/bash
# A small node subnet (/29 from the cluster manager): 5 container addresses
# (8 - network - gateway - broadcast), then resource_exhausted, never a
# duplicate; a released address is handed out again; state survives kill -9.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nm_lib.sh"

nm_need "$NM_BIN" "$CM_BIN"

# Options: the command line, the environment, refusals.
t_eq "--version" "wgcni-node-manager" "$("$NM_BIN" --version | awk '{print $1}')"
t_eq "WGCNI_VERSION=1 is --version" "$("$NM_BIN" --version)" "$(WGCNI_VERSION=1 "$NM_BIN")"
t_ok "--help lists the options" bash -c "'$NM_BIN' --help | grep -q -- '--userspace-implementation'"
rc=0; "$NM_BIN" --mtu abc 2>"$T_TMP/err" || rc=$?
t_eq "--mtu abc refused with exit 2" 2 "$rc"
t_ok "the refusal names the option and quotes the value" grep -qF "invalid value for --mtu: \`abc'" "$T_TMP/err"
rc=0; WGCNI_BACKEND=bogus "$NM_BIN" 2>/dev/null || rc=$?
t_eq "WGCNI_BACKEND=bogus refused" 2 "$rc"
rc=0; "$NM_BIN" --bogus 2>/dev/null || rc=$?
t_eq "unknown option refused" 2 "$rc"
rc=0; "$NM_BIN" frobnicate 2>/dev/null || rc=$?
t_eq "unknown command refused" 2 "$rc"

nm_underlay
nm_node_ns n1 1
nm_cm_start --node-prefix-length 29
WGCNI_MTU=1380 nm_start n1 1
nm_wait_ready n1
SUB=$(nm_call n1 GetNode '{}' | jq -r '.node.subnets[0]')
t_eq "WGCNI_MTU from the environment: GetNode mtu" 1380 "$(nm_call n1 GetNode '{}' | jq -r .node.mtu)"
t_ok "WGCNI_MTU from the environment: link mtu" bash -c "ip -n $(t_ns n1) link show dev $(nm_if 1) | grep -q 'mtu 1380 '"
t_ok "node got a /29 ($SUB)" bash -c "[[ '$SUB' == */29 ]]"

for i in 1 2 3 4 5; do
	nm_call n1 AllocateIP "{\"containerId\":\"x$i\",\"ifname\":\"eth0\"}" | jq -r '.addresses[0]' >>"$T_TMP/addrs"
	t_eq "allocation $i of 5 answers 200" 200 "$(t_http)"
done
t_eq "5 distinct addresses" 5 "$(sort -u "$T_TMP/addrs" | grep -c /32)"
base=${SUB%/29}; pfx=${base%.*}; last=${base##*.}
t_ok "none is network, gateway or broadcast" bash -c "! grep -qxE '$pfx\\.($last|$((last + 1))|$((last + 7)))/32' $T_TMP/addrs"
out=$(nm_call n1 AllocateIP '{"containerId":"x6","ifname":"eth0"}')
t_eq "6th allocation: HTTP 429" 429 "$(t_http)"
t_eq "6th allocation: resource_exhausted" resource_exhausted "$(jq -r .code <<<"$out")"
t_eq "exhausted: still 5 allocations" 5 "$(nm_call n1 ListAllocations '{}' | jq '.allocations | length')"
t_ok "metrics: pool free 0" bash -c "curl -sf --unix-socket $(nm_sock n1) http://nm/metrics | grep -qx 'wgcni_pool_addresses{state=\"free\"} 0'"

freed=$(sed -n 3p "$T_TMP/addrs")
nm_call n1 Release '{"containerId":"x3","ifname":"eth0"}' >/dev/null
t_eq "release x3" 200 "$(t_http)"
pid=$(nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
nm_start n1 1
nm_wait_ready n1
out=$(nm_call n1 AllocateIP '{"containerId":"x6","ifname":"eth0"}')
t_eq "after release and kill -9, x6 gets the freed address" "$freed" "$(jq -r '.addresses[0]' <<<"$out")"
out=$(nm_call n1 AllocateIP '{"containerId":"x7","ifname":"eth0"}')
t_eq "and then it is exhausted again" resource_exhausted "$(jq -r .code <<<"$out")"
pid=$(nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "SIGTERM: exit 0" 0 "$rc"
t_done

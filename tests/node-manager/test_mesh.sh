#!/bin/bash
# Node mesh: two node managers (userspace backend) under one cluster manager
# get their subnets, address their interfaces, peer with each other only and
# ping through the tunnel; a third node joins without resetting existing
# peers; restarts (SIGTERM and kill -9) keep key, subnet and interface and
# lose no traffic.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 3
c_cm_start
c_nm_start n1
c_nm_start n2
c_nm_wait_healthy n1
c_nm_wait_healthy n2

IF1=$(c_ifname 1) IF2=$(c_ifname 2) IF3=$(c_ifname 3)
node_field() { c_nm_call "$1" GetNode '{}' | jq -r ".node.$2"; }
SUB1=$(node_field n1 'subnets[0]') SUB2=$(node_field n2 'subnets[0]')
ADDR1=$(node_field n1 address) ADDR2=$(node_field n2 address)
KEY1=$(node_field n1 publicKey) KEY2=$(node_field n2 publicKey)
t_log "n1 $SUB1 $ADDR1 $KEY1; n2 $SUB2 $ADDR2 $KEY2"
t_ok "subnets differ and are /24s of the cluster CIDR" \
	bash -c "[[ '$SUB1' == 10.100.*.0/24 && '$SUB2' == 10.100.*.0/24 && '$SUB1' != '$SUB2' ]]"
t_eq "n1 address is the first host of its subnet" "${SUB1%.0/24}.1/24" "$ADDR1"
t_ok "n1 interface carries its address" bash -c "ip -n $(t_ns n1) -o addr show dev $IF1 | grep -qw 'inet $ADDR1'"
t_ok "n2 interface carries its address" bash -c "ip -n $(t_ns n2) -o addr show dev $IF2 | grep -qw 'inet $ADDR2'"
t_ok "n1 route for the cluster CIDR via its interface" \
	bash -c "ip -n $(t_ns n1) route show 10.100.0.0/16 | grep -q 'dev $IF1'"
t_eq "n1 IPv4 forwarding on" 1 "$(nq n1 cat /proc/sys/net/ipv4/ip_forward)"
t_eq "n1 interface MTU" 1420 "$(ip -n "$(t_ns n1)" -o link show dev "$IF1" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')"

t_wait "n1 has n2 as peer" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY2'"
t_wait "n2 has n1 as peer" 10 bash -c "wg show $IF2 peers | grep -qx '$KEY1'"
t_eq "n1 has exactly one peer" 1 "$(c_wg_peer_count "$IF1")"
t_eq "n1's peer: n2 key, endpoint, AllowedIPs, keepalive" \
	"$KEY2 192.168.77.12:51820 $SUB2 25" \
	"$(c_wg_peers "$IF1" | awk '{print $1, $2, $3, $7}')"
t_eq "n2's peer: n1 key, endpoint, AllowedIPs, keepalive" \
	"$KEY1 192.168.77.11:51820 $SUB1 25" \
	"$(c_wg_peers "$IF2" | awk '{print $1, $2, $3, $7}')"
t_eq "n1 listens on 51820 with its own key" "$KEY1 51820" \
	"$(wg show "$IF1" public-key) $(wg show "$IF1" listen-port)"

A2=${ADDR2%/*} A1=${ADDR1%/*}
t_ok "n1 pings n2's interface address through the tunnel" n n1 ping -c 3 -W 2 -i 0.2 "$A2"
t_ok "n2 pings n1's interface address through the tunnel" n n2 ping -c 3 -W 2 -i 0.2 "$A1"
hs_before=$(wg show "$IF1" latest-handshakes | awk -v k="$KEY2" '$1==k{print $2}')
rx_before=$(wg show "$IF1" transfer | awk -v k="$KEY2" '$1==k{print $2}')
t_ok "handshake happened (n1 sees n2)" test "${hs_before:-0}" -gt 0

# --- a third node joins
c_nm_start n3
c_nm_wait_healthy n3
KEY3=$(node_field n3 publicKey)
SUB3=$(node_field n3 'subnets[0]')
joined() { wg show "$IF1" peers | grep -qx "$KEY3" && wg show "$IF2" peers | grep -qx "$KEY3"; }
t_ok "n1 and n2 have n3 as a peer within 2 s of it being ready" t_wait "n3 joins" 2 joined
t_eq "n1 now has two peers" 2 "$(c_wg_peer_count "$IF1")"
t_eq "n1's n3 peer: endpoint and AllowedIPs" "192.168.77.13:51820 $SUB3" \
	"$(c_wg_peers "$IF1" | awk -v k="$KEY3" '$1==k{print $2, $3}')"
hs_after=$(wg show "$IF1" latest-handshakes | awk -v k="$KEY2" '$1==k{print $2}')
rx_after=$(wg show "$IF1" transfer | awk -v k="$KEY2" '$1==k{print $2}')
t_eq "n2 peer's handshake on n1 not reset by the join" "$hs_before" "$hs_after"
t_ok "n2 peer's rx counter on n1 not reset ($rx_before -> $rx_after)" test "$rx_after" -ge "$rx_before"
t_ok "n3 pings n1 through the tunnel" n n3 ping -c 2 -W 2 -i 0.2 "$A1"

# --- restarts across a running ping
ifindex() { ip -n "$(t_ns n1)" -o link show dev "$IF1" | cut -d: -f1; }
idx_before=$(ifindex)
n n1 ping -i 0.2 -c 75 -W 1 "$A2" >"$T_TMP/ping.out" 2>&1 &
PING=$!
T_PIDS+=("$PING")
t_wait "ping running" 5 grep -q 'bytes from' "$T_TMP/ping.out"

pid=$(c_nm_pid n1)
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
t_eq "SIGTERM: node manager exits 0" 0 "$rc"
t_ok "SIGTERM: interface still there" ip -n "$(t_ns n1)" link show dev "$IF1"
t_eq "SIGTERM: peers kept on the interface" 2 "$(c_wg_peer_count "$IF1")"
c_nm_start n1
c_nm_wait_healthy n1
t_eq "after SIGTERM restart: same key" "$KEY1" "$(node_field n1 publicKey)"
t_eq "after SIGTERM restart: same subnet" "$SUB1" "$(node_field n1 'subnets[0]')"
t_eq "after SIGTERM restart: interface adopted (same ifindex)" "$idx_before" "$(ifindex)"
t_ok "after SIGTERM restart: log says adopted" grep -q 'adopting existing interface' "$(c_nm_log n1)"

pid=$(c_nm_pid n1)
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
c_nm_start n1
c_nm_wait_healthy n1
t_eq "after kill -9 restart: same key" "$KEY1" "$(node_field n1 publicKey)"
t_eq "after kill -9 restart: same subnet" "$SUB1" "$(node_field n1 'subnets[0]')"
t_eq "after kill -9 restart: interface adopted (same ifindex)" "$idx_before" "$(ifindex)"
t_eq "after kill -9 restart: wg key unchanged" "$KEY1" "$(wg show "$IF1" public-key)"
t_wait "n1 back to two peers" 5 bash -c "[ \$(wg show $IF1 peers | grep -c .) -eq 2 ]"
t_eq "after restarts: still exactly n2 and n3 as peers" "$(printf '%s\n' "$KEY2" "$KEY3" | sort)" \
	"$(wg show "$IF1" peers | sort)"

wait "$PING" || true
t_log "$(tail -n 2 "$T_TMP/ping.out" | head -n 1)"
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$T_TMP/ping.out")
recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$T_TMP/ping.out")
t_ok "ping across both restarts: at most 1 of $sent lost (received $recv)" \
	test "$(( ${sent:-0} - ${recv:-0} ))" -le 1 -a "${sent:-0}" -ge 70

# --- the interface vanishes under a running node manager (its userspace
# process died or someone deleted it): the next call recreates it whole.
n n1 ip link del "$IF1"
t_wait "wireguard-go of $IF1 gone" 10 bash -c "! test -e /var/run/wireguard/$IF1.sock"
c_nm_call n1 AllocateIP '{"containerId":"heal","ifname":"eth0"}' >/dev/null
t_eq "AllocateIP after the interface vanished answers 200" 200 "$(t_http)"
t_ok "interface recreated with its address" bash -c "ip -n $(t_ns n1) -o addr show dev $IF1 | grep -qw 'inet $ADDR1'"
t_ok "cluster route back" bash -c "ip -n $(t_ns n1) route show 10.100.0.0/16 | grep -q 'dev $IF1'"
t_eq "node peers back" "$(printf '%s\n' "$KEY2" "$KEY3" | sort)" "$(wg show "$IF1" peers | sort)"
t_eq "same key on the new interface" "$KEY1" "$(wg show "$IF1" public-key)"
t_ok "n1 pings n2 again" n n1 ping -c 3 -W 2 -i 0.2 "$A2"
t_ok "log says it recreated the interface" grep -q 'node interface vanished' "$(c_nm_log n1)"

t_ok "n1 metrics list n2 as node peer by name" bash -c \
	"curl -sf --unix-socket $(c_sock n1) http://nm/metrics | grep -q 'wgcni_peer_rx_bytes{peer=\"$KEY2\",name=\"n2\"}'"
t_ok "n1 metrics: two node peers" bash -c \
	"curl -sf --unix-socket $(c_sock n1) http://nm/metrics | grep -qx 'wgcni_peers{kind=\"node\"} 2'"

# --- a node deleted at the cluster manager disappears from the others
pid=$(c_nm_pid n3); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "n3 exits 0 on SIGTERM (ASan/LSan clean)" 0 "$rc"
code=$(nq cm curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Content-Type: application/json' \
	-d '{"nodeName":"n3"}' "$C_CM_URL/wgcni.cluster.v1.ClusterService/DeleteNode")
t_eq "cluster manager deletes n3" 200 "$code"
gone() { ! wg show "$IF1" peers | grep -qx "$KEY3" && ! wg show "$IF2" peers | grep -qx "$KEY3"; }
t_ok "n3 removed from n1 and n2 within 2 s" t_wait "n3 gone" 2 gone
t_ok "n1 metrics no longer list n3" bash -c \
	"! curl -sf --unix-socket $(c_sock n1) http://nm/metrics | grep -q '$KEY3'"

for nd in n1 n2; do
	pid=$(c_nm_pid $nd); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
	t_eq "$nd exits 0 on SIGTERM (ASan/LSan clean)" 0 "$rc"
done
c_leak_check
t_done

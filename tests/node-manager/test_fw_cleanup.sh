#!/bin/bash
# Firewall and cleanup: the node manager owns exactly two chains and two
# jumps; traffic between containers (same node and across nodes) keeps its
# source address while traffic leaving the cluster is masqueraded;
# `wgcni-node-manager cleanup` leaves no interface, route, chain, jump,
# socket or process behind.
#
# Containers are attached here by hand the way the CNI plugin does it (a
# wireguard-go interface created in the node namespace, moved into the
# container namespace), so this test depends on the node manager only.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 2
c_cm_start
c_nm_start n1
c_nm_start n2
c_nm_wait_healthy n1
c_nm_wait_healthy n2
IF1=$(c_ifname 1) IF2=$(c_ifname 2)
KEY1=$(c_nm_call n1 GetNode '{}' | jq -r .node.publicKey)
KEY2=$(c_nm_call n2 GetNode '{}' | jq -r .node.publicKey)
t_wait "n1 and n2 peered" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY2' && wg show $IF2 peers | grep -qx '$KEY1'"

# container NAME NODE PORT: attach container namespace NAME to node NODE;
# its address lands in $CADDR (no subshell: t_netns_add records the name).
container() {
	local name=$1 node=$2 port=$3 wif="wc$$$1" addr nodekey resp
	t_netns_add "$name"
	ip netns exec "$(t_ns "$node")" wireguard-go "$wif" >/dev/null 2>&1
	t_wait "$wif uapi socket" 5 test -S "/var/run/wireguard/$wif.sock"
	(umask 077; wg genkey >"$T_TMP/$name.key")
	resp=$(c_nm_call "$node" AllocateIP "{\"containerId\":\"$name\",\"ifname\":\"eth0\",\"netns\":\"/run/netns/$(t_ns "$name")\"}")
	addr=$(jq -r '.addresses[0]' <<<"$resp")
	resp=$(c_nm_call "$node" RegisterKey "{\"containerId\":\"$name\",\"ifname\":\"eth0\",\"publicKey\":\"$(wg pubkey <"$T_TMP/$name.key")\",\"endpoint\":\"127.0.0.1:$port\"}")
	nodekey=$(jq -r .nodePeer.publicKey <<<"$resp")
	wg set "$wif" private-key "$T_TMP/$name.key" listen-port "$port" \
		peer "$nodekey" endpoint "$(jq -r .nodePeer.endpoint <<<"$resp")" allowed-ips 0.0.0.0/0
	ip -n "$(t_ns "$node")" link set "$wif" netns "$(t_ns "$name")"
	ip -n "$(t_ns "$name")" addr add "$addr" dev "$wif"
	ip -n "$(t_ns "$name")" link set "$wif" mtu 1420 up
	ip -n "$(t_ns "$name")" route add default dev "$wif"
	CADDR=${addr%/*}
}
container ca n1 40001; CA=$CADDR
container cb n1 40002; CB=$CADDR
container cc n2 40003; CC=$CADDR
t_log "containers: ca=$CA cb=$CB (n1) cc=$CC (n2)"

fw_save() { nq n1 iptables-legacy-save; }
t_eq "n1: exactly two WGCNI chains" 2 "$(fw_save | grep -c '^:WGCNI-')"
t_eq "n1: the two chains are ours" ":WGCNI-FORWARD :WGCNI-POSTROUTING" \
	"$(fw_save | grep '^:WGCNI-' | awk '{print $1}' | sort | xargs)"
t_eq "n1: exactly two jumps into them" "-A FORWARD -j WGCNI-FORWARD|-A POSTROUTING -j WGCNI-POSTROUTING" \
	"$(fw_save | grep -- '-j WGCNI-' | sort | paste -sd'|')"
t_eq "n1: no rule outside our chains but the jumps" 0 \
	"$(fw_save | grep '^-A' | grep -v '^-A WGCNI-' | grep -vc -- '-j WGCNI-' || true)"

masq_pkts() {
	local out
	out=$(nq n1 iptables-legacy -t nat -L WGCNI-POSTROUTING -v -n -x 2>/dev/null) || true
	awk '/MASQUERADE/{s+=$1} END{print s+0}' <<<"$out"
}
m0=$(masq_pkts)

# Same node and across nodes: the receiver sees the container's own address.
# recv_from RECEIVER SENDER DST PORT: what the receiver logged, in $RECV
# (no subshell, so the listener's PID lands in T_PIDS).
recv_from() {
	local log="$T_TMP/nc-$1-$2.log"
	ip netns exec "$(t_ns "$1")" nc -lvn "$4" >"$log" 2>&1 &
	T_PIDS+=("$!")
	t_wait "listener in $1" 5 bash -c "ip netns exec $(t_ns "$1") ss -ltn | grep -q ':$4 '"
	nq "$2" sh -c "echo hello | nc -n -N -w 5 $3 $4" || true
	if ! t_wait "connection logged" 10 grep -q 'hello' "$log"; then
		t_log "no connection $2 -> $1 ($3:$4); interfaces:"
		wg show all | sed 's/^/#   /' >&2
	fi
	RECV=$(cat "$log")
}
recv_from cb ca "$CB" 7001
t_ok "ca -> cb (same node): source is ca's address, not NATed" grep -qw "$CA" <<<"$RECV"
recv_from cc ca "$CC" 7002
t_ok "ca -> cc (across nodes): source is ca's address, not NATed" grep -qw "$CA" <<<"$RECV"
recv_from ca cc "$CA" 7003
t_ok "cc -> ca (across nodes): source is cc's address, not NATed" grep -qw "$CC" <<<"$RECV"
t_eq "container-to-container traffic hit no MASQUERADE rule" "$m0" "$(masq_pkts)"
t_ok "ca pings cc" n ca ping -c 2 -W 2 -i 0.2 "$CC"
t_eq "ping between containers hit no MASQUERADE rule" "$m0" "$(masq_pkts)"
# The check above can fail: traffic leaving the cluster CIDR is masqueraded
# (the cluster manager's namespace has no route back to 10.100/16).
t_ok "ca reaches the underlay outside the cluster (masqueraded)" n ca ping -c 2 -W 2 -i 0.2 192.168.77.1
t_ok "leaving traffic hit the MASQUERADE rule" test "$(masq_pkts)" -gt "$m0"

# Idempotent across a restart: still two chains, two jumps.
pid=$(c_nm_pid n1); kill -TERM "$pid"; wait "$pid" || true
c_nm_start n1
c_nm_wait_healthy n1
t_eq "after restart: still two chains" 2 "$(fw_save | grep -c '^:WGCNI-')"
t_eq "after restart: still two jumps" 2 "$(fw_save | grep -c -- '-j WGCNI-')"
t_ok "after restart: container peers kept (ca pings cb)" n ca ping -c 2 -W 2 -i 0.2 "$CB"

# --no-masquerade: nothing leaves NATed.
pid=$(c_nm_pid n1); kill -TERM "$pid"; wait "$pid" || true
c_nm_start n1 --no-masquerade
c_nm_wait_healthy n1
t_eq "--no-masquerade: no MASQUERADE rule" 0 \
	"$(fw_save | grep -c 'MASQUERADE' || true)"
t_eq "--no-masquerade: still two chains" 2 "$(fw_save | grep -c '^:WGCNI-')"

# --- cleanup
pid=$(c_nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "n1 exits 0 on SIGTERM" 0 "$rc"
t_ok "SIGTERM left the interface up" ip -n "$(t_ns n1)" link show dev "$IF1"
rc=0; n n1 "$C_NM_BIN" --interface "$IF1" --socket "$(c_sock n1)" --state-dir "$(c_state n1)" cleanup || rc=$?
t_eq "cleanup: exit 0" 0 "$rc"
t_fail "cleanup: no interface" ip -n "$(t_ns n1)" link show dev "$IF1"
t_eq "cleanup: no route for the cluster CIDR" "" "$(ip -n "$(t_ns n1)" route show 10.100.0.0/16)"
t_eq "cleanup: no WGCNI chain or jump (IPv4)" 0 "$(fw_save | grep -c 'WGCNI' || true)"
t_eq "cleanup: no WGCNI chain or jump (IPv6)" 0 "$(nq n1 ip6tables-legacy-save | grep -c 'WGCNI' || true)"
t_fail "cleanup: no socket file" test -e "$(c_sock n1)"
t_fail "cleanup: no UAPI socket" test -e "/var/run/wireguard/$IF1.sock"
t_wait "wireguard-go for $IF1 ended" 5 bash -c "! pgrep -f 'wireguard-go $IF1\$' >/dev/null" || true
t_fail "cleanup: no wireguard-go process" pgrep -f "wireguard-go $IF1\$"
t_ok "cleanup: key and state kept for the next start" test -s "$(c_state n1)/private.key"
rc=0; n n1 "$C_NM_BIN" --interface "$IF1" --socket "$(c_sock n1)" --state-dir "$(c_state n1)" cleanup || rc=$?
t_eq "cleanup twice: exit 0" 0 "$rc"

pid=$(c_nm_pid n2); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "n2 exits 0 on SIGTERM" 0 "$rc"
# The hand-made container interfaces go as a CNI DEL would take them; their
# wireguard-go processes (in the node namespaces) end with them.
for c in ca cb cc; do ip -n "$(t_ns "$c")" link del "wc$$$c"; done
t_wait "the containers' wireguard-go ended" 10 sh -c "! pgrep -f '[w]ireguard-go wc$$'" || true
c_leak_check
t_done

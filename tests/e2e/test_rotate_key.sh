#!/bin/bash
# Node key rotation under traffic: `wgcni-node-manager rotate-key' on node 1
# while a container there pings one on node 2 every 50 ms. The new key is
# on every other node's interface within 1 s (the old one gone), in the
# cluster manager and in node 1's container interface; the ping recovers,
# and what it lost is measured and reported (bounded: under 1 s of loss).
# A restart keeps the new key (it is in the key file).
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 3
t_ok "ADD c1a" c_ctr_add 1 c1a
t_ok "ADD c2a" c_ctr_add 2 c2a
t_ok "c1a -> c2a" c_ping c1a "${C_ADDR[c2a]}"
t_ok "c2a -> c1a" c_ping c2a "${C_ADDR[c1a]}"

# The node peer in container C's WireGuard interface (the plugin's device:
# "wgc" + BLAKE2b-128 of "containerId\0ifname", userspace; eth0 in the
# container's namespace, kernel).
ctr_node_peer() {
	local dev
	if [ "$C_BACKEND" = userspace ]; then
		dev=$(python3 -c 'import hashlib,sys; print("wgc" + hashlib.blake2b(sys.argv[1].encode() + b"\0" + sys.argv[2].encode(), digest_size=16).hexdigest()[:12])' "${C_ID[$1]}" eth0)
		wg show "$dev" peers
	else
		nq "$1" wg show eth0 peers
	fi
}
node_has() { nq "h$1" wg show "$(c_ifname "$1")" peers | grep -qxF "$2"; }
# rotated_on I: node I has the new key and not the old one.
rotated_on() { node_has "$1" "$NEW" && ! node_has "$1" "$OLD"; }

OLD=$(c_node_key 1)
t_eq "c1a's node peer is node 1's key" "$OLD" "$(ctr_node_peer c1a)"

PING=$T_TMP/rotping
ip netns exec "$(t_ns c1a)" ping -n -i 0.05 "${C_ADDR[c2a]}" >"$PING" 2>&1 &
PING_PID=$!
T_PIDS+=("$PING_PID")
t_wait "ping answering" 10 grep -q 'bytes from' "$PING"
t_wait "ping steady" 10 sh -c "[ \$(grep -c 'bytes from' '$PING') -ge 20 ]"

t0=$(date +%s%N)
out=$(nq h1 "$C_NM_BIN" rotate-key --socket "$(c_sock 1)") || t_log "rotate-key failed"
rotate_ms=$(c_ms_since "$t0")
t_log "rotate-key: $out (${rotate_ms} ms)"
NEW=$(awk '{print $3}' <<<"$out")
t_ok "rotate-key printed a new key" test -n "$NEW" -a "$NEW" != "$OLD"
# Every other node within 1 s of rotate-key starting (the call itself included).
deadline=$((t0 + 1000000000))
pending="2 3"
while [ -n "$pending" ] && [ "$(date +%s%N)" -le "$deadline" ]; do
	left=""
	for i in $pending; do rotated_on "$i" || left="$left $i"; done
	pending=${left# }
	[ -z "$pending" ] || sleep 0.02
done
followed_ms=$(c_ms_since "$t0")
t_eq "new key on every other node within 1 s (nodes still old: none)" "" "$pending"
t_log "other nodes followed ${followed_ms} ms after rotate-key started"
t_eq "node 1 interface has the new key" "$NEW" "$(nq h1 wg show "$(c_ifname 1)" public-key)"
t_eq "GetNode answers the new key" "$NEW" "$(c_nm_rpc 1 GetNode '{}' | jq -r .node.publicKey)"
t_eq "the cluster manager has the new key" "$NEW" \
	"$(c_cm_rpc ListNodes '{}' | jq -r '.nodes[] | select(.name == "node1") | .publicKey')"
t_eq "c1a's node peer is the new key" "$NEW" "$(ctr_node_peer c1a)"

# Let the ping run on until 40 answers after the rotation, then judge it.
seq0=$(grep -o 'icmp_seq=[0-9]*' "$PING" | tail -n 1 | cut -d= -f2)
recovered() { grep -o 'icmp_seq=[0-9]*' "$PING" | cut -d= -f2 | awk -v s="${seq0:-0}" '$1 > s + 40 { f = 1 } END { exit !f }'; }
t_ok "the ping recovers after the rotation" t_wait "ping after rotation" 15 recovered
kill -INT "$PING_PID" 2>/dev/null || true
wait "$PING_PID" 2>/dev/null || true
answered=$(grep -o 'icmp_seq=[0-9]*' "$PING" | cut -d= -f2 | sort -un | grep -c . || true)
last=$(grep -o 'icmp_seq=[0-9]*' "$PING" | cut -d= -f2 | sort -n | tail -n 1)
lost=$(( ${last:-0} - answered ))
maxrtt=$(grep -o 'time=[0-9.]*' "$PING" | cut -d= -f2 | sort -n | tail -n 1)
t_log "ROTATION LOSS: $lost of ${last:-0} echo requests (every 50 ms) lost, about $((lost * 50)) ms; slowest answer ${maxrtt:-?} ms; rotate-key took ${rotate_ms} ms, other nodes followed after ${followed_ms} ms"
t_ok "rotation lost under 1 s of a 50 ms ping ($lost lost)" test "$lost" -lt 20

t_ok "c2a -> c1a after the rotation" c_ping c2a "${C_ADDR[c1a]}"
C_KEY[1]=$NEW
t_ok "mesh converged with the new key" c_converged

c_nm_stop 1
c_nm_start 1
c_nm_wait 1
t_eq "after a restart node 1 keeps the new key" "$NEW" "$(c_nm_rpc 1 GetNode '{}' | jq -r .node.publicKey)"
t_ok "c1a -> c2a after the restart" c_ping c1a "${C_ADDR[c2a]}"

c_leak_check
t_done

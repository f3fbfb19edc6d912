#!/bin/bash
# --preshared-key-file: every node-to-node and container-to-node peering has
# the preshared key BLAKE2b-256(secret, sorted public keys) (checked against an independent
# BLAKE2b-256 in Python); nodes and containers mesh with it; a node holding
# another secret gets no handshake; a key file with a loose mode or bad
# content is refused with a clear error; the secret and the derived keys are
# in no log and no answer of the cluster manager.
. "$(dirname "$0")/../lib_cluster.sh"

wg genpsk >"$T_TMP/psk"
chmod 600 "$T_TMP/psk"
wg genpsk >"$T_TMP/psk.other"
chmod 600 "$T_TMP/psk.other"
SECRET=$(cat "$T_TMP/psk")
C_NM_FLAGS=(--preshared-key-file "$T_TMP/psk")

# --- a bad key file is refused before anything else happens
cp "$T_TMP/psk" "$T_TMP/psk.loose"
chmod 644 "$T_TMP/psk.loose"
printf 'not-a-key\n' >"$T_TMP/psk.bad"
chmod 600 "$T_TMP/psk.bad"
for f in loose bad; do
	rc=0
	"$C_NM_BIN" --cluster-manager http://127.0.0.1:1 --endpoint 127.0.0.1:51820 \
		--node-name badpsk --state-dir "$T_TMP/badpsk.$f" --socket "$T_TMP/badpsk.$f.sock" \
		--preshared-key-file "$T_TMP/psk.$f" >"$T_TMP/badpsk.$f.log" 2>&1 || rc=$?
	t_eq "key file $f: the node manager refuses to start" 1 "$rc"
done
t_ok "mode looser than 0600: said so" grep -q 'mode looser than 0600' "$T_TMP/badpsk.loose.log"
t_ok "bad content: said so" grep -q 'not 44 characters of base64' "$T_TMP/badpsk.bad.log"

c_cluster 2
t_ok "ADD c1a on node 1" c_ctr_add 1 c1a
t_ok "ADD c1b on node 1" c_ctr_add 1 c1b
t_ok "ADD c2a on node 2" c_ctr_add 2 c2a
t_ok "c1a pings c2a (across nodes, preshared keys on both hops)" c_ping c1a "${C_ADDR[c2a]}"
t_ok "c2a pings c1b" c_ping c2a "${C_ADDR[c1b]}"
t_ok "c1a pings c1b (same node)" c_ping c1a "${C_ADDR[c1b]}"
for c in c1a c2a; do t_ok "CHECK $c (with a preshared key)" c_cni check "${C_NODE[$c]}" "$c"; done

# want_psk A B: BLAKE2b-256(key = secret, message = the two keys sorted), computed independently.
want_psk() {
	python3 - "$SECRET" "$1" "$2" <<'PY'
import base64, hashlib, sys
s, a, b = (base64.b64decode(x) for x in sys.argv[1:4])
print(base64.b64encode(hashlib.blake2b(b"".join(sorted([a, b])), key=s, digest_size=32).digest()).decode())
PY
}
for i in 1 2; do
	dump=$(c_wg "$i" show "$(c_ifname "$i")" dump | tail -n +2)
	t_eq "node $i: every peer has a preshared key" 0 "$(awk '$2 == "(none)"' <<<"$dump" | grep -c . || true)"
	me=$(c_node_key "$i")
	bad=0
	while read -r pub psk _; do
		[ "$psk" = "$(want_psk "$me" "$pub")" ] || bad=$((bad + 1))
	done <<<"$dump"
	t_eq "node $i: each preshared key is BLAKE2b(secret, sorted keys)" 0 "$bad"
	t_eq "node $i: peers checked" "$([ "$i" = 1 ] && echo 3 || echo 2)" "$(grep -c . <<<"$dump")"
done
# check_psks I: every peer of node I has the key derived with node I's key.
check_psks() {
	local i=$1 me pub psk bad=0 dump
	me=$(c_nm_rpc "$i" GetNode '{}' | jq -r .node.publicKey)
	dump=$(c_wg "$i" show "$(c_ifname "$i")" dump | tail -n +2)
	while read -r pub psk _; do
		[ "$psk" = "$(want_psk "$me" "$pub")" ] || bad=$((bad + 1))
	done <<<"$dump"
	[ "$bad" = 0 ]
}
PSKS=$(for i in 1 2; do c_wg "$i" show "$(c_ifname "$i")" preshared-keys | awk '{print $2}'; done | sort -u)

# --- a node key rotation re-derives every preshared key of that node
out=$(nq h1 "$C_NM_BIN" rotate-key --socket "$(c_sock 1)") || t_log "rotate-key failed"
NEW=$(awk '{print $3}' <<<"$out")
t_ok "rotate-key on node 1 printed a new key" test -n "$NEW"
t_ok "node 1: its peers' preshared keys follow the new node key" t_wait "node 1 keys" 15 check_psks 1
t_ok "node 2: node 1's preshared key follows its new key" t_wait "node 2 keys" 15 check_psks 2
t_ok "after the rotation c1a still reaches c2a" c_ping c1a "${C_ADDR[c2a]}"
t_ok "after the rotation c2a still reaches c1b" c_ping c2a "${C_ADDR[c1b]}"
PSKS="$PSKS $(for i in 1 2; do c_wg "$i" show "$(c_ifname "$i")" preshared-keys | awk '{print $2}'; done | sort -u)"
C_KEY=()

# --- a node with another secret: no handshake with anyone
C_NODE_FLAGS[3]="--preshared-key-file $T_TMP/psk.other"
c_node_join 3
t_wait "nodes 1 and 2 list node 3 as a peer" 20 c_converged
t_ok "ADD c3a on node 3" c_ctr_add 3 c3a
t_fail "c3a cannot reach c1a (other secret)" nq c3a ping -n -q -c 3 -i 0.3 -w 4 "${C_ADDR[c1a]}"
k3=$(c_node_key 3)
t_eq "node 1: no handshake with node 3" 0 \
	"$(c_wg 1 show "$(c_ifname 1)" latest-handshakes | awk -v k="$k3" '$1 == k { print $2 }')"
t_ok "c3a still reaches its own node" c_ping c3a "$(c_node_addr 3)"
t_ok "c1a still reaches c2a" c_ping c1a "${C_ADDR[c2a]}"

# --- never logged, never sent to the cluster manager
c_cm_rpc ListNodes "{}" >"$T_TMP/answers.json"
c_cm_rpc ListPeers "{\"nodeName\":\"$(c_name 1)\"}" >>"$T_TMP/answers.json"
c_cm_rpc WatchPeers "{\"nodeName\":\"$(c_name 1)\"}" >>"$T_TMP/answers.json"
t_ok "cluster manager answers are not empty" grep -q "$(c_node_key 2)" "$T_TMP/answers.json"
for s in "$SECRET" $PSKS; do
	t_fail "secret or derived key not in any log or answer" \
		grep -rqF -- "$s" "$T_TMP"/*.log "$T_TMP/answers.json"
done
c_leak_check
t_done

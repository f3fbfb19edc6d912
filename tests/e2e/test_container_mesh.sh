#!/bin/bash
# "containerMesh": true: the containers of one node peer with each other
# directly. With three mesh containers on node 1 each container interface
# has exactly the node peer plus one peer per other (AllowedIPs its address,
# endpoint its UDP socket on the host); a ping and a 2 MiB TCP transfer
# between two of them go through that peer (its counters grow by the
# payload) and not through the node interface (the two containers' peers
# there move by less than 8 KiB: keepalives at most); traffic to another
# node still goes through the node. A container of node 1 without the flag
# and a container of another node are in no one's mesh. DEL of one drops it
# from the other two; an ADD again brings it back with its new key. With
# --preshared-key-file every container-to-container peering has the same
# key at both ends, BLAKE2b-256(secret, the two container keys sorted) as
# every other peering (checked in Python where there is one); node 3 runs
# without a secret and meshes without preshared keys. A restart of the node
# manager converges peers changed while it was down (one removed, one
# unknown added). DEL leaves nothing (the leak check).
# Works on both backends (E2E_BACKEND=kernel in the VM: the kernel device is
# reached inside the container's namespace).
. "$(dirname "$0")/../lib_cluster.sh"

wg genpsk >"$T_TMP/psk"
chmod 600 "$T_TMP/psk"
SECRET=$(cat "$T_TMP/psk")
C_NODE_FLAGS[1]="--preshared-key-file $T_TMP/psk"
C_NODE_FLAGS[2]="--preshared-key-file $T_TMP/psk"
C_CNI_CONF_EXTRA='"containerMesh": true'

# The container's WireGuard device: userspace by the plugin's host-side
# name (BLAKE2b-128 of "containerID\0ifname", cni/util.c), kernel as eth0
# inside the container.
ctr_tmp() { echo "wgc$(printf '%s\0%s' "${C_ID[$1]}" eth0 | b2sum -l 128 | cut -c1-12)"; }
ctr_wg() {
	local c=$1 verb=$2; shift 2
	if [ "$C_BACKEND" = kernel ]; then nq "$c" wg "$verb" eth0 "$@"; else wg "$verb" "$(ctr_tmp "$c")" "$@"; fi
}
ctr_key() {
	c_nm_rpc "${C_NODE[$1]}" ListAllocations |
		jq -r --arg id "${C_ID[$1]}" '.allocations[] | select(.containerId == $id) | .publicKey'
}
# ctr_want C OTHERS...: C's peers should be its node's key and the others' keys.
ctr_want() {
	local c=$1 o; shift
	{ c_node_key "${C_NODE[$c]}"; for o in "$@"; do ctr_key "$o"; done; } | sort | xargs
}
ctr_peers() { ctr_wg "$1" show peers | sort | xargs; }
ctr_has_key() { ctr_wg "$1" show peers | grep -qxF -- "$2"; }
# ctr_peer_field C OTHER FIELD: OTHER's peer on C's interface, one wg show field.
ctr_peer_field() { ctr_wg "$1" show "$3" | awk -v k="$(ctr_key "$2")" '$1 == k { $1 = ""; print substr($0, 2) }'; }
# mesh_ok C OTHERS...: exactly the node peer and the others.
mesh_ok() { local c=$1; shift; [ "$(ctr_peers "$c")" = "$(ctr_want "$c" "$@")" ]; }
# node_bytes I C...: rx + tx of those containers' peers on node I's interface.
node_bytes() {
	local i=$1 keys=(); shift
	local c; for c in "$@"; do keys+=("$(ctr_key "$c")"); done
	c_wg "$i" show "$(c_ifname "$i")" transfer |
		awk -v ks="${keys[*]}" 'BEGIN { n = split(ks, k, " "); for (j = 1; j <= n; j++) want[k[j]] = 1 }
			$1 in want { s += $2 + $3 } END { print s + 0 }'
}
want_psk() {
	python3 - "$SECRET" "$1" "$2" <<'PY'
import base64, hashlib, sys
s, a, b = (base64.b64decode(x) for x in sys.argv[1:4])
print(base64.b64encode(hashlib.blake2b(b"".join(sorted([a, b])), key=s, digest_size=32).digest()).decode())
PY
}

c_cluster 2
for c in c1a c1b c1c; do t_ok "ADD $c on node 1 (containerMesh)" c_ctr_add 1 "$c"; done
t_ok "ADD c2a on node 2 (containerMesh)" c_ctr_add 2 c2a

t_eq "ListAllocations: every node 1 container is in the mesh" "true true true" \
	"$(c_nm_rpc 1 ListAllocations | jq -r '[.allocations[].containerMesh] | map(tostring) | join(" ")')"
t_ok "c1a: node peer, c1b and c1c" mesh_ok c1a c1b c1c
t_ok "c1b: node peer, c1a and c1c" mesh_ok c1b c1a c1c
t_ok "c1c: node peer, c1a and c1b" mesh_ok c1c c1a c1b
t_ok "c2a: only its node peer (alone on node 2)" mesh_ok c2a
t_eq "c1a's peer c1b: AllowedIPs c1b's address" "${C_ADDR[c1b]}/32" "$(ctr_peer_field c1a c1b allowed-ips)"
ep=$(c_nm_rpc 1 ListAllocations | jq -r --arg id "${C_ID[c1b]}" '.allocations[] | select(.containerId == $id) | .endpoint')
t_eq "c1a's peer c1b: endpoint c1b's registered UDP endpoint" "$ep" "$(ctr_peer_field c1a c1b endpoints)"
t_eq "node 1 interface: one container peer per container" 3 "$(c_container_peers 1 | grep -c .)"
t_ok "CHECK c1a (its extra peers are not the node's business)" c_cni check 1 c1a

# --- preshared keys: one per container pair, the same at both ends
ab=$(ctr_peer_field c1a c1b preshared-keys)
t_ok "c1a-c1b has a preshared key" test -n "$ab" -a "$ab" != "(none)"
t_eq "c1b holds the same key for c1a" "$ab" "$(ctr_peer_field c1b c1a preshared-keys)"
t_ok "c1a-c1c has another one" test -n "$(ctr_peer_field c1a c1c preshared-keys)" -a \
	"$(ctr_peer_field c1a c1c preshared-keys)" != "$ab"
if command -v python3 >/dev/null; then
	t_eq "c1a-c1b key is BLAKE2b-256(secret, sorted container keys)" \
		"$(want_psk "$(ctr_key c1a)" "$(ctr_key c1b)")" "$ab"
else
	t_log "no python3: the derivation is not recomputed here"
fi

# --- traffic between two containers of node 1 takes the direct peer
t_ok "c1a pings c1b" c_ping c1a "${C_ADDR[c1b]}"
t_ok "c1c pings c1a" c_ping c1c "${C_ADDR[c1a]}"
node_before=$(node_bytes 1 c1a c1b)
peer_before=$(ctr_peer_field c1a c1b transfer | awk '{print $1 + $2}')
listening() { nq "$1" ss -Hltn 'sport = :5001' | grep -q .; }
nq c1b timeout 30 nc -v -n -l 5001 >"$T_TMP/tcp.out" 2>"$T_TMP/tcp.err" &
pid=$!
T_PIDS+=("$pid")
t_wait "listener in c1b" 10 listening c1b
head -c 2097152 /dev/urandom >"$T_TMP/blob"
t_ok "c1a sends 2 MiB to c1b over TCP" nq c1a timeout 30 nc -N -n "${C_ADDR[c1b]}" 5001 <"$T_TMP/blob"
wait "$pid" || true
t_ok "the transfer is intact" cmp -s "$T_TMP/blob" "$T_TMP/tcp.out"
t_ok "c1a pings c1b 20 times" nq c1a ping -n -q -c 20 -i 0.05 -w 10 "${C_ADDR[c1b]}"
node_after=$(node_bytes 1 c1a c1b)
peer_after=$(ctr_peer_field c1a c1b transfer | awk '{print $1 + $2}')
t_log "node interface: c1a+c1b peers moved $((node_after - node_before)) bytes; c1a's peer c1b moved $((peer_after - peer_before))"
t_ok "the node interface's c1a and c1b peers moved by less than 8 KiB" \
	test $((node_after - node_before)) -lt 8192
t_ok "c1a's direct peer c1b carried the 2 MiB" test $((peer_after - peer_before)) -ge 2097152

# --- another node, and a container of node 1 without the flag
t_ok "c1a pings c2a (across nodes, through the node)" c_ping c1a "${C_ADDR[c2a]}"
t_ok "c2a pings c1c" c_ping c2a "${C_ADDR[c1c]}"
t_netns_add c1x
t_ok "ADD c1x on node 1 without containerMesh" c_plugin ADD 1 c1x >/dev/null
C_ADDR[c1x]=$(c_nm_rpc 1 ListAllocations | jq -r --arg id "ctr-$$-c1x" \
	'.allocations[] | select(.containerId == $id) | .addresses[0]' | cut -d/ -f1)
t_eq "c1x: not in the mesh (ListAllocations)" false \
	"$(c_nm_rpc 1 ListAllocations | jq -r --arg id "ctr-$$-c1x" '.allocations[] | select(.containerId == $id) | .containerMesh // false')"
t_ok "c1a, c1b, c1c: no peer for c1x" mesh_ok c1a c1b c1c
t_ok "c1b: still c1a and c1c" mesh_ok c1b c1a c1c
t_ok "c1a pings c1x (through the node)" c_ping c1a "${C_ADDR[c1x]}"
t_ok "DEL c1x" c_plugin DEL 1 c1x >/dev/null
if command -v b2sum >/dev/null; then
	c_no_leftovers 1 c1x
else # the VM: no b2sum for the temporary name, and no userspace process to look for
	t_fail "c1x: no allocation on 1" c_has_alloc 1 c1x
	t_eq "c1x: only lo left" lo "$(c_links c1x)"
fi

# --- containers come and go
oldb=$(ctr_key c1b)
t_ok "DEL c1b" c_ctr_del c1b
t_ok "c1a: node peer and c1c only" mesh_ok c1a c1c
t_ok "c1c: node peer and c1a only" mesh_ok c1c c1a
t_fail "c1a keeps no peer with c1b's key" ctr_has_key c1a "$oldb"
t_fail "c1c keeps no peer with c1b's key" ctr_has_key c1c "$oldb"
t_ok "c1a pings c1c" c_ping c1a "${C_ADDR[c1c]}"
t_ok "ADD c1b again" c_ctr_attach 1 c1b
t_ok "c1b's new key differs" test "$(ctr_key c1b)" != "$oldb"
t_ok "c1a: c1b is back" mesh_ok c1a c1b c1c
t_ok "c1b: c1a and c1c" mesh_ok c1b c1a c1c
t_ok "c1c: c1a and c1b" mesh_ok c1c c1a c1b
t_ok "c1b pings c1c" c_ping c1b "${C_ADDR[c1c]}"

# --- a restart converges what changed while the node manager was down
kc=$(ctr_key c1c)
c_nm_stop 1
ctr_wg c1a set peer "$kc" remove
bogus=$(c_pubkey)
ctr_wg c1c set peer "$bogus" allowed-ips 10.100.200.9/32 endpoint 127.0.0.1:9
t_fail "while down: c1a lost c1c" ctr_has_key c1a "$kc"
t_ok "while down: c1c has the unknown peer" ctr_has_key c1c "$bogus"
c_nm_start 1
c_nm_wait 1
t_ok "after the restart c1a has c1c again" t_wait "c1a mesh repaired" 20 mesh_ok c1a c1b c1c
t_ok "after the restart c1c's unknown peer is gone" t_wait "c1c mesh repaired" 20 mesh_ok c1c c1a c1b
t_ok "the node manager logged the repair" grep -q 'mesh drift repaired' "$(c_nm_log 1)"
t_ok "c1a pings c1c again" c_ping c1a "${C_ADDR[c1c]}"

# --- a node without a secret: its containers mesh without preshared keys
c_node_join 3
t_ok "ADD c3a on node 3" c_ctr_add 3 c3a
t_ok "ADD c3b on node 3" c_ctr_add 3 c3b
t_ok "c3a: node peer and c3b (node 3's mesh only)" mesh_ok c3a c3b
t_eq "c3a-c3b: no preshared key" "(none)" "$(ctr_peer_field c3a c3b preshared-keys)"
t_ok "c3a pings c3b" c_ping c3a "${C_ADDR[c3b]}"
t_ok "c1a: still node 1's mesh only" mesh_ok c1a c1b c1c

for s in "$SECRET" "$ab"; do
	t_fail "secret or derived key in no log" grep -rqF -- "$s" "$T_TMP"/*.log
done
c_leak_check
t_done

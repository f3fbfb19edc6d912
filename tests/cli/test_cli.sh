#!/bin/bash
# wgcnictl against a running two-node cluster (cluster manager + two node
# managers with wireguard-go, in namespaces): every command's table holds the
# expected rows, -o json is the API's answer, and errors (daemon down,
# unknown node, bad token, usage) give one `wgcnictl: ...' line and the
# documented exit status.
# Two nodes with the token; each node manager also serves its API on
# 127.0.0.1:5242 in its namespace. Containers are attachments made through
# the node manager's API (c_api_attach): what wgcnictl shows does not depend
# on the CNI plugin.
C_NM_FLAGS=(--listen 127.0.0.1:5242)
. "$(dirname "$0")/../lib_cluster.sh"

c_need_ctl
c_cluster 2
t_wait "handshake between the nodes" 30 c_handshaken 1 2

# The one-line error contract.
t_error_line() { # what NAME regex
	t_eq "$1: one line on stderr" 1 "$(grep -c . "$T_TMP/$2.err")"
	t_ok "$1: message" grep -Eq "^wgcnictl: .*$3" "$T_TMP/$2.err"
	t_eq "$1: nothing on stdout" "" "$(c_out "$2")"
}
# row TABLE_FILE FIELD1 FIELD2...: a line whose whitespace-separated fields
# start with the given ones.
row() {
	local f=$1; shift
	awk -v want="$*" 'BEGIN { n = split(want, w, " ") }
		{ ok = 1; for (i = 1; i <= n; i++) if ($i != w[i]) ok = 0; if (ok) found = 1 }
		END { exit !found }' "$f"
}

key1=$(c_nm_rpc 1 GetNode '{}' | jq -r .node.publicKey)
key2=$(c_nm_rpc 2 GetNode '{}' | jq -r .node.publicKey)
api_nodes=$(c_cm_rpc ListNodes '{}')
sub1=$(jq -r '.nodes[] | select(.name == "node1") | .subnets | join(",")' <<<"$api_nodes")
sub2=$(jq -r '.nodes[] | select(.name == "node2") | .subnets | join(",")' <<<"$api_nodes")
t_ok "API gave node subnets" test -n "$sub1" -a -n "$sub2"

# --- usage ----------------------------------------------------------------
c_run help "$C_CTL" --help
t_eq "--help exits 0" 0 "$(c_rc help)"
for c in nodes node delete-node peers allocations status; do
	t_ok "--help lists $c" grep -Eq "^  $c( |$)" "$T_TMP/help.out"
done
t_ok "--help names the environment" grep -q WGCNI_CLUSTER_MANAGER "$T_TMP/help.out"
c_run version "$C_CTL" --version
t_eq "--version" "wgcnictl $(sed -n 's/^VERSION := *//p' "$T_ROOT/Makefile")" "$(c_out version)"
c_run noargs "$C_CTL"
t_eq "no command: exit 2" 2 "$(c_rc noargs)"
c_run unknown "$C_CTL" frobnicate
t_eq "unknown command: exit 2" 2 "$(c_rc unknown)"
t_ok "unknown command: named" grep -q "^wgcnictl: unknown command \`frobnicate'" "$T_TMP/unknown.err"
c_run noname "$C_CTL" node
t_eq "node without NAME: exit 2" 2 "$(c_rc noname)"
c_run extra "$C_CTL" nodes extra
t_eq "nodes with an argument: exit 2" 2 "$(c_rc extra)"
c_run badout "$C_CTL" -o yaml nodes
t_eq "-o yaml: exit 2" 2 "$(c_rc badout)"
t_ok "-o yaml: says why" grep -q "unknown output format \`yaml'" "$T_TMP/badout.err"
c_run badopt "$C_CTL" --frob nodes
t_eq "unknown option: exit 2" 2 "$(c_rc badopt)"
c_run badtimeout "$C_CTL" --timeout 0 nodes
t_eq "--timeout 0: exit 2" 2 "$(c_rc badtimeout)"

# --- nodes ------------------------------------------------------------------
c_run nodes c_ctl nodes
t_eq "nodes: exit 0" 0 "$(c_rc nodes)"
t_ok "nodes: header" grep -Eq '^NAME +SUBNETS +ENDPOINT +ADDRESS +LAST SEEN +STALE +PUBLIC KEY$' "$T_TMP/nodes.out"
t_eq "nodes: one row per node" 3 "$(grep -c . "$T_TMP/nodes.out")"
t_ok "nodes: node1 row" row "$T_TMP/nodes.out" node1 "$sub1" "$(c_endpoint 1)"
t_ok "nodes: node2 row" row "$T_TMP/nodes.out" node2 "$sub2" "$(c_endpoint 2)"
t_ok "nodes: node1 key" grep -q "^node1 .*$key1\$" "$T_TMP/nodes.out"
t_ok "nodes: last seen is relative" grep -Eq '^node1 .* [0-9]+s ago ' "$T_TMP/nodes.out"
t_ok "nodes: live nodes are not stale" grep -Eq '^node1 .* ago +no ' "$T_TMP/nodes.out"
# Columns line up: every row has PUBLIC KEY at the header's offset.
col=$(head -1 "$T_TMP/nodes.out" | awk '{ print index($0, "PUBLIC KEY") }')
t_eq "nodes: columns aligned" "$col $col" \
	"$(tail -n +2 "$T_TMP/nodes.out" | awk -v k1="$key1" -v k2="$key2" '{ i = index($0, k1); if (!i) i = index($0, k2); printf "%s%d", (NR > 1 ? " " : ""), i }')"

c_run nodes_json c_ctl -o json nodes
t_eq "nodes -o json: exit 0" 0 "$(c_rc nodes_json)"
t_ok "nodes -o json parses" jq -e . "$T_TMP/nodes_json.out" >/dev/null
# lastSeen moves with every long poll: compare the rest exactly.
t_eq "nodes -o json is ListNodes" \
	"$(c_cm_rpc ListNodes '{}' | jq -cS '.nodes |= (map(del(.lastSeen)) | sort_by(.name))')" \
	"$(jq -cS '.nodes |= (map(del(.lastSeen)) | sort_by(.name))' "$T_TMP/nodes_json.out")"
t_eq "nodes -o json has lastSeen" 2 "$(jq '[.nodes[].lastSeen | select(. != null and . != "")] | length' "$T_TMP/nodes_json.out")"

# --- node NAME --------------------------------------------------------------
c_run node1 c_ctl node node1
t_eq "node node1: exit 0" 0 "$(c_rc node1)"
t_ok "node node1: name" grep -qx "Name: *node1" "$T_TMP/node1.out"
t_ok "node node1: subnets" grep -qx "Subnets: *${sub1//,/, }" "$T_TMP/node1.out"
t_ok "node node1: endpoint" grep -qx "Endpoint: *$(c_endpoint 1)" "$T_TMP/node1.out"
t_ok "node node1: key" grep -qx "Public key: *$key1" "$T_TMP/node1.out"
t_ok "node node1: last seen" grep -Eq "^Last seen: *[0-9]+s ago \(.*\)$" "$T_TMP/node1.out"
c_run node1_json c_ctl -o json node node1
t_eq "node -o json is the API's Node" \
	"$(c_cm_rpc ListNodes '{}' | jq -cS '.nodes[] | select(.name == "node1") | del(.lastSeen)')" \
	"$(jq -cS 'del(.lastSeen)' "$T_TMP/node1_json.out")"
c_run nosuch c_ctl node nosuch
t_eq "node nosuch: exit 1" 1 "$(c_rc nosuch)"
t_error_line "node nosuch" nosuch "node \`nosuch' not found"

# --- allocations ------------------------------------------------------------
id_a=$(printf 'a%.0s' {1..8})$(head -c 28 /dev/urandom | od -An -tx1 | tr -d ' \n')
id_b=$(printf 'b%.0s' {1..8})$(head -c 28 /dev/urandom | od -An -tx1 | tr -d ' \n')
pub_a=$(c_api_attach 1 "$id_a" eth0)
pub_b=$(c_api_attach 1 "$id_b" net1)
api_allocs=$(c_nm_rpc 1 ListAllocations '{}')
addr_a=$(jq -r --arg id "$id_a" '.allocations[] | select(.containerId == $id) | .addresses | join(",")' <<<"$api_allocs")
addr_b=$(jq -r --arg id "$id_b" '.allocations[] | select(.containerId == $id) | .addresses | join(",")' <<<"$api_allocs")
t_ok "API gave addresses" test -n "$addr_a" -a -n "$addr_b"

c_run allocs c_ctl_nm 1 allocations
t_eq "allocations: exit 0" 0 "$(c_rc allocs)"
t_ok "allocations: header" grep -Eq '^CONTAINER +IFNAME +ADDRESSES +NETNS +PUBLIC KEY$' "$T_TMP/allocs.out"
t_eq "allocations: one row each" 3 "$(grep -c . "$T_TMP/allocs.out")"
t_ok "allocations: container a" row "$T_TMP/allocs.out" "${id_a:0:12}" eth0 "$addr_a" "/run/netns/$T_ID-$id_a" "$pub_a"
t_ok "allocations: container b" row "$T_TMP/allocs.out" "${id_b:0:12}" net1 "$addr_b" "/run/netns/$T_ID-$id_b" "$pub_b"
c_run allocs_json c_ctl_nm 1 -o json allocations
t_eq "allocations -o json is ListAllocations" \
	"$(c_nm_rpc 1 ListAllocations '{}' | jq -cS '.allocations |= sort_by(.containerId)')" \
	"$(jq -cS '.allocations |= sort_by(.containerId)' "$T_TMP/allocs_json.out")"
c_run allocs_http nq h1 "$C_CTL" --node-manager http://127.0.0.1:5242 allocations
t_eq "allocations over http:// is the same table" "$(c_out allocs)" "$(c_out allocs_http)"
c_run allocs2 c_ctl_nm 2 allocations
t_eq "allocations on node2: header only" 1 "$(grep -c . "$T_TMP/allocs2.out")"

# --- peers ------------------------------------------------------------------
t_wait "node1 exchanged traffic with node2" 20 c_handshaken 1 2
# Some kilobytes each way, for the human units.
a2=$(c_nm_rpc 2 GetNode '{}' | jq -r '.node.address' | cut -d, -f1 | cut -d/ -f1)
nq h1 ping -q -c 4 -i 0.2 -s 1200 -W 2 "$a2" >/dev/null
rx2() { c_nm_metrics 1 | awk -v k="$key2" 'index($0, "wgcni_peer_rx_bytes{") == 1 && index($0, k) { print $2 }'; }
rx_before=$(rx2)
c_run peers c_ctl_nm 1 peers
rx_after=$(rx2)
t_eq "peers: exit 0" 0 "$(c_rc peers)"
t_ok "peers: header" grep -Eq '^NAME +KIND +ALLOWED IPS +ENDPOINT +RX +TX +HANDSHAKE +PUBLIC KEY$' "$T_TMP/peers.out"
t_eq "peers: node2 and two containers" 4 "$(grep -c . "$T_TMP/peers.out")"
# peer_row FILE NAME KIND ALLOWED HANDSHAKE_REGEX KEY: the row's fields
# (RX and TX are "<n> <unit>", HANDSHAKE "<n>s ago" or "never").
peer_row() {
	awk -v name="$2" -v kind="$3" -v allowed="$4" -v hs="$5" -v key="$6" '
		$1 == name && $2 == kind && $3 == allowed && $NF == key {
			off = $(NF - 1) == "never" ? 1 : 2
			h = off == 1 ? "never" : $(NF - 2) " " $(NF - 1)
			u = "^(B|KiB|MiB|GiB)$"
			if (h ~ hs && $(NF - off - 1) ~ u && $(NF - off - 3) ~ u) found = 1
		}
		END { exit !found }' "$1"
}
t_ok "peers: node2 is a node peer, handshake seconds ago" \
	peer_row "$T_TMP/peers.out" node2 node - '^[0-9]+s ago$' "$key2"
t_ok "peers: node2 RX and TX in KiB" \
	awk -v key="$key2" '$1 == "node2" && $NF == key && $(NF - 3) == "KiB" && $(NF - 5) == "KiB" { f = 1 } END { exit !f }' "$T_TMP/peers.out"
# (a keepalive may land between the scrapes: either value will do)
t_ok "peers: node2 RX matches its counter" \
	awk -v key="$key2" -v m1="$rx_before" -v m2="$rx_after" '$1 == "node2" && $NF == key &&
		($(NF - 6) == sprintf("%.1f", m1 / 1024) || $(NF - 6) == sprintf("%.1f", m2 / 1024)) { f = 1 }
		END { exit !f }' "$T_TMP/peers.out"
t_ok "peers: container a with its address, no handshake" \
	peer_row "$T_TMP/peers.out" "${id_a:0:12}/eth0" container "$addr_a" '^never$' "$pub_a"
t_ok "peers: container b with its address, no handshake" \
	peer_row "$T_TMP/peers.out" "${id_b:0:12}/net1" container "$addr_b" '^never$' "$pub_b"
t_fail "peers: the node's own key is not a peer" grep -q "$key1" "$T_TMP/peers.out"
# With --cluster-manager, node peers show their subnets and endpoints.
c_run peers_cm nq h1 "$C_CTL" --node-manager "unix://$(c_sock 1)" \
	--cluster-manager "$C_CM_URL" --token-file "$C_TOKEN" peers
t_ok "peers --cluster-manager: node2 subnet and endpoint" \
	row "$T_TMP/peers_cm.out" node2 node "$sub2" "$(c_endpoint 2)"

c_run peers_json c_ctl_nm 1 -o json peers
t_ok "peers -o json parses" jq -e . "$T_TMP/peers_json.out" >/dev/null
t_eq "peers -o json: node is GetNode's" "$(c_nm_rpc 1 GetNode '{}' | jq -cS .node)" \
	"$(jq -cS .node "$T_TMP/peers_json.out")"
t_eq "peers -o json: keys" "$(printf '%s\n' "$key2" "$pub_a" "$pub_b" | sort | tr '\n' ' ')" \
	"$(jq -r '.peers[].publicKey' "$T_TMP/peers_json.out" | sort | tr '\n' ' ')"
t_eq "peers -o json: node2 kind" node \
	"$(jq -r --arg k "$key2" '.peers[] | select(.publicKey == $k) | .kind' "$T_TMP/peers_json.out")"
t_ok "peers -o json: node2 received bytes" \
	jq -e --arg k "$key2" '.peers[] | select(.publicKey == $k) | .rxBytes > 0' "$T_TMP/peers_json.out" >/dev/null
hs=$(jq -r --arg k "$key2" '.peers[] | select(.publicKey == $k) | .lastHandshakeSeconds' "$T_TMP/peers_json.out")
wg_hs=$(wg show "$(c_ifname 1)" latest-handshakes | awk -v k="$key2" '$1 == k { print $2 }')
t_eq "peers -o json: handshake time is the interface's" "$wg_hs" "$hs"
t_eq "peers -o json: container a's allocation is ListAllocations'" \
	"$(jq -cS --arg id "$id_a" '.allocations[] | select(.containerId == $id)' <<<"$api_allocs")" \
	"$(jq -cS --arg k "$pub_a" '.peers[] | select(.publicKey == $k) | .allocation' "$T_TMP/peers_json.out")"

# --- status -----------------------------------------------------------------
c_run status nq h1 "$C_CTL" --node-manager "unix://$(c_sock 1)" \
	--cluster-manager "$C_CM_URL" --token-file "$C_TOKEN" status
t_eq "status: exit 0 when healthy" 0 "$(c_rc status)"
for c in "node manager" "cluster manager" registered peers pool; do
	t_ok "status: $c ok" grep -Eq "^$c +ok " "$T_TMP/status.out"
done
t_ok "status: peers handshaking" grep -Eq "^peers +ok +1/1 nodes handshaking .*2 containers" "$T_TMP/status.out"
pool=$(c_nm_metrics 1 | awk '/^wgcni_pool_addresses\{.*state="used"/ { u += $2 } /^wgcni_pool_addresses\{.*state="free"/ { f += $2 } END { printf "%d used, %d free", u, f }')
t_ok "status: pool usage ($pool)" grep -Eq "^pool +ok +$pool " "$T_TMP/status.out"
c_run status_json nq h1 "$C_CTL" --node-manager "unix://$(c_sock 1)" \
	--cluster-manager "$C_CM_URL" --token-file "$C_TOKEN" -o json status
t_eq "status -o json: ok" true "$(jq .ok "$T_TMP/status_json.out")"
t_eq "status -o json: states" "ok ok ok ok ok" "$(jq -r '[.checks[].state] | join(" ")' "$T_TMP/status_json.out")"
t_eq "status -o json: container peers" 2 "$(jq .containerPeers "$T_TMP/status_json.out")"

# Bad token: the cluster manager is up (/healthz is open) but refuses the rest.
echo wrong-token >"$T_TMP/bad-token"
c_run status_bad nq h1 "$C_CTL" --node-manager "unix://$(c_sock 1)" \
	--cluster-manager "$C_CM_URL" --token-file "$T_TMP/bad-token" status
t_eq "status with a bad token: exit 1" 1 "$(c_rc status_bad)"
t_ok "status with a bad token: registration FAIL, unauthenticated" \
	grep -Eq "^registered +FAIL +.*unauthenticated" "$T_TMP/status_bad.out"

# --- errors -----------------------------------------------------------------
c_run badtoken nq h1 "$C_CTL" --cluster-manager "$C_CM_URL" --token-file "$T_TMP/bad-token" nodes
t_eq "bad token: exit 1" 1 "$(c_rc badtoken)"
t_error_line "bad token" badtoken "unauthenticated.*--token-file"
c_run notoken nq h1 "$C_CTL" --cluster-manager "$C_CM_URL" nodes
t_eq "no token: exit 1" 1 "$(c_rc notoken)"
t_error_line "no token" notoken "unauthenticated"
c_run tokenmissing c_ctl --token-file "$T_TMP/no-such-token" nodes
t_eq "missing token file: exit 1" 1 "$(c_rc tokenmissing)"
t_error_line "missing token file" tokenmissing "cannot read token file \`$T_TMP/no-such-token'"
c_run cmdown nq h1 "$C_CTL" --cluster-manager "http://$C_UL.1:1" nodes
t_eq "cluster manager down: exit 1" 1 "$(c_rc cmdown)"
t_error_line "cluster manager down" cmdown "cannot reach the cluster manager at \`http://$C_UL.1:1'"
c_run nmdown "$C_CTL" --node-manager "unix://$T_TMP/none.sock" allocations
t_eq "node manager down: exit 1" 1 "$(c_rc nmdown)"
t_error_line "node manager down" nmdown "cannot reach the node manager at \`unix://$T_TMP/none.sock'"
c_run badurl "$C_CTL" --node-manager "ftp://x" peers
t_eq "bad URL: exit 1" 1 "$(c_rc badurl)"
t_error_line "bad URL" badurl "invalid node manager URL \`ftp://x'"
c_run statusdown nq h1 "$C_CTL" --node-manager "unix://$T_TMP/none.sock" --cluster-manager "http://127.0.0.1:1" status
t_eq "status, all down: exit 1" 1 "$(c_rc statusdown)"
t_ok "status, all down: node manager FAIL" grep -Eq "^node manager +FAIL +cannot reach" "$T_TMP/statusdown.out"

# --- environment ------------------------------------------------------------
c_run env nq h1 env WGCNI_CLUSTER_MANAGER="$C_CM_URL" WGCNI_TOKEN_FILE="$C_TOKEN" \
	WGCNI_OUTPUT=json "$C_CTL" nodes
t_eq "WGCNI_* environment: exit 0" 0 "$(c_rc env)"
t_eq "WGCNI_OUTPUT=json" "node1 node2" "$(jq -r '[.nodes[].name] | sort | join(" ")' "$T_TMP/env.out")"
c_run envwins nq h1 env WGCNI_CLUSTER_MANAGER="http://$C_UL.1:1" "$C_CTL" \
	--cluster-manager "$C_CM_URL" --token-file "$C_TOKEN" nodes
t_eq "command line wins over the environment" 0 "$(c_rc envwins)"
c_run envnm env WGCNI_NODE_MANAGER="unix://$(c_sock 2)" "$C_CTL" -o json allocations
t_eq "WGCNI_NODE_MANAGER" 0 "$(c_rc envnm)"

# --- delete-node ------------------------------------------------------------
# Stop node 2 first, or it would register itself again.
t_stop_pid "$T_PID_nm2"
c_run del c_ctl delete-node node2
t_eq "delete-node node2: exit 0" 0 "$(c_rc del)"
t_eq "delete-node node2: says so" "node \`node2' deleted" "$(c_out del)"
t_eq "node2 gone from ListNodes" node1 "$(c_cm_rpc ListNodes '{}' | jq -r '[.nodes[].name] | join(" ")')"
c_run nodes_after c_ctl nodes
t_fail "nodes: no node2 row" grep -q '^node2 ' "$T_TMP/nodes_after.out"
c_run del_again c_ctl delete-node node2
t_eq "delete-node again: exit 1" 1 "$(c_rc del_again)"
t_error_line "delete-node again" del_again "node \`node2' not found"
peer_gone() { ! c_ctl_nm 1 peers | grep -q "$key2"; }
t_wait "node1 dropped node2 as a peer" 30 peer_gone && r=0 || r=1
t_eq "peers: node2 gone after delete-node" 0 "$r"

# The attachments made through the API go as they came.
c_nm_rpc 1 Release "{\"containerId\":\"$id_a\",\"ifname\":\"eth0\"}" >/dev/null
c_nm_rpc 1 Release "{\"containerId\":\"$id_b\",\"ifname\":\"net1\"}" >/dev/null

# Every run above used the ASan/UBSan build: none may have complained.
t_fail "no sanitizer reports from wgcnictl" grep -lE 'AddressSanitizer|LeakSanitizer|runtime error' "$T_TMP"/*.err

c_leak_check
t_done

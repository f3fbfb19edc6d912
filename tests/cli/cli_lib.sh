# A small wgcni cluster in network namespaces for the wgcnictl and metrics
# tests (sourced after tests/lib.sh):
#
#   h1   veth 192.168.79.1/24: the cluster manager (:8080) and node manager 1
#   h2   veth 192.168.79.2/24: node manager 2
#   each node manager also serves its API on 127.0.0.1:5242 in its namespace
#
# Node managers run wireguard-go interfaces named w<PID>c<I> (unique
# host-wide), sockets and state under $T_TMP. The cluster manager requires a
# token. Containers are attachments made through the node manager's API
# (AllocateIP + RegisterKey with a fresh key pair): what wgcnictl shows does
# not depend on the CNI plugin.

CLI_CM_BIN=$T_BIN/wgcni-cluster-manager
CLI_NM_BIN=$T_BIN/wgcni-node-manager
CLI_CTL=${CLI_CTL:-$T_SANBIN/wgcnictl}
CLI_UL=192.168.79
CLI_CM_URL=http://$CLI_UL.1:8080
CLI_TOKEN=$T_TMP/token

cli_need() {
	local f
	for f in "$CLI_CM_BIN" "$CLI_NM_BIN" "$CLI_CTL"; do
		[ -x "$f" ] || { t_log "missing $f: make BUILDDIR=$BUILDDIR all sanitized"; exit 1; }
	done
	for f in wireguard-go wg jq curl; do
		command -v "$f" >/dev/null || { t_log "missing tool $f"; exit 1; }
	done
}

cli_ifname() { echo "w$$c$1"; }
cli_sock() { echo "$T_TMP/nm$1.sock"; }
cli_endpoint() { echo "$CLI_UL.$1:51820"; }

cli_cm_healthy() { nq h1 curl -sf -m 2 "$CLI_CM_URL/healthz"; }

cli_cm_start() {
	mkdir -p "$T_TMP/cm"
	t_spawn cm "$T_TMP/cm.log" ip netns exec "$(t_ns h1)" "$CLI_CM_BIN" \
		--listen "$CLI_UL.1:8080" --state-dir "$T_TMP/cm" --cluster-cidr 10.100.0.0/16 \
		--node-prefix-length 24 --token-file "$CLI_TOKEN"
	t_wait "cluster manager healthy" 20 cli_cm_healthy
}

cli_nm_start() {
	local i=$1
	t_spawn "nm$i" "$T_TMP/nm$i.log" ip netns exec "$(t_ns "h$i")" "$CLI_NM_BIN" \
		--cluster-manager "$CLI_CM_URL" --node-name "node$i" \
		--endpoint "$(cli_endpoint "$i")" --interface "$(cli_ifname "$i")" \
		--listen-port 51820 --socket "$(cli_sock "$i")" --state-dir "$T_TMP/nm$i" \
		--token-file "$CLI_TOKEN" --backend userspace --listen 127.0.0.1:5242
	# Stop it, then let it remove what it made (interface, routes, chains).
	t_on_cleanup "t_stop_pid \$T_PID_nm$i; ip netns exec $(t_ns "h$i") $CLI_NM_BIN --interface $(cli_ifname "$i") --socket $(cli_sock "$i") --state-dir $T_TMP/nm$i cleanup"
}

# cli_nm_rpc I Method JSON: a node manager call; body on stdout, fails on !2xx.
cli_nm_rpc() {
	curl -sf -m 10 --unix-socket "$(cli_sock "$1")" -H 'Content-Type: application/json' \
		-d "$3" "http://nm/wgcni.node.v1.NodeService/$2"
}
# cli_cm_rpc Method JSON [curl args]: a cluster manager call with the token.
cli_cm_rpc() {
	local m=$1 body=$2; shift 2
	nq h1 curl -sf -m 10 -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $(cat "$CLI_TOKEN")" -d "$body" "$@" \
		"$CLI_CM_URL/wgcni.cluster.v1.ClusterService/$m"
}
cli_nm_metrics() { curl -sf -m 10 --unix-socket "$(cli_sock "$1")" http://nm/metrics; }
cli_cm_metrics() { nq h1 curl -sf -m 10 "$CLI_CM_URL/metrics"; }

cli_nm_registered() {
	local key
	key=$(cli_nm_rpc "$1" GetNode '{}' | jq -r '.node.publicKey // empty') || return 1
	[ -n "$key" ] || return 1
	cli_cm_rpc ListNodes '{}' |
		jq -e --arg n "node$1" --arg k "$key" '.nodes[] | select(.name == $n and .publicKey == $k)' >/dev/null
}

# Both interfaces hold the other node as a peer.
cli_meshed() {
	[ "$(wg show "$(cli_ifname 1)" peers | wc -l)" -ge 1 ] &&
		[ "$(wg show "$(cli_ifname 2)" peers | wc -l)" -ge 1 ]
}

# A handshake in both directions: ping node 2's interface address from h1.
cli_handshaken() {
	local a2
	a2=$(cli_nm_rpc 2 GetNode '{}' | jq -r '.node.address' | cut -d, -f1 | cut -d/ -f1)
	nq h1 ping -c1 -W1 "$a2" >/dev/null 2>&1 || true
	wg show "$(cli_ifname 1)" latest-handshakes | awk '$2 > 0 { ok = 1 } END { exit !ok }' &&
		wg show "$(cli_ifname 2)" latest-handshakes | awk '$2 > 0 { ok = 1 } END { exit !ok }'
}

cli_cluster() {
	cli_need
	head -c 24 /dev/urandom | base64 >"$CLI_TOKEN"
	chmod 600 "$CLI_TOKEN"
	t_netns_add h1
	t_netns_add h2
	pp ip -n "$(t_ns h1)" link add eth0 type veth peer name eth0 netns "$(t_ns h2)"
	n h1 ip addr add "$CLI_UL.1/24" dev eth0
	n h2 ip addr add "$CLI_UL.2/24" dev eth0
	n h1 ip link set eth0 up
	n h2 ip link set eth0 up
	cli_cm_start
	cli_nm_start 1
	cli_nm_start 2
	t_wait "node 1 registered" 30 cli_nm_registered 1
	t_wait "node 2 registered" 30 cli_nm_registered 2
	t_wait "nodes peered" 30 cli_meshed
	t_wait "handshake between the nodes" 30 cli_handshaken
}

# cli_attach I ID IFNAME: an attachment on node I with a fresh key pair;
# prints the public key.
cli_attach() {
	local i=$1 id=$2 ifn=$3 priv pub
	priv=$(wg genkey)
	pub=$(wg pubkey <<<"$priv")
	cli_nm_rpc "$i" AllocateIP \
		"{\"containerId\":\"$id\",\"ifname\":\"$ifn\",\"netns\":\"/run/netns/$T_ID-$id\"}" >/dev/null
	cli_nm_rpc "$i" RegisterKey \
		"{\"containerId\":\"$id\",\"ifname\":\"$ifn\",\"publicKey\":\"$pub\",\"endpoint\":\"127.0.0.1:$((40000 + RANDOM % 20000))\"}" >/dev/null
	echo "$pub"
}

# wgcnictl against this cluster: cluster manager calls run inside h1.
ctl() { nq h1 "$CLI_CTL" --cluster-manager "$CLI_CM_URL" --token-file "$CLI_TOKEN" "$@"; }
ctl_nm() { local i=$1; shift; "$CLI_CTL" --node-manager "unix://$(cli_sock "$i")" "$@"; }

# Stop the node managers, run their `cleanup`, and check nothing is left:
# no interface, no wireguard-go socket, no process of ours.
cli_teardown_check() {
	local i ifn
	for i in 1 2; do
		ifn=$(cli_ifname "$i")
		t_stop_pid "$(eval echo "\$T_PID_nm$i")"
		nq "h$i" "$CLI_NM_BIN" --interface "$ifn" --socket "$(cli_sock "$i")" \
			--state-dir "$T_TMP/nm$i" cleanup >>"$T_TMP/cleanup.log" 2>&1 || true
		t_wait "node $i interface gone" 10 sh -c "! ip -n $(t_ns "h$i") link show $ifn" || true
		t_fail "node $i: no interface left" ip -n "$(t_ns "h$i")" link show "$ifn" 2>/dev/null
		t_wait "node $i UAPI socket gone" 10 test ! -e "/var/run/wireguard/$ifn.sock" || true
		t_fail "node $i: no wireguard-go socket left" test -e "/var/run/wireguard/$ifn.sock"
	done
}

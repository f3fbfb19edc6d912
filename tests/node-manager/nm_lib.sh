# Helpers for the node manager tests (sourced after tests/lib.sh).
#
# Underlay: namespace "cm" holds a bridge 192.168.77.1/24; every node
# namespace gets one veth into it (eth0, 192.168.77.1<i>). The cluster manager
# listens on 192.168.77.1:8080 inside "cm". Nothing touches the root namespace.

NM_BIN=${NM_BIN:-$T_SANBIN/wgcni-node-manager}
CM_BIN=${CM_BIN:-$T_SANBIN/wgcni-cluster-manager}
CM_URL=http://192.168.77.1:8080

nm_need() {
	local b
	for b in "$@"; do
		[ -x "$b" ] || { t_log "missing $b (build with make all sanitized)"; exit 1; }
	done
	command -v wireguard-go >/dev/null || { t_log "wireguard-go not installed"; exit 77; }
	command -v wg >/dev/null || { t_log "wg not installed"; exit 77; }
}

nm_underlay() {
	t_netns_add cm
	n cm ip link add br0 type bridge
	n cm ip addr add 192.168.77.1/24 dev br0
	n cm ip link set br0 up
}

# nm_node_ns NAME INDEX: namespace NAME with eth0 = 192.168.77.1<INDEX>.
nm_node_ns() {
	local name=$1 i=$2
	t_netns_add "$name"
	n cm ip link add "u$i" type veth peer name eth0 netns "$(t_ns "$name")"
	n cm ip link set "u$i" master br0 up
	n "$name" ip addr add "192.168.77.1$i/24" dev eth0
	n "$name" ip link set eth0 up
}

# nm_cm_start [extra cluster manager args...]
nm_cm_start() {
	t_spawn cm "$T_TMP/cm.log" ip netns exec "$(t_ns cm)" "$CM_BIN" \
		--listen 192.168.77.1:8080 --state-dir "$T_TMP/cm" \
		--cluster-cidr 10.100.0.0/16 "$@"
	t_wait "cluster manager healthz" 20 nq cm curl -sf -m 1 "$CM_URL/healthz"
}

# Per node: interface name, socket, state dir.
nm_if() { echo "wn$$$1"; }
nm_sock() { echo "$T_TMP/$1.sock"; }

# nm_start NAME INDEX [extra args...]: node manager for node NAME in its
# namespace; PID in T_PID_nm_<NAME>.
nm_start() {
	local name=$1 i=$2; shift 2
	t_spawn "nm_$name" "$T_TMP/nm-$name.log" ip netns exec "$(t_ns "$name")" \
		${NM_WRAP:-} "$NM_BIN" --cluster-manager "$CM_URL" --node-name "$name" \
		--endpoint "192.168.77.1$i:51820" --interface "$(nm_if "$i")" \
		--listen-port 51820 --socket "$(nm_sock "$name")" \
		--state-dir "$T_TMP/state-$name" --backend userspace "$@"
}
nm_pid() { local v="T_PID_nm_$1"; echo "${!v}"; }

nm_healthy() { curl -sf -m 1 --unix-socket "$(nm_sock "$1")" http://nm/healthz; }
nm_wait_ready() { t_wait "node manager $1 ready" 30 nm_healthy "$1"; }

# nm_call NAME Method JSON: Connect call on the node's unix socket; body on
# stdout, status in $(t_http).
nm_call() {
	t_rpc http://nm/wgcni.node.v1.NodeService "$2" "$3" --unix-socket "$(nm_sock "$1")"
}
nm_metrics() { curl -sf -m 5 --unix-socket "$(nm_sock "$1")" http://nm/metrics; }

# Peers of interface IF as "key endpoint allowed-ips handshake rx tx keepalive".
wg_peers() { wg show "$1" dump | tail -n +2 | awk '{print $1, $3, $4, $5, $6, $7, $8}'; }
wg_peer_count() { wg show "$1" peers | grep -c . || true; }

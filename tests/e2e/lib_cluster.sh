# A wgcni test cluster built from network namespaces, for the end-to-end
# scenarios. Source it from a test script (it sources tests/lib.sh itself):
#
#   . "$(dirname "$0")/lib_cluster.sh"
#   c_cluster 3            underlay, cluster manager, 3 node managers, converged
#   c_ctr_add 1 c1a        container namespace c1a attached on node 1 through
#                          the real `wgcni` plugin, driven by libcni (cnidriver)
#   c_ping c1a "${C_ADDR[c2a]}"
#   c_leak_check           DEL every container, stop the node managers, run
#                          `wgcni-node-manager cleanup`, assert nothing is left
#   t_done
#
# Topology (every name carries the run's PID through t_ns):
#   ul    a bridge br0; one veth per host, underlay 192.168.77.0/24
#   cm    cluster manager on 192.168.77.1:8080
#   hI    node I: underlay 192.168.77.(10+I), node manager with a userspace
#         (wireguard-go) interface named w<PID>n<I>, socket and state under $T_TMP
#   <c>   a container namespace; its wgcni interface is eth0
#
# The daemons are the release builds in $T_BIN (E2E_BIN=$T_SANBIN runs the
# ASan/UBSan builds instead; every scenario checks the logs for sanitizer
# reports either way). E2E_BACKEND selects the backend (default userspace:
# this host has no WireGuard module). Plugin diagnostics (stderr) go to
# $T_TMP/cni.log, shown with the daemon logs when a scenario fails.

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

C_BACKEND=${E2E_BACKEND:-userspace}
C_BINDIR=${E2E_BIN:-$T_BIN}
C_CM_BIN=$C_BINDIR/wgcni-cluster-manager
C_NM_BIN=$C_BINDIR/wgcni-node-manager
C_PLUGIN=$C_BINDIR/wgcni
C_DRIVER=$BUILDDIR/cnidriver
C_UL=192.168.77
C_CM_URL=http://$C_UL.1:8080
C_CIDR=10.100.0.0/16
C_CIDR6=${C_CIDR6:-}       # set (e.g. fd10:100::/48) for a dual-stack cluster
C_TOKEN=$T_TMP/token
C_NODES=()             # node indexes whose node manager should be running
declare -A C_ADDR      # container -> IPv4 address (no prefix)
declare -A C_ADDR6     # container -> IPv6 address, dual-stack clusters only
declare -A C_NODE      # container -> node index
declare -A C_ID        # container -> container ID
C_CTRS=()              # attached containers, in order
C_HOSTS=()             # every host namespace short name (cm, h1, ...)
C_WGNAMES=$T_TMP/wgnames   # wireguard-go interface names seen in this run

c_need() {
	local f
	for f in "$C_CM_BIN" "$C_NM_BIN" "$C_PLUGIN"; do
		[ -x "$f" ] || { t_log "missing $f: run make BUILDDIR=$BUILDDIR all"; exit 1; }
	done
	"$(dirname "${BASH_SOURCE[0]}")/../cnidriver/build.sh" || { t_log "cannot build cnidriver"; exit 1; }
	for f in ip wg jq curl nc ping; do
		command -v "$f" >/dev/null || { t_log "missing tool $f"; exit 1; }
	done
	[ "$C_BACKEND" != userspace ] || command -v wireguard-go >/dev/null ||
		{ t_log "missing wireguard-go"; exit 1; }
}

c_ifname() { echo "w$$n$1"; }
c_sock() { echo "$T_TMP/h$1/nm.sock"; }
c_endpoint() { echo "$C_UL.$((10 + $1)):51820"; }

# --- underlay -------------------------------------------------------------

c_underlay() {
	t_netns_add ul
	n ul ip link add br0 type bridge
	n ul ip link set br0 up
}

# c_host_add SHORT LASTOCTET
c_host_add() {
	local h=$1 ip=$2
	t_netns_add "$h"
	pp ip -n "$(t_ns ul)" link add "u-$h" type veth peer name eth0 netns "$(t_ns "$h")"
	n ul ip link set "u-$h" master br0 up
	n "$h" ip addr add "$C_UL.$ip/24" dev eth0
	n "$h" ip link set eth0 up
	C_HOSTS+=("$h")
}

# --- cluster manager --------------------------------------------------------

c_cm_healthy() { nq cm curl -sf -m 2 "$C_CM_URL/healthz"; }

c_cm_start() {
	mkdir -p "$T_TMP/cm"
	t_spawn cm "$T_TMP/cm.log" ip netns exec "$(t_ns cm)" "$C_CM_BIN" \
		--listen "$C_UL.1:8080" --state-dir "$T_TMP/cm" --cluster-cidr "$C_CIDR" \
		${C_CIDR6:+--cluster-cidr "$C_CIDR6" --node-prefix-length-v6 64} \
		--node-prefix-length 24 --token-file "$C_TOKEN"
	t_wait "cluster manager healthy" 15 c_cm_healthy
}

c_cm_stop() { t_stop_pid "$T_PID_cm" "${1:-TERM}"; }

# c_cm_rpc Method JSON: a cluster manager call, body on stdout, fails on !2xx.
c_cm_rpc() {
	nq cm curl -sf -m 10 -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $(cat "$C_TOKEN")" -d "$2" \
		"$C_CM_URL/wgcni.cluster.v1.ClusterService/$1"
}

# --- node managers ----------------------------------------------------------

c_nm_start() {
	local i=$1
	mkdir -p "$T_TMP/h$i"
	t_spawn "nm$i" "$T_TMP/nm$i.log" ip netns exec "$(t_ns "h$i")" "$C_NM_BIN" \
		--cluster-manager "$C_CM_URL" --node-name "node$i" \
		--endpoint "$(c_endpoint "$i")" --interface "$(c_ifname "$i")" --listen-port 51820 \
		--socket "$(c_sock "$i")" --state-dir "$T_TMP/h$i/state" \
		--token-file "$C_TOKEN" --backend "$C_BACKEND"
	echo "$(c_ifname "$i")" >>"$C_WGNAMES"
}

# c_nm_cleanup I: `wgcni-node-manager cleanup` on node I (its manager stopped).
c_nm_cleanup() {
	nq "h$1" "$C_NM_BIN" cleanup --interface "$(c_ifname "$1")" --socket "$(c_sock "$1")" \
		--state-dir "$T_TMP/h$1/state" --backend "$C_BACKEND" >>"$T_TMP/cleanup.log" 2>&1
}

c_nm_pid() { local v=T_PID_nm$1; echo "${!v}"; }
c_nm_stop() { t_stop_pid "$(c_nm_pid "$1")" "${2:-TERM}"; }

# c_nm_rpc I Method JSON
c_nm_rpc() {
	curl -sf -m 10 --unix-socket "$(c_sock "$1")" -H 'Content-Type: application/json' \
		-d "$3" "http://localhost/wgcni.node.v1.NodeService/$2"
}

c_nm_ready() {
	local out
	out=$(c_nm_rpc "$1" GetNode '{}') || return 1
	[ -n "$(jq -r '.node.publicKey // empty' <<<"$out")" ] || return 1
	nq "h$1" ip link show "$(c_ifname "$1")" >/dev/null 2>&1
}
c_nm_wait() { t_wait "node manager $1 ready" 20 c_nm_ready "$1" && c_node_key "$1" >/dev/null; }

# A node's public key; cached once read (it lives in the node's state dir
# and survives restarts), so convergence polls cost one `wg show` per node.
declare -A C_KEY
c_node_key() {
	[ -n "${C_KEY[$1]:-}" ] || C_KEY[$1]=$(c_nm_rpc "$1" GetNode '{}' | jq -r '.node.publicKey')
	echo "${C_KEY[$1]}"
}
c_node_addr() { c_nm_rpc "$1" GetNode '{}' | jq -r '.node.address' | cut -d, -f1 | cut -d/ -f1; }

# Public keys of the node peers on node I's interface: peers whose AllowedIPs
# include something wider than a host route (containers have /32 and /128).
c_node_peers() {
	nq "h$1" wg show "$(c_ifname "$1")" allowed-ips |
		awk '{ for (f = 2; f <= NF; f++) if ($f !~ /\/(32|128)$/ && $f != "(none)") { print $1; break } }' | sort
}
c_container_peers() {
	nq "h$1" wg show "$(c_ifname "$1")" allowed-ips |
		awk '{ node = 0; for (f = 2; f <= NF; f++) if ($f !~ /\/(32|128)$/) node = 1; if (!node) print $1 }' | sort
}

# Node I is converged when its node peers are exactly the other running nodes.
c_expected_peers() {
	local i=$1 j
	for j in "${C_NODES[@]}"; do [ "$j" = "$i" ] || c_node_key "$j"; done | sort
}
c_node_converged() { [ "$(c_node_peers "$1")" = "$(c_expected_peers "$1")" ]; }
c_converged() {
	local i
	for i in "${C_NODES[@]}"; do c_node_converged "$i" || return 1; done
}

# c_node_join I: host namespace, node manager, wait until ready.
c_node_join() {
	local i=$1
	c_host_add "h$i" $((10 + i))
	c_nm_start "$i"
	C_NODES+=("$i")
	c_nm_wait "$i"
}

# c_cluster N: the whole cluster with N nodes, converged.
c_cluster() {
	local n=$1 i
	c_need
	head -c 24 /dev/urandom | base64 >"$C_TOKEN"
	chmod 600 "$C_TOKEN"
	c_underlay
	c_host_add cm 1
	c_cm_start
	for i in $(seq 1 "$n"); do
		c_host_add "h$i" $((10 + i))
		c_nm_start "$i"
		C_NODES+=("$i")
	done
	for i in $(seq 1 "$n"); do c_nm_wait "$i"; done
	t_wait "node mesh converged ($n nodes)" 20 c_converged
}

# --- containers -------------------------------------------------------------

c_conflist() {
	local f=$T_TMP/h$1/wgnet.conflist
	[ -e "$f" ] || cat >"$f" <<EOF
{ "cniVersion": "1.0.0", "name": "wgnet",
  "plugins": [ { "type": "wgcni", "nodeManager": "unix://$(c_sock "$1")",
                 "backend": "$C_BACKEND", "userspaceImplementation": "wireguard-go" } ] }
EOF
	echo "$f"
}

# c_cni VERB NODE NAME: libcni on node NODE, as a runtime on that host would.
c_cni() {
	local verb=$1 i=$2 c=$3
	nq "h$i" env CNI_PATH="$C_BINDIR" CNI_CACHE_DIR="$T_TMP/cnicache" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$c" \
		"$C_DRIVER" "$verb" "$(c_conflist "$i")" "${C_ID[$c]}" "/run/netns/$(t_ns "$c")" eth0 \
		2>>"$T_TMP/cni.log"
}

# c_cni_net VERB NODE [ARGS...]: network-wide verbs (gc, status, version).
c_cni_net() {
	local verb=$1 i=$2; shift 2
	nq "h$i" env CNI_PATH="$C_BINDIR" "$C_DRIVER" "$verb" "$(c_conflist "$i")" "$@" 2>>"$T_TMP/cni.log"
}

# Remember the names of the wireguard-go processes living in our namespaces,
# so the leak check can prove their sockets went away.
c_scan_wg() {
	local ns pid
	for ns in "${T_NETNS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = wireguard-go ] || continue
			tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | tail -n 1
		done
	done >>"$C_WGNAMES"
	sort -u -o "$C_WGNAMES" "$C_WGNAMES"
}

# c_ctr_add NODE NAME: create the namespace, ADD through libcni, remember the
# address. Fails (non-zero) if ADD fails or returns no address.
c_ctr_new() {
	local i=$1 c=$2
	t_netns_add "$c"
	C_ID[$c]=$(printf '%s' "$T_ID-$c" | sha256sum | cut -c1-64)
	C_NODE[$c]=$i
}
c_ctr_attach() {
	local i=$1 c=$2 out
	out=$(c_cni add "$i" "$c") || return 1
	echo "$out" >"$T_TMP/result-$c.json"
	C_ADDR[$c]=$(jq -r '[.ips[].address | select(contains("."))][0]' <<<"$out" | cut -d/ -f1)
	C_ADDR6[$c]=$(jq -r '[.ips[].address | select(contains(":"))][0] // empty' <<<"$out" | cut -d/ -f1)
	[ -n "${C_ADDR[$c]}" ] && [ "${C_ADDR[$c]}" != null ] || return 1
	C_CTRS+=("$c")
}
c_ctr_add() {
	c_ctr_new "$1" "$2"
	pretty "h$1" "cnidriver add $2"
	c_ctr_attach "$1" "$2" || { t_log "ADD of $2 on node $1 failed: $(tail -n 1 "$T_TMP/cni.log")"; return 1; }
	c_scan_wg
}

c_ctr_del() {
	local c=$1 k out=()
	pretty "h${C_NODE[$c]}" "cnidriver del $c"
	c_cni del "${C_NODE[$c]}" "$c" || return 1
	for k in "${C_CTRS[@]}"; do [ "$k" = "$c" ] || out+=("$k"); done
	C_CTRS=("${out[@]}")
}

# c_ping SRC_CONTAINER ADDR: two echo replies within 12 s. Normally that
# takes 0.2 s; the bound leaves room for one WireGuard handshake retry
# (REKEY_TIMEOUT is 5 s), seen on first contact when both ends of a fresh
# node pair initiate at once. c_ping_all reports pairs slower than 3 s.
c_ping() { nq "$1" ping -n -q -c 2 -i 0.2 -w 12 "$2" >/dev/null 2>&1; }

# c_ping_all SRCS... -- DSTADDRS...: every source to every address but its
# own, each source's pings in parallel with the others. Prints one line per
# failed pair, "ok N" at the end when none failed.
c_ping_all() {
	local srcs=() dsts=() s d total=0 pids=() t0 ms
	while [ "$1" != -- ]; do srcs+=("$1"); shift; done
	shift
	dsts=("$@")
	rm -f "$T_TMP"/pingall.*
	for s in "${srcs[@]}"; do
		(
			for d in "${dsts[@]}"; do
				[ "$d" = "${C_ADDR[$s]}" ] && continue
				t0=$(date +%s%N)
				if c_ping "$s" "$d"; then echo ok; else echo "FAIL $s -> $d"; fi
				ms=$(c_ms_since "$t0")
				[ "$ms" -le 3000 ] || t_log "slow: $s -> $d took $ms ms"
			done >"$T_TMP/pingall.$s"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	total=$(cat "$T_TMP"/pingall.* | grep -c '^ok' || true)
	cat "$T_TMP"/pingall.* | grep '^FAIL' || echo "ok $total"
}

# c_ping_bg TAG SRC ADDR: a continuous ping (10/s) in the background;
# c_ping_bg_stop TAG stops it (SIGINT: ping prints its summary) and prints
# "TRANSMITTED RECEIVED".
c_ping_bg() {
	# first contact (handshakes) before the clock starts
	c_ping "$2" "$3" || t_log "warm-up ping $2 -> $3 failed"
	# ip netns exec execs ping: $! is ping itself, so SIGINT reaches it
	ip netns exec "$(t_ns "$2")" ping -n -i 0.1 "$3" >"$T_TMP/bgping.$1" 2>&1 &
	local pid=$!
	T_PIDS+=("$pid")
	printf -v "C_BGPING_$1" '%s' "$pid"
	t_wait "ping $2 -> $3 answering" 10 grep -q 'bytes from' "$T_TMP/bgping.$1"
}
c_ping_bg_stop() {
	local v=C_BGPING_$1
	kill -INT "${!v}" 2>/dev/null || true
	# call from the main shell: a $(subshell) cannot wait for our children
	wait "${!v}" 2>/dev/null || true
	sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$T_TMP/bgping.$1"
}
# c_ping_bg_ok TAG MAXLOST: stop it and judge it. Requests still in flight
# when it is stopped are not losses: count the sequence numbers missing
# below the last one answered, and require that answers kept coming until
# the end (the last answered is among the last 5 sent).
c_ping_bg_ok() {
	local tx rx last lost
	c_ping_bg_stop "$1" >"$T_TMP/bgping.$1.sum"
	read -r tx rx <"$T_TMP/bgping.$1.sum"
	rx=$(grep -o 'icmp_seq=[0-9]*' "$T_TMP/bgping.$1" | cut -d= -f2 | sort -un | grep -c . || true)
	last=$(grep -o 'icmp_seq=[0-9]*' "$T_TMP/bgping.$1" | cut -d= -f2 | sort -n | tail -n 1)
	lost=$(( ${last:-0} - rx ))
	t_log "background ping $1: ${tx:-?} sent, $rx answered, last answered #${last:-none}, $lost lost before it"
	[ -n "$tx" ] || tail -n 5 "$T_TMP/bgping.$1" | sed 's/^/#   ping: /' >&2
	[ -n "$tx" ] && [ "$tx" -ge 5 ] && [ -n "$last" ] && [ "$last" -ge $((tx - 5)) ] &&
		[ "$lost" -le "$2" ]
}

# c_peer_stats I: "KEY RX TX HANDSHAKE" for every peer of node I's interface.
c_peer_stats() {
	local ifn; ifn=$(c_ifname "$1")
	join <(nq "h$1" wg show "$ifn" transfer | sort) \
		<(nq "h$1" wg show "$ifn" latest-handshakes | sort)
}
# c_stats_kept BEFORE AFTER: every peer in BEFORE is still in AFTER with
# counters that did not go back and a handshake that was not reset (a peer
# removed and re-added starts from zero).
c_stats_kept() {
	local key rx tx hs rx2 tx2 hs2 bad=0
	while read -r key rx tx hs; do
		read -r _ rx2 tx2 hs2 <<<"$(grep "^$key " <<<"$2")"
		if [ -z "$rx2" ] || [ "$rx2" -lt "$rx" ] || [ "$tx2" -lt "$tx" ] ||
			[ "$hs2" -lt "$hs" ] || { [ "$hs" != 0 ] && [ "$hs2" = 0 ]; }; then
			t_log "peer $key: before rx=$rx tx=$tx hs=$hs, after rx=${rx2:-gone} tx=$tx2 hs=$hs2"
			bad=1
		fi
	done <<<"$1"
	[ "$bad" = 0 ]
}
c_ifindex() { nq "h$1" cat "/sys/class/net/$(c_ifname "$1")/ifindex"; }

# c_node_forget I: node I is no longer expected in the mesh.
c_node_forget() {
	local out=() j
	for j in "${C_NODES[@]}"; do [ "$j" = "$1" ] || out+=("$j"); done
	C_NODES=("${out[@]}")
}

c_node_running() { local j; for j in "${C_NODES[@]}"; do [ "$j" = "$1" ] && return 0; done; return 1; }

# c_ms_since T0_NS
c_ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# --- leak check -------------------------------------------------------------

c_links() { nq "$1" ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | xargs; }

c_fw_rules() {
	local t
	for t in iptables-legacy-save ip6tables-legacy-save iptables-nft-save ip6tables-nft-save; do
		command -v "$t" >/dev/null || continue
		nq "$1" "$t" 2>/dev/null | grep -i wgcni || true
	done
}

c_leak_procs() {
	local ns pid
	for ns in "${T_NETNS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			# the cluster manager may still run (ip netns exec execs it,
			# so its PID is the one t_spawn recorded)
			[ "$pid" = "${T_PID_cm:-}" ] && continue
			echo "${ns#"$T_ID"-}:$pid:$(cat "/proc/$pid/comm" 2>/dev/null)"
		done
	done | xargs
}

c_leak_socks() {
	local name
	[ -s "$C_WGNAMES" ] || return 0
	while read -r name; do
		[ -e "/var/run/wireguard/$name.sock" ] && echo "$name.sock"
	done <"$C_WGNAMES" | xargs
}

# The scenario's end: DEL every container (twice: DEL is idempotent), check
# the node managers hold nothing, stop them, run `cleanup`, check the hosts.
c_leak_check() {
	local c i h
	c_scan_wg
	for c in "${C_CTRS[@]}"; do
		t_ok "DEL $c" c_ctr_del "$c"
	done
	for c in "${!C_NODE[@]}"; do
		c_node_running "${C_NODE[$c]}" || continue
		t_ok "DEL $c again (idempotent)" c_cni del "${C_NODE[$c]}" "$c"
		t_eq "container $c has only lo left" "lo" "$(c_links "$c")"
	done
	for i in "${C_NODES[@]}"; do
		t_eq "node $i: no allocations left (ListAllocations)" 0 \
			"$(c_nm_rpc "$i" ListAllocations '{}' | jq '.allocations // [] | length')"
		t_eq "node $i: no container peers left" "" "$(c_container_peers "$i" | xargs)"
	done
	for i in "${C_NODES[@]}"; do
		c_nm_stop "$i"
		t_ok "node $i: wgcni-node-manager cleanup" c_nm_cleanup "$i"
	done
	for h in "${C_HOSTS[@]}"; do
		[ "$h" = cm ] && continue
		t_eq "$h: only lo and the underlay left" "eth0 lo" "$(c_links "$h")"
		t_eq "$h: no wgcni firewall chains or rules left" "" "$(c_fw_rules "$h" | xargs)"
		t_eq "$h: no routes beyond the underlay" "$C_UL.0/24" \
			"$(nq "$h" ip -4 route show | awk '{print $1}' | xargs)"
		t_eq "$h: no IPv6 routes beyond link-local" "" \
			"$(nq "$h" ip -6 route show | awk '$1 != "fe80::/64" {print $1}' | xargs)"
	done
	t_eq "no process left in this run's namespaces" "" "$(c_leak_procs)"
	t_eq "no sanitizer report from the daemons or the plugin" "" \
		"$(grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T_TMP"/*.log 2>/dev/null | xargs -r -n1 basename | xargs)"
	t_log "tracked $(grep -c . "$C_WGNAMES" || true) wireguard-go interface names of this run"
	t_eq "no UAPI socket of this run left in /var/run/wireguard" "" "$(c_leak_socks)"
	C_NODES=()
}

# --- exit ---------------------------------------------------------------------

# After lib.sh's cleanup: the namespaces must be gone (a userspace process
# still holding one would keep it alive and show here) and so must the
# wireguard-go sockets. Leaks turn a pass into a failure.
c_exit() {
	local rc=$? leftover socks f
	set +e
	if [ "$rc" != 0 ] || [ "$T_FAIL" != 0 ]; then
		for f in "$T_TMP"/cm.log "$T_TMP"/nm*.log "$T_TMP"/cni.log "$T_TMP"/cleanup.log; do
			[ -e "$f" ] || continue
			echo "# ---- last lines of $(basename "$f")"
			tail -n 15 "$f" | sed 's/^/#   /'
		done
	fi
	c_scan_wg 2>/dev/null
	cp "$C_WGNAMES" "/tmp/$T_ID.wgnames" 2>/dev/null
	t_cleanup
	leftover=$(ip netns list | awk '{print $1}' | grep "^$T_ID-" | xargs)
	socks=""
	if [ -s "/tmp/$T_ID.wgnames" ]; then
		for f in $(cat "/tmp/$T_ID.wgnames"); do
			[ -e "/var/run/wireguard/$f.sock" ] && socks="$socks $f.sock"
		done
	fi
	rm -f "/tmp/$T_ID.wgnames"
	if [ -n "$leftover" ]; then
		echo "not ok - namespaces left after cleanup: $leftover"
		rc=1
	fi
	if [ -n "$socks" ]; then
		echo "not ok - wireguard sockets left after cleanup:$socks"
		rc=1
	fi
	exit "$rc"
}
trap c_exit EXIT

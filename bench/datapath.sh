#!/bin/bash
# Data-path throughput, userspace backend (wireguard-go) on this host, each
# figure a ratio to a reference measured in the same run:
#   ref    one wireguard-go tunnel between two namespaces (veth underlay)
#   cross  container -> container on another node (three tunnels:
#          container -> node, node -> node, node -> container)
#   same   container -> container on the same node (two tunnels, through
#          the node interface)
# iperf3 TCP, one stream, T seconds each, R rounds interleaved (ref, cross,
# same, ref, ...) so drifting load hits all three; the median per path. Also
# prints the CPU each wireguard-go process and iperf3 used during the cross
# run, MTUs on each hop, and UDP buffer errors / drops in each namespace.
# The ratios come last.
#
#   BUILDDIR=build bench/datapath.sh           (T=5, R=3)
#   DP_GOMAXPROCS=1 ...   GOMAXPROCS for every wireguard-go of the cluster
#                         (node managers and containers; the reference too)
#   DP_TXQLEN=N ...       txqueuelen on the containers' and nodes' links
#   C_CNI_CONF_EXTRA='"containerMesh": true' ...   same-node through the
#                         containers' direct peer (one tunnel)
# The reference is Debian's wireguard-go as it comes: default GOMAXPROCS and
# socket buffers (0.0.20220316 sets none; its UDP sockets drop at load, the
# UdpRcvbufErrors of r2). The cluster's devices are started the way wgcni
# starts them: containers' with GOMAXPROCS=1, and every device's UDP sockets
# sized to 7 MiB (wg_socket_buffers, as later wireguard-go releases do
# themselves). Given the same 7 MiB, the reference itself ran at about 620
# instead of 450 Mbit/s here (measured once with a pidfd_getfd script).
#
# Everything runs in namespaces this script creates (tests/lib_cluster.sh:
# a two-node cluster on a veth underlay); the cleanup trap stops only the
# processes it started and deletes its namespaces.
T=${T:-5}
R=${R:-3}
command -v iperf3 >/dev/null || {
	echo "iperf3 missing: apt-get install -y --no-install-recommends iperf3" >&2; exit 1; }
[ -z "${DP_GOMAXPROCS:-}" ] || export GOMAXPROCS=$DP_GOMAXPROCS

. "$(dirname "$0")/../tests/lib_cluster.sh"
C_BACKEND=userspace
trap c_exit EXIT

echo "# datapath, userspace ($C_IMPL), $(nproc) CPUs, $(uname -r), T=${T}s R=$R" \
	"GOMAXPROCS=${GOMAXPROCS:-default} load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- reference: one tunnel between two namespaces
t_netns_add r1 >/dev/null
t_netns_add r2 >/dev/null
ip -n "$(t_ns r1)" link add eth0 type veth peer name eth0 netns "$(t_ns r2)"
RIF=wr$$
k1=$(wg genkey); k2=$(wg genkey)
for i in 1 2; do
	ns=$(t_ns r$i)
	ip -n "$ns" addr add "192.168.99.$i/24" dev eth0
	ip -n "$ns" link set eth0 up
	# wireguard-go daemonizes; deleting its link (cleanup) ends it
	ip netns exec "$ns" "$C_IMPL" "$RIF$i" >/dev/null 2>&1 || { echo "cannot start $C_IMPL" >&2; exit 1; }
	echo "$RIF$i" >>"$C_WGNAMES"
done
ip netns exec "$(t_ns r1)" wg set "$RIF"1 listen-port 51900 private-key <(echo "$k1") \
	peer "$(wg pubkey <<<"$k2")" allowed-ips 10.99.0.2/32 endpoint 192.168.99.2:51900
ip netns exec "$(t_ns r2)" wg set "$RIF"2 listen-port 51900 private-key <(echo "$k2") \
	peer "$(wg pubkey <<<"$k1")" allowed-ips 10.99.0.1/32 endpoint 192.168.99.1:51900
for i in 1 2; do
	ip -n "$(t_ns r$i)" addr add "10.99.0.$i/24" dev "$RIF$i"
	ip -n "$(t_ns r$i)" link set "$RIF$i" mtu 1420 up
done

# --- the cluster: two nodes, a and c on node 1, b on node 2
# c_cluster 2, quieter
dp_cluster() {
	local i
	c_cm_host && c_cm_start || return 1
	for i in 1 2; do
		c_node_host "$i"
		c_nm_start "$i"
		C_NODES+=("$i")
	done
	for i in 1 2; do c_nm_wait "$i" || return 1; done
	t_wait "node mesh converged" 20 c_converged || return 1
	for i in 1 2; do C_GW[$i]=$(c_node_addr "$i"); done
}
c_need && c_need_driver # out loud: each exits with what is missing
dp_cluster >"$T_TMP/cluster.log" 2>&1 ||
	{ cat "$T_TMP/cluster.log" >&2; echo "cluster did not come up" >&2; exit 1; }
for c in a c; do c_ctr_add 1 "$c" 2>/dev/null || exit 1; done
c_ctr_add 2 b 2>/dev/null || exit 1
if [ -n "${DP_TXQLEN:-}" ]; then
	for c in a b c; do nq "$c" ip link set eth0 txqueuelen "$DP_TXQLEN"; done
	for i in 1 2; do nq "$(c_host "$i")" ip link set "$(c_ifname "$i")" txqueuelen "$DP_TXQLEN"; done
fi
c_ping a "${C_ADDR[b]}" && c_ping c "${C_ADDR[b]}" && c_ping a "${C_ADDR[c]}" &&
	nq r1 ping -q -c 2 -w 10 10.99.0.2 >/dev/null || { echo "no connectivity" >&2; exit 1; }

# iperf3 servers, one per destination (stopped by the cleanup trap)
t_spawn srv_ref "$T_TMP/srv_ref.log" ip netns exec "$(t_ns r2)" iperf3 -s -B 10.99.0.2 -p 5201
t_spawn srv_b "$T_TMP/srv_b.log" ip netns exec "$(t_ns b)" iperf3 -s -B "${C_ADDR[b]}" -p 5201
t_spawn srv_c "$T_TMP/srv_c.log" ip netns exec "$(t_ns c)" iperf3 -s -B "${C_ADDR[c]}" -p 5201
srv_up() { nq "$1" iperf3 -c "$2" -t 1 -J >/dev/null 2>&1; }
t_wait "iperf3 servers" 20 srv_up r1 10.99.0.2
t_wait "iperf3 server b" 20 srv_up a "${C_ADDR[b]}"
t_wait "iperf3 server c" 20 srv_up a "${C_ADDR[c]}"

# The wireguard-go processes on each path, by interface name.
wgpid() { pgrep -x -f "$C_IMPL $1" | head -n 1; }
ctr_dev() { echo "wgc$(printf '%s\0%s' "${C_ID[$1]}" eth0 | b2sum -l 128 | cut -c1-12)"; }
declare -A PIDS=(
	[ctr-a]=$(wgpid "$(ctr_dev a)") [node1]=$(wgpid "$(c_ifname 1)")
	[node2]=$(wgpid "$(c_ifname 2)") [ctr-b]=$(wgpid "$(ctr_dev b)")
	[ctr-c]=$(wgpid "$(ctr_dev c)") [ref1]=$(wgpid "${RIF}1") [ref2]=$(wgpid "${RIF}2"))
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
udp_err() {
	nq "$1" nstat -az UdpRcvbufErrors UdpSndbufErrors UdpInErrors 2>/dev/null |
		awk 'NR > 1 {s = s $1 "=" $2 " "} END {print s}'
}

# run NAME SRC_NS DST_ADDR: Mbit/s received, appended to $T_TMP/NAME; the
# last run's iperf3 report in $T_TMP/NAME.json
run() {
	local name=$1 src=$2 dst=$3 bps
	nq "$src" iperf3 -c "$dst" -t "$T" -J >"$T_TMP/$name.json" 2>/dev/null
	bps=$(jq -r '.end.sum_received.bits_per_second // 0' "$T_TMP/$name.json" 2>/dev/null)
	awk -v b="$bps" 'BEGIN { printf "%.1f\n", b / 1e6 }' | tee -a "$T_TMP/$name"
}
for name in ref cross same; do : >"$T_TMP/$name"; done
declare -A T0
for k in "${!PIDS[@]}"; do T0[$k]=$(ticks "${PIDS[$k]}"); done
CROSS_CPU=$T_TMP/cross.cpu SAME_CPU=$T_TMP/same.cpu
: >"$CROSS_CPU"; : >"$SAME_CPU"
for r in $(seq 1 "$R"); do
	echo "# round $r: ref $(run ref r1 10.99.0.2) Mbit/s" >&2
	for k in "${!PIDS[@]}"; do T0[$k]=$(ticks "${PIDS[$k]}"); done
	t0=$EPOCHREALTIME
	echo "# round $r: cross $(run cross a "${C_ADDR[b]}") Mbit/s" >&2
	t1=$EPOCHREALTIME
	for k in ctr-a node1 node2 ctr-b; do
		echo "$k $(( $(ticks "${PIDS[$k]}") - ${T0[$k]} )) $(( ${t1/./} - ${t0/./} ))" >>"$CROSS_CPU"
	done
	for k in "${!PIDS[@]}"; do T0[$k]=$(ticks "${PIDS[$k]}"); done
	t0=$EPOCHREALTIME
	echo "# round $r: same $(run same a "${C_ADDR[c]}") Mbit/s" >&2
	t1=$EPOCHREALTIME
	for k in ctr-a node1 ctr-c; do
		echo "$k $(( $(ticks "${PIDS[$k]}") - ${T0[$k]} )) $(( ${t1/./} - ${t0/./} ))" >>"$SAME_CPU"
	done
done

median() { sort -n "$1" | awk '{v[NR] = $1} END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
HZ=$(getconf CLK_TCK)

cpu_profile() {
	awk -v hz="$HZ" '{t[$1] += $2; us[$1] += $3} END {
		for (k in t) printf "  %-6s %5.1f%%\n", k, 100 * t[k] / hz / (us[k] / 1e6) }' "$1" | sort
}
echo
echo "Profile (cross-node runs, CPU of each wireguard-go, % of one core):"
cpu_profile "$CROSS_CPU"
echo "Profile (same-node runs${C_CNI_CONF_EXTRA:+, $C_CNI_CONF_EXTRA}: node1 idle = the direct peer carries it):"
cpu_profile "$SAME_CPU"
echo "MTU: ctr a eth0 $(nq a cat /sys/class/net/eth0/mtu), node1 $(c_ifname 1)" \
	"$(nq "$(c_host 1)" cat "/sys/class/net/$(c_ifname 1)/mtu"), underlay eth0" \
	"$(nq "$(c_host 1)" cat /sys/class/net/eth0/mtu), ref $(nq r1 cat "/sys/class/net/${RIF}1/mtu")"
for name in ref cross same; do
	jq -r --arg n "$name" '"iperf3 \($n): MSS \(.start.tcp_mss_default // "?"), CPU sender " +
		"\(.end.cpu_utilization_percent.host_total // 0 | floor)% receiver " +
		"\(.end.cpu_utilization_percent.remote_total // 0 | floor)%, retransmits " +
		"\(.end.sum_sent.retransmits // "?")"' "$T_TMP/$name.json" 2>/dev/null
done
echo "UDP buffers in h1 (rmem_default/max): $(nq "$(c_host 1)" cat /proc/sys/net/core/rmem_default)/$(nq "$(c_host 1)" cat /proc/sys/net/core/rmem_max)"
for h in "$(c_host 1)" "$(c_host 2)" r1 r2; do
	echo "  $h: $(udp_err "$h")lo drops $(nq "$h" ip -s link show lo | awk '/RX:/ {getline; print "rx " $4} /TX:/ {getline; print "tx " $4}' | xargs)"
done
for c in a b; do
	echo "  ctr $c eth0: $(nq "$c" ip -s link show eth0 | awk '/RX:/ {getline; r = $4} /TX:/ {getline; t = $4} END {print "drops rx " r " tx " t}')," \
		"txqueuelen $(nq "$c" cat /sys/class/net/eth0/tx_queue_len)"
done

ref=$(median "$T_TMP/ref"); cross=$(median "$T_TMP/cross"); same=$(median "$T_TMP/same")
echo
printf 'Throughput, iperf3 TCP %ss x %s rounds, median Mbit/s (load %s):\n' "$T" "$R" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  one tunnel between two namespaces  %8s   (%s)\n' "$ref" "$(xargs <"$T_TMP/ref")"
printf '  container -> container, cross-node %8s   (%s)\n' "$cross" "$(xargs <"$T_TMP/cross")"
printf '  container -> container, same node  %8s   (%s)\n' "$same" "$(xargs <"$T_TMP/same")"
echo "cross-node / one tunnel: $(ratio "$cross" "$ref")"
echo "same-node / one tunnel: $(ratio "$same" "$ref")"

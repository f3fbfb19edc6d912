#!/bin/bash
# The kernel backend's figures, in the VM of tests/kernel/test_kernel.sh
# (WGCNI_VM_SUITE=bench; bench/kernel_vm.sh boots it), each a ratio to a
# reference measured in the same VM in the same run. Under TCG the absolute
# numbers mean nothing; the ratios are the result.
#
#  (a) ADD+DEL per container, N containers, one at a time: wgcni (kernel
#      backend, node 1 of a 2-node cluster) against `bridge` + `host-local`
#      (containernetworking-plugins) in a namespace of their own, two ways:
#      libcni (tests/cnidriver, one-plugin conflists, as containerd and
#      CRI-O call plugins) and direct (the plugin executed with CNI_* and its
#      configuration on stdin, DEL with prevResult). Container by container
#      the four alternate (ADD libcni wgcni, libcni bridge, direct wgcni,
#      direct bridge, ...; then the DELs), so a drift in the emulation's
#      speed falls on all. Ratio of the medians of ADD+DEL per container.
#  (b) iperf3 TCP, one stream, SECS seconds, ROUNDS rounds of: the plain
#      underlay (two namespaces on the nodes' underlay bridge, no tunnel);
#      the reference, one kernel WireGuard tunnel between those two (MTU
#      1420); container on node 1 -> container on node 2 (three WireGuard
#      hops: container -> node 1, node 1 -> node 2, node 2 -> container);
#      container -> container on node 1 (two hops, through the node's
#      interface). The ratio is the median over the rounds of each run's
#      throughput over the reference run of its round. With each: the VM's
#      CPU time by kind (/proc/stat) and per MB moved, TCP retransmissions;
#      the MTUs and endpoints of the hops.
#
#   BENCH_N (20) BENCH_SECS (5) BENCH_ROUNDS (4)
#
# Prints "BENCH-RESULT ..." lines, the ratios last. Asserts what makes the
# figures valid (every ADD and DEL succeeded, nothing left allocated, every
# iperf3 run moved data) and ends with the e2e leak check.
C_BACKEND=kernel
. "$(dirname "$0")/../lib_cluster.sh"

N=${BENCH_N:-20}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-4}
CNIREF=${CNIREF:-/usr/lib/cni}
for f in "$CNIREF/bridge" "$CNIREF/host-local" "$(type -P iperf3 || echo iperf3)"; do
	[ -x "$f" ] || { t_log "missing $f (the bench initramfs: WGCNI_VM_BENCH=1)"; exit 1; }
done
R() { echo "BENCH-RESULT $*"; }
R "vm: $(nproc) CPUs, $(awk '/MemTotal/ {print int($2 / 1024) " MB"}' /proc/meminfo), kernel $(uname -r)," \
	"N=$N SECS=$SECS ROUNDS=$ROUNDS"

c_cluster 2

# --- (a) ADD+DEL ------------------------------------------------------------------

# time_cni VIA NODE_NS CNI_PATH CONF VERB ID CTR [PLUGIN]: the wall time in µs
# on stdout, as a runtime on that node runs it; fails when it fails. libcni:
# CONF is a conflist, libcni's cache gives DEL its prevResult; direct: the
# plugin PLUGIN executed with CNI_* and CONF on stdin (DEL: prevResult added).
time_cni() {
	local via=$1 node=$2 path=$3 conf=$4 verb=$5 id=$6 ctr=$7 plugin=${8:-} t0 t1 rc
	local netns; netns=/run/netns/$(t_ns "$ctr")
	[ "$via" = libcni ] || [ "$verb" = add ] ||
		conf=$(jq -c --slurpfile p "$T_TMP/result.$ctr" '. + {prevResult: $p[0]}' <<<"$conf")
	t0=$EPOCHREALTIME
	if [ "$via" = libcni ]; then
		ip netns exec "$node" env CNI_PATH="$path" CNI_CACHE_DIR="$T_TMP/cnicache" \
			CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$ctr" \
			"$C_DRIVER" "$verb" "$conf" "$id" "$netns" eth0 >"$T_TMP/bench.out" 2>>"$T_TMP/cni.log"
	else
		ip netns exec "$node" env CNI_COMMAND="${verb^^}" CNI_CONTAINERID="$id" CNI_NETNS="$netns" \
			CNI_IFNAME=eth0 CNI_PATH="$path" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$ctr" \
			"$plugin" <<<"$conf" >"$T_TMP/bench.out" 2>>"$T_TMP/cni.log"
	fi
	rc=$?
	t1=$EPOCHREALTIME
	[ "$rc" = 0 ] || { t_log "$via $verb $ctr failed: $(cat "$T_TMP/bench.out"; tail -n 2 "$T_TMP/cni.log")"; return 1; }
	[ "$verb" = del ] || cp "$T_TMP/bench.out" "$T_TMP/result.$ctr"
	echo $((${t1/./} - ${t0/./}))
}
# median FILE: the median of its numbers (µs), in ms
median() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f\n", m / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "n/a" }'; }

t_netns_add brn >/dev/null
BRPLUG='{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
	"ipam": {"type": "host-local", "subnet": "10.222.0.0/16", "dataDir": "'"$T_TMP/host-local"'"}}'
WGPLUG=$(jq -c '.plugins[0]' "$(c_conflist 1)")
# per way and plugin: the configuration, the node namespace, CNI_PATH, the binary
declare -A CONF NODE CPATH PLUG
CONF[libcni.w]=$(c_conflist 1)
CONF[libcni.b]=$T_TMP/brnet.conflist
jq -n --argjson p "$BRPLUG" '{cniVersion: "1.0.0", name: "brnet", plugins: [$p]}' >"${CONF[libcni.b]}"
CONF[direct.w]=$(jq -c '{cniVersion: "1.0.0", name: "wgnet"} + .' <<<"$WGPLUG")
CONF[direct.b]=$(jq -c '{cniVersion: "1.0.0", name: "brnet"} + .' <<<"$BRPLUG")
NODE[w]=$(t_ns h1) NODE[b]=$(t_ns brn)
CPATH[w]=$C_BINDIR CPATH[b]=$CNIREF
PLUG[w]=$C_PLUGIN PLUG[b]=$CNIREF/bridge
VIAS="libcni direct"
for via in $VIAS; do for p in w b; do for op in add del sum; do : >"$T_TMP/$via.$p.$op"; done; done; done
add_ok=0 del_ok=0
# Container by container, way by way, plugin by plugin: ADD, then the DELs.
for verb in add del; do
	for k in $(seq 1 "$N"); do
		for via in $VIAS; do
			for p in w b; do
				c=${via:0:1}$p$k
				[ $verb = del ] || t_netns_add "$c" >/dev/null 2>&1
				id=$(printf '%s' "$T_ID-$c" | sha256sum | cut -c1-64)
				us=$(time_cni "$via" "${NODE[$p]}" "${CPATH[$p]}" "${CONF[$via.$p]}" $verb "$id" "$c" "${PLUG[$p]}") &&
					echo "$us" >>"$T_TMP/$via.$p.$verb" && eval "${verb}_ok=\$((${verb}_ok + 1))"
			done
		done
	done
done
t_eq "all $((4 * N)) ADDs succeeded" $((4 * N)) "$add_ok"
t_eq "all $((4 * N)) DELs succeeded" $((4 * N)) "$del_ok"
t_eq "node 1: no allocation left after the DELs" 0 "$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations // [] | length')"
for c in lw1 "lw$N" dw1 "dw$N"; do t_eq "$c: only lo left after DEL" lo "$(c_links "$c")"; done
# What each sample includes besides the plugin (or libcni and the plugin):
# entering the node namespace and starting a process.
: >"$T_TMP/base"
for k in $(seq 1 "$N"); do
	t0=$EPOCHREALTIME
	ip netns exec "${NODE[b]}" env /bin/true
	t1=$EPOCHREALTIME
	echo $((${t1/./} - ${t0/./})) >>"$T_TMP/base"
done
R "ADD/DEL: ip netns exec + a process start, median $(median "$T_TMP/base") ms"
# The kernel's part: creating and deleting what each plugin creates (a
# WireGuard link; a veth pair), one `ip` each, so the process start is the
# same in both.
for f in wadd wdel vadd vdel; do : >"$T_TMP/k.$f"; done
tick() { local t0=$EPOCHREALTIME; "${@:2}" >/dev/null 2>&1 || return 1; echo $((${EPOCHREALTIME/./} - ${t0/./})) >>"$T_TMP/k.$1"; }
kern_ok=0
for k in $(seq 1 "$N"); do
	tick wadd ip -n "${NODE[b]}" link add "kw$k" type wireguard &&
		tick wdel ip -n "${NODE[b]}" link del "kw$k" &&
		tick vadd ip -n "${NODE[b]}" link add "kv$k" type veth peer name "kp$k" &&
		tick vdel ip -n "${NODE[b]}" link del "kv$k" && kern_ok=$((kern_ok + 1))
done
t_eq "kernel link add/del: all $N rounds" "$N" "$kern_ok"
R "kernel, one ip each: wireguard link add $(median "$T_TMP/k.wadd") ms, del $(median "$T_TMP/k.wdel") ms;" \
	"veth pair add $(median "$T_TMP/k.vadd") ms, del $(median "$T_TMP/k.vdel") ms"
declare -A ADDDEL_RATIO
for via in $VIAS; do
	for p in w b; do
		paste -d' ' "$T_TMP/$via.$p.add" "$T_TMP/$via.$p.del" | awk 'NF == 2 { print $1 + $2 }' >"$T_TMP/$via.$p.sum"
	done
	for op in add del sum; do
		o=${op^^}; [ $op != sum ] || o=ADD+DEL
		R "$(printf '%-6s %-7s median: wgcni %7.1f ms, bridge + host-local %7.1f ms, ratio %s' "$via" "$o" \
			"$(median "$T_TMP/$via.w.$op")" "$(median "$T_TMP/$via.b.$op")" \
			"$(ratio "$(median "$T_TMP/$via.w.$op")" "$(median "$T_TMP/$via.b.$op")")")"
	done
	ADDDEL_RATIO[$via]=$(ratio "$(median "$T_TMP/$via.w.sum")" "$(median "$T_TMP/$via.b.sum")")
done

# --- (b) throughput ------------------------------------------------------------------

for c in x1 x2; do t_ok "ADD $c on node 1" c_ctr_add 1 "$c"; done
t_ok "ADD y2 on node 2" c_ctr_add 2 y2

# The reference: one kernel WireGuard tunnel between two namespaces on the
# same underlay bridge as the nodes, default MTU (1420).
c_host_add ra 60
c_host_add rb 61
declare -A RKEY=([a]="$(wg genkey)" [b]="$(wg genkey)") RIP=([a]=60 [b]=61) RADDR=([a]=1 [b]=2)
for s in a b; do
	o=$([ "$s" = a ] && echo b || echo a)
	n "r$s" ip link add wgref type wireguard
	nq "r$s" wg set wgref listen-port 51900 private-key <(echo "${RKEY[$s]}") \
		peer "$(wg pubkey <<<"${RKEY[$o]}")" allowed-ips 10.250.0.0/24 endpoint "$C_UL.${RIP[$o]}:51900"
	n "r$s" ip addr add "10.250.0.${RADDR[$s]}/24" dev wgref
	n "r$s" ip link set wgref up
done
t_ok "reference tunnel: ra pings rb" c_ping ra 10.250.0.2

for pair in "y2 x1" "x2 x1"; do
	read -r dst src <<<"$pair"
	t_ok "$src -> $dst answers pings" c_ping "$src" "${C_ADDR[$dst]}"
done

mtu() { nq "$1" cat "/sys/class/net/$2/mtu"; }
R "MTU: underlay eth0 $(mtu h1 eth0), node interface $(mtu h1 "$(c_ifname 1)"), container eth0" \
	"$(mtu x1 eth0), reference wgref $(mtu ra wgref)"
R "endpoints: x1 -> $(nq x1 wg show eth0 endpoints | awk '{print $2}' | xargs)," \
	"node 1 -> $(c_wg 1 show "$(c_ifname 1)" endpoints | awk '{print $2}' | sort -u | xargs)"

# cpu_stat: "busy user sys softirq" jiffies summed over the VM's CPUs
cpu_stat() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3, $4, $7 + $8 }' /proc/stat; }

# run_iperf KIND SRC DST_NS DST_ADDR: one run; appends "mbps retr busy_s
# user_s sys_s softirq_s mb" to $T_TMP/ip.KIND.
PORT=5201
run_iperf() {
	local kind=$1 src=$2 dstns=$3 addr=$4 out c0 c1 v
	out=$T_TMP/iperf.$kind.json
	PORT=$((PORT + 1))
	t_spawn "ips$PORT" "$T_TMP/iperf.$PORT.log" ip netns exec "$(t_ns "$dstns")" iperf3 -s -1 -p "$PORT"
	t_wait "iperf3 server in $dstns" 20 sh -c "ip netns exec $(t_ns "$dstns") ss -Htln 'sport = :$PORT' | grep -q ." ||
		return 1
	read -r -a c0 <<<"$(cpu_stat)"
	v=T_PID_ips$PORT
	nq "$src" iperf3 -c "$addr" -p "$PORT" -t "$SECS" -J >"$out" 2>>"$T_TMP/iperf.err" ||
		{ t_log "iperf3 $src -> $addr failed: $(jq -r '.error // empty' "$out" 2>/dev/null)"; return 1; }
	read -r -a c1 <<<"$(cpu_stat)"
	wait "${!v}" 2>/dev/null || true
	# /proc/stat counts in USER_HZ (100 a second)
	jq -r --argjson b "$((c1[0] - c0[0]))" --argjson u "$((c1[1] - c0[1]))" \
		--argjson s "$((c1[2] - c0[2]))" --argjson q "$((c1[3] - c0[3]))" --argjson hz 100 \
		'[.end.sum_received.bits_per_second / 1e6, .end.sum_sent.retransmits,
		  $b / $hz, $u / $hz, $s / $hz, $q / $hz, .end.sum_received.bytes / 1e6] | map(tostring) | join(" ")' \
		"$out" >>"$T_TMP/ip.$kind"
}
for kind in plain ref cross same; do : >"$T_TMP/ip.$kind"; done
for r in $(seq 1 "$ROUNDS"); do
	t_ok "round $r: iperf3 underlay, no tunnel, ra -> rb" run_iperf plain ra rb "$C_UL.61"
	t_ok "round $r: iperf3 reference tunnel ra -> rb" run_iperf ref ra rb 10.250.0.2
	t_ok "round $r: iperf3 cross-node x1 -> y2" run_iperf cross x1 y2 "${C_ADDR[y2]}"
	t_ok "round $r: iperf3 same-node x1 -> x2" run_iperf same x1 x2 "${C_ADDR[x2]}"
done
# med: the median of the numbers on stdin
med() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Per kind: the median over the rounds of the throughput, of the CPU time
# per MB moved, and of the ratio to the reference run of the same round.
declare -A MBPS CPUMB RRATIO
for kind in plain ref cross same; do
	t_ok "$kind: iperf3 moved data in every round" \
		awk '$1 <= 0 || $7 <= 0 { bad = 1 } END { exit bad || NR == 0 }' "$T_TMP/ip.$kind"
	MBPS[$kind]=$(cut -d' ' -f1 "$T_TMP/ip.$kind" | med)
	CPUMB[$kind]=$(awk '$7 > 0 { print 1000 * $3 / $7 }' "$T_TMP/ip.$kind" | med)
	rr=$(paste -d' ' "$T_TMP/ip.$kind" "$T_TMP/ip.ref" | awk '$8 > 0 { printf "%.2f\n", $1 / $8 }')
	RRATIO[$kind]=$(med <<<"$rr")
	R "$(awk -v k="$kind" -v m="${MBPS[$kind]}" -v c="${CPUMB[$kind]}" -v s="$SECS" -v n="$(nproc)" \
		-v rr="$(xargs <<<"$rr")" '{ mb = mb sprintf("%.1f ", $1); rt += $2; b += $3; u += $4; y += $5; q += $6 }
		END { printf "%-5s %7.1f Mbit/s median (rounds: %s; / reference: %s), retransmits %d, CPU busy %.0f%% (user %.0f%% sys %.0f%% irq+softirq %.0f%%), %.0f CPU-ms/MB\n",
			k, m, mb, rr, rt, 100 * b / (NR * s * n), 100 * u / (NR * s * n), 100 * y / (NR * s * n), 100 * q / (NR * s * n), c }' "$T_TMP/ip.$kind")"
done
# Where the cost sits: the CPU time per MB of each path against the plain
# underlay (TCP, iperf3, veth and bridge) and the one tunnel.
R "$(awk -v p="${CPUMB[plain]}" -v r="${CPUMB[ref]}" -v c="${CPUMB[cross]}" -v s="${CPUMB[same]}" 'BEGIN {
	printf "CPU-ms per MB: underlay %.0f; + one tunnel %.0f (+%.0f); same-node, 2 tunnels, %.0f (+%.0f over the tunnel);", p, r, r - p, s, s - r
	printf " cross-node, 3 tunnels, %.0f (+%.0f): one more WireGuard hop costs %.0f (same-node) or %.0f (cross-node, per hop),", c, c - r, s - r, (c - r) / 2
	printf " so CPU-bound the cross-node ratio is at most %.2f, the same-node one %.2f\n", r / c, r / s }')"

# The reference tunnel goes before the leak check (its hosts are checked too).
for s in a b; do n "r$s" ip link del wgref; done
c_leak_check

R "ADD+DEL median ratio (direct, wgcni kernel / bridge + host-local): ${ADDDEL_RATIO[direct]}"
R "ADD+DEL median ratio (libcni, wgcni kernel / bridge + host-local): ${ADDDEL_RATIO[libcni]}"
R "throughput ratio cross-node (container -> container, 3 tunnels / 1 tunnel): ${RRATIO[cross]}"
R "throughput ratio same-node (container -> container, 2 tunnels / 1 tunnel): ${RRATIO[same]}"
t_done

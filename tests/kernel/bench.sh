#!/bin/bash
# The kernel backend's figures, in the VM of tests/kernel/test_kernel.sh
# (WGCNI_VM_SUITE=bench; bench/kernel_vm.sh boots it), each a ratio to a
# reference measured in the same VM in the same run. Under TCG the absolute
# numbers mean nothing; the ratios are the result.
#
#  (a) ADD+DEL per container through libcni (tests/cnidriver), N containers,
#      one at a time: wgcni (kernel backend, node 1 of a 2-node cluster)
#      against `bridge` + `host-local` (containernetworking-plugins) in a
#      namespace of their own, with the same driver and a one-plugin
#      conflist. The two alternate container by container (ADD wgcni, ADD
#      bridge, ...; then the DELs), so a drift in the emulation's speed
#      falls on both. Ratio of the medians of ADD+DEL per container.
#  (b) iperf3 TCP, one stream, SECS seconds: container on node 1 -> container
#      on node 2 (three WireGuard hops: container -> node 1, node 1 -> node
#      2, node 2 -> container), container -> container on node 1 (two hops,
#      through the node's interface) and, as the reference, one kernel
#      WireGuard tunnel between two plain namespaces on the same underlay
#      bridge. ROUNDS rounds, each reference / cross-node / same-node in turn;
#      the ratio of the mean throughputs. With each run: the VM's CPU time
#      by kind (/proc/stat) and per MB moved, TCP retransmissions, MTUs.
#
#   BENCH_N (20) BENCH_SECS (8) BENCH_ROUNDS (2)
#
# Prints "BENCH-RESULT ..." lines, the ratios last. Asserts what makes the
# figures valid (every ADD and DEL succeeded, nothing left allocated, every
# iperf3 run moved data) and ends with the e2e leak check.
C_BACKEND=kernel
. "$(dirname "$0")/../lib_cluster.sh"

N=${BENCH_N:-20}
SECS=${BENCH_SECS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
CNIREF=${CNIREF:-/usr/lib/cni}
for f in "$CNIREF/bridge" "$CNIREF/host-local" "$(type -P iperf3 || echo iperf3)"; do
	[ -x "$f" ] || { t_log "missing $f (the bench initramfs: WGCNI_VM_BENCH=1)"; exit 1; }
done
R() { echo "BENCH-RESULT $*"; }
R "vm: $(nproc) CPUs, $(awk '/MemTotal/ {print int($2 / 1024) " MB"}' /proc/meminfo), kernel $(uname -r)," \
	"N=$N SECS=$SECS ROUNDS=$ROUNDS"

c_cluster 2

# --- (a) ADD+DEL ------------------------------------------------------------------

# time_cni NODE_NS CNI_PATH CONFLIST VERB ID CTR: libcni's wall time in µs
# on stdout, as a runtime on that node runs it; fails when it fails.
time_cni() {
	local node=$1 path=$2 conf=$3 verb=$4 id=$5 ctr=$6 t0 t1 rc
	t0=$EPOCHREALTIME
	ip netns exec "$node" env CNI_PATH="$path" CNI_CACHE_DIR="$T_TMP/cnicache" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$ctr" \
		"$C_DRIVER" "$verb" "$conf" "$id" "/run/netns/$(t_ns "$ctr")" eth0 \
		>"$T_TMP/bench.out" 2>>"$T_TMP/cni.log"
	rc=$?
	t1=$EPOCHREALTIME
	[ "$rc" = 0 ] || { t_log "$verb $ctr failed: $(tail -n 2 "$T_TMP/cni.log")"; return 1; }
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
BRCONF=$T_TMP/brnet.conflist
jq -n --arg d "$T_TMP/host-local" '{cniVersion: "1.0.0", name: "brnet", plugins: [{type: "bridge",
	bridge: "cni0", isGateway: true, ipMasq: false,
	ipam: {type: "host-local", subnet: "10.222.0.0/16", dataDir: $d}}]}' >"$BRCONF"
WGCONF=$(c_conflist 1)
for p in w b; do for op in add del sum; do : >"$T_TMP/$p.$op"; done; done
add_ok=0 del_ok=0
for k in $(seq 1 "$N"); do
	for p in w b; do
		t_netns_add "$p$k" >/dev/null 2>&1
		id=$(printf '%s' "$T_ID-$p$k" | sha256sum | cut -c1-64)
		if [ $p = w ]; then
			us=$(time_cni "$(t_ns h1)" "$C_BINDIR" "$WGCONF" add "$id" "$p$k")
		else
			us=$(time_cni "$(t_ns brn)" "$CNIREF" "$BRCONF" add "$id" "$p$k")
		fi && { echo "$us" >>"$T_TMP/$p.add"; add_ok=$((add_ok + 1)); }
	done
done
for k in $(seq 1 "$N"); do
	for p in w b; do
		id=$(printf '%s' "$T_ID-$p$k" | sha256sum | cut -c1-64)
		if [ $p = w ]; then
			us=$(time_cni "$(t_ns h1)" "$C_BINDIR" "$WGCONF" del "$id" "$p$k")
		else
			us=$(time_cni "$(t_ns brn)" "$CNIREF" "$BRCONF" del "$id" "$p$k")
		fi && { echo "$us" >>"$T_TMP/$p.del"; del_ok=$((del_ok + 1)); }
	done
done
t_eq "all $((2 * N)) ADDs succeeded" $((2 * N)) "$add_ok"
t_eq "all $((2 * N)) DELs succeeded" $((2 * N)) "$del_ok"
t_eq "node 1: no allocation left after the DELs" 0 "$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations // [] | length')"
t_eq "w1: only lo left after DEL" lo "$(c_links w1)"
t_eq "w$N: only lo left after DEL" lo "$(c_links "w$N")"
for p in w b; do
	paste -d' ' "$T_TMP/$p.add" "$T_TMP/$p.del" | awk 'NF == 2 { print $1 + $2 }' >"$T_TMP/$p.sum"
done
R "ADD median: wgcni $(median "$T_TMP/w.add") ms, bridge $(median "$T_TMP/b.add") ms"
R "DEL median: wgcni $(median "$T_TMP/w.del") ms, bridge $(median "$T_TMP/b.del") ms"
R "ADD+DEL median: wgcni $(median "$T_TMP/w.sum") ms, bridge $(median "$T_TMP/b.sum") ms"
ADDDEL_RATIO=$(ratio "$(median "$T_TMP/w.sum")" "$(median "$T_TMP/b.sum")")

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
for kind in ref cross same; do : >"$T_TMP/ip.$kind"; done
for r in $(seq 1 "$ROUNDS"); do
	t_ok "round $r: iperf3 reference ra -> rb" run_iperf ref ra rb 10.250.0.2
	t_ok "round $r: iperf3 cross-node x1 -> y2" run_iperf cross x1 y2 "${C_ADDR[y2]}"
	t_ok "round $r: iperf3 same-node x1 -> x2" run_iperf same x1 x2 "${C_ADDR[x2]}"
done
# mean over the rounds, and the CPU per MB
declare -A MBPS
for kind in ref cross same; do
	read -r mbps retr busy user sys sirq mb <<<"$(awk '{ for (i = 1; i <= NF; i++) s[i] += $i }
		END { for (i = 1; i <= 7; i++) printf "%s ", (i == 2 ? s[i] : s[i] / NR); print "" }' "$T_TMP/ip.$kind")"
	MBPS[$kind]=$mbps
	t_ok "$kind: iperf3 moved data in every round" \
		awk '$1 <= 0 { bad = 1 } END { exit bad || NR == 0 }' "$T_TMP/ip.$kind"
	R "$(printf '%-5s %8.1f Mbit/s (rounds: %s), retransmits %s, CPU busy %.1f s of %d (user %.1f sys %.1f softirq %.1f), %.1f CPU-ms/MB' \
		"$kind" "$mbps" "$(awk '{ printf "%.1f ", $1 }' "$T_TMP/ip.$kind")" "$retr" "$busy" $((SECS * $(nproc))) \
		"$user" "$sys" "$sirq" "$(awk -v b="$busy" -v m="$mb" 'BEGIN { print (m > 0 ? 1000 * b / m : 0) }')")"
done

# The reference tunnel goes before the leak check (its hosts are checked too).
for s in a b; do n "r$s" ip link del wgref; done
c_leak_check

R "ADD+DEL median ratio (libcni, wgcni kernel / bridge + host-local): $ADDDEL_RATIO"
R "throughput ratio cross-node (container -> container, 3 tunnels / 1 tunnel): $(ratio "${MBPS[cross]}" "${MBPS[ref]}")"
R "throughput ratio same-node (container -> container, 2 tunnels / 1 tunnel): $(ratio "${MBPS[same]}" "${MBPS[ref]}")"
t_done

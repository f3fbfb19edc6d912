#!/bin/bash
# CNI ADD/DEL latency: 100 containers through wgcni, then 100 through the
# reference `bridge` + `host-local` plugins (Debian containernetworking-plugins,
# /usr/lib/cni), on this machine in the same run. Each plugin is executed as a
# runtime executes it (CNI_* environment, config on stdin), one container at
# a time; the clock is bash's EPOCHREALTIME around the exec, so no extra
# process is timed. Prints median and p99 per operation and the ratios.
#
#   BUILDDIR=build bench/cni_latency.sh        (N=100 by default)
#
# Everything runs in namespaces this script creates (named with its PID):
# one node namespace per plugin holding the daemons/bridge, one namespace per
# container. wgcni uses a single-node cluster (cluster manager on the node's
# loopback) with the backend auto (wireguard-go when the kernel has no
# WireGuard).
. "$(dirname "$0")/../tests/lib.sh"

N=${N:-100}
CNIREF=${CNIREF:-/usr/lib/cni}
for f in "$T_BIN/wgcni" "$T_BIN/wgcni-node-manager" "$T_BIN/wgcni-cluster-manager" \
	"$CNIREF/bridge" "$CNIREF/host-local"; do
	[ -x "$f" ] || { echo "missing $f (make all; apt-get install containernetworking-plugins)" >&2; exit 1; }
done

# exec_cni PLUGIN NODE_NS VERB ID CTR CONF: the plugin's wall time in µs on
# stdout; its output in $T_TMP/out. Fails when the plugin fails.
exec_cni() {
	local plugin=$1 node=$2 verb=$3 id=$4 ctr=$5 conf=$6 t0 t1 rc
	t0=$EPOCHREALTIME
	ip netns exec "$node" env -i PATH="$PATH" CNI_COMMAND="$verb" CNI_CONTAINERID="$id" \
		CNI_NETNS="/run/netns/$ctr" CNI_IFNAME=eth0 CNI_PATH="$(dirname "$plugin"):$CNIREF" \
		"$plugin" <<<"$conf" >"$T_TMP/out" 2>>"$T_TMP/stderr.log"
	rc=$?
	t1=$EPOCHREALTIME
	[ "$rc" = 0 ] || { echo "$verb $id failed: $(cat "$T_TMP/out")" >&2; return 1; }
	echo $(( (${t1/./} - ${t0/./}) ))
}

# run_bench NAME PLUGIN NODE_NS CONF: N ADDs then N DELs; samples in
# $T_TMP/NAME.add and $T_TMP/NAME.del (µs).
run_bench() {
	local name=$1 plugin=$2 node=$3 conf=$4 k ctr id us
	: >"$T_TMP/$name.add"
	: >"$T_TMP/$name.del"
	for k in $(seq 1 "$N"); do
		ctr=$(t_ns "$name$k")
		t_netns_add "$name$k" >/dev/null 2>&1
		id=$(printf '%s' "$T_ID-$name-$k" | sha256sum | cut -c1-64)
		us=$(exec_cni "$plugin" "$node" ADD "$id" "$ctr" "$conf") || return 1
		echo "$us" >>"$T_TMP/$name.add"
		cp "$T_TMP/out" "$T_TMP/$name.$k.result"
	done
	for k in $(seq 1 "$N"); do
		ctr=$(t_ns "$name$k")
		id=$(printf '%s' "$T_ID-$name-$k" | sha256sum | cut -c1-64)
		# DEL carries prevResult, as runtimes send it
		us=$(exec_cni "$plugin" "$node" DEL "$id" "$ctr" \
			"$(jq -c --slurpfile p "$T_TMP/$name.$k.result" '. + {prevResult: $p[0]}' <<<"$conf")") || return 1
		echo "$us" >>"$T_TMP/$name.del"
	done
}

# stats FILE: "median p99" in ms (nearest rank).
stats() {
	sort -n "$1" | awk '{v[NR] = $1} END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.99 * NR + 0.999999); if (r < 1) r = 1
		printf "%.2f %.2f\n", m / 1000, v[r] / 1000 }'
}

echo "# CNI latency, $N containers per plugin, $(nproc) CPUs, $(uname -r)" >&2

# --- wgcni: a one-node cluster
t_netns_add wg >/dev/null
WGNODE=$(t_ns wg)
head -c 24 /dev/urandom | base64 >"$T_TMP/token"
t_spawn cm "$T_TMP/cm.log" ip netns exec "$WGNODE" "$T_BIN/wgcni-cluster-manager" \
	--listen 127.0.0.1:18080 --state-dir "$T_TMP/cm" --cluster-cidr 10.100.0.0/16 \
	--token-file "$T_TMP/token"
t_wait "cluster manager" 15 nq wg curl -sf http://127.0.0.1:18080/healthz
IFN="wb$$"
t_spawn nm "$T_TMP/nm.log" ip netns exec "$WGNODE" "$T_BIN/wgcni-node-manager" \
	--cluster-manager http://127.0.0.1:18080 --node-name bench --endpoint 127.0.0.1:51820 \
	--interface "$IFN" --listen-port 51820 --socket "$T_TMP/nm.sock" \
	--state-dir "$T_TMP/nm" --token-file "$T_TMP/token" --backend auto
nm_ready() { curl -sf --unix-socket "$T_TMP/nm.sock" -H 'Content-Type: application/json' -d '{}' \
	http://localhost/wgcni.node.v1.NodeService/GetNode | jq -e '.node.publicKey | length > 0'; }
t_wait "node manager" 20 nm_ready
backend=$(curl -sf --unix-socket "$T_TMP/nm.sock" -H 'Content-Type: application/json' -d '{}' \
	http://localhost/wgcni.node.v1.NodeService/GetNode | jq -r .node.backend)
WGCONF=$(jq -nc --arg s "unix://$T_TMP/nm.sock" \
	'{cniVersion: "1.0.0", name: "wgnet", type: "wgcni", nodeManager: $s, backend: "auto"}')
echo "# wgcni ($backend backend): $N ADDs, then $N DELs" >&2
run_bench w "$T_BIN/wgcni" "$WGNODE" "$WGCONF" || { echo "wgcni bench failed" >&2; exit 1; }
left=$(curl -sf --unix-socket "$T_TMP/nm.sock" -H 'Content-Type: application/json' -d '{}' \
	http://localhost/wgcni.node.v1.NodeService/ListAllocations | jq '.allocations // [] | length')
[ "$left" = 0 ] || { echo "wgcni left $left allocations after $N DELs" >&2; exit 1; }
t_stop_pid "$T_PID_nm"
ip netns exec "$WGNODE" "$T_BIN/wgcni-node-manager" cleanup --interface "$IFN" \
	--socket "$T_TMP/nm.sock" --state-dir "$T_TMP/nm" >/dev/null 2>&1 || true

# --- bridge + host-local
t_netns_add br >/dev/null
BRCONF=$(jq -nc --arg d "$T_TMP/host-local" '{cniVersion: "1.0.0", name: "brnet", type: "bridge",
	bridge: "cni0", isGateway: true, ipMasq: false,
	ipam: {type: "host-local", subnet: "10.222.0.0/16", dataDir: $d}}')
echo "# bridge + host-local: $N ADDs, then $N DELs" >&2
run_bench b "$CNIREF/bridge" "$(t_ns br)" "$BRCONF" || { echo "bridge bench failed" >&2; exit 1; }

# What every sample above includes besides the plugin: entering the node
# namespace (ip netns exec) and starting a process.
: >"$T_TMP/base"
for k in $(seq 1 "$N"); do
	t0=$EPOCHREALTIME
	ip netns exec "$(t_ns br)" env -i /bin/true
	t1=$EPOCHREALTIME
	echo $(( ${t1/./} - ${t0/./} )) >>"$T_TMP/base"
done
read -r basem basep <<<"$(stats "$T_TMP/base")"

read -r wam wap <<<"$(stats "$T_TMP/w.add")"
read -r wdm wdp <<<"$(stats "$T_TMP/w.del")"
read -r bam bap <<<"$(stats "$T_TMP/b.add")"
read -r bdm bdp <<<"$(stats "$T_TMP/b.del")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }'; }
echo
printf 'CNI latency, %d containers each, ms (one container at a time)\n' "$N"
printf '%-5s %-8s %10s %10s   %-8s %10s %10s   %9s %9s\n' op plugin median p99 plugin median p99 "ratio-med" "ratio-p99"
printf '%-5s %-8s %10s %10s   %-8s %10s %10s   %9s %9s\n' ADD wgcni "$wam" "$wap" bridge "$bam" "$bap" "$(ratio "$wam" "$bam")" "$(ratio "$wap" "$bap")"
printf '%-5s %-8s %10s %10s   %-8s %10s %10s   %9s %9s\n' DEL wgcni "$wdm" "$wdp" bridge "$bdm" "$bdp" "$(ratio "$wdm" "$bdm")" "$(ratio "$wdp" "$bdp")"
echo "(each sample includes ip netns exec + process start: median $basem ms, p99 $basep ms)"
echo "(wgcni backend: $backend; bridge = containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null) with host-local)"

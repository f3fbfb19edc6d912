#!/bin/bash
# CNI ADD/DEL latency: N containers through wgcni, then N through the
# reference `bridge` + `host-local` plugins (Debian containernetworking-plugins,
# /usr/lib/cni), on this machine in the same run, one container at a time.
# Two ways of executing a plugin (VIA, both by default):
#   libcni  through tests/cnidriver (Debian's libcni, as containerd and CRI-O
#           call it: AddNetworkList / DelNetworkList with its result cache)
#   direct  as a runtime executes it (CNI_* environment, config on stdin)
# The clock is bash's EPOCHREALTIME around the exec, so no extra process is
# timed. Prints median and p99 per operation, the median of ADD+DEL per
# container, and the ADD+DEL ratio wgcni / bridge last.
#
#   BUILDDIR=build bench/cni_latency.sh        (N=100, VIA="libcni direct")
#   BASE=/other/build ...    also that build's wgcni, interleaved (before/after)
#
# Everything runs in namespaces this script creates (named with its PID):
# one node namespace per plugin holding the daemons/bridge, one namespace per
# container. wgcni uses a single-node cluster (cluster manager on the node's
# loopback) with the backend auto (wireguard-go when the kernel has no
# WireGuard).
. "$(dirname "$0")/../tests/lib.sh"

N=${N:-100}
VIA=${VIA:-libcni direct}
CNIREF=${CNIREF:-/usr/lib/cni}
for f in "$T_BIN/wgcni" "$T_BIN/wgcni-node-manager" "$T_BIN/wgcni-cluster-manager" \
	"$CNIREF/bridge" "$CNIREF/host-local"; do
	[ -x "$f" ] || { echo "missing $f (make all; apt-get install containernetworking-plugins)" >&2; exit 1; }
done
for v in $VIA; do
	case $v in
	direct) ;;
	libcni) "$T_ROOT/tests/cnidriver/build.sh" || { echo "cannot build tests/cnidriver" >&2; exit 1; } ;;
	*) echo "VIA: unknown way \`$v' (libcni, direct)" >&2; exit 1 ;;
	esac
done
DRIVER=$BUILDDIR/cnidriver

# exec_cni VIA PLUGIN NODE_NS VERB ID CTR CONF: the plugin's wall time in µs
# on stdout; its output in $T_TMP/out. Fails when the plugin fails.
# direct: CONF is the configuration (DEL: with prevResult added); libcni:
# CONF is a conflist file, and libcni's cache gives DEL its prevResult.
exec_cni() {
	local via=$1 plugin=$2 node=$3 verb=$4 id=$5 ctr=$6 conf=$7 t0 t1 rc
	if [ "$via" = direct ]; then
		t0=$EPOCHREALTIME
		ip netns exec "$node" env -i PATH="$PATH" CNI_COMMAND="$verb" CNI_CONTAINERID="$id" \
			CNI_NETNS="/run/netns/$ctr" CNI_IFNAME=eth0 CNI_PATH="$(dirname "$plugin"):$CNIREF" \
			"$plugin" <<<"$conf" >"$T_TMP/out" 2>>"$T_TMP/stderr.log"
		rc=$?
		t1=$EPOCHREALTIME
	else
		t0=$EPOCHREALTIME
		ip netns exec "$node" env -i PATH="$PATH" CNI_PATH="$(dirname "$plugin"):$CNIREF" \
			CNI_CACHE_DIR="$T_TMP/cnicache" "$DRIVER" "${verb,,}" "$conf" "$id" \
			"/run/netns/$ctr" eth0 >"$T_TMP/out" 2>>"$T_TMP/stderr.log"
		rc=$?
		t1=$EPOCHREALTIME
	fi
	[ "$rc" = 0 ] || { echo "$via $verb $id failed: $(cat "$T_TMP/out"; tail -n 3 "$T_TMP/stderr.log")" >&2; return 1; }
	echo $(( (${t1/./} - ${t0/./}) ))
}

# run_bench VIA NAME:PLUGIN:NODE_NS:CONF...: container k of every plugin in
# turn (so drifting load hits them alike), N ADDs, then N DELs; samples in
# $T_TMP/VIA-NAME.add, .del and .sum (µs), line k for container k.
run_bench() {
	local via=$1 k p name plugin node conf ctr id us dconf c
	shift
	for p in "$@"; do
		IFS=: read -r name _ <<<"$p"
		: >"$T_TMP/$via-$name.add"
		: >"$T_TMP/$via-$name.del"
	done
	for k in $(seq 1 "$N"); do
		for p in "$@"; do
			IFS=: read -r name plugin node conf <<<"$p"
			c=$via-$name
			ctr=$(t_ns "$name$via$k")
			t_netns_add "$name$via$k" >/dev/null 2>&1
			id=$(printf '%s' "$T_ID-$c-$k" | sha256sum | cut -c1-64)
			us=$(exec_cni "$via" "$plugin" "$node" ADD "$id" "$ctr" "$conf") || return 1
			echo "$us" >>"$T_TMP/$c.add"
			cp "$T_TMP/out" "$T_TMP/$c.$k.result"
		done
	done
	for k in $(seq 1 "$N"); do
		for p in "$@"; do
			IFS=: read -r name plugin node conf <<<"$p"
			c=$via-$name
			ctr=$(t_ns "$name$via$k")
			id=$(printf '%s' "$T_ID-$c-$k" | sha256sum | cut -c1-64)
			dconf=$conf
			# A runtime executing it directly sends prevResult with DEL
			[ "$via" = libcni ] ||
				dconf=$(jq -c --slurpfile p "$T_TMP/$c.$k.result" '. + {prevResult: $p[0]}' <<<"$conf")
			us=$(exec_cni "$via" "$plugin" "$node" DEL "$id" "$ctr" "$dconf") || return 1
			echo "$us" >>"$T_TMP/$c.del"
			ip netns del "$ctr" 2>/dev/null || true
		done
	done
	for p in "$@"; do
		IFS=: read -r name _ <<<"$p"
		c=$via-$name
		paste -d" " "$T_TMP/$c.add" "$T_TMP/$c.del" | awk '{ print $1 + $2 }' >"$T_TMP/$c.sum"
	done
}

# stats FILE: "median p99" in ms (nearest rank).
stats() {
	sort -n "$1" | awk '{v[NR] = $1} END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.99 * NR + 0.999999); if (r < 1) r = 1
		printf "%.2f %.2f\n", m / 1000, v[r] / 1000 }'
}

# conflist NAME PLUGIN_CONF_JSON: a one-plugin list for libcni; its path.
conflist() {
	local f=$T_TMP/$1.conflist
	jq -c '{cniVersion, name, plugins: [del(.cniVersion, .name)]}' <<<"$2" >"$f"
	echo "$f"
}

echo "# CNI latency, $N containers per plugin and way ($VIA), $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

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
t_netns_add br >/dev/null
BRCONF=$(jq -nc --arg d "$T_TMP/host-local" '{cniVersion: "1.0.0", name: "brnet", type: "bridge",
	bridge: "cni0", isGateway: true, ipMasq: false,
	ipam: {type: "host-local", subnet: "10.222.0.0/16", dataDir: $d}}')

# BASE=BUILDDIR of another build: its wgcni runs too, against the same node
# manager, interleaved the same way (before/after figures in one run).
for via in $VIA; do
	wc=$WGCONF bc_=$BRCONF
	[ "$via" = direct ] || { wc=$(conflist wgnet "$WGCONF"); bc_=$(conflist brnet "$BRCONF"); }
	echo "# $via: wgcni ($backend backend)${BASE:+, the wgcni of $BASE} and bridge + host-local, interleaved: $N ADDs, then $N DELs" >&2
	run_bench "$via" "w:$T_BIN/wgcni:$WGNODE:$wc" "b:$CNIREF/bridge:$(t_ns br):$bc_" \
		${BASE:+"o:$BASE/bin/wgcni:$WGNODE:$wc"} || { echo "bench failed" >&2; exit 1; }
	left=$(curl -sf --unix-socket "$T_TMP/nm.sock" -H 'Content-Type: application/json' -d '{}' \
		http://localhost/wgcni.node.v1.NodeService/ListAllocations | jq '.allocations // [] | length')
	[ "$left" = 0 ] || { echo "wgcni left $left allocations after $N DELs" >&2; exit 1; }
done
t_stop_pid "$T_PID_nm"
ip netns exec "$WGNODE" "$T_BIN/wgcni-node-manager" cleanup --interface "$IFN" \
	--socket "$T_TMP/nm.sock" --state-dir "$T_TMP/nm" >/dev/null 2>&1 || true

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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
row() { printf '%-7s %-8s %-6s %10s %10s   %-8s %10s %10s   %9s %9s\n' "$@"; }
echo
printf 'CNI latency, %d containers each, ms (one container at a time), load %s\n' "$N" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
row via op plugin median p99 plugin median p99 "ratio-med" "ratio-p99"
for via in $VIA; do
	for op in add del sum; do
		read -r wm wp <<<"$(stats "$T_TMP/$via-w.$op")"
		read -r bm bp <<<"$(stats "$T_TMP/$via-b.$op")"
		o=${op^^}; [ "$op" != sum ] || o=ADD+DEL
		row "$via" "$o" wgcni "$wm" "$wp" bridge "$bm" "$bp" "$(ratio "$wm" "$bm")" "$(ratio "$wp" "$bp")"
		if [ -n "${BASE:-}" ]; then
			read -r om oq <<<"$(stats "$T_TMP/$via-o.$op")"
			row "$via" "$o" base "$om" "$oq" bridge "$bm" "$bp" "$(ratio "$om" "$bm")" "$(ratio "$oq" "$bp")"
		fi
	done
done
echo "(each sample includes ip netns exec + process start: median $basem ms, p99 $basep ms)"
echo "(wgcni backend: $backend; bridge = containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null) with host-local)"
# The figure the issue tracks, last: ADD+DEL median per container, wgcni / bridge.
for via in $VIA; do
	read -r wm _ <<<"$(stats "$T_TMP/$via-w.sum")"
	read -r bm _ <<<"$(stats "$T_TMP/$via-b.sum")"
	if [ -n "${BASE:-}" ]; then
		read -r om _ <<<"$(stats "$T_TMP/$via-o.sum")"
		echo "ADD+DEL median ratio ($via, base $BASE): $(ratio "$om" "$bm")"
	fi
	echo "ADD+DEL median ratio ($via): $(ratio "$wm" "$bm")"
done

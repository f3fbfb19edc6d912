#!/bin/bash
# wgcni demo: a cluster manager and three nodes in network namespaces, two
# containers per node attached by the real `wgcni` plugin exactly as a
# container runtime runs it (CNI_* environment, network config on stdin),
# then the cluster as an operator sees it, a connectivity matrix measured
# with ping, and same-node vs cross-node latency.
#
#   tests/e2e/demo.sh up      (make demo; KEEP=1 leaves it running)
#   tests/e2e/demo.sh down    (make demo-down)
#
# Builds nothing: `make` has put the binaries in $BUILDDIR/bin. State (PIDs,
# namespaces, logs, conflists) lives in /run/wgcni-demo so `down` finds it.
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
BIN=$BUILDDIR/bin
STATE=/run/wgcni-demo
NODES="1 2 3"
CTRS_PER_NODE=2

# The test harness builds the cluster, with the demo's own names and
# lifetime: namespaces wgdemo-*, state under $STATE, daemons that outlive
# this script (C_DETACH: setsid, PID files in $STATE/pids), no cleanup trap
# (T_NO_TRAP: `down` tears it down), backend auto, nodes n1..n3.
export BUILDDIR
T_ID=wgdemo T_TMP=$STATE T_NO_TRAP=1
C_DETACH=1 C_HOSTP=n C_IFP=wgdemo C_BACKEND=auto C_LOGDIR=$STATE/logs
. "$ROOT/tests/lib_cluster.sh"
set +e
pretty() { :; }     # the demo prints its own lines
CIDR=$C_CIDR
CM_URL=$C_CM_URL

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' R=$'\e[31m' Y=$'\e[33m' C=$'\e[36m' N=$'\e[0m'
else
	B= D= G= R= Y= C= N=
fi
say() { printf '%s\n' "$*"; }
step() { printf '\n%s==> %s%s\n' "$B$C" "$*" "$N"; }
info() { printf '    %s\n' "$*"; }
die() { printf '%serror:%s %s\n' "$R" "$N" "$*" >&2; exit 1; }
# run: print then execute a setup command, quietly.
run() { printf '    %s$ %s%s\n' "$D" "$*" "$N"; "$@"; }

ns() { t_ns "$1"; }
ifname() { c_ifname "$1"; }          # node interface, unique host-wide
sock() { c_sock "$1"; }
ctrname() { echo "n$1-c$2"; }
nm_rpc() { c_nm_rpc "$@"; }
cm_rpc() { c_cm_rpc "$@"; }

# wait_for WHAT SECONDS CMD...: poll every 100 ms, bounded.
wait_for() {
	local what=$1 secs=$2 i; shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "timed out after ${secs}s waiting for $what"
}

# The network config a runtime would hand the plugin (conflist plugin entry
# with name and cniVersion filled in, prevResult for DEL).
netconf() {
	local node=$1 prev=${2:-}
	jq -nc --arg nm "unix://$(sock "$node")" --argjson prev "${prev:-null}" \
		'{cniVersion: "1.0.0", name: "wgnet", type: "wgcni", nodeManager: $nm, backend: "auto"}
		 + (if $prev == null then {} else {prevResult: $prev} end)'
}
# cni VERB NODE CTR [PREVRESULT]: execute the plugin as a runtime on node NODE.
cni() {
	local verb=$1 node=$2 c=$3 prev=${4:-}
	netconf "$node" "$prev" | ip netns exec "$(ns "n$node")" env -i PATH="$PATH" \
		CNI_COMMAND="$verb" CNI_CONTAINERID="$(cat "$STATE/ctr/$c.id")" \
		CNI_NETNS="/run/netns/$(ns "$c")" CNI_IFNAME=eth0 CNI_PATH="$BIN" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$c" "$BIN/wgcni" 2>>"$C_LOGDIR/cni.log"
}

# table: align tab-separated columns (column(1) is in bsdextrautils).
table() { if command -v column >/dev/null; then column -t -s $'\t'; else tr '\t' ' '; fi; }

# ---------------------------------------------------------------------------

down() {
	local f pid c node n i link namespaces
	[ -d "$STATE" ] || { say "wgcni demo: nothing to tear down ($STATE does not exist)"; return 0; }
	step "Tearing the demo down"
	# DEL every container through the plugin, as the runtime would at stop.
	for f in "$STATE"/ctr/*.id; do
		[ -e "$f" ] || continue
		c=$(basename "$f" .id)
		node=${c:1:1}
		if [ -S "$(sock "$node")" ]; then
			cni DEL "$node" "$c" "$(cat "$STATE/ctr/$c.json" 2>/dev/null)" >/dev/null &&
				info "DEL $c" || info "${Y}DEL $c failed (see $C_LOGDIR/cni.log)$N"
		fi
	done
	for f in "$STATE"/pids/*; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
			info "stopped $(basename "$f") (pid $pid)"
		fi
	done
	for n in $NODES; do
		ip netns list | awk '{print $1}' | grep -qx "$(ns "n$n")" || continue
		c_nm_cleanup "$n" &&
			info "node $n: wgcni-node-manager cleanup" ||
			info "${Y}node $n: cleanup failed (see $C_LOGDIR/cleanup.log)$N"
	done
	# Links before namespaces: a userspace WireGuard process keeps its
	# namespace alive until its link is gone.
	namespaces=$(ip netns list | awk '{print $1}' | grep "^$T_ID-")
	for n in $namespaces; do
		for link in $(ip -n "$n" -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
			[ "$link" = lo ] || ip -n "$n" link del "$link" 2>/dev/null
		done
	done
	for n in $namespaces; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$STATE"
	info "${G}done: namespaces, processes and state removed$N"
}

addns() { t_netns_add "$1"; }

setup() {
	local n k c out key
	for f in wgcni wgcni-cluster-manager wgcni-node-manager; do
		[ -x "$BIN/$f" ] || die "$BIN/$f is missing: run make first"
	done
	for f in jq curl ping ip; do command -v "$f" >/dev/null || die "$f is needed (make deps)"; done
	[ ! -e "$STATE" ] || die "a demo is already running ($STATE exists): make demo-down"
	mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/ctr"
	c_token

	step "Underlay: a bridge in $(ns ul), one veth per host"
	c_underlay || return 1
	c_cm_host || return 1
	info "${D}host $(ns cm): $C_CM_ADDR on the underlay bridge$N"
	for n in $NODES; do
		c_node_host "$n" || return 1
		info "${D}host $(ns "n$n"): ${C_UL}.$((10 + n)) on the underlay bridge$N"
	done

	step "Cluster manager in $(ns cm), cluster CIDR $CIDR"
	c_cm_start || die "the cluster manager did not become healthy (see $C_CM_LOG)"
	info "wgcni-cluster-manager --listen $C_CM_ADDR:$C_CM_PORT --cluster-cidr $CIDR  (pid $C_CM_PID)"

	step "Node managers (backend auto: kernel WireGuard if present, else wireguard-go)"
	for n in $NODES; do
		c_nm_start "$n"
		C_NODES+=("$n")
		info "$(c_name "$n"): wgcni-node-manager --interface $(ifname "$n") --endpoint $(c_endpoint "$n")  (pid $(c_nm_pid "$n"))"
	done
	for n in $NODES; do
		c_nm_wait "$n" || die "node manager $n did not become ready (see $(c_nm_log "$n"))"
	done
	t_wait "the node mesh" 20 c_converged || die "timed out after 20s waiting for the node mesh"
	for n in $NODES; do
		out=$(nm_rpc "$n" GetNode '{}')
		info "node$n: subnet $(jq -r '.node.subnets | join(",")' <<<"$out"), address $(jq -r .node.address <<<"$out"), backend $(jq -r .node.backend <<<"$out"), mtu $(jq -r .node.mtu <<<"$out")"
	done

	step "Containers: CNI ADD through $BIN/wgcni, as a runtime runs it"
	for n in $NODES; do
		for k in $(seq 1 $CTRS_PER_NODE); do
			c=$(ctrname "$n" "$k")
			addns "$c" || return 1
			printf '%s' "wgcni-demo-$c-$(date +%s%N)" | sha256sum | cut -c1-64 >"$STATE/ctr/$c.id"
			out=$(cni ADD "$n" "$c") || { say "$out"; die "CNI ADD of $c failed (see $C_LOGDIR/cni.log)"; }
			echo "$out" >"$STATE/ctr/$c.json"
			jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1 >"$STATE/ctr/$c.addr"
			info "$(printf '%-7s on node%s  eth0 %-15s  (netns %s)' "$c" "$n" "$(cat "$STATE/ctr/$c.addr")" "$(ns "$c")")"
		done
	done
}

show_cluster() {
	local n
	step "The cluster as an operator sees it"
	if [ -x "$BIN/wgcnictl" ]; then
		say "    ${D}\$ ip netns exec $(ns cm) wgcnictl --cluster-manager $CM_URL --token-file $STATE/token nodes$N"
		ip netns exec "$(ns cm)" "$BIN/wgcnictl" --cluster-manager "$CM_URL" \
			--token-file "$STATE/token" nodes 2>&1 | sed 's/^/    /'
		for n in $NODES; do
			say "    ${D}\$ wgcnictl --node-manager unix://$(sock "$n") allocations$N"
			"$BIN/wgcnictl" --node-manager "unix://$(sock "$n")" allocations 2>&1 | sed 's/^/    /'
		done
	else
		say "    ${D}(wgcnictl not built; asking the APIs with curl + jq)$N"
		say "    ${D}ClusterService/ListNodes$N"
		cm_rpc ListNodes '{}' | jq -r '.nodes[] | [.name, (.subnets | join(",")), .endpoint, .publicKey[0:12] + "…"] | @tsv' |
			(printf 'NAME\tSUBNETS\tENDPOINT\tPUBLIC KEY\n'; cat) | table | sed 's/^/    /'
		for n in $NODES; do
			say "    ${D}node$n NodeService/ListAllocations$N"
			nm_rpc "$n" ListAllocations '{}' | jq -r '.allocations[]? | [.containerId[0:12], .ifname, (.addresses | join(",")), .publicKey[0:12] + "…"] | @tsv' |
				(printf 'CONTAINER\tIFNAME\tADDRESSES\tPUBLIC KEY\n'; cat) | table | sed 's/^/    /'
		done
	fi
	say "    ${D}\$ ip netns exec $(ns n1) wg show $(ifname 1)$N"
	ip netns exec "$(ns n1)" wg show "$(ifname 1)" 2>&1 | sed 's/^/    /'
}

# rtt SRC ADDR: average rtt in ms over 5 pings, empty when no reply.
rtt() {
	ip netns exec "$(ns "$1")" ping -n -q -c 5 -i 0.05 -w 5 "$2" 2>/dev/null |
		sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p'
}

matrix() {
	local all=() s d n k row fail=0 total=0 same=() cross=() pids=()
	for n in $NODES; do for k in $(seq 1 $CTRS_PER_NODE); do all+=("$(ctrname "$n" "$k")"); done; done
	step "Connectivity matrix: average ping rtt in ms (5 pings per pair, measured now)"
	# First contact, all pairs at once: completes the WireGuard handshakes
	# (bounded by one handshake retry), so the timed pings below measure
	# the data path only. Then one pair at a time, so they do not compete.
	for s in "${all[@]}"; do
		for d in "${all[@]}"; do
			[ "$s" = "$d" ] && continue
			ip netns exec "$(ns "$s")" ping -n -q -c 1 -w 12 "$(cat "$STATE/ctr/$d.addr")" >/dev/null 2>&1 &
			pids+=($!)
		done
	done
	wait "${pids[@]}"
	rm -f "$STATE"/rtt.*
	for s in "${all[@]}"; do
		for d in "${all[@]}"; do
			[ "$s" = "$d" ] && continue
			echo "$d $(rtt "$s" "$(cat "$STATE/ctr/$d.addr")")"
		done >"$STATE/rtt.$s"
	done
	row=$(printf '%-9s' "from\\to")
	for d in "${all[@]}"; do row+=$(printf '%9s' "$d"); done
	say "    $B$row$N"
	for s in "${all[@]}"; do
		row=$(printf '%-9s' "$s")
		for d in "${all[@]}"; do
			if [ "$s" = "$d" ]; then row+=$(printf '%9s' "·"); continue; fi
			v=$(awk -v d="$d" '$1 == d {print $2}' "$STATE/rtt.$s")
			total=$((total + 1))
			if [ -z "$v" ]; then
				row+="$R$(printf '%9s' FAIL)$N"; fail=$((fail + 1))
			else
				row+="$G$(printf '%9s' "$v")$N"
				if [ "${s:1:1}" = "${d:1:1}" ]; then same+=("$v"); else cross+=("$v"); fi
			fi
		done
		say "    $row"
	done
	rm -f "$STATE"/rtt.*
	say ""
	if [ "$fail" = 0 ]; then
		info "$G$B$total/$total container pairs reachable$N"
	else
		info "$R$B$((total - fail))/$total container pairs reachable ($fail failed)$N"
	fi
	avg() { printf '%s\n' "$@" | awk '{s += $1} END {if (NR) printf "%.3f", s / NR; else print "n/a"}'; }
	info "average rtt, same node:   $B$(avg "${same[@]}") ms$N  (${#same[@]} pairs: container -> node interface -> container)"
	info "average rtt, across nodes: $B$(avg "${cross[@]}") ms$N  (${#cross[@]} pairs: container -> node -> node -> container)"
	return $((fail > 0))
}

explore() {
	step "The demo keeps running (KEEP=1). Things to try:"
	info "ip netns exec $(ns n1-c1) ip addr show eth0"
	info "ip netns exec $(ns n1-c1) ping $(cat "$STATE/ctr/n3-c2.addr")"
	info "ip netns exec $(ns n2) wg show $(ifname 2)"
	if [ -x "$BIN/wgcnictl" ]; then
		info "ip netns exec $(ns cm) $BIN/wgcnictl --cluster-manager $CM_URL --token-file $STATE/token nodes"
		info "$BIN/wgcnictl --node-manager unix://$(sock 1) allocations"
	fi
	info "curl -s --unix-socket $(sock 1) -H 'Content-Type: application/json' -d '{}' http://localhost/wgcni.node.v1.NodeService/GetNode | jq"
	info "logs: $C_LOGDIR/"
	info "tear down: ${B}make demo-down$N"
}

up() {
	local rc=0
	# Interrupted (Ctrl-C, a closed pipe) before the end: leave nothing.
	trap 'trap - INT TERM HUP PIPE; down >/dev/null 2>&1; exit 130' INT TERM HUP PIPE
	say "${B}wgcni demo$N — 1 cluster manager, 3 nodes, $((3 * CTRS_PER_NODE)) containers, all in network namespaces"
	if ! (setup); then
		say "${R}setup failed; logs:$N"
		tail -n 5 "$C_LOGDIR"/*.log 2>/dev/null | sed 's/^/    /'
		down
		exit 1
	fi
	show_cluster
	matrix || rc=1
	trap - INT TERM HUP PIPE
	if [ "${KEEP:-}" = 1 ]; then
		explore
	else
		down
	fi
	exit "$rc"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) say "usage: $0 up|down   (KEEP=1 $0 up leaves the demo running)"; exit 2 ;;
esac

# Helpers for the CNI plugin tests: a 2-node test cluster in namespaces
# (cluster manager + 2 node managers on the userspace backend, an underlay
# bridge), and the plugin invoked as a runtime invokes it: environment +
# stdin, inside the node's namespace, CNI_NETNS=/run/netns/<container ns>.
# Source after tests/lib.sh. Every name carries the test PID.
#
#   cni_need_plugin                   PLUGIN=<built wgcni>, or fail
#   cl_start [--node-prefix-length N] ul, cm, n1, n2 namespaces; daemons ready
#   cl_start_nm n1|n2 / cl_stop_nm n1|n2
#   cl_conf NODE [VERSION] [EXTRA_JSON_MEMBERS]   network configuration
#   cl_cni CMD NODE CTR [IFNAME] [VERSION] [EXTRA] run the plugin; its stdout
#   cl_rpc NODE Method [JSON]         node manager API over its unix socket
#   cl_allocs NODE                    number of allocations
#   cl_has_alloc NODE CTR [IFNAME]    allocation for ctr-$$-CTR exists
#   cl_peers NODE                     peers on the node interface
#   cl_tmpname CTR [IFNAME]           the plugin's temporary device name
#   cl_no_leftovers NODE CTR [IFNAME] no interface, allocation, temporary
#                                     device, socket or process left for that
#                                     container (CL_IFNAME_TAKEN=1: IFNAME
#                                     is someone else's and stays)

CL_UL=192.168.233
CL_CIDR=10.131.0.0/16
CL_IF_n1=wc$$a
CL_IF_n2=wc$$b
CL_IP_n1=$CL_UL.2
CL_IP_n2=$CL_UL.3
CL_IMPL=${WGCNI_TEST_IMPL:-wireguard-go}

cni_need_plugin() {
	PLUGIN=$T_BIN/wgcni
	if [ ! -x "$PLUGIN" ]; then
		echo "not ok - plugin not built: $PLUGIN (make BUILDDIR=... all)"
		exit 1
	fi
}

cl_need_daemons() {
	local b
	for b in wgcni-cluster-manager wgcni-node-manager; do
		if [ ! -x "$T_BIN/$b" ]; then
			echo "not ok - $b not built in $T_BIN"
			exit 1
		fi
	done
	command -v "$CL_IMPL" >/dev/null || { echo "not ok - $CL_IMPL missing"; exit 1; }
}

cl_start() {
	local h i=1
	cl_need_daemons
	t_netns_add ul
	n ul ip link add br0 type bridge
	n ul ip link set br0 up
	for h in cm n1 n2; do
		t_netns_add "$h"
		ip -n "$(t_ns ul)" link add "u-$h" type veth peer name eth0 netns "$(t_ns "$h")"
		n ul ip link set "u-$h" master br0 up
		n "$h" ip addr add "$CL_UL.$i/24" dev eth0
		n "$h" ip link set eth0 up
		i=$((i + 1))
	done
	t_spawn cm "$T_TMP/cm.log" ip netns exec "$(t_ns cm)" "$T_BIN/wgcni-cluster-manager" \
		--listen "$CL_UL.1:8080" --state-dir "$T_TMP/cm" --cluster-cidr "$CL_CIDR" "$@"
	t_wait "cluster manager healthy" 10 nq cm curl -sf "http://$CL_UL.1:8080/healthz"
	cl_start_nm n1
	cl_start_nm n2
	t_wait_eq "n1 has n2 as a peer" 15 1 cl_peers n1
	t_wait_eq "n2 has n1 as a peer" 15 1 cl_peers n2
	CL_GW_n1=$(cl_rpc n1 GetNode | jq -r '.node.address' | cut -d/ -f1)
	CL_GW_n2=$(cl_rpc n2 GetNode | jq -r '.node.address' | cut -d/ -f1)
	# Leftover check at exit: every wireguard-go we caused is gone.
	t_on_cleanup cl_cleanup_devices
}

cl_start_nm() {
	local h=$1 ifv=CL_IF_$1 ipv=CL_IP_$1
	t_spawn "nm_$h" "$T_TMP/nm-$h.log" ip netns exec "$(t_ns "$h")" "$T_BIN/wgcni-node-manager" \
		--cluster-manager "http://$CL_UL.1:8080" --node-name "$T_ID-$h" \
		--endpoint "${!ipv}:51820" --interface "${!ifv}" --listen-port 51820 \
		--socket "$T_TMP/$h.sock" --state-dir "$T_TMP/state-$h" \
		--backend userspace --userspace-implementation "$CL_IMPL"
	t_wait "node manager $h ready" 20 cl_rpc "$h" GetNode
}

cl_stop_nm() {
	local v=T_PID_nm_$1
	t_stop_pid "${!v}"
}

# The node interfaces are userspace devices whose sockets are global: stop
# the daemons, then delete the links so wireguard-go exits.
cl_cleanup_devices() {
	local h v
	for h in n1 n2; do
		v=T_PID_nm_$h
		[ -n "${!v:-}" ] && t_stop_pid "${!v}"
		v=CL_IF_$h
		ip -n "$(t_ns "$h")" link del "${!v}" 2>/dev/null
		rm -f "/var/run/wireguard/${!v}.sock"
	done
}

cl_rpc() {
	local h=$1 m=$2 body=${3:-'{}'}
	curl -sf -m 10 --unix-socket "$T_TMP/$h.sock" -H 'Content-Type: application/json' \
		-d "$body" "http://nm/wgcni.node.v1.NodeService/$m"
}

# CL_CONF_IMPL overrides userspaceImplementation.
cl_conf() {
	local h=$1 v=${2:-1.0.0} extra=${3:-}
	printf '{"cniVersion":"%s","name":"wgnet","type":"wgcni","nodeManager":"unix://%s/%s.sock","userspaceImplementation":"%s"%s}\n' \
		"$v" "$T_TMP" "$h" "${CL_CONF_IMPL:-$CL_IMPL}" "${extra:+,$extra}"
}

# cl_cni CMD NODE CTR [IFNAME] [VERSION] [EXTRA]: stdout = the plugin's; the
# plugin's stderr goes to $T_TMP/plugin.err. The exit status is the plugin's.
cl_cni() {
	local cmd=$1 h=$2 c=$3 ifname=${4:-eth0} v=${5:-1.0.0} extra=${6:-}
	local netns=/run/netns/$(t_ns "$c")
	[ -n "${CL_NETNS_OVERRIDE+x}" ] && netns=$CL_NETNS_OVERRIDE
	pretty "$(t_ns "$h")" "CNI_COMMAND=$cmd CNI_CONTAINERID=ctr-$$-$c CNI_NETNS=$netns CNI_IFNAME=$ifname wgcni" >&2
	cl_conf "$h" "$v" "$extra" | ip netns exec "$(t_ns "$h")" env -i PATH="$PATH" \
		CNI_COMMAND="$cmd" CNI_CONTAINERID="ctr-$$-$c" CNI_NETNS="$netns" \
		CNI_IFNAME="$ifname" CNI_PATH="$T_BIN" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$c" \
		"$PLUGIN" 2>"$T_TMP/plugin.err" || { local rc=$?; cat "$T_TMP/plugin.err" >&2; return $rc; }
}

cl_allocs() { cl_rpc "$1" ListAllocations | jq '.allocations // [] | length'; }
cl_has_alloc() {
	local id="ctr-$$-$2" ifname=${3:-eth0}
	cl_rpc "$1" ListAllocations | jq -e --arg id "$id" --arg i "$ifname" \
		'[.allocations // [] | .[] | select(.containerId == $id and .ifname == $i)] | length == 1' >/dev/null
}
cl_peers() {
	local v=CL_IF_$1
	ip netns exec "$(t_ns "$1")" wg show "${!v}" peers 2>/dev/null | grep -c . || true
}

# BLAKE2b-128 of "containerID\0ifname", first 12 hex digits (cni/util.c).
cl_tmpname() {
	local id="ctr-$$-$1" ifname=${2:-eth0}
	echo "wgc$(printf '%s\0%s' "$id" "$ifname" | b2sum -l 128 | cut -c1-12)"
}

cl_no_leftovers() {
	local h=$1 c=$2 ifname=${3:-eth0} tmp
	tmp=$(cl_tmpname "$c" "$ifname")
	t_fail "$c: no WireGuard or TUN link in the container" \
		sh -c "ip -n $(t_ns "$c") -d -o link show 2>/dev/null | grep -Eq 'tun type tun|wireguard'"
	if [ -z "${CL_IFNAME_TAKEN:-}" ]; then
		t_fail "$c: no $ifname in the container" nq "$c" ip link show "$ifname"
	fi
	t_fail "$c: no allocation on $h" cl_has_alloc "$h" "$c" "$ifname"
	t_fail "$c: no temporary device on $h" nq "$h" ip link show "$tmp"
	t_wait "$c: UAPI socket gone" 5 test ! -e "/var/run/wireguard/$tmp.sock" || true
	t_fail "$c: no UAPI socket $tmp.sock" test -e "/var/run/wireguard/$tmp.sock"
	# "[w]gc..." so pgrep and the polling shell never match themselves
	t_wait "$c: process gone" 5 sh -c "! pgrep -f -- '[w]${tmp#w}'" || true
	t_fail "$c: no process for $tmp" pgrep -f -- "[w]${tmp#w}"
}

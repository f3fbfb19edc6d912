# The one test cluster harness: the underlay, the cluster manager, the node
# managers, containers and the leak check, for every integration area
# (cluster-manager, node-manager, cni, cli, e2e, kernel) and the demo.
# Source it from a test script (it sources tests/lib.sh itself):
#
#   . "$(dirname "$0")/../lib_cluster.sh"
#   c_cluster 3            underlay, cluster manager, 3 node managers, converged
#   c_ctr_add 1 c1a        container namespace c1a attached on node 1 through
#                          the real `wgcni` plugin, driven by libcni (cnidriver)
#   c_ping c1a "${C_ADDR[c2a]}"
#   c_leak_check           DEL every container, stop the node managers, run
#                          `wgcni-node-manager cleanup`, assert nothing is left
#   t_done
#
# The pieces also work one by one: c_underlay, c_cm_host + c_cm_start FLAGS
# (a cluster manager alone, e.g. with 127.0.0.1 as C_CM_ADDR: no underlay),
# c_node_host I + c_nm_start I FLAGS (a node manager with its own flags,
# whether or not a cluster manager answers), c_nm_wait I, c_etcd_start N
# (N etcd members; tests/lib_etcd.sh, sourced at the end of this file).
#
# Topology (every name carries the run's PID through t_ns):
#   ul    a bridge br0; one veth per host, underlay $C_UL.0/24
#   cm    cluster manager on $C_CM_ADDR:$C_CM_PORT ($C_UL.1 by default)
#   hI    node I ("$C_HOSTP$I"): underlay $C_UL.(10+I), node manager named
#         "$C_NODEP$I" with interface $C_IFP$I, socket and state under $T_TMP/hI
#   <c>   a container namespace; its wgcni interface is eth0
#
# Node arguments: every function taking a node accepts its index (1) or its
# host name (h1, n1): the trailing digits are the index.
#
# Parameters (set before sourcing, or before the call that uses them):
#   C_BINDIR        daemons, plugin ($T_BIN, or $E2E_BIN: E2E_BIN=$T_SANBIN
#                   runs the sanitized builds, as does C_BUILD=asan);
#                   C_CM_BIN, C_NM_BIN, C_PLUGIN
#                   and C_CTL (default the sanitized wgcnictl) one by one
#   C_BACKEND       node manager backend ($E2E_BACKEND, default userspace)
#   C_IMPL          userspace implementation ($WGCNI_TEST_IMPL, wireguard-go)
#   C_AUTH          token (a random token file $C_TOKEN for every daemon and
#                   client, the default) or none
#   C_TLS           1: the cluster manager serves HTTPS with a certificate
#                   made here for its address ($C_TLS_CERT, $C_TLS_KEY; the
#                   certificate is its own CA: $C_TLS_CA); curl and wgcnictl
#                   trust it (the node manager has no CA option yet, so a
#                   TLS cluster with node managers needs one first)
#   C_DATASTORE     the cluster manager's store: sqlite (in its state dir)
#                   or etcd (--datastore etcd --etcd-endpoints
#                   $C_ETCD_ENDPOINTS; c_cm_start starts C_ETCD_N members,
#                   1 by default, if none runs yet: a hook for the etcd
#                   datastore to come, the flags do not exist yet)
#   C_CIDR, C_CIDR6 cluster CIDRs (10.100.0.0/16; none); empty: no flag
#   C_NODE_PREFIX, C_NODE_PREFIX6  node prefix lengths (24; 64 with C_CIDR6)
#   C_CM_FLAGS      array: more cluster manager flags, every start
#   C_NM_FLAGS      array: more node manager flags, every node
#   C_NODE_FLAGS    associative, index -> words: more flags for one node
#                   (e.g. C_NODE_FLAGS[2]="--mtu 1380")
#   C_CM_ADDR, C_CM_PORT, C_UL, C_HOSTP, C_NODEP, C_IFP   names, above
#   C_CM_WRAP, C_NM_WRAP  a command prefixed to the daemon (valgrind)
#   C_DETACH        1: daemons outlive this shell (setsid, PID files under
#                   $T_TMP/pids), for the demo; with T_NO_TRAP=1, T_ID and
#                   T_TMP lib.sh then leaves the cleanup to its caller
#   C_LOGDIR        where the daemon logs go ($T_TMP)
#
# What runs on the cluster (containers through libcni or the plugin run
# directly, API attachments, wgcnictl, ping and counter helpers) is in
# tests/lib_workload.sh, sourced at the end of this file. Plugin diagnostics
# (stderr) go to $T_TMP/cni.log, shown with the daemon logs when a scenario
# fails.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Sanitized builds: report leaks and make them (and UB) fail the exit code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

C_BACKEND=${C_BACKEND:-${E2E_BACKEND:-userspace}}
C_IMPL=${C_IMPL:-${WGCNI_TEST_IMPL:-wireguard-go}}
if [ "${C_BUILD:-}" = asan ]; then C_BINDIR=${C_BINDIR:-$T_SANBIN}; fi
C_BINDIR=${C_BINDIR:-${E2E_BIN:-$T_BIN}}
C_CM_BIN=${C_CM_BIN:-$C_BINDIR/wgcni-cluster-manager}
C_NM_BIN=${C_NM_BIN:-$C_BINDIR/wgcni-node-manager}
C_PLUGIN=${C_PLUGIN:-$C_BINDIR/wgcni}
C_CTL=${C_CTL:-$T_SANBIN/wgcnictl}
C_DRIVER=$BUILDDIR/cnidriver
C_UL=${C_UL:-192.168.77}
C_CM_ADDR=${C_CM_ADDR:-$C_UL.1}
C_CM_PORT=${C_CM_PORT:-8080}
C_AUTH=${C_AUTH:-token}
C_TLS=${C_TLS:-0}
C_DATASTORE=${C_DATASTORE:-sqlite}
C_CIDR=${C_CIDR-10.100.0.0/16}
C_CIDR6=${C_CIDR6:-}       # set (e.g. fd10:100::/48) for a dual-stack cluster
C_NODE_PREFIX=${C_NODE_PREFIX-24}
C_NODE_PREFIX6=${C_NODE_PREFIX6-64}
C_HOSTP=${C_HOSTP:-h}
C_NODEP=${C_NODEP:-node}
C_IFP=${C_IFP:-w$$n}
C_LOGDIR=${C_LOGDIR:-$T_TMP}
C_TOKEN=$T_TMP/token
C_TLS_CERT=$T_TMP/cert.pem
C_TLS_KEY=$T_TMP/key.pem
C_TLS_CA=$C_TLS_CERT
C_CM_STATE=${C_CM_STATE:-$T_TMP/cm}
C_CM_SVC=wgcni.cluster.v1.ClusterService
declare -p C_CM_FLAGS >/dev/null 2>&1 || C_CM_FLAGS=()
declare -p C_NM_FLAGS >/dev/null 2>&1 || C_NM_FLAGS=()
declare -p C_NODE_FLAGS >/dev/null 2>&1 || declare -A C_NODE_FLAGS=()
C_CURL=()              # curl arguments for every cluster manager call (--cacert)
C_CM_RUNS=0
C_NODES=()             # node indexes whose node manager should be running
C_STARTED=()           # every node index whose node manager was ever started
declare -A C_ADDR      # container -> IPv4 address (no prefix)
declare -A C_ADDR6     # container -> IPv6 address, dual-stack clusters only
declare -A C_NODE      # container -> node index
declare -A C_ID        # container -> container ID
declare -A C_GW        # node index -> its interface address (c_cluster)
C_CTRS=()              # attached containers, in order
C_HOSTS=()             # every host namespace short name (cm, h1, ...)
C_WGNAMES=$T_TMP/wgnames   # wireguard-go interface names seen in this run

c_cm_scheme() { [ "$C_TLS" = 1 ] && echo https || echo http; }
c_cm_url_set() {
	C_CM_URL=$(c_cm_scheme)://$C_CM_ADDR:$C_CM_PORT
	if [ "$C_TLS" = 1 ]; then C_CURL=(--cacert "$C_TLS_CA"); else C_CURL=(); fi
}
c_cm_url_set

c_need() {
	local f
	for f in "$C_CM_BIN" "$C_NM_BIN"; do
		[ -x "$f" ] || { t_log "missing $f: run make BUILDDIR=$BUILDDIR all sanitized"; exit 1; }
	done
	for f in ip wg jq curl; do
		command -v "$f" >/dev/null || { t_log "missing tool $f"; exit 1; }
	done
	[ "$C_BACKEND" != userspace ] || command -v "$C_IMPL" >/dev/null ||
		{ t_log "missing $C_IMPL"; exit 1; }
}
c_need_ctl() { [ -x "$C_CTL" ] || { t_log "missing $C_CTL: make BUILDDIR=$BUILDDIR all sanitized"; exit 1; }; }
# The plugin, run directly ($PLUGIN) or through libcni (cnidriver).
c_need_plugin() {
	PLUGIN=$C_PLUGIN
	[ -x "$PLUGIN" ] || { echo "not ok - plugin not built: $PLUGIN (make BUILDDIR=... all)"; exit 1; }
}
c_need_driver() {
	local f
	c_need_plugin
	"$(dirname "${BASH_SOURCE[0]}")/cnidriver/build.sh" || { t_log "cannot build cnidriver"; exit 1; }
	for f in nc ping; do
		command -v "$f" >/dev/null || { t_log "missing tool $f"; exit 1; }
	done
}

c_i() { echo "${1##*[!0-9]}"; }
c_host() { echo "$C_HOSTP$(c_i "$1")"; }
c_name() { echo "$C_NODEP$(c_i "$1")"; }
c_ifname() { echo "$C_IFP$(c_i "$1")"; }
c_dir() { echo "$T_TMP/$(c_host "$1")"; }
c_sock() { echo "$(c_dir "$1")/nm.sock"; }
c_state() { echo "$(c_dir "$1")/state"; }
c_nm_log() { echo "$C_LOGDIR/nm$(c_i "$1").log"; }
c_endpoint() { echo "$C_UL.$((10 + $(c_i "$1"))):51820"; }

# c_spawn NAME LOG cmd...: t_spawn, or (C_DETACH=1) a daemon in its own
# session whose PID is also written to $T_TMP/pids/NAME.
c_spawn() {
	local name=$1 log=$2; shift 2
	if [ "${C_DETACH:-}" != 1 ]; then t_spawn "$name" "$log" "$@"; return; fi
	mkdir -p "$T_TMP/pids"
	pretty "spawn $name" "$*"
	setsid "$@" </dev/null >>"$log" 2>&1 &
	printf -v "T_PID_$name" '%s' "$!"
	echo "$!" >"$T_TMP/pids/$name"
}

# --- underlay -------------------------------------------------------------

c_underlay() {
	t_netns_add ul
	n ul ip link add br0 type bridge
	n ul ip link set br0 up
}

c_has_ns() { local ns; for ns in "${T_NETNS[@]}"; do [ "$ns" = "$(t_ns "$1")" ] && return 0; done; return 1; }

# c_host_add SHORT LASTOCTET: a host namespace with eth0 on the underlay
# (made first if there is none yet).
c_host_add() {
	local h=$1 ip=$2
	c_has_ns ul || c_underlay
	t_netns_add "$h"
	pp ip -n "$(t_ns ul)" link add "u-$h" type veth peer name eth0 netns "$(t_ns "$h")"
	n ul ip link set "u-$h" master br0 up
	n "$h" ip addr add "$C_UL.$ip/24" dev eth0
	n "$h" ip link set eth0 up
	C_HOSTS+=("$h")
}
# c_node_host I: node I's host namespace.
c_node_host() { local i; i=$(c_i "$1"); c_host_add "$(c_host "$i")" $((10 + i)); }

# c_cm_host: the cluster manager's namespace: on the underlay, or alone
# (no underlay) when it listens on loopback.
c_cm_host() {
	case $C_CM_ADDR in
	127.*) t_netns_add cm ;;
	*) c_host_add cm "${C_CM_ADDR##*.}" ;;
	esac
}

# c_hosts N: what a test needs checked (c_need), the cluster manager's
# host and the hosts of nodes 1..N, no daemon started yet.
c_hosts() {
	local i
	c_need
	c_cm_host
	for ((i = 1; i <= $1; i++)); do c_node_host "$i"; done
}

# c_token [VALUE]: the token file every daemon and client of the run uses.
c_token() {
	if [ $# -gt 0 ]; then echo "$1"; else head -c 24 /dev/urandom | base64; fi >"$C_TOKEN"
	chmod 600 "$C_TOKEN"
}
c_auth_h() { [ "$C_AUTH" != token ] || echo "Authorization: Bearer $(cat "$C_TOKEN")"; }

# c_tls_make: a self-signed certificate (its own CA) for the cluster
# manager's address.
c_tls_make() {
	command -v openssl >/dev/null || { t_log "openssl not installed (needed to make a test certificate)"; exit 1; }
	pp openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$C_CM_ADDR" \
		-addext "subjectAltName=IP:$C_CM_ADDR" -keyout "$C_TLS_KEY" -out "$C_TLS_CERT" 2>/dev/null
	chmod 600 "$C_TLS_KEY"
}

# --- cluster manager --------------------------------------------------------

# The datastore hook: flags that select the store (sqlite: the state dir).
c_cm_datastore_flags() {
	case $C_DATASTORE in
	sqlite) ;;
	etcd)
		[ -n "$C_ETCD_ENDPOINTS" ] || { t_log "C_DATASTORE=etcd: no etcd running (c_etcd_start)"; return 1; }
		echo --datastore etcd --etcd-endpoints "$C_ETCD_ENDPOINTS"
		;;
	*) t_log "unknown C_DATASTORE $C_DATASTORE"; return 1 ;;
	esac
}

c_cm_healthy() { nq cm curl -sf -m 2 "${C_CURL[@]}" -o /dev/null "$C_CM_URL/healthz"; }

# c_cm_start [FLAGS...]: the cluster manager in namespace cm with the
# parameters' flags, C_CM_FLAGS and FLAGS; waits for /healthz. Its log is
# $C_CM_LOG (cm.N.log, N counting the starts), its PID $C_CM_PID.
c_cm_start() {
	local ds
	if [ "$C_DATASTORE" = etcd ] && [ -z "$C_ETCD_ENDPOINTS" ]; then
		# beside a cluster manager on loopback, etcd shares its namespace
		case $C_CM_ADDR in 127.*) C_ETCD_NS=${C_ETCD_NS:-cm} ;; esac
		c_etcd_start "${C_ETCD_N:-1}" || return 1
	fi
	ds=$(c_cm_datastore_flags) || return 1
	if [ "$C_AUTH" = token ] && [ ! -s "$C_TOKEN" ]; then c_token; fi
	if [ "$C_TLS" = 1 ] && [ ! -s "$C_TLS_CERT" ]; then c_tls_make; fi
	c_cm_url_set
	C_CM_RUNS=$((C_CM_RUNS + 1))
	C_CM_LOG=$C_LOGDIR/cm.$C_CM_RUNS.log
	# The state directory is the daemon's to make (0700 whatever the umask).
	# shellcheck disable=SC2086 # C_CM_WRAP and ds are word lists
	c_spawn cm "$C_CM_LOG" ip netns exec "$(t_ns cm)" ${C_CM_WRAP:-} "$C_CM_BIN" \
		--listen "$C_CM_ADDR:$C_CM_PORT" --state-dir "$C_CM_STATE" $ds \
		${C_CIDR:+--cluster-cidr "$C_CIDR"} ${C_NODE_PREFIX:+--node-prefix-length "$C_NODE_PREFIX"} \
		${C_CIDR6:+--cluster-cidr "$C_CIDR6"} ${C_CIDR6:+${C_NODE_PREFIX6:+--node-prefix-length-v6 "$C_NODE_PREFIX6"}} \
		$([ "$C_AUTH" = token ] && echo --token-file "$C_TOKEN") \
		$([ "$C_TLS" = 1 ] && echo --tls-cert "$C_TLS_CERT" --tls-key "$C_TLS_KEY") \
		"${C_CM_FLAGS[@]}" "$@"
	C_CM_PID=$T_PID_cm
	if ! t_wait "cluster manager /healthz" "${C_CM_START_TIMEOUT:-15}" c_cm_healthy; then
		t_log "cluster manager log:"; cat "$C_CM_LOG" >&2
		return 1
	fi
}

# c_cm_stop [SIG]: stop it (TERM by default); its exit code in $C_CM_RC.
c_cm_stop() {
	local sig=${1:-TERM} i
	C_CM_RC=
	kill "-$sig" "$C_CM_PID" 2>/dev/null || true
	for i in $(seq 1 "${C_CM_STOP_POLLS:-200}"); do
		kill -0 "$C_CM_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$C_CM_PID" 2>/dev/null; then
		t_log "cluster manager did not stop on SIG$sig"
		kill -KILL "$C_CM_PID" 2>/dev/null || true
	fi
	set +e
	wait "$C_CM_PID" 2>/dev/null
	C_CM_RC=$?
	set -e
}

# c_cm_rpc Method JSON [curl args]: a call with the run's token (if any),
# body on stdout, fails on !2xx.
c_cm_rpc() {
	local m=$1 body=$2 auth; shift 2
	auth=$(c_auth_h)
	nq cm curl -sf -m 10 "${C_CURL[@]}" -H 'Content-Type: application/json' \
		${auth:+-H "$auth"} -d "$body" "$@" "$C_CM_URL/$C_CM_SVC/$m"
}

# c_cm_call Method JSON [curl args...]: no token unless given; body on
# stdout, status in $(t_http); C_CM_CT overrides the content type; a call
# run in the background needs its own C_CM_OUT.
c_cm_call() {
	local method=$1 body=$2 f=$T_TMP/${C_CM_OUT:-rpc}; shift 2
	nq cm curl -sS -m 40 "${C_CURL[@]}" -o "${f}_body" -w '%{http_code}' \
		-H "Content-Type: ${C_CM_CT:-application/json}" -d "$body" "$@" \
		"$C_CM_URL/$C_CM_SVC/$method" >"${f}_status" 2>"${f}_err" ||
		echo 000 >"${f}_status"
	cat "${f}_body" 2>/dev/null || true
}
# c_cm_json: like c_cm_call, but fails unless the status is 200.
c_cm_json() {
	local out
	out=$(c_cm_call "$@")
	if [ "$(t_http)" != 200 ]; then
		t_log "$1 $2 -> HTTP $(t_http): $out"
		return 1
	fi
	echo "$out"
}
# c_cm_parallel Method BODIES: one call of Method per line (a JSON body) of
# the file BODIES with the run's token (if any), 32 at a time over one curl;
# the HTTP codes, one a line.
c_cm_parallel() {
	python3 - "$C_CM_URL/$C_CM_SVC/$1" "$2" "$(c_auth_h)" \
		"$([ "$C_TLS" != 1 ] || echo "$C_TLS_CA")" \
		>"$T_TMP/parallel.cfg" <<'PY'
import sys
url, bodies, auth, ca = sys.argv[1:5]
def q(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
first = True
for body in open(bodies):
    if not first:
        print("next")
    first = False
    print("url = " + q(url))
    print("header = " + q("Content-Type: application/json"))
    if auth:
        print("header = " + q(auth))
    if ca:
        print("cacert = " + q(ca))
    print("data = " + q(body.rstrip("\n")))
    print("output = /dev/null")
    print("max-time = 60")
    print('write-out = "%{http_code}\\n"')
PY
	nq cm curl -sS --no-progress-meter -Z --parallel-max 32 -K "$T_TMP/parallel.cfg"
}
c_cm_metrics() { nq cm curl -sS -m 10 "${C_CURL[@]}" "$C_CM_URL/metrics"; }
# Value of one sample line, e.g. c_cm_metric 'wgcni_nodes'
c_cm_metric() { c_cm_metrics | awk -v s="$1" '$1 == s { print $2 }'; }
# c_cm_polls N: exactly N ListPeers calls are waiting (for t_wait).
c_cm_polls() { test "$(c_cm_metric wgcni_long_polls)" = "$1"; }

# A real WireGuard public key.
c_pubkey() { wg genkey | wg pubkey; }
c_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# c_match STRING REGEX: [[ =~ ]] as a command, for t_ok.
c_match() { [[ $1 =~ $2 ]]; }

# --- node managers ----------------------------------------------------------

# c_nm_start I [FLAGS...]: node manager I with the parameters' flags,
# C_NM_FLAGS, C_NODE_FLAGS[I] and FLAGS (does not wait: c_nm_wait). A node
# the mesh checks should count goes into C_NODES (c_cluster and c_node_join
# do that); every node started is cleaned up by c_leak_check.
c_nm_start() {
	local i; i=$(c_i "$1"); shift
	mkdir -p "$(c_dir "$i")"
	# shellcheck disable=SC2086 # C_NM_WRAP and C_NODE_FLAGS are word lists
	c_spawn "nm$i" "$(c_nm_log "$i")" ip netns exec "$(t_ns "$(c_host "$i")")" ${C_NM_WRAP:-} "$C_NM_BIN" \
		--cluster-manager "$C_CM_URL" --node-name "$(c_name "$i")" \
		--endpoint "$(c_endpoint "$i")" --interface "$(c_ifname "$i")" --listen-port 51820 \
		--socket "$(c_sock "$i")" --state-dir "$(c_state "$i")" --backend "$C_BACKEND" \
		$([ "$C_BACKEND" = userspace ] && echo --userspace-implementation "$C_IMPL") \
		$([ "$C_AUTH" = token ] && echo --token-file "$C_TOKEN") \
		"${C_NM_FLAGS[@]}" ${C_NODE_FLAGS[$i]:-} "$@"
	echo "$(c_ifname "$i")" >>"$C_WGNAMES"
	local j; for j in "${C_STARTED[@]}"; do [ "$j" = "$i" ] && return 0; done
	C_STARTED+=("$i")
}

# c_nm_cleanup I: `wgcni-node-manager cleanup` on node I (its manager stopped).
c_nm_cleanup() {
	local i; i=$(c_i "$1")
	nq "$(c_host "$i")" "$C_NM_BIN" cleanup --interface "$(c_ifname "$i")" --socket "$(c_sock "$i")" \
		--state-dir "$(c_state "$i")" --backend "$C_BACKEND" >>"$C_LOGDIR/cleanup.log" 2>&1
}

# c_nm_cleanup_all: stop every node manager ever started (all signalled at
# once), then `cleanup` on every node at once; asserts each cleanup.
c_nm_cleanup_all() {
	local i p pids=()
	for i in "${C_STARTED[@]}"; do
		p=$(c_nm_pid "$i")
		[ -z "$p" ] || kill -TERM "$p" 2>/dev/null || true
	done
	for i in "${C_STARTED[@]}"; do c_nm_stop "$i"; done
	for i in "${C_STARTED[@]}"; do
		( rc=0; c_nm_cleanup "$i" || rc=$?; echo "$rc" >"$T_TMP/cleanup.$i.rc" ) &
		pids+=($!)
	done
	[ ${#pids[@]} = 0 ] || wait "${pids[@]}"
	for i in "${C_STARTED[@]}"; do
		t_eq "node $i: wgcni-node-manager cleanup" 0 "$(cat "$T_TMP/cleanup.$i.rc" 2>/dev/null)"
	done
}

c_nm_pid() { local v; v=T_PID_nm$(c_i "$1"); echo "${!v:-}"; }
c_nm_stop() { t_stop_pid "$(c_nm_pid "$1")" "${2:-TERM}"; }
c_nm_alive() { local p; p=$(c_nm_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# c_nm_rpc I Method [JSON]: body on stdout, fails on !2xx.
c_nm_rpc() {
	curl -sf -m 10 --unix-socket "$(c_sock "$1")" -H 'Content-Type: application/json' \
		-d "${3:-"{}"}" "http://localhost/wgcni.node.v1.NodeService/$2"
}
# c_nm_call I Method JSON: body on stdout whatever the status, in $(t_http).
c_nm_call() {
	t_rpc http://nm/wgcni.node.v1.NodeService "$2" "$3" --unix-socket "$(c_sock "$1")"
}
c_nm_metrics() { curl -sf -m 10 --unix-socket "$(c_sock "$1")" http://nm/metrics; }
c_nm_healthy() { curl -sf -m 1 --unix-socket "$(c_sock "$1")" http://nm/healthz; }
c_nm_wait_healthy() { t_wait "node manager $1 healthy" "${2:-30}" c_nm_healthy "$1"; }

c_nm_ready() {
	local out
	out=$(c_nm_rpc "$1" GetNode '{}') || return 1
	[ -n "$(jq -r '.node.publicKey // empty' <<<"$out")" ] || return 1
	nq "$(c_host "$1")" ip link show "$(c_ifname "$1")" >/dev/null 2>&1
}
c_nm_wait() { t_wait "node manager $1 ready" "${2:-20}" c_nm_ready "$1" && c_node_key "$1" >/dev/null; }
# c_nm_up I [FLAGS...]: start and wait until ready.
c_nm_up() { c_nm_start "$@" && c_nm_wait "$1"; }

# A node's public key; cached once read (it lives in the node's state dir
# and survives restarts), so convergence polls cost one `wg show` per node.
declare -A C_KEY
c_node_key() {
	local i; i=$(c_i "$1")
	[ -n "${C_KEY[$i]:-}" ] || C_KEY[$i]=$(c_nm_rpc "$i" GetNode '{}' | jq -r '.node.publicKey')
	echo "${C_KEY[$i]}"
}
c_node_addr() { c_nm_rpc "$1" GetNode '{}' | jq -r '.node.address' | cut -d, -f1 | cut -d/ -f1; }

# c_wg I ARGS...: `wg ARGS` in node I's namespace.
c_wg() { local i=$1; shift; nq "$(c_host "$i")" wg "$@"; }
# Peers of interface IF as "key endpoint allowed-ips handshake rx tx keepalive".
c_wg_peers() { wg show "$1" dump | tail -n +2 | awk '{print $1, $3, $4, $5, $6, $7, $8}'; }
c_wg_peer_count() { wg show "$1" peers | grep -c . || true; }
# c_peer_count I: number of peers on node I's interface.
c_peer_count() { c_wg "$1" show "$(c_ifname "$1")" peers 2>/dev/null | grep -c . || true; }

# Public keys of the node peers on node I's interface: peers whose AllowedIPs
# include something wider than a host route (containers have /32 and /128).
c_node_peers() {
	c_wg "$1" show "$(c_ifname "$1")" allowed-ips |
		awk '{ for (f = 2; f <= NF; f++) if ($f !~ /\/(32|128)$/ && $f != "(none)") { print $1; break } }' | sort
}
c_container_peers() {
	c_wg "$1" show "$(c_ifname "$1")" allowed-ips |
		awk '{ node = 0; for (f = 2; f <= NF; f++) if ($f !~ /\/(32|128)$/) node = 1; if (!node) print $1 }' | sort
}

# Node I is converged when its node peers are exactly the other running nodes.
c_expected_peers() {
	local i; i=$(c_i "$1"); local j
	for j in "${C_NODES[@]}"; do [ "$j" = "$i" ] || c_node_key "$j"; done | sort
}
c_node_converged() { [ "$(c_node_peers "$1")" = "$(c_expected_peers "$1")" ]; }
c_converged() {
	local i
	for i in "${C_NODES[@]}"; do c_node_converged "$i" || return 1; done
}

# c_handshaken I J: a handshake in both directions between nodes I and J
# (pings J's interface address from I's namespace to make one).
c_handshaken() {
	nq "$(c_host "$1")" ping -c1 -W1 "$(c_node_addr "$2")" >/dev/null 2>&1 || true
	c_wg "$1" show "$(c_ifname "$1")" latest-handshakes | awk '$2 > 0 { ok = 1 } END { exit !ok }' &&
		c_wg "$2" show "$(c_ifname "$2")" latest-handshakes | awk '$2 > 0 { ok = 1 } END { exit !ok }'
}

# c_node_join I: host namespace, node manager, wait until ready.
c_node_join() {
	local i; i=$(c_i "$1")
	c_node_host "$i"
	c_nm_start "$i"
	C_NODES+=("$i")
	c_nm_wait "$i"
}

# c_cluster N [CM FLAGS...]: the whole cluster with N nodes, converged; the
# node interface addresses in C_GW.
c_cluster() {
	local n=$1 i; shift
	c_need
	c_need_driver
	c_cm_host
	c_cm_start "$@" || return 1
	for i in $(seq 1 "$n"); do
		c_node_host "$i"
		c_nm_start "$i"
		C_NODES+=("$i")
	done
	for i in $(seq 1 "$n"); do c_nm_wait "$i" || return 1; done
	t_wait "node mesh converged ($n nodes)" 20 c_converged || return 1
	for i in $(seq 1 "$n"); do C_GW[$i]=$(c_node_addr "$i"); done
}

# --- what the leak check needs ------------------------------------------------

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

c_ifindex() { nq "$(c_host "$1")" cat "/sys/class/net/$(c_ifname "$1")/ifindex"; }

# c_node_forget I: node I is no longer expected in the mesh.
c_node_forget() {
	local out=() j i; i=$(c_i "$1")
	for j in "${C_NODES[@]}"; do [ "$j" = "$i" ] || out+=("$j"); done
	C_NODES=("${out[@]}")
}

c_node_running() { local j i; i=$(c_i "$1"); for j in "${C_NODES[@]}"; do [ "$j" = "$i" ] && return 0; done; return 1; }

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

# The scenario's end, whatever the scenario started: DEL every container
# attached through c_ctr_add (twice: DEL is idempotent), check the running
# node managers hold nothing, stop every node manager ever started, run
# `cleanup` on each, check every host (links, firewall chains and rules,
# routes), stop the etcd members (c_etcd_stop), then that no process is
# left in this run's namespaces (but the cluster manager), no sanitizer
# report in the logs and no UAPI socket of this run. A scenario with only a
# cluster manager gets the last three.
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
		c_nm_alive "$i" || continue
		t_eq "node $i: no allocations left (ListAllocations)" 0 \
			"$(c_nm_rpc "$i" ListAllocations '{}' | jq '.allocations // [] | length')"
		t_eq "node $i: no container peers left" "" "$(c_container_peers "$i" | xargs)"
	done
	c_nm_cleanup_all
	for h in "${C_HOSTS[@]}"; do
		[ "$h" = cm ] && continue
		t_eq "$h: only lo and the underlay left" "eth0 lo" "$(c_links "$h")"
		t_eq "$h: no wgcni firewall chains or rules left" "" "$(c_fw_rules "$h" | xargs)"
		t_eq "$h: no routes beyond the underlay" "$C_UL.0/24" \
			"$(nq "$h" ip -4 route show | awk '{print $1}' | xargs)"
		t_eq "$h: no IPv6 routes beyond link-local" "" \
			"$(nq "$h" ip -6 route show | awk '$1 != "fe80::/64" {print $1}' | xargs)"
	done
	[ ${#C_ETCD_MEMBERS[@]} = 0 ] || c_etcd_stop
	t_eq "no process left in this run's namespaces" "" "$(c_leak_procs)"
	t_eq "no sanitizer report from the daemons or the plugin" "" \
		"$(grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T_TMP"/*.log 2>/dev/null | xargs -r -n1 basename | xargs)"
	t_log "tracked $(grep -c . "$C_WGNAMES" 2>/dev/null || true) wireguard-go interface names of this run"
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
		for f in "$C_LOGDIR"/cm*.log "$C_LOGDIR"/nm*.log "$T_TMP"/cni.log "$C_LOGDIR"/cleanup.log \
			"$C_LOGDIR"/etcd*.log; do
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
[ -n "${T_NO_TRAP:-}" ] || trap c_exit EXIT

# Containers (libcni and the plugin run directly), API attachments, wgcnictl
# and traffic measurements on this cluster; etcd members.
. "$(dirname "${BASH_SOURCE[0]}")/lib_workload.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib_etcd.sh"

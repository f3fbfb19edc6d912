#!/bin/bash
# Cluster manager at scale: NODES (default 1000) simulated node managers
# against the release build of wgcni-cluster-manager in a private network
# namespace, driven by the compiled simulator bench/sim (one thread, epoll,
# one keep-alive connection per node). Each node allocates a subnet,
# registers a real X25519 public key and follows the peer set with WatchPeers
# (METHOD=watch, the default) or the old ListPeers (METHOD=listpeers) until
# it holds all NODES-1 others. Then one node rotates its key and the time
# until every other node holds it, and the bytes each received, are measured.
#
# Prints one line of key=value figures per phase (keygen, cold, change) and
# one for the daemon: peak RSS (VmHWM), CPU seconds (utime+stime), and the
# simulator's own CPU. Bounded: TIMEOUT seconds for the cold start (120;
# LIST_TIMEOUT, 60, for ListPeers, which does not scale), CHANGE_TIMEOUT for
# the change (10). PROGRESS=1: one line of progress a second on stderr.
#
#   make all && bench/cluster_scale.sh                 (BUILDDIR=... for another tree)
#   NODES=10000 bench/cluster_scale.sh
#   METHOD=listpeers NODES=1000 LIST_TIMEOUT=30 bench/cluster_scale.sh
#   METHODS="listpeers watch" ...     one fresh daemon per method, in turn
#   DATASTORE=etcd MANAGERS=2 bench/cluster_scale.sh
#
# DATASTORE=etcd: a fresh etcd (Debian's etcd-server; ETCD_MEMBERS members,
# default 1, on loopback in the namespace) per method, and MANAGERS cluster
# managers (default 1) on it at ports 8080, 8081, ...: simulated node i
# calls manager i % MANAGERS, the key rotation goes through the first, so
# the change phase measures a change crossing managers through etcd. Each
# daemon (and each etcd member) gets its own phase=daemon line.
set -eu
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
: "${NODES:=1000}"
: "${TIMEOUT:=120}"
: "${LIST_TIMEOUT:=60}"
: "${PROGRESS:=}"
: "${CHANGE_TIMEOUT:=10}"
: "${METHOD:=watch}"
: "${METHODS:=$METHOD}"
: "${WINDOW:=2048}"
: "${SIM:=}"
: "${DATASTORE:=sqlite}"
: "${MANAGERS:=1}"
: "${ETCD_MEMBERS:=1}"
BIN=$BUILDDIR/bin/wgcni-cluster-manager
NS=wgb$$-cm
TMP=$(mktemp -d "/tmp/wgb$$.XXXXXX")
PID=
PIDS=()
EPIDS=()

stop_pid() {
	local pid=$1
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

stop_daemon() {
	local p
	for p in "${PIDS[@]}" "${EPIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
	EPIDS=()
	PID=
}

etcd_eps() {
	local i eps=""
	for i in $(seq 1 "$ETCD_MEMBERS"); do eps=${eps:+$eps,}http://127.0.0.1:$((2379 + 10000 * (i - 1))); done
	echo "$eps"
}

start_etcd() {
	local i cluster=""
	for i in $(seq 1 "$ETCD_MEMBERS"); do
		cluster=${cluster:+$cluster,}m$i=http://127.0.0.1:$((2380 + 10000 * (i - 1)))
	done
	rm -rf "$TMP/etcd"
	for i in $(seq 1 "$ETCD_MEMBERS"); do
		local c=$((2379 + 10000 * (i - 1)))
		ip netns exec "$NS" etcd --name "m$i" --data-dir "$TMP/etcd/m$i" \
			--listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
			--listen-peer-urls "http://127.0.0.1:$((c + 1))" \
			--initial-advertise-peer-urls "http://127.0.0.1:$((c + 1))" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "wgb$$" >"$TMP/etcd$i.log" 2>&1 &
		EPIDS+=("$!")
	done
	for i in $(seq 1 600); do
		ETCDCTL_API=3 ip netns exec "$NS" etcdctl --endpoints "$(etcd_eps)" \
			--command-timeout=2s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "etcd not healthy" >&2
	tail -n 20 "$TMP"/etcd*.log >&2
	return 1
}

# /proc figures of one process: "peak_rss_kib cpu_s".
proc_figures() {
	awk '/^VmHWM/ { printf "%s ", $2 }' "/proc/$1/status"
	awk -v hz="$hz" '{ i = index($0, ") "); split(substr($0, i + 2), f, " ");
		printf "%.2f\n", (f[12] + f[13]) / hz }' "/proc/$1/stat"
}

cleanup() {
	set +e
	stop_daemon
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "missing $BIN: run make first" >&2; exit 1; }
case $DATASTORE in
sqlite) [ "$MANAGERS" = 1 ] || { echo "MANAGERS=$MANAGERS needs DATASTORE=etcd" >&2; exit 1; } ;;
etcd) command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
	{ echo "DATASTORE=etcd needs etcd-server and etcd-client" >&2; exit 1; } ;;
*) echo "DATASTORE: sqlite or etcd, not $DATASTORE" >&2; exit 1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

# The simulator: built here from bench/sim unless SIM names a binary.
if [ -z "$SIM" ]; then
	SIM=$TMP/wgcni-cluster-sim
	# shellcheck disable=SC2046
	${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes \
		-Wmissing-prototypes -Wshadow -Wformat=2 -Wno-unused-parameter \
		-I"$ROOT/proto/gen" $(pkg-config --cflags libprotobuf-c libsodium) \
		-o "$SIM" "$ROOT"/bench/sim/*.c "$ROOT/proto/gen/wgcni/cluster/v1/cluster.pb-c.c" \
		$(pkg-config --libs libprotobuf-c libsodium) -lm
fi
"$SIM" --self-test

# One file descriptor per simulated node in the daemon and in the simulator
# (separate processes, each gets the limit): raise the hard limit if we can.
need=$((NODES + 256))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	echo "NODES=$NODES needs $need file descriptors, the hard limit is $(ulimit -Hn)" >&2
	exit 1
fi

ip netns add "$NS"
ip -n "$NS" link set lo up
# Loopback in the namespace: enough ephemeral ports and accept backlog for
# ten thousand connections (these sysctls are per network namespace).
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
ip netns exec "$NS" sysctl -qw net.core.somaxconn=8192
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_max_syn_backlog=8192

hz=$(getconf CLK_TCK)
# The simulator reports its own CPU (getrusage) per phase and in total.
rc=0
for method in $METHODS; do
	rm -rf "$TMP/state"
	ds=()
	if [ "$DATASTORE" = etcd ]; then
		start_etcd || exit 1
		ds=(--datastore etcd --etcd-endpoints "$(etcd_eps)")
	fi
	ports=""
	for k in $(seq 1 "$MANAGERS"); do
		port=$((8080 + k - 1))
		ports=${ports:+$ports,}$port
		# 10.0.0.0/8 holds 65536 /24s, one per node.
		ip netns exec "$NS" "$BIN" --listen "127.0.0.1:$port" --state-dir "$TMP/state" \
			"${ds[@]}" --cluster-cidr 10.0.0.0/8 --node-prefix-length 24 --log-level warn \
			>"$TMP/cm$k.log" 2>&1 &
		PIDS+=("$!")
		for i in $(seq 1 100); do
			ip netns exec "$NS" curl -sf -m 1 -o /dev/null "http://127.0.0.1:$port/healthz" && break
			kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$TMP/cm$k.log" >&2; exit 1; }
			[ "$i" -lt 100 ] || { echo "cluster manager $k not ready" >&2; exit 1; }
			sleep 0.05
		done
	done
	PID=${PIDS[0]}
	rss0=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")

	set +e
	limit=$TIMEOUT
	[ "$method" != listpeers ] || limit=$LIST_TIMEOUT
	ip netns exec "$NS" "$SIM" --port "$ports" --nodes "$NODES" --method "$method" --window "$WINDOW" \
		--timeout "$limit" --change-timeout "$CHANGE_TIMEOUT" --daemon-pid "$PID" \
		${PROGRESS:+--progress} >"$TMP/sim.out" 2>"$TMP/sim.err" &
	spid=$!
	wait "$spid"
	src=$?
	set -e
	cat "$TMP/sim.out"
	sed 's/^/sim: /' "$TMP/sim.err" >&2
	[ "$src" = 0 ] || rc=1
	for k in $(seq 1 "$MANAGERS"); do
		read -r rss cpu < <(proc_figures "${PIDS[k - 1]}")
		nodes=$(ip netns exec "$NS" curl -sf -m 5 "http://127.0.0.1:$((8080 + k - 1))/metrics" |
			awk '$1 == "wgcni_nodes" { print $2 }')
		if [ "$DATASTORE" = etcd ]; then
			db="etcd_db_kib=$(du -k "$TMP/etcd/m1/member/snap/db" | cut -f1)"
		else
			db="db_kib=$(du -k "$TMP/state/cluster.db" | cut -f1)"
		fi
		echo "phase=daemon method=$method datastore=$DATASTORE manager=$k nodes=$nodes" \
			"daemon_peak_rss_kib=$rss daemon_rss_at_start_kib=$rss0 daemon_cpu_s=$cpu" \
			"sim_rc=$src $db"
	done
	for i in $(seq 1 "${#EPIDS[@]}"); do
		read -r rss cpu < <(proc_figures "${EPIDS[i - 1]}")
		echo "phase=etcd method=$method member=$i peak_rss_kib=$rss cpu_s=$cpu"
	done
	for k in $(seq 1 "$MANAGERS"); do
		if grep -q . "$TMP/cm$k.log"; then
			echo "daemon $k log (warnings):"; head -5 "$TMP/cm$k.log"
		fi
	done
	stop_daemon
done
exit "$rc"

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
BIN=$BUILDDIR/bin/wgcni-cluster-manager
NS=wgb$$-cm
TMP=$(mktemp -d "/tmp/wgb$$.XXXXXX")
PID=

stop_daemon() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$PID" 2>/dev/null || true
	fi
	[ -z "$PID" ] || wait "$PID" 2>/dev/null || true
	PID=
}

cleanup() {
	set +e
	stop_daemon
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "missing $BIN: run make first" >&2; exit 1; }
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
	# 10.0.0.0/8 holds 65536 /24s, one per node.
	ip netns exec "$NS" "$BIN" --listen 127.0.0.1:8080 --state-dir "$TMP/state" \
		--cluster-cidr 10.0.0.0/8 --node-prefix-length 24 --log-level warn \
		>"$TMP/cm.log" 2>&1 &
	PID=$!
	for i in $(seq 1 100); do
		ip netns exec "$NS" curl -sf -m 1 -o /dev/null http://127.0.0.1:8080/healthz && break
		kill -0 "$PID" 2>/dev/null || { cat "$TMP/cm.log" >&2; exit 1; }
		[ "$i" -lt 100 ] || { echo "cluster manager not ready" >&2; exit 1; }
		sleep 0.05
	done
	rss0=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")

	set +e
	limit=$TIMEOUT
	[ "$method" != listpeers ] || limit=$LIST_TIMEOUT
	ip netns exec "$NS" "$SIM" --nodes "$NODES" --method "$method" --window "$WINDOW" \
		--timeout "$limit" --change-timeout "$CHANGE_TIMEOUT" --daemon-pid "$PID" \
		${PROGRESS:+--progress} >"$TMP/sim.out" 2>"$TMP/sim.err" &
	spid=$!
	wait "$spid"
	src=$?
	set -e
	cat "$TMP/sim.out"
	sed 's/^/sim: /' "$TMP/sim.err" >&2
	[ "$src" = 0 ] || rc=1
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
	cpu=$(awk -v hz="$hz" '{ i = index($0, ") "); split(substr($0, i + 2), f, " ");
		printf "%.2f", (f[12] + f[13]) / hz }' "/proc/$PID/stat")
	nodes=$(ip netns exec "$NS" curl -sf -m 5 http://127.0.0.1:8080/metrics |
		awk '$1 == "wgcni_nodes" { print $2 }')
	echo "phase=daemon method=$method nodes=$nodes daemon_peak_rss_kib=$rss" \
		"daemon_rss_at_start_kib=$rss0 daemon_cpu_s=$cpu" \
		"sim_rc=$src db_kib=$(du -k "$TMP/state/cluster.db" | cut -f1)"
	if grep -q . "$TMP/cm.log"; then
		echo "daemon log (warnings):"; head -5 "$TMP/cm.log"
	fi
	stop_daemon
done
exit "$rc"

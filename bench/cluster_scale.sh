#!/bin/bash
# Cluster manager at scale: NODES (default 1000) simulated nodes allocate a
# subnet, register a real X25519 public key and long-poll ListPeers until each
# holds all NODES-1 others, against the release build in a private network
# namespace. Prints the time to full convergence and the daemon's peak RSS
# (VmHWM). Bounded: the simulated nodes give up after TIMEOUT seconds (100).
#
#   make all && bench/cluster_scale.sh        (BUILDDIR=... for another tree)
set -eu
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
: "${NODES:=1000}"
: "${TIMEOUT:=100}"
BIN=$BUILDDIR/bin/wgcni-cluster-manager
NS=wgb$$-cm
TMP=$(mktemp -d "/tmp/wgb$$.XXXXXX")
PID=

cleanup() {
	set +e
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "missing $BIN: run make first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

ip netns add "$NS"
ip -n "$NS" link set lo up
# 10.0.0.0/8 holds 65536 /24s, one per node. One file descriptor per
# simulated node in the daemon and in the client: as many as allowed.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((NODES + 256)) ]; then
	echo "NODES=$NODES needs $((NODES + 256)) file descriptors, the hard limit is $(ulimit -Hn)" >&2
	exit 1
fi
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

check=()
if command -v wg >/dev/null; then
	priv=$(wg genkey)
	check=(--check-key "$priv,$(wg pubkey <<<"$priv")")
fi
set +e
ip netns exec "$NS" python3 "$ROOT/bench/cluster_scale.py" --nodes "$NODES" \
	--timeout "$TIMEOUT" "${check[@]}" | tee "$TMP/result"
rc=$?
set -e
rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
# utime + stime (fields 14, 15 of /proc/PID/stat; the name in field 2 has no spaces here).
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$PID/stat")
nodes=$(ip netns exec "$NS" curl -sf -m 5 http://127.0.0.1:8080/metrics |
	awk '$1 == "wgcni_nodes" { print $2 }')
echo "daemon: nodes=$nodes peak_rss_kib=$rss (at start $rss0) cpu_s=$cpu db_kib=$(du -k "$TMP/state/cluster.db" | cut -f1)"
if grep -q . "$TMP/cm.log"; then
	echo "daemon log (warnings):"; head -5 "$TMP/cm.log"
fi
exit "$rc"

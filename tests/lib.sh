# Shared helpers for the integration tests, in the style of WireGuard's
# tests/netns.sh: names carry the shell PID so runs never collide, each
# command is printed before it runs, readiness is polled (bounded) and never
# slept for, and cleanup runs on exit: processes we started (by PID), links,
# then namespaces.
#
# Usage:  . "$(dirname "$0")/../lib.sh"
#         t_netns_add node1           -> namespace "wgt$$-node1", echoed in $NS
#         t_spawn NAME cmd...         -> runs in background, PID recorded
#         t_wait "what" timeout_s cmd... -> poll until cmd succeeds
#         t_ok "what" cmd... / t_fail "what" cmd...   -> assertions
# Every test script ends with t_done, which prints the counts and exits.

set -e
set -o pipefail

T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BUILDDIR:=$T_ROOT/build}"
# Absolute: the Go build cache needs it, and so does a script that changes directory.
case $BUILDDIR in /*) ;; *) BUILDDIR=$PWD/$BUILDDIR ;; esac
T_BIN="$BUILDDIR/bin"
T_SANBIN="$BUILDDIR/asan/bin"
# T_ID, T_TMP: set beforehand by a caller with its own lifetime (the demo,
# which also sets T_NO_TRAP=1: no cleanup at exit).
T_ID=${T_ID:-wgt$$}
T_TMP=${T_TMP:-$(mktemp -d "/tmp/$T_ID.XXXXXX")}
T_PASS=0
T_FAIL=0
T_PIDS=()
T_NETNS=()
T_CLEANUPS=()

pretty() { echo -e "\x1b[32m[+] ${1:+$1: }$2\x1b[0m" >&2; }
pp() { pretty "" "$*"; "$@"; }

t_log() { echo "# $*" >&2; }

# Namespace names: $T_ID-<short>; "n" <short> <cmd...> runs inside it.
t_ns() { echo "$T_ID-$1"; }
t_netns_add() {
	local ns; ns=$(t_ns "$1")
	pp ip netns add "$ns"
	T_NETNS+=("$ns")
	ip -n "$ns" link set lo up
}
n() { local ns; ns=$(t_ns "$1"); shift; pretty "$ns" "$*"; ip netns exec "$ns" "$@"; }
nq() { local ns; ns=$(t_ns "$1"); shift; ip netns exec "$ns" "$@"; }

# t_spawn NAME LOGFILE cmd... : start in background, record PID in T_PID_<NAME>.
t_spawn() {
	local name=$1 log=$2; shift 2
	pretty "spawn $name" "$*"
	"$@" >"$log" 2>&1 &
	local pid=$!
	T_PIDS+=("$pid")
	printf -v "T_PID_$name" '%s' "$pid"
}

# Stop one process we started: TERM, wait (bounded), then KILL.
t_stop_pid() {
	local pid=$1 sig=${2:-TERM} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# t_wait "what" TIMEOUT_S cmd... : poll every 50 ms until cmd succeeds.
t_wait() {
	local what=$1 timeout=$2; shift 2
	local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			t_log "timed out after ${timeout}s waiting for: $what"
			return 1
		fi
		sleep 0.05
	done
}

# t_wait_eq "what" TIMEOUT_S EXPECTED cmd... : poll until cmd prints EXPECTED.
# (t_wait "x" 5 test "$(f)" = 1 would evaluate f once, before polling.)
t_wait_eq() {
	local what=$1 timeout=$2 want=$3; shift 3
	local deadline=$(( $(date +%s%N) + timeout * 1000000000 )) got
	while got=$("$@" 2>/dev/null); [ "$got" != "$want" ]; do
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			t_log "timed out after ${timeout}s waiting for: $what (want '$want', have '$got')"
			return 1
		fi
		sleep 0.05
	done
}

t_ok() {
	local what=$1; shift
	if "$@"; then
		T_PASS=$((T_PASS + 1)); echo "ok - $what"
	else
		T_FAIL=$((T_FAIL + 1)); echo "not ok - $what"
	fi
}
t_fail() {
	local what=$1; shift
	if "$@"; then
		T_FAIL=$((T_FAIL + 1)); echo "not ok - $what (succeeded, should fail)"
	else
		T_PASS=$((T_PASS + 1)); echo "ok - $what"
	fi
}
# t_eq "what" expected actual
t_eq() {
	if [ "$2" = "$3" ]; then
		T_PASS=$((T_PASS + 1)); echo "ok - $1"
	else
		T_FAIL=$((T_FAIL + 1)); echo "not ok - $1: expected '$2', got '$3'"
	fi
}

t_on_cleanup() { T_CLEANUPS+=("$*"); }

t_cleanup() {
	set +e
	local i pid ns link
	for (( i=${#T_CLEANUPS[@]}-1; i>=0; i-- )); do eval "${T_CLEANUPS[$i]}" >/dev/null 2>&1; done
	for (( i=${#T_PIDS[@]}-1; i>=0; i-- )); do t_stop_pid "${T_PIDS[$i]}"; done
	# Links first (a userspace WireGuard process keeps its namespace alive
	# until its link is gone), then the namespaces.
	for ns in "${T_NETNS[@]}"; do
		for link in $(ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
			[ "$link" = lo ] || ip -n "$ns" link del "$link" 2>/dev/null
		done
	done
	for ns in "${T_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$T_TMP"
}
[ -n "${T_NO_TRAP:-}" ] || trap t_cleanup EXIT

t_done() {
	echo "# $(basename "$0"): $T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ] && exit 0
	exit 1
}

# --- a Connect call with curl: t_rpc URL_BASE Service/Method JSON [curl args]
# Prints the body; the HTTP status is then in "$(t_http)" (a file, so it
# also works from $(t_rpc ...)).
t_rpc() {
	local base=$1 method=$2 body=$3; shift 3
	curl -sS -m 10 -o "$T_TMP/rpc_body" -w '%{http_code}' -H 'Content-Type: application/json' \
		-d "$body" "$@" "$base/$method" >"$T_TMP/rpc_status" || echo 000 >"$T_TMP/rpc_status"
	cat "$T_TMP/rpc_body" 2>/dev/null || true
}
t_http() { cat "$T_TMP/rpc_status"; }

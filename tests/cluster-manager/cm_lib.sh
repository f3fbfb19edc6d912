# Helpers shared by the cluster manager tests (sourced after ../lib.sh).
#
#   cm_start [daemon args...]   start the ASan daemon in namespace "cm" on
#                               127.0.0.1:8080 with state in $CM_STATE; waits
#                               for /healthz. CM_BIN overrides the binary,
#                               CM_WRAP prefixes a command (valgrind).
#   cm_stop [SIG]               stop it (TERM by default), exit code in $CM_RC
#   cm_call Method JSON [curl args...]  body on stdout, status in $(t_http);
#                               CM_CT overrides the content type; a call
#                               run in the background needs its own CM_OUT
#   cm_json Method JSON         like cm_call, but fails unless status is 200

CM_STATE=$T_TMP/state
CM_URL=http://127.0.0.1:8080
# Extra curl arguments for every call (e.g. --cacert for HTTPS).
CM_CURL=()
CM_BIN=${CM_BIN:-$T_SANBIN/wgcni-cluster-manager}
CM_SVC=wgcni.cluster.v1.ClusterService
CM_RUNS=0
# ASan: report leaks, make them fail the exit code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cm_setup() {
	[ -x "$CM_BIN" ] || { t_log "missing $CM_BIN (build it first)"; exit 1; }
	command -v jq >/dev/null || { t_log "jq not installed"; exit 1; }
	t_netns_add cm
}

cm_healthy() { nq cm curl -sf -m 2 "${CM_CURL[@]}" -o /dev/null "$CM_URL/healthz"; }

cm_start() {
	CM_RUNS=$((CM_RUNS + 1))
	CM_LOG=$T_TMP/cm.$CM_RUNS.log
	t_spawn cm "$CM_LOG" ip netns exec "$(t_ns cm)" ${CM_WRAP:-} "$CM_BIN" \
		--listen 127.0.0.1:8080 --state-dir "$CM_STATE" "$@"
	CM_PID=$T_PID_cm
	if ! t_wait "cluster manager /healthz" "${CM_START_TIMEOUT:-10}" cm_healthy; then
		t_log "cluster manager log:"; cat "$CM_LOG" >&2
		return 1
	fi
}

# Stop the daemon and collect its exit code (not t_stop_pid: we want the code).
cm_stop() {
	local sig=${1:-TERM} i
	CM_RC=
	kill "-$sig" "$CM_PID" 2>/dev/null || true
	for i in $(seq 1 "${CM_STOP_POLLS:-200}"); do
		kill -0 "$CM_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$CM_PID" 2>/dev/null; then
		t_log "cluster manager did not stop on SIG$sig"
		kill -KILL "$CM_PID" 2>/dev/null || true
	fi
	set +e
	wait "$CM_PID" 2>/dev/null
	CM_RC=$?
	set -e
}

cm_call() {
	local method=$1 body=$2 f=$T_TMP/${CM_OUT:-rpc}; shift 2
	nq cm curl -sS -m 40 "${CM_CURL[@]}" -o "${f}_body" -w '%{http_code}' \
		-H "Content-Type: ${CM_CT:-application/json}" -d "$body" "$@" \
		"$CM_URL/$CM_SVC/$method" >"${f}_status" 2>"${f}_err" ||
		echo 000 >"${f}_status"
	cat "${f}_body" 2>/dev/null || true
}

cm_json() {
	local out
	out=$(cm_call "$@")
	if [ "$(t_http)" != 200 ]; then
		t_log "$1 $2 -> HTTP $(t_http): $out"
		return 1
	fi
	echo "$out"
}

cm_metrics() { nq cm curl -sS -m 5 "${CM_CURL[@]}" "$CM_URL/metrics"; }
# Value of one sample line, e.g. cm_metric 'wgcni_nodes'
cm_metric() { cm_metrics | awk -v s="$1" '$1 == s { print $2 }'; }

# A real WireGuard public key.
cm_pubkey() { wg genkey | wg pubkey; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# cm_match STRING REGEX: [[ =~ ]] as a command, for t_ok.
cm_match() { [[ $1 =~ $2 ]]; }
# cm_polls N: exactly N ListPeers calls are waiting (for t_wait).
cm_polls() { test "$(cm_metric wgcni_long_polls)" = "$1"; }

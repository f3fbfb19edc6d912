# etcd for the test cluster harness: members of a real etcd (Debian's
# etcd-server) for the etcd client's tests and for a cluster manager on the
# etcd datastore (C_DATASTORE=etcd). Sourced by lib_cluster.sh, never on its
# own.
#
#   c_etcd_need              etcd and etcdctl installed, or exit 77 (skipped)
#   c_etcd_start N [FLAGS]   a new etcd cluster of N members, numbered on from
#                            any started before; member I serves clients on
#                            port C_ETCD_PORT + 10000 * (I - 1) (2379, 12379,
#                            ...), peers on the next port; FLAGS go to every
#                            member. Waits (C_ETCD_START_TIMEOUT, 60 s) until
#                            all N are healthy. Its client URLs, comma
#                            separated, are then in C_ETCD_ENDPOINTS.
#                            C_ETCD_TLS=1: clients need TLS and a client
#                            certificate ($C_ETCD_CA, $C_ETCD_CERT, $C_ETCD_KEY,
#                            made once by c_etcd_pki)
#   c_etcd_url I, c_etcd_pid I   member I's client URL, its PID
#   c_etcd_kill I [SIG]      signal member I (KILL), wait until it is gone
#                            (bounded) and reap it
#   c_etcd_down I            member I's process is gone (or a zombie not yet
#                            reaped, e.g. killed by a test program)
#   c_etcdctl ARGS           etcdctl v3 on C_ETCD_ENDPOINTS (TLS as started)
#   c_etcd_stop              stop every member (TERM, then KILL), reap and
#                            assert each is gone; c_leak_check calls it
#
# Where: namespace $C_ETCD_NS (etcd). If that namespace exists already
# (e.g. C_ETCD_NS=cm, beside a cluster manager on 127.0.0.1), on its
# loopback; else, if there is an underlay, as host $C_ETCD_NS on it at
# $C_UL.$C_ETCD_OCTET (3); else a namespace of its own, on loopback. The
# address is in C_ETCD_ADDR. Data directories under $T_TMP/etcd, logs
# $C_LOGDIR/etcdI.log; members are started by c_spawn, so lib.sh's cleanup
# stops them by PID whatever happens.

C_ETCD_NS=${C_ETCD_NS:-}
C_ETCD_OCTET=${C_ETCD_OCTET:-3}
C_ETCD_PORT=${C_ETCD_PORT:-2379}
C_ETCD_TLS=${C_ETCD_TLS:-0}
C_ETCD_ENDPOINTS=${C_ETCD_ENDPOINTS:-}
C_ETCD_ADDR=
C_ETCD_PKI=$T_TMP/etcd-pki
C_ETCD_CA=$C_ETCD_PKI/ca.pem
C_ETCD_CERT=$C_ETCD_PKI/client.pem
C_ETCD_KEY=$C_ETCD_PKI/client.key
C_ETCD_MEMBERS=()          # the member indexes c_etcd_stop has to stop
C_ETCD_COUNT=0             # members ever started (indexes are never reused)
declare -A C_ETCD_SCHEME   # member index -> http or https

c_etcd_need() {
	if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
		echo "# etcd-server / etcd-client not installed: skipped"
		exit 77
	fi
}

c_etcd_port() { echo $((C_ETCD_PORT + 10000 * ($1 - 1))); }
c_etcd_url() { echo "${C_ETCD_SCHEME[$1]:-http}://$C_ETCD_ADDR:$(c_etcd_port "$1")"; }
c_etcd_peer_url() { echo "http://$C_ETCD_ADDR:$(( $(c_etcd_port "$1") + 1 ))"; }
c_etcd_pid() { local v=T_PID_etcd$1; echo "${!v:-}"; }

c_etcd_place() {
	[ -z "$C_ETCD_ADDR" ] || return 0
	C_ETCD_NS=${C_ETCD_NS:-etcd}
	if c_has_ns "$C_ETCD_NS"; then
		C_ETCD_ADDR=127.0.0.1
	elif c_has_ns ul; then
		c_host_add "$C_ETCD_NS" "$C_ETCD_OCTET"
		C_ETCD_ADDR=$C_UL.$C_ETCD_OCTET
	else
		t_netns_add "$C_ETCD_NS"
		C_ETCD_ADDR=127.0.0.1
	fi
	mkdir -p "$T_TMP/etcd"
}

# c_etcd_pki: a CA, a server certificate for C_ETCD_ADDR and a client
# certificate, each good for both ends.
c_etcd_pki() {
	local who
	[ ! -s "$C_ETCD_CA" ] || return 0
	command -v openssl >/dev/null || { t_log "openssl not installed (needed for etcd TLS)"; return 1; }
	mkdir -p "$C_ETCD_PKI"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj /CN=wgcni-test-ca -keyout "$C_ETCD_PKI/ca.key" -out "$C_ETCD_CA" >/dev/null 2>&1 || return 1
	for who in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$who" \
			-keyout "$C_ETCD_PKI/$who.key" -out "$C_ETCD_PKI/$who.csr" >/dev/null 2>&1 || return 1
		printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$C_ETCD_ADDR" \
			>"$C_ETCD_PKI/$who.ext"
		openssl x509 -req -in "$C_ETCD_PKI/$who.csr" -CA "$C_ETCD_CA" -CAkey "$C_ETCD_PKI/ca.key" \
			-CAcreateserial -days 1 -extfile "$C_ETCD_PKI/$who.ext" -out "$C_ETCD_PKI/$who.pem" \
			>/dev/null 2>&1 || return 1
	done
}

c_etcd_tls_args() {
	[ "$C_ETCD_TLS" != 1 ] || echo --cacert "$C_ETCD_CA" --cert "$C_ETCD_CERT" --key "$C_ETCD_KEY"
}
c_etcdctl() {
	# shellcheck disable=SC2046 # the TLS arguments are words (paths without spaces)
	ETCDCTL_API=3 nq "$C_ETCD_NS" etcdctl --endpoints "$C_ETCD_ENDPOINTS" $(c_etcd_tls_args) "$@"
}
c_etcd_healthy() { c_etcdctl --command-timeout=2s endpoint health; }

c_etcd_start() {
	local n=$1 first i cluster="" eps="" tls=(); shift
	first=$((C_ETCD_COUNT + 1))
	[ "$n" -ge 1 ] && [ $((first + n - 1)) -le 6 ] ||
		{ t_log "c_etcd_start $n: 1 to 6 members in all (ports up to 62380)"; return 1; }
	c_etcd_place
	if [ "$C_ETCD_TLS" = 1 ]; then
		c_etcd_pki || { t_log "cannot make the etcd certificates"; return 1; }
		tls=(--cert-file "$C_ETCD_PKI/server.pem" --key-file "$C_ETCD_PKI/server.key"
			--client-cert-auth --trusted-ca-file "$C_ETCD_CA")
	fi
	for i in $(seq "$first" $((first + n - 1))); do
		C_ETCD_SCHEME[$i]=$([ "$C_ETCD_TLS" = 1 ] && echo https || echo http)
		cluster=${cluster:+$cluster,}m$i=$(c_etcd_peer_url "$i")
		eps=${eps:+$eps,}$(c_etcd_url "$i")
	done
	for i in $(seq "$first" $((first + n - 1))); do
		c_spawn "etcd$i" "$C_LOGDIR/etcd$i.log" ip netns exec "$(t_ns "$C_ETCD_NS")" etcd --name "m$i" \
			--data-dir "$T_TMP/etcd/m$i" \
			--listen-client-urls "$(c_etcd_url "$i")" --advertise-client-urls "$(c_etcd_url "$i")" \
			--listen-peer-urls "$(c_etcd_peer_url "$i")" \
			--initial-advertise-peer-urls "$(c_etcd_peer_url "$i")" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "$T_ID-m$first" "${tls[@]}" "$@"
		C_ETCD_MEMBERS+=("$i")
		C_ETCD_COUNT=$i
	done
	C_ETCD_ENDPOINTS=$eps
	if ! t_wait "$n etcd members healthy" "${C_ETCD_START_TIMEOUT:-60}" c_etcd_healthy; then
		for i in $(seq "$first" $((first + n - 1))); do
			t_log "etcd member m$i log:"; tail -n 20 "$C_LOGDIR/etcd$i.log" >&2
		done
		return 1
	fi
}

c_pid_gone() {
	kill -0 "$1" 2>/dev/null || return 0
	case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 0 ;; esac
	return 1
}
c_etcd_down() { c_pid_gone "$(c_etcd_pid "$1")"; }

# Call these two from the main shell: a $(subshell) cannot reap our children.
c_etcd_kill() {
	local pid; pid=$(c_etcd_pid "$1")
	kill "-${2:-KILL}" "$pid" 2>/dev/null || true
	t_wait "etcd member m$1 gone" 10 c_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

c_etcd_stop() {
	local i pid
	for i in "${C_ETCD_MEMBERS[@]}"; do
		pid=$(c_etcd_pid "$i")
		c_pid_gone "$pid" || kill -TERM "$pid" 2>/dev/null || true
	done
	for i in "${C_ETCD_MEMBERS[@]}"; do
		pid=$(c_etcd_pid "$i")
		t_wait "etcd member m$i stopped" 10 c_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		t_fail "etcd member m$i stopped" kill -0 "$pid" 2>/dev/null
	done
	C_ETCD_MEMBERS=()
	C_ETCD_ENDPOINTS=
}

# --- several cluster managers on one etcd (tests/etcd/test_ha_*.sh) ---------
#
#   c_cmx_start K [FLAGS]    cluster manager K (1, 2, ...) on etcd
#                            (--datastore etcd --etcd-endpoints
#                            $C_ETCD_ENDPOINTS, the run's token, CIDR and
#                            prefix flags, C_CM_FLAGS, FLAGS) in namespace cm
#                            at $C_CM_ADDR:$((C_CM_PORT + K - 1)); waits for
#                            /healthz. Log $C_LOGDIR/cmK.N.log (N counting
#                            its starts), PID $(c_cmx_pid K)
#   c_cmx_url K              its URL; c_cmx_urls K1 K2 ..: comma-separated
#   c_cmx_kill K [SIG]       signal it (KILL), wait until it is gone, reap
#   c_cmx_stop_all           TERM every one still running (before c_leak_check,
#                            which counts any left as a leaked process)
#   c_cmx_rpc K Method JSON  a call with the token: body on stdout, the HTTP
#                            status in $T_TMP/cmxK_status (c_cmx_http K)
#   c_cmx_parallel Method FILE  one call of Method per line "K JSON" of FILE,
#                            to cluster manager K, all at once (up to 128
#                            in flight, one curl); prints "LINE HTTPCODE" a
#                            line; the body of line N is $T_TMP/par/N.json
#   c_etcd_consistent [P]    etcd's contents under P (/wgcni) hold together:
#                            every P/nodes/<name>'s subnets are claimed by
#                            P/subnets/<cidr> = name and every claim is in its
#                            node's record; prints what does not (and the
#                            counts on stderr), fails if anything
#   c_etcd_restart I         start member I again (killed before) on its data
#                            directory; waits until the cluster is healthy
#   c_etcd_revision          etcd's current revision
#   c_etcd_count PREFIX      how many keys start with PREFIX

C_CMX=()                   # cluster manager indexes started by c_cmx_start
declare -A C_CMX_RUNS      # index -> starts

c_cmx_port() { echo $((C_CM_PORT + $1 - 1)); }
c_cmx_url() { echo "http://$C_CM_ADDR:$(c_cmx_port "$1")"; }
c_cmx_urls() { local k out=""; for k in "$@"; do out=${out:+$out,}$(c_cmx_url "$k"); done; echo "$out"; }
c_cmx_pid() { local v=T_PID_cmx$1; echo "${!v:-}"; }
c_cmx_alive() { local p; p=$(c_cmx_pid "$1"); [ -n "$p" ] && ! c_pid_gone "$p"; }
c_cmx_healthy() { nq cm curl -sf -m 2 -o /dev/null "$(c_cmx_url "$1")/healthz"; }
c_cmx_settled() { c_cmx_healthy "$1" || ! c_cmx_alive "$1"; }

c_cmx_start() {
	local k=$1 runs; shift
	[ -n "$C_ETCD_ENDPOINTS" ] || { t_log "c_cmx_start: no etcd running (c_etcd_start)"; return 1; }
	if [ "$C_AUTH" = token ] && [ ! -s "$C_TOKEN" ]; then c_token; fi
	runs=$(( ${C_CMX_RUNS[$k]:-0} + 1 ))
	C_CMX_RUNS[$k]=$runs
	# shellcheck disable=SC2046 # the token and TLS arguments are words
	c_spawn "cmx$k" "$C_LOGDIR/cm$k.$runs.log" ip netns exec "$(t_ns cm)" "$C_CM_BIN" \
		--listen "$C_CM_ADDR:$(c_cmx_port "$k")" --datastore etcd \
		--etcd-endpoints "$C_ETCD_ENDPOINTS" \
		$([ "$C_ETCD_TLS" = 1 ] && echo --etcd-ca-file "$C_ETCD_CA" --etcd-cert-file "$C_ETCD_CERT" --etcd-key-file "$C_ETCD_KEY") \
		${C_CIDR:+--cluster-cidr "$C_CIDR"} ${C_NODE_PREFIX:+--node-prefix-length "$C_NODE_PREFIX"} \
		${C_CIDR6:+--cluster-cidr "$C_CIDR6"} ${C_CIDR6:+${C_NODE_PREFIX6:+--node-prefix-length-v6 "$C_NODE_PREFIX6"}} \
		$([ "$C_AUTH" = token ] && echo --token-file "$C_TOKEN") \
		"${C_CM_FLAGS[@]}" "$@"
	local j; for j in "${C_CMX[@]}"; do [ "$j" = "$k" ] && break; done
	[ "${j:-}" = "$k" ] || C_CMX+=("$k")
	# healthy, or dead already (a refused flag): no use waiting on
	if ! t_wait "cluster manager $k /healthz" "${C_CM_START_TIMEOUT:-15}" c_cmx_settled "$k" ||
		! c_cmx_alive "$k"; then
		t_log "cluster manager $k log:"; tail -n 30 "$C_LOGDIR/cm$k.$runs.log" >&2
		return 1
	fi
}

# From the main shell (a $(subshell) cannot reap our children).
c_cmx_kill() {
	local pid; pid=$(c_cmx_pid "$1")
	[ -n "$pid" ] || return 0
	kill "-${2:-KILL}" "$pid" 2>/dev/null || true
	t_wait "cluster manager $1 gone" 10 c_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

c_cmx_stop_all() {
	local k
	for k in "${C_CMX[@]}"; do c_cmx_alive "$k" && c_cmx_kill "$k" TERM; done
	return 0
}

c_cmx_rpc() {
	local k=$1 m=$2 body=$3 auth; shift 3
	auth=$(c_auth_h)
	nq cm curl -sS -m "${C_CMX_TIMEOUT:-10}" -o "$T_TMP/cmx${k}_body" -w '%{http_code}' \
		-H 'Content-Type: application/json' ${auth:+-H "$auth"} -d "$body" "$@" \
		"$(c_cmx_url "$k")/$C_CM_SVC/$m" >"$T_TMP/cmx${k}_status" 2>/dev/null ||
		echo 000 >"$T_TMP/cmx${k}_status"
	cat "$T_TMP/cmx${k}_body" 2>/dev/null || true
}
c_cmx_http() { cat "$T_TMP/cmx${1}_status"; }
# c_cmx_json K Method JSON: the body, or fail (status and body on stderr).
c_cmx_json() {
	local out
	out=$(c_cmx_rpc "$@")
	if [ "$(c_cmx_http "$1")" != 200 ]; then
		t_log "cluster manager $1: $2 $3 -> HTTP $(c_cmx_http "$1"): $out"
		return 1
	fi
	echo "$out"
}

c_etcd_revision() { c_etcdctl get /wgcni-no-such-key -w json | jq -r ".header.revision"; }
c_etcd_count() { c_etcdctl get --prefix "$1" --keys-only -w json | jq -r ".count // 0"; }

c_etcd_consistent() {
	local p=${1:-/wgcni} dump
	dump=$(c_etcdctl get --prefix "$p/" -w json) || { echo "etcdctl get --prefix $p/ failed"; return 1; }
	jq -r --arg p "$p" '
		[(.kvs // [])[] | {k: (.key | @base64d), v: ((.value // "") | @base64d)}] as $kv
		| ($kv | map(select(.k | startswith($p + "/nodes/"))
			| {key: (.k | ltrimstr($p + "/nodes/")), value: (.v | fromjson)}) | from_entries) as $nodes
		| ($kv | map(select(.k | startswith($p + "/subnets/"))
			| {key: (.k | ltrimstr($p + "/subnets/")), value: .v}) | from_entries) as $subs
		| ([$nodes | to_entries[] | .key as $n | (.value.subnets // [])[]
			| select($subs[.] != $n)
			| "node \($n) lists \(.) but \($p)/subnets/\(.) is \($subs[.] // "missing")"]
		  + [$subs | to_entries[] | .key as $s | .value as $n
			| select(($nodes[$n].subnets // []) | any(. == $s) | not)
			| "\($p)/subnets/\($s) claims it for \($n), whose record does not list it"])
		| .[]' <<<"$dump" >"$T_TMP/etcd_consistent.out" || { echo "cannot decode etcd contents"; return 1; }
	t_log "etcd under $p: $(jq --arg p "$p" '[(.kvs // [])[] | .key | @base64d | select(startswith($p + "/nodes/"))] | length' <<<"$dump") nodes, $(jq --arg p "$p" '[(.kvs // [])[] | .key | @base64d | select(startswith($p + "/subnets/"))] | length' <<<"$dump") subnet claims"
	cat "$T_TMP/etcd_consistent.out"
	[ ! -s "$T_TMP/etcd_consistent.out" ]
}

c_cmx_parallel() {
	local auth; auth=$(c_auth_h)
	rm -rf "$T_TMP/par"; mkdir -p "$T_TMP/par"
	awk -v svc="$C_CM_SVC/$1" -v addr="$C_CM_ADDR" -v port="$C_CM_PORT" -v auth="$auth" \
		-v dir="$T_TMP/par" '
		function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
		{
			k = $1; body = substr($0, length($1) + 2)
			if (NR > 1) print "next"
			print "url = " q("http://" addr ":" (port + k - 1) "/" svc)
			print "header = " q("Content-Type: application/json")
			if (auth != "") print "header = " q(auth)
			print "data = " q(body)
			print "output = " q(dir "/" NR ".json")
			print "max-time = 60"
			print "write-out = \"" NR " %{http_code}\\n\""
		}' "$2" >"$T_TMP/par.cfg"
	nq cm curl -sS --no-progress-meter -Z --parallel-max 128 -K "$T_TMP/par.cfg" | sort -n
}

c_etcd_restart() {
	local i=$1 tls=()
	c_etcd_down "$i" || { t_log "c_etcd_restart $i: member m$i still runs"; return 1; }
	if [ "$C_ETCD_TLS" = 1 ]; then
		tls=(--cert-file "$C_ETCD_PKI/server.pem" --key-file "$C_ETCD_PKI/server.key"
			--client-cert-auth --trusted-ca-file "$C_ETCD_CA")
	fi
	# The data directory knows the cluster: the --initial-* flags are unused.
	c_spawn "etcd$i" "$C_LOGDIR/etcd$i.restart.log" ip netns exec "$(t_ns "$C_ETCD_NS")" etcd --name "m$i" \
		--data-dir "$T_TMP/etcd/m$i" \
		--listen-client-urls "$(c_etcd_url "$i")" --advertise-client-urls "$(c_etcd_url "$i")" \
		--listen-peer-urls "$(c_etcd_peer_url "$i")" \
		--initial-advertise-peer-urls "$(c_etcd_peer_url "$i")" "${tls[@]}"
	t_wait "etcd member m$i back" "${C_ETCD_START_TIMEOUT:-60}" c_etcd_member_healthy "$i"
}
c_etcd_member_healthy() {
	# shellcheck disable=SC2046 # the TLS arguments are words
	ETCDCTL_API=3 nq "$C_ETCD_NS" etcdctl --endpoints "$(c_etcd_url "$1")" $(c_etcd_tls_args) \
		--command-timeout=2s endpoint health
}

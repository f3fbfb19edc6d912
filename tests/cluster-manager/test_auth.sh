#!/bin/bash
# Bearer token: missing or wrong -> unauthenticated, right -> ok, /healthz and
# /metrics open; SIGHUP re-reads the token file; metrics are present.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
echo "s3cret-token-one" >"$T_TMP/token"
chmod 600 "$T_TMP/token"
c_cm_start --token-file "$T_TMP/token"
t_fail "no 'no --token-file' warning with a token" grep -q 'no --token-file' "$C_CM_LOG"

out=$(c_cm_call AllocateSubnet '{"nodeName":"n1"}')
t_eq "no token: 401 unauthenticated" "401 unauthenticated" "$(t_http) $(jq -r .code <<<"$out")"
out=$(c_cm_call AllocateSubnet '{"nodeName":"n1"}' -H 'Authorization: Bearer wrong')
t_eq "wrong token: 401 unauthenticated" "401 unauthenticated" "$(t_http) $(jq -r .code <<<"$out")"
out=$(c_cm_call AllocateSubnet '{"nodeName":"n1"}' -H 'Authorization: Bearer s3cret-token-one')
t_eq "right token: 200" 200 "$(t_http)"
t_eq "right token: a subnet" 10.100.0.0/24 "$(jq -r '.subnets[0]' <<<"$out")"
t_eq "refused calls changed nothing: one node" 1 \
	"$(c_cm_call ListNodes '{}' -H 'Authorization: Bearer s3cret-token-one' | jq '.nodes | length')"
t_ok "/healthz open" nq cm curl -sf -m 5 -o /dev/null "$C_CM_URL/healthz"
t_ok "/metrics open" nq cm curl -sf -m 5 -o /dev/null "$C_CM_URL/metrics"
t_fail "the token never appears in the log" grep -q s3cret "$C_CM_LOG"

# Metrics.
m=$(c_cm_metrics)
t_ok "metrics: wgcni_nodes is a gauge" grep -q '^# TYPE wgcni_nodes gauge' <<<"$m"
t_eq "metrics: wgcni_nodes 1" 1 "$(c_cm_metric wgcni_nodes)"
t_eq "metrics: subnets used" 1 "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "metrics: subnets free" 255 "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="free"}')"
t_ok "metrics: wgcni_api_requests_total has AllocateSubnet" \
	grep -q '^wgcni_api_requests_total{.*AllocateSubnet' <<<"$m"
t_ok "metrics: the 401s are counted" grep -q '^wgcni_api_requests_total{.*unauthenticated' <<<"$m"

# SIGHUP: the new token replaces the old one; a waiting long poll stays.
rev=$(c_cm_call ListPeers '{"nodeName":"n1"}' -H 'Authorization: Bearer s3cret-token-one' | jq -r .revision)
C_CM_OUT=poll c_cm_call ListPeers "{\"nodeName\":\"n1\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" \
	-H 'Authorization: Bearer s3cret-token-one' >"$T_TMP/poll.json" &
poll=$!
t_ok "a long poll is waiting" t_wait "deferred poll" 5 c_cm_polls 1
echo "s3cret-token-two" >"$T_TMP/token"
kill -HUP "$C_CM_PID"
t_ok "SIGHUP: token reload logged" t_wait "reload log" 5 grep -q 'token reloaded' "$C_CM_LOG"
t_ok "SIGHUP: daemon healthy" c_cm_healthy
t_ok "SIGHUP: the long poll is still waiting" c_cm_polls 1
c_cm_call AllocateSubnet '{"nodeName":"n2"}' -H 'Authorization: Bearer s3cret-token-two' >/dev/null
wait "$poll"
t_eq "SIGHUP: the long poll is answered after the change" 200 "$(cat "$T_TMP/poll_status")"
c_cm_call ListNodes '{}' -H 'Authorization: Bearer s3cret-token-one' >/dev/null
t_eq "SIGHUP: old token refused" 401 "$(t_http)"
c_cm_call ListNodes '{}' -H 'Authorization: Bearer s3cret-token-two' >/dev/null
t_eq "SIGHUP: new token accepted" 200 "$(t_http)"
kill -HUP "$C_CM_PID"
t_ok "SIGHUP again: unchanged token logged" t_wait "unchanged log" 5 grep -q 'token unchanged' "$C_CM_LOG"
t_eq "the daemon is the same process" 0 "$(kill -0 "$C_CM_PID"; echo $?)"

c_cm_stop INT
t_eq "SIGINT: exit 0" 0 "$C_CM_RC"

# Without a token file: a warning at start, calls open.
C_CM_STATE=$T_TMP/open
c_cm_start
t_ok "no token: warning at start" grep -q 'level=warn.*no --token-file' "$C_CM_LOG"
c_cm_call ListNodes '{}' >/dev/null
t_eq "no token: calls open" 200 "$(t_http)"
c_cm_stop TERM

# A missing token file is an error at start, not an open API.
t_fail "missing token file: refuses to start" \
	timeout 10 ip netns exec "$(t_ns cm)" "$C_CM_BIN" --listen 127.0.0.1:8081 --state-dir "$T_TMP/x" --token-file "$T_TMP/nope"

c_leak_check
t_done

#!/bin/bash
# One lifetime of the release build under valgrind: start, a few calls
# including a long poll woken by a change and one that expires, SIGTERM;
# expect exit 0 and no leaks or errors.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"
C_CM_BIN=$T_BIN/wgcni-cluster-manager

command -v valgrind >/dev/null || { t_log "valgrind not installed"; exit 1; }
c_need
c_cm_host
echo "vg-token" >"$T_TMP/token"
C_CM_WRAP="valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1"
C_CM_START_TIMEOUT=60 c_cm_start --token-file "$T_TMP/token" --cluster-cidr 10.100.0.0/16 --cluster-cidr fd10::/48
A=(-H 'Authorization: Bearer vg-token')

c_cm_json AllocateSubnet '{"nodeName":"n1"}' "${A[@]}" >/dev/null
c_cm_json AllocateSubnet '{"nodeName":"n2"}' "${A[@]}" >/dev/null
c_cm_call AllocateSubnet '{"nodeName":"n2"}' >/dev/null
t_eq "unauthenticated call refused" 401 "$(t_http)"
c_cm_call RegisterKey '{"nodeName":"n1","publicKey":"short","endpoint":"1.2.3.4:5"}' "${A[@]}" >/dev/null
t_eq "bad key refused" 400 "$(t_http)"
c_cm_call AllocateSubnet '{"nodeName":"n1","x":1}' "${A[@]}" >/dev/null
t_eq "unknown field refused" 400 "$(t_http)"
c_cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"10.0.0.1:51820\"}" "${A[@]}" >/dev/null
rev=$(c_cm_json ListPeers '{"nodeName":"n2"}' "${A[@]}" | jq -r .revision)

# A long poll woken by a change.
C_CM_OUT=poll1 c_cm_call ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" "${A[@]}" >"$T_TMP/p.json" &
poll=$!
t_ok "long poll deferred" t_wait "deferred" 20 c_cm_polls 1
c_cm_json RegisterKey "{\"nodeName\":\"n2\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"[fd00::2]:51820\"}" "${A[@]}" >/dev/null
wait "$poll"
t_eq "woken long poll sees n1" '["n1"]' "$(jq -c '[.peers[].name]' "$T_TMP/p.json")"
c_cm_json AllocateSubnet '{"nodeName":"n3"}' "${A[@]}" >/dev/null
c_cm_json DeleteNode '{"nodeName":"n3"}' "${A[@]}" >/dev/null
# One that expires.
rev=$(c_cm_json ListPeers '{"nodeName":"n2"}' "${A[@]}" | jq -r .revision)
c_cm_json ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":1}" "${A[@]}" >/dev/null
t_eq "expired long poll answered" 200 "$(t_http)"
# One left waiting at shutdown.
C_CM_OUT=poll2 c_cm_call ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":30}" "${A[@]}" >/dev/null &
t_ok "a poll waits at shutdown" t_wait "deferred" 20 c_cm_polls 1
c_cm_json ListNodes '{}' "${A[@]}" >/dev/null
t_ok "the waiting poll is still waiting" c_cm_polls 1
nq cm curl -sf -m 10 -o /dev/null "$C_CM_URL/metrics"
kill -HUP "$C_CM_PID"
t_ok "SIGHUP handled" t_wait "hup" 20 grep -q 'token unchanged' "$C_CM_LOG"

C_CM_STOP_POLLS=600 c_cm_stop TERM
t_eq "valgrind: exit 0" 0 "$C_CM_RC"
t_ok "valgrind: no leaks" grep -Eq 'All heap blocks were freed|definitely lost: 0 bytes' "$C_CM_LOG"
t_ok "valgrind: 0 errors" grep -q 'ERROR SUMMARY: 0 errors' "$C_CM_LOG"
[ "$C_CM_RC" = 0 ] || tail -40 "$C_CM_LOG" >&2
c_leak_check
t_done

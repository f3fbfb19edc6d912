#!/bin/bash
# One lifetime of the release build under valgrind: start, a few calls
# including a long poll woken by a change and one that expires, SIGTERM;
# expect exit 0 and no leaks or errors.
. "$(dirname "$0")/../lib.sh"
CM_BIN=$T_BIN/wgcni-cluster-manager
. "$(dirname "$0")/cm_lib.sh"

command -v valgrind >/dev/null || { t_log "valgrind not installed"; exit 1; }
cm_setup
echo "vg-token" >"$T_TMP/token"
CM_WRAP="valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1"
CM_START_TIMEOUT=60 cm_start --token-file "$T_TMP/token" --cluster-cidr 10.100.0.0/16 --cluster-cidr fd10::/48
A=(-H 'Authorization: Bearer vg-token')

cm_json AllocateSubnet '{"nodeName":"n1"}' "${A[@]}" >/dev/null
cm_json AllocateSubnet '{"nodeName":"n2"}' "${A[@]}" >/dev/null
cm_call AllocateSubnet '{"nodeName":"n2"}' >/dev/null
t_eq "unauthenticated call refused" 401 "$(t_http)"
cm_call RegisterKey '{"nodeName":"n1","publicKey":"short","endpoint":"1.2.3.4:5"}' "${A[@]}" >/dev/null
t_eq "bad key refused" 400 "$(t_http)"
cm_call AllocateSubnet '{"nodeName":"n1","x":1}' "${A[@]}" >/dev/null
t_eq "unknown field refused" 400 "$(t_http)"
cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$(cm_pubkey)\",\"endpoint\":\"10.0.0.1:51820\"}" "${A[@]}" >/dev/null
rev=$(cm_json ListPeers '{"nodeName":"n2"}' "${A[@]}" | jq -r .revision)

# A long poll woken by a change.
CM_OUT=poll1 cm_call ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" "${A[@]}" >"$T_TMP/p.json" &
poll=$!
t_ok "long poll deferred" t_wait "deferred" 20 cm_polls 1
cm_json RegisterKey "{\"nodeName\":\"n2\",\"publicKey\":\"$(cm_pubkey)\",\"endpoint\":\"[fd00::2]:51820\"}" "${A[@]}" >/dev/null
wait "$poll"
t_eq "woken long poll sees n1" '["n1"]' "$(jq -c '[.peers[].name]' "$T_TMP/p.json")"
cm_json AllocateSubnet '{"nodeName":"n3"}' "${A[@]}" >/dev/null
cm_json DeleteNode '{"nodeName":"n3"}' "${A[@]}" >/dev/null
# One that expires.
rev=$(cm_json ListPeers '{"nodeName":"n2"}' "${A[@]}" | jq -r .revision)
cm_json ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":1}" "${A[@]}" >/dev/null
t_eq "expired long poll answered" 200 "$(t_http)"
# One left waiting at shutdown.
CM_OUT=poll2 cm_call ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":30}" "${A[@]}" >/dev/null &
t_ok "a poll waits at shutdown" t_wait "deferred" 20 cm_polls 1
cm_json ListNodes '{}' "${A[@]}" >/dev/null
t_ok "the waiting poll is still waiting" cm_polls 1
nq cm curl -sf -m 10 -o /dev/null "$CM_URL/metrics"
kill -HUP "$CM_PID"
t_ok "SIGHUP handled" t_wait "hup" 20 grep -q 'token unchanged' "$CM_LOG"

CM_STOP_POLLS=600 cm_stop TERM
t_eq "valgrind: exit 0" 0 "$CM_RC"
t_ok "valgrind: no leaks" grep -Eq 'All heap blocks were freed|definitely lost: 0 bytes' "$CM_LOG"
t_ok "valgrind: 0 errors" grep -q 'ERROR SUMMARY: 0 errors' "$CM_LOG"
[ "$CM_RC" = 0 ] || tail -40 "$CM_LOG" >&2
t_done

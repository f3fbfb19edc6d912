#!/bin/bash
# HTTPS: --tls-cert/--tls-key serve the API over TLS (checked against the
# certificate), plain HTTP is not answered, token and long poll work over TLS,
# and an unreadable certificate stops the start with a clear error.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX= C_TLS=1
. "$(dirname "$0")/../lib_cluster.sh"

command -v openssl >/dev/null || { t_log "openssl not installed (needed to make a test certificate)"; exit 1; }
c_need
c_cm_host
# A certificate for 127.0.0.1, its own CA: $C_TLS_CERT (= $T_TMP/cert.pem), $C_TLS_KEY.
c_tls_make
echo "tls-token" >"$T_TMP/token"

# C_TLS=1: --tls-cert/--tls-key, https://127.0.0.1:8080, curl --cacert.
c_cm_start --token-file "$T_TMP/token"
t_ok "start-up line says tls=yes token=yes" grep -q 'msg="started".* tls=yes token=yes ' "$C_CM_LOG"
out=$(c_cm_call AllocateSubnet '{"nodeName":"n1"}' -H 'Authorization: Bearer tls-token')
t_eq "HTTPS AllocateSubnet: 200" 200 "$(t_http)"
t_eq "HTTPS AllocateSubnet: subnet" 10.100.0.0/24 "$(jq -r '.subnets[0]' <<<"$out")"
c_cm_call ListNodes '{}' >/dev/null
t_eq "HTTPS without token: 401" 401 "$(t_http)"
t_fail "certificate not trusted without --cacert" \
	nq cm curl -sf -m 5 -o /dev/null "$C_CM_URL/healthz"
t_fail "plain HTTP on the TLS port gets no answer" \
	nq cm curl -sf -m 5 -o /dev/null "http://127.0.0.1:8080/healthz"

# A long poll over TLS, woken by a change.
c_cm_call AllocateSubnet '{"nodeName":"n2"}' -H 'Authorization: Bearer tls-token' >/dev/null
rev=$(c_cm_call ListPeers '{"nodeName":"n2"}' -H 'Authorization: Bearer tls-token' | jq -r .revision)
C_CM_OUT=poll c_cm_call ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":20}" \
	-H 'Authorization: Bearer tls-token' >"$T_TMP/poll.json" &
poll=$!
t_ok "TLS long poll waiting" t_wait "deferred poll" 5 c_cm_polls 1
key=$(c_pubkey)
c_cm_call RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$key\",\"endpoint\":\"10.0.0.1:51820\"}" \
	-H 'Authorization: Bearer tls-token' >/dev/null
wait "$poll"
t_eq "TLS long poll woken with n1's key" "$key" "$(jq -r '.peers[0].publicKey' "$T_TMP/poll.json")"

# wgcnictl over HTTPS: trusts the certificate with --ca-file, says why without.
CTL=$T_BIN/wgcnictl
[ -x "$CTL" ] || { t_log "missing $CTL (build it first)"; exit 1; }
ctl() { nq cm "$CTL" --cluster-manager "$C_CM_URL" --token-file "$T_TMP/token" "$@"; }
set +e
ctl --ca-file "$T_TMP/cert.pem" nodes >"$T_TMP/ctl_ca.out"
ca_rc=$?
ctl nodes >"$T_TMP/ctl.out" 2>"$T_TMP/ctl.err"
rc=$?
WGCNI_CA_FILE=$T_TMP/cert.pem ctl -o json nodes >"$T_TMP/ctl.json" 2>/dev/null
env_rc=$?
ctl --ca-file "$T_TMP/missing.pem" nodes >/dev/null 2>"$T_TMP/ctl_missing.err"
missing_rc=$?
set -e
t_eq "wgcnictl --ca-file: nodes over HTTPS" 0 "$ca_rc"
t_ok "wgcnictl --ca-file: n1 listed" grep -q '^n1 ' "$T_TMP/ctl_ca.out"
t_eq "wgcnictl without --ca-file: exit 1" 1 "$rc"
t_ok "wgcnictl without --ca-file: says the certificate is not trusted" \
	grep -q "^wgcnictl: ListNodes: .*certificate no trusted CA signed (see --ca-file)" "$T_TMP/ctl.err"
t_eq "wgcnictl WGCNI_CA_FILE: exit 0" 0 "$env_rc"
t_eq "wgcnictl WGCNI_CA_FILE: two nodes" 2 "$(jq '.nodes | length' "$T_TMP/ctl.json")"
t_eq "wgcnictl unreadable --ca-file: exit 1" 1 "$missing_rc"
t_ok "wgcnictl unreadable --ca-file: named" grep -q "CA file \`$T_TMP/missing.pem'" "$T_TMP/ctl_missing.err"

c_cm_stop TERM
t_eq "SIGTERM: exit 0" 0 "$C_CM_RC"

# Unreadable certificate: exit 1 with a message naming it.
set +e
timeout 10 ip netns exec "$(t_ns cm)" "$C_CM_BIN" --listen 127.0.0.1:8080 --state-dir "$C_CM_STATE" \
	--tls-cert "$T_TMP/missing.pem" --tls-key "$C_TLS_KEY" 2>"$T_TMP/err"
rc=$?
set -e
t_eq "missing certificate: exit 1" 1 "$rc"
t_ok "missing certificate: named in the error" grep -q 'cannot listen with TLS.*missing.pem' "$T_TMP/err"
c_leak_check
t_done

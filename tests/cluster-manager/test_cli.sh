#!/bin/bash
# Command line: --help, --version, bad flags (one error line, exit 2),
# options from WGCNI_* variables.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host

t_ok "--help exits 0 and lists --cluster-cidr" bash -c "'$C_CM_BIN' --help | grep -q -- --cluster-cidr"
t_ok "--help mentions WGCNI_ variables" bash -c "'$C_CM_BIN' --help | grep -q WGCNI_"
t_ok "--version prints the version" bash -c "'$C_CM_BIN' --version | grep -Eq '^wgcni-cluster-manager [0-9]+\.[0-9]+'"

# bad "what" regex args... : exit 2, exactly one line on stderr matching regex
bad() {
	local what=$1 re=$2 rc; shift 2
	set +e
	timeout 10 ip netns exec "$(t_ns cm)" "$C_CM_BIN" --listen 127.0.0.1:8090 \
		--state-dir "$T_TMP/bad" "$@" >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	set -e
	t_eq "$what: exit 2" 2 "$rc"
	t_eq "$what: one line on stderr" 1 "$(wc -l <"$T_TMP/err")"
	t_ok "$what: says why ($(cat "$T_TMP/err"))" grep -Eq -- "$re" "$T_TMP/err"
}
bad "unknown flag" 'bogus' --bogus
bad "missing value" 'cluster-cidr' --cluster-cidr
bad "bad CIDR" "10.100.0.1/16" --cluster-cidr 10.100.0.1/16
bad "not a CIDR" "potato" --cluster-cidr potato
bad "two IPv4 CIDRs" "more than one IPv4" --cluster-cidr 10.1.0.0/16 --cluster-cidr 10.2.0.0/16
bad "prefix length too short" "node-prefix-length" --cluster-cidr 10.1.0.0/16 --node-prefix-length 8
bad "prefix length 32" "node-prefix-length" --node-prefix-length 32
bad "prefix length not a number" "node-prefix-length.*x24" --node-prefix-length x24
bad "v6 prefix length too long" "node-prefix-length-v6" --cluster-cidr fd00::/48 --node-prefix-length-v6 128
bad "bad log level" "log-level.*loud" --log-level loud
bad "bad external CIDR" "external-cidr" --external-cidr nowhere
bad "TLS cert without key" "tls-cert and --tls-key" --tls-cert "$T_TMP/c.pem"
bad "TLS key without cert" "tls-cert and --tls-key" --tls-key "$T_TMP/k.pem"
bad "bad listen address" "listen.*8080x" --listen 127.0.0.1:8080x
bad "listen on a host name" "listen.*localhost:8090.*IP address" --listen localhost:8090
bad "stray argument" "unexpected argument" extra
set +e
WGCNI_NODE_PREFIX_LENGTH=abc timeout 10 "$C_CM_BIN" --state-dir "$T_TMP/bad" >/dev/null 2>"$T_TMP/err"
rc=$?
set -e
t_eq "bad value from the environment: exit 2" 2 "$rc"
t_ok "bad value from the environment: named" grep -q 'node-prefix-length' "$T_TMP/err"
t_ok "nothing was created by refused starts" test ! -e "$T_TMP/bad"

# Options from the environment; the command line wins.
WGCNI_LISTEN=127.0.0.1:9999 WGCNI_CLUSTER_CIDR=10.50.0.0/16 WGCNI_NODE_PREFIX_LENGTH=20 \
	WGCNI_EXTERNAL_CIDR=192.0.2.0/24 WGCNI_LOG_LEVEL=debug \
	c_cm_start
t_eq "env: cluster CIDR and prefix length" 10.50.0.0/20 \
	"$(c_cm_json AllocateSubnet '{"nodeName":"e1"}' | jq -r '.subnets[0]')"
t_ok "env: command-line --listen beat WGCNI_LISTEN" c_cm_healthy
t_ok "env: external CIDR in the start-up line" \
	grep -q 'msg="started".* external_cidrs=192.0.2.0/24 ' "$C_CM_LOG"
t_ok "state in --state-dir/cluster.db" test -s "$C_CM_STATE/cluster.db"
t_eq "one start-up line" 1 "$(grep -c 'msg="started"' "$C_CM_LOG")"
t_ok "start-up line: logfmt, version, CIDR and prefix length, no token" \
	grep -Eq "^ts=.* level=info msg=\"started\" version=$("$C_CM_BIN" --version | cut -d' ' -f2) .*tls=no token=no .*cluster_cidrs=10.50.0.0/16 node_prefix_lengths=20 " "$C_CM_LOG"
c_cm_stop TERM
t_eq "SIGTERM: exit 0" 0 "$C_CM_RC"

c_leak_check
t_done

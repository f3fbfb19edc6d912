#!/bin/bash
# Lifetime of the release build under valgrind: start, a few calls of every
# kind (good and bad), SIGTERM; no leak, no memory error, exit 0.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

command -v valgrind >/dev/null || { t_log "valgrind not installed"; exit 77; }
C_NM_BIN=$T_BIN/wgcni-node-manager
c_hosts 2
c_cm_start
c_nm_start n2
# The daemon starts wireguard-go through a double fork whose middle child
# only forks again and _exit()s: that child's heap is not the daemon's, so
# valgrind is silent after a fork (the exec'd program is not traced either).
VG="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
	--child-silent-after-fork=yes --log-file=$T_TMP/valgrind.log"
C_NM_WRAP=$VG c_nm_start n1
t_wait "node manager n1 under valgrind ready" 90 c_nm_healthy n1
c_nm_wait_healthy n2
KEY2=$(c_nm_call n2 GetNode '{}' | jq -r .node.publicKey)
t_wait "n1 peers with n2" 20 bash -c "wg show $(c_ifname 1) peers | grep -qx '$KEY2'"

c_nm_call n1 GetNode '{}' >/dev/null; t_eq "GetNode" 200 "$(t_http)"
c_nm_call n1 AllocateIP '{"containerId":"v1","ifname":"eth0","netns":"/run/netns/v"}' >/dev/null
t_eq "AllocateIP" 200 "$(t_http)"
c_nm_call n1 AllocateIP '{"containerId":"v2","ifname":"eth0"}' >/dev/null
c_nm_call n1 RegisterKey "{\"containerId\":\"v1\",\"ifname\":\"eth0\",\"publicKey\":\"$(wg genkey | wg pubkey)\",\"endpoint\":\"127.0.0.1:40001\"}" >/dev/null
t_eq "RegisterKey" 200 "$(t_http)"
c_nm_call n1 RegisterKey '{"containerId":"v1","ifname":"eth0","publicKey":"bad","endpoint":"x"}' >/dev/null
t_eq "RegisterKey bad key" 400 "$(t_http)"
c_nm_call n1 AllocateIP '{"containerId":' >/dev/null
t_eq "malformed JSON" 400 "$(t_http)"
c_nm_call n1 ListAllocations '{}' >/dev/null; t_eq "ListAllocations" 200 "$(t_http)"
t_ok "metrics" bash -c "curl -sf -m 10 --unix-socket $(c_sock n1) http://nm/metrics | grep -q wgcni_peer_rx_bytes"
c_nm_call n1 GC '{"validAttachments":[{"containerId":"v2","ifname":"eth0"}]}' >/dev/null
t_eq "GC" 200 "$(t_http)"
c_nm_call n1 Release '{"containerId":"v2","ifname":"eth0"}' >/dev/null
t_eq "Release" 200 "$(t_http)"

# SIGTERM while the sync thread waits in a ListPeers long poll (the cluster
# manager is up and nothing changes): the poll is cancelled, the thread
# joined, the whole teardown runs and is checked here.
long_polls() { nq cm curl -sf -m 5 "$C_CM_URL/metrics" | sed -n 's/^wgcni_long_polls \([0-9]*\)$/\1/p'; }
both_polling() { [ "$(long_polls)" -ge 2 ] 2>/dev/null; }
t_wait "n1 and n2 both in a long poll" 30 both_polling
pid=$(c_nm_pid n1)
kill -TERM "$pid"
rc=0
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid" || rc=$?
t_eq "valgrind run exits 0 after SIGTERM" 0 "$rc"
t_fail "sync thread was joined (long poll cancelled)" grep -q 'exiting during a long poll' "$(c_nm_log n1)"
# Errors and leaks are "==PID==" lines. "--PID--" lines are valgrind's own
# notes, e.g. that valgrind 3.19 does not know pidfd_open (434): wg_uapi.c
# then falls back to polling, which is what runs under valgrind.
t_eq "valgrind reports nothing" "" "$(grep -v -e '^==[0-9]*== *$' -e '^--[0-9]*-- ' "$T_TMP/valgrind.log" | head -n 40)"
[ -s "$T_TMP/valgrind.log" ] && cat "$T_TMP/valgrind.log" >&2
c_leak_check
t_done

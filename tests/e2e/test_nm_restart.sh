#!/bin/bash
# A node manager killed with -9 while containers are attached, then
# restarted: traffic between the existing containers keeps flowing (the
# tunnels live in wireguard-go), an ADD during the outage fails cleanly and
# leaves nothing, after the restart the node interface is adopted (same link,
# same peers, counters kept), ADD and DEL work, and no address is ever
# handed out twice.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 2
for c in c1a c1b c2a; do t_ok "ADD $c" c_ctr_add "${c:1:1}" "$c"; done
allocs() { c_nm_rpc 1 ListAllocations '{}' | jq -r '[.allocations[]? | .containerId + " " + (.addresses | join(","))] | sort | .[]'; }
allocs_before=$(allocs)
t_eq "node 1 holds 2 allocations" 2 "$(grep -c . <<<"$allocs_before")"
c_ping_bg x c1a "${C_ADDR[c2a]}"
c_ping_bg s c1b "${C_ADDR[c1a]}"
stats=$(c_peer_stats 1)
idx=$(c_ifindex 1)

pp kill -KILL "$(c_nm_pid 1)"
wait "$(c_nm_pid 1)" 2>/dev/null || true
t_fail "node manager 1 is gone" c_nm_ready 1
t_fail "CNI STATUS reports node 1 unavailable" c_cni_net status 1
t_ok "existing containers still talk while it is down (c1b -> c2a)" c_ping c1b "${C_ADDR[c2a]}"
c_ctr_new 1 c1x
t_fail "ADD during the outage fails" c_ctr_attach 1 c1x
t_eq "the failed ADD left only lo in c1x" lo "$(c_links c1x)"

c_nm_start 1
c_nm_wait 1
t_ok "CNI STATUS is ready again" c_cni_net status 1
t_eq "node interface adopted, not recreated (ifindex)" "$idx" "$(c_ifindex 1)"
t_eq "allocations survived the kill -9" "$allocs_before" "$(allocs)"
t_ok "peers kept their counters and handshakes" c_stats_kept "$stats" "$(c_peer_stats 1)"
t_eq "container peers on node 1 after restart" 2 "$(c_container_peers 1 | grep -c . || true)"
t_ok "mesh converged after restart" t_wait "mesh" 10 c_converged
t_ok "cross-node ping ran through the restart (at most 1 lost)" c_ping_bg_ok x 1
t_ok "same-node ping ran through the restart (at most 1 lost)" c_ping_bg_ok s 1

t_ok "ADD c1x after the restart" c_ctr_attach 1 c1x
t_ok "ADD c1c" c_ctr_add 1 c1c
t_ok "DEL c1b" c_ctr_del c1b
unset 'C_NODE[c1b]'
t_ok "ADD c1d" c_ctr_add 1 c1d
live=()
for c in "${C_CTRS[@]}"; do live+=("${C_ADDR[$c]}"); done
t_eq "${#live[@]} live containers, ${#live[@]} distinct addresses" "${#live[@]}" \
	"$(printf '%s\n' "${live[@]}" | sort -u | grep -c .)"
t_eq "node 1's allocations are exactly its live containers" \
	"$(for c in "${C_CTRS[@]}"; do [ "${C_NODE[$c]}" = 1 ] && echo "${C_ID[$c]} ${C_ADDR[$c]}/32"; done | sort)" \
	"$(c_nm_rpc 1 ListAllocations '{}' | jq -r '.allocations[]? | .containerId + " " + (.addresses[] | select(contains(".")))' | sort)"
t_eq "every container reaches every other" "ok 20" \
	"$(c_ping_all "${C_CTRS[@]}" -- "${live[@]}")"

# A second kill -9, this time right after an ADD: the new allocation must
# be remembered too.
t_ok "ADD c1e" c_ctr_add 1 c1e
pp kill -KILL "$(c_nm_pid 1)"
wait "$(c_nm_pid 1)" 2>/dev/null || true
c_nm_start 1
c_nm_wait 1
t_ok "ADD c1f after the second restart" c_ctr_add 1 c1f
t_ok "c1f's address is not c1e's" test "${C_ADDR[c1f]}" != "${C_ADDR[c1e]}"
t_ok "c1e and c1f reach each other" c_ping c1e "${C_ADDR[c1f]}"

c_leak_check
t_done

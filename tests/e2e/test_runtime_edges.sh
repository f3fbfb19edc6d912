#!/bin/bash
# What runtimes do besides the happy path, through libcni: DEL after the
# container's namespace is already gone (runtime crash), DEL with an empty
# CNI_NETNS (containerd 1.6), DEL of something never added, CHECK after the
# container's network was tampered with, and an ADD that fails half way
# (the name is taken in the namespace) leaving nothing behind.
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 2
for c in c1a c1b c1c c1d c2a; do t_ok "ADD $c" c_ctr_add "${c:1:1}" "$c"; done
allocated() { c_nm_rpc 1 ListAllocations '{}' | jq -e --arg id "${C_ID[$1]}" '[.allocations[]? | select(.containerId == $id)] | length == 1' >/dev/null; }
wg_pids() { # wireguard-go processes on node 1 that are not the node's own
	local pid
	# The kernel backend starts none: count the containers' interfaces
	# (as wireguard-go would have one each) through the peer list instead.
	if [ "$C_BACKEND" != userspace ]; then
		c_container_peers 1 | grep -c . || true
		return
	fi
	for pid in $(ip netns pids "$(t_ns h1)"); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = wireguard-go ] || continue
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qw "$(c_ifname 1)" || echo "$pid"
	done | grep -c . || true
}
t_eq "4 container wireguard-go processes on node 1" 4 "$(wg_pids)"

# --- the namespace vanished before DEL
pp ip netns del "$(t_ns c1a)"
t_ok "DEL c1a after its namespace is gone succeeds" c_ctr_del c1a
unset 'C_NODE[c1a]'
t_fail "c1a's allocation is released" allocated c1a
t_ok "c1a's peer is gone from the node interface" sh -c "! ip netns exec $(t_ns h1) wg show $(c_ifname 1) allowed-ips | grep -qw '${C_ADDR[c1a]}/32'"
t_wait_eq "c1a's wireguard-go has exited" 10 3 wg_pids
t_eq "3 container wireguard-go processes left" 3 "$(wg_pids)"

# --- DEL with an empty CNI_NETNS, as containerd sends it
del_no_netns() {
	nq h1 env CNI_PATH="$C_BINDIR" CNI_CACHE_DIR="$T_TMP/cnicache" \
		"$C_DRIVER" del "$(c_conflist 1)" "${C_ID[$1]}" "" eth0 2>>"$T_TMP/cni.log"
}
t_ok "DEL c1b with an empty CNI_NETNS succeeds" del_no_netns c1b
t_fail "c1b's allocation is released" allocated c1b
t_eq "c1b's namespace has no interface left but lo" lo "$(c_links c1b)"
t_wait_eq "c1b's wireguard-go has exited" 10 2 wg_pids
C_CTRS=(c1c c1d c2a)

# --- DEL of a container never added
c_ctr_new 1 c1z
t_ok "DEL of a never-added container succeeds" c_cni del 1 c1z

# --- CHECK notices tampering
t_ok "CHECK c1c passes before" c_cni check 1 c1c
pp ip -n "$(t_ns c1c)" addr flush dev eth0
t_fail "CHECK c1c fails once its address is gone" c_cni check 1 c1c
pp ip -n "$(t_ns c1d)" route del default
t_fail "CHECK c1d fails once its default route is gone" c_cni check 1 c1d

# --- an ADD that cannot finish undoes everything
c_ctr_new 1 c1e
pp ip -n "$(t_ns c1e)" link add eth0 type veth peer name eth0p
before=$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations | length')
procs=$(wg_pids)
t_fail "ADD into a namespace that already has eth0 fails" c_ctr_attach 1 c1e
t_eq "the failed ADD left no allocation" "$before" "$(c_nm_rpc 1 ListAllocations '{}' | jq '.allocations | length')"
t_wait_eq "the failed ADD left no wireguard-go process" 10 "$procs" wg_pids
t_eq "the failed ADD left no wireguard-go process" "$procs" "$(wg_pids)"
t_eq "the existing eth0 is untouched" "eth0 eth0p lo" "$(c_links c1e)"
pp ip -n "$(t_ns c1e)" link del eth0
unset 'C_NODE[c1e]'
t_eq "node 1 still answers c2a after all this" "ok 1" "$(c_ping_all c2a -- "$(c_node_addr 1)")"

c_leak_check
t_done

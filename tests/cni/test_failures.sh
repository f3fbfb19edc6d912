#!/bin/bash
# Failure injection on ADD: node manager down, netns path missing,
# CNI_IFNAME taken (before ADD, and appearing while ADD runs, after the
# device was created and moved), userspace implementation missing, node
# manager refusing (address pool exhausted). Each gives its error code, and
# afterwards there is no interface, allocation, node peer, UAPI socket or
# wireguard-go process left.
# Two nodes (hosts n1, n2), no token, the node prefix length the cluster
# manager defaults to.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin
# A /29 per node: the node address plus a handful of containers, so the
# pool can be exhausted.
c_cluster 2 --node-prefix-length 29

for c in a b c d e; do t_netns_add "$c"; done

# add_fails WHAT CODE NODE CTR [IFNAME] [VERSION] [EXTRA]: ADD exits non-zero
# with CODE in a well-formed error, then nothing is left.
add_fails() {
	local what=$1 code=$2 h=$3 c=$4 rc=0 peers
	shift 2
	peers=$(c_peer_count "$h")
	c_plugin ADD "$@" >"$T_TMP/out" || rc=$?
	t_ok "$what: ADD fails" test "$rc" -ne 0
	t_eq "$what: code" "$code" "$(jq -r .code "$T_TMP/out" 2>/dev/null)"
	t_ok "$what: error has msg and details" \
		jq -e '(.msg|length > 0) and (.details|length > 0) and .cniVersion != null' "$T_TMP/out" >/dev/null
	c_no_leftovers "$h" "$c" "${3:-eth0}"
	t_eq "$what: no peer added on $h" "$peers" "$(c_peer_count "$h")"
}

# --- node manager down
c_nm_stop n1
rc=0; c_plugin ADD n1 a >"$T_TMP/out" || rc=$?
t_ok "NM down: ADD fails" test "$rc" -ne 0
t_eq "NM down: code 11" 11 "$(jq -r .code "$T_TMP/out")"
t_eq "NM down: msg" "node manager unreachable" "$(jq -r .msg "$T_TMP/out")"
t_eq "NM down: details = URL" "unix://$(c_sock 1)" "$(jq -r .details "$T_TMP/out")"
t_fail "NM down: no eth0 in a" nq a ip link show eth0
t_fail "NM down: no temporary device" nq n1 ip link show "$(c_tmpname a)"
t_fail "NM down: no socket" test -e "/var/run/wireguard/$(c_tmpname a).sock"
rc=0; c_plugin DEL n1 a >"$T_TMP/out" || rc=$?
t_eq "NM down: DEL is code 11 (the runtime retries)" 11 "$(jq -r .code "$T_TMP/out")"
c_nm_up n1
t_ok "NM back: DEL a succeeds" c_plugin DEL n1 a
t_eq "NM back: no allocation on n1" 0 "$(c_allocs n1)"

# --- netns path missing
C_NETNS_OVERRIDE=/run/netns/$T_ID-missing add_fails "netns missing" 3 n1 a

# --- CNI_IFNAME taken in the container (checked before anything is made)
n b ip link add eth0 type bridge
C_IFNAME_TAKEN=1 add_fails "eth0 taken" 100 n1 b
t_ok "eth0 taken: details name it" grep -q eth0 "$T_TMP/out"
t_ok "eth0 taken: the other interface is untouched" nq b ip link show eth0 type bridge
n b ip link del eth0

# --- CNI_IFNAME appears while ADD runs: the rename after the move fails,
# the moved device and the allocation are undone.
cat >"$T_TMP/racy-impl" <<EOF
#!/bin/sh
touch $T_TMP/racy-ran
ip -n $(t_ns c) link add eth0 type bridge
exec $(command -v "$C_IMPL") "\$@"
EOF
chmod +x "$T_TMP/racy-impl"
C_IFNAME_TAKEN=1 C_CONF_IMPL=$T_TMP/racy-impl add_fails "eth0 appears during ADD" 100 n1 c
t_ok "eth0 appears during ADD: the device had been created" test -e "$T_TMP/racy-ran"
t_eq "eth0 appears during ADD: only the bridge is left in c" "eth0 lo" \
	"$(nq c ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | xargs)"
t_ok "eth0 appears during ADD: it is still the bridge" nq c ip link show eth0 type bridge
n c ip link del eth0

# --- userspace implementation missing
C_CONF_IMPL=/nonexistent/wireguard-go add_fails "implementation missing" 7 n1 d eth0 1.0.0 '"backend":"userspace"'
t_ok "implementation missing: details quote the path" grep -q /nonexistent/wireguard-go "$T_TMP/out"

# --- a device left on the host by an ADD that died midway: ADD refuses to
# touch it (100), DEL removes it with its process and socket.
t_netns_add g
tmp=$(c_tmpname g)
n n1 "$C_IMPL" "$tmp" >/dev/null 2>&1 </dev/null
t_wait "leftover $tmp serves its socket" 5 test -S "/var/run/wireguard/$tmp.sock"
rc=0; c_plugin ADD n1 g >"$T_TMP/out" || rc=$?
t_eq "leftover device: ADD code 100" 100 "$(jq -r .code "$T_TMP/out")"
t_ok "leftover device: details name it" grep -q "$tmp" "$T_TMP/out"
t_fail "leftover device: no allocation kept" c_has_alloc n1 g
t_ok "leftover device: still there for DEL" nq n1 ip link show "$tmp"
t_ok "DEL g" c_plugin DEL n1 g
c_no_leftovers n1 g

# --- node manager refuses: exhaust n2's pool
filled=()
rc=0
for i in 1 2 3 4 5 6 7 8; do
	t_netns_add "f$i"
	rc=0; c_plugin ADD n2 "f$i" >"$T_TMP/out" || rc=$?
	[ "$rc" -eq 0 ] || break
	filled+=("f$i")
done
t_ok "pool of a /29 ran out after a few containers (${#filled[@]})" test "$rc" -ne 0 -a "${#filled[@]}" -ge 1
t_eq "pool exhausted: code 101 (node manager refused)" 101 "$(jq -r .code "$T_TMP/out")"
t_ok "pool exhausted: details carry the Connect code" grep -q resource_exhausted "$T_TMP/out"
t_eq "pool exhausted: allocations = the containers that fit" "${#filled[@]}" "$(c_allocs n2)"
c_no_leftovers n2 "f$i"
t_eq "pool exhausted: one peer per container plus n1" $(( ${#filled[@]} + 1 )) "$(c_peer_count n2)"
for f in "${filled[@]}"; do
	t_ok "DEL $f" c_plugin DEL n2 "$f"
	c_no_leftovers n2 "$f"
done
t_eq "n2 back to its one node peer" 1 "$(c_peer_count n2)"
t_eq "no allocations left on n2" 0 "$(c_allocs n2)"
t_eq "no allocations left on n1" 0 "$(c_allocs n1)"

# --- and after all that, an ADD works and a container reaches the other node
rc=0; out=$(c_plugin ADD n1 e) || rc=$?
t_eq "ADD e works after the failures" 0 "$rc"
t_ok "e pings n2's node address" nq e ping -c 1 -W 2 "${C_GW[2]}"
t_ok "DEL e" c_plugin DEL n1 e
c_no_leftovers n1 e

c_leak_check
t_done

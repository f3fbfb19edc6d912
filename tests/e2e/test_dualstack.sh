#!/bin/bash
# A dual-stack cluster (10.100.0.0/16 and fd10:100::/48), 2 nodes x 2
# containers: every container gets one address of each family from its
# node's subnets; every pair reaches each other over IPv6 as well as IPv4,
# and every node address; TCP over IPv6 shows the sender's own address (no
# NAT); a full-MTU IPv6 packet crosses nodes and one byte more is refused
# with "message too long"; nothing leaks.
C_CIDR6=fd10:100::/48
. "$(dirname "$0")/../lib_cluster.sh"

c_cluster 2
CTRS=(c1a c1b c2a c2b)
for c in "${CTRS[@]}"; do t_ok "ADD $c" c_ctr_add "${c:1:1}" "$c"; done
expand6() { # an IPv6 address as 8 hextets of 4 digits (no python in the kernel VM)
	local a=$1 head tail n
	if [[ $a == *::* ]]; then
		head=${a%%::*} tail=${a##*::}
		n=$(( 8 - $(tr ':' '\n' <<<"$head" | grep -c .) - $(tr ':' '\n' <<<"$tail" | grep -c .) ))
		a="$head$(printf ':0%.0s' $(seq 1 "$n")):$tail"
		a=${a#:} a=${a%:}
	fi
	local out=() h
	for h in ${a//:/ }; do out+=("$(printf '%04x' "$((16#$h))")"); done
	(IFS=:; echo "${out[*]}")
}
in_subnet6() { # addr node: the address lies in the node's /64
	local sub; sub=$(c_nm_rpc "$2" GetNode '{}' | jq -r '.node.subnets[] | select(contains(":"))')
	[ "${sub#*/}" = 64 ] || return 1
	[ "$(expand6 "$1" | cut -d: -f1-4)" = "$(expand6 "${sub%/*}" | cut -d: -f1-4)" ]
}
for c in "${CTRS[@]}"; do
	t_ok "$c has an IPv6 address (${C_ADDR6[$c]:-none}) in node ${C_NODE[$c]}'s /64" in_subnet6 "${C_ADDR6[$c]:-::}" "${C_NODE[$c]}"
	t_ok "$c has an IPv6 default route through eth0" sh -c "ip -n $(t_ns "$c") -6 route show default | grep -q 'dev eth0'"
done
v4=() v6=()
for c in "${CTRS[@]}"; do v4+=("${C_ADDR[$c]}"); v6+=("${C_ADDR6[$c]:-::1}"); done
# c_ping_all skips a source's own IPv4 address; map the IPv6 one the same way
# by pinging from each source separately.
fails=0
for s in "${CTRS[@]}"; do
	for d in "${CTRS[@]}"; do
		[ "$s" = "$d" ] && continue
		c_ping "$s" "${C_ADDR6[$d]:-::1}" || { t_log "IPv6 $s -> $d failed"; fails=$((fails + 1)); }
	done
done
t_eq "all 12 ordered pairs ping over IPv6" 0 "$fails"
t_eq "all 12 ordered pairs ping over IPv4" "ok 12" "$(c_ping_all "${CTRS[@]}" -- "${v4[@]}")"
n6=()
for i in 1 2; do n6+=("$(c_nm_rpc "$i" GetNode '{}' | jq -r '.node.address' | tr ',' '\n' | grep : | cut -d/ -f1)"); done
fails=0
for s in "${CTRS[@]}"; do for a in "${n6[@]}"; do c_ping "$s" "$a" || fails=$((fails + 1)); done; done
t_eq "every container pings both node IPv6 addresses" 0 "$fails"

# TCP over IPv6, and the address the receiver sees
listening() { nq "$1" ss -Hltn 'sport = :5003' | grep -q .; }
nq c2b timeout 20 nc -6 -v -n -l 5003 >"$T_TMP/t6.out" 2>"$T_TMP/t6.err" &
pid=$!
T_PIDS+=("$pid")
t_wait "IPv6 listener in c2b" 10 listening c2b
head -c 262144 /dev/urandom >"$T_TMP/blob6"
t_ok "c1a sends 256 KiB to c2b over IPv6" nq c1a timeout 20 nc -6 -N -n "${C_ADDR6[c2b]}" 5003 <"$T_TMP/blob6"
wait "$pid" || true
t_ok "IPv6 transfer intact" cmp -s "$T_TMP/blob6" "$T_TMP/t6.out"
t_eq "c2b sees c1a's own IPv6 address (no NAT)" "${C_ADDR6[c1a]}" \
	"$(sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$T_TMP/t6.err")"

mtu=$(nq c1a cat /sys/class/net/eth0/mtu)
t_ok "a ${mtu}-byte IPv6 packet crosses nodes (c1a -> c2a)" \
	sh -c "ip netns exec $(t_ns c1a) ping -n -q -c 2 -i 0.2 -w 5 -M do -s $((mtu - 48)) ${C_ADDR6[c2a]} >/dev/null"
nq c1a ping -n -c 1 -W 2 -M do -s $((mtu - 47)) "${C_ADDR6[c2a]}" >"$T_TMP/big6.out" 2>&1 || true
t_ok "$((mtu + 1)) bytes over IPv6: refused with 'message too long'" grep -qi 'message too long' "$T_TMP/big6.out"

c_leak_check
t_done

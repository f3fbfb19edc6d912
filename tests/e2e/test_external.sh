#!/bin/bash
# External peers, dual stack: a namespace playing a laptop on the
# underlay runs plain wireguard-go, configured with `wg setconf` from what
# `wgcnictl external add --generate-key` printed (the wg-quick-only Address
# stripped and set with ip), and reaches a container on a node that is not
# its gateway, over IPv4 and IPv6; the container sees the laptop's own
# addresses (TCP, nc -n) and reaches it back. A location picks its gateway,
# none picks the least-loaded one (ties by name); --public-endpoint is what
# the configuration dials; --public-key leaves the PrivateKey line to fill.
# Every node routes the external addresses into its interface; restarting
# the gateway's node manager keeps the laptop's tunnel; `external delete`
# removes the peer from the gateway and the routes from every node.
C_CIDR6=fd10:100::/48
. "$(dirname "$0")/../lib_cluster.sh"

C_CM_FLAGS=(--external-cidr 10.200.0.0/24 --external-cidr fd20::/64)
C_NODE_FLAGS[1]="--gateway --location eu"
C_NODE_FLAGS[2]="--gateway --location us --public-endpoint $C_UL.12:51820"
c_need_ctl
c_cluster 3
t_eq "locations: the gateways'" "eu us" "$(c_ctl -o json locations | jq -r '.locations | join(" ")')"
t_ok "ADD c3a on node 3 (no gateway)" c_ctr_add 3 c3a
t_ok "ADD c1a on node 1 (a gateway)" c_ctr_add 1 c1a

# --- the laptop: wgcnictl's configuration, plain wireguard-go and wg setconf
c_host_add laptop 50
LIF=l$$x
echo "$LIF" >>"$C_WGNAMES"
add_laptop() { c_ctl external add laptop --generate-key --location eu >"$T_TMP/laptop.conf"; }
t_ok "external add laptop --generate-key --location eu" add_laptop
t_log "laptop configuration:"; sed -e 's/^\(PrivateKey = \).*/\1(hidden)/' -e 's/^/#   /' "$T_TMP/laptop.conf" >&2
t_ok "laptop.conf: a complete private key" grep -Eq '^PrivateKey = [A-Za-z0-9+/]{43}=$' "$T_TMP/laptop.conf"
t_eq "laptop.conf: Address (one per family)" "Address = 10.200.0.1/32, fd20::1/128" "$(grep '^Address' "$T_TMP/laptop.conf")"
t_eq "laptop.conf: the eu gateway (node 1) and its endpoint" "PublicKey = $(c_node_key 1)|Endpoint = $C_UL.11:51820" \
	"$(grep -E '^(PublicKey|Endpoint)' "$T_TMP/laptop.conf" | paste -sd'|')"
t_eq "laptop.conf: AllowedIPs = the cluster CIDRs" "AllowedIPs = 10.100.0.0/16, $C_CIDR6" "$(grep '^AllowedIPs' "$T_TMP/laptop.conf")"
t_ok "laptop.conf: PersistentKeepalive = 25" grep -qx 'PersistentKeepalive = 25' "$T_TMP/laptop.conf"
pub=$(sed -n 's/^PrivateKey = //p' "$T_TMP/laptop.conf" | wg pubkey)
t_eq "the cluster manager has the laptop's public key, not its private one" "$pub" \
	"$(c_ctl -o json external list | jq -r '.externalPeers[] | select(.name == "laptop") | .publicKey')"
t_fail "the private key is in no log" grep -rqF -- "$(sed -n 's/^PrivateKey = //p' "$T_TMP/laptop.conf")" "$T_TMP"/*.log

grep -v -e '^Address' -e '^#' "$T_TMP/laptop.conf" >"$T_TMP/laptop.setconf"
t_spawn laptopwg "$T_TMP/laptop-wg.log" ip netns exec "$(t_ns laptop)" env WG_PROCESS_FOREGROUND=1 wireguard-go "$LIF"
t_ok "laptop's wireguard-go socket" t_wait "socket" 10 test -S "/var/run/wireguard/$LIF.sock"
t_ok "laptop's interface" t_wait "interface" 10 nq laptop ip link show "$LIF"
n laptop wg setconf "$LIF" "$T_TMP/laptop.setconf"
n laptop ip addr add 10.200.0.1/32 dev "$LIF"
n laptop ip addr add fd20::1/128 dev "$LIF"
n laptop ip link set "$LIF" up
n laptop ip route add 10.100.0.0/16 dev "$LIF"
n laptop ip -6 route add "$C_CIDR6" dev "$LIF"

t_ok "laptop pings c3a (node 3, not its gateway)" c_ping laptop "${C_ADDR[c3a]}"
t_ok "laptop pings c3a over IPv6" c_ping laptop "${C_ADDR6[c3a]}"
t_ok "laptop pings c1a (on its gateway)" c_ping laptop "${C_ADDR[c1a]}"
t_ok "c3a pings the laptop back" c_ping c3a 10.200.0.1
t_ok "c3a pings the laptop back over IPv6" c_ping c3a fd20::1
listening() { nq "$1" ss -Hltn "sport = :$2" | grep -q .; }
tcp_from_laptop() { # dst-addr port want-peer label
	local pid fam=-4
	case $1 in *:*) fam=-6 ;; esac
	nq c3a timeout 20 nc "$fam" -v -n -l "$2" >/dev/null 2>"$T_TMP/ext.$2.err" &
	pid=$!
	T_PIDS+=("$pid")
	t_wait "listener on c3a:$2" 10 listening c3a "$2"
	t_ok "$4: laptop connects to c3a" sh -c "echo hello | ip netns exec $(t_ns laptop) nc -N -n -w 5 $1 $2"
	wait "$pid" || true
	t_eq "$4: c3a sees the laptop's own address (no NAT)" "$3" \
		"$(sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$T_TMP/ext.$2.err")"
}
tcp_from_laptop "${C_ADDR[c3a]}" 5003 10.200.0.1 "TCP over IPv4"
tcp_from_laptop "${C_ADDR6[c3a]}" 5004 fd20::1 "TCP over IPv6"
# The other way, from a container on the gateway node: never masqueraded
# (it leaves through the node interface), the laptop sees c1a's address.
nq laptop timeout 20 nc -4 -v -n -l 5005 >/dev/null 2>"$T_TMP/ext.5005.err" &
lpid=$!
T_PIDS+=("$lpid")
t_ok "listener on the laptop" t_wait "listener" 10 listening laptop 5005
t_ok "c1a connects to the laptop" sh -c "echo hi | ip netns exec $(t_ns c1a) nc -N -n -w 5 10.200.0.1 5005"
wait "$lpid" || true
t_eq "the laptop sees c1a's own address (no masquerade)" "${C_ADDR[c1a]}" \
	"$(sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$T_TMP/ext.5005.err")"

# --- every node routes the external addresses into its interface
for i in 1 2 3; do
	t_ok "node $i: route to 10.200.0.1 through its interface" \
		sh -c "ip netns exec $(t_ns "$(c_host "$i")") ip route show 10.200.0.1 | grep -q 'dev $(c_ifname "$i")'"
	t_ok "node $i: route to fd20::1 through its interface" \
		sh -c "ip netns exec $(t_ns "$(c_host "$i")") ip -6 route show fd20::1 | grep -q 'dev $(c_ifname "$i")'"
done
t_eq "node 1 (gateway) has the laptop as a peer: AllowedIPs its addresses" "10.200.0.1/32 fd20::1/128" \
	"$(c_wg 1 show "$(c_ifname 1)" allowed-ips | awk -v k="$pub" '$1 == k { $1 = ""; print }' | xargs -n1 | sort | xargs)"
t_eq "node 3's peer entry for node 1 carries the laptop's addresses" 2 \
	"$(c_wg 3 show "$(c_ifname 3)" allowed-ips | awk -v k="$(c_node_key 1)" '$1 == k' | grep -o -e '10.200.0.1/32' -e 'fd20::1/128' | grep -c .)"
t_eq "node 2 (other gateway) does not hold the laptop" 0 \
	"$(c_wg 2 show "$(c_ifname 2)" peers | grep -c -- "$pub" || true)"

# --- gateway choice
K=$(wg genkey | wg pubkey)
c_ctl external add tablet --public-key "$K" --location us >"$T_TMP/tablet.conf"
t_eq "tablet (us): node 2, dialing its --public-endpoint" "PublicKey = $(c_node_key 2)|Endpoint = $C_UL.12:51820" \
	"$(grep -E '^(PublicKey|Endpoint)' "$T_TMP/tablet.conf" | paste -sd'|')"
t_ok "tablet.conf (--public-key): the PrivateKey line is left to fill" grep -qx 'PrivateKey = ' "$T_TMP/tablet.conf"
K2=$(wg genkey | wg pubkey)
t_eq "phone (no location, nodes 1 and 2 serve one each): node 1 by name" "$(c_name 1)" \
	"$(c_ctl -o json external add phone --public-key "$K2" | jq -r .gateway.name)"
K3=$(wg genkey | wg pubkey)
t_eq "watch (no location): node 2, the least loaded" "$(c_name 2)" \
	"$(c_ctl -o json external add watch --public-key "$K3" | jq -r .gateway.name)"
t_eq "external list (table) shows the four" 4 "$(c_ctl external list | grep -c -e '^laptop ' -e '^tablet ' -e '^phone ' -e '^watch ')"
ext_peers_metric() { c_nm_metrics 1 | awk '$1 == "wgcni_peers{kind=\"external\"}" { print $2 }'; }
t_ok "node 1: wgcni_peers{kind=\"external\"} 2 (laptop, phone)" t_wait_eq "external peers metric" 10 2 ext_peers_metric
t_eq "cluster manager: wgcni_external_peers{gateway=\"$(c_name 2)\"} 2" 2 \
	"$(c_cm_metrics | awk -v s="wgcni_external_peers{gateway=\"$(c_name 2)\"}" '$1 == s { print $2 }')"
for x in tablet phone watch; do c_ctl external delete "$x" >/dev/null; done

# --- restarting the gateway's node manager keeps the laptop's tunnel
c_ping_bg ext laptop "${C_ADDR[c3a]}"
c_nm_stop 1
c_nm_up 1
t_ok "gateway node manager restarted: mesh converged" t_wait "mesh" 15 c_converged
t_ok "the laptop's ping ran through the gateway's restart (at most 1 lost)" c_ping_bg_ok ext 1
t_ok "node 1 still holds the laptop" sh -c "ip netns exec $(t_ns h1) wg show $(c_ifname 1) peers | grep -qF -- '$pub'"

# --- external delete: gone from the gateway and from every node's routes
c_ctl external delete laptop >/dev/null
no_laptop() { ! c_wg 1 show "$(c_ifname 1)" peers | grep -qF -- "$pub"; }
t_ok "node 1 (gateway) removed the laptop's peer" t_wait "peer gone" 15 no_laptop
no_route() { [ -z "$(nq "$(c_host "$1")" ip route show 10.200.0.1)$(nq "$(c_host "$1")" ip -6 route show fd20::1)" ]; }
for i in 1 2 3; do
	t_ok "node $i: routes to the laptop's addresses gone" t_wait "routes gone" 15 no_route "$i"
done
t_eq "node 3's peer entry for node 1: no external address left" 0 \
	"$(c_wg 3 show "$(c_ifname 3)" allowed-ips | grep -c -e '10.200.0.' -e 'fd20::' || true)"
t_fail "the laptop no longer reaches c3a" nq laptop ping -n -q -c 2 -i 0.3 -w 3 "${C_ADDR[c3a]}"
t_eq "external list is empty" 0 "$(c_ctl -o json external list | jq '.externalPeers // [] | length')"

# --- a deleted gateway's external peers move to another gateway
has_peer() { c_wg "$1" show "$(c_ifname "$1")" peers | grep -qxF -- "$2"; }
K4=$(wg genkey | wg pubkey)
out=$(c_ctl -o json external add tablet --public-key "$K4" --location us)
t_eq "tablet (us): node 2" "$(c_name 2)" "$(jq -r .gateway.name <<<"$out")"
taddr=$(jq -r '.address | split(",")[0]' <<<"$out")
t_ok "node 2 holds tablet" t_wait "tablet on node 2" 15 has_peer 2 "$K4"
c_nm_stop 2
c_node_forget 2
t_ok "DeleteNode node 2" c_cm_rpc DeleteNode "{\"nodeName\":\"$(c_name 2)\"}" -o /dev/null
t_eq "tablet moved to node 1" "$(c_name 1)" \
	"$(c_ctl -o json external list | jq -r '.externalPeers[] | select(.name == "tablet") | .gateway.name')"
t_ok "node 1 took tablet as a peer" t_wait "tablet on node 1" 15 has_peer 1 "$K4"
route_on() { nq "$(c_host "$1")" ip route show "$2" | grep -q "dev $(c_ifname "$1")"; }
t_ok "node 3 routes tablet's $taddr into its interface" t_wait "route" 15 route_on 3 "${taddr%/*}"
c_ctl external delete tablet >/dev/null
t_ok "node 1 dropped tablet after external delete" t_wait "tablet gone" 15 sh -c "! ip netns exec $(t_ns h1) wg show $(c_ifname 1) peers | grep -qxF -- '$K4'"

t_stop_pid "$T_PID_laptopwg"
t_ok "laptop's wireguard-go gone" t_wait "socket gone" 10 sh -c "! test -e /var/run/wireguard/$LIF.sock"
c_leak_check
t_done

#!/bin/bash
# Dual stack: with an IPv4 and an IPv6 cluster CIDR every node gets one
# subnet per family, addresses its interface in both, peers with AllowedIPs
# of both, routes both cluster CIDRs, and hands containers a /32 and a /128.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 2
c_cm_start --cluster-cidr fd10:100::/48
c_nm_start n1
c_nm_start n2
c_nm_wait_healthy n1
c_nm_wait_healthy n2
IF1=$(c_ifname 1) IF2=$(c_ifname 2)
N1=$(c_nm_call n1 GetNode '{}') N2=$(c_nm_call n2 GetNode '{}')
t_eq "n1 has two subnets" 2 "$(jq '.node.subnets | length' <<<"$N1")"
t_eq "n1 knows both cluster CIDRs" "10.100.0.0/16 fd10:100::/48" "$(jq -r '.node.clusterCidrs | join(" ")' <<<"$N1")"
S1_4=$(jq -r '.node.subnets[0]' <<<"$N1") S1_6=$(jq -r '.node.subnets[1]' <<<"$N1")
S2_4=$(jq -r '.node.subnets[0]' <<<"$N2") S2_6=$(jq -r '.node.subnets[1]' <<<"$N2")
t_ok "n1 v6 subnet is a /64 of fd10:100::/48 ($S1_6)" bash -c "[[ '$S1_6' == fd10:100:* && '$S1_6' == */64 ]]"
A2_6=$(jq -r '.node.address' <<<"$N2" | tr ',' '\n' | grep : )
t_eq "n2 v6 address is the first host of its subnet" "${S2_6%::/64}::1/64" "$A2_6"
t_ok "n1 interface carries its v6 address" bash -c "ip -n $(t_ns n1) -6 -o addr show dev $IF1 | grep -q '${S1_6%::/64}::1/64'"
t_ok "n1 routes fd10:100::/48 via its interface" bash -c "ip -n $(t_ns n1) -6 route show fd10:100::/48 | grep -q 'dev $IF1'"
t_eq "n1 IPv6 forwarding on" 1 "$(nq n1 cat /proc/sys/net/ipv6/conf/all/forwarding)"
KEY2=$(jq -r .node.publicKey <<<"$N2")
t_wait "n1 peers with n2" 10 bash -c "wg show $IF1 peers | grep -qx '$KEY2'"
t_eq "n1's peer n2 has both subnets as AllowedIPs" "$(printf '%s\n' "$S2_4" "$S2_6" | sort | xargs)" \
	"$(wg show "$IF1" allowed-ips | awk -v k="$KEY2" '$1==k{for(i=2;i<=NF;i++) print $i}' | sort | xargs)"
t_ok "n1 pings n2's v6 address through the tunnel" n n1 ping -6 -c 3 -W 2 -i 0.2 "${A2_6%/*}"

R=$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0"}')
t_eq "AllocateIP: two addresses" 2 "$(jq '.addresses | length' <<<"$R")"
t_ok "AllocateIP: a /32 and a /128 ($(jq -c .addresses <<<"$R"))" \
	bash -c "jq -r '.addresses[0]' <<<'$R' | grep -q '/32\$' && jq -r '.addresses[1]' <<<'$R' | grep -q '^${S1_6%::/64}::[0-9a-f]*/128\$'"
CPUB=$(wg genkey | wg pubkey)
c_nm_call n1 RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB\",\"endpoint\":\"127.0.0.1:40001\"}" >/dev/null
t_eq "container peer AllowedIPs are both addresses" "$(jq -r '.addresses | sort | join(" ")' <<<"$R")" \
	"$(wg show "$IF1" allowed-ips | awk -v k="$CPUB" '$1==k{for(i=2;i<=NF;i++) print $i}' | sort | xargs)"
t_eq "IPv6 firewall: two chains" 2 "$(nq n1 ip6tables-legacy-save | grep -c '^:WGCNI-')"
t_eq "IPv6 firewall: two jumps" 2 "$(nq n1 ip6tables-legacy-save | grep -c -- '-j WGCNI-')"
for nd in n1 n2; do
	pid=$(c_nm_pid $nd); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
	t_eq "$nd exits 0 on SIGTERM" 0 "$rc"
done
c_leak_check
t_done

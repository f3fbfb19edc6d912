#!/bin/bash
# The node manager's local API on its unix socket: AllocateIP idempotence and
# concurrency, RegisterKey -> container peer on the node interface, Release,
# GC, bad input refused without changing anything, and everything surviving
# kill -9.
# Sanitized daemons, no token unless a test gives one, nodes named n1, n2...
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 1
c_cm_start
c_nm_start n1 --listen 127.0.0.1:5242
c_nm_wait_healthy n1
IF1=$(c_ifname 1)
SOCK=$(c_sock n1)

t_ok "socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
t_ok "private key file is mode 0600" test "$(stat -c %a "$(c_state n1)/private.key")" = 600
NODE=$(c_nm_call n1 GetNode '{}')
t_eq "GetNode answers 200" 200 "$(t_http)"
SUB=$(jq -r '.node.subnets[0]' <<<"$NODE")
NODEKEY=$(jq -r '.node.publicKey' <<<"$NODE")
GW=${SUB%.0/24}.1
t_eq "GetNode: name, interface, mtu, backend, listenPort, endpoint" \
	"n1 $IF1 1420 userspace 51820 192.168.77.11:51820 10.100.0.0/16" \
	"$(jq -r '.node | "\(.name) \(.interface) \(.mtu) \(.backend) \(.listenPort) \(.endpoint) \(.clusterCidrs[0])"' <<<"$NODE")"
t_eq "GetNode: address is the first host" "$GW/24" "$(jq -r .node.address <<<"$NODE")"
TCP=$(nq n1 curl -sS -m 5 -H 'Content-Type: application/json' -d '{}' \
	http://127.0.0.1:5242/wgcni.node.v1.NodeService/GetNode)
t_eq "--listen: the same API on TCP" "$(jq -c .node <<<"$NODE")" "$(jq -c .node <<<"$TCP")"
t_ok "private key never in GetNode" bash -c "! grep -qF \"\$(cat $(c_state n1)/private.key)\" <<<'$NODE'"

list() { c_nm_call n1 ListAllocations '{}' | jq -cS '.allocations // [] | sort_by(.containerId, .ifname)'; }

# --- AllocateIP
R1=$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0","netns":"/run/netns/x"}')
t_eq "AllocateIP c1 answers 200" 200 "$(t_http)"
ADDR_C1=$(jq -r '.addresses[0]' <<<"$R1")
t_ok "c1 address is a /32 of the node subnet, not network or gateway ($ADDR_C1)" \
	bash -c "[[ '$ADDR_C1' == ${SUB%.0/24}.*/32 && '$ADDR_C1' != '$GW/32' && '$ADDR_C1' != '${SUB%/24}/32' ]]"
t_eq "AllocateIP gateway and mtu" "$GW 1420" "$(jq -r '"\(.gateway) \(.mtu)"' <<<"$R1")"
R1b=$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0","netns":"/run/netns/x"}')
t_eq "AllocateIP twice: same answer" "$R1" "$R1b"
R2=$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth1","netns":"/run/netns/x"}')
t_ok "same container, other ifname: other address" test "$(jq -r '.addresses[0]' <<<"$R2")" != "$ADDR_C1"

# 50 concurrent
seq 1 50 | xargs -P 50 -I{} sh -c "curl -sS -m 20 --unix-socket '$SOCK' -o '$T_TMP/par{}.json' \
	-w '%{http_code}\n' -H 'Content-Type: application/json' \
	-d '{\"containerId\":\"par{}\",\"ifname\":\"eth0\",\"netns\":\"/run/netns/p{}\"}' \
	http://nm/wgcni.node.v1.NodeService/AllocateIP" >"$T_TMP/par.codes"
t_eq "50 concurrent AllocateIP all 200" 50 "$(grep -cx 200 "$T_TMP/par.codes")"
t_eq "50 concurrent AllocateIP: 50 distinct addresses" 50 \
	"$(cat "$T_TMP"/par*.json | jq -r '.addresses[0]' | sort -u | grep -c /32)"
t_ok "none of them collides with c1's" bash -c "! cat $T_TMP/par*.json | grep -qF '\"$ADDR_C1\"'"
t_eq "ListAllocations has 52 entries" 52 "$(list | jq length)"

# --- RegisterKey -> container peer
CPRIV=$(wg genkey); CPUB=$(wg pubkey <<<"$CPRIV")
RK=$(c_nm_call n1 RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB\",\"endpoint\":\"127.0.0.1:40001\"}")
t_eq "RegisterKey answers 200" 200 "$(t_http)"
t_eq "RegisterKey: nodePeer is the node interface on loopback" "$NODEKEY 127.0.0.1:51820" \
	"$(jq -r '"\(.nodePeer.publicKey) \(.nodePeer.endpoint)"' <<<"$RK")"
t_eq "container peer on the node interface: endpoint and AllowedIPs" \
	"$CPUB 127.0.0.1:40001 $ADDR_C1" "$(c_wg_peers "$IF1" | awk -v k="$CPUB" '$1==k{print $1, $2, $3}')"
t_ok "metrics: one container peer" bash -c "curl -sf --unix-socket $SOCK http://nm/metrics | grep -qx 'wgcni_peers{kind=\"container\"} 1'"
t_ok "metrics: peer series named c1/eth0" bash -c \
	"curl -sf --unix-socket $SOCK http://nm/metrics | grep -q 'wgcni_peer_tx_bytes{peer=\"$CPUB\",name=\"c1/eth0\"}'"
t_ok "metrics: wgcni_allocations 52" bash -c "curl -sf --unix-socket $SOCK http://nm/metrics | grep -qx 'wgcni_allocations 52'"
t_ok "metrics: pool used 52" bash -c "curl -sf --unix-socket $SOCK http://nm/metrics | grep -qx 'wgcni_pool_addresses{state=\"used\"} 52'"
t_ok "metrics: pool free 201 (253 usable - 52)" bash -c "curl -sf --unix-socket $SOCK http://nm/metrics | grep -qx 'wgcni_pool_addresses{state=\"free\"} 201'"
t_ok "metrics: sync errors counter present" bash -c "curl -sf --unix-socket $SOCK http://nm/metrics | grep -q '^wgcni_sync_errors_total '"

# Re-key: the old peer goes, the new one comes.
CPUB2=$(wg genkey | wg pubkey)
c_nm_call n1 RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB2\",\"endpoint\":\"127.0.0.1:40002\"}" >/dev/null
t_eq "re-key answers 200" 200 "$(t_http)"
t_eq "re-key replaced the peer" "$CPUB2 127.0.0.1:40002 $ADDR_C1" \
	"$(c_wg_peers "$IF1" | awk '$1!=""{print $1, $2, $3}')"
c_nm_call n1 RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth1\",\"publicKey\":\"$CPUB2\",\"endpoint\":\"127.0.0.1:40003\"}" >/dev/null
t_eq "a key already used by another container is refused (409)" 409 "$(t_http)"

# --- bad input changes nothing
before=$(list)
peers_before=$(wg show "$IF1" peers | sort)
bad() { # what method body status code
	local out
	out=$(c_nm_call n1 "$2" "$3")
	t_eq "$1: HTTP $4" "$4" "$(t_http)"
	t_eq "$1: code $5" "$5" "$(jq -r .code <<<"$out" 2>/dev/null)"
}
bad "RegisterKey bad key" RegisterKey '{"containerId":"c1","ifname":"eth0","publicKey":"abc","endpoint":"127.0.0.1:1"}' 400 invalid_argument
bad "RegisterKey 43-char key" RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"${CPUB:0:43}\",\"endpoint\":\"127.0.0.1:1\"}" 400 invalid_argument
bad "RegisterKey bad endpoint" RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB\",\"endpoint\":\"127.0.0.1\"}" 400 invalid_argument
bad "RegisterKey port 0" RegisterKey "{\"containerId\":\"c1\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB\",\"endpoint\":\"127.0.0.1:0\"}" 400 invalid_argument
bad "RegisterKey unknown allocation" RegisterKey "{\"containerId\":\"nope\",\"ifname\":\"eth0\",\"publicKey\":\"$CPUB\",\"endpoint\":\"127.0.0.1:1\"}" 404 not_found
bad "malformed JSON" AllocateIP '{"containerId":"m1",' 400 invalid_argument
bad "wrong type" AllocateIP '{"containerId":5,"ifname":"eth0"}' 400 invalid_argument
bad "unknown field" AllocateIP '{"containerId":"u1","ifname":"eth0","bogus":1}' 400 invalid_argument
bad "empty containerId" AllocateIP '{"containerId":"","ifname":"eth0"}' 400 invalid_argument
bad "containerId with a slash" AllocateIP '{"containerId":"a/b","ifname":"eth0"}' 400 invalid_argument
bad "containerId of 257 chars" AllocateIP "{\"containerId\":\"$(printf 'a%.0s' $(seq 257))\",\"ifname\":\"eth0\"}" 400 invalid_argument
bad "ifname of 16 chars" AllocateIP '{"containerId":"i1","ifname":"abcdefghijklmnop"}' 400 invalid_argument
bad "ifname with a space" AllocateIP '{"containerId":"i1","ifname":"et h0"}' 400 invalid_argument
bad "Release bad ifname" Release '{"containerId":"c1","ifname":"a/b"}' 400 invalid_argument
t_eq "bad input: allocations unchanged" "$before" "$(list)"
t_eq "bad input: interface peers unchanged" "$peers_before" "$(wg show "$IF1" peers | sort)"
c_nm_call n1 AllocateIP "{\"containerId\":\"$(printf 'b%.0s' $(seq 256))\",\"ifname\":\"eth0\"}" >/dev/null
t_eq "containerId of 256 chars accepted" 200 "$(t_http)"
c_nm_call n1 Release "{\"containerId\":\"$(printf 'b%.0s' $(seq 256))\",\"ifname\":\"eth0\"}" >/dev/null

# --- kill -9: everything answered survives
before=$(list)
pid=$(c_nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
# While it is down the interface drifts: c1's peer vanishes, a stranger
# with a container-like AllowedIP appears. The restart reconciles both.
STRANGER=$(wg genkey | wg pubkey)
wg set "$IF1" peer "$CPUB2" remove peer "$STRANGER" allowed-ips "${SUB%.0/24}.200/32"
t_eq "drift: only the stranger on the interface" "$STRANGER" "$(wg show "$IF1" peers)"
c_nm_start n1
c_nm_wait_healthy n1
t_eq "kill -9 restart: stranger removed, c1's peer restored" "$CPUB2" "$(wg show "$IF1" peers)"
t_eq "kill -9: allocations identical" "$before" "$(list)"
t_eq "kill -9: AllocateIP c1 same answer" "$R1" "$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0","netns":"/run/netns/x"}')"
t_eq "kill -9: container peer still on the interface" "$CPUB2 127.0.0.1:40002 $ADDR_C1" \
	"$(c_wg_peers "$IF1" | awk '$1!=""{print $1, $2, $3}')"
NEW=$(c_nm_call n1 AllocateIP '{"containerId":"fresh","ifname":"eth0"}' | jq -r '.addresses[0]')
t_ok "kill -9: a new allocation does not reuse a held address ($NEW)" \
	bash -c "[[ '$NEW' == */32 ]] && ! jq -r '.[].addresses[0]' <<<'$before' | grep -qx '$NEW'"

# --- Release
c_nm_call n1 Release '{"containerId":"c1","ifname":"eth0"}' >/dev/null
t_eq "Release answers 200" 200 "$(t_http)"
t_eq "Release removed the container peer" 0 "$(c_wg_peer_count "$IF1")"
c_nm_call n1 Release '{"containerId":"c1","ifname":"eth0"}' >/dev/null
t_eq "Release twice answers 200" 200 "$(t_http)"
c_nm_call n1 Release '{"containerId":"never","ifname":"eth0"}' >/dev/null
t_eq "Release of an unknown attachment answers 200" 200 "$(t_http)"
t_eq "c1/eth0 gone from ListAllocations" 0 "$(list | jq '[.[] | select(.containerId=="c1" and .ifname=="eth0")] | length')"
R1c=$(c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0","netns":"/run/netns/x"}')
t_eq "released address is handed out again (lowest free first)" "$ADDR_C1" "$(jq -r '.addresses[0]' <<<"$R1c")"

# --- GC releases exactly the unlisted ones
valid=$(list | jq -c '[.[] | select(.containerId != "par7" and .containerId != "par13") | {containerId, ifname}]')
n_before=$(list | jq length)
GC=$(c_nm_call n1 GC "{\"validAttachments\":$valid}")
t_eq "GC answers 200" 200 "$(t_http)"
t_eq "GC released exactly par7 and par13" "par13/eth0 par7/eth0" \
	"$(jq -r '.released[] | "\(.containerId)/\(.ifname)"' <<<"$GC" | sort | xargs)"
t_eq "GC: two fewer allocations" "$((n_before - 2))" "$(list | jq length)"
GC2=$(c_nm_call n1 GC "{\"validAttachments\":$valid}")
t_eq "GC again releases nothing" 0 "$(jq '.released // [] | length' <<<"$GC2")"

# --- kill -9 after the changes
before=$(list)
pid=$(c_nm_pid n1); kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
c_nm_start n1
c_nm_wait_healthy n1
t_eq "kill -9 after Release/GC: allocations identical" "$before" "$(list)"

pid=$(c_nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "SIGTERM: exit 0 (ASan/LSan clean)" 0 "$rc"
c_leak_check
t_done

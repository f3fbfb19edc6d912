#!/bin/bash
# The privileges the systemd units grant are enough, and the ones they drop
# are not needed. There is no systemd as PID 1 here, so the sandbox is
# rebuilt from the installed units by hand, for real:
#   ProtectSystem=strict  -> a private mount namespace whose / is read-only
#                            (a per-mount bind remount: the host is untouched)
#   PrivateTmp=yes        -> /tmp stays writable (it holds this test's state)
#   RuntimeDirectory=, ReadWritePaths= -> /run/wireguard, /run/xtables.lock
#                            made writable again (the unit's paths)
#   CapabilityBoundingSet= -> setpriv --bounding-set from the unit's list
#   DynamicUser=yes       -> the cluster manager runs as nobody, no capability
#   NoNewPrivileges=yes   -> setpriv --no-new-privs
#   KillMode=process      -> a restart stops only the node manager: its
#                            wireguard-go and the tunnel survive
# Then the daemons do their work in a namespace: register, create and adopt
# the WireGuard interface, firewall chains, forwarding, a container peer.
. "$(dirname "$0")/../lib.sh"

CM_BIN=$T_BIN/wgcni-cluster-manager
NM_BIN=$T_BIN/wgcni-node-manager
for b in "$CM_BIN" "$NM_BIN" "$T_BIN/wgcni" "$T_BIN/wgcnictl"; do
	[ -x "$b" ] || { t_log "missing $b: make BUILDDIR=$BUILDDIR all"; exit 1; }
done
for c in setpriv unshare wireguard-go wg; do
	command -v "$c" >/dev/null || { t_log "SKIP: $c not installed"; exit 77; }
done
unshare -m true 2>/dev/null || { t_log "SKIP: no mount namespaces here"; exit 77; }

make -s -C "$T_ROOT" -o all BUILDDIR="$BUILDDIR" DESTDIR="$T_TMP/root" install >/dev/null
units=$T_TMP/root/lib/systemd/system
key() { sed -n "s/^$2=//p" "$units/$1" | tail -1; }

# "CAP_NET_ADMIN CAP_NET_RAW" -> "-all,+net_admin,+net_raw"
setpriv_caps() {
	local c out=-all
	for c in $1; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	echo "$out"
}
nm_caps=$(setpriv_caps "$(key wgcni-node-manager.service CapabilityBoundingSet)")
t_eq "node manager bounding set from the unit" "-all,+net_admin,+net_raw" "$nm_caps"
t_eq "cluster manager bounding set from the unit" "" "$(key wgcni-cluster-manager.service CapabilityBoundingSet)"
t_eq "cluster manager runs as a dynamic user" yes "$(key wgcni-cluster-manager.service DynamicUser)"

# The node manager's writable paths: what its unit lists, plus /tmp.
nm_rw="/tmp"
for d in $(key wgcni-node-manager.service RuntimeDirectory); do
	[ "$d" = wgcni ] || nm_rw+=" /run/$d" # the test's socket lives in /tmp
done
nm_rw+=" $(key wgcni-node-manager.service ReadWritePaths | tr -d -)"
t_eq "node manager writable paths" "/tmp /run/wireguard /run/xtables.lock" "$nm_rw"
# What systemd would create first (RuntimeDirectory=, ExecStartPre=+).
mkdir -p /run/wireguard
[ -e /run/xtables.lock ] || (umask 077 && touch /run/xtables.lock)

# $sandbox "RW PATHS" cmd...: run cmd with / read-only but for RW PATHS. A
# command, not a function, so that t_spawn's PID is the daemon's (every step
# execs the next).
cat >"$T_TMP/sandbox.sh" <<'SANDBOX_SH'
set -e
rw=$1; shift
mount -o remount,bind,ro /
for p in $rw; do mount --bind "$p" "$p"; mount -o remount,bind,rw "$p"; done
exec "$@"
SANDBOX_SH
sandbox="unshare -m --propagation private sh $T_TMP/sandbox.sh"

t_netns_add h1
ns=$(t_ns h1)
ifn="w$$u"
sock=$T_TMP/nm.sock

# --- cluster manager: nobody, no capabilities, only its state writable --------
chmod 711 "$T_TMP"
mkdir -p "$T_TMP/cm"
chown 65534:65534 "$T_TMP/cm"
chmod 700 "$T_TMP/cm"
t_spawn cm "$T_TMP/cm.log" $sandbox "$T_TMP/cm" ip netns exec "$ns" \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	--bounding-set=-all --no-new-privs -- \
	"$CM_BIN" --listen 127.0.0.1:8080 --state-dir "$T_TMP/cm" --cluster-cidr 10.100.0.0/16
cm_healthy() { nq h1 curl -sf -m 2 http://127.0.0.1:8080/healthz; }
t_wait "sandboxed cluster manager healthy" 20 cm_healthy && r=0 || r=1
t_eq "cluster manager serves as nobody without capabilities" 0 "$r"
t_eq "cluster manager uid" 65534 "$(awk '/^Uid:/ { print $2 }' "/proc/$T_PID_cm/status")"
t_eq "cluster manager effective capabilities" 0000000000000000 "$(awk '/^CapEff:/ { print $2 }' "/proc/$T_PID_cm/status")"
t_ok "cluster manager state written" test -n "$(ls -A "$T_TMP/cm")"

# --- node manager: CAP_NET_ADMIN + CAP_NET_RAW, / read-only --------------------
nm_start() {
	t_spawn nm "$T_TMP/nm.log" $sandbox "$nm_rw" ip netns exec "$ns" \
		setpriv --inh-caps=-all --bounding-set="$1" --no-new-privs -- \
		"$NM_BIN" --cluster-manager http://127.0.0.1:8080 --node-name node1 \
		--endpoint 127.0.0.1:51820 --interface "$ifn" --listen-port 51820 \
		--socket "$sock" --state-dir "$T_TMP/nm" --backend userspace
}
t_on_cleanup "t_stop_pid \$T_PID_nm; ip netns exec $ns $NM_BIN --interface $ifn --socket $sock --state-dir $T_TMP/nm cleanup"
nm_rpc() {
	curl -sf -m 5 --unix-socket "$sock" -H 'Content-Type: application/json' -d "$2" \
		"http://nm/wgcni.node.v1.NodeService/$1"
}
nm_ready() { [ -n "$(nm_rpc GetNode '{}' | jq -r '.node.publicKey // empty')" ] && nq h1 ip link show "$ifn"; }
registered() {
	nq h1 curl -sf -m 2 -H 'Content-Type: application/json' -d '{}' \
		http://127.0.0.1:8080/wgcni.cluster.v1.ClusterService/ListNodes |
		jq -e --arg k "$(nm_rpc GetNode '{}' | jq -r .node.publicKey)" '.nodes[] | select(.name == "node1" and .publicKey == $k)'
}
wg_pid() { # the wireguard-go process serving our interface
	local p
	for p in /proc/[0-9]*; do
		[ "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" = "wireguard-go $ifn " ] && { echo "${p#/proc/}"; return 0; }
	done
	return 1
}

nm_start "$nm_caps"
t_wait "sandboxed node manager ready" 30 nm_ready && r=0 || r=1
t_eq "node manager runs with the unit's capabilities" 0 "$r"
t_eq "node manager effective capabilities: NET_ADMIN, NET_RAW" 0000000000003000 \
	"$(awk '/^CapEff:/ { print $2 }' "/proc/$T_PID_nm/status")"
t_eq "node manager: no new privileges" 1 "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$T_PID_nm/status")"
t_wait "node registered" 20 registered && r=0 || r=1
t_eq "node registered with the cluster manager" 0 "$r"
addr=$(nm_rpc GetNode '{}' | jq -r .node.address | cut -d, -f1)
t_ok "node interface has its address ($addr)" grep -q "inet $addr " <(nq h1 ip -o addr show dev "$ifn")
t_eq "IP forwarding switched on through /proc/sys" 1 "$(nq h1 cat /proc/sys/net/ipv4/ip_forward)"
if command -v iptables-legacy >/dev/null; then
	t_ok "firewall chain WGCNI-FORWARD installed" sh -c "ip netns exec $ns iptables-legacy -S WGCNI-FORWARD >/dev/null"
else
	t_log "no iptables-legacy: firewall chain not inspected"
fi
t_ok "private key stored in the state dir, mode 0600" \
	test "$(find "$T_TMP/nm" -type f -perm 0600 | wc -l)" -ge 1
priv=$(wg genkey)
pub=$(wg pubkey <<<"$priv")
nm_rpc AllocateIP '{"containerId":"sandbox1","ifname":"eth0","netns":"/run/netns/x"}' >/dev/null
nm_rpc RegisterKey "{\"containerId\":\"sandbox1\",\"ifname\":\"eth0\",\"publicKey\":\"$pub\",\"endpoint\":\"127.0.0.1:40001\"}" >/dev/null
t_ok "container peer configured on the interface" grep -q "$pub" <(wg show "$ifn" peers)
t_fail "nothing hit the read-only file system" grep -qi 'read-only' "$T_TMP/nm.log"

# --- KillMode=process: restart without losing the tunnel ------------------------
wgp=$(wg_pid) || wgp=
t_ok "wireguard-go runs for $ifn" test -n "$wgp"
t_stop_pid "$T_PID_nm"
t_ok "node manager stopped, wireguard-go still running" kill -0 "$wgp"
t_ok "interface kept while the node manager is down" sh -c "ip -n $ns link show $ifn >/dev/null"
nm_start "$nm_caps"
t_wait "restarted node manager ready" 30 nm_ready && r=0 || r=1
t_eq "restarted node manager ready" 0 "$r"
t_eq "same wireguard-go process adopted" "$wgp" "$(wg_pid || true)"
t_ok "container peer still configured" grep -q "$pub" <(wg show "$ifn" peers)
t_stop_pid "$T_PID_nm"

# --- the capabilities it keeps are needed ----------------------------------------
# Without CAP_NET_RAW libiptc cannot open its socket: the firewall, and so the
# node manager's setup, fails.
nq h1 "$NM_BIN" --interface "$ifn" --socket "$sock" --state-dir "$T_TMP/nm" cleanup >/dev/null 2>&1 || true
t_wait "interface removed" 10 sh -c "! ip -n $ns link show $ifn" || true
t_spawn nm "$T_TMP/nm-noraw.log" $sandbox "$nm_rw" ip netns exec "$ns" \
	setpriv --inh-caps=-all --bounding-set=-all,+net_admin --no-new-privs -- \
	"$NM_BIN" --cluster-manager http://127.0.0.1:8080 --node-name node1 \
	--endpoint 127.0.0.1:51820 --interface "$ifn" --listen-port 51820 \
	--socket "$sock" --state-dir "$T_TMP/nm" --backend userspace
exited() { ! kill -0 "$T_PID_nm" 2>/dev/null; }
t_wait "node manager without CAP_NET_RAW gives up" 30 exited && r=0 || r=1
t_eq "without CAP_NET_RAW the node manager does not run" 0 "$r"
tail -n 3 "$T_TMP/nm-noraw.log" | sed "s/^/# /" >&2
t_ok "it says the firewall failed" grep -q 'step="install firewall"' "$T_TMP/nm-noraw.log"

t_done

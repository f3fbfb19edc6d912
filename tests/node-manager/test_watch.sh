#!/bin/bash
# The node manager follows WatchPeers: one full answer at start, then each
# change arrives as a delta and touches only the peers it names (a mark set
# by hand on another peer survives, which a diff of the whole list would
# undo); a node that missed revisions (node manager stopped meanwhile)
# catches up exactly; a cluster manager restart (kill -9) keeps the
# revision, so the node goes on with deltas.
# Sanitized daemons, no token, node n1.
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 1
c_cm_start
IF1=$(c_ifname 1)

fake() { # fake NAME KEY ENDPOINT: a node that only registers
	c_cm_rpc AllocateSubnet "{\"nodeName\":\"$1\"}" >/dev/null
	c_cm_rpc RegisterKey "{\"nodeName\":\"$1\",\"publicKey\":\"$2\",\"endpoint\":\"$3\"}" >/dev/null
}
delete() { c_cm_rpc DeleteNode "{\"nodeName\":\"$1\"}" >/dev/null; }
has_peer() { wg show "$IF1" peers | grep -qx "$1"; }
no_peer() { ! wg show "$IF1" peers | grep -qx "$1"; }
keepalive() { wg show "$IF1" dump | awk -v k="$1" '$1 == k { print $8 }'; }
syncs() { grep -c "node peers synced.*full=$1" "$(c_nm_log n1)" || true; }

kf1=$(wg genkey | wg pubkey); kf2=$(wg genkey | wg pubkey); kf3=$(wg genkey | wg pubkey)
fake f1 "$kf1" 192.168.77.201:51820
fake f2 "$kf2" 192.168.77.202:51820
c_nm_start n1
c_nm_wait_healthy n1
t_ok "n1 has f1 and f2" t_wait "f1, f2 on n1" 20 bash -c \
	"wg show $IF1 peers | grep -qx '$kf1' && wg show $IF1 peers | grep -qx '$kf2'"
t_eq "one full answer at start" 1 "$(syncs true)"

# A mark on f1 that only a whole-list diff would undo (node peers are
# kept at keepalive 25).
wg set "$IF1" peer "$kf1" persistent-keepalive 7
fake f3 "$kf3" 192.168.77.203:51820
t_ok "add: f3 arrives" t_wait "f3 on n1" 20 has_peer "$kf3"
t_eq "add: f3 with its endpoint and subnet" "192.168.77.203:51820 25" \
	"$(wg show "$IF1" dump | awk -v k="$kf3" '$1 == k { print $3, $8 }')"
kf2b=$(wg genkey | wg pubkey)
fake f2 "$kf2b" 192.168.77.222:51821
t_ok "change: f2's new key arrives" t_wait "f2 rotated" 20 has_peer "$kf2b"
t_ok "change: f2's old key is gone" no_peer "$kf2"
delete f3
t_ok "remove: f3 goes" t_wait "f3 gone" 20 no_peer "$kf3"
t_eq "the deltas left f1 alone (its mark stays)" 7 "$(keepalive "$kf1")"
t_eq "still one full answer: the rest were deltas" 1 "$(syncs true)"
t_ok "deltas applied" test "$(syncs false)" -ge 3
t_eq "exactly f1 and f2's new key on n1" "$(printf '%s\n' "$kf1" "$kf2b" | sort)" \
	"$(wg show "$IF1" peers | sort)"

# The cluster manager restarts (kill -9): the revision survives, deltas go on.
c_cm_stop KILL
c_cm_start
kf4=$(wg genkey | wg pubkey)
fake f4 "$kf4" 192.168.77.204:51820
t_ok "after a cluster manager restart: f4 arrives" t_wait "f4 on n1" 40 has_peer "$kf4"
t_eq "after a cluster manager restart: still deltas, no full answer" 1 "$(syncs true)"
t_eq "after a cluster manager restart: f1's mark stays" 7 "$(keepalive "$kf1")"

# n1 stops and misses revisions; on start (full, diffed against the
# interface) it holds exactly the current set.
pid=$(c_nm_pid n1); kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
delete f4
kf1b=$(wg genkey | wg pubkey)
fake f1 "$kf1b" 192.168.77.211:51820
kf5=$(wg genkey | wg pubkey)
fake f5 "$kf5" 192.168.77.205:51820
c_nm_start n1
c_nm_wait_healthy n1
want=$(printf '%s\n' "$kf1b" "$kf2b" "$kf5" | sort)
t_ok "a node that missed revisions catches up exactly" t_wait_eq "n1 caught up" 20 "$want" \
	bash -c "wg show $IF1 peers | sort"

c_leak_check
t_done

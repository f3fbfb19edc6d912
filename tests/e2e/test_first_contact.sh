#!/bin/bash
# First contact: two containers attached a moment ago on one node ping each
# other at the same instant. Without the keepalive the plugin sets on ADD,
# the node and a container could initiate a handshake at once, lose one
# initiation and stall for WireGuard's 5 s retry (seen in 1 of 8 tries).
# Each round must answer within 2 s, every round.
. "$(dirname "$0")/../lib_cluster.sh"

ROUNDS=12
c_cluster 1
slow=0
for r in $(seq 1 "$ROUNDS"); do
	c_ctr_add 1 "a$r"
	c_ctr_add 1 "b$r"
	nq "a$r" ping -n -c 1 -W 2 "${C_ADDR[b$r]}" >"$T_TMP/ab$r" 2>&1 &
	p1=$!
	nq "b$r" ping -n -c 1 -W 2 "${C_ADDR[a$r]}" >"$T_TMP/ba$r" 2>&1 &
	p2=$!
	ok=0
	wait "$p1" && wait "$p2" && ok=1
	[ "$ok" = 1 ] || { slow=$((slow + 1)); t_log "round $r: first ping unanswered within 2 s"; }
	c_ctr_del "a$r"
	c_ctr_del "b$r"
done
t_eq "simultaneous first pings answered within 2 s in all $ROUNDS rounds" 0 "$slow"
c_leak_check
t_done

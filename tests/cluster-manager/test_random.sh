#!/bin/bash
# Random AllocateSubnet/RegisterKey/DeleteNode rounds checked against a naive
# model (random_ops.py), with a SIGTERM or kill -9 restart between rounds: no
# overlap ever, same answers for known nodes, 429 exactly when the model's
# pool is full, ListNodes and every ListPeers equal to the model.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
ARGS=(--cluster-cidr 10.9.0.0/26 --node-prefix-length 29 --cluster-cidr fd00::/120 --node-prefix-length-v6 124)
SEED=${SEED:-$$}
t_log "seed $SEED (SEED=... to repeat)"
c_cm_start "${ARGS[@]}"
for round in 1 2 3 4 5 6; do
	t_ok "round $round: model agrees" \
		nq cm python3 "$(dirname "$0")/random_ops.py" "$T_TMP/model.json" "$((SEED + round))" 60 8
	if [ $((round % 2)) = 0 ]; then sig=KILL; else sig=TERM; fi
	c_cm_stop "$sig"
	[ "$sig" = KILL ] || t_eq "round $round: SIGTERM exit 0" 0 "$C_CM_RC"
	c_cm_start "${ARGS[@]}"
done
t_ok "after the last restart: model agrees" \
	nq cm python3 "$(dirname "$0")/random_ops.py" "$T_TMP/model.json" "$SEED" 0 8
c_cm_stop TERM
t_eq "SIGTERM exit 0" 0 "$C_CM_RC"
c_leak_check
t_done

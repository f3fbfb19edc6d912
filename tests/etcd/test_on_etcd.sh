#!/bin/bash
# Scenarios of other areas again with --datastore etcd: the cluster
# manager's ListPeers, WatchPeers (long polls, deltas, tombstones), bad
# input, stale nodes, random operations against a model, its lifetime under
# valgrind (the watch thread too), and real node managers meshing through
# its restarts (kill -9) and churn, and an external peer reaching containers
# through a gateway, behave the same whatever the store. Each
# scenario starts its own etcd member in its own namespaces
# (C_DATASTORE=etcd, tests/lib_cluster.sh) and cleans up after itself.
# The SQLite-only checks (the state directory's lock, its tables, a restart
# with other CIDRs on one state) stay in their own scripts.
set -u
here=$(dirname "$0")
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	echo "not ok - etcd and etcdctl not installed (etcd-server, etcd-client)" >&2
	exit 1
fi
rc=0
for t in cluster-manager/test_peers cluster-manager/test_watch cluster-manager/test_input \
	cluster-manager/test_stale cluster-manager/test_random cluster-manager/test_valgrind \
	e2e/test_mesh e2e/test_cm_restart e2e/test_churn e2e/test_external; do
	echo "# --- $t.sh with C_DATASTORE=etcd"
	C_DATASTORE=etcd bash "$here/../$t.sh" || { rc=1; echo "not ok - $t.sh on etcd"; }
done
exit $rc

#!/bin/bash
# The cluster manager's API scenarios again with --datastore etcd: ListPeers,
# WatchPeers (long polls, deltas, tombstones) and bad input behave the same
# whatever the store. Each scenario starts its own etcd member in its own
# namespaces (C_DATASTORE=etcd, tests/lib_cluster.sh) and cleans up itself.
# The SQLite-only checks (the state directory's lock, its tables, a restart
# with other CIDRs on one state) stay in their own scripts.
set -u
here=$(dirname "$0")
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	echo "not ok - etcd and etcdctl not installed (etcd-server, etcd-client)" >&2
	exit 1
fi
rc=0
for t in test_peers test_watch test_input; do
	echo "# --- cluster-manager/$t.sh with C_DATASTORE=etcd"
	C_DATASTORE=etcd bash "$here/../cluster-manager/$t.sh" || rc=1
done
exit $rc

#!/bin/bash
# The cluster manager's state is its own whatever the umask it is started
# with: under umask 000 the state directory it creates is 0700 and every file
# in it (SQLite database, -wal, -shm, lock file) 0600.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
C_CM_STATE=$T_TMP/deep/state
umask 000
c_cm_start --cluster-cidr 10.100.0.0/16
umask 022
# A write, so SQLite has its -wal and -shm beside the database.
c_cm_json AllocateSubnet '{"nodeName":"n1"}' >/dev/null

t_eq "state directory is 0700 (umask 000)" 700 "$(stat -c %a "$C_CM_STATE")"
t_eq "the parent it created is 0700 too" 700 "$(stat -c %a "$T_TMP/deep")"
db=$(find "$C_CM_STATE" -maxdepth 1 -name '*.db' | head -n1)
t_ok "a database in the state directory ($db)" test -n "$db"
for f in "$db" "$db-wal" "$db-shm"; do
	t_ok "$(basename "$f") exists" test -e "$f"
done
for f in "$C_CM_STATE"/* ; do
	t_eq "$(basename "$f") is 0600" 600 "$(stat -c %a "$f")"
done
t_eq "nothing in the state directory is open to group or others" "" \
	"$(find "$C_CM_STATE" -perm /077 -printf '%P %m\n')"

c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"
c_leak_check
t_done

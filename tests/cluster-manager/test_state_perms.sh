#!/bin/bash
# The cluster manager's state is its own whatever the umask it is started
# with: under umask 000 the state directory it creates is 0700 and every file
# in it (SQLite database, -wal, -shm, lock file) 0600.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cm_lib.sh"

cm_setup
CM_STATE=$T_TMP/deep/state
umask 000
cm_start --cluster-cidr 10.100.0.0/16
umask 022
# A write, so SQLite has its -wal and -shm beside the database.
cm_json AllocateSubnet '{"nodeName":"n1"}' >/dev/null

t_eq "state directory is 0700 (umask 000)" 700 "$(stat -c %a "$CM_STATE")"
t_eq "the parent it created is 0700 too" 700 "$(stat -c %a "$T_TMP/deep")"
db=$(find "$CM_STATE" -maxdepth 1 -name '*.db' | head -n1)
t_ok "a database in the state directory ($db)" test -n "$db"
for f in "$db" "$db-wal" "$db-shm"; do
	t_ok "$(basename "$f") exists" test -e "$f"
done
for f in "$CM_STATE"/* ; do
	t_eq "$(basename "$f") is 0600" 600 "$(stat -c %a "$f")"
done
t_eq "nothing in the state directory is open to group or others" "" \
	"$(find "$CM_STATE" -perm /077 -printf '%P %m\n')"

cm_stop
t_eq "clean exit" 0 "$CM_RC"
t_done

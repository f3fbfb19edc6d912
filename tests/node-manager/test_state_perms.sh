#!/bin/bash
# The node manager's state is its own whatever the umask it is started with:
# under umask 000 the state directory it creates is 0700 and every file in it
# (node.db, -wal, -shm, private.key) 0600; the API socket stays 0600 and
# the directories made for it 0755.
# Sanitized daemons, no token, node n1.
C_BUILD=asan C_AUTH=none C_HOSTP=n C_NODEP=n C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_hosts 1
c_cm_start
STATE=$(c_state n1)
t_fail "no state directory before the start" test -e "$STATE"
umask 000
c_nm_start n1
umask 022
c_nm_wait_healthy n1
# A write, so SQLite has its -wal and -shm beside the database.
c_nm_call n1 AllocateIP '{"containerId":"c1","ifname":"eth0","netns":"/run/netns/x"}' >/dev/null
t_eq "AllocateIP answers 200" 200 "$(t_http)"

t_eq "state directory is 0700 (umask 000)" 700 "$(stat -c %a "$STATE")"
for f in node.db node.db-wal node.db-shm private.key; do
	t_ok "$f exists" test -e "$STATE/$f"
done
for f in "$STATE"/*; do
	t_eq "$(basename "$f") is 0600" 600 "$(stat -c %a "$f")"
done
t_eq "nothing in the state directory is open to group or others" "" \
	"$(find "$STATE" -perm /077 -printf '%P %m\n')"
t_eq "the socket is 0600" 600 "$(stat -c %a "$(c_sock n1)")"

pid=$(c_nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "SIGTERM: exit 0 (ASan/LSan clean)" 0 "$rc"

# The socket's directories keep their documented mode (0755, as systemd's
# RuntimeDirectoryMode=) under the daemon's own umask 077.
RUN=$T_TMP/run/wgcni
umask 000
c_nm_start n1 --socket "$RUN/nm.sock"
umask 022
t_wait "socket in a new directory" 30 test -S "$RUN/nm.sock"
t_eq "socket directory it created is 0755" "755 755" \
	"$(stat -c %a "$T_TMP/run" "$RUN" | xargs)"
t_eq "that socket is 0600 too" 600 "$(stat -c %a "$RUN/nm.sock")"
pid=$(c_nm_pid n1); kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
t_eq "second run, SIGTERM: exit 0" 0 "$rc"
c_leak_check
t_done

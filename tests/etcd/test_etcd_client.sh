#!/bin/bash
# pkg/etcd against a real etcd (Debian's etcd-server): a 3-member cluster on
# loopback inside a namespace of our own, then one TLS member, with
# tests/etcd/etcd_check*.c (built here, sanitized, against libwgcni.a)
# running each scenario. Needs `make sanitized`. The members are the
# harness' (c_etcd_start, tests/lib_etcd.sh): no underlay, so namespace
# etcd on 127.0.0.1, member I's client port 2379 + 10000 * (I - 1).
. "$(dirname "$0")/../lib_cluster.sh"

c_etcd_need
LIB="$BUILDDIR/asan/libwgcni.a"
if [ ! -f "$LIB" ]; then
	echo "not ok - $LIB missing: run make sanitized" >&2
	exit 1
fi

CHECK="$T_TMP/etcd_check"
PKGS="libcurl jansson libsodium"
pp cc -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter \
	-Wstrict-prototypes -Wmissing-prototypes -Wshadow -Wformat=2 \
	-I"$T_ROOT/pkg" $(pkg-config --cflags $PKGS) -o "$CHECK" \
	"$T_ROOT/tests/etcd/etcd_check.c" "$T_ROOT/tests/etcd/etcd_check_fail.c" "$LIB" $(pkg-config --libs $PKGS) -lpthread

# Three members (m1, m2, m3), healthy.
c_etcd_start 3
EPS=$C_ETCD_ENDPOINTS

check() { nq "$C_ETCD_NS" "$CHECK" "$@"; }
t_ok "put, range, delete: binary values, prefixes, limits" check basic "$EPS"
t_ok "claim-if-absent from two clients: one winner per subnet" check claim "$EPS"
t_ok "compare-and-swap on mod_revision from three clients" check cas "$EPS"
t_ok "watch: ordered events with revisions, transactions in one batch" check watch "$EPS"
t_ok "compaction: range -ESTALE, the watch told" check compaction "$EPS"
t_ok "leases: grant, keepalive, revoke, expiry" check lease "$EPS"
t_ok "watch survives the death of its member: nothing lost or repeated" \
	check watch-failover "$EPS" "$(c_etcd_pid 1)"
# Killed by etcd_check, so a zombie of ours until reaped (c_etcd_stop).
t_ok "the killed member is down" t_wait "m1 dead" 5 c_etcd_down 1
t_ok "the first endpoint dead: calls fail over" check dead-first "$EPS"
t_ok "bad endpoints refused; all down: a clear error in bounded time" \
	check down "$(c_etcd_url 2),$(c_etcd_url 3)" \
	"$(c_etcd_url 1),http://$C_ETCD_ADDR:9,http://$C_ETCD_ADDR:10"
t_ok "no quorum: the watch breaks off (hasleader), writes fail in bounded time" \
	check no-leader "$(c_etcd_url 3)" "$(c_etcd_pid 2)"

# TLS: a CA, a server certificate for 127.0.0.1, a client certificate
# (c_etcd_pki); one member (m4, port 32379) that wants them.
C_ETCD_TLS=1
c_etcd_start 1
t_ok "TLS: CA, client certificate and key; untrusted server refused" \
	check tls "$C_ETCD_ENDPOINTS" "$C_ETCD_CA" "$C_ETCD_CERT" "$C_ETCD_KEY"

# Every member stopped (c_etcd_stop), nothing left in our namespaces.
c_leak_check
t_done

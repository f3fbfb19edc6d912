#!/bin/bash
# pkg/etcd against a real etcd (Debian's etcd-server): a 3-member cluster on
# loopback inside a namespace of our own, then one TLS member, with
# tests/etcd/etcd_check*.c (built here, sanitized, against libwgcni.a)
# running each scenario. Needs `make sanitized`.
. "$(dirname "$0")/../lib.sh"

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	echo "# etcd-server / etcd-client not installed: skipped"
	exit 77
fi
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

t_netns_add etcd

# member NAME CLIENT_PORT PEER_PORT CLUSTER [extra etcd flags]
member() {
	local name=$1 cport=$2 pport=$3 cluster=$4 scheme=http; shift 4
	[[ " $* " == *" --cert-file "* ]] && scheme=https
	t_spawn "$name" "$T_TMP/$name.log" ip netns exec "$(t_ns etcd)" etcd --name "$name" \
		--data-dir "$T_TMP/$name.data" \
		--listen-client-urls "$scheme://127.0.0.1:$cport" \
		--advertise-client-urls "$scheme://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "$cluster" --initial-cluster-state new \
		--initial-cluster-token "$T_ID-${cluster%%=*}" "$@"
}

CLUSTER="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:12380,m3=http://127.0.0.1:22380"
member m1 2379 2380 "$CLUSTER"
member m2 12379 12380 "$CLUSTER"
member m3 22379 22380 "$CLUSTER"
EPS="http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379"
healthy() { ETCDCTL_API=3 nq etcd etcdctl --endpoints "$1" --command-timeout=2s endpoint health "${@:2}"; }
t_wait "3 etcd members healthy" 60 healthy "$EPS"

check() { nq etcd "$CHECK" "$@"; }
t_ok "put, range, delete: binary values, prefixes, limits" check basic "$EPS"
t_ok "claim-if-absent from two clients: one winner per subnet" check claim "$EPS"
t_ok "compare-and-swap on mod_revision from three clients" check cas "$EPS"
t_ok "watch: ordered events with revisions, transactions in one batch" check watch "$EPS"
t_ok "compaction: range -ESTALE, the watch told" check compaction "$EPS"
t_ok "leases: grant, keepalive, revoke, expiry" check lease "$EPS"
t_ok "watch survives the death of its member: nothing lost or repeated" \
	check watch-failover "$EPS" "$T_PID_m1"
# Killed by etcd_check, so a zombie of ours until reaped.
dead() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1")" = Z ]; }
t_ok "the killed member is down" t_wait "m1 dead" 5 dead "$T_PID_m1"
t_ok "the first endpoint dead: calls fail over" check dead-first "$EPS"
t_ok "bad endpoints refused; all down: a clear error in bounded time" \
	check down "http://127.0.0.1:12379,http://127.0.0.1:22379" \
	"http://127.0.0.1:2379,http://127.0.0.1:9,http://127.0.0.1:10"
t_ok "no quorum: the watch breaks off (hasleader), writes fail in bounded time" \
	check no-leader http://127.0.0.1:22379 "$T_PID_m2"

# TLS: a CA, a server certificate for 127.0.0.1, a client certificate.
P="$T_TMP/pki"
mkdir -p "$P"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=wgcni-test-ca -keyout "$P/ca.key" -out "$P/ca.pem"
for who in server client; do
	ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$who" \
		-keyout "$P/$who.key" -out "$P/$who.csr"
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$P/$who.ext"
	ossl x509 -req -in "$P/$who.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
		-days 1 -extfile "$P/$who.ext" -out "$P/$who.pem"
done
member t1 32379 32380 "t1=http://127.0.0.1:32380" \
	--cert-file "$P/server.pem" --key-file "$P/server.key" \
	--client-cert-auth --trusted-ca-file "$P/ca.pem"
t_wait "the TLS member healthy" 60 healthy https://127.0.0.1:32379 \
	--cacert "$P/ca.pem" --cert "$P/client.pem" --key "$P/client.key"
t_ok "TLS: CA, client certificate and key; untrusted server refused" \
	check tls https://127.0.0.1:32379 "$P/ca.pem" "$P/client.pem" "$P/client.key"

t_done

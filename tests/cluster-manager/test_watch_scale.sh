#!/bin/bash
# WatchPeers across restarts and under load: revisions survive kill -9, a
# node whose revision is still in the history gets a delta and one from
# before it (an upgraded state directory's history starts at the upgrade)
# gets full; concurrent changes share commits (group commit) and lose
# nothing answered on kill -9; twenty waiting watchers are woken once by one
# change and all get the same bytes, encoded once; past 4096 deletions the
# history's floor moves up (full below it, deltas above, across a restart).
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"
. "$(dirname "$0")/watch_lib.sh"

c_need
c_cm_host
# Room for the thousands of nodes below.
WIDE=(--cluster-cidr 10.0.0.0/8)
c_cm_start "${WIDE[@]}"

reg() { c_cm_json RegisterKey "{\"nodeName\":\"$1\",\"publicKey\":\"$2\",\"endpoint\":\"$3\"}" >/dev/null; }
rev() { jq -r .revision <<<"$1"; }
for i in 1 2 3; do
	c_cm_json AllocateSubnet "{\"nodeName\":\"n$i\"}" >/dev/null
	reg "n$i" "$(c_pubkey)" "10.0.0.$i:51820"
done
f=$(watch_peers n1 0); r1=$(rev "$f"); s1=$(watch_peer_set "$f")
c_cm_json DeleteNode '{"nodeName":"n3"}' >/dev/null
k2=$(c_pubkey)
reg n2 "$k2" 10.0.0.2:51820
f=$(watch_peers n1 0); r2=$(rev "$f"); s2=$(watch_peer_set "$f")

# --- restart (kill -9): the revision and its history survive.
c_cm_stop KILL
c_cm_start "${WIDE[@]}"
f=$(watch_peers n1 0)
t_eq "after kill -9: the same revision and peers" "$r2 $s2" "$(rev "$f") $(watch_peer_set "$f")"
d=$(watch_peers n1 "$r2")
t_eq "after kill -9: a node at the current revision has nothing to do" \
	"{\"full\":false,\"peers\":[],\"removed\":[],\"revision\":$r2}" "$d"
d=$(watch_peers n1 "$r1")
t_eq "after kill -9: an older revision still in the history gets a delta" \
	'false ["n2"] ["n3"]' "$(jq -r .full <<<"$d") $(watch_names "$d") $(jq -c .removed <<<"$d")"
t_eq "after kill -9: that delta brings the old set to the current one" "$s2" "$(watch_apply "$s1" "$d")"
d=$(watch_peers n1 $((r2 + 5)))
t_eq "after kill -9: a revision the manager never reached gets full" "true $s2" \
	"$(jq -r .full <<<"$d") $(watch_peer_set "$d")"

# --- group commit: concurrent registrations share transactions; every one
# answered is on disk (kill -9 right after).
N=60
c0=$(c_cm_metric wgcni_commits_total)
for i in $(seq 1 $N); do printf '{"nodeName":"g%s"}\n' "$i"; done >"$T_TMP/alloc.bodies"
for i in $(seq 1 $N); do
	printf '{"nodeName":"g%s","publicKey":"%s","endpoint":"10.1.0.%s:51820"}\n' \
		"$i" "$(c_pubkey)" "$i"
done >"$T_TMP/reg.bodies"
c_cm_parallel AllocateSubnet "$T_TMP/alloc.bodies" >"$T_TMP/alloc.codes"
c_cm_parallel RegisterKey "$T_TMP/reg.bodies" >"$T_TMP/reg.codes"
t_eq "$N concurrent AllocateSubnet: all 200" "$N" "$(grep -c '^200$' "$T_TMP/alloc.codes")"
t_eq "$N concurrent RegisterKey: all 200" "$N" "$(grep -c '^200$' "$T_TMP/reg.codes")"
c1=$(c_cm_metric wgcni_commits_total)
t_log "$((2 * N)) changes in $((c1 - c0)) commits"
t_ok "$((2 * N)) concurrent changes took at most half as many commits ($((c1 - c0)))" \
	test $((c1 - c0)) -le "$N"
f=$(watch_peers n1 0); r3=$(rev "$f"); s3=$(watch_peer_set "$f")
t_eq "every registered node is a peer" $((N + 2)) "$(jq 'length' <<<"$s3")"
c_cm_stop KILL
c_cm_start "${WIDE[@]}"
f=$(watch_peers n1 0)
t_eq "after kill -9: every answered registration is there" "$r3 $s3" \
	"$(rev "$f") $(watch_peer_set "$f")"
d=$(watch_peers n1 "$r2")
t_eq "after kill -9: the whole wave as one delta" "$s3" "$(watch_apply "$s2" "$d")"

# --- twenty waiting watchers, one change: each is answered once, all with
# the same bytes, encoded once.
W=20
r=$(rev "$(watch_peers n1 0)")
e0=$(c_cm_metric 'wgcni_watch_encodings_total{encoding="json"}')
ok0=$(c_cm_metric 'wgcni_api_requests_total{method="WatchPeers",code="ok"}')
pids=()
for i in $(seq 1 $W); do
	nq cm curl -sS -m 30 -o "$T_TMP/w.$i" -H 'Content-Type: application/json' \
		-d "{\"nodeName\":\"g$i\",\"sinceRevision\":\"$r\",\"waitSeconds\":25}" \
		"$C_CM_URL/$C_CM_SVC/WatchPeers" &
	pids+=($!)
done
t_ok "$W watchers are waiting" t_wait_eq "watchers" 10 $W c_cm_metric wgcni_watchers
krot=$(c_pubkey)
reg g1 "$krot" 10.1.0.1:51820
for p in "${pids[@]}"; do wait "$p"; done
t_eq "all $W answered with the same bytes" 1 "$(cat "$T_TMP"/w.* | sort -u | wc -l)"
t_eq "the answer is the one change" "[\"g1\"] $krot" \
	"$(jq -c '[.peers[].name]' "$T_TMP/w.1") $(jq -r '.peers[0].publicKey' "$T_TMP/w.1")"
t_ok "the answer is small ($(wc -c <"$T_TMP/w.1") bytes)" test "$(wc -c <"$T_TMP/w.1")" -lt 1024
t_eq "encoded once for $W watchers" $((e0 + 1)) \
	"$(c_cm_metric 'wgcni_watch_encodings_total{encoding="json"}')"
t_eq "each watcher answered once" $((ok0 + W)) \
	"$(c_cm_metric 'wgcni_api_requests_total{method="WatchPeers",code="ok"}')"
t_eq "no watcher left" 0 "$(c_cm_metric wgcni_watchers)"

# --- more deletions than the history keeps (4096): a revision from before
# the oldest kept one gets full, a later one still a delta, also after a
# restart.
P=4100
r=$(rev "$(watch_peers n1 0)")
python3 - "$P" "$T_TMP" <<'PY'
import base64, os, sys
n, tmp = int(sys.argv[1]), sys.argv[2]
with open(tmp + "/p.alloc", "w") as a, open(tmp + "/p.reg", "w") as r:
    for i in range(n):
        a.write('{"nodeName":"p%d"}\n' % i)
        r.write('{"nodeName":"p%d","publicKey":"%s","endpoint":"10.3.0.1:51820"}\n'
                % (i, base64.b64encode(os.urandom(32)).decode()))
PY
for step in AllocateSubnet:alloc RegisterKey:reg DeleteNode:alloc; do
	c_cm_parallel "${step%%:*}" "$T_TMP/p.${step#*:}" >"$T_TMP/p.codes"
	t_eq "$P concurrent ${step%%:*} calls: all 200" "$P" "$(grep -c '^200$' "$T_TMP/p.codes")"
done
now=$(watch_peers n1 0)
t_eq "the history keeps 4096 deletions" 4096 \
	"$(sqlite3 "$C_CM_STATE/cluster.db" 'SELECT count(*) FROM tombstones')"
d=$(watch_peers n1 "$r")
t_eq "a revision older than the history: full" "true $(watch_peer_set "$now")" \
	"$(jq -r .full <<<"$d") $(watch_peer_set "$d")"
late=$(( $(rev "$now") - 100 ))
d=$(watch_peers n1 "$late")
t_eq "a revision inside the history: a delta of the last 100 deletions" "false 100" \
	"$(jq -r .full <<<"$d") $(jq '.removed | length' <<<"$d")"
c_cm_stop
c_cm_start "${WIDE[@]}"
t_eq "after a restart: still full from the old revision" true "$(jq -r .full <<<"$(watch_peers n1 "$r")")"
t_eq "after a restart: still a delta inside the history" "$d" "$(watch_peers n1 "$late")"
c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"

# --- an upgraded state directory (schema 1): its history starts at the
# upgrade, so an older revision gets full, the current one a delta.
C_CM_STATE=$T_TMP/state-v1
mkdir -p "$C_CM_STATE"
kA=$(c_pubkey); kB=$(c_pubkey)
sqlite3 "$C_CM_STATE/cluster.db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
CREATE TABLE nodes (name TEXT PRIMARY KEY NOT NULL, public_key TEXT NOT NULL DEFAULT '',
  endpoint TEXT NOT NULL DEFAULT '', last_seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE subnets (cidr TEXT PRIMARY KEY NOT NULL,
  family INTEGER NOT NULL CHECK (family IN (4, 6)),
  node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE, UNIQUE (node, family));
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('revision', 17);
INSERT INTO nodes VALUES ('a', '$kA', '10.2.0.1:51820', 0), ('b', '$kB', '10.2.0.2:51820', 0);
INSERT INTO subnets VALUES ('10.100.7.0/24', 4, 'a'), ('10.100.9.0/24', 4, 'b');
PRAGMA user_version = 1;
SQL
c_cm_start
f=$(watch_peers a 0)
t_eq "upgraded: the stored revision and peers" "17 true [\"a\",\"b\"] $kB 10.100.9.0/24" \
	"$(rev "$f") $(jq -r .full <<<"$f") $(watch_names "$f") $(jq -r '.peers[1] | .publicKey + " " + .allowedIps[0]' <<<"$f")"
t_eq "upgraded: the schema version is the current one (3: external peers)" 3 "$(sqlite3 "$C_CM_STATE/cluster.db" 'PRAGMA user_version')"
d=$(watch_peers a 12)
t_eq "upgraded: a revision older than the history gets full" "true [\"a\",\"b\"]" \
	"$(jq -r .full <<<"$d") $(watch_names "$d")"
c_cm_json DeleteNode '{"nodeName":"b"}' >/dev/null
d=$(watch_peers a 17)
t_eq "upgraded: from the upgrade's revision, a delta" 'false [] ["b"]' \
	"$(jq -r .full <<<"$d") $(watch_names "$d") $(jq -c .removed <<<"$d")"
c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"
c_leak_check
t_done

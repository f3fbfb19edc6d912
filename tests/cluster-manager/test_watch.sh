#!/bin/bash
# WatchPeers: since 0 is the full set; then deltas across add,
# change and remove (keyless nodes never appear); a node that missed any
# number of revisions catches up exactly; a revision the server never
# reached gets full; JSON and proto answers agree; errors for unknown and
# invalid callers.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"
. "$(dirname "$0")/watch_lib.sh"

c_need
c_cm_host
c_cm_start

for n in n1 n2 n3 n4; do c_cm_json AllocateSubnet "{\"nodeName\":\"$n\"}" >/dev/null; done
k1=$(c_pubkey); k2=$(c_pubkey); k3=$(c_pubkey)
reg() { c_cm_json RegisterKey "{\"nodeName\":\"$1\",\"publicKey\":\"$2\",\"endpoint\":\"$3\"}" >/dev/null; }
reg n1 "$k1" 10.0.0.1:51820
reg n2 "$k2" 10.0.0.2:51820

rev() { jq -r .revision <<<"$1"; }
# The full set now, kept by revision (in a file: snap runs in $(...)).
snap() { local f; f=$(watch_peers n1 0); watch_peer_set "$f" >"$T_TMP/set.$(rev "$f")"; rev "$f"; }

f=$(watch_peers n1 0)
t_eq "since 0: full" true "$(jq -r .full <<<"$f")"
t_eq "since 0: every peer with a key (the caller may be among them)" '["n1","n2"]' "$(watch_names "$f")"
t_eq "since 0: n2's key, endpoint, subnet" "$k2 10.0.0.2:51820 10.100.1.0/24" \
	"$(jq -r '.peers[1] | [.publicKey, .endpoint, (.allowedIps | join(","))] | join(" ")' <<<"$f")"
r0=$(snap)

d=$(watch_peers n1 "$r0")
t_eq "since the current revision, no wait: nothing" \
	"{\"full\":false,\"peers\":[],\"removed\":[],\"revision\":$r0}" "$d"

reg n3 "$k3" 10.0.0.3:51820
d=$(watch_peers n1 "$r0")
t_eq "add: the new peer only" 'false ["n3"] []' \
	"$(jq -r .full <<<"$d") $(watch_names "$d") $(jq -c .removed <<<"$d")"
t_eq "add: with its key" "$k3" "$(jq -r '.peers[0].publicKey' <<<"$d")"
t_ok "add: the revision moved" test "$(rev "$d")" -gt "$r0"
r1=$(snap)

k2b=$(c_pubkey)
reg n2 "$k2b" 10.0.0.22:51821
d=$(watch_peers n1 "$r1")
t_eq "change: n2 only, with the new key and endpoint" "[\"n2\"] $k2b 10.0.0.22:51821 []" \
	"$(watch_names "$d") $(jq -r '.peers[0] | .publicKey + " " + .endpoint' <<<"$d") $(jq -c .removed <<<"$d")"
r2=$(snap)

c_cm_json DeleteNode '{"nodeName":"n3"}' >/dev/null
d=$(watch_peers n1 "$r2")
t_eq "remove: n3's name, no peers" '[] ["n3"] false' \
	"$(watch_names "$d") $(jq -c .removed <<<"$d") $(jq -r .full <<<"$d")"
r3=$(snap)

c_cm_json AllocateSubnet '{"nodeName":"n5"}' >/dev/null
c_cm_json DeleteNode '{"nodeName":"n4"}' >/dev/null
d=$(watch_peers n1 "$r3")
t_ok "keyless nodes: the revision moved" test "$(rev "$d")" -gt "$r3"
t_eq "keyless nodes come and go unseen" '[] []' "$(watch_names "$d") $(jq -c .removed <<<"$d")"
r4=$(snap)

# n3 back under its old name with a new key, then gone again, then back.
k3b=$(c_pubkey)
c_cm_json AllocateSubnet '{"nodeName":"n3"}' >/dev/null
reg n3 "$k3b" 10.0.0.33:51820
d=$(watch_peers n1 "$r3")
t_eq "a name deleted and back: a changed peer, not removed" "[\"n3\"] [] $k3b" \
	"$(watch_names "$d") $(jq -c .removed <<<"$d") $(jq -r '.peers[0].publicKey' <<<"$d")"
r5=$(snap)
c_cm_json DeleteNode '{"nodeName":"n3"}' >/dev/null
c_cm_json AllocateSubnet '{"nodeName":"n3"}' >/dev/null
c_cm_json DeleteNode '{"nodeName":"n3"}' >/dev/null
d=$(watch_peers n1 "$r1")
t_eq "deleted twice: named once in removed" '["n3"]' "$(jq -c .removed <<<"$d")"
k6=$(c_pubkey)
c_cm_json AllocateSubnet '{"nodeName":"n6"}' >/dev/null
reg n6 "$k6" 10.0.0.6:51820
now=$(watch_peers n1 0)
want=$(watch_peer_set "$now")
for r in "$r0" "$r1" "$r2" "$r3" "$r4" "$r5"; do
	d=$(watch_peers n1 "$r")
	t_eq "from revision $r: a delta" false "$(jq -r .full <<<"$d")"
	t_eq "from revision $r: the delta brings the old set exactly to the current one" \
		"$want" "$(watch_apply "$(cat "$T_TMP/set.$r")" "$d")"
done
t_eq "every delta names the current revision" "$(rev "$now")" "$(rev "$(watch_peers n1 "$r0")")"

d=$(watch_peers n1 $(( $(rev "$now") + 1000 )))
t_eq "a revision never reached: full" "true $want" "$(jq -r .full <<<"$d") $(watch_peer_set "$d")"
t_eq "a full answer removes nothing" '[]' "$(jq -c .removed <<<"$d")"

# The same answers in application/proto.
for r in 0 "$r1" "$r3"; do
	t_eq "since $r: proto and JSON answers agree" "$(watch_peers n1 "$r")" "$(watch_proto n1 "$r")"
done

out=$(c_cm_call WatchPeers '{"nodeName":"ghost"}')
t_eq "an unknown caller: not_found" "404 not_found" "$(t_http) $(jq -r .code <<<"$out")"
out=$(c_cm_call WatchPeers '{"nodeName":"a b"}')
t_eq "an invalid name: invalid_argument" "400 invalid_argument" "$(t_http) $(jq -r .code <<<"$out")"
out=$(c_cm_call WatchPeers '{"nodeName":"n1","bogus":1}')
t_eq "an unknown field: invalid_argument" "400" "$(t_http)"

# Long poll: a waiting call answers at the change, with the delta.
r=$(rev "$(watch_peers n1 0)")
C_CM_OUT=bg c_cm_call WatchPeers "{\"nodeName\":\"n1\",\"sinceRevision\":\"$r\",\"waitSeconds\":20}" \
	>"$T_TMP/poll.json" &
poll=$!
t_ok "the watch is waiting (wgcni_watchers=1)" \
	t_wait_eq "one watcher" 10 1 c_cm_metric wgcni_watchers
k1b=$(c_pubkey)
reg n1 "$k1b" 10.0.0.1:51820
wait "$poll"
t_eq "the waiting watch answers with the change" "[\"n1\"] $k1b" \
	"$(jq -c '[.peers[].name]' "$T_TMP/poll.json") $(jq -r '.peers[0].publicKey' "$T_TMP/poll.json")"
t_eq "no watcher left" 0 "$(c_cm_metric wgcni_watchers)"
# A wait with nothing changed ends empty at the same revision.
r=$(rev "$(watch_peers n1 0)")
d=$(watch_peers n1 "$r" 1)
t_eq "a wait that ends without change: empty, same revision" \
	"{\"full\":false,\"peers\":[],\"removed\":[],\"revision\":$r}" "$d"

c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"
c_leak_check
t_done

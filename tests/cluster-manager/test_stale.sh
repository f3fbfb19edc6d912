#!/bin/bash
# Stale nodes (--node-ttl, --delete-after): a node not seen for
# longer than the ttl is stale (ListNodes says so, wgcni_stale_nodes counts
# it), out of ListPeers and WatchPeers (a delta names it removed, a full set
# omits it) with its subnet kept; any call brings it back (in the next
# delta's peers); every delta from any earlier revision brings that
# revision's set exactly to the current one, also across a kill -9 (stale
# nodes stay stale, live ones get one ttl of grace); long polls wait at most
# half the ttl; --delete-after deletes a node stale for that long and frees
# its subnet; bad durations are refused.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080, sanitized.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
TTL=4
c_cm_start --node-ttl "${TTL}s"

reg() { c_cm_json RegisterKey "{\"nodeName\":\"$1\",\"publicKey\":\"$2\",\"endpoint\":\"$3\"}" >/dev/null; }
for i in 1 2 3; do
	c_cm_json AllocateSubnet "{\"nodeName\":\"n$i\"}" >/dev/null
	reg "n$i" "$(c_pubkey)" "10.0.0.$i:51820"
done
c_cm_json AllocateSubnet '{"nodeName":"k4"}' >/dev/null # never registers a key
t0=$(c_now_ms) # the last call of n2, n3 and k4

# WatchPeers as {revision, full, peers: {name: [key, endpoint, ips]}, removed}.
watch() {
	c_cm_json WatchPeers "{\"nodeName\":\"$1\",\"sinceRevision\":\"$2\",\"waitSeconds\":${3:-0}}" |
		jq -cS '{revision: ((.revision // "0") | tonumber), full: (.full // false),
			peers: ([.peers[]? | {key: .name, value: [.publicKey, .endpoint, (.allowedIps // [])]}]
				| from_entries), removed: ((.removed // []) | sort)}'
}
# SET after the answer ANSWER.
apply() {
	jq -cnS --argjson s "$1" --argjson d "$2" \
		'if $d.full then $d.peers else ($s | with_entries(select(.key as $k | $d.removed | index($k) | not))) + $d.peers end'
}
rev() { jq -r .revision <<<"$1"; }
# snap: the full set now, kept by revision; prints the revision.
snap() { local f; f=$(watch n1 0); jq -c .peers <<<"$f" >"$T_TMP/set.$(rev "$f")"; rev "$f"; }
REVS=()
# The delta from each saved revision, applied to the set saved with it, is
# the full set at the delta's revision (read again when a node turned stale
# between the two reads: a loaded machine can outlast the ttl).
exact_from_all() {
	local want r d f i
	for r in "${REVS[@]}"; do
		for i in 1 2 3; do
			d=$(watch n1 "$r")
			f=$(watch n1 0)
			[ "$(jq -r .revision <<<"$d")" != "$(jq -r .revision <<<"$f")" ] || break
		done
		want=$(jq -c .peers <<<"$f")
		t_eq "$1: from revision $r, the delta brings the old set exactly to the current one" \
			"false $want" "$(jq -r .full <<<"$d") $(apply "$(cat "$T_TMP/set.$r")" "$d")"
	done
}
stale_of() { c_cm_json ListNodes '{}' | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .stale // false'; }
stale_names() { c_cm_json ListNodes '{}' | jq -r '[.nodes[] | select(.stale) | .name] | join(",")'; }
# keep n1 (and the nodes given) live while waiting for the others
alive() { local n; for n in n1 "$@"; do c_cm_json ListPeers "{\"nodeName\":\"$n\"}" >/dev/null; done; }
wait_stale() { local want=$1; shift; alive "$@" && [ "$(stale_names)" = "$want" ]; }

REVS+=("$(snap)")
t_eq "fresh nodes are live" "0 " "$(c_cm_metric wgcni_stale_nodes) $(stale_names)"

# --- n2, n3 and k4 stop calling -----------------------------------------------
t_ok "n2, n3 and k4 turn stale, n1 (calling) does not" \
	t_wait "stale n2,n3,k4" $((TTL * 3 + 3)) wait_stale "k4,n2,n3"
el=$(( $(c_now_ms) - t0 ))
t_log "stale after ${el} ms (ttl ${TTL}s)"
t_ok "not before the ttl" test "$el" -ge $((TTL * 1000 - 300))
t_eq "wgcni_stale_nodes counts them" 3 "$(c_cm_metric wgcni_stale_nodes)"
t_eq "their subnets are kept" "4" "$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "ListNodes still has every node" "k4 n1 n2 n3" \
	"$(c_cm_json ListNodes '{}' | jq -r '[.nodes[].name] | sort | join(" ")')"
t_eq "ListPeers leaves stale nodes out" '[]' \
	"$(c_cm_json ListPeers '{"nodeName":"n1"}' | jq -c '[.peers[]?.name]')"
f=$(watch n1 0)
t_eq "a full WatchPeers leaves them out" '["n1"]' "$(jq -c '.peers | keys' <<<"$f")"
d=$(watch n1 "${REVS[0]}")
t_eq "a delta across it names them removed (keyless k4 never)" 'false ["n2","n3"]' \
	"$(jq -r .full <<<"$d") $(jq -c .removed <<<"$d")"
REVS+=("$(snap)")
exact_from_all "stale"

# --- any call brings a node back ------------------------------------------------
c_cm_json ListPeers '{"nodeName":"n2"}' >/dev/null
t_eq "ListPeers from n2 makes it live" "false" "$(stale_of n2)"
d=$(watch n1 "${REVS[1]}")
t_eq "the next delta has n2 among the peers" '["n2"] []' \
	"$(jq -c '.peers | keys' <<<"$d") $(jq -c .removed <<<"$d")"
t_eq "two stale nodes left" 2 "$(c_cm_metric wgcni_stale_nodes)"
c_cm_json AllocateSubnet '{"nodeName":"k4"}' >/dev/null
t_eq "AllocateSubnet from k4 makes it live" "false" "$(stale_of k4)"
REVS+=("$(snap)")
exact_from_all "live again"

# --- kill -9: stale stays stale, live nodes get a ttl of grace ---------------
c_cm_stop KILL
c_cm_start --node-ttl "${TTL}s"
t_eq "after kill -9: n3 is still stale, nobody else" "n3" "$(stale_names)"
t_eq "after kill -9: wgcni_stale_nodes" 1 "$(c_cm_metric wgcni_stale_nodes)"
exact_from_all "after kill -9"
alive n2
c_cm_json RegisterKey "{\"nodeName\":\"n3\",\"publicKey\":\"$(c_pubkey)\",\"endpoint\":\"10.0.0.33:51820\"}" >/dev/null
t_eq "RegisterKey from n3 (a new key) makes it live" "false" "$(stale_of n3)"
REVS+=("$(snap)")
exact_from_all "after RegisterKey"

# --- long polls wait at most half the ttl ------------------------------------
r=$(rev "$(watch n1 0)")
t0=$(c_now_ms)
d=$(watch n1 "$r" 30)
el=$(( $(c_now_ms) - t0 ))
t_log "WatchPeers waitSeconds=30 answered after ${el} ms"
t_ok "a WatchPeers wait is cut to half the ttl (<= $((TTL * 500 + 900)) ms)" test "$el" -le $((TTL * 500 + 900))
# (unless a change, a node turning stale, ended it sooner)
t_ok "... and does wait (>= $((TTL * 500 - 200)) ms or a change)" \
	sh -c "[ $el -ge $((TTL * 500 - 200)) ] || [ $(rev "$d") != $r ]"
t0=$(c_now_ms)
c_cm_json ListPeers "{\"nodeName\":\"n1\",\"sinceRevision\":\"$r\",\"waitSeconds\":30}" >/dev/null
el=$(( $(c_now_ms) - t0 ))
t_ok "a ListPeers wait too (${el} ms)" test "$el" -le $((TTL * 500 + 900))
# a node waiting in long polls back to back (as node managers do) never
# turns stale
pollers() {
	local since=$r i out
	for i in $(seq 1 40); do
		[ ! -e "$T_TMP/stop_poll" ] || return 0
		out=$(C_CM_OUT=poll c_cm_call WatchPeers \
			"{\"nodeName\":\"$1\",\"sinceRevision\":\"$since\",\"waitSeconds\":30}")
		[ "$(cat "$T_TMP/poll_status")" = 200 ] || { t_log "poll: $out"; return 1; }
		since=$(jq -r '.revision // "0"' <<<"$out")
	done
}
pollers n2 &
pp=$!
t_ok "n1 and n2 (in long polls) stay live while n3 turns stale" \
	t_wait "stale n3" $((TTL * 3 + 3)) wait_stale "k4,n3"
touch "$T_TMP/stop_poll"
t_ok "the long polls all answered" wait "$pp"
t_eq "n2, only ever in long polls, is live" "false" "$(stale_of n2)"
REVS+=("$(snap)")
exact_from_all "stale again"

# --- --delete-after ----------------------------------------------------------
used=$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')
c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"
c_cm_start --node-ttl "${TTL}s" --delete-after 1s
left() { alive n2 && c_cm_json ListNodes '{}' | jq -r '[.nodes[].name] | sort | join(" ")'; }
t_ok "a node stale for --delete-after is deleted (n3, k4; n1, n2 kept alive)" \
	t_wait_eq "n3, k4 deleted" $((TTL * 3 + 3)) "n1 n2" left
t_eq "their subnets are free again" "$((used - 2))" \
	"$(c_cm_metric 'wgcni_subnets{family="ipv4",state="used"}')"
t_eq "no stale node left" 0 "$(c_cm_metric wgcni_stale_nodes)"
d=$(watch n1 "${REVS[-1]}")
t_eq "the delta names n3 removed (deleted now)" '["n3"]' "$(jq -c .removed <<<"$d")"
c_cm_stop
t_eq "clean exit" 0 "$C_CM_RC"

# --- bad durations -------------------------------------------------------------
for bad in 10x 1.5h -1s 500ms ""; do
	set +e
	out=$("$C_CM_BIN" --state-dir "$T_TMP/bad" --node-ttl "$bad" 2>&1)
	rc=$?
	set -e
	t_eq "--node-ttl '$bad': exit 2" 2 "$rc"
	t_ok "--node-ttl '$bad': says why" c_match "$out" "node-ttl"
done
set +e
out=$(WGCNI_DELETE_AFTER=5q "$C_CM_BIN" --state-dir "$T_TMP/bad" 2>&1)
rc=$?
set -e
t_eq "WGCNI_DELETE_AFTER=5q: exit 2" "2 yes" "$rc $(c_match "$out" "invalid duration" && echo yes)"
t_ok "--help documents --node-ttl and --delete-after" \
	sh -c "'$C_CM_BIN' --help | grep -q -- --node-ttl && '$C_CM_BIN' --help | grep -q -- --delete-after"

c_leak_check
t_done

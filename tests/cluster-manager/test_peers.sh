#!/bin/bash
# RegisterKey and ListPeers: never self, allowedIps = the peer's subnets, a new
# key replaces the old one, DeleteNode removes the node from every peer list,
# long polls return within 100 ms of a change and after waitSeconds otherwise.
# The cluster manager alone, in namespace cm on 127.0.0.1:8080 (no
# underlay), sanitized, with only the flags each start gives.
C_BUILD=asan C_AUTH=none C_CM_ADDR=127.0.0.1 C_CIDR= C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need
c_cm_host
c_cm_start

for n in n1 n2 n3; do c_cm_json AllocateSubnet "{\"nodeName\":\"$n\"}" >/dev/null; done
k1=$(c_pubkey); k2=$(c_pubkey); k3=$(c_pubkey)

out=$(c_cm_call RegisterKey "{\"nodeName\":\"ghost\",\"publicKey\":\"$k1\",\"endpoint\":\"10.0.0.9:51820\"}")
t_eq "RegisterKey without subnet: 412" 412 "$(t_http)"
t_eq "RegisterKey without subnet: message" \
	'failed_precondition node "ghost" has no subnet: call AllocateSubnet first' \
	"$(jq -r '.code + " " + .message' <<<"$out")"

rev0=$(c_cm_json ListPeers '{"nodeName":"n1"}' | jq -r '.revision // "0"')
out=$(c_cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$k1\",\"endpoint\":\"10.0.0.1:51820\"}")
t_eq "RegisterKey returns the node" "n1 $k1 10.0.0.1:51820 10.100.0.0/24 10.100.0.1/24" \
	"$(jq -r '.node | [.name, .publicKey, .endpoint, .subnets[0], .address] | join(" ")' <<<"$out")"
rev1=$(c_cm_json ListPeers '{"nodeName":"n1"}' | jq -r '.revision // "0"')
t_ok "a new key moves the revision ($rev0 -> $rev1)" test "$rev1" -gt "$rev0"
c_cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$k1\",\"endpoint\":\"10.0.0.1:51820\"}" >/dev/null
t_eq "the same key again leaves the revision alone" "$rev1" \
	"$(c_cm_json ListPeers '{"nodeName":"n1"}' | jq -r '.revision // "0"')"
c_cm_json RegisterKey "{\"nodeName\":\"n2\",\"publicKey\":\"$k2\",\"endpoint\":\"[fd00::2]:51820\"}" >/dev/null
out=$(c_cm_call RegisterKey "{\"nodeName\":\"n3\",\"publicKey\":\"$k1\",\"endpoint\":\"10.0.0.3:51820\"}")
t_eq "n1's key for n3: already_exists" "409 already_exists" "$(t_http) $(jq -r .code <<<"$out")"

# n3 has no key yet: nobody sees it; n1 sees n2 only.
p1=$(c_cm_json ListPeers '{"nodeName":"n1"}')
t_eq "n1's peers: n2 only (never self, n3 has no key)" '["n2"]' "$(jq -c '[.peers[].name]' <<<"$p1")"
t_eq "n1's peer n2: key, endpoint, allowedIps" "$k2 [fd00::2]:51820 10.100.1.0/24" \
	"$(jq -r '.peers[0] | [.publicKey, .endpoint, (.allowedIps | join(","))] | join(" ")' <<<"$p1")"
p3=$(c_cm_json ListPeers '{"nodeName":"n3"}')
t_eq "n3 (no key) sees n1 and n2" '["n1","n2"]' "$(jq -c '[.peers[].name]' <<<"$p3")"
out=$(c_cm_call ListPeers '{"nodeName":"nobody"}')
t_eq "ListPeers of an unknown node: not_found" "404 not_found" "$(t_http) $(jq -r .code <<<"$out")"

c_cm_json RegisterKey "{\"nodeName\":\"n3\",\"publicKey\":\"$k3\",\"endpoint\":\"10.0.0.3:51820\"}" >/dev/null
# A new key and endpoint replace the old ones: no stale entry anywhere.
k1b=$(c_pubkey)
c_cm_json RegisterKey "{\"nodeName\":\"n1\",\"publicKey\":\"$k1b\",\"endpoint\":\"10.0.0.11:51821\"}" >/dev/null
for n in n2 n3; do
	p=$(c_cm_json ListPeers "{\"nodeName\":\"$n\"}")
	t_eq "$n sees n1 once, with the new key and endpoint" "1 $k1b 10.0.0.11:51821" \
		"$(jq -r '[.peers[] | select(.name == "n1")] | "\(length) \(.[0].publicKey) \(.[0].endpoint)"' <<<"$p")"
	t_eq "$n's list holds no trace of the old key" 0 "$(grep -c -- "$k1" <<<"$p" || true)"
done
t_eq "ListNodes: n1 has the new key" "$k1b" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "n1") | .publicKey')"
# The old key is free again.
c_cm_json RegisterKey "{\"nodeName\":\"n3\",\"publicKey\":\"$k1\",\"endpoint\":\"10.0.0.3:51820\"}" >/dev/null
t_eq "n1's old key can be taken by n3" "$k1" \
	"$(c_cm_json ListPeers '{"nodeName":"n2"}' | jq -r '.peers[] | select(.name == "n3") | .publicKey')"

# Long poll: returns within 100 ms of a change.
c_cm_json AllocateSubnet '{"nodeName":"n4"}' >/dev/null
rev=$(c_cm_json ListPeers '{"nodeName":"n2"}' | jq -r .revision)
(
	nq cm curl -sS -m 20 -H 'Content-Type: application/json' \
		-d "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":15}" \
		"$C_CM_URL/$C_CM_SVC/ListPeers" >"$T_TMP/poll.json"
	c_now_ms >"$T_TMP/poll.done"
) &
poll=$!
t_ok "the long poll is waiting (wgcni_long_polls=1)" \
	t_wait "deferred poll" 5 c_cm_polls 1
t_ok "the long poll has not answered" test ! -e "$T_TMP/poll.done"
k4=$(c_pubkey)
# The change is made when RegisterKey is answered (committed to disk first,
# which can take a while on a busy disk); the poll must follow it closely.
t0=$(c_now_ms)
c_cm_json RegisterKey "{\"nodeName\":\"n4\",\"publicKey\":\"$k4\",\"endpoint\":\"10.0.0.4:51820\"}" >/dev/null
t1=$(c_now_ms)
wait "$poll"
t2=$(cat "$T_TMP/poll.done")
t_log "RegisterKey took $((t1 - t0)) ms; the long poll answered $((t2 - t1)) ms after it"
t_ok "long poll not answered before the change was sent" test "$t2" -ge "$t0"
t_ok "long poll answered within 100 ms of the change ($((t2 - t1)) ms)" test $((t2 - t1)) -lt 100
t_ok "the woken answer's revision moved past $rev" test "$(jq -r .revision "$T_TMP/poll.json")" -gt "$rev"
t_eq "the woken answer holds n4" "$k4" \
	"$(jq -r '.peers[] | select(.name == "n4") | .publicKey' "$T_TMP/poll.json")"

# Long poll with nothing happening: answers after waitSeconds (window).
rev=$(c_cm_json ListPeers '{"nodeName":"n2"}' | jq -r .revision)
t0=$(c_now_ms)
out=$(c_cm_json ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"$rev\",\"waitSeconds\":2}")
t1=$(c_now_ms)
t_log "idle long poll took $((t1 - t0)) ms"
t_ok "idle long poll waited at least 2 s ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 2000
t_ok "idle long poll answered within 2.5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 2500
t_eq "idle long poll: same revision" "$rev" "$(jq -r .revision <<<"$out")"
t_eq "idle long poll: full peer list" '["n1","n3","n4"]' "$(jq -c '[.peers[].name]' <<<"$out")"
# An old revision answers at once.
t0=$(c_now_ms)
c_cm_json ListPeers "{\"nodeName\":\"n2\",\"sinceRevision\":\"1\",\"waitSeconds\":10}" >/dev/null
t1=$(c_now_ms)
t_ok "an old sinceRevision answers at once ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 1000

# Several waiters, one change: each is woken once and answers.
rev=$(c_cm_json ListPeers '{"nodeName":"n2"}' | jq -r .revision)
pids=()
for n in n1 n2 n3; do
	nq cm curl -sS -m 20 -H 'Content-Type: application/json' \
		-d "{\"nodeName\":\"$n\",\"sinceRevision\":\"$rev\",\"waitSeconds\":15}" \
		"$C_CM_URL/$C_CM_SVC/ListPeers" >"$T_TMP/wait.$n.json" &
	pids+=($!)
done
t_ok "three long polls waiting" t_wait "3 deferred polls" 5 c_cm_polls 3

# DeleteNode wakes them and removes the node from every peer list.
c_cm_json DeleteNode '{"nodeName":"n4"}' >/dev/null
for p in "${pids[@]}"; do wait "$p"; done
for n in n1 n2 n3; do
	t_eq "$n woken by the delete: n4 gone" 0 \
		"$(jq '[.peers[] | select(.name == "n4")] | length' "$T_TMP/wait.$n.json")"
	t_ok "$n woken by the delete: revision moved" \
		test "$(jq -r .revision "$T_TMP/wait.$n.json")" -gt "$rev"
done
t_eq "no poll left waiting" 0 "$(c_cm_metric wgcni_long_polls)"

# A waiting poll of a node that gets deleted learns it.
rev=$(c_cm_json ListPeers '{"nodeName":"n3"}' | jq -r .revision)
nq cm curl -sS -m 20 -o "$T_TMP/del.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	-d "{\"nodeName\":\"n3\",\"sinceRevision\":\"$rev\",\"waitSeconds\":15}" \
	"$C_CM_URL/$C_CM_SVC/ListPeers" >"$T_TMP/del.code" &
poll=$!
t_wait "deferred poll" 5 c_cm_polls 1
c_cm_json DeleteNode '{"nodeName":"n3"}' >/dev/null
wait "$poll"
t_eq "the deleted node's own poll: 404 not_found" "404 not_found" \
	"$(cat "$T_TMP/del.code") $(jq -r .code "$T_TMP/del.json")"

# lastSeen moves with polls and survives a clean restart.
seen_before=$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "n2") | .lastSeen')
c_cm_stop TERM
t_eq "SIGTERM after long polls: exit 0" 0 "$C_CM_RC"
c_cm_start
t_eq "lastSeen persisted across a restart" "$seen_before" \
	"$(c_cm_json ListNodes '{}' | jq -r '.nodes[] | select(.name == "n2") | .lastSeen')"
t_eq "after restart: n1 sees n2 only (n3, n4 deleted)" '["n2"]' \
	"$(c_cm_json ListPeers '{"nodeName":"n1"}' | jq -c '[.peers[].name]')"
c_cm_stop TERM

c_leak_check
t_done

#!/bin/bash
# The plugin's front door, no node manager needed: VERSION, strict
# environment (code 4), configuration decoding (6), versions (1), unknown
# fields (2), bad values (7), the error object's shape, and that an
# unreachable node manager is code 11 naming the URL (DEL, ADD) or 50
# (STATUS). Invoked exactly as a runtime does: env + stdin.
# No cluster here: the harness gives the plugin and the leak check.
C_AUTH=none C_HOSTP=n C_CIDR=10.131.0.0/16 C_NODE_PREFIX=
. "$(dirname "$0")/../lib_cluster.sh"

c_need_plugin

t_netns_add ctr
CTR_NS=/run/netns/$(t_ns ctr)
NOSOCK="unix://$T_TMP/nothing-here.sock"

# --- VERSION
out=$(echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$PLUGIN")
t_eq "VERSION lists the supported versions" '["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]' \
	"$(jq -c .supportedVersions <<<"$out")"
t_eq "VERSION answers in the asked version" "1.0.0" "$(jq -r .cniVersion <<<"$out")"
# podman probes VERSION with dummy values in the other variables
out=$(echo '{"cniVersion":"0.4.0"}' | CNI_COMMAND=VERSION CNI_CONTAINERID=dummy \
	CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy "$PLUGIN")
t_eq "VERSION with podman's dummy environment" "0.4.0" "$(jq -r .cniVersion <<<"$out")"

# --- error helper: run, expect non-zero exit and code N on stdout
# cni_expect_code "what" CODE 'json' VAR=value...
cni_expect_code() {
	local what=$1 code=$2 conf=$3 rc=0; shift 3
	echo "$conf" | env -i PATH="$PATH" "$@" "$PLUGIN" >"$T_TMP/out" 2>"$T_TMP/err" || rc=$?
	if [ "$rc" -eq 0 ]; then
		t_eq "$what: exit status non-zero" "non-zero" "0"; return
	fi
	t_eq "$what: code $code" "$code" "$(jq -r .code "$T_TMP/out" 2>/dev/null || echo invalid-json)"
	t_ok "$what: error has cniVersion and msg" jq -e '.cniVersion != null and (.msg | length > 0)' "$T_TMP/out" >/dev/null
}
details() { jq -r .details "$T_TMP/out"; }

GOOD='{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni","nodeManager":"'"$NOSOCK"'"}'
ADDENV=(CNI_COMMAND=ADD CNI_CONTAINERID="cfg-$$" CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0)

# --- environment (4)
cni_expect_code "no CNI_COMMAND" 4 "$GOOD"
t_eq "no CNI_COMMAND: details name it" "CNI_COMMAND" "$(details)"
cni_expect_code "unknown CNI_COMMAND" 4 "$GOOD" CNI_COMMAND=FROB
cni_expect_code "ADD without CNI_CONTAINERID" 4 "$GOOD" CNI_COMMAND=ADD CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
t_eq "details name CNI_CONTAINERID" "CNI_CONTAINERID" "$(details)"
cni_expect_code "ADD without CNI_NETNS" 4 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_IFNAME=eth0
t_eq "details name CNI_NETNS" "CNI_NETNS" "$(details)"
cni_expect_code "ADD without CNI_IFNAME" 4 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS="$CTR_NS"
t_eq "details name CNI_IFNAME" "CNI_IFNAME" "$(details)"
cni_expect_code "CNI_IFNAME too long" 4 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 \
	CNI_NETNS="$CTR_NS" CNI_IFNAME=abcdefghijklmnop
cni_expect_code "CNI_IFNAME with a slash" 4 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 \
	CNI_NETNS="$CTR_NS" CNI_IFNAME=eth/0
cni_expect_code "CNI_CONTAINERID with a space" 4 "$GOOD" CNI_COMMAND=ADD "CNI_CONTAINERID=a b" \
	CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
# One rule for container IDs on both sides (pkg/names.c): an ID the node
# manager would refuse (over 256 characters) is code 4 here, before any call.
long_id=$(printf 'c%.0s' $(seq 1 300))
cni_expect_code "CNI_CONTAINERID of 300 characters" 4 "$GOOD" CNI_COMMAND=ADD \
	CNI_CONTAINERID="$long_id" CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
t_ok "details say why" grep -q "longer than 256 characters" <<<"$(details)"
ok_id=$(printf 'c%.0s' $(seq 1 256))
cni_expect_code "CNI_CONTAINERID of 256 characters passes the check (then: no node manager)" 11 \
	"$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID="$ok_id" CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
cni_expect_code "DEL without CNI_IFNAME" 4 "$GOOD" CNI_COMMAND=DEL CNI_CONTAINERID=c1

# --- decoding (6) and versions (1)
cni_expect_code "malformed JSON" 6 '{"cniVersion":"1.0.0","type":' "${ADDENV[@]}"
cni_expect_code "not an object" 6 '["cniVersion"]' "${ADDENV[@]}"
cni_expect_code "duplicate key" 6 '{"cniVersion":"1.0.0","type":"wgcni","type":"x"}' "${ADDENV[@]}"
cni_expect_code "unsupported cniVersion" 1 '{"cniVersion":"9.9.9","type":"wgcni"}' "${ADDENV[@]}"
t_ok "version error quotes it" grep -q 9.9.9 "$T_TMP/out"
cni_expect_code "no cniVersion (0.1.0)" 1 '{"type":"wgcni"}' "${ADDENV[@]}"
cni_expect_code "CHECK with 0.3.1" 1 '{"cniVersion":"0.3.1","name":"wgnet","type":"wgcni"}' \
	CNI_COMMAND=CHECK CNI_CONTAINERID=c1 CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
cni_expect_code "STATUS with 1.0.0" 1 '{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni"}' CNI_COMMAND=STATUS
cni_expect_code "GC with 0.4.0" 1 '{"cniVersion":"0.4.0","name":"wgnet","type":"wgcni"}' CNI_COMMAND=GC

# --- fields (2) and values (7)
cni_expect_code "unknown field" 2 '{"cniVersion":"1.0.0","type":"wgcni","bogusField":1}' "${ADDENV[@]}"
t_ok "unknown field named in details" grep -q bogusField "$T_TMP/out"
cni_expect_code "ipam refused" 2 '{"cniVersion":"1.0.0","type":"wgcni","ipam":{"type":"host-local"}}' "${ADDENV[@]}"
t_ok "ipam named in details" grep -q ipam "$T_TMP/out"
cni_expect_code "missing type" 7 '{"cniVersion":"1.0.0","name":"x"}' "${ADDENV[@]}"
# The spec requires name: refused up front as 7, before the node manager is
# tried (nothing listens on NOSOCK, so trying it would be code 11 or 50).
for cmd in ADD DEL CHECK; do
	cni_expect_code "$cmd, missing name" 7 '{"cniVersion":"1.0.0","type":"wgcni","nodeManager":"'"$NOSOCK"'"}' \
		CNI_COMMAND=$cmd CNI_CONTAINERID=c1 CNI_NETNS="$CTR_NS" CNI_IFNAME=eth0
	t_eq "$cmd, missing name: details name the field" "missing field \`name'" "$(details)"
done
cni_expect_code "STATUS, missing name" 7 '{"cniVersion":"1.1.0","type":"wgcni","nodeManager":"'"$NOSOCK"'"}' CNI_COMMAND=STATUS
cni_expect_code "GC, missing name" 7 '{"cniVersion":"1.1.0","type":"wgcni","nodeManager":"'"$NOSOCK"'","cni.dev/valid-attachments":[]}' CNI_COMMAND=GC
cni_expect_code "mtu not a number" 7 '{"cniVersion":"1.0.0","type":"wgcni","mtu":"1420"}' "${ADDENV[@]}"
cni_expect_code "mtu too small" 7 '{"cniVersion":"1.0.0","type":"wgcni","mtu":100}' "${ADDENV[@]}"
cni_expect_code "bad backend" 7 '{"cniVersion":"1.0.0","type":"wgcni","backend":"fast"}' "${ADDENV[@]}"
t_ok "bad backend quoted" grep -q fast "$T_TMP/out"
cni_expect_code "bad nodeManager" 7 '{"cniVersion":"1.0.0","type":"wgcni","nodeManager":"ftp://x"}' "${ADDENV[@]}"
cni_expect_code "https nodeManager (the node manager serves no TLS)" 7 '{"cniVersion":"1.0.0","type":"wgcni","nodeManager":"https://127.0.0.1:9"}' "${ADDENV[@]}"
cni_expect_code "empty userspaceImplementation" 7 '{"cniVersion":"1.0.0","type":"wgcni","userspaceImplementation":""}' "${ADDENV[@]}"
cni_expect_code "bad network name" 7 '{"cniVersion":"1.0.0","type":"wgcni","name":"-bad name"}' "${ADDENV[@]}"
cni_expect_code "prevResult not an object" 7 '{"cniVersion":"1.0.0","type":"wgcni","prevResult":[]}' "${ADDENV[@]}"
cni_expect_code "bad valid-attachments" 7 '{"cniVersion":"1.1.0","type":"wgcni","cni.dev/valid-attachments":[{"containerID":1}]}' CNI_COMMAND=GC
cni_expect_code "GC without valid-attachments" 7 '{"cniVersion":"1.1.0","name":"wgnet","type":"wgcni","nodeManager":"'"$NOSOCK"'"}' CNI_COMMAND=GC

# --- reserved fields pass; the unreachable node manager is then the error
RES='{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni","nodeManager":"'"$NOSOCK"'",
 "mtu":1400,"backend":"userspace","userspaceImplementation":"wireguard-go",
 "runtimeConfig":{"portMappings":[]},"args":{"labels":{"a":"b"}},"capabilities":{"portMappings":true},
 "dns":{"nameservers":["10.0.0.1"]},"cni.dev/whatever":1,
 "prevResult":{"cniVersion":"1.0.0","interfaces":[],"ips":[]}}'
cni_expect_code "DEL, reserved fields accepted, node manager down" 11 "$RES" \
	CNI_COMMAND=DEL CNI_CONTAINERID="cfg-$$" CNI_IFNAME=eth0 CNI_NETNS=
t_eq "unreachable: msg" "node manager unreachable" "$(jq -r .msg "$T_TMP/out")"
t_eq "unreachable: details = URL" "$NOSOCK" "$(details)"
t_ok "diagnostics went to stderr" test -s "$T_TMP/err"
cni_expect_code "ADD, node manager down" 11 "$GOOD" "${ADDENV[@]}"
t_eq "ADD unreachable: details = URL" "$NOSOCK" "$(details)"
t_fail "ADD left no interface in the container" nq ctr ip link show eth0
cni_expect_code "ADD over http, nothing listening" 11 \
	'{"cniVersion":"1.0.0","name":"wgnet","type":"wgcni","nodeManager":"http://127.0.0.1:9"}' \
	ip netns exec "$(t_ns ctr)" env "${ADDENV[@]}"
cni_expect_code "STATUS, node manager down" 50 \
	'{"cniVersion":"1.1.0","name":"wgnet","type":"wgcni","nodeManager":"'"$NOSOCK"'"}' CNI_COMMAND=STATUS
cni_expect_code "ADD, netns path missing" 3 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 \
	CNI_NETNS="/run/netns/$T_ID-nonexistent" CNI_IFNAME=eth0

touch "$T_TMP/not-a-netns"
cni_expect_code "ADD, CNI_NETNS not a namespace" 4 "$GOOD" CNI_COMMAND=ADD CNI_CONTAINERID=c1 \
	CNI_NETNS="$T_TMP/not-a-netns" CNI_IFNAME=eth0

# --- stdout is for JSON only, and closes when the plugin exits
echo "$GOOD" | CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 WGCNI_LOG_LEVEL=debug \
	"$PLUGIN" >"$T_TMP/out" 2>/dev/null || true
t_ok "stdout holds exactly one JSON document" jq -e -s 'length == 1' "$T_TMP/out" >/dev/null
t_eq "--version" "wgcni" "$("$PLUGIN" --version | cut -d' ' -f1)"

c_leak_check
t_done

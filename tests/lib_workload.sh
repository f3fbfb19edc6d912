# What runs on a tests/lib_cluster.sh cluster: containers attached through
# libcni (cnidriver) or the plugin run directly, attachments made through the
# node manager's API, wgcnictl, and traffic measurements. Sourced by
# lib_cluster.sh (the cluster itself: underlay, daemons, leak check), never
# on its own.

# --- containers through libcni (cnidriver) ------------------------------------

# c_conflist NODE: node NODE's network configuration list (made once, and
# atomically: parallel ADDs may be the first to ask). C_CNI_CONF_EXTRA:
# more members of the plugin's object (e.g. '"containerMesh": true').
c_conflist() {
	local f t; f=$(c_dir "$1")/wgnet.conflist; t=$f.$BASHPID
	[ -e "$f" ] || { cat >"$t" <<EOF
{ "cniVersion": "1.0.0", "name": "wgnet",
  "plugins": [ { "type": "wgcni", "nodeManager": "unix://$(c_sock "$1")",
                 "backend": "$C_BACKEND", "userspaceImplementation": "$C_IMPL"${C_CNI_CONF_EXTRA:+, $C_CNI_CONF_EXTRA} } ] }
EOF
		mv -f "$t" "$f"; }
	echo "$f"
}

# c_cni VERB NODE NAME: libcni on node NODE, as a runtime on that host would.
c_cni() {
	local verb=$1 i=$2 c=$3
	nq "$(c_host "$i")" env CNI_PATH="$C_BINDIR" CNI_CACHE_DIR="$T_TMP/cnicache" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$c" \
		"$C_DRIVER" "$verb" "$(c_conflist "$i")" "${C_ID[$c]}" "/run/netns/$(t_ns "$c")" eth0 \
		2>>"$T_TMP/cni.log"
}

# c_cni_net VERB NODE [ARGS...]: network-wide verbs (gc, status, version).
c_cni_net() {
	local verb=$1 i=$2; shift 2
	nq "$(c_host "$i")" env CNI_PATH="$C_BINDIR" "$C_DRIVER" "$verb" "$(c_conflist "$i")" "$@" 2>>"$T_TMP/cni.log"
}

# c_ctr_add NODE NAME: create the namespace, ADD through libcni, remember the
# address. Fails (non-zero) if ADD fails or returns no address.
c_ctr_new() {
	local i=$1 c=$2
	t_netns_add "$c"
	C_ID[$c]=$(printf '%s' "$T_ID-$c" | sha256sum | cut -c1-64)
	C_NODE[$c]=$i
}
c_ctr_attach() {
	local i=$1 c=$2 out
	out=$(c_cni add "$i" "$c") || return 1
	echo "$out" >"$T_TMP/result-$c.json"
	C_ADDR[$c]=$(jq -r '[.ips[].address | select(contains("."))][0]' <<<"$out" | cut -d/ -f1)
	C_ADDR6[$c]=$(jq -r '[.ips[].address | select(contains(":"))][0] // empty' <<<"$out" | cut -d/ -f1)
	[ -n "${C_ADDR[$c]}" ] && [ "${C_ADDR[$c]}" != null ] || return 1
	C_CTRS+=("$c")
}
c_ctr_add() {
	c_ctr_new "$1" "$2"
	pretty "$(c_host "$1")" "cnidriver add $2"
	c_ctr_attach "$1" "$2" || { t_log "ADD of $2 on node $1 failed: $(tail -n 1 "$T_TMP/cni.log")"; return 1; }
	c_scan_wg
}

c_ctr_del() {
	local c=$1 k out=()
	pretty "$(c_host "${C_NODE[$c]}")" "cnidriver del $c"
	c_cni del "${C_NODE[$c]}" "$c" || return 1
	for k in "${C_CTRS[@]}"; do [ "$k" = "$c" ] || out+=("$k"); done
	C_CTRS=("${out[@]}")
}

# --- the plugin run directly, as a runtime runs it ------------------------------
#
#   c_plugin_conf NODE [VERSION] [EXTRA_JSON_MEMBERS]   network configuration
#   c_plugin CMD NODE CTR [IFNAME] [VERSION] [EXTRA]     run it; its stdout
#   c_allocs NODE / c_has_alloc NODE CTR [IFNAME]       allocations
#   c_tmpname CTR [IFNAME]          the plugin's temporary device name
#   c_no_leftovers NODE CTR [IFNAME] no interface, allocation, temporary
#                                   device, socket or process left for that
#                                   container (C_IFNAME_TAKEN=1: IFNAME is
#                                   someone else's and stays)
# The container ID is ctr-$$-CTR. C_CONF_IMPL overrides
# userspaceImplementation; C_NETNS_OVERRIDE (set, even empty) CNI_NETNS.

c_plugin_conf() {
	local h=$1 v=${2:-1.0.0} extra=${3:-}
	printf '{"cniVersion":"%s","name":"wgnet","type":"wgcni","nodeManager":"unix://%s","userspaceImplementation":"%s"%s}\n' \
		"$v" "$(c_sock "$h")" "${C_CONF_IMPL:-$C_IMPL}" "${extra:+,$extra}"
}

# The plugin's stderr goes to $T_TMP/plugin.err. The exit status is the plugin's.
c_plugin() {
	local cmd=$1 h=$2 c=$3 ifname=${4:-eth0} v=${5:-1.0.0} extra=${6:-}
	local netns=/run/netns/$(t_ns "$c") hns; hns=$(t_ns "$(c_host "$h")")
	[ -n "${C_NETNS_OVERRIDE+x}" ] && netns=$C_NETNS_OVERRIDE
	pretty "$hns" "CNI_COMMAND=$cmd CNI_CONTAINERID=ctr-$$-$c CNI_NETNS=$netns CNI_IFNAME=$ifname wgcni" >&2
	c_plugin_conf "$h" "$v" "$extra" | ip netns exec "$hns" env -i PATH="$PATH" \
		CNI_COMMAND="$cmd" CNI_CONTAINERID="ctr-$$-$c" CNI_NETNS="$netns" \
		CNI_IFNAME="$ifname" CNI_PATH="$C_BINDIR" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$c" \
		"$C_PLUGIN" 2>"$T_TMP/plugin.err" || { local rc=$?; cat "$T_TMP/plugin.err" >&2; return $rc; }
}

c_allocs() { c_nm_rpc "$1" ListAllocations | jq '.allocations // [] | length'; }
c_has_alloc() {
	local id="ctr-$$-$2" ifname=${3:-eth0}
	c_nm_rpc "$1" ListAllocations | jq -e --arg id "$id" --arg i "$ifname" \
		'[.allocations // [] | .[] | select(.containerId == $id and .ifname == $i)] | length == 1' >/dev/null
}

# BLAKE2b-128 of "containerID\0ifname", first 12 hex digits (cni/util.c).
c_tmpname() {
	local id="ctr-$$-$1" ifname=${2:-eth0}
	echo "wgc$(printf '%s\0%s' "$id" "$ifname" | b2sum -l 128 | cut -c1-12)"
}

c_no_leftovers() {
	local h=$1 c=$2 ifname=${3:-eth0} tmp
	tmp=$(c_tmpname "$c" "$ifname")
	t_fail "$c: no WireGuard or TUN link in the container" \
		sh -c "ip -n $(t_ns "$c") -d -o link show 2>/dev/null | grep -Eq 'tun type tun|wireguard'"
	if [ -z "${C_IFNAME_TAKEN:-}" ]; then
		t_fail "$c: no $ifname in the container" nq "$c" ip link show "$ifname"
	fi
	t_fail "$c: no allocation on $h" c_has_alloc "$h" "$c" "$ifname"
	t_fail "$c: no temporary device on $h" nq "$(c_host "$h")" ip link show "$tmp"
	t_wait "$c: UAPI socket gone" 5 test ! -e "/var/run/wireguard/$tmp.sock" || true
	t_fail "$c: no UAPI socket $tmp.sock" test -e "/var/run/wireguard/$tmp.sock"
	# "[w]gc..." so pgrep and the polling shell never match themselves
	t_wait "$c: process gone" 5 sh -c "! pgrep -f -- '[w]${tmp#w}'" || true
	t_fail "$c: no process for $tmp" pgrep -f -- "[w]${tmp#w}"
}

# --- attachments through the node manager's API, and wgcnictl --------------------

# c_api_attach I ID IFNAME: an attachment on node I with a fresh key pair
# (AllocateIP + RegisterKey, no plugin); prints the public key.
c_api_attach() {
	local i=$1 id=$2 ifn=$3 priv pub
	priv=$(wg genkey)
	pub=$(wg pubkey <<<"$priv")
	c_nm_rpc "$i" AllocateIP \
		"{\"containerId\":\"$id\",\"ifname\":\"$ifn\",\"netns\":\"/run/netns/$T_ID-$id\"}" >/dev/null
	c_nm_rpc "$i" RegisterKey \
		"{\"containerId\":\"$id\",\"ifname\":\"$ifn\",\"publicKey\":\"$pub\",\"endpoint\":\"127.0.0.1:$((40000 + RANDOM % 20000))\"}" >/dev/null
	echo "$pub"
}

# c_ctl ARGS: wgcnictl against this cluster, run inside node 1's namespace;
# c_ctl_nm I ARGS: against node I's node manager.
c_ctl() {
	local a=(--cluster-manager "$C_CM_URL")
	[ "$C_AUTH" != token ] || a+=(--token-file "$C_TOKEN")
	[ "$C_TLS" != 1 ] || a+=(--ca-file "$C_TLS_CA")
	nq "$(c_host 1)" "$C_CTL" "${a[@]}" "$@"
}
c_ctl_nm() { local i=$1; shift; "$C_CTL" --node-manager "unix://$(c_sock "$i")" "$@"; }

# --- measurements ---------------------------------------------------------------

# c_ping SRC_CONTAINER ADDR: two echo replies within 12 s. Normally that
# takes 0.2 s; the bound leaves room for one WireGuard handshake retry
# (REKEY_TIMEOUT is 5 s), seen on first contact when both ends of a fresh
# node pair initiate at once. c_ping_all reports pairs slower than 3 s.
c_ping() { nq "$1" ping -n -q -c 2 -i 0.2 -w 12 "$2" >/dev/null 2>&1; }

# c_ping_all SRCS... -- DSTADDRS...: every source to every address but its
# own, each source's pings in parallel with the others. Prints one line per
# failed pair, "ok N" at the end when none failed.
c_ping_all() {
	local srcs=() dsts=() s d total=0 pids=() t0 ms
	while [ "$1" != -- ]; do srcs+=("$1"); shift; done
	shift
	dsts=("$@")
	rm -f "$T_TMP"/pingall.*
	for s in "${srcs[@]}"; do
		(
			for d in "${dsts[@]}"; do
				[ "$d" = "${C_ADDR[$s]}" ] && continue
				t0=$(date +%s%N)
				if c_ping "$s" "$d"; then echo ok; else echo "FAIL $s -> $d"; fi
				ms=$(c_ms_since "$t0")
				[ "$ms" -le 3000 ] || t_log "slow: $s -> $d took $ms ms"
			done >"$T_TMP/pingall.$s"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	total=$(cat "$T_TMP"/pingall.* | grep -c '^ok' || true)
	cat "$T_TMP"/pingall.* | grep '^FAIL' || echo "ok $total"
}

# c_ping_bg TAG SRC ADDR: a continuous ping (10/s) in the background;
# c_ping_bg_stop TAG stops it (SIGINT: ping prints its summary) and prints
# "TRANSMITTED RECEIVED".
c_ping_bg() {
	# first contact (handshakes) before the clock starts
	c_ping "$2" "$3" || t_log "warm-up ping $2 -> $3 failed"
	# ip netns exec execs ping: $! is ping itself, so SIGINT reaches it
	ip netns exec "$(t_ns "$2")" ping -n -i 0.1 "$3" >"$T_TMP/bgping.$1" 2>&1 &
	local pid=$!
	T_PIDS+=("$pid")
	printf -v "C_BGPING_$1" '%s' "$pid"
	t_wait "ping $2 -> $3 answering" 10 grep -q 'bytes from' "$T_TMP/bgping.$1"
}
c_ping_bg_stop() {
	local v=C_BGPING_$1
	kill -INT "${!v}" 2>/dev/null || true
	# call from the main shell: a $(subshell) cannot wait for our children
	wait "${!v}" 2>/dev/null || true
	sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$T_TMP/bgping.$1"
}
# c_ping_bg_seqs TAG: the icmp_seq numbers answered so far, each once, in
# order; c_ping_bg_last TAG: the highest (0: none; the first request is 1).
c_ping_bg_seqs() { grep -o 'icmp_seq=[0-9]*' "$T_TMP/bgping.$1" | cut -d= -f2 | sort -un; }
c_ping_bg_last() { c_ping_bg_seqs "$1" | tail -n 1 | grep . || echo 0; }
c_ping_bg_past() { [ "$(c_ping_bg_last "$1")" -ge "$2" ]; }
# c_ping_bg_ok TAG MAXLOST: stop it and judge it. Requests still in flight
# when it is stopped are not losses: count the sequence numbers missing
# below the last one answered, and require that answers kept coming until
# the end (the last answered is among the last 5 sent). Before the stop,
# 5 more answers than there are now (10 s at most): what was tested may
# have taken less time than 5 requests, and the path must still carry
# traffic after it; without them the judgment below fails.
c_ping_bg_ok() {
	local tx rx last lost
	t_wait "ping $1: 5 more answers" 10 c_ping_bg_past "$1" $(( $(c_ping_bg_last "$1") + 5 )) || true
	c_ping_bg_stop "$1" >"$T_TMP/bgping.$1.sum"
	read -r tx _ <"$T_TMP/bgping.$1.sum"
	rx=$(c_ping_bg_seqs "$1" | grep -c . || true)
	last=$(c_ping_bg_last "$1")
	lost=$((last - rx))
	t_log "background ping $1: ${tx:-?} sent, $rx answered, last answered #$last, $lost lost before it"
	[ -n "$tx" ] || tail -n 5 "$T_TMP/bgping.$1" | sed 's/^/#   ping: /' >&2
	[ -n "$tx" ] && [ "$tx" -ge 5 ] && [ "$last" -gt 0 ] && [ "$last" -ge $((tx - 5)) ] &&
		[ "$lost" -le "$2" ]
}

# c_peer_stats I: "KEY RX TX HANDSHAKE" for every peer of node I's interface.
c_peer_stats() {
	local ifn; ifn=$(c_ifname "$1")
	join <(c_wg "$1" show "$ifn" transfer | sort) \
		<(c_wg "$1" show "$ifn" latest-handshakes | sort)
}
# c_stats_kept BEFORE AFTER: every peer in BEFORE is still in AFTER with
# counters that did not go back and a handshake that was not reset (a peer
# removed and re-added starts from zero).
c_stats_kept() {
	local key rx tx hs rx2 tx2 hs2 bad=0
	while read -r key rx tx hs; do
		read -r _ rx2 tx2 hs2 <<<"$(grep "^$key " <<<"$2")"
		if [ -z "$rx2" ] || [ "$rx2" -lt "$rx" ] || [ "$tx2" -lt "$tx" ] ||
			[ "$hs2" -lt "$hs" ] || { [ "$hs" != 0 ] && [ "$hs2" = 0 ]; }; then
			t_log "peer $key: before rx=$rx tx=$tx hs=$hs, after rx=${rx2:-gone} tx=$tx2 hs=$hs2"
			bad=1
		fi
	done <<<"$1"
	[ "$bad" = 0 ]
}
# c_ms_since T0_NS
c_ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# c_run NAME cmd...: stdout, stderr and exit status into $T_TMP/NAME.{out,err,rc}
# (a command expected to fail does not stop the test); c_rc, c_out, c_err
# NAME read them back.
c_run() {
	local name=$1; shift
	"$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" && echo 0 >"$T_TMP/$name.rc" ||
		echo $? >"$T_TMP/$name.rc"
}
c_rc() { cat "$T_TMP/$1.rc"; }
c_out() { cat "$T_TMP/$1.out"; }
c_err() { cat "$T_TMP/$1.err"; }

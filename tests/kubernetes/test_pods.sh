#!/bin/bash
# The image `make image` builds, run under podman exactly as Kubernetes
# would run the pods of kubernetes/ (the default, SQLite variant): every
# podman command line is generated from the rendered manifests
# (k8s.mjs pod: the same command, args, environment with the downward API
# and service links, capabilities, read-only root, host paths and Secret /
# ConfigMap volumes laid out as the kubelet does). A test node is a
# network namespace on an underlay (tests/lib_cluster.sh) with its own
# directory as its host file system; the pods use its network (hostNetwork).
#
#   cluster manager pod (Deployment) on host cm
#   node 1, node 2: the DaemonSet's pod, init container first (installs the
#   plugin and the conflist into the node's /opt/cni/bin, /etc/cni/net.d),
#   then the node manager
#   a busybox container on each node, attached by podman's CNI backend with
#   the installed plugin and conflist: node 1's pings node 2's
#   kubernetes/uninstall's pod on each node (after the node managers are
#   gone): cleanup, then the plugin's files; nothing is left.
# It also lists the image's files and checks each shared library in it is
# one the running daemons have mapped.
. "$(dirname "$0")/../lib_cluster.sh"
. "$(dirname "$0")/lib_k8s.sh"

k_setup
k_render ""
DEFAULT=$K_OUT
k_render uninstall
{ cat "$K_OUT"; echo ---; cat "$DEFAULT"; } >"$T_TMP/uninstall-and-config.yaml" # the ConfigMaps are still there

c_hosts 2

k_podman

# --- the image, as make image builds it
k_image
t_ok "make image's script built $K_IMAGE" pod image exists "$K_IMAGE"
pod create --name "$NAME-files" "$K_IMAGE" /bin/busybox true >/dev/null
pod export "$NAME-files" | tar -t | sed 's|^\./||; s|/$||; /^$/d; s|^|/|' | LC_ALL=C sort >"$T_TMP/image-files.txt"
pod rm "$NAME-files" >/dev/null
t_eq "the image holds exactly the files of rootfs.sh's list" "" \
	"$(comm -3 "$T_TMP/image/files.txt" "$T_TMP/image-files.txt" | xargs)"
t_log "the image's files:"; sed 's/^/#   /' "$T_TMP/image-files.txt" >&2
# nothing but the programs, their libraries and the install scripts
t_eq "the image holds no file but programs, libraries, install scripts and empty directories" "" \
	"$(cd "$T_TMP/image/rootfs" && find . -type f -o -type l | sed 's|^\.||' |
		grep -v -E '^/usr/local/bin/(wgcni-cluster-manager|wgcni-node-manager|wgcnictl|wireguard-go)$|^/bin/busybox$|^/(usr/)?lib(64)?/[^/]+(/[^/]+)?\.so[.0-9]*$|^/(usr/)?lib(64)?/x86_64-linux-gnu/[^/]+\.so[.0-9]*$|^/usr/local/lib/wgcni/(install|uninstall)-cni\.sh$|^/usr/local/lib/wgcni/cni/wgcni(-bundle/[^/]+)?$|^/var/run$' | xargs)"

# --- pods from the manifests
# every test node is a Kubernetes node: kubeadm insists on IP forwarding
for h in h1 h2; do n "$h" sysctl -qw net.ipv4.ip_forward=1; done

# the cluster manager
k_pod cm Deployment/wgcni-cluster-manager cm "$C_CM_ADDR"
t_eq "the cluster manager pod has no init container" 0 "$(jq '.init | length' "$T_TMP/pod-cm.json")"
t_ok "cluster manager pod started" k_run cm main
cm_pod_ready() { k_probe cm cluster-manager readiness "$C_CM_ADDR"; }
t_ok "cluster manager: readiness probe /healthz passes" t_wait "cluster manager ready" 20 cm_pod_ready
t_ok "cluster manager: liveness probe /healthz passes" k_probe cm cluster-manager liveness "$C_CM_ADDR"
echo "$K_TOKEN" >"$C_TOKEN"; chmod 600 "$C_TOKEN"
t_eq "cluster manager: the API wants the Secret's token" 401 \
	"$(nq cm curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{}' "$C_CM_URL/$C_CM_SVC/ListNodes")"
t_ok "cluster manager: its state is on the PVC" t_wait "cluster.db on the PVC" 10 \
	test -e "$T_TMP/cm/files/pvc-wgcni-cluster-manager/cluster/cluster.db"

# the node managers: the DaemonSet's pod on each node
for i in 1 2; do
	k_pod "h$i" DaemonSet/wgcni-node-manager "$(c_name "$i")" "$C_UL.$((10 + i))"
	t_ok "node $i: init container installed the CNI plugin" k_run "h$i" init
	hr=$T_TMP/h$i/host
	t_ok "node $i: /opt/cni/bin/wgcni and wgcni-bundle/ installed" test -x "$hr/opt/cni/bin/wgcni" -a -x "$hr/opt/cni/bin/wgcni-bundle/wgcni"
	t_eq "node $i: the conflist installed is the ConfigMap's" \
		"$(cat "$T_TMP/h$i/files/$NAME-h$i-cni-conflist/..data/10-wgcni.conflist")" \
		"$(cat "$hr/etc/cni/net.d/10-wgcni.conflist" 2>/dev/null)"
	t_eq "node $i: nothing else in the host's CNI directories" "10-wgcni.conflist wgcni wgcni-bundle" \
		"$(find "$hr/etc/cni/net.d" "$hr/opt/cni/bin" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | xargs)"
	t_ok "node $i: node manager pod started" k_run "h$i" main
done
for i in 1 2; do
	t_ok "node $i: startup, readiness and liveness probes pass" \
		t_wait "node $i probes" 30 probes_pass "h$i" node-manager "$C_UL.$((10 + i))"
done
nm_sock() { echo "$T_TMP/h$1/host/run/wgcni/node-manager.sock"; }
nm_rpc() { curl -sf -m 10 --unix-socket "$(nm_sock "$1")" -H 'Content-Type: application/json' \
	-d "${3:-"{}"}" "http://localhost/wgcni.node.v1.NodeService/$2"; }
for i in 1 2; do
	node=$(nm_rpc "$i" GetNode)
	t_eq "node $i: name from spec.nodeName, endpoint from status.hostIP" \
		"$(c_name "$i") $C_UL.$((10 + i)):51820 wgcni0" \
		"$(jq -r '.node | "\(.name) \(.endpoint) \(.interface)"' <<<"$node")"
	t_eq "node $i: uses the cluster manager of the Service's links" "http://$C_CM_ADDR:8080" \
		"$(jq -r '.node.clusterManagers | join(",")' <<<"$node")"
done
# The scrape address of the pod annotations (prometheus.io/port): the
# node's metrics, and no API.
scrape() { nq h1 curl -sS -m 5 -o "$T_TMP/scrape.out" -w '%{http_code}' "$@"; }
port=$(k_json "$DEFAULT" | jq -r '.[] | select(.kind == "DaemonSet")
	| .spec.template.metadata.annotations["prometheus.io/port"]')
t_eq "node 1: the annotated scrape port serves /metrics" 200 "$(scrape "http://$C_UL.11:$port/metrics")"
t_ok "  with the node's series" grep -q '^wgcni_peers{kind="node"}' "$T_TMP/scrape.out"
t_eq "  and no node API there" 404 "$(scrape -H 'Content-Type: application/json' -d '{}' \
	"http://$C_UL.11:$port/wgcni.node.v1.NodeService/ListAllocations")"
for i in 1 2; do
	t_ok "node $i: firewall chains made through libiptc (NET_ADMIN + NET_RAW suffice)" \
		c_match "$(c_fw_rules "h$i" | xargs)" 'WGCNI-FORWARD.*WGCNI-POSTROUTING'
done
# README: kubectl -n wgcni exec ds/wgcni-node-manager -- wgcnictl status
pod exec "$NAME-h1-node-manager" wgcnictl status >"$T_TMP/status.out" 2>&1 && st=0 || st=$?
t_eq "wgcnictl status in the node manager's container succeeds" 0 "$st"
t_ok "wgcnictl status there shows node 1 and its cluster manager" \
	c_match "$(cat "$T_TMP/status.out")" "$(c_name 1).*$C_CM_ADDR:8080|$C_CM_ADDR:8080.*$(c_name 1)"
t_eq "the cluster manager has both nodes" "$(c_name 1) $(c_name 2)" \
	"$(c_cm_rpc ListNodes '{}' | jq -r '[.nodes[].name] | sort | join(" ")')"

# --- workloads: podman, the node's runtime, with the plugin the init container installed
k_workload_image
for i in 1 2; do t_ok "node $i: podman runs a container on wgnet" k_w_up "$i"; done
a2=$(k_w_addr 2)
t_eq "node 1 and 2: one allocation each" "1 1" \
	"$(nm_rpc 1 ListAllocations | jq '.allocations | length') $(nm_rpc 2 ListAllocations | jq '.allocations | length')"
t_ok "the container on node 1 pings the container on node 2 ($a2)" \
	pod_on 1 exec "$NAME-w1" ping -c 3 -W 3 -q "$a2" >/dev/null
# the plugin's wireguard-go (the installed one) serves the container's
# interface; the preshared key from the Secret is on its peering
t_eq "node 1: the container's interface is the installed wireguard-go's" 1 "$(k_plugin_wg 1 | grep -c .)"
k_plugin_wg 2 >/dev/null
ifname=$(tr '\0' '\n' <"/proc/$(k_plugin_wg 1 | head -1)/cmdline" | tail -1)
t_ok "node 1: the container's peering has a preshared key" \
	c_match "$(wg show "$ifname" preshared-keys 2>/dev/null | awk '{print $2}')" '^[A-Za-z0-9+/]{43}=$'

# --- the image's libraries are the ones the daemons load
maps() { local c; for c in "$@"; do
	p=$(pod inspect --format '{{.State.Pid}}' "$c")
	cat "/proc/$p/maps"
	for q in $(pgrep -P "$p"); do cat "/proc/$q/maps"; done; done; }
maps "$NAME-cm-cluster-manager" "$NAME-h1-node-manager" | awk '$6 ~ /\.so/ {print $6}' | sort -u >"$T_TMP/mapped.txt"
t_eq "every library in the image is one a daemon has mapped (or wireguard-go)" "" \
	"$(grep -E '^/(usr/)?lib(64)?/.*\.so' "$T_TMP/image-files.txt" | grep -vxF -f "$T_TMP/mapped.txt" | xargs)"

# --- a node manager container restarting (a crash, a rolling update)
# The kernel backend's interface outlives the container; wireguard-go, the
# userspace backend, dies with it (it is a process of the pod), and the
# node manager makes the interface anew, with every peer, when it is back.
backend=$(nm_rpc 1 GetNode | jq -r .node.backend)
t_ok "node 1: node manager restarts" pod restart -t 10 "$NAME-h1-node-manager"
t_ok "node 1: probes pass again" t_wait "node 1 probes" 30 probes_pass h1 node-manager "$C_UL.11"
t_eq "node 1: the container's allocation survived the restart" 1 "$(nm_rpc 1 ListAllocations | jq '.allocations | length')"
t_ok "after the restart ($backend backend), node 1's container pings node 2's again" \
	t_wait "ping after restart" 20 pod_on 1 exec "$NAME-w1" ping -c 1 -W 1 "$a2"

# --- removal: workloads, then as README "On Kubernetes" says
for i in 1 2; do t_ok "node $i: podman stop (DEL)" pod_on "$i" stop -t 1 "$NAME-w$i"; done
t_eq "no allocation left on either node" "0 0" \
	"$(nm_rpc 1 ListAllocations | jq '.allocations // [] | length') $(nm_rpc 2 ListAllocations | jq '.allocations // [] | length')"
for i in 1 2; do pod_on "$i" rm "$NAME-w$i" >/dev/null; done
# kubectl -n wgcni delete daemonset wgcni-node-manager
for i in 1 2; do
	t_ok "node $i: node manager stops on SIGTERM" pod stop -t 10 "$NAME-h$i-node-manager"
	t_eq "node $i: node manager exited 0" 0 "$(pod inspect --format '{{.State.ExitCode}}' "$NAME-h$i-node-manager")"
	t_ok "node $i: its firewall chains stay until cleanup" c_match "$(c_fw_rules "h$i" | xargs)" WGCNI-FORWARD
	pod rm "$NAME-h$i-node-manager" >/dev/null
done
# kubectl apply -k kubernetes/uninstall
for i in 1 2; do
	k_pod "h$i" DaemonSet/wgcni-uninstall "$(c_name "$i")" "$C_UL.$((10 + i))" "$T_TMP/uninstall-and-config.yaml"
	t_ok "node $i: the uninstall pod's init containers ran" k_run "h$i" init
	t_ok "node $i: the uninstall pod runs" k_run "h$i" main
	hr=$T_TMP/h$i/host
	t_eq "node $i: no wgcni link left" "" "$(nq "h$i" ip -o link show | awk -F': ' '{print $2}' | grep -x wgcni0)"
	# (cni.lock is podman's, the runtime's, not ours)
	t_eq "node $i: plugin, conflist and state gone" "" \
		"$(find "$hr/opt/cni/bin" "$hr/etc/cni/net.d" "$hr/var/lib/wgcni" -mindepth 1 -maxdepth 1 ! -name cni.lock -printf '%f\n' | xargs)"
	t_eq "node $i: the node interface's UAPI socket is gone" "" "$(ls -A "$hr/run/wireguard")"
	pod rm -f -t 0 "$NAME-h$i-done" >/dev/null
done
t_ok "cluster manager stops on SIGTERM" pod stop -t 10 "$NAME-cm-cluster-manager"
t_eq "cluster manager exited 0" 0 "$(pod inspect --format '{{.State.ExitCode}}' "$NAME-cm-cluster-manager")"
pod rm "$NAME-cm-cluster-manager" >/dev/null
c_leak_check
t_done

#!/bin/bash
# podman 4.3 with its CNI backend as a real runtime: a busybox container on a
# `wgcni` network, run inside node 1 of a 2-node test cluster, pings a
# container attached on node 2; `podman stop` makes podman run DEL and
# nothing is left behind (interface, allocation, peer, UAPI socket).
# podman is configured through CONTAINERS_CONF and per-call storage flags so
# nothing under /etc or /var/lib/containers is touched.
. "$(dirname "$0")/../lib_cluster.sh"

for tool in podman runc busybox; do
	command -v "$tool" >/dev/null || { t_log "missing $tool (make deps)"; exit 1; }
done

c_cluster 2
c_ctr_add 2 c2a
target=${C_ADDR[c2a]}

# --- podman: private config, storage, CNI directories
P=$T_TMP/podman
mkdir -p "$P/cni-bin" "$P/net.d" "$P/root" "$P/runroot" "$P/rootfs/bin"
ln -s "$T_BIN/wgcni" "$P/cni-bin/wgcni"
cat >"$P/net.d/wgnet.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "wgnet",
  "plugins": [ { "type": "wgcni", "nodeManager": "unix://$(c_sock 1)",
                 "backend": "$C_BACKEND" } ] }
EOF
cat >"$P/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$P/cni-bin"]
network_config_dir = "$P/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
runtime = "runc"
EOF
export CONTAINERS_CONF=$P/containers.conf
pod() {
	nsenter --net="/run/netns/$(t_ns h1)" podman --root "$P/root" --runroot "$P/runroot" \
		--storage-driver vfs "$@"
}
t_on_cleanup "pod rm -f -t 0 wgt-$$ >/dev/null 2>&1; pod rmi -f localhost/wgcni-bb:$$ >/dev/null 2>&1; rm -rf $P/root 2>/dev/null"

# a busybox image without a registry
cp "$(command -v busybox)" "$P/rootfs/bin/busybox"
for app in sh ping sleep ip cat; do ln -s busybox "$P/rootfs/bin/$app"; done
tar -C "$P/rootfs" -cf "$P/rootfs.tar" .
pp pod import "$P/rootfs.tar" "localhost/wgcni-bb:$$" >/dev/null

allocs() { c_nm_rpc 1 ListAllocations '{}' | jq '.allocations // [] | length'; }
t_eq "no allocation on node 1 before podman run" 0 "$(allocs)"

pp pod run -d --name "wgt-$$" --network wgnet "localhost/wgcni-bb:$$" sleep 600 >/dev/null
t_eq "podman's container has one allocation on node 1" 1 "$(allocs)"
addr=$(pod exec "wgt-$$" ip -4 -o addr show dev eth0 | awk '{print $4}')
t_ok "podman container has a /32 on eth0 ($addr)" test "${addr#*/}" = 32
t_ok "podman container (node 1) pings container c2a on node 2 ($target)" \
	pod exec "wgt-$$" ping -c 2 -W 2 "$target"
t_ok "podman container pings its node's interface address" \
	pod exec "wgt-$$" ping -c 1 -W 2 "$(c_node_addr 1)"
t_eq "node 1 has the container as a peer" 1 "$(c_container_peers 1 | wc -l)"

pp pod stop -t 1 "wgt-$$" >/dev/null
t_eq "podman stop released the allocation (DEL ran)" 0 "$(allocs)"
t_eq "podman stop removed the container peer" 0 "$(c_container_peers 1 | wc -l)"
pp pod rm "wgt-$$" >/dev/null

c_leak_check
t_done

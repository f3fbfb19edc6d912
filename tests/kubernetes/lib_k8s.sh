# shellcheck shell=bash
# What the kubernetes tests share (source after tests/lib.sh or
# tests/lib_cluster.sh): the npm packages of tests/kubernetes (installed
# from its package-lock.json on first use, with k8s.mjs, into
# $BUILDDIR/kubernetes-tests: not under tests/, which the kernel VM's
# initramfs copies whole), kubectl's kustomize, and the manifests rendered
# with freshly made secrets.
#
#   k_setup                      node, npm packages, kubectl
#   k_render VARIANT             kubernetes/VARIANT ("" for the default) as
#                                `kubectl kustomize` renders it -> $K_OUT
#   k_json FILE                  the objects of FILE as a JSON array
#   k_validate FILE...           the API schema check (k8s.mjs validate)
# and, with tests/lib_cluster.sh, podman running the pods:
#   k_podman                     a private podman store and configuration;
#                                pod ARGS (podman for the pods), pod_on I ARGS
#                                (podman as node I's runtime: its CNI dirs)
#   k_image                      the image, as `make image` builds it
#   k_pod HOST KIND/NAME NODE IP [FILE]   a pod of FILE ($DEFAULT) for HOST
#                                (k8s.mjs pod) -> $T_TMP/pod-HOST.json;
#                                K_SVC[HOST]: the cluster-manager Service's
#                                address seen from HOST ($C_CM_ADDR)
#   k_run HOST init|main         run those containers of the pod
#   k_probe HOST CONTAINER KIND IP, probes_pass HOST CONTAINER IP
#   k_workload_image             a busybox image for the workloads (podman)
#   k_w_up I, k_w_addr I         a workload container on node I's wgnet (the
#                                installed plugin attaches it), its IPv4
#   k_plugin_wg I                the installed plugin's wireguard-go processes
#                                in node I's namespace (their names go to
#                                $C_WGNAMES, for the leak check)
K_DIR=$BUILDDIR/kubernetes-tests
K_VERSION=$(sed -n 's/^VERSION := //p' "$T_ROOT/Makefile")
K_IMAGE=localhost/wgcni:$K_VERSION

k_setup() {
	command -v node >/dev/null || { t_log "missing node (make deps: nodejs)"; exit 1; }
	command -v npm >/dev/null || { t_log "missing npm (it comes with nodejs)"; exit 1; }
	# kubectl: on this kind of machine with the system; Debian 12's
	# kubernetes-client (1.20) is too old for the kustomizations
	command -v kubectl >/dev/null || { t_log "missing kubectl (kubectl kustomize renders kubernetes/)"; exit 1; }
	mkdir -p "$K_DIR"
	if ! cmp -s "$T_ROOT/tests/kubernetes/package-lock.json" "$K_DIR/package-lock.json" ||
		[ ! -e "$K_DIR/node_modules/.package-lock.json" ]; then
		cp "$T_ROOT/tests/kubernetes/package.json" "$T_ROOT/tests/kubernetes/package-lock.json" "$K_DIR/"
		pp npm ci --prefix "$K_DIR" --no-audit --no-fund --loglevel=error >&2 ||
			{ t_log "npm ci (tests/kubernetes/package-lock.json) failed"; exit 1; }
	fi
	cp "$T_ROOT/tests/kubernetes/k8s.mjs" "$K_DIR/"
	# a copy of kubernetes/ with the two secret files the user makes
	K_SRC=$T_TMP/src
	rm -rf "$K_SRC" && mkdir -p "$K_SRC"
	cp -r "$T_ROOT/kubernetes" "$K_SRC/"
	K_TOKEN=$(head -c 24 /dev/urandom | base64)
	echo "$K_TOKEN" >"$K_SRC/kubernetes/base/secrets/token"
	(umask 077 && wg genpsk >"$K_SRC/kubernetes/base/secrets/preshared-key")
}

k_render() {
	K_OUT=$T_TMP/render-${1:-default}.yaml
	kubectl kustomize "$K_SRC/kubernetes/$1" >"$K_OUT"
}
k_json() { node "$K_DIR/k8s.mjs" json "$1"; }
k_validate() { node "$K_DIR/k8s.mjs" validate "$@"; }

# --- podman (as tests/runtimes/test_podman.sh configures it)
declare -A K_SVC
# the name prefix of every container of the run
NAME=wgk$$
P=$T_TMP/podman
PODMAN_ARGS=(--root "$P/root" --runroot "$P/runroot" --storage-driver vfs)
pod() { CONTAINERS_CONF=$P/daemons.conf podman "${PODMAN_ARGS[@]}" "$@"; }
# podman on node I's host, as its runtime (the CNI plugin runs there)
pod_on() { local i=$1; shift; CONTAINERS_CONF=$P/h$i.conf nsenter --net="/run/netns/$(t_ns "h$i")" podman "${PODMAN_ARGS[@]}" "$@"; }
# podconf NODE|daemons: its containers.conf; a node's points at its CNI directories
podconf() {
	local f=$P/$1.conf h=$T_TMP/$1/host
	mkdir -p "$h/opt/cni/bin" "$h/etc/cni/net.d"
	cat >"$f" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$h/opt/cni/bin"]
network_config_dir = "$h/etc/cni/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
runtime = "runc"
CONF
}
k_podman() {
	local tool
	for tool in podman runc busybox; do
		command -v "$tool" >/dev/null || { t_log "missing $tool (make deps)"; exit 1; }
	done
	mkdir -p "$P/root" "$P/runroot"
	podconf daemons
	t_on_cleanup "for c in \$(CONTAINERS_CONF=$P/daemons.conf podman ${PODMAN_ARGS[*]} ps -a --format '{{.Names}}' | grep '^$NAME-'); do
		CONTAINERS_CONF=$P/daemons.conf podman ${PODMAN_ARGS[*]} rm -f -t 0 \$c; done
		CONTAINERS_CONF=$P/daemons.conf podman ${PODMAN_ARGS[*]} rmi -af; rm -rf $P/root"
}

k_image() {
	pp env PODMAN="podman ${PODMAN_ARGS[*]}" IMAGE="$K_IMAGE" BUILDDIR="$BUILDDIR" \
		"$T_ROOT/kubernetes/image/build.sh" "$T_TMP/image" | tee "$T_TMP/image.log"
}

# k_pod HOST KIND/NAME NODE IP [FILE]: its podman runs as JSON in $T_TMP/pod-HOST.json
# Host paths are under $T_TMP/HOST/host but the xtables lock and the TUN
# device, which are the machine's. That includes /run/wireguard: two test
# nodes on one machine would otherwise share wgcni0's socket name. The
# plugin's own wireguard-go (a process of the runtime, not of the pod)
# keeps its sockets in the machine's /var/run/wireguard, which on a real
# node is the node manager's /run/wireguard as well; what needs that
# (rotate-key, "containerMesh") is not run here.
k_pod() {
	local h=$1 ref=$2 node=$3 ip=$4 file=${5:-$DEFAULT}
	mkdir -p "$T_TMP/$h/host" "$T_TMP/$h/files"
	node "$K_DIR/k8s.mjs" pod "$file" "$ref" --node "$node" --host-ip "$ip" \
		--netns "/run/netns/$(t_ns "$h")" --host-root "$T_TMP/$h/host" \
		--host-map /run/xtables.lock=/run/xtables.lock --host-map /dev/net/tun=/dev/net/tun \
		--service "cluster-manager=${K_SVC[$h]:-$C_CM_ADDR}" --files "$T_TMP/$h/files" \
		--rewrite-configmap wgcni-cni --name "$NAME-$h" >"$T_TMP/pod-$h.json"
}
# k_run HOST init|main: every container of that kind, in order (init ones to the end)
k_run() {
	local h=$1 kind=$2 n i args
	n=$(jq ".$kind | length" "$T_TMP/pod-$h.json")
	for ((i = 0; i < n; i++)); do
		mapfile -t args < <(jq -r ".${kind}[$i][]" "$T_TMP/pod-$h.json")
		pretty "$h" "podman run ${args[*]}"
		pod run "${args[@]}" >>"$T_TMP/$h-$kind.log" 2>&1 || { t_log "$h: $kind container $i failed:"; tail -5 "$T_TMP/$h-$kind.log" >&2; return 1; }
	done
}
# k_probe HOST CONTAINER startup|readiness|liveness: the probe the kubelet runs
k_probe() {
	local h=$1 p
	p=$(jq -c --arg c "$2" --arg k "$3" '.probes[$c][$k].httpGet' "$T_TMP/pod-$h.json")
	[ "$p" != null ] || return 1
	nq "$h" curl -sf -m 2 -o /dev/null \
		"http://$(jq -r --arg ip "$4" '.host // $ip' <<<"$p"):$(jq -r .port <<<"$p")$(jq -r .path <<<"$p")"
}
probes_pass() { local k; for k in startup readiness liveness; do k_probe "$1" "$2" "$k" "$3" || return 1; done; }

k_plugin_wg() {
	local p
	for p in $(ip netns pids "$(t_ns "h$1")"); do
		[ "$(readlink "/proc/$p/exe")" = "$T_TMP/h$1/host/opt/cni/bin/wgcni-bundle/wireguard-go" ] || continue
		echo "$p"
		tr '\0' '\n' <"/proc/$p/cmdline" | tail -1 >>"$C_WGNAMES"
	done
}

k_workload_image() {
	mkdir -p "$P/bb/bin"
	cp "$(command -v busybox)" "$P/bb/bin/busybox"
	for app in sh ping sleep ip; do ln -sf busybox "$P/bb/bin/$app"; done
	tar -C "$P/bb" -cf "$P/bb.tar" .
	pod import "$P/bb.tar" "localhost/wgcni-bb:$$" >/dev/null
}
k_w_up() {
	podconf "h$1"
	pod_on "$1" run -d --name "$NAME-w$1" --network wgnet "localhost/wgcni-bb:$$" sleep 600 >/dev/null
}
k_w_addr() { pod_on "$1" exec "$NAME-w$1" ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }

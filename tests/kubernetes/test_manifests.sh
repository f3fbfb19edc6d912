#!/bin/bash
# kubernetes/: every kustomization renders with kubectl's kustomize, every
# object validates against the Kubernetes API schema (no unknown field
# either), and the manifests say what the daemons understand: each WGCNI_*
# variable is a flag of the binary the container runs (its --help), the
# conflist points at the node manager's socket, the node manager gets its
# name and endpoint from the downward API and no capability but NET_ADMIN
# and NET_RAW, every pod runs the image `make image` builds.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_k8s.sh"

for b in wgcni-cluster-manager wgcni-node-manager wgcni; do
	[ -x "$T_BIN/$b" ] || { t_log "missing $T_BIN/$b (make all)"; exit 1; }
done
command -v jq >/dev/null || { t_log "missing jq"; exit 1; }
k_setup

declare -A J
for v in "" etcd uninstall sqlite; do
	t_ok "kubectl kustomize kubernetes/$v renders" k_render "$v"
	t_ok "kubernetes/$v: every object validates against the API schema" k_validate "$K_OUT"
	J[${v:-default}]=$T_TMP/${v:-default}.json
	k_json "$K_OUT" >"${J[${v:-default}]}"
done
t_eq "the default is the SQLite variant" "$(cat "$T_TMP/render-sqlite.yaml")" "$(cat "$T_TMP/render-default.yaml")"

# q VARIANT JQ: jq over that variant's objects
q() { local v=$1; shift; jq -r "$@" "${J[$v]}"; }
c_match() { [[ $1 =~ $2 ]]; }
kinds() { q "$1" '[.[] | .kind + "/" + .metadata.name] | sort | join(" ")'; }
t_ok "default: namespace, config, secret, service, PVC, cluster manager, node manager" \
	c_match "$(kinds default)" \
	'^ConfigMap/wgcni-cluster-manager ConfigMap/wgcni-cni ConfigMap/wgcni-node-manager DaemonSet/wgcni-node-manager Deployment/wgcni-cluster-manager Namespace/wgcni PersistentVolumeClaim/wgcni-cluster-manager Secret/wgcni-[a-z0-9]+ Service/cluster-manager$'
t_eq "every namespaced object is in wgcni" "" \
	"$(for v in default etcd uninstall; do q $v '.[] | select(.kind != "Namespace" and .metadata.namespace != "wgcni") | .kind'; done | xargs)"

# --- images: the one make image builds, everywhere
t_eq "every container runs $K_IMAGE" "$K_IMAGE" \
	"$(for v in default etcd uninstall; do q $v '.[] | .spec.template.spec? // empty | (.initContainers // []) + .containers | .[].image'; done | sort -u | xargs)"

# --- WGCNI_* names against the binaries' --help
# every WGCNI_X a container of BIN sees: envFrom ConfigMaps and env
env_names() { # VARIANT BIN
	q "$1" --arg bin "$2" '
		(map(select(.kind == "ConfigMap")) | map({key: .metadata.name, value: .data}) | from_entries) as $cm
		| .[] | .spec.template.spec? // empty | (.initContainers // []) + .containers | .[]
		| select(.command[0] | endswith("/" + $bin))
		| ((.envFrom // [])[] | $cm[.configMapRef.name] // {} | keys[]), ((.env // [])[].name)' |
		grep '^WGCNI_' || true
}
help_flags() { "$T_BIN/$1" --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }
to_flag() { local n=${1#WGCNI_}; n=${n,,}; echo "--${n//_/-}"; }
check_names() { # VARIANT BIN
	local name flag bad=() pending=() flags
	flags=$(help_flags "$2")
	for name in $(env_names "$1" "$2" | sort -u); do
		flag=$(to_flag "$name")
		grep -qx -- "$flag" <<<"$flags" && continue
		# SPEC §2's etcd flags, before the binary has them
		if [ "$2" = wgcni-cluster-manager ] && [[ $flag =~ ^--(datastore|etcd-) ]] &&
			! grep -qx -- --datastore <<<"$flags"; then
			pending+=("$name")
			continue
		fi
		bad+=("$name")
	done
	[ ${#pending[@]} = 0 ] || t_log "$1: ${pending[*]}: SPEC §2 flags $2 --help does not list yet (checked once it does)"
	t_eq "kubernetes/$1: every WGCNI_* a $2 container sees is one of its flags" "" "${bad[*]}"
}
check_names default wgcni-cluster-manager
check_names default wgcni-node-manager
check_names etcd wgcni-cluster-manager
check_names uninstall wgcni-node-manager
t_ok "env_names finds the node manager's variables (the check above checked something)" \
	test "$(env_names default wgcni-node-manager | grep -c .)" -ge 10

cm() { q "$1" --arg n "$2" --arg k "$3" '.[] | select(.kind == "ConfigMap" and .metadata.name == $n) | .data[$k]'; }
ds='.[] | select(.kind == "DaemonSet" and .metadata.name == "wgcni-node-manager") | .spec.template.spec'
nm="$ds | .containers[] | select(.name == \"node-manager\")"

# --- the node manager DaemonSet
t_eq "DaemonSet: host network" true "$(q default "$ds | .hostNetwork")"
t_eq "DaemonSet: WGCNI_NODE_NAME from spec.nodeName" spec.nodeName \
	"$(q default "$nm | .env[] | select(.name == \"WGCNI_NODE_NAME\") | .valueFrom.fieldRef.fieldPath")"
t_eq "DaemonSet: WGCNI_ENDPOINT is status.hostIP and the WireGuard port" \
	'status.hostIP $(HOST_IP):$(WGCNI_LISTEN_PORT)' \
	"$(q default "$nm | (.env[] | select(.name == \"HOST_IP\") | .valueFrom.fieldRef.fieldPath), (.env[] | select(.name == \"WGCNI_ENDPOINT\") | .value)" | xargs)"
t_eq "DaemonSet: the cluster manager through its Service's links" \
	'http://$(CLUSTER_MANAGER_SERVICE_HOST):$(CLUSTER_MANAGER_SERVICE_PORT) cluster-manager' \
	"$(q default "($nm | .env[] | select(.name == \"WGCNI_CLUSTER_MANAGER\") | .value), (.[] | select(.kind == \"Service\") | .metadata.name)" | xargs)"
t_eq "DaemonSet: capabilities: all dropped, NET_ADMIN and NET_RAW added" "ALL NET_ADMIN NET_RAW" \
	"$(q default "$nm | .securityContext.capabilities | .drop + (.add | sort) | join(\" \")")"
t_eq "DaemonSet: not privileged, no privilege escalation, read-only root" "false false true" \
	"$(q default "$nm | .securityContext | [.privileged // false, .allowPrivilegeEscalation, .readOnlyRootFilesystem] | map(tostring) | join(\" \")")"
for p in /opt/cni/bin /etc/cni/net.d /run/wgcni /var/lib/wgcni; do
	t_ok "DaemonSet: host path $p" grep -qx -- "$p" <<<"$(q default "$ds | .volumes[].hostPath.path // empty")"
done
t_eq "DaemonSet: startup, readiness and liveness probes on /healthz at WGCNI_LISTEN" \
	"/healthz 127.0.0.1:5242 /healthz 127.0.0.1:5242 /healthz 127.0.0.1:5242 127.0.0.1:5242" \
	"$(q default "$nm | (.startupProbe, .readinessProbe, .livenessProbe | .httpGet | .path, \"\(.host):\(.port)\")" | xargs) $(cm default wgcni-node-manager WGCNI_LISTEN)"
t_eq "DaemonSet: the init container installs the plugin and the conflist" \
	"install-cni /usr/local/lib/wgcni/install-cni.sh" \
	"$(q default "$ds | .initContainers[0] | .name, .command[2]" | xargs)"
t_eq "DaemonSet: no cleanup on stop (a restart keeps the tunnels)" "null" "$(q default "$nm | .lifecycle")"
conflist=$(cm default wgcni-cni 10-wgcni.conflist)
t_eq "conflist: nodeManager is the node manager's socket" \
	"unix://$(cm default wgcni-node-manager WGCNI_SOCKET)" "$(jq -r '.plugins[0].nodeManager' <<<"$conflist")"
t_eq "conflist: the socket's directory is a host path of the DaemonSet" "/run/wgcni" \
	"$(q default "$ds | .volumes[].hostPath.path // empty" | grep -x "$(dirname "$(cm default wgcni-node-manager WGCNI_SOCKET)")")"
t_eq "conflist: type wgcni, cniVersion 1.0.0 (Debian 12's runtimes refuse 1.1.0)" "wgcni 1.0.0" \
	"$(jq -r '"\(.plugins[0].type) \(.cniVersion)"' <<<"$conflist")"
t_eq "conflist: the plugin's own wireguard-go, installed beside it" "/opt/cni/bin/wgcni-bundle/wireguard-go" \
	"$(jq -r '.plugins[0].userspaceImplementation' <<<"$conflist")"
t_eq "the ConfigMap's MTU and the conflist's agree" "$(cm default wgcni-node-manager WGCNI_MTU)" \
	"$(jq -r '.plugins[0].mtu' <<<"$conflist")"
t_eq "the preshared key is a file of its own (subPath: no symbolic link)" "preshared-key /etc/wgcni/preshared-key /etc/wgcni/preshared-key" \
	"$(q default "$nm | .volumeMounts[] | select(.subPath) | .subPath, .mountPath" | xargs) $(cm default wgcni-node-manager WGCNI_PRESHARED_KEY_FILE)"
t_eq "the Secret holds the token and the preshared key" "preshared-key token" \
	"$(q default '.[] | select(.kind == "Secret") | .data | keys | join(" ")')"
t_eq "the Secret's token is the file's" "$K_TOKEN" \
	"$(q default '.[] | select(.kind == "Secret") | .data.token' | base64 -d)"

# --- the cluster manager, both ways
dep='.[] | select(.kind == "Deployment" and .metadata.name == "wgcni-cluster-manager") | .spec'
t_eq "sqlite: one replica, Recreate, state on the PVC" "1 Recreate wgcni-cluster-manager /var/lib/wgcni/cluster" \
	"$(q default "$dep | .replicas, .strategy.type, (.template.spec.volumes[] | select(.persistentVolumeClaim) | .persistentVolumeClaim.claimName), (.template.spec.containers[0].env[] | select(.name == \"WGCNI_STATE_DIR\") | .value)" | xargs)"
t_ok "etcd: two replicas or more" test "$(q etcd "$dep | .replicas")" -ge 2
t_eq "etcd: --datastore etcd --etcd-endpoints URL,URL --etcd-prefix /wgcni" "etcd /wgcni" \
	"$(cm etcd wgcni-cluster-manager-etcd WGCNI_DATASTORE) $(cm etcd wgcni-cluster-manager-etcd WGCNI_ETCD_PREFIX)"
t_ok "etcd: the endpoints are a list of URLs" c_match "$(cm etcd wgcni-cluster-manager-etcd WGCNI_ETCD_ENDPOINTS)" '^https?://[^,]+(,https?://[^,]+)+$'
t_eq "etcd: no volume for state" "" "$(q etcd "$dep | .template.spec.volumes[] | select(.persistentVolumeClaim) | .name")"
t_eq "etcd: replicas kept apart (one per node)" "kubernetes.io/hostname" \
	"$(q etcd "$dep | .template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey")"
for v in default etcd; do
	t_eq "$v: Prometheus scrapes /metrics on the port of WGCNI_LISTEN" \
		"true $(cm $v wgcni-cluster-manager WGCNI_LISTEN | sed 's/.*://') /metrics" \
		"$(q $v "$dep | .template.metadata.annotations | .[\"prometheus.io/scrape\"], .[\"prometheus.io/port\"], .[\"prometheus.io/path\"]" | xargs)"
	t_eq "$v: probes on /healthz" "/healthz /healthz" \
		"$(q $v "$dep | .template.spec.containers[0] | .readinessProbe.httpGet.path, .livenessProbe.httpGet.path" | xargs)"
	t_eq "$v: the cluster manager has no capability" "ALL" \
		"$(q $v "$dep | .template.spec.containers[0].securityContext.capabilities | (.drop | join(\" \")) + (.add // [] | join(\" \"))")"
done
t_eq "the Service selects the cluster manager's pods" "cluster-manager" \
	"$(q default '.[] | select(.kind == "Service") | .spec.selector["app.kubernetes.io/component"]')"
t_eq "uninstall: cleanup, then the plugin's files" "wgcni-node-manager cleanup /usr/local/lib/wgcni/uninstall-cni.sh" \
	"$(q uninstall '.[0].spec.template.spec.initContainers | (.[0].command | (.[0] | split("/") | last), .[1]), .[1].command[2]' | xargs)"
t_done

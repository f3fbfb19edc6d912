#!/bin/bash
# kubernetes/etcd/ under podman, as tests/kubernetes/test_pods.sh runs the
# default: the Deployment's two cluster manager replicas (one per host, as
# its anti-affinity says) on a 3-member etcd, the node managers behind the
# cluster-manager Service's address, which each node's namespace maps to
# one replica (DNAT, as kube-proxy does). Node 1 goes through replica 1,
# node 2 and 3 through replica 2, so the mesh forms only if a change made
# through one replica reaches the nodes watching the other. Replica 1 then
# stops; node 1's Service mapping moves to replica 2 (the endpoint is gone),
# node 3 joins, and node 1's container reaches node 3's.
. "$(dirname "$0")/../lib_cluster.sh"
. "$(dirname "$0")/lib_k8s.sh"

c_etcd_need
k_setup
c_hosts 3
c_host_add cm2 2
c_etcd_start 3
# the user's one edit of kubernetes/etcd: where etcd is
sed -i "s|^  WGCNI_ETCD_ENDPOINTS: .*|  WGCNI_ETCD_ENDPOINTS: \"$C_ETCD_ENDPOINTS\"|" \
	"$K_SRC/kubernetes/etcd/cluster-manager.yaml"
k_render etcd
DEFAULT=$K_OUT
k_render uninstall
{ cat "$K_OUT"; echo ---; cat "$DEFAULT"; } >"$T_TMP/uninstall-and-config.yaml"
t_eq "the rendered etcd ConfigMap has the endpoints" "$C_ETCD_ENDPOINTS" \
	"$(k_json "$DEFAULT" | jq -r '.[] | select(.metadata.name == "wgcni-cluster-manager-etcd") | .data.WGCNI_ETCD_ENDPOINTS')"
replicas=$(k_json "$DEFAULT" | jq -r '.[] | select(.kind == "Deployment") | .spec.replicas')
t_eq "the Deployment has 2 replicas (this test runs 2)" 2 "$replicas"

k_podman
k_image >/dev/null

# the replicas: cm ($C_CM_ADDR) and cm2 ($C_UL.2)
declare -A CM_IP=([cm]=$C_CM_ADDR [cm2]=$C_UL.2)
for h in cm cm2; do
	k_pod "$h" Deployment/wgcni-cluster-manager "$h" "${CM_IP[$h]}"
	t_ok "$h: cluster manager replica started" k_run "$h" main
done
for h in cm cm2; do
	t_ok "$h: readiness probe passes" t_wait "$h ready" 20 k_probe "$h" cluster-manager readiness "${CM_IP[$h]}"
done
t_eq "no replica has a state directory (etcd holds the state)" "" \
	"$(find "$T_TMP/cm/files" "$T_TMP/cm2/files" -name 'pvc-*' -printf '%f\n')"

# the Service: a ClusterIP each node maps to one replica, as kube-proxy
VIP=10.96.0.10
svc_to() { # NODE REPLICA
	local ns; ns=$(t_ns "h$1")
	ip netns exec "$ns" iptables-legacy -t nat -F KSVC
	ip netns exec "$ns" iptables-legacy -t nat -A KSVC -d "$VIP" -p tcp --dport 8080 \
		-j DNAT --to-destination "${CM_IP[$2]}:8080"
}
svc_del() {
	local ns; ns=$(t_ns "h$1")
	ip netns exec "$ns" iptables-legacy -t nat -D OUTPUT -j KSVC
	ip netns exec "$ns" iptables-legacy -t nat -F KSVC
	ip netns exec "$ns" iptables-legacy -t nat -X KSVC
	ip -n "$ns" route del 10.96.0.0/12 dev eth0
}
for i in 1 2 3; do
	n "h$i" sysctl -qw net.ipv4.ip_forward=1
	n "h$i" ip route add 10.96.0.0/12 dev eth0
	n "h$i" iptables-legacy -t nat -N KSVC
	n "h$i" iptables-legacy -t nat -A OUTPUT -j KSVC
	# shellcheck disable=SC2034 # k_pod reads it
	K_SVC[h$i]=$VIP
done
svc_to 1 cm
svc_to 2 cm2
svc_to 3 cm2

node_up() { # I: the DaemonSet's pod on node I, ready
	k_pod "h$1" DaemonSet/wgcni-node-manager "$(c_name "$1")" "$C_UL.$((10 + $1))"
	k_run "h$1" init && k_run "h$1" main &&
		t_wait "node $1 probes" 30 probes_pass "h$1" node-manager "$C_UL.$((10 + $1))"
}
for i in 1 2; do t_ok "node $i: DaemonSet pod up" node_up "$i"; done
cm_nodes() { nq "$1" curl -sf -m 5 -H "Authorization: Bearer $K_TOKEN" -H 'Content-Type: application/json' \
	-d '{}' "http://${CM_IP[$1]}:8080/$C_CM_SVC/ListNodes" | jq -r '[.nodes[].name] | sort | join(" ")'; }
for h in cm cm2; do
	t_eq "$h answers with both nodes (one registered through each replica)" "$(c_name 1) $(c_name 2)" "$(cm_nodes "$h")"
done

# workloads
k_workload_image
w_ping() { pod_on "$1" exec "$NAME-w$1" ping -c 1 -W 1 "$2" >/dev/null; }
for i in 1 2; do t_ok "node $i: a container on wgnet" k_w_up "$i"; k_plugin_wg "$i" >/dev/null; done
t_ok "node 1's container (replica 1) pings node 2's (replica 2)" t_wait "ping 1 -> 2" 20 w_ping 1 "$(k_w_addr 2)"

# replica 1 goes; its endpoint leaves the Service
t_ok "cm: replica 1 stops on SIGTERM" pod stop -t 10 "$NAME-cm-cluster-manager"
t_eq "cm: exited 0" 0 "$(pod inspect --format '{{.State.ExitCode}}' "$NAME-cm-cluster-manager")"
svc_to 1 cm2
t_ok "node 3: DaemonSet pod up (through replica 2)" node_up 3
t_ok "node 3: a container on wgnet" k_w_up 3
k_plugin_wg 3 >/dev/null
t_ok "node 1's container reaches node 3's (node 1 followed replica 2)" t_wait "ping 1 -> 3" 30 w_ping 1 "$(k_w_addr 3)"
t_ok "node 1's container still reaches node 2's" w_ping 1 "$(k_w_addr 2)"

# removal, as README "On Kubernetes"
for i in 1 2 3; do pod_on "$i" stop -t 1 "$NAME-w$i" >/dev/null; pod_on "$i" rm "$NAME-w$i" >/dev/null; done
for i in 1 2 3; do
	t_ok "node $i: node manager stops" pod stop -t 10 "$NAME-h$i-node-manager"
	pod rm "$NAME-h$i-node-manager" >/dev/null
	k_pod "h$i" DaemonSet/wgcni-uninstall "$(c_name "$i")" "$C_UL.$((10 + i))" "$T_TMP/uninstall-and-config.yaml"
	t_ok "node $i: uninstall pod's cleanup ran" k_run "h$i" init
	svc_del "$i"
done
t_ok "cm2: replica 2 stops on SIGTERM" pod stop -t 10 "$NAME-cm2-cluster-manager"
t_eq "cm2: exited 0" 0 "$(pod inspect --format '{{.State.ExitCode}}' "$NAME-cm2-cluster-manager")"
for h in cm cm2; do pod rm "$NAME-$h-cluster-manager" >/dev/null; done
c_leak_check
t_done

#!/bin/bash
# The Nomad jobs in nomad/ parse with HashiCorp's HCL parser (npm
# @cdktf/hcl2json, installed once into $BUILDDIR/npm) and say what the
# deployment needs: a service job for the cluster manager, a system job in the
# host network for the node managers, four sleepers on the "cni/wgnet" network
# whose name is the shipped conflist's. HCL syntax only: no Nomad here to
# check the job schema.
. "$(dirname "$0")/../lib.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	t_log "SKIP: node/npm not installed (Debian packages nodejs, npm)"
	exit 77
fi
prefix=$BUILDDIR/npm
if [ ! -d "$prefix/node_modules/@cdktf/hcl2json" ]; then
	mkdir -p "$prefix"
	pp npm install --prefix "$prefix" --no-audit --no-fund --silent @cdktf/hcl2json@0.21.0 >&2
fi
h2j() { node "$T_ROOT/tests/packaging/hcl2json.js" "$prefix" "$1"; }
h2j_to() { h2j "$1" >"$2"; }

# The parser must be able to say no, or the rest proves nothing.
printf 'job "x" {\n  type = "service"\n' >"$T_TMP/unclosed.hcl"
t_fail "parser rejects an unclosed block" h2j "$T_TMP/unclosed.hcl" 2>/dev/null
t_ok "parser diagnostic is located" grep -q "unclosed.hcl:1" <(h2j "$T_TMP/unclosed.hcl" 2>&1)

for f in cluster-manager cluster-manager-etcd node-manager sleep; do
	t_ok "nomad/$f.hcl parses" h2j_to "$T_ROOT/nomad/$f.hcl" "$T_TMP/$f.json"
done

j() { jq -r "$2" "$T_TMP/$1.json"; }

cm='.job["wgcni-cluster-manager"][0]'
cmg="$cm.group[\"cluster-manager\"][0]"
cmt="$cmg.task[\"cluster-manager\"][0]"
t_eq "cluster manager: service job" service "$(j cluster-manager "$cm.type")"
t_eq "cluster manager: one instance" 1 "$(j cluster-manager "$cmg.count")"
t_eq "cluster manager: static API port" 8080 "$(j cluster-manager "$cmg.network[0].port.api[0].static")"
t_eq "cluster manager: binary" /usr/local/bin/wgcni-cluster-manager "$(j cluster-manager "$cmt.config[0].command")"
t_eq "cluster manager: health check" /healthz "$(j cluster-manager "$cmg.service[0].check[0].path")"
t_eq "cluster manager: published name" wgcni-cluster-manager "$(j cluster-manager "$cmg.service[0].name")"
t_eq "cluster manager: state on a host volume" /var/lib/wgcni/cluster \
	"$(j cluster-manager "$cmt.volume_mount[0].destination")"
t_ok "cluster manager: --state-dir matches the volume" \
	grep -qx /var/lib/wgcni/cluster <(j cluster-manager "$cmt.config[0].args[]")
t_ok "cluster manager: --cluster-cidr given" \
	grep -qx -- --cluster-cidr <(j cluster-manager "$cmt.config[0].args[]")

# Several cluster managers on etcd: the same job name and service (what the
# node managers look up), no host volume, one instance per client, the
# etcd flags and TLS files from the task's secrets.
ce='.job["wgcni-cluster-manager"][0]'
ceg="$ce.group[\"cluster-manager\"][0]"
cet="$ceg.task[\"cluster-manager\"][0]"
ea() { j cluster-manager-etcd "$cet.config[0].args[]"; }
t_eq "etcd cluster managers: service job" service "$(j cluster-manager-etcd "$ce.type")"
t_eq "etcd cluster managers: count from a variable (default 2)" 2 \
	"$(j cluster-manager-etcd '.variable.count[0].default')"
t_eq "etcd cluster managers: one per client" distinct_hosts \
	"$(j cluster-manager-etcd "$ceg.constraint[0].operator")"
t_eq "etcd cluster managers: no host volume" null "$(j cluster-manager-etcd "$ceg.volume")"
t_eq "etcd cluster managers: published name" wgcni-cluster-manager \
	"$(j cluster-manager-etcd "$ceg.service[0].name")"
t_eq "etcd cluster managers: health check" /healthz \
	"$(j cluster-manager-etcd "$ceg.service[0].check[0].path")"
t_eq "etcd cluster managers: --datastore etcd" etcd "$(ea | grep -A1 -x -- --datastore | tail -n 1)"
for f in --etcd-endpoints --etcd-prefix --etcd-ca-file --etcd-cert-file --etcd-key-file --cluster-cidr; do
	t_ok "etcd cluster managers: $f given" grep -qx -- "$f" <(ea)
done
t_eq "etcd cluster managers: the TLS key is a 0600 secret" 0600 \
	"$(j cluster-manager-etcd "$cet.template[] | select(.destination == \"secrets/etcd-client.key\") | .perms")"
if [ -x "$T_BIN/wgcni-cluster-manager" ]; then
	"$T_BIN/wgcni-cluster-manager" --help >"$T_TMP/cm-help" 2>&1 || true
	for f in $(ea | grep -- '^--'); do
		t_ok "etcd cluster managers: $f is an option" grep -q -- "$f\b" "$T_TMP/cm-help"
	done
fi

nm='.job["wgcni-node-manager"][0]'
nmg="$nm.group[\"node-manager\"][0]"
nmt="$nmg.task[\"node-manager\"][0]"
t_eq "node manager: system job" system "$(j node-manager "$nm.type")"
t_eq "node manager: host network" host "$(j node-manager "$nmg.network[0].mode")"
t_eq "node manager: raw_exec (host netns, /run, /dev/net/tun)" raw_exec "$(j node-manager "$nmt.driver")"
t_eq "node manager: binary" /usr/local/bin/wgcni-node-manager "$(j node-manager "$nmt.config[0].command")"
t_eq "node manager: socket the conflist names" /run/wgcni/node-manager.sock \
	"$(j node-manager "$nmt.env[0].WGCNI_SOCKET")"
t_ok "node manager: cluster manager found by service name" \
	grep -q 'nomadService "wgcni-cluster-manager".*WGCNI_CLUSTER_MANAGER=.*http://' \
	<(j node-manager "$nmt.template[0].data")
t_ok "node manager: every cluster manager instance, comma-separated" \
	grep -q 'range $i, $s := . }}{{ if $i }},{{ end }}http://' <(j node-manager "$nmt.template[0].data")
t_eq "node manager: template feeds the environment" true "$(j node-manager "$nmt.template[0].env")"
# Every WGCNI_* variable the job sets is one of the daemon's options.
if [ -x "$T_BIN/wgcni-node-manager" ]; then
	"$T_BIN/wgcni-node-manager" --help >"$T_TMP/nm-help" 2>&1 || true
	for v in $(j node-manager "$nmt.env[0] | keys[]"); do
		opt=$(echo "${v#WGCNI_}" | tr 'A-Z_' 'a-z-')
		t_ok "node manager: $v is option --$opt" grep -q -- "--$opt\b" "$T_TMP/nm-help"
	done
else
	t_log "no $T_BIN/wgcni-node-manager: option names not checked"
fi

sl='.job.sleep[0]'
slg="$sl.group.sleep[0]"
t_eq "sleep: service job" service "$(j sleep "$sl.type")"
t_eq "sleep: count 4" 4 "$(j sleep "$slg.count")"
t_eq "sleep: CNI network mode" cni/wgnet "$(j sleep "$slg.network[0].mode")"
t_eq "sleep: network is the shipped conflist's" \
	"cni/$(jq -r .name "$T_ROOT/dist/10-wgcni.conflist")" "$(j sleep "$slg.network[0].mode")"
t_eq "sleep: busybox image" busybox "$(j sleep "$slg.task.sleep[0].config[0].image" | cut -d: -f1)"
t_eq "sleep: runs sleep" sleep "$(j sleep "$slg.task.sleep[0].config[0].command")"

t_done

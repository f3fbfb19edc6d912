#!/bin/busybox sh
# shellcheck shell=dash
# What kubernetes/uninstall runs on every node after
# `wgcni-node-manager cleanup`: removes what install-cni.sh installed, the
# conflist first (so the runtime stops using the network before the plugin
# goes), then the node manager's state, so a later install starts afresh.
#
#   busybox sh uninstall-cni.sh BIN_DIR CONF_DIR CONFLIST_NAME STATE_DIR
set -eu
bin=${1:?usage: uninstall-cni.sh BIN_DIR CONF_DIR CONFLIST_NAME STATE_DIR}
conf=${2:?usage: uninstall-cni.sh BIN_DIR CONF_DIR CONFLIST_NAME STATE_DIR}
name=${3:?usage: uninstall-cni.sh BIN_DIR CONF_DIR CONFLIST_NAME STATE_DIR}
state=${4:?usage: uninstall-cni.sh BIN_DIR CONF_DIR CONFLIST_NAME STATE_DIR}
rm -f "$conf/$name"
rm -f "$bin/wgcni"
rm -rf "$bin/wgcni-bundle"
rm -rf "$state"
echo "uninstall-cni: removed $conf/$name, $bin/wgcni, $bin/wgcni-bundle/ and $state"

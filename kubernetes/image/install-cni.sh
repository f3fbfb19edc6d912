#!/bin/busybox sh
# shellcheck shell=dash
# The wgcni DaemonSet's init container: installs the CNI plugin and its
# conflist on the host, the plugin first, so the network shows up in the
# runtime (which watches the conflist directory) only once it can run.
#
#   busybox sh install-cni.sh BIN_DIR CONF_DIR CONFLIST
# BIN_DIR, CONF_DIR: the host's /opt/cni/bin and /etc/cni/net.d as mounted
# in the container; CONFLIST: the file to install there (from the
# ConfigMap). Every file lands by rename, so a runtime never runs a
# half-written plugin or reads a half-written conflist. Runs with busybox
# only (the image has no other shell).
set -eu
bin=${1:?usage: install-cni.sh BIN_DIR CONF_DIR CONFLIST}
conf=${2:?usage: install-cni.sh BIN_DIR CONF_DIR CONFLIST}
list=${3:?usage: install-cni.sh BIN_DIR CONF_DIR CONFLIST}
src=/usr/local/lib/wgcni/cni

[ -s "$list" ] || { echo "install-cni: no conflist at $list" >&2; exit 1; }
mkdir -p "$bin" "$conf"

# wgcni-bundle/: a new directory swapped in for the old one
rm -rf "$bin/wgcni-bundle.new" "$bin/wgcni-bundle.old"
cp -a "$src/wgcni-bundle" "$bin/wgcni-bundle.new"
[ ! -e "$bin/wgcni-bundle" ] || mv "$bin/wgcni-bundle" "$bin/wgcni-bundle.old"
mv "$bin/wgcni-bundle.new" "$bin/wgcni-bundle"
rm -rf "$bin/wgcni-bundle.old"

cp "$src/wgcni" "$bin/.wgcni.tmp"
chmod 0755 "$bin/.wgcni.tmp"
mv -f "$bin/.wgcni.tmp" "$bin/wgcni"

name=$(basename "$list")
cp "$list" "$conf/.$name.tmp"
chmod 0644 "$conf/.$name.tmp"
mv -f "$conf/.$name.tmp" "$conf/$name"
echo "install-cni: installed $bin/wgcni, $bin/wgcni-bundle/ and $conf/$name"

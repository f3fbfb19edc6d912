#!/bin/bash
# The container image's root filesystem, from what `make` built: the four
# binaries, wireguard-go (the node manager's userspace backend), busybox for
# the init container's install script, and exactly the shared libraries they
# load (tests/lib_rootfs.sh). Nothing else: no shell but busybox's, no
# package database, no /etc beyond what the daemons read.
#
#   kubernetes/image/rootfs.sh OUTDIR     (BUILDDIR: where build/bin is)
# leaves OUTDIR/rootfs and OUTDIR/files.txt (every path in the image).
#
# Layout:
#   /usr/local/bin/            the daemons, wgcnictl, wireguard-go
#   /bin/busybox               the install script's interpreter (static)
#   /usr/local/lib/wgcni/install-cni.sh   what the init container runs
#   /usr/local/lib/wgcni/uninstall-cni.sh what kubernetes/uninstall runs
#   /usr/local/lib/wgcni/cni/  what it copies to the host's /opt/cni/bin:
#       wgcni                  a /bin/sh wrapper that starts the plugin with
#                              its own loader and libc (the host's may be
#                              older; the plugin's other libraries are
#                              linked in, PLUGIN_STATIC in the Makefile)
#       wgcni-bundle/          the plugin, its loader and libraries, and
#                              wireguard-go (libc only) for the userspace
#                              backend of the container interfaces (not
#                              "wgcni.d": the Makefile includes every *.d
#                              under BUILDDIR)
#   /lib*, /usr/lib*           the libraries, at their Debian paths
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: rootfs.sh OUTDIR}
: "${BUILDDIR:=$ROOT/build}"
. "$ROOT/tests/lib_rootfs.sh"

BINS="wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl"
for b in $BINS; do
	[ -x "$BUILDDIR/bin/$b" ] || { echo "missing $BUILDDIR/bin/$b: run make" >&2; exit 1; }
done
for t in wireguard-go busybox; do
	command -v "$t" >/dev/null || { echo "missing $t (make deps)" >&2; exit 1; }
done
ldd "$(command -v busybox)" >/dev/null 2>&1 &&
	{ echo "busybox is not static (install busybox-static)" >&2; exit 1; }

mkdir -p "$OUT"
R=$(cd "$OUT" && pwd)/rootfs
rm -rf "$R"
mkdir -p "$R"/{usr/local/bin,bin,etc,tmp,run,var}
chmod 1777 "$R/tmp"
ln -s ../run "$R/var/run"

# the daemons and the CLI, with their libraries
for b in wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	install -m 0755 "$BUILDDIR/bin/$b" "$R/usr/local/bin/$b"
	rootfs_libs "$R" "$BUILDDIR/bin/$b"
done
wggo=$(command -v wireguard-go)
install -m 0755 "$wggo" "$R/usr/local/bin/wireguard-go"
rootfs_libs "$R" "$wggo"
install -m 0755 "$(command -v busybox)" "$R/bin/busybox"

# what the init container installs on the host
C=$R/usr/local/lib/wgcni/cni
mkdir -p "$C/wgcni-bundle"
install -m 0755 "$BUILDDIR/bin/wgcni" "$C/wgcni-bundle/wgcni"
# the same files as the daemons' libraries: hard links, stored once
for lib in $(ldd "$BUILDDIR/bin/wgcni" | grep -o '/[^ ]*' | sort -u); do
	rootfs_file "$R" "$lib"
	ln "$R$lib" "$C/wgcni-bundle/$(basename "$lib")"
done
loader=$(basename "$(ldd "$BUILDDIR/bin/wgcni" | grep -o '/[^ ]*ld-linux[^ ]*' | head -1)")
ln "$R/usr/local/bin/wireguard-go" "$C/wgcni-bundle/wireguard-go"
cat >"$C/wgcni" <<WRAP
#!/bin/sh
# wgcni CNI plugin: run it with the loader and libraries installed beside it
# in wgcni-bundle/ (by the wgcni DaemonSet's init container), not the host's.
d=\${0%/*}/wgcni-bundle
exec "\$d/$loader" --library-path "\$d" "\$d/wgcni" "\$@"
WRAP
chmod 0755 "$C/wgcni"
install -m 0755 "$ROOT/kubernetes/image/install-cni.sh" "$ROOT/kubernetes/image/uninstall-cni.sh" "$R/usr/local/lib/wgcni/"

(cd "$R" && find . -mindepth 1 | sed 's|^\.||' | LC_ALL=C sort) >"$OUT/files.txt"
echo "rootfs: $(du -sh "$R" | cut -f1) (hard links counted once) in $(grep -c . "$OUT/files.txt") paths ($OUT/files.txt)"

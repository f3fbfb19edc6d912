#!/bin/bash
# Assembles what the kernel-backend VM boots: Debian's cloud kernel (which has
# the WireGuard module this host lacks) and an initramfs holding busybox, the
# tools the tests use with their shared libraries, the kernel modules the
# tests need with their dependencies, our binaries and the test scripts.
#
#   tests/kernel/build-initramfs.sh OUTDIR
# leaves OUTDIR/vmlinuz and OUTDIR/initrd.gz. Nothing is installed on the
# host: the kernel package is only downloaded and unpacked into OUTDIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: build-initramfs.sh OUTDIR}
: "${BUILDDIR:=$ROOT/build}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# --- the kernel: the version linux-image-cloud-amd64 points at
if [ ! -e "$OUT/kernel/.unpacked" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
	[ -n "$pkg" ] || { echo "cannot find the cloud kernel package (apt-get update?)" >&2; exit 1; }
	rm -rf "$OUT/kernel" && mkdir -p "$OUT/kernel"
	(cd "$OUT/kernel" && apt-get download "$pkg" >/dev/null 2>&1 && dpkg -x ./*.deb unpacked)
	touch "$OUT/kernel/.unpacked"
fi
KROOT="$OUT/kernel/unpacked"
KVER=$(ls "$KROOT/lib/modules" | head -1)
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
[ -e "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"

IR="$OUT/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,etc,proc,sys,dev,run,tmp,var,usr/bin,usr/sbin,lib/modules,wgcni}
ln -s ../run "$IR/var/run"

. "$ROOT/tests/lib_rootfs.sh"
copy_file() { rootfs_file "$IR" "$1"; } # path -> same path in the initramfs
copy_bin() { rootfs_bin "$IR" "$1" >/dev/null || exit 1; } # binary and its libraries

# busybox for init and the basics; GNU tools where the tests rely on them
cp "$(command -v busybox)" "$IR/bin/busybox"
for app in $("$IR/bin/busybox" --list); do
	[ -e "$IR/bin/$app" ] || ln -s busybox "$IR/bin/$app"
done
for tool in bash ip wg xtables-legacy-multi curl jq date seq timeout mktemp sort \
	grep sed awk cut tr wc cat head tail xargs ping nc sleep kill ps setsid env \
	stat basename dirname readlink tee flock nsenter pgrep sha256sum join base64 ss \
	uniq comm od find unshare; do
	copy_bin "$tool"
done
# The scripts' `sh -c` must be a real shell: busybox sh runs its own applets
# (its `ip`, `nc`) before anything on PATH.
# Scripts say #!/bin/bash; bash may live in /usr/bin on the host.
ln -sf "$(type -P bash)" "$IR/bin/sh"
[ -e "$IR/bin/bash" ] || ln -s "$(type -P bash)" "$IR/bin/bash"
# ip/wg/etc. under /usr/bin or /sbin: make them reachable on PATH
for t in iptables-legacy iptables-legacy-save ip6tables-legacy ip6tables-legacy-save; do
	ln -sf "$(command -v xtables-legacy-multi)" "$IR/usr/sbin/$t"
done
cp -r /usr/lib/x86_64-linux-gnu/xtables "$IR/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
for lib in /usr/lib/x86_64-linux-gnu/xtables/*.so; do
	rootfs_libs "$IR" "$lib"
done

# The opt-in benchmark (tests/kernel/bench.sh, WGCNI_VM_BENCH=1): iperf3 and
# the reference plugins bridge + host-local, where libcni looks for them.
if [ "${WGCNI_VM_BENCH:-}" = 1 ]; then
	command -v iperf3 >/dev/null ||
		{ echo "the VM bench needs iperf3 (apt-get install -y --no-install-recommends iperf3)" >&2; exit 1; }
	copy_bin iperf3
	for p in bridge host-local; do
		[ -x "/usr/lib/cni/$p" ] ||
			{ echo "the VM bench needs /usr/lib/cni/$p (apt-get install containernetworking-plugins)" >&2; exit 1; }
		copy_bin "/usr/lib/cni/$p"
	done
fi

# our binaries (release build), the test scripts with their own timestamps,
# then the libcni driver (newer than its sources, so tests/cnidriver/build.sh
# in the VM, which has no Go, finds it current) and the unit tests that need
# the kernel (sanitized builds, as `make sanitized` makes them)
mkdir -p "$IR/wgcni/build/bin" "$IR/wgcni/build/asan/tests"
for b in wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	[ -x "$BUILDDIR/bin/$b" ] || continue
	cp "$BUILDDIR/bin/$b" "$IR/wgcni/build/bin/"
	rootfs_libs "$IR" "$BUILDDIR/bin/$b"
done
cp -r --preserve=timestamps "$ROOT/tests" "$IR/wgcni/tests"
if [ -x "$BUILDDIR/cnidriver" ]; then
	cp "$BUILDDIR/cnidriver" "$IR/wgcni/build/cnidriver"
	touch "$IR/wgcni/build/cnidriver"
fi
for t in ${WGCNI_VM_UNITS:-test_wg_kernel_live test_wg_genl}; do
	[ -x "$BUILDDIR/asan/tests/$t" ] || continue
	cp "$BUILDDIR/asan/tests/$t" "$IR/wgcni/build/asan/tests/"
	rootfs_libs "$IR" "$BUILDDIR/asan/tests/$t"
done

# kernel modules in dependency order (modules.dep lists deps, deepest last)
MODS="wireguard veth bridge ip_tables iptable_filter iptable_nat ip6_tables ip6table_filter ip6table_nat xt_MASQUERADE xt_conntrack"
: >"$IR/etc/modules.order"
declare -A seen=()
add_mod() {
	local line deps dep path
	line=$(grep -E "(^|/)$1\.ko:" "$KROOT/lib/modules/$KVER/modules.dep" || true)
	[ -n "$line" ] || return 0 # built in
	path=${line%%:*}
	[ -n "${seen[$path]:-}" ] && return 0
	seen[$path]=1
	deps=${line#*:}
	for dep in $(echo "$deps" | tr ' ' '\n' | tac); do add_mod "$(basename "$dep" .ko)"; done
	mkdir -p "$IR/lib/modules/$(dirname "$path")"
	cp "$KROOT/lib/modules/$KVER/$path" "$IR/lib/modules/$path"
	echo "/lib/modules/$path" >>"$IR/etc/modules.order"
}
for m in $MODS; do add_mod "$m"; done

cp "$ROOT/tests/kernel/init" "$IR/init"
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/initrd.gz"
echo "initramfs: $(du -h "$OUT/initrd.gz" | cut -f1), kernel $KVER"

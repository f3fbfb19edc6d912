# shellcheck shell=bash
# Copying programs into a root filesystem with exactly the shared libraries
# they load (what ldd resolves, the dynamic loader included), at the paths
# they have on this host. Used by the kernel VM's initramfs
# (tests/kernel/build-initramfs.sh) and the container image
# (kubernetes/image/rootfs.sh).
#
#   . tests/lib_rootfs.sh
#   rootfs_file ROOT /usr/lib/x/libfoo.so.1   same path under ROOT, symlinks resolved
#   rootfs_libs ROOT FILE                     the shared libraries FILE loads
#   rootfs_bin ROOT TOOL                      TOOL (a path, or a name on PATH)
#                                             and its libraries; its path on stdout

rootfs_file() {
	local src=$2 dst="$1$2"
	[ -e "$dst" ] && return 0
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
}

# ldd's absolute paths: "libx.so.1 => /lib/.../libx.so.1 (0x..)" and the
# loader "/lib64/ld-linux-x86-64.so.2 (0x..)"; nothing for a static binary.
rootfs_libs() {
	local lib
	for lib in $(ldd "$2" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		rootfs_file "$1" "$lib"
	done
}

rootfs_bin() {
	local bin
	bin=$(type -P "$2" || true)
	[ -n "$bin" ] || { echo "missing tool: $2" >&2; return 1; }
	rootfs_file "$1" "$bin"
	rootfs_libs "$1" "$bin"
	echo "$bin"
}

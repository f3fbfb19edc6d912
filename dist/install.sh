#!/bin/sh
# Installs wgcni (called by `make install`, which passes every variable):
#   $BINDIR/{wgcni-cluster-manager,wgcni-node-manager,wgcnictl}
#   $CNIBINDIR/wgcni
#   $SYSCONFDIR/cni/net.d/10-wgcni.conflist       (kept if it exists)
#   $SYSCONFDIR/default/wgcni-{cluster,node}-manager (kept if they exist)
#   $UNITDIR/wgcni-{cluster,node}-manager.service
#   /var/lib/wgcni/{cluster,node}                  (mode 0700)
# all under $DESTDIR. The binaries come from $BUILDDIR/bin and must exist.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${BUILDDIR:=$here/../build}"
: "${DESTDIR:=}"
: "${PREFIX:=/usr/local}"
: "${BINDIR:=$PREFIX/bin}"
: "${CNIBINDIR:=/opt/cni/bin}"
: "${SYSCONFDIR:=/etc}"
: "${UNITDIR:=/lib/systemd/system}"

die() { echo "install.sh: $*" >&2; exit 1; }
say() { printf '  %-6s %s\n' "$1" "$2"; }

for v in BINDIR CNIBINDIR SYSCONFDIR UNITDIR; do
	eval "val=\$$v"
	case $val in
	/*) ;;
	*) die "$v must be an absolute path: \`$val'";;
	esac
done

# Fail before touching anything if a build output is missing.
for b in wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	[ -x "$BUILDDIR/bin/$b" ] ||
		die "missing build output \`$BUILDDIR/bin/$b' (run \`make' first)"
done

inst() { # mode src dst
	install -D -m "$1" "$2" "$DESTDIR$3"
	say INSTALL "$DESTDIR$3"
}

# Configuration the administrator may have edited is never overwritten.
inst_config() { # src dst
	if [ -e "$DESTDIR$2" ]; then
		say KEEP "$DESTDIR$2 (exists; new version not installed)"
	else
		inst 0644 "$1" "$2"
	fi
}

inst_unit() { # name
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
		"$here/$1.in" >"$tmp"
	inst 0644 "$tmp" "$UNITDIR/$1"
	rm -f "$tmp"
	trap - EXIT
}

for b in wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	inst 0755 "$BUILDDIR/bin/$b" "$BINDIR/$b"
done
inst 0755 "$BUILDDIR/bin/wgcni" "$CNIBINDIR/wgcni"

inst_config "$here/10-wgcni.conflist" "$SYSCONFDIR/cni/net.d/10-wgcni.conflist"
inst_config "$here/wgcni-cluster-manager.default" "$SYSCONFDIR/default/wgcni-cluster-manager"
inst_config "$here/wgcni-node-manager.default" "$SYSCONFDIR/default/wgcni-node-manager"

inst_unit wgcni-cluster-manager.service
inst_unit wgcni-node-manager.service

for d in cluster node; do
	install -d -m 0755 "$DESTDIR/var/lib/wgcni"
	install -d -m 0700 "$DESTDIR/var/lib/wgcni/$d"
	say MKDIR "$DESTDIR/var/lib/wgcni/$d"
done

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	echo "  Run 'systemctl daemon-reload', then enable wgcni-cluster-manager and/or wgcni-node-manager."
fi

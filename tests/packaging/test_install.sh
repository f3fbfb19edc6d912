#!/bin/bash
# `make install` into a DESTDIR: exactly the documented tree with the right
# modes, units that point at the installed binaries and pass
# `systemd-analyze verify`, configuration never overwritten, and a loud
# failure when a build output is missing. Uses the binaries already in
# $BUILDDIR (make's `-o all` keeps it from rebuilding anything).
. "$(dirname "$0")/../lib.sh"

root=$T_TMP/root
bins="wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl"

for b in $bins; do
	t_ok "build output $b exists" test -x "$T_BIN/$b"
done
[ "$T_FAIL" -eq 0 ] || { t_log "build first: make BUILDDIR=$BUILDDIR all"; t_done; }

mk_install() { # DESTDIR [make vars...]
	local dest=$1; shift
	make -s -C "$T_ROOT" -o all BUILDDIR="$BUILDDIR" DESTDIR="$dest" "$@" install
}

mk_install "$root" >"$T_TMP/install.out" && rc=0 || rc=$?
t_eq "make install DESTDIR=$root" 0 "$rc"

tree() { (cd "$1" && find . -mindepth 1 -printf '%M %p\n' | LC_ALL=C sort -k2); }
cat >"$T_TMP/expected" <<'LIST'
drwxr-xr-x ./etc
drwxr-xr-x ./etc/cni
drwxr-xr-x ./etc/cni/net.d
-rw-r--r-- ./etc/cni/net.d/10-wgcni.conflist
drwxr-xr-x ./etc/default
-rw-r--r-- ./etc/default/wgcni-cluster-manager
-rw-r--r-- ./etc/default/wgcni-node-manager
drwxr-xr-x ./lib
drwxr-xr-x ./lib/systemd
drwxr-xr-x ./lib/systemd/system
-rw-r--r-- ./lib/systemd/system/wgcni-cluster-manager.service
-rw-r--r-- ./lib/systemd/system/wgcni-node-manager.service
drwxr-xr-x ./opt
drwxr-xr-x ./opt/cni
drwxr-xr-x ./opt/cni/bin
-rwxr-xr-x ./opt/cni/bin/wgcni
drwxr-xr-x ./usr
drwxr-xr-x ./usr/local
drwxr-xr-x ./usr/local/bin
-rwxr-xr-x ./usr/local/bin/wgcni-cluster-manager
-rwxr-xr-x ./usr/local/bin/wgcni-node-manager
-rwxr-xr-x ./usr/local/bin/wgcnictl
drwxr-xr-x ./var
drwxr-xr-x ./var/lib
drwxr-xr-x ./var/lib/wgcni
drwx------ ./var/lib/wgcni/cluster
drwx------ ./var/lib/wgcni/node
LIST
(umask 022; tree "$root" >"$T_TMP/actual")
t_ok "installed tree and modes are exactly the documented ones" \
	diff -u "$T_TMP/expected" "$T_TMP/actual"

t_ok "CNI plugin is the built one" cmp "$T_BIN/wgcni" "$root/opt/cni/bin/wgcni"
for b in wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	t_ok "$b is the built one" cmp "$T_BIN/$b" "$root/usr/local/bin/$b"
done

# The conflist is the documented one (README), at cniVersion 1.0.0.
cl=$root/etc/cni/net.d/10-wgcni.conflist
t_eq "conflist cniVersion" 1.0.0 "$(jq -r .cniVersion "$cl")"
t_eq "conflist name" wgnet "$(jq -r .name "$cl")"
t_eq "conflist plugin" \
	'{"backend":"auto","mtu":1420,"nodeManager":"unix:///run/wgcni/node-manager.sock","type":"wgcni","userspaceImplementation":"wireguard-go"}' \
	"$(jq -cS '.plugins[0]' "$cl")"
t_eq "conflist has one plugin" 1 "$(jq '.plugins | length' "$cl")"

units=$root/lib/systemd/system
cm=$units/wgcni-cluster-manager.service
nm=$units/wgcni-node-manager.service
key() { sed -n "s/^$2=//p" "$1" | tr '\n' ';'; }
t_eq "cluster manager ExecStart" "/usr/local/bin/wgcni-cluster-manager;" "$(key "$cm" ExecStart)"
t_eq "node manager ExecStart" "/usr/local/bin/wgcni-node-manager;" "$(key "$nm" ExecStart)"
t_eq "cluster manager EnvironmentFile" "-/etc/default/wgcni-cluster-manager;" "$(key "$cm" EnvironmentFile)"
t_eq "node manager EnvironmentFile" "-/etc/default/wgcni-node-manager;" "$(key "$nm" EnvironmentFile)"
t_eq "node manager KillMode (tunnels survive restarts)" "process;" "$(key "$nm" KillMode)"
t_eq "node manager may write the xtables lock" "-/run/xtables.lock;" "$(key "$nm" ReadWritePaths)"
t_eq "node manager runtime directories" "wgcni wireguard;" "$(key "$nm" RuntimeDirectory)"
t_eq "node manager capabilities" "CAP_NET_ADMIN CAP_NET_RAW;" "$(key "$nm" CapabilityBoundingSet)"
t_eq "cluster manager capabilities" ";" "$(key "$cm" CapabilityBoundingSet)"
t_eq "cluster manager user" "yes;" "$(key "$cm" DynamicUser)"
t_eq "cluster manager state" "wgcni/cluster;" "$(key "$cm" StateDirectory)"
t_eq "node manager state" "wgcni/node;" "$(key "$nm" StateDirectory)"
for u in "$cm" "$nm"; do
	t_eq "$(basename "$u") Restart" "on-failure;" "$(key "$u" Restart)"
	t_eq "$(basename "$u") ProtectSystem" "strict;" "$(key "$u" ProtectSystem)"
	t_eq "$(basename "$u") NoNewPrivileges" "yes;" "$(key "$u" NoNewPrivileges)"
	t_eq "$(basename "$u") PrivateTmp" "yes;" "$(key "$u" PrivateTmp)"
	t_fail "$(basename "$u") has no unsubstituted @VAR@" grep -q "@[A-Z]*@" "$u"
done

# Every variable the env files mention is an option the daemon accepts.
for d in cluster-manager node-manager; do
	for v in $(sed -n 's/^#\(WGCNI_[A-Z0-9_]*\)=.*/\1/p' "$root/etc/default/wgcni-$d"); do
		opt=--$(echo "${v#WGCNI_}" | tr 'A-Z_' 'a-z-')
		t_ok "wgcni-$d --help documents $opt ($v)" \
			grep -q -- "$opt\b" <("$T_BIN/wgcni-$d" --help 2>&1)
	done
done

# systemd-analyze verify resolves ExecStart= on the host: show it the
# installed binaries by bind-mounting them over /usr/local/bin in a private
# mount namespace (nothing on the host changes).
if command -v systemd-analyze >/dev/null && unshare -m true 2>/dev/null; then
	verify() {
		unshare -m sh -c 'mount --bind "$1/usr/local/bin" /usr/local/bin &&
			shift && exec systemd-analyze verify --man=no "$@"' sh "$root" "$@"
	}
	t_ok "systemd-analyze verify passes" verify "$cm" "$nm" 2>"$T_TMP/verify.err"
	cat "$T_TMP/verify.err" >&2
	t_eq "systemd-analyze verify has no complaints" "" "$(cat "$T_TMP/verify.err")"
	# ...and it would complain: a unit with a typo does not pass silently.
	sed 's/^KillMode=process/KillMode=procss/' "$nm" >"$T_TMP/wgcni-broken.service"
	verify "$T_TMP/wgcni-broken.service" 2>"$T_TMP/verify-broken.err" || true
	t_ok "systemd-analyze verify catches a broken unit" \
		grep -q "kill mode" "$T_TMP/verify-broken.err"
else
	t_log "SKIP systemd-analyze verify: systemd-analyze or unshare -m unavailable"
fi

# Re-installing keeps configuration the administrator edited.
echo "WGCNI_LISTEN=127.0.0.1:9999" >>"$root/etc/default/wgcni-cluster-manager"
echo '{"edited":true}' >"$cl"
mk_install "$root" >"$T_TMP/install2.out" && rc=0 || rc=$?
t_eq "second make install" 0 "$rc"
t_ok "edited env file kept" grep -qx "WGCNI_LISTEN=127.0.0.1:9999" "$root/etc/default/wgcni-cluster-manager"
t_eq "edited conflist kept" '{"edited":true}' "$(cat "$cl")"
t_ok "kept files are reported" grep -q "KEEP.*10-wgcni.conflist" "$T_TMP/install2.out"

# PREFIX moves the daemons and the units follow; the CNI plugin stays put.
mk_install "$T_TMP/root-usr" PREFIX=/usr >/dev/null && rc=0 || rc=$?
t_eq "make install PREFIX=/usr" 0 "$rc"
t_ok "PREFIX=/usr: wgcnictl in /usr/bin" test -x "$T_TMP/root-usr/usr/bin/wgcnictl"
t_ok "PREFIX=/usr: plugin in /opt/cni/bin" test -x "$T_TMP/root-usr/opt/cni/bin/wgcni"
t_eq "PREFIX=/usr: ExecStart follows" "/usr/bin/wgcni-node-manager;" \
	"$(key "$T_TMP/root-usr/lib/systemd/system/wgcni-node-manager.service" ExecStart)"

# A missing build output fails loudly and installs nothing.
mkdir -p "$T_TMP/partial/bin"
for b in wgcni wgcni-cluster-manager wgcni-node-manager; do cp "$T_BIN/$b" "$T_TMP/partial/bin/"; done
env BUILDDIR="$T_TMP/partial" DESTDIR="$T_TMP/root-partial" "$T_ROOT/dist/install.sh" \
	>"$T_TMP/partial.out" 2>"$T_TMP/partial.err" && rc=0 || rc=$?
t_ok "missing wgcnictl: install fails" test "$rc" -ne 0
t_ok "missing wgcnictl: the message names it" grep -q "missing build output.*wgcnictl" "$T_TMP/partial.err"
t_fail "missing wgcnictl: nothing installed" test -e "$T_TMP/root-partial"

t_done

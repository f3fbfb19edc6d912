#!/bin/bash
# The systemd drop-in for cluster managers on etcd
# (dist/wgcni-cluster-manager-etcd.conf) applied to the shipped unit passes
# systemd-analyze verify; every WGCNI_* variable it and the environment
# file's etcd lines set is an option of the cluster manager; the TLS files
# arrive as credentials (the dynamic user cannot read root's files).
. "$(dirname "$0")/../lib.sh"

unit=$T_TMP/wgcni-cluster-manager.service
dropin=$T_ROOT/dist/wgcni-cluster-manager-etcd.conf
# A drop-in's sections are appended to the unit's: one file is the same unit.
{
	sed -e "s|@BINDIR@|$T_BIN|g" -e "s|@SYSCONFDIR@|/etc|g" "$T_ROOT/dist/wgcni-cluster-manager.service.in"
	cat "$dropin"
} >"$unit"
[ -x "$T_BIN/wgcni-cluster-manager" ] || { t_log "missing $T_BIN/wgcni-cluster-manager: make all"; exit 1; }
if command -v systemd-analyze >/dev/null; then
	t_ok "systemd-analyze verify: the unit with the etcd drop-in" \
		systemd-analyze verify --man=no "$unit" 2>"$T_TMP/verify.err"
	cat "$T_TMP/verify.err" >&2
	t_eq "  no complaints" "" "$(cat "$T_TMP/verify.err")"
	# ...and it would complain: a typo in the drop-in does not pass silently.
	sed 's/^LoadCredential=/LoadCredentail=/' "$unit" >"$T_TMP/broken.service"
	systemd-analyze verify --man=no "$T_TMP/broken.service" 2>"$T_TMP/broken.err" || true
	t_ok "  it catches a typo in the drop-in" grep -q "LoadCredentail" "$T_TMP/broken.err"
else
	t_log "SKIP systemd-analyze verify: no systemd-analyze"
fi
t_eq "three credentials, all under /etc/wgcni/etcd" 3 "$(grep -c '^LoadCredential=etcd-[a-z.-]*:/etc/wgcni/etcd/' "$dropin")"
t_eq "the TLS files point into the credentials directory" 3 "$(grep -c '^Environment=WGCNI_ETCD_[A-Z]*_FILE=%d/' "$dropin")"
"$T_BIN/wgcni-cluster-manager" --help >"$T_TMP/help" 2>&1 || true
for v in $( { sed -n 's/^Environment=\(WGCNI_[A-Z0-9_]*\)=.*/\1/p' "$dropin"
	     sed -n 's/^#\(WGCNI_\(DATASTORE\|ETCD_[A-Z_]*\)\)=.*/\1/p' "$T_ROOT/dist/wgcni-cluster-manager.default"; } | sort -u); do
	opt=--$(echo "${v#WGCNI_}" | tr 'A-Z_' 'a-z-')
	t_ok "$v is option $opt" grep -q -- "$opt\b" "$T_TMP/help"
done
t_done

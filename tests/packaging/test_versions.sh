#!/bin/bash
# Every binary answers --version with one line "<name> <version>" (the
# Makefile's VERSION), exit 0 and nothing on stderr, and --help exits 0.
. "$(dirname "$0")/../lib.sh"

version=$(sed -n 's/^VERSION := *//p' "$T_ROOT/Makefile")
t_ok "Makefile has a VERSION" test -n "$version"
for b in wgcni wgcni-cluster-manager wgcni-node-manager wgcnictl; do
	bin=$T_BIN/$b
	[ -x "$bin" ] || { t_log "missing $bin (build it first)"; exit 1; }
	set +e
	"$bin" --version >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	"$bin" --help >/dev/null 2>&1
	help_rc=$?
	set -e
	t_eq "$b --version: exit 0" 0 "$rc"
	t_eq "$b --version: one line, name and version" "$b $version" "$(cat "$T_TMP/out")"
	t_eq "$b --version: nothing on stderr" "" "$(cat "$T_TMP/err")"
	t_eq "$b --help: exit 0" 0 "$help_rc"
done
t_done

#!/bin/bash
# Builds tests/cnidriver (a libcni client) offline from Debian's Go sources
# into $BUILDDIR/cnidriver; does nothing when the binary is newer than its
# sources. Needs golang-go golang-github-appc-cni-dev
# golang-github-containernetworking-plugins-dev.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
: "${BUILDDIR:=$src/../../build}"
out="$BUILDDIR/cnidriver"
if [ -x "$out" ] && [ -z "$(find "$src" -name '*.go' -newer "$out")" ]; then
	exit 0
fi
command -v go >/dev/null || { echo "cnidriver: go not found (apt-get install golang-go)" >&2; exit 1; }
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] ||
	{ echo "cnidriver: libcni sources missing (apt-get install golang-github-appc-cni-dev)" >&2; exit 1; }
mkdir -p "$BUILDDIR"
# GOPATH mode: the sources come from /usr/share/gocode, nothing from the net.
# The Go build cache must be writable; keep it beside the output.
cd "$src"
GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off CGO_ENABLED=0 GOFLAGS= \
	GOCACHE="${GOCACHE:-$BUILDDIR/.gocache}" \
	go build -o "$out.tmp.$$" . && mv -f "$out.tmp.$$" "$out"

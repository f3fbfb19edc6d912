#!/bin/bash
# Builds the wgcni container image with podman (buildah inside) from the
# root filesystem of rootfs.sh: no registry, no network.
#
#   kubernetes/image/build.sh [OUTDIR]      (default $BUILDDIR/image)
# Environment: BUILDDIR (build/), IMAGE (localhost/wgcni:VERSION),
# PODMAN (the podman command, e.g. with --root/--runroot for a private
# store; default `podman`). Leaves the image in podman's store, an OCI
# archive OUTDIR/wgcni-image.tar (for `ctr image import`, `kind load
# image-archive`, `skopeo copy`), OUTDIR/files.txt, and prints the sizes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
OUT=${1:-$BUILDDIR/image}
VERSION=$(sed -n 's/^VERSION := //p' "$ROOT/Makefile")
IMAGE=${IMAGE:-localhost/wgcni:$VERSION}
read -r -a P <<<"${PODMAN:-podman}"
command -v "${P[0]}" >/dev/null || { echo "missing podman (make deps)" >&2; exit 1; }

BUILDDIR=$BUILDDIR "$ROOT/kubernetes/image/rootfs.sh" "$OUT"
"${P[@]}" build --quiet --network none --pull=never -f "$ROOT/kubernetes/image/Containerfile" \
	-t "$IMAGE" "$OUT/rootfs" >/dev/null
rm -f "$OUT/wgcni-image.tar"
"${P[@]}" save --quiet --format oci-archive -o "$OUT/wgcni-image.tar" "$IMAGE"
size=$("${P[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $IMAGE, $((size / 1000000)) MB ($size bytes) in the store," \
	"$(( $(stat -c %s "$OUT/wgcni-image.tar") / 1000000 )) MB as $OUT/wgcni-image.tar," \
	"$(grep -c . "$OUT/files.txt") paths"

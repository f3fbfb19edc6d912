# What the kubernetes tests share (source after tests/lib.sh or
# tests/lib_cluster.sh): the npm packages of tests/kubernetes (installed
# from its package-lock.json on first use, with k8s.mjs, into
# $BUILDDIR/kubernetes-tests: not under tests/, which the kernel VM's
# initramfs copies whole), kubectl's kustomize, and the manifests rendered
# with freshly made secrets.
#
#   k_setup                      node, npm packages, kubectl
#   k_render VARIANT             kubernetes/VARIANT ("" for the default) as
#                                `kubectl kustomize` renders it -> $K_OUT
#   k_json FILE                  the objects of FILE as a JSON array
#   k_validate FILE...           the API schema check (k8s.mjs validate)
K_DIR=$BUILDDIR/kubernetes-tests
K_VERSION=$(sed -n 's/^VERSION := //p' "$T_ROOT/Makefile")
K_IMAGE=localhost/wgcni:$K_VERSION

k_setup() {
	command -v node >/dev/null || { t_log "missing node (make deps: nodejs)"; exit 1; }
	command -v npm >/dev/null || { t_log "missing npm (it comes with nodejs)"; exit 1; }
	# kubectl: on this kind of machine with the system; Debian 12's
	# kubernetes-client (1.20) is too old for the kustomizations
	command -v kubectl >/dev/null || { t_log "missing kubectl (kubectl kustomize renders kubernetes/)"; exit 1; }
	mkdir -p "$K_DIR"
	if ! cmp -s "$T_ROOT/tests/kubernetes/package-lock.json" "$K_DIR/package-lock.json" ||
		[ ! -e "$K_DIR/node_modules/.package-lock.json" ]; then
		cp "$T_ROOT/tests/kubernetes/package.json" "$T_ROOT/tests/kubernetes/package-lock.json" "$K_DIR/"
		pp npm ci --prefix "$K_DIR" --no-audit --no-fund --loglevel=error >&2 ||
			{ t_log "npm ci (tests/kubernetes/package-lock.json) failed"; exit 1; }
	fi
	cp "$T_ROOT/tests/kubernetes/k8s.mjs" "$K_DIR/"
	# a copy of kubernetes/ with the two secret files the user makes
	K_SRC=$T_TMP/src
	rm -rf "$K_SRC" && mkdir -p "$K_SRC"
	cp -r "$T_ROOT/kubernetes" "$K_SRC/"
	K_TOKEN=$(head -c 24 /dev/urandom | base64)
	echo "$K_TOKEN" >"$K_SRC/kubernetes/base/secrets/token"
	(umask 077 && wg genpsk >"$K_SRC/kubernetes/base/secrets/preshared-key")
}

k_render() {
	K_OUT=$T_TMP/render-${1:-default}.yaml
	kubectl kustomize "$K_SRC/kubernetes/$1" >"$K_OUT"
}
k_json() { node "$K_DIR/k8s.mjs" json "$1"; }
k_validate() { node "$K_DIR/k8s.mjs" validate "$@"; }

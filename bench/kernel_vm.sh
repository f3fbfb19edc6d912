#!/bin/bash
# The kernel backend's figures, measured in the VM of tests/kernel (Debian's
# cloud kernel under qemu -accel tcg: this host's kernel has no WireGuard
# module), each a ratio to a reference run in the same VM in the same boot
# (tests/kernel/bench.sh says what exactly):
#   ADD+DEL median per container, through libcni and executed directly,
#   wgcni / bridge + host-local
#   iperf3 container -> container across nodes, and on one node,
#   / one kernel WireGuard tunnel between two namespaces
# TCG makes absolute numbers meaningless; the ratios are printed last.
#
#   make all && BUILDDIR=$PWD/build bench/kernel_vm.sh
#   N=20 SECS=5 ROUNDS=4 (defaults); WGCNI_VM_CPU, WGCNI_VM_SMP, WGCNI_VM_MEM
#   as for tests/kernel/test_kernel.sh
# Needs qemu-system-x86, iperf3, containernetworking-plugins and what
# tests/cnidriver/build.sh needs; takes 5-15 minutes on a shared 2-CPU host.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
export BUILDDIR
command -v iperf3 >/dev/null ||
	{ echo "bench/kernel_vm.sh needs iperf3: apt-get install -y --no-install-recommends iperf3" >&2; exit 1; }
for p in bridge host-local; do
	[ -x "/usr/lib/cni/$p" ] ||
		{ echo "bench/kernel_vm.sh needs /usr/lib/cni/$p: apt-get install containernetworking-plugins" >&2; exit 1; }
done
for b in wgcni wgcni-node-manager wgcni-cluster-manager; do
	[ -x "$BUILDDIR/bin/$b" ] || { echo "missing $BUILDDIR/bin/$b: make BUILDDIR=$BUILDDIR all" >&2; exit 1; }
done
rc=0
WGCNI_VM_SUITE=bench WGCNI_VM_TESTS="n=${N:-20},secs=${SECS:-5},rounds=${ROUNDS:-4}" \
	"$ROOT/tests/kernel/test_kernel.sh" || rc=$?
log=$BUILDDIR/kernel-vm/console-bench.log
echo
echo "kernel backend in the VM (qemu TCG, -cpu ${WGCNI_VM_CPU:-max}, -smp ${WGCNI_VM_SMP:-2}, -m ${WGCNI_VM_MEM:-1536}; host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
tr -d '\r' <"$log" | sed -n 's/^BENCH-RESULT //p'
[ "$rc" = 0 ] || echo "kernel VM bench failed (rc=$rc): the figures above are not valid" >&2
exit "$rc"

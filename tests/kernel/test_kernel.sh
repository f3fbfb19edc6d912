#!/bin/bash
# The kernel backend against a real kernel: boot Debian's cloud kernel (it
# has the WireGuard module; this host's kernel does not) under qemu with TCG
# and run, inside, the kernel-only unit tests and the end-to-end scenarios
# with E2E_BACKEND=kernel (tests/kernel/in-vm.sh lists them); read the
# verdict from the serial console. No network device is given to the VM
# (-nic none): all traffic stays in namespaces inside it.
#
#   WGCNI_VM_SUITE=smoke   only prove the module and `wg` work (seconds)
#   WGCNI_VM_TESTS=a,b     run these instead of the default list, e.g.
#                          unit/test_wg_kernel_live,e2e/test_mesh; "all"
#                          adds every e2e scenario (~11 min in the VM)
#   WGCNI_VM_SUITE=bench   the benchmark instead (tests/kernel/bench.sh; its
#                          initramfs adds iperf3, bridge and host-local);
#                          WGCNI_VM_TESTS=n=20,secs=5,rounds=4 its knobs.
#                          bench/kernel_vm.sh runs it and prints the ratios
#   WGCNI_VM_CPU=MODEL     qemu -cpu (max); WGCNI_VM_SMP, WGCNI_VM_MEM (2, 1536)
#   WGCNI_VM_TIMEOUT=S     bound on the VM run (570 s; 2400 s for "all",
#                          1500 s for bench)
# Fails when the VM does not boot or reach the suite, when it does not
# finish in time, when no test ran, or when any test failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
BUILDDIR=$(cd "$BUILDDIR" && pwd)
export BUILDDIR
OUT="$BUILDDIR/kernel-vm"
SUITE=${WGCNI_VM_SUITE:-suite}
TESTS=${WGCNI_VM_TESTS:-}
# Bounded: TCG is slow, but the suite must finish well within 10 minutes.
if [ "$TESTS" = all ]; then VM_TIMEOUT=${WGCNI_VM_TIMEOUT:-2400}; else VM_TIMEOUT=${WGCNI_VM_TIMEOUT:-570}; fi
if [ "$SUITE" = bench ]; then VM_TIMEOUT=${WGCNI_VM_TIMEOUT:-1500}; fi

command -v qemu-system-x86_64 >/dev/null ||
	{ echo "qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 1; }
if [ "$SUITE" = suite ]; then
	# What the VM runs besides the release binaries: the libcni driver of
	# the e2e scenarios and the sanitized unit tests that need the module.
	"$ROOT/tests/cnidriver/build.sh"
	make -s -C "$ROOT" BUILDDIR="$BUILDDIR" \
		"$BUILDDIR/asan/tests/test_wg_kernel_live" "$BUILDDIR/asan/tests/test_wg_genl"
fi
if [ "$SUITE" = bench ]; then
	# the libcni driver both plugins are timed through; the bench tools
	"$ROOT/tests/cnidriver/build.sh"
	export WGCNI_VM_BENCH=1
fi
"$ROOT/tests/kernel/build-initramfs.sh" "$OUT"

log="$OUT/console-$SUITE.log"
start=$(date +%s)
rc=0
timeout "$VM_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu "${WGCNI_VM_CPU:-max}" \
	-smp "${WGCNI_VM_SMP:-2}" -m "${WGCNI_VM_MEM:-1536}" -nographic \
	-no-reboot -nic none -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet wgcni.suite=$SUITE${TESTS:+ wgcni.tests=$TESTS}" \
	</dev/null >"$log" 2>&1 || rc=$?
secs=$(($(date +%s) - start))
# The suite's own output (from the begin marker on) without firmware noise.
sed -n '/WGCNI-VM-BEGIN/,$p' "$log" | tr -d '\r'
echo "# kernel VM ran ${secs}s (console log: $log)"
grep '^--- \(PASS\|FAIL\)' "$log" | tr -d '\r' | sed 's/^/# /' || true

if [ "$rc" = 124 ]; then
	echo "kernel VM: timed out after ${VM_TIMEOUT}s" >&2
	exit 1
fi
grep -q 'WGCNI-VM-BEGIN' "$log" || { echo "kernel VM: did not boot to the suite (qemu rc=$rc)" >&2; exit 1; }
grep -q 'WGCNI-VM-RESULT' "$log" || { echo "kernel VM: suite did not finish (qemu rc=$rc)" >&2; exit 1; }
if [ "$SUITE" = suite ]; then
	summary=$(tr -d '\r' <"$log" | sed -n 's/^kernel: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | tail -n 1)
	[ -n "$summary" ] || { echo "kernel VM: no summary line" >&2; exit 1; }
	read -r npass nfail <<<"$summary"
	[ "$nfail" = 0 ] || { echo "kernel VM: $nfail test(s) failed" >&2; exit 1; }
	[ "$npass" -gt 0 ] || { echo "kernel VM: no test ran" >&2; exit 1; }
fi
grep -q 'WGCNI-VM-RESULT rc=0' "$log" || { echo "kernel VM: suite failed" >&2; exit 1; }
echo "kernel VM: passed in ${secs}s"

#!/bin/bash
# The kernel backend against a real kernel: boot Debian's cloud kernel (it
# has the WireGuard module; this host's kernel does not) under qemu with TCG,
# run tests/kernel/scenario_*.sh inside with WGCNI_TEST_BACKEND=kernel,
# read the verdict from the serial console. No network device is given to
# the VM (-nic none): all traffic stays in namespaces inside it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILDDIR:=$ROOT/build}"
OUT="$BUILDDIR/kernel-vm"
SUITE=${WGCNI_VM_SUITE:-suite}

"$ROOT/tests/kernel/build-initramfs.sh" "$OUT"
log="$OUT/console-$SUITE.log"
start=$(date +%s)
# Bounded: TCG is slow, but the suite must finish well within 10 minutes.
timeout 540 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 -nographic \
	-no-reboot -nic none -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet wgcni.suite=$SUITE" >"$log" 2>&1 || true
secs=$(( $(date +%s) - start ))
# Show the suite's own output (between the markers) without the firmware noise.
sed -n '/WGCNI-VM-BEGIN/,/WGCNI-VM-RESULT/p' "$log" | tr -d '\r'
echo "# kernel VM ran ${secs}s (console log: $log)"
grep -q 'WGCNI-VM-BEGIN' "$log" || { echo "the VM did not reach the suite" >&2; exit 1; }
grep -q 'WGCNI-VM-RESULT rc=0' "$log"

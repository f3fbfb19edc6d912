#!/bin/bash
# Runs the cmocka unit test binaries given as arguments and totals their
# tests. A skipped test (e.g. one that needs the kernel's WireGuard module,
# run for real in the VM of tests/kernel) is counted and named, never as a
# pass.
set -u
pass=0 fail=0 skip=0 bad=()
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' <<<"$out")
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:$/\1/p' <<<"$out")
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:$/\1/p' <<<"$out")
	pass=$((pass + ${p:-0})) skip=$((skip + ${s:-0}))
	if [ "$rc" -ne 0 ]; then
		fail=$((fail + ${f:-1}))
		bad+=("$t")
	fi
done
for t in "${bad[@]}"; do echo "FAILED: $t"; done
echo "unit: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

#!/bin/bash
# Runs the integration test scripts tests/<area>/test_*.sh in order (areas in
# the order below, so the foundation is proven before what stands on it).
# Each script exits 0 (pass), 77 (skipped: counted and shown, never as a
# pass) or anything else (fail). TESTS=regex selects scripts by path.
set -u
cd "$(dirname "$0")/.."
: "${BUILDDIR:=$PWD/build}"
export BUILDDIR
areas="cluster-manager etcd node-manager cni cli e2e runtimes packaging kubernetes kernel"
pass=0 fail=0 skip=0 failed=()
for area in $areas; do
	for t in tests/"$area"/test_*.sh; do
		[ -e "$t" ] || continue
		if [ -n "${TESTS:-}" ] && ! [[ "$t" =~ $TESTS ]]; then continue; fi
		echo "=== RUN  $t"
		start=$(date +%s)
		bash "$t"
		rc=$?
		secs=$(( $(date +%s) - start ))
		case $rc in
		0) pass=$((pass + 1)); echo "--- PASS $t (${secs}s)";;
		77) skip=$((skip + 1)); echo "--- SKIP $t (${secs}s)";;
		*) fail=$((fail + 1)); failed+=("$t"); echo "--- FAIL $t (rc=$rc, ${secs}s)";;
		esac
	done
done
for t in "${failed[@]}"; do echo "FAILED: $t"; done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

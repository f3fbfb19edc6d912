#!/bin/bash
# Runs inside the kernel-backend VM (see tests/kernel/init), from /wgcni.
#   smoke         the kernel's WireGuard is there and `wg` configures it
#   suite [LIST]  the kernel-backend tests: LIST is comma-separated, each
#                 e2e/NAME or kernel/NAME (tests/<that>.sh, run with
#                 E2E_BACKEND=kernel) or unit/NAME (a cmocka binary from
#                 build/asan/tests, run with WGCNI_REQUIRE_KERNEL=1);
#                 "all": the default list plus every other e2e scenario
#   bench [K=V,...]  tests/kernel/bench.sh (never part of the suite), with
#                 n=, secs=, rounds= as BENCH_N, BENCH_SECS, BENCH_ROUNDS
# Prints "=== RUN", "--- PASS|FAIL ... (Ns)" per test and a final
# "kernel: P passed, F failed"; fails when any failed or none ran.
set -u
export BUILDDIR=${BUILDDIR:-/wgcni/build}

# The default: what fits the time budget under TCG (well under 10 minutes
# even on a loaded host), the kernel-only tests first, then the e2e scenario
# that stresses the kernel most (30 plugins creating, moving and deleting
# kernel devices at once), then containerMesh on kernel devices (the node
# manager peers containers through the namespaces it recorded). scenario_restart
# covers the node manager restart with a stricter loss check than
# e2e/test_nm_restart. The other e2e scenarios pass too but take 2-5
# minutes each here: "all" runs them.
DEFAULT_TESTS=unit/test_wg_kernel_live,unit/test_wg_genl,kernel/scenario_restart,e2e/test_parallel,e2e/test_container_mesh

# A cmocka binary passes when it exits 0 and skipped nothing but the tests
# that exist for kernels without the module.
SKIP_OK="test_no_kernel_family"
run_unit() {
	local bin=$BUILDDIR/asan/tests/$1 out rc skipped
	[ -x "$bin" ] || { echo "# missing $bin"; return 1; }
	out=$(mktemp)
	WGCNI_REQUIRE_KERNEL=1 "$bin" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	skipped=$(sed -n 's/^\[  SKIPPED \] \(test_[a-z0-9_]*\)$/\1/p' "$out" | sort -u |
		grep -vxF -e "$SKIP_OK" | xargs)
	rm -f "$out"
	if [ -n "$skipped" ]; then
		echo "# skipped in the VM, where the kernel has the module: $skipped"
		return 1
	fi
	return "$rc"
}

run_script() {
	local t=tests/$1.sh
	[ -e "$t" ] || { echo "# missing $t"; return 1; }
	E2E_BACKEND=kernel WGCNI_TEST_BACKEND=kernel bash "$t"
}

case "${1:-smoke}" in
smoke)
	set -e
	ip link add wgsmoke type wireguard
	wg set wgsmoke listen-port 51820 private-key <(wg genkey)
	wg show wgsmoke
	ip link del wgsmoke
	echo "smoke: 1 passed, 0 failed"
	;;
suite)
	list=${2:-$DEFAULT_TESTS}
	if [ "$list" = all ]; then
		list=$DEFAULT_TESTS
		for t in tests/e2e/test_*.sh tests/kernel/scenario_*.sh; do
			t=${t#tests/}
			t=${t%.sh}
			[[ ",$list," == *",$t,"* ]] || list="$list,$t"
		done
	fi
	pass=0 fail=0 failed=()
	for t in ${list//,/ }; do
		echo "=== RUN  $t"
		start=$(date +%s)
		case $t in
		unit/*) run_unit "${t#unit/}" ;;
		*) run_script "$t" ;;
		esac
		rc=$?
		secs=$(($(date +%s) - start))
		if [ "$rc" = 0 ]; then pass=$((pass + 1)); echo "--- PASS $t (${secs}s)"
		else fail=$((fail + 1)); failed+=("$t"); echo "--- FAIL $t (rc=$rc, ${secs}s)"; fi
	done
	for t in "${failed[@]}"; do echo "FAILED: $t"; done
	echo "kernel: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
	;;
bench)
	for kv in ${2//,/ }; do
		case $kv in
		n=*) export BENCH_N=${kv#n=} ;;
		secs=*) export BENCH_SECS=${kv#secs=} ;;
		rounds=*) export BENCH_ROUNDS=${kv#rounds=} ;;
		*) echo "in-vm.sh: unknown bench parameter \`$kv'" >&2; exit 1 ;;
		esac
	done
	run_script kernel/bench
	;;
*)
	echo "in-vm.sh: unknown suite \`$1'" >&2
	exit 1
	;;
esac

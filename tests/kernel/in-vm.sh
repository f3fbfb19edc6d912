#!/bin/bash
# Runs inside the kernel-backend VM (see tests/kernel/init).
#   smoke: the kernel's WireGuard is there and `wg` configures it
#   suite: the kernel-backend scenarios
set -u
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
	pass=0 fail=0
	for t in tests/kernel/scenario_*.sh; do
		echo "=== RUN  $t"
		if WGCNI_TEST_BACKEND=kernel bash "$t"; then pass=$((pass + 1)); echo "--- PASS $t"
		else fail=$((fail + 1)); echo "--- FAIL $t"; fi
	done
	echo "kernel: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
	;;
esac

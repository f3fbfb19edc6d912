#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prefixalloc.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static struct ipnet net(const char *s)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse(s, &n, true), 0);
	return n;
}

static void assert_net(const struct ipnet *n, const char *want)
{
	char buf[IPNET_STRLEN];

	assert_string_equal(ipnet_format(n, buf), want);
}

/* The deliberately naive reference: one bool per child, linear scans. */
struct naive {
	bool *used;
	size_t count, nused;
};

static long naive_lowest_free(const struct naive *nv)
{
	for (size_t i = 0; i < nv->count; i++)
		if (!nv->used[i])
			return (long)i;
	return -1;
}

static void check_all(struct prefixalloc *pa, const struct naive *nv)
{
	const struct ipnet *parent = prefixalloc_parent(pa);
	struct ipnet c;

	assert_int_equal(prefixalloc_used(pa), nv->nused);
	for (size_t i = 0; i < nv->count; i++) {
		assert_int_equal(ipnet_child(parent, prefixalloc_childlen(pa), i, &c), 0);
		assert_int_equal(prefixalloc_is_used(pa, &c), nv->used[i]);
	}
}

/*
 * Random alloc/reserve/release against the reference. Phases alternate
 * between mostly filling and mostly draining so both exhaustion and heavy
 * fragmentation are visited.
 */
static void random_run(const char *parent_s, unsigned int childlen, size_t want_count,
		       unsigned int ops)
{
	struct ipnet parent = net(parent_s), c;
	struct prefixalloc *pa = prefixalloc_new(&parent, childlen);
	struct naive nv = { .count = want_count };
	unsigned int n_alloc = 0, n_nospc = 0, n_exist = 0, n_noent = 0;

	assert_non_null(pa);
	assert_int_equal(prefixalloc_capacity(pa), want_count);
	assert_int_equal(prefixalloc_childlen(pa), childlen);
	nv.used = calloc(nv.count, sizeof(*nv.used));
	assert_non_null(nv.used);

	for (unsigned int op = 0; op < ops; op++) {
		/* phase: 0..2 fill (alloc-heavy), 3 drain (release-heavy) */
		unsigned int phase = (op / (unsigned int)nv.count) % 4;
		unsigned int roll = (unsigned int)(rnd() % 100);
		unsigned int p_alloc = phase < 3 ? 55 : 10, p_release = phase < 3 ? 20 : 70;
		size_t i = (size_t)(rnd() % nv.count);
		int ret;

		if (roll < p_alloc) {
			long want = naive_lowest_free(&nv);

			ret = prefixalloc_alloc(pa, &c);
			if (want < 0) {
				assert_int_equal(ret, -ENOSPC);
				n_nospc++;
			} else {
				struct ipnet exp;

				assert_int_equal(ret, 0);
				assert_int_equal(ipnet_child(&parent, childlen, (uint64_t)want, &exp), 0);
				assert_true(ipaddr_equal(&c.addr, &exp.addr));
				assert_int_equal(c.prefixlen, childlen);
				nv.used[want] = true;
				nv.nused++;
				n_alloc++;
			}
		} else if (roll < p_alloc + p_release) {
			assert_int_equal(ipnet_child(&parent, childlen, i, &c), 0);
			ret = prefixalloc_release(pa, &c);
			if (nv.used[i]) {
				assert_int_equal(ret, 0);
				nv.used[i] = false;
				nv.nused--;
			} else {
				assert_int_equal(ret, -ENOENT);
				n_noent++;
			}
		} else if (roll < 95) {
			if (roll & 1) {
				assert_int_equal(ipnet_child(&parent, childlen, i, &c), 0);
				ret = prefixalloc_reserve(pa, &c);
			} else
				ret = prefixalloc_reserve_index(pa, i);
			if (nv.used[i]) {
				assert_int_equal(ret, -EEXIST);
				n_exist++;
			} else {
				assert_int_equal(ret, 0);
				nv.used[i] = true;
				nv.nused++;
			}
		} else {
			assert_int_equal(ipnet_child(&parent, childlen, i, &c), 0);
			assert_int_equal(prefixalloc_is_used(pa, &c), nv.used[i]);
		}
		assert_int_equal(prefixalloc_used(pa), nv.nused);
		if (op % 97 == 0)
			check_all(pa, &nv);
	}
	check_all(pa, &nv);
	/* every path was actually taken */
	assert_true(n_alloc > 0 && n_nospc > 0 && n_exist > 0 && n_noent > 0);
	free(nv.used);
	prefixalloc_free(pa);
}

static void test_random_v4_24_of_16(void **state)
{
	random_run("10.100.0.0/16", 24, 256, 6000);
}

static void test_random_v4_30_of_24(void **state)
{
	random_run("10.100.3.0/24", 30, 64, 4000);
}

static void test_random_v4_32_of_20(void **state)
{
	random_run("10.96.0.0/20", 32, 4096, 12000);
}

static void test_random_v6_128_of_120(void **state)
{
	random_run("fd00::100/120", 128, 256, 6000);
}

static void test_random_v6_64_of_56(void **state)
{
	random_run("fd10:100:0:ff00::/56", 64, 256, 6000);
}

static void test_exhaustion(void **state)
{
	struct ipnet parent = net("10.100.3.0/24"), c, seen[64];
	struct prefixalloc *pa = prefixalloc_new(&parent, 30);

	assert_non_null(pa);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(prefixalloc_alloc(pa, &seen[i]), 0);
		assert_true(ipnet_contains_net(&parent, &seen[i]));
		for (int j = 0; j < i; j++)
			assert_false(ipaddr_equal(&seen[i].addr, &seen[j].addr));
	}
	assert_net(&seen[0], "10.100.3.0/30");
	assert_net(&seen[63], "10.100.3.252/30");
	for (int k = 0; k < 3; k++)
		assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	assert_int_equal(prefixalloc_used(pa), 64);
	assert_int_equal(prefixalloc_reserve(pa, &seen[5]), -EEXIST);
	/* one back, that one again, then full again */
	assert_int_equal(prefixalloc_release(pa, &seen[17]), 0);
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "10.100.3.68/30");
	assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	prefixalloc_free(pa);

	/* a parent that is its own only child */
	parent = net("10.9.9.9/32");
	pa = prefixalloc_new(&parent, 32);
	assert_non_null(pa);
	assert_int_equal(prefixalloc_capacity(pa), 1);
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "10.9.9.9/32");
	assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	assert_int_equal(prefixalloc_release(pa, &c), 0);
	assert_int_equal(prefixalloc_release(pa, &c), -ENOENT);
	assert_int_equal(prefixalloc_reserve(pa, &c), 0);
	assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	prefixalloc_free(pa);
}

static void test_invalid(void **state)
{
	struct ipnet parent = net("10.100.0.0/16"), c;
	struct prefixalloc *pa;

	errno = 0;
	assert_null(prefixalloc_new(&parent, 15));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(prefixalloc_new(&parent, 33));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(prefixalloc_new(NULL, 24));
	assert_int_equal(errno, EINVAL);
	prefixalloc_free(NULL);

	pa = prefixalloc_new(&parent, 24);
	assert_non_null(pa);
	static const char *const foreign[] = {
		"10.101.0.0/24", "10.99.255.0/24", "10.100.0.0/25", "10.100.0.0/23",
		"10.100.0.0/16", "fd00::/24", "0.0.0.0/24",
	};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		c = net(foreign[i]);
		assert_int_equal(prefixalloc_reserve(pa, &c), -EINVAL);
		assert_int_equal(prefixalloc_release(pa, &c), -EINVAL);
		assert_false(prefixalloc_is_used(pa, &c));
	}
	/* unaligned: host bits beyond /24 set */
	assert_int_equal(ipnet_parse_host("10.100.3.1/24", &c), 0);
	assert_int_equal(prefixalloc_reserve(pa, &c), -EINVAL);
	assert_int_equal(prefixalloc_release(pa, &c), -EINVAL);
	assert_int_equal(prefixalloc_reserve(pa, NULL), -EINVAL);
	assert_int_equal(prefixalloc_reserve_index(pa, 256), -EINVAL);
	assert_int_equal(prefixalloc_reserve_index(pa, UINT64_MAX), -EINVAL);
	assert_int_equal(prefixalloc_used(pa), 0);

	/* double release */
	c = net("10.100.3.0/24");
	assert_int_equal(prefixalloc_release(pa, &c), -ENOENT);
	assert_int_equal(prefixalloc_reserve(pa, &c), 0);
	assert_true(prefixalloc_is_used(pa, &c));
	assert_int_equal(prefixalloc_reserve(pa, &c), -EEXIST);
	assert_int_equal(prefixalloc_reserve_index(pa, 3), -EEXIST);
	assert_int_equal(prefixalloc_release(pa, &c), 0);
	assert_int_equal(prefixalloc_release(pa, &c), -ENOENT);
	assert_false(prefixalloc_is_used(pa, &c));
	assert_int_equal(prefixalloc_used(pa), 0);

	/* reserved children are skipped by alloc */
	assert_int_equal(prefixalloc_reserve_index(pa, 0), 0);
	assert_int_equal(prefixalloc_reserve_index(pa, 1), 0);
	assert_int_equal(prefixalloc_reserve_index(pa, 3), 0);
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "10.100.2.0/24");
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "10.100.4.0/24");
	prefixalloc_free(pa);

	/* a parent passed with host bits is masked */
	assert_int_equal(ipnet_parse_host("10.100.3.1/24", &parent), 0);
	pa = prefixalloc_new(&parent, 32);
	assert_non_null(pa);
	assert_net(prefixalloc_parent(pa), "10.100.3.0/24");
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "10.100.3.0/32");
	prefixalloc_free(pa);
}

/* /128 out of a /64: 2^64 children, count saturated, allocation from the
 * front stays O(1) and the top of the space still works. */
static void test_huge_v6(void **state)
{
	struct ipnet parent = net("fd00:1:2:3::/64"), c, exp;
	struct prefixalloc *pa = prefixalloc_new(&parent, 128);

	assert_non_null(pa);
	assert_true(prefixalloc_capacity(pa) == UINT64_MAX);
	for (uint64_t i = 0; i < 200000; i++) {
		assert_int_equal(prefixalloc_alloc(pa, &c), 0);
		if (i % 4999 == 0) {
			assert_int_equal(ipnet_child(&parent, 128, i, &exp), 0);
			assert_true(ipaddr_equal(&c.addr, &exp.addr));
		}
	}
	assert_net(&c, "fd00:1:2:3::3:d3f/128");
	assert_int_equal(prefixalloc_used(pa), 200000);

	c = net("fd00:1:2:3:ffff:ffff:ffff:fffe/128");
	assert_int_equal(prefixalloc_reserve(pa, &c), 0);
	assert_int_equal(prefixalloc_reserve(pa, &c), -EEXIST);
	assert_true(prefixalloc_is_used(pa, &c));
	/* the 2^64-th child is past the saturated count: not managed */
	c = net("fd00:1:2:3:ffff:ffff:ffff:ffff/128");
	assert_int_equal(prefixalloc_reserve(pa, &c), -EINVAL);
	c = net("fd00:1:2:3::7/128");
	assert_int_equal(prefixalloc_release(pa, &c), 0);
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "fd00:1:2:3::7/128");
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "fd00:1:2:3::3:d40/128");
	c = net("fd00:1:2:4::/128");
	assert_int_equal(prefixalloc_reserve(pa, &c), -EINVAL);
	prefixalloc_free(pa);

	/* beyond 2^64: /128 out of a /48 */
	parent = net("fd10:100::/48");
	pa = prefixalloc_new(&parent, 128);
	assert_non_null(pa);
	assert_true(prefixalloc_capacity(pa) == UINT64_MAX);
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "fd10:100::/128");
	assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_net(&c, "fd10:100::1/128");
	c = net("fd10:100:0:1::/128"); /* index 2^64: out of the managed range */
	assert_int_equal(prefixalloc_reserve(pa, &c), -EINVAL);
	prefixalloc_free(pa);
}

/*
 * Random ops over a 2^64 space (/128 of a /64), against a naive reference
 * over three windows far apart: the bottom, the middle and the very top of
 * the index range, so merges and splits happen next to huge free gaps.
 */
static uint64_t window_index(size_t slot)
{
	if (slot < 512)
		return slot;
	if (slot < 768)
		return ((uint64_t)1 << 63) - 128 + (slot - 512);
	return UINT64_MAX - 256 + (slot - 768); /* last managed: UINT64_MAX - 1 */
}

static void test_random_huge_windows(void **state)
{
	enum { SLOTS = 1023 };
	struct ipnet parent = net("fd00:9::/64"), c, exp;
	struct prefixalloc *pa = prefixalloc_new(&parent, 128);
	bool used[SLOTS] = { false };
	uint64_t nused = 0;

	assert_non_null(pa);
	for (int op = 0; op < 20000; op++) {
		size_t slot = (size_t)(rnd() % SLOTS);
		unsigned int roll = (unsigned int)(rnd() % 100);
		int ret;

		assert_int_equal(ipnet_child(&parent, 128, window_index(slot), &c), 0);
		if (roll < 30) {
			size_t low = 0;

			while (low < 512 && used[low])
				low++;
			if (low == 512)
				continue; /* lowest free lies outside the windows */
			assert_int_equal(prefixalloc_alloc(pa, &c), 0);
			assert_int_equal(ipnet_child(&parent, 128, low, &exp), 0);
			assert_true(ipaddr_equal(&c.addr, &exp.addr));
			used[low] = true;
			nused++;
		} else if (roll < 65) {
			ret = prefixalloc_release(pa, &c);
			assert_int_equal(ret, used[slot] ? 0 : -ENOENT);
			nused -= used[slot];
			used[slot] = false;
		} else if (roll < 95) {
			ret = prefixalloc_reserve(pa, &c);
			assert_int_equal(ret, used[slot] ? -EEXIST : 0);
			nused += !used[slot];
			used[slot] = true;
		} else
			assert_int_equal(prefixalloc_is_used(pa, &c), used[slot]);
		assert_true(prefixalloc_used(pa) == nused);
	}
	for (size_t slot = 0; slot < SLOTS; slot++) {
		assert_int_equal(ipnet_child(&parent, 128, window_index(slot), &c), 0);
		assert_int_equal(prefixalloc_is_used(pa, &c), used[slot]);
	}
	prefixalloc_free(pa);
}

/* Heavy fragmentation stays fast: every other /32 of a /16 freed in random
 * order, then all reallocated lowest first. */
static void test_fragmentation(void **state)
{
	enum { N = 65536 };
	struct ipnet parent = net("10.100.0.0/16"), c;
	struct prefixalloc *pa = prefixalloc_new(&parent, 32);
	static uint32_t order[N / 2];

	assert_non_null(pa);
	for (unsigned int i = 0; i < N; i++)
		assert_int_equal(prefixalloc_alloc(pa, &c), 0);
	assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	for (unsigned int i = 0; i < N / 2; i++)
		order[i] = 2 * i + 1;
	for (unsigned int i = N / 2 - 1; i > 0; i--) {
		unsigned int j = (unsigned int)(rnd() % (i + 1));
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned int i = 0; i < N / 2; i++) {
		assert_int_equal(ipnet_child(&parent, 32, order[i], &c), 0);
		assert_int_equal(prefixalloc_release(pa, &c), 0);
	}
	assert_int_equal(prefixalloc_used(pa), N / 2);
	for (unsigned int i = 0; i < N / 2; i++) {
		struct ipnet exp;

		assert_int_equal(prefixalloc_alloc(pa, &c), 0);
		assert_int_equal(ipnet_child(&parent, 32, 2 * i + 1, &exp), 0);
		assert_true(ipaddr_equal(&c.addr, &exp.addr));
	}
	assert_int_equal(prefixalloc_alloc(pa, &c), -ENOSPC);
	prefixalloc_free(pa);
}

int main(void)
{
	const char *seed = getenv("TEST_SEED");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_v4_24_of_16),
		cmocka_unit_test(test_random_v4_30_of_24),
		cmocka_unit_test(test_random_v4_32_of_20),
		cmocka_unit_test(test_random_v6_128_of_120),
		cmocka_unit_test(test_random_v6_64_of_56),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_huge_v6),
		cmocka_unit_test(test_random_huge_windows),
		cmocka_unit_test(test_fragmentation),
	};

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ULL;
	if (!rng_state)
		rng_state = 1;
	printf("prefixalloc: TEST_SEED=%#llx\n", (unsigned long long)rng_state);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

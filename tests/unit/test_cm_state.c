/*
 * The cluster manager's state (cluster-manager/state.c) on a temporary
 * directory: subnet allocation (stable per node, never twice, exhaustion
 * that changes nothing), key registration, deletion freeing the subnet, the
 * revision moving on every change and only then, the state surviving a
 * close and reopen, and the one-manager-per-directory lock.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "state.h"

#define KEY_A "YAnxYWbBuDxnMfi0s3tw9nUVVtaLL5Bsv7BkRlcbmXg="
#define KEY_B "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static char tmpdir[64];

static int setup_dir(void **state)
{
	log_init("test_cm_state", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	strcpy(tmpdir, "/tmp/test_cm_state.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* v4 only when v6 is NULL; childlen 24 for v4, 64 for v6. */
static struct cm_config config(const char *v4, const char *v6)
{
	struct cm_config cfg = { 0 };

	if (v4) {
		cfg.has_cidr[CM_V4] = true;
		assert_int_equal(ipnet_parse(v4, &cfg.cidr[CM_V4], true), 0);
		cfg.childlen[CM_V4] = 24;
	}
	if (v6) {
		cfg.has_cidr[CM_V6] = true;
		assert_int_equal(ipnet_parse(v6, &cfg.cidr[CM_V6], true), 0);
		cfg.childlen[CM_V6] = 64;
	}
	return cfg;
}

static struct cm_state *open_state(const struct cm_config *cfg)
{
	char err[512] = "";
	struct cm_state *st = cm_state_open(tmpdir, cfg, err, sizeof(err));

	if (!st) {
		print_error("cm_state_open: %s\n", err);
		fail();
	}
	return st;
}

static void test_allocate_is_stable(void **state)
{
	struct cm_config cfg = config("10.200.0.0/16", "fd00:200::/48");
	struct cm_state *st = open_state(&cfg);
	struct cm_node *a, *again, *b;
	uint64_t rev;
	size_t n;

	assert_int_equal(cm_state_revision(st), 0);
	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_string_equal(a->name, "node-a");
	assert_true(a->has_subnet[CM_V4]);
	assert_true(a->has_subnet[CM_V6]);
	assert_int_equal(a->n_subnets, 2);
	assert_string_equal(a->subnets[0], a->subnet_str[CM_V4]);
	assert_string_equal(a->subnets[1], a->subnet_str[CM_V6]);
	assert_string_equal(a->subnet_str[CM_V4], "10.200.0.0/24");
	assert_string_equal(a->subnet_str[CM_V6], "fd00:200::/64");
	assert_string_equal(a->address, "10.200.0.1/24,fd00:200::1/64");
	assert_string_equal(a->public_key, "");
	rev = cm_state_revision(st);
	assert_int_equal(rev, 1);

	/* Asking again changes nothing and answers the same subnets. */
	assert_int_equal(cm_state_allocate(st, "node-a", &again), 0);
	assert_ptr_equal(again, a);
	assert_string_equal(again->subnet_str[CM_V4], "10.200.0.0/24");
	assert_int_equal(cm_state_revision(st), rev);

	assert_int_equal(cm_state_allocate(st, "node-b", &b), 0);
	assert_string_not_equal(b->subnet_str[CM_V4], a->subnet_str[CM_V4]);
	assert_string_not_equal(b->subnet_str[CM_V6], a->subnet_str[CM_V6]);
	assert_int_equal(cm_state_revision(st), rev + 1);
	assert_ptr_equal(cm_state_find(st, "node-b"), b);
	assert_null(cm_state_find(st, "node-c"));
	cm_state_nodes(st, &n);
	assert_int_equal(n, 2);
	cm_state_close(st);
}

static void test_no_subnet_twice_and_exhaustion(void **state)
{
	/* A /22 holds four /24s. */
	struct cm_config cfg = config("10.200.0.0/22", "fd00:200::/48");
	struct cm_state *st = open_state(&cfg);
	struct cm_node *nodes[4], *none = NULL;
	uint64_t used, cap, rev;
	char name[32];
	size_t n;

	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "node-%d", i);
		assert_int_equal(cm_state_allocate(st, name, &nodes[i]), 0);
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(nodes[i]->subnet_str[CM_V4],
						nodes[j]->subnet_str[CM_V4]);
			assert_string_not_equal(nodes[i]->subnet_str[CM_V6],
						nodes[j]->subnet_str[CM_V6]);
		}
		assert_true(ipnet_contains_net(&cfg.cidr[CM_V4], &nodes[i]->subnet[CM_V4]));
	}
	assert_true(cm_state_usage(st, CM_V4, &used, &cap));
	assert_int_equal(used, 4);
	assert_int_equal(cap, 4);

	/* Full: refused, and nothing changed (the IPv6 subnet it did get is
	 * given back, no node is created, the revision stays). */
	rev = cm_state_revision(st);
	assert_true(cm_state_usage(st, CM_V6, &used, &cap));
	assert_int_equal(used, 4);
	assert_int_equal(cm_state_allocate(st, "node-4", &none), -ENOSPC);
	assert_null(none);
	assert_null(cm_state_find(st, "node-4"));
	assert_int_equal(cm_state_revision(st), rev);
	assert_true(cm_state_usage(st, CM_V6, &used, &cap));
	assert_int_equal(used, 4);
	cm_state_nodes(st, &n);
	assert_int_equal(n, 4);
	/* Existing nodes still get their answer. */
	assert_int_equal(cm_state_allocate(st, "node-2", &none), 0);
	assert_ptr_equal(none, nodes[2]);
	cm_state_close(st);
}

static void test_register(void **state)
{
	struct cm_config cfg = config("10.200.0.0/16", NULL);
	struct cm_state *st = open_state(&cfg);
	struct cm_node *a;
	char long_ep[CM_ENDPOINT_MAX + 2];
	bool changed = false;
	uint64_t rev;

	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_false(a->has_subnet[CM_V6]);
	assert_int_equal(a->n_subnets, 1);
	assert_string_equal(a->address, "10.200.0.1/24");
	rev = cm_state_revision(st);

	assert_int_equal(cm_state_register(st, a, KEY_A, "192.0.2.1:51820", &changed), 0);
	assert_true(changed);
	assert_string_equal(a->public_key, KEY_A);
	assert_string_equal(a->endpoint, "192.0.2.1:51820");
	assert_int_equal(cm_state_revision(st), rev + 1);

	/* The same again is no change: peers need not be told. */
	assert_int_equal(cm_state_register(st, a, KEY_A, "192.0.2.1:51820", &changed), 0);
	assert_false(changed);
	assert_int_equal(cm_state_revision(st), rev + 1);

	assert_int_equal(cm_state_register(st, a, KEY_A, "192.0.2.9:51820", &changed), 0);
	assert_true(changed);
	assert_int_equal(cm_state_revision(st), rev + 2);
	assert_int_equal(cm_state_register(st, a, KEY_B, "192.0.2.9:51820", &changed), 0);
	assert_true(changed);
	assert_string_equal(a->public_key, KEY_B);
	assert_int_equal(cm_state_revision(st), rev + 3);

	/* Too long: refused, nothing changed. */
	memset(long_ep, 'e', sizeof(long_ep) - 1);
	long_ep[sizeof(long_ep) - 1] = '\0';
	assert_int_equal(cm_state_register(st, a, KEY_A, long_ep, &changed), -EINVAL);
	assert_string_equal(a->public_key, KEY_B);
	assert_string_equal(a->endpoint, "192.0.2.9:51820");
	assert_int_equal(cm_state_register(st, a, KEY_A "AAAA", "192.0.2.9:51820", &changed),
			 -EINVAL);
	assert_string_equal(a->public_key, KEY_B);
	assert_int_equal(cm_state_revision(st), rev + 3);
	cm_state_close(st);
}

static void test_delete_frees_subnet(void **state)
{
	/* A /23 holds two /24s. */
	struct cm_config cfg = config("10.200.0.0/23", NULL);
	struct cm_state *st = open_state(&cfg);
	struct cm_node *a, *b, *c = NULL;
	char freed[IPNET_STRLEN];
	uint64_t rev, used, cap;

	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_int_equal(cm_state_allocate(st, "node-b", &b), 0);
	assert_int_equal(cm_state_allocate(st, "node-c", &c), -ENOSPC);
	snprintf(freed, sizeof(freed), "%s", a->subnet_str[CM_V4]);
	rev = cm_state_revision(st);

	assert_int_equal(cm_state_delete(st, "node-a"), 0);
	assert_null(cm_state_find(st, "node-a"));
	assert_int_equal(cm_state_revision(st), rev + 1);
	assert_true(cm_state_usage(st, CM_V4, &used, &cap));
	assert_int_equal(used, 1);
	assert_int_equal(cm_state_delete(st, "node-a"), -ENOENT);
	assert_int_equal(cm_state_delete(st, "never-was"), -ENOENT);
	assert_int_equal(cm_state_revision(st), rev + 1);

	/* The freed subnet is the one left to hand out. */
	assert_int_equal(cm_state_allocate(st, "node-c", &c), 0);
	assert_string_equal(c->subnet_str[CM_V4], freed);
	assert_string_not_equal(c->subnet_str[CM_V4], b->subnet_str[CM_V4]);
	cm_state_close(st);
}

static void test_nodes_sorted(void **state)
{
	static const char *const names[] = { "m", "b", "z", "a", "k" };
	static const char *const sorted[] = { "a", "b", "k", "m", "z" };
	struct cm_config cfg = config("10.200.0.0/16", NULL);
	struct cm_state *st = open_state(&cfg);
	struct cm_node *const *nodes, *node;
	size_t n;

	for (size_t i = 0; i < 5; i++)
		assert_int_equal(cm_state_allocate(st, names[i], &node), 0);
	nodes = cm_state_nodes(st, &n);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(nodes[i]->name, sorted[i]);
	assert_int_equal(cm_state_delete(st, "k"), 0);
	nodes = cm_state_nodes(st, &n);
	assert_int_equal(n, 4);
	assert_string_equal(nodes[2]->name, "m");
	cm_state_close(st);
}

static void test_reopen_keeps_state(void **state)
{
	struct cm_config cfg = config("10.200.0.0/22", "fd00:200::/48");
	struct cm_state *st = open_state(&cfg);
	struct cm_node *a, *b, *c;
	char sa4[IPNET_STRLEN], sa6[IPNET_STRLEN], sb4[IPNET_STRLEN];
	uint64_t rev, used, cap;
	bool changed;
	char **cidrs;
	size_t n;

	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_int_equal(cm_state_allocate(st, "node-b", &b), 0);
	assert_int_equal(cm_state_allocate(st, "node-gone", &c), 0);
	assert_int_equal(cm_state_register(st, a, KEY_A, "192.0.2.1:51820", &changed), 0);
	assert_int_equal(cm_state_delete(st, "node-gone"), 0);
	snprintf(sa4, sizeof(sa4), "%s", a->subnet_str[CM_V4]);
	snprintf(sa6, sizeof(sa6), "%s", a->subnet_str[CM_V6]);
	snprintf(sb4, sizeof(sb4), "%s", b->subnet_str[CM_V4]);
	rev = cm_state_revision(st);
	assert_int_equal(rev, 5);
	cm_state_close(st);

	st = open_state(&cfg);
	assert_int_equal(cm_state_revision(st), rev);
	cm_state_nodes(st, &n);
	assert_int_equal(n, 2);
	assert_null(cm_state_find(st, "node-gone"));
	a = cm_state_find(st, "node-a");
	b = cm_state_find(st, "node-b");
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a->subnet_str[CM_V4], sa4);
	assert_string_equal(a->subnet_str[CM_V6], sa6);
	assert_string_equal(sa4, "10.200.0.0/24");
	assert_string_equal(a->address, "10.200.0.1/24,fd00:200::1/64");
	assert_string_equal(a->public_key, KEY_A);
	assert_string_equal(a->endpoint, "192.0.2.1:51820");
	assert_string_equal(b->subnet_str[CM_V4], sb4);
	assert_string_equal(b->public_key, "");
	assert_true(cm_state_usage(st, CM_V4, &used, &cap));
	assert_int_equal(used, 2);
	cidrs = cm_state_cidrs(st, &n);
	assert_int_equal(n, 2);
	assert_string_equal(cidrs[0], "10.200.0.0/22");
	assert_string_equal(cidrs[1], "fd00:200::/48");
	assert_null(cidrs[2]);

	/* Reloaded subnets are reserved: the two new nodes get the other two. */
	assert_int_equal(cm_state_allocate(st, "node-c", &c), 0);
	assert_string_not_equal(c->subnet_str[CM_V4], sa4);
	assert_string_not_equal(c->subnet_str[CM_V4], sb4);
	assert_int_equal(cm_state_allocate(st, "node-d", &c), 0);
	assert_int_equal(cm_state_allocate(st, "node-e", &c), -ENOSPC);
	/* The revision keeps counting from the stored one. */
	assert_int_equal(cm_state_revision(st), rev + 2);
	cm_state_close(st);
}

static void test_family_added_later(void **state)
{
	struct cm_config v4 = config("10.200.0.0/16", NULL);
	struct cm_config both = config("10.200.0.0/16", "fd00:200::/48");
	struct cm_state *st = open_state(&v4);
	struct cm_node *a;
	uint64_t rev;

	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_false(a->has_subnet[CM_V6]);
	cm_state_close(st);

	st = open_state(&both);
	a = cm_state_find(st, "node-a");
	assert_non_null(a);
	assert_false(a->has_subnet[CM_V6]);
	rev = cm_state_revision(st);
	assert_int_equal(cm_state_allocate(st, "node-a", &a), 0);
	assert_true(a->has_subnet[CM_V6]);
	assert_string_equal(a->subnet_str[CM_V4], "10.200.0.0/24");
	assert_string_equal(a->subnet_str[CM_V6], "fd00:200::/64");
	assert_int_equal(a->n_subnets, 2);
	assert_int_equal(cm_state_revision(st), rev + 1);
	cm_state_close(st);
}

static void test_one_manager_per_dir(void **state)
{
	struct cm_config cfg = config("10.200.0.0/16", NULL);
	struct cm_state *st = open_state(&cfg), *second;
	char err[512] = "", missing[128];

	second = cm_state_open(tmpdir, &cfg, err, sizeof(err));
	assert_null(second);
	assert_int_equal(errno, EBUSY);
	assert_non_null(strstr(err, "in use"));
	cm_state_close(st);

	/* Released on close. */
	st = open_state(&cfg);
	cm_state_close(st);
	cm_state_close(NULL);

	snprintf(missing, sizeof(missing), "%s/does/not/exist", tmpdir);
	err[0] = '\0';
	assert_null(cm_state_open(missing, &cfg, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_true(err[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allocate_is_stable, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_no_subnet_twice_and_exhaustion, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_register, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_delete_frees_subnet, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_nodes_sorted, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_state, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_family_added_later, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_one_manager_per_dir, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Stale nodes in the cluster manager's state (cluster-manager/stale.c) with
 * a fake clock: nothing is due before the ttl and everything after it, in
 * the order nodes were last seen; a touch keeps a node live; a stale peer
 * leaves a tombstone at a new revision (a keyless node none) and comes back
 * at a new mod_revision on its next call; the long-poll cap; --delete-after
 * deletes and frees the subnet; reopening keeps stale peers stale and gives
 * live nodes a ttl of grace. Against a naive reference at random: after any
 * sequence of touches and clock steps, the stale set is exactly the nodes
 * not seen for longer than the ttl.
 */
#include <errno.h>
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
static uint64_t fake_ms;

static uint64_t fake_clock(void)
{
	return fake_ms;
}

static int setup_dir(void **state)
{
	log_init("test_cm_stale", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	strcpy(tmpdir, "/tmp/test_cm_stale.XXXXXX");
	fake_ms = 1000000;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct cm_state *open_state(uint64_t ttl, uint64_t delete_after)
{
	struct cm_config cfg = { 0 };
	char err[512] = "";
	struct cm_state *st;

	cfg.has_cidr[CM_V4] = true;
	assert_int_equal(ipnet_parse("10.200.0.0/16", &cfg.cidr[CM_V4], true), 0);
	cfg.childlen[CM_V4] = 24;
	st = cm_state_open(tmpdir, &cfg, err, sizeof(err));
	if (!st) {
		print_error("cm_state_open: %s\n", err);
		fail();
	}
	cm_state_set_clock(st, fake_clock);
	cm_state_set_expiry(st, ttl, delete_after);
	return st;
}

static struct cm_node *add(struct cm_state *st, const char *name, const char *key)
{
	struct cm_node *n;
	bool changed;

	assert_int_equal(cm_state_allocate(st, name, &n), 0);
	if (key)
		assert_int_equal(cm_state_register(st, n, key, "10.0.0.1:51820", &changed), 0);
	assert_int_equal(cm_state_commit(st), 0);
	return n;
}

static bool has_tombstone(struct cm_state *st, const char *name, uint64_t since)
{
	size_t n;
	const struct cm_tombstone *t = cm_state_tombstones(st, since, &n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return true;
	return false;
}

static void test_expire(void **state)
{
	struct cm_state *st = open_state(10000, 0);
	struct cm_node *a = add(st, "a", KEY_A), *b = add(st, "b", KEY_B), *k = add(st, "k", NULL);
	uint64_t rev, mod_b;

	assert_int_equal(cm_state_wait_cap_ms(st), 5000);
	fake_ms += 10000; /* exactly the ttl: not longer */
	assert_int_equal(cm_state_expire(st), 0);
	assert_false(cm_state_pending(st));
	assert_int_equal(cm_state_touch(st, a), 0);
	fake_ms += 1;
	rev = cm_state_revision(st);
	mod_b = b->mod_revision;
	assert_int_equal(cm_state_expire(st), 2); /* b and k, not a */
	assert_true(b->stale);
	assert_true(k->stale);
	assert_false(a->stale);
	assert_int_equal(cm_state_stale_count(st), 2);
	/* Only the peer moved the revision, with a tombstone; its row did not. */
	assert_int_equal(cm_state_revision(st), rev + 1);
	assert_true(has_tombstone(st, "b", rev));
	assert_false(has_tombstone(st, "k", 0));
	assert_int_equal(b->mod_revision, mod_b);
	assert_int_equal(cm_state_commit(st), 0);
	assert_int_equal(cm_state_expire(st), 0); /* nothing twice */

	/* A call brings b back at a new revision; k (keyless) moves nothing. */
	assert_int_equal(cm_state_touch(st, b), 1);
	assert_false(b->stale);
	assert_int_equal(b->mod_revision, rev + 2);
	assert_ptr_equal(cm_state_last_changed(st), b);
	assert_int_equal(cm_state_touch(st, k), 0);
	assert_false(k->stale);
	assert_int_equal(cm_state_revision(st), rev + 2);
	assert_int_equal(cm_state_stale_count(st), 0);
	assert_int_equal(cm_state_commit(st), 0);

	/* Without a ttl nothing turns stale and long polls are not capped. */
	cm_state_set_expiry(st, 0, 0);
	fake_ms += 1000000;
	assert_int_equal(cm_state_expire(st), 0);
	assert_int_equal(cm_state_wait_cap_ms(st), UINT64_MAX);
	cm_state_set_expiry(st, 1000, 0);
	assert_int_equal(cm_state_wait_cap_ms(st), 500);
	cm_state_close(st);
}

static void test_reopen_and_delete(void **state)
{
	struct cm_state *st = open_state(10000, 0);
	struct cm_node *a, *b;
	uint64_t used, cap;

	a = add(st, "a", KEY_A);
	add(st, "b", KEY_B);
	fake_ms += 5000;
	assert_int_equal(cm_state_touch(st, a), 0);
	fake_ms += 6000;
	assert_int_equal(cm_state_expire(st), 1);
	assert_int_equal(cm_state_commit(st), 0);
	cm_state_close(st);

	/* Reopened much later: b still stale, a live (a ttl of grace). */
	fake_ms += 100000;
	st = open_state(10000, 0);
	a = cm_state_find(st, "a");
	b = cm_state_find(st, "b");
	assert_non_null(a);
	assert_non_null(b);
	assert_false(a->stale);
	assert_true(b->stale);
	assert_int_equal(cm_state_stale_count(st), 1);
	assert_int_equal(cm_state_expire(st), 0);
	/* Back, and that survives a reopen too (its row is newer). */
	assert_int_equal(cm_state_touch(st, b), 1);
	assert_int_equal(cm_state_commit(st), 0);
	cm_state_close(st);
	st = open_state(10000, 5000);
	b = cm_state_find(st, "b");
	assert_false(b->stale);

	/* --delete-after: stale for longer than it, the node is deleted. */
	assert_true(cm_state_usage(st, CM_V4, &used, &cap));
	assert_int_equal(used, 2);
	fake_ms += 10001;
	assert_int_equal(cm_state_expire(st), 2);
	assert_int_equal(cm_state_stale_count(st), 2);
	fake_ms += 5000;
	assert_int_equal(cm_state_expire(st), 0);
	fake_ms += 1;
	assert_int_equal(cm_state_expire(st), 2);
	assert_null(cm_state_find(st, "a"));
	assert_null(cm_state_find(st, "b"));
	assert_int_equal(cm_state_stale_count(st), 0);
	assert_true(cm_state_usage(st, CM_V4, &used, &cap));
	assert_int_equal(used, 0);
	assert_int_equal(cm_state_commit(st), 0);
	cm_state_close(st);
}

#define NAIVE_NODES 40

/* The naive reference: a node is stale when not seen for longer than the
 * ttl, checked node by node. */
static void test_random_against_naive(void **state)
{
	struct cm_state *st = open_state(1000, 0);
	uint64_t seen[NAIVE_NODES];
	bool stale[NAIVE_NODES] = { false };
	char name[16];

	srand(12345);
	for (int i = 0; i < NAIVE_NODES; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		add(st, name, NULL);
		seen[i] = fake_ms;
	}
	for (int step = 0; step < 5000; step++) {
		int i = rand() % NAIVE_NODES;

		if (rand() % 3) {
			snprintf(name, sizeof(name), "n%d", i);
			assert_true(cm_state_touch(st, cm_state_find(st, name)) >= 0);
			seen[i] = fake_ms;
			stale[i] = false;
		} else {
			fake_ms += (uint64_t)(rand() % 300);
		}
		assert_true(cm_state_expire(st) >= 0);
		for (int j = 0; j < NAIVE_NODES; j++) {
			if (fake_ms - seen[j] > 1000)
				stale[j] = true;
		}
		for (int j = 0; j < NAIVE_NODES; j++) {
			snprintf(name, sizeof(name), "n%d", j);
			assert_int_equal(cm_state_find(st, name)->stale, stale[j]);
		}
	}
	assert_int_equal(cm_state_commit(st), 0);
	cm_state_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_expire, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_reopen_and_delete, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_random_against_naive, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

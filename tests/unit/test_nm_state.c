/*
 * The node manager's state (node-manager/state.c) in a temporary directory:
 * container allocations (one address per node subnet, never the network,
 * gateway or broadcast address, never one address twice), a duplicate
 * attachment refused without side effects, release, exhaustion that changes
 * nothing, keys and the containerMesh flag, everything surviving a close
 * and reopen, and a schema-1 database upgraded in place. The node
 * peers: upserts and deletes written as just those rows, a replacement
 * written as the difference, and a one-peer delta at ten thousand stored
 * peers costing one row (sqlite3_total_changes).
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
#include "nm.h"

static char tmpdir[64];
static struct nm nm;

static int setup_dir(void **state)
{
	log_init("test_nm_state", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	strcpy(tmpdir, "/tmp/test_nm_state.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	memset(&nm, 0, sizeof(nm));
	nm.cfg.state_dir = tmpdir;
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	nm_state_close(&nm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void open_state(void)
{
	char err[512] = "";

	if (nm_state_open(&nm, err, sizeof(err))) {
		print_error("nm_state_open: %s\n", err);
		fail();
	}
}

static void reopen(void)
{
	nm_state_close(&nm);
	memset(&nm, 0, sizeof(nm));
	nm.cfg.state_dir = tmpdir;
	open_state();
}

/* Node subnets v4 (and v6 when given) inside fixed cluster CIDRs. */
static void set_subnets(const char *v4, const char *v6)
{
	struct ipnet s[2], c[2];
	size_t n = 0;

	assert_int_equal(ipnet_parse(v4, &s[n++], true), 0);
	if (v6)
		assert_int_equal(ipnet_parse(v6, &s[n++], true), 0);
	assert_int_equal(ipnet_parse("10.100.0.0/16", &c[0], true), 0);
	assert_int_equal(ipnet_parse("fd00:100::/48", &c[1], true), 0);
	assert_int_equal(nm_state_set_subnets(&nm, s, n, c, 2), 0);
}

static const char *fmt(const struct ipnet *n)
{
	static char buf[4][IPNET_STRLEN];
	static int i;

	i = (i + 1) % 4;
	return ipnet_format(n, buf[i]);
}

static void test_no_subnets_yet(void **state)
{
	struct nm_alloc *a = NULL;

	open_state();
	assert_int_equal(nm.n_subnets, 0);
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/c1", &a), -EAGAIN);
	assert_null(a);
	assert_int_equal(nm.n_allocs, 0);
}

static void test_alloc_and_find(void **state)
{
	struct nm_alloc *a, *b;
	char a4[IPNET_STRLEN], a6[IPNET_STRLEN];

	open_state();
	set_subnets("10.100.3.0/24", "fd00:100:3::/64");
	assert_int_equal(nm_state_pool_used(&nm), 0);

	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/c1", &a), 0);
	assert_string_equal(a->container_id, "c1");
	assert_string_equal(a->ifname, "eth0");
	assert_string_equal(a->netns, "/run/netns/c1");
	assert_false(a->has_key);
	assert_int_equal(a->n_addrs, 2);
	assert_int_equal(a->addrs[0].prefixlen, 32);
	assert_int_equal(a->addrs[1].prefixlen, 128);
	assert_true(ipnet_contains(&nm.subnets[0], &a->addrs[0].addr));
	assert_true(ipnet_contains(&nm.subnets[1], &a->addrs[1].addr));
	/* Not the network address nor the gateway (the first host). */
	assert_string_not_equal(fmt(&a->addrs[0]), "10.100.3.0/32");
	assert_string_not_equal(fmt(&a->addrs[0]), "10.100.3.1/32");
	assert_string_not_equal(fmt(&a->addrs[1]), "fd00:100:3::/128");
	assert_string_not_equal(fmt(&a->addrs[1]), "fd00:100:3::1/128");
	snprintf(a4, sizeof(a4), "%s", fmt(&a->addrs[0]));
	snprintf(a6, sizeof(a6), "%s", fmt(&a->addrs[1]));
	assert_int_equal(nm_state_pool_used(&nm), 2);

	/* Another interface of the same container is another attachment. */
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth1", "/run/netns/c1", &b), 0);
	assert_string_not_equal(fmt(&b->addrs[0]), a4);
	assert_string_not_equal(fmt(&b->addrs[1]), a6);

	a = nm_state_find(&nm, "c1", "eth0");
	assert_non_null(a);
	assert_string_equal(fmt(&a->addrs[0]), a4);
	assert_non_null(nm_state_find(&nm, "c1", "eth1"));
	assert_null(nm_state_find(&nm, "c1", "eth2"));
	assert_null(nm_state_find(&nm, "c2", "eth0"));
	assert_int_equal(nm.n_allocs, 2);
}

static void test_duplicate_refused(void **state)
{
	struct nm_alloc *a, *dup = NULL;
	char a4[IPNET_STRLEN];
	uint64_t used;

	open_state();
	set_subnets("10.100.3.0/24", "fd00:100:3::/64");
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/c1", &a), 0);
	snprintf(a4, sizeof(a4), "%s", fmt(&a->addrs[0]));
	used = nm_state_pool_used(&nm);

	/* The database refuses a second allocation for one attachment (callers
	 * look it up first, which makes ADD idempotent); the addresses tried
	 * go back to the pools. */
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/other", &dup), -EEXIST);
	assert_null(dup);
	assert_int_equal(nm.n_allocs, 1);
	assert_int_equal(nm_state_pool_used(&nm), used);
	a = nm_state_find(&nm, "c1", "eth0");
	assert_string_equal(a->netns, "/run/netns/c1");
	assert_string_equal(fmt(&a->addrs[0]), a4);

	reopen();
	assert_int_equal(nm.n_allocs, 1);
	assert_string_equal(nm.allocs[0].netns, "/run/netns/c1");
}

static void test_release(void **state)
{
	struct nm_alloc *a, *b, *c;
	char a4[IPNET_STRLEN];

	open_state();
	set_subnets("10.100.3.0/24", NULL);
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/c1", &a), 0);
	assert_int_equal(nm_state_alloc(&nm, "c2", "eth0", "/run/netns/c2", &b), 0);
	assert_int_equal(a->n_addrs, 1);
	snprintf(a4, sizeof(a4), "%s", fmt(&a->addrs[0]));
	assert_int_equal(nm_state_pool_used(&nm), 2);

	a = nm_state_find(&nm, "c1", "eth0");
	assert_int_equal(nm_state_release(&nm, a), 0);
	assert_null(nm_state_find(&nm, "c1", "eth0"));
	assert_non_null(nm_state_find(&nm, "c2", "eth0"));
	assert_int_equal(nm.n_allocs, 1);
	assert_int_equal(nm_state_pool_used(&nm), 1);

	/* Gone from the database too. */
	reopen();
	assert_int_equal(nm.n_allocs, 1);
	assert_null(nm_state_find(&nm, "c1", "eth0"));
	assert_int_equal(nm_state_pool_used(&nm), 1);
	/* And its address can be handed out again. */
	assert_int_equal(nm_state_alloc(&nm, "c3", "eth0", "/run/netns/c3", &c), 0);
	b = nm_state_find(&nm, "c2", "eth0");
	assert_string_not_equal(fmt(&c->addrs[0]), fmt(&b->addrs[0]));
}

static void test_exhaustion(void **state)
{
	struct nm_alloc *a, *none = NULL;
	char id[32], seen[5][IPNET_STRLEN];
	uint64_t free_before;

	open_state();
	/* A /29 has 8 addresses; network, gateway and broadcast leave 5. The
	 * /125 leaves 6, so IPv4 runs out first. */
	set_subnets("10.100.3.0/29", "fd00:100:3::/125");
	assert_int_equal(nm.pool_reserved[0], 3);
	assert_int_equal(nm.pool_reserved[1], 2);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		assert_int_equal(nm_state_alloc(&nm, id, "eth0", "/run/netns/x", &a), 0);
		snprintf(seen[i], sizeof(seen[i]), "%s", fmt(&a->addrs[0]));
		assert_string_not_equal(seen[i], "10.100.3.0/32");
		assert_string_not_equal(seen[i], "10.100.3.1/32");
		assert_string_not_equal(seen[i], "10.100.3.7/32");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_int_equal(nm_state_pool_used(&nm), 10);
	free_before = nm_state_pool_free(&nm);
	assert_int_equal(free_before, 1); /* one IPv6 address left */

	assert_int_equal(nm_state_alloc(&nm, "c5", "eth0", "/run/netns/x", &none), -ENOSPC);
	assert_null(none);
	assert_int_equal(nm.n_allocs, 5);
	assert_null(nm_state_find(&nm, "c5", "eth0"));
	assert_int_equal(nm_state_pool_used(&nm), 10);
	assert_int_equal(nm_state_pool_free(&nm), free_before);

	/* A release makes room for exactly one more. */
	assert_int_equal(nm_state_release(&nm, nm_state_find(&nm, "c2", "eth0")), 0);
	assert_int_equal(nm_state_alloc(&nm, "c5", "eth0", "/run/netns/x", &a), 0);
	assert_string_equal(fmt(&a->addrs[0]), seen[2]);
	assert_int_equal(nm_state_alloc(&nm, "c6", "eth0", "/run/netns/x", &none), -ENOSPC);

	/* After a restart the pools know what is taken. */
	reopen();
	assert_int_equal(nm.n_allocs, 5);
	assert_int_equal(nm_state_pool_used(&nm), 10);
	assert_int_equal(nm_state_alloc(&nm, "c6", "eth0", "/run/netns/x", &none), -ENOSPC);
}

static void test_reopen_keeps_everything(void **state)
{
	uint8_t key[WG_KEY_LEN], other[WG_KEY_LEN];
	struct nm_alloc *a, *b;
	char a4[IPNET_STRLEN], a6[IPNET_STRLEN], b4[IPNET_STRLEN];

	open_state();
	set_subnets("10.100.3.0/24", "fd00:100:3::/64");
	assert_int_equal(nm_state_alloc(&nm, "c1", "eth0", "/run/netns/c1", &a), 0);
	snprintf(a4, sizeof(a4), "%s", fmt(&a->addrs[0]));
	snprintf(a6, sizeof(a6), "%s", fmt(&a->addrs[1]));
	memset(key, 0x11, sizeof(key));
	assert_int_equal(nm_state_store_key(&nm, a, key, "192.0.2.1:40000"), 0);
	assert_int_equal(nm_state_update_netns(&nm, a, "/run/netns/moved"), 0);
	assert_string_equal(a->netns, "/run/netns/moved");
	assert_int_equal(nm_state_alloc(&nm, "c2", "eth0", "/run/netns/c2", &b), 0);
	snprintf(b4, sizeof(b4), "%s", fmt(&b->addrs[0]));
	/* One key, one container. */
	assert_int_equal(nm_state_store_key(&nm, b, key, ""), -EEXIST);
	assert_false(a->mesh);
	assert_int_equal(nm_state_store_mesh(&nm, a, true), 0);

	reopen();
	assert_int_equal(nm.n_subnets, 2);
	assert_string_equal(fmt(&nm.subnets[0]), "10.100.3.0/24");
	assert_string_equal(fmt(&nm.subnets[1]), "fd00:100:3::/64");
	assert_int_equal(nm.n_cidrs, 2);
	assert_string_equal(fmt(&nm.cidrs[0]), "10.100.0.0/16");
	assert_string_equal(fmt(&nm.cidrs[1]), "fd00:100::/48");
	assert_int_equal(nm.n_allocs, 2);
	a = nm_state_find(&nm, "c1", "eth0");
	b = nm_state_find(&nm, "c2", "eth0");
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(fmt(&a->addrs[0]), a4);
	assert_string_equal(fmt(&a->addrs[1]), a6);
	assert_string_equal(a->netns, "/run/netns/moved");
	assert_true(a->has_key);
	assert_memory_equal(a->public_key, key, WG_KEY_LEN);
	assert_string_equal(a->endpoint, "192.0.2.1:40000");
	assert_true(a->mesh);
	assert_false(b->mesh);
	assert_false(b->has_key);
	assert_string_equal(fmt(&b->addrs[0]), b4);
	assert_ptr_equal(nm_state_find_key(&nm, key), a);
	memset(other, 0x22, sizeof(other));
	assert_null(nm_state_find_key(&nm, other));
	assert_int_equal(nm_state_pool_used(&nm), 4);

	/* Reloaded addresses are reserved. */
	assert_int_equal(nm_state_alloc(&nm, "c3", "eth0", "/run/netns/c3", &a), 0);
	assert_string_not_equal(fmt(&a->addrs[0]), a4);
	assert_string_not_equal(fmt(&a->addrs[0]), b4);
	assert_string_not_equal(fmt(&a->addrs[1]), a6);

	/* Changing the cluster CIDRs keeps the subnets. */
	{
		struct ipnet c;

		assert_int_equal(ipnet_parse("10.0.0.0/8", &c, true), 0);
		assert_int_equal(nm_state_set_cidrs(&nm, &c, 1), 0);
	}
	reopen();
	assert_int_equal(nm.n_cidrs, 1);
	assert_string_equal(fmt(&nm.cidrs[0]), "10.0.0.0/8");
	assert_int_equal(nm.n_subnets, 2);
	assert_int_equal(nm.n_allocs, 3);
}

/* A database of schema 1 (before containerMesh) opens as the current one:
 * its allocations kept, none of them in the mesh, the flag then stored. */
static void test_schema_upgrade(void **state)
{
	char path[128], key[WG_KEY_B64_LEN + 1];
	uint8_t raw[WG_KEY_LEN];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct nm_alloc *a;

	memset(raw, 0x33, sizeof(raw));
	key_to_base64(key, raw);
	snprintf(path, sizeof(path), "%s/node.db", tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE subnets(pos INTEGER PRIMARY KEY, cidr TEXT NOT NULL UNIQUE);"
		"CREATE TABLE cluster_cidrs(pos INTEGER PRIMARY KEY, cidr TEXT NOT NULL UNIQUE);"
		"CREATE TABLE node_peers(public_key TEXT PRIMARY KEY, name TEXT NOT NULL,"
		" endpoint TEXT NOT NULL, allowed_ips TEXT NOT NULL);"
		"CREATE TABLE allocations(container_id TEXT NOT NULL, ifname TEXT NOT NULL,"
		" netns TEXT NOT NULL, public_key TEXT UNIQUE, endpoint TEXT NOT NULL DEFAULT '',"
		" PRIMARY KEY(container_id, ifname));"
		"CREATE TABLE addresses(address TEXT PRIMARY KEY, container_id TEXT NOT NULL,"
		" ifname TEXT NOT NULL, pos INTEGER NOT NULL,"
		" FOREIGN KEY(container_id, ifname) REFERENCES allocations(container_id, ifname)"
		" ON DELETE CASCADE);"
		"INSERT INTO subnets VALUES(0, '10.100.3.0/24');"
		"INSERT INTO cluster_cidrs VALUES(0, '10.100.0.0/16');"
		"INSERT INTO addresses VALUES('10.100.3.7/32', 'c1', 'eth0', 0);"
		"PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO allocations VALUES('c1', 'eth0',"
		" '/run/netns/c1', ?, '127.0.0.1:40000')", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	open_state();
	assert_int_equal(nm.n_allocs, 1);
	a = nm_state_find(&nm, "c1", "eth0");
	assert_non_null(a);
	assert_true(a->has_key);
	assert_memory_equal(a->public_key, raw, WG_KEY_LEN);
	assert_string_equal(fmt(&a->addrs[0]), "10.100.3.7/32");
	assert_false(a->mesh);
	assert_int_equal(nm_state_store_mesh(&nm, a, true), 0);
	assert_int_equal(sqlite3_prepare_v2(nm.db, "PRAGMA user_version", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	reopen();
	a = nm_state_find(&nm, "c1", "eth0");
	assert_non_null(a);
	assert_true(a->mesh);
}

static struct nm_peer *peers_new(size_t n)
{
	struct nm_peer *p = calloc(n, sizeof(*p));
	char name[32], net[32];

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		/* Keys in descending order, so sorting has work to do. */
		memset(p[i].public_key, (int)(0xf0 - i), WG_KEY_LEN);
		snprintf(name, sizeof(name), "node-%zu", i);
		p[i].name = strdup(name);
		assert_non_null(p[i].name);
		snprintf(p[i].endpoint, sizeof(p[i].endpoint), "192.0.2.%zu:51820", i + 1);
		p[i].allowed = calloc(1, sizeof(*p[i].allowed));
		assert_non_null(p[i].allowed);
		snprintf(net, sizeof(net), "10.100.%zu.0/24", i + 10);
		assert_int_equal(ipnet_parse(net, &p[i].allowed[0], true), 0);
		p[i].n_allowed = 1;
	}
	return p;
}

static void test_node_peers(void **state)
{
	struct nm_peer *p, *q;
	const struct nm_peer *found;
	uint8_t key[WG_KEY_LEN];

	open_state();
	p = peers_new(3);
	q = peers_new(3);
	nm_peers_sort(q, 3);
	assert_int_equal(nm_state_replace_peers(&nm, p, 3), 0); /* takes p */
	assert_int_equal(nm.n_peers, 3);
	for (size_t i = 1; i < nm.n_peers; i++)
		assert_true(memcmp(nm.peers[i - 1].public_key, nm.peers[i].public_key,
				   WG_KEY_LEN) < 0);
	memset(key, 0xef, sizeof(key));
	found = nm_state_find_peer(&nm, key);
	assert_non_null(found);
	assert_string_equal(found->name, "node-1");
	assert_string_equal(found->endpoint, "192.0.2.2:51820");
	memset(key, 0x01, sizeof(key));
	assert_null(nm_state_find_peer(&nm, key));
	assert_true(nm_state_peers_same(&nm, q, 3));
	snprintf(q[0].endpoint, sizeof(q[0].endpoint), "192.0.2.99:51820");
	assert_false(nm_state_peers_same(&nm, q, 3));
	assert_false(nm_state_peers_same(&nm, q, 2));
	nm_peers_free(q, 3);

	reopen();
	assert_int_equal(nm.n_peers, 3);
	q = peers_new(3);
	nm_peers_sort(q, 3);
	assert_true(nm_state_peers_same(&nm, q, 3));
	q[1].allowed[0].prefixlen = 25;
	assert_false(nm_state_peers_same(&nm, q, 3));
	nm_peers_free(q, 3);

	/* An empty list clears them, also on disk. */
	assert_int_equal(nm_state_replace_peers(&nm, NULL, 0), 0);
	assert_int_equal(nm.n_peers, 0);
	reopen();
	assert_int_equal(nm.n_peers, 0);
	nm_peers_free(NULL, 0);
}

/* Peer i of a large cluster: key, name and subnet all derived from i. */
static void peer_make(struct nm_peer *p, size_t i, const char *endpoint)
{
	char name[32], net[32];

	memset(p, 0, sizeof(*p));
	memset(p->public_key, 0x5a, WG_KEY_LEN);
	p->public_key[0] = (uint8_t)(i >> 16);
	p->public_key[1] = (uint8_t)(i >> 8);
	p->public_key[2] = (uint8_t)i;
	snprintf(name, sizeof(name), "node-%zu", i);
	p->name = strdup(name);
	assert_non_null(p->name);
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", endpoint);
	p->allowed = calloc(1, sizeof(*p->allowed));
	assert_non_null(p->allowed);
	snprintf(net, sizeof(net), "10.%zu.%zu.0/24", (i >> 8) & 255, i & 255);
	assert_int_equal(ipnet_parse(net, &p->allowed[0], true), 0);
	p->n_allowed = 1;
}

static struct nm_peer *peers_range(size_t from, size_t n, const char *endpoint)
{
	struct nm_peer *p = calloc(n + 1, sizeof(*p));

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		peer_make(&p[i], from + i, endpoint);
	return p;
}

static const struct nm_peer *find_i(size_t i)
{
	struct nm_peer probe;
	const struct nm_peer *found;

	peer_make(&probe, i, "");
	found = nm_state_find_peer(&nm, probe.public_key);
	free(probe.name);
	free(probe.allowed);
	return found;
}

/* The rows of node_peers, read back from the file (not the copy). */
static int stored_rows(void)
{
	sqlite3_stmt *st;
	int n = -1;

	assert_int_equal(sqlite3_prepare_v2(nm.db, "SELECT count(*) FROM node_peers", -1,
					    &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void assert_sorted_unique(void)
{
	for (size_t i = 1; i < nm.n_peers; i++)
		assert_true(memcmp(nm.peers[i - 1].public_key, nm.peers[i].public_key,
				   WG_KEY_LEN) < 0);
}

static void test_peers_upsert_delete(void **state)
{
	uint8_t gone[2][WG_KEY_LEN];
	struct nm_peer *p;
	int changes;

	open_state();
	assert_int_equal(nm_state_change_peers(&nm, peers_range(0, 5, "192.0.2.1:51820"), 5,
					       NULL, 0), 0);
	assert_int_equal(nm.n_peers, 5);
	assert_int_equal(stored_rows(), 5);
	assert_sorted_unique();

	/* Upsert: one changed (endpoint), one new, one unchanged (not written). */
	p = peers_range(3, 3, "192.0.2.1:51820");
	snprintf(p[0].endpoint, sizeof(p[0].endpoint), "192.0.2.99:51820");
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_change_peers(&nm, p, 3, NULL, 0), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 2);
	assert_int_equal(nm.n_peers, 6);
	assert_int_equal(stored_rows(), 6);
	assert_sorted_unique();
	assert_string_equal(find_i(3)->endpoint, "192.0.2.99:51820");
	assert_string_equal(find_i(4)->endpoint, "192.0.2.1:51820");
	assert_string_equal(find_i(5)->name, "node-5");

	/* Delete two (one of them twice), one unknown key changes nothing. */
	memcpy(gone[0], find_i(1)->public_key, WG_KEY_LEN);
	memcpy(gone[1], find_i(4)->public_key, WG_KEY_LEN);
	{
		uint8_t keys[4][WG_KEY_LEN];

		memcpy(keys[0], gone[0], WG_KEY_LEN);
		memcpy(keys[1], gone[1], WG_KEY_LEN);
		memcpy(keys[2], gone[0], WG_KEY_LEN);
		memset(keys[3], 0x01, WG_KEY_LEN);
		changes = sqlite3_total_changes(nm.db);
		assert_int_equal(nm_state_change_peers(&nm, NULL, 0,
						       (const uint8_t (*)[WG_KEY_LEN])keys, 4), 0);
		assert_int_equal(sqlite3_total_changes(nm.db) - changes, 2);
	}
	assert_int_equal(nm.n_peers, 4);
	assert_int_equal(stored_rows(), 4);
	assert_null(find_i(1));
	assert_null(find_i(4));
	assert_non_null(find_i(0));
	assert_sorted_unique();

	/* A key both removed and upserted stays (a key rotation: old out, new
	 * in, the same delta). */
	p = peers_range(7, 1, "192.0.2.7:51820");
	{
		uint8_t keys[2][WG_KEY_LEN];

		memcpy(keys[0], find_i(0)->public_key, WG_KEY_LEN);
		memcpy(keys[1], p[0].public_key, WG_KEY_LEN);
		assert_int_equal(nm_state_change_peers(&nm, p, 1,
						       (const uint8_t (*)[WG_KEY_LEN])keys, 2), 0);
	}
	assert_null(find_i(0));
	assert_non_null(find_i(7));
	assert_int_equal(nm.n_peers, 4);

	/* Everything survives a restart, as the copy said. */
	reopen();
	assert_int_equal(nm.n_peers, 4);
	assert_null(find_i(0));
	assert_null(find_i(1));
	assert_null(find_i(4));
	assert_string_equal(find_i(3)->endpoint, "192.0.2.99:51820");
	assert_string_equal(find_i(5)->endpoint, "192.0.2.1:51820");
	assert_string_equal(find_i(7)->name, "node-7");
	assert_string_equal(fmt(&find_i(7)->allowed[0]), "10.0.7.0/24");
	assert_sorted_unique();
}

static void test_peers_replace_diff(void **state)
{
	struct nm_peer *p;
	int changes;

	open_state();
	assert_int_equal(nm_state_replace_peers(&nm, peers_range(0, 100, "192.0.2.1:51820"),
						100), 0);
	assert_int_equal(stored_rows(), 100);

	/* The same list again writes nothing. */
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_replace_peers(&nm, peers_range(0, 100, "192.0.2.1:51820"),
						100), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 0);

	/* 0..9 gone, 100..104 new, 50 changed: 16 rows, not 100. Duplicate
	 * keys in the answer are stored once. */
	p = peers_range(10, 96, "192.0.2.1:51820");
	snprintf(p[40].endpoint, sizeof(p[40].endpoint), "192.0.2.50:51820");
	free(p[95].name);
	free(p[95].allowed);
	peer_make(&p[95], 104, "192.0.2.1:51820"); /* a duplicate of p[94] */
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_replace_peers(&nm, p, 96), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 16);
	assert_int_equal(nm.n_peers, 95);
	assert_int_equal(stored_rows(), 95);
	assert_null(find_i(9));
	assert_non_null(find_i(104));
	assert_string_equal(find_i(50)->endpoint, "192.0.2.50:51820");
	assert_sorted_unique();

	reopen();
	assert_int_equal(nm.n_peers, 95);
	assert_null(find_i(0));
	assert_string_equal(find_i(50)->endpoint, "192.0.2.50:51820");
	assert_string_equal(find_i(10)->endpoint, "192.0.2.1:51820");
	assert_sorted_unique();
}

/* At ten thousand stored peers a one-peer delta writes one row (two for a
 * key rotation), in one transaction. */
static void test_peers_delta_is_o1(void **state)
{
	enum { N = 10000 };
	uint8_t old[1][WG_KEY_LEN];
	struct nm_peer *p;
	int changes;

	open_state();
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_replace_peers(&nm, peers_range(0, N, "192.0.2.1:51820"), N),
			 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, N);
	assert_int_equal(stored_rows(), N);

	/* One peer's endpoint changes. */
	p = peers_range(1234, 1, "192.0.2.2:51820");
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_change_peers(&nm, p, 1, NULL, 0), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 1);
	assert_string_equal(find_i(1234)->endpoint, "192.0.2.2:51820");

	/* One node joins. */
	p = peers_range(N, 1, "192.0.2.3:51820");
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_change_peers(&nm, p, 1, NULL, 0), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 1);

	/* One node rotates its key: the old row out, the new in. */
	memcpy(old[0], find_i(77)->public_key, WG_KEY_LEN);
	p = peers_range(N + 1, 1, "192.0.2.4:51820");
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_change_peers(&nm, p, 1,
					       (const uint8_t (*)[WG_KEY_LEN])old, 1), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 2);
	assert_int_equal(nm.n_peers, N + 1);

	/* One node leaves. */
	memcpy(old[0], find_i(5)->public_key, WG_KEY_LEN);
	changes = sqlite3_total_changes(nm.db);
	assert_int_equal(nm_state_change_peers(&nm, NULL, 0,
					       (const uint8_t (*)[WG_KEY_LEN])old, 1), 0);
	assert_int_equal(sqlite3_total_changes(nm.db) - changes, 1);
	assert_int_equal(nm.n_peers, N);
	assert_sorted_unique();

	reopen();
	assert_int_equal(nm.n_peers, N);
	assert_int_equal(stored_rows(), N);
	assert_null(find_i(5));
	assert_null(find_i(77));
	assert_non_null(find_i(N + 1));
	assert_string_equal(find_i(1234)->endpoint, "192.0.2.2:51820");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_subnets_yet, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_alloc_and_find, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_duplicate_refused, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_release, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_exhaustion, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_schema_upgrade, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_node_peers, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_peers_upsert_delete, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_peers_replace_diff, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_peers_delta_is_o1, setup_dir,
						teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

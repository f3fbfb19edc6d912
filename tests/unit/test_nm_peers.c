/*
 * The node manager's peer diff (node-manager/iface.c): the cluster's node
 * list (sync) or the stored state (startup reconcile) against the peers the
 * interface has, applied with one incremental wg_set that touches only what
 * differs. wg_get and wg_set are replaced at link time (-Wl,--wrap) by a
 * fake interface held in memory, so no device and no network is needed;
 * the fake applies each wg_set as the kernel would, so a second pass over
 * the same list must change nothing. The plan (a dry pass) lists the same
 * changes without calling wg_set.
 */
#include <arpa/inet.h>
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
#include "nm.h"

#define IFNAME "wgt0"
#define MAX_PEERS 2048

int __wrap_wg_get(const char *name, struct wg_device **dev);
int __wrap_wg_set(const struct wg_device *dev);

/* --- the fake interface --- */

static struct wg_device iface;      /* its peers */
static struct wg_device last_set;   /* copy of the last wg_set request */
static int get_calls, set_calls;
static int get_ret, set_ret;        /* injected failures */

static void peer_copy(struct wg_peer *dst, const struct wg_peer *src)
{
	*dst = *src;
	dst->allowedips = NULL;
	dst->n_allowedips = dst->cap_allowedips = 0;
	for (size_t i = 0; i < src->n_allowedips; i++)
		assert_int_equal(wg_peer_add_allowedip(dst, &src->allowedips[i]), 0);
}

static void dev_clear(struct wg_device *d)
{
	for (size_t i = 0; i < d->n_peers; i++)
		wg_peer_clear(&d->peers[i]);
	free(d->peers);
	memset(d, 0, sizeof(*d));
}

static struct wg_peer *dev_find(struct wg_device *d, const uint8_t *key)
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (!memcmp(d->peers[i].public_key, key, WG_KEY_LEN))
			return &d->peers[i];
	return NULL;
}

int __wrap_wg_get(const char *name, struct wg_device **out)
{
	struct wg_device *d;

	get_calls++;
	if (get_ret)
		return get_ret;
	if (strcmp(name, IFNAME))
		return -ENODEV;
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	snprintf(d->name, sizeof(d->name), "%s", name);
	/* In reverse: the code under test must not rely on the order. */
	for (size_t i = iface.n_peers; i-- > 0;) {
		struct wg_peer *p = wg_device_add_peer(d);

		assert_non_null(p);
		peer_copy(p, &iface.peers[i]);
		p->flags = 0;
	}
	*out = d;
	return 0;
}

int __wrap_wg_set(const struct wg_device *req)
{
	set_calls++;
	assert_string_equal(req->name, IFNAME);
	/* Never the whole list: a restart must not interrupt tunnels. */
	assert_false(req->flags & WGDEVICE_REPLACE_PEERS);
	dev_clear(&last_set);
	for (size_t i = 0; i < req->n_peers; i++) {
		struct wg_peer *p = wg_device_add_peer(&last_set);

		assert_non_null(p);
		peer_copy(p, &req->peers[i]);
	}
	if (set_ret)
		return set_ret;
	for (size_t i = 0; i < req->n_peers; i++) {
		const struct wg_peer *r = &req->peers[i];
		struct wg_peer *p = dev_find(&iface, r->public_key);

		if (r->flags & WGPEER_REMOVE_ME) {
			if (p) {
				wg_peer_clear(p);
				*p = iface.peers[--iface.n_peers];
			}
			continue;
		}
		if (!p) {
			p = wg_device_add_peer(&iface);
			assert_non_null(p);
			memcpy(p->public_key, r->public_key, WG_KEY_LEN);
		}
		if (r->flags & WGPEER_HAS_ENDPOINT)
			p->endpoint = r->endpoint;
		if (r->flags & WGPEER_HAS_KEEPALIVE)
			p->keepalive = r->keepalive;
		if (r->flags & WGPEER_REPLACE_ALLOWEDIPS)
			p->n_allowedips = 0;
		for (size_t j = 0; j < r->n_allowedips; j++)
			assert_int_equal(wg_peer_add_allowedip(p, &r->allowedips[j]), 0);
	}
	return 0;
}

/* --- fixtures --- */

static struct nm nm;
static struct nm_alloc allocs[4];

static void key_of(uint8_t key[static WG_KEY_LEN], unsigned int i)
{
	memset(key, 0x5a, WG_KEY_LEN);
	key[0] = (uint8_t)(i >> 8);
	key[1] = (uint8_t)i;
}

static struct ipnet net(const char *s)
{
	struct ipnet n;

	assert_int_equal(ipnet_parse(s, &n, true), 0);
	return n;
}

/* Put a peer on the fake interface directly. */
static void iface_add(unsigned int k, const char *endpoint, uint16_t keepalive,
		      const char *net1, const char *net2)
{
	struct wg_peer *p = wg_device_add_peer(&iface);
	char err[256];
	struct ipnet n;

	assert_non_null(p);
	key_of(p->public_key, k);
	p->keepalive = keepalive;
	if (endpoint)
		assert_int_equal(wg_peer_set_endpoint(p, endpoint, err, sizeof(err)), 0);
	p->flags = 0;
	n = net(net1);
	assert_int_equal(wg_peer_add_allowedip(p, &n), 0);
	if (net2) {
		n = net(net2);
		assert_int_equal(wg_peer_add_allowedip(p, &n), 0);
	}
}

static struct wg_peer *iface_peer(unsigned int k)
{
	uint8_t key[WG_KEY_LEN];

	key_of(key, k);
	return dev_find(&iface, key);
}

static struct wg_peer *set_peer(unsigned int k)
{
	uint8_t key[WG_KEY_LEN];

	key_of(key, k);
	return dev_find(&last_set, key);
}

/* A cluster list entry; nets points at static storage the caller keeps. */
static struct nm_peer node(unsigned int k, const char *endpoint, struct ipnet *nets,
			   size_t n)
{
	struct nm_peer p = { .name = (char *)"node", .allowed = nets, .n_allowed = n };

	key_of(p.public_key, k);
	snprintf(p.endpoint, sizeof(p.endpoint), "%s", endpoint);
	return p;
}

static void add_container(unsigned int k, const char *v4)
{
	struct nm_alloc *a = &allocs[nm.n_allocs++];

	memset(a, 0, sizeof(*a));
	snprintf(a->container_id, sizeof(a->container_id), "c%u", k);
	snprintf(a->ifname, sizeof(a->ifname), "eth0");
	a->addrs[0] = net(v4);
	a->n_addrs = 1;
	a->has_key = true;
	key_of(a->public_key, k);
}

static bool has_net(const struct wg_peer *p, const char *s)
{
	struct ipnet n = net(s);

	for (size_t i = 0; i < p->n_allowedips; i++)
		if (p->allowedips[i].prefixlen == n.prefixlen &&
		    ipaddr_equal(&p->allowedips[i].addr, &n.addr))
			return true;
	return false;
}

static int setup(void **state)
{
	log_init("test_nm_peers", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	memset(&nm, 0, sizeof(nm));
	nm.cfg.ifname = IFNAME;
	memset(nm.public_key, 0xee, WG_KEY_LEN);
	nm.subnets[0] = net("10.100.3.0/24");
	nm.subnets[1] = net("fd00:100:3::/64");
	nm.n_subnets = 2;
	nm.allocs = allocs;
	nm.cap_allocs = sizeof(allocs) / sizeof(allocs[0]);
	get_calls = set_calls = get_ret = set_ret = 0;
	return 0;
}

static int teardown(void **state)
{
	dev_clear(&iface);
	dev_clear(&last_set);
	return 0;
}

/* --- sync: nm_iface_apply_node_peers --- */

static void test_add_to_empty(void **state)
{
	static struct ipnet n1[2], n2[1];
	struct nm_peer peers[2];
	struct wg_peer *p;
	size_t changed = 99;
	char buf[IPNET_STRLEN];

	n1[0] = net("10.100.1.0/24");
	n1[1] = net("fd00:100:1::/64");
	n2[0] = net("10.100.2.0/24");
	peers[0] = node(1, "192.0.2.1:51820", n1, 2);
	peers[1] = node(2, "", n2, 1);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 2, &changed), 0);
	assert_int_equal(changed, 2);
	assert_int_equal(set_calls, 1);
	assert_int_equal(last_set.n_peers, 2);
	p = set_peer(1);
	assert_non_null(p);
	assert_int_equal(p->flags & WGPEER_REMOVE_ME, 0);
	assert_true(p->flags & WGPEER_REPLACE_ALLOWEDIPS);
	assert_true(p->flags & WGPEER_HAS_KEEPALIVE);
	assert_int_equal(p->keepalive, NM_NODE_KEEPALIVE);
	assert_true(p->flags & WGPEER_HAS_ENDPOINT);
	assert_string_equal(sockaddr_format(&p->endpoint.addr, buf), "192.0.2.1:51820");
	assert_int_equal(p->n_allowedips, 2);
	assert_true(has_net(p, "10.100.1.0/24"));
	assert_true(has_net(p, "fd00:100:1::/64"));
	/* No endpoint known (yet): none is set. */
	p = set_peer(2);
	assert_non_null(p);
	assert_false(p->flags & WGPEER_HAS_ENDPOINT);
	assert_int_equal(p->n_allowedips, 1);
	assert_int_equal(iface.n_peers, 2);

	/* The same list again: nothing differs, nothing is written. */
	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 2, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(set_calls, 1);
	assert_int_equal(get_calls, 2);
}

static void test_only_differences(void **state)
{
	static struct ipnet n1[2], n2[1], n3[1], n4[1];
	struct nm_peer peers[4];
	size_t changed = 0;
	char buf[IPNET_STRLEN];

	/* 1: same nets in another order, same endpoint: untouched.
	 * 2: a net changed.  3: the endpoint moved.  4: keepalive was off. */
	iface_add(1, "192.0.2.1:51820", NM_NODE_KEEPALIVE, "fd00:100:1::/64", "10.100.1.0/24");
	iface_add(2, "192.0.2.2:51820", NM_NODE_KEEPALIVE, "10.100.2.0/24", NULL);
	iface_add(3, "192.0.2.3:51820", NM_NODE_KEEPALIVE, "10.100.4.0/24", NULL);
	iface_add(4, "192.0.2.4:51820", 0, "10.100.5.0/24", NULL);
	n1[0] = net("10.100.1.0/24");
	n1[1] = net("fd00:100:1::/64");
	n2[0] = net("10.100.20.0/24");
	n3[0] = net("10.100.4.0/24");
	n4[0] = net("10.100.5.0/24");
	peers[0] = node(1, "192.0.2.1:51820", n1, 2);
	peers[1] = node(2, "192.0.2.2:51820", n2, 1);
	peers[2] = node(3, "[2001:db8::3]:51820", n3, 1);
	peers[3] = node(4, "192.0.2.4:51820", n4, 1);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 4, &changed), 0);
	assert_int_equal(changed, 3);
	assert_int_equal(set_calls, 1);
	assert_null(set_peer(1));
	assert_non_null(set_peer(2));
	assert_non_null(set_peer(3));
	assert_non_null(set_peer(4));
	assert_true(has_net(iface_peer(2), "10.100.20.0/24"));
	assert_false(has_net(iface_peer(2), "10.100.2.0/24"));
	assert_string_equal(sockaddr_format(&iface_peer(3)->endpoint.addr, buf),
			    "[2001:db8::3]:51820");
	assert_int_equal(iface_peer(4)->keepalive, NM_NODE_KEEPALIVE);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 4, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(set_calls, 1);
}

static void test_removals_keep_containers(void **state)
{
	static struct ipnet n1[1];
	struct nm_peer peers[1];
	struct wg_peer *p;
	size_t changed = 0;

	/* Node 1 stays, node 2 left the cluster, 3 is a container's peer. */
	iface_add(1, "192.0.2.1:51820", NM_NODE_KEEPALIVE, "10.100.1.0/24", NULL);
	iface_add(2, "192.0.2.2:51820", NM_NODE_KEEPALIVE, "10.100.2.0/24", NULL);
	iface_add(3, NULL, 0, "10.100.3.7/32", NULL);
	add_container(3, "10.100.3.7/32");
	n1[0] = net("10.100.1.0/24");
	peers[0] = node(1, "192.0.2.1:51820", n1, 1);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 1, &changed), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(last_set.n_peers, 1);
	p = set_peer(2);
	assert_non_null(p);
	assert_int_equal(p->flags, WGPEER_REMOVE_ME);
	assert_null(iface_peer(2));
	assert_non_null(iface_peer(1));
	assert_non_null(iface_peer(3));

	/* An empty cluster list removes every node peer, no container peer. */
	assert_int_equal(nm_iface_apply_node_peers(&nm, NULL, 0, &changed), 0);
	assert_int_equal(changed, 1);
	assert_null(iface_peer(1));
	assert_non_null(iface_peer(3));
	assert_int_equal(iface.n_peers, 1);
}

static void test_skipped_entries(void **state)
{
	static struct ipnet n[3];
	struct nm_peer peers[3];
	size_t changed = 0;

	/* Our own entry, and a node claiming a container's key, are skipped;
	 * the container's peer is left as it is. */
	iface_add(3, NULL, 0, "10.100.3.7/32", NULL);
	add_container(3, "10.100.3.7/32");
	n[0] = net("10.100.1.0/24");
	n[1] = net("10.100.3.0/24");
	n[2] = net("10.100.2.0/24");
	peers[0] = node(1, "192.0.2.1:51820", &n[0], 1);
	peers[1] = node(3, "192.0.2.3:51820", &n[2], 1);
	peers[2] = node(0, "192.0.2.9:51820", &n[1], 1);
	memcpy(peers[2].public_key, nm.public_key, WG_KEY_LEN);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 3, &changed), 0);
	assert_int_equal(changed, 1);
	assert_non_null(set_peer(1));
	assert_null(dev_find(&iface, nm.public_key));
	assert_int_equal(iface_peer(3)->n_allowedips, 1);
	assert_true(has_net(iface_peer(3), "10.100.3.7/32"));
	assert_int_equal(iface_peer(3)->keepalive, 0);
	assert_int_equal(iface.n_peers, 2);
}

static void test_errors(void **state)
{
	static struct ipnet n1[1];
	struct nm_peer peers[1];
	size_t changed = 0;

	n1[0] = net("10.100.1.0/24");
	peers[0] = node(1, "192.0.2.1:51820", n1, 1);
	get_ret = -ENODEV;
	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 1, &changed), -ENODEV);
	assert_int_equal(set_calls, 0);
	get_ret = 0;
	set_ret = -EPERM;
	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 1, &changed), -EPERM);
	assert_int_equal(set_calls, 1);
	assert_int_equal(iface.n_peers, 0);
	set_ret = 0;
	/* An unusable endpoint is logged; the peer still gets its nets. */
	peers[0] = node(1, "not an endpoint", n1, 1);
	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, 1, &changed), 0);
	assert_int_equal(changed, 1);
	assert_false(set_peer(1)->flags & WGPEER_HAS_ENDPOINT);
	assert_true(has_net(iface_peer(1), "10.100.1.0/24"));
}

static void test_many(void **state)
{
	enum { N = 1000 };
	static struct ipnet nets[N];
	static struct nm_peer peers[N];
	size_t changed = 0;
	char buf[64];

	/* Every other node is already there (some with a stale net); 200
	 * former nodes must go. */
	for (unsigned int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "10.%u.%u.0/24", 100 + i / 256, i % 256);
		nets[i] = net(buf);
		peers[i] = node(i + 1, "", &nets[i], 1);
		if (i % 2 == 0)
			iface_add(i + 1, NULL, NM_NODE_KEEPALIVE, i % 20 ? buf : "10.99.0.0/24",
				  NULL);
	}
	for (unsigned int i = 0; i < 200; i++)
		iface_add(N + 1 + i, NULL, NM_NODE_KEEPALIVE, "10.98.0.0/24", NULL);

	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, N, &changed), 0);
	/* 500 new, 50 stale, 200 gone. */
	assert_int_equal(changed, 500 + 50 + 200);
	assert_int_equal(iface.n_peers, N);
	for (unsigned int i = 0; i < N; i += 97) {
		snprintf(buf, sizeof(buf), "10.%u.%u.0/24", 100 + i / 256, i % 256);
		assert_true(has_net(iface_peer(i + 1), buf));
	}
	assert_null(iface_peer(N + 1));
	assert_int_equal(nm_iface_apply_node_peers(&nm, peers, N, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(set_calls, 1);
}

/* --- startup: nm_iface_reconcile --- */

static void test_reconcile(void **state)
{
	static struct ipnet n1[1];
	struct wg_peer *p;

	/* Stored: containers 3 (key) and 5 (no key yet), node peer 1.
	 * Interface: container 3 with a stale address, leftover container-like
	 * peer 6, and peer 7 outside our subnets (perhaps a node peer the sync
	 * has not confirmed yet: left alone). */
	add_container(3, "10.100.3.7/32");
	add_container(5, "10.100.3.9/32");
	allocs[1].has_key = false;
	n1[0] = net("10.100.1.0/24");
	nm.peers = calloc(1, sizeof(*nm.peers));
	assert_non_null(nm.peers);
	nm.peers[0] = node(1, "192.0.2.1:51820", n1, 1);
	nm.n_peers = 1;
	iface_add(3, NULL, 0, "10.100.3.8/32", NULL);
	iface_add(6, NULL, 0, "10.100.3.20/32", "fd00:100:3::20/128");
	iface_add(7, NULL, NM_NODE_KEEPALIVE, "10.100.7.0/24", NULL);

	assert_int_equal(nm_iface_reconcile(&nm), 0);
	assert_int_equal(set_calls, 1);
	p = set_peer(3);
	assert_non_null(p);
	assert_int_equal(p->keepalive, 0);
	assert_true(has_net(iface_peer(3), "10.100.3.7/32"));
	assert_false(has_net(iface_peer(3), "10.100.3.8/32"));
	assert_null(set_peer(5));
	assert_null(iface_peer(5));
	assert_int_equal(set_peer(6)->flags, WGPEER_REMOVE_ME);
	assert_null(iface_peer(6));
	assert_null(set_peer(7));
	assert_non_null(iface_peer(7));
	assert_non_null(iface_peer(1));
	assert_int_equal(iface_peer(1)->keepalive, NM_NODE_KEEPALIVE);
	assert_int_equal(iface.n_peers, 3);

	/* Idempotent. */
	assert_int_equal(nm_iface_reconcile(&nm), 0);
	assert_int_equal(set_calls, 1);
	free(nm.peers);
	nm.peers = NULL;
	nm.n_peers = 0;
}

/* --- plan: the same diff, printed (dry) or applied --- */

static bool plan_has(const struct nm_plan *plan, const char *verb, unsigned int k,
		     const char *rest)
{
	uint8_t key[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN + 1], want[256];

	key_of(key, k);
	key_to_base64(b64, key);
	snprintf(want, sizeof(want), "peer %s %s %s", verb, b64, rest);
	for (size_t i = 0; i < plan->n; i++)
		if (!strncmp(plan->lines[i], want, strlen(want)))
			return true;
	return false;
}

static void test_plan(void **state)
{
	static struct ipnet n1[1], n2[1];
	struct nm_peer peers[2];
	struct nm_plan plan = { .dry = true };

	add_container(3, "10.100.3.7/32");
	n1[0] = net("10.100.1.0/24");
	n2[0] = net("10.100.2.0/24");
	peers[0] = node(1, "192.0.2.1:51820", n1, 1);
	peers[1] = node(2, "192.0.2.2:51820", n2, 1);
	iface_add(1, "192.0.2.9:51820", NM_NODE_KEEPALIVE, "10.100.1.0/24", NULL);
	iface_add(6, NULL, 0, "10.100.6.0/24", NULL);

	assert_int_equal(nm_iface_reconcile_peers(&nm, peers, 2, true, &plan), 0);
	assert_int_equal(set_calls, 0); /* dry: nothing touched */
	assert_int_equal(plan.n, 4);
	assert_true(plan_has(&plan, "update", 1, "node=node changed=endpoint endpoint=192.0.2.1:51820"));
	assert_true(plan_has(&plan, "remove", 6, "allowed-ips=10.100.6.0/24"));
	assert_true(plan_has(&plan, "add", 2, "node=node endpoint=192.0.2.2:51820 allowed-ips=10.100.2.0/24 keepalive=25"));
	assert_true(plan_has(&plan, "add", 3, "container=c3 endpoint=(none) allowed-ips=10.100.3.7/32 keepalive=0"));
	assert_non_null(iface_peer(6));
	assert_null(iface_peer(3));
	nm_plan_free(&plan);

	/* Applied: the same four changes in one wg_set, then the container
	 * peer put back gets its keepalive switched on and off (two more). */
	plan.dry = false;
	assert_int_equal(nm_iface_reconcile_peers(&nm, peers, 2, true, &plan), 0);
	assert_int_equal(plan.n, 4);
	assert_int_equal(set_calls, 3);
	assert_non_null(set_peer(3));
	assert_int_equal(set_peer(3)->keepalive, 0);
	assert_int_equal(last_set.n_peers, 1);
	assert_null(iface_peer(6));
	assert_non_null(iface_peer(2));
	assert_int_equal(iface_peer(3)->keepalive, 0);
	nm_plan_free(&plan);

	/* Nothing left to plan. */
	plan.dry = true;
	assert_int_equal(nm_iface_reconcile_peers(&nm, peers, 2, true, &plan), 0);
	assert_int_equal(plan.n, 0);
	assert_int_equal(set_calls, 3);
	nm_plan_free(&plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_to_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_only_differences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removals_keep_containers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skipped_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

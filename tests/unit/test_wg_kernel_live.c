/*
 * The kernel backend against the kernel's own WireGuard: what the userspace
 * runs cannot prove. A device with a thousand peers and one peer with
 * thousands of allowed IPs goes in through wg_kernel_set (many SET_DEVICE
 * messages, one peer split across several) and comes back through
 * wg_kernel_get (a dump of many messages, that peer continued across them)
 * equal to what was sent; incremental changes (add, remove, replace or
 * append allowed IPs, update-only) touch exactly the peers named;
 * REPLACE_PEERS leaves exactly the peers given.
 *
 * Needs the generic netlink family "wireguard": the qemu VM of tests/kernel
 * runs it with WGCNI_REQUIRE_KERNEL=1, where a missing family fails. Without
 * it (this host) every test prints "skipped: no wireguard family" and skips.
 * Each test works in a private network namespace of its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wg.h"
#include "wg_genl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/wireguard.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#define IFNAME "wglive0"
#define N_PEERS 1000 /* the big device */
#define N_SMALL 200 /* the base of the change tests: removing peers is what
		     * costs in the kernel (an RCU grace period each), and
		     * the emulated VM is slow */
#define BIG_PEER_IPS 2500 /* peer 0: ~70 KB of allowed IPs on its own */

/*
 * What the device should hold, peer by peer; index i lives in the public
 * key (bytes 1-2), so a peer read back finds its expectation directly.
 */
#define MAX_INDEX 4096
struct expect {
	bool present;
	struct wg_peer peer; /* allowedips owned */
};

struct live {
	struct expect *want; /* [MAX_INDEX] */
	uint8_t private_key[WG_KEY_LEN];
};

static void peer_key(uint8_t key[WG_KEY_LEN], unsigned int i, uint8_t gen)
{
	memset(key, 0x5a ^ gen, WG_KEY_LEN);
	key[0] = 0xc3;
	key[1] = (uint8_t)(i >> 8);
	key[2] = (uint8_t)i;
	key[3] = gen;
}

static unsigned int key_index(const uint8_t key[WG_KEY_LEN])
{
	return (unsigned int)key[1] << 8 | key[2];
}

static struct ipnet v4(uint32_t a, unsigned int len)
{
	struct ipnet n = { .addr.family = AF_INET, .prefixlen = len };

	n.addr.bytes[12] = (uint8_t)(a >> 24);
	n.addr.bytes[13] = (uint8_t)(a >> 16);
	n.addr.bytes[14] = (uint8_t)(a >> 8);
	n.addr.bytes[15] = (uint8_t)a;
	return n;
}

static struct ipnet v6(uint16_t a, uint16_t b, unsigned int len)
{
	struct ipnet n = { .addr.family = AF_INET6, .prefixlen = len };

	n.addr.bytes[0] = 0xfd;
	n.addr.bytes[1] = 0x77;
	n.addr.bytes[2] = (uint8_t)(a >> 8);
	n.addr.bytes[3] = (uint8_t)a;
	n.addr.bytes[4] = (uint8_t)(b >> 8);
	n.addr.bytes[5] = (uint8_t)b;
	return n;
}

/*
 * Peer i of generation gen (a different gen gives other AllowedIPs, so a
 * replacement is visible). Every prefix in the whole test is distinct: the
 * kernel moves a prefix given to a second peer away from the first.
 *   v4 10.(64+gen).(i>>8).(i&255)/32, v6 fd77:i:gen::/48; every 3rd peer
 *   a preshared key, every 2nd an endpoint (v4 or v6), every 5th keepalive.
 *   With big, peer 0 of gen 0 also has BIG_PEER_IPS /32s in 10.128.0.0/9.
 */
static void make_peer(struct wg_peer *p, unsigned int i, uint8_t gen, bool big)
{
	struct ipnet ip;

	memset(p, 0, sizeof(*p));
	peer_key(p->public_key, i, 0);
	ip = v4(0x0a000000u | (64u + gen) << 16 | i, 32);
	assert_int_equal(wg_peer_add_allowedip(p, &ip), 0);
	ip = v6((uint16_t)i, gen, 48);
	assert_int_equal(wg_peer_add_allowedip(p, &ip), 0);
	if (big && i == 0 && gen == 0) {
		for (uint32_t k = 0; k < BIG_PEER_IPS; k++) {
			ip = v4(0x0a800000u + k, 32);
			assert_int_equal(wg_peer_add_allowedip(p, &ip), 0);
		}
	}
	if (i % 3 == 0) {
		p->flags |= WGPEER_HAS_PRESHARED_KEY;
		memset(p->preshared_key, 0x11 + gen, WG_KEY_LEN);
		p->preshared_key[0] = (uint8_t)i;
	}
	if (i % 2 == 0) {
		p->flags |= WGPEER_HAS_ENDPOINT;
		if (i % 4 == 0) {
			p->endpoint.addr4.sin_family = AF_INET;
			p->endpoint.addr4.sin_port = htons((uint16_t)(20000 + i));
			p->endpoint.addr4.sin_addr.s_addr = htonl(0xc0000200u | (i & 0xff));
		} else {
			p->endpoint.addr6.sin6_family = AF_INET6;
			p->endpoint.addr6.sin6_port = htons((uint16_t)(30000 + i));
			p->endpoint.addr6.sin6_addr.s6_addr[0] = 0x20;
			p->endpoint.addr6.sin6_addr.s6_addr[1] = 0x01;
			p->endpoint.addr6.sin6_addr.s6_addr[2] = 0x0d;
			p->endpoint.addr6.sin6_addr.s6_addr[3] = 0xb8;
			p->endpoint.addr6.sin6_addr.s6_addr[14] = (uint8_t)(i >> 8);
			p->endpoint.addr6.sin6_addr.s6_addr[15] = (uint8_t)i;
		}
	}
	if (i % 5 == 0) {
		p->flags |= WGPEER_HAS_KEEPALIVE;
		p->keepalive = (uint16_t)(10 + i % 50);
	}
}

/* Deep copy (the expectation keeps its own allowed IPs). */
static void peer_copy(struct wg_peer *dst, const struct wg_peer *src)
{
	*dst = *src;
	dst->allowedips = NULL;
	dst->n_allowedips = dst->cap_allowedips = 0;
	for (size_t k = 0; k < src->n_allowedips; k++)
		assert_int_equal(wg_peer_add_allowedip(dst, &src->allowedips[k]), 0);
	/* Request-only flags are not state. */
	dst->flags &= WGPEER_HAS_PRESHARED_KEY | WGPEER_HAS_ENDPOINT | WGPEER_HAS_KEEPALIVE;
}

static void expect_set(struct live *l, const struct wg_peer *p)
{
	struct expect *e = &l->want[key_index(p->public_key)];

	wg_peer_clear(&e->peer);
	peer_copy(&e->peer, p);
	e->present = true;
}

static void expect_remove(struct live *l, unsigned int i)
{
	wg_peer_clear(&l->want[i].peer);
	memset(&l->want[i], 0, sizeof(l->want[i]));
}

static int ipnet_cmp_q(const void *a, const void *b)
{
	const struct ipnet *x = a, *y = b;

	if (x->addr.family != y->addr.family)
		return x->addr.family < y->addr.family ? -1 : 1;
	if (x->prefixlen != y->prefixlen)
		return x->prefixlen < y->prefixlen ? -1 : 1;
	return memcmp(x->addr.bytes, y->addr.bytes, 16);
}

static bool endpoint_same(const struct wg_peer *a, const struct wg_peer *b)
{
	if (a->endpoint.addr.sa_family != b->endpoint.addr.sa_family)
		return false;
	if (a->endpoint.addr.sa_family == AF_INET)
		return a->endpoint.addr4.sin_port == b->endpoint.addr4.sin_port &&
		       a->endpoint.addr4.sin_addr.s_addr == b->endpoint.addr4.sin_addr.s_addr;
	if (a->endpoint.addr.sa_family == AF_INET6)
		return a->endpoint.addr6.sin6_port == b->endpoint.addr6.sin6_port &&
		       !memcmp(&a->endpoint.addr6.sin6_addr, &b->endpoint.addr6.sin6_addr, 16);
	return a->endpoint.addr.sa_family == 0;
}

/* The device as read back equals the expectation, peer for peer. */
static void assert_device(struct live *l, const struct wg_device *g)
{
	size_t want = 0, i;
	bool *seen = calloc(MAX_INDEX, sizeof(*seen));

	assert_non_null(seen);
	for (i = 0; i < MAX_INDEX; i++)
		want += l->want[i].present;
	assert_string_equal(g->name, IFNAME);
	assert_true(g->flags & WGDEVICE_HAS_PRIVATE_KEY);
	assert_memory_equal(g->private_key, l->private_key, WG_KEY_LEN);
	assert_int_equal(g->listen_port, 51820);
	assert_int_equal(g->n_peers, want);
	for (i = 0; i < g->n_peers; i++) {
		const struct wg_peer *got = &g->peers[i];
		unsigned int idx = key_index(got->public_key);
		const struct wg_peer *exp;

		assert_true(idx < MAX_INDEX);
		if (!l->want[idx].present)
			fail_msg("peer %u is on the device but should not be", idx);
		if (seen[idx])
			fail_msg("peer %u appears twice in the dump", idx);
		seen[idx] = true;
		exp = &l->want[idx].peer;
		assert_memory_equal(got->public_key, exp->public_key, WG_KEY_LEN);
		if (exp->flags & WGPEER_HAS_PRESHARED_KEY)
			assert_memory_equal(got->preshared_key, exp->preshared_key, WG_KEY_LEN);
		else
			assert_false(got->flags & WGPEER_HAS_PRESHARED_KEY);
		if (!endpoint_same(got, exp))
			fail_msg("peer %u: endpoint differs", idx);
		assert_int_equal(got->keepalive,
				 exp->flags & WGPEER_HAS_KEEPALIVE ? exp->keepalive : 0);
		if (got->n_allowedips != exp->n_allowedips)
			fail_msg("peer %u: %zu allowed IPs, expected %zu", idx,
				 got->n_allowedips, exp->n_allowedips);
		/* As sets: the kernel returns them in its own order. */
		struct ipnet *a = calloc(got->n_allowedips + 1, sizeof(*a));
		struct ipnet *b = calloc(got->n_allowedips + 1, sizeof(*b));

		assert_non_null(a);
		assert_non_null(b);
		memcpy(a, got->allowedips, got->n_allowedips * sizeof(*a));
		memcpy(b, exp->allowedips, exp->n_allowedips * sizeof(*b));
		qsort(a, got->n_allowedips, sizeof(*a), ipnet_cmp_q);
		qsort(b, got->n_allowedips, sizeof(*b), ipnet_cmp_q);
		for (size_t k = 0; k < got->n_allowedips; k++)
			if (ipnet_cmp_q(&a[k], &b[k]))
				fail_msg("peer %u: allowed IP %zu differs", idx, k);
		free(a);
		free(b);
		/* Nothing talked to anyone. */
		assert_int_equal(got->rx_bytes, 0);
		assert_int_equal(got->last_handshake.tv_sec, 0);
	}
	free(seen);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void get_and_check(struct live *l)
{
	struct wg_device *g = NULL;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(wg_kernel_get(IFNAME, &g), 0);
	printf("# wg_kernel_get: %zu peers, %ld ms\n", g ? g->n_peers : 0, ms_since(&t0));
	assert_non_null(g);
	assert_device(l, g);
	wg_device_free(g);
}

/*
 * Count the messages of a GET_DEVICE dump ourselves: the proof that the
 * reply wg_kernel_get merged really spanned several.
 */
static int count_cb(struct nl_msg *msg, void *arg)
{
	(*(int *)arg)++;
	return NL_OK;
}

static int dump_messages(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_msg *msg;
	int family, n = 0;

	assert_non_null(sk);
	assert_int_equal(genl_connect(sk), 0);
	nl_socket_enable_msg_peek(sk);
	family = genl_ctrl_resolve(sk, WG_GENL_NAME);
	assert_true(family > 0);
	msg = nlmsg_alloc();
	assert_non_null(msg);
	assert_non_null(genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
				    NLM_F_REQUEST | NLM_F_DUMP, WG_CMD_GET_DEVICE,
				    WG_GENL_VERSION));
	assert_int_equal(nla_put_string(msg, WGDEVICE_A_IFNAME, IFNAME), 0);
	assert_true(nl_send_auto(sk, msg) >= 0);
	nlmsg_free(msg);
	assert_int_equal(nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, count_cb, &n), 0);
	assert_int_equal(nl_recvmsgs_default(sk), 0);
	nl_socket_free(sk);
	return n;
}

/* How many SET_DEVICE messages wg_kernel_set sends for dev. */
static size_t set_messages(const struct wg_device *dev)
{
	struct nl_msg **msgs = NULL;
	size_t n = 0;

	/* The family id does not change the sizes. */
	assert_int_equal(wg_genl_build_set(dev, 0x20, wg_genl_msg_size(), &msgs, &n), 0);
	wg_genl_msgs_free(msgs, n);
	return n;
}

/* --- fixtures ------------------------------------------------------------ */

static int setup(void **state)
{
	struct live *l;
	int ret, avail = wg_kernel_family_available();

	if (avail != 1) {
		if (getenv("WGCNI_REQUIRE_KERNEL") && *getenv("WGCNI_REQUIRE_KERNEL") == '1') {
			print_error("no wireguard family (%d), but WGCNI_REQUIRE_KERNEL=1\n", avail);
			return -1;
		}
		*state = NULL;
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -1;
	l->want = calloc(MAX_INDEX, sizeof(*l->want));
	if (!l->want) {
		free(l);
		return -1;
	}
	/* A fresh namespace per test: its devices go with it. */
	ret = unshare(CLONE_NEWNET) < 0 ? -errno : wg_create(IFNAME, WG_BACKEND_KERNEL, NULL);
	if (ret < 0) {
		print_error("Unable to create kernel device `" IFNAME "' in a new namespace: %s\n",
			    strerror(-ret));
		free(l->want);
		free(l);
		return -1;
	}
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	struct live *l = *state;

	if (!l)
		return 0;
	wg_delete(IFNAME);
	for (size_t i = 0; i < MAX_INDEX; i++)
		wg_peer_clear(&l->want[i].peer);
	free(l->want);
	key_wipe(l->private_key, sizeof(l->private_key));
	free(l);
	return 0;
}

static struct live *live(void **state)
{
	if (!*state) {
		printf("skipped: no wireguard family\n");
		skip();
	}
	return *state;
}

/* The base device: private key, port, n peers of gen 0 (big: peer 0 with
 * BIG_PEER_IPS more), in one wg_kernel_set. Returns the number of SET
 * messages it took. */
static size_t set_base(struct live *l, unsigned int n_peers, bool big)
{
	struct wg_device d = { .name = IFNAME };
	struct wg_peer *p = calloc(n_peers, sizeof(*p));
	struct timespec t0;
	size_t n;

	assert_non_null(p);
	assert_int_equal(key_generate_private(l->private_key), 0);
	memcpy(d.private_key, l->private_key, WG_KEY_LEN);
	d.listen_port = 51820;
	d.flags = WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_LISTEN_PORT | WGDEVICE_REPLACE_PEERS;
	for (unsigned int i = 0; i < n_peers; i++) {
		make_peer(&p[i], i, 0, big);
		p[i].flags |= WGPEER_REPLACE_ALLOWEDIPS;
		expect_set(l, &p[i]);
	}
	d.peers = p;
	d.n_peers = n_peers;
	n = set_messages(&d);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(wg_kernel_set(&d), 0);
	printf("# wg_kernel_set of %u peers: %zu messages, %ld ms\n", n_peers, n, ms_since(&t0));
	for (unsigned int i = 0; i < n_peers; i++)
		wg_peer_clear(&p[i]);
	free(p);
	key_wipe(d.private_key, sizeof(d.private_key));
	return n;
}

/* --- tests --------------------------------------------------------------- */

static void test_thousand_peers_roundtrip(void **state)
{
	struct live *l = live(state);
	size_t nset = set_base(l, N_PEERS, true);
	int ndump;

	/* Peer 0's allowed IPs alone need ~70 KB: split inside one peer. */
	assert_true(nset >= 10);
	get_and_check(l);
	ndump = dump_messages();
	printf("# the GET_DEVICE dump took %d messages\n", ndump);
	assert_true(ndump >= 2);
}

static void test_incremental(void **state)
{
	struct live *l = live(state);
	struct wg_device d = { .name = IFNAME };
	struct wg_peer p[6];
	struct ipnet ip;

	set_base(l, N_SMALL, true);
	memset(p, 0, sizeof(p));

	/* Add a new peer. */
	make_peer(&p[0], N_PEERS + 7, 0, false);
	expect_set(l, &p[0]);
	/* Remove one. */
	peer_key(p[1].public_key, 150, 0);
	p[1].flags = WGPEER_REMOVE_ME;
	expect_remove(l, 150);
	/* Replace one peer's allowed IPs (gen 1: other prefixes). */
	make_peer(&p[2], 10, 1, false);
	p[2].flags |= WGPEER_REPLACE_ALLOWEDIPS;
	expect_set(l, &p[2]);
	/* Append one allowed IP to another, nothing else said. */
	peer_key(p[3].public_key, 20, 0);
	ip = v4(0x0b000014u, 32);
	assert_int_equal(wg_peer_add_allowedip(&p[3], &ip), 0);
	assert_int_equal(wg_peer_add_allowedip(&l->want[20].peer, &ip), 0);
	/* Update-only on a peer that exists: new keepalive, same IPs. */
	peer_key(p[4].public_key, 30, 0);
	p[4].flags = WGPEER_UPDATE_ONLY | WGPEER_HAS_KEEPALIVE;
	p[4].keepalive = 99;
	l->want[30].peer.flags |= WGPEER_HAS_KEEPALIVE;
	l->want[30].peer.keepalive = 99;
	/* Update-only on a peer that does not exist: nothing is created. */
	make_peer(&p[5], N_PEERS + 8, 0, false);
	p[5].flags |= WGPEER_UPDATE_ONLY;

	d.peers = p;
	d.n_peers = 6;
	assert_int_equal(wg_kernel_set(&d), 0);
	get_and_check(l);
	for (size_t i = 0; i < 6; i++)
		wg_peer_clear(&p[i]);

	/* Peer 0's big set of allowed IPs replaced by two: the split peer
	 * shrinks, the dump shrinks, the others stay. */
	make_peer(&p[0], 0, 2, false);
	p[0].flags |= WGPEER_REPLACE_ALLOWEDIPS;
	expect_set(l, &p[0]);
	d.peers = p;
	d.n_peers = 1;
	assert_int_equal(wg_kernel_set(&d), 0);
	get_and_check(l);
	wg_peer_clear(&p[0]);
}

static void test_replace_peers(void **state)
{
	struct live *l = live(state);
	struct wg_device d = { .name = IFNAME };
	const unsigned int n = 150;
	struct wg_peer *p = calloc(n, sizeof(*p));

	assert_non_null(p);
	set_base(l, N_SMALL, false);
	/* 75 old peers (every 2nd, new AllowedIPs) and 75 new ones; with
	 * REPLACE_PEERS the rest go, and the device's key and port stay. */
	for (unsigned int i = 0; i < MAX_INDEX; i++)
		expect_remove(l, i);
	for (unsigned int k = 0; k < n; k++) {
		unsigned int i = k < n / 2 ? k * 2 : N_PEERS + 100 + k;

		make_peer(&p[k], i, 3, false);
		expect_set(l, &p[k]);
	}
	d.flags = WGDEVICE_REPLACE_PEERS;
	d.peers = p;
	d.n_peers = n;
	assert_true(set_messages(&d) >= 2);
	assert_int_equal(wg_kernel_set(&d), 0);
	get_and_check(l);

	/* REPLACE_PEERS with none: an empty device that keeps its key. */
	for (unsigned int i = 0; i < MAX_INDEX; i++)
		expect_remove(l, i);
	d.peers = NULL;
	d.n_peers = 0;
	assert_int_equal(wg_kernel_set(&d), 0);
	get_and_check(l);
	for (unsigned int k = 0; k < n; k++)
		wg_peer_clear(&p[k]);
	free(p);
}

/* A device that does not exist: -ENODEV both ways, nothing allocated;
 * the real device next to it is unaffected. */
static void test_errors(void **state)
{
	struct live *l = live(state);
	struct wg_device d = { .name = "wglive-none" }, *g = NULL;

	assert_int_equal(wg_kernel_get("wglive-none", &g), -ENODEV);
	assert_null(g);
	assert_int_equal(wg_kernel_set(&d), -ENODEV);
	set_base(l, 1, false);
	get_and_check(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_thousand_peers_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};

	if (key_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

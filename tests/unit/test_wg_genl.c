/*
 * The kernel backend's messages without a kernel: SET_DEVICE building and
 * its split across messages (boundaries, what only the first part carries),
 * GET_DEVICE reply parsing with a peer continued in the next message, and
 * rejection of malformed replies. Plus: the family is absent here and asking
 * for it does not crash.
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
#include <unistd.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#define FAMILY 0x1f

static void fill_key(uint8_t key[WG_KEY_LEN], uint8_t seed)
{
	for (int i = 0; i < WG_KEY_LEN; i++)
		key[i] = (uint8_t)(seed + i);
}

static struct ipnet v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, unsigned int len)
{
	struct ipnet n = { .addr.family = AF_INET, .prefixlen = len };

	n.addr.bytes[12] = a;
	n.addr.bytes[13] = b;
	n.addr.bytes[14] = c;
	n.addr.bytes[15] = d;
	return n;
}

static struct ipnet v6(uint16_t tag, unsigned int len)
{
	struct ipnet n = { .addr.family = AF_INET6, .prefixlen = len };

	n.addr.bytes[0] = 0xfd;
	n.addr.bytes[1] = 0x10;
	n.addr.bytes[2] = (uint8_t)(tag >> 8);
	n.addr.bytes[3] = (uint8_t)tag;
	return n;
}

static bool ipnet_same(const struct ipnet *a, const struct ipnet *b)
{
	return a->addr.family == b->addr.family && a->prefixlen == b->prefixlen &&
	       !memcmp(a->addr.bytes, b->addr.bytes, 16);
}

/* A device: peer A with many allowed IPs (both families), endpoint v4,
 * preshared key, keepalive, REPLACE_ALLOWEDIPS; peer B small, endpoint v6;
 * peer C removed. */
static void make_device(struct wg_device *d, struct wg_peer p[3], size_t n_a)
{
	struct ipnet ip;

	memset(d, 0, sizeof(*d));
	memset(p, 0, 3 * sizeof(*p));
	strcpy(d->name, "wgtest0");
	fill_key(d->private_key, 1);
	/* Clamped, as the kernel stores it and reads it back. */
	d->private_key[0] &= 248;
	d->private_key[31] = (d->private_key[31] & 127) | 64;
	d->listen_port = 51820;
	d->fwmark = 0x77;
	d->flags = WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_LISTEN_PORT | WGDEVICE_HAS_FWMARK |
		   WGDEVICE_REPLACE_PEERS;

	fill_key(p[0].public_key, 50);
	fill_key(p[0].preshared_key, 90);
	p[0].flags = WGPEER_HAS_PRESHARED_KEY | WGPEER_HAS_ENDPOINT | WGPEER_HAS_KEEPALIVE |
		     WGPEER_REPLACE_ALLOWEDIPS;
	p[0].endpoint.addr4.sin_family = AF_INET;
	p[0].endpoint.addr4.sin_port = htons(51821);
	p[0].endpoint.addr4.sin_addr.s_addr = htonl(0xc0000201);
	p[0].keepalive = 25;
	for (size_t i = 0; i < n_a; i++) {
		ip = i % 3 == 2 ? v6((uint16_t)i, 64) : v4(10, (uint8_t)(i >> 8), (uint8_t)i, 0, 24);
		assert_int_equal(wg_peer_add_allowedip(&p[0], &ip), 0);
	}

	fill_key(p[1].public_key, 150);
	p[1].flags = WGPEER_HAS_ENDPOINT | WGPEER_UPDATE_ONLY;
	p[1].endpoint.addr6.sin6_family = AF_INET6;
	p[1].endpoint.addr6.sin6_port = htons(4000);
	p[1].endpoint.addr6.sin6_addr.s6_addr[0] = 0xfd;
	p[1].endpoint.addr6.sin6_addr.s6_addr[15] = 1;
	for (uint8_t i = 0; i < 5; i++) {
		ip = v4(10, 200, i, 7, 32);
		assert_int_equal(wg_peer_add_allowedip(&p[1], &ip), 0);
	}

	fill_key(p[2].public_key, 200);
	p[2].flags = WGPEER_REMOVE_ME;

	d->peers = p;
	d->n_peers = 3;
}

static void clear_peers(struct wg_peer p[3])
{
	for (int i = 0; i < 3; i++)
		wg_peer_clear(&p[i]);
}

/* Top-level attributes of a message (no policy: we check raw). */
static void parse_top(struct nl_msg *msg, struct nlattr *tb[WGDEVICE_A_MAX + 1])
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct genlmsghdr *g = nlmsg_data(h);

	assert_int_equal(g->cmd, WG_CMD_SET_DEVICE);
	assert_int_equal(g->version, WG_GENL_VERSION);
	assert_int_equal(h->nlmsg_type, FAMILY);
	assert_int_equal(genlmsg_parse(h, 0, tb, WGDEVICE_A_MAX, NULL), 0);
}

static void test_single_message(void **state)
{
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer, *ptb[WGPEER_A_MAX + 1];
	struct wg_device d, back = { 0 };
	struct wg_peer p[3];
	struct nl_msg **msgs = NULL;
	size_t n = 0;
	int rem, i = 0;

	make_device(&d, p, 4);
	assert_int_equal(wg_genl_build_set(&d, FAMILY, 8192, &msgs, &n), 0);
	assert_int_equal(n, 1);
	parse_top(msgs[0], tb);
	assert_string_equal(nla_get_string(tb[WGDEVICE_A_IFNAME]), "wgtest0");
	assert_int_equal(nla_len(tb[WGDEVICE_A_PRIVATE_KEY]), WG_KEY_LEN);
	assert_memory_equal(nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), d.private_key, WG_KEY_LEN);
	assert_int_equal(nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]), 51820);
	assert_int_equal(nla_get_u32(tb[WGDEVICE_A_FWMARK]), 0x77);
	assert_int_equal(nla_get_u32(tb[WGDEVICE_A_FLAGS]), WGDEVICE_F_REPLACE_PEERS);
	assert_non_null(tb[WGDEVICE_A_PEERS]);
	nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
		assert_int_equal(nla_parse_nested(ptb, WGPEER_A_MAX, peer, NULL), 0);
		assert_memory_equal(nla_data(ptb[WGPEER_A_PUBLIC_KEY]), p[i].public_key, WG_KEY_LEN);
		switch (i) {
		case 0:
			assert_int_equal(nla_get_u32(ptb[WGPEER_A_FLAGS]), WGPEER_F_REPLACE_ALLOWEDIPS);
			assert_memory_equal(nla_data(ptb[WGPEER_A_PRESHARED_KEY]), p[0].preshared_key,
					    WG_KEY_LEN);
			assert_int_equal(nla_len(ptb[WGPEER_A_ENDPOINT]), sizeof(struct sockaddr_in));
			assert_int_equal(nla_get_u16(ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]), 25);
			break;
		case 1:
			assert_int_equal(nla_get_u32(ptb[WGPEER_A_FLAGS]), WGPEER_F_UPDATE_ONLY);
			assert_int_equal(nla_len(ptb[WGPEER_A_ENDPOINT]), sizeof(struct sockaddr_in6));
			assert_null(ptb[WGPEER_A_PRESHARED_KEY]);
			assert_null(ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
			break;
		case 2:
			assert_int_equal(nla_get_u32(ptb[WGPEER_A_FLAGS]), WGPEER_F_REMOVE_ME);
			assert_null(ptb[WGPEER_A_ALLOWEDIPS]);
			assert_null(ptb[WGPEER_A_ENDPOINT]);
			break;
		}
		i++;
	}
	assert_int_equal(i, 3);

	/* The peer layout is the kernel's GET layout: parse it back. */
	assert_int_equal(wg_genl_parse_device(msgs[0], &back), 0);
	assert_string_equal(back.name, "wgtest0");
	assert_true(back.flags & WGDEVICE_HAS_PRIVATE_KEY);
	assert_memory_equal(back.private_key, d.private_key, WG_KEY_LEN);
	assert_int_equal(back.listen_port, 51820);
	assert_int_equal(back.fwmark, 0x77);
	assert_int_equal(back.n_peers, 3);
	assert_int_equal(back.peers[0].n_allowedips, 4);
	for (size_t k = 0; k < 4; k++)
		assert_true(ipnet_same(&back.peers[0].allowedips[k], &p[0].allowedips[k]));
	assert_int_equal(back.peers[0].keepalive, 25);
	assert_memory_equal(&back.peers[0].endpoint.addr4, &p[0].endpoint.addr4,
			    sizeof(struct sockaddr_in));
	assert_memory_equal(&back.peers[1].endpoint.addr6, &p[1].endpoint.addr6,
			    sizeof(struct sockaddr_in6));
	assert_int_equal(back.peers[1].n_allowedips, 5);

	for (size_t k = 0; k < back.n_peers; k++)
		wg_peer_clear(&back.peers[k]);
	free(back.peers);
	wg_genl_msgs_free(msgs, n);
	clear_peers(p);
}

static void test_split(void **state)
{
	const size_t n_a = 300, size = 1024;
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer, *ptb[WGPEER_A_MAX + 1], *ip;
	uint8_t last_key[WG_KEY_LEN] = { 0 };
	struct wg_device d, *back;
	struct wg_peer p[3];
	struct nl_msg **msgs = NULL;
	size_t n = 0, ips_seen = 0, parts_of_a = 0;
	int rem, rem2;

	make_device(&d, p, n_a);
	assert_int_equal(wg_genl_build_set(&d, FAMILY, size, &msgs, &n), 0);
	/* 300 allowed IPs of >= 28 bytes each cannot fit in 1 KiB messages. */
	assert_true(n >= (n_a * 28) / size);

	for (size_t m = 0; m < n; m++) {
		bool first_peer_in_msg = true;

		assert_true(nlmsg_hdr(msgs[m])->nlmsg_len <= size);
		parse_top(msgs[m], tb);
		assert_string_equal(nla_get_string(tb[WGDEVICE_A_IFNAME]), "wgtest0");
		/* Device attributes and REPLACE_PEERS only in the first. */
		if (m == 0) {
			assert_non_null(tb[WGDEVICE_A_FLAGS]);
			assert_non_null(tb[WGDEVICE_A_PRIVATE_KEY]);
			assert_non_null(tb[WGDEVICE_A_LISTEN_PORT]);
		} else {
			assert_null(tb[WGDEVICE_A_FLAGS]);
			assert_null(tb[WGDEVICE_A_PRIVATE_KEY]);
			assert_null(tb[WGDEVICE_A_LISTEN_PORT]);
			assert_null(tb[WGDEVICE_A_FWMARK]);
		}
		assert_non_null(tb[WGDEVICE_A_PEERS]);
		nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
			const uint8_t *key;
			bool continued;

			assert_int_equal(nla_parse_nested(ptb, WGPEER_A_MAX, peer, NULL), 0);
			key = nla_data(ptb[WGPEER_A_PUBLIC_KEY]);
			continued = first_peer_in_msg && m > 0 && !memcmp(key, last_key, WG_KEY_LEN);
			if (!memcmp(key, p[0].public_key, WG_KEY_LEN))
				parts_of_a++;
			if (continued) {
				/* A continuation carries only key, flags without
				 * REPLACE_ALLOWEDIPS, and the rest of the IPs. */
				assert_null(ptb[WGPEER_A_PRESHARED_KEY]);
				assert_null(ptb[WGPEER_A_ENDPOINT]);
				assert_null(ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
				if (ptb[WGPEER_A_FLAGS])
					assert_false(nla_get_u32(ptb[WGPEER_A_FLAGS]) &
						     WGPEER_F_REPLACE_ALLOWEDIPS);
				assert_non_null(ptb[WGPEER_A_ALLOWEDIPS]);
			} else if (!memcmp(key, p[0].public_key, WG_KEY_LEN)) {
				assert_int_equal(nla_get_u32(ptb[WGPEER_A_FLAGS]),
						 WGPEER_F_REPLACE_ALLOWEDIPS);
				assert_non_null(ptb[WGPEER_A_PRESHARED_KEY]);
			}
			if (ptb[WGPEER_A_ALLOWEDIPS]) {
				/* Every part makes progress. */
				size_t here = 0;

				nla_for_each_nested(ip, ptb[WGPEER_A_ALLOWEDIPS], rem2)
					here++;
				assert_true(here > 0);
				ips_seen += here;
			}
			memcpy(last_key, key, WG_KEY_LEN);
			first_peer_in_msg = false;
		}
	}
	assert_int_equal(ips_seen, n_a + 5);
	assert_true(parts_of_a > 1);
	/* Peer A spans every message but possibly the last. */
	assert_true(parts_of_a >= n - 1);

	/* Parsed back in order, the continued peer is merged. */
	back = calloc(1, sizeof(*back));
	assert_non_null(back);
	for (size_t m = 0; m < n; m++)
		assert_int_equal(wg_genl_parse_device(msgs[m], back), 0);
	assert_int_equal(back->n_peers, 3);
	assert_memory_equal(back->peers[0].public_key, p[0].public_key, WG_KEY_LEN);
	assert_int_equal(back->peers[0].n_allowedips, n_a);
	for (size_t k = 0; k < n_a; k++)
		assert_true(ipnet_same(&back->peers[0].allowedips[k], &p[0].allowedips[k]));
	assert_memory_equal(back->peers[0].preshared_key, p[0].preshared_key, WG_KEY_LEN);
	assert_int_equal(back->peers[0].keepalive, 25);
	assert_memory_equal(back->peers[1].public_key, p[1].public_key, WG_KEY_LEN);
	assert_int_equal(back->peers[1].n_allowedips, 5);
	assert_memory_equal(back->peers[2].public_key, p[2].public_key, WG_KEY_LEN);
	wg_device_free(back);
	wg_genl_msgs_free(msgs, n);
	clear_peers(p);
}

/* Many small peers: split between peers, each peer whole in one message. */
static void test_split_between_peers(void **state)
{
	const size_t n_peers = 200;
	struct wg_device d = { 0 }, *back;
	struct wg_peer *p = calloc(n_peers, sizeof(*p));
	struct nlattr *tb[WGDEVICE_A_MAX + 1];
	struct nl_msg **msgs = NULL;
	struct ipnet ip;
	size_t n = 0;

	assert_non_null(p);
	strcpy(d.name, "wgtest1");
	d.flags = WGDEVICE_REPLACE_PEERS;
	for (size_t i = 0; i < n_peers; i++) {
		fill_key(p[i].public_key, (uint8_t)i);
		p[i].public_key[31] = (uint8_t)(i >> 8);
		ip = v4(10, 1, (uint8_t)i, 0, 24);
		assert_int_equal(wg_peer_add_allowedip(&p[i], &ip), 0);
	}
	d.peers = p;
	d.n_peers = n_peers;
	assert_int_equal(wg_genl_build_set(&d, FAMILY, 4096, &msgs, &n), 0);
	assert_true(n > 1);
	back = calloc(1, sizeof(*back));
	for (size_t m = 0; m < n; m++) {
		parse_top(msgs[m], tb);
		if (m)
			assert_null(tb[WGDEVICE_A_FLAGS]);
		else
			assert_int_equal(nla_get_u32(tb[WGDEVICE_A_FLAGS]), WGDEVICE_F_REPLACE_PEERS);
		assert_int_equal(wg_genl_parse_device(msgs[m], back), 0);
	}
	assert_int_equal(back->n_peers, n_peers);
	for (size_t i = 0; i < n_peers; i++) {
		assert_memory_equal(back->peers[i].public_key, p[i].public_key, WG_KEY_LEN);
		assert_int_equal(back->peers[i].n_allowedips, 1);
		assert_true(ipnet_same(&back->peers[i].allowedips[0], &p[i].allowedips[0]));
	}
	wg_device_free(back);
	wg_genl_msgs_free(msgs, n);
	for (size_t i = 0; i < n_peers; i++)
		wg_peer_clear(&p[i]);
	free(p);
}

static void test_too_small(void **state)
{
	struct wg_device d;
	struct wg_peer p[3];
	struct nl_msg **msgs = NULL;
	size_t n = 0;

	make_device(&d, p, 10);
	assert_int_equal(wg_genl_build_set(&d, FAMILY, 96, &msgs, &n), -EMSGSIZE);
	assert_null(msgs);
	d.name[0] = '\0';
	assert_int_equal(wg_genl_build_set(&d, FAMILY, 4096, &msgs, &n), -EINVAL);
	clear_peers(p);
}

/* --- replies as the kernel sends them ------------------------------------ */

static struct nl_msg *reply_start(uint32_t ifindex)
{
	struct nl_msg *m = nlmsg_alloc();

	assert_non_null(m);
	assert_non_null(genlmsg_put(m, 0, 1, FAMILY, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE,
				    WG_GENL_VERSION));
	assert_int_equal(nla_put_u32(m, WGDEVICE_A_IFINDEX, ifindex), 0);
	assert_int_equal(nla_put_string(m, WGDEVICE_A_IFNAME, "wgk0"), 0);
	return m;
}

static void put_ip(struct nl_msg *m, const struct ipnet *n)
{
	struct nlattr *a = nla_nest_start(m, 0);

	nla_put_u16(m, WGALLOWEDIP_A_FAMILY, (uint16_t)n->addr.family);
	if (n->addr.family == AF_INET)
		nla_put(m, WGALLOWEDIP_A_IPADDR, 4, n->addr.bytes + 12);
	else
		nla_put(m, WGALLOWEDIP_A_IPADDR, 16, n->addr.bytes);
	nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK, (uint8_t)n->prefixlen);
	nla_nest_end(m, a);
}

static void test_parse_dump_merge(void **state)
{
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN], ka[WG_KEY_LEN], kb[WG_KEY_LEN], psk[WG_KEY_LEN];
	struct sockaddr_in6 ep = { .sin6_family = AF_INET6, .sin6_port = htons(51820) };
	int64_t hs[2] = { 1763850000, 123456789 };
	struct ipnet i1 = v4(10, 100, 1, 0, 24), i2 = v6(7, 48), i3 = v4(10, 100, 2, 0, 24);
	struct ipnet i4 = v4(10, 100, 9, 9, 32);
	struct nlattr *peers, *peer, *ips;
	struct wg_device *dev = calloc(1, sizeof(*dev));
	struct nl_msg *m1, *m2;

	fill_key(priv, 3);
	fill_key(pub, 4);
	fill_key(ka, 5);
	fill_key(kb, 6);
	fill_key(psk, 7);
	ep.sin6_addr.s6_addr[0] = 0x20;
	ep.sin6_addr.s6_addr[15] = 9;

	m1 = reply_start(7);
	nla_put(m1, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, priv);
	nla_put(m1, WGDEVICE_A_PUBLIC_KEY, WG_KEY_LEN, pub);
	nla_put_u16(m1, WGDEVICE_A_LISTEN_PORT, 51820);
	nla_put_u32(m1, WGDEVICE_A_FWMARK, 0);
	peers = nla_nest_start(m1, WGDEVICE_A_PEERS);
	peer = nla_nest_start(m1, 0);
	nla_put(m1, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, ka);
	nla_put(m1, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, psk);
	nla_put(m1, WGPEER_A_ENDPOINT, sizeof(ep), &ep);
	nla_put_u16(m1, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 15);
	nla_put(m1, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(hs), hs);
	nla_put_u64(m1, WGPEER_A_RX_BYTES, 1000);
	nla_put_u64(m1, WGPEER_A_TX_BYTES, 2000);
	nla_put_u32(m1, WGPEER_A_PROTOCOL_VERSION, 1);
	ips = nla_nest_start(m1, WGPEER_A_ALLOWEDIPS);
	put_ip(m1, &i1);
	put_ip(m1, &i2);
	nla_nest_end(m1, ips);
	nla_nest_end(m1, peer);
	nla_nest_end(m1, peers);

	/* Second message: peer a continued, then peer b. */
	m2 = reply_start(7);
	peers = nla_nest_start(m2, WGDEVICE_A_PEERS);
	peer = nla_nest_start(m2, 0);
	nla_put(m2, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, ka);
	ips = nla_nest_start(m2, WGPEER_A_ALLOWEDIPS);
	put_ip(m2, &i3);
	nla_nest_end(m2, ips);
	nla_nest_end(m2, peer);
	peer = nla_nest_start(m2, 0);
	nla_put(m2, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, kb);
	ips = nla_nest_start(m2, WGPEER_A_ALLOWEDIPS);
	put_ip(m2, &i4);
	nla_nest_end(m2, ips);
	nla_nest_end(m2, peer);
	nla_nest_end(m2, peers);

	assert_int_equal(wg_genl_parse_device(m1, dev), 0);
	assert_int_equal(wg_genl_parse_device(m2, dev), 0);
	assert_string_equal(dev->name, "wgk0");
	assert_int_equal(dev->ifindex, 7);
	assert_int_equal(dev->flags & (WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_PUBLIC_KEY),
			 WGDEVICE_HAS_PRIVATE_KEY | WGDEVICE_HAS_PUBLIC_KEY);
	assert_memory_equal(dev->public_key, pub, WG_KEY_LEN);
	assert_int_equal(dev->listen_port, 51820);
	assert_int_equal(dev->n_peers, 2);
	assert_memory_equal(dev->peers[0].public_key, ka, WG_KEY_LEN);
	assert_int_equal(dev->peers[0].n_allowedips, 3);
	assert_true(ipnet_same(&dev->peers[0].allowedips[0], &i1));
	assert_true(ipnet_same(&dev->peers[0].allowedips[1], &i2));
	assert_true(ipnet_same(&dev->peers[0].allowedips[2], &i3));
	assert_true(dev->peers[0].flags & WGPEER_HAS_PRESHARED_KEY);
	assert_memory_equal(dev->peers[0].preshared_key, psk, WG_KEY_LEN);
	assert_true(dev->peers[0].flags & WGPEER_HAS_ENDPOINT);
	assert_memory_equal(&dev->peers[0].endpoint.addr6, &ep, sizeof(ep));
	assert_int_equal(dev->peers[0].keepalive, 15);
	assert_int_equal(dev->peers[0].last_handshake.tv_sec, 1763850000);
	assert_int_equal(dev->peers[0].last_handshake.tv_nsec, 123456789);
	assert_int_equal(dev->peers[0].rx_bytes, 1000);
	assert_int_equal(dev->peers[0].tx_bytes, 2000);
	assert_memory_equal(dev->peers[1].public_key, kb, WG_KEY_LEN);
	assert_int_equal(dev->peers[1].n_allowedips, 1);
	assert_true(ipnet_same(&dev->peers[1].allowedips[0], &i4));
	assert_false(dev->peers[1].flags & WGPEER_HAS_ENDPOINT);

	nlmsg_free(m1);
	nlmsg_free(m2);
	wg_device_free(dev);
}

/* One peer nest with bad contents; parse must refuse it. */
enum bad { BAD_FAMILY_LEN, BAD_CIDR, BAD_NO_KEY, BAD_SHORT_KEY, BAD_ENDPOINT, BAD_HS };

static int parse_bad(enum bad what)
{
	uint8_t key[WG_KEY_LEN];
	struct wg_device *dev = calloc(1, sizeof(*dev));
	struct nlattr *peers, *peer, *ips, *ip;
	struct nl_msg *m = reply_start(1);
	uint8_t addr[16] = { 10 };
	int ret;

	fill_key(key, 9);
	peers = nla_nest_start(m, WGDEVICE_A_PEERS);
	peer = nla_nest_start(m, 0);
	if (what == BAD_SHORT_KEY)
		nla_put(m, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN - 1, key);
	else if (what != BAD_NO_KEY)
		nla_put(m, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key);
	if (what == BAD_ENDPOINT) {
		struct sockaddr_in sin = { .sin_family = AF_INET6 };

		nla_put(m, WGPEER_A_ENDPOINT, sizeof(sin), &sin);
	}
	if (what == BAD_HS) {
		int64_t hs[2] = { 1, 1000000000 };

		nla_put(m, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(hs), hs);
	}
	ips = nla_nest_start(m, WGPEER_A_ALLOWEDIPS);
	ip = nla_nest_start(m, 0);
	nla_put_u16(m, WGALLOWEDIP_A_FAMILY, AF_INET);
	nla_put(m, WGALLOWEDIP_A_IPADDR, what == BAD_FAMILY_LEN ? 16 : 4, addr);
	nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK, what == BAD_CIDR ? 33 : 8);
	nla_nest_end(m, ip);
	nla_nest_end(m, ips);
	nla_nest_end(m, peer);
	nla_nest_end(m, peers);
	ret = wg_genl_parse_device(m, dev);
	nlmsg_free(m);
	wg_device_free(dev);
	return ret;
}

static void test_parse_rejects(void **state)
{
	assert_int_equal(parse_bad(BAD_FAMILY_LEN), -EPROTO);
	assert_int_equal(parse_bad(BAD_CIDR), -EPROTO);
	assert_int_equal(parse_bad(BAD_NO_KEY), -EPROTO);
	assert_int_equal(parse_bad(BAD_SHORT_KEY), -EPROTO);
	assert_int_equal(parse_bad(BAD_ENDPOINT), -EPROTO);
	assert_int_equal(parse_bad(BAD_HS), -EPROTO);
}

static void test_no_kernel_family(void **state)
{
	struct wg_device d = { .name = "wgnone0" }, *g = NULL;
	int avail = wg_kernel_family_available();

	assert_true(avail == 0 || avail == 1);
	if (avail)
		skip(); /* a kernel with the module: nothing to check here */
	assert_int_equal(wg_kernel_get("wgnone0", &g), -EOPNOTSUPP);
	assert_null(g);
	assert_int_equal(wg_kernel_set(&d), -EOPNOTSUPP);
	assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO), WG_BACKEND_USERSPACE);
}

/*
 * Random corruption of a valid reply (payload only; the netlink header's
 * length stays true, as the kernel's always is): parsing may fail but must
 * not crash, overread or leak (ASan/UBSan watch).
 */
static void test_parse_corrupted(void **state)
{
	uint8_t key[WG_KEY_LEN];
	struct ipnet i1 = v4(10, 1, 0, 0, 16), i2 = v6(3, 64);
	struct sockaddr_in ep = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct nlattr *peers, *peer, *ips;
	struct nl_msg *m = reply_start(3);
	struct nlmsghdr *h;
	size_t len, hdr = NLMSG_HDRLEN + GENL_HDRLEN;
	uint8_t *copy;
	unsigned int seed = 12345, ok = 0;

	fill_key(key, 11);
	nla_put(m, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, key);
	nla_put_u16(m, WGDEVICE_A_LISTEN_PORT, 1);
	peers = nla_nest_start(m, WGDEVICE_A_PEERS);
	for (int k = 0; k < 3; k++) {
		key[0] = (uint8_t)k;
		peer = nla_nest_start(m, 0);
		nla_put(m, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key);
		nla_put(m, WGPEER_A_ENDPOINT, sizeof(ep), &ep);
		nla_put_u64(m, WGPEER_A_RX_BYTES, 5);
		ips = nla_nest_start(m, WGPEER_A_ALLOWEDIPS);
		put_ip(m, &i1);
		put_ip(m, &i2);
		nla_nest_end(m, ips);
		nla_nest_end(m, peer);
	}
	nla_nest_end(m, peers);
	h = nlmsg_hdr(m);
	len = h->nlmsg_len;
	copy = malloc(len);
	assert_non_null(copy);

	for (int iter = 0; iter < 20000; iter++) {
		struct wg_device *dev = calloc(1, sizeof(*dev));
		struct nl_msg *c;
		int flips = 1 + rand_r(&seed) % 4;

		assert_non_null(dev);
		memcpy(copy, h, len);
		for (int f = 0; f < flips; f++)
			copy[hdr + (size_t)rand_r(&seed) % (len - hdr)] = (uint8_t)rand_r(&seed);
		c = nlmsg_convert((struct nlmsghdr *)copy);
		assert_non_null(c);
		if (wg_genl_parse_device(c, dev) == 0) {
			ok++;
			for (size_t p = 0; p < dev->n_peers; p++)
				for (size_t a = 0; a < dev->peers[p].n_allowedips; a++)
					assert_true(dev->peers[p].allowedips[a].prefixlen <=
						    ipaddr_bits(&dev->peers[p].allowedips[a].addr));
		}
		nlmsg_free(c);
		wg_device_free(dev);
	}
	/* Some corruptions hit only values: those still parse. */
	assert_true(ok > 0);
	free(copy);
	nlmsg_free(m);
}

/*
 * Against a kernel that has the family (not this machine; e.g. the qemu VM
 * of tests/kernel): create, set with a peer large enough to split, read
 * back through a multi-message dump, change incrementally, delete. Runs in
 * a private network namespace.
 */
static void test_kernel_roundtrip(void **state)
{
	const size_t n_a = 400;
	struct wg_device d, *g = NULL;
	struct wg_peer p[3];
	char name[IFNAMSIZ];

	if (wg_kernel_family_available() != 1)
		skip();
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	snprintf(name, sizeof(name), "wgk%d", getpid() % 100000);
	assert_int_equal(wg_create(name, WG_BACKEND_KERNEL, NULL), 0);
	assert_int_equal(wg_create(name, WG_BACKEND_KERNEL, NULL), -EEXIST);
	assert_int_equal(wg_backend_of(name), WG_BACKEND_KERNEL);

	make_device(&d, p, n_a);
	strcpy(d.name, name);
	p[1].flags &= ~WGPEER_UPDATE_ONLY; /* create it */
	d.n_peers = 2;
	assert_int_equal(wg_set(&d), 0);
	assert_int_equal(wg_get(name, &g), 0);
	assert_string_equal(g->name, name);
	assert_memory_equal(g->private_key, d.private_key, WG_KEY_LEN);
	assert_true(g->flags & WGDEVICE_HAS_PUBLIC_KEY);
	assert_int_equal(g->listen_port, 51820);
	assert_int_equal(g->fwmark, 0x77);
	assert_int_equal(g->n_peers, 2);
	assert_memory_equal(g->peers[0].public_key, p[0].public_key, WG_KEY_LEN);
	assert_int_equal(g->peers[0].n_allowedips, n_a);
	assert_memory_equal(g->peers[0].preshared_key, p[0].preshared_key, WG_KEY_LEN);
	assert_int_equal(g->peers[0].keepalive, 25);
	assert_memory_equal(&g->peers[0].endpoint.addr4, &p[0].endpoint.addr4,
			    sizeof(struct sockaddr_in));
	assert_int_equal(g->peers[1].n_allowedips, 5);
	wg_device_free(g);

	/* Remove peer 0 alone: peer 1 stays. */
	p[0].flags = WGPEER_REMOVE_ME;
	d.flags = 0;
	d.peers = &p[0];
	d.n_peers = 1;
	assert_int_equal(wg_set(&d), 0);
	assert_int_equal(wg_get(name, &g), 0);
	assert_int_equal(g->n_peers, 1);
	assert_memory_equal(g->peers[0].public_key, p[1].public_key, WG_KEY_LEN);
	wg_device_free(g);

	assert_int_equal(wg_delete(name), 0);
	assert_int_equal(wg_delete(name), -ENODEV);
	clear_peers(p);
}

/* wg_peer_add_allowedip and wg_device_add_peer grow geometrically and cope
 * with arrays the caller sized and with structs copied and emptied. */
static void test_peer_growth(void **state)
{
	struct wg_device dev = { 0 };
	struct wg_peer p = { 0 }, copy;
	struct ipnet ip, *own;

	(void)state;
	for (unsigned int i = 0; i < 1000; i++) {
		char s[32];

		snprintf(s, sizeof(s), "10.%u.%u.0/24", i / 256, i % 256);
		assert_int_equal(ipnet_parse(s, &ip, true), 0);
		assert_int_equal(wg_peer_add_allowedip(&p, &ip), 0);
	}
	assert_int_equal(p.n_allowedips, 1000);
	assert_true(p.cap_allowedips >= 1000);
	assert_int_equal(p.allowedips[999].addr.bytes[13], 3);
	assert_int_equal(p.allowedips[999].addr.bytes[14], 231);

	/* a copy emptied by hand keeps a stale cap: no write through NULL */
	copy = p;
	copy.allowedips = NULL;
	copy.n_allowedips = 0;
	assert_int_equal(wg_peer_add_allowedip(&copy, &ip), 0);
	assert_int_equal(copy.n_allowedips, 1);
	wg_peer_clear(&copy);
	wg_peer_clear(&p);

	/* an array the caller sized exactly (cap 0) is full: appending grows it */
	own = calloc(2, sizeof(*own));
	assert_non_null(own);
	assert_int_equal(ipnet_parse("192.0.2.0/24", &own[0], true), 0);
	assert_int_equal(ipnet_parse("198.51.100.0/24", &own[1], true), 0);
	p = (struct wg_peer){ .allowedips = own, .n_allowedips = 2 };
	assert_int_equal(wg_peer_add_allowedip(&p, &ip), 0);
	assert_int_equal(p.n_allowedips, 3);
	assert_int_equal(p.allowedips[1].addr.bytes[13], 51);
	wg_peer_clear(&p);

	for (unsigned int i = 0; i < 1000; i++) {
		struct wg_peer *q = wg_device_add_peer(&dev);

		assert_non_null(q);
		q->public_key[0] = (uint8_t)i;
		q->public_key[1] = (uint8_t)(i >> 8);
	}
	assert_int_equal(dev.n_peers, 1000);
	assert_int_equal(dev.peers[999].public_key[0], 999 & 0xff);
	assert_int_equal(dev.peers[999].public_key[1], 999 >> 8);
	free(dev.peers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_message),
		cmocka_unit_test(test_peer_growth),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_between_peers),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_parse_dump_merge),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_corrupted),
		cmocka_unit_test(test_no_kernel_family),
		cmocka_unit_test(test_kernel_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

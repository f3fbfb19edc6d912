/*
 * Kernel backend: the generic netlink family "wireguard" (linux/wireguard.h)
 * through libnl-genl. Message building and reply parsing are separate from
 * the socket I/O so the unit tests can run them without the module.
 */
#include "wg_genl.h"
#include "netdev.h"
#include "nlerr.h"

#include <errno.h>
#include <linux/wireguard.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

/* Bounds on what a reply may make us allocate. */
#define WG_GENL_MAX_PEERS 1000000
#define WG_GENL_MAX_ALLOWEDIPS 1000000

size_t wg_genl_msg_size(void)
{
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0 || page > 8192)
		page = 8192;
	return (size_t)page;
}

/* --- building SET_DEVICE ------------------------------------------------ */

struct set_cursor {
	size_t peer;     /* next peer to put */
	size_t allowedip; /* next allowed IP of that peer; > 0 = continuation */
};

static int put_allowedip(struct nl_msg *msg, const struct ipnet *a)
{
	struct nlattr *nest;
	int len = a->addr.family == AF_INET ? 4 : 16;
	const uint8_t *raw = a->addr.family == AF_INET ? a->addr.bytes + 12 : a->addr.bytes;

	nest = nla_nest_start(msg, 0);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, (uint16_t)a->addr.family) < 0 ||
	    nla_put(msg, WGALLOWEDIP_A_IPADDR, len, raw) < 0 ||
	    nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, (uint8_t)a->prefixlen) < 0) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

/* The attributes of a peer that go only with its first part. */
static int put_peer_head(struct nl_msg *msg, const struct wg_peer *p)
{
	if ((p->flags & WGPEER_HAS_PRESHARED_KEY) &&
	    nla_put(msg, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, p->preshared_key) < 0)
		return -EMSGSIZE;
	if (p->flags & WGPEER_HAS_ENDPOINT) {
		if (p->endpoint.addr.sa_family == AF_INET) {
			if (nla_put(msg, WGPEER_A_ENDPOINT, sizeof(p->endpoint.addr4),
				    &p->endpoint.addr4) < 0)
				return -EMSGSIZE;
		} else if (p->endpoint.addr.sa_family == AF_INET6) {
			if (nla_put(msg, WGPEER_A_ENDPOINT, sizeof(p->endpoint.addr6),
				    &p->endpoint.addr6) < 0)
				return -EMSGSIZE;
		} else {
			return -EAFNOSUPPORT;
		}
	}
	if ((p->flags & WGPEER_HAS_KEEPALIVE) &&
	    nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p->keepalive) < 0)
		return -EMSGSIZE;
	return 0;
}

static uint32_t peer_nl_flags(const struct wg_peer *p, bool first_part)
{
	uint32_t f = 0;

	if (p->flags & WGPEER_REMOVE_ME)
		f |= WGPEER_F_REMOVE_ME;
	if (p->flags & WGPEER_UPDATE_ONLY)
		f |= WGPEER_F_UPDATE_ONLY;
	if (first_part && (p->flags & WGPEER_REPLACE_ALLOWEDIPS))
		f |= WGPEER_F_REPLACE_ALLOWEDIPS;
	return f;
}

/*
 * Put as many peers from cur as fit. Returns the number of items (peer
 * parts and allowed IPs) placed, or a negative errno other than a full
 * message; cur is advanced past what was placed.
 */
static int put_peers(struct nl_msg *msg, const struct wg_device *dev, struct set_cursor *cur)
{
	struct nlattr *peers, *peer, *ips;
	int ret, here, placed = 0;

	peers = nla_nest_start(msg, WGDEVICE_A_PEERS);
	if (!peers)
		return 0;
	for (; cur->peer < dev->n_peers; cur->peer++, cur->allowedip = 0) {
		const struct wg_peer *p = &dev->peers[cur->peer];
		bool first_part = cur->allowedip == 0;
		uint32_t flags = peer_nl_flags(p, first_part);

		peer = nla_nest_start(msg, 0);
		if (!peer)
			goto full;
		if (nla_put(msg, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p->public_key) < 0 ||
		    (flags && nla_put_u32(msg, WGPEER_A_FLAGS, flags) < 0))
			goto full_cancel_peer;
		if (first_part) {
			ret = put_peer_head(msg, p);
			if (ret == -EMSGSIZE)
				goto full_cancel_peer;
			if (ret < 0)
				return ret;
		}
		if (cur->allowedip < p->n_allowedips) {
			ips = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS);
			if (!ips)
				goto full_cancel_peer;
			for (here = 0; cur->allowedip < p->n_allowedips; cur->allowedip++) {
				const struct ipnet *a = &p->allowedips[cur->allowedip];

				if ((a->addr.family != AF_INET && a->addr.family != AF_INET6) ||
				    a->prefixlen > (a->addr.family == AF_INET ? 32u : 128u))
					return -EINVAL;
				if (put_allowedip(msg, a) < 0)
					break;
				here++;
			}
			placed += here;
			if (cur->allowedip < p->n_allowedips) {
				/* Split inside this peer: close what we have; the
				 * rest continues in the next message. A part without
				 * allowed IPs would only repeat the peer: drop it. */
				if (!here)
					goto full_cancel_peer;
				nla_nest_end(msg, ips);
				nla_nest_end(msg, peer);
				goto full;
			}
			nla_nest_end(msg, ips);
		}
		nla_nest_end(msg, peer);
		placed++;
	}
	nla_nest_end(msg, peers);
	return placed;

full_cancel_peer:
	nla_nest_cancel(msg, peer);
full:
	if (placed)
		nla_nest_end(msg, peers);
	else
		nla_nest_cancel(msg, peers);
	return placed;
}

static int put_device_head(struct nl_msg *msg, const struct wg_device *dev)
{
	if ((dev->flags & WGDEVICE_HAS_PRIVATE_KEY) &&
	    nla_put(msg, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key) < 0)
		return -EMSGSIZE;
	if ((dev->flags & WGDEVICE_HAS_LISTEN_PORT) &&
	    nla_put_u16(msg, WGDEVICE_A_LISTEN_PORT, dev->listen_port) < 0)
		return -EMSGSIZE;
	if ((dev->flags & WGDEVICE_HAS_FWMARK) &&
	    nla_put_u32(msg, WGDEVICE_A_FWMARK, dev->fwmark) < 0)
		return -EMSGSIZE;
	if ((dev->flags & WGDEVICE_REPLACE_PEERS) &&
	    nla_put_u32(msg, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS) < 0)
		return -EMSGSIZE;
	return 0;
}

static void msg_wipe_free(struct nl_msg *msg)
{
	struct nlmsghdr *h;

	if (!msg)
		return;
	h = nlmsg_hdr(msg);
	sodium_memzero(h, h->nlmsg_len);
	nlmsg_free(msg);
}

void wg_genl_msgs_free(struct nl_msg **msgs, size_t n)
{
	size_t i;

	if (!msgs)
		return;
	for (i = 0; i < n; i++)
		msg_wipe_free(msgs[i]);
	free(msgs);
}

int wg_genl_build_set(const struct wg_device *dev, int family, size_t msg_size,
		      struct nl_msg ***out, size_t *n_out)
{
	struct set_cursor cur = { 0 };
	struct nl_msg **msgs = NULL, **grown, *msg;
	size_t n = 0;
	int ret, placed;

	if (!dev || !*dev->name || strnlen(dev->name, IFNAMSIZ) >= IFNAMSIZ || !out || !n_out)
		return -EINVAL;
	do {
		ret = -ENOMEM;
		msg = nlmsg_alloc_size(msg_size);
		if (!msg)
			goto err_msgs;
		grown = reallocarray(msgs, n + 1, sizeof(*msgs));
		if (!grown) {
			nlmsg_free(msg);
			goto err_msgs;
		}
		msgs = grown;
		msgs[n++] = msg;

		ret = -EMSGSIZE;
		if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
				 NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE, WG_GENL_VERSION) ||
		    nla_put_string(msg, WGDEVICE_A_IFNAME, dev->name) < 0)
			goto err_msgs;
		if (n == 1) {
			ret = put_device_head(msg, dev);
			if (ret < 0)
				goto err_msgs;
		}
		if (cur.peer >= dev->n_peers)
			break;
		ret = put_peers(msg, dev, &cur);
		if (ret < 0)
			goto err_msgs;
		placed = ret;
		/* Only the first message may carry nothing but the device
		 * attributes; an empty later one would mean no progress. */
		ret = -EMSGSIZE;
		if (!placed && n > 1)
			goto err_msgs;
	} while (cur.peer < dev->n_peers);

	*out = msgs;
	*n_out = n;
	return 0;

err_msgs:
	wg_genl_msgs_free(msgs, n);
	return ret;
}

/* --- parsing GET_DEVICE ------------------------------------------------- */

static struct nla_policy device_policy[WGDEVICE_A_MAX + 1] = {
	[WGDEVICE_A_IFINDEX] = { .type = NLA_U32 },
	[WGDEVICE_A_IFNAME] = { .type = NLA_STRING, .maxlen = IFNAMSIZ },
	[WGDEVICE_A_PRIVATE_KEY] = { .minlen = WG_KEY_LEN, .maxlen = WG_KEY_LEN },
	[WGDEVICE_A_PUBLIC_KEY] = { .minlen = WG_KEY_LEN, .maxlen = WG_KEY_LEN },
	[WGDEVICE_A_FLAGS] = { .type = NLA_U32 },
	[WGDEVICE_A_LISTEN_PORT] = { .type = NLA_U16 },
	[WGDEVICE_A_FWMARK] = { .type = NLA_U32 },
	[WGDEVICE_A_PEERS] = { .type = NLA_NESTED },
};

static struct nla_policy peer_policy[WGPEER_A_MAX + 1] = {
	[WGPEER_A_PUBLIC_KEY] = { .minlen = WG_KEY_LEN, .maxlen = WG_KEY_LEN },
	[WGPEER_A_PRESHARED_KEY] = { .minlen = WG_KEY_LEN, .maxlen = WG_KEY_LEN },
	[WGPEER_A_FLAGS] = { .type = NLA_U32 },
	[WGPEER_A_ENDPOINT] = { .minlen = sizeof(struct sockaddr_in),
				.maxlen = sizeof(struct sockaddr_in6) },
	[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL] = { .type = NLA_U16 },
	[WGPEER_A_LAST_HANDSHAKE_TIME] = { .minlen = 16, .maxlen = 16 },
	[WGPEER_A_RX_BYTES] = { .type = NLA_U64 },
	[WGPEER_A_TX_BYTES] = { .type = NLA_U64 },
	[WGPEER_A_ALLOWEDIPS] = { .type = NLA_NESTED },
	[WGPEER_A_PROTOCOL_VERSION] = { .type = NLA_U32 },
};

static struct nla_policy allowedip_policy[WGALLOWEDIP_A_MAX + 1] = {
	[WGALLOWEDIP_A_FAMILY] = { .type = NLA_U16 },
	[WGALLOWEDIP_A_IPADDR] = { .minlen = 4, .maxlen = 16 },
	[WGALLOWEDIP_A_CIDR_MASK] = { .type = NLA_U8 },
};

static int parse_allowedip(struct nlattr *attr, struct wg_peer *p)
{
	struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
	struct ipnet net = { 0 };
	int family, len;

	if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, attr, allowedip_policy) < 0 ||
	    !tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] || !tb[WGALLOWEDIP_A_CIDR_MASK])
		return -EPROTO;
	family = nla_get_u16(tb[WGALLOWEDIP_A_FAMILY]);
	len = nla_len(tb[WGALLOWEDIP_A_IPADDR]);
	net.prefixlen = nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]);
	if (family == AF_INET && len == 4 && net.prefixlen <= 32)
		memcpy(net.addr.bytes + 12, nla_data(tb[WGALLOWEDIP_A_IPADDR]), 4);
	else if (family == AF_INET6 && len == 16 && net.prefixlen <= 128)
		memcpy(net.addr.bytes, nla_data(tb[WGALLOWEDIP_A_IPADDR]), 16);
	else
		return -EPROTO;
	net.addr.family = family;
	if (p->n_allowedips >= WG_GENL_MAX_ALLOWEDIPS)
		return -EPROTO;
	return wg_peer_add_allowedip(p, &net);
}

static int parse_endpoint(struct nlattr *attr, struct wg_peer *p)
{
	const struct sockaddr *sa = nla_data(attr);
	int len = nla_len(attr);

	if (sa->sa_family == AF_INET && len == sizeof(struct sockaddr_in))
		memcpy(&p->endpoint.addr4, sa, sizeof(struct sockaddr_in));
	else if (sa->sa_family == AF_INET6 && len == sizeof(struct sockaddr_in6))
		memcpy(&p->endpoint.addr6, sa, sizeof(struct sockaddr_in6));
	else
		return -EPROTO;
	p->flags |= WGPEER_HAS_ENDPOINT;
	return 0;
}

/* The peer a reply's peer nest fills: the last one when the key repeats
 * (continued from the previous message), else a new one. */
static int peer_for_key(struct wg_device *dev, const uint8_t *key, struct wg_peer **out)
{
	if (dev->n_peers &&
	    !memcmp(dev->peers[dev->n_peers - 1].public_key, key, WG_KEY_LEN)) {
		*out = &dev->peers[dev->n_peers - 1];
		return 0;
	}
	if (dev->n_peers >= WG_GENL_MAX_PEERS)
		return -EPROTO;
	*out = wg_device_add_peer(dev);
	if (!*out)
		return -ENOMEM;
	memcpy((*out)->public_key, key, WG_KEY_LEN);
	return 0;
}

static int parse_peer(struct nlattr *attr, struct wg_device *dev)
{
	struct nlattr *tb[WGPEER_A_MAX + 1], *ip;
	struct wg_peer *p;
	int ret, rem;

	if (nla_parse_nested(tb, WGPEER_A_MAX, attr, peer_policy) < 0 ||
	    !tb[WGPEER_A_PUBLIC_KEY])
		return -EPROTO;
	ret = peer_for_key(dev, nla_data(tb[WGPEER_A_PUBLIC_KEY]), &p);
	if (ret < 0)
		return ret;
	if (tb[WGPEER_A_PRESHARED_KEY]) {
		memcpy(p->preshared_key, nla_data(tb[WGPEER_A_PRESHARED_KEY]), WG_KEY_LEN);
		if (!sodium_is_zero(p->preshared_key, WG_KEY_LEN))
			p->flags |= WGPEER_HAS_PRESHARED_KEY;
	}
	if (tb[WGPEER_A_ENDPOINT]) {
		ret = parse_endpoint(tb[WGPEER_A_ENDPOINT], p);
		if (ret < 0)
			return ret;
	}
	if (tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
		p->keepalive = nla_get_u16(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
		p->flags |= WGPEER_HAS_KEEPALIVE;
	}
	if (tb[WGPEER_A_LAST_HANDSHAKE_TIME]) {
		int64_t ts[2]; /* struct __kernel_timespec */

		memcpy(ts, nla_data(tb[WGPEER_A_LAST_HANDSHAKE_TIME]), sizeof(ts));
		if (ts[0] < 0 || ts[1] < 0 || ts[1] > 999999999)
			return -EPROTO;
		p->last_handshake.tv_sec = (time_t)ts[0];
		p->last_handshake.tv_nsec = (long)ts[1];
	}
	if (tb[WGPEER_A_RX_BYTES])
		p->rx_bytes = nla_get_u64(tb[WGPEER_A_RX_BYTES]);
	if (tb[WGPEER_A_TX_BYTES])
		p->tx_bytes = nla_get_u64(tb[WGPEER_A_TX_BYTES]);
	if (tb[WGPEER_A_ALLOWEDIPS]) {
		nla_for_each_nested(ip, tb[WGPEER_A_ALLOWEDIPS], rem) {
			ret = parse_allowedip(ip, p);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

int wg_genl_parse_device(struct nl_msg *msg, struct wg_device *dev)
{
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
	struct nlmsghdr *h;
	int ret, rem;

	if (!msg || !dev)
		return -EINVAL;
	h = nlmsg_hdr(msg);
	if (!genlmsg_valid_hdr(h, 0) ||
	    genlmsg_parse(h, 0, tb, WGDEVICE_A_MAX, device_policy) < 0)
		return -EPROTO;
	if (tb[WGDEVICE_A_IFINDEX])
		dev->ifindex = nla_get_u32(tb[WGDEVICE_A_IFINDEX]);
	if (tb[WGDEVICE_A_IFNAME]) {
		const char *name = nla_get_string(tb[WGDEVICE_A_IFNAME]);

		if (strnlen(name, IFNAMSIZ) >= IFNAMSIZ)
			return -EPROTO;
		strcpy(dev->name, name);
	}
	if (tb[WGDEVICE_A_PRIVATE_KEY]) {
		memcpy(dev->private_key, nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), WG_KEY_LEN);
		if (!sodium_is_zero(dev->private_key, WG_KEY_LEN))
			dev->flags |= WGDEVICE_HAS_PRIVATE_KEY;
	}
	if (tb[WGDEVICE_A_PUBLIC_KEY]) {
		memcpy(dev->public_key, nla_data(tb[WGDEVICE_A_PUBLIC_KEY]), WG_KEY_LEN);
		if (!sodium_is_zero(dev->public_key, WG_KEY_LEN))
			dev->flags |= WGDEVICE_HAS_PUBLIC_KEY;
	}
	if (tb[WGDEVICE_A_LISTEN_PORT]) {
		dev->listen_port = nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
		dev->flags |= WGDEVICE_HAS_LISTEN_PORT;
	}
	if (tb[WGDEVICE_A_FWMARK]) {
		dev->fwmark = nla_get_u32(tb[WGDEVICE_A_FWMARK]);
		dev->flags |= WGDEVICE_HAS_FWMARK;
	}
	if (tb[WGDEVICE_A_PEERS]) {
		nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
			ret = parse_peer(peer, dev);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* --- kernel I/O ---------------------------------------------------------- */

static int genl_open(struct nl_sock **out, int *family)
{
	struct nl_sock *sk;
	int ret;

	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	ret = nlerr_errno(genl_connect(sk));
	if (ret < 0)
		goto err_sock;
	/* Dump messages can exceed a page: size each read by peeking. */
	nl_socket_enable_msg_peek(sk);
	ret = genl_ctrl_resolve(sk, WG_GENL_NAME);
	if (ret < 0) {
		ret = nlerr_errno(ret);
		/* No family: no module. */
		if (ret == -ENOENT)
			ret = -EOPNOTSUPP;
		goto err_sock;
	}
	*family = ret;
	*out = sk;
	return 0;
err_sock:
	nl_socket_free(sk);
	return ret;
}

int wg_kernel_family_available(void)
{
	struct nl_sock *sk;
	int family, ret;

	ret = genl_open(&sk, &family);
	if (ret == -EOPNOTSUPP)
		return 0;
	if (ret < 0)
		return ret;
	nl_socket_free(sk);
	return 1;
}

bool wg_kernel_exists(const char *name)
{
	struct netdev_info info;

	return netdev_get(name, &info) == 0 && !strcmp(info.kind, "wireguard");
}

int wg_kernel_create_in(const char *name, int netns_fd, unsigned int mtu)
{
	return netdev_create_in(name, "wireguard", netns_fd, mtu);
}

int wg_kernel_delete(const char *name)
{
	return netdev_delete(name);
}

int wg_kernel_set(const struct wg_device *dev)
{
	struct nl_msg **msgs = NULL;
	struct nl_sock *sk;
	size_t i, n = 0;
	int ret, family;

	if (!dev)
		return -EINVAL;
	ret = genl_open(&sk, &family);
	if (ret < 0)
		return ret;
	ret = wg_genl_build_set(dev, family, wg_genl_msg_size(), &msgs, &n);
	if (ret < 0)
		goto out_sock;
	for (i = 0; i < n; i++) {
		ret = nl_send_auto(sk, msgs[i]);
		if (ret < 0)
			break;
		ret = nl_wait_for_ack(sk);
		if (ret < 0)
			break;
	}
	ret = nlerr_errno(ret < 0 ? ret : 0);
	wg_genl_msgs_free(msgs, n);
out_sock:
	nl_socket_free(sk);
	return ret;
}

struct get_ctx {
	struct wg_device *dev;
	int err;
};

static int get_valid_cb(struct nl_msg *msg, void *arg)
{
	struct get_ctx *ctx = arg;

	ctx->err = wg_genl_parse_device(msg, ctx->dev);
	return ctx->err < 0 ? NL_STOP : NL_OK;
}

int wg_kernel_get(const char *name, struct wg_device **out)
{
	struct get_ctx ctx = { 0 };
	struct nl_msg *msg;
	struct nl_sock *sk;
	int ret, family;

	if (!name || !*name || strlen(name) >= IFNAMSIZ || !out)
		return -EINVAL;
	ret = genl_open(&sk, &family);
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	ctx.dev = calloc(1, sizeof(*ctx.dev));
	if (!ctx.dev)
		goto out_sock;
	msg = nlmsg_alloc();
	if (!msg)
		goto err_dev;
	ret = -EMSGSIZE;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
			 NLM_F_REQUEST | NLM_F_DUMP, WG_CMD_GET_DEVICE, WG_GENL_VERSION) ||
	    nla_put_string(msg, WGDEVICE_A_IFNAME, name) < 0) {
		nlmsg_free(msg);
		goto err_dev;
	}
	ret = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		ret = nlerr_errno(ret);
		goto err_dev;
	}
	ret = nlerr_errno(nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM,
					       get_valid_cb, &ctx));
	if (ret < 0)
		goto err_dev;
	ret = nl_recvmsgs_default(sk);
	/* As wireguard-tools: a dump interrupted by a concurrent change gives
	 * partial results rather than a retry loop that may never end. */
	if (ret == -NLE_DUMP_INTR)
		ret = 0;
	ret = ctx.err < 0 ? ctx.err : nlerr_errno(ret);
	if (ret < 0)
		goto err_dev;
	if (!*ctx.dev->name)
		snprintf(ctx.dev->name, sizeof(ctx.dev->name), "%s", name);
	*out = ctx.dev;
	nl_socket_free(sk);
	return 0;

err_dev:
	wg_device_free(ctx.dev);
out_sock:
	nl_socket_free(sk);
	return ret;
}

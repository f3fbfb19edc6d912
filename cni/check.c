/*
 * CHECK: the attachment is still what ADD made. In order: the node
 * manager's record (ListAllocations), the prevResult the runtime kept (when
 * given), the interface in the container (kind, up, MTU, addresses), the
 * default routes, the WireGuard peer (the node interface's key and port),
 * and the node interface's peer for us. The first difference is the error
 * (code 102), named in msg and details.
 */
#include "cni.h"

#include "ipnet.h"
#include "key.h"
#include "log.h"
#include "netdev.h"
#include "nmclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_MAX_ADDRS 4

struct check {
	struct cni_ctx *ctx;
	struct nmc *nm;
	struct cni_ns ns;
	struct cni_link link;
	Wgcni__Node__V1__GetNodeResponse *node;
	struct ipnet addrs[CHECK_MAX_ADDRS];
	size_t n_addrs;
	uint8_t public_key[WG_KEY_LEN];
};

static int check_mismatch(struct check *c, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int check_mismatch(struct check *c, const char *what, const char *fmt, ...)
{
	char details[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(details, sizeof(details), fmt, ap);
	va_end(ap);
	return cni_fail(&c->ctx->err, CNI_ERR_CHECK, -ENOENT, what, "%s", details);
}

static int check_allocation(struct check *c)
{
	Wgcni__Node__V1__ListAllocationsRequest req = WGCNI__NODE__V1__LIST_ALLOCATIONS_REQUEST__INIT;
	Wgcni__Node__V1__ListAllocationsResponse *resp;
	const Wgcni__Node__V1__Allocation *found = NULL;
	const struct cni_env *env = &c->ctx->env;
	ProtobufCMessage *out;
	char why[128];
	int ret;

	ret = nmc_call(c->nm, "ListAllocations", &req.base,
		      &wgcni__node__v1__list_allocations_response__descriptor, &out,
		      CONNECT_OK, &c->ctx->err);
	if (ret)
		return ret;
	resp = (Wgcni__Node__V1__ListAllocationsResponse *)out;
	for (size_t i = 0; i < resp->n_allocations; i++) {
		const Wgcni__Node__V1__Allocation *al = resp->allocations[i];

		if (al && al->container_id && al->ifname &&
		    !strcmp(al->container_id, env->containerid) &&
		    !strcmp(al->ifname, env->ifname)) {
			found = al;
			break;
		}
	}
	if (!found) {
		ret = check_mismatch(c, "node manager has no allocation for the container",
				     "container %s ifname %s", env->containerid, env->ifname);
		goto out_free;
	}
	ret = -EPROTO;
	if (found->n_addresses == 0 || found->n_addresses > CHECK_MAX_ADDRS) {
		cni_fail(&c->ctx->err, CNI_ERR_NODE_MANAGER, ret,
			 "node manager sent an invalid allocation", "%zu addresses",
			 found->n_addresses);
		goto out_free;
	}
	for (size_t i = 0; i < found->n_addresses; i++) {
		if (ipnet_parse_host(found->addresses[i], &c->addrs[i])) {
			cni_fail(&c->ctx->err, CNI_ERR_NODE_MANAGER, ret,
				 "node manager sent an invalid address", "`%.64s'",
				 found->addresses[i]);
			goto out_free;
		}
	}
	c->n_addrs = found->n_addresses;
	if (!found->public_key || !*found->public_key) {
		ret = check_mismatch(c, "node manager has no public key for the container",
				     "container %s ifname %s", env->containerid, env->ifname);
		goto out_free;
	}
	if (key_from_base64(c->public_key, found->public_key, why, sizeof(why))) {
		cni_fail(&c->ctx->err, CNI_ERR_NODE_MANAGER, ret,
			 "node manager sent an invalid public key", "`%.64s': %s",
			 found->public_key, why);
		goto out_free;
	}
	ret = 0;
out_free:
	protobuf_c_message_free_unpacked(out, NULL);
	return ret;
}

static bool check_has_addr(const struct ipnet *have, size_t n, const struct ipnet *want)
{
	for (size_t i = 0; i < n; i++) {
		if (have[i].prefixlen == want->prefixlen &&
		    ipaddr_equal(&have[i].addr, &want->addr))
			return true;
	}
	return false;
}

/* Inside the container namespace. */
static int check_interface(struct check *c, unsigned int mtu)
{
	const char *ifname = c->ctx->env.ifname;
	struct ipnet *have = NULL, dst;
	struct netdev_info info;
	char buf[IPNET_STRLEN];
	bool done[2] = { false, false };
	size_t n = 0;
	int ret;

	ret = netdev_get(ifname, &info);
	if (ret == -ENODEV)
		return check_mismatch(c, "interface missing in the container", "%s in %s",
				      ifname, c->ctx->env.netns);
	if (ret)
		return cni_fail(&c->ctx->err, CNI_ERR_INTERNAL, ret, "cannot read the interface",
				"%s: %s", ifname, strerror(-ret));
	if (!strcmp(info.kind, "wireguard"))
		c->link.backend = WG_BACKEND_KERNEL;
	else if (!strcmp(info.kind, "tun"))
		c->link.backend = WG_BACKEND_USERSPACE;
	else
		return check_mismatch(c, "interface is not a WireGuard device",
				      "%s is of kind `%s'", ifname, info.kind);
	if (!info.up)
		return check_mismatch(c, "interface is down", "%s", ifname);
	if (mtu && info.mtu != mtu)
		return check_mismatch(c, "interface MTU differs", "%s has %u, want %u",
				      ifname, info.mtu, mtu);

	ret = netdev_addr_list(ifname, &have, &n);
	if (ret)
		return cni_fail(&c->ctx->err, CNI_ERR_INTERNAL, ret, "cannot list addresses",
				"%s: %s", ifname, strerror(-ret));
	for (size_t i = 0; i < c->n_addrs; i++) {
		if (!check_has_addr(have, n, &c->addrs[i])) {
			ret = check_mismatch(c, "interface address missing", "%s lacks %s",
					     ifname, ipnet_format(&c->addrs[i], buf));
			goto out_free;
		}
	}
	for (size_t i = 0; i < c->n_addrs; i++) {
		bool v6 = c->addrs[i].addr.family == AF_INET6;

		if (done[v6])
			continue;
		done[v6] = true;
		ipnet_parse(v6 ? "::/0" : "0.0.0.0/0", &dst, true);
		ret = netdev_route_exists(&dst, ifname);
		if (ret < 0) {
			cni_fail(&c->ctx->err, CNI_ERR_INTERNAL, ret, "cannot read routes",
				 "%s: %s", ifname, strerror(-ret));
			goto out_free;
		}
		if (ret == 0) {
			ret = check_mismatch(c, "default route missing", "%s dev %s",
					     ipnet_format(&dst, buf), ifname);
			goto out_free;
		}
	}
	ret = 0;
out_free:
	free(have);
	return ret;
}

static int check_in_netns(struct check *c, unsigned int mtu)
{
	int ret, ret2;

	ret = cni_ns_enter(&c->ns, &c->ctx->err);
	if (ret)
		return ret;
	ret = check_interface(c, mtu);
	ret2 = cni_ns_leave(&c->ns, &c->ctx->err);
	return ret ? ret : ret2;
}

static bool check_loopback_port(const struct wg_peer *p, uint16_t port)
{
	if (p->endpoint.addr.sa_family != AF_INET)
		return false;
	return ntohl(p->endpoint.addr4.sin_addr.s_addr) == INADDR_LOOPBACK &&
	       (!port || ntohs(p->endpoint.addr4.sin_port) == port);
}

/* Our device: its key is the one registered, its one peer the node. */
static int check_container_peer(struct check *c)
{
	const Wgcni__Node__V1__Node *node = c->node->node;
	uint8_t node_key[WG_KEY_LEN];
	struct wg_device *dev = NULL;
	const struct wg_peer *peer = NULL;
	char b64[WG_KEY_B64_LEN + 1];
	int ret;

	if (!node->public_key || key_from_base64(node_key, node->public_key, NULL, 0))
		return cni_fail(&c->ctx->err, CNI_ERR_NODE_MANAGER, -EPROTO,
				"node manager sent an invalid node public key", "`%.64s'",
				node->public_key ? node->public_key : "");
	ret = cni_link_wg_get(&c->link, &dev);
	if (ret)
		return check_mismatch(c, "cannot read the WireGuard device", "%s (%s): %s",
				      c->link.ifname, c->link.tmp, strerror(-ret));
	if (memcmp(dev->public_key, c->public_key, WG_KEY_LEN)) {
		key_to_base64(b64, dev->public_key);
		ret = check_mismatch(c, "WireGuard public key differs from the registered one",
				     "%s has %s", c->link.ifname, b64);
		goto out_free;
	}
	for (size_t i = 0; i < dev->n_peers; i++) {
		if (!memcmp(dev->peers[i].public_key, node_key, WG_KEY_LEN))
			peer = &dev->peers[i];
	}
	if (!peer) {
		ret = check_mismatch(c, "WireGuard peer for the node missing",
				     "%s has no peer %s", c->link.ifname, node->public_key);
		goto out_free;
	}
	if (!check_loopback_port(peer, (uint16_t)node->listen_port)) {
		char ep[IPNET_STRLEN];

		ret = check_mismatch(c, "WireGuard endpoint of the node peer differs",
				     "%s peer %s endpoint %s, want 127.0.0.1:%u", c->link.ifname,
				     node->public_key, sockaddr_format(&peer->endpoint.addr, ep),
				     node->listen_port);
		goto out_free;
	}
	ret = 0;
out_free:
	wg_device_free(dev);
	return ret;
}

/* The node interface (in our namespace, the runtime's) has us as a peer. */
static int check_node_peer(struct check *c)
{
	const Wgcni__Node__V1__Node *node = c->node->node;
	struct wg_device *dev = NULL;
	char b64[WG_KEY_B64_LEN + 1];
	bool found = false;
	int ret;

	if (!node->interface || !*node->interface)
		return 0;
	key_to_base64(b64, c->public_key);
	ret = wg_get(node->interface, &dev);
	if (ret)
		return check_mismatch(c, "cannot read the node interface", "%s: %s",
				      node->interface, strerror(-ret));
	for (size_t i = 0; i < dev->n_peers && !found; i++) {
		const struct wg_peer *p = &dev->peers[i];

		if (memcmp(p->public_key, c->public_key, WG_KEY_LEN))
			continue;
		for (size_t j = 0; j < c->n_addrs; j++) {
			struct ipnet host = c->addrs[j];

			host.prefixlen = ipaddr_bits(&host.addr);
			for (size_t k = 0; k < p->n_allowedips; k++) {
				if (p->allowedips[k].prefixlen == host.prefixlen &&
				    ipaddr_equal(&p->allowedips[k].addr, &host.addr))
					found = true;
			}
		}
	}
	wg_device_free(dev);
	if (!found)
		return check_mismatch(c, "node interface has no peer for the container",
				      "%s lacks peer %s for the container's address",
				      node->interface, b64);
	return 0;
}

/*
 * The runtime passes the result of our ADD as prevResult: it must still
 * describe this attachment (our interface in this sandbox, our addresses on
 * it), or the runtime's view and the container differ.
 */
static int check_prev_result(struct check *c)
{
	const struct cni_env *env = &c->ctx->env;
	json_t *prev = c->ctx->conf.prev_result, *ifaces, *ips, *v;
	char buf[IPNET_STRLEN];
	long idx = -1;
	size_t i;

	if (!prev)
		return 0;
	ifaces = json_object_get(prev, "interfaces");
	json_array_foreach(ifaces, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *sandbox = json_string_value(json_object_get(v, "sandbox"));

		if (name && !strcmp(name, env->ifname) &&
		    (!sandbox || !strcmp(sandbox, env->netns)))
			idx = (long)i;
	}
	if (idx < 0)
		return check_mismatch(c, "prevResult lacks the interface",
				      "no interface %s with sandbox %s", env->ifname, env->netns);
	ips = json_object_get(prev, "ips");
	for (size_t j = 0; j < c->n_addrs; j++) {
		bool found = false;

		json_array_foreach(ips, i, v) {
			const char *addr = json_string_value(json_object_get(v, "address"));
			json_t *ifi = json_object_get(v, "interface");
			struct ipnet n;

			if (addr && !ipnet_parse_host(addr, &n) &&
			    n.prefixlen == c->addrs[j].prefixlen &&
			    ipaddr_equal(&n.addr, &c->addrs[j].addr) &&
			    (!ifi || json_integer_value(ifi) == idx))
				found = true;
		}
		if (!found)
			return check_mismatch(c, "prevResult lacks the address",
					      "%s on %s", ipnet_format(&c->addrs[j], buf),
					      env->ifname);
	}
	return 0;
}

int cni_cmd_check(struct cni_ctx *ctx)
{
	struct check c = { .ctx = ctx };
	unsigned int mtu;
	int ret;

	c.ns.host = c.ns.target = -1;
	c.link.ns = &c.ns;
	c.link.ifname = ctx->env.ifname;
	ret = key_init();
	if (ret) {
		cni_fail(&ctx->err, CNI_ERR_INTERNAL, ret, "cannot initialise libsodium", NULL);
		goto out;
	}
	ret = cni_tmp_ifname(ctx->env.containerid, ctx->env.ifname, c.link.tmp);
	if (ret)
		goto out;
	c.nm = nmc_open(ctx->conf.node_manager, &ctx->err);
	if (!c.nm) {
		ret = -EINVAL;
		goto out;
	}
	ret = cni_ns_open(&c.ns, ctx->env.netns, &ctx->err);
	if (ret)
		goto out;
	ret = nmc_get_node(c.nm, &c.node, &ctx->err);
	if (ret)
		goto out;
	ret = check_allocation(&c);
	if (ret)
		goto out;
	ret = check_prev_result(&c);
	if (ret)
		goto out;
	mtu = ctx->conf.mtu ? ctx->conf.mtu : c.node->node->mtu;
	ret = check_in_netns(&c, mtu);
	if (ret)
		goto out;
	ret = check_container_peer(&c);
	if (ret)
		goto out;
	ret = check_node_peer(&c);
out:
	if (c.node)
		protobuf_c_message_free_unpacked(&c.node->base, NULL);
	cni_ns_close(&c.ns);
	nmc_close(c.nm);
	return ret;
}

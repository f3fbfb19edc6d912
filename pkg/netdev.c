/*
 * Links, addresses and routes over rtnetlink with libnl-route. Every call
 * opens its own netlink socket: a socket is bound to the namespace it was
 * created in, so a socket kept across netns_enter() would act in the old one.
 * libnl's NLE_* codes become errno values in nlerr.c.
 */
#include "netdev.h"
#include "nlerr.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

static int rtnl_open(struct nl_sock **out)
{
	struct nl_sock *sk;
	int ret;

	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	ret = nl_connect(sk, NETLINK_ROUTE);
	if (ret < 0) {
		nl_socket_free(sk);
		return nlerr_errno(ret);
	}
	*out = sk;
	return 0;
}

static int check_name(const char *name)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	return 0;
}

/* The kernel's view of link name; -ENODEV when absent. */
static int link_get(struct nl_sock *sk, const char *name, struct rtnl_link **link)
{
	int ret = check_name(name);

	if (ret < 0)
		return ret;
	ret = rtnl_link_get_kernel(sk, 0, name, link);
	if (ret < 0) {
		ret = nlerr_errno(ret);
		/* Older kernels answer a missing name with ENOENT/EINVAL. */
		return ret == -ENOENT ? -ENODEV : ret;
	}
	return 0;
}

typedef int (*link_fn)(struct nl_sock *sk, struct rtnl_link *link, void *arg);

/* Run fn on the kernel's view of link name, over a socket of its own. */
static int link_with(const char *name, link_fn fn, void *arg)
{
	struct rtnl_link *link = NULL;
	struct nl_sock *sk = NULL;
	int ret;

	ret = rtnl_open(&sk);
	if (ret < 0)
		return ret;
	ret = link_get(sk, name, &link);
	if (ret < 0)
		goto out_sock;
	ret = fn(sk, link, arg);
	rtnl_link_put(link);
out_sock:
	nl_socket_free(sk);
	return ret;
}

static int link_ifindex(struct nl_sock *sk, struct rtnl_link *link, void *arg)
{
	return rtnl_link_get_ifindex(link);
}

int netdev_index(const char *name)
{
	return link_with(name, link_ifindex, NULL);
}

bool netdev_exists(const char *name)
{
	return netdev_index(name) > 0;
}

int netdev_create(const char *name, const char *kind)
{
	return netdev_create_in(name, kind, -1, 0);
}

int netdev_create_in(const char *name, const char *kind, int netns_fd, unsigned int mtu)
{
	struct rtnl_link *link;
	struct nl_sock *sk = NULL;
	int ret;

	ret = check_name(name);
	if (ret < 0 || !kind || !*kind)
		return -EINVAL;
	ret = rtnl_open(&sk);
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	link = rtnl_link_alloc();
	if (!link)
		goto out_sock;
	rtnl_link_set_name(link, name);
	/* Sets IFLA_INFO_KIND even for kinds libnl has no module for
	 * ("wireguard"). */
	ret = nlerr_errno(rtnl_link_set_type(link, kind));
	if (ret < 0)
		goto out_link;
	/* IFLA_NET_NS_FD: born there, while the request (and so what the
	 * kind takes as its creating namespace) comes from ours. */
	if (netns_fd >= 0)
		rtnl_link_set_ns_fd(link, netns_fd);
	if (mtu)
		rtnl_link_set_mtu(link, mtu);
	ret = nlerr_errno(rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL));
out_link:
	rtnl_link_put(link);
out_sock:
	nl_socket_free(sk);
	return ret;
}

static int link_delete(struct nl_sock *sk, struct rtnl_link *link, void *arg)
{
	return nlerr_errno(rtnl_link_delete(sk, link));
}

int netdev_delete(const char *name)
{
	return link_with(name, link_delete, NULL);
}

/* --- delete without waiting for the free -------------------------------- */

#define UNREGISTER_WAIT_MS 5000

/* A netlink socket in our namespace that hears of links going away. */
static int link_watch_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* 1 once RTM_DELLINK for ifindex was read, 0 if not yet, negative errno. */
static int link_watch_gone(int fd, int ifindex)
{
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *h;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EAGAIN)
			return 0;
		/* Overrun, events lost: the child's word will come instead
		 * (the caller may be in another namespace by now, so asking
		 * the kernel by index here could ask the wrong one). */
		if (n < 0 && errno == ENOBUFS)
			continue;
		if (n < 0)
			return -errno;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			const struct ifinfomsg *ifi = NLMSG_DATA(h);

			if (h->nlmsg_type == RTM_DELLINK &&
			    h->nlmsg_len >= NLMSG_LENGTH(sizeof(*ifi)) && ifi->ifi_index == ifindex)
				return 1;
		}
	}
}

/*
 * The child that deletes: it may outlive us, so nothing of ours stays open
 * in it (a runtime reading our stdout waits for every writer of the pipe),
 * but the pipe it reports on.
 */
static void unregister_child(const char *name, int report)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), ret;

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
	}
	if (report > STDERR_FILENO + 1)
		close_range(STDERR_FILENO + 1, (unsigned int)report - 1, 0);
	close_range((unsigned int)report + 1, ~0U, 0);
	ret = netdev_delete(name);
	if (write(report, &ret, sizeof(ret)) < 0)
		_exit(1);
	_exit(0);
}

/*
 * The kernel announces a link's end (RTM_DELLINK) once it has unlisted it,
 * taken its addresses and routes and closed it; the request that deleted
 * it then still waits for an RCU barrier and the device's own teardown
 * (WireGuard: its workqueues, 130-160 ms in the test VM; a TUN 20 ms here).
 * That wait is left to a child; we return at the announcement.
 */
int netdev_unregister_start(const char *name, struct netdev_unreg *u)
{
	int p[2];
	pid_t pid;

	*u = NETDEV_UNREG_NONE;
	u->deadline_ms = sys_now_ms() + UNREGISTER_WAIT_MS;
	u->ifindex = netdev_index(name);
	if (u->ifindex < 0)
		return u->ret = u->ifindex;
	/* Watching before the request: the announcement cannot be missed. */
	u->watch = link_watch_open();
	if (u->watch < 0 || pipe2(p, O_CLOEXEC) < 0)
		goto sync;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		unregister_child(name, p[1]);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		goto sync;
	}
	u->report = p[0];
	return 0;
sync:
	if (u->watch >= 0)
		close(u->watch);
	u->watch = -1;
	return u->ret = netdev_delete(name);
}

int netdev_unregister_wait(struct netdev_unreg *u)
{
	struct pollfd pfd[2] = {
		{ .fd = u->watch, .events = POLLIN },
		{ .fd = u->report, .events = POLLIN },
	};
	int child_ret;

	if (u->report < 0)
		return u->ret;
	for (u->ret = 0; u->ret == 0;) {
		int64_t left = u->deadline_ms - sys_now_ms();

		if (left <= 0) {
			u->ret = -ETIMEDOUT;
			break;
		}
		if (poll(pfd, 2, (int)left) < 0 && errno != EINTR) {
			u->ret = -errno;
			break;
		}
		if (pfd[0].revents) {
			u->ret = link_watch_gone(u->watch, u->ifindex);
			if (u->ret == 1) {
				u->ret = 0;
				break;
			}
		}
		if (pfd[1].revents) {
			/* The child finished first (or died without a word). */
			ssize_t n = read(u->report, &child_ret, sizeof(child_ret));

			u->ret = n == sizeof(child_ret) ? child_ret : -EIO;
			break;
		}
	}
	close(u->report);
	close(u->watch);
	u->report = u->watch = -1;
	return u->ret;
}

int netdev_unregister(const char *name)
{
	struct netdev_unreg u;

	netdev_unregister_start(name, &u);
	return netdev_unregister_wait(&u);
}

/* Apply the attributes set in change (arg) to the link. */
static int link_change(struct nl_sock *sk, struct rtnl_link *link, void *change)
{
	return nlerr_errno(rtnl_link_change(sk, link, change, 0));
}

typedef void (*link_setter)(struct rtnl_link *change, const void *arg);

static int link_set(const char *name, link_setter set, const void *arg)
{
	struct rtnl_link *change;
	int ret;

	change = rtnl_link_alloc();
	if (!change)
		return -ENOMEM;
	set(change, arg);
	ret = link_with(name, link_change, change);
	rtnl_link_put(change);
	return ret;
}

static void set_up(struct rtnl_link *c, const void *arg)
{
	if (*(const bool *)arg)
		rtnl_link_set_flags(c, IFF_UP);
	else
		rtnl_link_unset_flags(c, IFF_UP);
}

static void set_mtu(struct rtnl_link *c, const void *arg)
{
	rtnl_link_set_mtu(c, *(const unsigned int *)arg);
}

static void set_name(struct rtnl_link *c, const void *arg)
{
	rtnl_link_set_name(c, arg);
}

static void set_ns_fd(struct rtnl_link *c, const void *arg)
{
	rtnl_link_set_ns_fd(c, *(const int *)arg);
}

int netdev_set_up(const char *name, bool up)
{
	return link_set(name, set_up, &up);
}

int netdev_set_mtu(const char *name, unsigned int mtu)
{
	if (mtu == 0)
		return -EINVAL;
	return link_set(name, set_mtu, &mtu);
}

int netdev_rename(const char *name, const char *newname)
{
	int ret = check_name(newname);

	if (ret < 0)
		return ret;
	return link_set(name, set_name, newname);
}

struct rename_up {
	const char *newname;
	unsigned int mtu;
};

static void set_rename_up(struct rtnl_link *c, const void *arg)
{
	const struct rename_up *r = arg;

	rtnl_link_set_name(c, r->newname);
	if (r->mtu)
		rtnl_link_set_mtu(c, r->mtu);
	rtnl_link_set_flags(c, IFF_UP);
}

int netdev_rename_up(const char *name, const char *newname, unsigned int mtu)
{
	struct rename_up r = { newname, mtu };
	int ret = check_name(newname);

	if (ret < 0)
		return ret;
	return link_set(name, set_rename_up, &r);
}

int netdev_move_to_netns(const char *name, int netns_fd)
{
	if (netns_fd < 0)
		return -EBADF;
	return link_set(name, set_ns_fd, &netns_fd);
}

static int link_info(struct nl_sock *sk, struct rtnl_link *link, void *arg)
{
	struct netdev_info *info = arg;
	const char *kind;

	memset(info, 0, sizeof(*info));
	info->ifindex = rtnl_link_get_ifindex(link);
	info->mtu = rtnl_link_get_mtu(link);
	info->up = rtnl_link_get_flags(link) & IFF_UP;
	/* IFLA_INFO_KIND: the tun driver reports "tun" for wireguard-go's
	 * device, the kernel module "wireguard". */
	kind = rtnl_link_get_type(link);
	if (kind)
		snprintf(info->kind, sizeof(info->kind), "%s", kind);
	return 0;
}

int netdev_get(const char *name, struct netdev_info *info)
{
	if (!info)
		return -EINVAL;
	return link_with(name, link_info, info);
}

/* --- addresses -------------------------------------------------------- */

static int addr_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : -EAFNOSUPPORT;
}

static const uint8_t *ipaddr_raw(const struct ipaddr *a)
{
	return a->family == AF_INET ? a->bytes + 12 : a->bytes;
}

static int nladdr_from_ipnet(const struct ipnet *n, struct nl_addr **out)
{
	struct nl_addr *a;
	int len;

	if (!n)
		return -EINVAL;
	len = addr_len(n->addr.family);
	if (len < 0)
		return len;
	if (n->prefixlen > (unsigned int)len * 8)
		return -EINVAL;
	a = nl_addr_build(n->addr.family, ipaddr_raw(&n->addr), len);
	if (!a)
		return -ENOMEM;
	nl_addr_set_prefixlen(a, n->prefixlen);
	*out = a;
	return 0;
}

/* A missing (len 0) address is the zero address: libnl parses a default
 * route's absent RTA_DST that way. */
static int ipaddr_from_nladdr(struct nl_addr *a, int family, struct ipaddr *out)
{
	unsigned int alen = nl_addr_get_len(a);
	int len = addr_len(family);

	if (len < 0)
		return len;
	if (alen != 0 && alen != (unsigned int)len)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	out->family = family;
	if (alen)
		memcpy(family == AF_INET ? out->bytes + 12 : out->bytes,
		       nl_addr_get_binary_addr(a), len);
	return 0;
}

static int addr_build(const char *name, const struct ipnet *net, struct rtnl_addr **out)
{
	struct nl_addr *local = NULL;
	struct rtnl_addr *addr;
	int ret, ifindex;

	ret = netdev_index(name);
	if (ret < 0)
		return ret;
	ifindex = ret;
	ret = nladdr_from_ipnet(net, &local);
	if (ret < 0)
		return ret;
	ret = -ENOMEM;
	addr = rtnl_addr_alloc();
	if (!addr)
		goto out_local;
	rtnl_addr_set_ifindex(addr, ifindex);
	rtnl_addr_set_family(addr, net->addr.family);
	ret = nlerr_errno(rtnl_addr_set_local(addr, local));
	if (ret < 0)
		goto err_addr;
	rtnl_addr_set_prefixlen(addr, net->prefixlen);
	*out = addr;
	ret = 0;
	goto out_local;
err_addr:
	rtnl_addr_put(addr);
out_local:
	nl_addr_put(local);
	return ret;
}

/* Add (NLM_F_EXCL) or delete one address of a link. */
static int addr_change(const char *name, const struct ipnet *addr, bool add)
{
	struct rtnl_addr *a = NULL;
	struct nl_sock *sk = NULL;
	int ret;

	ret = rtnl_open(&sk);
	if (ret < 0)
		return ret;
	ret = addr_build(name, addr, &a);
	if (ret < 0)
		goto out_sock;
	/* WireGuard links have no link layer to probe: skip IPv6 DAD so the
	 * address is usable at once. */
	if (add && addr->addr.family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	ret = nlerr_errno(add ? rtnl_addr_add(sk, a, NLM_F_EXCL) : rtnl_addr_delete(sk, a, 0));
	rtnl_addr_put(a);
out_sock:
	nl_socket_free(sk);
	return ret;
}

int netdev_addr_add(const char *name, const struct ipnet *addr)
{
	return addr_change(name, addr, true);
}

int netdev_addr_del(const char *name, const struct ipnet *addr)
{
	return addr_change(name, addr, false);
}

typedef void (*dump_fn)(struct nl_object *obj, void *arg);

/*
 * Walk a fresh dump of the addresses (routes false) or of the family's
 * routes, after storing dev's index in *ifindex for fn to match on.
 */
static int dump_walk(const char *dev, bool routes, int family, int *ifindex,
		     dump_fn fn, void *arg)
{
	struct nl_cache *cache = NULL;
	struct nl_sock *sk = NULL;
	int ret;

	ret = netdev_index(dev);
	if (ret < 0)
		return ret;
	*ifindex = ret;
	ret = rtnl_open(&sk);
	if (ret < 0)
		return ret;
	ret = nlerr_errno(routes ? rtnl_route_alloc_cache(sk, family, 0, &cache)
				 : rtnl_addr_alloc_cache(sk, &cache));
	if (ret < 0)
		goto out_sock;
	nl_cache_foreach(cache, fn, arg);
	nl_cache_free(cache);
out_sock:
	nl_socket_free(sk);
	return ret;
}

struct addr_collect {
	int ifindex;
	struct ipnet *v;
	size_t n, cap;
	int err;
};

static void addr_collect_one(struct nl_object *obj, void *arg)
{
	struct rtnl_addr *a = (struct rtnl_addr *)obj;
	struct addr_collect *c = arg;
	struct nl_addr *local;
	struct ipnet net;
	int family;

	if (c->err || rtnl_addr_get_ifindex(a) != c->ifindex)
		return;
	family = rtnl_addr_get_family(a);
	local = rtnl_addr_get_local(a);
	if ((family != AF_INET && family != AF_INET6) || !local)
		return;
	if (ipaddr_from_nladdr(local, family, &net.addr) < 0)
		return;
	net.prefixlen = rtnl_addr_get_prefixlen(a);
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct ipnet *v = reallocarray(c->v, cap, sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = net;
}

int netdev_addr_list(const char *name, struct ipnet **addrs, size_t *n)
{
	struct addr_collect c = { 0 };
	int ret;

	if (!addrs || !n)
		return -EINVAL;
	ret = dump_walk(name, false, AF_UNSPEC, &c.ifindex, addr_collect_one, &c);
	if (ret == 0)
		ret = c.err;
	if (ret < 0) {
		free(c.v);
		return ret;
	}
	*addrs = c.v;
	*n = c.n;
	return 0;
}

/* --- routes ----------------------------------------------------------- */

static int route_build(const struct ipnet *dst, int ifindex, const struct ipaddr *via,
		       struct rtnl_route **out)
{
	struct nl_addr *d = NULL, *gw = NULL;
	struct rtnl_nexthop *nh;
	struct rtnl_route *r;
	int ret;

	ret = nladdr_from_ipnet(dst, &d);
	if (ret < 0)
		return ret;
	if (via) {
		struct ipnet v = { .addr = *via, .prefixlen = via->family == AF_INET ? 32 : 128 };

		if (via->family != dst->addr.family) {
			ret = -EINVAL;
			goto out_d;
		}
		ret = nladdr_from_ipnet(&v, &gw);
		if (ret < 0)
			goto out_d;
	}
	ret = -ENOMEM;
	r = rtnl_route_alloc();
	if (!r)
		goto out_gw;
	nh = rtnl_route_nh_alloc();
	if (!nh)
		goto err_route;
	rtnl_route_nh_set_ifindex(nh, ifindex);
	if (gw)
		rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(r, nh); /* r owns nh now */
	rtnl_route_set_family(r, dst->addr.family);
	rtnl_route_set_table(r, RT_TABLE_MAIN);
	rtnl_route_set_type(r, RTN_UNICAST);
	ret = nlerr_errno(rtnl_route_set_dst(r, d));
	if (ret < 0)
		goto err_route;
	*out = r;
	ret = 0;
	goto out_gw;
err_route:
	rtnl_route_put(r);
out_gw:
	nl_addr_put(gw);
out_d:
	nl_addr_put(d);
	return ret;
}

/* Add (NLM_F_REPLACE) or delete the route to dst through dev. */
static int route_change(const struct ipnet *dst, const char *dev, const struct ipaddr *via,
			bool add)
{
	struct rtnl_route *r = NULL;
	struct nl_sock *sk = NULL;
	int ret;

	if (!dst)
		return -EINVAL;
	ret = netdev_index(dev);
	if (ret < 0)
		return ret;
	ret = route_build(dst, ret, via, &r);
	if (ret < 0)
		return ret;
	if (!add) {
		/* The kernel matches any scope when RT_SCOPE_NOWHERE is given,
		 * so a gatewayed route is found as well as an on-link one. */
		rtnl_route_set_scope(r, RT_SCOPE_NOWHERE);
		rtnl_route_set_protocol(r, RTPROT_UNSPEC);
	}
	ret = rtnl_open(&sk);
	if (ret < 0)
		goto out_route;
	ret = nlerr_errno(add ? rtnl_route_add(sk, r, NLM_F_REPLACE) : rtnl_route_delete(sk, r, 0));
	nl_socket_free(sk);
out_route:
	rtnl_route_put(r);
	return ret;
}

int netdev_route_add(const struct ipnet *dst, const char *dev, const struct ipaddr *via)
{
	return route_change(dst, dev, via, true);
}

/* -ENOENT when there is no such route. */
int netdev_route_del(const struct ipnet *dst, const char *dev)
{
	return route_change(dst, dev, NULL, false);
}

struct route_match {
	const struct ipnet *dst;
	int ifindex;
	int found;
};

static void route_match_one(struct nl_object *obj, void *arg)
{
	struct rtnl_route *r = (struct rtnl_route *)obj;
	struct route_match *m = arg;
	struct rtnl_nexthop *nh;
	struct nl_addr *d;
	struct ipaddr a;
	int i, n;

	if (m->found || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
	    rtnl_route_get_family(r) != m->dst->addr.family)
		return;
	d = rtnl_route_get_dst(r);
	if (!d || nl_addr_get_prefixlen(d) != m->dst->prefixlen)
		return;
	if (ipaddr_from_nladdr(d, m->dst->addr.family, &a) < 0 ||
	    memcmp(a.bytes, m->dst->addr.bytes, sizeof(a.bytes)) != 0)
		return;
	n = rtnl_route_get_nnexthops(r);
	for (i = 0; i < n; i++) {
		nh = rtnl_route_nexthop_n(r, i);
		if (nh && rtnl_route_nh_get_ifindex(nh) == m->ifindex) {
			m->found = 1;
			return;
		}
	}
}

int netdev_route_exists(const struct ipnet *dst, const char *dev)
{
	struct route_match m = { .dst = dst };
	int ret;

	if (!dst || addr_len(dst->addr.family) < 0)
		return -EINVAL;
	ret = dump_walk(dev, true, dst->addr.family, &m.ifindex, route_match_one, &m);
	return ret < 0 ? ret : m.found;
}

int netdev_enable_forwarding(int family)
{
	const char *path;
	ssize_t w;
	int fd, ret = 0;

	if (family == AF_INET)
		path = "/proc/sys/net/ipv4/ip_forward";
	else if (family == AF_INET6)
		path = "/proc/sys/net/ipv6/conf/all/forwarding";
	else
		return -EAFNOSUPPORT;
	/* /proc/sys/net follows the opener's namespace. */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, "1\n", 2);
	if (w < 0)
		ret = -errno;
	else if (w != 2)
		ret = -EIO;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	return ret;
}

/*
 * Links, addresses and routes through rtnetlink (libnl-route), in the calling
 * thread's current network namespace. One short-lived netlink socket per
 * call, so a call made after netns_enter() acts in the new namespace. All
 * return 0 or a negative errno (libnl's NLE_* translated here only).
 */
#ifndef WGCNI_NETDEV_H
#define WGCNI_NETDEV_H

#include "ipnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ifindex (> 0) or -ENODEV. */
int netdev_index(const char *name);
bool netdev_exists(const char *name);
/* Create a link of kind ("wireguard", "dummy"). -EEXIST if it exists,
 * -EOPNOTSUPP if the kernel lacks the kind. */
int netdev_create(const char *name, const char *kind);
/* As netdev_create, the link created directly in the namespace netns_fd
 * (-1: ours) by a request from the calling thread's namespace (where name
 * must be free too on older kernels, 6.1 among them, which look it up
 * there), with MTU mtu (0: the kind's default). */
int netdev_create_in(const char *name, const char *kind, int netns_fd, unsigned int mtu);
/* -ENODEV if absent. */
int netdev_delete(const char *name);
/*
 * As netdev_delete, returning once the kernel has unregistered the link
 * (name, addresses and routes gone) instead of when it has also freed it:
 * the freeing waits for an RCU barrier and the kind's teardown (WireGuard:
 * ~150 ms in the test VM), which a child of ours then sits through. 5 s
 * bound: -ETIMEDOUT. Forks: single-threaded callers only.
 */
int netdev_unregister(const char *name);
/*
 * The same in two halves, for work in between: _start asks (in the calling
 * thread's namespace; the wait may happen in another), _wait returns what
 * netdev_unregister would. Always _wait after a _start.
 */
struct netdev_unreg {
	int watch, report, ifindex, ret;
	int64_t deadline_ms;
};
/* Nothing asked: _wait returns -ENODEV. */
#define NETDEV_UNREG_NONE ((struct netdev_unreg){ .watch = -1, .report = -1, .ret = -ENODEV })
int netdev_unregister_start(const char *name, struct netdev_unreg *u);
int netdev_unregister_wait(struct netdev_unreg *u);
int netdev_set_up(const char *name, bool up);
int netdev_set_mtu(const char *name, unsigned int mtu);
/* The kernel refuses to rename a link that is up (-EBUSY). */
int netdev_rename(const char *name, const char *newname);
/* Rename a link that is down, set its MTU (0: keep) and bring it up, in
 * one request (the kernel sets the MTU, then the name, then the flags;
 * on an error the steps before it stay done). */
int netdev_rename_up(const char *name, const char *newname, unsigned int mtu);
/* Move into the namespace netns_fd refers to. */
int netdev_move_to_netns(const char *name, int netns_fd);

struct netdev_info {
	int ifindex;
	unsigned int mtu;
	bool up;         /* IFF_UP */
	char kind[32];   /* "wireguard", "veth", "" when unknown (tun: "tun") */
};
int netdev_get(const char *name, struct netdev_info *info);

/* Address with prefix (host bits kept: 10.100.3.1/24). -EEXIST if present. */
int netdev_addr_add(const char *name, const struct ipnet *addr);
int netdev_addr_del(const char *name, const struct ipnet *addr);
/* Addresses of a link, malloc'd array. */
int netdev_addr_list(const char *name, struct ipnet **addrs, size_t *n);

/*
 * Routes in the main table. via may be NULL (on-link through dev).
 * netdev_route_add replaces an existing route to dst (NLM_F_REPLACE).
 */
int netdev_route_add(const struct ipnet *dst, const char *dev, const struct ipaddr *via);
int netdev_route_del(const struct ipnet *dst, const char *dev); /* -ENOENT if absent */
/* 1 if a route to exactly dst through dev exists, 0 if not, negative errno. */
int netdev_route_exists(const struct ipnet *dst, const char *dev);


/* Write "1" to /proc/sys/net/ipv{4,6}/... forwarding for family. */
int netdev_enable_forwarding(int family);

#endif

/*
 * The node interface: create or adopt it, and change its peers only by
 * difference. A restart must not interrupt tunnels, so nothing here ever
 * deletes, recreates or downs the interface, and no wg_set replaces the
 * whole peer list.
 */
#include "nm.h"

#include "fw.h"
#include "log.h"
#include "netdev.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* A peer as we want it on the interface. */
struct nm_want {
	const uint8_t *key;
	const char *endpoint;
	const struct ipnet *allowed;
	size_t n_allowed;
	uint16_t keepalive;
	const char *kind, *name; /* for the plan: "node" node2, "container" id */
	bool external;           /* an external peer: no preshared key */
};

/* cur's preshared key is psk (all zero: none). */
bool nm_psk_equal(const struct wg_peer *cur, const uint8_t psk[static WG_KEY_LEN])
{
	static const uint8_t zero[WG_KEY_LEN];

	if (cur->flags & WGPEER_HAS_PRESHARED_KEY)
		return sodium_memcmp(cur->preshared_key, psk, WG_KEY_LEN) == 0;
	return sodium_memcmp(zero, psk, WG_KEY_LEN) == 0;
}

bool nm_sockaddr_equal(const struct wg_peer *a, const struct wg_peer *b)
{
	if (a->endpoint.addr.sa_family != b->endpoint.addr.sa_family)
		return false;
	if (a->endpoint.addr.sa_family == AF_INET)
		return a->endpoint.addr4.sin_port == b->endpoint.addr4.sin_port &&
		       a->endpoint.addr4.sin_addr.s_addr == b->endpoint.addr4.sin_addr.s_addr;
	if (a->endpoint.addr.sa_family == AF_INET6)
		return a->endpoint.addr6.sin6_port == b->endpoint.addr6.sin6_port &&
		       !memcmp(&a->endpoint.addr6.sin6_addr, &b->endpoint.addr6.sin6_addr,
			       sizeof(struct in6_addr));
	return true;
}

static int nm_wg_peer_cmp(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key,
		      ((const struct wg_peer *)b)->public_key, WG_KEY_LEN);
}

static int nm_want_cmp(const void *a, const void *b)
{
	return memcmp(((const struct nm_want *)a)->key, ((const struct nm_want *)b)->key,
		      WG_KEY_LEN);
}

/* dev->peers sorted by nm_wg_peer_cmp. */
static const struct wg_peer *nm_dev_peer(const struct wg_device *dev, const uint8_t *key)
{
	struct wg_peer probe;

	if (!dev->n_peers)
		return NULL;
	memcpy(probe.public_key, key, WG_KEY_LEN);
	return bsearch(&probe, dev->peers, dev->n_peers, sizeof(*dev->peers), nm_wg_peer_cmp);
}

/* w sorted by nm_want_cmp. */
static const struct nm_want *nm_want_find(const struct nm_want *w, size_t n,
					  const uint8_t *key)
{
	struct nm_want probe = { .key = key };

	if (!n)
		return NULL;
	return bsearch(&probe, w, n, sizeof(*w), nm_want_cmp);
}

static void nm_set_free(struct wg_device *d)
{
	for (size_t i = 0; i < d->n_peers; i++)
		wg_peer_clear(&d->peers[i]);
	free(d->peers);
	d->peers = NULL;
	d->n_peers = 0;
}

static void nm_nets_format(const struct ipnet *nets, size_t n, char *buf, size_t len)
{
	char one[IPNET_STRLEN];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					ipnet_format(&nets[i], one));
}

/* The plan line of one peer change. */
static int nm_plan_peer(struct nm_plan *plan, const struct nm_want *w,
			const struct wg_peer *cur, const struct wg_peer *p)
{
	char key[WG_KEY_B64_LEN + 1], nets[512], fields[80] = "";
	bool ep;

	if (!plan)
		return 0;
	key_to_base64(key, w->key);
	nm_nets_format(w->allowed, w->n_allowed, nets, sizeof(nets));
	if (!cur)
		return nm_plan_add(plan, "peer add %s %s=%s endpoint=%s allowed-ips=%s keepalive=%u",
				   key, w->kind, w->name, w->endpoint[0] ? w->endpoint : "(none)",
				   nets, w->keepalive);
	ep = (p->flags & WGPEER_HAS_ENDPOINT) && !nm_sockaddr_equal(cur, p);
	snprintf(fields, sizeof(fields), "%s%s%s%s", ep ? ",endpoint" : "",
		 ipnet_set_equal(cur->allowedips, cur->n_allowedips, w->allowed, w->n_allowed)
			 ? "" : ",allowed-ips",
		 cur->keepalive != w->keepalive ? ",keepalive" : "",
		 nm_psk_equal(cur, p->preshared_key) ? "" : ",preshared-key");
	return nm_plan_add(plan, "peer update %s %s=%s changed=%s endpoint=%s allowed-ips=%s"
			   " keepalive=%u", key, w->kind, w->name, fields + 1,
			   w->endpoint[0] ? w->endpoint : "(none)", nets, w->keepalive);
}

/* Append want to d unless cur already matches it. */
static int nm_set_want(const struct nm *nm, struct wg_device *d, const struct nm_want *w,
		       const struct wg_peer *cur, struct nm_plan *plan)
{
	struct wg_peer *p = &d->peers[d->n_peers];
	char err[256];
	int ret;

	memset(p, 0, sizeof(*p));
	memcpy(p->public_key, w->key, WG_KEY_LEN);
	p->flags = WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_KEEPALIVE;
	p->keepalive = w->keepalive;
	/* Always set (all zero clears one left from an earlier secret); only
	 * node and container peerings have one, external peers do not. */
	if (!w->external)
		nm_psk(nm, w->key, p->preshared_key);
	p->flags |= WGPEER_HAS_PRESHARED_KEY;
	if (w->endpoint[0] && wg_peer_set_endpoint(p, w->endpoint, err, sizeof(err)) < 0)
		log_warnx("peer endpoint unusable", "endpoint=%s reason=%s",
			  w->endpoint, err);
	if (cur && cur->keepalive == w->keepalive &&
	    ipnet_set_equal(cur->allowedips, cur->n_allowedips, w->allowed, w->n_allowed) &&
	    (!(p->flags & WGPEER_HAS_ENDPOINT) || nm_sockaddr_equal(cur, p)) &&
	    nm_psk_equal(cur, p->preshared_key)) {
		wg_peer_clear(p);
		return 0;
	}
	ret = nm_plan_peer(plan, w, cur, p);
	for (size_t i = 0; ret == 0 && i < w->n_allowed; i++)
		ret = wg_peer_add_allowedip(p, &w->allowed[i]);
	if (ret < 0) {
		wg_peer_clear(p);
		return ret;
	}
	d->n_peers++;
	return 0;
}

static int nm_plan_remove(struct nm_plan *plan, const struct wg_peer *cur)
{
	char key[WG_KEY_B64_LEN + 1], nets[512];

	if (!plan)
		return 0;
	key_to_base64(key, cur->public_key);
	nm_nets_format(cur->allowedips, cur->n_allowedips, nets, sizeof(nets));
	return nm_plan_add(plan, "peer remove %s allowed-ips=%s", key, nets[0] ? nets : "(none)");
}

static void nm_set_remove(struct wg_device *d, const uint8_t *key)
{
	struct wg_peer *p = &d->peers[d->n_peers++];

	memset(p, 0, sizeof(*p));
	memcpy(p->public_key, key, WG_KEY_LEN);
	p->flags = WGPEER_REMOVE_ME;
}

enum nm_unknown {
	NM_REMOVE_CONTAINER_LIKE, /* startup: leave possible node peers to the sync */
	NM_REMOVE_NON_CONTAINER,  /* sync: every unknown peer that is no container's */
};

static bool nm_container_like(const struct nm *nm, const struct wg_peer *p)
{
	for (size_t i = 0; i < p->n_allowedips; i++) {
		bool inside = false;

		for (size_t j = 0; j < nm->n_subnets; j++)
			if (ipnet_contains_net(&nm->subnets[j], &p->allowedips[i]))
				inside = true;
		if (!inside)
			return false;
	}
	return true;
}

/*
 * Container peers put back on the interface (a restart or a repair after
 * someone removed them): the container still holds its old session, sends
 * with it and never hears back, so only WireGuard's 15 s dead-session
 * timeout would end the silence. A persistent keepalive switched on sends at
 * once, which makes the node initiate a fresh handshake now; switched off
 * again right after, the peer is left as configured.
 */
static int nm_iface_kick(struct nm *nm, const struct wg_device *dev,
			 const struct nm_want *want, size_t n_want)
{
	struct wg_device d = { 0 };
	int ret = 0;

	d.peers = calloc(n_want + 1, sizeof(*d.peers));
	if (!d.peers)
		return -ENOMEM;
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	for (size_t i = 0; i < n_want; i++) {
		if (want[i].keepalive || strcmp(want[i].kind, "container") ||
		    nm_dev_peer(dev, want[i].key))
			continue;
		memcpy(d.peers[d.n_peers].public_key, want[i].key, WG_KEY_LEN);
		d.peers[d.n_peers].flags = WGPEER_HAS_KEEPALIVE | WGPEER_UPDATE_ONLY;
		d.peers[d.n_peers++].keepalive = NM_NODE_KEEPALIVE;
	}
	if (d.n_peers)
		ret = wg_set(&d);
	for (size_t i = 0; ret == 0 && i < d.n_peers; i++)
		d.peers[i].keepalive = 0;
	if (ret == 0 && d.n_peers)
		ret = wg_set(&d);
	free(d.peers);
	return ret;
}

/* Bring the interface to want (reordered), with one incremental wg_set.
 * Both lists are sorted so that thousands of peers cost n log n. */
static int nm_iface_apply(struct nm *nm, struct nm_want *want, size_t n_want,
			  enum nm_unknown policy, size_t *changed, struct nm_plan *plan)
{
	struct wg_device *dev = NULL;
	struct wg_device d = { 0 };
	int ret;

	if (plan && plan->absent) {
		dev = calloc(1, sizeof(*dev));
		ret = dev ? 0 : -ENOMEM;
	} else {
		ret = wg_get(nm->cfg.ifname, &dev);
	}
	if (ret < 0) {
		log_error("reading the node interface failed", "interface=%s err=%s",
			  nm->cfg.ifname, strerror(-ret));
		return ret;
	}
	if (dev->n_peers > 1)
		qsort(dev->peers, dev->n_peers, sizeof(*dev->peers), nm_wg_peer_cmp);
	if (n_want > 1)
		qsort(want, n_want, sizeof(*want), nm_want_cmp);
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	d.peers = calloc(dev->n_peers + n_want + 1, sizeof(*d.peers));
	if (!d.peers) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		bool remove;

		if (nm_want_find(want, n_want, p->public_key))
			continue;
		if (policy == NM_REMOVE_CONTAINER_LIKE)
			remove = nm_container_like(nm, p);
		else
			remove = !nm_state_find_key(nm, p->public_key);
		if (!remove)
			continue;
		ret = nm_plan_remove(plan, p);
		if (ret < 0)
			goto out;
		nm_set_remove(&d, p->public_key);
	}
	for (size_t i = 0; i < n_want; i++) {
		ret = nm_set_want(nm, &d, &want[i], nm_dev_peer(dev, want[i].key), plan);
		if (ret < 0)
			goto out;
	}
	if (changed)
		*changed = d.n_peers;
	if (d.n_peers && !(plan && plan->dry)) {
		ret = wg_set(&d);
		if (ret < 0)
			log_error("configuring peers failed", "interface=%s peers=%zu err=%s",
				  nm->cfg.ifname, d.n_peers, strerror(-ret));
		else if (nm_iface_kick(nm, dev, want, n_want) < 0)
			log_warnx("starting handshakes with restored container peers failed",
				  "interface=%s", nm->cfg.ifname);
	}
out:
	nm_set_free(&d);
	wg_device_free(dev);
	return ret;
}

static size_t nm_want_nodes(const struct nm *nm, const struct nm_peer *peers, size_t n,
			    struct nm_want *want)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (!memcmp(peers[i].public_key, nm->public_key, WG_KEY_LEN))
			continue;
		if (nm_state_find_key((struct nm *)nm, peers[i].public_key) ||
		    nm_ext_find(nm, peers[i].public_key)) {
			log_warnx("node peer has a container's or external peer's key, skipped",
				  "name=%s", peers[i].name);
			continue;
		}
		want[k++] = (struct nm_want){
			.key = peers[i].public_key,
			.endpoint = peers[i].endpoint,
			.allowed = peers[i].allowed,
			.n_allowed = peers[i].n_allowed,
			.keepalive = NM_NODE_KEEPALIVE,
			.kind = "node",
			.name = peers[i].name,
		};
	}
	return k;
}

/* A gateway's external peers: in every wanted list, so no reconciliation
 * removes one. */
static size_t nm_want_exts(const struct nm *nm, struct nm_want *want)
{
	for (size_t i = 0; i < nm->n_exts; i++)
		want[i] = (struct nm_want){
			.key = nm->exts[i].key,
			.endpoint = "",
			.allowed = nm->exts[i].addrs,
			.n_allowed = nm->exts[i].n_addrs,
			.kind = "external",
			.name = nm->exts[i].name,
			.external = true,
		};
	return nm->n_exts;
}

int nm_iface_reconcile_peers(struct nm *nm, const struct nm_peer *peers, size_t n,
			     bool remove_unknown, struct nm_plan *plan)
{
	struct nm_want *want;
	size_t k = 0, changed = 0;
	int ret;

	want = calloc(nm->n_allocs + n + nm->n_exts + 1, sizeof(*want));
	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < nm->n_allocs; i++) {
		const struct nm_alloc *a = &nm->allocs[i];

		if (!a->has_key)
			continue;
		want[k++] = (struct nm_want){
			.key = a->public_key,
			.endpoint = a->endpoint,
			.allowed = a->addrs,
			.n_allowed = a->n_addrs,
			.kind = "container",
			.name = a->container_id,
		};
	}
	k += nm_want_nodes(nm, peers, n, want + k);
	k += nm_want_exts(nm, want + k);
	ret = nm_iface_apply(nm, want, k,
			     remove_unknown ? NM_REMOVE_NON_CONTAINER : NM_REMOVE_CONTAINER_LIKE,
			     &changed, plan);
	free(want);
	if (ret == 0 && !(plan && plan->dry) && (changed || !plan))
		log_info("peers reconciled", "interface=%s changed=%zu", nm->cfg.ifname,
			 changed);
	return ret;
}

int nm_iface_reconcile(struct nm *nm)
{
	return nm_iface_reconcile_peers(nm, nm->peers, nm->n_peers, false, NULL);
}

int nm_iface_apply_node_peers(struct nm *nm, const struct nm_peer *peers, size_t n,
			      size_t *changed)
{
	struct nm_want *want;
	size_t k;
	int ret;

	want = calloc(n + nm->n_exts + 1, sizeof(*want));
	if (!want)
		return -ENOMEM;
	k = nm_want_nodes(nm, peers, n, want);
	k += nm_want_exts(nm, want + k);
	ret = nm_iface_apply(nm, want, k, NM_REMOVE_NON_CONTAINER, changed, NULL);
	free(want);
	return ret;
}

int nm_iface_container_peer(struct nm *nm, const struct nm_alloc *a,
			    const uint8_t *new_key, const char *new_endpoint,
			    const uint8_t *old_key)
{
	struct wg_peer peers[2];
	struct wg_device d = { .peers = peers };
	char err[256];
	int ret;

	memset(peers, 0, sizeof(peers));
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	if (old_key && memcmp(old_key, new_key, WG_KEY_LEN))
		nm_set_remove(&d, old_key);
	memcpy(peers[d.n_peers].public_key, new_key, WG_KEY_LEN);
	peers[d.n_peers].flags = WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_KEEPALIVE;
	if (nm_psk(nm, new_key, peers[d.n_peers].preshared_key))
		peers[d.n_peers].flags |= WGPEER_HAS_PRESHARED_KEY;
	ret = wg_peer_set_endpoint(&peers[d.n_peers], new_endpoint, err, sizeof(err));
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < a->n_addrs; i++) {
		ret = wg_peer_add_allowedip(&peers[d.n_peers], &a->addrs[i]);
		if (ret < 0)
			goto out;
	}
	d.n_peers++;
	ret = wg_set(&d);
	if (ret < 0)
		log_error("adding container peer failed", "container=%s ifname=%s err=%s",
			  a->container_id, a->ifname, strerror(-ret));
out:
	for (size_t i = 0; i < 2; i++)
		wg_peer_clear(&peers[i]);
	return ret;
}

int nm_iface_peer_remove(struct nm *nm, const uint8_t key[static WG_KEY_LEN])
{
	struct wg_peer peer = { 0 };
	struct wg_device d = { .peers = &peer };
	int ret;

	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	nm_set_remove(&d, key);
	ret = wg_set(&d);
	if (ret < 0)
		log_error("removing peer failed", "interface=%s err=%s", nm->cfg.ifname,
			  strerror(-ret));
	return ret;
}

/* A plan line; in a dry plan that is all, else the caller acts on it. */
static bool nm_plan_step(struct nm_plan *plan, int *ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool nm_plan_step(struct nm_plan *plan, int *ret, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	*ret = 0;
	if (!plan)
		return true;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	*ret = nm_plan_add(plan, "%s", line);
	return *ret == 0 && !plan->dry;
}

static int nm_iface_routes(struct nm *nm, struct nm_plan *plan)
{
	char buf[IPNET_STRLEN];
	int ret;

	for (size_t i = 0; i < nm->n_cidrs; i++) {
		ret = plan && plan->absent ? 0 : netdev_route_exists(&nm->cidrs[i], nm->cfg.ifname);
		if (ret > 0)
			continue;
		if (ret < 0 ||
		    !nm_plan_step(plan, &ret, "route add %s dev %s", ipnet_format(&nm->cidrs[i], buf),
				  nm->cfg.ifname)) {
			if (ret < 0)
				return ret;
			continue;
		}
		ret = netdev_route_add(&nm->cidrs[i], nm->cfg.ifname, NULL);
		if (ret < 0) {
			log_error("adding cluster route failed", "cidr=%s interface=%s err=%s",
				  ipnet_format(&nm->cidrs[i], buf), nm->cfg.ifname, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int nm_iface_add_routes(struct nm *nm)
{
	return nm_iface_routes(nm, NULL);
}

/* Private key and listen port, only when they differ. */
static int nm_iface_configure(struct nm *nm, struct nm_plan *plan)
{
	struct wg_device *dev = NULL;
	struct wg_device d = { 0 };
	int ret;

	if (plan && plan->absent) {
		nm_plan_step(plan, &ret, "interface %s: set private key (public key %s), listen port %u",
			     nm->cfg.ifname, nm->public_b64, nm->cfg.listen_port);
		return ret;
	}
	ret = wg_get(nm->cfg.ifname, &dev);
	if (ret < 0)
		return ret;
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	if (memcmp(dev->private_key, nm->private_key, WG_KEY_LEN)) {
		d.flags |= WGDEVICE_HAS_PRIVATE_KEY;
		memcpy(d.private_key, nm->private_key, WG_KEY_LEN);
		if (!nm_plan_step(plan, &ret, "interface %s: set private key (public key %s)",
				  nm->cfg.ifname, nm->public_b64))
			d.flags &= ~WGDEVICE_HAS_PRIVATE_KEY;
	}
	if (ret == 0 && dev->listen_port != nm->cfg.listen_port) {
		d.flags |= WGDEVICE_HAS_LISTEN_PORT;
		d.listen_port = nm->cfg.listen_port;
		if (!nm_plan_step(plan, &ret, "interface %s: set listen port %u (now %u)",
				  nm->cfg.ifname, nm->cfg.listen_port, dev->listen_port))
			d.flags &= ~WGDEVICE_HAS_LISTEN_PORT;
	}
	if (ret == 0 && d.flags)
		ret = wg_set(&d);
	key_wipe(d.private_key, sizeof(d.private_key));
	wg_device_free(dev);
	return ret;
}

static int nm_iface_addresses(struct nm *nm, struct nm_plan *plan)
{
	struct ipnet *have = NULL;
	size_t n_have = 0;
	char buf[IPNET_STRLEN];
	int ret = 0;

	if (!(plan && plan->absent))
		ret = netdev_addr_list(nm->cfg.ifname, &have, &n_have);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < nm->n_subnets; i++) {
		struct ipnet want = { .prefixlen = nm->subnets[i].prefixlen };

		ret = ipnet_first_host(&nm->subnets[i], &want.addr);
		if (ret < 0)
			goto out;
		if (ipnet_set_contains(have, n_have, &want))
			continue;
		if (!nm_plan_step(plan, &ret, "address add %s dev %s", ipnet_format(&want, buf),
				  nm->cfg.ifname)) {
			if (ret < 0)
				goto out;
			continue;
		}
		ret = netdev_addr_add(nm->cfg.ifname, &want);
		if (ret == -EEXIST)
			ret = 0;
		if (ret < 0) {
			log_error("adding interface address failed", "address=%s interface=%s",
				  ipnet_format(&want, buf), nm->cfg.ifname);
			goto out;
		}
	}
out:
	free(have);
	return ret;
}

/* 1 when forwarding is on for family, 0 off, negative errno. */
static int nm_forwarding_on(int family)
{
	const char *path = family == AF_INET ? "/proc/sys/net/ipv4/ip_forward"
					     : "/proc/sys/net/ipv6/conf/all/forwarding";
	char c = '0';
	FILE *f = fopen(path, "re");
	int ret;

	if (!f)
		return -errno;
	ret = fread(&c, 1, 1, f) == 1 ? c != '0' : -EIO;
	fclose(f);
	return ret;
}

static int nm_iface_link(struct nm *nm, struct nm_plan *plan)
{
	const struct nm_config *cfg = &nm->cfg;
	struct netdev_info info = { .mtu = 0, .up = false };
	int ret = 0;

	if (!(plan && plan->absent))
		ret = netdev_get(cfg->ifname, &info);
	if (ret < 0)
		return ret;
	if (info.mtu != cfg->mtu &&
	    nm_plan_step(plan, &ret, "interface %s: set mtu %u", cfg->ifname, cfg->mtu))
		ret = netdev_set_mtu(cfg->ifname, cfg->mtu);
	if (ret == 0 && !info.up &&
	    nm_plan_step(plan, &ret, "interface %s: set up", cfg->ifname))
		ret = netdev_set_up(cfg->ifname, true);
	return ret;
}

static int nm_iface_forwarding(struct nm *nm, struct nm_plan *plan)
{
	int ret = 0;

	for (size_t i = 0; ret == 0 && i < nm->n_subnets; i++) {
		int af = nm->subnets[i].addr.family;

		ret = nm_forwarding_on(af);
		if (ret == 0 && nm_plan_step(plan, &ret, "sysctl: enable %s forwarding",
					     af == AF_INET ? "IPv4" : "IPv6"))
			ret = netdev_enable_forwarding(af);
		else if (ret > 0)
			ret = 0;
	}
	return ret;
}

static int nm_iface_firewall(struct nm *nm, struct nm_plan *plan)
{
	const struct fw_config fwc = {
		.ifname = nm->cfg.ifname,
		.node_subnets = nm->subnets,
		.n_node_subnets = nm->n_subnets,
		.cluster_cidrs = nm->cidrs,
		.n_cluster_cidrs = nm->n_cidrs,
		.masquerade = nm->cfg.masquerade,
	};
	char what[256] = "";
	int ret;

	ret = fw_check(&fwc, what, sizeof(what));
	if (ret <= 0)
		return ret;
	if (nm_plan_step(plan, &ret, "firewall: %s", what))
		ret = fw_install(&fwc);
	return ret;
}

int nm_iface_setup(struct nm *nm, struct nm_plan *plan)
{
	const struct nm_config *cfg = &nm->cfg;
	const char *step;
	int ret;

	ret = wg_backend_of(cfg->ifname);
	if (ret >= 0) {
		nm->backend = (enum wg_backend)ret;
		if (!nm->iface_ready && (!plan || !plan->dry))
			log_info("adopting existing interface", "interface=%s backend=%s",
				 cfg->ifname, wg_backend_name(nm->backend));
	} else {
		nm->backend = wg_backend_resolve(cfg->backend);
		step = "create";
		if (nm_plan_step(plan, &ret, "interface %s: create (backend %s)", cfg->ifname,
				 wg_backend_name(nm->backend)))
			ret = wg_create(cfg->ifname, nm->backend, cfg->impl);
		if (ret < 0)
			goto err;
		if (plan && plan->dry)
			plan->absent = true;
		else
			log_info("interface created", "interface=%s backend=%s", cfg->ifname,
				 wg_backend_name(nm->backend));
	}
	step = "configure key and port";
	ret = nm_iface_configure(nm, plan);
	if (ret < 0)
		goto err;
	step = "add address";
	ret = nm_iface_addresses(nm, plan);
	if (ret < 0)
		goto err;
	step = "set mtu and up";
	ret = nm_iface_link(nm, plan);
	if (ret < 0)
		goto err;
	/* Up, so a userspace device holds its UDP sockets now. */
	if (!plan || !plan->dry) {
		static bool warned; /* once: setup runs again on every repair */

		ret = wg_socket_buffers(cfg->ifname, WG_SOCKET_BUFFER);
		if (ret < 0 && !warned && (warned = true))
			log_warnx("cannot size the interface's UDP socket buffers",
				  "interface=%s err=%s", cfg->ifname, strerror(-ret));
	}
	step = "add routes";
	ret = nm_iface_routes(nm, plan);
	if (ret < 0)
		goto err;
	step = "enable forwarding";
	ret = nm_iface_forwarding(nm, plan);
	if (ret < 0)
		goto err;
	step = "install firewall";
	ret = nm_iface_firewall(nm, plan);
	if (ret < 0)
		goto err;
	if (!plan || !plan->dry)
		nm->iface_ready = true;
	return 0;

err:
	log_error("setting up the node interface failed", "interface=%s step=%s err=%s",
		  cfg->ifname, step, strerror(-ret));
	return ret;
}

int nm_iface_ensure(struct nm *nm)
{
	int ret;

	if (!nm->iface_ready || wg_backend_of(nm->cfg.ifname) >= 0)
		return 0;
	/* Deleted by someone, or its userspace process died: nothing flows
	 * until it is back, so recreate it with everything it carried. */
	log_warnx("node interface vanished; recreating it", "interface=%s", nm->cfg.ifname);
	nm->iface_ready = false;
	ret = nm_iface_setup(nm, NULL);
	if (ret == 0)
		ret = nm_iface_reconcile(nm);
	return ret;
}

int nm_iface_repair(struct nm *nm)
{
	struct nm_plan plan = { .dry = false };
	int ret;

	if (!nm->iface_ready)
		return 0;
	ret = nm_iface_ensure(nm);
	if (ret == 0)
		ret = nm_iface_setup(nm, &plan);
	/* Node peers the cluster no longer lists are the sync's to remove:
	 * here only what the state holds goes back. */
	if (ret == 0)
		ret = nm_iface_reconcile_peers(nm, nm->peers, nm->n_peers, false, &plan);
	if (ret == 0)
		ret = nm_routes_sync(nm, true);
	for (size_t i = 0; i < plan.n; i++)
		log_warnx("drift repaired", "interface=%s change=%s", nm->cfg.ifname,
			  plan.lines[i]);
	nm->repairs += plan.n;
	nm_plan_free(&plan);
	return ret;
}

int nm_iface_cleanup(const struct nm_config *cfg, const struct ipnet *cidrs, size_t n_cidrs)
{
	int ret, first = 0;

	if (netdev_exists(cfg->ifname))
		for (size_t i = 0; i < n_cidrs; i++)
			netdev_route_del(&cidrs[i], cfg->ifname);
	ret = wg_delete(cfg->ifname);
	if (ret < 0 && ret != -ENODEV) {
		log_error("deleting interface failed", "interface=%s err=%s", cfg->ifname,
			  strerror(-ret));
		first = ret;
	} else if (ret == 0) {
		log_info("interface deleted", "interface=%s", cfg->ifname);
	}
	ret = fw_remove();
	if (ret < 0) {
		log_error("removing firewall chains failed", "err=%s", strerror(-ret));
		first = first ? first : ret;
	}
	if (unlink(cfg->socket_path) < 0 && errno != ENOENT) {
		log_warn("removing socket failed", "path=%s", cfg->socket_path);
		first = first ? first : -errno;
	}
	return first;
}

/*
 * "containerMesh": the containers of one node peer with each other
 * directly, so traffic between them crosses one tunnel (container to
 * container) instead of two (container to node, node to container).
 *
 * No route changes: a container routes everything through its interface,
 * and WireGuard picks the peer by the longest AllowedIPs prefix, so the
 * neighbour's /32 (/128) peer wins over the node peer's 0.0.0.0/0 (::/0).
 * The packets leave the container's UDP socket on the host and go straight
 * to the neighbour's (its registered endpoint, 127.0.0.1:port); the node
 * interface, its forwarding and its firewall chains never see them.
 *
 * Preshared keys: a container-to-container peering gets one derived by the
 * rule of every other peering (key.c: BLAKE2b-256 keyed with the
 * --preshared-key-file secret over the two public keys, sorted), from the
 * two container keys. Both ends are configured here, so nothing but
 * consistency asks for the rule; with it one rule explains every
 * preshared key `wg show' lists on this node.
 *
 * Incremental: a join costs one wg_set on each other mesh container's
 * interface and one on the new one's; a leave one on each other. The repair
 * (nm_mesh_repair) is the only reader of container interfaces. A container
 * interface that is gone (its namespace or link deleted, the allocation not
 * yet released) has nothing to update and counts as done.
 */
#include "nm.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool nm_mesh_member(const struct nm_alloc *a)
{
	return a->mesh && a->has_key;
}

/* The interface went away with its container: nothing to change there. */
static bool nm_mesh_gone(int ret)
{
	return ret == -ENODEV || ret == -ENOENT;
}

/* y as a peer of self's interface, into p (zeroed; the caller clears it). */
static int nm_mesh_peer(const struct nm *nm, const struct nm_alloc *self,
			const struct nm_alloc *y, struct wg_peer *p)
{
	char err[128];
	int ret;

	memcpy(p->public_key, y->public_key, WG_KEY_LEN);
	/* Always sent, all zero without a secret: a stale key is cleared. */
	p->flags = WGPEER_REPLACE_ALLOWEDIPS | WGPEER_HAS_PRESHARED_KEY;
	if (nm->has_psk) {
		ret = key_psk_derive(p->preshared_key, nm->psk_secret, self->public_key,
				     y->public_key);
		if (ret < 0)
			return ret;
	}
	ret = wg_peer_set_endpoint(p, y->endpoint, err, sizeof(err));
	if (ret < 0) {
		log_warnx("stored container endpoint is invalid", "container=%s ifname=%s"
			  " endpoint=%s err=%s", y->container_id, y->ifname, y->endpoint, err);
		return ret;
	}
	for (size_t i = 0; i < y->n_addrs; i++) {
		ret = wg_peer_add_allowedip(p, &y->addrs[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int nm_mesh_set_fn(const char *dev, void *arg)
{
	struct wg_device *d = arg;

	snprintf(d->name, sizeof(d->name), "%s", dev);
	return wg_set(d);
}

static void nm_mesh_peers_free(struct wg_peer *peers, size_t n)
{
	for (size_t i = 0; peers && i < n; i++)
		wg_peer_clear(&peers[i]);
	free(peers);
}

void nm_mesh_join(struct nm *nm, const struct nm_alloc *a)
{
	struct wg_device own = { 0 };
	size_t failed = 0, gone = 0;
	int ret;

	if (!nm_mesh_member(a))
		return;
	own.peers = calloc(nm->n_allocs + 1, sizeof(*own.peers));
	if (!own.peers) {
		log_warnx("joining the container mesh failed", "container=%s ifname=%s err=%s",
			  a->container_id, a->ifname, strerror(ENOMEM));
		nm->mesh_dirty = true;
		return;
	}
	/* a goes onto y first, and y onto a only where that worked: a peer
	 * known at one end only would drop what the other sends it. */
	for (size_t i = 0; i < nm->n_allocs; i++) {
		const struct nm_alloc *y = &nm->allocs[i];
		struct wg_peer p = { 0 };
		struct wg_device d = { .peers = &p, .n_peers = 1 };

		if (y == a || !nm_mesh_member(y))
			continue;
		ret = nm_mesh_peer(nm, y, a, &p);
		if (ret == 0)
			ret = nm_container_do(y, nm_mesh_set_fn, &d);
		wg_peer_clear(&p);
		if (ret == 0)
			ret = nm_mesh_peer(nm, a, y, &own.peers[own.n_peers]);
		if (ret == 0) {
			own.n_peers++;
			continue;
		}
		wg_peer_clear(&own.peers[own.n_peers]);
		if (nm_mesh_gone(ret)) {
			gone++;
			continue;
		}
		failed++;
		log_warnx("mesh peer not added", "container=%s ifname=%s peer_container=%s"
			  " peer_ifname=%s err=%s", a->container_id, a->ifname, y->container_id,
			  y->ifname, strerror(-ret));
	}
	ret = own.n_peers ? nm_container_do(a, nm_mesh_set_fn, &own) : 0;
	if (ret < 0) {
		failed++;
		log_warnx("mesh peers not added to the new container", "container=%s ifname=%s"
			  " peers=%zu err=%s", a->container_id, a->ifname, own.n_peers,
			  strerror(-ret));
	}
	if (failed)
		nm->mesh_dirty = true;
	log_info("container joined the mesh", "container=%s ifname=%s peers=%zu gone=%zu"
		 " failed=%zu", a->container_id, a->ifname, own.n_peers, gone, failed);
	nm_mesh_peers_free(own.peers, own.n_peers);
}

void nm_mesh_leave(struct nm *nm, const struct nm_alloc *a, const uint8_t key[static WG_KEY_LEN])
{
	struct wg_peer p = { .flags = WGPEER_REMOVE_ME };
	struct wg_device d = { .peers = &p, .n_peers = 1 };
	size_t done = 0, failed = 0;

	memcpy(p.public_key, key, WG_KEY_LEN);
	for (size_t i = 0; i < nm->n_allocs; i++) {
		const struct nm_alloc *y = &nm->allocs[i];
		int ret;

		if (y == a || !nm_mesh_member(y))
			continue;
		ret = nm_container_do(y, nm_mesh_set_fn, &d);
		if (ret == 0 || nm_mesh_gone(ret)) {
			done++;
			continue;
		}
		failed++;
		log_warnx("mesh peer not removed", "container=%s ifname=%s peer_container=%s"
			  " peer_ifname=%s err=%s", a->container_id, a->ifname, y->container_id,
			  y->ifname, strerror(-ret));
	}
	if (failed)
		nm->mesh_dirty = true;
	log_info("container left the mesh", "container=%s ifname=%s peers=%zu failed=%zu",
		 a->container_id, a->ifname, done, failed);
}

/* --- repair ------------------------------------------------------------------ */

struct nm_mesh_repair {
	struct nm *nm;
	const struct nm_alloc *self;
	const struct nm_alloc **members; /* sorted by key */
	size_t n_members;
	size_t added, updated, removed;
};

static int nm_mesh_member_cmp(const void *a, const void *b)
{
	return memcmp((*(const struct nm_alloc *const *)a)->public_key,
		      (*(const struct nm_alloc *const *)b)->public_key, WG_KEY_LEN);
}

static int nm_mesh_key_member_cmp(const void *key, const void *m)
{
	return memcmp(key, (*(const struct nm_alloc *const *)m)->public_key, WG_KEY_LEN);
}

static int nm_mesh_peer_cmp(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key,
		      ((const struct wg_peer *)b)->public_key, WG_KEY_LEN);
}

static int nm_mesh_key_peer_cmp(const void *key, const void *p)
{
	return memcmp(key, ((const struct wg_peer *)p)->public_key, WG_KEY_LEN);
}

static bool nm_mesh_default_route(const struct wg_peer *p)
{
	for (size_t i = 0; i < p->n_allowedips; i++)
		if (p->allowedips[i].prefixlen == 0)
			return true;
	return false;
}

/* One container interface (dev) to: the node peer (left alone, as a peer
 * with a default route is: a node key rotation's business) plus one peer
 * per other member. Both lists sorted: n log n per interface. */
static int nm_mesh_repair_fn(const char *dev, void *arg)
{
	struct nm_mesh_repair *r = arg;
	struct wg_device *cur = NULL;
	struct wg_device d = { 0 };
	int ret;

	ret = wg_get(dev, &cur);
	if (ret < 0)
		return ret;
	if (cur->n_peers > 1)
		qsort(cur->peers, cur->n_peers, sizeof(*cur->peers), nm_mesh_peer_cmp);
	d.peers = calloc(cur->n_peers + r->n_members + 1, sizeof(*d.peers));
	if (!d.peers) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cur->n_peers; i++) {
		const struct wg_peer *p = &cur->peers[i];
		const struct nm_alloc *const *m;

		if (!memcmp(p->public_key, r->nm->public_key, WG_KEY_LEN) ||
		    nm_mesh_default_route(p))
			continue;
		m = bsearch(p->public_key, r->members, r->n_members, sizeof(*r->members),
			    nm_mesh_key_member_cmp);
		if (m && *m != r->self)
			continue;
		memcpy(d.peers[d.n_peers].public_key, p->public_key, WG_KEY_LEN);
		d.peers[d.n_peers++].flags = WGPEER_REMOVE_ME;
		r->removed++;
	}
	for (size_t i = 0; i < r->n_members; i++) {
		const struct nm_alloc *y = r->members[i];
		struct wg_peer *want = &d.peers[d.n_peers];
		const struct wg_peer *have;

		if (y == r->self)
			continue;
		ret = nm_mesh_peer(r->nm, r->self, y, want);
		if (ret < 0)
			goto out;
		have = bsearch(y->public_key, cur->peers, cur->n_peers, sizeof(*cur->peers),
			       nm_mesh_key_peer_cmp);
		if (have && nm_sockaddr_equal(have, want) &&
		    nm_psk_equal(have, want->preshared_key) &&
		    ipnet_set_equal(have->allowedips, have->n_allowedips, want->allowedips,
				    want->n_allowedips)) {
			wg_peer_clear(want);
			continue;
		}
		d.n_peers++;
		if (have)
			r->updated++;
		else
			r->added++;
	}
	if (d.n_peers) {
		snprintf(d.name, sizeof(d.name), "%s", dev);
		ret = wg_set(&d);
	}
out:
	/* The one built when nm_mesh_peer failed is past n_peers. */
	if (d.peers)
		wg_peer_clear(&d.peers[d.n_peers]);
	nm_mesh_peers_free(d.peers, d.n_peers);
	wg_device_free(cur);
	return ret;
}

int nm_mesh_repair(struct nm *nm)
{
	struct nm_mesh_repair r = { .nm = nm };
	bool full = nm->mesh_passes++ % NM_MESH_FULL_PASSES == 0;
	int ret = 0;

	if (!full && !nm->mesh_dirty)
		return 0;
	r.members = calloc(nm->n_allocs + 1, sizeof(*r.members));
	if (!r.members)
		return -ENOMEM;
	for (size_t i = 0; i < nm->n_allocs; i++)
		if (nm_mesh_member(&nm->allocs[i]))
			r.members[r.n_members++] = &nm->allocs[i];
	if (r.n_members > 1)
		qsort(r.members, r.n_members, sizeof(*r.members), nm_mesh_member_cmp);
	nm->mesh_dirty = false;
	for (size_t i = 0; i < r.n_members; i++) {
		const struct nm_alloc *x = r.members[i];
		int one;

		r.self = x;
		r.added = r.updated = r.removed = 0;
		one = nm_container_do(x, nm_mesh_repair_fn, &r);
		if (one < 0 && !nm_mesh_gone(one)) {
			log_warnx("mesh repair failed", "container=%s ifname=%s err=%s",
				  x->container_id, x->ifname, strerror(-one));
			nm->mesh_dirty = true;
			if (ret == 0)
				ret = one;
		}
		if (one < 0 || !(r.added + r.updated + r.removed))
			continue;
		log_warnx("mesh drift repaired", "container=%s ifname=%s added=%zu updated=%zu"
			  " removed=%zu", x->container_id, x->ifname, r.added, r.updated, r.removed);
		nm->repairs += r.added + r.updated + r.removed;
	}
	free(r.members);
	return ret;
}

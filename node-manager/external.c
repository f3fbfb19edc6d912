/*
 * External peers on a gateway (--gateway), and the routes to every node's
 * external addresses.
 *
 * A gateway learns its external peers from ListExternalPeers (those whose
 * gateway is this node) whenever its own entry in the peer set changed (its
 * allowedIps carry their addresses) and on every full answer. They become
 * WireGuard peers with AllowedIPs their addresses and no endpoint (they dial
 * in). Only a successful ListExternalPeers that no longer lists one removes
 * it: a failed call changes nothing, and no reconciliation of node or
 * container peers touches them (they are in every wanted list).
 *
 * Routes: a node peer's allowedIps outside the cluster CIDRs (the external
 * addresses its gateway serves) and, on a gateway, its external peers'
 * addresses are routed into the node interface, one route each, added and
 * removed as they come and go.
 */
#include "nm.h"

#include "log.h"
#include "netdev.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_EXT_CALL_TIMEOUT_MS 5000L

static const char nm_path_list_external[] =
	"/wgcni.cluster.v1.ClusterService/ListExternalPeers";

static int nm_ext_cmp(const void *a, const void *b)
{
	return memcmp(((const struct nm_ext *)a)->key, ((const struct nm_ext *)b)->key,
		      WG_KEY_LEN);
}

const struct nm_ext *nm_ext_find(const struct nm *nm, const uint8_t key[static WG_KEY_LEN])
{
	struct nm_ext probe;

	if (!nm->n_exts)
		return NULL;
	memcpy(probe.key, key, WG_KEY_LEN);
	return bsearch(&probe, nm->exts, nm->n_exts, sizeof(*nm->exts), nm_ext_cmp);
}

void nm_exts_free(struct nm_ext *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

/* "10.200.0.1/32,fd20::1/128" into e->addrs: host routes only. */
static int nm_ext_addrs(struct nm_ext *e, const char *s)
{
	char buf[NM_MAX_FAMILIES * IPNET_STRLEN + 2], *save = NULL, *tok;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct ipnet *a = &e->addrs[e->n_addrs];

		if (e->n_addrs == NM_MAX_FAMILIES || ipnet_parse(tok, a, true) < 0 ||
		    a->prefixlen != ipaddr_bits(&a->addr))
			return -EINVAL;
		e->n_addrs++;
	}
	return e->n_addrs ? 0 : -EINVAL;
}

/* The answer's external peers served by this node, sorted by key. */
static int nm_ext_from(const struct nm *nm, const Wgcni__Cluster__V1__ListExternalPeersResponse *r,
		       struct nm_ext **out, size_t *n_out)
{
	struct nm_ext *v = calloc(r->n_external_peers + 1, sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_external_peers; i++) {
		const Wgcni__Cluster__V1__ExternalPeer *x = r->external_peers[i];
		struct nm_ext *e = &v[n];

		if (!x->gateway || !x->gateway->name || strcmp(x->gateway->name, nm->cfg.node_name))
			continue;
		if (key_from_base64(e->key, x->public_key, NULL, 0) < 0 ||
		    nm_ext_addrs(e, x->address) < 0) {
			log_warnx("invalid external peer skipped", "name=%s", x->name ? x->name : "");
			memset(e, 0, sizeof(*e));
			continue;
		}
		if (!memcmp(e->key, nm->public_key, WG_KEY_LEN) ||
		    nm_state_find_key((struct nm *)nm, e->key)) {
			log_warnx("external peer with a node's or container's key skipped", "name=%s",
				  x->name ? x->name : "");
			memset(e, 0, sizeof(*e));
			continue;
		}
		e->name = strdup(x->name ? x->name : "");
		if (!e->name) {
			nm_exts_free(v, n);
			return -ENOMEM;
		}
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), nm_ext_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* Onto the interface: the new ones set, the ones gone removed; nothing
 * else touched. Called with nm->lock held; takes v. */
static int nm_ext_apply(struct nm *nm, struct nm_ext *v, size_t n)
{
	struct wg_device d = { 0 };
	size_t added = 0, removed = 0;
	int ret = -ENOMEM;

	d.peers = calloc(n + nm->n_exts + 1, sizeof(*d.peers));
	if (!d.peers)
		goto out;
	snprintf(d.name, sizeof(d.name), "%s", nm->cfg.ifname);
	for (size_t i = 0; i < nm->n_exts; i++) {
		struct nm_ext probe;

		memcpy(probe.key, nm->exts[i].key, WG_KEY_LEN);
		if (n && bsearch(&probe, v, n, sizeof(*v), nm_ext_cmp))
			continue;
		memcpy(d.peers[d.n_peers].public_key, nm->exts[i].key, WG_KEY_LEN);
		d.peers[d.n_peers++].flags = WGPEER_REMOVE_ME;
		log_info("external peer removed", "name=%s", nm->exts[i].name);
		removed++;
	}
	for (size_t i = 0; i < n; i++) {
		const struct nm_ext *old = nm_ext_find(nm, v[i].key);
		struct wg_peer *p = &d.peers[d.n_peers];

		if (old && ipnet_set_equal(old->addrs, old->n_addrs, v[i].addrs, v[i].n_addrs))
			continue;
		memcpy(p->public_key, v[i].key, WG_KEY_LEN);
		p->flags = WGPEER_REPLACE_ALLOWEDIPS;
		for (size_t j = 0; j < v[i].n_addrs; j++) {
			ret = wg_peer_add_allowedip(p, &v[i].addrs[j]);
			if (ret < 0)
				goto out;
		}
		d.n_peers++;
		log_info("external peer set", "name=%s", v[i].name);
		added++;
	}
	ret = 0;
	if (d.n_peers && nm->iface_ready)
		ret = wg_set(&d);
	if (ret < 0) {
		log_error("configuring external peers failed", "interface=%s err=%s",
			  nm->cfg.ifname, strerror(-ret));
		goto out;
	}
	nm_exts_free(nm->exts, nm->n_exts);
	nm->exts = v;
	nm->n_exts = n;
	v = NULL;
	if (added || removed)
		log_info("external peers synced", "peers=%zu added=%zu removed=%zu", nm->n_exts,
			 added, removed);
out:
	nm_exts_free(v, n);
	for (size_t i = 0; i < d.n_peers; i++)
		wg_peer_clear(&d.peers[i]);
	free(d.peers);
	return ret;
}

int nm_ext_fetch(struct nm *nm, struct rpc_client *rpc)
{
	Wgcni__Cluster__V1__ListExternalPeersRequest req =
		WGCNI__CLUSTER__V1__LIST_EXTERNAL_PEERS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err = { 0 };
	struct nm_ext *v = NULL;
	size_t n = 0;
	int ret;

	ret = rpc_call(rpc, nm_path_list_external, &req.base,
		       &wgcni__cluster__v1__list_external_peers_response__descriptor, &resp,
		       NM_EXT_CALL_TIMEOUT_MS, &err);
	if (ret < 0) {
		log_warnx("ListExternalPeers failed", "err=%s code=%s message=%s",
			  strerror(-ret), connect_code_name(err.code), err.message);
		return ret;
	}
	pthread_mutex_lock(&nm->lock);
	ret = nm_ext_from(nm, (const Wgcni__Cluster__V1__ListExternalPeersResponse *)resp, &v,
			  &n);
	if (ret == 0)
		ret = nm_ext_apply(nm, v, n); /* takes v */
	pthread_mutex_unlock(&nm->lock);
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

/* --- routes ----------------------------------------------------------------- */

static bool nm_in_cluster(const struct nm *nm, const struct ipnet *a)
{
	for (size_t i = 0; i < nm->n_cidrs; i++)
		if (ipnet_contains_net(&nm->cidrs[i], a))
			return true;
	for (size_t i = 0; i < nm->n_subnets; i++)
		if (ipnet_contains_net(&nm->subnets[i], a))
			return true;
	return false;
}

static int nm_net_cmp(const void *a, const void *b)
{
	const struct ipnet *x = a, *y = b;
	int c = ipaddr_cmp(&x->addr, &y->addr);

	return c ? c : (int)x->prefixlen - (int)y->prefixlen;
}

static bool nm_net_in(const struct ipnet *v, size_t n, const struct ipnet *a)
{
	return n && bsearch(a, v, n, sizeof(*v), nm_net_cmp);
}

int nm_routes_sync(struct nm *nm, bool verify)
{
	struct ipnet *want;
	size_t n = 0, cap = 0;
	char buf[IPNET_STRLEN];
	int ret = 0;

	if (!nm->iface_ready)
		return 0;
	for (size_t i = 0; i < nm->n_peers; i++)
		cap += nm->peers[i].n_allowed;
	for (size_t i = 0; i < nm->n_exts; i++)
		cap += nm->exts[i].n_addrs;
	want = calloc(cap + 1, sizeof(*want));
	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < nm->n_peers; i++)
		for (size_t j = 0; j < nm->peers[i].n_allowed; j++)
			if (!nm_in_cluster(nm, &nm->peers[i].allowed[j]))
				want[n++] = nm->peers[i].allowed[j];
	for (size_t i = 0; i < nm->n_exts; i++)
		for (size_t j = 0; j < nm->exts[i].n_addrs; j++)
			want[n++] = nm->exts[i].addrs[j];
	if (n > 1)
		qsort(want, n, sizeof(*want), nm_net_cmp);
	for (size_t i = 0; i < nm->n_xroutes; i++) {
		if (nm_net_in(want, n, &nm->xroutes[i]))
			continue;
		ret = netdev_route_del(&nm->xroutes[i], nm->cfg.ifname);
		if (ret < 0 && ret != -ENOENT && ret != -ESRCH)
			log_warnx("removing an external route failed", "route=%s err=%s",
				  ipnet_format(&nm->xroutes[i], buf), strerror(-ret));
		else
			log_info("external route removed", "route=%s dev=%s",
				 ipnet_format(&nm->xroutes[i], buf), nm->cfg.ifname);
	}
	ret = 0;
	for (size_t i = 0; i < n; i++) {
		int r;

		if (i && !nm_net_cmp(&want[i], &want[i - 1]))
			continue;
		if (!verify && nm_net_in(nm->xroutes, nm->n_xroutes, &want[i]))
			continue;
		r = netdev_route_exists(&want[i], nm->cfg.ifname);
		if (r > 0)
			continue;
		r = netdev_route_add(&want[i], nm->cfg.ifname, NULL);
		if (r < 0 && r != -EEXIST) {
			log_warnx("adding an external route failed", "route=%s err=%s",
				  ipnet_format(&want[i], buf), strerror(-r));
			ret = r;
		} else {
			log_info("external route added", "route=%s dev=%s",
				 ipnet_format(&want[i], buf), nm->cfg.ifname);
		}
	}
	free(nm->xroutes);
	nm->xroutes = want;
	nm->n_xroutes = n;
	return ret;
}

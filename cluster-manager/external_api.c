/*
 * RegisterExternalPeer, ListExternalPeers, DeleteExternalPeer, ListLocations
 * and the wgcni_external_peers metric, on top of external.c.
 */
#include "api.h"

#include "key.h"
#include "log.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef Wgcni__Cluster__V1__ExternalPeer cm_ext_msg;
typedef Wgcni__Cluster__V1__Gateway cm_gw_msg;

#define CM_QUOTE "%.64s"

static int cm_bad_name(struct connect_call *call, const char *field, const char *s,
		       const char *why)
{
	return connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid %s \"" CM_QUOTE "%s\": %s",
			    field, s, strlen(s) > 64 ? "..." : "", why);
}

/* The ExternalPeer message for e (strings point into the state, which no
 * handler changes before this answer is serialized). */
static cm_ext_msg *cm_ext_to_msg(struct connect_call *call, struct cm_api *api,
				 struct cm_ext *e)
{
	cm_ext_msg *m = connect_call_alloc(call, sizeof(*m));
	struct cm_node *g = e->gateway[0] ? cm_state_find(api->st, e->gateway) : NULL;
	cm_gw_msg *gw;

	if (!m)
		return NULL;
	wgcni__cluster__v1__external_peer__init(m);
	m->name = e->name;
	m->public_key = e->public_key;
	m->address = e->address;
	m->location = e->location;
	if (!g)
		return m;
	gw = connect_call_alloc(call, sizeof(*gw));
	if (!gw)
		return NULL;
	wgcni__cluster__v1__gateway__init(gw);
	gw->name = g->name;
	gw->public_key = g->public_key;
	gw->endpoint = g->public_endpoint[0] ? g->public_endpoint : g->endpoint;
	gw->allowed_ips = cm_state_cidrs(api->st, &gw->n_allowed_ips);
	m->gateway = gw;
	return m;
}

int cm_register_external_peer(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__RegisterExternalPeerRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__RegisterExternalPeerResponse resp =
		WGCNI__CLUSTER__V1__REGISTER_EXTERNAL_PEER_RESPONSE__INIT;
	struct cm_api *api = ctx;
	uint8_t key[WG_KEY_LEN];
	char canon[WG_KEY_B64_LEN + 1], why[256];
	const char *bad;
	struct cm_ext *e;
	bool changed;
	int ret;

	bad = name_node_check(req->name);
	if (bad)
		return cm_bad_name(call, "name", req->name, bad);
	if (req->location[0] && (bad = name_node_check(req->location)))
		return cm_bad_name(call, "location", req->location, bad);
	if (key_from_base64(key, req->public_key, why, sizeof(why)))
		return cm_bad_name(call, "publicKey", req->public_key, why);
	if (key_is_zero(key))
		return cm_bad_name(call, "publicKey", req->public_key, "zero key");
	key_to_base64(canon, key);
	ret = cm_ext_register(api->st, req->name, canon, req->location, &e, &changed);
	switch (ret) {
	case 0:
		break;
	case -ENXIO:
		return connect_fail(call, CONNECT_FAILED_PRECONDITION,
				    "no external peers: the cluster manager has no --external-cidr");
	case -ENODEV:
		return connect_fail(call, CONNECT_FAILED_PRECONDITION,
				    "no gateway: start a node manager with --gateway");
	case -EEXIST:
		return connect_fail(call, CONNECT_ALREADY_EXISTS,
				    "publicKey \"%s\" is already used by a node or another"
				    " external peer", canon);
	case -ENOSPC:
		return connect_fail(call, CONNECT_RESOURCE_EXHAUSTED,
				    "no free address left in --external-cidr for \"%s\"",
				    req->name);
	default:
		log_warnx("state change failed", "op=register-external-peer name=%s err=%s",
			  req->name, strerror(-ret));
		return connect_fail(call, CONNECT_INTERNAL, "registering external peer \"%s\""
				    " failed: %s", req->name, strerror(-ret));
	}
	if (changed)
		cm_api_changed(api);
	resp.external_peer = cm_ext_to_msg(call, api, e);
	if (!resp.external_peer)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	return connect_reply(call, &resp.base);
}

int cm_list_external_peers(struct connect_call *call, void *ctx)
{
	Wgcni__Cluster__V1__ListExternalPeersResponse resp =
		WGCNI__CLUSTER__V1__LIST_EXTERNAL_PEERS_RESPONSE__INIT;
	struct cm_api *api = ctx;
	struct cm_ext *const *v;
	cm_ext_msg **ptrs;
	size_t n;

	v = cm_ext_list(api->st, &n);
	if (!n)
		return connect_reply(call, &resp.base);
	ptrs = connect_call_alloc(call, n * sizeof(*ptrs));
	if (!ptrs)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ptrs[i] = cm_ext_to_msg(call, api, v[i]);
		if (!ptrs[i])
			return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	}
	resp.n_external_peers = n;
	resp.external_peers = ptrs;
	return connect_reply(call, &resp.base);
}

int cm_delete_external_peer(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__DeleteExternalPeerRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__DeleteExternalPeerResponse resp =
		WGCNI__CLUSTER__V1__DELETE_EXTERNAL_PEER_RESPONSE__INIT;
	struct cm_api *api = ctx;
	const char *bad;
	int ret;

	bad = name_node_check(req->name);
	if (bad)
		return cm_bad_name(call, "name", req->name, bad);
	ret = cm_ext_delete(api->st, req->name);
	if (ret == -ENOENT)
		return connect_fail(call, CONNECT_NOT_FOUND, "external peer \"%s\" not found",
				    req->name);
	if (ret)
		return connect_fail(call, CONNECT_INTERNAL, "deleting external peer \"%s\""
				    " failed: %s", req->name, strerror(-ret));
	cm_api_changed(api);
	return connect_reply(call, &resp.base);
}

static int cm_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cm_list_locations(struct connect_call *call, void *ctx)
{
	Wgcni__Cluster__V1__ListLocationsResponse resp =
		WGCNI__CLUSTER__V1__LIST_LOCATIONS_RESPONSE__INIT;
	struct cm_api *api = ctx;
	struct cm_node *const *nodes;
	char **v;
	size_t n, k = 0;

	nodes = cm_state_nodes(api->st, &n);
	if (!n)
		return connect_reply(call, &resp.base);
	v = connect_call_alloc(call, n * sizeof(*v));
	if (!v)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (nodes[i]->gateway && nodes[i]->location[0])
			v[k++] = nodes[i]->location;
	if (k > 1)
		qsort(v, k, sizeof(*v), cm_str_cmp);
	for (size_t i = 0; i < k; i++)
		if (!resp.n_locations || strcmp(v[resp.n_locations - 1], v[i]))
			v[resp.n_locations++] = v[i];
	resp.locations = v;
	return connect_reply(call, &resp.base);
}

int cm_ext_metrics(struct cm_api *api, struct prom *p)
{
	struct cm_node *const *nodes;
	size_t n;
	int ret;

	ret = prom_family(p, "wgcni_external_peers", PROM_GAUGE,
			  "External peers, by the gateway node serving them.");
	nodes = cm_state_nodes(api->st, &n);
	for (size_t i = 0; i < n && !ret; i++)
		if (nodes[i]->gateway || nodes[i]->n_ext)
			ret = prom_sample(p, (double)nodes[i]->n_ext, "gateway", nodes[i]->name,
					  NULL);
	return ret;
}

#include "api.h"

#include "ipnet.h"
#include "key.h"
#include "log.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Wgcni__Cluster__V1__Node cm_node_msg;
typedef Wgcni__Cluster__V1__Peer cm_peer_msg;

struct cm_peer_cache {
	uint64_t revision;
	size_t n, cap;
	cm_peer_msg *msgs;        /* n entries */
	const struct cm_node **node; /* whose entry msgs[i] is */
};

/* How much of a client-supplied string an error message quotes. */
#define CM_QUOTE "%.64s"

/* The node making a long poll, looked up on every run (it may be deleted
 * while it waits) and counted as seen. NULL when unknown, the call answered
 * (404) and the handler's return value in *ret. */
struct cm_node *cm_api_caller(struct cm_api *api, struct connect_call *call, const char *name,
			      int *ret)
{
	struct cm_node *self = cm_state_find(api->st, name);

	if (!self) {
		*ret = connect_fail(call, CONNECT_NOT_FOUND,
				    "node \"%s\" not found: call AllocateSubnet first", name);
		return NULL;
	}
	cm_api_seen(api, self);
	cm_state_maybe_flush_seen(api->st, CM_SEEN_FLUSH_SECONDS);
	return self;
}

/* Validates nodeName; on failure answers the call and returns false. */
static bool cm_name_ok(struct connect_call *call, const char *name, int *ret)
{
	const char *why = name_node_check(name);

	if (!why)
		return true;
	*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid nodeName \"" CM_QUOTE
			    "%s\": %s", name, strlen(name) > 64 ? "..." : "", why);
	return false;
}

/* Waiters are woken after the commit (cm_api_after_run), once per commit. */
void cm_api_changed(struct cm_api *api)
{
	api->changed = true;
	api->generation++;
}

int cm_api_seen(struct cm_api *api, struct cm_node *node)
{
	int ret = cm_state_touch(api->st, node);

	if (ret < 0)
		log_warnx("could not bring a stale node back", "node=%s err=%s", node->name,
			  strerror(-ret));
	else if (ret > 0)
		cm_api_changed(api);
	return ret;
}

unsigned int cm_api_wait_ms(const struct cm_api *api, unsigned int wait_seconds)
{
	uint64_t ms = (uint64_t)(wait_seconds > CM_MAX_WAIT_SECONDS ? CM_MAX_WAIT_SECONDS :
				 wait_seconds) * 1000u;
	uint64_t cap = cm_state_wait_cap_ms(api->st);

	return (unsigned int)(ms < cap ? ms : cap);
}

static char *cm_rfc3339(struct connect_call *call, time_t t)
{
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return connect_call_strdup(call, "");
	return connect_call_strdup(call, buf);
}

/* The Node message for n, pointing at n's strings (serialized before any
 * change can touch them). */
static cm_node_msg *cm_node_to_msg(struct connect_call *call, struct cm_node *n,
				   cm_node_msg *msg)
{
	wgcni__cluster__v1__node__init(msg);
	msg->name = n->name;
	msg->n_subnets = n->n_subnets;
	msg->subnets = n->subnets;
	msg->public_key = n->public_key;
	msg->endpoint = n->endpoint;
	msg->address = n->address;
	msg->location = n->location;
	msg->gateway = n->gateway;
	msg->public_endpoint = n->public_endpoint;
	msg->last_seen = cm_rfc3339(call, n->last_seen);
	msg->stale = n->stale;
	return msg->last_seen ? msg : NULL;
}

enum connect_code cm_api_store_code(int err)
{
	switch (err) {
	case -EAGAIN:       /* etcd: no leader, too much contention */
	case -ETIMEDOUT:    /* no endpoint answered in time, or the fate is unknown */
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ECANCELED:    /* shutting down */
		return CONNECT_UNAVAILABLE;
	default:
		return CONNECT_INTERNAL;
	}
}

static int cm_fail_state(struct connect_call *call, const char *what, const char *name,
			 int err)
{
	log_warnx("state change failed", "op=%s node=%s err=%s", what, name,
		  strerror(-err));
	return connect_fail(call, cm_api_store_code(err), "%s for node \"%s\" failed: %s", what,
			    name, strerror(-err));
}

static int cm_allocate_subnet(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__AllocateSubnetRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__AllocateSubnetResponse resp =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_RESPONSE__INIT;
	struct cm_api *api = ctx;
	struct cm_node *node;
	uint64_t before = cm_state_revision(api->st);
	int ret;

	if (!cm_name_ok(call, req->node_name, &ret))
		return ret;
	ret = cm_state_allocate(api->st, req->node_name, &node);
	if (ret == -ENOSPC) {
		size_t n;
		char **cidrs = cm_state_cidrs(api->st, &n);

		return connect_fail(call, CONNECT_RESOURCE_EXHAUSTED,
				    "no free subnet left for node \"%s\" in %s%s%s",
				    req->node_name, n ? cidrs[0] : "", n > 1 ? " or " : "",
				    n > 1 ? cidrs[1] : "");
	}
	if (ret)
		return cm_fail_state(call, "allocating a subnet", req->node_name, ret);
	if (cm_state_revision(api->st) != before)
		cm_api_changed(api);
	resp.n_subnets = node->n_subnets;
	resp.subnets = node->subnets;
	resp.cluster_cidrs = cm_state_cidrs(api->st, &resp.n_cluster_cidrs);
	return connect_reply(call, &resp.base);
}

/* RegisterKey's location and publicEndpoint (default: the endpoint); on
 * failure answers the call and returns false. */
static bool cm_register_gateway_ok(struct connect_call *call,
				   const Wgcni__Cluster__V1__RegisterKeyRequest *req,
				   const char **pub_ep, int *ret)
{
	const char *why;
	char reason[256];
	struct endpoint ep;

	*pub_ep = req->public_endpoint[0] ? req->public_endpoint : req->endpoint;
	if (req->location[0] && (why = name_node_check(req->location))) {
		*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid location \"" CM_QUOTE "\": %s", req->location, why);
		return false;
	}
	if (strlen(*pub_ep) > CM_ENDPOINT_MAX) {
		*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid publicEndpoint: longer than %d characters",
				    CM_ENDPOINT_MAX);
		return false;
	}
	if (endpoint_parse(*pub_ep, &ep, reason, sizeof(reason))) {
		*ret = connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid publicEndpoint: %s",
				    reason);
		return false;
	}
	return true;
}

static int cm_register_key(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__RegisterKeyRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__RegisterKeyResponse resp =
		WGCNI__CLUSTER__V1__REGISTER_KEY_RESPONSE__INIT;
	struct cm_api *api = ctx;
	struct cm_node *node, *const *nodes;
	uint8_t key[WG_KEY_LEN];
	char canon[WG_KEY_B64_LEN + 1];
	struct endpoint ep;
	cm_node_msg *msg;
	const char *pub_ep;
	char why[256];
	uint64_t before;
	struct cm_reg reg;
	bool changed;
	size_t n;
	int ret;

	if (!cm_name_ok(call, req->node_name, &ret))
		return ret;
	if (key_from_base64(key, req->public_key, why, sizeof(why)))
		return connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid publicKey \"" CM_QUOTE "%s\": %s", req->public_key,
				    strlen(req->public_key) > 64 ? "..." : "", why);
	/* Stored and compared in canonical form (padding bits zero). */
	key_to_base64(canon, key);
	/* endpoint_parse's reasons quote the endpoint themselves. */
	if (endpoint_parse(req->endpoint, &ep, why, sizeof(why)))
		return connect_fail(call, CONNECT_INVALID_ARGUMENT, "invalid endpoint: %s", why);
	if (strlen(req->endpoint) > CM_ENDPOINT_MAX)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid endpoint \"" CM_QUOTE "...\": longer than %d characters",
				    req->endpoint, CM_ENDPOINT_MAX);
	node = cm_state_find(api->st, req->node_name);
	if (!node || !node->n_subnets)
		return connect_fail(call, CONNECT_FAILED_PRECONDITION,
				    "node \"%s\" has no subnet: call AllocateSubnet first",
				    req->node_name);
	/* Two nodes with one key would make WireGuard peers collide. */
	nodes = cm_state_nodes(api->st, &n);
	for (size_t i = 0; i < n; i++)
		if (nodes[i] != node && !strcmp(nodes[i]->public_key, canon))
			return connect_fail(call, CONNECT_ALREADY_EXISTS,
					    "publicKey \"%s\" is already registered by node \"%s\"",
					    canon, nodes[i]->name);
	if (!cm_register_gateway_ok(call, req, &pub_ep, &ret))
		return ret;
	before = cm_state_revision(api->st);
	reg = (struct cm_reg){ canon, req->endpoint, req->location, pub_ep, req->gateway };
	ret = cm_state_register_node(api->st, node, &reg, &changed);
	if (ret)
		return cm_fail_state(call, "registering the key", req->node_name, ret);
	if (changed || cm_state_revision(api->st) != before)
		cm_api_changed(api);
	/* etcd: the node as the watch shows it now. */
	node = cm_state_find(api->st, req->node_name);
	if (!node)
		return connect_fail(call, CONNECT_NOT_FOUND, "node \"%s\" not found",
				    req->node_name);
	cm_state_maybe_flush_seen(api->st, CM_SEEN_FLUSH_SECONDS);

	msg = connect_call_alloc(call, sizeof(*msg));
	if (!msg || !cm_node_to_msg(call, node, msg))
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	resp.node = msg;
	return connect_reply(call, &resp.base);
}

void cm_api_release(struct cm_api *api)
{
	if (!api)
		return;
	cm_watch_release(api);
	if (!api->peers)
		return;
	free(api->peers->msgs);
	free(api->peers->node);
	free(api->peers);
	api->peers = NULL;
}

/*
 * The shared peer list of the current revision. Its strings point into the
 * nodes, which only change or go away together with a revision bump, and an
 * answer is serialized inside connect_reply, before any other handler runs.
 */
static const struct cm_peer_cache *cm_peer_cache(struct cm_api *api)
{
	struct cm_peer_cache *c = api->peers;
	struct cm_node *const *nodes;
	size_t n;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
		c->revision = UINT64_MAX;
		api->peers = c;
	}
	if (c->revision == cm_state_revision(api->st))
		return c;
	nodes = cm_state_nodes(api->st, &n);
	if (n > c->cap) {
		cm_peer_msg *msgs = reallocarray(c->msgs, n, sizeof(*msgs));
		const struct cm_node **owner;

		if (!msgs)
			return NULL;
		c->msgs = msgs;
		owner = reallocarray(c->node, n, sizeof(*owner));
		if (!owner)
			return NULL;
		c->node = owner;
		c->cap = n;
	}
	c->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct cm_node *o = nodes[i];
		cm_peer_msg *p = &c->msgs[c->n];

		if (!o->public_key[0] || o->stale)
			continue;
		wgcni__cluster__v1__peer__init(p);
		p->name = o->name;
		p->public_key = o->public_key;
		p->endpoint = o->endpoint;
		p->allowed_ips = cm_node_allowed(o, &p->n_allowed_ips);
		c->node[c->n++] = o;
	}
	c->revision = cm_state_revision(api->st);
	return c;
}

static int cm_list_peers(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__ListPeersRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__ListPeersResponse resp =
		WGCNI__CLUSTER__V1__LIST_PEERS_RESPONSE__INIT;
	struct cm_api *api = ctx;
	const struct cm_peer_cache *cache;
	struct cm_node *self;
	cm_peer_msg **ptrs = NULL;
	size_t count = 0;
	int ret;

	if (!cm_name_ok(call, req->node_name, &ret))
		return ret;
	self = cm_api_caller(api, call, req->node_name, &ret);
	if (!self)
		return ret;

	/* Only a change wakes a deferred call, so a re-run that is not expired
	 * normally finds the revision moved; if not, it waits again. */
	if (req->wait_seconds && cm_state_revision(api->st) == req->since_revision &&
	    !connect_call_expired(call))
		return connect_call_defer(call, cm_api_wait_ms(api, req->wait_seconds));

	cache = cm_peer_cache(api);
	if (!cache)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	if (cache->n) {
		ptrs = connect_call_alloc(call, cache->n * sizeof(*ptrs));
		if (!ptrs)
			return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < cache->n; i++)
		if (cache->node[i] != self)
			ptrs[count++] = &cache->msgs[i];
	resp.n_peers = count;
	resp.peers = ptrs;
	resp.revision = cm_state_revision(api->st);
	return connect_reply(call, &resp.base);
}

static int cm_list_nodes(struct connect_call *call, void *ctx)
{
	Wgcni__Cluster__V1__ListNodesResponse resp =
		WGCNI__CLUSTER__V1__LIST_NODES_RESPONSE__INIT;
	struct cm_api *api = ctx;
	struct cm_node *const *nodes;
	cm_node_msg *msgs, **ptrs;
	size_t n;

	nodes = cm_state_nodes(api->st, &n);
	if (n) {
		msgs = connect_call_alloc(call, n * sizeof(*msgs));
		ptrs = connect_call_alloc(call, n * sizeof(*ptrs));
		if (!msgs || !ptrs)
			return connect_fail(call, CONNECT_INTERNAL, "out of memory");
		for (size_t i = 0; i < n; i++) {
			ptrs[i] = cm_node_to_msg(call, nodes[i], &msgs[i]);
			if (!ptrs[i])
				return connect_fail(call, CONNECT_INTERNAL, "out of memory");
		}
		resp.n_nodes = n;
		resp.nodes = ptrs;
	}
	return connect_reply(call, &resp.base);
}

static int cm_delete_node(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__DeleteNodeRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__DeleteNodeResponse resp =
		WGCNI__CLUSTER__V1__DELETE_NODE_RESPONSE__INIT;
	struct cm_api *api = ctx;
	int ret;

	if (!cm_name_ok(call, req->node_name, &ret))
		return ret;
	ret = cm_state_delete(api->st, req->node_name);
	if (ret == -ENOENT)
		return connect_fail(call, CONNECT_NOT_FOUND, "node \"%s\" not found",
				    req->node_name);
	if (ret)
		return cm_fail_state(call, "deleting", req->node_name, ret);
	cm_api_changed(api);
	return connect_reply(call, &resp.base);
}

/* Every answer given while changes are not on disk waits for their commit:
 * it may show them (a peer list) or be their acknowledgement. */
#define CM_HELD(fn)                                                                \
	static int fn##_held(struct connect_call *call, void *ctx)                 \
	{                                                                          \
		struct cm_api *api = ctx;                                          \
		int ret = fn(call, ctx);                                           \
                                                                                   \
		if (cm_state_pending(api->st))                                     \
			connect_call_hold(call);                                   \
		return ret;                                                        \
	}
CM_HELD(cm_allocate_subnet)
CM_HELD(cm_register_key)
CM_HELD(cm_list_peers)
CM_HELD(cm_list_nodes)
CM_HELD(cm_delete_node)
CM_HELD(cm_watch_peers)
CM_HELD(cm_register_external_peer)
CM_HELD(cm_list_external_peers)
CM_HELD(cm_delete_external_peer)
CM_HELD(cm_list_locations)

void cm_api_store_event(void *ctx)
{
	struct cm_api *api = ctx;
	uint64_t before = cm_state_revision(api->st);
	int ret = cm_state_poll(api->st);

	if (ret < 0 && !api->store_failed)
		api->store_failed = ret;
	if (cm_state_revision(api->st) != before)
		cm_api_changed(api);
}

int cm_api_after_run(void *ctx)
{
	struct cm_api *api = ctx;
	uint64_t before = cm_state_revision(api->st);
	int ret;

	if (api->store_failed)
		return api->store_failed; /* memory cannot follow the store: stop */

	/* Stale nodes leave with the turn's other changes; a failure is
	 * retried next turn (what was done is kept). */
	ret = cm_state_expire(api->st);
	if (ret < 0)
		log_warnx("marking stale nodes failed", "err=%s", strerror(-ret));
	if (cm_state_revision(api->st) != before)
		cm_api_changed(api);
	/* A store with pending changes (sqlite) shows them once committed;
	 * one without (etcd) shows them as soon as memory has them. */
	if (cm_state_pending(api->st)) {
		ret = cm_state_commit(api->st);
		if (api->srv)
			connect_server_release(api->srv, ret == 0);
		if (ret)
			return ret; /* memory is ahead of the disk: stop, restart from disk */
	}
	if (api->changed && api->srv)
		connect_server_wake(api->srv);
	api->changed = false;
	return 0;
}

#define CM_METHOD(name, in, out, fn)                                               \
	{ "/wgcni.cluster.v1.ClusterService/" name,                                \
	  &wgcni__cluster__v1__##in##__descriptor,                                 \
	  &wgcni__cluster__v1__##out##__descriptor, fn##_held }

const struct connect_method cm_api_methods[] = {
	CM_METHOD("AllocateSubnet", allocate_subnet_request, allocate_subnet_response,
		  cm_allocate_subnet),
	CM_METHOD("RegisterKey", register_key_request, register_key_response,
		  cm_register_key),
	CM_METHOD("ListPeers", list_peers_request, list_peers_response, cm_list_peers),
	CM_METHOD("ListNodes", list_nodes_request, list_nodes_response, cm_list_nodes),
	CM_METHOD("DeleteNode", delete_node_request, delete_node_response,
		  cm_delete_node),
	CM_METHOD("WatchPeers", watch_peers_request, watch_peers_response,
		  cm_watch_peers),
	CM_METHOD("RegisterExternalPeer", register_external_peer_request,
		  register_external_peer_response, cm_register_external_peer),
	CM_METHOD("ListExternalPeers", list_external_peers_request,
		  list_external_peers_response, cm_list_external_peers),
	CM_METHOD("DeleteExternalPeer", delete_external_peer_request,
		  delete_external_peer_response, cm_delete_external_peer),
	CM_METHOD("ListLocations", list_locations_request, list_locations_response,
		  cm_list_locations),
};
const size_t cm_api_n_methods = sizeof(cm_api_methods) / sizeof(cm_api_methods[0]);

int cm_api_metrics(struct prom *p, void *ctx)
{
	static const char *const fam_names[CM_NFAM] = { "ipv4", "ipv6" };
	struct cm_api *api = ctx;
	size_t n;
	int ret;

	cm_state_nodes(api->st, &n);
	ret = prom_family(p, "wgcni_nodes", PROM_GAUGE, "Nodes known to the cluster manager.");
	if (!ret)
		ret = prom_sample(p, (double)n, NULL);
	if (!ret)
		ret = prom_family(p, "wgcni_subnets", PROM_GAUGE,
				  "Node subnets in the cluster CIDRs, by family and state.");
	for (int f = 0; f < CM_NFAM && !ret; f++) {
		uint64_t used, cap;

		if (!cm_state_usage(api->st, f, &used, &cap))
			continue;
		ret = prom_sample(p, (double)used, "family", fam_names[f], "state", "used", NULL);
		if (!ret)
			ret = prom_sample(p, (double)(cap - used), "family", fam_names[f],
					  "state", "free", NULL);
	}
	if (!ret)
		ret = prom_family(p, "wgcni_stale_nodes", PROM_GAUGE,
				  "Nodes not seen for longer than --node-ttl (out of every "
				  "peer list, subnets kept).");
	if (!ret)
		ret = prom_sample(p, (double)cm_state_stale_count(api->st), NULL);
	if (!ret)
		ret = prom_family(p, "wgcni_revision", PROM_GAUGE,
				  "Revision of the peer set (moves on every change).");
	if (!ret)
		ret = prom_sample(p, (double)cm_state_revision(api->st), NULL);
	if (!ret && api->srv)
		ret = prom_family(p, "wgcni_long_polls", PROM_GAUGE,
				  "Long polls (ListPeers and WatchPeers) waiting for a change.");
	if (!ret && api->srv)
		ret = prom_sample(p, (double)connect_server_deferred(api->srv), NULL);
	if (!ret && api->srv)
		ret = cm_watch_metrics(api, p);
	if (!ret)
		ret = cm_ext_metrics(api, p);
	if (!ret)
		ret = prom_family(p, "wgcni_commits_total", PROM_COUNTER,
				  "Transactions committed (one per group of concurrent changes).");
	if (!ret)
		ret = prom_sample(p, (double)cm_state_commits(api->st), NULL);
	if (!ret)
		ret = prom_family(p, "wgcni_datastore_errors_total", PROM_COUNTER,
				  "Reads and writes of the datastore that failed.");
	if (!ret)
		ret = prom_sample(p, (double)cm_state_store_errors(api->st), "datastore",
				  cm_state_store(api->st), NULL);
	return ret;
}

int cm_api_healthz(void *ctx)
{
	struct cm_api *api = ctx;

	return api->st ? 0 : -EAGAIN;
}

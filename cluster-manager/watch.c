/*
 * WatchPeers: the peer set as deltas from a revision.
 *
 * Answers are at the committed revision (cm_state_committed), the same for
 * every caller between two commits, so each (revision, since_revision)
 * answer is built and encoded once per encoding and every waiter is
 * answered with the same bytes (connect_reply_body): a commit wakes all
 * waiters, they are nearly all at one since_revision, and one delta serves
 * them. A delta leaves out the nodes changed after the commit (their
 * mod_revision is higher, so the caller's next round brings them).
 *
 * A full set is encoded once per revision; with many peers, a full set
 * encoded less than CM_FULL_REUSE_MS ago is reused even if the revision
 * moved since (a cold start of thousands of nodes would otherwise encode it
 * once per commit): it names its own revision, and the caller's next round
 * is the delta from there.
 *
 * A message points into the nodes; bytes, once encoded, do not. So a message
 * is rebuilt when the state changed since (generation), and bodies live on
 * until their revision is replaced (and, being shared, until sent).
 */
#include "api.h"

#include "log.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Wgcni__Cluster__V1__Peer cm_peer_msg;
typedef Wgcni__Cluster__V1__WatchPeersResponse cm_watch_msg;

/* Distinct since_revisions answered per revision. */
#define CM_WATCH_SLOTS 8
#define CM_FULL_REUSE_PEERS 256
#define CM_FULL_REUSE_MS 1000

static const char cm_watch_path[] = "/wgcni.cluster.v1.ClusterService/WatchPeers";

struct cm_watch_answer {
	bool used;
	uint64_t revision;
	uint64_t since;      /* 0: the full set */
	uint64_t generation; /* of the state msg was built from */
	uint64_t built_ms;
	cm_watch_msg msg;
	cm_peer_msg *peers;
	cm_peer_msg **ptrs;
	char **removed;
	struct connect_body *body[2]; /* [json] */
};

struct cm_watch_cache {
	uint64_t revision; /* of the deltas in slot[] */
	size_t next;       /* slot to reuse next */
	struct cm_watch_answer slot[CM_WATCH_SLOTS];
	struct cm_watch_answer full;
	uint64_t encodings[2]; /* answers encoded, by [json] */
	uint64_t bytes[2];     /* bytes encoded */
};

static uint64_t cm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cm_watch_drop_msg(struct cm_watch_answer *a)
{
	free(a->peers);
	free(a->ptrs);
	free(a->removed);
	a->peers = NULL;
	a->ptrs = NULL;
	a->removed = NULL;
}

static void cm_watch_clear(struct cm_watch_answer *a)
{
	for (int j = 0; j < 2; j++)
		connect_body_free(a->body[j]);
	cm_watch_drop_msg(a);
	memset(a, 0, sizeof(*a));
}

void cm_watch_release(struct cm_api *api)
{
	if (!api->watch)
		return;
	for (size_t i = 0; i < CM_WATCH_SLOTS; i++)
		cm_watch_clear(&api->watch->slot[i]);
	cm_watch_clear(&api->watch->full);
	free(api->watch);
	api->watch = NULL;
}

static void cm_watch_peer(cm_peer_msg *p, const struct cm_node *o)
{
	wgcni__cluster__v1__peer__init(p);
	p->name = (char *)o->name;
	p->public_key = (char *)o->public_key;
	p->endpoint = (char *)o->endpoint;
	p->allowed_ips = cm_node_allowed(o, &p->n_allowed_ips);
}

static int cm_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every node with a key (uncommitted changes included: the answer waits
 * for their commit, and the next delta repeats them harmlessly). */
static int cm_watch_full(struct cm_api *api, struct cm_watch_answer *a)
{
	struct cm_node *const *nodes;
	size_t n;

	nodes = cm_state_nodes(api->st, &n);
	a->peers = calloc(n + 1, sizeof(*a->peers));
	a->ptrs = calloc(n + 1, sizeof(*a->ptrs));
	if (!a->peers || !a->ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!nodes[i]->public_key[0] || nodes[i]->stale)
			continue;
		cm_watch_peer(&a->peers[a->msg.n_peers], nodes[i]);
		a->ptrs[a->msg.n_peers] = &a->peers[a->msg.n_peers];
		a->msg.n_peers++;
	}
	a->msg.full = true;
	return 0;
}

/* The nodes changed in (since, revision], newest first, and the peers
 * deleted in it that are not back: O(changes log changes). */
static int cm_watch_delta(struct cm_api *api, struct cm_watch_answer *a)
{
	uint64_t since = a->since, rev = a->revision;
	const struct cm_tombstone *tombs;
	const struct cm_node *o;
	size_t n = 0, n_tombs, k = 0;

	for (o = cm_state_last_changed(api->st); o && o->mod_revision > since; o = o->mod_prev)
		n++;
	tombs = cm_state_tombstones(api->st, since, &n_tombs);
	a->peers = calloc(n + 1, sizeof(*a->peers));
	a->ptrs = calloc(n + 1, sizeof(*a->ptrs));
	a->removed = calloc(n_tombs + 1, sizeof(*a->removed));
	if (!a->peers || !a->ptrs || !a->removed)
		return -ENOMEM;
	for (o = cm_state_last_changed(api->st); o && o->mod_revision > since; o = o->mod_prev) {
		/* Not committed yet: the next round. A node never loses its
		 * key: one without was never a peer. A stale node is among
		 * the tombstones (it left at a revision after its row's). */
		if (o->mod_revision > rev || !o->public_key[0] || o->stale)
			continue;
		cm_watch_peer(&a->peers[a->msg.n_peers], o);
		a->ptrs[a->msg.n_peers] = &a->peers[a->msg.n_peers];
		a->msg.n_peers++;
	}
	/* Gone: deleted, or stale (a node back again has a newer row). */
	for (size_t i = 0; i < n_tombs && tombs[i].revision <= rev; i++) {
		const struct cm_node *t = cm_state_find(api->st, tombs[i].name);

		if (!t || t->stale)
			a->removed[k++] = (char *)tombs[i].name;
	}
	/* A name deleted twice has two tombstones. */
	if (k > 1)
		qsort(a->removed, k, sizeof(*a->removed), cm_str_cmp);
	for (size_t i = 0; i < k; i++)
		if (!a->msg.n_removed || strcmp(a->removed[a->msg.n_removed - 1], a->removed[i]))
			a->removed[a->msg.n_removed++] = a->removed[i];
	return 0;
}

/* (Re)builds a's message from the state now. */
static int cm_watch_build(struct cm_api *api, struct cm_watch_answer *a)
{
	int ret;

	cm_watch_drop_msg(a);
	wgcni__cluster__v1__watch_peers_response__init(&a->msg);
	a->msg.revision = a->revision;
	ret = a->since ? cm_watch_delta(api, a) : cm_watch_full(api, a);
	if (ret) {
		cm_watch_drop_msg(a);
		return ret;
	}
	a->msg.peers = a->ptrs;
	a->msg.removed = a->removed;
	a->generation = api->generation;
	return 0;
}

static struct cm_watch_cache *cm_watch_cache(struct cm_api *api, uint64_t rev)
{
	struct cm_watch_cache *c = api->watch;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
		api->watch = c;
		c->revision = rev;
	}
	if (c->revision != rev) {
		for (size_t i = 0; i < CM_WATCH_SLOTS; i++)
			cm_watch_clear(&c->slot[i]);
		c->revision = rev;
		c->next = 0;
	}
	return c;
}

/* The slot answering since (0: full) at rev, built if new. */
static struct cm_watch_answer *cm_watch_get(struct cm_api *api, uint64_t rev, uint64_t since,
					    bool json)
{
	struct cm_watch_cache *c = cm_watch_cache(api, rev);
	struct cm_watch_answer *a;
	size_t peers;
	int ret;

	if (!c)
		return NULL;
	if (!since) {
		a = &c->full;
		cm_state_nodes(api->st, &peers);
		if (a->used && a->body[json] && a->revision != rev &&
		    a->revision >= cm_state_floor(api->st) && peers >= CM_FULL_REUSE_PEERS &&
		    cm_now_ms() - a->built_ms < CM_FULL_REUSE_MS)
			return a;
		if (a->used && a->revision == rev)
			return a;
		cm_watch_clear(a);
	} else {
		for (size_t i = 0; i < CM_WATCH_SLOTS; i++)
			if (c->slot[i].used && c->slot[i].since == since)
				return &c->slot[i];
		a = &c->slot[c->next];
		c->next = (c->next + 1) % CM_WATCH_SLOTS;
		cm_watch_clear(a);
	}
	a->revision = rev;
	a->since = since;
	a->built_ms = cm_now_ms();
	ret = cm_watch_build(api, a);
	if (ret) {
		cm_watch_clear(a);
		errno = -ret;
		return NULL;
	}
	a->used = true;
	return a;
}

int cm_watch_peers(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__WatchPeersRequest *req =
		(const void *)connect_call_request(call);
	struct cm_api *api = ctx;
	struct cm_watch_answer *a;
	struct cm_node *self;
	int ret;
	const char *why = name_node_check(req->node_name);
	uint64_t rev = cm_state_committed(api->st), since = req->since_revision;
	bool json = connect_call_json(call);

	if (why)
		return connect_fail(call, CONNECT_INVALID_ARGUMENT,
				    "invalid nodeName \"%.64s%s\": %s", req->node_name,
				    strlen(req->node_name) > 64 ? "..." : "", why);
	self = cm_api_caller(api, call, req->node_name, &ret);
	if (!self)
		return ret;

	if (req->wait_seconds && since == rev && !connect_call_expired(call))
		return connect_call_defer(call, cm_api_wait_ms(api, req->wait_seconds));
	/* Older than the history, or from another life of the state (a
	 * revision this manager never reached): the full set. */
	if (since < cm_state_floor(api->st) || since > rev)
		since = 0;
	a = cm_watch_get(api, rev, since, json);
	if (!a)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	if (!a->body[json]) {
		if (a->generation != api->generation && cm_watch_build(api, a))
			return connect_fail(call, CONNECT_INTERNAL, "out of memory");
		a->body[json] = connect_body_new(&a->msg.base, json);
		if (!a->body[json])
			return connect_fail(call, CONNECT_INTERNAL, "cannot encode the answer");
		api->watch->encodings[json]++;
		api->watch->bytes[json] += connect_body_size(a->body[json]);
	}
	return connect_reply_body(call, a->body[json]);
}

int cm_watch_metrics(struct cm_api *api, struct prom *p)
{
	static const char *const enc[2] = { "proto", "json" };
	const struct cm_watch_cache *c = api->watch;
	int ret;

	ret = prom_family(p, "wgcni_watchers", PROM_GAUGE,
			  "WatchPeers calls waiting for a change.");
	if (!ret)
		ret = prom_sample(p, (double)connect_server_waiting(api->srv, cm_watch_path), NULL);
	if (!ret)
		ret = prom_family(p, "wgcni_watch_encodings_total", PROM_COUNTER,
				  "WatchPeers answers encoded (each is sent to every caller "
				  "at its revision), by encoding.");
	for (int j = 0; j < 2 && !ret; j++)
		ret = prom_sample(p, c ? (double)c->encodings[j] : 0, "encoding", enc[j], NULL);
	if (!ret)
		ret = prom_family(p, "wgcni_watch_encoded_bytes_total", PROM_COUNTER,
				  "Bytes of WatchPeers answers encoded, by encoding.");
	for (int j = 0; j < 2 && !ret; j++)
		ret = prom_sample(p, c ? (double)c->bytes[j] : 0, "encoding", enc[j], NULL);
	return ret;
}

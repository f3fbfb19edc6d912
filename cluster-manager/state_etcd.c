/*
 * The etcd store (--datastore etcd; state.h, keys in store_etcd_keys.h).
 *
 * Memory follows the watch, and only the watch: its thread queues what it
 * receives and signals an eventfd, and the loop thread applies the batches
 * in revision order (cm_etcd_poll). So every manager on one etcd cluster
 * applies the same changes in the same order, whichever of them made a
 * change, and a node's revision (its key's mod_revision) is the same on
 * every manager: a node can move from one to another and go on from its
 * revision.
 *
 * A change made here is one transaction whose compares say that memory was
 * current for what it touches: the node's key has the mod_revision memory
 * knows (or does not exist), and each subnet it claims does not exist. When
 * it succeeds, the answer waits until the watch has delivered that revision
 * (cm_etcd_catch_up), so what a client is told is in memory and memory never
 * runs ahead of etcd. When a compare fails, the failure branch reads the
 * keys compared; their revisions say how far memory must catch up before
 * the next try (another manager's change is then in memory).
 *
 * A node removed while a handler may still hold it is kept on the graveyard
 * and freed at the next poll, before any handler runs.
 */
#include "config.h"
#include "state.h"
#include "state_etcd_priv.h"
#include "state_priv.h"
#include "store_etcd_keys.h"

#include "etcd.h"
#include "log.h"
#include "prefixalloc.h"
#include "sys.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long an answer waits for the watch to show its own change. */
#define CM_ETCD_CATCH_UP_MS 5000
/* lastSeen is stored when it moved by at least this much: a node's key is
 * written at most every 5 minutes however often it calls (10,000 nodes:
 * 2,000 key writes a minute in 16 transactions, not one per call). Memory
 * has the exact time of the calls a manager answered. */
#define CM_ETCD_SEEN_STEP 300
/* After etcd could not be reached or could not decide, writes fail at once
 * for this long rather than each holding the loop for a request timeout
 * (reads are answered from memory meanwhile). */
#define CM_ETCD_BACKOFF_MS 1000
/* etcd's limit of operations in one transaction. */
#define CM_ETCD_TXN_OPS 128

struct cm_etcd_batch {
	struct cm_etcd_batch *next;
	size_t n;
	struct cm_etcd_ev ev[];
};

struct cm_etcd {
	struct etcd *e;
	struct etcd_watch *w;
	char prefix[512]; /* without a trailing slash */
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cm_etcd_batch *head, *tail; /* queued by the watch thread */
	int failed;                         /* the watch cannot go on (under mu) */
	int64_t applied; /* highest revision applied to memory */
	int64_t down_until_ms, down_err; /* CM_ETCD_BACKOFF_MS */
	uint64_t offset; /* P/revision-offset: added to etcd's revisions */
	struct cm_node *graveyard;
};

/* --- keys ---------------------------------------------------------------- */

static int cm_etcd_key(const struct cm_etcd *x, char *buf, const char *kind, const char *name)
{
	int n = snprintf(buf, CM_ETCD_KEY_MAX, "%s%s%s", x->prefix, kind, name);

	return n < 0 || n >= CM_ETCD_KEY_MAX ? -ENAMETOOLONG : 0;
}

const char *cm_etcd_key_rest(const struct cm_etcd *x, const char *key, const char *kind)
{
	size_t pl = strlen(x->prefix), kl = strlen(kind);

	if (strncmp(key, x->prefix, pl) || strncmp(key + pl, kind, kl) || !key[pl + kl])
		return NULL;
	return key + pl + kl;
}

/* --- node records ---------------------------------------------------------- */

void cm_etcd_rec_of(const struct cm_node *node, struct cm_etcd_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->public_key = r->endpoint = r->location = r->public_endpoint = "";
	if (!node)
		return;
	for (int f = 0; f < CM_NFAM; f++)
		if (node->has_subnet[f])
			snprintf(r->subnet[f], sizeof(r->subnet[f]), "%s", node->subnet_str[f]);
	r->public_key = node->public_key;
	r->endpoint = node->endpoint;
	r->location = node->location;
	r->public_endpoint = node->public_endpoint;
	r->gateway = node->gateway;
}

char *cm_etcd_rec_json(const struct cm_etcd_rec *r)
{
	json_t *subnets = json_array(), *o;
	char *s = NULL;

	for (int f = 0; subnets && f < CM_NFAM; f++)
		if (r->subnet[f][0] && json_array_append_new(subnets, json_string(r->subnet[f])))
			goto out;
	o = json_pack("{s:o,s:s,s:s,s:s,s:b,s:s}", "subnets", subnets, "publicKey",
		      r->public_key, "endpoint", r->endpoint, "location", r->location, "gateway",
		      r->gateway, "publicEndpoint", r->public_endpoint);
	subnets = NULL;
	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
out:
	json_decref(subnets);
	return s;
}

static const char *cm_etcd_str(json_t *o, const char *field, size_t max)
{
	json_t *j = json_object_get(o, field);
	const char *s;

	if (!j)
		return "";
	s = json_string_value(j);
	return s && strlen(s) <= max ? s : NULL;
}

/* Fills node from a record (memory only): 0 or -EPROTO. */
static int cm_etcd_rec_parse(const char *value, struct cm_node *node)
{
	json_t *o = json_loads(value, JSON_REJECT_DUPLICATES, NULL), *subnets, *gw, *j;
	const char *pub, *ep, *loc, *pubep;
	bool has[CM_NFAM] = { false };
	struct ipnet net[CM_NFAM];
	size_t i;
	int ret = -EPROTO;

	if (!json_is_object(o))
		goto out;
	subnets = json_object_get(o, "subnets");
	if (subnets && !json_is_array(subnets))
		goto out;
	json_array_foreach(subnets, i, j) {
		struct ipnet n;
		enum cm_family f;

		if (!json_is_string(j) || ipnet_parse(json_string_value(j), &n, true))
			goto out;
		f = cm_fam_of(&n);
		if (has[f])
			goto out;
		has[f] = true;
		net[f] = n;
	}
	pub = cm_etcd_str(o, "publicKey", WG_KEY_B64_LEN);
	ep = cm_etcd_str(o, "endpoint", CM_ENDPOINT_MAX);
	loc = cm_etcd_str(o, "location", CM_NAME_MAX);
	pubep = cm_etcd_str(o, "publicEndpoint", CM_ENDPOINT_MAX);
	gw = json_object_get(o, "gateway");
	if (!pub || !ep || !loc || !pubep || (gw && !json_is_boolean(gw)))
		goto out;
	for (int f = 0; f < CM_NFAM; f++) {
		node->has_subnet[f] = has[f];
		if (has[f])
			node->subnet[f] = net[f];
	}
	strcpy(node->public_key, pub);
	strcpy(node->endpoint, ep);
	strcpy(node->location, loc);
	strcpy(node->public_endpoint, pubep);
	node->gateway = json_is_true(gw);
	ret = 0;
out:
	json_decref(o);
	return ret;
}

/* --- applying what the watch (or the first list) reports ----------------- */

static void cm_etcd_bump(struct cm_state *st, int64_t rev)
{
	if ((uint64_t)rev > st->revision)
		st->revision = st->committed = (uint64_t)rev;
}

static int cm_etcd_node_put(struct cm_state *st, const char *name, const char *value,
			    int64_t rev)
{
	struct cm_node *node = cm_state_find(st, name), parsed;
	bool fresh = !node;
	int ret;

	if (node && node->mod_revision >= (uint64_t)rev)
		return 0;
	memset(&parsed, 0, sizeof(parsed));
	if (strlen(name) > CM_NAME_MAX || name_node_check(name) ||
	    cm_etcd_rec_parse(value, &parsed)) {
		log_warnx("etcd: ignoring a node record that cannot be read", "node=%.64s "
			  "revision=%" PRId64, name, rev);
		st->store_errors++;
		return 0;
	}
	if (fresh) {
		ret = cm_node_slot(st);
		if (ret)
			return ret;
		node = calloc(1, sizeof(*node));
		if (!node)
			return -ENOMEM;
		snprintf(node->name, sizeof(node->name), "%s", name);
		cm_node_insert(st, node);
		cm_stale_link(st, node);
	}
	for (int f = 0; f < CM_NFAM; f++) {
		node->has_subnet[f] = parsed.has_subnet[f];
		node->subnet[f] = parsed.subnet[f];
	}
	strcpy(node->public_key, parsed.public_key);
	strcpy(node->endpoint, parsed.endpoint);
	strcpy(node->location, parsed.location);
	strcpy(node->public_endpoint, parsed.public_endpoint);
	node->gateway = parsed.gateway;
	cm_node_refresh(node);
	cm_ext_node_refresh(node);
	cm_touch_mod(st, node, (uint64_t)rev);
	/* Its record changed: it called a manager, it is live. */
	cm_stale_seen(st, node);
	cm_etcd_bump(st, rev);
	return 0;
}

/* A tombstone newer than its peer's record: the peer is stale (stale.c). */
static int cm_etcd_tomb_put(struct cm_state *st, const char *name, int64_t rev)
{
	struct cm_node *node = cm_state_find(st, name);
	int ret;

	/* No node: the tombstone of its deletion, which was the change. */
	if (!node || !node->public_key[0] || node->stale ||
	    (uint64_t)rev <= node->mod_revision)
		return 0;
	ret = cm_tomb_reserve(st);
	if (ret)
		return ret;
	cm_tomb_push(st, name, (uint64_t)rev);
	cm_tomb_prune(st);
	cm_stale_mark_mem(st, node, cm_stale_now(st));
	cm_etcd_bump(st, rev);
	return 0;
}

static int cm_etcd_node_del(struct cm_state *st, const char *name, int64_t rev)
{
	struct cm_node *node = cm_state_find(st, name);
	int ret;

	if (!node)
		return 0;
	/* Only a peer's deletion matters to the nodes. */
	if (node->public_key[0]) {
		ret = cm_tomb_reserve(st);
		if (ret)
			return ret;
		cm_tomb_push(st, name, (uint64_t)rev);
		cm_tomb_prune(st);
	}
	cm_node_remove(st, node);
	cm_mod_unlink(st, node);
	cm_stale_unlink(st, node);
	node->gone_next = st->etcd->graveyard;
	st->etcd->graveyard = node;
	cm_etcd_bump(st, rev);
	log_info("node deleted", "node=%s revision=%" PRId64, name, rev);
	return 0;
}

static int cm_etcd_subnet(struct cm_state *st, const char *cidr, const char *owner, bool del)
{
	struct ipnet net;

	if (ipnet_parse(cidr, &net, true)) {
		log_warnx("etcd: ignoring a subnet claim that cannot be read", "subnet=%.64s",
			  cidr);
		return 0;
	}
	if (del) {
		cm_subnet_release(st, &net);
		return 0;
	}
	return cm_subnet_reserve(st, owner, &net);
}

static void cm_etcd_seen(struct cm_state *st, const char *name, const char *value)
{
	struct cm_node *node = cm_state_find(st, name);
	char *end;
	long long t;

	errno = 0;
	t = strtoll(value, &end, 10);
	if (!node || errno || *end || end == value)
		return;
	/* Seen by another manager (or this one, reported back): live. */
	if (!node->stale)
		cm_stale_seen(st, node);
	node->seen_stored = (time_t)t;
	if ((time_t)t > node->last_seen)
		node->last_seen = (time_t)t;
}

/* One change under the prefix; what is not ours (the config) is skipped.
 * Memory's revisions are etcd's plus the offset (CM_ETCD_REVISION_OFFSET). */
static int cm_etcd_apply(struct cm_state *st, const struct cm_etcd_ev *etcd_ev)
{
	struct cm_etcd *x = st->etcd;
	struct cm_etcd_ev shifted = *etcd_ev, *ev = &shifted;
	const char *rest;
	int ret;

	shifted.mod_revision += (int64_t)x->offset;
	ret = cm_etcd_ext_apply(st, ev);

	if (ret) {
		ret = ret < 0 ? ret : 0;
	} else if ((rest = cm_etcd_key_rest(x, ev->key, CM_ETCD_NODES)))
		ret = ev->del ? cm_etcd_node_del(st, rest, ev->mod_revision) :
			cm_etcd_node_put(st, rest, ev->value, ev->mod_revision);
	else if ((rest = cm_etcd_key_rest(x, ev->key, CM_ETCD_SUBNETS)))
		ret = cm_etcd_subnet(st, rest, ev->value, ev->del);
	else if ((rest = cm_etcd_key_rest(x, ev->key, CM_ETCD_SEEN)) && !ev->del)
		cm_etcd_seen(st, rest, ev->value);
	else if ((rest = cm_etcd_key_rest(x, ev->key, CM_ETCD_TOMBSTONES)) && !ev->del)
		ret = cm_etcd_tomb_put(st, rest, ev->mod_revision);
	if (etcd_ev->mod_revision > x->applied)
		x->applied = etcd_ev->mod_revision;
	return ret;
}

static void cm_etcd_batch_free(struct cm_etcd_batch *b)
{
	while (b) {
		struct cm_etcd_batch *next = b->next;

		for (size_t i = 0; i < b->n; i++) {
			free(b->ev[i].key);
			free(b->ev[i].value);
		}
		free(b);
		b = next;
	}
}

/* The watch thread: copies the batch into the queue for the loop thread. */
static void cm_etcd_on_watch(const struct etcd_watch_msg *m, void *ctx)
{
	struct cm_etcd *x = ctx;
	struct cm_etcd_batch *b = NULL;
	uint64_t one = 1;
	int failed = 0;

	if (m->status == ETCD_WATCH_RECONNECTING) {
		errno = -m->err;
		log_warn("etcd watch broke; resuming", "endpoint=%s", etcd_endpoint(x->e));
		return;
	}
	if (m->status == ETCD_WATCH_COMPACTED) {
		log_error("etcd compacted the history this manager had not yet seen; it must "
			   "restart to list the state again", "compact_revision=%" PRId64,
			   m->compact_revision);
		failed = -ESTALE;
	} else if (m->n) {
		b = calloc(1, sizeof(*b) + m->n * sizeof(b->ev[0]));
		failed = b ? 0 : -ENOMEM;
		for (size_t i = 0; b && i < m->n; i++) {
			const struct etcd_event *e = &m->events[i];
			struct cm_etcd_ev *v = &b->ev[b->n++];

			v->del = e->type == ETCD_EVENT_DELETE;
			v->mod_revision = e->kv.mod_revision;
			v->key = strdup(e->kv.key);
			v->value = strndup(e->kv.value ? (const char *)e->kv.value : "",
					   e->kv.value_len);
			if (!v->key || !v->value) {
				cm_etcd_batch_free(b);
				b = NULL;
				failed = -ENOMEM;
			}
		}
	} else {
		return;
	}
	pthread_mutex_lock(&x->mu);
	if (b) {
		if (x->tail)
			x->tail->next = b;
		else
			x->head = b;
		x->tail = b;
	}
	if (failed && !x->failed)
		x->failed = failed;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
	if (write(x->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("etcd: cannot signal the loop", NULL);
}

/* Applies every queued batch; with wait_ms, first waits that long for one.
 * 0, -ETIMEDOUT (nothing came), or the failure that stops memory. */
static int cm_etcd_drain(struct cm_state *st, long wait_ms)
{
	struct cm_etcd *x = st->etcd;
	struct cm_etcd_batch *list, *b;
	int ret = 0;

	pthread_mutex_lock(&x->mu);
	if (wait_ms > 0 && !x->head && !x->failed) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!x->head && !x->failed && !ret)
			ret = -pthread_cond_timedwait(&x->cv, &x->mu, &ts);
	}
	list = x->head;
	x->head = x->tail = NULL;
	if (x->failed)
		ret = x->failed;
	pthread_mutex_unlock(&x->mu);
	for (b = list; b && ret >= 0; b = b->next)
		for (size_t i = 0; i < b->n && ret >= 0; i++)
			ret = cm_etcd_apply(st, &b->ev[i]);
	cm_etcd_batch_free(list);
	return ret == -ETIMEDOUT && list ? 0 : ret;
}

/* Waits until memory has applied revision rev. */
static int cm_etcd_catch_up(struct cm_state *st, int64_t rev)
{
	int64_t deadline = sys_now_ms() + CM_ETCD_CATCH_UP_MS;
	int ret = 0;

	while (st->etcd->applied < rev && ret >= 0) {
		int64_t left = deadline - sys_now_ms();

		if (left <= 0)
			ret = -ETIMEDOUT;
		else
			ret = cm_etcd_drain(st, (long)left);
	}
	if (ret == -ETIMEDOUT)
		log_warnx("etcd: the watch did not show a change in time",
			  "revision=%" PRId64 " applied=%" PRId64, rev, st->etcd->applied);
	return ret < 0 ? ret : 0;
}

static int cm_etcd_poll(struct cm_state *st)
{
	struct cm_etcd *x = st->etcd;
	uint64_t count;

	/* No handler holds a node removed before this turn. */
	while (x->graveyard) {
		struct cm_node *n = x->graveyard;

		x->graveyard = n->gone_next;
		free(n->allowed);
		free(n);
	}
	if (read(x->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	return cm_etcd_drain(st, 0);
}

static int cm_etcd_event_fd(const struct cm_state *st)
{
	return st->etcd->efd;
}

/* --- changes ---------------------------------------------------------------- */

/* --- transactions ------------------------------------------------------------ */

void cm_etcd_tx_init(struct cm_etcd_tx *tx)
{
	memset(tx, 0, sizeof(*tx));
}

void cm_etcd_tx_free(struct cm_etcd_tx *tx)
{
	for (size_t i = 0; i < tx->n_vals; i++)
		free(tx->vals[i]);
	memset(tx, 0, sizeof(*tx));
}

/* A key of the transaction, kept until it is freed; NULL when full. */
static const char *cm_etcd_tx_key(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
				  const char *name)
{
	char *k;

	if (tx->n_keys == CM_ETCD_TX_MAX) {
		tx->err = -E2BIG;
		return NULL;
	}
	k = tx->keys[tx->n_keys];
	if (cm_etcd_key(st->etcd, k, kind, name)) {
		tx->err = -ENAMETOOLONG;
		return NULL;
	}
	tx->n_keys++;
	return k;
}

static bool cm_etcd_tx_room(struct cm_etcd_tx *tx, size_t cmp, size_t ok, size_t fail)
{
	if (tx->n_cmp + cmp > CM_ETCD_TX_MAX || tx->n_ok + ok > CM_ETCD_TX_MAX ||
	    tx->n_fail + fail > CM_ETCD_TX_MAX) {
		tx->err = -E2BIG;
		return false;
	}
	return !tx->err;
}

void cm_etcd_tx_read(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		     const char *name)
{
	const char *k;

	if (!cm_etcd_tx_room(tx, 0, 0, 1) || !(k = cm_etcd_tx_key(st, tx, kind, name)))
		return;
	tx->fail[tx->n_fail++] = (struct etcd_op){ .type = ETCD_OP_RANGE, .key = k };
}

void cm_etcd_tx_expect(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		       const char *name, uint64_t mod)
{
	const char *k;

	if (!cm_etcd_tx_room(tx, 1, 0, 1) || !(k = cm_etcd_tx_key(st, tx, kind, name)))
		return;
	/* Memory's revisions are etcd's plus the offset. */
	tx->cmp[tx->n_cmp++] = (struct etcd_cmp){ .target = mod ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
						  .key = k,
						  .number = mod ? (int64_t)(mod - st->etcd->offset) : 0 };
	tx->fail[tx->n_fail++] = (struct etcd_op){ .type = ETCD_OP_RANGE, .key = k };
}

void cm_etcd_tx_older(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		      const char *name, uint64_t mod)
{
	const char *k;

	if (!cm_etcd_tx_room(tx, 1, 0, 1) || !(k = cm_etcd_tx_key(st, tx, kind, name)))
		return;
	tx->cmp[tx->n_cmp++] = (struct etcd_cmp){ .target = ETCD_CMP_MOD,
						  .result = ETCD_CMP_LESS, .key = k,
						  .number = (int64_t)(mod - st->etcd->offset) };
	tx->fail[tx->n_fail++] = (struct etcd_op){ .type = ETCD_OP_RANGE, .key = k };
}

void cm_etcd_tx_put(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		    const char *name, char *value)
{
	const char *k;

	if (!value) {
		tx->err = tx->err ? tx->err : -ENOMEM;
		return;
	}
	if (!cm_etcd_tx_room(tx, 0, 1, 0) || !(k = cm_etcd_tx_key(st, tx, kind, name))) {
		free(value);
		return;
	}
	tx->vals[tx->n_vals++] = value;
	tx->ok[tx->n_ok++] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = k, .value = value,
					       .value_len = strlen(value) };
}

void cm_etcd_tx_del(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		    const char *name)
{
	const char *k;

	if (!cm_etcd_tx_room(tx, 0, 1, 0) || !(k = cm_etcd_tx_key(st, tx, kind, name)))
		return;
	tx->ok[tx->n_ok++] = (struct etcd_op){ .type = ETCD_OP_DELETE, .key = k };
}

void cm_etcd_tx_node(struct cm_state *st, struct cm_etcd_tx *tx, const struct cm_node *node,
		     const struct cm_etcd_rec *rec)
{
	struct cm_etcd_rec own;

	if (!rec) {
		cm_etcd_rec_of(node, &own);
		rec = &own;
	}
	cm_etcd_tx_expect(st, tx, CM_ETCD_NODES, node->name, node->mod_revision);
	cm_etcd_tx_put(st, tx, CM_ETCD_NODES, node->name, cm_etcd_rec_json(rec));
}

int cm_etcd_tx_run(struct cm_state *st, struct cm_etcd_tx *tx)
{
	struct cm_etcd *x = st->etcd;
	const struct etcd_txn t = { tx->cmp, tx->n_cmp, tx->ok, tx->fail, tx->n_ok, tx->n_fail };
	struct etcd_txn_result res;
	int64_t target = 0;
	int ret;

	if (tx->err)
		return tx->err;
	if (sys_now_ms() < x->down_until_ms)
		return (int)x->down_err;
	ret = etcd_txn(x->e, &t, &res);
	if (ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -EHOSTUNREACH ||
	    ret == -ECONNRESET || ret == -EAGAIN) {
		x->down_until_ms = sys_now_ms() + CM_ETCD_BACKOFF_MS;
		x->down_err = ret;
	}
	if (ret)
		goto out;
	if (res.succeeded) {
		target = res.revision;
	} else {
		/* The keys compared, as they are: memory catches up to the
		 * newest before the next try. */
		for (size_t i = 0; i < res.n; i++)
			for (size_t k = 0; k < res.results[i].kvs.n; k++)
				if (res.results[i].kvs.kvs[k].mod_revision > target)
					target = res.results[i].kvs.kvs[k].mod_revision;
	}
	ret = cm_etcd_catch_up(st, target);
	if (!ret)
		ret = res.succeeded;
out:
	etcd_txn_result_free(&res);
	return ret;
}

enum cm_etcd_change {
	CM_ETCD_PUT,    /* the record, and claims */
	CM_ETCD_DELETE, /* the node, its claims and lastSeen; a tombstone */
	CM_ETCD_STALE,  /* a tombstone only: the peer is stale */
};

/*
 * One try of a change to the node called name, whose state in memory is
 * node (NULL: absent): what says (put rec and claim the subnets in claim[],
 * "" where none; or delete it; or mark it stale). 1 done and in memory, 0
 * another manager got there first (memory has caught up with it: look
 * again), or negative errno.
 */
static int cm_etcd_try(struct cm_state *st, const char *name, const struct cm_node *node,
		       enum cm_etcd_change what, const struct cm_etcd_rec *rec,
		       char claim[CM_NFAM][IPNET_STRLEN])
{
	struct cm_etcd_tx tx;
	int ret;

	cm_etcd_tx_init(&tx);
	cm_etcd_tx_expect(st, &tx, CM_ETCD_NODES, name, node ? node->mod_revision : 0);
	/* Stale: only if no manager marked it since its record (one writer). */
	if (what == CM_ETCD_STALE)
		cm_etcd_tx_older(st, &tx, CM_ETCD_TOMBSTONES, name, node->mod_revision);
	else
		cm_etcd_tx_read(st, &tx, CM_ETCD_TOMBSTONES, name);
	switch (what) {
	case CM_ETCD_STALE:
		cm_etcd_tx_put(st, &tx, CM_ETCD_TOMBSTONES, name, strdup(""));
		break;
	case CM_ETCD_PUT:
		cm_etcd_tx_put(st, &tx, CM_ETCD_NODES, name, cm_etcd_rec_json(rec));
		for (int f = 0; f < CM_NFAM; f++) {
			if (!claim[f][0])
				continue;
			cm_etcd_tx_expect(st, &tx, CM_ETCD_SUBNETS, claim[f], 0);
			cm_etcd_tx_put(st, &tx, CM_ETCD_SUBNETS, claim[f], strdup(name));
		}
		break;
	case CM_ETCD_DELETE:
		cm_etcd_tx_del(st, &tx, CM_ETCD_NODES, name);
		cm_etcd_tx_put(st, &tx, CM_ETCD_TOMBSTONES, name, strdup(""));
		for (int f = 0; f < CM_NFAM; f++)
			if (node->has_subnet[f])
				cm_etcd_tx_del(st, &tx, CM_ETCD_SUBNETS, node->subnet_str[f]);
		cm_etcd_tx_del(st, &tx, CM_ETCD_SEEN, name);
		break;
	}
	ret = cm_etcd_tx_run(st, &tx);
	cm_etcd_tx_free(&tx);
	return ret;
}

static int cm_etcd_allocate(struct cm_state *st, const char *name, struct cm_node **out)
{
	char buf[IPNET_STRLEN];
	int ret;

	CM_ETCD_RETRY(ret, {
		struct cm_node *node = cm_state_find(st, name);
		char claim[CM_NFAM][IPNET_STRLEN] = { "" };
		struct ipnet got[CM_NFAM];
		struct cm_etcd_rec rec;
		bool any = false;

		cm_etcd_rec_of(node, &rec);
		for (int f = 0; f < CM_NFAM && ret >= 0; f++) {
			if (!st->pa[f] || (node && node->has_subnet[f]))
				continue;
			ret = prefixalloc_alloc(st->pa[f], &got[f]);
			if (ret)
				break;
			ipnet_format(&got[f], claim[f]);
			strcpy(rec.subnet[f], claim[f]);
			any = true;
		}
		/* The watch reserves what was claimed, this one or not. */
		for (int f = 0; f < CM_NFAM; f++)
			if (claim[f][0])
				prefixalloc_release(st->pa[f], &got[f]);
		if (ret < 0)
			break;
		if (node && !any) {
			*out = node;
			ret = cm_state_touch(st, node);
			return ret < 0 ? ret : 0;
		}
		ret = cm_etcd_try(st, name, node, CM_ETCD_PUT, &rec, claim);
		if (ret == 1) {
			for (int f = 0; f < CM_NFAM; f++)
				if (claim[f][0])
					log_info("subnet allocated", "node=%s subnet=%s", name,
						 ipnet_format(&got[f], buf));
		}
	});
	if (ret < 0)
		return ret;
	*out = cm_state_find(st, name);
	if (!*out)
		return -ENOENT; /* deleted again meanwhile */
	cm_state_touch(st, *out);
	return 0;
}

/* A change of the node's record, fields from memory but what change() sets. */
static int cm_etcd_update(struct cm_state *st, struct cm_node *node,
			  void (*change)(struct cm_etcd_rec *r, const void *arg), const void *arg,
			  bool touch)
{
	char name[CM_NAME_MAX + 1];
	int ret;

	snprintf(name, sizeof(name), "%s", node->name);
	CM_ETCD_RETRY(ret, {
		char claim[CM_NFAM][IPNET_STRLEN] = { "" };
		struct cm_node *cur = cm_state_find(st, name);
		struct cm_etcd_rec rec;

		if (!cur)
			return -ENOENT;
		cm_etcd_rec_of(cur, &rec);
		if (change)
			change(&rec, arg);
		ret = cm_etcd_try(st, name, cur, CM_ETCD_PUT, &rec, claim);
	});
	if (ret < 0)
		return ret;
	node = cm_state_find(st, name);
	if (node && touch)
		cm_state_touch(st, node);
	return 0;
}

static void cm_etcd_set_reg(struct cm_etcd_rec *rec, const void *arg)
{
	const struct cm_reg *r = arg;

	rec->public_key = r->public_key;
	rec->endpoint = r->endpoint;
	rec->location = r->location;
	rec->public_endpoint = r->public_endpoint;
	rec->gateway = r->gateway;
}

/* RegisterKey: key, endpoint and gateway settings in one change (one
 * revision: no watcher sees the key without the settings). */
static int cm_etcd_register_node(struct cm_state *st, struct cm_node *node,
				 const struct cm_reg *r, bool *changed)
{
	bool key = strcmp(node->public_key, r->public_key) || strcmp(node->endpoint, r->endpoint);
	bool info = strcmp(node->location, r->location) || node->gateway != r->gateway ||
		    strcmp(node->public_endpoint, r->public_endpoint);
	bool was = cm_ext_is_gateway(node);
	char name[CM_NAME_MAX + 1];
	int ret;

	*changed = key || info;
	if (!*changed) {
		ret = cm_state_touch(st, node);
		return ret < 0 ? ret : 0;
	}
	if (strlen(r->public_key) > WG_KEY_B64_LEN || strlen(r->endpoint) > CM_ENDPOINT_MAX ||
	    strlen(r->location) > CM_NAME_MAX || strlen(r->public_endpoint) > CM_ENDPOINT_MAX)
		return -EINVAL;
	snprintf(name, sizeof(name), "%s", node->name);
	ret = cm_etcd_update(st, node, cm_etcd_set_reg, r, true);
	if (ret)
		return ret;
	if (key)
		log_info("key registered", "node=%s public_key=%s endpoint=%s", name,
			 r->public_key, r->endpoint);
	if (info)
		log_info("gateway settings", "node=%s gateway=%s location=%s public_endpoint=%s",
			 name, r->gateway ? "yes" : "no", r->location, r->public_endpoint);
	node = cm_state_find(st, name);
	/* A gateway no more hands its external peers on; a new one takes
	 * those without a gateway. */
	if (was && !cm_ext_is_gateway(node))
		return cm_etcd_ext_hand_on(st, name);
	if (!was && cm_ext_is_gateway(node))
		return cm_etcd_ext_adopt(st);
	return 0;
}

/* A stale peer: its tombstone, if its record is still what memory has. */
static int cm_etcd_mark_stale(struct cm_state *st, struct cm_node *node)
{
	char claim[CM_NFAM][IPNET_STRLEN] = { "" };

	return cm_etcd_try(st, node->name, node, CM_ETCD_STALE, NULL, claim);
}

/* A stale peer called: its record again, at a new revision (the watch
 * makes it live, here and on every manager). */
static int cm_etcd_revive(struct cm_state *st, struct cm_node *node, time_t now)
{
	(void)now;
	return cm_etcd_update(st, node, NULL, NULL, false);
}

static int cm_etcd_delete(struct cm_state *st, const char *name)
{
	int ret;

	CM_ETCD_RETRY(ret, {
		char claim[CM_NFAM][IPNET_STRLEN] = { "" };
		struct cm_node *node = cm_state_find(st, name);

		if (!node)
			return -ENOENT;
		/* Its external peers move first, each a change of its own. */
		if (node->n_ext) {
			ret = cm_etcd_ext_hand_on(st, name);
			if (ret)
				return ret;
			continue;
		}
		ret = cm_etcd_try(st, name, node, CM_ETCD_DELETE, NULL, claim);
	});
	return ret < 0 ? ret : 0;
}

/* lastSeen: one put per node seen CM_ETCD_SEEN_STEP after what is stored,
 * CM_ETCD_TXN_OPS to a transaction (no compares: a late one for a deleted node leaves a key
 * that is ignored and overwritten if the name comes back). */
static int cm_etcd_flush_seen(struct cm_state *st)
{
	struct cm_etcd *x = st->etcd;
	char (*keys)[CM_ETCD_KEY_MAX], vals[CM_ETCD_TXN_OPS][24];
	struct etcd_op ops[CM_ETCD_TXN_OPS];
	struct cm_node *batch[CM_ETCD_TXN_OPS];
	time_t step = CM_ETCD_SEEN_STEP;
	size_t i = 0;
	int ret = 0;

	/* With a ttl, the others must hear well within it (stale.c). */
	if (st->ttl_ms && st->ttl_ms / 8000 < (uint64_t)step)
		step = (time_t)(st->ttl_ms / 8000);
	keys = malloc(CM_ETCD_TXN_OPS * sizeof(*keys));
	if (!keys)
		return -ENOMEM;

	while (i < st->n_nodes && !ret) {
		struct etcd_txn t = { .success = ops };
		struct etcd_txn_result res;

		for (; i < st->n_nodes && t.n_success < CM_ETCD_TXN_OPS; i++) {
			struct cm_node *node = st->nodes[i];
			size_t k = t.n_success;

			if (!node->seen_dirty)
				continue;
			if (node->last_seen - node->seen_stored < step ||
			    cm_etcd_key(x, keys[k], CM_ETCD_SEEN, node->name)) {
				node->seen_dirty = false;
				continue;
			}
			snprintf(vals[k], sizeof(vals[k]), "%lld", (long long)node->last_seen);
			ops[k] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = keys[k],
						   .value = vals[k], .value_len = strlen(vals[k]) };
			batch[t.n_success++] = node;
		}
		if (!t.n_success)
			break;
		ret = etcd_txn(x->e, &t, &res);
		etcd_txn_result_free(&res);
		for (size_t k = 0; !ret && k < t.n_success; k++)
			batch[k]->seen_dirty = false;
	}
	free(keys);
	return ret;
}

static bool cm_etcd_pending(const struct cm_state *st)
{
	(void)st;
	return false;
}

static int cm_etcd_commit(struct cm_state *st)
{
	(void)st;
	return 0;
}

static void cm_etcd_free(struct cm_state *st)
{
	struct cm_etcd *x = st->etcd;

	if (!x)
		return;
	etcd_watch_stop(x->w);
	cm_etcd_batch_free(x->head);
	while (x->graveyard) {
		struct cm_node *n = x->graveyard;

		x->graveyard = n->gone_next;
		free(n->allowed);
		free(n);
	}
	etcd_free(x->e);
	if (x->efd >= 0)
		close(x->efd);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
	st->etcd = NULL;
}

static void cm_etcd_close(struct cm_state *st)
{
	int ret = cm_state_flush_seen(st);

	if (ret) {
		errno = -ret;
		log_warn("could not save lastSeen times", NULL);
	}
	cm_etcd_free(st);
	cm_state_free_mem(st);
}

static const struct cm_store_ops cm_etcd_ops = {
	.name = "etcd",
	.allocate = cm_etcd_allocate,
	.register_node = cm_etcd_register_node,
	.delete_node = cm_etcd_delete,
	.mark_stale = cm_etcd_mark_stale,
	.revive = cm_etcd_revive,
	.ext_register = cm_etcd_ext_register,
	.ext_delete = cm_etcd_ext_delete,
	.flush_seen = cm_etcd_flush_seen,
	.pending = cm_etcd_pending,
	.commit = cm_etcd_commit,
	.poll = cm_etcd_poll,
	.event_fd = cm_etcd_event_fd,
	.close = cm_etcd_close,
};

/* --- start: the configuration, the first list, the watch ------------------ */

/* The stored configuration must be ours: the same CIDRs, and the same
 * subnet size in each family we use. */
static bool cm_etcd_config_same(json_t *ours, json_t *theirs)
{
	json_t *a = json_object_get(ours, "clusterCidrs"), *b = json_object_get(theirs,
										  "clusterCidrs");
	bool v4 = false, v6 = false;
	size_t i;
	json_t *j;

	json_t *ea = json_object_get(ours, "externalCidrs");
	json_t *eb = json_object_get(theirs, "externalCidrs");

	if (!json_is_array(b) || !json_equal(a, b))
		return false;
	/* Stored without (migrate, an older manager): none. */
	if (eb ? !json_equal(ea, eb) : json_array_size(ea) != 0)
		return false;
	json_array_foreach(a, i, j) {
		if (strchr(json_string_value(j), ':'))
			v6 = true;
		else
			v4 = true;
	}
	return (!v4 || json_equal(json_object_get(ours, "nodePrefixLength"),
				  json_object_get(theirs, "nodePrefixLength"))) &&
	       (!v6 || json_equal(json_object_get(ours, "nodePrefixLengthV6"),
				  json_object_get(theirs, "nodePrefixLengthV6")));
}

static int cm_etcd_check_config(struct cm_state *st, char *err, size_t errlen)
{
	struct cm_etcd *x = st->etcd;
	char key[CM_ETCD_KEY_MAX], *ours_s = cm_config_etcd_json(&st->cfg);
	json_t *ours = ours_s ? json_loads(ours_s, 0, NULL) : NULL, *theirs = NULL;
	struct etcd_cmp cmp = { .target = ETCD_CMP_CREATE, .key = key };
	struct etcd_op put = { .type = ETCD_OP_PUT, .key = key };
	struct etcd_op get = { .type = ETCD_OP_RANGE, .key = key };
	struct etcd_txn t = { &cmp, 1, &put, &get, 1, 1 };
	struct etcd_txn_result res = { 0 };
	int ret = -ENOMEM;

	snprintf(key, sizeof(key), "%s%s", x->prefix, CM_ETCD_CONFIG);
	if (!ours)
		goto out;
	put.value = ours_s;
	put.value_len = strlen(ours_s);
	ret = etcd_txn(x->e, &t, &res);
	if (ret) {
		snprintf(err, errlen, "etcd at %s: cannot read `%s': %s", etcd_endpoint(x->e),
			 key, strerror(-ret));
		goto out;
	}
	if (res.succeeded) {
		log_info("etcd: configuration stored", "key=%s config=%s", key, ours_s);
		goto out;
	}
	ret = -EPROTO;
	if (res.n == 1 && res.results[0].kvs.n == 1)
		theirs = json_loads((const char *)res.results[0].kvs.kvs[0].value, 0, NULL);
	if (!theirs) {
		snprintf(err, errlen, "etcd: `%s' cannot be read", key);
		goto out;
	}
	if (!cm_etcd_config_same(ours, theirs)) {
		ret = -EINVAL;
		snprintf(err, errlen, "etcd prefix `%s' belongs to a cluster with other CIDRs or "
			 "subnet sizes (%s there, %s here): use the same --cluster-cidr and "
			 "--node-prefix-length flags, or another --etcd-prefix", x->prefix,
			 (const char *)res.results[0].kvs.kvs[0].value, ours_s);
		goto out;
	}
	ret = 0;
out:
	etcd_txn_result_free(&res);
	json_decref(ours);
	json_decref(theirs);
	free(ours_s);
	return ret;
}

/* P/revision-offset, 0 when absent (a cluster that began on etcd). */
static int cm_etcd_read_offset(struct cm_state *st, char *err, size_t errlen)
{
	struct cm_etcd *x = st->etcd;
	char key[CM_ETCD_KEY_MAX], *end;
	struct etcd_kv kv;
	unsigned long long v;
	int ret;

	snprintf(key, sizeof(key), "%s%s", x->prefix, CM_ETCD_REVISION_OFFSET);
	ret = etcd_get(x->e, key, &kv, NULL);
	if (ret == -ENOENT)
		return 0;
	if (ret) {
		snprintf(err, errlen, "etcd: cannot read `%s': %s", key, strerror(-ret));
		return ret;
	}
	errno = 0;
	v = strtoull((const char *)kv.value, &end, 10);
	if (errno || *end || end == (const char *)kv.value || v > INT64_MAX / 2) {
		snprintf(err, errlen, "etcd: `%s' is not a revision: `%.32s'", key,
			 (const char *)kv.value);
		ret = -EPROTO;
	} else {
		x->offset = v;
	}
	etcd_kv_free(&kv);
	return ret;
}

static int cm_etcd_mod_cmp(const void *a, const void *b)
{
	const struct etcd_kv *x = a, *y = b;

	return x->mod_revision < y->mod_revision ? -1 : x->mod_revision > y->mod_revision;
}

/* Every key of one kind as of rev (0: now, then *rev is set). */
static int cm_etcd_list(struct cm_state *st, const char *kind, int64_t *rev,
			struct etcd_kvs *out)
{
	struct cm_etcd *x = st->etcd;
	char key[CM_ETCD_KEY_MAX], *end;
	struct etcd_range_req req = { .key = key, .revision = *rev };
	int ret;

	snprintf(key, sizeof(key), "%s%s", x->prefix, kind);
	end = etcd_prefix_end(key);
	if (!end)
		return -errno;
	req.range_end = end;
	ret = etcd_range(x->e, &req, out, *rev ? NULL : rev);
	free(end);
	return ret;
}

static int cm_etcd_load(struct cm_state *st, int64_t *rev, char *err, size_t errlen)
{
	/* In the order they are applied: what refers to nodes after them; the
	 * tombstones, which are history, last. */
	static const char *const kinds[] = { CM_ETCD_NODES, CM_ETCD_SUBNETS, CM_ETCD_SEEN,
					     CM_ETCD_EXTADDRS, CM_ETCD_EXTERNAL,
					     CM_ETCD_TOMBSTONES };
	enum { NK = sizeof(kinds) / sizeof(kinds[0]), TOMBS = NK - 1 };
	struct etcd_kvs kvs[NK];
	size_t nk = 0;
	int ret = 0;

	*rev = 0;
	for (; nk < NK && !ret; nk++)
		ret = cm_etcd_list(st, kinds[nk], rev, &kvs[nk]);
	if (ret) {
		snprintf(err, errlen, "etcd at %s: cannot list `%s%s': %s",
			 etcd_endpoint(st->etcd->e), st->etcd->prefix, kinds[nk - 1],
			 strerror(-ret));
		goto out;
	}
	/* The history in the order of the revisions, as the watch goes on. */
	for (int k = 0; k < NK; k++)
		if (kvs[k].n)
			qsort(kvs[k].kvs, kvs[k].n, sizeof(kvs[k].kvs[0]), cm_etcd_mod_cmp);
	for (int k = 0; k < TOMBS && !ret; k++)
		for (size_t i = 0; i < kvs[k].n && !ret; i++) {
			const struct cm_etcd_ev ev = { .key = kvs[k].kvs[i].key,
						       .value = (char *)kvs[k].kvs[i].value,
						       .mod_revision = kvs[k].kvs[i].mod_revision };

			ret = cm_etcd_apply(st, &ev);
		}
	for (size_t i = 0; i < kvs[TOMBS].n && !ret; i++) {
		const char *name = cm_etcd_key_rest(st->etcd, kvs[TOMBS].kvs[i].key,
						    CM_ETCD_TOMBSTONES);

		if (!name || strlen(name) > CM_NAME_MAX)
			continue;
		ret = cm_tomb_reserve(st);
		if (!ret) {
			struct cm_node *node = cm_state_find(st, name);
			int64_t trev = kvs[TOMBS].kvs[i].mod_revision + (int64_t)st->etcd->offset;

			cm_tomb_push(st, name, (uint64_t)trev);
			cm_etcd_bump(st, trev);
			/* A peer's tombstone newer than its record: stale. */
			if (node && node->public_key[0] && (uint64_t)trev > node->mod_revision)
				cm_stale_mark_mem(st, node, cm_stale_now(st));
		}
	}
	cm_tomb_prune(st);
	/* A revision a node holds from before the offset (SQLite's, before
	 * migrate) is not etcd's: a full set. */
	if (st->floor < st->etcd->offset)
		st->floor = st->etcd->offset;
	if (st->revision < st->etcd->offset)
		st->revision = st->committed = st->etcd->offset;
	if (ret)
		snprintf(err, errlen, "etcd: cannot load the state: %s", strerror(-ret));
out:
	while (nk--)
		etcd_kvs_free(&kvs[nk]);
	return ret;
}

struct cm_state *cm_state_open_etcd(const struct cm_etcd_opts *eo, const struct cm_config *cfg,
				    char *err, size_t errlen)
{
	const struct etcd_config ec = {
		.endpoints = eo->endpoints,
		.ca_file = eo->ca_file,
		.cert_file = eo->cert_file,
		.key_file = eo->key_file,
		.request_timeout_ms = eo->request_timeout_ms,
	};
	struct cm_state *st = calloc(1, sizeof(*st));
	struct cm_etcd *x = calloc(1, sizeof(*x));
	pthread_condattr_t ca;
	char key[CM_ETCD_KEY_MAX], *end = NULL;
	int64_t rev;
	int ret = -ENOMEM;

	if (!st || !x) {
		snprintf(err, errlen, "out of memory");
		free(st);
		free(x);
		errno = ENOMEM;
		return NULL;
	}
	st->ops = &cm_etcd_ops;
	st->etcd = x;
	x->efd = -1;
	pthread_mutex_init(&x->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The same rule as the flag's (main.c parses it with it too). */
	ret = cm_config_etcd_prefix(eo->prefix, x->prefix, sizeof(x->prefix) - 64, err, errlen);
	if (ret)
		goto err;
	ret = cm_state_init(st, cfg, err, errlen);
	if (!ret && cfg->n_external)
		ret = cm_ext_mem_init(st, err, errlen);
	if (ret)
		goto err;
	x->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	x->e = etcd_new(&ec);
	if (x->efd < 0 || !x->e) {
		ret = -errno;
		snprintf(err, errlen, "etcd: %s", x->e ? strerror(errno) :
			 "invalid --etcd-endpoints or unreadable TLS file");
		goto err;
	}
	ret = cm_etcd_check_config(st, err, errlen);
	if (!ret)
		ret = cm_etcd_read_offset(st, err, errlen);
	if (ret)
		goto err;
	ret = cm_etcd_load(st, &rev, err, errlen);
	if (ret)
		goto err;
	snprintf(key, sizeof(key), "%s/", x->prefix);
	end = etcd_prefix_end(key);
	x->w = end ? etcd_watch_start(x->e, key, end, rev + 1, cm_etcd_on_watch, x) : NULL;
	free(end);
	if (!x->w) {
		ret = -errno;
		snprintf(err, errlen, "etcd: cannot watch `%s': %s", key, strerror(errno));
		goto err;
	}
	if (x->applied < rev)
		x->applied = rev;
	st->last_flush = time(NULL);
	log_info("etcd: state listed", "endpoint=%s prefix=%s nodes=%zu revision=%" PRIu64
		 " store_revision=%" PRId64 " revision_offset=%" PRIu64, etcd_endpoint(x->e),
		 x->prefix, st->n_nodes, st->revision, rev, x->offset);
	return st;

err:
	cm_etcd_free(st);
	cm_state_free_mem(st);
	free(st);
	errno = -ret;
	return NULL;
}

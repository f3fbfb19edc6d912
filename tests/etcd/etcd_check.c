/*
 * pkg/etcd against a real etcd, driven by test_etcd_client.sh:
 *   etcd_check SCENARIO ENDPOINTS [ARGS]
 * Prints "ok - ..." / "not ok - ..." per check, exits 0 only when all held.
 * Every wait is bounded. The scenarios where members die, endpoints are
 * down and TLS are in etcd_check_fail.c.
 */
#include "etcd_check.h"

int failures;

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct etcd *client(const char *endpoints)
{
	struct etcd_config cfg = { .endpoints = endpoints, .dial_timeout_ms = 1000,
				   .request_timeout_ms = 3000 };
	struct etcd *e = etcd_new(&cfg);

	if (!e) {
		fprintf(stderr, "etcd_new(%s): %s\n", endpoints, strerror(errno));
		exit(1);
	}
	return e;
}

char *rotate(const char *endpoints)
{
	const char *comma = strchr(endpoints, ',');
	char *s;

	if (!comma)
		return strdup(endpoints);
	if (asprintf(&s, "%s,%.*s", comma + 1, (int)(comma - endpoints), endpoints) < 0)
		return NULL;
	return s;
}

int64_t head_revision(struct etcd *e)
{
	struct etcd_range_req r = { .key = "/", .count_only = true };
	struct etcd_kvs kvs;
	int64_t rev = 0;

	if (etcd_range(e, &r, &kvs, &rev))
		return -1;
	etcd_kvs_free(&kvs);
	return rev;
}

bool key_absent(struct etcd *e, const char *key)
{
	struct etcd_kv kv;
	int ret = etcd_get(e, key, &kv, NULL);

	etcd_kv_free(&kv);
	return ret == -ENOENT;
}

/* --- put, range, delete */

static void scenario_basic(const char *endpoints)
{
	static const uint8_t bin[] = { 0, 0xff, 'x', 0, '"', '\n', 0x80 };
	struct etcd *e = client(endpoints);
	struct etcd_range_req r = { 0 };
	struct etcd_kvs kvs;
	struct etcd_kv kv;
	int64_t rev = 0, rev2 = 0, deleted = 0;
	char *end, key[64];
	int ret;

	ret = etcd_put(e, "/t/basic/bin", bin, sizeof(bin), &rev);
	CHECK(ret == 0 && rev > 0, "put a binary value (ret %d, revision %" PRId64 ")", ret, rev);
	ret = etcd_get(e, "/t/basic/bin", &kv, &rev2);
	CHECK(ret == 0 && kv.value_len == sizeof(bin) && !memcmp(kv.value, bin, sizeof(bin)),
	      "get returns the bytes as put (ret %d)", ret);
	CHECK(kv.mod_revision == rev && kv.create_revision == rev && kv.version == 1 && rev2 >= rev,
	      "its revisions: create %" PRId64 " mod %" PRId64 " version %" PRId64,
	      kv.create_revision, kv.mod_revision, kv.version);
	etcd_kv_free(&kv);
	ret = etcd_put(e, "/t/basic/bin", "", 0, &rev2);
	CHECK(ret == 0 && rev2 > rev, "put an empty value");
	ret = etcd_get(e, "/t/basic/bin", &kv, NULL);
	CHECK(ret == 0 && kv.value_len == 0 && kv.version == 2 && kv.create_revision == rev,
	      "the empty value reads back, version 2");
	etcd_kv_free(&kv);

	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "/t/basic/p/%02d", i);
		etcd_put(e, key, key, strlen(key), NULL);
	}
	etcd_put(e, "/t/basic/p0", "outside", 7, NULL); /* sorts right after the prefix */
	end = etcd_prefix_end("/t/basic/p/");
	r = (struct etcd_range_req){ .key = "/t/basic/p/", .range_end = end };
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == 0 && kvs.n == 10 && kvs.count == 10 && !kvs.more,
	      "range over a prefix: 10 keys (got %zu)", kvs.n);
	ret = 0;
	for (size_t i = 0; i < kvs.n; i++) {
		snprintf(key, sizeof(key), "/t/basic/p/%02zu", i);
		if (strcmp(kvs.kvs[i].key, key) || kvs.kvs[i].value_len != strlen(key) ||
		    memcmp(kvs.kvs[i].value, key, strlen(key)))
			ret = -1;
	}
	CHECK(ret == 0, "in key order, with their values");
	etcd_kvs_free(&kvs);
	r.limit = 3;
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == 0 && kvs.n == 3 && kvs.more && kvs.count == 10,
	      "limit 3: 3 keys, more, count 10");
	etcd_kvs_free(&kvs);
	r.limit = 0;
	r.count_only = true;
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == 0 && kvs.n == 0 && kvs.count == 10, "count_only: count 10, no kvs");
	etcd_kvs_free(&kvs);

	ret = etcd_delete(e, "/t/basic/p/", end, &rev, &deleted);
	CHECK(ret == 0 && deleted == 10, "delete the prefix: 10 deleted (%" PRId64 ")", deleted);
	ret = etcd_get(e, "/t/basic/p/00", &kv, NULL);
	CHECK(ret == -ENOENT, "a deleted key is absent (-ENOENT, got %d)", ret);
	ret = etcd_get(e, "/t/basic/p0", &kv, NULL);
	CHECK(ret == 0 && kv.value_len == 7, "the key just past the prefix was kept");
	etcd_kv_free(&kv);
	ret = etcd_delete(e, "/t/basic/nothing", NULL, NULL, &deleted);
	CHECK(ret == 0 && deleted == 0, "deleting an absent key: 0 deleted");

	rev = head_revision(e);
	ret = etcd_put(e, "", "v", 1, NULL);
	CHECK(ret == -EINVAL, "an empty key is refused (%d)", ret);
	ret = etcd_put(e, NULL, "v", 1, NULL);
	CHECK(ret == -EINVAL, "a NULL key is refused (%d)", ret);
	CHECK(head_revision(e) == rev, "and nothing was written");
	r = (struct etcd_range_req){ .key = "/t/basic/bin", .revision = rev + 1000 };
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == -ERANGE, "a range at a future revision: -ERANGE (%d)", ret);
	free(end);
	etcd_free(e);
}

/* --- claim if absent, from two clients at once */

struct claimer {
	const char *name;
	struct etcd *e;
	pthread_barrier_t *barrier;
	int rounds;
	int wins;  /* first subnet of the round */
	int errors;
	int stolen; /* claimed though it had one */
};

#define CLAIM_SUBNETS 4

/* The cluster manager's claim: the subnet is free and the node has none. */
static int claim(struct claimer *c, int round, int subnet, bool *won, char *holder,
		 size_t holder_len)
{
	char skey[64], nkey[64], sval[16];
	struct etcd_cmp cmp[2];
	struct etcd_op ok[2], fail[2];
	struct etcd_txn t;
	struct etcd_txn_result res;
	int ret;

	snprintf(skey, sizeof(skey), "/t/claim/%d/subnets/%d", round, subnet);
	snprintf(nkey, sizeof(nkey), "/t/claim/%d/nodes/%s", round, c->name);
	snprintf(sval, sizeof(sval), "%d", subnet);
	cmp[0] = (struct etcd_cmp){ .target = ETCD_CMP_CREATE, .key = skey, .number = 0 };
	cmp[1] = (struct etcd_cmp){ .target = ETCD_CMP_CREATE, .key = nkey, .number = 0 };
	ok[0] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = skey, .value = c->name,
				  .value_len = strlen(c->name) };
	ok[1] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = nkey, .value = sval,
				  .value_len = strlen(sval) };
	fail[0] = (struct etcd_op){ .type = ETCD_OP_RANGE, .key = skey };
	fail[1] = (struct etcd_op){ .type = ETCD_OP_RANGE, .key = nkey };
	t = (struct etcd_txn){ cmp, 2, ok, fail, 2, 2 };
	ret = etcd_txn(c->e, &t, &res);
	if (ret)
		return ret;
	*won = res.succeeded;
	holder[0] = '\0';
	if (!res.succeeded) {
		if (res.n != 2 || res.results[0].type != ETCD_OP_RANGE) {
			ret = -EPROTO;
		} else if (res.results[1].kvs.n) {
			snprintf(holder, holder_len, "self");
		} else if (res.results[0].kvs.n) {
			snprintf(holder, holder_len, "%s", (char *)res.results[0].kvs.kvs[0].value);
		}
	} else if (res.n != 2 || res.results[0].type != ETCD_OP_PUT) {
		ret = -EPROTO;
	}
	etcd_txn_result_free(&res);
	return ret;
}

static void *claimer_main(void *arg)
{
	struct claimer *c = arg;
	char holder[64];
	bool won;

	for (int round = 0; round < c->rounds; round++) {
		pthread_barrier_wait(c->barrier);
		for (int s = 0; s < CLAIM_SUBNETS; s++) {
			if (claim(c, round, s, &won, holder, sizeof(holder))) {
				c->errors++;
				break;
			}
			if (won) {
				if (s == 0)
					c->wins++;
				/* Once it has one, a second claim must fail. */
				if (!claim(c, round, CLAIM_SUBNETS, &won, holder, sizeof(holder)) &&
				    (won || strcmp(holder, "self")))
					c->stolen++;
				break;
			}
			if (!strcmp(holder, c->name) || !holder[0]) {
				c->errors++; /* lost, yet the subnet is ours or free */
				break;
			}
		}
	}
	return NULL;
}

static void scenario_claim(const char *endpoints)
{
	enum { ROUNDS = 60 };
	char *rotated = rotate(endpoints);
	struct etcd *ea = client(endpoints), *eb = client(rotated);
	pthread_barrier_t barrier;
	struct claimer a = { .name = "node-a", .e = ea, .barrier = &barrier, .rounds = ROUNDS };
	struct claimer b = { .name = "node-b", .e = eb, .barrier = &barrier, .rounds = ROUNDS };
	struct etcd_range_req r;
	struct etcd_kvs kvs;
	pthread_t ta, tb;
	char prefix[64], *end;
	int bad = 0;

	pthread_barrier_init(&barrier, NULL, 2);
	pthread_create(&ta, NULL, claimer_main, &a);
	pthread_create(&tb, NULL, claimer_main, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.errors == 0 && b.errors == 0, "claims: no errors (a %d, b %d)", a.errors, b.errors);
	CHECK(a.wins + b.wins == ROUNDS,
	      "the first subnet went to exactly one node each round (a %d + b %d of %d)", a.wins,
	      b.wins, ROUNDS);
	CHECK(a.stolen == 0 && b.stolen == 0, "a node with a subnet cannot claim a second");
	for (int round = 0; round < ROUNDS; round++) {
		snprintf(prefix, sizeof(prefix), "/t/claim/%d/subnets/", round);
		end = etcd_prefix_end(prefix);
		r = (struct etcd_range_req){ .key = prefix, .range_end = end };
		if (etcd_range(ea, &r, &kvs, NULL) || kvs.n != 2 ||
		    !strcmp((char *)kvs.kvs[0].value, (char *)kvs.kvs[1].value) ||
		    strcmp(kvs.kvs[0].key + strlen(prefix), "0") ||
		    strcmp(kvs.kvs[1].key + strlen(prefix), "1"))
			bad++;
		etcd_kvs_free(&kvs);
		free(end);
	}
	CHECK(bad == 0, "each round: subnets 0 and 1 taken, one per node (%d bad rounds)", bad);
	pthread_barrier_destroy(&barrier);
	etcd_free(ea);
	etcd_free(eb);
	free(rotated);
}

/* --- compare-and-swap on mod_revision */

struct incr {
	struct etcd *e;
	int times, conflicts, errors;
};

static void *incr_main(void *arg)
{
	struct incr *c = arg;
	struct etcd_kv kv;
	int64_t value, mod;
	char next[32];

	if (etcd_get(c->e, "/t/cas/counter", &kv, NULL)) {
		c->errors++;
		return NULL;
	}
	value = strtoll((char *)kv.value, NULL, 10);
	mod = kv.mod_revision;
	etcd_kv_free(&kv);
	for (int done = 0, tries = 0; done < c->times && tries < 100000; tries++) {
		struct etcd_cmp cmp = { .target = ETCD_CMP_MOD, .key = "/t/cas/counter",
					.number = mod };
		struct etcd_op put = { .type = ETCD_OP_PUT, .key = "/t/cas/counter", .value = next };
		struct etcd_op get = { .type = ETCD_OP_RANGE, .key = "/t/cas/counter" };
		struct etcd_txn t = { &cmp, 1, &put, &get, 1, 1 };
		struct etcd_txn_result res;

		snprintf(next, sizeof(next), "%" PRId64, value + 1);
		put.value_len = strlen(next);
		if (etcd_txn(c->e, &t, &res)) {
			c->errors++;
			return NULL;
		}
		if (res.succeeded) {
			value++;
			mod = res.revision;
			done++;
		} else if (res.n == 1 && res.results[0].kvs.n == 1) {
			/* Lost the race: the failure branch read the new value. */
			c->conflicts++;
			value = strtoll((char *)res.results[0].kvs.kvs[0].value, NULL, 10);
			mod = res.results[0].kvs.kvs[0].mod_revision;
		} else {
			c->errors++;
		}
		etcd_txn_result_free(&res);
	}
	return NULL;
}

static void scenario_cas(const char *endpoints)
{
	enum { N = 3, TIMES = 40 };
	char *rotated = rotate(endpoints);
	struct incr c[N];
	pthread_t t[N];
	struct etcd_kv kv;
	int errors = 0, conflicts = 0;

	etcd_put(c[0].e = client(endpoints), "/t/cas/counter", "0", 1, NULL);
	for (int i = 0; i < N; i++) {
		if (i)
			c[i].e = client(i % 2 ? rotated : endpoints);
		c[i].times = TIMES;
		c[i].conflicts = c[i].errors = 0;
		pthread_create(&t[i], NULL, incr_main, &c[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		errors += c[i].errors;
		conflicts += c[i].conflicts;
	}
	CHECK(errors == 0, "CAS increments: no errors (%d)", errors);
	CHECK(etcd_get(c[0].e, "/t/cas/counter", &kv, NULL) == 0 &&
		      strtoll((char *)kv.value, NULL, 10) == N * TIMES,
	      "%d clients x %d CAS increments: the counter is %d (%d conflicts retried)", N, TIMES,
	      N * TIMES, conflicts);
	etcd_kv_free(&kv);
	CHECK(kv.value == NULL, "etcd_kv_free zeroes");
	for (int i = 0; i < N; i++)
		etcd_free(c[i].e);
	free(rotated);
}

/* --- watch */

void seen_cb(const struct etcd_watch_msg *m, void *ctx)
{
	struct seen *s = ctx;

	pthread_mutex_lock(&s->lock);
	switch (m->status) {
	case ETCD_WATCH_EVENTS:
		s->batches++;
		for (size_t i = 0; i < m->n && s->n < MAX_SEEN; i++, s->n++) {
			const struct etcd_event *ev = &m->events[i];

			s->rev[s->n] = ev->kv.mod_revision;
			s->type[s->n] = ev->type;
			snprintf(s->key[s->n], sizeof(s->key[0]), "%s", ev->kv.key);
			snprintf(s->value[s->n], sizeof(s->value[0]), "%.*s", (int)ev->kv.value_len,
				 (char *)ev->kv.value);
			s->prev[s->n] = ev->has_prev;
			s->batch_of[s->n] = s->batches;
			if (ev->kv.mod_revision > m->revision)
				s->bad_batch_revision = true;
		}
		break;
	case ETCD_WATCH_COMPACTED:
		s->compacted++;
		s->compact_revision = m->compact_revision;
		break;
	case ETCD_WATCH_RECONNECTING:
		s->reconnects++;
		break;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

struct seen *seen_new(void)
{
	struct seen *s = calloc(1, sizeof(*s));

	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	return s;
}

bool seen_wait(struct seen *s, int64_t rev, bool compaction, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct timespec ts;
	bool ok;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		ok = compaction ? s->compacted > 0 : (s->n && s->rev[s->n - 1] >= rev);
		if (ok || now_ms() > deadline)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void scenario_watch(const char *endpoints)
{
	struct etcd *e = client(endpoints), *w = client(endpoints);
	struct seen *s = seen_new();
	struct etcd_watch *wt;
	struct etcd_cmp none = { .target = ETCD_CMP_VERSION, .key = "/t/watch/x", .number = 0 };
	struct etcd_op two[] = { { .type = ETCD_OP_PUT, .key = "/t/watch/x", .value = "tx1", .value_len = 3 },
				 { .type = ETCD_OP_PUT, .key = "/t/watch/y", .value = "tx2", .value_len = 3 } };
	struct etcd_txn t = { &none, 1, two, NULL, 2, 0 };
	struct etcd_txn_result res;
	int64_t start, rev[5];
	bool ok;

	etcd_put(e, "/t/watch/before", "b", 1, &start);
	etcd_put(e, "/t/watchers", "outside", 7, NULL); /* not under the prefix */
	/* From the revision of the first put on: history is replayed. */
	wt = etcd_watch_start(w, "/t/watch/", "/t/watch0", start, seen_cb, s);
	CHECK(wt != NULL, "watch started");
	etcd_put(e, "/t/watch/a", "1", 1, &rev[0]);
	etcd_put(e, "/t/watch/a", "2", 1, &rev[1]);
	etcd_delete(e, "/t/watch/a", NULL, &rev[2], NULL);
	etcd_txn(e, &t, &res);
	rev[3] = res.revision;
	CHECK(res.succeeded, "a transaction of two puts");
	etcd_txn_result_free(&res);
	etcd_put(e, "/t/watch/z", "last", 4, &rev[4]);
	ok = seen_wait(s, rev[4], false, 10000);
	CHECK(ok, "the watch delivered up to revision %" PRId64, rev[4]);
	etcd_watch_stop(wt);
	CHECK(s->n == 7, "7 events (got %zu)", s->n);
	if (s->n == 7) {
		CHECK(s->rev[0] == start && !strcmp(s->key[0], "/t/watch/before"),
		      "the first is the put at the start revision (replayed)");
		CHECK(s->rev[1] == rev[0] && s->type[1] == ETCD_EVENT_PUT && !strcmp(s->value[1], "1"),
		      "put a=1 at %" PRId64, rev[0]);
		CHECK(s->rev[2] == rev[1] && !strcmp(s->value[2], "2") && s->prev[2],
		      "put a=2 at %" PRId64 " with its previous kv", rev[1]);
		CHECK(s->rev[3] == rev[2] && s->type[3] == ETCD_EVENT_DELETE && s->prev[3] &&
			      !strcmp(s->key[3], "/t/watch/a"),
		      "delete a at %" PRId64, rev[2]);
		CHECK(s->rev[4] == rev[3] && s->rev[5] == rev[3] && s->batch_of[4] == s->batch_of[5] &&
			      !strcmp(s->value[4], "tx1") && !strcmp(s->value[5], "tx2"),
		      "the transaction's two puts in one batch at %" PRId64, rev[3]);
		CHECK(s->rev[6] == rev[4] && !strcmp(s->value[6], "last"), "put z at %" PRId64, rev[4]);
	}
	CHECK(!s->bad_batch_revision && s->reconnects == 0,
	      "no event past its batch's revision, no reconnect");
	/* Stopping an idle watch is prompt. */
	{
		int64_t t0;

		wt = etcd_watch_start(w, "/t/idle/", NULL, 0, seen_cb, s);
		t0 = now_ms();
		etcd_watch_stop(wt);
		CHECK(now_ms() - t0 < 1000, "an idle watch stops within 1 s (%" PRId64 " ms)",
		      now_ms() - t0);
	}
	CHECK(etcd_watch_start(w, "", NULL, 0, seen_cb, s) == NULL && errno == EINVAL,
	      "a watch on an empty key is refused");
	etcd_watch_stop(NULL);
	free(s);
	etcd_free(e);
	etcd_free(w);
}

static void scenario_compaction(const char *endpoints)
{
	struct etcd *e = client(endpoints);
	struct seen *s = seen_new();
	struct etcd_watch *wt;
	struct etcd_range_req r;
	struct etcd_kvs kvs;
	int64_t old, rev;
	int ret;

	etcd_put(e, "/t/compact/k", "1", 1, &old);
	etcd_put(e, "/t/compact/k", "2", 1, NULL);
	etcd_put(e, "/t/compact/k", "3", 1, &rev);
	ret = etcd_compact(e, rev);
	CHECK(ret == 0, "compacted to %" PRId64 " (%d)", rev, ret);
	r = (struct etcd_range_req){ .key = "/t/compact/k", .revision = old };
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == -ESTALE, "a range at a compacted revision: -ESTALE (%d)", ret);
	wt = etcd_watch_start(e, "/t/compact/", "/t/compact0", old, seen_cb, s);
	CHECK(seen_wait(s, 0, true, 10000) && s->compact_revision == rev && s->n == 0,
	      "a watch from a compacted revision is told so (compact_revision %" PRId64 ")",
	      s->compact_revision);
	etcd_watch_stop(wt);
	free(s);
	etcd_free(e);
}

static void scenario_lease(const char *endpoints)
{
	struct etcd *e = client(endpoints);
	struct etcd_op put = { .type = ETCD_OP_PUT, .key = "/t/lease/a", .value = "x", .value_len = 1 };
	struct etcd_txn t = { .success = &put, .n_success = 1 };
	struct etcd_txn_result res;
	struct etcd_kv kv;
	int64_t id = 0, ttl = 0, deadline;
	int ret;

	ret = etcd_lease_grant(e, 30, &id, &ttl);
	CHECK(ret == 0 && id > 0 && ttl == 30, "lease granted (id %" PRId64 ", ttl %" PRId64 ")", id,
	      ttl);
	put.lease = id;
	ret = etcd_txn(e, &t, &res);
	CHECK(ret == 0 && res.succeeded, "a key put with the lease");
	etcd_txn_result_free(&res);
	ret = etcd_get(e, "/t/lease/a", &kv, NULL);
	CHECK(ret == 0 && kv.lease == id, "the key carries the lease");
	etcd_kv_free(&kv);
	ttl = 0;
	ret = etcd_lease_keepalive(e, id, &ttl);
	CHECK(ret == 0 && ttl == 30, "keepalive renews it (ttl %" PRId64 ", %d)", ttl, ret);
	ret = etcd_lease_revoke(e, id);
	CHECK(ret == 0 && key_absent(e, "/t/lease/a"), "revoked: its key is gone (%d)", ret);
	ret = etcd_lease_keepalive(e, id, &ttl);
	CHECK(ret == -ENOENT, "keepalive of a revoked lease: -ENOENT (%d)", ret);
	ret = etcd_lease_revoke(e, id);
	CHECK(ret == -ENOENT, "revoking it again: -ENOENT (%d)", ret);

	/* Expiry: no keepalive, the key goes after the TTL (polled, bounded). */
	etcd_lease_grant(e, 1, &id, NULL);
	put.lease = id;
	etcd_txn(e, &t, &res);
	etcd_txn_result_free(&res);
	CHECK(!key_absent(e, "/t/lease/a"), "a key on a 1 s lease");
	deadline = now_ms() + 10000;
	while (!key_absent(e, "/t/lease/a") && now_ms() < deadline)
		usleep(100 * 1000);
	CHECK(key_absent(e, "/t/lease/a"), "gone once the lease expired");
	etcd_free(e);
}

int main(int argc, char **argv)
{
	log_init("etcd_check", getenv("ETCD_CHECK_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	if (argc < 3) {
		fprintf(stderr, "usage: etcd_check SCENARIO ENDPOINTS [ARGS]\n");
		return 2;
	}
	if (!strcmp(argv[1], "basic"))
		scenario_basic(argv[2]);
	else if (!strcmp(argv[1], "claim"))
		scenario_claim(argv[2]);
	else if (!strcmp(argv[1], "cas"))
		scenario_cas(argv[2]);
	else if (!strcmp(argv[1], "watch"))
		scenario_watch(argv[2]);
	else if (!strcmp(argv[1], "watch-failover") && argc == 4)
		scenario_watch_failover(argv[2], (pid_t)atoi(argv[3]));
	else if (!strcmp(argv[1], "no-leader") && argc == 4)
		scenario_no_leader(argv[2], (pid_t)atoi(argv[3]));
	else if (!strcmp(argv[1], "lease"))
		scenario_lease(argv[2]);
	else if (!strcmp(argv[1], "dead-first"))
		scenario_dead_first(argv[2]);
	else if (!strcmp(argv[1], "compaction"))
		scenario_compaction(argv[2]);
	else if (!strcmp(argv[1], "down") && argc == 4)
		scenario_down(argv[2], argv[3]);
	else if (!strcmp(argv[1], "tls") && argc == 6)
		scenario_tls(argv[2], argv[3], argv[4], argv[5]);
	else {
		fprintf(stderr, "etcd_check: unknown scenario or arguments: %s\n", argv[1]);
		return 2;
	}
	printf("# %s: %d failed\n", argv[1], failures);
	return failures ? 1 : 0;
}

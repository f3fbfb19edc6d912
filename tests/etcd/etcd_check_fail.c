/* etcd_check scenarios where members die, endpoints are down, and TLS. */
#include "etcd_check.h"

/* The watch's member is killed mid-stream: the watch moves on, no event
 * lost or repeated. Only this scenario writes meanwhile, so the events'
 * revisions must be every revision from the first to the last. */
void scenario_watch_failover(const char *endpoints, pid_t victim)
{
	enum { WRITES = 150, KILL_AT = 30 };
	char *rotated = rotate(endpoints);
	struct etcd *w = client(endpoints), *writer = client(rotated);
	struct seen *s = seen_new();
	struct etcd_watch *wt;
	int64_t start, last = 0, rev, deadline;
	int errors = 0, gaps = 0, i;
	char key[48];

	/* w keeps a connection to the member about to die. */
	CHECK(etcd_put(w, "/t/after-kill/a", "1", 1, NULL) == 0 &&
		      !strncmp(etcd_endpoint(w), endpoints, strlen(etcd_endpoint(w))),
	      "a put through the first endpoint");
	etcd_put(writer, "/t/failover/start", "s", 1, &start);
	wt = etcd_watch_start(w, "/t/failover/", "/t/failover0", start + 1, seen_cb, s);
	deadline = now_ms() + 30000;
	for (i = 0; i < WRITES && now_ms() < deadline; i++) {
		if (i == KILL_AT) {
			seen_wait(s, last, false, 5000);
			CHECK(kill(victim, SIGKILL) == 0, "killed the member of the watch's endpoint (pid %d)",
			      (int)victim);
		}
		snprintf(key, sizeof(key), "/t/failover/%03d", i);
		if (etcd_put(writer, key, "v", 1, &rev) == 0)
			last = rev;
		else
			errors++; /* during the election; its fate is in the revisions */
	}
	CHECK(i == WRITES, "%d writes done (%d failed during the election)", i, errors);
	last = head_revision(writer);
	CHECK(seen_wait(s, last, false, 20000), "the watch caught up to revision %" PRId64, last);
	etcd_watch_stop(wt);
	for (size_t k = 0; k < s->n; k++)
		if (s->rev[k] != start + 1 + (int64_t)k)
			gaps++;
	CHECK(s->n > 0 && gaps == 0 && s->rev[s->n - 1] == last,
	      "every revision %" PRId64 "..%" PRId64 " exactly once, in order (%zu events, %d off)",
	      start + 1, last, s->n, gaps);
	CHECK(s->reconnects >= 1, "the watch reconnected (%zu times)", s->reconnects);
	CHECK(etcd_put(w, "/t/after-kill/a", "2", 1, NULL) == 0,
	      "a put on the client whose member died fails over");
	free(s);
	etcd_free(w);
	etcd_free(writer);
	free(rotated);
}

/* The first endpoint is dead (ARGS: the endpoints with a dead one first). */
void scenario_dead_first(const char *endpoints)
{
	struct etcd *e = client(endpoints);
	struct etcd_kv kv;
	int64_t t0 = now_ms();
	int ret;

	ret = etcd_put(e, "/t/dead-first", "x", 1, NULL);
	CHECK(ret == 0, "a put with the first endpoint down fails over (%d)", ret);
	ret = etcd_get(e, "/t/dead-first", &kv, NULL);
	CHECK(ret == 0 && kv.value_len == 1, "and a range");
	etcd_kv_free(&kv);
	CHECK(strncmp(etcd_endpoint(e), endpoints, strlen(etcd_endpoint(e))),
	      "the client remembers the endpoint that answered (%s)", etcd_endpoint(e));
	CHECK(now_ms() - t0 < 5000, "in bounded time (%" PRId64 " ms)", now_ms() - t0);
	etcd_free(e);
}

/* ENDPOINTS: the one member left once VICTIM is killed: no quorum, no leader. */
void scenario_no_leader(const char *endpoints, pid_t victim)
{
	struct etcd *e = client(endpoints);
	struct seen *s = seen_new();
	struct etcd_watch *wt;
	struct etcd_range_req r = { .key = "/t/dead-first" };
	struct etcd_kvs kvs;
	int64_t t0, deadline;
	size_t reconnects = 0;
	int ret;

	wt = etcd_watch_start(e, "/t/no-leader/", NULL, 0, seen_cb, s);
	CHECK(kill(victim, SIGKILL) == 0, "killed a second member: no quorum left");
	/* The member cancels watches that asked for a leader (hasleader). */
	deadline = now_ms() + 20000;
	while (now_ms() < deadline) {
		pthread_mutex_lock(&s->lock);
		reconnects = s->reconnects;
		pthread_mutex_unlock(&s->lock);
		if (reconnects)
			break;
		usleep(50 * 1000);
	}
	CHECK(reconnects > 0, "the watch on the leaderless member broke off (%zu)", reconnects);
	etcd_watch_stop(wt);
	r.serializable = true;
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == 0 && kvs.n == 1, "a serializable range still answers (%d)", ret);
	etcd_kvs_free(&kvs);
	t0 = now_ms();
	ret = etcd_put(e, "/t/no-leader/x", "v", 1, NULL);
	CHECK(ret == -ETIMEDOUT || ret == -EAGAIN,
	      "a put without quorum: %s in %" PRId64 " ms", strerror(-ret), now_ms() - t0);
	CHECK(now_ms() - t0 < 4000, "bounded by the request timeout");
	free(s);
	etcd_free(e);
}

/* A listener that never accepts: connections complete, answers never come. */
static int hung_listener(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

/* ENDPOINTS: live ones, for the hung-then-live checks; ARGS: dead ports. */
void scenario_down(const char *live, const char *dead)
{
	static const char *const bad[] = { "", "ftp://127.0.0.1:2379", "http://", "127.0.0.1:2379",
					   "http://127.0.0.1:2379/v3", "http://a,", "http://a b" };
	struct etcd_config cfg = { .endpoints = dead, .request_timeout_ms = 500 };
	struct etcd *e;
	struct etcd_kvs kvs;
	struct etcd_range_req r = { .key = "/t/x" };
	char *eps;
	int64_t t0;
	int fd, port, ret;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.endpoints = bad[i];
		errno = 0;
		e = etcd_new(&cfg);
		CHECK(!e && errno == EINVAL, "endpoints \"%s\" refused", bad[i]);
		etcd_free(e);
	}
	cfg.endpoints = "http://127.0.0.1:1";
	cfg.ca_file = "/nonexistent/ca.pem";
	CHECK(!etcd_new(&cfg) && errno == ENOENT, "a missing CA file is refused");
	cfg.ca_file = NULL;
	cfg.cert_file = "/etc/hostname";
	CHECK(!etcd_new(&cfg) && errno == EINVAL, "a cert without a key is refused");
	cfg.cert_file = NULL;

	cfg.endpoints = dead;
	e = etcd_new(&cfg);
	t0 = now_ms();
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == -ECONNREFUSED && now_ms() - t0 < 2000,
	      "all endpoints down: -ECONNREFUSED in %" PRId64 " ms (%d)", now_ms() - t0, ret);
	ret = etcd_put(e, "/t/x", "v", 1, NULL);
	CHECK(ret == -ECONNREFUSED, "a put too (%d)", ret);
	etcd_free(e);

	port = 0;
	fd = hung_listener(&port);
	CHECK(fd >= 0, "a listener that never answers, on port %d", port);
	if (fd < 0)
		return;
	if (asprintf(&eps, "http://127.0.0.1:%d,%s", port, live) < 0)
		exit(1);
	cfg.endpoints = eps;
	e = etcd_new(&cfg);
	t0 = now_ms();
	ret = etcd_put(e, "/t/hung", "v", 1, NULL);
	CHECK(ret == -ETIMEDOUT && now_ms() - t0 < 2000,
	      "a put to an endpoint that never answers: -ETIMEDOUT in %" PRId64 " ms, not retried "
	      "elsewhere (it may have been applied) (%d)",
	      now_ms() - t0, ret);
	CHECK(!strncmp(etcd_endpoint(e), live, strlen(etcd_endpoint(e))),
	      "the next call starts past the endpoint that hung (%s)", etcd_endpoint(e));
	ret = etcd_put(e, "/t/hung", "v", 1, NULL);
	CHECK(ret == 0, "and succeeds there (%d)", ret);
	etcd_free(e);
	e = etcd_new(&cfg);
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == 0, "a range moves on from the hung endpoint to a live one (%d)", ret);
	etcd_kvs_free(&kvs);
	etcd_cancel(e);
	ret = etcd_range(e, &r, &kvs, NULL);
	CHECK(ret == -ECANCELED, "after etcd_cancel: -ECANCELED (%d)", ret);
	etcd_free(e);
	free(eps);
	close(fd);
}

/* ARGS: CA, client cert, client key of a member that asks for client certs. */
void scenario_tls(const char *endpoints, const char *ca, const char *cert,
			 const char *key)
{
	struct etcd_config cfg = { .endpoints = endpoints, .ca_file = ca, .cert_file = cert,
				   .key_file = key, .dial_timeout_ms = 5000,
				   .request_timeout_ms = 5000 };
	struct etcd *e = etcd_new(&cfg);
	struct seen *s = seen_new();
	struct etcd_watch *wt;
	struct etcd_kv kv;
	int64_t rev;
	int ret;

	ret = etcd_put(e, "/t/tls", "secret-ish", 10, &rev);
	CHECK(ret == 0, "put over TLS with a client certificate (%d)", ret);
	ret = etcd_get(e, "/t/tls", &kv, NULL);
	CHECK(ret == 0 && kv.value_len == 10, "range over TLS");
	etcd_kv_free(&kv);
	wt = etcd_watch_start(e, "/t/tls", NULL, rev, seen_cb, s);
	CHECK(seen_wait(s, rev, false, 10000), "watch over TLS");
	etcd_watch_stop(wt);
	etcd_free(e);

	cfg.ca_file = NULL; /* the system store does not know our CA */
	e = etcd_new(&cfg);
	ret = etcd_put(e, "/t/tls", "x", 1, NULL);
	CHECK(ret == -EKEYREJECTED, "an untrusted server certificate: -EKEYREJECTED (%d)", ret);
	etcd_free(e);
	cfg.ca_file = ca;
	cfg.cert_file = cfg.key_file = NULL;
	e = etcd_new(&cfg);
	ret = etcd_put(e, "/t/tls", "x", 1, NULL);
	CHECK(ret < 0, "no client certificate: refused (%d, %s)", ret, strerror(-ret));
	etcd_free(e);
	free(s);
}

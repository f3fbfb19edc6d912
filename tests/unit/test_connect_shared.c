/*
 * The connect server's group-commit and shared-answer additions: a held
 * answer goes out only at connect_server_release (and becomes `unavailable'
 * when the commit failed); a body encoded once answers many calls in either
 * encoding and outlives its creator's reference; connect_server_waiting
 * counts the deferred calls of one method.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "connect.h"
#include "log.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#define P_HELD "/wgcni.cluster.v1.ClusterService/AllocateSubnet"
#define P_SHARED "/wgcni.cluster.v1.ClusterService/WatchPeers"
#define P_WAIT "/wgcni.cluster.v1.ClusterService/ListPeers"

struct app {
	atomic_int held;     /* calls held by the handler */
	atomic_int release;  /* 1: release ok, 2: release failed (after_run) */
	atomic_int waiting;  /* connect_server_waiting(P_WAIT), set by after_run */
	atomic_int wake_waiters;
};
static struct app app;
static struct connect_server *srv;
static pthread_t srv_thread;
static volatile sig_atomic_t srv_stop;
static char base_url[64];

static int h_held(struct connect_call *call, void *ctx)
{
	struct app *a = ctx;
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp = connect_call_alloc(call, sizeof(*resp));
	char **s = connect_call_alloc(call, sizeof(*s));

	if (!resp || !s)
		return connect_fail(call, CONNECT_INTERNAL, "out of memory");
	wgcni__cluster__v1__allocate_subnet_response__init(resp);
	s[0] = connect_call_strdup(call, "10.100.9.0/24");
	resp->n_subnets = 1;
	resp->subnets = s;
	connect_reply(call, &resp->base);
	atomic_fetch_add(&a->held, 1);
	return connect_call_hold(call);
}

/* A body made for each call and dropped at once: only the call's own
 * reference keeps it until it is sent. */
static int h_shared(struct connect_call *call, void *ctx)
{
	Wgcni__Cluster__V1__WatchPeersResponse msg = WGCNI__CLUSTER__V1__WATCH_PEERS_RESPONSE__INIT;
	Wgcni__Cluster__V1__Peer peer = WGCNI__CLUSTER__V1__PEER__INIT, *peers[1] = { &peer };
	char *removed[1] = { "gone" };
	struct connect_body *b, *wrong;
	int ret;

	peer.name = "n1";
	msg.revision = 42;
	msg.n_peers = 1;
	msg.peers = peers;
	msg.n_removed = 1;
	msg.removed = removed;
	/* The other encoding is refused. */
	wrong = connect_body_new(&msg.base, !connect_call_json(call));
	if (!wrong || connect_reply_body(call, wrong) != -EINVAL) {
		connect_body_free(wrong);
		return connect_fail(call, CONNECT_INTERNAL, "wrong encoding accepted");
	}
	connect_body_free(wrong);
	b = connect_body_new(&msg.base, connect_call_json(call));
	if (!b)
		return connect_fail(call, CONNECT_INTERNAL, "connect_body_new failed");
	ret = connect_reply_body(call, b);
	connect_body_free(b);
	atomic_fetch_add(&app.held, 1);
	connect_call_hold(call);
	return ret;
}

static int h_wait(struct connect_call *call, void *ctx)
{
	Wgcni__Cluster__V1__ListPeersResponse resp = WGCNI__CLUSTER__V1__LIST_PEERS_RESPONSE__INIT;

	if (!connect_call_expired(call) && !atomic_load(&app.wake_waiters))
		return connect_call_defer(call, 10000);
	return connect_reply(call, &resp.base);
}

static const struct connect_method methods[] = {
	{ P_HELD, &wgcni__cluster__v1__allocate_subnet_request__descriptor,
	  &wgcni__cluster__v1__allocate_subnet_response__descriptor, h_held },
	{ P_SHARED, &wgcni__cluster__v1__watch_peers_request__descriptor,
	  &wgcni__cluster__v1__watch_peers_response__descriptor, h_shared },
	{ P_WAIT, &wgcni__cluster__v1__list_peers_request__descriptor,
	  &wgcni__cluster__v1__list_peers_response__descriptor, h_wait },
};

static int app_after_run(void *ctx)
{
	struct app *a = ctx;
	int r = atomic_exchange(&a->release, 0);

	atomic_store(&a->waiting, (int)connect_server_waiting(srv, P_WAIT));
	if (r)
		connect_server_release(srv, r == 1);
	return 0;
}

static void *srv_main(void *arg)
{
	connect_server_run(srv, &srv_stop);
	return NULL;
}

static int setup(void **state)
{
	const struct connect_server_config cfg = {
		.methods = methods, .n_methods = 3, .ctx = &app, .after_run = app_after_run,
	};

	log_init("test_connect_shared", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = connect_server_new(&cfg);
	if (!srv || connect_server_listen_tcp(srv, "127.0.0.1:0") < 0)
		return -1;
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", connect_server_port(srv, 0));
	return pthread_create(&srv_thread, NULL, srv_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	srv_stop = 1;
	connect_server_wake(srv);
	pthread_join(srv_thread, NULL);
	connect_server_free(srv);
	curl_global_cleanup();
	return 0;
}

struct call {
	const char *path, *ctype;
	const char *body;
	size_t len;
	long status;
	char resp[512];
	size_t resp_len;
	atomic_int done;
	pthread_t thread;
};

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
	struct call *c = ud;
	size_t k = s * n;

	if (k > sizeof(c->resp) - 1 - c->resp_len)
		k = sizeof(c->resp) - 1 - c->resp_len;
	memcpy(c->resp + c->resp_len, p, k);
	c->resp_len += k;
	return s * n;
}

static void *call_main(void *p)
{
	struct call *c = p;
	struct curl_slist *h = NULL;
	char url[256], hdr[128];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", base_url, c->path);
	snprintf(hdr, sizeof(hdr), "Content-Type: %s", c->ctype);
	h = curl_slist_append(h, hdr);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	atomic_store(&c->done, 1);
	return NULL;
}

static void start(struct call *c, const char *path, const char *ctype, const char *body,
		  size_t len)
{
	memset(c, 0, sizeof(*c));
	c->path = path;
	c->ctype = ctype;
	c->body = body;
	c->len = len;
	assert_int_equal(pthread_create(&c->thread, NULL, call_main, c), 0);
}

/* Polls (bounded, 5 s) until *v == want. */
static bool wait_int(atomic_int *v, int want)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < 500; i++) {
		if (atomic_load(v) == want)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static void release(int how)
{
	atomic_store(&app.release, how);
	connect_server_wake(srv); /* a turn of the loop */
}

static void test_hold_release(void **state)
{
	struct call c;
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	atomic_store(&app.held, 0);
	start(&c, P_HELD, "application/json", "{\"nodeName\":\"n1\"}", 17);
	assert_true(wait_int(&app.held, 1));
	nanosleep(&ts, NULL);
	assert_int_equal(atomic_load(&c.done), 0); /* answered, but held */
	release(1);
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 200);
	assert_non_null(strstr(c.resp, "10.100.9.0/24"));
}

static void test_hold_release_failed(void **state)
{
	struct call c;

	atomic_store(&app.held, 0);
	start(&c, P_HELD, "application/json", "{\"nodeName\":\"n1\"}", 17);
	assert_true(wait_int(&app.held, 1));
	release(2);
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 503);
	assert_non_null(strstr(c.resp, "\"unavailable\""));
	assert_null(strstr(c.resp, "10.100.9.0/24"));
}

static void test_shared_bodies(void **state)
{
	static const uint8_t want_pb[] = { 0x08, 42, 0x1a, 0x04, 0x0a, 0x02, 'n', '1',
					   0x22, 0x04, 'g', 'o', 'n', 'e' };
	struct call c[4];

	atomic_store(&app.held, 0);
	start(&c[0], P_SHARED, "application/json", "{}", 2);
	start(&c[1], P_SHARED, "application/proto", "", 0);
	start(&c[2], P_SHARED, "application/json", "{}", 2);
	start(&c[3], P_SHARED, "application/proto", "", 0);
	assert_true(wait_int(&app.held, 4));
	release(1); /* held past its creator's reference */
	for (int i = 0; i < 4; i++) {
		pthread_join(c[i].thread, NULL);
		assert_int_equal(c[i].status, 200);
	}
	assert_string_equal(c[0].resp,
			    "{\"revision\":\"42\",\"peers\":[{\"name\":\"n1\"}],\"removed\":[\"gone\"]}");
	assert_string_equal(c[2].resp, c[0].resp);
	assert_int_equal(c[1].resp_len, sizeof(want_pb));
	assert_memory_equal(c[1].resp, want_pb, sizeof(want_pb));
	assert_memory_equal(c[3].resp, want_pb, sizeof(want_pb));
}

static void test_waiting_by_method(void **state)
{
	struct call c[3];

	atomic_store(&app.wake_waiters, 0);
	for (int i = 0; i < 3; i++)
		start(&c[i], P_WAIT, "application/proto", "", 0);
	assert_true(wait_int(&app.waiting, 3));
	atomic_store(&app.wake_waiters, 1);
	connect_server_wake(srv);
	for (int i = 0; i < 3; i++) {
		pthread_join(c[i].thread, NULL);
		assert_int_equal(c[i].status, 200);
	}
	connect_server_wake(srv);
	assert_true(wait_int(&app.waiting, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hold_release),
		cmocka_unit_test(test_hold_release_failed),
		cmocka_unit_test(test_shared_bodies),
		cmocka_unit_test(test_waiting_by_method),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

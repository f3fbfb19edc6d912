/*
 * rpc clients with a list of URLs: a call fails over to the next URL when
 * one is unreachable, never on an application error, and goes first to
 * the one that answered last. Two Connect servers (A, B) on loopback, each
 * counting its calls, plus sockets that refuse, hang or hang up.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "connect.h"
#include "log.h"
#include "rpc.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#define P_ALLOC "/wgcni.cluster.v1.ClusterService/AllocateSubnet"
#define P_PEERS "/wgcni.cluster.v1.ClusterService/ListPeers"

struct srv {
	const char *name;
	struct connect_server *cs;
	pthread_t thread;
	volatile sig_atomic_t stop;
	atomic_int calls;
	atomic_int busy;           /* answer unavailable (503) */
	atomic_ulong revision;
	atomic_ulong last_since;   /* since_revision of the last ListPeers */
	char url[64];
};

static struct srv A = { .name = "A" }, B = { .name = "B" };

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int h_alloc(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__AllocateSubnetRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp;
	struct srv *s = ctx;

	atomic_fetch_add(&s->calls, 1);
	if (atomic_load(&s->busy))
		return connect_fail(call, CONNECT_UNAVAILABLE, "%s is busy", s->name);
	if (!strcmp(req->node_name, "missing"))
		return connect_fail(call, CONNECT_NOT_FOUND, "node \"missing\" not found");
	resp = connect_call_alloc(call, sizeof(*resp));
	wgcni__cluster__v1__allocate_subnet_response__init(resp);
	resp->n_subnets = 1;
	resp->subnets = connect_call_alloc(call, sizeof(char *));
	resp->subnets[0] = connect_call_printf(call, "%s", s->name);
	return connect_reply(call, &resp->base);
}

static int h_peers(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__ListPeersRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__ListPeersResponse *resp;
	struct srv *s = ctx;
	unsigned long rev = atomic_load(&s->revision);

	atomic_store(&s->last_since, req->since_revision);
	if (rev <= req->since_revision && req->wait_seconds && !connect_call_expired(call))
		return connect_call_defer(call, req->wait_seconds * 1000);
	resp = connect_call_alloc(call, sizeof(*resp));
	wgcni__cluster__v1__list_peers_response__init(resp);
	resp->revision = rev;
	return connect_reply(call, &resp->base);
}

static const struct connect_method methods[] = {
	{ P_ALLOC, &wgcni__cluster__v1__allocate_subnet_request__descriptor,
	  &wgcni__cluster__v1__allocate_subnet_response__descriptor, h_alloc },
	{ P_PEERS, &wgcni__cluster__v1__list_peers_request__descriptor,
	  &wgcni__cluster__v1__list_peers_response__descriptor, h_peers },
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	connect_server_run(s->cs, &s->stop);
	return NULL;
}

static int srv_start(struct srv *s)
{
	const struct connect_server_config cfg = {
		.methods = methods, .n_methods = 2, .ctx = s,
	};

	s->cs = connect_server_new(&cfg);
	if (!s->cs || connect_server_listen_tcp(s->cs, "127.0.0.1:0") < 0)
		return -1;
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", connect_server_port(s->cs, 0));
	return pthread_create(&s->thread, NULL, srv_main, s) ? -1 : 0;
}

static void srv_stop(struct srv *s)
{
	if (!s->cs)
		return;
	s->stop = 1;
	connect_server_wake(s->cs);
	pthread_join(s->thread, NULL);
	connect_server_free(s->cs);
	s->cs = NULL;
}

static int setup(void **state)
{
	log_init("test_rpc_failover", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return srv_start(&A) || srv_start(&B) ? -1 : 0;
}

static int teardown(void **state)
{
	srv_stop(&A);
	srv_stop(&B);
	curl_global_cleanup();
	return 0;
}

/* A TCP socket on 127.0.0.1; listening (connects succeed, nothing is ever
 * answered) or closed again (connects are refused). url filled in. */
static int tcp_socket(bool listening, char *url, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(url, len, "http://127.0.0.1:%u", ntohs(sin.sin_port));
	if (!listening) {
		close(fd);
		return -1;
	}
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Connections waiting on a listening socket nobody accepts from (each is
 * accepted and closed here). */
static int drain(int fd)
{
	int n = 0, c;

	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	while ((c = accept(fd, NULL, NULL)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

struct switches {
	int n;
	char from[64], to[64];
};

static void on_switch(void *arg, const char *from, const char *to)
{
	struct switches *sw = arg;

	sw->n++;
	snprintf(sw->from, sizeof(sw->from), "%s", from);
	snprintf(sw->to, sizeof(sw->to), "%s", to);
}

static int alloc(struct rpc_client *c, const char *name, long timeout_ms, char *answered,
		 struct rpc_error *err)
{
	Wgcni__Cluster__V1__AllocateSubnetRequest req = WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp = NULL;
	int ret;

	req.node_name = (char *)name;
	ret = rpc_call(c, P_ALLOC, &req.base,
		       &wgcni__cluster__v1__allocate_subnet_response__descriptor,
		       (ProtobufCMessage **)&resp, timeout_ms, err);
	answered[0] = '\0';
	if (resp) {
		snprintf(answered, 8, "%s", resp->n_subnets ? resp->subnets[0] : "");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return ret;
}

static void test_bad_lists(void **state)
{
	const char *urls[] = { A.url, "ftp://x", B.url };

	errno = 0;
	assert_null(rpc_client_new_list(urls, 3, NULL, 1000));
	assert_int_equal(errno, EINVAL);
	assert_null(rpc_client_new_list(urls, 0, NULL, 1000));
	assert_int_equal(errno, EINVAL);
	assert_null(rpc_client_new_list(NULL, 1, NULL, 1000));
	assert_null(rpc_client_url(NULL));
	rpc_client_on_switch(NULL, on_switch, NULL);
}

/* The first URL refuses: the second answers, and is the one tried first
 * from then on. */
static void test_first_down(void **state)
{
	char dead[64], answered[8];
	const char *urls[] = { dead, A.url };
	struct switches sw = { 0 };
	struct rpc_error err;
	struct rpc_client *c;
	int calls = atomic_load(&A.calls);

	tcp_socket(false, dead, sizeof(dead));
	c = rpc_client_new_list(urls, 2, NULL, 2000);
	assert_non_null(c);
	assert_string_equal(rpc_client_url(c), dead);
	rpc_client_on_switch(c, on_switch, &sw);
	assert_int_equal(alloc(c, "n1", 0, answered, &err), 0);
	assert_string_equal(answered, "A");
	assert_int_equal(sw.n, 1);
	assert_string_equal(sw.from, dead);
	assert_string_equal(sw.to, A.url);
	assert_string_equal(rpc_client_url(c), A.url);
	assert_int_equal(alloc(c, "n1", 0, answered, &err), 0);
	assert_int_equal(sw.n, 1);
	assert_int_equal(atomic_load(&A.calls), calls + 2);
	rpc_client_free(c);
}

/* The first URL accepts and never answers: after the call's timeout the
 * second answers; the next call goes straight to the second (no
 * connection to the first, no timeout waited). */
static void test_remembered(void **state)
{
	char hung[64], answered[8];
	const char *urls[] = { hung, B.url };
	struct rpc_error err;
	struct rpc_client *c;
	uint64_t t0, t1, t2;
	int fd;

	fd = tcp_socket(true, hung, sizeof(hung));
	c = rpc_client_new_list(urls, 2, NULL, 400);
	assert_non_null(c);
	t0 = now_ms();
	assert_int_equal(alloc(c, "n2", 0, answered, &err), 0);
	t1 = now_ms();
	assert_string_equal(answered, "B");
	/* Each bound below a timeout allows curl's timer a few ms early. */
	if (t1 - t0 < 395 || t1 - t0 > 3000)
		fail_msg("failover after a hung URL took %llu ms", (unsigned long long)(t1 - t0));
	assert_int_equal(drain(fd), 1);
	assert_int_equal(alloc(c, "n2", 0, answered, &err), 0);
	t2 = now_ms();
	assert_string_equal(answered, "B");
	assert_int_equal(drain(fd), 0);
	if (t2 - t1 > 300)
		fail_msg("remembered URL call took %llu ms", (unsigned long long)(t2 - t1));
	rpc_client_free(c);
	close(fd);
}

/* Nothing answers: an unreachable error naming every URL, in bounded time
 * (each URL once). */
static void test_all_down(void **state)
{
	char d1[64], d2[64], h1[64], h2[64], answered[8];
	const char *dead[] = { d1, d2 }, *hung[] = { h1, h2 };
	struct rpc_error err;
	struct rpc_client *c;
	uint64_t t0, dt;
	int f1, f2;

	tcp_socket(false, d1, sizeof(d1));
	tcp_socket(false, d2, sizeof(d2));
	c = rpc_client_new_list(dead, 2, NULL, 2000);
	assert_non_null(c);
	t0 = now_ms();
	assert_int_equal(alloc(c, "n3", 0, answered, &err), -ECONNREFUSED);
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	assert_non_null(strstr(err.message, d1));
	assert_non_null(strstr(err.message, d2));
	assert_string_equal(rpc_client_url(c), d1);
	rpc_client_free(c);

	f1 = tcp_socket(true, h1, sizeof(h1));
	f2 = tcp_socket(true, h2, sizeof(h2));
	c = rpc_client_new_list(hung, 2, NULL, 5000);
	assert_non_null(c);
	t0 = now_ms();
	assert_int_equal(alloc(c, "n3", 300, answered, &err), -ETIMEDOUT);
	dt = now_ms() - t0;
	if (dt < 590 || dt > 3000)
		fail_msg("two hung URLs took %llu ms, wanted 590..3000", (unsigned long long)dt);
	assert_int_equal(drain(f1), 1);
	assert_int_equal(drain(f2), 1);
	rpc_client_free(c);
	close(f1);
	close(f2);
}

/* An application error is the answer: not sent to the next URL. */
static void test_app_error_not_retried(void **state)
{
	const char *urls[] = { A.url, B.url };
	int a = atomic_load(&A.calls), b = atomic_load(&B.calls);
	struct switches sw = { 0 };
	struct rpc_error err;
	struct rpc_client *c;
	char answered[8];

	c = rpc_client_new_list(urls, 2, NULL, 2000);
	assert_non_null(c);
	rpc_client_on_switch(c, on_switch, &sw);
	assert_int_equal(alloc(c, "missing", 0, answered, &err), -EREMOTEIO);
	assert_int_equal(err.code, CONNECT_NOT_FOUND);
	assert_int_equal(err.http_status, 404);
	assert_int_equal(atomic_load(&A.calls), a + 1);
	assert_int_equal(atomic_load(&B.calls), b);
	assert_int_equal(sw.n, 0);
	rpc_client_free(c);
}

/* 503 unavailable is not an answer: the next URL is asked. */
static void test_unavailable_fails_over(void **state)
{
	const char *urls[] = { A.url, B.url };
	int a = atomic_load(&A.calls), b = atomic_load(&B.calls);
	struct switches sw = { 0 };
	struct rpc_error err;
	struct rpc_client *c;
	char answered[8];

	c = rpc_client_new_list(urls, 2, NULL, 2000);
	assert_non_null(c);
	rpc_client_on_switch(c, on_switch, &sw);
	atomic_store(&A.busy, 1);
	assert_int_equal(alloc(c, "n4", 0, answered, &err), 0);
	assert_string_equal(answered, "B");
	assert_int_equal(atomic_load(&A.calls), a + 1);
	assert_int_equal(atomic_load(&B.calls), b + 1);
	assert_int_equal(sw.n, 1);
	/* Both busy: the 503 comes back. */
	atomic_store(&B.busy, 1);
	assert_int_equal(alloc(c, "n4", 0, answered, &err), -EREMOTEIO);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	assert_int_equal(err.http_status, 503);
	atomic_store(&A.busy, 0);
	atomic_store(&B.busy, 0);
	rpc_client_free(c);
}

struct poll_arg {
	struct rpc_client *c;
	uint64_t since;
	int ret;
	uint64_t revision, done_ms;
};

static void *poll_thread(void *p)
{
	struct poll_arg *a = p;
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	Wgcni__Cluster__V1__ListPeersResponse *resp = NULL;
	struct rpc_error err;

	req.node_name = "poller";
	req.since_revision = a->since;
	req.wait_seconds = 20;
	a->ret = rpc_call(a->c, P_PEERS, &req.base,
			  &wgcni__cluster__v1__list_peers_response__descriptor,
			  (ProtobufCMessage **)&resp, 30000, &err);
	a->done_ms = now_ms();
	if (resp) {
		a->revision = resp->revision;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return NULL;
}

static void wait_deferred(const struct srv *s, size_t n)
{
	for (int i = 0; i < 1000 && connect_server_deferred(s->cs) != n; i++)
		usleep(10000);
	assert_int_equal(connect_server_deferred(s->cs), n);
}

/* A long poll blocked on the second URL of a list is released by
 * rpc_client_cancel; it is not sent to another URL. */
static void test_cancel_long_poll(void **state)
{
	char dead[64];
	const char *urls[] = { dead, A.url, B.url };
	struct poll_arg a = { .since = 100 };
	int b = atomic_load(&B.calls);
	uint64_t start;
	pthread_t t;

	tcp_socket(false, dead, sizeof(dead));
	atomic_store(&A.revision, 100);
	a.c = rpc_client_new_list(urls, 3, NULL, 30000);
	assert_non_null(a.c);
	assert_int_equal(pthread_create(&t, NULL, poll_thread, &a), 0);
	wait_deferred(&A, 1);
	start = now_ms();
	rpc_client_cancel(a.c);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, -ECANCELED);
	if (a.done_ms - start > 2500)
		fail_msg("cancel took %llu ms", (unsigned long long)(a.done_ms - start));
	assert_int_equal(atomic_load(&B.calls), b);
	rpc_client_free(a.c);
	atomic_fetch_add(&A.revision, 1);
	connect_server_wake(A.cs);
	wait_deferred(&A, 0);
}

/* Accepts one connection, reads the request, hangs up without answering:
 * a cluster manager going away under a long poll. */
static void *hangup_thread(void *p)
{
	int fd = *(int *)p, c;
	char buf[512];

	c = accept(fd, NULL, NULL);
	if (c >= 0) {
		(void)!read(c, buf, sizeof(buf));
		close(c);
	}
	return NULL;
}

/* A long poll whose connection breaks goes on at the next URL with the
 * same since_revision. */
static void test_poll_moves_on(void **state)
{
	char gone[64];
	const char *urls[] = { gone, B.url };
	struct poll_arg a = { .since = 41 };
	struct switches sw = { 0 };
	pthread_t t, h;
	int fd;

	fd = tcp_socket(true, gone, sizeof(gone));
	assert_int_equal(pthread_create(&h, NULL, hangup_thread, &fd), 0);
	atomic_store(&B.revision, 41);
	atomic_store(&B.last_since, 0);
	a.c = rpc_client_new_list(urls, 2, NULL, 30000);
	assert_non_null(a.c);
	rpc_client_on_switch(a.c, on_switch, &sw);
	assert_int_equal(pthread_create(&t, NULL, poll_thread, &a), 0);
	pthread_join(h, NULL);
	wait_deferred(&B, 1);
	assert_int_equal(atomic_load(&B.last_since), 41);
	atomic_store(&B.revision, 42);
	connect_server_wake(B.cs);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.revision, 42);
	assert_int_equal(sw.n, 1);
	assert_string_equal(sw.to, B.url);
	rpc_client_free(a.c);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_first_down),
		cmocka_unit_test(test_remembered),
		cmocka_unit_test(test_all_down),
		cmocka_unit_test(test_app_error_not_retried),
		cmocka_unit_test(test_unavailable_fails_over),
		cmocka_unit_test(test_cancel_long_poll),
		cmocka_unit_test(test_poll_moves_on),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

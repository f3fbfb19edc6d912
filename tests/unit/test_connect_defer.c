/* The Connect server's deferred calls (long polls) and the client's timeouts. */
#include "connect_fixture.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct poll_arg {
	const char *url;
	uint64_t since, wait_s;
	long timeout_ms;
	int ret;
	uint64_t revision, done_ms;
};

static void *poll_thread(void *p)
{
	struct poll_arg *a = p;
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	Wgcni__Cluster__V1__ListPeersResponse *resp = NULL;
	struct rpc_client *c = rpc_client_new(a->url, TOKEN, 30000);
	struct rpc_error err;

	req.node_name = "poller";
	req.since_revision = a->since;
	req.wait_seconds = (uint32_t)a->wait_s;
	a->ret = rpc_call(c, P_PEERS, &req.base,
			  &wgcni__cluster__v1__list_peers_response__descriptor,
			  (ProtobufCMessage **)&resp, a->timeout_ms, &err);
	a->done_ms = now_ms();
	if (resp) {
		a->revision = resp->revision;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	rpc_client_free(c);
	return NULL;
}

static void wait_deferred(size_t n)
{
	for (int i = 0; i < 1000 && connect_server_deferred(srv) != n; i++)
		usleep(10000);
	assert_int_equal(connect_server_deferred(srv), n);
}

static void test_defer_wake(void **state)
{
	struct poll_arg a = { .url = unix_url, .wait_s = 20 };
	pthread_t t;
	uint64_t woke;

	a.since = atomic_load(&app.revision);
	assert_int_equal(pthread_create(&t, NULL, poll_thread, &a), 0);
	wait_deferred(1);
	atomic_fetch_add(&app.revision, 1);
	woke = now_ms();
	connect_server_wake(srv);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.revision, a.since + 1);
	if (a.done_ms - woke > 100)
		fail_msg("answered %llu ms after the wake", (unsigned long long)(a.done_ms - woke));
	assert_int_equal(connect_server_deferred(srv), 0);

	/* a wake without a change: the handler defers again, the call stays */
	a.since = atomic_load(&app.revision);
	a.ret = -1;
	assert_int_equal(pthread_create(&t, NULL, poll_thread, &a), 0);
	wait_deferred(1);
	connect_server_wake(srv);
	usleep(50000);
	wait_deferred(1);
	assert_int_equal(a.ret, -1);
	atomic_fetch_add(&app.revision, 1);
	connect_server_wake(srv);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.revision, a.since + 1);
}

struct cancel_arg {
	struct rpc_client *c;
	uint64_t since;
	int ret;
	uint64_t done_ms;
};

static void *cancel_poll_thread(void *p)
{
	struct cancel_arg *a = p;
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_error err;

	req.node_name = "poller";
	req.since_revision = a->since;
	req.wait_seconds = 20;
	a->ret = rpc_call(a->c, P_PEERS, &req.base,
			  &wgcni__cluster__v1__list_peers_response__descriptor, &resp, 0, &err);
	a->done_ms = now_ms();
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return NULL;
}

/* A thread blocked in a long poll is released by rpc_client_cancel from
 * another thread well before the poll's 20 s, and the client stays
 * cancelled. */
static void test_rpc_cancel(void **state)
{
	struct cancel_arg a = { .c = rpc_client_new(base_url, TOKEN, 30000) };
	Wgcni__Cluster__V1__AllocateSubnetRequest req =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	ProtobufCMessage *resp;
	struct rpc_error err;
	uint64_t start;
	pthread_t t;

	assert_non_null(a.c);
	a.since = atomic_load(&app.revision);
	assert_int_equal(pthread_create(&t, NULL, cancel_poll_thread, &a), 0);
	wait_deferred(1);
	start = now_ms();
	rpc_client_cancel(a.c);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, -ECANCELED);
	if (a.done_ms - start > 2500)
		fail_msg("cancel took %llu ms", (unsigned long long)(a.done_ms - start));
	req.node_name = "after-cancel";
	assert_int_equal(rpc_call(a.c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  &resp, 0, &err), -ECANCELED);
	rpc_client_free(a.c);
	rpc_client_cancel(NULL);
	/* The server learns the poller left only when it answers: make it. */
	atomic_fetch_add(&app.revision, 1);
	connect_server_wake(srv);
	wait_deferred(0);
}

static void test_defer_deadline(void **state)
{
	struct poll_arg a = { .url = base_url, .wait_s = 1 };
	int expired = atomic_load(&app.expired_runs);
	uint64_t start = now_ms();

	a.since = atomic_load(&app.revision);
	poll_thread(&a);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.revision, a.since);
	assert_int_equal(atomic_load(&app.expired_runs), expired + 1);
	if (a.done_ms - start < 1000 || a.done_ms - start > 1400)
		fail_msg("deadline answer after %llu ms, wanted 1000..1400",
			 (unsigned long long)(a.done_ms - start));

	/* Connect-Timeout-Ms from a raw client caps the wait (less a margin) */
	{
		char body[96];
		struct http_res r;
		struct curl_slist *h = NULL;
		CURL *c = curl_easy_init();
		char url[160];

		snprintf(body, sizeof(body), "{\"sinceRevision\":\"%lu\",\"waitSeconds\":10}",
			 atomic_load(&app.revision));
		snprintf(url, sizeof(url), "%s%s", base_url, P_PEERS);
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Authorization: " BEARER);
		h = curl_slist_append(h, "Connect-Timeout-Ms: 1000");
		memset(&r, 0, sizeof(r));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		start = now_ms();
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
		assert_int_equal(r.status, 200);
		if (now_ms() - start < 700 || now_ms() - start >= 1000)
			fail_msg("answered after %llu ms, wanted 700..999",
				 (unsigned long long)(now_ms() - start));
		free(r.body);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
	}
}

static void test_rpc_timeout_unreachable(void **state)
{
	struct poll_arg a = { .url = base_url, .wait_s = 3, .timeout_ms = 500 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	char path[256], url[300];
	struct rpc_client *c;
	struct rpc_error err;
	ProtobufCMessage *resp;
	Wgcni__Cluster__V1__AllocateSubnetRequest req =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	uint64_t start = now_ms(), took;
	int lfd;

	/* The client's timeout (sent as Connect-Timeout-Ms) is shorter than
	 * the wait: the long poll is answered, unchanged, before it. */
	a.since = atomic_load(&app.revision);
	poll_thread(&a);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.revision, a.since);
	if (a.done_ms - start < 300 || a.done_ms - start >= 500)
		fail_msg("answered after %llu ms, wanted 300..499",
			 (unsigned long long)(a.done_ms - start));

	/* A server that accepts nothing: the call times out. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &slen);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sin.sin_port));
	c = rpc_client_new(url, NULL, 300);
	start = now_ms();
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  &resp, 0, &err), -ETIMEDOUT);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	took = now_ms() - start;
	/* curl's own clock may fire its timer a few ms before ours
	 * reads 300; the upper bound leaves room for a loaded machine. */
	if (took < 295 || took >= 3000)
		fail_msg("timed out after %llu ms, wanted 295..2999",
			 (unsigned long long)took);
	rpc_client_free(c);
	close(lfd);

	snprintf(path, sizeof(path), "%s/nothing.sock", tmpdir);
	snprintf(url, sizeof(url), "unix://%s", path);
	c = rpc_client_new(url, NULL, 2000);
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  &resp, 0, &err), -ENOENT);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	assert_int_equal(err.http_status, 0);
	rpc_client_free(c);

	/* a port nothing listens on: the server's own, after... no: port 1 */
	c = rpc_client_new("http://127.0.0.1:1", NULL, 2000);
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  &resp, 0, &err), -ECONNREFUSED);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	rpc_client_free(c);

	errno = 0;
	assert_null(rpc_client_new("ftp://x", NULL, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(rpc_client_new("unix://relative.sock", NULL, 0));
	assert_null(rpc_client_new("http://", NULL, 0));
	assert_null(rpc_client_new("http://h:1", "bad\ntoken", 0));
}

/* 200 long polls at once from one thread through curl multi. */
static void test_many_deferred(void **state)
{
	enum { N = 200 };
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	static struct http_res res[N];
	CURL *easy[N];
	CURLM *m = curl_multi_init();
	struct curl_slist *h = NULL;
	uint8_t body[64];
	size_t len;
	char url[128];
	int running = 0;
	uint64_t start;

	/* earlier tests' abandoned long polls run out first */
	wait_deferred(0);
	req.since_revision = atomic_load(&app.revision);
	req.wait_seconds = 30;
	len = protobuf_c_message_pack(&req.base, body);
	h = curl_slist_append(h, "Content-Type: application/proto");
	h = curl_slist_append(h, "Authorization: " BEARER);
	snprintf(url, sizeof(url), "%s%s", base_url, P_PEERS);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	for (int i = 0; i < N; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 20000L);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &res[i]);
		curl_multi_add_handle(m, easy[i]);
	}
	start = now_ms();
	do {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 10, NULL);
	} while (connect_server_deferred(srv) < N && now_ms() - start < 10000);
	assert_int_equal(connect_server_deferred(srv), N);
	assert_int_equal(running, N);

	atomic_fetch_add(&app.revision, 1);
	connect_server_wake(srv);
	start = now_ms();
	do {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 10, NULL);
	} while (running && now_ms() - start < 10000);
	assert_int_equal(running, 0);
	for (int i = 0; i < N; i++) {
		Wgcni__Cluster__V1__ListPeersResponse *resp;
		long status = 0;

		curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
		assert_int_equal(status, 200);
		resp = wgcni__cluster__v1__list_peers_response__unpack(
			NULL, res[i].len, (const uint8_t *)res[i].body);
		assert_non_null(resp);
		assert_int_equal(resp->revision, req.since_revision + 1);
		wgcni__cluster__v1__list_peers_response__free_unpacked(resp, NULL);
		free(res[i].body);
		curl_multi_remove_handle(m, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	curl_slist_free_all(h);
	curl_multi_cleanup(m);
	assert_int_equal(connect_server_deferred(srv), 0);
}

/*
 * Ten thousand idle long polls: a forked child (its own descriptor table)
 * opens the connections with plain sockets and sends one ListPeers each;
 * the server must hold them all deferred, then answer all after one wake.
 */
enum { N_IDLE = 10000 };

static int idle_child(const char *req, size_t reqlen, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 30 };
	static int fds[N_IDLE];
	char buf[16];

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	for (int i = 0; i < N_IDLE; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
		    write(fds[i], req, reqlen) != (ssize_t)reqlen)
			return 2;
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	for (int i = 0; i < N_IDLE; i++) {
		memset(buf, 0, sizeof(buf));
		if (recv(fds[i], buf, 12, MSG_WAITALL) != 12 || memcmp(buf, "HTTP/1.1 200", 12))
			return 3;
		close(fds[i]);
	}
	return 0;
}

static void test_10k_idle(void **state)
{
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	char head[512], reqbuf[600];
	uint8_t body[32];
	size_t len, hlen;
	struct rlimit rl;
	int status = -1;
	pid_t pid;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < N_IDLE + 200)
		skip(); /* the server raised soft to hard; the hard limit is too low */
	wait_deferred(0);
	req.since_revision = atomic_load(&app.revision);
	req.wait_seconds = 120;
	len = protobuf_c_message_pack(&req.base, body);
	hlen = (size_t)snprintf(head, sizeof(head),
		"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/proto\r\n"
		"Authorization: " BEARER "\r\nContent-Length: %zu\r\n\r\n", P_PEERS, len);
	memcpy(reqbuf, head, hlen);
	memcpy(reqbuf + hlen, body, len);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(idle_child(reqbuf, hlen + len, connect_server_port(srv, 0)));
	for (int i = 0; i < 6000 && connect_server_deferred(srv) < N_IDLE &&
			waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (connect_server_deferred(srv) != N_IDLE) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("%zu calls deferred, wanted %d", connect_server_deferred(srv), N_IDLE);
	}
	atomic_fetch_add(&app.revision, 1);
	connect_server_wake(srv);
	for (int i = 0; i < 6000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (!WIFEXITED(status)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("client did not finish");
	}
	assert_int_equal(WEXITSTATUS(status), 0);
	wait_deferred(0);
}

/* Last: stopping the server answers a waiting long poll with 503. */
static void test_shutdown_answers_deferred(void **state)
{
	Wgcni__Cluster__V1__ListPeersRequest req = WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(connect_server_port(srv, 0)) };
	struct timeval tv = { .tv_sec = 10 };
	char head[512], buf[16] = "";
	uint8_t body[32];
	size_t len, hlen;
	int fd;

	wait_deferred(0);
	req.since_revision = atomic_load(&app.revision);
	req.wait_seconds = 60;
	len = protobuf_c_message_pack(&req.base, body);
	hlen = (size_t)snprintf(head, sizeof(head),
		"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\n"
		"Authorization: " BEARER "\r\nContent-Length: %zu\r\n\r\n", P_PEERS, len);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(write(fd, head, hlen), (ssize_t)hlen);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
	wait_deferred(1);

	srv_stop = 1;
	connect_server_wake(srv);
	pthread_join(srv_thread, NULL);
	assert_int_equal(srv_ret, 0);
	connect_server_free(srv);
	srv = NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(recv(fd, buf, 12, MSG_WAITALL), 12);
	assert_memory_equal(buf, "HTTP/1.1 503", 12);
	close(fd);
	/* the unix socket file went with the server */
	assert_int_equal(access(sock_path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defer_wake),
		cmocka_unit_test(test_rpc_cancel),
		cmocka_unit_test(test_defer_deadline),
		cmocka_unit_test(test_rpc_timeout_unreachable),
		cmocka_unit_test(test_many_deferred),
		cmocka_unit_test(test_10k_idle),
		cmocka_unit_test(test_shutdown_answers_deferred),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

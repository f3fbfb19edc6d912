/* The Connect server and client: calls, errors, auth, TLS, metrics. */
#include "connect_fixture.h"

/* ---- a raw libcurl client -------------------------------------------- */

struct upload {
	const char *data;
	size_t len, off;
};

static size_t feed(char *buf, size_t s, size_t n, void *ud)
{
	struct upload *u = ud;
	size_t k = s * n < u->len - u->off ? s * n : u->len - u->off;

	memcpy(buf, u->data + u->off, k);
	u->off += k;
	return k;
}

/* method "GET"/"POST"; ctype/auth may be NULL; chunked sends without length. */
static struct http_res http(const char *method, bool over_unix, const char *path,
			    const char *ctype, const char *auth, const void *body,
			    size_t len, bool chunked)
{
	struct http_res r = { 0 };
	struct upload u = { body, len, 0 };
	struct curl_slist *h = NULL;
	char url[256], hdr[256];
	CURL *c = curl_easy_init();
	char *ct = NULL;
	CURLcode cc;

	snprintf(url, sizeof(url), "%s%s", over_unix ? "http://localhost" : base_url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (over_unix)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	if (ctype) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		h = curl_slist_append(h, hdr);
	}
	if (auth) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
		h = curl_slist_append(h, hdr);
	}
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		if (chunked) {
			h = curl_slist_append(h, "Transfer-Encoding: chunked");
			curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
			curl_easy_setopt(c, CURLOPT_READDATA, &u);
		} else {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		}
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK)
		fail_msg("%s %s (%zu bytes%s): %s", method, path, len, chunked ? " chunked" : "",
			 curl_easy_strerror(cc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(r.ctype, sizeof(r.ctype), "%s", ct ? ct : "");
	if (!r.body)
		r.body = calloc(1, 1);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r;
}

static void expect_error_body(struct http_res *r, long status, const char *code,
			      const char *msg_part)
{
	char want[64];

	if (r->status != status)
		fail_msg("status %ld, wanted %ld (body %s)", r->status, status, r->body);
	assert_string_equal(r->ctype, "application/json");
	snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
	if (!strstr(r->body, want) || !strstr(r->body, msg_part))
		fail_msg("body %s lacks %s / %s", r->body, want, msg_part);
	free(r->body);
}

static void rpc_allocate(const char *url, const char *token, const char *node,
			 int want_ret, enum connect_code want_code)
{
	Wgcni__Cluster__V1__AllocateSubnetRequest req =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp = NULL;
	struct rpc_client *c = rpc_client_new(url, token, 5000);
	struct rpc_error err;
	char want[64];
	int ret;

	assert_non_null(c);
	req.node_name = (char *)node;
	ret = rpc_call(c, P_ALLOC, &req.base,
		       &wgcni__cluster__v1__allocate_subnet_response__descriptor,
		       (ProtobufCMessage **)&resp, 0, &err);
	if (ret != want_ret)
		fail_msg("rpc_call(%s): %d (%s), wanted %d", url, ret, err.message, want_ret);
	if (ret == 0) {
		snprintf(want, sizeof(want), "subnet-of-%s", node);
		assert_int_equal(resp->n_subnets, 1);
		assert_string_equal(resp->subnets[0], want);
		assert_string_equal(resp->cluster_cidrs[0], "10.100.0.0/16");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		assert_null(resp);
		assert_int_equal(err.code, want_code);
	}
	rpc_client_free(c);
}

/* ---- tests ------------------------------------------------------------- */

static void test_proto_calls(void **state)
{
	rpc_allocate(base_url, TOKEN, "n1", 0, CONNECT_OK);
	rpc_allocate(unix_url, TOKEN, "n2", 0, CONNECT_OK);
}

static void test_handler_error(void **state)
{
	Wgcni__Cluster__V1__AllocateSubnetRequest req =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	ProtobufCMessage *resp = (ProtobufCMessage *)&req;
	struct rpc_client *c = rpc_client_new(base_url, TOKEN, 5000);
	struct rpc_error err;

	req.node_name = "missing";
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  &resp, 0, &err), -EREMOTEIO);
	assert_null(resp);
	assert_int_equal(err.code, CONNECT_NOT_FOUND);
	assert_int_equal(err.http_status, 404);
	assert_string_equal(err.message, "node \"missing\" not found");
	rpc_client_free(c);
}

static void test_json_calls(void **state)
{
	const char *body = "{\"nodeName\":\"j1\"}";
	struct http_res r;

	r = http("POST", false, P_ALLOC, "application/json", BEARER, body, strlen(body), false);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "application/json");
	assert_string_equal(r.body, "{\"subnets\":[\"subnet-of-j1\"],"
				    "\"clusterCidrs\":[\"10.100.0.0/16\"]}");
	free(r.body);
	/* parameters on the media type, proto field names, over the unix socket */
	body = "{\"node_name\":\"j2\"}";
	r = http("POST", true, P_ALLOC, "application/json; charset=utf-8", BEARER, body,
		 strlen(body), false);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "subnet-of-j2"));
	free(r.body);
	/* a JSON error */
	body = "{\"nodeName\":\"missing\"}";
	r = http("POST", false, P_ALLOC, "application/json", BEARER, body, strlen(body), false);
	expect_error_body(&r, 404, "not_found", "node \\\"missing\\\" not found");
	/* an empty JSON body is the empty message, as an empty proto body is */
	r = http("POST", false, P_ALLOC, "application/json", BEARER, "", 0, false);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "subnet-of-"));
	free(r.body);
}

static void test_bad_requests(void **state)
{
	const char *body = "{\"nodeName\":\"x\"}";
	struct http_res r;
	char *big;

	r = http("POST", false, P_ALLOC, "text/plain", BEARER, body, strlen(body), false);
	expect_error_body(&r, 415, "invalid_argument", "unsupported content type");
	r = http("POST", false, P_ALLOC, NULL, BEARER, body, strlen(body), false);
	expect_error_body(&r, 415, "invalid_argument", "unsupported content type");
	r = http("POST", false, P_ALLOC, "application/jsonx", BEARER, body, strlen(body), false);
	expect_error_body(&r, 415, "invalid_argument", "unsupported content type");

	body = "{\"nodeName\":";
	r = http("POST", false, P_ALLOC, "application/json", BEARER, body, strlen(body), false);
	expect_error_body(&r, 400, "invalid_argument", "invalid JSON");
	body = "{\"foo\":1}";
	r = http("POST", false, P_ALLOC, "application/json", BEARER, body, strlen(body), false);
	expect_error_body(&r, 400, "invalid_argument", "unknown field \\\"foo\\\"");
	body = "{\"nodeName\":7}";
	r = http("POST", false, P_ALLOC, "application/json", BEARER, body, strlen(body), false);
	expect_error_body(&r, 400, "invalid_argument", "field \\\"nodeName\\\": expected string");
	body = "\x0a\xff\xff\xff"; /* field 1, length beyond the data */
	r = http("POST", false, P_ALLOC, "application/proto", BEARER, body, 4, false);
	expect_error_body(&r, 400, "invalid_argument", "cannot decode");

	/* 1 MiB + 1: with a length (refused before reading) and chunked */
	big = malloc(CONNECT_MAX_BODY + 1);
	memset(big, ' ', CONNECT_MAX_BODY + 1);
	r = http("POST", false, P_ALLOC, "application/json", BEARER, big,
		 CONNECT_MAX_BODY + 1, false);
	expect_error_body(&r, 400, "invalid_argument", "request body exceeds 1 MiB");
	r = http("POST", false, P_ALLOC, "application/json", BEARER, big,
		 CONNECT_MAX_BODY + 1, true);
	expect_error_body(&r, 400, "invalid_argument", "request body exceeds 1 MiB");
	/* far beyond the limit without a length: the server stops reading and
	 * closes instead of swallowing an endless upload */
	{
		size_t huge = 8 * CONNECT_MAX_BODY;
		char *h = calloc(1, huge);
		struct upload u = { h, huge, 0 };
		struct curl_slist *hd = curl_slist_append(NULL, "Transfer-Encoding: chunked");
		CURL *c = curl_easy_init();
		char url[256];

		hd = curl_slist_append(hd, "Content-Type: application/json");
		hd = curl_slist_append(hd, "Authorization: " BEARER);
		snprintf(url, sizeof(url), "%s%s", base_url, P_ALLOC);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		memset(&r, 0, sizeof(r));
		assert_int_not_equal(curl_easy_perform(c), CURLE_OK);
		assert_true(u.off < huge);
		free(r.body);
		curl_slist_free_all(hd);
		curl_easy_cleanup(c);
		free(h);
	}
	/* exactly 1 MiB is accepted: valid JSON padded with spaces */
	memcpy(big, "{\"nodeName\":\"big\"}", 18);
	r = http("POST", false, P_ALLOC, "application/json", BEARER, big,
		 CONNECT_MAX_BODY, true);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "subnet-of-big"));
	free(r.body);
	free(big);

	/* routing */
	r = http("GET", false, P_ALLOC, NULL, BEARER, NULL, 0, false);
	assert_int_equal(r.status, 405);
	free(r.body);
	r = http("POST", false, "/wgcni.cluster.v1.ClusterService/Nope", "application/json",
		 BEARER, "{}", 2, false);
	expect_error_body(&r, 404, "unimplemented", "unknown method");
	r = http("GET", false, "/", NULL, BEARER, NULL, 0, false);
	assert_int_equal(r.status, 404);
	free(r.body);
	r = http("POST", false, "/healthz", "application/json", NULL, "{}", 2, false);
	assert_int_equal(r.status, 405);
	free(r.body);
}

static void test_auth(void **state)
{
	const char *body = "{\"nodeName\":\"a\"}";
	struct http_res r;

	r = http("POST", false, P_ALLOC, "application/json", NULL, body, strlen(body), false);
	expect_error_body(&r, 401, "unauthenticated", "bearer token");
	r = http("POST", false, P_ALLOC, "application/json", "Bearer wrong", body,
		 strlen(body), false);
	expect_error_body(&r, 401, "unauthenticated", "bearer token");
	r = http("POST", false, P_ALLOC, "application/json", "Bearer " TOKEN "x", body,
		 strlen(body), false);
	expect_error_body(&r, 401, "unauthenticated", "bearer token");
	r = http("POST", false, P_ALLOC, "application/json", "Basic " TOKEN, body,
		 strlen(body), false);
	expect_error_body(&r, 401, "unauthenticated", "bearer token");
	/* auth comes before routing and content type */
	r = http("POST", false, "/nowhere", "text/plain", NULL, body, strlen(body), false);
	expect_error_body(&r, 401, "unauthenticated", "bearer token");
	r = http("POST", false, P_ALLOC, "application/json", "bearer " TOKEN, body,
		 strlen(body), false);
	assert_int_equal(r.status, 200);
	free(r.body);

	rpc_allocate(base_url, NULL, "a", -EREMOTEIO, CONNECT_UNAUTHENTICATED);
	rpc_allocate(unix_url, "wrong", "a", -EREMOTEIO, CONNECT_UNAUTHENTICATED);
}

static void set_token(const char *old, const char *fresh)
{
	Wgcni__Cluster__V1__DeleteNodeRequest req = WGCNI__CLUSTER__V1__DELETE_NODE_REQUEST__INIT;
	ProtobufCMessage *resp;
	struct rpc_client *c = rpc_client_new(base_url, old, 5000);
	struct rpc_error err;

	req.node_name = (char *)fresh;
	assert_int_equal(rpc_call(c, P_TOKEN, &req.base,
				  &wgcni__cluster__v1__delete_node_response__descriptor,
				  &resp, 0, &err), 0);
	protobuf_c_message_free_unpacked(resp, NULL);
	rpc_client_free(c);
}

static void test_token_change(void **state)
{
	set_token(TOKEN, "fresh");
	rpc_allocate(base_url, TOKEN, "a", -EREMOTEIO, CONNECT_UNAUTHENTICATED);
	rpc_allocate(base_url, "fresh", "t1", 0, CONNECT_OK);
	set_token("fresh", ""); /* no token at all */
	rpc_allocate(base_url, NULL, "t2", 0, CONNECT_OK);
	rpc_allocate(base_url, "anything", "t3", 0, CONNECT_OK);
	set_token(NULL, TOKEN);
	rpc_allocate(base_url, NULL, "a", -EREMOTEIO, CONNECT_UNAUTHENTICATED);
	rpc_allocate(base_url, TOKEN, "t4", 0, CONNECT_OK);
}

static void test_healthz_metrics(void **state)
{
	struct rpc_client *c = rpc_client_new(base_url, NULL, 5000);
	char *body;
	size_t len;
	int status;
	struct http_res r;

	assert_int_equal(rpc_get(c, "/healthz", &body, &len, &status), 0);
	assert_int_equal(status, 200);
	assert_string_equal(body, "ok\n");
	assert_int_equal(len, 3);
	free(body);
	atomic_store(&app.unhealthy, 1);
	assert_int_equal(rpc_get(c, "/healthz", &body, &len, &status), 0);
	assert_int_equal(status, 503);
	free(body);
	atomic_store(&app.unhealthy, 0);

	rpc_allocate(base_url, TOKEN, "m1", 0, CONNECT_OK);
	rpc_allocate(base_url, TOKEN, "missing", -EREMOTEIO, CONNECT_NOT_FOUND);
	assert_int_equal(rpc_get(c, "/metrics", &body, &len, &status), 0);
	assert_int_equal(status, 200);
	assert_non_null(strstr(body, "# TYPE wgcni_nodes gauge\nwgcni_nodes 3\n"));
	assert_non_null(strstr(body, "# TYPE wgcni_api_requests_total counter\n"));
	assert_non_null(strstr(body, "wgcni_api_requests_total{method=\"AllocateSubnet\",code=\"ok\"} "));
	assert_non_null(strstr(body, "wgcni_api_requests_total{method=\"AllocateSubnet\",code=\"not_found\"} "));
	assert_non_null(strstr(body, "wgcni_api_requests_total{method=\"AllocateSubnet\",code=\"unauthenticated\"} "));
	assert_non_null(strstr(body, "wgcni_api_requests_total{method=\"ListPeers\",code=\"ok\"} "));
	free(body);
	r = http("GET", true, "/metrics", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	free(r.body);
	rpc_client_free(c);
}

static void test_unix_mode(void **state)
{
	struct stat st;

	assert_int_equal(lstat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_tls(void **state)
{
	Wgcni__Cluster__V1__AllocateSubnetRequest req =
		WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp;
	struct rpc_client *c = rpc_client_new(tls_url, TOKEN, 30000) /* valgrind: slow TLS */;
	struct rpc_error err;
	char bad[160];

	req.node_name = "tls1";
	/* not in the system trust store */
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  (ProtobufCMessage **)&resp, 0, &err), -EKEYREJECTED);
	assert_int_equal(err.code, CONNECT_UNAVAILABLE);
	snprintf(bad, sizeof(bad), "%s/none.pem", tmpdir);
	assert_int_equal(rpc_client_set_ca_file(c, bad), -ENOENT);
	assert_int_equal(rpc_client_set_ca_file(c, cert_path), 0);
	assert_int_equal(rpc_call(c, P_ALLOC, &req.base,
				  &wgcni__cluster__v1__allocate_subnet_response__descriptor,
				  (ProtobufCMessage **)&resp, 0, &err), 0);
	assert_string_equal(resp->subnets[0], "subnet-of-tls1");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	rpc_client_free(c);

	/* plain HTTP to the HTTPS port gets no answer */
	snprintf(bad, sizeof(bad), "http://%s", tls_url + strlen("https://"));
	c = rpc_client_new(bad, TOKEN, 2000);
	assert_true(rpc_call(c, P_ALLOC, &req.base,
			     &wgcni__cluster__v1__allocate_subnet_response__descriptor,
			     (ProtobufCMessage **)&resp, 0, &err) < 0);
	rpc_client_free(c);

	/* fails reading the file, before touching the running server */
	assert_int_equal(connect_server_listen_tls(srv, "127.0.0.1:0", bad, key_path), -ENOENT);
}

static void test_token_file(void **state)
{
	char path[128];
	FILE *f;
	char *t;

	snprintf(path, sizeof(path), "%s/token", tmpdir);
	f = fopen(path, "w");
	fputs("abc123 \t\r\nsecond line\n", f);
	fclose(f);
	t = rpc_read_token_file(path);
	assert_string_equal(t, "abc123");
	free(t);
	f = fopen(path, "w");
	fputs("  \n", f);
	fclose(f);
	errno = 0;
	assert_null(rpc_read_token_file(path));
	assert_int_equal(errno, EINVAL);
	/* the longest token allowed, then one byte more: refused, not cut */
	f = fopen(path, "w");
	for (int i = 0; i < 4096; i++)
		fputc('a', f);
	fputc('\n', f);
	fclose(f);
	t = rpc_read_token_file(path);
	assert_non_null(t);
	assert_int_equal(strlen(t), 4096);
	free(t);
	f = fopen(path, "w");
	for (int i = 0; i < 4097; i++)
		fputc('a', f);
	fclose(f);
	errno = 0;
	assert_null(rpc_read_token_file(path));
	assert_int_equal(errno, EINVAL);
	unlink(path);
	errno = 0;
	assert_null(rpc_read_token_file(path));
	assert_int_equal(errno, ENOENT);
}

/* Listen addresses are IP literals with a port, 0 for any free one. */
static void test_listen_addresses(void **state)
{
	static const char *const bad[] = { ":8080", "127.0.0.1", "127.0.0.1:", "localhost:0",
					   "127.0.0.1:65536", "127.0.0.1:x", "::1:0", "[::1]",
					   "[::1:0", "300.1.1.1:0", "" };
	const struct connect_server_config cfg = { 0 };
	struct connect_server *s = connect_server_new(&cfg);
	struct endpoint ep;
	char err[128];

	assert_non_null(s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("%s\n", bad[i]);
		assert_int_equal(connect_server_listen_tcp(s, bad[i]), -EINVAL);
	}
	assert_int_equal(connect_server_port(s, 0), 0);
	assert_int_equal(connect_server_listen_tcp(s, "127.0.0.1:0"), 0);
	assert_int_not_equal(connect_server_port(s, 0), 0);
	connect_server_free(s);

	/* endpoint_parse_bind is endpoint_parse with port 0 allowed */
	assert_int_equal(endpoint_parse_bind("127.0.0.1:0", &ep, err, sizeof(err)), 0);
	assert_string_equal(ep.host, "127.0.0.1");
	assert_int_equal(ep.port, 0);
	assert_int_equal(endpoint_parse_bind("[::1]:8080", &ep, err, sizeof(err)), 0);
	assert_string_equal(ep.host, "::1");
	assert_int_equal(ep.port, 8080);
	assert_int_equal(endpoint_parse_bind("127.0.0.1:65536", &ep, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "endpoint \"127.0.0.1:65536\": port 65536 out of range 0-65535");
	assert_int_equal(endpoint_parse("127.0.0.1:0", &ep, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_proto_calls),
		cmocka_unit_test(test_handler_error),
		cmocka_unit_test(test_json_calls),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_token_change),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_healthz_metrics),
		cmocka_unit_test(test_unix_mode),
		cmocka_unit_test(test_token_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

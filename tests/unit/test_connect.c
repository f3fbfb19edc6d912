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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "connect.h"
#include "ipnet.h"
#include "log.h"
#include "rpc.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"

#define TOKEN "s3cret-token"
#define P_ALLOC "/wgcni.cluster.v1.ClusterService/AllocateSubnet"
#define P_PEERS "/wgcni.cluster.v1.ClusterService/ListPeers"
#define P_TOKEN "/test.Admin/SetToken"

/* A self-signed test certificate for IP 127.0.0.1 (P-256, valid until 2126);
 * test material only, it protects nothing. */
static const char test_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBkjCCATigAwIBAgIUIU+VsD4NtmApd1FNKcX/9tJPH9IwCgYIKoZIzj0EAwIw\n"
	"FTETMBEGA1UEAwwKd2djbmktdGVzdDAgFw0yNjExMjIyMjM0MTFaGA8yMTI2MTAy\n"
	"OTIyMzQxMVowFTETMBEGA1UEAwwKd2djbmktdGVzdDBZMBMGByqGSM49AgEGCCqG\n"
	"SM49AwEHA0IABC1oLauA13KaFIAlLfl5rb5JPjk5j0XvJiTMZz5FX2GsVggeuEV/\n"
	"Lmmxq26IZOq8hq3r5batluSWLsELBPSXuZGjZDBiMB0GA1UdDgQWBBQ+oWPUmtMY\n"
	"PaTk+5pWttb3fymqcDAfBgNVHSMEGDAWgBQ+oWPUmtMYPaTk+5pWttb3fymqcDAP\n"
	"BgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8AAAEwCgYIKoZIzj0EAwIDSAAw\n"
	"RQIgGj2oDf3ARlK+WyRZDOuLC6o4wLgM37qM79Emd27bxKECIQCndf7sIUW7hLnO\n"
	"+Dir7vIJAYb/s08j74WYERS78adTnw==\n"
	"-----END CERTIFICATE-----\n";
static const char test_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg446rda6HmjOnBBVh\n"
	"6D/6lAeU+IVXTeOogxCjwxS70kmhRANCAAQtaC2rgNdymhSAJS35ea2+ST45OY9F\n"
	"7yYkzGc+RV9hrFYIHrhFfy5psatuiGTqvIat6+W2rZbkli7BCwT0l7mR\n"
	"-----END PRIVATE KEY-----\n";

/* ---- the server under test --------------------------------------------- */

struct app {
	atomic_ulong revision;
	atomic_int unhealthy;
	atomic_int expired_runs;
};

static struct app app;
static struct connect_server *srv;
static pthread_t srv_thread;
static volatile sig_atomic_t srv_stop;
static char tmpdir[64], sock_path[128], base_url[64], unix_url[160], tls_url[64];
static char cert_path[128], key_path[128];
static int srv_ret;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int h_set_token(struct connect_call *call, void *ctx);

static int h_allocate(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__AllocateSubnetRequest *req =
		(const void *)connect_call_request(call);
	Wgcni__Cluster__V1__AllocateSubnetResponse *resp;

	/* no cmocka assertions on the server thread: fail the call instead */
	if (strcmp(connect_call_method(call), "AllocateSubnet"))
		return connect_fail(call, CONNECT_INTERNAL, "method name \"%s\"",
				    connect_call_method(call));
	if (!strcmp(req->node_name, "missing"))
		return connect_fail(call, CONNECT_NOT_FOUND, "node \"%s\" not found",
				    req->node_name);
	resp = connect_call_alloc(call, sizeof(*resp));
	wgcni__cluster__v1__allocate_subnet_response__init(resp);
	resp->n_subnets = 1;
	resp->subnets = connect_call_alloc(call, sizeof(char *));
	resp->subnets[0] = connect_call_printf(call, "subnet-of-%s", req->node_name);
	resp->n_cluster_cidrs = 1;
	resp->cluster_cidrs = connect_call_alloc(call, sizeof(char *));
	resp->cluster_cidrs[0] = connect_call_strdup(call, "10.100.0.0/16");
	return connect_reply(call, &resp->base);
}

/* Long poll: answer once the revision moved past since_revision. */
static int h_peers(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__ListPeersRequest *req =
		(const void *)connect_call_request(call);
	struct app *a = ctx;
	unsigned long rev = atomic_load(&a->revision);
	Wgcni__Cluster__V1__ListPeersResponse *resp;

	if (rev <= req->since_revision && req->wait_seconds && !connect_call_expired(call))
		return connect_call_defer(call, req->wait_seconds * 1000);
	if (connect_call_expired(call))
		atomic_fetch_add(&a->expired_runs, 1);
	resp = connect_call_alloc(call, sizeof(*resp));
	wgcni__cluster__v1__list_peers_response__init(resp);
	resp->revision = rev;
	return connect_reply(call, &resp->base);
}

static const struct connect_method methods[] = {
	{ P_ALLOC, &wgcni__cluster__v1__allocate_subnet_request__descriptor,
	  &wgcni__cluster__v1__allocate_subnet_response__descriptor, h_allocate },
	{ P_PEERS, &wgcni__cluster__v1__list_peers_request__descriptor,
	  &wgcni__cluster__v1__list_peers_response__descriptor, h_peers },
	{ P_TOKEN, &wgcni__cluster__v1__delete_node_request__descriptor,
	  &wgcni__cluster__v1__delete_node_response__descriptor, h_set_token },
};

static int app_metrics(struct prom *p, void *ctx)
{
	int ret = prom_family(p, "wgcni_nodes", PROM_GAUGE, "Registered nodes.");

	return ret ? ret : prom_sample(p, 3, NULL);
}

static int app_healthz(void *ctx)
{
	return atomic_load(&((struct app *)ctx)->unhealthy) ? -EAGAIN : 0;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f) ? -1 : 0;
}

static void *srv_main(void *arg)
{
	srv_ret = connect_server_run(srv, &srv_stop);
	return NULL;
}

static int setup(void **state)
{
	const struct connect_server_config cfg = {
		.methods = methods, .n_methods = 3, .ctx = &app, .token = TOKEN,
		.metrics = app_metrics, .healthz = app_healthz,
	};

	log_init("test_connect", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_connect.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", tmpdir);
	snprintf(unix_url, sizeof(unix_url), "unix://%s", sock_path);
	srv = connect_server_new(&cfg);
	if (!srv)
		return -1;
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
	if (write_file(cert_path, test_cert) < 0 || write_file(key_path, test_key) < 0)
		return -1;
	if (connect_server_listen_tcp(srv, "127.0.0.1:0") < 0 ||
	    connect_server_listen_unix(srv, sock_path, 0600) < 0 ||
	    connect_server_listen_tls(srv, "127.0.0.1:0", cert_path, key_path) < 0)
		return -1;
	if (connect_server_port(srv, 0) == 0 || connect_server_port(srv, 1) == 0 ||
	    connect_server_port(srv, 2) != 0)
		return -1;
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", connect_server_port(srv, 0));
	snprintf(tls_url, sizeof(tls_url), "https://127.0.0.1:%u", connect_server_port(srv, 1));
	return pthread_create(&srv_thread, NULL, srv_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	if (srv) {
		srv_stop = 1;
		connect_server_wake(srv);
		pthread_join(srv_thread, NULL);
		connect_server_free(srv);
	}
	unlink(cert_path);
	unlink(key_path);
	rmdir(tmpdir);
	curl_global_cleanup();
	return srv_ret;
}

/* ---- a raw libcurl client ---------------------------------------------- */

struct http_res {
	long status;
	char *body;
	size_t len;
	char ctype[128];
};

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
	struct http_res *r = ud;

	r->body = realloc(r->body, r->len + s * n + 1);
	memcpy(r->body + r->len, p, s * n);
	r->len += s * n;
	r->body[r->len] = '\0';
	return s * n;
}

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

#define BEARER "Bearer " TOKEN

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

/* ---- tests ------------------------------------------------------------- */

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

/* Run on the server thread: the token may change only there. */
static int h_set_token(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__DeleteNodeRequest *req = (const void *)connect_call_request(call);
	Wgcni__Cluster__V1__DeleteNodeResponse *resp = connect_call_alloc(call, sizeof(*resp));

	connect_server_set_token(srv, *req->node_name ? req->node_name : NULL);
	wgcni__cluster__v1__delete_node_response__init(resp);
	return connect_reply(call, &resp->base);
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
	uint64_t start = now_ms();
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
	assert_true(now_ms() - start >= 300 && now_ms() - start < 1500);
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

static void test_unix_mode(void **state)
{
	struct stat st;

	assert_int_equal(lstat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
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
		cmocka_unit_test(test_defer_wake),
		cmocka_unit_test(test_rpc_cancel),
		cmocka_unit_test(test_defer_deadline),
		cmocka_unit_test(test_rpc_timeout_unreachable),
		cmocka_unit_test(test_many_deferred),
		cmocka_unit_test(test_10k_idle),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_shutdown_answers_deferred),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

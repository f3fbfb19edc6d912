/*
 * The fixture of test_connect.c and test_connect_defer.c: a Connect server
 * with a few methods on TCP, unix and TLS listeners, run on a thread of its
 * own (setup, teardown). Each test binary has its own server.
 */
#ifndef WGCNI_TEST_CONNECT_FIXTURE_H
#define WGCNI_TEST_CONNECT_FIXTURE_H

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

/* ---- an HTTP answer, as libcurl collects it ----------------------------- */

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

#define BEARER "Bearer " TOKEN

/* Run on the server thread: the token may change only there. */
static int h_set_token(struct connect_call *call, void *ctx)
{
	const Wgcni__Cluster__V1__DeleteNodeRequest *req = (const void *)connect_call_request(call);
	Wgcni__Cluster__V1__DeleteNodeResponse *resp = connect_call_alloc(call, sizeof(*resp));

	connect_server_set_token(srv, *req->node_name ? req->node_name : NULL);
	wgcni__cluster__v1__delete_node_response__init(resp);
	return connect_reply(call, &resp->base);
}

#endif

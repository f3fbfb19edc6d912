/* What etcd.c shares with etcd_watch.c: not for users of etcd.h. */
#ifndef WGCNI_ETCD_PRIV_H
#define WGCNI_ETCD_PRIV_H

#include "buf.h"
#include "etcd.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#define ETCD_MAX_ENDPOINTS 32
#define ETCD_POOL_MAX 8
/* Answers and watch messages larger than this are refused. */
#define ETCD_MAX_RESPONSE (64 * 1024 * 1024)

struct etcd {
	char *endpoints[ETCD_MAX_ENDPOINTS]; /* "http://host:port", no trailing '/' */
	size_t n_endpoints;
	atomic_size_t current; /* the endpoint that answered last */
	char *ca_file, *cert_file, *key_file;
	long dial_timeout_ms, request_timeout_ms;
	struct curl_slist *headers;
	atomic_bool cancelled;
	pthread_mutex_t lock; /* the pool */
	CURL *pool[ETCD_POOL_MAX];
	size_t n_pool;
};

/* POST body to path, failing over (etcd.h: a write only when it cannot
 * have been applied); the answer in *b on success (free b->data). Takes
 * ownership of body (NULL: the encoder failed, errno says why). */
int etcd_request(struct etcd *e, const char *path, char *body, bool write,
		 struct buf *b);

/* Options every transfer to endpoint i shares: URL (endpoint + path), TLS,
 * the dial timeout, no signals, http(s) only, the cancellation callback. */
void etcd_curl_setup(struct etcd *e, CURL *h, size_t i, const char *path);

/* Foreign codes as a negative errno: libcurl's code (curlx_errno, and the
 * TLS failures of a client certificate), then the HTTP status with etcd's error body (gRPC code, message). 0
 * for CURLE_OK with HTTP 200. */
int etcd_errno(CURLcode cc, long http_status, const char *body, size_t len);

#endif

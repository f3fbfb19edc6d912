#include "etcd.h"

#include "curlx.h"
#include "etcd_codec.h"
#include "etcd_priv.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int etcd_grpc_errno(int code, const char *msg)
{
	switch (code) {
	case 1: /* Canceled */
		return -ECANCELED;
	case 3: /* InvalidArgument */
		return -EINVAL;
	case 4: /* DeadlineExceeded */
		return -ETIMEDOUT;
	case 5: /* NotFound */
		return -ENOENT;
	case 6: /* AlreadyExists */
		return -EEXIST;
	case 7:  /* PermissionDenied */
	case 16: /* Unauthenticated */
		return -EACCES;
	case 8: /* ResourceExhausted: "mvcc: database space exceeded" */
		return -ENOSPC;
	case 10: /* Aborted */
		return -EAGAIN;
	case 11: /* OutOfRange */
		return strstr(msg, "compacted") ? -ESTALE : -ERANGE;
	case 12: /* Unimplemented */
		return -ENOTSUP;
	case 14: /* Unavailable */
		/* "request timed out", "leader changed", "server stopped": a
		 * write may yet be applied; "no leader", "too many requests",
		 * "not capable": refused before it was processed. */
		if (strstr(msg, "timed out") || strstr(msg, "leader changed") ||
		    strstr(msg, "stopped"))
			return -ETIMEDOUT;
		return -EAGAIN;
	default: /* Unknown, FailedPrecondition, Internal, DataLoss, ... */
		return -EREMOTEIO;
	}
}

int etcd_errno(CURLcode cc, long http_status, const char *body, size_t len)
{
	char msg[256];
	int code, ret;

	/* A client certificate refused, a handshake that failed: TLS too. */
	if (cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR)
		return -EKEYREJECTED;
	if (cc != CURLE_OK)
		return curlx_errno(cc);
	if (http_status == 200)
		return 0;
	if (etcd_codec_error(body, len, &code, msg, sizeof(msg)) == 0 && code) {
		ret = etcd_grpc_errno(code, msg);
		/* etcd's messages name keys at most, never values. */
		log_debug("etcd answered an error", "status=%ld code=%d message=%s",
			  http_status, code, msg);
		return ret;
	}
	if (http_status >= 500)
		return -EAGAIN; /* a proxy or a stopping server */
	return -EPROTO;
}

void etcd_curl_setup(struct etcd *e, CURL *h, size_t i, const char *path)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", e->endpoints[i], path);
	curlx_setup(h, url, e->ca_file, &e->cancelled);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->dial_timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, e->headers);
	if (e->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
	}
}

/* "http://host:port" or "https://host:port", a trailing '/' dropped. */
static char *etcd_parse_endpoint(const char *s, size_t len)
{
	const char *host;
	char *url;

	while (len && (s[len - 1] == '/' || s[len - 1] == ' '))
		len--;
	while (len && *s == ' ')
		s++, len--;
	if (len > 7 && !strncmp(s, "http://", 7))
		host = s + 7;
	else if (len > 8 && !strncmp(s, "https://", 8))
		host = s + 8;
	else
		return NULL;
	for (const char *p = host; p < s + len; p++)
		if (*p == '/' || *p == '?' || *p == '#' || *p == '@' || (unsigned char)*p <= ' ')
			return NULL;
	if (len > 256)
		return NULL;
	url = strndup(s, len);
	return url;
}

static int etcd_check_file(const char *what, const char *path)
{
	int ret;

	if (!path || access(path, R_OK) == 0)
		return 0;
	ret = -errno;
	log_warn("cannot read etcd TLS file", "what=%s path=%s", what, path);
	return ret;
}

struct etcd *etcd_new(const struct etcd_config *cfg)
{
	const char *s, *comma;
	struct curl_slist *h;
	struct etcd *e;
	int ret;

	ret = -EINVAL;
	if (!cfg || !cfg->endpoints || cfg->dial_timeout_ms < 0 ||
	    cfg->request_timeout_ms < 0 || !cfg->cert_file != !cfg->key_file) {
		log_warnx("etcd: bad configuration (endpoints, timeouts, cert and key)", NULL);
		goto err;
	}
	ret = etcd_check_file("ca", cfg->ca_file);
	if (!ret)
		ret = etcd_check_file("cert", cfg->cert_file);
	if (!ret)
		ret = etcd_check_file("key", cfg->key_file);
	if (ret)
		goto err;
	ret = -ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		goto err;
	e = calloc(1, sizeof(*e));
	if (!e)
		goto err_global;
	pthread_mutex_init(&e->lock, NULL);
	e->dial_timeout_ms = cfg->dial_timeout_ms ? cfg->dial_timeout_ms : 2000;
	e->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 5000;
	for (s = cfg->endpoints;; s = comma + 1) {
		comma = strchr(s, ',');
		ret = -EINVAL;
		if (e->n_endpoints == ETCD_MAX_ENDPOINTS)
			goto err_endpoints;
		e->endpoints[e->n_endpoints] =
			etcd_parse_endpoint(s, comma ? (size_t)(comma - s) : strlen(s));
		if (!e->endpoints[e->n_endpoints])
			goto err_endpoints;
		e->n_endpoints++;
		if (!comma)
			break;
	}
	ret = -ENOMEM;
	if ((cfg->ca_file && !(e->ca_file = strdup(cfg->ca_file))) ||
	    (cfg->cert_file && !(e->cert_file = strdup(cfg->cert_file))) ||
	    (cfg->key_file && !(e->key_file = strdup(cfg->key_file))))
		goto err_free;
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!e->headers)
		goto err_free;
	h = curl_slist_append(e->headers, "Expect:"); /* no 100-continue round trip */
	if (!h)
		goto err_free;
	e->headers = h;
	return e;

err_endpoints:
	log_warnx("etcd: cannot parse endpoints (http[s]://host:port, comma-separated, at most 32)",
		  "endpoints=%s", cfg->endpoints);
err_free:
	etcd_free(e);
	errno = -ret;
	return NULL;
err_global:
	curl_global_cleanup();
err:
	errno = -ret;
	return NULL;
}

void etcd_free(struct etcd *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	for (size_t i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	curl_slist_free_all(e->headers);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	pthread_mutex_destroy(&e->lock);
	free(e);
	curl_global_cleanup();
}

void etcd_cancel(struct etcd *e)
{
	if (e)
		atomic_store(&e->cancelled, true);
}

const char *etcd_endpoint(const struct etcd *e)
{
	return e->endpoints[atomic_load(&e->current) % e->n_endpoints];
}

static CURL *etcd_handle_get(struct etcd *e)
{
	CURL *h = NULL;

	pthread_mutex_lock(&e->lock);
	if (e->n_pool)
		h = e->pool[--e->n_pool];
	pthread_mutex_unlock(&e->lock);
	return h ? h : curl_easy_init();
}

/* Kept for its live connection, up to ETCD_POOL_MAX. */
static void etcd_handle_put(struct etcd *e, CURL *h)
{
	pthread_mutex_lock(&e->lock);
	if (e->n_pool < ETCD_POOL_MAX) {
		e->pool[e->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* May the request go to the next endpoint after failing with err? */
static bool etcd_may_fail_over(int err, bool write, bool sent)
{
	if (err == -EAGAIN)
		return true; /* refused unprocessed */
	if (write && sent)
		return false; /* it may have been applied */
	switch (err) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ECONNRESET:
	case -EKEYREJECTED:
	case -EIO:
		return true;
	default:
		return false;
	}
}

static int etcd_perform(struct etcd *e, CURL *h, size_t i, const char *path,
			const char *body, struct buf *b, bool *sent)
{
	long status = 0, request_size = 0;
	CURLcode cc;
	int ret;

	curl_easy_reset(h);
	etcd_curl_setup(e, h, i, path);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);
	/* A request that found no server was not processed, even when curl
	 * first wrote it to a kept-alive connection that had died. */
	*sent = request_size > 0 && cc != CURLE_COULDNT_CONNECT &&
		cc != CURLE_COULDNT_RESOLVE_HOST;
	ret = b->too_big ? -EMSGSIZE : etcd_errno(cc, status, b->data, b->len);
	if (ret && cc != CURLE_OK)
		log_debug("etcd request failed", "endpoint=%s path=%s err=%s",
			  e->endpoints[i], path, curl_easy_strerror(cc));
	return ret;
}

int etcd_request(struct etcd *e, const char *path, char *body, bool write,
			struct buf *b)
{
	size_t start, i = 0, k;
	bool sent = false;
	CURL *h;
	int ret;

	*b = (struct buf){ .max = ETCD_MAX_RESPONSE };
	if (!body)
		return errno ? -errno : -ENOMEM;
	ret = -ECANCELED;
	if (atomic_load(&e->cancelled))
		goto out;
	ret = -ENOMEM;
	h = etcd_handle_get(e);
	if (!h)
		goto out;
	start = atomic_load(&e->current);
	for (k = 0; k < e->n_endpoints; k++) {
		i = (start + k) % e->n_endpoints;
		buf_free(b);
		*b = (struct buf){ .max = ETCD_MAX_RESPONSE };
		ret = etcd_perform(e, h, i, path, body, b, &sent);
		if (!ret) {
			atomic_store(&e->current, i);
			break;
		}
		if (atomic_load(&e->cancelled)) {
			ret = -ECANCELED;
			break;
		}
		/* An endpoint that failed as a transport is not where the next
		 * call starts, even when this write may not move on. */
		if (etcd_may_fail_over(ret, false, false)) {
			size_t cur = i;

			atomic_compare_exchange_strong(&e->current, &cur, (i + 1) % e->n_endpoints);
		}
		if (!etcd_may_fail_over(ret, write, sent))
			break;
		if (k + 1 < e->n_endpoints)
			log_debug("etcd endpoint failed, trying the next", "endpoint=%s err=%s",
				  e->endpoints[i], strerror(-ret));
	}
	etcd_handle_put(e, h);
	/* Unreachable is the operator's concern; an answer (-ESTALE, -EINVAL)
	 * is the caller's. */
	if (ret && etcd_may_fail_over(ret, false, false))
		log_warnx("etcd unreachable", "path=%s endpoint=%s tried=%zu err=%s", path,
			  e->endpoints[i], k < e->n_endpoints ? k + 1 : k, strerror(-ret));
	else if (ret)
		log_debug("etcd request failed", "path=%s endpoint=%s err=%s", path,
			  e->endpoints[i], strerror(-ret));
out:
	if (ret)
		buf_free(b);
	free(body);
	return ret;
}

char *etcd_prefix_end(const char *prefix)
{
	char *end;
	size_t len;

	if (!prefix || !prefix[0]) {
		errno = EINVAL;
		return NULL;
	}
	end = strdup(prefix);
	if (!end)
		return NULL;
	/* The first key after every key with the prefix: the last byte below
	 * 0xff incremented, what follows it dropped; "" (etcd's "\0", no end)
	 * for a prefix of 0xff bytes. */
	for (len = strlen(end); len; len--) {
		if ((unsigned char)end[len - 1] < 0xff) {
			end[len - 1]++;
			break;
		}
	}
	end[len] = '\0';
	return end;
}

int etcd_range(struct etcd *e, const struct etcd_range_req *req, struct etcd_kvs *out,
	       int64_t *revision)
{
	struct buf b;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!e || !req)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/range", etcd_codec_range_req(req), false, &b);
	if (!ret)
		ret = etcd_codec_range_resp(b.data, b.len, out, revision);
	free(b.data);
	return ret;
}

int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, int64_t *revision)
{
	struct etcd_range_req req = { .key = key, .limit = 1 };
	struct etcd_kvs kvs;
	int ret;

	memset(kv, 0, sizeof(*kv));
	ret = etcd_range(e, &req, &kvs, revision);
	if (ret)
		return ret;
	if (kvs.n == 1) {
		*kv = kvs.kvs[0];
		memset(&kvs.kvs[0], 0, sizeof(kvs.kvs[0]));
	} else {
		ret = -ENOENT;
	}
	etcd_kvs_free(&kvs);
	return ret;
}

int etcd_put(struct etcd *e, const char *key, const void *value, size_t len,
	     int64_t *revision)
{
	struct buf b;
	int ret;

	if (!e)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/put", etcd_codec_put_req(key, value, len), true, &b);
	if (!ret)
		ret = etcd_codec_header_resp(b.data, b.len, revision);
	free(b.data);
	return ret;
}

int etcd_delete(struct etcd *e, const char *key, const char *range_end,
		int64_t *revision, int64_t *deleted)
{
	struct buf b;
	int ret;

	if (!e)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/deleterange", etcd_codec_delete_req(key, range_end),
			   true, &b);
	if (!ret)
		ret = etcd_codec_delete_resp(b.data, b.len, revision, deleted);
	free(b.data);
	return ret;
}

int etcd_compact(struct etcd *e, int64_t revision)
{
	struct buf b;
	int ret;

	if (!e)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/compaction", etcd_codec_compact_req(revision), true, &b);
	if (!ret)
		ret = etcd_codec_header_resp(b.data, b.len, NULL);
	free(b.data);
	return ret;
}

int etcd_txn(struct etcd *e, const struct etcd_txn *t, struct etcd_txn_result *out)
{
	struct buf b;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!e)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/txn", etcd_codec_txn_req(t), true, &b);
	if (!ret)
		ret = etcd_codec_txn_resp(b.data, b.len, out);
	free(b.data);
	return ret;
}

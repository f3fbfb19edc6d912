#include "rpc.h"
#include "buf.h"
#include "curlx.h"

#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

/* Answers larger than this are refused (a peer list of ten thousand nodes
 * is a few MiB). */
#define RPC_MAX_RESPONSE (32 * 1024 * 1024)
#define RPC_TOKEN_MAX 4096

/* Connects that take longer than this count as unreachable: with a list of
 * URLs the next one is tried instead of waiting out the call's timeout. */
#define RPC_CONNECT_TIMEOUT_MS 5000L

struct rpc_endpoint {
	char *url;  /* as given, for logs */
	char *base; /* "http://host:port", "http://localhost" over unix */
	char *unix_path;
};

struct rpc_client {
	CURL *curl; /* reused: keeps the connection alive between calls */
	struct rpc_endpoint *eps;
	size_t n_eps;
	size_t cur; /* the endpoint tried first: the last one that answered */
	rpc_switch_fn *on_switch;
	void *switch_arg;
	struct curl_slist *headers;
	long timeout_ms;
	char *ca_file; /* NULL: the system trust store */
	atomic_bool cancelled; /* rpc_client_cancel: sticky */
};

static void rpc_free_headers(struct curl_slist *h)
{
	/* One of them carries the bearer token. */
	for (struct curl_slist *i = h; i; i = i->next)
		sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

/* url's scheme is one of ours: 0, or -EINVAL (logged). */
static int rpc_endpoint_init(struct rpc_endpoint *ep, const char *url)
{
	static const struct {
		const char *scheme;
		bool is_unix;
	} schemes[] = {
		{ "http://", false },
		{ "https://", false },
		{ "unix://", true },
	};
	size_t i, len;

	if (!url)
		return -EINVAL;
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)))
			break;
	if (i == sizeof(schemes) / sizeof(schemes[0]) || !url[strlen(schemes[i].scheme)]) {
		log_warnx("cannot parse API URL", "url=%s", url);
		return -EINVAL;
	}
	if (schemes[i].is_unix && url[strlen(schemes[i].scheme)] != '/') {
		log_warnx("unix URL needs an absolute path", "url=%s", url);
		return -EINVAL;
	}
	ep->url = strdup(url);
	if (schemes[i].is_unix) {
		ep->unix_path = strdup(url + strlen(schemes[i].scheme));
		ep->base = strdup("http://localhost");
	} else {
		ep->base = strdup(url);
	}
	if (!ep->url || !ep->base || (schemes[i].is_unix && !ep->unix_path))
		return -ENOMEM;
	len = strlen(ep->base);
	while (len && ep->base[len - 1] == '/')
		ep->base[--len] = '\0';
	return 0;
}

struct rpc_client *rpc_client_new(const char *url, const char *token, long timeout_ms)
{
	return rpc_client_new_list(&url, 1, token, timeout_ms);
}

struct rpc_client *rpc_client_new_list(const char *const *urls, size_t n_urls,
				       const char *token, long timeout_ms)
{
	struct rpc_client *c;
	struct curl_slist *h;
	char *auth;
	size_t i, len;
	int ret;

	ret = -EINVAL;
	if (!urls || !n_urls || n_urls > RPC_MAX_URLS || (token && strpbrk(token, "\r\n")))
		goto err;
	for (i = 0; i < n_urls; i++) {
		struct rpc_endpoint probe = { 0 };

		/* Checked before anything is made: a bad URL changes nothing. */
		ret = rpc_endpoint_init(&probe, urls[i]);
		free(probe.url);
		free(probe.base);
		free(probe.unix_path);
		if (ret < 0)
			goto err;
	}
	ret = -ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		goto err;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_global;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	c->eps = calloc(n_urls, sizeof(*c->eps));
	if (!c->eps)
		goto err_free;
	for (; c->n_eps < n_urls; c->n_eps++) {
		ret = rpc_endpoint_init(&c->eps[c->n_eps], urls[c->n_eps]);
		if (ret < 0) {
			c->n_eps++; /* freed with the others */
			goto err_free;
		}
	}
	ret = -ENOMEM;

	h = curl_slist_append(NULL, "Content-Type: " CONNECT_CTYPE_PROTO);
	if (h)
		h = curl_slist_append(h, "Connect-Protocol-Version: 1");
	if (h)
		h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
	if (h && token) {
		struct curl_slist *t;

		len = strlen("Authorization: Bearer ") + strlen(token) + 1;
		auth = malloc(len);
		if (!auth) {
			rpc_free_headers(h);
			goto err_free;
		}
		snprintf(auth, len, "Authorization: Bearer %s", token);
		t = curl_slist_append(h, auth);
		sodium_memzero(auth, len);
		free(auth);
		if (!t)
			rpc_free_headers(h);
		h = t;
	}
	if (!h)
		goto err_free;
	c->headers = h;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto err_free;
	return c;

err_free:
	rpc_client_free(c);
	errno = -ret;
	return NULL;
err_global:
	curl_global_cleanup();
err:
	errno = -ret;
	return NULL;
}

void rpc_client_free(struct rpc_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	rpc_free_headers(c->headers);
	for (size_t i = 0; i < c->n_eps; i++) {
		free(c->eps[i].url);
		free(c->eps[i].base);
		free(c->eps[i].unix_path);
	}
	free(c->eps);
	free(c->ca_file);
	free(c);
	curl_global_cleanup();
}

int rpc_client_set_ca_file(struct rpc_client *c, const char *path)
{
	char *copy = NULL;

	if (path) {
		if (access(path, R_OK) < 0) {
			int ret = -errno;

			log_warn("cannot read CA file", "path=%s", path);
			return ret;
		}
		copy = strdup(path);
		if (!copy)
			return -ENOMEM;
	}
	free(c->ca_file);
	c->ca_file = copy;
	return 0;
}

void rpc_client_cancel(struct rpc_client *c)
{
	if (c)
		atomic_store(&c->cancelled, true);
}

/* CURLcode as an errno (curlx.c), knowing the socket path. */
static int rpc_curl_errno(const struct rpc_endpoint *ep, CURLcode cc)
{
	struct stat st;

	/* A unix socket that is not there says more than "refused". */
	if (cc == CURLE_COULDNT_CONNECT && ep->unix_path && stat(ep->unix_path, &st) < 0 &&
	    errno == ENOENT)
		return -ENOENT;
	return curlx_errno(cc);
}

static void rpc_error_set(struct rpc_error *err, enum connect_code code, int status,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void rpc_error_set(struct rpc_error *err, enum connect_code code, int status,
			  const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->code = code;
	err->http_status = status;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* {"code":"not_found","message":"..."}; falls back on the HTTP status. */
static void rpc_decode_error(const struct buf *b, int status, struct rpc_error *err)
{
	char msg[sizeof(err->message)];
	enum connect_code code;

	code = connect_error_decode(b->data, b->len, status, msg, sizeof(msg));
	rpc_error_set(err, code, status, "%s", msg);
}

static int rpc_perform(struct rpc_client *c, const struct rpc_endpoint *ep,
		       const char *path, const void *body, size_t body_len, bool post,
		       long timeout_ms, struct buf *b, long *status)
{
	size_t len = strlen(ep->base) + strlen(path) + 1;
	long timeout = timeout_ms > 0 ? timeout_ms : c->timeout_ms;
	char *url = malloc(len);
	struct curl_slist deadline;
	char hdr[48];
	CURLcode cc;
	int ret;

	if (!url)
		return -ENOMEM;
	if (atomic_load(&c->cancelled)) {
		free(url);
		return -ECANCELED;
	}
	/* Tells the server when we give up, so a long poll answers in time;
	 * a node on the stack, linked in only for this call. */
	snprintf(hdr, sizeof(hdr), CONNECT_TIMEOUT_HEADER ": %ld", timeout);
	deadline = (struct curl_slist){ .data = hdr, .next = c->headers };
	snprintf(url, len, "%s%s", ep->base, path);
	curl_easy_reset(c->curl);
	curlx_setup(c->curl, url, c->ca_file, &c->cancelled);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout < RPC_CONNECT_TIMEOUT_MS ? timeout : RPC_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, buf_curl_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
	if (ep->unix_path)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, ep->unix_path);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, post ? &deadline : c->headers);
	if (post) {
		curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	cc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers); /* drop &deadline */
	ret = rpc_curl_errno(ep, cc);
	if (b->too_big)
		ret = -EMSGSIZE;
	if (ret == 0)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	else
		log_debug("api request failed", "url=%s err=%s", url,
			  curl_easy_strerror(cc));
	free(url);
	return ret;
}

/* Whether another URL may answer what this one did not: no connection,
 * no answer, or the server says it cannot serve now (503). A Connect error
 * of the application (not found, invalid, ...) is the answer. */
static bool rpc_unreachable(int ret, const struct rpc_error *err)
{
	switch (ret) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENOENT:
	case -ECONNRESET:
	case -EKEYREJECTED:
	case -EIO:
		return true;
	case -EREMOTEIO:
		return err->code == CONNECT_UNAVAILABLE;
	default:
		return false;
	}
}

/* The endpoint k answered (or said no): the one to try first from now. */
static void rpc_settle(struct rpc_client *c, size_t k)
{
	size_t from = c->cur;

	if (k == from)
		return;
	c->cur = k;
	log_debug("api endpoint switched", "from=%s to=%s", c->eps[from].url, c->eps[k].url);
	if (c->on_switch)
		c->on_switch(c->switch_arg, c->eps[from].url, c->eps[k].url);
}

static void rpc_append(char *out, size_t len, const char *s)
{
	size_t used = strlen(out), n;

	/* Cut at len: the first URLs' reasons matter most. */
	if (used && used + 2 < len) {
		memcpy(out + used, "; ", 2);
		used += 2;
	}
	n = strlen(s);
	if (used + n >= len)
		n = len - 1 - used;
	memcpy(out + used, s, n);
	out[used + n] = '\0';
}

static int rpc_call_one(struct rpc_client *c, const struct rpc_endpoint *ep,
			const char *path, const uint8_t *body, size_t len,
			const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
			long timeout_ms, struct rpc_error *err)
{
	struct buf b = { .max = RPC_MAX_RESPONSE };
	long status = 0;
	int ret;

	memset(err, 0, sizeof(*err));
	ret = rpc_perform(c, ep, path, body, len, true, timeout_ms, &b, &status);
	if (ret < 0) {
		rpc_error_set(err, CONNECT_UNAVAILABLE, 0, "%s%s: %s", ep->url, path,
			      strerror(-ret));
		goto out;
	}
	if (status != 200) {
		rpc_decode_error(&b, (int)status, err);
		ret = -EREMOTEIO;
		goto out;
	}
	*resp = protobuf_c_message_unpack(resp_desc, NULL, b.len, (const uint8_t *)b.data);
	if (!*resp) {
		rpc_error_set(err, CONNECT_INTERNAL, (int)status,
			      "cannot decode %s from the answer to %s", resp_desc->name, path);
		ret = -EPROTO;
		goto out;
	}
	ret = 0;
out:
	free(b.data);
	return ret;
}

int rpc_call(struct rpc_client *c, const char *path, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     long timeout_ms, struct rpc_error *err)
{
	struct rpc_error e, *ep_err = err ? err : &e;
	char all[sizeof(e.message)] = "";
	uint8_t *body;
	size_t len, k = 0;
	int ret;

	if (err)
		memset(err, 0, sizeof(*err));
	if (resp)
		*resp = NULL;
	ret = -EINVAL;
	if (!c || !path || path[0] != '/' || !req || !resp_desc || !resp)
		return ret;
	ret = -ENOMEM;
	len = protobuf_c_message_get_packed_size(req);
	body = malloc(len ? len : 1);
	if (!body)
		return ret;
	protobuf_c_message_pack(req, body);

	/* Each URL once, from the one that answered last: bounded by n times
	 * the call's timeout. */
	for (size_t i = 0; i < c->n_eps; i++) {
		k = (c->cur + i) % c->n_eps;
		ret = rpc_call_one(c, &c->eps[k], path, body, len, resp_desc, resp,
				   timeout_ms, ep_err);
		if (!rpc_unreachable(ret, ep_err))
			break;
		if (c->n_eps > 1)
			rpc_append(all, sizeof(all), ep_err->message);
	}
	if (!rpc_unreachable(ret, ep_err))
		rpc_settle(c, k);
	else if (c->n_eps > 1)
		snprintf(ep_err->message, sizeof(ep_err->message), "%s", all);
	free(body);
	return ret;
}

int rpc_get(struct rpc_client *c, const char *path, char **body, size_t *len,
	    int *status)
{
	struct buf b = { .max = RPC_MAX_RESPONSE };
	long st = 0;
	size_t k = 0;
	int ret = -EINVAL;

	if (body)
		*body = NULL;
	if (!c || !path || path[0] != '/')
		return -EINVAL;
	/* Any HTTP answer is the answer (the caller reads its status). */
	for (size_t i = 0; i < c->n_eps; i++) {
		k = (c->cur + i) % c->n_eps;
		free(b.data);
		b = (struct buf){ .max = RPC_MAX_RESPONSE };
		ret = rpc_perform(c, &c->eps[k], path, NULL, 0, false, 0, &b, &st);
		if (ret == 0 || ret == -ECANCELED || ret == -ENOMEM || ret == -EMSGSIZE)
			break;
	}
	if (ret < 0) {
		free(b.data);
		return ret;
	}
	rpc_settle(c, k);
	if (status)
		*status = (int)st;
	if (!b.data)
		b.data = calloc(1, 1);
	if (!b.data)
		return -ENOMEM;
	if (len)
		*len = b.len;
	if (body)
		*body = b.data;
	else
		free(b.data);
	return 0;
}

const char *rpc_client_url(const struct rpc_client *c)
{
	return c ? c->eps[c->cur].url : NULL;
}

void rpc_client_on_switch(struct rpc_client *c, rpc_switch_fn *fn, void *arg)
{
	if (!c)
		return;
	c->on_switch = fn;
	c->switch_arg = arg;
}

char *rpc_read_token_file(const char *path)
{
	/* One byte more than a token may have, to tell "too long" apart. */
	char buf[RPC_TOKEN_MAX + 2];
	char *token = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret = 0;

	/* read(2), not stdio: no buffer of ours keeps an unwiped copy. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	len = strlen(buf);
	while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	/* Empty, or a first line longer than RPC_TOKEN_MAX: never cut silently. */
	if (!ret && (!len || len > RPC_TOKEN_MAX))
		ret = -EINVAL;
	if (!ret) {
		token = strdup(buf);
		ret = token ? 0 : -ENOMEM;
	}
	sodium_memzero(buf, sizeof(buf));
	if (ret)
		errno = -ret;
	return token;
}

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

struct rpc_client {
	CURL *curl; /* reused: keeps the connection alive between calls */
	char *base; /* "http://host:port", "http://localhost" over unix */
	char *unix_path;
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

struct rpc_client *rpc_client_new(const char *url, const char *token, long timeout_ms)
{
	static const struct {
		const char *scheme;
		bool is_unix;
	} schemes[] = {
		{ "http://", false },
		{ "https://", false },
		{ "unix://", true },
	};
	struct rpc_client *c;
	struct curl_slist *h;
	char *auth;
	size_t i, len;
	int ret;

	ret = -EINVAL;
	if (!url)
		goto err;
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)))
			break;
	if (i == sizeof(schemes) / sizeof(schemes[0]) ||
	    !url[strlen(schemes[i].scheme)] || (token && strpbrk(token, "\r\n"))) {
		log_warnx("cannot parse API URL", "url=%s", url);
		goto err;
	}
	if (schemes[i].is_unix && url[strlen(schemes[i].scheme)] != '/') {
		log_warnx("unix URL needs an absolute path", "url=%s", url);
		goto err;
	}
	ret = -ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		goto err;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_global;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	if (schemes[i].is_unix) {
		c->unix_path = strdup(url + strlen(schemes[i].scheme));
		c->base = strdup("http://localhost");
	} else {
		c->base = strdup(url);
	}
	if (!c->base || (schemes[i].is_unix && !c->unix_path))
		goto err_free;
	len = strlen(c->base);
	while (len && c->base[len - 1] == '/')
		c->base[--len] = '\0';

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
	free(c->base);
	free(c->unix_path);
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
static int rpc_curl_errno(const struct rpc_client *c, CURLcode cc)
{
	struct stat st;

	/* A unix socket that is not there says more than "refused". */
	if (cc == CURLE_COULDNT_CONNECT && c->unix_path && stat(c->unix_path, &st) < 0 &&
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

static int rpc_perform(struct rpc_client *c, const char *path, const void *body,
		       size_t body_len, bool post, long timeout_ms, struct buf *b,
		       long *status)
{
	size_t len = strlen(c->base) + strlen(path) + 1;
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
	snprintf(url, len, "%s%s", c->base, path);
	curl_easy_reset(c->curl);
	curlx_setup(c->curl, url, c->ca_file, &c->cancelled);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, buf_curl_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
	if (c->unix_path)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
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
	ret = rpc_curl_errno(c, cc);
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

int rpc_call(struct rpc_client *c, const char *path, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     long timeout_ms, struct rpc_error *err)
{
	struct buf b = { .max = RPC_MAX_RESPONSE };
	uint8_t *body;
	size_t len;
	long status = 0;
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

	ret = rpc_perform(c, path, body, len, true, timeout_ms, &b, &status);
	if (ret < 0) {
		rpc_error_set(err, CONNECT_UNAVAILABLE, 0, "%s%s: %s", c->base, path,
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
	free(body);
	return ret;
}

int rpc_get(struct rpc_client *c, const char *path, char **body, size_t *len,
	    int *status)
{
	struct buf b = { .max = RPC_MAX_RESPONSE };
	long st = 0;
	int ret;

	if (body)
		*body = NULL;
	if (!c || !path || path[0] != '/')
		return -EINVAL;
	ret = rpc_perform(c, path, NULL, 0, false, 0, &b, &st);
	if (ret < 0) {
		free(b.data);
		return ret;
	}
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

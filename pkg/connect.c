#include "connect.h"

#include "log.h"
#include "pjson.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * One event loop, one MHD daemon per listener, every daemon in external
 * epoll mode: connect_server_run() waits on the daemons' epoll fds, an
 * eventfd for connect_server_wake() and the nearest deferred deadline. A
 * deferred call's connection is suspended (MHD_suspend_connection) and sits
 * in a min-heap on its deadline; a wake resumes all of them, a deadline the
 * due ones. MHD then calls the access handler again, which re-runs the
 * method's handler. So a waiting long poll costs a socket and a heap slot,
 * never a thread.
 */

#define CONNECT_IDLE_TIMEOUT_S 120
#define CONNECT_MAX_CONNECTIONS 100000U
#define CONNECT_POLL_MS 200
/* Per connection buffer for headers and reads (MHD's default is 32 KiB):
 * ten thousand waiting long polls are ten thousand of them. Bodies are
 * collected elsewhere (connect_append), answers are sent from their own
 * buffers. */
#define CONNECT_CONN_MEMORY (8 * 1024)

struct connect_listener {
	struct connect_server *srv;
	struct MHD_Daemon *daemon;
	int fd;
	int epoll_fd; /* MHD's, watched by ours */
	bool tcp;
	uint16_t port;
	char *path; /* unix socket path, unlinked at free */
	char *cert, *key; /* PEM, for HTTPS; the key is wiped at free */
};

struct connect_server {
	const struct connect_method *methods;
	size_t n_methods;
	void *ctx;
	bool has_token;
	uint8_t token_hash[crypto_generichash_BYTES];
	int (*metrics)(struct prom *p, void *ctx);
	int (*healthz)(void *ctx);
	int (*after_run)(void *ctx);

	struct connect_listener *listeners;
	size_t n_listeners;
	int epfd;
	int wakefd;
	unsigned int conn_limit;
	bool stopping;

	struct connect_call **heap; /* deferred calls, min-heap on deadline */
	size_t n_heap, cap_heap;
	atomic_size_t n_deferred;

	struct connect_call **held; /* answered, kept until connect_server_release */
	size_t n_held, cap_held;
	bool released; /* resumed held calls wait for the daemons to run */

	uint64_t *requests; /* [n_methods][CONNECT_CODE_COUNT] */
};

enum connect_state {
	CALL_BODY,     /* reading the request body */
	CALL_DISCARD,  /* body over the limit: dropping the rest, then 400 */
	CALL_READY,    /* body complete, handler not yet (re-)run */
	CALL_DEFERRED, /* suspended, waiting for a wake or its deadline */
	CALL_HELD,     /* answered, suspended until connect_server_release */
	CALL_ANSWERED, /* answer recorded, to be queued */
	CALL_QUEUED,   /* response handed to MHD */
};

enum connect_encoding { ENC_PROTO, ENC_JSON };

struct connect_arena {
	struct connect_arena *next;
	max_align_t data[];
};

struct connect_call {
	struct connect_server *srv;
	struct MHD_Connection *conn;
	const struct connect_method *method; /* NULL for /healthz, /metrics */
	size_t method_idx;
	enum connect_state state;
	enum connect_encoding enc;
	bool expired;
	uint64_t start_ms, deadline_ms;
	uint64_t client_deadline_ms; /* from Connect-Timeout-Ms, 0 if none */

	uint8_t *body;
	size_t body_len, body_cap;
	size_t discarded;
	ProtobufCMessage *request;
	struct connect_arena *arena;

	/* The answer. */
	enum connect_code code;
	int status;
	const char *ctype;
	char *resp;
	size_t resp_len;
	struct connect_body *shared; /* instead of resp: one body for many calls */
};

/* An answer encoded once and queued to many calls (MHD counts the
 * response's own references; refs keeps it alive until then). */
struct connect_body {
	const ProtobufCMessageDescriptor *desc;
	bool json;
	unsigned int refs;
	size_t len;
	struct MHD_Response *resp;
};

/* ---- codes ------------------------------------------------------------- */

static const struct {
	const char *name;
	int status;
} connect_codes[CONNECT_CODE_COUNT] = {
	[CONNECT_OK] = { "ok", 200 },
	[CONNECT_INVALID_ARGUMENT] = { "invalid_argument", 400 },
	[CONNECT_UNAUTHENTICATED] = { "unauthenticated", 401 },
	[CONNECT_PERMISSION_DENIED] = { "permission_denied", 403 },
	[CONNECT_NOT_FOUND] = { "not_found", 404 },
	[CONNECT_ALREADY_EXISTS] = { "already_exists", 409 },
	[CONNECT_FAILED_PRECONDITION] = { "failed_precondition", 412 },
	[CONNECT_RESOURCE_EXHAUSTED] = { "resource_exhausted", 429 },
	[CONNECT_INTERNAL] = { "internal", 500 },
	[CONNECT_UNAVAILABLE] = { "unavailable", 503 },
	[CONNECT_UNIMPLEMENTED] = { "unimplemented", 404 },
};

const char *connect_code_name(enum connect_code code)
{
	if ((unsigned int)code >= CONNECT_CODE_COUNT)
		return "unknown";
	return connect_codes[code].name;
}

int connect_code_http_status(enum connect_code code)
{
	if ((unsigned int)code >= CONNECT_CODE_COUNT)
		return 500;
	return connect_codes[code].status;
}

enum connect_code connect_code_from_name(const char *name)
{
	for (int i = 0; name && i < CONNECT_CODE_COUNT; i++)
		if (!strcmp(name, connect_codes[i].name))
			return (enum connect_code)i;
	return CONNECT_INTERNAL;
}

static uint64_t connect_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the call arena ---------------------------------------------------- */

void *connect_call_alloc(struct connect_call *call, size_t size)
{
	struct connect_arena *a;

	if (size > SIZE_MAX - sizeof(*a)) {
		errno = ENOMEM;
		return NULL;
	}
	a = calloc(1, sizeof(*a) + size);
	if (!a)
		return NULL;
	a->next = call->arena;
	call->arena = a;
	return a->data;
}

char *connect_call_strdup(struct connect_call *call, const char *s)
{
	size_t len = strlen(s) + 1;
	char *p = connect_call_alloc(call, len);

	if (p)
		memcpy(p, s, len);
	return p;
}

char *connect_call_printf(struct connect_call *call, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = connect_call_alloc(call, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static void connect_call_free(struct connect_call *call)
{
	struct connect_arena *a, *next;

	if (!call)
		return;
	for (a = call->arena; a; a = next) {
		next = a->next;
		free(a);
	}
	if (call->request)
		protobuf_c_message_free_unpacked(call->request, NULL);
	free(call->body);
	free(call->resp);
	connect_body_free(call->shared);
	free(call);
}

const ProtobufCMessage *connect_call_request(const struct connect_call *call)
{
	return call->request;
}

const char *connect_call_method(const struct connect_call *call)
{
	const char *slash;

	if (!call->method)
		return "";
	slash = strrchr(call->method->path, '/');
	return slash ? slash + 1 : call->method->path;
}

bool connect_call_expired(const struct connect_call *call)
{
	return call->expired;
}

/* ---- answers ----------------------------------------------------------- */

static void connect_set_answer(struct connect_call *call, enum connect_code code,
			       int status, const char *ctype, char *body, size_t len)
{
	free(call->resp);
	connect_body_free(call->shared);
	call->shared = NULL;
	call->code = code;
	call->status = status;
	call->ctype = ctype;
	call->resp = body;
	call->resp_len = len;
	call->state = CALL_ANSWERED;
}

static int connect_vfail_status(struct connect_call *call, enum connect_code code,
				int status, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static int connect_vfail_status(struct connect_call *call, enum connect_code code,
				int status, const char *fmt, va_list ap)
{
	char msg[512];
	json_t *j;
	char *body;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	j = json_pack("{s:s, s:s}", "code", connect_code_name(code), "message", msg);
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	/* Without memory for the body, the status alone still says what failed. */
	connect_set_answer(call, code, status, "application/json", body,
			   body ? strlen(body) : 0);
	return 0;
}

static int connect_fail_status(struct connect_call *call, enum connect_code code,
			       int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int connect_fail_status(struct connect_call *call, enum connect_code code,
			       int status, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = connect_vfail_status(call, code, status, fmt, ap);
	va_end(ap);
	return ret;
}

int connect_fail(struct connect_call *call, enum connect_code code,
		 const char *fmt, ...)
{
	va_list ap;
	int ret;

	if (code == CONNECT_OK || (unsigned int)code >= CONNECT_CODE_COUNT)
		code = CONNECT_INTERNAL;
	va_start(ap, fmt);
	ret = connect_vfail_status(call, code, connect_code_http_status(code), fmt, ap);
	va_end(ap);
	return ret;
}

int connect_reply(struct connect_call *call, const ProtobufCMessage *response)
{
	char *body;
	size_t len;

	if (!response || !call->method ||
	    response->descriptor != call->method->output) {
		connect_fail(call, CONNECT_INTERNAL, "handler answered with the wrong message type");
		return -EINVAL;
	}
	if (call->enc == ENC_JSON) {
		body = pjson_encode_string(response);
		if (!body) {
			connect_fail(call, CONNECT_INTERNAL, "cannot encode the response as JSON");
			return -errno;
		}
		len = strlen(body);
		connect_set_answer(call, CONNECT_OK, 200, "application/json", body, len);
		return 0;
	}
	len = protobuf_c_message_get_packed_size(response);
	body = malloc(len ? len : 1);
	if (!body) {
		connect_fail(call, CONNECT_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	protobuf_c_message_pack(response, (uint8_t *)body);
	connect_set_answer(call, CONNECT_OK, 200, "application/proto", body, len);
	return 0;
}

/* ---- deferred calls: a min-heap on the deadline ------------------------- */

static void connect_heap_swap(struct connect_server *srv, size_t a, size_t b)
{
	struct connect_call *t = srv->heap[a];

	srv->heap[a] = srv->heap[b];
	srv->heap[b] = t;
}

static int connect_heap_push(struct connect_server *srv, struct connect_call *call)
{
	size_t i;

	if (srv->n_heap == srv->cap_heap) {
		size_t cap = srv->cap_heap ? srv->cap_heap * 2 : 64;
		struct connect_call **heap = realloc(srv->heap, cap * sizeof(*heap));

		if (!heap)
			return -ENOMEM;
		srv->heap = heap;
		srv->cap_heap = cap;
	}
	i = srv->n_heap++;
	srv->heap[i] = call;
	while (i && srv->heap[(i - 1) / 2]->deadline_ms > srv->heap[i]->deadline_ms) {
		connect_heap_swap(srv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	atomic_store(&srv->n_deferred, srv->n_heap);
	return 0;
}

static struct connect_call *connect_heap_pop(struct connect_server *srv)
{
	struct connect_call *top;
	size_t i = 0;

	if (!srv->n_heap)
		return NULL;
	top = srv->heap[0];
	srv->heap[0] = srv->heap[--srv->n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < srv->n_heap && srv->heap[l]->deadline_ms < srv->heap[m]->deadline_ms)
			m = l;
		if (r < srv->n_heap && srv->heap[r]->deadline_ms < srv->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			break;
		connect_heap_swap(srv, i, m);
		i = m;
	}
	atomic_store(&srv->n_deferred, srv->n_heap);
	return top;
}

int connect_call_defer(struct connect_call *call, unsigned int timeout_ms)
{
	uint64_t deadline = connect_now_ms() + timeout_ms;

	/* A call woken early keeps its first deadline, so a handler that
	 * defers again with the same wait cannot stretch the long poll. */
	if (!call->deadline_ms || call->expired || deadline < call->deadline_ms)
		call->deadline_ms = deadline;
	/* Answer before the client gives up rather than after. */
	if (call->client_deadline_ms && call->deadline_ms > call->client_deadline_ms)
		call->deadline_ms = call->client_deadline_ms;
	call->state = CALL_DEFERRED;
	return 0;
}

static void connect_resume(struct connect_call *call, bool expired)
{
	call->expired = expired;
	call->state = CALL_READY;
	MHD_resume_connection(call->conn);
}

size_t connect_server_deferred(const struct connect_server *srv)
{
	return atomic_load(&((struct connect_server *)srv)->n_deferred);
}

void connect_server_wake(struct connect_server *srv)
{
	uint64_t one = 1;
	ssize_t n;

	/* Only write(2): callable from a signal handler. EAGAIN means the
	 * counter is saturated, i.e. a wake is pending anyway. */
	n = write(srv->wakefd, &one, sizeof(one));
	(void)n;
}

/* ---- request handling -------------------------------------------------- */

static void connect_count(struct connect_call *call)
{
	if (call->method)
		call->srv->requests[call->method_idx * CONNECT_CODE_COUNT + call->code]++;
}

static enum MHD_Result connect_queue(struct connect_call *call)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (call->shared) {
		/* MHD takes its own reference on the shared response. */
		ret = MHD_queue_response(call->conn, (unsigned int)call->status,
					 call->shared->resp);
		connect_body_free(call->shared);
		call->shared = NULL;
	} else {
		resp = MHD_create_response_from_buffer(call->resp_len, call->resp,
						       MHD_RESPMEM_MUST_FREE);
		if (!resp)
			return MHD_NO;
		call->resp = NULL; /* MHD frees it now */
		if (call->ctype)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, call->ctype);
		if (call->status == MHD_HTTP_METHOD_NOT_ALLOWED)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
						call->method ? "POST" : "GET, HEAD");
		ret = MHD_queue_response(call->conn, (unsigned int)call->status, resp);
		MHD_destroy_response(resp);
	}
	call->state = CALL_QUEUED;
	connect_count(call);
	if (call->method)
		log_debug("api call", "method=%s code=%s ms=%llu", connect_call_method(call),
			  connect_code_name(call->code),
			  (unsigned long long)(connect_now_ms() - call->start_ms));
	return ret;
}

static bool connect_authorized(const struct connect_server *srv,
			       struct MHD_Connection *conn)
{
	uint8_t hash[crypto_generichash_BYTES];
	const char *auth;
	bool ok;

	if (!srv->has_token)
		return true;
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return false;
	auth += 7;
	/* Comparing fixed-size digests keeps the time independent of where,
	 * and of whether the lengths, differ. */
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)auth,
			   strlen(auth), NULL, 0);
	ok = sodium_memcmp(hash, srv->token_hash, sizeof(hash)) == 0;
	sodium_memzero(hash, sizeof(hash));
	return ok;
}

/* "application/json; charset=utf-8" -> ENC_JSON; -1 when unsupported. */
static int connect_content_type(const char *ctype)
{
	static const struct {
		const char *name;
		enum connect_encoding enc;
	} types[] = {
		{ "application/proto", ENC_PROTO },
		{ "application/json", ENC_JSON },
	};
	size_t len;

	if (!ctype)
		return -1;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	len = strcspn(ctype, "; \t");
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (len == strlen(types[i].name) && !strncasecmp(ctype, types[i].name, len))
			return (int)types[i].enc;
	return -1;
}

static void connect_answer_metrics(struct connect_call *call)
{
	struct connect_server *srv = call->srv;
	const char *text;
	struct prom *p;
	size_t len;
	char *body;
	int ret = 0;

	p = prom_new();
	if (!p)
		goto err;
	if (srv->metrics)
		ret = srv->metrics(p, srv->ctx);
	if (!ret)
		ret = prom_family(p, "wgcni_api_requests_total", PROM_COUNTER,
				  "API calls by method and Connect code.");
	for (size_t m = 0; !ret && m < srv->n_methods; m++) {
		const char *slash = strrchr(srv->methods[m].path, '/');
		const char *name = slash ? slash + 1 : srv->methods[m].path;

		for (int c = 0; !ret && c < CONNECT_CODE_COUNT; c++) {
			uint64_t n = srv->requests[m * CONNECT_CODE_COUNT + (size_t)c];

			/* Every method's "ok" series exists from the start. */
			if (n || c == CONNECT_OK)
				ret = prom_sample(p, (double)n, "method", name, "code",
						  connect_code_name((enum connect_code)c), NULL);
		}
	}
	text = ret ? NULL : prom_text(p, &len);
	if (!text)
		goto err_free_prom;
	body = malloc(len + 1);
	if (!body)
		goto err_free_prom;
	memcpy(body, text, len + 1);
	prom_free(p);
	connect_set_answer(call, CONNECT_OK, 200, "text/plain; version=0.0.4; charset=utf-8",
			   body, len);
	return;

err_free_prom:
	prom_free(p);
err:
	connect_fail(call, CONNECT_INTERNAL, "cannot collect metrics");
}

static void connect_answer_healthz(struct connect_call *call)
{
	struct connect_server *srv = call->srv;
	bool healthy = !srv->healthz || srv->healthz(srv->ctx) == 0;
	char *body = strdup(healthy ? "ok\n" : "unavailable\n");

	connect_set_answer(call, healthy ? CONNECT_OK : CONNECT_UNAVAILABLE,
			   healthy ? 200 : 503, "text/plain; charset=utf-8", body,
			   body ? strlen(body) : 0);
}

typedef void (*connect_get_fn)(struct connect_call *call);

static const struct {
	const char *path;
	connect_get_fn answer;
} connect_gets[] = {
	{ "/healthz", connect_answer_healthz },
	{ "/metrics", connect_answer_metrics },
};

/* Connect-Timeout-Ms: at most 10 digits (Connect protocol). A deferred call
 * is answered a little before that, so the answer still reaches the client. */
static void connect_client_timeout(struct connect_call *call)
{
	const char *t = MHD_lookup_connection_value(call->conn, MHD_HEADER_KIND,
						    "Connect-Timeout-Ms");
	uint64_t ms, margin;
	size_t len;

	if (!t)
		return;
	len = strlen(t);
	if (!len || len > 10 || strspn(t, "0123456789") != len)
		return;
	ms = strtoull(t, NULL, 10);
	margin = ms / 5 < 1000 ? ms / 5 : 1000;
	call->client_deadline_ms = call->start_ms + ms - margin;
}

/* First look at a request: headers only. May answer at once. */
static void connect_begin(struct connect_call *call, const char *url,
			  const char *method)
{
	struct connect_server *srv = call->srv;
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) ||
		   !strcmp(method, MHD_HTTP_METHOD_HEAD);
	const char *len_hdr;
	int enc;

	for (size_t i = 0; i < sizeof(connect_gets) / sizeof(connect_gets[0]); i++) {
		if (strcmp(url, connect_gets[i].path))
			continue;
		if (get)
			connect_gets[i].answer(call);
		else
			connect_fail_status(call, CONNECT_UNIMPLEMENTED,
					    MHD_HTTP_METHOD_NOT_ALLOWED,
					    "method %s not allowed on \"%s\"", method, url);
		return;
	}

	for (size_t i = 0; i < srv->n_methods; i++) {
		if (!strcmp(url, srv->methods[i].path)) {
			call->method = &srv->methods[i];
			call->method_idx = i;
			break;
		}
	}
	if (!connect_authorized(srv, call->conn)) {
		connect_fail(call, CONNECT_UNAUTHENTICATED, "missing or wrong bearer token");
		return;
	}
	if (!call->method) {
		connect_fail(call, CONNECT_UNIMPLEMENTED, "unknown method \"%.128s\"", url);
		return;
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST)) {
		connect_fail_status(call, CONNECT_UNIMPLEMENTED, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "method %.16s not allowed on \"%s\"", method, url);
		return;
	}
	enc = connect_content_type(MHD_lookup_connection_value(
		call->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
	if (enc < 0) {
		const char *ct = MHD_lookup_connection_value(call->conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_TYPE);

		connect_fail_status(call, CONNECT_INVALID_ARGUMENT,
				    MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				    "unsupported content type \"%.64s\"", ct ? ct : "");
		return;
	}
	call->enc = (enum connect_encoding)enc;
	connect_client_timeout(call);
	len_hdr = MHD_lookup_connection_value(call->conn, MHD_HEADER_KIND,
					      MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (len_hdr && strtoull(len_hdr, NULL, 10) > CONNECT_MAX_BODY) {
		connect_fail(call, CONNECT_INVALID_ARGUMENT, "request body exceeds 1 MiB");
		return;
	}
	call->state = CALL_BODY;
}

static int connect_append(struct connect_call *call, const char *data, size_t len)
{
	if (len > CONNECT_MAX_BODY - call->body_len)
		return -EMSGSIZE;
	if (call->body_len + len > call->body_cap) {
		size_t cap = call->body_cap ? call->body_cap : 4096;
		uint8_t *body;

		while (cap < call->body_len + len)
			cap *= 2;
		if (cap > CONNECT_MAX_BODY)
			cap = CONNECT_MAX_BODY;
		body = realloc(call->body, cap);
		if (!body)
			return -ENOMEM;
		call->body = body;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, data, len);
	call->body_len += len;
	return 0;
}

static void connect_decode(struct connect_call *call)
{
	const ProtobufCMessageDescriptor *desc = call->method->input;
	char err[256];

	if (call->enc == ENC_PROTO) {
		call->request = protobuf_c_message_unpack(desc, NULL, call->body_len,
							  call->body);
		if (!call->request) {
			connect_fail(call, CONNECT_INVALID_ARGUMENT,
				     "cannot decode %s from application/proto", desc->name);
			return;
		}
	} else if (call->body_len == 0) {
		/* An empty body is the empty message, as it is for
		 * application/proto: `curl -X POST .../ListNodes` just works. */
		call->request = pjson_decode_buf(desc, "{}", 2, err, sizeof(err));
		if (!call->request) {
			connect_fail(call, CONNECT_INTERNAL, "%s", err);
			return;
		}
	} else {
		call->request = pjson_decode_buf(desc, (const char *)call->body,
						 call->body_len, err, sizeof(err));
		if (!call->request) {
			connect_fail(call, CONNECT_INVALID_ARGUMENT, "%s", err);
			return;
		}
	}
	free(call->body);
	call->body = NULL;
	call->body_len = call->body_cap = 0;
	call->state = CALL_READY;
}

static void connect_run_handler(struct connect_call *call)
{
	struct connect_server *srv = call->srv;
	int ret;

	if (srv->stopping) {
		connect_fail(call, CONNECT_UNAVAILABLE, "server shutting down");
		return;
	}
	call->state = CALL_READY;
	ret = call->method->handler(call, srv->ctx);
	if (call->state == CALL_HELD) {
		MHD_suspend_connection(call->conn);
		return;
	}
	if (call->state == CALL_DEFERRED) {
		if (connect_heap_push(srv, call) < 0) {
			connect_fail(call, CONNECT_RESOURCE_EXHAUSTED, "too many waiting calls");
			return;
		}
		MHD_suspend_connection(call->conn);
		return;
	}
	if (call->state != CALL_ANSWERED)
		connect_fail(call, CONNECT_INTERNAL, "%s: handler gave no answer (%s)",
			     connect_call_method(call), strerror(ret < 0 ? -ret : EINVAL));
}

static enum MHD_Result connect_access(void *cls, struct MHD_Connection *conn,
				      const char *url, const char *method,
				      const char *version, const char *upload_data,
				      size_t *upload_data_size, void **con_cls)
{
	struct connect_server *srv = cls;
	struct connect_call *call = *con_cls;

	if (!call) {
		call = calloc(1, sizeof(*call));
		if (!call)
			return MHD_NO;
		call->srv = srv;
		call->conn = conn;
		call->start_ms = connect_now_ms();
		*con_cls = call;
		connect_begin(call, url, method);
		/* Refusals go out before any body is read. */
		return call->state == CALL_ANSWERED ? connect_queue(call) : MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (call->state == CALL_DISCARD) {
			/* MHD 0.9.75 cannot queue an answer in the middle of an
			 * upload: drop a bounded excess to answer 400, close
			 * the connection beyond it. */
			call->discarded += n;
			return call->discarded > CONNECT_MAX_BODY ? MHD_NO : MHD_YES;
		}
		if (call->state != CALL_BODY)
			return MHD_YES;
		switch (connect_append(call, upload_data, n)) {
		case 0:
			return MHD_YES;
		case -EMSGSIZE:
			call->state = CALL_DISCARD;
			call->discarded = n;
			free(call->body);
			call->body = NULL;
			call->body_len = call->body_cap = 0;
			return MHD_YES;
		default:
			return MHD_NO;
		}
	}
	if (call->state == CALL_DISCARD)
		connect_fail(call, CONNECT_INVALID_ARGUMENT, "request body exceeds 1 MiB");
	if (call->state == CALL_BODY)
		connect_decode(call);
	if (call->state == CALL_READY)
		connect_run_handler(call);
	if (call->state == CALL_DEFERRED || call->state == CALL_HELD)
		return MHD_YES;
	if (call->state == CALL_ANSWERED)
		return connect_queue(call);
	return MHD_YES;
}

static void connect_completed(void *cls, struct MHD_Connection *conn,
			      void **con_cls, enum MHD_RequestTerminationCode toe)
{
	connect_call_free(*con_cls);
	*con_cls = NULL;
}

static void connect_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void connect_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	log_debug("http server", "detail=\"%s\"", msg);
}

/* ---- server lifecycle -------------------------------------------------- */

struct connect_server *connect_server_new(const struct connect_server_config *cfg)
{
	struct connect_server *srv;
	struct rlimit rl;
	int ret;

	ret = -EINVAL;
	if (!cfg || (cfg->n_methods && !cfg->methods))
		goto err;
	if (sodium_init() < 0)
		goto err;
	ret = -ENOMEM;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		goto err;
	srv->methods = cfg->methods;
	srv->n_methods = cfg->n_methods;
	srv->ctx = cfg->ctx;
	srv->metrics = cfg->metrics;
	srv->healthz = cfg->healthz;
	srv->after_run = cfg->after_run;
	srv->epfd = srv->wakefd = -1;
	atomic_init(&srv->n_deferred, 0);
	connect_server_set_token(srv, cfg->token);
	srv->requests = calloc(srv->n_methods ? srv->n_methods : 1,
			       CONNECT_CODE_COUNT * sizeof(*srv->requests));
	if (!srv->requests)
		goto err_free_srv;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0) {
		ret = -errno;
		goto err_free_requests;
	}
	srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->wakefd < 0) {
		ret = -errno;
		goto err_close_epfd;
	}
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wakefd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 0 }) < 0) {
		ret = -errno;
		goto err_close_wakefd;
	}

	/* Every waiting long poll holds a socket: use all the descriptors the
	 * hard limit allows. */
	srv->conn_limit = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				log_warn("cannot raise the open file limit", NULL);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > CONNECT_MAX_CONNECTIONS + 64)
			srv->conn_limit = CONNECT_MAX_CONNECTIONS;
		else if (rl.rlim_cur > 1024 + 64)
			srv->conn_limit = (unsigned int)rl.rlim_cur - 64;
	}
	return srv;

err_close_wakefd:
	close(srv->wakefd);
err_close_epfd:
	close(srv->epfd);
err_free_requests:
	free(srv->requests);
err_free_srv:
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	free(srv);
err:
	errno = -ret;
	return NULL;
}

int connect_server_set_token(struct connect_server *srv, const char *token)
{
	/* Only a digest is kept: the token itself is not held in memory. */
	srv->has_token = token != NULL;
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	if (token)
		crypto_generichash(srv->token_hash, sizeof(srv->token_hash),
				   (const unsigned char *)token, strlen(token), NULL, 0);
	return 0;
}

static void connect_free_pem(char *cert, char *key)
{
	if (key)
		sodium_memzero(key, strlen(key));
	free(key);
	free(cert);
}

/* Hands a bound, listening socket to a new MHD daemon (takes fd, and cert
 * and key when not NULL: then it serves HTTPS). */
static int connect_add_listener(struct connect_server *srv, int fd, bool tcp,
				uint16_t port, const char *path, char *cert, char *key)
{
	struct MHD_OptionItem tls[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, key },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct connect_listener *ls, *l;
	const union MHD_DaemonInfo *info;
	int ret;

	ret = -ENOMEM;
	ls = realloc(srv->listeners, (srv->n_listeners + 1) * sizeof(*ls));
	if (!ls)
		goto err_close;
	srv->listeners = ls;
	l = &srv->listeners[srv->n_listeners];
	*l = (struct connect_listener){ .srv = srv, .fd = fd, .tcp = tcp, .port = port,
					.cert = cert, .key = key };
	if (path) {
		l->path = strdup(path);
		if (!l->path)
			goto err_close;
	}

	ret = -EIO;
	l->daemon = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			(cert ? MHD_USE_TLS : 0),
		0, NULL, NULL, connect_access, srv,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_ARRAY, cert ? tls : &tls[2],
		MHD_OPTION_NOTIFY_COMPLETED, connect_completed, srv,
		MHD_OPTION_CONNECTION_LIMIT, srv->conn_limit,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECT_IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECT_CONN_MEMORY,
		MHD_OPTION_EXTERNAL_LOGGER, connect_mhd_log, srv,
		MHD_OPTION_END);
	if (!l->daemon) {
		/* Whether a failed start closed the passed socket is not
		 * documented: leak it rather than risk closing a reused fd. */
		log_warnx("cannot start the HTTP server", "tls=%s", cert ? "yes" : "no");
		free(l->path);
		connect_free_pem(cert, key);
		return ret;
	}
	info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		goto err_stop;
	l->epoll_fd = info->epoll_fd;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, l->epoll_fd,
		      &(struct epoll_event){ .events = EPOLLIN,
					     .data.u64 = srv->n_listeners + 1 }) < 0) {
		ret = -errno;
		goto err_stop;
	}
	srv->n_listeners++;
	return 0;

err_stop:
	MHD_stop_daemon(l->daemon); /* closes fd */
	free(l->path);
	connect_free_pem(cert, key);
	return ret;
err_close:
	close(fd);
	connect_free_pem(cert, key);
	return ret;
}

/* "0.0.0.0:8080", "[::1]:8080", "127.0.0.1:0". */
static int connect_parse_hostport(const char *addr, char *host, size_t hostlen,
				  const char **port)
{
	const char *colon;
	size_t len;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		len = (size_t)(end - addr - 1);
		if (len >= hostlen)
			return -EINVAL;
		memcpy(host, addr + 1, len);
		host[len] = '\0';
		*port = end + 2;
		return 0;
	}
	colon = strrchr(addr, ':');
	if (!colon || strchr(addr, ':') != colon)
		return -EINVAL;
	len = (size_t)(colon - addr);
	if (len >= hostlen)
		return -EINVAL;
	memcpy(host, addr, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

/* Takes cert and key (may be NULL). */
static int connect_listen_tcp(struct connect_server *srv, const char *addr,
			      char *cert, char *key)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct addrinfo *ai;
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	uint16_t bound;
	int fd, ret, one = 1;

	ret = connect_parse_hostport(addr, host, sizeof(host), &port);
	if (ret < 0 || !*port) {
		log_warnx("cannot parse listen address", "addr=\"%s\"", addr);
		ret = -EINVAL;
		goto err_free_pem;
	}
	ret = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
	if (ret) {
		log_warnx("cannot parse listen address", "addr=\"%s\" err=\"%s\"", addr,
			  gai_strerror(ret));
		ret = -EINVAL;
		goto err_free_pem;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto err_free_ai;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		ret = -errno;
		log_warn("cannot listen", "addr=\"%s\"", addr);
		goto err_close;
	}
	bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return connect_add_listener(srv, fd, true, bound, NULL, cert, key);

err_close:
	close(fd);
err_free_ai:
	freeaddrinfo(ai);
err_free_pem:
	connect_free_pem(cert, key);
	return ret;
}

int connect_server_listen_tcp(struct connect_server *srv, const char *addr)
{
	return connect_listen_tcp(srv, addr, NULL, NULL);
}

/* A whole PEM file as a string (malloc'd), bounded. */
static int connect_read_pem(const char *path, char **out)
{
	enum { PEM_MAX = 256 * 1024 };
	char *buf;
	size_t len;
	FILE *f;
	int ret;

	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		log_warn("cannot open PEM file", "path=\"%s\"", path);
		return ret;
	}
	ret = -ENOMEM;
	buf = malloc(PEM_MAX + 1);
	if (!buf)
		goto err_close;
	len = fread(buf, 1, PEM_MAX + 1, f);
	ret = -EINVAL;
	if (ferror(f) || len == 0 || len > PEM_MAX || memchr(buf, '\0', len)) {
		log_warnx("cannot read PEM file", "path=\"%s\"", path);
		goto err_free;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	return 0;

err_free:
	sodium_memzero(buf, PEM_MAX + 1);
	free(buf);
err_close:
	fclose(f);
	return ret;
}

int connect_server_listen_tls(struct connect_server *srv, const char *addr,
			      const char *cert_file, const char *key_file)
{
	char *cert = NULL, *key = NULL;
	int ret;

	ret = -ENOTSUP;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		log_warnx("libmicrohttpd has no TLS support", NULL);
		return ret;
	}
	ret = connect_read_pem(cert_file, &cert);
	if (ret)
		return ret;
	ret = connect_read_pem(key_file, &key);
	if (ret) {
		free(cert);
		return ret;
	}
	return connect_listen_tcp(srv, addr, cert, key);
}

int connect_server_listen_unix(struct connect_server *srv, const char *path, mode_t mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_un tmp = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	ret = -ENAMETOOLONG;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("unix socket path too long", "path=\"%s\"", path);
		return ret;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* Only a stale socket may be replaced, never another kind of file. */
	ret = -EEXIST;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		log_warnx("refusing to replace a non-socket", "path=\"%s\"", path);
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bind under a temporary name, chmod, then rename into place, so the
	 * socket is never reachable with looser permissions. */
	if ((size_t)snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d", path,
			     (int)getpid()) >= sizeof(tmp.sun_path)) {
		ret = -ENAMETOOLONG;
		log_warnx("unix socket path too long for a temporary name", "path=\"%s\"", path);
		goto err_close;
	}
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0) {
		ret = -errno;
		log_warn("cannot bind unix socket", "path=\"%s\"", tmp.sun_path);
		goto err_close;
	}
	if (chmod(tmp.sun_path, mode) < 0 ||
	    (strcmp(tmp.sun_path, path) && rename(tmp.sun_path, path) < 0) ||
	    listen(fd, 4096) < 0) {
		ret = -errno;
		log_warn("cannot set up unix socket", "path=\"%s\"", path);
		goto err_unlink;
	}
	return connect_add_listener(srv, fd, false, 0, path, NULL, NULL);

err_unlink:
	unlink(tmp.sun_path);
err_close:
	close(fd);
	return ret;
}

uint16_t connect_server_port(const struct connect_server *srv, size_t n)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		if (srv->listeners[i].tcp && n-- == 0)
			return srv->listeners[i].port;
	return 0;
}

static void connect_run_daemons(struct connect_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		MHD_run(srv->listeners[i].daemon);
}

static int connect_next_timeout(struct connect_server *srv)
{
	uint64_t now = connect_now_ms(), t = CONNECT_POLL_MS;
	MHD_UNSIGNED_LONG_LONG mt;

	for (size_t i = 0; i < srv->n_listeners; i++)
		if (MHD_get_timeout(srv->listeners[i].daemon, &mt) == MHD_YES && mt < t)
			t = mt;
	if (srv->n_heap)
		t = srv->heap[0]->deadline_ms <= now ? 0 :
		    (srv->heap[0]->deadline_ms - now < t ? srv->heap[0]->deadline_ms - now : t);
	return (int)t;
}

static void connect_wake_all(struct connect_server *srv)
{
	struct connect_call *call;

	while ((call = connect_heap_pop(srv)))
		connect_resume(call, false);
}

static void connect_expire(struct connect_server *srv)
{
	uint64_t now = connect_now_ms();

	while (srv->n_heap && srv->heap[0]->deadline_ms <= now)
		connect_resume(connect_heap_pop(srv), true);
}

int connect_server_run(struct connect_server *srv, volatile sig_atomic_t *stop)
{
	struct epoll_event ev[32];
	uint64_t count;
	int n;

	if (!srv->n_listeners)
		return -EINVAL;
	connect_run_daemons(srv);
	while (!*stop) {
		n = epoll_wait(srv->epfd, ev, sizeof(ev) / sizeof(ev[0]),
			       connect_next_timeout(srv));
		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == 0 &&
			    read(srv->wakefd, &count, sizeof(count)) == sizeof(count))
				connect_wake_all(srv);
		}
		connect_expire(srv);
		/* MHD's own epoll is non-blocking inside MHD_run: running every
		 * daemon each turn also serves the connections just resumed. */
		connect_run_daemons(srv);
		if (srv->after_run) {
			int ret = srv->after_run(srv->ctx);

			if (ret < 0)
				return ret;
		}
		if (srv->released) {
			srv->released = false;
			connect_run_daemons(srv);
		}
	}
	return 0;
}

void connect_server_free(struct connect_server *srv)
{
	if (!srv)
		return;
	/* MHD cannot stop with suspended connections: answer them first. */
	srv->stopping = true;
	connect_server_release(srv, false);
	connect_wake_all(srv);
	for (int i = 0; i < 3; i++)
		connect_run_daemons(srv);
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct connect_listener *l = &srv->listeners[i];

		MHD_socket fd = MHD_quiesce_daemon(l->daemon);

		/* MHD closes a listen socket it still holds; a quiesced one is ours. */
		MHD_stop_daemon(l->daemon);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		if (l->path)
			unlink(l->path);
		free(l->path);
		connect_free_pem(l->cert, l->key);
	}
	free(srv->listeners);
	free(srv->heap);
	free(srv->held);
	free(srv->requests);
	close(srv->wakefd);
	close(srv->epfd);
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	free(srv);
}

/* ---- answers shared by many calls, answers held for a commit ------------ */

bool connect_call_json(const struct connect_call *call)
{
	return call->enc == ENC_JSON;
}

size_t connect_server_waiting(const struct connect_server *srv, const char *path)
{
	size_t n = 0;

	for (size_t i = 0; i < srv->n_heap; i++)
		if (srv->heap[i]->method && !strcmp(srv->heap[i]->method->path, path))
			n++;
	return n;
}

struct connect_body *connect_body_new(const ProtobufCMessage *msg, bool json)
{
	struct connect_body *b;
	char *buf;
	size_t len;

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (json) {
		buf = pjson_encode_string(msg);
		len = buf ? strlen(buf) : 0;
	} else {
		len = protobuf_c_message_get_packed_size(msg);
		buf = malloc(len ? len : 1);
		if (buf)
			protobuf_c_message_pack(msg, (uint8_t *)buf);
	}
	if (!buf)
		goto err_free_b;
	b->resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!b->resp) {
		free(buf);
		goto err_free_b;
	}
	if (MHD_add_response_header(b->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    json ? "application/json" : "application/proto") != MHD_YES)
		goto err_destroy;
	b->desc = msg->descriptor;
	b->json = json;
	b->len = len;
	b->refs = 1;
	return b;

err_destroy:
	MHD_destroy_response(b->resp);
err_free_b:
	free(b);
	errno = ENOMEM;
	return NULL;
}

size_t connect_body_size(const struct connect_body *b)
{
	return b->len;
}

void connect_body_free(struct connect_body *b)
{
	if (!b || --b->refs)
		return;
	MHD_destroy_response(b->resp);
	free(b);
}

int connect_reply_body(struct connect_call *call, struct connect_body *b)
{
	if (!b || !call->method || b->desc != call->method->output ||
	    b->json != (call->enc == ENC_JSON)) {
		connect_fail(call, CONNECT_INTERNAL, "handler answered with the wrong body");
		return -EINVAL;
	}
	connect_set_answer(call, CONNECT_OK, 200, b->json ? "application/json" :
			   "application/proto", NULL, 0);
	b->refs++;
	call->shared = b;
	return 0;
}

int connect_call_hold(struct connect_call *call)
{
	struct connect_server *srv = call->srv;

	if (call->state != CALL_ANSWERED)
		return 0;
	if (srv->n_held == srv->cap_held) {
		size_t cap = srv->cap_held ? srv->cap_held * 2 : 64;
		struct connect_call **held = realloc(srv->held, cap * sizeof(*held));

		if (!held) {
			connect_fail(call, CONNECT_RESOURCE_EXHAUSTED, "too many calls in flight");
			return -ENOMEM;
		}
		srv->held = held;
		srv->cap_held = cap;
	}
	srv->held[srv->n_held++] = call;
	call->state = CALL_HELD;
	return 0;
}

size_t connect_server_held(const struct connect_server *srv)
{
	return srv->n_held;
}

void connect_server_release(struct connect_server *srv, bool ok)
{
	for (size_t i = 0; i < srv->n_held; i++) {
		struct connect_call *call = srv->held[i];

		if (ok)
			call->state = CALL_ANSWERED;
		else
			connect_fail(call, CONNECT_UNAVAILABLE,
				     "the change could not be saved; try again");
		MHD_resume_connection(call->conn);
	}
	if (srv->n_held)
		srv->released = true;
	srv->n_held = 0;
}

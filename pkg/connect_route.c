#include "connect_priv.h"

#include "log.h"
#include "pjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * One request, from its headers to its answer: MHD calls
 * connect_route_access for the headers, for each piece of the body, once
 * the body is complete and again whenever a deferred call is resumed. The
 * route is a Connect method (POST, authorized, body decoded, handler run)
 * or one of the plain GETs.
 */

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
			  (unsigned long long)(((uint64_t)sys_now_ms()) - call->start_ms));
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
	connect_call_answer(call, CONNECT_OK, 200, "text/plain; version=0.0.4; charset=utf-8",
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

	connect_call_answer(call, healthy ? CONNECT_OK : CONNECT_UNAVAILABLE,
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

/* A deferred call is answered a little before the client's timeout, so
 * the answer still reaches it. A malformed timeout is ignored. */
static void connect_client_timeout(struct connect_call *call)
{
	const char *t = MHD_lookup_connection_value(call->conn, MHD_HEADER_KIND,
						    CONNECT_TIMEOUT_HEADER);
	uint64_t ms, margin;

	if (connect_timeout_parse(t, &ms) < 0)
		return;
	margin = ms / 5 < 1000 ? ms / 5 : 1000;
	call->client_deadline_ms = call->start_ms + ms - margin;
}

/* The request came in on a listener for /healthz and /metrics only. */
static bool connect_metrics_only(const struct connect_call *call)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(call->conn, MHD_CONNECTION_INFO_DAEMON);

	for (size_t i = 0; ci && i < call->srv->n_listeners; i++)
		if (call->srv->listeners[i].daemon == ci->daemon)
			return call->srv->listeners[i].metrics_only;
	return false;
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
			connect_call_fail_status(call, CONNECT_UNIMPLEMENTED,
						 MHD_HTTP_METHOD_NOT_ALLOWED,
						 "method %s not allowed on \"%s\"", method, url);
		return;
	}

	if (connect_metrics_only(call)) {
		connect_call_fail_status(call, CONNECT_NOT_FOUND, MHD_HTTP_NOT_FOUND,
					 "only /healthz and /metrics are served on this address");
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
		connect_call_fail_status(call, CONNECT_UNIMPLEMENTED, MHD_HTTP_METHOD_NOT_ALLOWED,
					 "method %.16s not allowed on \"%s\"", method, url);
		return;
	}
	enc = connect_encoding_parse(MHD_lookup_connection_value(
		call->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
	if (enc < 0) {
		const char *ct = MHD_lookup_connection_value(call->conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_TYPE);

		connect_call_fail_status(call, CONNECT_INVALID_ARGUMENT,
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

	if (call->enc == CONNECT_ENC_PROTO) {
		call->request = protobuf_c_message_unpack(desc, NULL, call->body_len,
							  call->body);
		if (!call->request) {
			connect_fail(call, CONNECT_INVALID_ARGUMENT,
				     "cannot decode %s from " CONNECT_CTYPE_PROTO, desc->name);
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
		if (connect_server_suspend(srv, call) < 0)
			connect_fail(call, CONNECT_RESOURCE_EXHAUSTED, "too many waiting calls");
		return;
	}
	if (call->state != CALL_ANSWERED)
		connect_fail(call, CONNECT_INTERNAL, "%s: handler gave no answer (%s)",
			     connect_call_method(call), strerror(ret < 0 ? -ret : EINVAL));
}

enum MHD_Result connect_route_access(void *cls, struct MHD_Connection *conn,
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
		call->start_ms = ((uint64_t)sys_now_ms());
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

void connect_route_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			     enum MHD_RequestTerminationCode toe)
{
	connect_call_free(*con_cls);
	*con_cls = NULL;
}

void connect_route_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	log_debug("http server", "detail=%s", msg);
}

#include "connect_priv.h"

#include "pjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The API a handler uses on its call: the request, memory that lives as
 * long as the call, and the answer (a reply, an error, or a deferral).
 */

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

void connect_call_free(struct connect_call *call)
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

void connect_call_answer(struct connect_call *call, enum connect_code code, int status,
			 const char *ctype, char *body, size_t len)
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
	char *body;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	body = connect_error_encode(code, msg);
	/* Without memory for the body, the status alone still says what failed. */
	connect_call_answer(call, code, status, CONNECT_CTYPE_JSON, body,
			    body ? strlen(body) : 0);
	return 0;
}

int connect_call_fail_status(struct connect_call *call, enum connect_code code,
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
	if (call->enc == CONNECT_ENC_JSON) {
		body = pjson_encode_string(response);
		if (!body) {
			connect_fail(call, CONNECT_INTERNAL, "cannot encode the response as JSON");
			return -errno;
		}
		len = strlen(body);
		connect_call_answer(call, CONNECT_OK, 200, CONNECT_CTYPE_JSON, body, len);
		return 0;
	}
	len = protobuf_c_message_get_packed_size(response);
	body = malloc(len ? len : 1);
	if (!body) {
		connect_fail(call, CONNECT_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	protobuf_c_message_pack(response, (uint8_t *)body);
	connect_call_answer(call, CONNECT_OK, 200, CONNECT_CTYPE_PROTO, body, len);
	return 0;
}

int connect_call_defer(struct connect_call *call, unsigned int timeout_ms)
{
	uint64_t deadline = ((uint64_t)sys_now_ms()) + timeout_ms;

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

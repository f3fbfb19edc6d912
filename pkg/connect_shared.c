/*
 * Answers shared by many calls (one encoding written to every waiting
 * node), and answers held until the caller's change is on disk (group
 * commit: connect_call_hold, then connect_server_release after the commit).
 */
#include "connect_priv.h"
#include "pjson.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool connect_call_json(const struct connect_call *call)
{
	return call->enc == CONNECT_ENC_JSON;
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
	    b->json != (call->enc == CONNECT_ENC_JSON)) {
		connect_fail(call, CONNECT_INTERNAL, "handler answered with the wrong body");
		return -EINVAL;
	}
	connect_call_answer(call, CONNECT_OK, 200, b->json ? "application/json" :
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
		struct connect_call **held = reallocarray(srv->held, cap, sizeof(*held));

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

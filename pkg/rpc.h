/*
 * Client side of the Connect protocol on libcurl: http://host:port,
 * https://host:port or unix:///path/to.sock. Messages travel as
 * application/proto; Connect error bodies (JSON) are decoded into
 * struct rpc_error.
 */
#ifndef WGCNI_RPC_H
#define WGCNI_RPC_H

#include "connect_proto.h"

#include <protobuf-c/protobuf-c.h>

struct rpc_error {
	enum connect_code code; /* CONNECT_UNAVAILABLE when unreachable */
	int http_status;        /* 0 when no HTTP answer */
	char message[512];
};

struct rpc_client;

/* token may be NULL. timeout_ms applies to each call (connect + transfer).
 * NULL with errno = EINVAL for a bad URL. */
struct rpc_client *rpc_client_new(const char *url, const char *token, long timeout_ms);
void rpc_client_free(struct rpc_client *c);
/* From any thread: abort the call in flight (within about a second, also a
 * waiting long poll) and fail every later call, with -ECANCELED. For a
 * clean shutdown of a thread blocked in rpc_call. */
void rpc_client_cancel(struct rpc_client *c);
/* For https://: trust the CA certificate(s) in this PEM file instead of the
 * system store (NULL: back to the system store). 0 or negative errno. */
int rpc_client_set_ca_file(struct rpc_client *c, const char *path);

/*
 * POST path (e.g. "/wgcni.node.v1.NodeService/AllocateIP") with req and
 * unpack the answer as resp_desc into *resp (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)).
 * 0; or -ECONNREFUSED/-ETIMEDOUT/-EHOSTUNREACH/-ENOENT (unreachable:
 * err->code = CONNECT_UNAVAILABLE; also -ECONNRESET when the connection
 * broke without an answer, -EKEYREJECTED when the server's certificate is
 * not trusted and -EIO for other transport failures);
 * or -EREMOTEIO for a Connect error (err says which); or -EPROTO for an
 * undecodable answer; -EMSGSIZE for an answer over 32 MiB.
 * A client is one connection: use it from one thread at a time.
 * timeout_ms > 0 overrides the client's timeout for this call.
 */
int rpc_call(struct rpc_client *c, const char *path, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     long timeout_ms, struct rpc_error *err);

/* Plain GET (for /healthz, /metrics): body malloc'd into *body. 0, or
 * negative errno; *status set when an HTTP answer came. */
int rpc_get(struct rpc_client *c, const char *path, char **body, size_t *len,
	    int *status);

/* Read a token file: first line, trailing whitespace stripped. Malloc'd, or
 * NULL with errno (ENOENT, EINVAL for an empty token). */
char *rpc_read_token_file(const char *path);

#endif

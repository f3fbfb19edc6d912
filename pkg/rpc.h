/*
 * Client side of the Connect protocol on libcurl: http://host:port,
 * https://host:port or unix:///path/to.sock. Messages travel as
 * application/proto; Connect error bodies (JSON) are decoded into
 * struct rpc_error.
 *
 * Failover: a client may hold a list of URLs (replicas of one service).
 * A call goes to the URL that answered last; when that one is unreachable
 * (refused, timed out, unknown host, TLS handshake failed, connection
 * broke without an answer, HTTP 503 "unavailable") the call is sent again
 * to the next, each URL at most once per call. Any other answer, also a
 * Connect error such as not_found, is the answer and is never retried
 * elsewhere. The calls we fail over are idempotent or keyed by name
 * (AllocateSubnet, RegisterKey, WatchPeers since a revision, ListNodes,
 * DeleteNode): sending one again after a broken connection is safe.
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

#define RPC_MAX_URLS 16

/* token may be NULL. timeout_ms applies to each call (connect + transfer;
 * a connect alone gives up after 5 s at most). NULL with errno = EINVAL
 * for a bad URL. */
struct rpc_client *rpc_client_new(const char *url, const char *token, long timeout_ms);
/* The same with 1..RPC_MAX_URLS URLs to fail over between, tried first in
 * this order. EINVAL if any is bad (nothing made). */
struct rpc_client *rpc_client_new_list(const char *const *urls, size_t n_urls,
				       const char *token, long timeout_ms);
/* The URL calls go to first (the one that answered last), as given. */
const char *rpc_client_url(const struct rpc_client *c);
/* fn(arg, from, to) runs in the calling thread when a call was answered by
 * another URL than the one tried first (from then on the first). */
typedef void rpc_switch_fn(void *arg, const char *from, const char *to);
void rpc_client_on_switch(struct rpc_client *c, rpc_switch_fn *fn, void *arg);
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
 * timeout_ms > 0 overrides the client's timeout for this call (for each
 * URL tried). With several URLs all unreachable, the error is the last
 * one's and err->message lists every URL's.
 */
int rpc_call(struct rpc_client *c, const char *path, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
	     long timeout_ms, struct rpc_error *err);

/* Plain GET (for /healthz, /metrics): body malloc'd into *body. 0, or
 * negative errno; *status set when an HTTP answer came. Fails over only
 * without an HTTP answer (any status is the answer). */
int rpc_get(struct rpc_client *c, const char *path, char **body, size_t *len,
	    int *status);

/* Read a token file: first line, trailing whitespace stripped. Malloc'd, or
 * NULL with errno (ENOENT, EINVAL for an empty token). */
char *rpc_read_token_file(const char *path);

#endif

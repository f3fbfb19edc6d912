/*
 * Server side of the Connect protocol (connect_proto.h), unary calls only,
 * on libmicrohttpd.
 *
 * Also GET /healthz and GET /metrics (text/plain; version=0.0.4). Bodies
 * over 1 MiB are refused (400 invalid_argument, "request body exceeds 1 MiB"). With a token, every call
 * but /healthz and /metrics needs "Authorization: Bearer <token>".
 *
 * Threading: the server is one event loop (connect_server_run) driving one
 * MHD daemon per listener in external-epoll mode; every handler runs on the
 * loop's thread. A handler can defer its answer (long poll):
 * connect_call_defer() suspends the connection, which then holds no thread;
 * connect_server_wake() (any thread) or the deadline re-runs the handler
 * with connect_call_expired() telling which. A re-deferred call keeps its
 * first deadline, and a client's Connect-Timeout-Ms header caps it (less a
 * margin of a fifth, at most 1 s) so that the answer arrives in time.
 *
 * Files: connect.c the call and answer API below, connect_route.c a
 * request from its headers to its answer, connect_server.c the server's
 * life, deferred calls and event loop, connect_listen.c the listeners.
 */
#ifndef WGCNI_CONNECT_H
#define WGCNI_CONNECT_H

#include "connect_proto.h"
#include "prom.h"

#include <protobuf-c/protobuf-c.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct connect_call;

/*
 * A handler answers in one of three ways:
 *   return connect_reply(call, response);        response built in the call arena
 *   return connect_fail(call, CODE, fmt, ...);   error
 *   return connect_call_defer(call, timeout_ms); long poll, re-run later
 */
typedef int (*connect_handler_fn)(struct connect_call *call, void *ctx);

struct connect_method {
	const char *path; /* "/wgcni.cluster.v1.ClusterService/ListPeers" */
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
	connect_handler_fn handler;
};

struct connect_server_config {
	const struct connect_method *methods;
	size_t n_methods;
	void *ctx; /* passed to handlers and callbacks */
	/* NUL-terminated bearer token, or NULL for none. Copied. */
	const char *token;
	/* Appends the daemon's metric families; may be NULL. The server adds
	 * wgcni_api_requests_total{method,code} itself. */
	int (*metrics)(struct prom *p, void *ctx);
	/* 0 when healthy; may be NULL (always healthy). */
	int (*healthz)(void *ctx);
	/* Called on the loop thread after each turn's handlers ran, e.g. to
	 * commit what they changed and connect_server_release their answers;
	 * may be NULL. A negative value ends connect_server_run with it. */
	int (*after_run)(void *ctx);
};

struct connect_server;

struct connect_server *connect_server_new(const struct connect_server_config *cfg);
/* "0.0.0.0:8080", "127.0.0.1:0" (any free port), "[::1]:8080": an IP
 * address, not a name. 0 or negative errno (-EINVAL for a bad address). */
int connect_server_listen_tcp(struct connect_server *srv, const char *addr);
/* Like connect_server_listen_tcp, serving HTTPS with the PEM certificate
 * (chain) and private key read from the files now. -ENOTSUP when
 * libmicrohttpd was built without TLS. */
int connect_server_listen_tls(struct connect_server *srv, const char *addr,
			      const char *cert_file, const char *key_file);
/* Like connect_server_listen_tcp, but only GET /healthz and /metrics are
 * served there (no method, whatever the token): for a Prometheus scrape
 * address next to an API that must stay private. */
int connect_server_listen_metrics(struct connect_server *srv, const char *addr);
/* Unix socket at path (an existing socket file is replaced), chmod'ed to mode. */
int connect_server_listen_unix(struct connect_server *srv, const char *path, mode_t mode);
/* Port of the n-th TCP listener, HTTPS ones included (for ":0"), 0 if none. */
uint16_t connect_server_port(const struct connect_server *srv, size_t n);
/* Runs until *stop becomes non-zero (checked at least every 200 ms and on
 * every wake). 0 or negative errno. */
int connect_server_run(struct connect_server *srv, volatile sig_atomic_t *stop);
/* Calls cb(ctx) on the loop thread, before the turn's handlers, whenever fd
 * is readable (level-triggered: cb must drain it). One descriptor per
 * server; the caller keeps and closes it. 0 or negative errno (-EBUSY). */
int connect_server_add_fd(struct connect_server *srv, int fd, void (*cb)(void *ctx), void *ctx);
/* Re-run every deferred call soon. Thread-safe, async-signal-safe. */
void connect_server_wake(struct connect_server *srv);
/* Replace the bearer token (NULL: none), e.g. on SIGHUP; waiting long polls
 * and counters stay. Not thread-safe: call while connect_server_run is not
 * running or from a handler. 0 or negative errno. */
int connect_server_set_token(struct connect_server *srv, const char *token);
/* Number of calls currently deferred. */
size_t connect_server_deferred(const struct connect_server *srv);
void connect_server_free(struct connect_server *srv);

/* The decoded request (owned by the call). */
const ProtobufCMessage *connect_call_request(const struct connect_call *call);
/* Method name, e.g. "ListPeers". */
const char *connect_call_method(const struct connect_call *call);
/* True when the handler is re-run because its deadline passed. */
bool connect_call_expired(const struct connect_call *call);
/* Memory freed when the call ends. NULL on ENOMEM. */
void *connect_call_alloc(struct connect_call *call, size_t size);
char *connect_call_strdup(struct connect_call *call, const char *s);
char *connect_call_printf(struct connect_call *call, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* response may live in the call arena; it is serialized, not freed. */
int connect_reply(struct connect_call *call, const ProtobufCMessage *response);
int connect_fail(struct connect_call *call, enum connect_code code,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int connect_call_defer(struct connect_call *call, unsigned int timeout_ms);

/*
 * Answers encoded once for many calls (a long poll's answer is the same for
 * every waiter): the body holds the message in one encoding, and each call
 * that replies with it takes a reference instead of a copy.
 */
struct connect_body;
/* msg in JSON (json) or protobuf. NULL with errno set. */
struct connect_body *connect_body_new(const ProtobufCMessage *msg, bool json);
size_t connect_body_size(const struct connect_body *b);
/* Drops the caller's reference; calls answered with b keep theirs. Accepts NULL. */
void connect_body_free(struct connect_body *b);
/* True when the call wants JSON (pick the body to reply with). */
bool connect_call_json(const struct connect_call *call);
/* Like connect_reply, with b: its message type and encoding must be the
 * call's. */
int connect_reply_body(struct connect_call *call, struct connect_body *b);

/*
 * Group commit: a handler whose answer must wait until its change is on disk
 * answers as usual, then calls connect_call_hold; the answer is sent by
 * connect_server_release (ok) or replaced by `unavailable' (!ok). Without an
 * answer (deferred), hold does nothing. 0 or -ENOMEM (then the call is
 * answered resource_exhausted at once).
 */
int connect_call_hold(struct connect_call *call);
void connect_server_release(struct connect_server *srv, bool ok);
/* Deferred calls of one method path. Loop thread only. */
size_t connect_server_waiting(const struct connect_server *srv, const char *path);

#endif

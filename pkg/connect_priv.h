/*
 * Inside the Connect server: what connect.c, connect_route.c,
 * connect_server.c and connect_listen.c share. Not for callers.
 *
 * One event loop, one MHD daemon per listener, every daemon in external
 * epoll mode: connect_server_run() waits on the daemons' epoll fds, the
 * listening sockets, an eventfd for connect_server_wake() and the nearest
 * deferred deadline. The listening sockets are ours, not MHD's (its daemons
 * run with MHD_USE_NO_LISTEN_SOCKET): MHD 0.9.75 accepts at most 10
 * connections per MHD_run, which at thousands of nodes reconnecting while
 * the loop is busy answering long polls makes accepting the bottleneck. We
 * accept in batches (CONNECT_ACCEPT_BATCH a turn) and hand each socket to
 * MHD_add_connection(), staying under the connection limit: at the limit
 * the listening socket leaves the epoll set and new connections wait in the
 * kernel's backlog, as MHD itself does. A
 * deferred call's connection is suspended (MHD_suspend_connection) and sits
 * in a min-heap on its deadline; a wake resumes all of them, a deadline the
 * due ones. MHD then calls the access handler again, which re-runs the
 * method's handler. So a waiting long poll costs a socket and a heap slot,
 * never a thread.
 */
#ifndef WGCNI_CONNECT_PRIV_H
#define WGCNI_CONNECT_PRIV_H

#include "connect.h"
#include "sys.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <microhttpd.h>

#define CONNECT_IDLE_TIMEOUT_S 120
#define CONNECT_MAX_CONNECTIONS 100000U
#define CONNECT_POLL_MS 200
/* Per connection buffer for headers and reads (MHD's default is 32 KiB):
 * ten thousand waiting long polls are ten thousand of them. Bodies are
 * collected elsewhere (connect_append), answers are sent from their own
 * buffers. */
#define CONNECT_CONN_MEMORY (8 * 1024)
/* Connections accepted per listener and loop turn; the rest next turn. */
#define CONNECT_ACCEPT_BATCH 1000U
/* After accept failed (no descriptors, no memory): retry after this. */
#define CONNECT_ACCEPT_PAUSE_MS 100U
/* epoll data of our set: 0 the wake eventfd, i + 1 listener i's MHD epoll fd,
 * CONNECT_EV_LISTEN | i listener i's listening socket, CONNECT_EV_USER the
 * caller's descriptor (connect_server_add_fd). */
#define CONNECT_EV_LISTEN (1ULL << 32)
#define CONNECT_EV_USER (1ULL << 33)

struct connect_listener {
	struct connect_server *srv;
	struct MHD_Daemon *daemon;
	int fd;       /* the listening socket, ours (closed at free) */
	int epoll_fd; /* MHD's, watched by ours */
	bool armed;   /* fd is in the server's epoll set */
	uint64_t rearm_ms; /* not before (after EMFILE and the like) */
	bool tcp;
	bool metrics_only; /* connect_server_listen_metrics */
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
	void (*user_cb)(void *ctx); /* connect_server_add_fd */
	void *user_ctx;

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

/* connect.c */
void connect_call_free(struct connect_call *call);
/* Records the answer (takes body, may be NULL: then the status alone). */
void connect_call_answer(struct connect_call *call, enum connect_code code, int status,
			 const char *ctype, char *body, size_t len);
/* connect_fail with an HTTP status other than the code's (405, 415). */
int connect_call_fail_status(struct connect_call *call, enum connect_code code,
			     int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* connect_route.c: the daemons' callbacks, cls is the server. */
enum MHD_Result connect_route_access(void *cls, struct MHD_Connection *conn,
				     const char *url, const char *method,
				     const char *version, const char *upload_data,
				     size_t *upload_data_size, void **con_cls);
void connect_route_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			     enum MHD_RequestTerminationCode toe);
void connect_route_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* connect_server.c: queues a call its handler deferred and suspends its
 * connection. 0, or -ENOMEM (then nothing changed). */
int connect_server_suspend(struct connect_server *srv, struct connect_call *call);

/* connect_listen.c: stops the listener's daemon and frees what it holds. */
void connect_listen_close(struct connect_listener *l);
/* Accepts what is pending on listener i (bounded) into its daemon. */
void connect_listen_accept(struct connect_server *srv, size_t i);
/* Puts listening sockets taken out at the limit back once there is room. */
void connect_listen_rearm(struct connect_server *srv);

#endif

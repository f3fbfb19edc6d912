/*
 * wgcni.cluster.v1.ClusterService handlers, metrics and health, on top of
 * cm_state. Handlers run on the connect server's loop thread. The changes of
 * one loop turn are committed together after it (group commit); answers wait
 * for that commit, and then every deferred ListPeers/WatchPeers call is woken
 * once. A WatchPeers answer is the same for every waiter at one revision and
 * is encoded once (watch.c).
 */
#ifndef WGCNI_CM_API_H
#define WGCNI_CM_API_H

#include "connect.h"
#include "prom.h"
#include "state.h"

#include <stddef.h>
#include <stdint.h>

/* ListPeers and WatchPeers wait at most this long, whatever waitSeconds
 * asks (and at most half the node ttl: cm_api_wait_ms). */
#define CM_MAX_WAIT_SECONDS 300
/* lastSeen is written to disk at most this often (and at shutdown). */
#define CM_SEEN_FLUSH_SECONDS 30

struct cm_api {
	struct cm_state *st;
	struct connect_server *srv; /* woken after every change; may be NULL */
	/* Every node with a key as a Peer message, built once per revision and
	 * shared by all ListPeers answers of that revision (a change wakes
	 * every waiter: this keeps each answer to one pointer per peer). */
	struct cm_peer_cache *peers;
	/* WatchPeers answers of the current revision, each encoded once
	 * (watch.c). */
	struct cm_watch_cache *watch;
	bool changed; /* a change since the last commit: wake the waiters */
	int store_failed; /* memory cannot follow the store (cm_state_poll) */
	uint64_t generation; /* moves on every change, committed or not */
};

/* Frees what the handlers cached (not st or srv). Accepts NULL. */
void cm_api_release(struct cm_api *api);

extern const struct connect_method cm_api_methods[];
extern const size_t cm_api_n_methods;

/* connect_server_config callbacks; ctx is a struct cm_api. after_run
 * commits the turn's changes, sends the answers that waited for them and
 * wakes the long polls once; negative when the commit failed (stop). */
int cm_api_metrics(struct prom *p, void *ctx);
int cm_api_healthz(void *ctx);
int cm_api_after_run(void *ctx);
/* connect_server_add_fd callback on cm_state_event_fd: applies the store's
 * changes (another manager's) and wakes the waiters after the turn. */
void cm_api_store_event(void *ctx);
/* The Connect code of a failed store operation: unavailable when the store
 * could not be reached or could not decide, else internal. */
enum connect_code cm_api_store_code(int err);

/* watch.c: the WatchPeers handler, its cache and metrics. */
int cm_watch_peers(struct connect_call *call, void *ctx);
void cm_watch_release(struct cm_api *api);
int cm_watch_metrics(struct cm_api *api, struct prom *p);

/* The node called: cm_state_touch, and the waiters are woken when that
 * brought a stale node back. Its result (a failure is logged). */
int cm_api_seen(struct cm_api *api, struct cm_node *node);
struct cm_node *cm_api_caller(struct cm_api *api, struct connect_call *call, const char *name,
			      int *ret);
/* A long poll's wait: waitSeconds, at most CM_MAX_WAIT_SECONDS and at most
 * half the node ttl, so a node waiting in a long poll is seen again before
 * it could turn stale, whatever its client asked. */
unsigned int cm_api_wait_ms(const struct cm_api *api, unsigned int wait_seconds);
/* A change since the last commit: wake the waiters after it. */
void cm_api_changed(struct cm_api *api);

/* external_api.c: the external peer handlers and metrics. */
int cm_register_external_peer(struct connect_call *call, void *ctx);
int cm_list_external_peers(struct connect_call *call, void *ctx);
int cm_delete_external_peer(struct connect_call *call, void *ctx);
int cm_list_locations(struct connect_call *call, void *ctx);
int cm_ext_metrics(struct cm_api *api, struct prom *p);

#endif

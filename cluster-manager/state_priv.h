/*
 * Inside cm_state, shared by state.c (nodes, subnets, loading) and
 * state_history.c (group commit and the change history). Not for other
 * files.
 */
#ifndef WGCNI_CM_STATE_PRIV_H
#define WGCNI_CM_STATE_PRIV_H

#include "prefixalloc.h"
#include "state.h"

#include <sqlite3.h>

struct cm_state {
	int lock_fd; /* flock'ed: one cluster manager per state directory */
	sqlite3 *db;
	struct cm_config cfg;
	struct prefixalloc *pa[CM_NFAM];
	char cidr_str[CM_NFAM][IPNET_STRLEN];
	char *cidrs[CM_NFAM + 1];
	size_t n_cidrs;
	struct cm_node **nodes; /* sorted by name */
	size_t n_nodes, cap_nodes;
	/* Every node in the order of its mod_revision, oldest first. */
	struct cm_node *mod_first, *mod_last;
	/* Deleted peers, oldest first (a name may appear twice). */
	struct cm_tombstone *tombs;
	size_t n_tombs, cap_tombs;
	uint64_t floor; /* history kept for since_revision >= floor */
	uint64_t revision;
	uint64_t committed; /* the revision on disk */
	bool in_batch; /* a transaction is open: changes not yet on disk */
	uint64_t commits;
	time_t last_flush;
	/* Staleness (stale.c): live nodes by seen_ms, stale ones by stale_ms,
	 * oldest first. */
	struct cm_node *live_first, *live_last, *stale_first, *stale_last;
	size_t n_stale;
	uint64_t ttl_ms, delete_after_ms;
	uint64_t expire_retry_ms; /* after a failure, no try before this */
	uint64_t (*now_ms)(void);
	struct cm_ext_state *ext; /* external peers (external.c) */
};

/* One statement to completion; types: 't' const char *, 'i' int64_t per
 * parameter. 0 or negative errno. */
int cm_sql(struct cm_state *st, const char *sql, const char *types, ...);
/* Index of name in v, n pointers to structs sorted by the name (a char
 * array) at name_off, or where it would go; *found says which. */
size_t cm_name_search(void *const *v, size_t n, size_t name_off, const char *name, bool *found);

/* A change: a savepoint in the loop turn's transaction (opened if needed). */
int cm_tx_begin(struct cm_state *st);
int cm_tx_end(struct cm_state *st);
void cm_tx_undo(struct cm_state *st);

/* The history order of the nodes (by mod_revision). */
void cm_mod_unlink(struct cm_state *st, struct cm_node *node);
void cm_mod_append(struct cm_state *st, struct cm_node *node);
void cm_touch_mod(struct cm_state *st, struct cm_node *node, uint64_t rev);

/* Tombstones: room first (cm_tomb_reserve), then a push cannot fail. */
int cm_tomb_reserve(struct cm_state *st);
void cm_tomb_push(struct cm_state *st, const char *name, uint64_t rev);
void cm_tomb_prune(struct cm_state *st);

/* stale.c: a node enters the live list (new, loaded) or leaves its list
 * (deleted); cm_stale_seen: its row changed at a new revision, so it is
 * live and seen now. */
void cm_stale_link(struct cm_state *st, struct cm_node *node);
void cm_stale_unlink(struct cm_state *st, struct cm_node *node);
void cm_stale_seen(struct cm_state *st, struct cm_node *node);

/* After the nodes are loaded: their history order, tombstones, floor. */
int cm_load_history(struct cm_state *st, char *err, size_t errlen);

/* external.c: load the external peers and the nodes' gateway columns after
 * the nodes; free them. */
int cm_ext_load(struct cm_state *st, char *err, size_t errlen);
void cm_ext_free(struct cm_state *st);
/* A node leaves (in its deletion's transaction): its external peers move
 * to another gateway. 0 or negative errno (then nothing changed). */
int cm_ext_node_gone(struct cm_state *st, struct cm_node *node);
/* After the subnets of node changed: its allowed list again (cannot fail). */
void cm_ext_node_refresh(struct cm_node *node);

#endif

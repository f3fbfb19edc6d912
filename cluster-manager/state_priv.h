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

/*
 * The datastore seam: how a change reaches the store. Both stores keep the
 * same memory (struct cm_state below), which every answer is built from;
 * they differ in where a change is written and when memory follows:
 *   sqlite (state.c)      memory follows each change at once; the turn's
 *                         changes are committed together (pending, commit).
 *   etcd (state_etcd.c)   a change is a compare-and-swap transaction, and
 *                         memory follows only the store's watch (poll), so
 *                         every manager applies the same changes in the same
 *                         order, whoever made them; nothing is pending.
 * Reads (find, nodes, history) and lastSeen in memory (cm_state_touch) are
 * shared.
 */
struct cm_store_ops {
	const char *name; /* "sqlite", "etcd" */
	int (*allocate)(struct cm_state *st, const char *name, struct cm_node **out);
	/* RegisterKey: key, endpoint and gateway settings as one change. */
	int (*register_node)(struct cm_state *st, struct cm_node *node, const struct cm_reg *r,
			     bool *changed);
	int (*delete_node)(struct cm_state *st, const char *name);
	/* Stale nodes (stale.c): a peer's tombstone, 1 done (and in memory's
	 * history), 0 the node changed meanwhile (live: nothing to do); its
	 * record again at a new revision (0). */
	int (*mark_stale)(struct cm_state *st, struct cm_node *node);
	int (*revive)(struct cm_state *st, struct cm_node *node, time_t now);
	/* External peers (external.c, state_etcd_ext.c). */
	int (*ext_register)(struct cm_state *st, const char *name, const char *public_key,
			    const char *location, struct cm_ext **out, bool *changed);
	int (*ext_delete)(struct cm_state *st, const char *name);
	int (*flush_seen)(struct cm_state *st);
	bool (*pending)(const struct cm_state *st);
	int (*commit)(struct cm_state *st);
	/* Applies what the store reports changed: >= 0, or negative when
	 * memory can no longer follow the store (the manager must stop). */
	int (*poll)(struct cm_state *st);
	int (*event_fd)(const struct cm_state *st);
	void (*close)(struct cm_state *st);
};

struct cm_state {
	const struct cm_store_ops *ops;
	struct cm_etcd *etcd; /* state_etcd.c */
	uint64_t store_errors; /* failed writes and reads of the store */
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

/* Memory shared by the stores (state.c). */
int cm_state_init(struct cm_state *st, const struct cm_config *cfg, char *err, size_t errlen);
void cm_state_free_mem(struct cm_state *st);
enum cm_family cm_fam_of(const struct ipnet *n);
/* Room for one more node (then cm_node_insert cannot fail). */
int cm_node_slot(struct cm_state *st);
void cm_node_insert(struct cm_state *st, struct cm_node *node);
/* Takes the node out of the sorted array (not the history or stale lists). */
void cm_node_remove(struct cm_state *st, struct cm_node *node);
/* The strings derived from the node's subnets. */
void cm_node_refresh(struct cm_node *node);
/* A stored subnet is in use / free again in the allocator. */
int cm_subnet_reserve(struct cm_state *st, const char *name, const struct ipnet *net);
void cm_subnet_release(struct cm_state *st, const struct ipnet *net);

/* The SQLite store's operations (state.c, external.c, state_history.c). */
int cm_sqlite_node_info(struct cm_state *st, struct cm_node *node, const char *location,
			bool gateway, const char *public_endpoint, bool *changed);
bool cm_sqlite_pending(const struct cm_state *st);
int cm_sqlite_mark_stale(struct cm_state *st, struct cm_node *node);
int cm_sqlite_revive(struct cm_state *st, struct cm_node *node, time_t now);
int cm_sqlite_ext_register(struct cm_state *st, const char *name, const char *public_key,
			   const char *location, struct cm_ext **out, bool *changed);
int cm_sqlite_ext_delete(struct cm_state *st, const char *name);
int cm_sqlite_commit(struct cm_state *st);

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
/* The node is stale now (memory: its lists; the tombstone is the store's). */
void cm_stale_mark_mem(struct cm_state *st, struct cm_node *node, uint64_t now_ms);
/* The monotonic clock of the stale lists. */
uint64_t cm_stale_now(const struct cm_state *st);

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

/* external.c's memory, for the etcd store (state_etcd_ext.c). */
int cm_ext_mem_init(struct cm_state *st, char *err, size_t errlen); /* st->ext, pools */
int cm_ext_mem_insert(struct cm_state *st, struct cm_ext *e);
void cm_ext_mem_remove(struct cm_state *st, struct cm_ext *e); /* not freed */
/* g's count of external peers and allowed list again: 0 or -ENOMEM. */
int cm_ext_regate(struct cm_state *st, struct cm_node *g);
void cm_ext_format(struct cm_ext *e);
struct cm_node *cm_ext_choose(const struct cm_state *st, const char *location,
			      const struct cm_node *skip);
bool cm_ext_key_used(const struct cm_state *st, const char *key, const struct cm_ext *self);
/* What registering an external peer would do: 1 nothing (*e is it as
 * asked), 0 a change to gateway *to (from *from, NULL: none; *e NULL: a new
 * one), -EEXIST the key is taken, -ENODEV no gateway. */
int cm_ext_plan(const struct cm_state *st, const char *name, const char *public_key,
		const char *location, struct cm_ext **e, struct cm_node **from, struct cm_node **to);
struct prefixalloc *cm_ext_pool_of(const struct cm_state *st, const struct ipnet *a);
int cm_ext_alloc_addrs(struct cm_state *st, struct cm_ext *e);
void cm_ext_release_addrs(struct cm_state *st, struct cm_ext *e);

#endif

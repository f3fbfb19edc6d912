/*
 * The cluster manager's state: nodes, their subnets and keys, and a revision
 * counter that moves on every change peers must see.
 *
 * SQLite (<state-dir>/cluster.db) is the truth; memory holds a mirror so
 * answers are built without touching the disk. Every change is committed
 * (cm_state_commit, one transaction for all the changes of a loop turn)
 * before it is answered, so kill -9 loses nothing a client was told. lastSeen is the exception: it is kept in memory
 * and written lazily (cm_state_flush_seen), as polls would otherwise write on
 * every call.
 *
 * The subnets table's primary key is the CIDR, so no subnet can be stored for
 * two nodes, whatever the allocator believes.
 */
#ifndef WGCNI_CM_STATE_H
#define WGCNI_CM_STATE_H

#include "ipnet.h"
#include "key.h"
#include "names.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CM_NAME_MAX NAME_NODE_MAX
#define CM_ENDPOINT_MAX 300

/* Family slots, in answer order: IPv4 first. */
enum cm_family { CM_V4 = 0, CM_V6, CM_NFAM };

#define CM_MAX_EXTERNAL 16

struct cm_config {
	bool has_cidr[CM_NFAM];
	struct ipnet cidr[CM_NFAM];
	unsigned int childlen[CM_NFAM];
	/* --external-cidr: the pools of external peer addresses. */
	struct ipnet external[CM_MAX_EXTERNAL];
	size_t n_external;
};

struct cm_node {
	char name[CM_NAME_MAX + 1];
	bool has_subnet[CM_NFAM];
	struct ipnet subnet[CM_NFAM];
	char subnet_str[CM_NFAM][IPNET_STRLEN];
	/* The subnet strings that exist, in family order: ready to be pointed
	 * at by a response's repeated string field. */
	char *subnets[CM_NFAM];
	size_t n_subnets;
	/* First host address of each subnet with its prefix, comma-separated. */
	char address[CM_NFAM * IPNET_STRLEN + 1];
	char public_key[WG_KEY_B64_LEN + 1]; /* "" until registered */
	char endpoint[CM_ENDPOINT_MAX + 1];  /* "" until registered */
	time_t last_seen;
	bool seen_dirty;
	/* External peers (external.c): where the node is, whether it accepts
	 * external peers, what they dial; and its Peer allowedIps when it
	 * serves some (its subnets, then their addresses; capacity
	 * CM_NFAM + 2 * n_ext), else allowed is NULL and its subnets are. */
	char location[CM_NAME_MAX + 1];
	bool gateway;
	char public_endpoint[CM_ENDPOINT_MAX + 1];
	char **allowed;
	size_t n_allowed, n_ext;
	/* Revision of the node's last change, and its neighbours in the
	 * history (cm_state_last_changed). */
	uint64_t mod_revision;
	struct cm_node *mod_prev, *mod_next;
	/* Staleness (stale.c): when the node was last seen (live) or turned
	 * stale, on the state's monotonic clock, and its place in the live or
	 * the stale list, each in that order. */
	bool stale;
	bool stale_logged;
	bool linked;
	uint64_t seen_ms, stale_ms;
	struct cm_node *seen_prev, *seen_next;
	/* etcd (state_etcd.c): the lastSeen stored there; removed from
	 * memory, freed at the next poll. */
	time_t seen_stored;
	struct cm_node *gone_next;
};

/* A deleted peer. */
struct cm_tombstone {
	uint64_t revision;
	char name[CM_NAME_MAX + 1];
};

/* Deletions remembered (about 260 KiB a thousand); older ones move the
 * history floor up, and a since_revision below it gets the full set. */
#define CM_HISTORY_TOMBSTONES 4096

struct cm_state;

/* Locks <dir>/cluster.lock (EBUSY when another manager holds it), opens
 * (creating) <dir>/cluster.db, migrates it and loads the mirror. NULL with
 * errno set and a message in err. */
struct cm_state *cm_state_open(const char *dir, const struct cm_config *cfg,
			       char *err, size_t errlen);
/*
 * --datastore etcd (state_etcd.c): the state in etcd under prefix, shared by
 * any number of cluster managers, all active. Lists the prefix, then follows
 * it with one watch; memory is changed only by what the watch reports (in
 * revision order, whichever manager made the change), and a manager's own
 * change is answered once its watch has shown it. Revisions are etcd's.
 * Subnets are claimed by compare-and-swap (store_etcd_keys.h). Stale nodes
 * work as with SQLite, every manager deciding from the lastSeen all of them
 * store; external peers are not kept in etcd in this version.
 */
struct cm_etcd_opts {
	const char *endpoints; /* --etcd-endpoints */
	const char *prefix;    /* --etcd-prefix, e.g. "/wgcni" */
	const char *ca_file, *cert_file, *key_file;
	long request_timeout_ms; /* 0: 5000 */
};
struct cm_state *cm_state_open_etcd(const struct cm_etcd_opts *eo, const struct cm_config *cfg,
				    char *err, size_t errlen);
/* Writes pending lastSeen values, closes the store. Accepts NULL. */
void cm_state_close(struct cm_state *st);

/* "sqlite" or "etcd". */
const char *cm_state_store(const struct cm_state *st);
/* Store operations that failed (wgcni_datastore_errors_total). */
uint64_t cm_state_store_errors(const struct cm_state *st);
/* A descriptor readable when the store has changes for memory (etcd's
 * watch), -1 when it never has (sqlite); then cm_state_poll applies them:
 * >= 0, or negative when memory can no longer follow the store (stop). */
int cm_state_event_fd(const struct cm_state *st);
int cm_state_poll(struct cm_state *st);

uint64_t cm_state_revision(const struct cm_state *st);
/* Nodes sorted by name; valid until the next change. */
struct cm_node *const *cm_state_nodes(const struct cm_state *st, size_t *n);
struct cm_node *cm_state_find(const struct cm_state *st, const char *name);
/* NULL-terminated list of the configured CIDR strings. */
char **cm_state_cidrs(const struct cm_state *st, size_t *n);

/*
 * Gives the node one subnet per configured family it does not have yet,
 * creating the node when new. *node is the node afterwards. 0, -ENOSPC when a
 * family is exhausted (nothing changed), or another negative errno.
 */
int cm_state_allocate(struct cm_state *st, const char *name,
		      struct cm_node **node);
/* Sets key and endpoint, the gateway settings as they are
 * (cm_state_register_node); *changed tells whether they differed. 0 or
 * negative errno. */
int cm_state_register(struct cm_state *st, struct cm_node *node,
		      const char *public_key, const char *endpoint,
		      bool *changed);
/* What RegisterKey sets: key and endpoint, and the gateway settings. */
struct cm_reg {
	const char *public_key, *endpoint;
	const char *location, *public_endpoint;
	bool gateway;
};
/* Sets them as one change; *changed tells whether anything differed. A node
 * that stops being a gateway hands its external peers on; a new gateway
 * takes those without one. 0 or negative errno. */
int cm_state_register_node(struct cm_state *st, struct cm_node *node, const struct cm_reg *r,
			   bool *changed);
/* Deletes the node and frees its subnets: 0, -ENOENT, or negative errno. */
int cm_state_delete(struct cm_state *st, const char *name);

/*
 * Marks the node seen now. A stale node is live again: 1 (a change to the
 * peer set, committed with the turn's others), else 0 (memory only), or a
 * negative errno (it stays stale).
 */
int cm_state_touch(struct cm_state *st, struct cm_node *node);

/*
 * Stale nodes (stale.c). A node not seen for longer than ttl_ms (0: never)
 * turns stale: it leaves the peer set (the revision moves, a tombstone says
 * it is gone, as for a deletion) but keeps its row and subnets; its next
 * call (cm_state_touch, or any change of its row) brings it back with a new
 * mod_revision. A node stale for longer than delete_after_ms (0: never) is
 * deleted (cm_state_delete). Time is measured on a monotonic clock from
 * start: after a restart every live node has one ttl of grace, and nodes
 * stale before stay stale (a stale peer is a tombstone newer than its row).
 */
void cm_state_set_expiry(struct cm_state *st, uint64_t ttl_ms, uint64_t delete_after_ms);
/* Replaces the monotonic clock (tests); it restarts every node's time. */
void cm_state_set_clock(struct cm_state *st, uint64_t (*now_ms)(void));
/* Marks and deletes what is due: the number of nodes changed (>= 0; the
 * revision moved when a peer did), or a negative errno (what was done
 * stays; the next try is a second later). O(1) when nothing is due. */
int cm_state_expire(struct cm_state *st);
size_t cm_state_stale_count(const struct cm_state *st);
/* How long a long poll may wait so that a waiting node is seen again
 * before it could turn stale: half the ttl, or UINT64_MAX without one. */
uint64_t cm_state_wait_cap_ms(const struct cm_state *st);
/* Writes every pending lastSeen in one transaction: 0 or negative errno. */
int cm_state_flush_seen(struct cm_state *st);
/* Flushes when the last flush is older than max_age seconds. */
void cm_state_maybe_flush_seen(struct cm_state *st, time_t max_age);

/*
 * The change history, from which a WatchPeers delta is computed without the
 * database. Every node row carries the revision of its last change; a
 * deleted peer leaves a tombstone (both stored, so the history survives a
 * restart). A delta from since (floor <= since <= revision) is: the nodes
 * from cm_state_last_changed() back along mod_prev while mod_revision >
 * since, and the tombstones cm_state_tombstones(since) of names not present.
 */
uint64_t cm_state_floor(const struct cm_state *st);
const struct cm_node *cm_state_last_changed(const struct cm_state *st);
/* Tombstones with revision > since, oldest first. */
const struct cm_tombstone *cm_state_tombstones(const struct cm_state *st, uint64_t since,
					       size_t *n);

/*
 * Group commit. Changes go into one open transaction (memory follows each at
 * once); cm_state_commit writes them with one fsync. Until then nothing that
 * shows them may be answered: cm_state_pending() tells.
 * On a failed commit memory is ahead of the disk: the caller must stop.
 */
bool cm_state_pending(const struct cm_state *st);
int cm_state_commit(struct cm_state *st);
/* The revision of the last commit: every change up to it is on disk, and
 * nodes with a higher mod_revision are not yet. */
uint64_t cm_state_committed(const struct cm_state *st);
/* Transactions committed since start. */
uint64_t cm_state_commits(const struct cm_state *st);

/*
 * External peers (external.c): machines outside the cluster, each with an
 * address per --external-cidr family kept for its name, served by one
 * gateway node, which has them as WireGuard peers; their addresses are in
 * the gateway's Peer allowedIps, so a change of a gateway's external peers
 * is a change of its peer entry (a new mod_revision).
 */
struct cm_ext {
	char name[CM_NAME_MAX + 1];
	char public_key[WG_KEY_B64_LEN + 1];
	char location[CM_NAME_MAX + 1];
	char gateway[CM_NAME_MAX + 1]; /* "" while no gateway exists */
	struct ipnet addr[CM_NFAM];
	char addr_str[CM_NFAM][IPNET_STRLEN];
	size_t n_addr;
	char address[CM_NFAM * IPNET_STRLEN + 1]; /* comma-separated */
	uint64_t mod_revision; /* etcd: its key's */
};

/* Sorted by name; valid until the next change. */
struct cm_ext *const *cm_ext_list(const struct cm_state *st, size_t *n);
struct cm_ext *cm_ext_find(const struct cm_state *st, const char *name);
/*
 * Registers (or answers again) the external peer; *changed tells whether
 * anything moved. 0; -ENXIO without --external-cidr; -ENODEV when no gateway
 * exists; -EEXIST when the key belongs to a node or another external peer;
 * -ENOSPC when no address is left; nothing changed on error.
 */
int cm_ext_register(struct cm_state *st, const char *name, const char *public_key,
		    const char *location, struct cm_ext **out, bool *changed);
/* 0 or -ENOENT, or another negative errno. */
int cm_ext_delete(struct cm_state *st, const char *name);
/* The node accepts external peers now (a gateway with a key). */
bool cm_ext_is_gateway(const struct cm_node *node);

/* The node's Peer allowedIps: its subnets and the addresses of the external
 * peers it serves as gateway. */
static inline char **cm_node_allowed(const struct cm_node *n, size_t *count)
{
	*count = n->allowed ? n->n_allowed : n->n_subnets;
	return n->allowed ? n->allowed : (char **)n->subnets;
}

/* Subnet usage of a configured family (false when not configured). */
bool cm_state_usage(const struct cm_state *st, enum cm_family fam,
		    uint64_t *used, uint64_t *capacity);

#endif

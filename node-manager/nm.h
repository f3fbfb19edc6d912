/*
 * wgcni-node-manager internals.
 *
 * One struct nm holds the daemon's state. Two threads share it: the API
 * server's loop thread (handlers, metrics) and the sync thread (cluster
 * manager registration and the ListPeers long poll). nm->lock guards the
 * state and every call that changes the node interface, so a handler and a
 * sync pass never interleave their wg_get/wg_set.
 *
 * Peers on the node interface are of two kinds: container peers (one per
 * allocation with a registered key, AllowedIPs = its /32 and /128) and node
 * peers (every other node, AllowedIPs = its subnets). A peer whose key is a
 * container's is a container peer; everything else is a node peer.
 * Container interfaces hold the node peer and, with containerMesh, a peer
 * per other mesh container of the node (mesh.c).
 */
#ifndef WGCNI_NM_H
#define WGCNI_NM_H

#include "connect.h"
#include "ipnet.h"
#include "key.h"
#include "names.h"
#include "prefixalloc.h"
#include "rpc.h"
#include "wg.h"

#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NM_MAX_FAMILIES 2
#define NM_MAX_CIDRS 8
#define NM_ID_MAX NAME_CONTAINER_ID_MAX
#define NM_NETNS_MAX 4096
#define NM_ENDPOINT_MAX 300
#define NM_NODE_KEEPALIVE 25

struct nm_config {
	const char *cluster_manager;
	char node_name[256];
	const char *endpoint;
	const char *ifname;
	uint16_t listen_port;
	const char *socket_path;
	const char *listen;
	const char *metrics_listen; /* /healthz and /metrics only */
	const char *state_dir;
	const char *token_file;
	enum wg_backend backend;
	const char *impl;
	unsigned int mtu;
	bool masquerade;
	const char *psk_file;
	bool gateway;
	const char *location;
	const char *public_endpoint;
};

/* A container attachment: containerId + ifname. */
struct nm_alloc {
	char container_id[NM_ID_MAX + 1];
	char ifname[IFNAMSIZ];
	char *netns;
	struct ipnet addrs[NM_MAX_FAMILIES]; /* /32 and /128 */
	size_t n_addrs;
	bool has_key;
	uint8_t public_key[WG_KEY_LEN];
	char endpoint[NM_ENDPOINT_MAX];
	bool mesh; /* containerMesh: peers with the other mesh containers */
};

/* Another node, as the cluster manager lists it. */
struct nm_peer {
	char *name;
	uint8_t public_key[WG_KEY_LEN];
	char endpoint[NM_ENDPOINT_MAX];
	struct ipnet *allowed;
	size_t n_allowed;
};

/* An external peer this node serves as gateway (--gateway). */
struct nm_ext {
	char *name;
	uint8_t key[WG_KEY_LEN];
	struct ipnet addrs[NM_MAX_FAMILIES]; /* /32 and /128 */
	size_t n_addrs;
};

struct nm {
	struct nm_config cfg;
	pthread_mutex_t lock;
	sqlite3 *db;

	uint8_t private_key[WG_KEY_LEN];
	uint8_t public_key[WG_KEY_LEN];
	char public_b64[WG_KEY_B64_LEN + 1];
	bool has_psk;
	uint8_t psk_secret[WG_KEY_LEN]; /* --preshared-key-file; wiped at exit */

	struct ipnet subnets[NM_MAX_FAMILIES];
	size_t n_subnets;
	struct ipnet cidrs[NM_MAX_CIDRS];
	size_t n_cidrs;
	struct prefixalloc *pools[NM_MAX_FAMILIES]; /* parallel to subnets */
	uint64_t pool_reserved[NM_MAX_FAMILIES];    /* network, gateway, broadcast */

	struct nm_alloc *allocs;
	size_t n_allocs, cap_allocs;
	struct nm_peer *peers;
	size_t n_peers;
	struct nm_ext *exts; /* sorted by key; gateways only */
	size_t n_exts;
	struct ipnet *xroutes; /* routes to external addresses we added */
	size_t n_xroutes;

	enum wg_backend backend; /* resolved */
	bool iface_ready;
	uint64_t sync_errors;
	bool registered;

	struct connect_server *srv;
	volatile sig_atomic_t *stop;
	volatile sig_atomic_t *reload;
	pthread_t sync_thread;
	bool sync_started;
	volatile int sync_done;
	/* The sync thread's current cluster manager client, published so
	 * nm_sync_stop can cancel a long poll in flight. */
	pthread_mutex_t sync_rpc_lock;
	struct rpc_client *sync_rpc;

	pthread_t repair_thread;
	bool repair_started;
	uint64_t repairs; /* changes made by drift repair */
	uint64_t rotations;
	bool mesh_dirty;          /* a mesh change failed: repair on the next pass */
	unsigned int mesh_passes; /* repair passes, for NM_MESH_FULL_PASSES */
};

/*
 * A plan: every change that brings the host to what the node manager wants,
 * one printable line each. The one diff in iface.c fills it for `plan' (dry:
 * record, change nothing) and for start and drift repair (record and apply,
 * so the log says what was changed). A NULL plan applies without recording.
 */
struct nm_plan {
	bool dry;
	bool absent; /* dry: the interface does not exist yet */
	char **lines;
	size_t n, cap;
};

/* plan.c */
int nm_plan_add(struct nm_plan *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void nm_plan_free(struct nm_plan *p);
/* `wgcni-node-manager plan': 0 nothing to change, 2 changes, 1 error. */
int nm_plan_run(struct nm *nm);
/* The drift repair thread: nm_iface_repair every NM_REPAIR_PERIOD_MS. */
#define NM_REPAIR_PERIOD_MS 5000U
int nm_repair_start(struct nm *nm);
void nm_repair_stop(struct nm *nm);

/* key.c: the node key pair in state_dir/private.key. nm_key_load reads it
 * (create: or creates it) and derives the public key; -ENOENT without create
 * when there is none. nm_key_set takes priv as the private key. */
void nm_key_path(const struct nm *nm, char path[static PATH_MAX]);
int nm_key_load(struct nm *nm, bool create);
int nm_key_set(struct nm *nm, const uint8_t priv[static WG_KEY_LEN]);

/* rotate.c: replace the node key (RotateKey); old_b64 gets the previous
 * public key. Takes nm->lock itself. */
int nm_rotate_key(struct nm *nm, char old_b64[static WG_KEY_B64_LEN + 1], char *err,
		  size_t errlen);
/* The container interface for a's WireGuard device ("wgc" + hash), as the
 * plugin names it. */
int nm_container_device(const struct nm_alloc *a, char out[static IFNAMSIZ]);
/* fn(dev, arg) on a's container device, wherever it is: by its host-side
 * name (a userspace device's UAPI socket, or a kernel link the plugin has
 * not moved yet), else as a->ifname inside a->netns (entered for the call,
 * calling thread only). fn's result, or negative errno. */
typedef int (*nm_container_fn)(const char *dev, void *arg);
int nm_container_do(const struct nm_alloc *a, nm_container_fn fn, void *arg);

/* psk.c: --preshared-key-file. Load (0, or an error logged); wipe. */
int nm_psk_load(struct nm *nm);
void nm_psk_wipe(struct nm *nm);
/* The preshared key of our peering with peer_key into psk (true), or false
 * without --preshared-key-file (psk zeroed). The caller wipes psk. */
bool nm_psk(const struct nm *nm, const uint8_t peer_key[static WG_KEY_LEN],
	    uint8_t psk[static WG_KEY_LEN]);

/* external.c: a gateway's external peers and every node's routes to
 * external addresses. */
const struct nm_ext *nm_ext_find(const struct nm *nm, const uint8_t key[static WG_KEY_LEN]);
void nm_exts_free(struct nm_ext *v, size_t n);
/* ListExternalPeers; the ones served here onto the interface. Takes
 * nm->lock itself. 0 or negative errno (then nothing changed). */
int nm_ext_fetch(struct nm *nm, struct rpc_client *rpc);
/* Routes for external addresses (node peers' allowedIps outside the
 * cluster, and our external peers) to match; verify: check each on the
 * host, not only what we added. Called with nm->lock held. */
int nm_routes_sync(struct nm *nm, bool verify);
/* Fill a cluster manager RegisterKey request for this node (sync, rotate). */
struct Wgcni__Cluster__V1__RegisterKeyRequest;
void nm_sync_fill_register(const struct nm *nm, struct Wgcni__Cluster__V1__RegisterKeyRequest *r);

/* state.c: the state database and the in-memory copy of it. */
int nm_state_open(struct nm *nm, char *err, size_t errlen);
/* The same, read only: no migration, no write (`plan'). */
int nm_state_open_readonly(struct nm *nm, char *err, size_t errlen);
void nm_state_close(struct nm *nm);
/* Store the subnets and cluster CIDRs (first time) and build the pools. */
int nm_state_set_subnets(struct nm *nm, const struct ipnet *subnets, size_t n,
			 const struct ipnet *cidrs, size_t n_cidrs);
int nm_state_set_cidrs(struct nm *nm, const struct ipnet *cidrs, size_t n);
/* state_peers.c: the stored node peers, written as differences only. */
/* nm->peers from the opened database (called by nm_state_open). */
int nm_state_load_peers(struct nm *nm);
/* Replace the stored node peers with peers (ownership taken; sorted by key,
 * one per key). One transaction that writes only the rows that differ. */
int nm_state_replace_peers(struct nm *nm, struct nm_peer *peers, size_t n);
/* Insert or update the peers upsert (ownership taken) and delete the peers
 * of the n_removed keys removed (a key also upserted is kept), in one
 * transaction that writes only those rows: O(changes), not O(peers). On
 * error nothing changed. */
int nm_state_change_peers(struct nm *nm, struct nm_peer *upsert, size_t n_upsert,
			  const uint8_t (*removed)[WG_KEY_LEN], size_t n_removed);
const struct nm_peer *nm_state_find_peer(const struct nm *nm,
					 const uint8_t key[static WG_KEY_LEN]);
/* peers (sorted by key) equal the stored ones. */
bool nm_state_peers_same(const struct nm *nm, const struct nm_peer *peers, size_t n);
void nm_peers_free(struct nm_peer *peers, size_t n);
void nm_peers_sort(struct nm_peer *peers, size_t n);
struct nm_alloc *nm_state_find(struct nm *nm, const char *container_id,
			       const char *ifname);
struct nm_alloc *nm_state_find_key(struct nm *nm, const uint8_t key[static WG_KEY_LEN]);
/* New allocation, persisted. -ENOSPC when a pool is exhausted. */
int nm_state_alloc(struct nm *nm, const char *container_id, const char *ifname,
		   const char *netns, struct nm_alloc **out);
int nm_state_update_netns(struct nm *nm, struct nm_alloc *a, const char *netns);
/* Store a's key and endpoint in the open transaction. */
int nm_state_store_key(struct nm *nm, const struct nm_alloc *a,
		       const uint8_t key[static WG_KEY_LEN], const char *endpoint);
/* Store a's containerMesh flag in the open transaction. */
int nm_state_store_mesh(struct nm *nm, const struct nm_alloc *a, bool mesh);
/* Forget a (database, pools, memory). a is invalid afterwards. */
int nm_state_release(struct nm *nm, struct nm_alloc *a);
uint64_t nm_state_pool_used(const struct nm *nm);
uint64_t nm_state_pool_free(const struct nm *nm);

/* iface.c: the node interface. Callers hold nm->lock (setup excepted). */
int nm_iface_setup(struct nm *nm, struct nm_plan *plan);
/* Recreate the interface (and its peers) when it vanished while running. */
int nm_iface_ensure(struct nm *nm);
/* Startup: container peers and stored node peers onto the interface. */
int nm_iface_reconcile(struct nm *nm);
/* Container peers and peers (node peers) onto the interface; unknown peers
 * removed when remove_unknown, else only container-like ones. */
int nm_iface_reconcile_peers(struct nm *nm, const struct nm_peer *peers, size_t n,
			     bool remove_unknown, struct nm_plan *plan);
/* Drift repair while running: interface, key, addresses, routes, firewall
 * and every peer back to what the state says. Logs each change. */
int nm_iface_repair(struct nm *nm);
/* Bring the node peers to peers, touching only what differs. */
int nm_iface_apply_node_peers(struct nm *nm, const struct nm_peer *peers, size_t n,
			      size_t *changed);
/* Add/update a's peer; remove old_key's peer first when given. */
int nm_iface_container_peer(struct nm *nm, const struct nm_alloc *a,
			    const uint8_t *new_key, const char *new_endpoint,
			    const uint8_t *old_key);
int nm_iface_peer_remove(struct nm *nm, const uint8_t key[static WG_KEY_LEN]);
int nm_iface_add_routes(struct nm *nm);
/* Peer comparisons (also mesh.c): cur's preshared key is psk (all zero:
 * none); a and b have the same endpoint. */
bool nm_psk_equal(const struct wg_peer *cur, const uint8_t psk[static WG_KEY_LEN]);
bool nm_sockaddr_equal(const struct wg_peer *a, const struct wg_peer *b);
/* `cleanup`: remove interface, routes, firewall chains, socket. */
int nm_iface_cleanup(const struct nm_config *cfg, const struct ipnet *cidrs,
		     size_t n_cidrs);

/*
 * mesh.c: "containerMesh". Every registered allocation with the flag (a
 * mesh container) has, on its own container interface, one peer per other
 * mesh container of this node: its key, its endpoint on the host, AllowedIPs
 * its addresses and, with --preshared-key-file, the preshared key derived
 * from the two container keys. Callers hold nm->lock. Join and leave never
 * fail their caller: what could not be changed is logged and left to the
 * repair, which converges it.
 */
/* a (registered, mesh) onto every other mesh container and those onto a. */
void nm_mesh_join(struct nm *nm, const struct nm_alloc *a);
/* key's peer (a's current or previous key) off every other mesh container. */
void nm_mesh_leave(struct nm *nm, const struct nm_alloc *a, const uint8_t key[static WG_KEY_LEN]);
/* Drift repair pass: every mesh container's peers back to the state, on the
 * first pass, after a failed join or leave, and every NM_MESH_FULL_PASSES. */
#define NM_MESH_FULL_PASSES 12U
int nm_mesh_repair(struct nm *nm);

/* sync.c: the cluster manager. */
/* One AllocateSubnet + RegisterKey round. 0 or negative errno. */
int nm_sync_register(struct nm *nm, struct rpc_client *rpc);
int nm_sync_start(struct nm *nm);
/* Wait (bounded) for the sync thread; false if it is still in a call. */
bool nm_sync_stop(struct nm *nm, unsigned int timeout_ms);
/* Sleep up to ms, returning early when the daemon stops. */
void nm_sleep(struct nm *nm, unsigned int ms);
struct rpc_client *nm_sync_client(const struct nm *nm, long timeout_ms);

/* api.c: the local NodeService. */
extern const struct connect_method nm_api_methods[];
extern const size_t nm_api_n_methods;
int nm_api_metrics(struct prom *p, void *ctx);
int nm_api_healthz(void *ctx);

/* Validation shared by the API. */

#endif

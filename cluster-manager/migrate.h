/*
 * `wgcni-cluster-manager migrate --from sqlite --to etcd`: copies a stopped
 * SQLite cluster manager's state (cluster.db) into etcd under the key layout
 * of store_etcd_keys.h, so an installation moves to --datastore etcd
 * without renumbering: every node keeps its subnets, public key and
 * endpoints.
 *
 * It never overwrites: it refuses when etcd already holds nodes or subnet
 * claims under the prefix, or a P/config that differs from the flags', and
 * every key it writes is created by a transaction that holds only if the
 * key does not exist (createRevision == 0). A cluster is copied in several
 * transactions (etcd takes at most 128 operations in one); when one fails,
 * the keys of the earlier ones are deleted again (each only if it still
 * holds what migrate wrote), so a failed run leaves nothing behind.
 *
 * The cluster CIDRs and node prefix lengths come from the same flags as the
 * daemon's (and the same defaults): they become P/config, which every
 * cluster manager on etcd checks its own flags against, and every stored
 * subnet must be a subnet of exactly that size in the cluster CIDR of its
 * family (a stored /16 where /24s are handed out would not be seen by the
 * /24 claims, so it is refused rather than copied).
 *
 * What is not copied: tombstones and the revision (etcd has its own
 * revisions: a node following the old manager resyncs once), external
 * peers (not supported on etcd in this version: migrate refuses).
 *
 * The pure parts below (JSON, checks, batching) are unit-tested in
 * tests/unit/test_cm_migrate.c.
 */
#ifndef WGCNI_CM_MIGRATE_H
#define WGCNI_CM_MIGRATE_H

#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* etcd's default --max-txn-ops: operations (and compares) per transaction. */
#define CM_MIGRATE_TXN_OPS 128

/* One row of nodes with its subnets, as read from cluster.db. */
struct cm_mig_node {
	char *name;
	char *public_key, *endpoint, *location, *public_endpoint; /* "" if none */
	bool gateway;
	int64_t last_seen; /* Unix seconds */
	char *subnets[CM_NFAM]; /* in family order, n_subnets of them */
	int subnet_family[CM_NFAM]; /* 4 or 6, as stored */
	size_t n_subnets;
};

/* `migrate ARGS...` (argv[0] is "migrate"): exit code, 0 done, 1 failed,
 * 2 usage. */
int cm_migrate_main(int argc, char **argv);

/* P/nodes/<name>'s value: {"subnets":[..],"publicKey":..,"endpoint":..,
 * "location":..,"gateway":..,"publicEndpoint":..}. Malloc'd, NULL with
 * errno. */
char *cm_migrate_node_json(const struct cm_mig_node *n);
/* A stored subnet (cidr, family 4 or 6) is one the etcd store would hand
 * out under cfg: 0, else -EINVAL with why in err. */
int cm_migrate_check_subnet(const struct cm_config *cfg, const char *cidr, int family,
			    char *err, size_t errlen);
/* How many nodes from nodes[start] on fit in one transaction of at most
 * CM_MIGRATE_TXN_OPS operations and compares, `extra' of each already
 * taken (P/config in the first). At least 1 while start < n. */
size_t cm_migrate_batch(const struct cm_mig_node *nodes, size_t n, size_t start,
			size_t extra);

#endif

/*
 * The cluster manager's keys in etcd (--datastore etcd), under --etcd-prefix
 * P (default "/wgcni"; stored without a trailing slash). Shared by the
 * store (state_etcd.c) and `migrate` (migrate.c); a contract between
 * cluster managers of different versions on one etcd cluster.
 *
 *   P/config             JSON {"clusterCidrs":["10.100.0.0/16",..],
 *                        "nodePrefixLength":24,"nodePrefixLengthV6":64,
 *                        "externalCidrs":[..]} (none: []); written
 *                        by the first manager (or migrate); a manager whose
 *                        flags differ refuses to start.
 *   P/revision-offset    decimal, written once by migrate (absent: 0): the
 *                        SQLite revision the nodes may hold. Every revision
 *                        a manager serves is etcd's plus it, and the history
 *                        starts there, so a node asking since a SQLite-era
 *                        revision gets a full set, never a wrong delta.
 *   P/nodes/<name>       JSON {"subnets":["10.100.3.0/24",..],"publicKey":"..",
 *                        "endpoint":"..","location":"..","gateway":false,
 *                        "publicEndpoint":".."}: empty strings for what is not
 *                        registered; unknown fields are ignored. Its
 *                        mod_revision is the node's revision in WatchPeers.
 *   P/subnets/<cidr>     the claim: value is the node's name, e.g. key
 *                        "/wgcni/subnets/10.100.3.0/24". Created in the same
 *                        transaction as the node's record, only if it does not
 *                        exist (createRevision == 0): no subnet is held twice.
 *   P/seen/<name>        decimal Unix seconds of the node's last call, written
 *                        in batches (at most every CM_SEEN_FLUSH_SECONDS, and
 *                        only when it moved by 5 minutes, or an eighth of
 *                        --node-ttl): how every manager knows who is stale.
 *   P/external/<name>    JSON {"publicKey":"..","location":"..","gateway":"node",
 *                        "addresses":["10.200.0.2/32",..]}: an external peer
 *                        (wgcnictl external); "" gateway while none exists.
 *                        A change to the peers a gateway serves also writes
 *                        the gateway's record again (its revision moves).
 *   P/extaddrs/<address> the claim of an external peer's address, e.g.
 *                        "/wgcni/extaddrs/10.200.0.2/32"; value its name.
 *   P/tombstones/<name>  empty; its mod_revision is when the peer left the
 *                        peer set (WatchPeers' removed): put in its deletion's
 *                        transaction, or alone when it turned stale (a
 *                        tombstone newer than the node's record). Kept, one
 *                        per name ever deleted: a manager that starts lists
 *                        them to rebuild the history.
 */
#ifndef WGCNI_CM_STORE_ETCD_KEYS_H
#define WGCNI_CM_STORE_ETCD_KEYS_H

#define CM_ETCD_PREFIX_DEFAULT "/wgcni"

#define CM_ETCD_CONFIG "/config"
#define CM_ETCD_REVISION_OFFSET "/revision-offset"
#define CM_ETCD_NODES "/nodes/"
#define CM_ETCD_SUBNETS "/subnets/"
#define CM_ETCD_SEEN "/seen/"
#define CM_ETCD_TOMBSTONES "/tombstones/"
#define CM_ETCD_EXTERNAL "/external/"
#define CM_ETCD_EXTADDRS "/extaddrs/"

#endif

/*
 * A client of etcd v3 over its JSON gateway (etcd >= 3.4: POST /v3/kv/range,
 * /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn, /v3/kv/compaction,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/kv/lease/revoke and the
 * streaming /v3/watch), on libcurl and jansson.
 *
 * Wire contract (checked against etcd 3.4.23): keys and values travel as
 * standard base64, 64-bit numbers as JSON strings, fields at their default
 * value (0, false, "", PUT) are left out of answers. Errors come back as
 * HTTP 4xx/5xx with {"error":..,"message":..,"code":<gRPC code>}.
 *
 * Keys are C strings (non-empty, no NUL inside); values are bytes. A
 * range_end of NULL means the key alone, "" means every key from key on
 * (etcd's "\0"), anything else the half-open [key, range_end);
 * etcd_prefix_end() computes the end of a prefix.
 *
 * Failover: the endpoints are tried in turn from the last one that
 * answered (one that failed as a transport is never where the next call
 * starts). A read moves on after any transport failure or an "unavailable"
 * answer; a write (put, delete, txn) only when it cannot have reached etcd
 * (no byte sent) or etcd refused it unprocessed ("no leader"), so it is
 * never applied twice. A write whose fate is unknown (timeout or reset
 * after sending) fails with -ETIMEDOUT or -ECONNRESET: the caller re-reads
 * to learn whether it happened (for a claim: is the key ours?).
 *
 * Errors (the one translation is etcd_errno() in etcd.c):
 *   -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ECONNRESET  no endpoint answered
 *   -EKEYREJECTED  TLS: the server's certificate is not trusted
 *   -EAGAIN        etcd unavailable (no leader, stopping, overloaded)
 *   -EINVAL        refused as invalid (by us, before sending, or by etcd)
 *   -ESTALE        the revision asked for has been compacted
 *   -ERANGE        the revision asked for is in the future
 *   -EACCES        etcd authentication or permission
 *   -ENOSPC        etcd's database is full
 *   -EPROTO        an answer we cannot decode (never trusted partially)
 *   -EMSGSIZE      an answer over 64 MiB
 *   -ECANCELED     etcd_cancel() was called
 *   -ENOENT        etcd_get: no such key; leases: gone
 *   -ENOTSUP, -EEXIST, -EREMOTEIO  other etcd errors (unimplemented, exists, internal)
 *
 * Threads: a struct etcd may be used from several threads at once (each
 * call takes its own connection from a small pool). Values are never
 * logged.
 *
 * Files: etcd.c the client, failover and error translation; etcd_codec.h
 * the pure JSON (unit-tested without etcd): etcd_codec_req.c requests,
 * etcd_codec.c answers; etcd_lease.c leases; etcd_watch.c the watch stream.
 */
#ifndef WGCNI_ETCD_H
#define WGCNI_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct etcd_config {
	/* "http://127.0.0.1:2379,https://[::1]:2379": as --etcd-endpoints. */
	const char *endpoints;
	/* PEM files, each may be NULL: CA to trust instead of the system store;
	 * client certificate and its key (both or neither). */
	const char *ca_file, *cert_file, *key_file;
	long dial_timeout_ms;    /* TCP + TLS connect per endpoint, 0: 2000 */
	long request_timeout_ms; /* whole request per endpoint, 0: 5000 */
};

struct etcd_kv {
	char *key; /* NUL-terminated; key_len excludes the NUL */
	size_t key_len;
	uint8_t *value; /* NUL-terminated too (for text), value_len excludes it */
	size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
};

struct etcd_kvs {
	struct etcd_kv *kvs;
	size_t n;
	int64_t count; /* keys in the range, beyond the limit too */
	bool more;     /* limit cut the answer */
};

struct etcd;

/* NULL with errno: EINVAL for a bad endpoint list or an unreadable file. */
struct etcd *etcd_new(const struct etcd_config *cfg);
void etcd_free(struct etcd *e);
/* From any thread: abort calls in flight and fail later ones with -ECANCELED. */
void etcd_cancel(struct etcd *e);
/* The endpoint last answered, for logs. */
const char *etcd_endpoint(const struct etcd *e);

/* Malloc'd end of the range of keys starting with prefix; NULL with errno. */
char *etcd_prefix_end(const char *prefix);

void etcd_kv_free(struct etcd_kv *kv); /* contents only */
void etcd_kvs_free(struct etcd_kvs *kvs); /* contents only; zeroes it */

struct etcd_range_req {
	const char *key, *range_end;
	int64_t limit;    /* 0: no limit */
	int64_t revision; /* 0: the latest; else read as of this revision */
	bool keys_only, count_only;
	bool serializable; /* from the member answering, maybe stale */
};

/* Keys in key order. *revision (may be NULL): the store's revision the
 * answer is as of. out is always initialized (empty on error). */
int etcd_range(struct etcd *e, const struct etcd_range_req *req, struct etcd_kvs *out,
	       int64_t *revision);
/* One key: 0 and *kv filled, -ENOENT when absent. */
int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, int64_t *revision);
int etcd_put(struct etcd *e, const char *key, const void *value, size_t len,
	     int64_t *revision);
/* *deleted (may be NULL): how many keys went. */
int etcd_delete(struct etcd *e, const char *key, const char *range_end,
		int64_t *revision, int64_t *deleted);
/* Compacts the history up to revision (for tests and maintenance). */
int etcd_compact(struct etcd *e, int64_t revision);

/* --- transactions: if every compare holds, run success, else failure. */

enum etcd_cmp_target {
	ETCD_CMP_VERSION = 0,
	ETCD_CMP_CREATE, /* create_revision; 0 when the key does not exist */
	ETCD_CMP_MOD,    /* mod_revision */
	ETCD_CMP_VALUE,
};

enum etcd_cmp_result {
	ETCD_CMP_EQUAL = 0,
	ETCD_CMP_GREATER,
	ETCD_CMP_LESS,
	ETCD_CMP_NOT_EQUAL,
};

struct etcd_cmp {
	enum etcd_cmp_target target;
	enum etcd_cmp_result result;
	const char *key;
	const char *range_end; /* NULL: the key alone */
	int64_t number;        /* VERSION, CREATE, MOD */
	const void *value;     /* VALUE */
	size_t value_len;
};

enum etcd_op_type {
	ETCD_OP_RANGE = 0,
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
};

struct etcd_op {
	enum etcd_op_type type;
	const char *key, *range_end; /* range_end: RANGE and DELETE */
	const void *value;           /* PUT */
	size_t value_len;
	int64_t lease;               /* PUT: attach to this lease, 0: none */
	int64_t limit;               /* RANGE */
};

struct etcd_txn {
	const struct etcd_cmp *compare;
	size_t n_compare;
	const struct etcd_op *success, *failure;
	size_t n_success, n_failure;
};

struct etcd_op_result {
	enum etcd_op_type type;
	struct etcd_kvs kvs; /* RANGE */
	int64_t deleted;     /* DELETE */
};

struct etcd_txn_result {
	bool succeeded;
	int64_t revision;
	struct etcd_op_result *results; /* one per op of the branch taken */
	size_t n;
};

/* 0 whether or not the compares held (out->succeeded says); out is always
 * initialized. At most 128 compares and 128 ops per branch (etcd's limit). */
int etcd_txn(struct etcd *e, const struct etcd_txn *t, struct etcd_txn_result *out);
void etcd_txn_result_free(struct etcd_txn_result *r); /* contents only */

/* --- leases: keys put with a lease (struct etcd_op.lease, in a txn) go
 * when it expires, ttl seconds after the last keepalive, or is revoked. */

/* *id: the new lease; *granted_ttl (may be NULL): its TTL in seconds. */
int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *id, int64_t *granted_ttl);
/* Renews once: 0 with *ttl (may be NULL), -ENOENT when it has expired or
 * was revoked. Safe to retry on another endpoint. */
int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl);
/* Revokes it and deletes its keys: 0, -ENOENT when it is gone already. */
int etcd_lease_revoke(struct etcd *e, int64_t id);

/* --- watch: a stream of changes on its own thread. */

enum etcd_event_type {
	ETCD_EVENT_PUT = 0,
	ETCD_EVENT_DELETE,
};

struct etcd_event {
	enum etcd_event_type type;
	struct etcd_kv kv;      /* a DELETE has only key and mod_revision */
	struct etcd_kv prev_kv; /* all zero when etcd sent none */
	bool has_prev;
};

enum etcd_watch_status {
	/* events[0..n) in revision order; a transaction's changes arrive in
	 * one batch. revision: the store's revision as of the batch. */
	ETCD_WATCH_EVENTS = 0,
	/* The history from the start revision is gone (compact_revision): the
	 * caller re-lists and starts a new watch. No further callback. */
	ETCD_WATCH_COMPACTED,
	/* The stream broke (err) and is being resumed, on the next endpoint,
	 * from the revision after the last one delivered. Informational. */
	ETCD_WATCH_RECONNECTING,
};

struct etcd_watch_msg {
	enum etcd_watch_status status;
	int64_t revision;
	int64_t compact_revision; /* COMPACTED */
	int err;                  /* RECONNECTING: the negative errno */
	const struct etcd_event *events;
	size_t n;
};

/* Runs on the watch's thread, one call at a time, in order. The message
 * and what it points to are valid during the call only. It may call the
 * other etcd_* functions (a re-list after COMPACTED), not etcd_watch_stop. */
typedef void (*etcd_watch_fn)(const struct etcd_watch_msg *m, void *ctx);

struct etcd_watch;

/* Watches [key, range_end) from start_revision (0: from now on), with the
 * previous kv of each change. The endpoints, TLS and timeouts are e's; e
 * must outlive the watch. NULL with errno (EINVAL). */
struct etcd_watch *etcd_watch_start(struct etcd *e, const char *key, const char *range_end,
				    int64_t start_revision, etcd_watch_fn cb, void *ctx);
/* Stops the stream and joins its thread (never from the callback). NULL ok. */
void etcd_watch_stop(struct etcd_watch *w);

#endif

/*
 * The JSON of etcd's v3 gateway, as pure functions (no I/O), for etcd.c and
 * etcd_watch.c and their unit tests.
 *
 * Requests are built from the public structs of etcd.h into malloc'd
 * NUL-terminated text (NULL with errno EINVAL for bad input: a NULL or
 * empty key, an unknown enum, over ETCD_CODEC_MAX_OPS; ENOMEM).
 *
 * Answers are distrusted: every field we read is type-checked, numbers must
 * be non-negative decimal strings (or JSON integers) within int64, base64
 * must decode, keys must be non-empty; anything else is -EPROTO and the
 * output is left empty (never half-filled). Fields we do not know are
 * ignored: the format is etcd's, and newer versions add fields.
 */
#ifndef WGCNI_ETCD_CODEC_H
#define WGCNI_ETCD_CODEC_H

#include "etcd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_CODEC_MAX_OPS 128

char *etcd_codec_range_req(const struct etcd_range_req *r);
char *etcd_codec_put_req(const char *key, const void *value, size_t len);
char *etcd_codec_delete_req(const char *key, const char *range_end);
char *etcd_codec_txn_req(const struct etcd_txn *t);
char *etcd_codec_compact_req(int64_t revision);
char *etcd_codec_watch_req(const char *key, const char *range_end, int64_t start_revision);
char *etcd_codec_lease_grant_req(int64_t ttl);
/* {"ID":..}: keepalive and revoke. */
char *etcd_codec_lease_id_req(int64_t id);

/* 0 or -EPROTO. Outputs may be NULL where they are pointers to numbers. */
int etcd_codec_range_resp(const char *buf, size_t len, struct etcd_kvs *out,
			  int64_t *revision);
/* Answers that carry only a header (put, compaction). */
int etcd_codec_header_resp(const char *buf, size_t len, int64_t *revision);
int etcd_codec_delete_resp(const char *buf, size_t len, int64_t *revision,
			   int64_t *deleted);
int etcd_codec_txn_resp(const char *buf, size_t len, struct etcd_txn_result *out);
int etcd_codec_lease_grant_resp(const char *buf, size_t len, int64_t *id, int64_t *ttl);
/* {"result":{"header":..,"ID":..,"TTL":..}}; TTL 0 (left out) for a lease
 * that is gone. */
int etcd_codec_lease_keepalive_resp(const char *buf, size_t len, int64_t *id, int64_t *ttl);

/* One message of the watch stream. */
struct etcd_codec_watch {
	int64_t revision;
	int64_t compact_revision;
	bool created, canceled;
	struct etcd_event *events;
	size_t n;
	/* The stream's own error ({"error":{"grpc_code":..}}), 0 when none. */
	int grpc_code;
	char message[256];
};
int etcd_codec_watch_msg(const char *buf, size_t len, struct etcd_codec_watch *out);
void etcd_codec_watch_free(struct etcd_codec_watch *w); /* contents only */

/* An error body: {"error":"..","message":"..","code":N}, or the stream form
 * {"error":{"grpc_code":N,"message":".."}}. 0 with *code and msg, or
 * -EPROTO when buf is no such thing. */
int etcd_codec_error(const char *buf, size_t len, int *code, char *msg, size_t msg_len);

/* Exposed for the unit tests. */
int etcd_codec_parse_i64(const char *s, int64_t *out);

#endif

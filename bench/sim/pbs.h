/*
 * Streaming decoder for the peer-list answers of the cluster manager
 * (WatchPeersResponse, ListPeersResponse), fed with body bytes as they
 * arrive from the socket. A simulated node never holds a whole answer: at
 * 10,000 nodes a full set is about 1 MB and every node receives one at
 * about the same time. Only a peer (or removed name) that straddles two
 * reads is copied, into a small carry buffer.
 *
 * The wire format is protobuf (proto3): the field numbers come from
 * proto/wgcni/cluster/v1/cluster.proto. Unknown fields are skipped, groups
 * and over-long varints are refused, a field with the wrong wire type is
 * refused. `full` must precede every peer (protobuf-c writes fields in
 * number order): a full answer after a peer was applied is refused.
 */
#ifndef WGCNI_BENCH_PBS_H
#define WGCNI_BENCH_PBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PBS_CARRY 1024 /* largest peer message or removed name accepted */

/* Field numbers of one answer type (0: the type has no such field). */
struct pbs_fields {
	uint32_t revision, full, peers, removed;
};

extern const struct pbs_fields pbs_watch_fields; /* WatchPeersResponse */
extern const struct pbs_fields pbs_list_fields;  /* ListPeersResponse */

struct pbs_sink {
	void (*full)(void *ctx);
	void (*peer)(void *ctx, const char *name, size_t name_len, const char *key,
		     size_t key_len);
	void (*removed)(void *ctx, const char *name, size_t len);
};

struct pbs {
	const struct pbs_fields *f;
	uint8_t st;
	uint8_t wt;
	uint8_t shift;
	uint32_t field;
	uint32_t have;
	uint64_t v;
	uint64_t need;
	/* What the answer said so far. */
	uint64_t revision;
	bool full;
	uint32_t n_peers, n_removed;
	uint8_t carry[PBS_CARRY];
};

void pbs_init(struct pbs *s, const struct pbs_fields *f);
/* 0, or -EBADMSG / -EMSGSIZE (then the decoder is unusable until pbs_init). */
int pbs_feed(struct pbs *s, const uint8_t *p, size_t n, const struct pbs_sink *k, void *ctx);
/* 0 when the bytes fed so far end on a field boundary, else -EBADMSG. */
int pbs_end(const struct pbs *s);

/* The name and public key of one encoded Peer (pointers into buf). */
int pbs_peer(const uint8_t *buf, size_t len, const char **name, size_t *name_len,
	     const char **key, size_t *key_len);

#endif

/*
 * --self-test: answers packed by protobuf-c, framed with Content-Length and
 * with chunked encoding, fed to hresp + pbs in pieces of every size from 1
 * byte up; what the streaming decoder reports must equal what was packed.
 * Also a few malformed inputs that must be refused.
 */
#include "sim.h"

#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_PEERS 40

struct st_seen {
	uint32_t peers, removed, full, bad_key;
	char names[ST_PEERS][16];
};

struct st_ctx {
	struct st_seen *seen;
	struct pbs pb;
	bool stream;
};

static void st_full(void *ctx)
{
	((struct st_seen *)ctx)->full++;
}

static void st_peer(void *ctx, const char *name, size_t name_len, const char *key,
		    size_t key_len)
{
	struct st_seen *s = ctx;

	/* The key of peer i is 44 times the letter 'A' + i % 26. */
	if (key_len != SIM_KEY_LEN || name_len >= sizeof(s->names[0]))
		s->bad_key++;
	else
		for (size_t i = 0; i < key_len; i++)
			if (key[i] != 'A' + (char)(s->peers % 26))
				s->bad_key++;
	if (s->peers < ST_PEERS && name_len < sizeof(s->names[0])) {
		memcpy(s->names[s->peers], name, name_len);
		s->names[s->peers][name_len] = '\0';
	}
	s->peers++;
}

static void st_removed(void *ctx, const char *name, size_t len)
{
	((struct st_seen *)ctx)->removed++;
	(void)name;
	(void)len;
}

static const struct pbs_sink st_sink = { st_full, st_peer, st_removed };

static int st_body(void *ctx, const uint8_t *p, size_t n)
{
	struct st_ctx *c = ctx;

	return pbs_feed(&c->pb, p, n, &st_sink, c->seen);
}

/* A packed WatchPeersResponse (or ListPeersResponse) with np peers. */
static uint8_t *st_pack(bool watch, bool full, size_t np, size_t nr, uint64_t rev, size_t *len)
{
	Wgcni__Cluster__V1__Peer peers[ST_PEERS], *pp[ST_PEERS];
	char names[ST_PEERS][16], keys[ST_PEERS][SIM_KEY_LEN + 1];
	char *ips[2] = { "10.0.0.0/24", "fd00::/64" };
	char *removed[3] = { "node-00007", "node-00008", "node-00009" };
	uint8_t *buf;

	for (size_t i = 0; i < np; i++) {
		wgcni__cluster__v1__peer__init(&peers[i]);
		snprintf(names[i], sizeof(names[i]), "node-%05u", (unsigned int)(i % 100000));
		memset(keys[i], 'A' + (int)(i % 26), SIM_KEY_LEN);
		keys[i][SIM_KEY_LEN] = '\0';
		peers[i].name = names[i];
		peers[i].public_key = keys[i];
		peers[i].endpoint = "10.0.0.1:51820";
		peers[i].n_allowed_ips = 2;
		peers[i].allowed_ips = ips;
		pp[i] = &peers[i];
	}
	if (watch) {
		Wgcni__Cluster__V1__WatchPeersResponse m =
			WGCNI__CLUSTER__V1__WATCH_PEERS_RESPONSE__INIT;

		m.revision = rev;
		m.full = full;
		m.n_peers = np;
		m.peers = pp;
		m.n_removed = nr;
		m.removed = removed;
		*len = protobuf_c_message_get_packed_size(&m.base);
		buf = malloc(*len + 1);
		if (buf)
			protobuf_c_message_pack(&m.base, buf);
	} else {
		Wgcni__Cluster__V1__ListPeersResponse m =
			WGCNI__CLUSTER__V1__LIST_PEERS_RESPONSE__INIT;

		m.revision = rev;
		m.n_peers = np;
		m.peers = pp;
		*len = protobuf_c_message_get_packed_size(&m.base);
		buf = malloc(*len + 1);
		if (buf)
			protobuf_c_message_pack(&m.base, buf);
	}
	return buf;
}

/* HTTP framing around body: Content-Length, or chunks of csize bytes. */
static char *st_frame(const uint8_t *body, size_t len, size_t csize, size_t *out_len)
{
	size_t cap = len * 5 + 4096, o = 0; /* chunks of 3 bytes: 14 on the wire */
	char *out = malloc(cap);

	if (!out)
		return NULL;
	if (!csize) {
		o = (size_t)snprintf(out, cap,
				     "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\n"
				     "Content-Length: %zu\r\nDate: x\r\n\r\n",
				     len);
		memcpy(out + o, body, len);
		*out_len = o + len;
		return out;
	}
	o = (size_t)snprintf(out, cap, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (size_t i = 0; i < len; i += csize) {
		size_t c = len - i < csize ? len - i : csize;

		o += (size_t)snprintf(out + o, cap - o, "%zx;ext=1\r\n", c);
		memcpy(out + o, body + i, c);
		o += c;
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	o += (size_t)snprintf(out + o, cap - o, "0\r\nX-Trailer: y\r\n\r\n");
	*out_len = o;
	return out;
}

/* Feeds wire in pieces of step bytes; 0 if the answer decoded as packed. */
static int st_feed(const char *wire, size_t len, size_t step, bool watch, bool full, size_t np,
		   size_t nr, uint64_t rev)
{
	struct st_seen seen = { 0 };
	struct st_ctx c = { .seen = &seen };
	struct hresp h;
	size_t i = 0;

	hresp_init(&h);
	pbs_init(&c.pb, watch ? &pbs_watch_fields : &pbs_list_fields);
	while (i < len) {
		size_t n = len - i < step ? len - i : step;
		ssize_t used = hresp_feed(&h, (const uint8_t *)wire + i, n, st_body, &c);

		if (used < 0 || (size_t)used != n)
			return -EBADMSG;
		i += n;
	}
	if (!hresp_done(&h) || h.status != 200 || pbs_end(&c.pb) < 0)
		return -EBADMSG;
	if (seen.peers != np || seen.removed != nr || seen.full != (full && watch) ||
	    seen.bad_key || c.pb.revision != rev)
		return -EBADMSG;
	for (size_t k = 0; k < np && k < ST_PEERS; k++) {
		char want[16];

		snprintf(want, sizeof(want), "node-%05u", (unsigned int)(k % 100000));
		if (strcmp(seen.names[k], want))
			return -EBADMSG;
	}
	return 0;
}

static int st_bad(const uint8_t *body, size_t len)
{
	struct st_seen seen = { 0 };
	struct pbs pb;

	pbs_init(&pb, &pbs_watch_fields);
	if (pbs_feed(&pb, body, len, &st_sink, &seen) < 0)
		return 0;
	return pbs_end(&pb) < 0 ? 0 : -EBADMSG;
}

int sim_selftest(void)
{
	static const struct {
		bool watch, full;
		size_t np, nr;
		uint64_t rev;
	} cases[] = {
		{ true, true, 5, 0, 300 },
		{ true, false, 2, 3, UINT64_MAX },
		{ true, false, 0, 0, 1 },
		{ false, false, 7, 0, 12345678901ULL },
		{ true, true, ST_PEERS, 0, 2 },
	};
	static const uint8_t bad[][8] = {
		{ 0x1a, 0x05, 0x0a, 0x01 },       /* peer cut short */
		{ 0x1b },                         /* group */
		{ 0x08, 0xff, 0xff },             /* varint cut short */
		{ 0x1a, 0x02, 0x0a, 0x05 },       /* name longer than the peer */
		{ 0x1a, 0x00, 0x10, 0x01 },       /* full after a peer */
		{ 0x1a, 0x02, 0x08, 0x01 },       /* a varint where Peer has strings */
		{ 0x0a, 0x01, 0x00 },             /* revision as bytes */
	};
	static const size_t bad_len[] = { 4, 1, 3, 4, 4, 4, 3 };
	size_t checks = 0;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t blen, wlen;
		uint8_t *body = st_pack(cases[k].watch, cases[k].full, cases[k].np, cases[k].nr,
					cases[k].rev, &blen);

		if (!body)
			return -ENOMEM;
		for (size_t csize = 0; csize <= 9; csize += 3) {
			char *wire = st_frame(body, blen, csize, &wlen);

			if (!wire) {
				free(body);
				return -ENOMEM;
			}
			for (size_t step = 1; step <= wlen; step++, checks++)
				if (st_feed(wire, wlen, step, cases[k].watch, cases[k].full,
					    cases[k].np, cases[k].nr, cases[k].rev) < 0) {
					fprintf(stderr, "self-test: case %zu, chunk size %zu, pieces of "
							"%zu bytes: wrong decode\n",
						k, csize, step);
					free(wire);
					free(body);
					return -EBADMSG;
				}
			free(wire);
		}
		free(body);
	}
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++, checks++)
		if (st_bad(bad[k], bad_len[k]) < 0) {
			fprintf(stderr, "self-test: malformed input %zu accepted\n", k);
			return -EBADMSG;
		}
	{
		/* A body after the answer's end is not consumed. */
		static const char two[] = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n";
		struct hresp h;
		struct st_ctx c = { 0 };

		hresp_init(&h);
		if (hresp_feed(&h, (const uint8_t *)two, sizeof(two) - 1, st_body, &c) != 27 ||
		    !hresp_done(&h)) {
			fprintf(stderr, "self-test: bytes after an answer were consumed\n");
			return -EBADMSG;
		}
		checks++;
	}
	printf("self-test: %zu checks passed\n", checks);
	return 0;
}

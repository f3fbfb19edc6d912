/*
 * HTTP/1.1 response parser for the simulator's keep-alive client, fed with
 * bytes as they arrive: status line, headers (Content-Length,
 * Transfer-Encoding: chunked, Connection: close), then the body handed to a
 * callback piece by piece, de-chunked. A body without length or chunking
 * lasts until the server closes (hresp_eof). 1xx answers are skipped.
 */
#ifndef WGCNI_BENCH_HRESP_H
#define WGCNI_BENCH_HRESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HRESP_LINE_MAX 1024 /* the whole head must fit */

enum hresp_state {
	HS_HEAD,
	HS_BODY,      /* Content-Length bytes */
	HS_EOF_BODY,  /* until the server closes */
	HS_CSIZE,     /* chunk-size line */
	HS_CDATA,
	HS_CCRLF,     /* the CRLF after a chunk */
	HS_TRAILER,
	HS_DONE,
};

struct hresp {
	uint8_t st;
	bool chunked, close, has_len;
	int status;
	uint16_t len;      /* bytes in line */
	uint64_t left;     /* body or chunk bytes still to come */
	uint64_t body_len; /* body bytes delivered */
	char line[HRESP_LINE_MAX];
};

/* Gets body bytes; a negative return stops the parse with that error. */
typedef int (*hresp_body_fn)(void *ctx, const uint8_t *p, size_t n);

void hresp_init(struct hresp *h);
/* Bytes consumed (stops after the response's last byte), or -EBADMSG,
 * -EMSGSIZE, or the body callback's error. */
ssize_t hresp_feed(struct hresp *h, const uint8_t *p, size_t n, hresp_body_fn fn, void *ctx);
/* The server closed: 0 if that ended the response (a body until close). */
int hresp_eof(struct hresp *h);

static inline bool hresp_done(const struct hresp *h)
{
	return h->st == HS_DONE;
}

#endif

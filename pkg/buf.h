/* A growable byte buffer, always NUL-terminated, with an upper bound. */
#ifndef WGCNI_BUF_H
#define WGCNI_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len, cap;
	size_t max;   /* bound on len; 0 = none */
	bool too_big; /* an append would have passed max */
};

/* Append n bytes (capacity doubles, so n appends cost O(n)). 0, -E2BIG
 * past max (too_big set, nothing appended), or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
/* libcurl's CURLOPT_WRITEFUNCTION with a struct buf as CURLOPT_WRITEDATA:
 * a failed append aborts the transfer. */
size_t buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata);
void buf_free(struct buf *b); /* frees data; b itself is the caller's */

#endif

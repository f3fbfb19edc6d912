#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const void *p, size_t n)
{
	if ((b->max && n > b->max - b->len) || n > (size_t)-1 / 2 - b->len) {
		b->too_big = true;
		return -E2BIG;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *data;

		while (cap < b->len + n + 1)
			cap *= 2;
		data = realloc(b->data, cap);
		if (!data)
			return -ENOMEM;
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

size_t buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t n = size * nmemb;

	if (nmemb && n / nmemb != size)
		return 0;
	return buf_append(userdata, ptr, n) ? 0 : n;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

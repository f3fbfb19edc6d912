#include "hresp.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void hresp_init(struct hresp *h)
{
	h->st = HS_HEAD;
	h->chunked = h->close = h->has_len = false;
	h->status = 0;
	h->len = 0;
	h->left = 0;
	h->body_len = 0;
}

/* Does the comma-separated header value hold token (case-insensitive)? */
static bool hresp_has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (!strncasecmp(v, token, tl) &&
		    (v[tl] == '\0' || v[tl] == ',' || v[tl] == ' ' || v[tl] == '\t' ||
		     v[tl] == ';'))
			return true;
		while (*v && *v != ',')
			v++;
	}
	return false;
}

static int hresp_parse_uint(const char *v, int base, uint64_t *out)
{
	char *end;
	unsigned long long n;

	while (*v == ' ' || *v == '\t')
		v++;
	if (!isxdigit((unsigned char)*v))
		return -EBADMSG;
	errno = 0;
	n = strtoull(v, &end, base);
	if (errno || end == v)
		return -EBADMSG;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end && !(base == 16 && *end == ';'))
		return -EBADMSG;
	*out = n;
	return 0;
}

/* The head is in line (NUL-terminated, CRLFs intact). */
static int hresp_parse_head(struct hresp *h)
{
	char *save = NULL, *l;
	bool http10;

	l = strtok_r(h->line, "\r\n", &save);
	if (!l || strncmp(l, "HTTP/1.", 7) || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    !isdigit((unsigned char)l[9]) || !isdigit((unsigned char)l[10]) ||
	    !isdigit((unsigned char)l[11]) || (l[12] != ' ' && l[12] != '\0'))
		return -EBADMSG;
	http10 = l[7] == '0';
	h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	h->close = http10;
	while ((l = strtok_r(NULL, "\r\n", &save))) {
		char *colon = strchr(l, ':'), *v;

		if (!colon)
			return -EBADMSG;
		*colon = '\0';
		v = colon + 1;
		if (!strcasecmp(l, "Content-Length")) {
			if (hresp_parse_uint(v, 10, &h->left) < 0)
				return -EBADMSG;
			h->has_len = true;
		} else if (!strcasecmp(l, "Transfer-Encoding")) {
			if (hresp_has_token(v, "chunked"))
				h->chunked = true;
		} else if (!strcasecmp(l, "Connection")) {
			if (hresp_has_token(v, "close"))
				h->close = true;
			else if (hresp_has_token(v, "keep-alive"))
				h->close = false;
		}
	}
	if (h->status < 200) {
		/* 100 Continue and friends: the real answer follows. */
		hresp_init(h);
		return 0;
	}
	if (h->status == 204 || h->status == 304)
		h->st = HS_DONE;
	else if (h->chunked)
		h->st = HS_CSIZE;
	else if (h->has_len)
		h->st = h->left ? HS_BODY : HS_DONE;
	else {
		h->st = HS_EOF_BODY;
		h->close = true;
	}
	return 0;
}

/* Collects one line (up to LF) into line; 1 when complete, 0 for more. */
static int hresp_line(struct hresp *h, const uint8_t *p, size_t n, size_t *i)
{
	while (*i < n) {
		uint8_t c = p[(*i)++];

		if (h->len >= sizeof(h->line) - 1)
			return -EMSGSIZE;
		h->line[h->len++] = (char)c;
		if (c == '\n') {
			h->line[h->len] = '\0';
			return 1;
		}
	}
	return 0;
}

static bool hresp_blank(const struct hresp *h)
{
	return (h->len == 2 && h->line[0] == '\r') || h->len == 1;
}

ssize_t hresp_feed(struct hresp *h, const uint8_t *p, size_t n, hresp_body_fn fn, void *ctx)
{
	size_t i = 0, take;
	uint64_t size;
	int ret;

	while (i < n && h->st != HS_DONE) {
		switch (h->st) {
		case HS_HEAD:
			ret = hresp_line(h, p, n, &i);
			if (ret <= 0) {
				if (ret < 0)
					return ret;
				break;
			}
			/* A complete line: the head ends with an empty one. */
			{
				size_t l = h->len;
				bool end = (l >= 4 && !memcmp(h->line + l - 4, "\r\n\r\n", 4)) ||
					   (l >= 2 && !memcmp(h->line + l - 2, "\n\n", 2));

				if (!end)
					break;
				h->len = 0;
				ret = hresp_parse_head(h);
				if (ret < 0)
					return ret;
			}
			break;
		case HS_BODY:
		case HS_CDATA:
		case HS_EOF_BODY:
			take = n - i;
			if (h->st != HS_EOF_BODY && take > h->left)
				take = (size_t)h->left;
			ret = fn(ctx, p + i, take);
			if (ret < 0)
				return ret;
			i += take;
			h->body_len += take;
			if (h->st == HS_EOF_BODY)
				break;
			h->left -= take;
			if (!h->left)
				h->st = h->st == HS_BODY ? HS_DONE : HS_CCRLF;
			break;
		case HS_CSIZE:
			ret = hresp_line(h, p, n, &i);
			if (ret <= 0) {
				if (ret < 0)
					return ret;
				break;
			}
			h->line[strcspn(h->line, "\r\n")] = '\0';
			h->len = 0;
			if (hresp_parse_uint(h->line, 16, &size) < 0)
				return -EBADMSG;
			h->left = size;
			h->st = size ? HS_CDATA : HS_TRAILER;
			break;
		case HS_CCRLF:
		case HS_TRAILER:
			ret = hresp_line(h, p, n, &i);
			if (ret <= 0) {
				if (ret < 0)
					return ret;
				break;
			}
			if (h->st == HS_CCRLF) {
				if (!hresp_blank(h))
					return -EBADMSG;
				h->st = HS_CSIZE;
			} else if (hresp_blank(h)) {
				h->st = HS_DONE;
			}
			h->len = 0;
			break;
		}
	}
	return (ssize_t)i;
}

int hresp_eof(struct hresp *h)
{
	if (h->st != HS_EOF_BODY)
		return -EPIPE;
	h->st = HS_DONE;
	return 0;
}

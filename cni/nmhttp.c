/*
 * A small HTTP/1.1 client for the node manager (see nmhttp.h for why the
 * plugin does not use libcurl): one connection, kept alive between the
 * calls of one plugin run, every wait bounded by the call's deadline.
 */
#include "nmhttp.h"

#include "buf.h"
#include "sys.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct nmh {
	int fd;                /* -1: not connected */
	struct sockaddr_un un; /* unix://, when sun_path is set */
	char host[256];        /* http://: the name or address, no brackets */
	char port[8];
	char hosthdr[272];     /* the Host header's value */
};

struct nmh *nmh_new(const char *url)
{
	const char *rest, *end, *colon;
	struct nmh *h;
	size_t n;

	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->fd = -1;
	if (!strncmp(url, "unix://", 7)) {
		rest = url + 7;
		if (rest[0] != '/' || strlen(rest) >= sizeof(h->un.sun_path))
			goto bad;
		h->un.sun_family = AF_UNIX;
		memcpy(h->un.sun_path, rest, strlen(rest) + 1);
		snprintf(h->hosthdr, sizeof(h->hosthdr), "localhost");
		return h;
	}
	if (strncmp(url, "http://", 7))
		goto bad;
	rest = url + 7;
	end = rest + strcspn(rest, "/");
	if (*rest == '[') {
		const char *rb = memchr(rest, ']', (size_t)(end - rest));

		if (!rb || rb[1] != ':')
			goto bad;
		n = (size_t)(rb - rest - 1);
		colon = rb + 1;
		if (n == 0 || n >= sizeof(h->host))
			goto bad;
		memcpy(h->host, rest + 1, n);
	} else {
		colon = memchr(rest, ':', (size_t)(end - rest));
		if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof(h->host))
			goto bad;
		memcpy(h->host, rest, (size_t)(colon - rest));
	}
	n = (size_t)(end - colon - 1);
	if (n == 0 || n >= sizeof(h->port))
		goto bad;
	memcpy(h->port, colon + 1, n);
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)h->port[i]))
			goto bad;
	snprintf(h->hosthdr, sizeof(h->hosthdr), "%.*s", (int)(end - rest), rest);
	return h;
bad:
	free(h);
	errno = EINVAL;
	return NULL;
}

static void nmh_disconnect(struct nmh *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

void nmh_free(struct nmh *h)
{
	if (!h)
		return;
	nmh_disconnect(h);
	free(h);
}

static long remaining(int64_t deadline)
{
	int64_t left = deadline - sys_now_ms();

	return left > 0 ? (long)left : 0;
}

/* Wait for events on fd until the deadline: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int ret;

	for (;;) {
		long left = remaining(deadline);

		if (!left)
			return -ETIMEDOUT;
		ret = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (ret > 0)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_addr(const struct sockaddr *sa, socklen_t salen, int family,
			int64_t deadline)
{
	int fd, ret, err = 0;
	socklen_t elen = sizeof(err);

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (connect(fd, sa, salen) == 0)
			return fd;
		ret = -errno;
		if (ret == -EINTR)
			continue;
		/* A unix socket's full backlog: try again until the deadline. */
		if (ret == -EAGAIN && family == AF_UNIX) {
			if (!remaining(deadline)) {
				ret = -ETIMEDOUT;
				break;
			}
			poll(NULL, 0, 1);
			continue;
		}
		if (ret != -EINPROGRESS)
			break;
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret)
			break;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			ret = -errno;
		else
			ret = -err;
		if (!ret)
			return fd;
		break;
	}
	close(fd);
	return ret;
}

static int nmh_connect(struct nmh *h, int64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai, *i;
	int ret;

	if (h->un.sun_path[0]) {
		ret = connect_addr((const struct sockaddr *)&h->un, sizeof(h->un), AF_UNIX,
				   deadline);
	} else {
		ret = getaddrinfo(h->host, h->port, &hints, &ai);
		if (ret)
			return ret == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
		ret = -EHOSTUNREACH;
		for (i = ai; i; i = i->ai_next) {
			ret = connect_addr(i->ai_addr, i->ai_addrlen, i->ai_family, deadline);
			if (ret >= 0 || ret == -ETIMEDOUT)
				break;
		}
		freeaddrinfo(ai);
	}
	if (ret < 0)
		return ret;
	h->fd = ret;
	return 0;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int ret = wait_fd(fd, POLLOUT, deadline);

			if (ret)
				return ret;
			continue;
		}
		return n < 0 && errno != EPIPE ? -errno : -ECONNRESET;
	}
	return 0;
}

/* --- the answer ----------------------------------------------------------- */

struct answer {
	int status;
	bool keep_alive;
	bool chunked;
	bool has_length;
	size_t length;
	size_t hdr_len; /* bytes up to the body */
};

/* The header line `name: value' starting at line (up to eol)? Its value. */
static const char *header_value(const char *line, const char *eol, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) || line[n] != ':')
		return NULL;
	line += n + 1;
	while (line < eol && (*line == ' ' || *line == '\t'))
		line++;
	return line;
}

static bool value_has(const char *v, const char *eol, const char *token)
{
	size_t n = strlen(token);

	for (; v + n <= eol; v++)
		if (!strncasecmp(v, token, n))
			return true;
	return false;
}

/* The status line and headers in data[0..end) (end: after the blank line). */
static int parse_head(const char *data, size_t end, struct answer *a)
{
	const char *p = data, *eol, *v, *stop = data + end;
	int minor;

	if (end < 12 || strncmp(p, "HTTP/1.", 7) || !isdigit((unsigned char)p[7]) ||
	    p[8] != ' ')
		return -EPROTO;
	minor = p[7] - '0';
	if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]))
		return -EPROTO;
	a->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (a->status < 100)
		return -EPROTO;
	a->keep_alive = minor >= 1;
	a->chunked = a->has_length = false;
	a->length = 0;
	a->hdr_len = end;
	/* The block ends with an empty line: every memmem() finds one. */
	p = (const char *)memmem(p, (size_t)(stop - p), "\r\n", 2) + 2;
	while (p < stop - 2) {
		eol = memmem(p, (size_t)(stop - p), "\r\n", 2);
		if ((v = header_value(p, eol, "Content-Length"))) {
			const char *d = v;
			size_t l = 0;

			for (; d < eol && isdigit((unsigned char)*d); d++) {
				l = l * 10 + (size_t)(*d - '0');
				if (l > NMH_MAX_RESPONSE)
					return -EMSGSIZE;
			}
			while (d < eol && (*d == ' ' || *d == '\t'))
				d++;
			if (d == v || d != eol)
				return -EPROTO;
			a->has_length = true;
			a->length = l;
		} else if ((v = header_value(p, eol, "Transfer-Encoding"))) {
			a->chunked = value_has(v, eol, "chunked");
		} else if ((v = header_value(p, eol, "Connection"))) {
			if (value_has(v, eol, "close"))
				a->keep_alive = false;
			else if (value_has(v, eol, "keep-alive"))
				a->keep_alive = true;
		}
		p = eol + 2;
	}
	return 0;
}

/*
 * Decode a chunked body in[0..len) into out: 1 when whole, 0 when more is
 * needed (out then holds nothing of it), -EPROTO, -EMSGSIZE, -ENOMEM.
 */
static int dechunk(const char *in, size_t len, struct buf *out)
{
	size_t pos = 0;

	out->len = 0;
	for (;;) {
		const char *eol = memmem(in + pos, len - pos, "\r\n", 2), *p;
		unsigned long long size = 0;

		if (!eol)
			return 0;
		/* Hex digits, then the line's end or a chunk extension. */
		for (p = in + pos; p < eol && isxdigit((unsigned char)*p); p++) {
			if (size > NMH_MAX_RESPONSE)
				return -EMSGSIZE;
			size = size * 16 + (unsigned long long)(isdigit((unsigned char)*p) ?
				*p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
		}
		if (p == in + pos || (p < eol && *p != ';'))
			return -EPROTO;
		pos = (size_t)(eol - in) + 2;
		if (size == 0) {
			/* Trailers, then the blank line. */
			for (;;) {
				eol = memmem(in + pos, len - pos, "\r\n", 2);
				if (!eol)
					return 0;
				if (eol == in + pos)
					return 1;
				pos = (size_t)(eol - in) + 2;
			}
		}
		if (size > NMH_MAX_RESPONSE)
			return -EMSGSIZE;
		if (len - pos < size + 2)
			return 0;
		if (in[pos + size] != '\r' || in[pos + size + 1] != '\n')
			return -EPROTO;
		if (buf_append(out, in + pos, (size_t)size))
			return out->too_big ? -EMSGSIZE : -ENOMEM;
		pos += (size_t)size + 2;
	}
}

int nmh_parse(const char *in, size_t len, bool eof, int *status, bool *keep_alive,
	      struct buf *body)
{
	struct answer a;
	size_t off = 0, blen;
	const char *b, *end;
	int ret;

	for (;;) {
		end = memmem(in + off, len - off, "\r\n\r\n", 4);
		if (!end)
			return eof ? -ECONNRESET : 0;
		ret = parse_head(in + off, (size_t)(end - in - off) + 4, &a);
		if (ret)
			return ret;
		off += a.hdr_len;
		/* 1xx: an interim answer, the real one follows. */
		if (a.status < 100 || a.status >= 200)
			break;
	}
	b = in + off;
	blen = len - off;
	body->len = 0;
	if (a.chunked) {
		ret = dechunk(b, blen, body);
		if (ret == 0 && eof)
			ret = -ECONNRESET;
	} else if (a.has_length) {
		ret = 0;
		if (blen >= a.length)
			ret = buf_append(body, b, a.length) ? (body->too_big ? -EMSGSIZE : -ENOMEM) : 1;
		else if (eof)
			ret = -ECONNRESET;
	} else {
		/* Neither: the body ends with the connection. */
		ret = 0;
		a.keep_alive = false;
		if (eof)
			ret = buf_append(body, b, blen) ? (body->too_big ? -EMSGSIZE : -ENOMEM) : 1;
	}
	if (ret == 1) {
		*status = a.status;
		*keep_alive = a.keep_alive;
	}
	return ret;
}

/*
 * Read one answer. *got: whether any byte came (a kept-alive connection
 * closed by the server before answering may be retried on a new one).
 */
static int read_answer(int fd, int64_t deadline, int *status, bool *keep_alive,
		       struct buf *body, bool *got)
{
	struct buf in = { .max = NMH_MAX_RESPONSE + 65536 };
	char chunk[16384];
	bool eof = false;
	int ret;

	*got = false;
	for (;;) {
		ssize_t n;

		if (in.len || eof) {
			ret = nmh_parse(in.data ? in.data : "", in.len, eof, status, keep_alive,
					body);
			if (ret) {
				ret = ret < 0 ? ret : 0;
				break;
			}
		}
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n > 0) {
			*got = true;
			if (buf_append(&in, chunk, (size_t)n)) {
				ret = in.too_big ? -EMSGSIZE : -ENOMEM;
				break;
			}
			continue;
		}
		if (n == 0) {
			eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			ret = errno == EPIPE ? -ECONNRESET : -errno;
			break;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret)
			break;
	}
	buf_free(&in);
	return ret;
}

int nmh_post(struct nmh *h, const char *path, const char *content_type,
	     const void *body, size_t len, long timeout_ms, int *status, char **resp,
	     size_t *resp_len)
{
	int64_t deadline = sys_now_ms() + timeout_ms;
	struct buf out = { .max = NMH_MAX_RESPONSE };
	bool reused, got, keep_alive = false;
	char head[1024];
	int n, ret, st = 0;

	*resp = NULL;
	*resp_len = 0;
	n = snprintf(head, sizeof(head),
		     "POST %s HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "Content-Type: %s\r\n"
		     "Connect-Protocol-Version: 1\r\n"
		     "Connect-Timeout-Ms: %ld\r\n"
		     "Content-Length: %zu\r\n"
		     "\r\n",
		     path, h->hosthdr, content_type, timeout_ms, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	for (int attempt = 0;; attempt++) {
		reused = h->fd >= 0;
		if (!reused) {
			ret = nmh_connect(h, deadline);
			if (ret)
				return ret;
		}
		ret = send_all(h->fd, head, (size_t)n, deadline);
		if (!ret && len)
			ret = send_all(h->fd, body, len, deadline);
		got = false;
		if (!ret) {
			buf_free(&out);
			out = (struct buf){ .max = NMH_MAX_RESPONSE };
			ret = read_answer(h->fd, deadline, &st, &keep_alive, &out, &got);
		}
		if (!ret)
			break;
		nmh_disconnect(h);
		/* The server closed an idle kept-alive connection (it answered
		 * nothing of this request): once more on a new one. */
		if (reused && !got && attempt == 0 &&
		    (ret == -ECONNRESET || ret == -EPIPE))
			continue;
		buf_free(&out);
		return ret;
	}
	if (!keep_alive)
		nmh_disconnect(h);
	/* Always a string, also for an empty body. */
	if (!out.data && buf_append(&out, "", 0)) {
		nmh_disconnect(h);
		return -ENOMEM;
	}
	*status = st;
	*resp = out.data;
	*resp_len = out.len;
	return 0;
}

/*
 * The cross-platform userspace API (wireguard.com/xplatform) spoken by
 * wireguard-go over /var/run/wireguard/<name>.sock:
 *
 *   set=1\n key=value\n ... \n\n   ->  errno=N\n\n
 *   get=1\n\n                      ->  key=value\n ... errno=N\n\n
 *
 * Keys travel as 64 lowercase hex digits. A "public_key" line opens a peer;
 * the lines after it belong to that peer. errno=N answers become -N.
 */
#include "wg.h"
#include "netdev.h"
#include "wg_uapi.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WG_UAPI_DEFAULT_DIR "/var/run/wireguard"
#define WG_UAPI_IO_TIMEOUT_MS 5000
#define WG_UAPI_LINE_MAX 512
/* A get answer larger than this is not believed (about 100k peers). */
#define WG_UAPI_MAX_REPLY (64u << 20)
#define WG_UAPI_MAX_PEERS 1000000
#define WG_UAPI_MAX_ALLOWEDIPS 1000000

/* The only state: the socket directory, reset by wg_uapi_set_dir(NULL). */
static char uapi_dir[PATH_MAX] = WG_UAPI_DEFAULT_DIR;

void wg_uapi_set_dir(const char *dir)
{
	snprintf(uapi_dir, sizeof(uapi_dir), "%s", dir ? dir : WG_UAPI_DEFAULT_DIR);
}

int wg_uapi_check_name(const char *name)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/') ||
	    !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return 0;
}

static int sock_path(const char *name, struct sockaddr_un *sun)
{
	int n, ret = wg_uapi_check_name(name);

	if (ret < 0)
		return ret;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s.sock", uapi_dir, name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int wg_uapi_sock_path(const char *name, char *buf, size_t len)
{
	struct sockaddr_un sun;
	int ret = sock_path(name, &sun);

	if (ret < 0)
		return ret;
	if (strlen(sun.sun_path) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, sun.sun_path);
	return 0;
}

static int uapi_connect(const char *name)
{
	struct timeval tv = { .tv_sec = WG_UAPI_IO_TIMEOUT_MS / 1000 };
	struct sockaddr_un sun;
	int ret, fd;

	ret = sock_path(name, &sun);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A hung daemon must not hang us: bound every read and write. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		close(fd);
		/* No socket file, or one nobody listens on: no such device. */
		return ret == -ENOENT || ret == -ECONNREFUSED ? -ENODEV : ret;
	}
	return fd;
}

int wg_uapi_listener_pid(const char *name, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = uapi_connect(name), ret = 0;

	if (fd < 0)
		return fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		ret = -errno;
	else if (cred.pid <= 0)
		ret = -ESRCH;
	else
		*pid = cred.pid;
	close(fd);
	return ret;
}

bool wg_uapi_exists(const char *name)
{
	int fd = uapi_connect(name);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int wg_uapi_has_socket(const char *name)
{
	struct sockaddr_un sun;
	struct stat st;
	int ret = sock_path(name, &sun);

	if (ret < 0)
		return ret;
	/* stat, not lstat: whatever connect() would reach. */
	return stat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* --- buffered writer that wipes what passed through it ----------------- */

struct wbuf {
	int fd;
	int err;
	size_t len;
	char buf[4096];
};

static void wbuf_flush(struct wbuf *w)
{
	size_t off = 0;
	ssize_t n;

	while (!w->err && off < w->len) {
		n = send(w->fd, w->buf + off, w->len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			w->err = n < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : -EIO;
		else
			off += (size_t)n;
	}
	sodium_memzero(w->buf, sizeof(w->buf));
	w->len = 0;
}

__attribute__((format(printf, 2, 3)))
static void wbuf_printf(struct wbuf *w, const char *fmt, ...)
{
	char line[WG_UAPI_LINE_MAX];
	va_list ap;
	int n;

	if (w->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		w->err = -EINVAL;
		goto out;
	}
	if (w->len + (size_t)n > sizeof(w->buf))
		wbuf_flush(w);
	memcpy(w->buf + w->len, line, (size_t)n);
	w->len += (size_t)n;
out:
	sodium_memzero(line, sizeof(line));
}

static void wbuf_key(struct wbuf *w, const char *k, const uint8_t key[static WG_KEY_LEN])
{
	char hex[WG_KEY_LEN * 2 + 1];

	sodium_bin2hex(hex, sizeof(hex), key, WG_KEY_LEN);
	wbuf_printf(w, "%s=%s\n", k, hex);
	sodium_memzero(hex, sizeof(hex));
}

/* --- line reader ----------------------------------------------------- */

struct rbuf {
	int fd;
	size_t start, end, total;
	char buf[4096];
};

/* Next line without its '\n' into line; 0, or negative errno (-EPROTO for
 * an over-long line, EOF, or an oversized answer). */
static int rbuf_line(struct rbuf *r, char line[static WG_UAPI_LINE_MAX])
{
	size_t n = 0;
	ssize_t got;

	for (;;) {
		while (r->start < r->end) {
			char c = r->buf[r->start++];

			if (c == '\n') {
				line[n] = '\0';
				return 0;
			}
			if (n + 1 >= WG_UAPI_LINE_MAX)
				return -EPROTO;
			line[n++] = c;
		}
		got = recv(r->fd, r->buf, sizeof(r->buf), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (got == 0)
			return -EPROTO;
		r->total += (size_t)got;
		if (r->total > WG_UAPI_MAX_REPLY)
			return -EPROTO;
		r->start = 0;
		r->end = (size_t)got;
	}
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EPROTO;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EPROTO;
	*out = v;
	return 0;
}

/* "errno=N" -> -N (0 when N is 0). wireguard-go before 2022 wrote the
 * negative value ("errno=-98"); accept both, as wireguard-tools does. */
static int parse_errno(const char *v, int *out)
{
	bool neg = *v == '-';
	uint64_t e;
	int ret = parse_u64(v + neg, 4095, &e);

	if (ret < 0)
		return ret;
	*out = -(int)e;
	return 0;
}

/* Read to the blank line that ends an answer and return its errno. */
static int read_errno_answer(struct rbuf *r)
{
	char line[WG_UAPI_LINE_MAX];
	int ret, err = 1; /* 1: no errno line seen */

	for (;;) {
		ret = rbuf_line(r, line);
		if (ret < 0)
			goto out;
		if (!*line)
			break;
		if (!strncmp(line, "errno=", 6)) {
			ret = parse_errno(line + 6, &err);
			if (ret < 0)
				goto out;
		}
	}
	ret = err == 1 ? -EPROTO : err;
out:
	/* A get answer passes through here too: it holds the private key. */
	sodium_memzero(line, sizeof(line));
	return ret;
}

/* --- set --------------------------------------------------------------- */

static void write_peer(struct wbuf *w, const struct wg_peer *p)
{
	char buf[IPNET_STRLEN];
	size_t i;

	wbuf_key(w, "public_key", p->public_key);
	if (p->flags & WGPEER_REMOVE_ME) {
		wbuf_printf(w, "remove=true\n");
		return;
	}
	if (p->flags & WGPEER_UPDATE_ONLY)
		wbuf_printf(w, "update_only=true\n");
	if (p->flags & WGPEER_HAS_PRESHARED_KEY)
		wbuf_key(w, "preshared_key", p->preshared_key);
	if (p->flags & WGPEER_HAS_ENDPOINT) {
		if (p->endpoint.addr.sa_family != AF_INET &&
		    p->endpoint.addr.sa_family != AF_INET6) {
			w->err = -EAFNOSUPPORT;
			return;
		}
		wbuf_printf(w, "endpoint=%s\n", sockaddr_format(&p->endpoint.addr, buf));
	}
	if (p->flags & WGPEER_HAS_KEEPALIVE)
		wbuf_printf(w, "persistent_keepalive_interval=%u\n", p->keepalive);
	if (p->flags & WGPEER_REPLACE_ALLOWEDIPS)
		wbuf_printf(w, "replace_allowed_ips=true\n");
	for (i = 0; i < p->n_allowedips; i++)
		wbuf_printf(w, "allowed_ip=%s\n", ipnet_format(&p->allowedips[i], buf));
}

int wg_uapi_set(const struct wg_device *dev)
{
	struct wbuf *w;
	struct rbuf *r;
	size_t i;
	int ret, fd;

	if (!dev)
		return -EINVAL;
	ret = uapi_connect(dev->name);
	if (ret < 0)
		return ret;
	fd = ret;
	ret = -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto out_fd;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out_w;
	w->fd = r->fd = fd;

	wbuf_printf(w, "set=1\n");
	if (dev->flags & WGDEVICE_HAS_PRIVATE_KEY)
		wbuf_key(w, "private_key", dev->private_key);
	if (dev->flags & WGDEVICE_HAS_LISTEN_PORT)
		wbuf_printf(w, "listen_port=%u\n", dev->listen_port);
	if (dev->flags & WGDEVICE_HAS_FWMARK)
		wbuf_printf(w, "fwmark=%u\n", dev->fwmark);
	if (dev->flags & WGDEVICE_REPLACE_PEERS)
		wbuf_printf(w, "replace_peers=true\n");
	for (i = 0; i < dev->n_peers; i++)
		write_peer(w, &dev->peers[i]);
	wbuf_printf(w, "\n");
	wbuf_flush(w);
	ret = w->err;
	if (ret < 0)
		goto out_r;
	ret = read_errno_answer(r);
out_r:
	free(r);
out_w:
	sodium_memzero(w, sizeof(*w));
	free(w);
out_fd:
	close(fd);
	return ret;
}

/* --- get --------------------------------------------------------------- */

static int parse_key(const char *hex, uint8_t key[static WG_KEY_LEN])
{
	size_t len;

	if (strlen(hex) != WG_KEY_LEN * 2 ||
	    sodium_hex2bin(key, WG_KEY_LEN, hex, WG_KEY_LEN * 2, NULL, &len, NULL) < 0 ||
	    len != WG_KEY_LEN)
		return -EPROTO;
	return 0;
}

typedef int (*dev_attr_fn)(struct wg_device *dev, const char *v);
typedef int (*peer_attr_fn)(struct wg_peer *p, const char *v);

static int dev_private_key(struct wg_device *dev, const char *v)
{
	int ret = parse_key(v, dev->private_key);

	if (ret < 0)
		return ret;
	if (sodium_is_zero(dev->private_key, WG_KEY_LEN))
		return 0;
	dev->flags |= WGDEVICE_HAS_PRIVATE_KEY;
	/* UAPI has no public_key for the device: derive it as wg(8) does. */
	if (crypto_scalarmult_curve25519_base(dev->public_key, dev->private_key) == 0)
		dev->flags |= WGDEVICE_HAS_PUBLIC_KEY;
	return 0;
}

static int dev_listen_port(struct wg_device *dev, const char *v)
{
	uint64_t n;
	int ret = parse_u64(v, UINT16_MAX, &n);

	if (ret < 0)
		return ret;
	dev->listen_port = (uint16_t)n;
	dev->flags |= WGDEVICE_HAS_LISTEN_PORT;
	return 0;
}

static int dev_fwmark(struct wg_device *dev, const char *v)
{
	uint64_t n;
	int ret = parse_u64(v, UINT32_MAX, &n);

	if (ret < 0)
		return ret;
	dev->fwmark = (uint32_t)n;
	dev->flags |= WGDEVICE_HAS_FWMARK;
	return 0;
}

static int peer_preshared_key(struct wg_peer *p, const char *v)
{
	int ret = parse_key(v, p->preshared_key);

	if (ret == 0 && !sodium_is_zero(p->preshared_key, WG_KEY_LEN))
		p->flags |= WGPEER_HAS_PRESHARED_KEY;
	return ret;
}

static int peer_endpoint(struct wg_peer *p, const char *v)
{
	return wg_peer_set_endpoint(p, v, NULL, 0) < 0 ? -EPROTO : 0;
}

static int peer_keepalive(struct wg_peer *p, const char *v)
{
	uint64_t n;
	int ret = parse_u64(v, UINT16_MAX, &n);

	if (ret < 0)
		return ret;
	p->keepalive = (uint16_t)n;
	p->flags |= WGPEER_HAS_KEEPALIVE;
	return 0;
}

static int peer_hs_sec(struct wg_peer *p, const char *v)
{
	uint64_t n;
	int ret = parse_u64(v, INT64_MAX, &n);

	p->last_handshake.tv_sec = (time_t)n;
	return ret;
}

static int peer_hs_nsec(struct wg_peer *p, const char *v)
{
	uint64_t n;
	int ret = parse_u64(v, 999999999, &n);

	p->last_handshake.tv_nsec = (long)n;
	return ret;
}

static int peer_rx(struct wg_peer *p, const char *v)
{
	return parse_u64(v, UINT64_MAX, &p->rx_bytes);
}

static int peer_tx(struct wg_peer *p, const char *v)
{
	return parse_u64(v, UINT64_MAX, &p->tx_bytes);
}

static int peer_allowed_ip(struct wg_peer *p, const char *v)
{
	struct ipnet net;

	if (p->n_allowedips >= WG_UAPI_MAX_ALLOWEDIPS || ipnet_parse(v, &net, false) < 0)
		return -EPROTO;
	return wg_peer_add_allowedip(p, &net);
}

static int ignore_peer(struct wg_peer *p, const char *v)
{
	return 0;
}

static const struct {
	const char *key;
	dev_attr_fn fn;
} dev_attrs[] = {
	{ "private_key", dev_private_key },
	{ "listen_port", dev_listen_port },
	{ "fwmark", dev_fwmark },
};

static const struct {
	const char *key;
	peer_attr_fn fn;
} peer_attrs[] = {
	{ "preshared_key", peer_preshared_key },
	{ "endpoint", peer_endpoint },
	{ "persistent_keepalive_interval", peer_keepalive },
	{ "last_handshake_time_sec", peer_hs_sec },
	{ "last_handshake_time_nsec", peer_hs_nsec },
	{ "rx_bytes", peer_rx },
	{ "tx_bytes", peer_tx },
	{ "allowed_ip", peer_allowed_ip },
	{ "protocol_version", ignore_peer },
};

static int add_peer(struct wg_device *dev, const char *hex)
{
	struct wg_peer *peer;
	int ret;

	if (dev->n_peers >= WG_UAPI_MAX_PEERS)
		return -EPROTO;
	peer = wg_device_add_peer(dev);
	if (!peer)
		return -ENOMEM;
	ret = parse_key(hex, peer->public_key);
	if (ret < 0)
		dev->n_peers--; /* not a peer: take it back */
	return ret;
}

/* One "key=value" line of a get answer. Unknown keys are skipped, as new
 * daemons may add some. */
static int get_line(struct wg_device *dev, char *line, int *err)
{
	char *v = strchr(line, '=');
	size_t i;

	if (!v)
		return -EPROTO;
	*v++ = '\0';
	if (!strcmp(line, "errno"))
		return parse_errno(v, err);
	if (!strcmp(line, "public_key"))
		return add_peer(dev, v);
	if (dev->n_peers) {
		for (i = 0; i < sizeof(peer_attrs) / sizeof(peer_attrs[0]); i++)
			if (!strcmp(line, peer_attrs[i].key))
				return peer_attrs[i].fn(&dev->peers[dev->n_peers - 1], v);
	} else {
		for (i = 0; i < sizeof(dev_attrs) / sizeof(dev_attrs[0]); i++)
			if (!strcmp(line, dev_attrs[i].key))
				return dev_attrs[i].fn(dev, v);
	}
	return 0;
}

int wg_uapi_get(const char *name, struct wg_device **out)
{
	char line[WG_UAPI_LINE_MAX];
	struct wg_device *dev;
	struct rbuf *r;
	int ret, fd, err = 1;
	ssize_t n;

	if (!out)
		return -EINVAL;
	ret = uapi_connect(name);
	if (ret < 0)
		return ret;
	fd = ret;
	ret = -ENOMEM;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		goto out_fd;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto err_dev;
	r->fd = fd;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	ret = netdev_index(name);
	/* The link may live in another namespace (a container's). */
	dev->ifindex = ret > 0 ? (uint32_t)ret : 0;

	n = send(fd, "get=1\n\n", 7, MSG_NOSIGNAL);
	if (n != 7) {
		ret = n < 0 ? -errno : -EIO;
		goto err_r;
	}
	for (;;) {
		ret = rbuf_line(r, line);
		if (ret < 0)
			goto err_r;
		if (!*line)
			break;
		ret = get_line(dev, line, &err);
		if (ret < 0)
			goto err_r;
	}
	ret = err == 1 ? -EPROTO : err;
	if (ret < 0)
		goto err_r;
	*out = dev;
	goto out_r;

err_r:
	wg_device_free(dev);
	dev = NULL;
out_r:
	sodium_memzero(line, sizeof(line));
	sodium_memzero(r, sizeof(*r));
	free(r);
	goto out_fd;
err_dev:
	free(dev);
out_fd:
	close(fd);
	return ret;
}

/* --- readiness, for create ---------------------------------------------- */

int wg_uapi_ready(const char *name, long ms)
{
	struct timeval tv;
	struct rbuf *r;
	int ret, fd;

	if (ms <= 0)
		return -ETIMEDOUT;
	if (ms > WG_UAPI_IO_TIMEOUT_MS)
		ms = WG_UAPI_IO_TIMEOUT_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	ret = uapi_connect(name);
	if (ret < 0)
		return ret;
	fd = ret;
	ret = -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out_fd;
	r->fd = fd;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		ret = -errno;
		goto out_r;
	}
	if (send(fd, "get=1\n\n", 7, MSG_NOSIGNAL) != 7) {
		ret = -EIO;
		goto out_r;
	}
	ret = read_errno_answer(r);
out_r:
	/* The answer held the private key. */
	sodium_memzero(r, sizeof(*r));
	free(r);
out_fd:
	close(fd);
	return ret;
}

#include "connect_priv.h"

#include "ipnet.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Listeners: a bound, listening socket (TCP, TCP with TLS, or unix) and an
 * MHD daemon of its own without a listening socket: the server's loop
 * watches both the socket and the daemon's epoll fd, accepts in batches and
 * hands each connection to the daemon (see connect_priv.h for why).
 */

static void connect_free_pem(char *cert, char *key)
{
	if (key)
		sodium_memzero(key, strlen(key));
	free(key);
	free(cert);
}

static int connect_listen_arm(struct connect_server *srv, size_t i, bool on)
{
	struct connect_listener *l = &srv->listeners[i];
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = CONNECT_EV_LISTEN | i };

	if (l->armed == on)
		return 0;
	if (epoll_ctl(srv->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) < 0)
		return -errno;
	l->armed = on;
	return 0;
}

static unsigned int connect_listen_count(const struct connect_listener *l)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info ? info->num_connections : 0;
}

void connect_listen_accept(struct connect_server *srv, size_t i)
{
	struct connect_listener *l = &srv->listeners[i];
	unsigned int have = connect_listen_count(l);

	for (unsigned int n = 0; n < CONNECT_ACCEPT_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		if (have >= srv->conn_limit) {
			/* Full: the rest wait in the backlog until one closes. */
			connect_listen_arm(srv, i, false);
			return;
		}
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			/* EMFILE, ENOBUFS and the like: the socket stays readable,
			 * so pause rather than spin (and log) every turn. */
			log_warn("cannot accept connections, pausing", "connections=%u pause_ms=%u",
				 have, CONNECT_ACCEPT_PAUSE_MS);
			l->rearm_ms = (uint64_t)sys_now_ms() + CONNECT_ACCEPT_PAUSE_MS;
			connect_listen_arm(srv, i, false);
			return;
		}
		/* MHD closes the socket when it cannot take it, and says why. */
		if (MHD_add_connection(l->daemon, fd, (struct sockaddr *)&ss, len) == MHD_YES)
			have++;
	}
}

void connect_listen_rearm(struct connect_server *srv)
{
	uint64_t now = 0;

	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct connect_listener *l = &srv->listeners[i];

		if (l->armed)
			continue;
		if (l->rearm_ms) {
			now = now ? now : (uint64_t)sys_now_ms();
			if (now < l->rearm_ms)
				continue;
			l->rearm_ms = 0;
		}
		if (connect_listen_count(l) < srv->conn_limit)
			connect_listen_arm(srv, i, true);
	}
}

/* A new MHD daemon serving a bound, listening socket (takes fd, and cert
 * and key when not NULL: then it serves HTTPS). */
static int connect_add_listener(struct connect_server *srv, int fd, bool tcp,
				uint16_t port, const char *path, char *cert, char *key)
{
	struct MHD_OptionItem tls[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, key },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct connect_listener *ls, *l;
	const union MHD_DaemonInfo *info;
	int ret;

	ret = -ENOMEM;
	ls = reallocarray(srv->listeners, srv->n_listeners + 1, sizeof(*ls));
	if (!ls)
		goto err_close;
	srv->listeners = ls;
	l = &srv->listeners[srv->n_listeners];
	*l = (struct connect_listener){ .srv = srv, .fd = fd, .tcp = tcp, .port = port,
					.cert = cert, .key = key };
	if (path) {
		l->path = strdup(path);
		if (!l->path)
			goto err_close;
	}

	ret = -EIO;
	l->daemon = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME |
			MHD_USE_ERROR_LOG | (cert ? MHD_USE_TLS : 0),
		0, NULL, NULL, connect_route_access, srv,
		MHD_OPTION_ARRAY, cert ? tls : &tls[2],
		MHD_OPTION_NOTIFY_COMPLETED, connect_route_completed, srv,
		MHD_OPTION_CONNECTION_LIMIT, srv->conn_limit,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECT_IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECT_CONN_MEMORY,
		MHD_OPTION_EXTERNAL_LOGGER, connect_route_log, srv,
		MHD_OPTION_END);
	if (!l->daemon) {
		log_warnx("cannot start the HTTP server", "tls=%s", cert ? "yes" : "no");
		goto err_free_path;
	}
	info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		goto err_stop;
	l->epoll_fd = info->epoll_fd;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, l->epoll_fd,
		      &(struct epoll_event){ .events = EPOLLIN,
					     .data.u64 = srv->n_listeners + 1 }) < 0) {
		ret = -errno;
		goto err_stop;
	}
	ret = connect_listen_arm(srv, srv->n_listeners, true);
	if (ret < 0)
		goto err_unwatch;
	srv->n_listeners++;
	return 0;

err_unwatch:
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, l->epoll_fd, NULL);
err_stop:
	MHD_stop_daemon(l->daemon);
err_free_path:
	free(l->path);
err_close:
	close(fd);
	connect_free_pem(cert, key);
	return ret;
}

/* Takes cert and key (may be NULL). */
static int connect_listen_tcp(struct connect_server *srv, const char *addr,
			      char *cert, char *key)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct addrinfo *ai;
	struct endpoint ep;
	struct ipaddr ip;
	char why[128], port[8];
	uint16_t bound;
	int fd, ret, one = 1;

	ret = -EINVAL;
	if (endpoint_parse_bind(addr, &ep, why, sizeof(why)) < 0) {
		log_warnx("cannot parse listen address", "addr=%s err=%s", addr, why);
		goto err_free_pem;
	}
	/* The server binds what it is given, it resolves no names. */
	if (ipaddr_parse(ep.host, &ip) < 0) {
		log_warnx("cannot parse listen address", "addr=%s err=%s", addr,
			  "the host must be an IP address");
		goto err_free_pem;
	}
	snprintf(port, sizeof(port), "%u", ep.port);
	ret = getaddrinfo(ep.host, port, &hints, &ai);
	if (ret) {
		log_warnx("cannot parse listen address", "addr=%s err=%s", addr,
			  gai_strerror(ret));
		ret = -EINVAL;
		goto err_free_pem;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto err_free_ai;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		ret = -errno;
		log_warn("cannot listen", "addr=%s", addr);
		goto err_close;
	}
	bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return connect_add_listener(srv, fd, true, bound, NULL, cert, key);

err_close:
	close(fd);
err_free_ai:
	freeaddrinfo(ai);
err_free_pem:
	connect_free_pem(cert, key);
	return ret;
}

int connect_server_listen_tcp(struct connect_server *srv, const char *addr)
{
	return connect_listen_tcp(srv, addr, NULL, NULL);
}

/* A whole PEM file as a string (malloc'd), bounded. */
static int connect_read_pem(const char *path, char **out)
{
	enum { PEM_MAX = 256 * 1024 };
	char *buf;
	size_t len;
	FILE *f;
	int ret;

	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		log_warn("cannot open PEM file", "path=%s", path);
		return ret;
	}
	ret = -ENOMEM;
	buf = malloc(PEM_MAX + 1);
	if (!buf)
		goto err_close;
	len = fread(buf, 1, PEM_MAX + 1, f);
	ret = -EINVAL;
	if (ferror(f) || len == 0 || len > PEM_MAX || memchr(buf, '\0', len)) {
		log_warnx("cannot read PEM file", "path=%s", path);
		goto err_free;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	return 0;

err_free:
	sodium_memzero(buf, PEM_MAX + 1);
	free(buf);
err_close:
	fclose(f);
	return ret;
}

int connect_server_listen_tls(struct connect_server *srv, const char *addr,
			      const char *cert_file, const char *key_file)
{
	char *cert = NULL, *key = NULL;
	int ret;

	ret = -ENOTSUP;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		log_warnx("libmicrohttpd has no TLS support", NULL);
		return ret;
	}
	ret = connect_read_pem(cert_file, &cert);
	if (ret)
		return ret;
	ret = connect_read_pem(key_file, &key);
	if (ret) {
		free(cert);
		return ret;
	}
	return connect_listen_tcp(srv, addr, cert, key);
}

int connect_server_listen_metrics(struct connect_server *srv, const char *addr)
{
	int ret = connect_listen_tcp(srv, addr, NULL, NULL);

	if (ret == 0)
		srv->listeners[srv->n_listeners - 1].metrics_only = true;
	return ret;
}

int connect_server_listen_unix(struct connect_server *srv, const char *path, mode_t mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_un tmp = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	ret = -ENAMETOOLONG;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("unix socket path too long", "path=%s", path);
		return ret;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* Only a stale socket may be replaced, never another kind of file. */
	ret = -EEXIST;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		log_warnx("refusing to replace a non-socket", "path=%s", path);
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bind under a temporary name, chmod, then rename into place, so the
	 * socket is never reachable with looser permissions. */
	if ((size_t)snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d", path,
			     (int)getpid()) >= sizeof(tmp.sun_path)) {
		ret = -ENAMETOOLONG;
		log_warnx("unix socket path too long for a temporary name", "path=%s", path);
		goto err_close;
	}
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0) {
		ret = -errno;
		log_warn("cannot bind unix socket", "path=%s", tmp.sun_path);
		goto err_close;
	}
	if (chmod(tmp.sun_path, mode) < 0 ||
	    (strcmp(tmp.sun_path, path) && rename(tmp.sun_path, path) < 0) ||
	    listen(fd, 4096) < 0) {
		ret = -errno;
		log_warn("cannot set up unix socket", "path=%s", path);
		goto err_unlink;
	}
	return connect_add_listener(srv, fd, false, 0, path, NULL, NULL);

err_unlink:
	unlink(tmp.sun_path);
err_close:
	close(fd);
	return ret;
}

uint16_t connect_server_port(const struct connect_server *srv, size_t n)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		if (srv->listeners[i].tcp && n-- == 0)
			return srv->listeners[i].port;
	return 0;
}

void connect_listen_close(struct connect_listener *l)
{
	/* Closing the socket also takes it out of the server's epoll set. */
	close(l->fd);
	l->fd = -1;
	l->armed = false;
	MHD_stop_daemon(l->daemon);
	if (l->path)
		unlink(l->path);
	free(l->path);
	connect_free_pem(l->cert, l->key);
}

#include "connect_priv.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

/*
 * The server's life (new, token, free), its deferred calls (a min-heap on
 * the deadline, woken all at once or when due) and the event loop.
 */

/* ---- deferred calls: a min-heap on the deadline ------------------------- */

static void connect_heap_swap(struct connect_server *srv, size_t a, size_t b)
{
	struct connect_call *t = srv->heap[a];

	srv->heap[a] = srv->heap[b];
	srv->heap[b] = t;
}

static int connect_heap_push(struct connect_server *srv, struct connect_call *call)
{
	size_t i;

	if (srv->n_heap == srv->cap_heap) {
		size_t cap = srv->cap_heap ? srv->cap_heap * 2 : 64;
		struct connect_call **heap = reallocarray(srv->heap, cap, sizeof(*heap));

		if (!heap)
			return -ENOMEM;
		srv->heap = heap;
		srv->cap_heap = cap;
	}
	i = srv->n_heap++;
	srv->heap[i] = call;
	while (i && srv->heap[(i - 1) / 2]->deadline_ms > srv->heap[i]->deadline_ms) {
		connect_heap_swap(srv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	atomic_store(&srv->n_deferred, srv->n_heap);
	return 0;
}

static struct connect_call *connect_heap_pop(struct connect_server *srv)
{
	struct connect_call *top;
	size_t i = 0;

	if (!srv->n_heap)
		return NULL;
	top = srv->heap[0];
	srv->heap[0] = srv->heap[--srv->n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < srv->n_heap && srv->heap[l]->deadline_ms < srv->heap[m]->deadline_ms)
			m = l;
		if (r < srv->n_heap && srv->heap[r]->deadline_ms < srv->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			break;
		connect_heap_swap(srv, i, m);
		i = m;
	}
	atomic_store(&srv->n_deferred, srv->n_heap);
	return top;
}

static void connect_resume(struct connect_call *call, bool expired)
{
	call->expired = expired;
	call->state = CALL_READY;
	MHD_resume_connection(call->conn);
}

size_t connect_server_deferred(const struct connect_server *srv)
{
	return atomic_load(&((struct connect_server *)srv)->n_deferred);
}

void connect_server_wake(struct connect_server *srv)
{
	uint64_t one = 1;
	ssize_t n;

	/* Only write(2): callable from a signal handler. EAGAIN means the
	 * counter is saturated, i.e. a wake is pending anyway. */
	n = write(srv->wakefd, &one, sizeof(one));
	(void)n;
}

int connect_server_suspend(struct connect_server *srv, struct connect_call *call)
{
	int ret;

	ret = connect_heap_push(srv, call);
	if (ret < 0)
		return ret;
	MHD_suspend_connection(call->conn);
	return 0;
}

/* ---- the server's life --------------------------------------------------- */

struct connect_server *connect_server_new(const struct connect_server_config *cfg)
{
	struct connect_server *srv;
	struct rlimit rl;
	int ret;

	ret = -EINVAL;
	if (!cfg || (cfg->n_methods && !cfg->methods))
		goto err;
	if (sodium_init() < 0)
		goto err;
	ret = -ENOMEM;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		goto err;
	srv->methods = cfg->methods;
	srv->n_methods = cfg->n_methods;
	srv->ctx = cfg->ctx;
	srv->metrics = cfg->metrics;
	srv->healthz = cfg->healthz;
	srv->after_run = cfg->after_run;
	srv->epfd = srv->wakefd = -1;
	atomic_init(&srv->n_deferred, 0);
	connect_server_set_token(srv, cfg->token);
	srv->requests = calloc(srv->n_methods ? srv->n_methods : 1,
			       CONNECT_CODE_COUNT * sizeof(*srv->requests));
	if (!srv->requests)
		goto err_free_srv;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0) {
		ret = -errno;
		goto err_free_requests;
	}
	srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->wakefd < 0) {
		ret = -errno;
		goto err_close_epfd;
	}
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wakefd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = 0 }) < 0) {
		ret = -errno;
		goto err_close_wakefd;
	}

	/* Every waiting long poll holds a socket: use all the descriptors the
	 * hard limit allows. */
	srv->conn_limit = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				log_warn("cannot raise the open file limit", NULL);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > CONNECT_MAX_CONNECTIONS + 64)
			srv->conn_limit = CONNECT_MAX_CONNECTIONS;
		else if (rl.rlim_cur > 1024 + 64)
			srv->conn_limit = (unsigned int)rl.rlim_cur - 64;
	}
	return srv;

err_close_wakefd:
	close(srv->wakefd);
err_close_epfd:
	close(srv->epfd);
err_free_requests:
	free(srv->requests);
err_free_srv:
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	free(srv);
err:
	errno = -ret;
	return NULL;
}

int connect_server_set_token(struct connect_server *srv, const char *token)
{
	/* Only a digest is kept: the token itself is not held in memory. */
	srv->has_token = token != NULL;
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	if (token)
		crypto_generichash(srv->token_hash, sizeof(srv->token_hash),
				   (const unsigned char *)token, strlen(token), NULL, 0);
	return 0;
}

/* ---- the event loop ------------------------------------------------------ */

static void connect_run_daemons(struct connect_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		MHD_run(srv->listeners[i].daemon);
}

static int connect_next_timeout(struct connect_server *srv)
{
	uint64_t now = ((uint64_t)sys_now_ms()), t = CONNECT_POLL_MS;
	MHD_UNSIGNED_LONG_LONG mt;

	for (size_t i = 0; i < srv->n_listeners; i++)
		if (MHD_get_timeout(srv->listeners[i].daemon, &mt) == MHD_YES && mt < t)
			t = mt;
	if (srv->n_heap)
		t = srv->heap[0]->deadline_ms <= now ? 0 :
		    (srv->heap[0]->deadline_ms - now < t ? srv->heap[0]->deadline_ms - now : t);
	return (int)t;
}

static void connect_wake_all(struct connect_server *srv)
{
	struct connect_call *call;

	while ((call = connect_heap_pop(srv)))
		connect_resume(call, false);
}

static void connect_expire(struct connect_server *srv)
{
	uint64_t now = ((uint64_t)sys_now_ms());

	while (srv->n_heap && srv->heap[0]->deadline_ms <= now)
		connect_resume(connect_heap_pop(srv), true);
}

int connect_server_add_fd(struct connect_server *srv, int fd, void (*cb)(void *ctx), void *ctx)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = CONNECT_EV_USER };

	if (srv->user_cb)
		return -EBUSY;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	srv->user_cb = cb;
	srv->user_ctx = ctx;
	return 0;
}

int connect_server_run(struct connect_server *srv, volatile sig_atomic_t *stop)
{
	struct epoll_event ev[32];
	uint64_t count;
	int n;

	if (!srv->n_listeners)
		return -EINVAL;
	connect_run_daemons(srv);
	while (!*stop) {
		n = epoll_wait(srv->epfd, ev, sizeof(ev) / sizeof(ev[0]),
			       connect_next_timeout(srv));
		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;

			if (tag == 0 &&
			    read(srv->wakefd, &count, sizeof(count)) == sizeof(count))
				connect_wake_all(srv);
			else if (tag == CONNECT_EV_USER)
				srv->user_cb(srv->user_ctx);
			else if (tag & CONNECT_EV_LISTEN &&
				 (tag & ~CONNECT_EV_LISTEN) < srv->n_listeners)
				connect_listen_accept(srv, (size_t)(tag & ~CONNECT_EV_LISTEN));
		}
		connect_expire(srv);
		/* MHD's own epoll is non-blocking inside MHD_run: running every
		 * daemon each turn also serves the connections just resumed and
		 * just accepted. */
		connect_run_daemons(srv);
		connect_listen_rearm(srv);
		if (srv->after_run) {
			int ret = srv->after_run(srv->ctx);

			if (ret < 0)
				return ret;
		}
		if (srv->released) {
			srv->released = false;
			connect_run_daemons(srv);
		}
	}
	return 0;
}

void connect_server_free(struct connect_server *srv)
{
	if (!srv)
		return;
	/* MHD cannot stop with suspended connections: answer them first. */
	srv->stopping = true;
	connect_server_release(srv, false);
	connect_wake_all(srv);
	for (int i = 0; i < 3; i++)
		connect_run_daemons(srv);
	for (size_t i = 0; i < srv->n_listeners; i++)
		connect_listen_close(&srv->listeners[i]);
	free(srv->listeners);
	free(srv->heap);
	free(srv->held);
	free(srv->requests);
	close(srv->wakefd);
	close(srv->epfd);
	sodium_memzero(srv->token_hash, sizeof(srv->token_hash));
	free(srv);
}

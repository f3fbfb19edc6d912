/*
 * The Connect server accepts a burst of connections in few loop turns: the
 * loop is held (its after_run hook waits on a gate) while a client opens
 * 500 connections on loopback and sends a request on each; once the gate
 * opens all must be answered within a bound of turns and of time. MHD
 * 0.9.75 left to accept by itself takes at most 10 a turn (50 turns here;
 * the bound is 10).
 * The same for a unix socket listener. And at the connection limit the
 * connections over it wait in the backlog, none is dropped.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "connect.h"
#include "log.h"

enum { N_BURST = 500, MAX_TURNS = 10, BOUND_MS = 10000 };

static struct connect_server *srv;
static pthread_t srv_thread;
static volatile sig_atomic_t srv_stop;
static atomic_int gate_closed, held;
static atomic_ulong turns;
static char tmpdir[64], sock_path[96];
static int srv_ret;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Once per loop turn; holds the loop (bounded) while the gate is closed. */
static int after_run(void *ctx)
{
	struct timespec ts = { 0, 1000 * 1000 };

	atomic_fetch_add(&turns, 1);
	for (int i = 0; i < 10000 && atomic_load(&gate_closed); i++) {
		atomic_store(&held, 1);
		nanosleep(&ts, NULL);
	}
	atomic_store(&held, 0);
	return 0;
}

static void *srv_main(void *arg)
{
	srv_ret = connect_server_run(srv, &srv_stop);
	return NULL;
}

static int setup(void **state)
{
	const struct connect_server_config cfg = { .after_run = after_run };

	srv_stop = 0;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_connect_accept.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", tmpdir);
	srv = connect_server_new(&cfg);
	if (!srv)
		return -1;
	if (connect_server_listen_tcp(srv, "127.0.0.1:0") < 0 ||
	    connect_server_listen_unix(srv, sock_path, 0600) < 0)
		return -1;
	return pthread_create(&srv_thread, NULL, srv_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	atomic_store(&gate_closed, 0);
	if (srv) {
		srv_stop = 1;
		connect_server_wake(srv);
		pthread_join(srv_thread, NULL);
		connect_server_free(srv);
		srv = NULL;
	}
	rmdir(tmpdir);
	return srv_ret;
}

static int connect_to(bool tcp)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(connect_server_port(srv, 0)) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	ret = tcp ? connect(fd, (struct sockaddr *)&sin, sizeof(sin)) :
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (ret < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* n connections opened and a request written on each while the loop is
 * held; then all answered 200 within MAX_TURNS turns and BOUND_MS. */
static void burst(bool tcp, int n)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: test\r\n"
				  "Connection: close\r\n\r\n";
	static struct pollfd pfd[N_BURST];
	static char got[N_BURST][16];
	static size_t got_len[N_BURST];
	unsigned long turns0, used;
	uint64_t start;
	int open_ = 0, ok = 0;

	atomic_store(&gate_closed, 1);
	connect_server_wake(srv);
	for (int i = 0; i < 2000 && !atomic_load(&held); i++)
		usleep(1000);
	assert_true(atomic_load(&held));

	for (int i = 0; i < n; i++) {
		pfd[i].fd = connect_to(tcp);
		assert_true(pfd[i].fd >= 0);
		assert_int_equal(write(pfd[i].fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
		pfd[i].events = POLLIN;
		got_len[i] = 0;
		open_++;
	}
	turns0 = atomic_load(&turns);
	start = now_ms();
	atomic_store(&gate_closed, 0);

	while (open_ && now_ms() - start < BOUND_MS) {
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			char buf[512];
			ssize_t r;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pfd[i].fd, buf, sizeof(buf));
			if (r > 0) {
				size_t take = (size_t)r;

				if (take > sizeof(got[i]) - got_len[i])
					take = sizeof(got[i]) - got_len[i];
				memcpy(got[i] + got_len[i], buf, take);
				got_len[i] += take;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			/* EOF (Connection: close) or an error: done with it. */
			if (got_len[i] >= 12 && !memcmp(got[i], "HTTP/1.1 200", 12))
				ok++;
			close(pfd[i].fd);
			pfd[i].fd = -1;
			open_--;
		}
	}
	used = atomic_load(&turns) - turns0;
	for (int i = 0; i < n; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	print_message("%s: %d of %d answered in %lu turns, %llu ms\n", tcp ? "tcp" : "unix", ok,
		      n, used, (unsigned long long)(now_ms() - start));
	assert_int_equal(open_, 0);
	assert_int_equal(ok, n);
	assert_true(used <= MAX_TURNS);
}

/*
 * The connection limit holds: a server in a child process whose descriptor
 * limit makes its connection limit 1036 gets 1036 idle connections, then 50
 * more with a request each (Connection: close), then the first ones'
 * requests. Those over the limit wait in the backlog and are served as the
 * first ones close; none is dropped (MHD_add_connection over the limit
 * would close them unanswered).
 */
enum { LIMIT_FDS = 1100, LIMIT_CONNS = LIMIT_FDS - 64, N_OVER = LIMIT_CONNS + 50 };

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
	child_stop = 1;
}

static int limit_child(int wfd)
{
	struct rlimit rl = { LIMIT_FDS, LIMIT_FDS };
	struct connect_server *s;
	uint16_t port;

	signal(SIGTERM, on_term);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 2;
	s = connect_server_new(&(struct connect_server_config){ 0 });
	if (!s || connect_server_listen_tcp(s, "127.0.0.1:0") < 0)
		return 3;
	port = connect_server_port(s, 0);
	if (write(wfd, &port, sizeof(port)) != sizeof(port))
		return 4;
	close(wfd);
	connect_server_run(s, &child_stop);
	connect_server_free(s);
	return 0;
}

static void test_limit_backlog(void **state)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: test\r\n"
				  "Connection: close\r\n\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET };
	static struct pollfd pfd[N_OVER];
	static char got[N_OVER][16];
	static size_t got_len[N_OVER];
	int fds[2], status = -1, open_ = 0, ok = 0;
	struct rlimit rl;
	uint16_t port = 0;
	uint64_t start;
	pid_t pid;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < N_OVER + 64)
		skip();
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(limit_child(fds[1]));
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	close(fds[0]);
	sin.sin_port = htons(port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);

	/* The first LIMIT_CONNS idle (they fill the server), the rest with
	 * their request at once; then the first ones' requests. */
	for (int i = 0; i < N_OVER; i++) {
		pfd[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(pfd[i].fd >= 0);
		assert_int_equal(connect(pfd[i].fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		if (i >= LIMIT_CONNS)
			assert_int_equal(write(pfd[i].fd, req, sizeof(req) - 1),
					 (ssize_t)sizeof(req) - 1);
		pfd[i].events = POLLIN;
		got_len[i] = 0;
		open_++;
	}
	for (int i = 0; i < LIMIT_CONNS; i++)
		assert_int_equal(write(pfd[i].fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	start = now_ms();
	while (open_ && now_ms() - start < BOUND_MS) {
		if (poll(pfd, N_OVER, 100) <= 0)
			continue;
		for (int i = 0; i < N_OVER; i++) {
			char buf[512];
			ssize_t r;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pfd[i].fd, buf, sizeof(buf));
			if (r > 0) {
				size_t take = (size_t)r;

				if (take > sizeof(got[i]) - got_len[i])
					take = sizeof(got[i]) - got_len[i];
				memcpy(got[i] + got_len[i], buf, take);
				got_len[i] += take;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			if (got_len[i] >= 12 && !memcmp(got[i], "HTTP/1.1 200", 12))
				ok++;
			close(pfd[i].fd);
			pfd[i].fd = -1;
			open_--;
		}
	}
	for (int i = 0; i < N_OVER; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	print_message("limit: %d of %d answered, %llu ms\n", ok, N_OVER,
		      (unsigned long long)(now_ms() - start));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(open_, 0);
	assert_int_equal(ok, N_OVER);
}

static void test_burst_tcp(void **state)
{
	burst(true, N_BURST);
}

static void test_burst_unix(void **state)
{
	burst(false, 300);
}

int main(void)
{
	/* The fork comes first, before the server thread of the others. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_backlog),
		cmocka_unit_test_setup_teardown(test_burst_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst_unix, setup, teardown),
	};

	log_init("test_connect_accept", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * wgcni-cluster-sim: see sim.h. Phases, each reported as one line of
 * key=value figures on stdout:
 *   cold    all nodes start at once (at most --window connections not yet
 *           answered, default 2048: the daemon's accept backlog is 4096);
 *           ends when every node holds all others.
 *   settle  (not timed) until the daemon's gauge of waiting calls
 *           (wgcni_watchers, or wgcni_long_polls for ListPeers) shows every
 *           node waiting.
 *   change  one node's key rotates (RegisterKey on a separate connection);
 *           ends when every other node holds the new key.
 * Exit status 0 only if every phase completed without an error.
 */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SIM_EVENTS 1024

uint64_t sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sim_now_ms(void)
{
	return sim_now_ns() / 1000000u;
}

void sim_error(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->first_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
	va_end(ap);
}

int sim_name_index(const struct sim *s, const char *name, size_t len)
{
	uint32_t v = 0;

	if (len != SIM_NAME_LEN || memcmp(name, "node-", 5))
		return -1;
	for (size_t i = 5; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(name[i] - '0');
	}
	return v < s->n ? (int)v : -1;
}

/* ---- figures ------------------------------------------------------------ */

static double sim_cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* /proc/PID/file of the daemon, or NULL. */
static FILE *sim_daemon_proc(pid_t pid, const char *file)
{
	char path[64];

	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return fopen(path, "r");
}

/* utime + stime of the daemon in seconds, or -1. */
static double sim_cpu_daemon(pid_t pid)
{
	char buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	f = sim_daemon_proc(pid, "stat");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmHWM:"-style field of /proc/PID/status in KiB, or -1. */
static long sim_daemon_status(pid_t pid, const char *field)
{
	char line[256];
	size_t fl = strlen(field);
	long v = -1;
	FILE *f;

	f = sim_daemon_proc(pid, "status");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl) && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int sim_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct sim_mark {
	double cpu_self, cpu_daemon;
	uint64_t errors;
};

static uint64_t sim_errors(const struct sim *s)
{
	return s->http_errors + s->proto_errors + s->foreign + s->mismatches + s->failed;
}

static struct sim_mark sim_mark(const struct sim *s)
{
	return (struct sim_mark){ sim_cpu_self(), sim_cpu_daemon(s->o.daemon_pid), sim_errors(s) };
}

/* Per-node times (cold or seen) and received bytes of the phase. */
static void sim_report(struct sim *s, const char *phase, const struct sim_mark *m0, double wall,
		       bool cold)
{
	double *t = calloc(s->n, sizeof(*t)), rx_sum = 0, ans_sum = 0;
	uint64_t rx_max = 0;
	uint32_t nt = 0, ans_max = 0;
	struct sim_mark m1 = sim_mark(s);

	for (uint32_t i = 0; i < s->n; i++) {
		const struct node *n = &s->nodes[i];

		if (!cold && i == s->changer)
			continue;
		if (t && (cold ? n->converged : n->saw_change))
			t[nt++] = cold ? n->t_cold : n->t_seen;
		rx_sum += (double)n->rx_phase;
		ans_sum += n->answers_phase;
		if (n->rx_phase > rx_max)
			rx_max = n->rx_phase;
		if (n->answers_phase > ans_max)
			ans_max = n->answers_phase;
	}
	if (t)
		qsort(t, nt, sizeof(*t), sim_cmp_double);
	{
		uint32_t others = cold ? s->n : s->n - 1;
		double p50 = nt ? t[nt / 2] : -1, p99 = nt ? t[(size_t)(nt * 0.99)] : -1;
		double all = nt == others ? t[nt - 1] : -1;

		printf("phase=%s method=%s nodes=%u done=%u all_s=%.3f p50_s=%.3f p99_s=%.3f "
		       "wall_s=%.3f",
		       phase, s->o.method == SIM_WATCH ? "watch" : "listpeers", s->n, nt, all, p50,
		       p99 < 0 ? -1 : p99, wall);
	}
	if (cold)
		printf(" registered=%u registered_s=%.3f window=%u connects=%llu slow_connects=%llu "
		       "connect_max_ms=%.0f",
		       s->registered, s->t_registered, s->o.window, (unsigned long long)s->connects,
		       (unsigned long long)s->slow_connects, s->connect_max_ms);
	else
		printf(" change_answer_ms=%.1f waiting=%.0f", s->ctl_answer_ms, s->waiting);
	printf(" rx_mib=%.1f rx_per_node_avg_b=%.0f rx_per_node_max_b=%llu "
	       "answers_per_node_avg=%.2f answers_per_node_max=%u",
	       rx_sum / 1048576.0, rx_sum / (cold ? s->n : s->n - 1),
	       (unsigned long long)rx_max, ans_sum / (cold ? s->n : s->n - 1), ans_max);
	printf(" errors=%llu reconnects=%llu connect_errors=%llu verified=%llu",
	       (unsigned long long)(m1.errors - m0->errors), (unsigned long long)s->reconnects,
	       (unsigned long long)s->conn_errors, (unsigned long long)s->verified);
	printf(" sim_cpu_s=%.2f", m1.cpu_self - m0->cpu_self);
	if (s->o.daemon_pid > 0)
		printf(" daemon_cpu_s=%.2f daemon_rss_kib=%ld daemon_peak_rss_kib=%ld",
		       m1.cpu_daemon - m0->cpu_daemon, sim_daemon_status(s->o.daemon_pid, "VmRSS"),
		       sim_daemon_status(s->o.daemon_pid, "VmHWM"));
	printf("\n");
	fflush(stdout);
	free(t);
}

/* ---- the event loop ------------------------------------------------------ */

/* --progress: one line a second on stderr, to see where the time goes. */
static void sim_progress(const struct sim *s)
{
	uint64_t rx = 0, answers = 0;

	for (uint32_t i = 0; i < s->n; i++) {
		rx += s->nodes[i].rx;
		answers += s->nodes[i].answers;
	}
	fprintf(stderr,
		"progress phase=%d t_s=%.1f started=%u unanswered=%u registered=%u converged=%u "
		"saw_change=%u answers=%llu rx_mib=%.1f sim_cpu_s=%.2f daemon_cpu_s=%.2f\n",
		(int)s->phase, (double)(sim_now_ns() - s->t_phase_ns) / 1e9, s->next_start,
		s->unanswered, s->registered, s->converged, s->saw_change,
		(unsigned long long)answers, (double)rx / 1048576.0, sim_cpu_self(),
		sim_cpu_daemon(s->o.daemon_pid));
}

static bool sim_phase_done(const struct sim *s)
{
	switch (s->phase) {
	case PH_COLD:
		return s->converged + s->failed >= s->n;
	case PH_SETTLE:
		return s->ctl_done;
	case PH_CHANGE:
		return s->ctl_done && s->saw_change + s->failed >= s->n - 1;
	case PH_END:
		break;
	}
	return true;
}

static int sim_run(struct sim *s, double limit_s)
{
	struct epoll_event ev[SIM_EVENTS];
	uint64_t deadline = sim_now_ms() + (uint64_t)(limit_s * 1000);

	while (!sim_phase_done(s)) {
		uint64_t now = sim_now_ms();
		int timeout, nev;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (s->o.progress && now >= s->next_progress_ms) {
			s->next_progress_ms = now + 1000;
			sim_progress(s);
		}
		/* The window: connections the daemon has not answered yet, so
		 * its accept backlog never overflows (a dropped SYN costs a
		 * second). Once answered, a node goes on at its own pace. */
		while (s->phase == PH_COLD && s->next_start < s->n && s->unanswered < s->o.window) {
			struct node *n = &s->nodes[s->next_start++];

			n->in_window = true;
			s->unanswered++;
			node_send(s, n);
		}
		node_retry_due(s);
		timeout = (int)(deadline - now);
		if (timeout > 100)
			timeout = 100;
		if (s->q_head) {
			now = sim_now_ms();
			timeout = s->q_head->due_ms <= now ? 0 :
				  (int)(s->q_head->due_ms - now) < timeout ?
				  (int)(s->q_head->due_ms - now) : timeout;
		}
		nev = epoll_wait(s->epfd, ev, SIM_EVENTS, timeout);
		if (nev < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < nev; i++)
			node_event(s, ev[i].data.ptr, ev[i].events);
	}
	return 0;
}

/* The value of an unlabelled gauge in Prometheus text, or NAN. */
static double sim_metric(const char *text, const char *name)
{
	size_t nl = strlen(name);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, name, nl) && l[nl] == ' ')
			return strtod(l + nl + 1, NULL);
	return NAN;
}

void sim_ctl_answer(struct sim *s, struct node *n)
{
	const char *body = n->small ? (const char *)n->small : "";

	if (n->step == S_METRICS) {
		double v = NAN;

		if (n->h.status == 200) {
			if (s->o.method == SIM_WATCH)
				v = sim_metric(body, "wgcni_watchers");
			if (isnan(v))
				v = sim_metric(body, "wgcni_long_polls");
		}
		if (isnan(v)) {
			s->http_errors++;
			sim_error(s, "GET /metrics: HTTP %d, no gauge of waiting calls",
				  n->h.status);
			s->waiting = -1;
			s->ctl_done = true;
			return;
		}
		/* Several cluster managers: ask each in turn, on a new
		 * connection, and compare the sum. */
		s->waiting_sum += v;
		if (n->port + 1u < s->o.n_ports) {
			node_close(s, n);
			n->port++;
			node_later(s, n);
			return;
		}
		s->waiting = s->waiting_sum;
		s->waiting_sum = 0;
		if (s->o.n_ports > 1) {
			node_close(s, n);
			n->port = 0;
		}
		if (s->waiting >= s->n)
			s->ctl_done = true;
		else
			node_later(s, n);
		return;
	}
	s->ctl_answer_ms = (double)(sim_now_ns() - s->t_phase_ns) / 1e6;
	s->ctl_done = true;
	if (n->h.status != 200) {
		s->http_errors++;
		sim_error(s, "RegisterKey (new key for node-%05u): HTTP %d: %.200s", s->changer,
			  n->h.status, body);
	}
}

static void sim_keypair(char out[static SIM_KEY_LEN + 1])
{
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];

	crypto_box_keypair(pk, sk);
	sodium_memzero(sk, sizeof(sk));
	sodium_bin2base64(out, SIM_KEY_LEN + 1, pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
}

/* The rotated node's bit goes everywhere: nobody holds the new key yet. */
static void sim_rotate(struct sim *s)
{
	uint32_t c = s->changer;

	sim_keypair(s->new_key);
	memcpy(s->key[c], s->new_key, sizeof(s->new_key));
	for (uint32_t i = 0; i < s->n; i++) {
		struct node *n = &s->nodes[i];

		if (i != c && (n->bits[c / 64] >> (c % 64) & 1)) {
			n->bits[c / 64] &= ~(UINT64_C(1) << (c % 64));
			n->held--;
		}
		n->rx_phase = 0;
		n->answers_phase = 0;
	}
}

static void sim_begin(struct sim *s, enum sim_phase ph)
{
	s->phase = ph;
	s->t_phase_ns = sim_now_ns();
	s->ctl_done = false;
}

static int sim_phases(struct sim *s)
{
	struct sim_mark m;
	struct node *ctl = &s->nodes[s->n];
	uint64_t t;
	int ret;

	m = sim_mark(s);
	t = sim_now_ns();
	sim_begin(s, PH_COLD);
	ret = sim_run(s, s->o.timeout_s);
	sim_report(s, "cold", &m, (double)(sim_now_ns() - t) / 1e9, true);
	if (ret < 0 || s->converged < s->n)
		return ret < 0 ? ret : -EIO;

	sim_begin(s, PH_SETTLE);
	ctl->step = S_METRICS;
	node_send(s, ctl);
	ret = sim_run(s, s->o.settle_s);
	if (ret < 0 || s->waiting < s->n) {
		fprintf(stderr, "settle: %.0f of %u calls waiting\n", s->waiting, s->n);
		return ret < 0 ? ret : -EIO;
	}

	m = sim_mark(s);
	sim_rotate(s);
	sim_begin(s, PH_CHANGE);
	ctl->step = S_CHANGE;
	node_send(s, ctl);
	ret = sim_run(s, s->o.change_s);
	sim_report(s, "change", &m, (double)(sim_now_ns() - s->t_phase_ns) / 1e9, false);
	if (ret < 0)
		return ret;
	return s->saw_change == s->n - 1 ? 0 : -EIO;
}

/* ---- setup ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wgcni-cluster-sim [--host 127.0.0.1] [--port 8080] [--nodes N]\n"
		"         [--method watch|listpeers] [--window W] [--wait S] [--timeout S]\n"
		"         [--settle S] [--change-timeout S] [--verify-every K]\n"
		"         [--max-retries R] [--daemon-pid PID] [--progress] | --self-test\n");
}

static int sim_parse(struct sim_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "method", required_argument, NULL, 'm' },
		{ "window", required_argument, NULL, 'w' },
		{ "wait", required_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 't' },
		{ "settle", required_argument, NULL, 's' },
		{ "change-timeout", required_argument, NULL, 'c' },
		{ "verify-every", required_argument, NULL, 'v' },
		{ "max-retries", required_argument, NULL, 'r' },
		{ "daemon-pid", required_argument, NULL, 'd' },
		{ "progress", no_argument, NULL, 'P' },
		{ "self-test", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct sim_opts){ .host = "127.0.0.1", .ports = { 8080 }, .n_ports = 1, .nodes = 1000, .window = 2048,
				.wait_s = 30, .verify_every = 1000, .max_retries = 20,
				.timeout_s = 120, .settle_s = 30, .change_s = 10,
				.method = SIM_WATCH };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;
		double d = optarg ? strtod(optarg, &end) : 0;
		bool num = optarg && end != optarg && *end == '\0' && d >= 0;

		switch (c) {
		case 'H':
			o->host = optarg;
			continue;
		case 'm':
			if (!strcmp(optarg, "watch"))
				o->method = SIM_WATCH;
			else if (!strcmp(optarg, "listpeers"))
				o->method = SIM_LIST;
			else
				goto bad;
			continue;
		case 'p': {
			/* A list: one cluster manager per port, on --host. */
			char *list = strdup(optarg), *save = NULL, *tok;

			o->n_ports = 0;
			for (tok = list ? strtok_r(list, ",", &save) : NULL; tok;
			     tok = strtok_r(NULL, ",", &save)) {
				unsigned long v = strtoul(tok, &end, 10);

				if (*end || v < 1 || v > 65535 || o->n_ports == SIM_MAX_PORTS)
					break;
				o->ports[o->n_ports++] = (uint16_t)v;
			}
			free(list);
			if (tok || !o->n_ports)
				goto bad;
			continue;
		}
		case 'T':
			return 1;
		case 'P':
			o->progress = true;
			continue;
		case 'h':
			usage(stdout);
			exit(0);
		case '?':
			usage(stderr);
			return -EINVAL;
		}
		if (!num)
			goto bad;
		switch (c) {
		case 'n':
			if (d < 2 || d > SIM_MAX_NODES)
				goto bad;
			o->nodes = (uint32_t)d;
			break;
		case 'w':
			o->window = d < 1 ? 1 : (uint32_t)d;
			break;
		case 'W':
			o->wait_s = (uint32_t)d;
			break;
		case 't':
			o->timeout_s = d;
			break;
		case 's':
			o->settle_s = d;
			break;
		case 'c':
			o->change_s = d;
			break;
		case 'v':
			o->verify_every = (uint32_t)d;
			break;
		case 'r':
			o->max_retries = (uint32_t)d;
			break;
		case 'd':
			o->daemon_pid = (pid_t)d;
			break;
		}
		continue;
bad:
		fprintf(stderr, "wgcni-cluster-sim: bad option value: `%s'\n", optarg);
		return -EINVAL;
	}
	if (optind < argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int sim_fds(uint32_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		fprintf(stderr, "wgcni-cluster-sim: %u nodes need %u file descriptors, the limit "
				"is %llu (raise ulimit -Hn)\n",
			need - 64, need, (unsigned long long)rl.rlim_cur);
		return -EMFILE;
	}
	return 0;
}

static void sim_free(struct sim *s)
{
	if (s->nodes)
		for (uint32_t i = 0; i <= s->n; i++)
			node_free(&s->nodes[i]);
	free(s->nodes);
	free(s->key);
	free(s->bits);
	free(s->rbuf);
	if (s->epfd >= 0)
		close(s->epfd);
}

int main(int argc, char **argv)
{
	struct sim s = { .epfd = -1 };
	uint64_t t;
	int ret;

	ret = sim_parse(&s.o, argc, argv);
	if (ret < 0)
		return 2;
	if (sodium_init() < 0) {
		fprintf(stderr, "wgcni-cluster-sim: libsodium cannot start\n");
		return 1;
	}
	if (ret == 1)
		return sim_selftest() < 0 ? 1 : 0;
	s.n = s.o.nodes;
	if (sim_fds(s.n + 64) < 0)
		return 1;
	for (uint32_t i = 0; i < s.o.n_ports; i++) {
		s.addr[i].sin_family = AF_INET;
		s.addr[i].sin_port = htons(s.o.ports[i]);
		if (inet_pton(AF_INET, s.o.host, &s.addr[i].sin_addr) != 1) {
			fprintf(stderr, "wgcni-cluster-sim: --host must be an IPv4 address: `%s'\n",
				s.o.host);
			return 2;
		}
	}
	s.words = (s.n + 63) / 64;
	s.rbuf_len = 256 * 1024;
	s.nodes = calloc(s.n + 1, sizeof(*s.nodes));
	s.key = calloc(s.n, sizeof(*s.key));
	s.bits = calloc((size_t)s.n * s.words, sizeof(*s.bits));
	s.rbuf = malloc(s.rbuf_len);
	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s.nodes || !s.key || !s.bits || !s.rbuf || s.epfd < 0) {
		fprintf(stderr, "wgcni-cluster-sim: out of memory\n");
		ret = -ENOMEM;
		goto out;
	}
	t = sim_now_ns();
	for (uint32_t i = 0; i < s.n; i++)
		sim_keypair(s.key[i]);
	for (uint32_t i = 0; i <= s.n; i++)
		node_setup(&s, &s.nodes[i], i);
	printf("phase=keygen nodes=%u keygen_s=%.3f\n", s.n, (double)(sim_now_ns() - t) / 1e9);
	ret = sim_phases(&s);
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		printf("phase=total nodes=%u sim_cpu_s=%.2f sim_sys_s=%.2f sim_maxrss_kib=%ld", s.n,
		       sim_cpu_self(), (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
		       ru.ru_maxrss);
	}
	if (s.o.daemon_pid > 0)
		printf(" daemon_cpu_s=%.2f daemon_peak_rss_kib=%ld", sim_cpu_daemon(s.o.daemon_pid),
		       sim_daemon_status(s.o.daemon_pid, "VmHWM"));
	printf(" rc=%d\n", ret < 0 ? 1 : 0);
	if (ret == -ETIMEDOUT)
		fprintf(stderr, "wgcni-cluster-sim: phase %d timed out\n", (int)s.phase);
	if (sim_errors(&s) || s.first_error[0]) {
		fprintf(stderr, "wgcni-cluster-sim: errors: http=%llu proto=%llu foreign=%llu "
				"mismatch=%llu failed=%u\n",
			(unsigned long long)s.http_errors, (unsigned long long)s.proto_errors,
			(unsigned long long)s.foreign, (unsigned long long)s.mismatches, s.failed);
		if (s.first_error[0])
			fprintf(stderr, "wgcni-cluster-sim: first error: %s\n", s.first_error);
		if (!ret && sim_errors(&s))
			ret = -EIO;
	}
out:
	sim_free(&s);
	return ret < 0 ? 1 : 0;
}

#include "sim.h"

#include "wgcni/cluster/v1/cluster.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define SVC "/wgcni.cluster.v1.ClusterService/"

int node_setup(struct sim *s, struct node *n, uint32_t idx)
{
	memset(n, 0, offsetof(struct node, h));
	n->s = s;
	n->fd = -1;
	n->idx = idx;
	n->step = idx < s->n ? S_ALLOC : S_METRICS;
	n->port = idx < s->n ? (uint8_t)(idx % s->o.n_ports) : 0;
	snprintf(n->name, sizeof(n->name), "node-%05u", idx < s->n ? idx : 0);
	if (idx < s->n) {
		n->bits = s->bits + (size_t)idx * s->words;
		n->verify = s->o.verify_every && idx % s->o.verify_every == 0;
	}
	hresp_init(&n->h);
	return 0;
}

void node_free(struct node *n)
{
	if (!n)
		return;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	free(n->small);
	n->small = NULL;
	free(n->vbuf);
	n->vbuf = NULL;
}

void node_later(struct sim *s, struct node *n)
{
	if (n->queued)
		return;
	n->queued = true;
	n->due_ms = sim_now_ms() + SIM_RETRY_MS;
	n->next = NULL;
	if (s->q_tail)
		s->q_tail->next = n;
	else
		s->q_head = n;
	s->q_tail = n;
}

void node_close(struct sim *s, struct node *n)
{
	if (n->fd >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, n->fd, NULL);
		close(n->fd);
	}
	n->fd = -1;
	n->conn = C_CLOSED;
	n->in_flight = false;
	n->want_out = false;
}

static void node_window_leave(struct sim *s, struct node *n)
{
	if (n->in_window) {
		n->in_window = false;
		s->unanswered--;
	}
}

static void node_fail(struct sim *s, struct node *n)
{
	node_close(s, n);
	if (n->failed)
		return;
	n->failed = true;
	s->failed++;
	node_window_leave(s, n);
}

/* Try again later: after an error answer, a refused connect, a lost
 * connection. Bounded by --max-retries for errors. */
static void node_again(struct sim *s, struct node *n, bool error)
{
	if (error && ++n->retries > s->o.max_retries) {
		sim_error(s, "%s: giving up after %u retries", n->name, s->o.max_retries);
		node_fail(s, n);
		return;
	}
	node_later(s, n);
}

static void node_lost(struct sim *s, struct node *n, bool error)
{
	node_close(s, n);
	node_again(s, n, error);
}

/* An answer we refuse: counted, said (the first one), and the node tries
 * again, on a new connection when lost. */
static void node_refuse(struct sim *s, struct node *n, bool lost, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void node_refuse(struct sim *s, struct node *n, bool lost, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	s->proto_errors++;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sim_error(s, "%s: %s", n->name, what);
	if (lost)
		node_lost(s, n, true);
	else
		node_again(s, n, true);
}

int node_start(struct sim *s, struct node *n)
{
	int fd, one = 1, ret;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		sim_error(s, "%s: socket: %s", n->name, strerror(-ret));
		node_again(s, n, true);
		return ret;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n->fd = fd;
	n->conn = C_CONNECTING;
	n->want_out = true;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd,
		      &(struct epoll_event){ .events = EPOLLOUT, .data.ptr = n }) < 0) {
		ret = -errno;
		sim_error(s, "%s: epoll_ctl: %s", n->name, strerror(-ret));
		close(fd);
		n->fd = -1;
		n->conn = C_CLOSED;
		node_again(s, n, true);
		return ret;
	}
	n->connect_ns = sim_now_ns();
	if (connect(fd, (const struct sockaddr *)&s->addr[n->port], sizeof(s->addr[0])) < 0 &&
	    errno != EINPROGRESS) {
		ret = -errno;
		s->conn_errors++;
		node_lost(s, n, true);
		return ret;
	}
	return 0;
}

static void node_interest(struct sim *s, struct node *n, bool out)
{
	if (n->want_out == out)
		return;
	n->want_out = out;
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, n->fd,
		  &(struct epoll_event){ .events = EPOLLIN | (out ? EPOLLOUT : 0),
					 .data.ptr = n });
}

static int node_write(struct sim *s, struct node *n)
{
	while (n->out_off < n->out_len) {
		ssize_t w = write(n->fd, n->out + n->out_off, n->out_len - n->out_off);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				node_interest(s, n, true);
				return 0;
			}
			return -errno;
		}
		n->out_off += (uint16_t)w;
	}
	node_interest(s, n, false);
	return 0;
}

/* HTTP request with a packed protobuf body; 0 or -EMSGSIZE. */
static int node_post(struct node *n, const char *method, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	int h;

	h = snprintf(n->out, sizeof(n->out),
		     "POST " SVC "%s HTTP/1.1\r\nHost: %s:%u\r\n"
		     "Content-Type: application/proto\r\nContent-Length: %zu\r\n\r\n",
		     method, n->s->o.host, n->s->o.ports[n->port], len);
	if (h < 0 || (size_t)h + len > sizeof(n->out))
		return -EMSGSIZE;
	protobuf_c_message_pack(msg, (uint8_t *)n->out + h);
	n->out_len = (uint16_t)(h + len);
	return 0;
}

static void node_endpoint(char *buf, size_t size, uint32_t idx, unsigned int port)
{
	snprintf(buf, size, "10.%u.%u.%u:%u", (idx >> 16) & 255, (idx >> 8) & 255, idx & 255,
		 port);
}

static int node_build(struct sim *s, struct node *n)
{
	char ep[32];
	int h;

	switch (n->step) {
	case S_ALLOC: {
		Wgcni__Cluster__V1__AllocateSubnetRequest m =
			WGCNI__CLUSTER__V1__ALLOCATE_SUBNET_REQUEST__INIT;

		m.node_name = n->name;
		return node_post(n, "AllocateSubnet", &m.base);
	}
	case S_REGISTER:
	case S_CHANGE: {
		Wgcni__Cluster__V1__RegisterKeyRequest m =
			WGCNI__CLUSTER__V1__REGISTER_KEY_REQUEST__INIT;
		uint32_t who = n->step == S_CHANGE ? s->changer : n->idx;

		node_endpoint(ep, sizeof(ep), who, n->step == S_CHANGE ? 51821 : 51820);
		m.node_name = n->name;
		m.public_key = n->step == S_CHANGE ? s->new_key : s->key[who];
		m.endpoint = ep;
		return node_post(n, "RegisterKey", &m.base);
	}
	case S_POLL:
		if (s->o.method == SIM_WATCH) {
			Wgcni__Cluster__V1__WatchPeersRequest m =
				WGCNI__CLUSTER__V1__WATCH_PEERS_REQUEST__INIT;

			m.node_name = n->name;
			m.since_revision = n->rev;
			m.wait_seconds = s->o.wait_s;
			return node_post(n, "WatchPeers", &m.base);
		} else {
			Wgcni__Cluster__V1__ListPeersRequest m =
				WGCNI__CLUSTER__V1__LIST_PEERS_REQUEST__INIT;

			m.node_name = n->name;
			m.since_revision = n->rev;
			m.wait_seconds = s->o.wait_s;
			return node_post(n, "ListPeers", &m.base);
		}
	case S_METRICS:
		h = snprintf(n->out, sizeof(n->out), "GET /metrics HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
			     s->o.host, s->o.ports[n->port]);
		if (h < 0 || (size_t)h >= sizeof(n->out))
			return -EMSGSIZE;
		n->out_len = (uint16_t)h;
		return 0;
	}
	return -EINVAL;
}

int node_send(struct sim *s, struct node *n)
{
	int ret;

	if (n->failed)
		return -ECANCELED;
	if (n->conn == C_CLOSED)
		return node_start(s, n); /* sends once connected */
	ret = node_build(s, n);
	if (ret < 0) {
		sim_error(s, "%s: request too large", n->name);
		node_fail(s, n);
		return ret;
	}
	n->out_off = 0;
	n->in_flight = true;
	hresp_init(&n->h);
	pbs_init(&n->pb, s->o.method == SIM_WATCH ? &pbs_watch_fields : &pbs_list_fields);
	n->resp_ok = 0;
	n->small_len = 0;
	n->vlen = 0;
	n->vskip = false;
	ret = node_write(s, n);
	if (ret < 0) {
		s->reconnects++;
		node_lost(s, n, false);
	}
	return ret;
}

/* ---- the peer map ------------------------------------------------------- */

static bool bit_test(const uint64_t *b, uint32_t j)
{
	return b[j / 64] >> (j % 64) & 1;
}

static void node_on_full(void *ctx)
{
	struct node *n = ctx;

	memset(n->bits, 0, n->s->words * sizeof(uint64_t));
	n->held = 0;
}

static void node_on_peer(void *ctx, const char *name, size_t name_len, const char *key,
			 size_t key_len)
{
	struct node *n = ctx;
	struct sim *s = n->s;
	int j = sim_name_index(s, name, name_len);
	bool ok, had;

	if (j < 0) {
		s->foreign++;
		return;
	}
	ok = key_len == SIM_KEY_LEN && !memcmp(key, s->key[j], SIM_KEY_LEN);
	n->resp_ok += ok;
	if ((uint32_t)j == n->idx)
		return; /* the caller itself: ignored */
	had = bit_test(n->bits, (uint32_t)j);
	if (ok && !had) {
		n->bits[j / 64] |= UINT64_C(1) << (j % 64);
		n->held++;
	} else if (!ok && had) {
		n->bits[j / 64] &= ~(UINT64_C(1) << (j % 64));
		n->held--;
	}
}

static void node_on_removed(void *ctx, const char *name, size_t len)
{
	struct node *n = ctx;
	int j = sim_name_index(n->s, name, len);

	if (j < 0) {
		n->s->foreign++;
		return;
	}
	if ((uint32_t)j != n->idx && bit_test(n->bits, (uint32_t)j)) {
		n->bits[j / 64] &= ~(UINT64_C(1) << (j % 64));
		n->held--;
	}
}

static const struct pbs_sink node_sink = {
	.full = node_on_full,
	.peer = node_on_peer,
	.removed = node_on_removed,
};

static int node_append(uint8_t **buf, size_t *len, size_t *cap, size_t max, const uint8_t *p,
		       size_t n)
{
	if (n > max - *len)
		return -EMSGSIZE;
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 4096;
		uint8_t *nb;

		while (c < *len + n)
			c *= 2;
		nb = realloc(*buf, c);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static int node_body(void *ctx, const uint8_t *p, size_t len)
{
	struct node *n = ctx;
	uint8_t *nb;

	if (n->step == S_POLL && n->h.status == 200) {
		if (n->verify && !n->vskip &&
		    node_append(&n->vbuf, &n->vlen, &n->vcap, SIM_VERIFY_MAX, p, len) < 0)
			n->vskip = true;
		return pbs_feed(&n->pb, p, len, &node_sink, n);
	}
	/* Small answers, errors, metrics: freed after each answer. */
	if (len > SIM_SMALL_MAX - n->small_len)
		return -EMSGSIZE;
	nb = realloc(n->small, n->small_len + len + 1);
	if (!nb)
		return -ENOMEM;
	n->small = nb;
	memcpy(n->small + n->small_len, p, len);
	n->small_len += len;
	n->small[n->small_len] = '\0';
	return 0;
}

/* ---- answers ------------------------------------------------------------ */

static void node_verify(struct sim *s, struct node *n)
{
	uint64_t rev;
	size_t np, nr;
	bool full;
	ProtobufCMessage *m;
	Wgcni__Cluster__V1__Peer **peers;
	uint32_t ok = 0;

	if (s->o.method == SIM_WATCH) {
		Wgcni__Cluster__V1__WatchPeersResponse *r =
			wgcni__cluster__v1__watch_peers_response__unpack(NULL, n->vlen, n->vbuf);

		if (!r)
			goto mismatch;
		m = &r->base;
		rev = r->revision;
		full = r->full;
		np = r->n_peers;
		nr = r->n_removed;
		peers = r->peers;
	} else {
		Wgcni__Cluster__V1__ListPeersResponse *r =
			wgcni__cluster__v1__list_peers_response__unpack(NULL, n->vlen, n->vbuf);

		if (!r)
			goto mismatch;
		m = &r->base;
		rev = r->revision;
		full = true;
		np = r->n_peers;
		nr = 0;
		peers = r->peers;
	}
	for (size_t i = 0; i < np; i++) {
		int j = sim_name_index(s, peers[i]->name, strlen(peers[i]->name));

		ok += j >= 0 && strlen(peers[i]->public_key) == SIM_KEY_LEN &&
		      !memcmp(peers[i]->public_key, s->key[j], SIM_KEY_LEN);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	if (rev != n->pb.revision || np != n->pb.n_peers || nr != n->pb.n_removed ||
	    ok != n->resp_ok || (s->o.method == SIM_WATCH && full != n->pb.full))
		goto mismatch;
	s->verified++;
	return;
mismatch:
	s->mismatches++;
	sim_error(s, "%s: protobuf-c and the streaming decoder disagree on an answer", n->name);
}

static void node_check(struct sim *s, struct node *n)
{
	double t;

	if (n->held != s->n - 1)
		return;
	t = (double)(sim_now_ns() - s->t_phase_ns) / 1e9;
	if (s->phase == PH_COLD && !n->converged) {
		n->converged = true;
		n->t_cold = t;
		s->converged++;
	} else if (s->phase == PH_CHANGE && !n->saw_change && n->idx != s->changer) {
		n->saw_change = true;
		n->t_seen = t;
		s->saw_change++;
	}
}

static void node_answer(struct sim *s, struct node *n)
{
	n->in_flight = false;
	n->answers++;
	n->answers_phase++;
	node_window_leave(s, n);
	if (n->h.close) {
		/* The next request reconnects. */
		node_close(s, n);
		s->reconnects += n->idx < s->n;
	}
	if (n->idx == s->n) {
		sim_ctl_answer(s, n);
		return;
	}
	if (n->h.status != 200) {
		s->http_errors++;
		sim_error(s, "%s: HTTP %d: %.200s", n->name, n->h.status,
			  n->small ? (const char *)n->small : "");
		node_again(s, n, true);
		return;
	}
	switch (n->step) {
	case S_ALLOC: {
		Wgcni__Cluster__V1__AllocateSubnetResponse *r =
			wgcni__cluster__v1__allocate_subnet_response__unpack(NULL, n->small_len,
									    n->small);
		bool ok = r && r->n_subnets > 0;

		protobuf_c_message_free_unpacked(r ? &r->base : NULL, NULL);
		if (!ok) {
			node_refuse(s, n, false, "AllocateSubnet: no subnet in the answer");
			return;
		}
		n->step = S_REGISTER;
		break;
	}
	case S_REGISTER: {
		Wgcni__Cluster__V1__RegisterKeyResponse *r =
			wgcni__cluster__v1__register_key_response__unpack(NULL, n->small_len,
									 n->small);
		bool ok = r && r->node && !strcmp(r->node->public_key, s->key[n->idx]);

		protobuf_c_message_free_unpacked(r ? &r->base : NULL, NULL);
		if (!ok) {
			node_refuse(s, n, false, "RegisterKey: the answer does not hold our key");
			return;
		}
		n->step = S_POLL;
		n->rev = 0;
		s->registered++;
		s->t_registered = (double)(sim_now_ns() - s->t_phase_ns) / 1e9;
		break;
	}
	case S_POLL:
		if (pbs_end(&n->pb) < 0) {
			s->proto_errors++;
			sim_error(s, "%s: answer ends inside a field", n->name);
			break;
		}
		n->rev = n->pb.revision;
		if (n->verify && !n->vskip)
			node_verify(s, n);
		node_check(s, n);
		break;
	}
	free(n->small);
	n->small = NULL;
	n->small_len = 0;
	node_send(s, n);
}

static void node_read(struct sim *s, struct node *n)
{
	for (int round = 0; round < 4 && n->conn == C_OPEN; round++) {
		ssize_t r = read(n->fd, s->rbuf, s->rbuf_len), used;

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			s->reconnects++;
			node_lost(s, n, false);
			return;
		}
		if (r == 0) {
			if (n->in_flight && hresp_eof(&n->h) == 0) {
				node_close(s, n);
				node_answer(s, n);
				return;
			}
			/* The server closed (idle timeout or overload): again. */
			s->reconnects++;
			node_lost(s, n, false);
			return;
		}
		n->rx += (uint64_t)r;
		n->rx_phase += (uint64_t)r;
		if (!n->in_flight) {
			node_refuse(s, n, true, "%zd bytes nobody asked for", r);
			return;
		}
		used = hresp_feed(&n->h, s->rbuf, (size_t)r, node_body, n);
		if (used < 0) {
			node_refuse(s, n, true, "bad answer: %s", strerror((int)-used));
			return;
		}
		if (!hresp_done(&n->h))
			continue;
		if (used != r) {
			node_refuse(s, n, true, "%zd bytes after the answer", r - used);
			return;
		}
		node_answer(s, n);
		if ((size_t)r < s->rbuf_len)
			return; /* drained: the next answer is a new wait away */
	}
}

void node_event(struct sim *s, struct node *n, uint32_t events)
{
	if (n->conn == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(n->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			s->conn_errors++;
			node_lost(s, n, true);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		n->conn = C_OPEN;
		{
			double ms = (double)(sim_now_ns() - n->connect_ns) / 1e6;

			s->connects++;
			s->slow_connects += ms > 900;
			if (ms > s->connect_max_ms)
				s->connect_max_ms = ms;
		}
		node_send(s, n);
		return;
	}
	if (n->conn != C_OPEN)
		return;
	if ((events & EPOLLOUT) && node_write(s, n) < 0) {
		s->reconnects++;
		node_lost(s, n, false);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		node_read(s, n);
}

void node_retry_due(struct sim *s)
{
	uint64_t now = sim_now_ms();

	while (s->q_head && s->q_head->due_ms <= now) {
		struct node *n = s->q_head;

		s->q_head = n->next;
		if (!s->q_head)
			s->q_tail = NULL;
		n->next = NULL;
		n->queued = false;
		if (!n->failed)
			node_send(s, n);
	}
}

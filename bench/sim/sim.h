/*
 * wgcni-cluster-sim: simulated node managers against one cluster manager
 * (or several sharing a datastore: --port 8080,8081, node i on the
 * (i % n)th), in one thread on one epoll set. Each simulated node has one keep-alive
 * TCP connection and does what a node manager does: AllocateSubnet,
 * RegisterKey (a real X25519 public key, a fake endpoint never contacted),
 * then WatchPeers (or the old ListPeers) long polls from its last revision,
 * applying each answer to its peer map.
 *
 * The peer map: all names are the simulator's own ("node-%05u"), so a
 * node's map is one bit per other node, set while the node holds that peer
 * with its current key; `held` counts the set bits, and a node holds all
 * others when held == nodes - 1. A name that is not one of ours is counted
 * as an error. A key rotation clears the rotated node's bit everywhere.
 */
#ifndef WGCNI_BENCH_SIM_H
#define WGCNI_BENCH_SIM_H

#include "hresp.h"
#include "pbs.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_KEY_LEN 44     /* base64 of 32 bytes */
#define SIM_NAME_LEN 10    /* "node-%05u" */
#define SIM_MAX_NODES 99999
#define SIM_OUT_MAX 512
#define SIM_SMALL_MAX (1u << 20) /* non-streamed bodies: small answers, errors, metrics */
#define SIM_VERIFY_MAX (16u << 20)
#define SIM_RETRY_MS 200
#define SIM_MAX_PORTS 8    /* cluster managers: node i calls port i % n_ports */

enum sim_method { SIM_WATCH, SIM_LIST };

enum sim_phase { PH_COLD, PH_SETTLE, PH_CHANGE, PH_END };

enum node_step {
	S_ALLOC,
	S_REGISTER,
	S_POLL,    /* WatchPeers or ListPeers */
	S_METRICS, /* control connection: GET /metrics */
	S_CHANGE,  /* control connection: RegisterKey with a new key */
};

enum node_conn { C_CLOSED, C_CONNECTING, C_OPEN };

struct sim;

struct node {
	struct sim *s;
	int fd;
	uint32_t idx;
	uint8_t conn;
	uint8_t step;
	uint8_t port;    /* index into sim_opts.ports: its cluster manager */
	bool in_flight;  /* request sent, answer not complete */
	bool want_out;   /* EPOLLOUT registered */
	bool converged;  /* cold phase: held all others once */
	bool saw_change; /* change phase: holds the new key */
	bool failed;
	bool queued;     /* in the retry queue */
	bool verify;     /* answers also decoded by protobuf-c */
	bool in_window;  /* counted in sim.unanswered */
	char name[16];
	uint16_t out_len, out_off;
	uint32_t retries;
	uint32_t held;
	uint32_t resp_ok; /* peers with the right key in the current answer */
	uint64_t rev;
	uint64_t *bits;
	uint64_t due_ms;  /* retry queue */
	uint64_t connect_ns; /* when connect() was called */
	struct node *next;
	uint64_t rx, rx_phase;
	uint32_t answers, answers_phase;
	double t_cold;    /* seconds from the cold start to holding all others */
	double t_seen;    /* seconds from the change to holding the new key */
	uint8_t *small;   /* buffered body (not streamed) */
	size_t small_len;
	uint8_t *vbuf;    /* verify: the whole body */
	size_t vlen, vcap;
	bool vskip;
	struct hresp h;
	struct pbs pb;
	char out[SIM_OUT_MAX];
};

struct sim_opts {
	const char *host;
	uint16_t ports[SIM_MAX_PORTS];
	uint32_t n_ports;
	uint32_t nodes;
	uint32_t window;
	uint32_t wait_s;
	uint32_t verify_every;
	uint32_t max_retries;
	double timeout_s, settle_s, change_s;
	enum sim_method method;
	pid_t daemon_pid;
	bool progress;
};

struct sim {
	struct sim_opts o;
	int epfd;
	struct sockaddr_in addr[SIM_MAX_PORTS];
	uint32_t n;            /* simulated nodes; nodes[n] is the control connection */
	struct node *nodes;
	char (*key)[SIM_KEY_LEN + 1];
	uint64_t *bits;
	size_t words;
	uint8_t *rbuf;
	size_t rbuf_len;

	enum sim_phase phase;
	uint64_t t_phase_ms;   /* monotonic ms at the phase start */
	uint64_t t_phase_ns;
	uint32_t next_start;
	uint32_t unanswered;   /* started, no answer on the connection yet (the window) */
	uint32_t registered, converged, saw_change, failed;
	double t_registered;
	struct node *q_head, *q_tail; /* retry queue, FIFO: one fixed delay */
	uint32_t changer;      /* the node whose key rotates */
	char new_key[SIM_KEY_LEN + 1];
	double ctl_answer_ms;
	bool ctl_done;
	double waiting;        /* last watchers / long polls gauge read (summed) */
	double waiting_sum;    /* settle: the gauges of the ports asked so far */
	uint64_t next_progress_ms;

	/* Counters. */
	uint64_t http_errors, proto_errors, conn_errors, reconnects, foreign, mismatches;
	uint64_t verified;
	uint64_t connects, slow_connects; /* slow: over 900 ms, i.e. a SYN was resent */
	double connect_max_ms;
	char first_error[256];
};

uint64_t sim_now_ns(void);
uint64_t sim_now_ms(void);
void sim_error(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sim_name_index(const struct sim *s, const char *name, size_t len);

/* node.c */
int node_setup(struct sim *s, struct node *n, uint32_t idx);
void node_free(struct node *n);
int node_start(struct sim *s, struct node *n);
void node_event(struct sim *s, struct node *n, uint32_t events);
void node_retry_due(struct sim *s);
void node_close(struct sim *s, struct node *n);
/* Sends the node's current request again after SIM_RETRY_MS. */
void node_later(struct sim *s, struct node *n);
int node_send(struct sim *s, struct node *n);
/* main.c: an answer of the control connection is complete. */
void sim_ctl_answer(struct sim *s, struct node *n);
/* selftest.c */
int sim_selftest(void);

#endif

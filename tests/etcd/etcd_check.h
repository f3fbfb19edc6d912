/* What the scenarios of etcd_check.c and etcd_check_fail.c share. */
#ifndef WGCNI_ETCD_CHECK_H
#define WGCNI_ETCD_CHECK_H

#include "etcd.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern int failures;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		bool held_ = (cond);                                          \
		if (held_) {                                                  \
			printf("ok - ");                                      \
		} else {                                                      \
			printf("not ok - ");                                  \
			failures++;                                           \
		}                                                             \
		printf(__VA_ARGS__);                                          \
		printf("%s\n", held_ ? "" : " [" #cond "]");                 \
		fflush(stdout);                                               \
	} while (0)

#define MAX_SEEN 4096

struct seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t n, batches, reconnects, compacted;
	int64_t compact_revision;
	int64_t rev[MAX_SEEN];
	enum etcd_event_type type[MAX_SEEN];
	char key[MAX_SEEN][48];
	char value[MAX_SEEN][16];
	bool prev[MAX_SEEN];
	size_t batch_of[MAX_SEEN];
	bool bad_batch_revision;
};

int64_t now_ms(void);
struct etcd *client(const char *endpoints);
/* "a,b,c" -> "b,c,a" */
char *rotate(const char *endpoints);
int64_t head_revision(struct etcd *e);
bool key_absent(struct etcd *e, const char *key);
void seen_cb(const struct etcd_watch_msg *m, void *ctx);
struct seen *seen_new(void);
/* Until the last event seen is at revision >= rev, or compacted; bounded. */
bool seen_wait(struct seen *s, int64_t rev, bool compaction, int timeout_ms);

/* etcd_check_fail.c: members dying, endpoints down, TLS. */
void scenario_watch_failover(const char *endpoints, pid_t victim);
void scenario_dead_first(const char *endpoints);
void scenario_no_leader(const char *endpoints, pid_t victim);
void scenario_down(const char *live, const char *dead);
void scenario_tls(const char *endpoints, const char *ca, const char *cert, const char *key);

#endif

/*
 * Inside the etcd store, shared by state_etcd.c (nodes, the watch, start)
 * and state_etcd_ext.c (external peers). Not for other files.
 */
#ifndef WGCNI_CM_STATE_ETCD_PRIV_H
#define WGCNI_CM_STATE_ETCD_PRIV_H

#include "etcd.h"
#include "state.h"
#include "sys.h"

#include <stdbool.h>
#include <stdint.h>

/* Tries of one change against concurrent ones before -EAGAIN. */
#define CM_ETCD_TRIES 16
#define CM_ETCD_RETRY_MS 3000
#define CM_ETCD_KEY_MAX (1024 + CM_NAME_MAX)
/* Keys, compares and operations one change may have. */
#define CM_ETCD_TX_MAX 16

struct cm_etcd;

/* One change from the watch (or the first list). */
struct cm_etcd_ev {
	bool del;
	char *key;
	char *value; /* NUL-terminated */
	int64_t mod_revision;
};

/* A node's record (store_etcd_keys.h), pointing at strings kept elsewhere. */
struct cm_etcd_rec {
	char subnet[CM_NFAM][IPNET_STRLEN]; /* "" where none */
	const char *public_key, *endpoint, *location, *public_endpoint;
	bool gateway;
};

/* The node's record as memory has it (node NULL: an empty one). */
void cm_etcd_rec_of(const struct cm_node *node, struct cm_etcd_rec *r);
/* Malloc'd JSON of the record; NULL when out of memory. */
char *cm_etcd_rec_json(const struct cm_etcd_rec *r);
/* The part of key after the prefix and kind, or NULL when not of that kind. */
const char *cm_etcd_key_rest(const struct cm_etcd *x, const char *key, const char *kind);

/*
 * A compare-and-swap transaction, built step by step (the first error is
 * kept in err and returned by cm_etcd_tx_run): expect says what memory
 * believes of a key (its mod_revision, 0: absent) and reads it back when the
 * transaction fails; read only reads it back then.
 */
struct cm_etcd_tx {
	struct etcd_cmp cmp[CM_ETCD_TX_MAX];
	struct etcd_op ok[CM_ETCD_TX_MAX], fail[CM_ETCD_TX_MAX];
	char keys[CM_ETCD_TX_MAX][CM_ETCD_KEY_MAX];
	char *vals[CM_ETCD_TX_MAX];
	size_t n_cmp, n_ok, n_fail, n_keys, n_vals;
	int err;
};
void cm_etcd_tx_init(struct cm_etcd_tx *tx);
void cm_etcd_tx_free(struct cm_etcd_tx *tx);
void cm_etcd_tx_expect(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		       const char *name, uint64_t mod);
void cm_etcd_tx_read(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		     const char *name);
/* The key's mod_revision is below mod (absent: 0, below any). */
void cm_etcd_tx_older(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		      const char *name, uint64_t mod);
/* value: malloc'd, owned by tx from now on (NULL: out of memory). */
void cm_etcd_tx_put(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		    const char *name, char *value);
void cm_etcd_tx_del(struct cm_state *st, struct cm_etcd_tx *tx, const char *kind,
		    const char *name);
/* The node's record again (rec NULL: as memory has it), if still current:
 * its revision moves (a gateway whose external peers changed). */
void cm_etcd_tx_node(struct cm_state *st, struct cm_etcd_tx *tx, const struct cm_node *node,
		     const struct cm_etcd_rec *rec);
/* 1 done and in memory, 0 a compare failed (memory has caught up with what
 * was there: look again), or negative errno. */
int cm_etcd_tx_run(struct cm_state *st, struct cm_etcd_tx *tx);

/* Tries body until ret is no longer 0 (done: 1, or an error), at least
 * CM_ETCD_TRIES times and for CM_ETCD_RETRY_MS (then -EAGAIN): every
 * conflict is another change that went through, so contention slows a
 * change down but only a burst longer than that fails it. */
#define CM_ETCD_RETRY(ret, ...)                                                \
	do {                                                                   \
		int64_t until_ = sys_now_ms() + CM_ETCD_RETRY_MS;              \
		ret = 0;                                                       \
		for (int try_ = 0; ret == 0 && (try_ < CM_ETCD_TRIES ||        \
						sys_now_ms() < until_); try_++) { \
			__VA_ARGS__;                                           \
		}                                                              \
		if (ret == 0)                                                  \
			ret = -EAGAIN;                                         \
	} while (0)

/* state_etcd_ext.c: external peers. An event of theirs: 1 applied, 0 not
 * theirs, or negative errno. */
int cm_etcd_ext_apply(struct cm_state *st, const struct cm_etcd_ev *ev);
int cm_etcd_ext_register(struct cm_state *st, const char *name, const char *public_key,
			 const char *location, struct cm_ext **out, bool *changed);
int cm_etcd_ext_delete(struct cm_state *st, const char *name);
/* The node stopped being a gateway or is about to go: its external peers
 * move on. It became one: it takes those without a gateway. */
int cm_etcd_ext_hand_on(struct cm_state *st, const char *node_name);
int cm_etcd_ext_adopt(struct cm_state *st);

#endif

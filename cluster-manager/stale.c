/*
 * Stale nodes (see state.h): a node not seen for longer than the ttl leaves
 * the peer set, one seen again comes back, one stale for too long is
 * deleted.
 *
 * Every node sits in one of two lists: live nodes in the order they were
 * last seen, stale ones in the order they turned stale. Times come from a
 * monotonic clock, so a node seen now always goes to the tail and each list
 * stays sorted: a touch is O(1), and the loop's check looks at the two heads
 * only. A stale peer is stored as a tombstone newer than its row (no column
 * of its own): the deltas already report tombstones as removed, and the row's
 * next change (a new mod_revision) both brings it back in the deltas and
 * outdates the tombstone on disk.
 */
#include "state.h"
#include "state_priv.h"

#include "log.h"
#include "sys.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A ttl shorter than this would make long polls spin (they wait half). */
#define CM_MIN_WAIT_CAP_MS 500

static uint64_t cm_now(const struct cm_state *st)
{
	return st->now_ms ? st->now_ms() : (uint64_t)sys_now_ms();
}

static void cm_list_ends(struct cm_state *st, const struct cm_node *node,
			 struct cm_node ***first, struct cm_node ***last)
{
	*first = node->stale ? &st->stale_first : &st->live_first;
	*last = node->stale ? &st->stale_last : &st->live_last;
}

void cm_stale_unlink(struct cm_state *st, struct cm_node *node)
{
	struct cm_node **first, **last;

	if (!node->linked)
		return;
	cm_list_ends(st, node, &first, &last);
	if (node->seen_prev)
		node->seen_prev->seen_next = node->seen_next;
	else
		*first = node->seen_next;
	if (node->seen_next)
		node->seen_next->seen_prev = node->seen_prev;
	else
		*last = node->seen_prev;
	node->seen_prev = node->seen_next = NULL;
	node->linked = false;
	if (node->stale)
		st->n_stale--;
}

/* To the tail of its list (its time must be the newest there). */
static void cm_stale_append(struct cm_state *st, struct cm_node *node)
{
	struct cm_node **first, **last;

	cm_list_ends(st, node, &first, &last);
	node->seen_prev = *last;
	node->seen_next = NULL;
	if (*last)
		(*last)->seen_next = node;
	else
		*first = node;
	*last = node;
	node->linked = true;
	if (node->stale)
		st->n_stale++;
}

void cm_stale_link(struct cm_state *st, struct cm_node *node)
{
	uint64_t now = cm_now(st);

	cm_stale_unlink(st, node);
	if (node->stale)
		node->stale_ms = now;
	else
		node->seen_ms = now;
	cm_stale_append(st, node);
}

void cm_stale_seen(struct cm_state *st, struct cm_node *node)
{
	cm_stale_unlink(st, node);
	node->stale = false;
	node->stale_logged = false;
	node->seen_ms = cm_now(st);
	cm_stale_append(st, node);
}

/* SQLite: a stale peer's row at a new revision. */
int cm_sqlite_revive(struct cm_state *st, struct cm_node *node, time_t now)
{
	int ret = cm_tx_begin(st);

	if (ret)
		return ret;
	ret = cm_sql(st, "UPDATE nodes SET last_seen = ?, mod_revision = ? WHERE name = ?",
		     "iit", (int64_t)now, (int64_t)st->revision + 1, node->name);
	if (!ret)
		ret = cm_tx_end(st);
	if (ret) {
		cm_tx_undo(st);
		return ret;
	}
	st->revision++;
	cm_touch_mod(st, node, st->revision);
	return 0;
}

/* A stale node called: back in the peer set at a new revision. */
static int cm_stale_revive(struct cm_state *st, struct cm_node *node, time_t now)
{
	bool peer = node->public_key[0];
	int ret;

	if (peer) {
		ret = st->ops->revive(st, node, now);
		if (ret) {
			st->store_errors++;
			return ret;
		}
	}
	/* A peer's row was written with its lastSeen; a keyless node's
	 * lastSeen is saved later, as for any touch. */
	if (peer)
		node->seen_dirty = false;
	else if (node->last_seen != now)
		node->seen_dirty = true;
	node->last_seen = now;
	cm_stale_seen(st, node);
	log_info("node live again", "node=%s", node->name);
	return peer;
}

int cm_state_touch(struct cm_state *st, struct cm_node *node)
{
	time_t now = time(NULL);

	if (node->stale)
		return cm_stale_revive(st, node, now);
	if (node->last_seen != now) {
		node->last_seen = now;
		node->seen_dirty = true;
	}
	cm_stale_seen(st, node);
	return 0;
}

/* SQLite: the stale peer's tombstone. */
int cm_sqlite_mark_stale(struct cm_state *st, struct cm_node *node)
{
	int ret = cm_tomb_reserve(st);

	if (ret)
		return ret;
	ret = cm_tx_begin(st);
	if (ret)
		return ret;
	ret = cm_sql(st, "INSERT OR REPLACE INTO tombstones (name, revision) VALUES (?, ?)",
		     "ti", node->name, (int64_t)st->revision + 1);
	if (!ret)
		ret = cm_tx_end(st);
	if (ret) {
		cm_tx_undo(st);
		return ret;
	}
	st->revision++;
	cm_tomb_push(st, node->name, st->revision);
	cm_tomb_prune(st);
	return 1;
}

/* The node leaves the peer set (a tombstone, as for a deletion). */
static int cm_stale_mark(struct cm_state *st, struct cm_node *node, uint64_t now_ms)
{
	int ret;

	if (node->public_key[0]) {
		ret = st->ops->mark_stale(st, node);
		if (ret < 0)
			st->store_errors++;
		if (ret <= 0)
			return ret; /* 0: it changed meanwhile (another manager): live */
	}
	cm_stale_mark_mem(st, node, now_ms);
	return 0;
}

void cm_stale_mark_mem(struct cm_state *st, struct cm_node *node, uint64_t now_ms)
{
	uint64_t seen_ms = node->seen_ms;

	cm_stale_unlink(st, node);
	node->stale = true;
	node->stale_ms = now_ms;
	cm_stale_append(st, node);
	if (!node->stale_logged)
		log_info("node stale", "node=%s not_seen_ms=%llu", node->name,
			 (unsigned long long)(now_ms - seen_ms));
	node->stale_logged = true;
}

uint64_t cm_stale_now(const struct cm_state *st)
{
	return cm_now(st);
}

/* After a failure (the database refused), the next try waits this long
 * rather than failing, and logging, every loop turn. */
#define CM_EXPIRE_RETRY_MS 1000

int cm_state_expire(struct cm_state *st)
{
	uint64_t now = cm_now(st);
	int n = 0, ret = 0;

	if (now < st->expire_retry_ms)
		return 0;
	while (st->ttl_ms && st->live_first && now - st->live_first->seen_ms > st->ttl_ms) {
		ret = cm_stale_mark(st, st->live_first, now);
		if (ret)
			goto err;
		n++;
	}
	while (st->delete_after_ms && st->stale_first &&
	       now - st->stale_first->stale_ms > st->delete_after_ms) {
		char name[CM_NAME_MAX + 1];

		snprintf(name, sizeof(name), "%s", st->stale_first->name);
		ret = cm_state_delete(st, name);
		if (ret)
			goto err;
		log_info("stale node deleted", "node=%s delete_after_ms=%llu", name,
			 (unsigned long long)st->delete_after_ms);
		n++;
	}
	return n;

err:
	st->expire_retry_ms = now + CM_EXPIRE_RETRY_MS;
	return ret;
}

void cm_state_set_expiry(struct cm_state *st, uint64_t ttl_ms, uint64_t delete_after_ms)
{
	st->ttl_ms = ttl_ms;
	st->delete_after_ms = delete_after_ms;
}

void cm_state_set_clock(struct cm_state *st, uint64_t (*now_ms)(void))
{
	st->now_ms = now_ms;
	for (size_t i = 0; i < st->n_nodes; i++)
		cm_stale_link(st, st->nodes[i]);
}

size_t cm_state_stale_count(const struct cm_state *st)
{
	return st->n_stale;
}

uint64_t cm_state_wait_cap_ms(const struct cm_state *st)
{
	if (!st->ttl_ms)
		return UINT64_MAX;
	return st->ttl_ms / 2 > CM_MIN_WAIT_CAP_MS ? st->ttl_ms / 2 : CM_MIN_WAIT_CAP_MS;
}

/*
 * cm_state's group commit and change history (see state.h).
 */
#include "state.h"
#include "state_priv.h"

#include "db.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Group commit: the first change of a loop turn opens the transaction, each
 * change is a savepoint in it (undone alone when it fails), and
 * cm_state_commit writes them all with one fsync.
 */
int cm_tx_begin(struct cm_state *st)
{
	int ret;

	if (!st->in_batch) {
		ret = db_begin(st->db);
		if (ret)
			return ret;
		st->in_batch = true;
	}
	return db_exec(st->db, "SAVEPOINT change");
}

int cm_tx_end(struct cm_state *st)
{
	return db_exec(st->db, "RELEASE change");
}

void cm_tx_undo(struct cm_state *st)
{
	if (db_exec(st->db, "ROLLBACK TO change") || db_exec(st->db, "RELEASE change"))
		log_warnx("undoing a failed change failed", NULL);
}

bool cm_sqlite_pending(const struct cm_state *st)
{
	return st->in_batch;
}

uint64_t cm_state_commits(const struct cm_state *st)
{
	return st->commits;
}

int cm_sqlite_commit(struct cm_state *st)
{
	int ret;

	if (!st->in_batch)
		return 0;
	/* The stored revision moves with the batch, so a restarted manager
	 * never answers an old revision for a new peer set. */
	ret = cm_sql(st, "UPDATE meta SET value = ? WHERE key = 'revision'", "i",
		     (int64_t)st->revision);
	if (!ret)
		ret = cm_sql(st, "UPDATE meta SET value = ? WHERE key = 'history_floor'", "i",
			     (int64_t)st->floor);
	if (!ret)
		ret = db_commit(st->db);
	if (ret) {
		log_warnx("committing changes failed", "err=%s", strerror(-ret));
		db_rollback(st->db);
	}
	st->in_batch = false;
	st->commits++;
	if (!ret)
		st->committed = st->revision;
	return ret;
}

/* The node's row changed at a new revision: it moves to the end of the
 * history. */
void cm_mod_unlink(struct cm_state *st, struct cm_node *node)
{
	if (node->mod_prev)
		node->mod_prev->mod_next = node->mod_next;
	else if (st->mod_first == node)
		st->mod_first = node->mod_next;
	if (node->mod_next)
		node->mod_next->mod_prev = node->mod_prev;
	else if (st->mod_last == node)
		st->mod_last = node->mod_prev;
	node->mod_prev = node->mod_next = NULL;
}

void cm_mod_append(struct cm_state *st, struct cm_node *node)
{
	node->mod_prev = st->mod_last;
	node->mod_next = NULL;
	if (st->mod_last)
		st->mod_last->mod_next = node;
	else
		st->mod_first = node;
	st->mod_last = node;
}

void cm_touch_mod(struct cm_state *st, struct cm_node *node, uint64_t rev)
{
	cm_mod_unlink(st, node);
	node->mod_revision = rev;
	cm_mod_append(st, node);
}

uint64_t cm_state_committed(const struct cm_state *st)
{
	return st->committed;
}

uint64_t cm_state_floor(const struct cm_state *st)
{
	return st->floor;
}

const struct cm_node *cm_state_last_changed(const struct cm_state *st)
{
	return st->mod_last;
}

const struct cm_tombstone *cm_state_tombstones(const struct cm_state *st, uint64_t since,
					       size_t *n)
{
	size_t lo = 0, hi = st->n_tombs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->tombs[mid].revision <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	*n = st->n_tombs - lo;
	return st->tombs + lo;
}

int cm_tomb_reserve(struct cm_state *st)
{
	struct cm_tombstone *t;
	size_t cap;

	if (st->n_tombs < st->cap_tombs)
		return 0;
	cap = st->cap_tombs ? st->cap_tombs * 2 : 64;
	t = reallocarray(st->tombs, cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	st->tombs = t;
	st->cap_tombs = cap;
	return 0;
}

/* Room must have been reserved (cm_tomb_reserve). */
void cm_tomb_push(struct cm_state *st, const char *name, uint64_t rev)
{
	struct cm_tombstone *t = &st->tombs[st->n_tombs++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->revision = rev;
}

/* Keeps at most CM_HISTORY_TOMBSTONES tombstones: dropping the oldest raises
 * the floor to its revision (a delta from below would miss that deletion). */
void cm_tomb_prune(struct cm_state *st)
{
	size_t drop;

	if (st->n_tombs <= CM_HISTORY_TOMBSTONES)
		return;
	drop = st->n_tombs - CM_HISTORY_TOMBSTONES;
	st->floor = st->tombs[drop - 1].revision;
	memmove(st->tombs, st->tombs + drop, (st->n_tombs - drop) * sizeof(*st->tombs));
	st->n_tombs -= drop;
}

static int cm_mod_cmp(const void *a, const void *b)
{
	const struct cm_node *x = *(struct cm_node *const *)a;
	const struct cm_node *y = *(struct cm_node *const *)b;

	return x->mod_revision < y->mod_revision ? -1 : x->mod_revision > y->mod_revision;
}

/* The history from the rows: nodes in mod_revision order, the tombstones,
 * the floor. */
int cm_load_history(struct cm_state *st, char *err, size_t errlen)
{
	struct cm_node **order = NULL;
	sqlite3_stmt *stmt = NULL;
	int rc, ret;

	if (st->n_nodes) {
		order = malloc(st->n_nodes * sizeof(*order));
		if (!order)
			return -ENOMEM;
		memcpy(order, st->nodes, st->n_nodes * sizeof(*order));
		qsort(order, st->n_nodes, sizeof(*order), cm_mod_cmp);
		for (size_t i = 0; i < st->n_nodes; i++)
			cm_mod_append(st, order[i]);
		free(order);
	}
	rc = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'history_floor'",
				-1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret)
		goto err_sql;
	ret = -EPROTO;
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		snprintf(err, errlen, "database has no history floor");
		goto err_finalize;
	}
	st->floor = (uint64_t)sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	rc = sqlite3_prepare_v2(st->db, "SELECT name, revision FROM tombstones "
				"ORDER BY revision", -1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret)
		goto err_sql;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		uint64_t rev = (uint64_t)sqlite3_column_int64(stmt, 1);
		struct cm_node *node;

		ret = -EPROTO;
		if (!name || strlen(name) > CM_NAME_MAX) {
			snprintf(err, errlen, "corrupt tombstone row in database");
			goto err_finalize;
		}
		/* A peer's tombstone newer than its row: it is stale (stale.c). */
		node = cm_state_find(st, name);
		if (node && node->public_key[0] && rev > node->mod_revision)
			node->stale = true;
		/* Kept only to mark a stale node: below the history. */
		if (rev <= st->floor)
			continue;
		ret = cm_tomb_reserve(st);
		if (ret)
			goto err_finalize;
		cm_tomb_push(st, name, rev);
	}
	ret = db_errno(rc == SQLITE_DONE ? SQLITE_OK : rc);
	if (ret)
		goto err_sql;
	sqlite3_finalize(stmt);
	cm_tomb_prune(st);
	return 0;

err_sql:
	snprintf(err, errlen, "reading the database failed: %s", sqlite3_errmsg(st->db));
err_finalize:
	sqlite3_finalize(stmt);
	return ret;
}

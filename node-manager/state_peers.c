/*
 * The stored node peers (table node_peers of node.db) and their in-memory
 * copy nm->peers, sorted by key. The copy mirrors the table exactly, so a
 * change is written as the difference only: a one-peer delta is one row in
 * one transaction, whatever the size of the cluster. The in-memory copy
 * changes only once the transaction is committed; a failed write changes
 * nothing and the caller retries the same change.
 */
#include "nm.h"

#include "db.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char nm_sql_upsert[] =
	"INSERT OR REPLACE INTO node_peers(public_key, name, endpoint, allowed_ips)"
	" VALUES(?, ?, ?, ?)";
static const char nm_sql_delete[] = "DELETE FROM node_peers WHERE public_key = ?";

void nm_peers_free(struct nm_peer *peers, size_t n)
{
	if (!peers)
		return;
	for (size_t i = 0; i < n; i++) {
		free(peers[i].name);
		free(peers[i].allowed);
	}
	free(peers);
}

static void nm_peer_clear(struct nm_peer *p)
{
	free(p->name);
	free(p->allowed);
	memset(p, 0, sizeof(*p));
}

static int nm_peer_cmp(const void *a, const void *b)
{
	return memcmp(((const struct nm_peer *)a)->public_key,
		      ((const struct nm_peer *)b)->public_key, WG_KEY_LEN);
}

/* Node peers are kept sorted by key: a sync round and a metrics scrape look
 * every interface peer up, and a cluster may have thousands of nodes. */
void nm_peers_sort(struct nm_peer *peers, size_t n)
{
	if (n > 1)
		qsort(peers, n, sizeof(*peers), nm_peer_cmp);
}

const struct nm_peer *nm_state_find_peer(const struct nm *nm,
					 const uint8_t key[static WG_KEY_LEN])
{
	struct nm_peer probe;

	if (!nm->n_peers)
		return NULL;
	memcpy(probe.public_key, key, WG_KEY_LEN);
	return bsearch(&probe, nm->peers, nm->n_peers, sizeof(*nm->peers), nm_peer_cmp);
}

static bool nm_peer_equal(const struct nm_peer *a, const struct nm_peer *b)
{
	if (memcmp(a->public_key, b->public_key, WG_KEY_LEN) || strcmp(a->name, b->name) ||
	    strcmp(a->endpoint, b->endpoint) || a->n_allowed != b->n_allowed)
		return false;
	for (size_t j = 0; j < a->n_allowed; j++)
		if (a->allowed[j].prefixlen != b->allowed[j].prefixlen ||
		    !ipaddr_equal(&a->allowed[j].addr, &b->allowed[j].addr))
			return false;
	return true;
}

bool nm_state_peers_same(const struct nm *nm, const struct nm_peer *peers, size_t n)
{
	if (n != nm->n_peers)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!nm_peer_equal(&peers[i], &nm->peers[i]))
			return false;
	return true;
}

/* "a,b,c" -> nets. */
static int nm_parse_net_list(const char *s, struct ipnet **out, size_t *n)
{
	char *copy, *tok, *save = NULL;
	struct ipnet *nets = NULL, *tmp;
	int ret = 0;

	*out = NULL;
	*n = 0;
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tmp = reallocarray(nets, *n + 1, sizeof(*nets));
		if (!tmp) {
			ret = -ENOMEM;
			goto err_free;
		}
		nets = tmp;
		ret = ipnet_parse(tok, &nets[*n], false);
		if (ret < 0)
			goto err_free;
		ipnet_mask(&nets[*n]);
		(*n)++;
	}
	free(copy);
	*out = nets;
	return 0;

err_free:
	free(nets);
	free(copy);
	*n = 0;
	return ret;
}

static const char *nm_peer_col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

static int nm_peers_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		log_error("prepare statement failed", "sql=%s err=%s", sql, sqlite3_errmsg(db));
		return db_errno(rc);
	}
	return 0;
}

int nm_state_load_peers(struct nm *nm)
{
	sqlite3_stmt *st = NULL;
	struct nm_peer *peers = NULL, *tmp;
	size_t n = 0, cap = 0;
	int rc, ret;

	ret = nm_peers_prepare(nm->db,
			       "SELECT public_key, name, endpoint, allowed_ips FROM node_peers",
			       &st);
	if (ret < 0)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct nm_peer *p;

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = reallocarray(peers, cap, sizeof(*peers));
			if (!tmp) {
				ret = -ENOMEM;
				goto err_free_peers;
			}
			peers = tmp;
		}
		p = &peers[n];
		memset(p, 0, sizeof(*p));
		n++;
		if (key_from_base64(p->public_key, nm_peer_col(st, 0), NULL, 0) < 0) {
			ret = -EINVAL;
			goto err_free_peers;
		}
		p->name = strdup(nm_peer_col(st, 1));
		if (!p->name) {
			ret = -ENOMEM;
			goto err_free_peers;
		}
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", nm_peer_col(st, 2));
		ret = nm_parse_net_list(nm_peer_col(st, 3), &p->allowed, &p->n_allowed);
		if (ret < 0)
			goto err_free_peers;
	}
	if (rc != SQLITE_DONE) {
		ret = db_errno(rc);
		goto err_free_peers;
	}
	sqlite3_finalize(st);
	nm_peers_sort(peers, n);
	nm_peers_free(nm->peers, nm->n_peers);
	nm->peers = peers;
	nm->n_peers = n;
	return 0;

err_free_peers:
	nm_peers_free(peers, n);
	sqlite3_finalize(st);
	return ret;
}

/* The two statements of a peer transaction, prepared once for all rows. */
struct nm_peer_tx {
	sqlite3 *db;
	sqlite3_stmt *upsert, *delete;
};

static void nm_peer_tx_end(struct nm_peer_tx *tx)
{
	sqlite3_finalize(tx->upsert);
	sqlite3_finalize(tx->delete);
	tx->upsert = tx->delete = NULL;
}

static int nm_peer_tx_begin(struct nm_peer_tx *tx, sqlite3 *db)
{
	int ret;

	*tx = (struct nm_peer_tx){ .db = db };
	ret = nm_peers_prepare(db, nm_sql_upsert, &tx->upsert);
	if (ret == 0)
		ret = nm_peers_prepare(db, nm_sql_delete, &tx->delete);
	if (ret == 0)
		ret = db_begin(db);
	if (ret < 0)
		nm_peer_tx_end(tx);
	return ret;
}

static int nm_peer_tx_step(struct nm_peer_tx *tx, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE)
		return 0;
	log_error("storing node peers failed", "statement=%s err=%s", what,
		  sqlite3_errmsg(tx->db));
	return db_errno(rc);
}

static int nm_peer_tx_delete(struct nm_peer_tx *tx, const uint8_t key[static WG_KEY_LEN])
{
	char b64[WG_KEY_B64_LEN + 1];

	key_to_base64(b64, key);
	sqlite3_bind_text(tx->delete, 1, b64, -1, SQLITE_TRANSIENT);
	return nm_peer_tx_step(tx, tx->delete, "delete");
}

static int nm_peer_tx_upsert(struct nm_peer_tx *tx, const struct nm_peer *p)
{
	char b64[WG_KEY_B64_LEN + 1], buf[IPNET_STRLEN];
	size_t len = 0, cap = p->n_allowed * (IPNET_STRLEN + 1) + 1;
	char *list;
	int ret;

	list = calloc(1, cap);
	if (!list)
		return -ENOMEM;
	for (size_t j = 0; j < p->n_allowed; j++)
		len += (size_t)snprintf(list + len, cap - len, "%s%s", j ? "," : "",
					ipnet_format(&p->allowed[j], buf));
	key_to_base64(b64, p->public_key);
	sqlite3_bind_text(tx->upsert, 1, b64, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(tx->upsert, 2, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(tx->upsert, 3, p->endpoint, -1, SQLITE_STATIC);
	sqlite3_bind_text(tx->upsert, 4, list, -1, SQLITE_STATIC);
	ret = nm_peer_tx_step(tx, tx->upsert, "upsert");
	free(list);
	return ret;
}

static int nm_peer_tx_commit(struct nm_peer_tx *tx, int ret)
{
	if (ret == 0)
		ret = db_commit(tx->db);
	if (ret < 0)
		db_rollback(tx->db);
	nm_peer_tx_end(tx);
	return ret;
}

/* Sorts peers by key and drops all but the first of equal keys (the
 * table holds one row per key). Returns the new count. */
static size_t nm_peers_sort_unique(struct nm_peer *peers, size_t n)
{
	size_t k = 0;

	nm_peers_sort(peers, n);
	for (size_t i = 0; i < n; i++) {
		if (k && !nm_peer_cmp(&peers[k - 1], &peers[i])) {
			log_warnx("node peer with a duplicate key dropped", "name=%s",
				  peers[i].name);
			nm_peer_clear(&peers[i]);
			continue;
		}
		if (k != i) {
			peers[k] = peers[i];
			memset(&peers[i], 0, sizeof(peers[i]));
		}
		k++;
	}
	return k;
}

int nm_state_replace_peers(struct nm *nm, struct nm_peer *peers, size_t n)
{
	struct nm_peer_tx tx;
	size_t i = 0, j = 0;
	int ret;

	n = nm_peers_sort_unique(peers, n);
	ret = nm_peer_tx_begin(&tx, nm->db);
	if (ret < 0)
		goto err_free;
	/* Both lists sorted by key: one merge pass finds the difference. */
	while (ret == 0 && (i < nm->n_peers || j < n)) {
		int c = i == nm->n_peers ? 1 : j == n ? -1 :
			nm_peer_cmp(&nm->peers[i], &peers[j]);

		if (c < 0) {
			ret = nm_peer_tx_delete(&tx, nm->peers[i++].public_key);
		} else if (c > 0) {
			ret = nm_peer_tx_upsert(&tx, &peers[j++]);
		} else {
			if (!nm_peer_equal(&nm->peers[i], &peers[j]))
				ret = nm_peer_tx_upsert(&tx, &peers[j]);
			i++;
			j++;
		}
	}
	ret = nm_peer_tx_commit(&tx, ret);
	if (ret < 0)
		goto err_free;
	nm_peers_free(nm->peers, nm->n_peers);
	nm->peers = peers;
	nm->n_peers = n;
	return 0;

err_free:
	nm_peers_free(peers, n);
	return ret;
}

static int nm_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, WG_KEY_LEN);
}

static bool nm_key_in(const uint8_t (*keys)[WG_KEY_LEN], size_t n, const uint8_t *key)
{
	return n && bsearch(key, keys, n, WG_KEY_LEN, nm_key_cmp);
}

static bool nm_upsert_has(const struct nm_peer *peers, size_t n, const uint8_t *key)
{
	struct nm_peer probe;

	if (!n)
		return false;
	memcpy(probe.public_key, key, WG_KEY_LEN);
	return bsearch(&probe, peers, n, sizeof(*peers), nm_peer_cmp);
}

int nm_state_change_peers(struct nm *nm, struct nm_peer *upsert, size_t n_upsert,
			  const uint8_t (*removed)[WG_KEY_LEN], size_t n_removed)
{
	uint8_t (*gone)[WG_KEY_LEN] = NULL;
	struct nm_peer *merged = NULL;
	struct nm_peer_tx tx;
	size_t n_gone = 0, n = 0, i, j;
	int ret = -ENOMEM;

	n_upsert = nm_peers_sort_unique(upsert, n_upsert);
	/* The removed keys that are stored and not upserted again, sorted. */
	gone = calloc(n_removed + 1, sizeof(*gone));
	if (!gone)
		goto out;
	for (i = 0; i < n_removed; i++)
		if (nm_state_find_peer(nm, removed[i]) &&
		    !nm_upsert_has(upsert, n_upsert, removed[i]))
			memcpy(gone[n_gone++], removed[i], WG_KEY_LEN);
	if (n_gone > 1)
		qsort(gone, n_gone, sizeof(*gone), nm_key_cmp);
	/* Everything that can fail before the transaction: the new list is
	 * built from the old one after the commit, without failing. */
	merged = calloc(nm->n_peers + n_upsert + 1, sizeof(*merged));
	if (!merged)
		goto out;

	ret = nm_peer_tx_begin(&tx, nm->db);
	if (ret < 0)
		goto out;
	for (i = 0; ret == 0 && i < n_gone; i++)
		if (i == 0 || nm_key_cmp(gone[i - 1], gone[i]))
			ret = nm_peer_tx_delete(&tx, gone[i]);
	for (i = 0; ret == 0 && i < n_upsert; i++) {
		const struct nm_peer *old = nm_state_find_peer(nm, upsert[i].public_key);

		if (!old || !nm_peer_equal(old, &upsert[i]))
			ret = nm_peer_tx_upsert(&tx, &upsert[i]);
	}
	ret = nm_peer_tx_commit(&tx, ret);
	if (ret < 0)
		goto out;

	/* Merge the old list (minus gone) with the upserted peers. */
	for (i = 0, j = 0; i < nm->n_peers || j < n_upsert;) {
		int c = i == nm->n_peers ? 1 : j == n_upsert ? -1 :
			nm_peer_cmp(&nm->peers[i], &upsert[j]);

		if (c < 0) {
			if (nm_key_in((const uint8_t (*)[WG_KEY_LEN])gone, n_gone,
				      nm->peers[i].public_key))
				nm_peer_clear(&nm->peers[i]);
			else
				merged[n++] = nm->peers[i];
			i++;
			continue;
		}
		if (c == 0)
			nm_peer_clear(&nm->peers[i++]);
		merged[n++] = upsert[j];
		memset(&upsert[j], 0, sizeof(upsert[j]));
		j++;
	}
	free(nm->peers);
	nm->peers = merged;
	nm->n_peers = n;
	merged = NULL;
	n_upsert = 0;
out:
	free(merged);
	free(gone);
	nm_peers_free(upsert, n_upsert);
	return ret;
}

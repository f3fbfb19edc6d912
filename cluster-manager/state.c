#include "state.h"
#include "state_priv.h"

#include "db.h"
#include "log.h"
#include "prefixalloc.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

/* Children a stored subnet of an unusual size may reserve before start-up
 * refuses (a /16 stored where /24s are handed out reserves 256). */
#define CM_MAX_COVERED_CHILDREN (1u << 20)


static const char *const cm_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE nodes ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  public_key TEXT NOT NULL DEFAULT '',"
	"  endpoint TEXT NOT NULL DEFAULT '',"
	"  last_seen INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE TABLE subnets ("
	"  cidr TEXT PRIMARY KEY NOT NULL,"
	"  family INTEGER NOT NULL CHECK (family IN (4, 6)),"
	"  node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,"
	"  UNIQUE (node, family)"
	");"
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  value INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"INSERT INTO meta (key, value) VALUES ('revision', 0);",
	/* 1 -> 2: the change history. Rows carry the revision of their last
	 * change; deleted peers leave a tombstone. Nothing before the upgrade
	 * is known, so the history starts at the current revision. */
	"ALTER TABLE nodes ADD COLUMN mod_revision INTEGER NOT NULL DEFAULT 0;"
	"UPDATE nodes SET mod_revision = (SELECT value FROM meta WHERE key = 'revision');"
	"CREATE TABLE tombstones ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  revision INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"INSERT INTO meta (key, value) SELECT 'history_floor', value FROM meta"
	"  WHERE key = 'revision';",
	/* 2 -> 3: external peers and gateways (external.c). */
	"ALTER TABLE nodes ADD COLUMN location TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE nodes ADD COLUMN gateway INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE nodes ADD COLUMN public_endpoint TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE external_peers ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  public_key TEXT NOT NULL UNIQUE,"
	"  address TEXT NOT NULL UNIQUE,"
	"  location TEXT NOT NULL DEFAULT '',"
	"  gateway TEXT NOT NULL DEFAULT ''"
	") WITHOUT ROWID;",
};

static int fam_number(enum cm_family fam)
{
	return fam == CM_V4 ? 4 : 6;
}

enum cm_family cm_fam_of(const struct ipnet *n)
{
	return n->addr.family == AF_INET ? CM_V4 : CM_V6;
}

/*
 * Runs one statement to completion. types: one letter per bound parameter,
 * 't' const char *, 'i' int64_t. 0 or negative errno.
 */
int cm_sql(struct cm_state *st, const char *sql, const char *types, ...)
{
	sqlite3_stmt *stmt = NULL;
	va_list ap;
	int rc, ret;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret) {
		log_warnx("sqlite prepare failed", "sql=%s err=%s", sql,
			  sqlite3_errmsg(st->db));
		return ret;
	}
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 't')
			rc = sqlite3_bind_text(stmt, i + 1, va_arg(ap, const char *),
					       -1, SQLITE_TRANSIENT);
		else
			rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
		if (rc != SQLITE_OK)
			break;
	}
	va_end(ap);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
			;
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	ret = db_errno(rc);
	if (ret)
		log_warnx("sqlite statement failed", "sql=%s err=%s", sql,
			  sqlite3_errmsg(st->db));
	sqlite3_finalize(stmt);
	return ret;
}

size_t cm_name_search(void *const *v, size_t n, size_t name_off, const char *name, bool *found)
{
	size_t lo = 0, hi = n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp((const char *)v[mid] + name_off, name);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of name in the sorted array, or where it would go. */
static size_t cm_search(const struct cm_state *st, const char *name, bool *found)
{
	return cm_name_search((void *const *)st->nodes, st->n_nodes, offsetof(struct cm_node, name),
			      name, found);
}

struct cm_node *cm_state_find(const struct cm_state *st, const char *name)
{
	bool found;
	size_t i = cm_search(st, name, &found);

	return found ? st->nodes[i] : NULL;
}

struct cm_node *const *cm_state_nodes(const struct cm_state *st, size_t *n)
{
	*n = st->n_nodes;
	return st->nodes;
}

uint64_t cm_state_revision(const struct cm_state *st)
{
	return st->revision;
}

char **cm_state_cidrs(const struct cm_state *st, size_t *n)
{
	*n = st->n_cidrs;
	return (char **)st->cidrs;
}

int cm_node_slot(struct cm_state *st)
{
	struct cm_node **grown;
	size_t cap;

	if (st->n_nodes < st->cap_nodes)
		return 0;
	cap = st->cap_nodes ? st->cap_nodes * 2 : 64;
	grown = reallocarray(st->nodes, cap, sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	st->nodes = grown;
	st->cap_nodes = cap;
	return 0;
}

/* Capacity must have been reserved (cm_node_slot). */
void cm_node_insert(struct cm_state *st, struct cm_node *node)
{
	bool found;
	size_t i = cm_search(st, node->name, &found);

	memmove(&st->nodes[i + 1], &st->nodes[i],
		(st->n_nodes - i) * sizeof(st->nodes[0]));
	st->nodes[i] = node;
	st->n_nodes++;
}

void cm_node_remove(struct cm_state *st, struct cm_node *node)
{
	bool found;
	size_t i = cm_search(st, node->name, &found);

	if (!found || st->nodes[i] != node)
		return;
	memmove(&st->nodes[i], &st->nodes[i + 1], (st->n_nodes - i - 1) * sizeof(st->nodes[0]));
	st->n_nodes--;
}

void cm_node_refresh(struct cm_node *node)
{
	size_t off = 0;

	node->n_subnets = 0;
	node->address[0] = '\0';
	for (int f = 0; f < CM_NFAM; f++) {
		char host[IPNET_STRLEN];
		struct ipaddr a;

		if (!node->has_subnet[f])
			continue;
		ipnet_format(&node->subnet[f], node->subnet_str[f]);
		node->subnets[node->n_subnets++] = node->subnet_str[f];
		if (ipnet_first_host(&node->subnet[f], &a))
			continue;
		off += (size_t)snprintf(node->address + off, sizeof(node->address) - off,
					"%s%s/%u", off ? "," : "", ipaddr_format(&a, host),
					node->subnet[f].prefixlen);
		if (off >= sizeof(node->address))
			off = sizeof(node->address) - 1;
	}
}

/* Bits [from, to) of the address as an integer (to - from <= 64). */
static uint64_t cm_addr_bits(const struct ipaddr *a, unsigned int from, unsigned int to)
{
	unsigned int base = a->family == AF_INET ? 96 : 0;
	uint64_t v = 0;

	for (unsigned int i = from; i < to; i++) {
		unsigned int b = base + i;

		v = v << 1 | ((a->bytes[b / 8] >> (7 - b % 8)) & 1);
	}
	return v;
}

/*
 * Marks a subnet loaded from the database as used. Subnets of the configured
 * size are reserved exactly; a subnet of another size (the prefix length was
 * changed) reserves every child it overlaps, so nothing handed out later can
 * overlap it; one outside the CIDRs is kept as it is.
 */
int cm_subnet_reserve(struct cm_state *st, const char *name, const struct ipnet *net)
{
	enum cm_family f = cm_fam_of(net);
	struct prefixalloc *pa = st->pa[f];
	const struct ipnet *parent = &st->cfg.cidr[f];
	unsigned int cl = st->cfg.childlen[f];
	char buf[IPNET_STRLEN];
	uint64_t first, count;
	int ret;

	if (!pa || !ipnet_overlaps(parent, net)) {
		log_warnx("stored subnet lies outside the cluster CIDRs; kept",
			  "node=%s subnet=%s", name, ipnet_format(net, buf));
		return 0;
	}
	if (net->prefixlen != cl)
		log_warnx("stored subnet differs from the node prefix length; kept",
			  "node=%s subnet=%s node_prefix_length=%u", name,
			  ipnet_format(net, buf), cl);
	if (net->prefixlen >= cl && ipnet_contains_net(parent, net)) {
		struct ipnet child = *net;

		child.prefixlen = cl;
		ipnet_mask(&child);
		ret = prefixalloc_reserve(pa, &child);
		if (ret == -EEXIST && net->prefixlen == cl)
			log_warnx("stored subnets overlap", "node=%s subnet=%s", name,
				  ipnet_format(net, buf));
		return ret == -EEXIST ? 0 : ret;
	}
	if (net->prefixlen <= parent->prefixlen) {
		first = 0;
		count = prefixalloc_capacity(pa);
	} else {
		if (cl - net->prefixlen >= 32)
			return -E2BIG;
		first = cm_addr_bits(&net->addr, parent->prefixlen, cl);
		count = UINT64_C(1) << (cl - net->prefixlen);
	}
	if (count > CM_MAX_COVERED_CHILDREN)
		return -E2BIG;
	for (uint64_t i = 0; i < count; i++) {
		ret = prefixalloc_reserve_index(pa, first + i);
		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

/* Frees a subnet of the configured size; others stay reserved until restart. */
void cm_subnet_release(struct cm_state *st, const struct ipnet *net)
{
	enum cm_family f = cm_fam_of(net);

	if (st->pa[f] && net->prefixlen == st->cfg.childlen[f] &&
	    ipnet_contains_net(&st->cfg.cidr[f], net))
		prefixalloc_release(st->pa[f], net);
}

static int cm_load(struct cm_state *st, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret;

	rc = sqlite3_prepare_v2(st->db,
				"SELECT name, public_key, endpoint, last_seen, mod_revision "
				"FROM nodes",
				-1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret)
		goto err_sql;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		const char *pub = (const char *)sqlite3_column_text(stmt, 1);
		const char *ep = (const char *)sqlite3_column_text(stmt, 2);
		struct cm_node *node;

		ret = -EPROTO;
		if (!name || strlen(name) > CM_NAME_MAX || !pub ||
		    strlen(pub) > WG_KEY_B64_LEN || !ep || strlen(ep) > CM_ENDPOINT_MAX) {
			snprintf(err, errlen, "corrupt node row in database: `%s'",
				 name ? name : "(null)");
			goto err_finalize;
		}
		ret = cm_node_slot(st);
		if (ret)
			goto err_finalize;
		node = calloc(1, sizeof(*node));
		ret = -ENOMEM;
		if (!node)
			goto err_finalize;
		strcpy(node->name, name);
		strcpy(node->public_key, pub);
		strcpy(node->endpoint, ep);
		node->last_seen = (time_t)sqlite3_column_int64(stmt, 3);
		node->mod_revision = (uint64_t)sqlite3_column_int64(stmt, 4);
		cm_node_insert(st, node);
	}
	ret = db_errno(rc == SQLITE_DONE ? SQLITE_OK : rc);
	if (ret)
		goto err_sql;
	sqlite3_finalize(stmt);
	stmt = NULL;

	rc = sqlite3_prepare_v2(st->db, "SELECT cidr, node FROM subnets", -1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret)
		goto err_sql;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *cidr = (const char *)sqlite3_column_text(stmt, 0);
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		struct cm_node *node = name ? cm_state_find(st, name) : NULL;
		struct ipnet net;
		enum cm_family f;

		ret = -EPROTO;
		if (!cidr || !node || ipnet_parse(cidr, &net, true)) {
			snprintf(err, errlen, "corrupt subnet row in database: `%s' of node `%s'",
				 cidr ? cidr : "(null)", name ? name : "(null)");
			goto err_finalize;
		}
		f = cm_fam_of(&net);
		if (node->has_subnet[f]) {
			snprintf(err, errlen, "node `%s' has two subnets of one family in the database",
				 name);
			goto err_finalize;
		}
		ret = cm_subnet_reserve(st, name, &net);
		if (ret) {
			snprintf(err, errlen, "cannot reserve stored subnet `%s' of node `%s': %s",
				 cidr, name, strerror(-ret));
			goto err_finalize;
		}
		node->has_subnet[f] = true;
		node->subnet[f] = net;
	}
	ret = db_errno(rc == SQLITE_DONE ? SQLITE_OK : rc);
	if (ret)
		goto err_sql;
	sqlite3_finalize(stmt);
	stmt = NULL;

	rc = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'revision'",
				-1, &stmt, NULL);
	ret = db_errno(rc);
	if (ret)
		goto err_sql;
	rc = sqlite3_step(stmt);
	ret = -EPROTO;
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "database has no revision");
		goto err_finalize;
	}
	st->revision = st->committed = (uint64_t)sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	stmt = NULL;

	ret = cm_load_history(st, err, errlen);
	if (ret)
		return ret;
	for (size_t i = 0; i < st->n_nodes; i++) {
		cm_node_refresh(st->nodes[i]);
		cm_stale_link(st, st->nodes[i]);
	}
	return cm_ext_load(st, err, errlen);

err_sql:
	snprintf(err, errlen, "reading the database failed: %s", sqlite3_errmsg(st->db));
err_finalize:
	sqlite3_finalize(stmt);
	return ret;
}

static void cm_free_nodes(struct cm_state *st)
{
	cm_ext_free(st);
	for (size_t i = 0; i < st->n_nodes; i++) {
		free(st->nodes[i]->allowed);
		free(st->nodes[i]);
	}
	free(st->nodes);
	st->nodes = NULL;
	st->n_nodes = st->cap_nodes = 0;
	st->mod_first = st->mod_last = NULL;
	st->live_first = st->live_last = st->stale_first = st->stale_last = NULL;
	st->n_stale = 0;
	free(st->tombs);
	st->tombs = NULL;
	st->n_tombs = st->cap_tombs = 0;
}

int cm_state_init(struct cm_state *st, const struct cm_config *cfg, char *err, size_t errlen)
{
	st->cfg = *cfg;
	for (int f = 0; f < CM_NFAM; f++) {
		if (!cfg->has_cidr[f])
			continue;
		st->pa[f] = prefixalloc_new(&cfg->cidr[f], cfg->childlen[f]);
		if (!st->pa[f]) {
			int ret = -errno;

			snprintf(err, errlen, "cannot split `%s' into /%u subnets: %s",
				 ipnet_format(&cfg->cidr[f], st->cidr_str[f]),
				 cfg->childlen[f], strerror(errno));
			cm_state_free_mem(st);
			return ret;
		}
		ipnet_format(&cfg->cidr[f], st->cidr_str[f]);
		st->cidrs[st->n_cidrs++] = st->cidr_str[f];
	}
	return 0;
}

void cm_state_free_mem(struct cm_state *st)
{
	cm_free_nodes(st);
	for (int f = CM_NFAM - 1; f >= 0; f--) {
		prefixalloc_free(st->pa[f]);
		st->pa[f] = NULL;
	}
}

static int cm_sqlite_allocate(struct cm_state *st, const char *name, struct cm_node **out);
static int cm_sqlite_register(struct cm_state *st, struct cm_node *node,
			      const char *public_key, const char *endpoint, bool *changed);
static int cm_sqlite_delete(struct cm_state *st, const char *name);

/* Both in the loop turn's transaction: one commit, one revision seen. */
static int cm_sqlite_register_node(struct cm_state *st, struct cm_node *node,
				   const struct cm_reg *r, bool *changed)
{
	bool info;
	int ret = cm_sqlite_register(st, node, r->public_key, r->endpoint, changed);

	if (!ret)
		ret = cm_sqlite_node_info(st, node, r->location, r->gateway, r->public_endpoint,
					  &info);
	if (!ret)
		*changed = *changed || info;
	return ret;
}
static int cm_sqlite_flush_seen(struct cm_state *st);

static int cm_sqlite_poll(struct cm_state *st)
{
	(void)st;
	return 0;
}

static int cm_sqlite_event_fd(const struct cm_state *st)
{
	(void)st;
	return -1;
}

static void cm_sqlite_close(struct cm_state *st)
{
	if (cm_state_flush_seen(st) || cm_state_commit(st))
		log_warnx("could not save lastSeen times", NULL);
	cm_state_free_mem(st);
	db_close(st->db);
	close(st->lock_fd);
}

static const struct cm_store_ops cm_sqlite_ops = {
	.name = "sqlite",
	.allocate = cm_sqlite_allocate,
	.register_node = cm_sqlite_register_node,
	.delete_node = cm_sqlite_delete,
	.mark_stale = cm_sqlite_mark_stale,
	.revive = cm_sqlite_revive,
	.ext_register = cm_sqlite_ext_register,
	.ext_delete = cm_sqlite_ext_delete,
	.flush_seen = cm_sqlite_flush_seen,
	.pending = cm_sqlite_pending,
	.commit = cm_sqlite_commit,
	.poll = cm_sqlite_poll,
	.event_fd = cm_sqlite_event_fd,
	.close = cm_sqlite_close,
};

struct cm_state *cm_state_open(const char *dir, const struct cm_config *cfg,
			       char *err, size_t errlen)
{
	struct cm_state *st;
	char path[4096];
	int ret;

	st = calloc(1, sizeof(*st));
	ret = -ENOMEM;
	if (!st) {
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	st->ops = &cm_sqlite_ops;
	ret = cm_state_init(st, cfg, err, errlen);
	if (ret)
		goto err_free;

	/* Two managers on one database would each trust their own mirror; the
	 * subnets' primary key would stop a duplicate, but as an error. */
	ret = -ENAMETOOLONG;
	if (snprintf(path, sizeof(path), "%s/cluster.lock", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "state directory path too long: `%s'", dir);
		goto err_free_mem;
	}
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open `%s': %s", path, strerror(errno));
		goto err_free_mem;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB)) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "state directory `%s' is in use by another cluster manager "
			 "(%s on `%s')", dir, strerror(errno), path);
		goto err_close_lock;
	}
	snprintf(path, sizeof(path), "%s/cluster.db", dir);
	st->db = db_open(path, cm_migrations,
			 sizeof(cm_migrations) / sizeof(cm_migrations[0]), err, errlen);
	if (!st->db) {
		ret = -errno;
		goto err_close_lock;
	}
	ret = cm_load(st, err, errlen);
	if (ret)
		goto err_close_db;
	st->last_flush = time(NULL);
	return st;

err_close_db:
	db_close(st->db);
err_close_lock:
	close(st->lock_fd);
err_free_mem:
	cm_state_free_mem(st);
err_free:
	free(st);
err:
	errno = -ret;
	return NULL;
}

void cm_state_close(struct cm_state *st)
{
	if (!st)
		return;
	st->ops->close(st);
	free(st);
}

/* The store's operations, counted when they fail. */
static int cm_store_result(struct cm_state *st, int ret)
{
	if (ret < 0 && ret != -ENOENT && ret != -ENOSPC && ret != -EINVAL)
		st->store_errors++;
	return ret;
}

int cm_state_allocate(struct cm_state *st, const char *name, struct cm_node **out)
{
	return cm_store_result(st, st->ops->allocate(st, name, out));
}

int cm_state_register_node(struct cm_state *st, struct cm_node *node, const struct cm_reg *r,
			   bool *changed)
{
	return cm_store_result(st, st->ops->register_node(st, node, r, changed));
}

int cm_state_register(struct cm_state *st, struct cm_node *node,
		      const char *public_key, const char *endpoint, bool *changed)
{
	const struct cm_reg r = { public_key, endpoint, node->location, node->public_endpoint,
				  node->gateway };

	return cm_state_register_node(st, node, &r, changed);
}

int cm_state_delete(struct cm_state *st, const char *name)
{
	return cm_store_result(st, st->ops->delete_node(st, name));
}

int cm_state_flush_seen(struct cm_state *st)
{
	st->last_flush = time(NULL);
	return cm_store_result(st, st->ops->flush_seen(st));
}

bool cm_state_pending(const struct cm_state *st)
{
	return st->ops->pending(st);
}

int cm_state_commit(struct cm_state *st)
{
	return cm_store_result(st, st->ops->commit(st));
}

int cm_state_poll(struct cm_state *st)
{
	return st->ops->poll(st);
}

int cm_state_event_fd(const struct cm_state *st)
{
	return st->ops->event_fd(st);
}

const char *cm_state_store(const struct cm_state *st)
{
	return st->ops->name;
}

uint64_t cm_state_store_errors(const struct cm_state *st)
{
	return st->store_errors;
}

static int cm_sqlite_allocate(struct cm_state *st, const char *name, struct cm_node **out)
{
	struct cm_node *node = cm_state_find(st, name), *fresh = NULL;
	struct ipnet got[CM_NFAM];
	bool want[CM_NFAM] = { false };
	bool any = false;
	time_t now = time(NULL);
	char buf[IPNET_STRLEN];
	int ret = 0;

	for (int f = 0; f < CM_NFAM; f++) {
		if (!st->pa[f] || (node && node->has_subnet[f]))
			continue;
		ret = prefixalloc_alloc(st->pa[f], &got[f]);
		if (ret)
			goto err_release;
		want[f] = any = true;
	}
	if (node && !any) {
		ret = cm_state_touch(st, node);
		if (ret < 0)
			return ret;
		*out = node;
		return 0;
	}
	if (!node) {
		ret = cm_node_slot(st);
		if (ret)
			goto err_release;
		fresh = calloc(1, sizeof(*fresh));
		ret = -ENOMEM;
		if (!fresh)
			goto err_release;
		snprintf(fresh->name, sizeof(fresh->name), "%s", name);
	}

	ret = cm_tx_begin(st);
	if (ret)
		goto err_free_fresh;
	if (fresh)
		ret = cm_sql(st, "INSERT INTO nodes (name, last_seen, mod_revision) "
			     "VALUES (?, ?, ?)", "tii", name, (int64_t)now,
			     (int64_t)st->revision + 1);
	else
		ret = cm_sql(st, "UPDATE nodes SET last_seen = ?, mod_revision = ? "
			     "WHERE name = ?", "iit", (int64_t)now,
			     (int64_t)st->revision + 1, name);
	if (ret)
		goto err_rollback;
	for (int f = 0; f < CM_NFAM; f++) {
		if (!want[f])
			continue;
		ret = cm_sql(st, "INSERT INTO subnets (cidr, family, node) VALUES (?, ?, ?)",
			     "tit", ipnet_format(&got[f], buf), (int64_t)fam_number(f), name);
		if (ret)
			goto err_rollback;
	}
	ret = cm_tx_end(st);
	if (ret)
		goto err_rollback;

	/* Done (on disk at the next cm_state_commit): nothing can fail now. */
	if (fresh) {
		cm_node_insert(st, fresh);
		node = fresh;
	}
	for (int f = 0; f < CM_NFAM; f++) {
		if (!want[f])
			continue;
		node->has_subnet[f] = true;
		node->subnet[f] = got[f];
		log_info("subnet allocated", "node=%s subnet=%s", name,
			 ipnet_format(&got[f], buf));
	}
	cm_node_refresh(node);
	cm_ext_node_refresh(node);
	node->last_seen = now;
	node->seen_dirty = false;
	cm_stale_seen(st, node);
	st->revision++;
	cm_touch_mod(st, node, st->revision);
	*out = node;
	return 0;

err_rollback:
	cm_tx_undo(st);
err_free_fresh:
	free(fresh);
err_release:
	for (int f = CM_NFAM - 1; f >= 0; f--)
		if (want[f])
			prefixalloc_release(st->pa[f], &got[f]);
	return ret;
}

static int cm_sqlite_register(struct cm_state *st, struct cm_node *node,
			      const char *public_key, const char *endpoint, bool *changed)
{
	time_t now = time(NULL);
	int ret;

	*changed = strcmp(node->public_key, public_key) || strcmp(node->endpoint, endpoint);
	if (!*changed) {
		ret = cm_state_touch(st, node);
		return ret < 0 ? ret : 0;
	}
	ret = -EINVAL;
	if (strlen(public_key) > WG_KEY_B64_LEN || strlen(endpoint) > CM_ENDPOINT_MAX)
		goto err;
	ret = cm_tx_begin(st);
	if (ret)
		goto err;
	ret = cm_sql(st, "UPDATE nodes SET public_key = ?, endpoint = ?, last_seen = ?, "
			 "mod_revision = ? WHERE name = ?", "ttiit", public_key, endpoint,
		     (int64_t)now, (int64_t)st->revision + 1, node->name);
	if (ret)
		goto err_rollback;
	ret = cm_tx_end(st);
	if (ret)
		goto err_rollback;

	strcpy(node->public_key, public_key);
	strcpy(node->endpoint, endpoint);
	node->last_seen = now;
	node->seen_dirty = false;
	cm_stale_seen(st, node);
	st->revision++;
	cm_touch_mod(st, node, st->revision);
	log_info("key registered", "node=%s public_key=%s endpoint=%s", node->name,
		 public_key, endpoint);
	return 0;

err_rollback:
	cm_tx_undo(st);
err:
	return ret;
}

static int cm_sqlite_delete(struct cm_state *st, const char *name)
{
	struct cm_node *node;
	bool found;
	size_t i = cm_search(st, name, &found);
	int ret;

	ret = -ENOENT;
	if (!found)
		goto err;
	node = st->nodes[i];
	/* Its external peers move first (a change of its own). */
	ret = cm_ext_node_gone(st, node);
	if (ret)
		goto err;
	/* Room first: once the rows are gone, nothing may fail. */
	ret = cm_tomb_reserve(st);
	if (ret)
		goto err;
	ret = cm_tx_begin(st);
	if (ret)
		goto err;
	/* Explicit, not only ON DELETE CASCADE: the subnets must go even if
	 * foreign keys were off. */
	ret = cm_sql(st, "DELETE FROM subnets WHERE node = ?", "t", name);
	if (ret)
		goto err_rollback;
	ret = cm_sql(st, "DELETE FROM nodes WHERE name = ?", "t", name);
	if (ret)
		goto err_rollback;
	/* Only a peer's deletion matters to the nodes; a node without a key
	 * was never in a peer list. */
	if (node->public_key[0])
		ret = cm_sql(st, "INSERT OR REPLACE INTO tombstones (name, revision) "
			     "VALUES (?, ?)", "ti", name, (int64_t)st->revision + 1);
	/* The tombstones of stale nodes stay: they are what marks them. */
	if (!ret)
		ret = cm_sql(st, "DELETE FROM tombstones WHERE revision <= ? "
			     "AND name NOT IN (SELECT name FROM nodes)", "i",
			     (int64_t)(st->n_tombs + 1 > CM_HISTORY_TOMBSTONES ?
				       st->tombs[st->n_tombs - CM_HISTORY_TOMBSTONES].revision :
				       0));
	if (ret)
		goto err_rollback;
	ret = cm_tx_end(st);
	if (ret)
		goto err_rollback;

	for (int f = CM_NFAM - 1; f >= 0; f--)
		if (node->has_subnet[f])
			cm_subnet_release(st, &node->subnet[f]);
	memmove(&st->nodes[i], &st->nodes[i + 1],
		(st->n_nodes - i - 1) * sizeof(st->nodes[0]));
	st->n_nodes--;
	st->revision++;
	cm_mod_unlink(st, node);
	cm_stale_unlink(st, node);
	if (node->public_key[0]) {
		cm_tomb_push(st, node->name, st->revision);
		cm_tomb_prune(st);
	}
	log_info("node deleted", "node=%s", node->name);
	free(node->allowed);
	free(node);
	return 0;

err_rollback:
	cm_tx_undo(st);
err:
	return ret;
}

static int cm_sqlite_flush_seen(struct cm_state *st)
{
	bool any = false;
	int ret;

	for (size_t i = 0; i < st->n_nodes && !any; i++)
		any = st->nodes[i]->seen_dirty;
	if (!any)
		return 0;
	ret = cm_tx_begin(st);
	if (ret)
		goto err;
	for (size_t i = 0; i < st->n_nodes; i++) {
		struct cm_node *node = st->nodes[i];

		if (!node->seen_dirty)
			continue;
		ret = cm_sql(st, "UPDATE nodes SET last_seen = ? WHERE name = ?", "it",
			     (int64_t)node->last_seen, node->name);
		if (ret)
			goto err_rollback;
	}
	ret = cm_tx_end(st);
	if (ret)
		goto err_rollback;
	for (size_t i = 0; i < st->n_nodes; i++)
		st->nodes[i]->seen_dirty = false;
	return 0;

err_rollback:
	cm_tx_undo(st);
err:
	return ret;
}

void cm_state_maybe_flush_seen(struct cm_state *st, time_t max_age)
{
	int ret;

	/* With a ttl, every manager sharing the store must hear of a node
	 * well within it (etcd: stale.c on each of them). */
	if (st->ttl_ms && (uint64_t)max_age * 8000 > st->ttl_ms)
		max_age = st->ttl_ms >= 16000 ? (time_t)(st->ttl_ms / 8000) : 1;
	if (time(NULL) - st->last_flush < max_age)
		return;
	ret = cm_state_flush_seen(st);
	if (ret)
		log_warnx("could not save lastSeen times", "err=%s", strerror(-ret));
}

bool cm_state_usage(const struct cm_state *st, enum cm_family fam, uint64_t *used,
		    uint64_t *capacity)
{
	if (!st->pa[fam])
		return false;
	*used = prefixalloc_used(st->pa[fam]);
	*capacity = prefixalloc_capacity(st->pa[fam]);
	return true;
}

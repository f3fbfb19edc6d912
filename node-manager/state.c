/*
 * The node manager's state database (<state-dir>/node.db) and its in-memory
 * copy: node subnets, cluster CIDRs, the last known node peers and the
 * container allocations. Every address is a PRIMARY KEY of its own, so the
 * database itself refuses to hand one address to two containers; the pools
 * (prefixalloc) only decide which one to try.
 */
#include "nm.h"

#include "db.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const nm_state_migrations[] = {
	"CREATE TABLE subnets(pos INTEGER PRIMARY KEY, cidr TEXT NOT NULL UNIQUE);"
	"CREATE TABLE cluster_cidrs(pos INTEGER PRIMARY KEY, cidr TEXT NOT NULL UNIQUE);"
	"CREATE TABLE node_peers(public_key TEXT PRIMARY KEY, name TEXT NOT NULL,"
	" endpoint TEXT NOT NULL, allowed_ips TEXT NOT NULL);"
	"CREATE TABLE allocations(container_id TEXT NOT NULL, ifname TEXT NOT NULL,"
	" netns TEXT NOT NULL, public_key TEXT UNIQUE, endpoint TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY(container_id, ifname));"
	"CREATE TABLE addresses(address TEXT PRIMARY KEY, container_id TEXT NOT NULL,"
	" ifname TEXT NOT NULL, pos INTEGER NOT NULL,"
	" FOREIGN KEY(container_id, ifname) REFERENCES allocations(container_id, ifname)"
	" ON DELETE CASCADE);",
	/* 2: containerMesh, per allocation (mesh.c). */
	"ALTER TABLE allocations ADD COLUMN mesh INTEGER NOT NULL DEFAULT 0;",
};

/* Prepare sql and bind the NULL-terminated text arguments in order. */
static int nm_stmt(sqlite3 *db, sqlite3_stmt **st, const char *sql, ...)
{
	va_list ap;
	const char *arg;
	int i = 1, rc;

	rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		log_error("prepare statement failed", "sql=%s err=%s", sql,
			  sqlite3_errmsg(db));
		return db_errno(rc);
	}
	va_start(ap, sql);
	while ((arg = va_arg(ap, const char *))) {
		rc = sqlite3_bind_text(*st, i++, arg, -1, SQLITE_TRANSIENT);
		if (rc != SQLITE_OK)
			break;
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(*st);
		*st = NULL;
		return db_errno(rc);
	}
	return 0;
}

/* Run a statement that returns no rows. */
static int nm_exec(sqlite3 *db, const char *sql, ...)
{
	sqlite3_stmt *st = NULL;
	const char *args[8] = { 0 };
	va_list ap;
	size_t n = 0;
	int rc, ret;

	va_start(ap, sql);
	while (n < 7 && (args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	ret = nm_stmt(db, &st, sql, args[0], args[1], args[2], args[3], args[4],
		      args[5], args[6], (const char *)NULL);
	if (ret < 0)
		return ret;
	rc = sqlite3_step(st);
	ret = rc == SQLITE_DONE ? 0 : db_errno(rc);
	if (ret < 0 && ret != -EEXIST)
		log_error("database statement failed", "sql=%s err=%s", sql,
			  sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}

static const char *nm_col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

static void nm_pools_free(struct nm *nm)
{
	for (size_t i = 0; i < NM_MAX_FAMILIES; i++) {
		prefixalloc_free(nm->pools[i]);
		nm->pools[i] = NULL;
		nm->pool_reserved[i] = 0;
	}
}

/* Pools over the subnets with network, gateway (first host) and, for IPv4,
 * broadcast taken out. */
static int nm_pools_build(struct nm *nm)
{
	int ret = 0;

	nm_pools_free(nm);
	for (size_t i = 0; i < nm->n_subnets; i++) {
		const struct ipnet *s = &nm->subnets[i];
		unsigned int bits = ipaddr_bits(&s->addr);
		struct prefixalloc *pa;
		uint64_t cap;

		pa = prefixalloc_new(s, bits);
		if (!pa) {
			ret = -errno;
			goto err_free_pools;
		}
		nm->pools[i] = pa;
		cap = prefixalloc_capacity(pa);
		if (prefixalloc_reserve_index(pa, 0) == 0)
			nm->pool_reserved[i]++;
		if (cap > 1 && prefixalloc_reserve_index(pa, 1) == 0)
			nm->pool_reserved[i]++;
		if (s->addr.family == AF_INET && cap > 2 &&
		    prefixalloc_reserve_index(pa, cap - 1) == 0)
			nm->pool_reserved[i]++;
	}
	return 0;

err_free_pools:
	nm_pools_free(nm);
	return ret;
}

static int nm_pool_index(const struct nm *nm, const struct ipnet *addr)
{
	for (size_t i = 0; i < nm->n_subnets; i++)
		if (nm->pools[i] && ipnet_contains(&nm->subnets[i], &addr->addr))
			return (int)i;
	return -ENOENT;
}

static int nm_load_nets(sqlite3 *db, const char *sql, struct ipnet *out, size_t max,
			size_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	*n = 0;
	ret = nm_stmt(db, &st, sql, (const char *)NULL);
	if (ret < 0)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == max)
			break;
		ret = ipnet_parse(nm_col(st, 0), &out[*n], true);
		if (ret < 0) {
			log_error("stored prefix is invalid", "cidr=%s", nm_col(st, 0));
			goto out;
		}
		(*n)++;
	}
	ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
out:
	sqlite3_finalize(st);
	return ret;
}

static int nm_allocs_grow(struct nm *nm)
{
	struct nm_alloc *tmp;
	size_t cap;

	if (nm->n_allocs < nm->cap_allocs)
		return 0;
	cap = nm->cap_allocs ? nm->cap_allocs * 2 : 16;
	tmp = reallocarray(nm->allocs, cap, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	nm->allocs = tmp;
	nm->cap_allocs = cap;
	return 0;
}

static int nm_load_allocs(struct nm *nm)
{
	sqlite3_stmt *st = NULL, *ast = NULL;
	int rc, ret;

	ret = nm_stmt(nm->db, &st,
		      "SELECT container_id, ifname, netns, public_key, endpoint, mesh"
		      " FROM allocations ORDER BY rowid", (const char *)NULL);
	if (ret < 0)
		return ret;
	ret = nm_stmt(nm->db, &ast,
		      "SELECT address FROM addresses WHERE container_id = ?"
		      " AND ifname = ? ORDER BY pos", (const char *)NULL);
	if (ret < 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct nm_alloc *a;
		const char *key = nm_col(st, 3);
		int arc;

		ret = nm_allocs_grow(nm);
		if (ret < 0)
			goto out;
		a = &nm->allocs[nm->n_allocs];
		memset(a, 0, sizeof(*a));
		snprintf(a->container_id, sizeof(a->container_id), "%s", nm_col(st, 0));
		snprintf(a->ifname, sizeof(a->ifname), "%s", nm_col(st, 1));
		snprintf(a->endpoint, sizeof(a->endpoint), "%s", nm_col(st, 4));
		a->netns = strdup(nm_col(st, 2));
		if (!a->netns) {
			ret = -ENOMEM;
			goto out;
		}
		nm->n_allocs++;
		if (*key && key_from_base64(a->public_key, key, NULL, 0) == 0)
			a->has_key = true;
		a->mesh = sqlite3_column_int(st, 5) != 0;

		sqlite3_reset(ast);
		sqlite3_bind_text(ast, 1, a->container_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ast, 2, a->ifname, -1, SQLITE_STATIC);
		while ((arc = sqlite3_step(ast)) == SQLITE_ROW && a->n_addrs < NM_MAX_FAMILIES) {
			struct ipnet *addr = &a->addrs[a->n_addrs];
			int pi;

			if (ipnet_parse(nm_col(ast, 0), addr, true) < 0) {
				log_error("stored address is invalid", "address=%s",
					  nm_col(ast, 0));
				continue;
			}
			a->n_addrs++;
			pi = nm_pool_index(nm, addr);
			if (pi < 0 || prefixalloc_reserve(nm->pools[pi], addr) < 0)
				log_warnx("stored address outside the node subnet pools",
					  "address=%s container=%s",
					  nm_col(ast, 0), a->container_id);
		}
	}
	ret = rc == SQLITE_DONE ? 0 : db_errno(rc);
out:
	sqlite3_finalize(ast);
	sqlite3_finalize(st);
	return ret;
}

/* The in-memory copy from the opened nm->db. */
static int nm_state_load(struct nm *nm, const char *path, char *err, size_t errlen)
{
	int ret;

	ret = nm_load_nets(nm->db, "SELECT cidr FROM subnets ORDER BY pos", nm->subnets,
			   NM_MAX_FAMILIES, &nm->n_subnets);
	if (ret < 0)
		goto err_close;
	ret = nm_load_nets(nm->db, "SELECT cidr FROM cluster_cidrs ORDER BY pos",
			   nm->cidrs, NM_MAX_CIDRS, &nm->n_cidrs);
	if (ret < 0)
		goto err_close;
	ret = nm_pools_build(nm);
	if (ret < 0)
		goto err_close;
	ret = nm_state_load_peers(nm);
	if (ret < 0)
		goto err_close;
	ret = nm_load_allocs(nm);
	if (ret < 0)
		goto err_close;
	return 0;

err_close:
	snprintf(err, errlen, "loading state from `%s' failed: %s", path, strerror(-ret));
	nm_state_close(nm);
	return ret;
}

int nm_state_open(struct nm *nm, char *err, size_t errlen)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/node.db", nm->cfg.state_dir);
	nm->db = db_open(path, nm_state_migrations,
			 sizeof(nm_state_migrations) / sizeof(nm_state_migrations[0]),
			 err, errlen);
	if (!nm->db)
		return -errno;
	return nm_state_load(nm, path, err, errlen);
}

/* path as an SQLite URI (file:...), with immutable=1 when asked. */
static int nm_state_uri(const char *path, bool immutable, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = (size_t)snprintf(out, len, "file:");

	for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
		if (o + 4 >= len)
			return -ENAMETOOLONG;
		if (isalnum(*c) || strchr("/-._~", *c))
			out[o++] = (char)*c;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
	}
	if (o + sizeof("?immutable=1") > len)
		return -ENAMETOOLONG;
	snprintf(out + o, len - o, "%s", immutable ? "?immutable=1" : "");
	return 0;
}

/* A running daemon keeps writing (WAL): readers do not block it. Without a
 * -wal file no daemon has the database open, and it is opened immutable:
 * a read-only connection would otherwise leave -wal and -shm behind. */
int nm_state_open_readonly(struct nm *nm, char *err, size_t errlen)
{
	const int want = (int)(sizeof(nm_state_migrations) / sizeof(nm_state_migrations[0]));
	sqlite3_stmt *st = NULL;
	char path[4096], wal[4200], uri[3 * 4096 + 32];
	int rc, version = -1;

	snprintf(path, sizeof(path), "%s/node.db", nm->cfg.state_dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (nm_state_uri(path, access(wal, F_OK) < 0, uri, sizeof(uri)) < 0) {
		snprintf(err, errlen, "state path too long: `%s'", path);
		return -ENAMETOOLONG;
	}
	rc = sqlite3_open_v2(uri, &nm->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(nm->db, 5000);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(nm->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK || version != want) {
		snprintf(err, errlen, "opening `%s' read-only failed: %s (schema %d, want %d)",
			 path, nm->db ? sqlite3_errmsg(nm->db) : sqlite3_errstr(rc), version, want);
		sqlite3_close(nm->db);
		nm->db = NULL;
		return rc != SQLITE_OK ? db_errno(rc) : -EPROTO;
	}
	return nm_state_load(nm, path, err, errlen);
}

void nm_state_close(struct nm *nm)
{
	if (!nm)
		return;
	for (size_t i = 0; i < nm->n_allocs; i++)
		free(nm->allocs[i].netns);
	free(nm->allocs);
	nm->allocs = NULL;
	nm->n_allocs = nm->cap_allocs = 0;
	nm_peers_free(nm->peers, nm->n_peers);
	nm->peers = NULL;
	nm->n_peers = 0;
	nm_pools_free(nm);
	db_close(nm->db);
	nm->db = NULL;
}

static int nm_store_nets(sqlite3 *db, const char *table, const struct ipnet *nets,
			 size_t n)
{
	char sql[128], buf[IPNET_STRLEN], pos[24];
	int ret;

	snprintf(sql, sizeof(sql), "DELETE FROM %s", table);
	ret = nm_exec(db, sql, (const char *)NULL);
	if (ret < 0)
		return ret;
	snprintf(sql, sizeof(sql), "INSERT INTO %s(pos, cidr) VALUES(?, ?)", table);
	for (size_t i = 0; i < n; i++) {
		snprintf(pos, sizeof(pos), "%zu", i);
		ret = nm_exec(db, sql, pos, ipnet_format(&nets[i], buf), (const char *)NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int nm_state_set_subnets(struct nm *nm, const struct ipnet *subnets, size_t n,
			 const struct ipnet *cidrs, size_t n_cidrs)
{
	int ret;

	if (n > NM_MAX_FAMILIES || n_cidrs > NM_MAX_CIDRS)
		return -E2BIG;
	ret = db_begin(nm->db);
	if (ret < 0)
		return ret;
	ret = nm_store_nets(nm->db, "subnets", subnets, n);
	if (ret < 0)
		goto err_rollback;
	ret = nm_store_nets(nm->db, "cluster_cidrs", cidrs, n_cidrs);
	if (ret < 0)
		goto err_rollback;
	ret = db_commit(nm->db);
	if (ret < 0)
		goto err_rollback;
	memcpy(nm->subnets, subnets, n * sizeof(*subnets));
	nm->n_subnets = n;
	memcpy(nm->cidrs, cidrs, n_cidrs * sizeof(*cidrs));
	nm->n_cidrs = n_cidrs;
	return nm_pools_build(nm);

err_rollback:
	db_rollback(nm->db);
	return ret;
}

int nm_state_set_cidrs(struct nm *nm, const struct ipnet *cidrs, size_t n)
{
	int ret;

	if (n > NM_MAX_CIDRS)
		return -E2BIG;
	ret = db_begin(nm->db);
	if (ret < 0)
		return ret;
	ret = nm_store_nets(nm->db, "cluster_cidrs", cidrs, n);
	if (ret < 0)
		goto err_rollback;
	ret = db_commit(nm->db);
	if (ret < 0)
		goto err_rollback;
	memcpy(nm->cidrs, cidrs, n * sizeof(*cidrs));
	nm->n_cidrs = n;
	return 0;

err_rollback:
	db_rollback(nm->db);
	return ret;
}

struct nm_alloc *nm_state_find(struct nm *nm, const char *container_id,
			       const char *ifname)
{
	for (size_t i = 0; i < nm->n_allocs; i++)
		if (!strcmp(nm->allocs[i].container_id, container_id) &&
		    !strcmp(nm->allocs[i].ifname, ifname))
			return &nm->allocs[i];
	return NULL;
}

struct nm_alloc *nm_state_find_key(struct nm *nm, const uint8_t key[static WG_KEY_LEN])
{
	for (size_t i = 0; i < nm->n_allocs; i++)
		if (nm->allocs[i].has_key &&
		    !memcmp(nm->allocs[i].public_key, key, WG_KEY_LEN))
			return &nm->allocs[i];
	return NULL;
}

int nm_state_alloc(struct nm *nm, const char *container_id, const char *ifname,
		   const char *netns, struct nm_alloc **out)
{
	struct nm_alloc a = { 0 };
	char buf[IPNET_STRLEN], pos[24];
	size_t i;
	int ret;

	if (!nm->n_subnets)
		return -EAGAIN;
	ret = nm_allocs_grow(nm);
	if (ret < 0)
		return ret;
	snprintf(a.container_id, sizeof(a.container_id), "%s", container_id);
	snprintf(a.ifname, sizeof(a.ifname), "%s", ifname);
	a.netns = strdup(netns);
	if (!a.netns)
		return -ENOMEM;
	for (i = 0; i < nm->n_subnets; i++) {
		ret = prefixalloc_alloc(nm->pools[i], &a.addrs[i]);
		if (ret < 0)
			goto err_release_pools;
		a.n_addrs++;
	}

	ret = db_begin(nm->db);
	if (ret < 0)
		goto err_release_pools;
	ret = nm_exec(nm->db,
		      "INSERT INTO allocations(container_id, ifname, netns) VALUES(?, ?, ?)",
		      container_id, ifname, netns, (const char *)NULL);
	if (ret < 0)
		goto err_rollback;
	for (i = 0; i < a.n_addrs; i++) {
		snprintf(pos, sizeof(pos), "%zu", i);
		ret = nm_exec(nm->db,
			      "INSERT INTO addresses(address, container_id, ifname, pos)"
			      " VALUES(?, ?, ?, ?)",
			      ipnet_format(&a.addrs[i], buf), container_id, ifname, pos,
			      (const char *)NULL);
		if (ret < 0)
			goto err_rollback;
	}
	ret = db_commit(nm->db);
	if (ret < 0)
		goto err_rollback;
	nm->allocs[nm->n_allocs] = a;
	*out = &nm->allocs[nm->n_allocs++];
	return 0;

err_rollback:
	db_rollback(nm->db);
err_release_pools:
	for (i = 0; i < a.n_addrs; i++)
		prefixalloc_release(nm->pools[i], &a.addrs[i]);
	free(a.netns);
	return ret;
}

int nm_state_update_netns(struct nm *nm, struct nm_alloc *a, const char *netns)
{
	char *copy;
	int ret;

	if (!strcmp(a->netns, netns))
		return 0;
	copy = strdup(netns);
	if (!copy)
		return -ENOMEM;
	ret = nm_exec(nm->db,
		      "UPDATE allocations SET netns = ? WHERE container_id = ? AND ifname = ?",
		      netns, a->container_id, a->ifname, (const char *)NULL);
	if (ret < 0) {
		free(copy);
		return ret;
	}
	free(a->netns);
	a->netns = copy;
	return 0;
}

int nm_state_store_key(struct nm *nm, const struct nm_alloc *a,
		       const uint8_t key[static WG_KEY_LEN], const char *endpoint)
{
	char b64[WG_KEY_B64_LEN + 1];

	key_to_base64(b64, key);
	return nm_exec(nm->db,
		       "UPDATE allocations SET public_key = ?, endpoint = ?"
		       " WHERE container_id = ? AND ifname = ?",
		       b64, endpoint, a->container_id, a->ifname, (const char *)NULL);
}

int nm_state_store_mesh(struct nm *nm, const struct nm_alloc *a, bool mesh)
{
	return nm_exec(nm->db,
		       "UPDATE allocations SET mesh = ? WHERE container_id = ? AND ifname = ?",
		       mesh ? "1" : "0", a->container_id, a->ifname, (const char *)NULL);
}

int nm_state_release(struct nm *nm, struct nm_alloc *a)
{
	size_t idx = (size_t)(a - nm->allocs);
	int ret;

	ret = nm_exec(nm->db, "DELETE FROM allocations WHERE container_id = ? AND ifname = ?",
		      a->container_id, a->ifname, (const char *)NULL);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < a->n_addrs; i++) {
		int pi = nm_pool_index(nm, &a->addrs[i]);

		if (pi >= 0)
			prefixalloc_release(nm->pools[pi], &a->addrs[i]);
	}
	free(a->netns);
	memmove(&nm->allocs[idx], &nm->allocs[idx + 1],
		(nm->n_allocs - idx - 1) * sizeof(*nm->allocs));
	nm->n_allocs--;
	return 0;
}

uint64_t nm_state_pool_used(const struct nm *nm)
{
	uint64_t used = 0;

	for (size_t i = 0; i < nm->n_subnets; i++)
		if (nm->pools[i])
			used += prefixalloc_used(nm->pools[i]) - nm->pool_reserved[i];
	return used;
}

uint64_t nm_state_pool_free(const struct nm *nm)
{
	uint64_t free_ = 0;

	for (size_t i = 0; i < nm->n_subnets; i++) {
		uint64_t cap, used, f;

		if (!nm->pools[i])
			continue;
		cap = prefixalloc_capacity(nm->pools[i]);
		used = prefixalloc_used(nm->pools[i]);
		f = cap > used ? cap - used : 0;
		free_ = UINT64_MAX - free_ < f ? UINT64_MAX : free_ + f;
	}
	return free_;
}

/*
 * External peers and gateways (see state.h). Like the nodes, SQLite is the
 * truth (table external_peers, the nodes' location, gateway and
 * public_endpoint columns) and memory a mirror; every change is a savepoint
 * of the loop turn's transaction, and memory follows only once its SQL is
 * done, so a failed change leaves both as they were.
 *
 * A change to the external peers a gateway serves gives the gateway a new
 * mod_revision, so WatchPeers deltas carry its new allowedIps and the
 * gateway itself learns that its external peers changed.
 */
#include "state.h"
#include "state_priv.h"

#include "db.h"
#include "log.h"
#include "prefixalloc.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cm_ext_state {
	struct prefixalloc *pa[CM_MAX_EXTERNAL]; /* parallel to cfg.external */
	struct cm_ext **v;                       /* sorted by name */
	size_t n, cap;
};

/* Gateways whose allowed list a change rebuilds. */
#define CM_EXT_TOUCH_MAX 4

struct cm_ext_change {
	struct cm_node *touched[CM_EXT_TOUCH_MAX];
	char **arr[CM_EXT_TOUCH_MAX]; /* their new allowed lists */
	size_t n;
};

static enum cm_family cm_ext_fam(const struct ipnet *n)
{
	return n->addr.family == AF_INET ? CM_V4 : CM_V6;
}

bool cm_ext_is_gateway(const struct cm_node *node)
{
	return node && node->gateway && node->public_key[0];
}

static size_t cm_ext_search(const struct cm_ext_state *x, const char *name, bool *found)
{
	return cm_name_search((void *const *)x->v, x->n, offsetof(struct cm_ext, name), name, found);
}

struct cm_ext *const *cm_ext_list(const struct cm_state *st, size_t *n)
{
	*n = st->ext ? st->ext->n : 0;
	return st->ext ? st->ext->v : NULL;
}

struct cm_ext *cm_ext_find(const struct cm_state *st, const char *name)
{
	bool found;
	size_t i;

	if (!st->ext)
		return NULL;
	i = cm_ext_search(st->ext, name, &found);
	return found ? st->ext->v[i] : NULL;
}

void cm_ext_format(struct cm_ext *e)
{
	size_t off = 0;

	e->address[0] = '\0';
	for (size_t i = 0; i < e->n_addr; i++) {
		ipnet_format(&e->addr[i], e->addr_str[i]);
		off += (size_t)snprintf(e->address + off, sizeof(e->address) - off, "%s%s",
					i ? "," : "", e->addr_str[i]);
		if (off >= sizeof(e->address))
			off = sizeof(e->address) - 1;
	}
}

/* Fills arr with node's subnets and the addresses of the external peers it
 * serves; the count. arr holds CM_NFAM + CM_NFAM * node->n_ext. */
static size_t cm_ext_fill(const struct cm_state *st, const struct cm_node *node, char **arr)
{
	size_t k = 0;

	for (size_t i = 0; i < node->n_subnets; i++)
		arr[k++] = node->subnets[i];
	for (size_t i = 0; st->ext && i < st->ext->n; i++) {
		struct cm_ext *e = st->ext->v[i];

		if (strcmp(e->gateway, node->name))
			continue;
		for (size_t j = 0; j < e->n_addr; j++)
			arr[k++] = e->addr_str[j];
	}
	return k;
}

void cm_ext_node_refresh(struct cm_node *node)
{
	/* Only the subnets moved; the external addresses stay behind them.
	 * Room for CM_NFAM subnets is always there. */
	size_t old = node->n_allowed, subs = 0;

	if (!node->allowed)
		return;
	for (size_t i = 0; i < old; i++)
		if (node->allowed[i] == node->subnet_str[CM_V4] ||
		    node->allowed[i] == node->subnet_str[CM_V6])
			subs++;
	memmove(node->allowed + node->n_subnets, node->allowed + subs,
		(old - subs) * sizeof(*node->allowed));
	for (size_t i = 0; i < node->n_subnets; i++)
		node->allowed[i] = node->subnets[i];
	node->n_allowed = node->n_subnets + old - subs;
}

/* --- a change: gateways touched, their lists allocated before the SQL ---- */

static int cm_ext_touch(struct cm_ext_change *c, struct cm_node *node)
{
	if (!node)
		return 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->touched[i] == node)
			return 0;
	if (c->n == CM_EXT_TOUCH_MAX)
		return -E2BIG;
	c->touched[c->n++] = node;
	return 0;
}

/* Room for every touched gateway's list after the change (count: its
 * external peers then, at most one more than now). */
static int cm_ext_alloc(struct cm_ext_change *c)
{
	for (size_t i = 0; i < c->n; i++) {
		c->arr[i] = calloc(CM_NFAM + CM_NFAM * (c->touched[i]->n_ext + 1),
				   sizeof(char *));
		if (!c->arr[i])
			return -ENOMEM;
	}
	return 0;
}

/* A change that moves peers between gateways from and to (either NULL):
 * both touched, their lists' room allocated before anything is written. */
static int cm_ext_prepare(struct cm_ext_change *c, struct cm_node *from, struct cm_node *to)
{
	int ret = cm_ext_touch(c, from);

	if (!ret)
		ret = cm_ext_touch(c, to);
	if (!ret)
		ret = cm_ext_alloc(c);
	return ret;
}

static void cm_ext_change_free(struct cm_ext_change *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->arr[i]);
}

/* In the open savepoint: the touched gateways' rows get the next revision. */
static int cm_ext_bump_sql(struct cm_state *st, const struct cm_ext_change *c)
{
	int ret = 0;

	for (size_t i = 0; i < c->n && !ret; i++)
		ret = cm_sql(st, "UPDATE nodes SET mod_revision = ? WHERE name = ?", "it",
			     (int64_t)st->revision + 1, c->touched[i]->name);
	return ret;
}

/* After the SQL: recount, new lists, new revision. Cannot fail. */
static void cm_ext_finish(struct cm_state *st, struct cm_ext_change *c)
{
	for (size_t i = 0; i < c->n; i++)
		c->touched[i]->n_ext = 0;
	for (size_t i = 0; i < st->ext->n; i++) {
		struct cm_node *g = st->ext->v[i]->gateway[0] ?
			cm_state_find(st, st->ext->v[i]->gateway) : NULL;

		for (size_t j = 0; g && j < c->n; j++)
			if (c->touched[j] == g)
				g->n_ext++;
	}
	if (c->n)
		st->revision++;
	for (size_t i = 0; i < c->n; i++) {
		struct cm_node *g = c->touched[i];

		free(g->allowed);
		g->allowed = NULL;
		g->n_allowed = 0;
		if (g->n_ext) {
			g->allowed = c->arr[i];
			g->n_allowed = cm_ext_fill(st, g, g->allowed);
		} else {
			free(c->arr[i]);
		}
		c->arr[i] = NULL;
		cm_touch_mod(st, g, st->revision);
	}
}

/* --- gateway choice --------------------------------------------------------- */

/* Among the gateways in location (all when none is there or none asked),
 * the one serving the fewest external peers, ties by name; never skip. */
struct cm_node *cm_ext_choose(const struct cm_state *st, const char *location,
			      const struct cm_node *skip)
{
	struct cm_node *best = NULL;

	for (int pass = location && location[0] ? 0 : 1; pass < 2 && !best; pass++)
		for (size_t i = 0; i < st->n_nodes; i++) {
			struct cm_node *n = st->nodes[i];

			if (n == skip || !cm_ext_is_gateway(n))
				continue;
			if (pass == 0 && strcmp(n->location, location))
				continue;
			if (!best || n->n_ext < best->n_ext)
				best = n;
		}
	return best;
}

/* --- addresses ------------------------------------------------------------------ */

static int cm_ext_pools(struct cm_state *st, char *err, size_t errlen)
{
	for (size_t i = 0; i < st->cfg.n_external; i++) {
		const struct ipnet *c = &st->cfg.external[i];
		unsigned int bits = ipaddr_bits(&c->addr);
		char buf[IPNET_STRLEN];
		uint64_t cap;

		st->ext->pa[i] = prefixalloc_new(c, bits);
		if (!st->ext->pa[i]) {
			snprintf(err, errlen, "cannot use --external-cidr `%s': %s",
				 ipnet_format(c, buf), strerror(errno));
			return -errno;
		}
		cap = prefixalloc_capacity(st->ext->pa[i]);
		/* Not the network address (nor, in IPv4, the broadcast one). */
		if (cap > 2)
			prefixalloc_reserve_index(st->ext->pa[i], 0);
		if (cap > 2 && bits == 32)
			prefixalloc_reserve_index(st->ext->pa[i], cap - 1);
	}
	return 0;
}

struct prefixalloc *cm_ext_pool_of(const struct cm_state *st, const struct ipnet *a)
{
	for (size_t i = 0; i < st->cfg.n_external; i++)
		if (ipnet_contains_net(&st->cfg.external[i], a))
			return st->ext->pa[i];
	return NULL;
}

/* One address per configured family, from its first CIDR with room. */
int cm_ext_alloc_addrs(struct cm_state *st, struct cm_ext *e)
{
	int ret = 0;

	for (int f = 0; f < CM_NFAM; f++) {
		bool any = false, got = false;

		for (size_t i = 0; i < st->cfg.n_external && !got; i++) {
			if (cm_ext_fam(&st->cfg.external[i]) != (enum cm_family)f)
				continue;
			any = true;
			ret = prefixalloc_alloc(st->ext->pa[i], &e->addr[e->n_addr]);
			if (ret == 0) {
				e->n_addr++;
				got = true;
			} else if (ret != -ENOSPC) {
				goto err;
			}
		}
		ret = -ENOSPC;
		if (any && !got)
			goto err;
	}
	cm_ext_format(e);
	return 0;
err:
	for (size_t i = 0; i < e->n_addr; i++)
		prefixalloc_release(cm_ext_pool_of(st, &e->addr[i]), &e->addr[i]);
	e->n_addr = 0;
	return ret;
}

void cm_ext_release_addrs(struct cm_state *st, struct cm_ext *e)
{
	for (size_t i = 0; i < e->n_addr; i++) {
		struct prefixalloc *pa = cm_ext_pool_of(st, &e->addr[i]);

		if (pa)
			prefixalloc_release(pa, &e->addr[i]);
	}
}

/* --- loading ------------------------------------------------------------------------ */

static int cm_ext_insert(struct cm_ext_state *x, struct cm_ext *e)
{
	bool found;
	size_t i;

	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		struct cm_ext **v = reallocarray(x->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		x->v = v;
		x->cap = cap;
	}
	i = cm_ext_search(x, e->name, &found);
	memmove(&x->v[i + 1], &x->v[i], (x->n - i) * sizeof(*x->v));
	x->v[i] = e;
	x->n++;
	return 0;
}

static int cm_ext_parse_addrs(struct cm_state *st, struct cm_ext *e, const char *s)
{
	char buf[CM_NFAM * IPNET_STRLEN + 1], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -EPROTO;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct prefixalloc *pa;

		if (e->n_addr == CM_NFAM || ipnet_parse(tok, &e->addr[e->n_addr], true) ||
		    e->addr[e->n_addr].prefixlen != ipaddr_bits(&e->addr[e->n_addr].addr))
			return -EPROTO;
		pa = cm_ext_pool_of(st, &e->addr[e->n_addr]);
		if (!pa)
			log_warnx("stored external peer address lies outside --external-cidr; kept",
				  "name=%s address=%s", e->name, tok);
		else if (prefixalloc_reserve(pa, &e->addr[e->n_addr]))
			return -EPROTO;
		e->n_addr++;
	}
	cm_ext_format(e);
	return 0;
}

static int cm_ext_load_nodes(struct cm_state *st, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret;

	rc = sqlite3_prepare_v2(st->db, "SELECT name, location, gateway, public_endpoint "
				"FROM nodes", -1, &stmt, NULL);
	ret = db_errno(rc);
	while (!ret && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		const char *loc = (const char *)sqlite3_column_text(stmt, 1);
		const char *pub = (const char *)sqlite3_column_text(stmt, 3);
		struct cm_node *node = name ? cm_state_find(st, name) : NULL;

		if (!node || !loc || strlen(loc) > CM_NAME_MAX || !pub ||
		    strlen(pub) > CM_ENDPOINT_MAX) {
			snprintf(err, errlen, "corrupt gateway columns of node `%s'",
				 name ? name : "(null)");
			ret = -EPROTO;
			break;
		}
		strcpy(node->location, loc);
		strcpy(node->public_endpoint, pub);
		node->gateway = sqlite3_column_int64(stmt, 2) != 0;
	}
	if (!ret && rc != SQLITE_DONE) {
		ret = db_errno(rc);
		snprintf(err, errlen, "reading the nodes failed: %s", sqlite3_errmsg(st->db));
	}
	sqlite3_finalize(stmt);
	return ret;
}

int cm_ext_mem_init(struct cm_state *st, char *err, size_t errlen)
{
	st->ext = calloc(1, sizeof(*st->ext));
	if (!st->ext)
		return -ENOMEM;
	return cm_ext_pools(st, err, errlen);
}

int cm_ext_mem_insert(struct cm_state *st, struct cm_ext *e)
{
	return cm_ext_insert(st->ext, e);
}

void cm_ext_mem_remove(struct cm_state *st, struct cm_ext *e)
{
	bool found;
	size_t i = cm_ext_search(st->ext, e->name, &found);

	if (!found || st->ext->v[i] != e)
		return;
	memmove(&st->ext->v[i], &st->ext->v[i + 1], (st->ext->n - i - 1) * sizeof(*st->ext->v));
	st->ext->n--;
}

int cm_ext_regate(struct cm_state *st, struct cm_node *g)
{
	size_t count = 0;
	char **arr = NULL;

	for (size_t i = 0; st->ext && i < st->ext->n; i++)
		if (!strcmp(st->ext->v[i]->gateway, g->name))
			count++;
	if (count) {
		arr = calloc(CM_NFAM + CM_NFAM * count, sizeof(char *));
		if (!arr)
			return -ENOMEM;
	}
	free(g->allowed);
	g->allowed = arr;
	g->n_ext = count;
	g->n_allowed = arr ? cm_ext_fill(st, g, arr) : 0;
	return 0;
}

int cm_ext_load(struct cm_state *st, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret;

	st->ext = calloc(1, sizeof(*st->ext));
	if (!st->ext)
		return -ENOMEM;
	ret = cm_ext_pools(st, err, errlen);
	if (!ret)
		ret = cm_ext_load_nodes(st, err, errlen);
	if (ret)
		return ret;
	rc = sqlite3_prepare_v2(st->db, "SELECT name, public_key, address, location, gateway "
				"FROM external_peers", -1, &stmt, NULL);
	ret = db_errno(rc);
	while (!ret && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *col[5];
		struct cm_ext *e;
		struct cm_node *g;

		for (int i = 0; i < 5; i++)
			col[i] = (const char *)sqlite3_column_text(stmt, i);
		ret = -EPROTO;
		if (!col[0] || strlen(col[0]) > CM_NAME_MAX || !col[1] ||
		    strlen(col[1]) > WG_KEY_B64_LEN || !col[2] || !col[3] ||
		    strlen(col[3]) > CM_NAME_MAX || !col[4] || strlen(col[4]) > CM_NAME_MAX)
			break;
		e = calloc(1, sizeof(*e));
		ret = -ENOMEM;
		if (!e)
			break;
		strcpy(e->name, col[0]);
		strcpy(e->public_key, col[1]);
		strcpy(e->location, col[3]);
		g = cm_state_find(st, col[4]);
		if (g)
			strcpy(e->gateway, g->name);
		ret = cm_ext_parse_addrs(st, e, col[2]);
		if (!ret)
			ret = cm_ext_insert(st->ext, e);
		if (ret) {
			free(e);
			break;
		}
		if (g)
			g->n_ext++;
	}
	if (ret == -EPROTO)
		snprintf(err, errlen, "corrupt external peer row in database");
	else if (!ret && rc != SQLITE_DONE)
		ret = db_errno(rc);
	sqlite3_finalize(stmt);
	for (size_t i = 0; !ret && i < st->n_nodes; i++) {
		struct cm_node *g = st->nodes[i];

		if (!g->n_ext)
			continue;
		g->allowed = calloc(CM_NFAM + CM_NFAM * g->n_ext, sizeof(char *));
		if (!g->allowed)
			return -ENOMEM;
		g->n_allowed = cm_ext_fill(st, g, g->allowed);
	}
	return ret;
}

void cm_ext_free(struct cm_state *st)
{
	if (!st->ext)
		return;
	for (size_t i = 0; i < st->ext->n; i++)
		free(st->ext->v[i]);
	free(st->ext->v);
	for (size_t i = 0; i < CM_MAX_EXTERNAL; i++)
		prefixalloc_free(st->ext->pa[i]);
	free(st->ext);
	st->ext = NULL;
}

/* --- changes ---------------------------------------------------------------------- */

/* Moves e to gateway to (NULL: none) in its own savepoint. */
static int cm_ext_move(struct cm_state *st, struct cm_ext *e, struct cm_node *to)
{
	struct cm_ext_change c = { 0 };
	struct cm_node *from = e->gateway[0] ? cm_state_find(st, e->gateway) : NULL;
	int ret;

	ret = cm_ext_prepare(&c, from, to);
	if (ret)
		goto out;
	ret = cm_tx_begin(st);
	if (ret)
		goto out;
	ret = cm_sql(st, "UPDATE external_peers SET gateway = ? WHERE name = ?", "tt",
		     to ? to->name : "", e->name);
	if (!ret)
		ret = cm_ext_bump_sql(st, &c);
	if (!ret)
		ret = cm_tx_end(st);
	if (ret) {
		cm_tx_undo(st);
		goto out;
	}
	snprintf(e->gateway, sizeof(e->gateway), "%s", to ? to->name : "");
	cm_ext_finish(st, &c);
	log_info("external peer moved", "name=%s gateway=%s", e->name,
		 to ? to->name : "(none)");
out:
	cm_ext_change_free(&c);
	return ret;
}

/* Every external peer of node moves to another gateway (none left: no
 * gateway until one comes). */
static int cm_ext_hand_on(struct cm_state *st, struct cm_node *node)
{
	int ret = 0;

	for (size_t i = 0; i < st->ext->n && node->n_ext && !ret; i++) {
		struct cm_ext *e = st->ext->v[i];

		if (!strcmp(e->gateway, node->name))
			ret = cm_ext_move(st, e, cm_ext_choose(st, e->location, node));
	}
	return ret;
}

int cm_ext_node_gone(struct cm_state *st, struct cm_node *node)
{
	if (!st->ext || !node->n_ext)
		return 0;
	return cm_ext_hand_on(st, node);
}

int cm_sqlite_node_info(struct cm_state *st, struct cm_node *node, const char *location,
			bool gateway, const char *public_endpoint, bool *changed)
{
	bool was = cm_ext_is_gateway(node);
	int ret = 0;

	*changed = strcmp(node->location, location) || node->gateway != gateway ||
		   strcmp(node->public_endpoint, public_endpoint);
	if (*changed) {
		if (strlen(location) > CM_NAME_MAX || strlen(public_endpoint) > CM_ENDPOINT_MAX)
			return -EINVAL;
		ret = cm_tx_begin(st);
		if (ret)
			return ret;
		ret = cm_sql(st, "UPDATE nodes SET location = ?, gateway = ?, public_endpoint = ? "
			     "WHERE name = ?", "titt", location, (int64_t)gateway, public_endpoint,
			     node->name);
		if (!ret)
			ret = cm_tx_end(st);
		if (ret) {
			cm_tx_undo(st);
			return ret;
		}
		strcpy(node->location, location);
		node->gateway = gateway;
		strcpy(node->public_endpoint, public_endpoint);
		log_info("gateway settings", "node=%s gateway=%s location=%s public_endpoint=%s",
			 node->name, gateway ? "yes" : "no", location, public_endpoint);
	}
	if (was && !cm_ext_is_gateway(node))
		return cm_ext_hand_on(st, node);
	/* A new gateway takes the external peers left without one. */
	for (size_t i = 0; !was && cm_ext_is_gateway(node) && i < st->ext->n && !ret; i++)
		if (!st->ext->v[i]->gateway[0])
			ret = cm_ext_move(st, st->ext->v[i],
					  cm_ext_choose(st, st->ext->v[i]->location, NULL));
	return ret;
}

bool cm_ext_key_used(const struct cm_state *st, const char *key, const struct cm_ext *self)
{
	for (size_t i = 0; i < st->n_nodes; i++)
		if (!strcmp(st->nodes[i]->public_key, key))
			return true;
	for (size_t i = 0; i < st->ext->n; i++)
		if (st->ext->v[i] != self && !strcmp(st->ext->v[i]->public_key, key))
			return true;
	return false;
}

int cm_ext_plan(const struct cm_state *st, const char *name, const char *public_key,
		const char *location, struct cm_ext **e, struct cm_node **from, struct cm_node **to)
{
	*e = cm_ext_find(st, name);
	*from = *e && (*e)->gateway[0] ? cm_state_find(st, (*e)->gateway) : NULL;
	*to = NULL;
	if (*e && !strcmp((*e)->public_key, public_key) && !strcmp((*e)->location, location) &&
	    cm_ext_is_gateway(*from))
		return 1;
	if (cm_ext_key_used(st, public_key, *e))
		return -EEXIST;
	/* The gateway stays unless the location changed or it is gone. */
	*to = *from && cm_ext_is_gateway(*from) && !strcmp((*e)->location, location) ? *from :
		cm_ext_choose(st, location, NULL);
	return *to ? 0 : -ENODEV;
}

int cm_ext_register(struct cm_state *st, const char *name, const char *public_key,
		    const char *location, struct cm_ext **out, bool *changed)
{
	int ret;

	*changed = false;
	if (!st->cfg.n_external)
		return -ENXIO;
	ret = st->ops->ext_register(st, name, public_key, location, out, changed);
	if (ret < 0 && ret != -EEXIST && ret != -ENODEV && ret != -ENOSPC && ret != -EINVAL)
		st->store_errors++;
	return ret;
}

int cm_ext_delete(struct cm_state *st, const char *name)
{
	int ret = st->ops->ext_delete(st, name);

	if (ret < 0 && ret != -ENOENT)
		st->store_errors++;
	return ret;
}

int cm_sqlite_ext_register(struct cm_state *st, const char *name, const char *public_key,
			   const char *location, struct cm_ext **out, bool *changed)
{
	struct cm_ext_change c = { 0 };
	struct cm_ext *e, *fresh = NULL;
	struct cm_node *from, *to;
	int ret;

	ret = cm_ext_plan(st, name, public_key, location, &e, &from, &to);
	if (ret) {
		*out = e;
		return ret < 0 ? ret : 0;
	}
	if (!e) {
		fresh = calloc(1, sizeof(*fresh));
		if (!fresh)
			return -ENOMEM;
		snprintf(fresh->name, sizeof(fresh->name), "%s", name);
		ret = cm_ext_alloc_addrs(st, fresh);
		if (ret) {
			free(fresh);
			return ret;
		}
	}
	ret = cm_ext_prepare(&c, from, to);
	if (!ret && fresh)
		ret = cm_ext_insert(st->ext, fresh) ? -ENOMEM : 0;
	if (ret)
		goto err_free;
	/* Inserted in memory for cm_ext_finish; taken out again on failure. */
	ret = cm_tx_begin(st);
	if (ret)
		goto err_remove;
	ret = cm_sql(st, "INSERT OR REPLACE INTO external_peers (name, public_key, address, "
		     "location, gateway) VALUES (?, ?, ?, ?, ?)", "ttttt", name, public_key,
		     (fresh ? fresh : e)->address, location, to->name);
	if (!ret)
		ret = cm_ext_bump_sql(st, &c);
	if (!ret)
		ret = cm_tx_end(st);
	if (ret) {
		cm_tx_undo(st);
		goto err_remove;
	}
	if (fresh)
		e = fresh;
	snprintf(e->public_key, sizeof(e->public_key), "%s", public_key);
	snprintf(e->location, sizeof(e->location), "%s", location);
	snprintf(e->gateway, sizeof(e->gateway), "%s", to->name);
	cm_ext_finish(st, &c);
	cm_ext_change_free(&c);
	log_info("external peer registered", "name=%s public_key=%s address=%s gateway=%s",
		 e->name, e->public_key, e->address, e->gateway);
	*changed = true;
	*out = e;
	return 0;

err_remove:
	if (fresh) {
		bool found;
		size_t i = cm_ext_search(st->ext, name, &found);

		memmove(&st->ext->v[i], &st->ext->v[i + 1], (st->ext->n - i - 1) * sizeof(*st->ext->v));
		st->ext->n--;
	}
err_free:
	cm_ext_change_free(&c);
	if (fresh) {
		cm_ext_release_addrs(st, fresh);
		free(fresh);
	}
	return ret;
}

int cm_sqlite_ext_delete(struct cm_state *st, const char *name)
{
	struct cm_ext_change c = { 0 };
	struct cm_ext *e = cm_ext_find(st, name);
	bool found;
	size_t i;
	int ret;

	if (!e)
		return -ENOENT;
	ret = cm_ext_prepare(&c, e->gateway[0] ? cm_state_find(st, e->gateway) : NULL, NULL);
	if (ret)
		goto out;
	ret = cm_tx_begin(st);
	if (ret)
		goto out;
	ret = cm_sql(st, "DELETE FROM external_peers WHERE name = ?", "t", name);
	if (!ret)
		ret = cm_ext_bump_sql(st, &c);
	if (!ret)
		ret = cm_tx_end(st);
	if (ret) {
		cm_tx_undo(st);
		goto out;
	}
	i = cm_ext_search(st->ext, name, &found);
	memmove(&st->ext->v[i], &st->ext->v[i + 1], (st->ext->n - i - 1) * sizeof(*st->ext->v));
	st->ext->n--;
	cm_ext_finish(st, &c);
	cm_ext_release_addrs(st, e);
	log_info("external peer deleted", "name=%s", name);
	free(e);
out:
	cm_ext_change_free(&c);
	return ret;
}

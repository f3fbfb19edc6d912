/*
 * External peers in the etcd store (state.h, keys in store_etcd_keys.h).
 *
 * As for nodes, memory follows the watch only: an external peer's record
 * P/external/<name> gives its key, location, gateway and addresses, and each
 * address is claimed by P/extaddrs/<address> (created only if absent, as a
 * subnet). A change to the external peers a gateway serves changes its peer
 * entry (allowedIps), so the transaction that makes it also writes the
 * gateway's record again, unchanged: the gateway's key gets the change's
 * revision, which is what WatchPeers deltas go by on every manager.
 */
#include "state.h"
#include "state_etcd_priv.h"
#include "state_priv.h"
#include "store_etcd_keys.h"

#include "log.h"
#include "prefixalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* --- records ---------------------------------------------------------------- */

/* Malloc'd JSON of e with gateway gw ("" none); NULL out of memory. */
static char *cm_etcd_ext_json(const struct cm_ext *e, const char *public_key,
			      const char *location, const char *gw)
{
	json_t *addrs = json_array(), *o;
	char *s = NULL;

	for (size_t i = 0; addrs && i < e->n_addr; i++)
		if (json_array_append_new(addrs, json_string(e->addr_str[i]))) {
			json_decref(addrs);
			return NULL;
		}
	o = json_pack("{s:s,s:s,s:s,s:o}", "publicKey", public_key, "location", location,
		      "gateway", gw, "addresses", addrs);
	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static const char *cm_etcd_ext_str(json_t *o, const char *field, size_t max)
{
	const char *s = json_string_value(json_object_get(o, field));

	if (!json_object_get(o, field))
		return "";
	return s && strlen(s) <= max ? s : NULL;
}

/* e's fields from a record: 0 or -EPROTO (e unchanged). */
static int cm_etcd_ext_parse(const char *value, struct cm_ext *e)
{
	json_t *o = json_loads(value, JSON_REJECT_DUPLICATES, NULL), *addrs, *j;
	const char *pub, *loc, *gw;
	struct cm_ext tmp;
	size_t i;
	int ret = -EPROTO;

	if (!json_is_object(o))
		goto out;
	pub = cm_etcd_ext_str(o, "publicKey", WG_KEY_B64_LEN);
	loc = cm_etcd_ext_str(o, "location", CM_NAME_MAX);
	gw = cm_etcd_ext_str(o, "gateway", CM_NAME_MAX);
	addrs = json_object_get(o, "addresses");
	if (!pub || !pub[0] || !loc || !gw || !json_is_array(addrs) ||
	    json_array_size(addrs) > CM_NFAM)
		goto out;
	memset(&tmp, 0, sizeof(tmp));
	json_array_foreach(addrs, i, j) {
		struct ipnet *a = &tmp.addr[tmp.n_addr];

		if (!json_is_string(j) || ipnet_parse(json_string_value(j), a, true) ||
		    a->prefixlen != ipaddr_bits(&a->addr))
			goto out;
		tmp.n_addr++;
	}
	strcpy(e->public_key, pub);
	strcpy(e->location, loc);
	strcpy(e->gateway, gw);
	memcpy(e->addr, tmp.addr, sizeof(e->addr));
	e->n_addr = tmp.n_addr;
	cm_ext_format(e);
	ret = 0;
out:
	json_decref(o);
	return ret;
}

/* --- applying the watch ----------------------------------------------------- */

/* The gateway called name (if it exists) counts its external peers again. */
static int cm_etcd_regate(struct cm_state *st, const char *name)
{
	struct cm_node *g = name[0] ? cm_state_find(st, name) : NULL;

	return g ? cm_ext_regate(st, g) : 0;
}

static int cm_etcd_ext_put(struct cm_state *st, const char *name, const char *value,
			   int64_t rev)
{
	struct cm_ext *e = cm_ext_find(st, name), *fresh = NULL;
	char old_gw[CM_NAME_MAX + 1];
	int ret;

	if (e && e->mod_revision >= (uint64_t)rev)
		return 0;
	if (!e) {
		fresh = calloc(1, sizeof(*fresh));
		if (!fresh)
			return -ENOMEM;
		e = fresh;
	}
	snprintf(old_gw, sizeof(old_gw), "%s", e->gateway);
	if (strlen(name) > CM_NAME_MAX || cm_etcd_ext_parse(value, e)) {
		log_warnx("etcd: ignoring an external peer record that cannot be read",
			  "name=%.64s revision=%" PRId64, name, rev);
		st->store_errors++;
		free(fresh);
		return 0;
	}
	if (fresh) {
		snprintf(fresh->name, sizeof(fresh->name), "%s", name);
		ret = cm_ext_mem_insert(st, fresh);
		if (ret) {
			free(fresh);
			return ret;
		}
	}
	e->mod_revision = (uint64_t)rev;
	ret = cm_etcd_regate(st, old_gw);
	if (!ret && strcmp(old_gw, e->gateway))
		ret = cm_etcd_regate(st, e->gateway);
	return ret;
}

static int cm_etcd_ext_del(struct cm_state *st, const char *name)
{
	struct cm_ext *e = cm_ext_find(st, name);
	char gw[CM_NAME_MAX + 1];

	if (!e)
		return 0;
	snprintf(gw, sizeof(gw), "%s", e->gateway);
	cm_ext_mem_remove(st, e);
	free(e);
	return cm_etcd_regate(st, gw);
}

/* An address claim: reserved in its pool (or free again). */
static void cm_etcd_ext_addr(struct cm_state *st, const char *addr, bool del)
{
	struct prefixalloc *pa;
	struct ipnet a;

	if (ipnet_parse(addr, &a, true) || !(pa = cm_ext_pool_of(st, &a)))
		return;
	if (del)
		prefixalloc_release(pa, &a);
	else
		prefixalloc_reserve(pa, &a); /* -EEXIST: ours, reserved already */
}

int cm_etcd_ext_apply(struct cm_state *st, const struct cm_etcd_ev *ev)
{
	const char *rest;

	int ret;

	if ((rest = cm_etcd_key_rest(st->etcd, ev->key, CM_ETCD_EXTERNAL))) {
		/* Without --external-cidr (the same on every manager: the
		 * stored configuration) there are none. */
		if (!st->ext)
			return 1;
		ret = ev->del ? cm_etcd_ext_del(st, rest) :
			cm_etcd_ext_put(st, rest, ev->value, ev->mod_revision);
		return ret < 0 ? ret : 1;
	}
	if ((rest = cm_etcd_key_rest(st->etcd, ev->key, CM_ETCD_EXTADDRS))) {
		if (st->ext)
			cm_etcd_ext_addr(st, rest, ev->del);
		return 1;
	}
	return 0;
}

/* --- changes ------------------------------------------------------------------ */

/* Both gateways' records again (NULL: none), from and to the same or not. */
static void cm_etcd_tx_gateways(struct cm_state *st, struct cm_etcd_tx *tx,
				const struct cm_node *from, const struct cm_node *to)
{
	if (from)
		cm_etcd_tx_node(st, tx, from, NULL);
	if (to && to != from)
		cm_etcd_tx_node(st, tx, to, NULL);
}

int cm_etcd_ext_register(struct cm_state *st, const char *name, const char *public_key,
			 const char *location, struct cm_ext **out, bool *changed)
{
	int ret;

	CM_ETCD_RETRY(ret, {
		struct cm_ext *e, fresh = { 0 };
		struct cm_node *from, *to;
		struct cm_etcd_tx tx;

		ret = cm_ext_plan(st, name, public_key, location, &e, &from, &to);
		if (ret) {
			*out = e;
			return ret < 0 ? ret : 0;
		}
		if (!e) {
			/* Chosen here, claimed by the transaction; the watch
			 * reserves what was claimed, this one or not. */
			ret = cm_ext_alloc_addrs(st, &fresh);
			if (ret)
				return ret;
			cm_ext_release_addrs(st, &fresh);
		}
		cm_etcd_tx_init(&tx);
		cm_etcd_tx_expect(st, &tx, CM_ETCD_EXTERNAL, name, e ? e->mod_revision : 0);
		cm_etcd_tx_put(st, &tx, CM_ETCD_EXTERNAL, name,
			       cm_etcd_ext_json(e ? e : &fresh, public_key, location, to->name));
		for (size_t i = 0; !e && i < fresh.n_addr; i++) {
			cm_etcd_tx_expect(st, &tx, CM_ETCD_EXTADDRS, fresh.addr_str[i], 0);
			cm_etcd_tx_put(st, &tx, CM_ETCD_EXTADDRS, fresh.addr_str[i], strdup(name));
		}
		cm_etcd_tx_gateways(st, &tx, from, to);
		ret = cm_etcd_tx_run(st, &tx);
		cm_etcd_tx_free(&tx);
	});
	if (ret < 0)
		return ret;
	*out = cm_ext_find(st, name);
	if (!*out)
		return -ENOENT; /* deleted again meanwhile */
	*changed = true;
	log_info("external peer registered", "name=%s public_key=%s address=%s gateway=%s",
		 (*out)->name, (*out)->public_key, (*out)->address, (*out)->gateway);
	return 0;
}

int cm_etcd_ext_delete(struct cm_state *st, const char *name)
{
	int ret;

	CM_ETCD_RETRY(ret, {
		struct cm_ext *e = cm_ext_find(st, name);
		struct cm_etcd_tx tx;

		if (!e)
			return -ENOENT;
		cm_etcd_tx_init(&tx);
		cm_etcd_tx_expect(st, &tx, CM_ETCD_EXTERNAL, name, e->mod_revision);
		cm_etcd_tx_del(st, &tx, CM_ETCD_EXTERNAL, name);
		for (size_t i = 0; i < e->n_addr; i++)
			cm_etcd_tx_del(st, &tx, CM_ETCD_EXTADDRS, e->addr_str[i]);
		cm_etcd_tx_gateways(st, &tx, e->gateway[0] ? cm_state_find(st, e->gateway) : NULL,
				    NULL);
		ret = cm_etcd_tx_run(st, &tx);
		cm_etcd_tx_free(&tx);
	});
	if (ret < 0)
		return ret;
	log_info("external peer deleted", "name=%s", name);
	return 0;
}

/* e to the gateway chosen for it without skip (none: no gateway): 1 done,
 * 0 conflict (memory caught up), or negative errno. */
static int cm_etcd_ext_move(struct cm_state *st, struct cm_ext *e, const struct cm_node *skip)
{
	struct cm_node *from = e->gateway[0] ? cm_state_find(st, e->gateway) : NULL;
	struct cm_node *to = cm_ext_choose(st, e->location, skip);
	struct cm_etcd_tx tx;
	int ret;

	cm_etcd_tx_init(&tx);
	cm_etcd_tx_expect(st, &tx, CM_ETCD_EXTERNAL, e->name, e->mod_revision);
	cm_etcd_tx_put(st, &tx, CM_ETCD_EXTERNAL, e->name,
		       cm_etcd_ext_json(e, e->public_key, e->location, to ? to->name : ""));
	cm_etcd_tx_gateways(st, &tx, from, to);
	ret = cm_etcd_tx_run(st, &tx);
	cm_etcd_tx_free(&tx);
	if (ret == 1)
		log_info("external peer moved", "name=%s gateway=%s", e->name,
			 to ? to->name : "(none)");
	return ret;
}

/* The first external peer served by gateway (NULL: by none). */
static struct cm_ext *cm_etcd_ext_first(const struct cm_state *st, const char *gateway)
{
	size_t n;
	struct cm_ext *const *v = cm_ext_list(st, &n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i]->gateway, gateway ? gateway : ""))
			return v[i];
	return NULL;
}

/* Moves them one transaction each until none is left (bounded: a peer
 * another manager keeps moving back counts as a try). */
static int cm_etcd_ext_move_all(struct cm_state *st, const char *gateway)
{
	size_t n, tries;
	int ret = 0;

	cm_ext_list(st, &n);
	tries = 2 * n + CM_ETCD_TRIES;
	while (ret >= 0 && tries--) {
		struct cm_ext *e = cm_etcd_ext_first(st, gateway);
		const struct cm_node *g = gateway ? cm_state_find(st, gateway) : NULL;

		if (!e)
			return 0;
		/* Without a gateway, none to take it: done. */
		if (!gateway && !cm_ext_choose(st, e->location, NULL))
			return 0;
		ret = cm_etcd_ext_move(st, e, g);
	}
	return ret < 0 ? ret : -EAGAIN;
}

int cm_etcd_ext_hand_on(struct cm_state *st, const char *node_name)
{
	return st->ext ? cm_etcd_ext_move_all(st, node_name) : 0;
}

int cm_etcd_ext_adopt(struct cm_state *st)
{
	return st->ext ? cm_etcd_ext_move_all(st, NULL) : 0;
}

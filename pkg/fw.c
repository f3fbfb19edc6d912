/*
 * Firewall chains through libiptc (libip4tc / libip6tc): the legacy
 * xtables tables, which is what libiptc speaks. They show in
 * `iptables-legacy -S` / `iptables-legacy-save` (and the ip6 variants), not
 * in iptables-nft. This file is the only one that sees libiptc's errors.
 *
 *   filter WGCNI-FORWARD:      -i IF -j ACCEPT
 *                              -o IF -j ACCEPT
 *   nat    WGCNI-POSTROUTING:  -s SUBNET -d CIDR -j RETURN   (each cluster CIDR)
 *                              -s SUBNET -o IFNAME -j RETURN (if masquerade)
 *                              -s SUBNET -j MASQUERADE       (if masquerade)
 *
 * Each is jumped to from the top of FORWARD / POSTROUTING. The whole update
 * holds /run/xtables.lock, as iptables does, because libiptc replaces a
 * table wholesale: two writers without the lock lose each other's rules.
 */
#include "fw.h"
#include "sys.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <libiptc/libip6tc.h>
#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_nat.h>

#define FW_LOCK_PATH "/run/xtables.lock"
#define FW_LOCK_WAIT_MS 10000

/* --- one rule, family independent --------------------------------------- */

struct fw_rule {
	const char *in, *out;       /* interfaces or NULL */
	const struct ipnet *src, *dst; /* or NULL */
	const char *target;         /* ACCEPT, RETURN, MASQUERADE, or a chain */
};

/* Per family: libiptc's parallel APIs behind one table. */
struct fw_family {
	int af;
	const char *name;
	struct xtc_handle *(*init)(const char *table);
	void (*free)(struct xtc_handle *h);
	int (*commit)(struct xtc_handle *h);
	const char *(*strerror)(int err);
	int (*is_chain)(const char *chain, struct xtc_handle *const h);
	int (*create_chain)(const char *chain, struct xtc_handle *h);
	int (*flush)(const char *chain, struct xtc_handle *h);
	int (*delete_chain)(const char *chain, struct xtc_handle *h);
	int (*delete_num)(const char *chain, unsigned int n, struct xtc_handle *h);
	/* wrappers, as the entry types differ */
	const char *(*rule_target)(const char *chain, unsigned int n, struct xtc_handle *h);
	int (*append)(const char *chain, const struct fw_rule *r, struct xtc_handle *h);
	int (*insert)(const char *chain, const struct fw_rule *r, struct xtc_handle *h);
	bool (*chains_same)(const char *a, const char *b, struct xtc_handle *h);
};

static void set_iface(const char *name, char iface[IFNAMSIZ], unsigned char mask[IFNAMSIZ])
{
	size_t len = strlen(name);

	/* As iptables: the name plus its NUL must match exactly. */
	memcpy(iface, name, len + 1);
	memset(mask, 0xff, len + 1);
}

static void prefix_mask(uint8_t *mask, unsigned int bytes, unsigned int prefixlen)
{
	for (unsigned int i = 0; i < bytes; i++) {
		unsigned int bits = prefixlen > i * 8 ? prefixlen - i * 8 : 0;

		mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff00 >> bits);
	}
}

static size_t target_size(const char *target, int af)
{
	if (!strcmp(target, "MASQUERADE"))
		return XT_ALIGN(sizeof(struct xt_entry_target) +
				(af == AF_INET ? sizeof(struct nf_nat_ipv4_multi_range_compat)
					       : sizeof(struct nf_nat_range)));
	/* ACCEPT, RETURN and jumps: libiptc maps the name to a verdict. */
	return XT_ALIGN(sizeof(struct xt_standard_target));
}

static void fill_target(struct xt_entry_target *t, const char *target, size_t size, int af)
{
	t->u.user.target_size = (uint16_t)size;
	strncpy(t->u.user.name, target, sizeof(t->u.user.name) - 1);
	/* MASQUERADE: IPv4 (revision 0) wants one empty range; IPv6 an
	 * all-zero nf_nat_range. */
	if (af == AF_INET && !strcmp(target, "MASQUERADE"))
		((struct nf_nat_ipv4_multi_range_compat *)t->data)->rangesize = 1;
}

static struct ipt_entry *v4_entry(const struct fw_rule *r)
{
	size_t tsize = target_size(r->target, AF_INET);
	size_t off = XT_ALIGN(sizeof(struct ipt_entry));
	struct ipt_entry *e = calloc(1, off + tsize);

	if (!e)
		return NULL;
	if (r->in)
		set_iface(r->in, e->ip.iniface, e->ip.iniface_mask);
	if (r->out)
		set_iface(r->out, e->ip.outiface, e->ip.outiface_mask);
	if (r->src) {
		prefix_mask((uint8_t *)&e->ip.smsk, 4, r->src->prefixlen);
		memcpy(&e->ip.src, r->src->addr.bytes + 12, 4);
		e->ip.src.s_addr &= e->ip.smsk.s_addr;
	}
	if (r->dst) {
		prefix_mask((uint8_t *)&e->ip.dmsk, 4, r->dst->prefixlen);
		memcpy(&e->ip.dst, r->dst->addr.bytes + 12, 4);
		e->ip.dst.s_addr &= e->ip.dmsk.s_addr;
	}
	e->target_offset = (uint16_t)off;
	e->next_offset = (uint16_t)(off + tsize);
	fill_target((struct xt_entry_target *)((char *)e + off), r->target, tsize, AF_INET);
	return e;
}

static struct ip6t_entry *v6_entry(const struct fw_rule *r)
{
	size_t tsize = target_size(r->target, AF_INET6);
	size_t off = XT_ALIGN(sizeof(struct ip6t_entry));
	struct ip6t_entry *e = calloc(1, off + tsize);

	if (!e)
		return NULL;
	if (r->in)
		set_iface(r->in, e->ipv6.iniface, e->ipv6.iniface_mask);
	if (r->out)
		set_iface(r->out, e->ipv6.outiface, e->ipv6.outiface_mask);
	if (r->src) {
		prefix_mask(e->ipv6.smsk.s6_addr, 16, r->src->prefixlen);
		for (int i = 0; i < 16; i++)
			e->ipv6.src.s6_addr[i] = r->src->addr.bytes[i] & e->ipv6.smsk.s6_addr[i];
	}
	if (r->dst) {
		prefix_mask(e->ipv6.dmsk.s6_addr, 16, r->dst->prefixlen);
		for (int i = 0; i < 16; i++)
			e->ipv6.dst.s6_addr[i] = r->dst->addr.bytes[i] & e->ipv6.dmsk.s6_addr[i];
	}
	e->target_offset = (uint16_t)off;
	e->next_offset = (uint16_t)(off + tsize);
	fill_target((struct xt_entry_target *)((char *)e + off), r->target, tsize, AF_INET6);
	return e;
}

static const char *v4_rule_target(const char *chain, unsigned int n, struct xtc_handle *h)
{
	const struct ipt_entry *e = iptc_first_rule(chain, h);

	while (e && n--)
		e = iptc_next_rule(e, h);
	return e ? iptc_get_target(e, h) : NULL;
}

static const char *v6_rule_target(const char *chain, unsigned int n, struct xtc_handle *h)
{
	const struct ip6t_entry *e = ip6tc_first_rule(chain, h);

	while (e && n--)
		e = ip6tc_next_rule(e, h);
	return e ? ip6tc_get_target(e, h) : NULL;
}

static int v4_append(const char *chain, const struct fw_rule *r, struct xtc_handle *h)
{
	struct ipt_entry *e = v4_entry(r);
	int ret;

	if (!e)
		return -ENOMEM;
	ret = iptc_append_entry(chain, e, h) ? 0 : -errno;
	free(e);
	return ret;
}

static int v6_append(const char *chain, const struct fw_rule *r, struct xtc_handle *h)
{
	struct ip6t_entry *e = v6_entry(r);
	int ret;

	if (!e)
		return -ENOMEM;
	ret = ip6tc_append_entry(chain, e, h) ? 0 : -errno;
	free(e);
	return ret;
}

static int v4_insert(const char *chain, const struct fw_rule *r, struct xtc_handle *h)
{
	struct ipt_entry *e = v4_entry(r);
	int ret;

	if (!e)
		return -ENOMEM;
	ret = iptc_insert_entry(chain, e, 0, h) ? 0 : -errno;
	free(e);
	return ret;
}

static int v6_insert(const char *chain, const struct fw_rule *r, struct xtc_handle *h)
{
	struct ip6t_entry *e = v6_entry(r);
	int ret;

	if (!e)
		return -ENOMEM;
	ret = ip6tc_insert_entry(chain, e, 0, h) ? 0 : -errno;
	free(e);
	return ret;
}

/* Same matches and targets, rule by rule (counters aside). libiptc walks a
 * chain with one iterator per handle, so each chain is collected on its own
 * before the two are compared. */
#define FW_CMP_MAX 64

#define FW_COLLECT(type, first, next, chain, h, out, n)                        \
	do {                                                                   \
		const type *e_;                                                \
		for (e_ = first(chain, h); e_; e_ = next(e_, h)) {             \
			if (n == FW_CMP_MAX)                                   \
				return false;                                  \
			out[n++] = e_;                                         \
		}                                                              \
	} while (0)

static bool v4_chains_same(const char *a, const char *b, struct xtc_handle *h)
{
	const struct ipt_entry *x[FW_CMP_MAX], *y[FW_CMP_MAX];
	size_t nx = 0, ny = 0;

	FW_COLLECT(struct ipt_entry, iptc_first_rule, iptc_next_rule, a, h, x, nx);
	FW_COLLECT(struct ipt_entry, iptc_first_rule, iptc_next_rule, b, h, y, ny);
	if (nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (memcmp(&x[i]->ip, &y[i]->ip, sizeof(x[i]->ip)) ||
		    x[i]->next_offset != y[i]->next_offset ||
		    strcmp(iptc_get_target(x[i], h), iptc_get_target(y[i], h)))
			return false;
	return true;
}

static bool v6_chains_same(const char *a, const char *b, struct xtc_handle *h)
{
	const struct ip6t_entry *x[FW_CMP_MAX], *y[FW_CMP_MAX];
	size_t nx = 0, ny = 0;

	FW_COLLECT(struct ip6t_entry, ip6tc_first_rule, ip6tc_next_rule, a, h, x, nx);
	FW_COLLECT(struct ip6t_entry, ip6tc_first_rule, ip6tc_next_rule, b, h, y, ny);
	if (nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (memcmp(&x[i]->ipv6, &y[i]->ipv6, sizeof(x[i]->ipv6)) ||
		    x[i]->next_offset != y[i]->next_offset ||
		    strcmp(ip6tc_get_target(x[i], h), ip6tc_get_target(y[i], h)))
			return false;
	return true;
}

static const struct fw_family families[] = {
	{
		.af = AF_INET, .name = "ipv4",
		.init = iptc_init, .free = iptc_free, .commit = iptc_commit,
		.strerror = iptc_strerror, .is_chain = iptc_is_chain,
		.create_chain = iptc_create_chain, .flush = iptc_flush_entries,
		.delete_chain = iptc_delete_chain, .delete_num = iptc_delete_num_entry,
		.rule_target = v4_rule_target, .append = v4_append, .insert = v4_insert,
		.chains_same = v4_chains_same,
	},
	{
		.af = AF_INET6, .name = "ipv6",
		.init = ip6tc_init, .free = ip6tc_free, .commit = ip6tc_commit,
		.strerror = ip6tc_strerror, .is_chain = ip6tc_is_chain,
		.create_chain = ip6tc_create_chain, .flush = ip6tc_flush_entries,
		.delete_chain = ip6tc_delete_chain, .delete_num = ip6tc_delete_num_entry,
		.rule_target = v6_rule_target, .append = v6_append, .insert = v6_insert,
		.chains_same = v6_chains_same,
	},
};

/* --- lock ------------------------------------------------------------------ */

/* The xtables lock fd, or negative errno (-ETIMEDOUT after the wait). */
static int fw_lock(void)
{
	int64_t deadline = sys_now_ms() + FW_LOCK_WAIT_MS;
	int fd, ret;

	fd = open(FW_LOCK_PATH, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		if (ret != -EWOULDBLOCK && ret != -EINTR) {
			close(fd);
			return ret;
		}
		if (sys_now_ms() > deadline) {
			close(fd);
			log_warnx("firewall lock busy", "path=%s waited_ms=%d", FW_LOCK_PATH,
				  FW_LOCK_WAIT_MS);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 50);
	}
	return fd;
}

static void fw_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

/* --- tables ------------------------------------------------------------------ */

static int table_open(const struct fw_family *f, const char *table, struct xtc_handle **h)
{
	int ret;

	*h = f->init(table);
	if (*h)
		return 0;
	ret = errno ? -errno : -EIO;
	/* ENOPROTOOPT/ENOENT: no ip_tables in this kernel and none loadable. */
	log_warnx("cannot open firewall table", "family=%s table=%s err=%s", f->name,
		  table, f->strerror(-ret));
	return ret;
}

static int table_commit(const struct fw_family *f, const char *table, struct xtc_handle *h)
{
	int ret;

	if (f->commit(h))
		return 0;
	ret = errno ? -errno : -EIO;
	log_warnx("cannot commit firewall table", "family=%s table=%s err=%s", f->name,
		  table, f->strerror(-ret));
	return ret;
}

/* Remove every jump from builtin to chain; count them in *n. */
static int drop_jumps(const struct fw_family *f, const char *builtin, const char *chain,
		      struct xtc_handle *h, int *n)
{
	const char *t;
	unsigned int i = 0;

	while ((t = f->rule_target(builtin, i, h))) {
		if (strcmp(t, chain)) {
			i++;
			continue;
		}
		if (!f->delete_num(builtin, i, h))
			return -errno;
		(*n)++;
	}
	return 0;
}

static bool has_jump(const struct fw_family *f, const char *builtin, const char *chain,
		     struct xtc_handle *h)
{
	const char *t;

	for (unsigned int i = 0; (t = f->rule_target(builtin, i, h)); i++)
		if (!strcmp(t, chain))
			return true;
	return false;
}

typedef int (*fill_fn)(const struct fw_family *f, const struct fw_config *cfg,
		       const char *chain, struct xtc_handle *h);

static int fill_forward(const struct fw_family *f, const struct fw_config *cfg,
			const char *chain, struct xtc_handle *h)
{
	struct fw_rule in = { .in = cfg->ifname, .target = "ACCEPT" };
	struct fw_rule out = { .out = cfg->ifname, .target = "ACCEPT" };
	int ret = f->append(chain, &in, h);

	return ret < 0 ? ret : f->append(chain, &out, h);
}

static int fill_postrouting(const struct fw_family *f, const struct fw_config *cfg,
			    const char *chain, struct xtc_handle *h)
{
	int ret;

	for (size_t s = 0; s < cfg->n_node_subnets; s++) {
		const struct ipnet *sub = &cfg->node_subnets[s];

		if (sub->addr.family != f->af)
			continue;
		/* Container to container, on any node, keeps its address. */
		for (size_t c = 0; c < cfg->n_cluster_cidrs; c++) {
			struct fw_rule r = { .src = sub, .dst = &cfg->cluster_cidrs[c],
					     .target = "RETURN" };

			if (cfg->cluster_cidrs[c].addr.family != f->af)
				continue;
			ret = f->append(chain, &r, h);
			if (ret < 0)
				return ret;
		}
		if (cfg->masquerade) {
			/* Through the node interface it stays in the WireGuard
			 * network (external peers too): never NATed. */
			struct fw_rule wg = { .src = sub, .out = cfg->ifname, .target = "RETURN" };
			struct fw_rule r = { .src = sub, .target = "MASQUERADE" };

			ret = f->append(chain, &wg, h);
			if (ret == 0)
				ret = f->append(chain, &r, h);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static const struct fw_chain {
	const char *table, *builtin, *chain;
	fill_fn fill;
} chains[] = {
	{ "filter", "FORWARD", FW_CHAIN_FORWARD, fill_forward },
	{ "nat", "POSTROUTING", FW_CHAIN_POSTROUTING, fill_postrouting },
};

/* Flush and refill chain, create it and its jump when missing. */
static int chain_install(const struct fw_family *f, const struct fw_chain *c,
			 const struct fw_config *cfg)
{
	struct fw_rule jump = { .target = c->chain };
	struct xtc_handle *h;
	int ret;

	ret = table_open(f, c->table, &h);
	if (ret < 0)
		return ret;
	if (f->is_chain(c->chain, h)) {
		if (!f->flush(c->chain, h))
			goto out_errno;
	} else if (!f->create_chain(c->chain, h)) {
		goto out_errno;
	}
	ret = c->fill(f, cfg, c->chain, h);
	if (ret < 0)
		goto out_free;
	if (!has_jump(f, c->builtin, c->chain, h)) {
		ret = f->insert(c->builtin, &jump, h);
		if (ret < 0)
			goto out_free;
	}
	ret = table_commit(f, c->table, h);
	goto out_free;
out_errno:
	ret = errno ? -errno : -EIO;
	log_warnx("cannot prepare firewall chain", "family=%s table=%s chain=%s err=%s",
		  f->name, c->table, c->chain, f->strerror(-ret));
out_free:
	f->free(h);
	return ret;
}

static int chain_remove(const struct fw_family *f, const struct fw_chain *c)
{
	struct xtc_handle *h;
	int ret, changed = 0;

	h = f->init(c->table);
	if (!h) {
		/* No table at all: nothing of ours can be there. */
		if (errno == ENOENT || errno == ENOPROTOOPT || errno == EAFNOSUPPORT)
			return 0;
		return table_open(f, c->table, &h);
	}
	ret = drop_jumps(f, c->builtin, c->chain, h, &changed);
	if (ret < 0)
		goto out_free;
	if (f->is_chain(c->chain, h)) {
		if (!f->flush(c->chain, h) || !f->delete_chain(c->chain, h)) {
			ret = errno ? -errno : -EIO;
			log_warnx("cannot delete firewall chain", "family=%s table=%s chain=%s err=%s",
				  f->name, c->table, c->chain, f->strerror(-ret));
			goto out_free;
		}
		changed++;
	}
	ret = changed ? table_commit(f, c->table, h) : 0;
out_free:
	f->free(h);
	return ret;
}

/* What chain_install would change, read only: the wanted rules are built in
 * a scratch chain of a handle that is never committed. 0 in place, 1 not. */
static int chain_check(const struct fw_family *f, const struct fw_chain *c,
		       const struct fw_config *cfg, char *what, size_t len)
{
	static const char scratch[] = "WGCNI-CHECK";
	struct xtc_handle *h;
	int ret;

	ret = table_open(f, c->table, &h);
	if (ret < 0)
		return ret;
	ret = 1;
	if (!f->is_chain(c->chain, h)) {
		snprintf(what, len, "%s %s: create chain %s and its jump from %s", f->name,
			 c->table, c->chain, c->builtin);
		goto out_free;
	}
	if (!f->create_chain(scratch, h)) {
		ret = errno ? -errno : -EIO;
		goto out_free;
	}
	ret = c->fill(f, cfg, scratch, h);
	if (ret < 0)
		goto out_free;
	ret = 0;
	if (!f->chains_same(c->chain, scratch, h)) {
		snprintf(what, len, "%s %s: refill chain %s (rules differ)", f->name, c->table,
			 c->chain);
		ret = 1;
	} else if (!has_jump(f, c->builtin, c->chain, h)) {
		snprintf(what, len, "%s %s: add the jump %s -> %s", f->name, c->table,
			 c->builtin, c->chain);
		ret = 1;
	}
out_free:
	f->free(h);
	return ret;
}

static bool config_has_family(const struct fw_config *cfg, int af)
{
	for (size_t i = 0; i < cfg->n_node_subnets; i++)
		if (cfg->node_subnets[i].addr.family == af)
			return true;
	for (size_t i = 0; i < cfg->n_cluster_cidrs; i++)
		if (cfg->cluster_cidrs[i].addr.family == af)
			return true;
	return false;
}

static int check_config(const struct fw_config *cfg)
{
	if (!cfg || !cfg->ifname || !*cfg->ifname || strlen(cfg->ifname) >= IFNAMSIZ ||
	    (cfg->n_node_subnets && !cfg->node_subnets) ||
	    (cfg->n_cluster_cidrs && !cfg->cluster_cidrs))
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_node_subnets; i++)
		if (cfg->node_subnets[i].prefixlen > ipaddr_bits(&cfg->node_subnets[i].addr))
			return -EINVAL;
	for (size_t i = 0; i < cfg->n_cluster_cidrs; i++)
		if (cfg->cluster_cidrs[i].prefixlen > ipaddr_bits(&cfg->cluster_cidrs[i].addr))
			return -EINVAL;
	return 0;
}

int fw_install(const struct fw_config *cfg)
{
	int ret, lock;
	size_t i, j;

	ret = check_config(cfg);
	if (ret < 0)
		return ret;
	ret = fw_lock();
	if (ret < 0)
		return ret;
	lock = ret;
	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct fw_family *f = &families[i];

		for (j = 0; j < sizeof(chains) / sizeof(chains[0]); j++) {
			ret = chain_install(f, &chains[j], cfg);
			/* IPv6 tables may be missing on an IPv4-only host: only
			 * an error when the config asks for IPv6. */
			if (ret < 0 && f->af == AF_INET6 && !config_has_family(cfg, AF_INET6))
				ret = 0;
			if (ret < 0)
				goto out_unlock;
		}
	}
	ret = 0;
out_unlock:
	fw_unlock(lock);
	return ret;
}

int fw_check(const struct fw_config *cfg, char *what, size_t len)
{
	int ret;

	ret = check_config(cfg);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct fw_family *f = &families[i];

		for (size_t j = 0; j < sizeof(chains) / sizeof(chains[0]); j++) {
			ret = chain_check(f, &chains[j], cfg, what, len);
			if (ret < 0 && f->af == AF_INET6 && !config_has_family(cfg, AF_INET6))
				ret = 0;
			if (ret != 0)
				return ret;
		}
	}
	return 0;
}

int fw_remove(void)
{
	int ret, first = 0, lock;
	size_t i, j;

	ret = fw_lock();
	if (ret < 0)
		return ret;
	lock = ret;
	/* Best effort over all four chains; report the first failure. */
	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		for (j = 0; j < sizeof(chains) / sizeof(chains[0]); j++) {
			ret = chain_remove(&families[i], &chains[j]);
			if (ret < 0 && !first)
				first = ret;
		}
	fw_unlock(lock);
	return first;
}

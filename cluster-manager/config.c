/*
 * The cluster configuration flags (config.h).
 */
#include "config.h"

#include "opts.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *const cm_len_opt[CM_NFAM] = { "--node-prefix-length",
						 "--node-prefix-length-v6" };

static int cm_config_cidr(struct cm_config *cfg, bool *given, const char *s, char *err,
			  size_t errlen)
{
	struct ipnet net;
	enum cm_family f;
	char buf[IPNET_STRLEN];

	if (ipnet_parse(s, &net, true)) {
		snprintf(err, errlen, "--cluster-cidr: invalid CIDR `%s' (want e.g. 10.100.0.0/16, "
			 "no host bits)", s);
		return -EINVAL;
	}
	f = net.addr.family == AF_INET ? CM_V4 : CM_V6;
	if (*given && cfg->has_cidr[f]) {
		snprintf(err, errlen, "--cluster-cidr: more than one %s CIDR (`%s' and `%s')",
			 f == CM_V4 ? "IPv4" : "IPv6", ipnet_format(&cfg->cidr[f], buf), s);
		return -EINVAL;
	}
	if (!*given) {
		/* The first one given replaces the default. */
		cfg->has_cidr[CM_V4] = cfg->has_cidr[CM_V6] = false;
		*given = true;
	}
	cfg->has_cidr[f] = true;
	cfg->cidr[f] = net;
	return 0;
}

static int cm_config_external(struct cm_config *cfg, bool *unused, const char *s, char *err,
			      size_t errlen)
{
	(void)unused;
	if (cfg->n_external == CM_MAX_EXTERNAL) {
		snprintf(err, errlen, "--external-cidr: more than %d CIDRs", CM_MAX_EXTERNAL);
		return -E2BIG;
	}
	if (ipnet_parse(s, &cfg->external[cfg->n_external], true)) {
		snprintf(err, errlen, "--external-cidr: invalid CIDR `%s'", s);
		return -EINVAL;
	}
	cfg->n_external++;
	return 0;
}

/* A repeatable option may carry several comma-separated values. */
static int cm_config_each(struct cm_config *cfg, bool *given, const char *opt, const char *arg,
			  int (*fn)(struct cm_config *, bool *, const char *, char *, size_t),
			  char *err, size_t errlen)
{
	char **v = opts_split(arg);
	int ret = 0;

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!v[0]) {
		snprintf(err, errlen, "%s: empty CIDR `%s'", opt, arg);
		ret = -EINVAL;
	}
	for (size_t i = 0; v[i] && !ret; i++)
		ret = fn(cfg, given, v[i], err, errlen);
	opts_strv_free(v);
	return ret;
}

int cm_config_cidrs(struct cm_config *cfg, bool *given, const char *arg, char *err,
		    size_t errlen)
{
	return cm_config_each(cfg, given, "--cluster-cidr", arg, cm_config_cidr, err, errlen);
}

int cm_config_external_cidrs(struct cm_config *cfg, const char *arg, char *err, size_t errlen)
{
	return cm_config_each(cfg, NULL, "--external-cidr", arg, cm_config_external, err,
			      errlen);
}

int cm_config_prefix_length(struct cm_config *cfg, enum cm_family f, const char *arg, char *err,
			    size_t errlen)
{
	unsigned long v;

	if (opts_parse_ulong(arg, 0, 128, &v) < 0) {
		snprintf(err, errlen, "%s: invalid prefix length `%s'", cm_len_opt[f], arg);
		return -EINVAL;
	}
	cfg->childlen[f] = (unsigned int)v;
	return 0;
}

int cm_config_check(const struct cm_config *cfg, char *err, size_t errlen)
{
	for (int f = 0; f < CM_NFAM; f++) {
		const struct ipnet *c = &cfg->cidr[f];
		unsigned int cl = cfg->childlen[f], bits = f == CM_V4 ? 32 : 128;
		char buf[IPNET_STRLEN];

		if (!cfg->has_cidr[f])
			continue;
		/* A node needs its first host address for its interface. */
		if (cl < c->prefixlen || cl >= bits || cl - c->prefixlen > 64) {
			snprintf(err, errlen, "%s: /%u subnets do not fit cluster CIDR `%s' "
				 "(need %u..%u)", cm_len_opt[f], cl, ipnet_format(c, buf),
				 c->prefixlen, bits - 1 < c->prefixlen + 64 ? bits - 1 :
				 c->prefixlen + 64);
			return -EINVAL;
		}
	}
	return 0;
}

int cm_config_etcd_prefix(const char *arg, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t len = strlen(arg);

	while (len > 1 && arg[len - 1] == '/')
		len--;
	if (arg[0] != '/' || len >= outlen) {
		snprintf(err, errlen, "--etcd-prefix: invalid prefix `%s' (want e.g. /wgcni: a "
			 "slash first, at most %zu characters)", arg, outlen - 1);
		return -EINVAL;
	}
	/* "/": the keys at etcd's root (/nodes/..). */
	if (len == 1)
		len = 0;
	memcpy(out, arg, len);
	out[len] = '\0';
	return 0;
}

char *cm_config_etcd_json(const struct cm_config *cfg)
{
	json_t *cidrs = json_array(), *ext = json_array(), *o = NULL;
	char buf[IPNET_STRLEN], *s = NULL;
	bool bad = !cidrs || !ext;

	for (int f = 0; !bad && f < CM_NFAM; f++)
		bad = cfg->has_cidr[f] &&
		      json_array_append_new(cidrs, json_string(ipnet_format(&cfg->cidr[f], buf)));
	for (size_t i = 0; !bad && i < cfg->n_external; i++)
		bad = json_array_append_new(ext, json_string(ipnet_format(&cfg->external[i], buf)));
	if (!bad)
		o = json_pack("{s:O,s:I,s:I,s:O}", "clusterCidrs", cidrs, "nodePrefixLength",
			      (json_int_t)cfg->childlen[CM_V4], "nodePrefixLengthV6",
			      (json_int_t)cfg->childlen[CM_V6], "externalCidrs", ext);
	if (o)
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	json_decref(cidrs);
	json_decref(ext);
	if (!s)
		errno = ENOMEM;
	return s;
}

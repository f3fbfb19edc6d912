/*
 * Network configuration from stdin. Strict: a field we do not know is an
 * error (code 2) except those the spec reserves for runtimes (args,
 * runtimeConfig, capabilities, prevResult, dns and every "cni.dev/" key).
 */
#include "cni.h"
#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#define CONF_MIN_MTU 576
#define CONF_MAX_MTU 65535
#define CONF_MAX_STR 4096

typedef int (*conf_field_fn)(struct cni_conf *c, const char *key, json_t *v,
			     struct cni_err *e);

static int conf_bad_type(const char *key, const char *want, struct cni_err *e)
{
	return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL, "invalid network configuration",
			"field `%s' must be %s", key, want);
}

static int conf_string(const char *key, json_t *v, const char **out,
		       struct cni_err *e)
{
	const char *s;

	if (!json_is_string(v))
		return conf_bad_type(key, "a string", e);
	s = json_string_value(v);
	if (!*s || strlen(s) > CONF_MAX_STR || strlen(s) != json_string_length(v))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL,
				"invalid network configuration",
				"field `%s': `%.64s' is empty, too long or holds NUL", key, s);
	*out = s;
	return 0;
}

static int conf_version(struct cni_conf *c, const char *key, json_t *v,
			struct cni_err *e)
{
	/* Checked before every other field, in cni_conf_parse. */
	return 0;
}

static int conf_name(struct cni_conf *c, const char *key, json_t *v,
		     struct cni_err *e)
{
	const char *why;
	int ret;

	ret = conf_string(key, v, &c->name, e);
	if (ret)
		return ret;
	/* The spec's network name syntax, the same as a container ID. */
	why = name_container_id_check(c->name);
	if (why)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL, "invalid network name",
				"`%.128s': %s", c->name, why);
	return 0;
}

static int conf_type(struct cni_conf *c, const char *key, json_t *v,
		     struct cni_err *e)
{
	return conf_string(key, v, &c->type, e);
}

/* unix:///absolute/path or http://host:port (SPEC §4): the node manager
 * serves nothing else, so the plugin speaks nothing else (cni/nmhttp.c). */
static int conf_node_manager(struct cni_conf *c, const char *key, json_t *v,
			     struct cni_err *e)
{
	const char *s, *rest = NULL, *colon;
	int ret;

	ret = conf_string(key, v, &s, e);
	if (ret)
		return ret;
	if (!strncmp(s, "unix://", 7)) {
		if (s[7] == '/' && s[8] != '\0' && strlen(s + 7) < 108)
			goto ok;
		goto bad;
	}
	if (!strncmp(s, "http://", 7))
		rest = s + 7;
	if (!rest || !*rest || *rest == ':' || *rest == '/')
		goto bad;
	colon = strrchr(rest, ':');
	if (!colon || !isdigit((unsigned char)colon[1]))
		goto bad;
ok:
	c->node_manager = s;
	return 0;
bad:
	return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL, "invalid nodeManager URL",
			"`%s': want unix:///path/to.sock or http://host:port", s);
}

static int conf_mtu(struct cni_conf *c, const char *key, json_t *v,
		    struct cni_err *e)
{
	json_int_t mtu;

	if (!json_is_integer(v))
		return conf_bad_type(key, "an integer", e);
	mtu = json_integer_value(v);
	if (mtu < CONF_MIN_MTU || mtu > CONF_MAX_MTU)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, -ERANGE, "invalid mtu",
				"%lld is outside %d..%d", (long long)mtu, CONF_MIN_MTU,
				CONF_MAX_MTU);
	c->mtu = (unsigned int)mtu;
	return 0;
}

static int conf_backend(struct cni_conf *c, const char *key, json_t *v,
			struct cni_err *e)
{
	const char *s;
	int ret;

	ret = conf_string(key, v, &s, e);
	if (ret)
		return ret;
	if (wg_backend_parse(s, &c->backend))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL, "invalid backend",
				"`%s': want auto, kernel or userspace", s);
	c->backend_set = true;
	return 0;
}

static int conf_impl(struct cni_conf *c, const char *key, json_t *v,
		     struct cni_err *e)
{
	int ret;

	ret = conf_string(key, v, &c->impl, e);
	if (ret)
		return ret;
	if (strlen(c->impl) >= PATH_MAX)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, -ENAMETOOLONG,
				"invalid userspaceImplementation", "path too long");
	return 0;
}

static int conf_container_mesh(struct cni_conf *c, const char *key, json_t *v,
			       struct cni_err *e)
{
	if (!json_is_boolean(v))
		return conf_bad_type(key, "true or false", e);
	c->container_mesh = json_is_true(v);
	return 0;
}

static int conf_object(struct cni_conf *c, const char *key, json_t *v,
		       struct cni_err *e)
{
	if (!json_is_object(v))
		return conf_bad_type(key, "an object", e);
	return 0;
}

static int conf_dns(struct cni_conf *c, const char *key, json_t *v,
		    struct cni_err *e)
{
	if (!json_is_object(v))
		return conf_bad_type(key, "an object", e);
	c->dns = v;
	return 0;
}

/* Distrust the previous plugin: the parts we extend must have their types. */
static int conf_prev_result(struct cni_conf *c, const char *key, json_t *v,
			    struct cni_err *e)
{
	static const char *const arrays[] = { "interfaces", "ips", "routes" };
	json_t *a;

	if (!json_is_object(v))
		return conf_bad_type(key, "an object", e);
	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
		a = json_object_get(v, arrays[i]);
		if (a && !json_is_array(a) && !json_is_null(a))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL,
					"invalid prevResult", "`%s' must be an array",
					arrays[i]);
	}
	c->prev_result = v;
	return 0;
}

/* cni.dev/valid-attachments (1.1.0) and cni.dev/attachments: arrays of
 * {"containerID": ..., "ifname": ...}; other cni.dev/ keys are ignored. */
static int conf_cni_dev(struct cni_conf *c, const char *key, json_t *v,
			struct cni_err *e)
{
	json_t *att;
	size_t i;

	if (strcmp(key, "cni.dev/valid-attachments") && strcmp(key, "cni.dev/attachments"))
		return 0;
	if (!json_is_array(v))
		return conf_bad_type(key, "an array", e);
	json_array_foreach(v, i, att) {
		if (!json_is_object(att) ||
		    !json_is_string(json_object_get(att, "containerID")) ||
		    !json_is_string(json_object_get(att, "ifname")))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG, -EINVAL,
					"invalid attachment list",
					"`%s'[%zu] must be {\"containerID\": string, \"ifname\": string}",
					key, i);
	}
	/* The spec's name wins over the older one. */
	if (!c->valid_attachments || !strcmp(key, "cni.dev/valid-attachments"))
		c->valid_attachments = v;
	return 0;
}

static const struct conf_field {
	const char *key;
	conf_field_fn parse;
} conf_fields[] = {
	{ "cniVersion", conf_version },
	{ "name", conf_name },
	{ "type", conf_type },
	{ "nodeManager", conf_node_manager },
	{ "mtu", conf_mtu },
	{ "backend", conf_backend },
	{ "userspaceImplementation", conf_impl },
	{ "containerMesh", conf_container_mesh },
	{ "runtimeConfig", conf_object },
	{ "args", conf_object },
	{ "capabilities", conf_object },
	{ "prevResult", conf_prev_result },
	{ "dns", conf_dns },
};

static const struct conf_field *conf_field_find(const char *key)
{
	for (size_t i = 0; i < sizeof(conf_fields) / sizeof(conf_fields[0]); i++) {
		if (!strcmp(conf_fields[i].key, key))
			return &conf_fields[i];
	}
	return NULL;
}

static int conf_check_version(struct cni_conf *c, struct cni_err *e)
{
	json_t *v = json_object_get(c->root, "cniVersion");
	const char *s;

	/* As libcni: a configuration without cniVersion is 0.1.0. */
	if (!v)
		return cni_fail(e, CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT,
				"incompatible CNI versions",
				"config has no cniVersion (0.1.0 assumed); plugin supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
	if (!json_is_string(v))
		return conf_bad_type("cniVersion", "a string", e);
	s = json_string_value(v);
	if (cni_version_parse(s, &c->version))
		return cni_fail(e, CNI_ERR_INCOMPATIBLE_VERSION, -EPROTONOSUPPORT,
				"incompatible CNI versions",
				"config is `%.64s', plugin supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0", s);
	return 0;
}

int cni_conf_parse(struct cni_conf *c, const char *buf, size_t len,
		   struct cni_err *e)
{
	const struct conf_field *f;
	json_error_t jerr;
	const char *key;
	json_t *v;
	int ret;

	memset(c, 0, sizeof(*c));
	c->version = CNI_VERSION_LATEST;
	c->node_manager = CNI_DEFAULT_NODE_MANAGER;
	c->impl = CNI_DEFAULT_IMPL;
	c->backend = WG_BACKEND_AUTO;

	c->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->root)
		return cni_fail(e, CNI_ERR_DECODE, -EBADMSG,
				"failed to decode network configuration",
				"line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	ret = -EBADMSG;
	if (!json_is_object(c->root)) {
		cni_fail(e, CNI_ERR_DECODE, ret, "failed to decode network configuration",
			 "not a JSON object");
		goto err_free_root;
	}
	ret = conf_check_version(c, e);
	if (ret)
		goto err_free_root;

	json_object_foreach(c->root, key, v) {
		if (!strncmp(key, "cni.dev/", 8)) {
			ret = conf_cni_dev(c, key, v, e);
		} else if ((f = conf_field_find(key))) {
			ret = f->parse(c, key, v, e);
		} else if (!strcmp(key, "ipam")) {
			ret = cni_fail(e, CNI_ERR_UNSUPPORTED_FIELD, -EINVAL,
				       "unsupported field in network configuration",
				       "`ipam': wgcni takes addresses from its node manager");
		} else {
			ret = cni_fail(e, CNI_ERR_UNSUPPORTED_FIELD, -EINVAL,
				       "unsupported field in network configuration",
				       "`%.128s'", key);
		}
		if (ret)
			goto err_free_root;
	}
	ret = -EINVAL;
	if (!c->type) {
		cni_fail(e, CNI_ERR_INVALID_CONFIG, ret, "invalid network configuration",
			 "missing field `type'");
		goto err_free_root;
	}
	/* The spec requires it (runtimes key their cached results on it). */
	if (!c->name) {
		cni_fail(e, CNI_ERR_INVALID_CONFIG, ret, "invalid network configuration",
			 "missing field `name'");
		goto err_free_root;
	}
	return 0;

err_free_root:
	json_decref(c->root);
	memset(c, 0, sizeof(*c));
	return ret;
}

void cni_conf_peek_version(const char *buf, size_t len, const char **version_out,
			   json_t **root_out)
{
	json_t *root = json_loadb(buf, len, 0, NULL);
	json_t *v = json_object_get(root, "cniVersion");

	*version_out = json_is_string(v) ? json_string_value(v) : NULL;
	*root_out = root;
}

void cni_conf_free(struct cni_conf *c)
{
	if (!c)
		return;
	json_decref(c->root);
	memset(c, 0, sizeof(*c));
}

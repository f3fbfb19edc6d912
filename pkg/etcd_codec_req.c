/* etcd_codec.h: the requests, from etcd.h's structs to the gateway's JSON. */
#include "etcd_codec.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *codec_b64(const void *p, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);
	json_t *j;

	if (!s)
		return NULL;
	sodium_bin2base64(s, n, p, len, sodium_base64_VARIANT_ORIGINAL);
	j = json_string(s);
	free(s);
	return j;
}

static json_t *codec_i64(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_string(s);
}

static bool codec_key_ok(const char *key)
{
	return key && key[0];
}

/* range_end: NULL leaves it out, "" is etcd's "\0" (every key from key on). */
static int codec_set_range(json_t *o, const char *key, const char *range_end)
{
	if (!codec_key_ok(key))
		return -EINVAL;
	if (json_object_set_new(o, "key", codec_b64(key, strlen(key))) < 0)
		return -ENOMEM;
	if (range_end &&
	    json_object_set_new(o, "range_end",
				range_end[0] ? codec_b64(range_end, strlen(range_end))
					     : codec_b64("", 1)) < 0)
		return -ENOMEM;
	return 0;
}

static char *codec_dump(json_t *o, int ret)
{
	char *s = NULL;

	if (!ret && o) {
		s = json_dumps(o, JSON_COMPACT);
		if (!s)
			ret = -ENOMEM;
	} else if (!ret) {
		ret = -ENOMEM;
	}
	json_decref(o);
	if (!s)
		errno = -ret;
	return s;
}

static json_t *codec_range_obj(const struct etcd_range_req *r, int *ret)
{
	json_t *o = json_object();

	*ret = -ENOMEM;
	if (!o)
		return NULL;
	*ret = -EINVAL;
	if (r->limit < 0 || r->revision < 0)
		goto err;
	*ret = codec_set_range(o, r->key, r->range_end);
	if (*ret)
		goto err;
	*ret = -ENOMEM;
	if (r->limit && json_object_set_new(o, "limit", codec_i64(r->limit)) < 0)
		goto err;
	if (r->revision && json_object_set_new(o, "revision", codec_i64(r->revision)) < 0)
		goto err;
	if (r->keys_only && json_object_set_new(o, "keys_only", json_true()) < 0)
		goto err;
	if (r->count_only && json_object_set_new(o, "count_only", json_true()) < 0)
		goto err;
	if (r->serializable && json_object_set_new(o, "serializable", json_true()) < 0)
		goto err;
	*ret = 0;
	return o;
err:
	json_decref(o);
	return NULL;
}

char *etcd_codec_range_req(const struct etcd_range_req *r)
{
	json_t *o;
	int ret = -EINVAL;

	if (!r) {
		errno = EINVAL;
		return NULL;
	}
	o = codec_range_obj(r, &ret);
	return codec_dump(o, ret);
}

static json_t *codec_put_obj(const char *key, const void *value, size_t len, int64_t lease,
			     int *ret)
{
	json_t *o = json_object();

	*ret = -ENOMEM;
	if (!o)
		return NULL;
	*ret = -EINVAL;
	if ((!value && len) || lease < 0)
		goto err;
	*ret = codec_set_range(o, key, NULL);
	if (*ret)
		goto err;
	*ret = -ENOMEM;
	if (json_object_set_new(o, "value", codec_b64(value ? value : "", len)) < 0)
		goto err;
	if (lease && json_object_set_new(o, "lease", codec_i64(lease)) < 0)
		goto err;
	*ret = 0;
	return o;
err:
	json_decref(o);
	return NULL;
}

char *etcd_codec_put_req(const char *key, const void *value, size_t len)
{
	int ret;
	json_t *o = codec_put_obj(key, value, len, 0, &ret);

	return codec_dump(o, ret);
}

static json_t *codec_delete_obj(const char *key, const char *range_end, int *ret)
{
	json_t *o = json_object();

	*ret = -ENOMEM;
	if (!o)
		return NULL;
	*ret = codec_set_range(o, key, range_end);
	if (*ret) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *etcd_codec_delete_req(const char *key, const char *range_end)
{
	int ret;
	json_t *o = codec_delete_obj(key, range_end, &ret);

	return codec_dump(o, ret);
}


char *etcd_codec_watch_req(const char *key, const char *range_end, int64_t start_revision)
{
	json_t *o = json_object(), *c = json_object();
	int ret = -ENOMEM;

	if (!o || !c)
		goto out;
	ret = -EINVAL;
	if (start_revision < 0)
		goto out;
	ret = codec_set_range(c, key, range_end);
	if (ret)
		goto out;
	ret = -ENOMEM;
	if (start_revision &&
	    json_object_set_new(c, "start_revision", codec_i64(start_revision)) < 0)
		goto out;
	if (json_object_set_new(c, "prev_kv", json_true()) < 0)
		goto out;
	ret = json_object_set(o, "create_request", c) < 0 ? -ENOMEM : 0;
out:
	json_decref(c);
	return codec_dump(o, ret);
}

/* {"<name>":"<v>"} with v > 0 */
static char *codec_one_number(const char *name, int64_t v)
{
	json_t *o;
	int ret = -EINVAL;

	if (v <= 0) {
		errno = EINVAL;
		return NULL;
	}
	o = json_object();
	if (o)
		ret = json_object_set_new(o, name, codec_i64(v)) < 0 ? -ENOMEM : 0;
	return codec_dump(o, ret);
}

char *etcd_codec_compact_req(int64_t revision)
{
	return codec_one_number("revision", revision);
}

char *etcd_codec_lease_grant_req(int64_t ttl)
{
	return codec_one_number("TTL", ttl);
}

char *etcd_codec_lease_id_req(int64_t id)
{
	return codec_one_number("ID", id);
}

static json_t *codec_cmp_obj(const struct etcd_cmp *c, int *ret)
{
	static const char *const targets[] = { "VERSION", "CREATE", "MOD", "VALUE" };
	static const char *const fields[] = { "version", "create_revision", "mod_revision" };
	static const char *const results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	json_t *o = json_object();

	*ret = -ENOMEM;
	if (!o)
		return NULL;
	*ret = -EINVAL;
	if ((unsigned)c->target >= sizeof(targets) / sizeof(targets[0]) ||
	    (unsigned)c->result >= sizeof(results) / sizeof(results[0]) ||
	    (c->target != ETCD_CMP_VALUE && c->number < 0) ||
	    (c->target == ETCD_CMP_VALUE && !c->value && c->value_len))
		goto err;
	*ret = codec_set_range(o, c->key, c->range_end);
	if (*ret)
		goto err;
	*ret = -ENOMEM;
	if (json_object_set_new(o, "target", json_string(targets[c->target])) < 0 ||
	    json_object_set_new(o, "result", json_string(results[c->result])) < 0)
		goto err;
	if (c->target == ETCD_CMP_VALUE) {
		if (json_object_set_new(o, "value",
					codec_b64(c->value ? c->value : "", c->value_len)) < 0)
			goto err;
	} else if (json_object_set_new(o, fields[c->target], codec_i64(c->number)) < 0) {
		goto err;
	}
	*ret = 0;
	return o;
err:
	json_decref(o);
	return NULL;
}

static json_t *codec_op_obj(const struct etcd_op *op, int *ret)
{
	struct etcd_range_req r = { .key = op->key, .range_end = op->range_end,
				    .limit = op->limit };
	const char *name;
	json_t *o, *inner;

	switch (op->type) {
	case ETCD_OP_RANGE:
		name = "request_range";
		inner = codec_range_obj(&r, ret);
		break;
	case ETCD_OP_PUT:
		name = "request_put";
		inner = codec_put_obj(op->key, op->value, op->value_len, op->lease, ret);
		break;
	case ETCD_OP_DELETE:
		name = "request_delete_range";
		inner = codec_delete_obj(op->key, op->range_end, ret);
		break;
	default:
		*ret = -EINVAL;
		return NULL;
	}
	if (!inner)
		return NULL;
	o = json_object();
	if (!o || json_object_set_new(o, name, inner) < 0) {
		if (!o)
			json_decref(inner);
		json_decref(o);
		*ret = -ENOMEM;
		return NULL;
	}
	return o;
}

static int codec_ops(json_t *txn, const char *name, const struct etcd_op *ops, size_t n)
{
	json_t *a = json_array(), *o;
	int ret;

	if (!a)
		return -ENOMEM;
	if (json_object_set_new(txn, name, a) < 0)
		return -ENOMEM;
	if (n && !ops)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		o = codec_op_obj(&ops[i], &ret);
		if (!o)
			return ret;
		if (json_array_append_new(a, o) < 0)
			return -ENOMEM;
	}
	return 0;
}

char *etcd_codec_txn_req(const struct etcd_txn *t)
{
	json_t *o, *a, *c;
	int ret = -EINVAL;

	if (!t || t->n_compare > ETCD_CODEC_MAX_OPS || t->n_success > ETCD_CODEC_MAX_OPS ||
	    t->n_failure > ETCD_CODEC_MAX_OPS || (t->n_compare && !t->compare)) {
		errno = EINVAL;
		return NULL;
	}
	o = json_object();
	a = json_array();
	ret = -ENOMEM;
	if (!o || !a || json_object_set(o, "compare", a) < 0)
		goto out;
	for (size_t i = 0; i < t->n_compare; i++) {
		c = codec_cmp_obj(&t->compare[i], &ret);
		if (!c)
			goto out;
		ret = -ENOMEM;
		if (json_array_append_new(a, c) < 0)
			goto out;
	}
	ret = codec_ops(o, "success", t->success, t->n_success);
	if (!ret)
		ret = codec_ops(o, "failure", t->failure, t->n_failure);
out:
	json_decref(a);
	return codec_dump(o, ret);
}

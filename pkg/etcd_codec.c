/* etcd_codec.h: the answers, from the gateway's JSON, distrusted. */
#include "etcd_codec.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int etcd_codec_parse_i64(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (!s || !*s)
		return -EPROTO;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EPROTO;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return -EPROTO;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

/* An absent field is etcd's default, 0. */
static int codec_get_i64(const json_t *o, const char *name, int64_t *out)
{
	const json_t *j = json_object_get(o, name);

	*out = 0;
	if (!j)
		return 0;
	if (json_is_string(j))
		return etcd_codec_parse_i64(json_string_value(j), out);
	if (json_is_integer(j) && json_integer_value(j) >= 0) {
		*out = json_integer_value(j);
		return 0;
	}
	return -EPROTO;
}

static int codec_get_bool(const json_t *o, const char *name, bool *out)
{
	const json_t *j = json_object_get(o, name);

	*out = false;
	if (!j)
		return 0;
	if (!json_is_boolean(j))
		return -EPROTO;
	*out = json_is_true(j);
	return 0;
}

/* Decoded into a malloc'd buffer with a NUL after the bytes. */
static int codec_get_b64(const json_t *o, const char *name, uint8_t **out, size_t *len)
{
	const json_t *j = json_object_get(o, name);
	const char *s;
	size_t n, bin_len;
	uint8_t *bin;

	*out = NULL;
	*len = 0;
	if (j && !json_is_string(j))
		return -EPROTO;
	s = j ? json_string_value(j) : "";
	n = json_string_length(j);
	bin = malloc(n / 4 * 3 + 3);
	if (!bin)
		return -ENOMEM;
	if (sodium_base642bin(bin, n / 4 * 3 + 2, s, n, NULL, &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0) {
		free(bin);
		return -EPROTO;
	}
	bin[bin_len] = 0;
	*out = bin;
	*len = bin_len;
	return 0;
}

void etcd_kv_free(struct etcd_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void etcd_kvs_free(struct etcd_kvs *kvs)
{
	if (!kvs)
		return;
	for (size_t i = 0; i < kvs->n; i++)
		etcd_kv_free(&kvs->kvs[i]);
	free(kvs->kvs);
	memset(kvs, 0, sizeof(*kvs));
}

static int codec_kv(const json_t *o, void *elem)
{
	struct etcd_kv *kv = elem;
	int ret;

	memset(kv, 0, sizeof(*kv));
	ret = -EPROTO;
	if (!json_is_object(o))
		goto err;
	ret = codec_get_b64(o, "key", (uint8_t **)&kv->key, &kv->key_len);
	if (ret)
		goto err;
	ret = -EPROTO;
	if (!kv->key_len || memchr(kv->key, 0, kv->key_len))
		goto err;
	ret = codec_get_b64(o, "value", &kv->value, &kv->value_len);
	if (!ret)
		ret = codec_get_i64(o, "create_revision", &kv->create_revision);
	if (!ret)
		ret = codec_get_i64(o, "mod_revision", &kv->mod_revision);
	if (!ret)
		ret = codec_get_i64(o, "version", &kv->version);
	if (!ret)
		ret = codec_get_i64(o, "lease", &kv->lease);
	if (ret)
		goto err;
	return 0;
err:
	etcd_kv_free(kv);
	return ret;
}

static int codec_header(const json_t *o, int64_t *revision)
{
	const json_t *h = json_object_get(o, "header");
	int64_t rev;
	int ret;

	/* Every answer has a header with the store's revision. */
	if (!json_is_object(h))
		return -EPROTO;
	ret = codec_get_i64(h, "revision", &rev);
	if (ret)
		return ret;
	if (revision)
		*revision = rev;
	return 0;
}

typedef int (*codec_elem_fn)(const json_t *o, void *elem);

/*
 * Decode each element of array a (NULL: none) with fn into *v, a fresh
 * vector of elements size bytes each. *n counts the elements decoded, on
 * failure too, so that the caller's destructor frees them.
 */
static int codec_array(const json_t *a, size_t size, codec_elem_fn fn, void **v, size_t *n)
{
	size_t i;
	char *p;
	int ret;

	if (!a || !json_array_size(a))
		return 0;
	p = calloc(json_array_size(a), size);
	if (!p)
		return -ENOMEM;
	*v = p;
	for (i = 0; i < json_array_size(a); i++) {
		ret = fn(json_array_get(a, i), p + i * size);
		if (ret)
			return ret;
		++*n;
	}
	return 0;
}

static int codec_range_obj_resp(const json_t *o, struct etcd_kvs *out)
{
	const json_t *a = json_object_get(o, "kvs");
	void *v = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EPROTO;
	if (!json_is_object(o) || (a && !json_is_array(a)))
		goto err;
	ret = codec_get_i64(o, "count", &out->count);
	if (!ret)
		ret = codec_get_bool(o, "more", &out->more);
	if (ret)
		goto err;
	ret = codec_array(a, sizeof(*out->kvs), codec_kv, &v, &out->n);
	out->kvs = v;
	if (ret)
		goto err;
	return 0;
err:
	etcd_kvs_free(out);
	return ret;
}

static json_t *codec_load(const char *buf, size_t len)
{
	json_t *o;

	if (!buf)
		return NULL;
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

int etcd_codec_range_resp(const char *buf, size_t len, struct etcd_kvs *out,
			  int64_t *revision)
{
	json_t *o = codec_load(buf, len);
	int ret;

	memset(out, 0, sizeof(*out));
	if (!o)
		return -EPROTO;
	ret = codec_header(o, revision);
	if (!ret)
		ret = codec_range_obj_resp(o, out);
	json_decref(o);
	return ret;
}

int etcd_codec_header_resp(const char *buf, size_t len, int64_t *revision)
{
	json_t *o = codec_load(buf, len);
	int ret;

	if (!o)
		return -EPROTO;
	ret = codec_header(o, revision);
	json_decref(o);
	return ret;
}

int etcd_codec_delete_resp(const char *buf, size_t len, int64_t *revision,
			   int64_t *deleted)
{
	json_t *o = codec_load(buf, len);
	int64_t n = 0;
	int ret;

	if (!o)
		return -EPROTO;
	ret = codec_header(o, revision);
	if (!ret)
		ret = codec_get_i64(o, "deleted", &n);
	if (!ret && deleted)
		*deleted = n;
	json_decref(o);
	return ret;
}

int etcd_codec_lease_grant_resp(const char *buf, size_t len, int64_t *id, int64_t *ttl)
{
	json_t *o = codec_load(buf, len);
	int ret;

	if (!o)
		return -EPROTO;
	ret = codec_header(o, NULL);
	if (!ret)
		ret = codec_get_i64(o, "ID", id);
	if (!ret)
		ret = codec_get_i64(o, "TTL", ttl);
	if (!ret && (!*id || !*ttl))
		ret = -EPROTO;
	json_decref(o);
	return ret;
}

int etcd_codec_lease_keepalive_resp(const char *buf, size_t len, int64_t *id, int64_t *ttl)
{
	json_t *o = codec_load(buf, len);
	const json_t *r;
	int ret = -EPROTO;

	if (!o)
		return ret;
	r = json_object_get(o, "result");
	if (json_is_object(r)) {
		ret = codec_header(r, NULL);
		if (!ret)
			ret = codec_get_i64(r, "ID", id);
		if (!ret)
			ret = codec_get_i64(r, "TTL", ttl);
	}
	json_decref(o);
	return ret;
}

void etcd_txn_result_free(struct etcd_txn_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		etcd_kvs_free(&r->results[i].kvs);
	free(r->results);
	memset(r, 0, sizeof(*r));
}

/* {"response_range":{..}} or {"response_put":{..}} or {"response_delete_range":{..}} */
static int codec_op_result(const json_t *o, void *elem)
{
	struct etcd_op_result *res = elem;
	const json_t *j;

	memset(res, 0, sizeof(*res));
	if (!json_is_object(o) || json_object_size(o) != 1)
		return -EPROTO;
	if ((j = json_object_get(o, "response_range"))) {
		res->type = ETCD_OP_RANGE;
		return codec_range_obj_resp(j, &res->kvs);
	}
	if ((j = json_object_get(o, "response_put"))) {
		res->type = ETCD_OP_PUT;
		return json_is_object(j) ? 0 : -EPROTO;
	}
	if ((j = json_object_get(o, "response_delete_range"))) {
		res->type = ETCD_OP_DELETE;
		return json_is_object(j) ? codec_get_i64(j, "deleted", &res->deleted) : -EPROTO;
	}
	return -EPROTO;
}

int etcd_codec_txn_resp(const char *buf, size_t len, struct etcd_txn_result *out)
{
	json_t *o = codec_load(buf, len);
	const json_t *a;
	void *v = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EPROTO;
	if (!o)
		return ret;
	a = json_object_get(o, "responses");
	if (a && (!json_is_array(a) || json_array_size(a) > ETCD_CODEC_MAX_OPS))
		goto err;
	ret = codec_header(o, &out->revision);
	if (!ret)
		ret = codec_get_bool(o, "succeeded", &out->succeeded);
	if (ret)
		goto err;
	ret = codec_array(a, sizeof(*out->results), codec_op_result, &v, &out->n);
	out->results = v;
	if (ret)
		goto err;
	json_decref(o);
	return 0;
err:
	etcd_txn_result_free(out);
	json_decref(o);
	return ret;
}

void etcd_codec_watch_free(struct etcd_codec_watch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		etcd_kv_free(&w->events[i].kv);
		etcd_kv_free(&w->events[i].prev_kv);
	}
	free(w->events);
	memset(w, 0, sizeof(*w));
}

static int codec_event(const json_t *o, void *elem)
{
	struct etcd_event *ev = elem;
	const json_t *t, *prev;
	int ret;

	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o))
		return -EPROTO;
	t = json_object_get(o, "type");
	if (!t || (json_is_string(t) && !strcmp(json_string_value(t), "PUT")))
		ev->type = ETCD_EVENT_PUT;
	else if (json_is_string(t) && !strcmp(json_string_value(t), "DELETE"))
		ev->type = ETCD_EVENT_DELETE;
	else
		return -EPROTO;
	ret = codec_kv(json_object_get(o, "kv"), &ev->kv);
	if (ret)
		return ret;
	if (!ev->kv.mod_revision) {
		ret = -EPROTO;
		goto err;
	}
	prev = json_object_get(o, "prev_kv");
	if (prev) {
		ret = codec_kv(prev, &ev->prev_kv);
		if (ret)
			goto err;
		ev->has_prev = true;
	}
	return 0;
err:
	etcd_kv_free(&ev->kv);
	return ret;
}

int etcd_codec_watch_msg(const char *buf, size_t len, struct etcd_codec_watch *out)
{
	json_t *o = codec_load(buf, len);
	const json_t *r, *a;
	void *v = NULL;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EPROTO;
	if (!o)
		return ret;
	if (json_object_get(o, "error")) {
		ret = etcd_codec_error(buf, len, &out->grpc_code, out->message,
				       sizeof(out->message));
		if (!ret && !out->grpc_code)
			ret = -EPROTO;
		goto out;
	}
	r = json_object_get(o, "result");
	if (!json_is_object(r))
		goto out;
	a = json_object_get(r, "events");
	if (a && !json_is_array(a))
		goto out;
	/* A compaction answer has no revision in its header. */
	ret = codec_header(r, &out->revision);
	if (!ret)
		ret = codec_get_i64(r, "compact_revision", &out->compact_revision);
	if (!ret)
		ret = codec_get_bool(r, "created", &out->created);
	if (!ret)
		ret = codec_get_bool(r, "canceled", &out->canceled);
	if (ret)
		goto err;
	ret = codec_array(a, sizeof(*out->events), codec_event, &v, &out->n);
	out->events = v;
	if (ret)
		goto err;
	/* In revision order, or we could not resume after it. */
	ret = -EPROTO;
	for (i = 1; i < out->n; i++)
		if (out->events[i].kv.mod_revision < out->events[i - 1].kv.mod_revision)
			goto err;
	ret = 0;
	goto out;
err:
	etcd_codec_watch_free(out);
out:
	json_decref(o);
	return ret;
}

static void codec_copy_msg(const json_t *j, char *msg, size_t msg_len)
{
	if (msg && msg_len)
		snprintf(msg, msg_len, "%s", json_is_string(j) ? json_string_value(j) : "");
}

int etcd_codec_error(const char *buf, size_t len, int *code, char *msg, size_t msg_len)
{
	json_t *o = codec_load(buf, len);
	const json_t *e, *c, *m;
	int ret = -EPROTO;

	if (msg && msg_len)
		msg[0] = '\0';
	*code = 0;
	if (!o)
		return ret;
	e = json_object_get(o, "error");
	if (json_is_object(e)) { /* the watch stream's form */
		c = json_object_get(e, "grpc_code");
		m = json_object_get(e, "message");
	} else {
		c = json_object_get(o, "code");
		m = json_object_get(o, "message");
		if (!json_is_string(m))
			m = e;
	}
	if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) < 100) {
		*code = (int)json_integer_value(c);
		codec_copy_msg(m, msg, msg_len);
		ret = 0;
	}
	json_decref(o);
	return ret;
}

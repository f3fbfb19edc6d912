#include "pjson.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/*
 * proto3 JSON mapping (https://protobuf.dev/programming-guides/proto3/#json)
 * for messages described by protobuf-c descriptors. The codec walks the
 * descriptor's field table, so every generated message works without
 * per-message code.
 */

#define PJSON_MAX_DEPTH 32
#define PJSON_PATH_MAX 256

#define MEMBER(type, msg, off) (*(type *)((char *)(msg) + (off)))
#define CMEMBER(type, msg, off) (*(const type *)((const char *)(msg) + (off)))

void pjson_camel_name(const char *name, char *out, size_t outlen)
{
	bool upper = false;
	size_t o = 0;

	if (!outlen)
		return;
	for (; *name && o + 1 < outlen; name++) {
		if (*name == '_') {
			upper = true;
			continue;
		}
		out[o++] = upper ? (char)toupper((unsigned char)*name) : *name;
		upper = false;
	}
	out[o] = '\0';
}

static size_t pjson_elem_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	}
	return 0;
}

/* ---- encoding ---------------------------------------------------------- */

static json_t *pjson_encode_message(const ProtobufCMessage *msg, int depth);

static json_t *pjson_encode_float(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "Infinity" : "-Infinity");
	return json_real(v);
}

/* One value of field f stored at p. NULL with errno set on failure. */
static json_t *pjson_encode_value(const ProtobufCFieldDescriptor *f,
				  const void *p, int depth)
{
	char num[32];

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(num, sizeof(num), "%" PRId64, *(const int64_t *)p);
		return json_string(num);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(num, sizeof(num), "%" PRIu64, *(const uint64_t *)p);
		return json_string(num);
	case PROTOBUF_C_TYPE_FLOAT:
		return pjson_encode_float(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return pjson_encode_float(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		int32_t v = *(const int32_t *)p;
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, v);

		return ev ? json_string(ev->name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		json_t *j = json_string(s ? s : "");

		/* protobuf strings must be UTF-8; refuse to emit broken JSON. */
		if (!j)
			errno = EINVAL;
		return j;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		size_t b64len;
		char *b64;
		json_t *j;

		if (bd->len > (SIZE_MAX - 4) / 4 * 3 - 3) {
			errno = EOVERFLOW;
			return NULL;
		}
		b64len = sodium_base64_encoded_len(bd->len, sodium_base64_VARIANT_ORIGINAL);
		b64 = malloc(b64len);
		if (!b64)
			return NULL;
		sodium_bin2base64(b64, b64len, bd->data, bd->len,
				  sodium_base64_VARIANT_ORIGINAL);
		j = json_string(b64);
		free(b64);
		return j;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;

		if (!sub)
			return json_object();
		return pjson_encode_message(sub, depth + 1);
	}
	}
	errno = EINVAL;
	return NULL;
}

/* Whether a singular field holds something worth writing. */
static bool pjson_field_present(const ProtobufCMessage *msg,
				const ProtobufCFieldDescriptor *f)
{
	const void *p = (const char *)msg + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return CMEMBER(uint32_t, msg, f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const void *const *)p != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_STRING)
			return *(const char *const *)p &&
			       *(const char *const *)p != f->default_value;
		return CMEMBER(protobuf_c_boolean, msg, f->quantifier_offset);
	}
	/* proto3 implicit presence: written unless at the type's default. */
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return *(const uint32_t *)p != 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return *(const uint64_t *)p != 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)p != 0 || signbit(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)p != 0 || signbit(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *)p != 0;
	case PROTOBUF_C_TYPE_STRING:
		return *(const char *const *)p && **(const char *const *)p;
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len != 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		break;
	}
	return false;
}

static json_t *pjson_encode_field(const ProtobufCMessage *msg,
				  const ProtobufCFieldDescriptor *f, int depth)
{
	json_t *arr, *v;
	size_t n, size;
	const char *elems;

	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return pjson_encode_value(f, (const char *)msg + f->offset, depth);

	n = CMEMBER(size_t, msg, f->quantifier_offset);
	elems = *(const char *const *)((const char *)msg + f->offset);
	size = pjson_elem_size(f->type);
	arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		v = pjson_encode_value(f, elems + i * size, depth);
		if (!v || json_array_append_new(arr, v) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *pjson_encode_message(const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	char name[PJSON_PATH_MAX];
	json_t *obj, *v;

	if (depth > PJSON_MAX_DEPTH) {
		errno = ELOOP;
		return NULL;
	}
	obj = json_object();
	if (!obj)
		return NULL;
	for (unsigned int i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (!CMEMBER(size_t, msg, f->quantifier_offset))
				continue;
		} else if (!pjson_field_present(msg, f)) {
			continue;
		}
		v = pjson_encode_field(msg, f, depth);
		pjson_camel_name(f->name, name, sizeof(name));
		if (!v || json_object_set_new(obj, name, v) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

json_t *pjson_encode(const ProtobufCMessage *msg)
{
	if (!msg) {
		errno = EINVAL;
		return NULL;
	}
	return pjson_encode_message(msg, 0);
}

char *pjson_encode_string(const ProtobufCMessage *msg)
{
	json_t *j = pjson_encode(msg);
	char *s;

	if (!j)
		return NULL;
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (!s)
		errno = ENOMEM;
	return s;
}

/* ---- decoding ---------------------------------------------------------- */

struct pjson_dec {
	char *err;
	size_t errlen;
	char path[PJSON_PATH_MAX]; /* "node.subnets[2]" */
};

static int pjson_fail(struct pjson_dec *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int pjson_fail(struct pjson_dec *d, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (d->err && d->errlen)
		snprintf(d->err, d->errlen, "field \"%s\": %s", d->path, what);
	return -EINVAL;
}

/* Integral value of a JSON number or decimal string, as proto3 JSON allows
 * for every integer type. Exactly one of *s or *u is meaningful. */
static int pjson_get_integer(struct pjson_dec *d, const json_t *j, bool is_signed,
			     int64_t *s, uint64_t *u)
{
	if (json_is_integer(j)) {
		json_int_t v = json_integer_value(j);

		if (!is_signed && v < 0)
			return pjson_fail(d, "value %lld out of range", (long long)v);
		*s = v;
		*u = (uint64_t)v;
		return 0;
	}
	if (json_is_real(j)) {
		double v = json_real_value(j);

		if (v != trunc(v))
			return pjson_fail(d, "expected integer, got %g", v);
		if (is_signed ? (v < -9223372036854775808.0 || v >= 9223372036854775808.0)
			      : (v < 0 || v >= 18446744073709551616.0))
			return pjson_fail(d, "value %g out of range", v);
		if (is_signed)
			*s = (int64_t)v;
		else
			*u = (uint64_t)v;
		return 0;
	}
	if (json_is_string(j)) {
		const char *str = json_string_value(j);
		char *end;

		/* Plain decimal only: no spaces, no "+", no hex, no empty. */
		if (!*str || !(isdigit((unsigned char)*str) ||
			       (*str == '-' && isdigit((unsigned char)str[1]))) ||
		    strlen(str) != json_string_length(j))
			return pjson_fail(d, "expected integer, got \"%.64s\"", str);
		errno = 0;
		if (is_signed)
			*s = strtoll(str, &end, 10);
		else if (*str == '-')
			return pjson_fail(d, "value \"%.64s\" out of range", str);
		else
			*u = strtoull(str, &end, 10);
		if (*end)
			return pjson_fail(d, "expected integer, got \"%.64s\"", str);
		if (errno == ERANGE)
			return pjson_fail(d, "value \"%.64s\" out of range", str);
		return 0;
	}
	return pjson_fail(d, "expected integer");
}

static int pjson_get_float(struct pjson_dec *d, const json_t *j, bool single,
			   double *out)
{
	double v;

	if (json_is_number(j)) {
		v = json_number_value(j);
	} else if (json_is_string(j)) {
		const char *str = json_string_value(j);
		char *end;

		if (!strcmp(str, "NaN")) {
			*out = NAN;
			return 0;
		}
		if (!strcmp(str, "Infinity") || !strcmp(str, "-Infinity")) {
			*out = *str == '-' ? -INFINITY : INFINITY;
			return 0;
		}
		if (!*str || isspace((unsigned char)*str) ||
		    strlen(str) != json_string_length(j))
			return pjson_fail(d, "expected number, got \"%.64s\"", str);
		errno = 0;
		v = strtod(str, &end);
		if (*end || errno == ERANGE || !isfinite(v))
			return pjson_fail(d, "expected number, got \"%.64s\"", str);
	} else {
		return pjson_fail(d, "expected number");
	}
	if (single && isfinite(v) && fabs(v) > FLT_MAX)
		return pjson_fail(d, "value %g out of range", v);
	*out = v;
	return 0;
}

static int pjson_decode_message(struct pjson_dec *d,
				const ProtobufCMessageDescriptor *desc,
				const json_t *json, int depth,
				ProtobufCMessage **out);

static int pjson_decode_bytes(struct pjson_dec *d, const json_t *j,
			      ProtobufCBinaryData *bd)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL,
		sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING,
	};
	const char *s;
	size_t slen, maxlen, binlen;
	uint8_t *bin;

	if (!json_is_string(j))
		return pjson_fail(d, "expected base64 string");
	s = json_string_value(j);
	slen = json_string_length(j);
	maxlen = slen / 4 * 3 + 3;
	bin = malloc(maxlen ? maxlen : 1);
	if (!bin)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const char *end = NULL;

		if (sodium_base642bin(bin, maxlen, s, slen, NULL, &binlen, &end,
				      variants[i]) == 0 && end == s + slen) {
			bd->data = bin;
			bd->len = binlen;
			return 0;
		}
	}
	free(bin);
	return pjson_fail(d, "invalid base64");
}

/* Decodes one value of field f into p (an element or the member itself). */
static int pjson_decode_value(struct pjson_dec *d, const ProtobufCFieldDescriptor *f,
			      const json_t *j, void *p, int depth)
{
	int64_t s = 0;
	uint64_t u = 0;
	double dv;
	int ret;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		ret = pjson_get_integer(d, j, true, &s, &u);
		if (ret)
			return ret;
		if (s < INT32_MIN || s > INT32_MAX)
			return pjson_fail(d, "value %" PRId64 " out of range", s);
		*(int32_t *)p = (int32_t)s;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		ret = pjson_get_integer(d, j, false, &s, &u);
		if (ret)
			return ret;
		if (u > UINT32_MAX)
			return pjson_fail(d, "value %" PRIu64 " out of range", u);
		*(uint32_t *)p = (uint32_t)u;
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		ret = pjson_get_integer(d, j, true, &s, &u);
		if (ret)
			return ret;
		*(int64_t *)p = s;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		ret = pjson_get_integer(d, j, false, &s, &u);
		if (ret)
			return ret;
		*(uint64_t *)p = u;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		ret = pjson_get_float(d, j, true, &dv);
		if (ret)
			return ret;
		*(float *)p = (float)dv;
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		ret = pjson_get_float(d, j, false, &dv);
		if (ret)
			return ret;
		*(double *)p = dv;
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(j))
			return pjson_fail(d, "expected boolean");
		*(protobuf_c_boolean *)p = json_is_true(j);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev;

		if (json_is_string(j)) {
			ev = protobuf_c_enum_descriptor_get_value_by_name(
				f->descriptor, json_string_value(j));
			if (!ev)
				return pjson_fail(d, "unknown enum value \"%.64s\"",
						  json_string_value(j));
			*(int32_t *)p = ev->value;
			return 0;
		}
		if (!json_is_integer(j))
			return pjson_fail(d, "expected enum name or number");
		ret = pjson_get_integer(d, j, true, &s, &u);
		if (ret)
			return ret;
		if (s < INT32_MIN || s > INT32_MAX)
			return pjson_fail(d, "value %" PRId64 " out of range", s);
		*(int32_t *)p = (int32_t)s;
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *str;

		if (!json_is_string(j))
			return pjson_fail(d, "expected string");
		/* protobuf-c strings are NUL-terminated: an embedded NUL would
		 * silently cut the value. */
		if (strlen(json_string_value(j)) != json_string_length(j))
			return pjson_fail(d, "string contains NUL");
		str = strdup(json_string_value(j));
		if (!str)
			return -ENOMEM;
		*(char **)p = str;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return pjson_decode_bytes(d, j, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return pjson_decode_message(d, f->descriptor, j, depth + 1,
					    (ProtobufCMessage **)p);
	}
	return pjson_fail(d, "unsupported field type");
}

/* Appends ".name" or "[i]" to the path; returns the old length to restore. */
static size_t pjson_path_push(struct pjson_dec *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static size_t pjson_path_push(struct pjson_dec *d, const char *fmt, ...)
{
	size_t old = strlen(d->path);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->path + old, sizeof(d->path) - old, fmt, ap);
	va_end(ap);
	return old;
}

static int pjson_decode_repeated(struct pjson_dec *d, ProtobufCMessage *msg,
				 const ProtobufCFieldDescriptor *f,
				 const json_t *j, int depth)
{
	size_t n, size = pjson_elem_size(f->type);
	size_t *count = &MEMBER(size_t, msg, f->quantifier_offset);
	char **arr = &MEMBER(char *, msg, f->offset);
	int ret;

	if (!json_is_array(j))
		return pjson_fail(d, "expected array");
	n = json_array_size(j);
	if (!n)
		return 0;
	*arr = calloc(n, size);
	if (!*arr)
		return -ENOMEM;
	/* *count grows with each decoded element so that freeing a partly
	 * decoded message releases exactly what was allocated. */
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(j, i);
		size_t old = pjson_path_push(d, "[%zu]", i);

		ret = json_is_null(e) ? pjson_fail(d, "null in array") :
			pjson_decode_value(d, f, e, *arr + i * size, depth);
		if (ret)
			return ret;
		d->path[old] = '\0';
		(*count)++;
	}
	return 0;
}

static const ProtobufCFieldDescriptor *
pjson_find_field(const ProtobufCMessageDescriptor *desc, const char *key)
{
	char camel[PJSON_PATH_MAX];

	for (unsigned int i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];

		pjson_camel_name(f->name, camel, sizeof(camel));
		if (!strcmp(key, camel) || !strcmp(key, f->name))
			return f;
	}
	return NULL;
}

static int pjson_decode_message(struct pjson_dec *d,
				const ProtobufCMessageDescriptor *desc,
				const json_t *json, int depth,
				ProtobufCMessage **out)
{
	ProtobufCMessage *msg;
	bool *seen;
	const char *key;
	json_t *value;
	int ret;

	ret = -EINVAL;
	if (!json_is_object(json))
		return pjson_fail(d, "expected object");
	if (depth > PJSON_MAX_DEPTH)
		return pjson_fail(d, "nested too deeply");

	ret = -ENOMEM;
	msg = malloc(desc->sizeof_message);
	if (!msg)
		goto err;
	protobuf_c_message_init(desc, msg);
	seen = calloc(desc->n_fields ? desc->n_fields : 1, sizeof(*seen));
	if (!seen)
		goto err_free_msg;

	json_object_foreach((json_t *)json, key, value) {
		const ProtobufCFieldDescriptor *f = pjson_find_field(desc, key);
		size_t old, idx;

		if (!f) {
			ret = -EINVAL;
			if (d->err && d->errlen) {
				if (d->path[0])
					snprintf(d->err, d->errlen,
						 "field \"%s\": unknown field \"%.64s\"",
						 d->path, key);
				else
					snprintf(d->err, d->errlen,
						 "unknown field \"%.64s\"", key);
			}
			goto err_free_seen;
		}
		old = pjson_path_push(d, "%s%.64s", d->path[0] ? "." : "", key);
		idx = (size_t)(f - desc->fields);
		/* "nodeName" and "node_name" both name one field. */
		ret = seen[idx] ? pjson_fail(d, "duplicate field") : 0;
		if (ret)
			goto err_free_seen;
		seen[idx] = true;
		if (json_is_null(value)) {
			d->path[old] = '\0';
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			ret = pjson_decode_repeated(d, msg, f, value, depth);
		} else {
			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				uint32_t *which = &MEMBER(uint32_t, msg, f->quantifier_offset);

				ret = *which ? pjson_fail(d, "another field of its oneof is set") : 0;
				if (ret)
					goto err_free_seen;
				/* Set before decoding so that a failure frees it. */
				*which = f->id;
			}
			ret = pjson_decode_value(d, f, value,
						 (char *)msg + f->offset, depth);
			if (!ret && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
			    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    f->type != PROTOBUF_C_TYPE_STRING &&
			    f->type != PROTOBUF_C_TYPE_MESSAGE)
				MEMBER(protobuf_c_boolean, msg, f->quantifier_offset) = 1;
		}
		if (ret)
			goto err_free_seen;
		d->path[old] = '\0';
	}
	ret = -EINVAL;
	if (!protobuf_c_message_check(msg)) {
		pjson_fail(d, "missing required field");
		goto err_free_seen;
	}
	free(seen);
	*out = msg;
	return 0;

err_free_seen:
	free(seen);
err_free_msg:
	protobuf_c_message_free_unpacked(msg, NULL);
err:
	if (ret == -ENOMEM && d->err && d->errlen)
		snprintf(d->err, d->errlen, "out of memory");
	return ret;
}

ProtobufCMessage *pjson_decode(const ProtobufCMessageDescriptor *desc,
			       const json_t *json, char *err, size_t errlen)
{
	struct pjson_dec d = { .err = err, .errlen = errlen };
	ProtobufCMessage *msg = NULL;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	ret = -EINVAL;
	if (!desc || !json) {
		if (err && errlen)
			snprintf(err, errlen, "no message");
		goto out;
	}
	if (!json_is_object(json)) {
		if (err && errlen)
			snprintf(err, errlen, "expected JSON object");
		goto out;
	}
	ret = pjson_decode_message(&d, desc, json, 0, &msg);
out:
	if (ret) {
		errno = -ret;
		return NULL;
	}
	return msg;
}

ProtobufCMessage *pjson_decode_buf(const ProtobufCMessageDescriptor *desc,
				   const char *buf, size_t len, char *err,
				   size_t errlen)
{
	ProtobufCMessage *msg;
	json_error_t jerr;
	json_t *json;
	int saved;

	json = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!json) {
		if (err && errlen)
			snprintf(err, errlen, "invalid JSON: %s (line %d, column %d)",
				 jerr.text, jerr.line, jerr.column);
		errno = EINVAL;
		return NULL;
	}
	msg = pjson_decode(desc, json, err, errlen);
	saved = errno;
	json_decref(json);
	errno = saved;
	return msg;
}

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pjson.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"
#include "wgcni/node/v1/node.pb-c.h"

/* Test-only message with every scalar type, a oneof and an enum; generated
 * from tests/unit/pjson_types.proto and compiled into this test only. */
#include "pjson_types.pb-c.h"
#include "pjson_types.pb-c.c.h" /* the generated .c, named .h so make does not link it twice */

static const ProtobufCMessageDescriptor *const all_descs[] = {
	&wgcni__cluster__v1__node__descriptor,
	&wgcni__cluster__v1__peer__descriptor,
	&wgcni__cluster__v1__allocate_subnet_request__descriptor,
	&wgcni__cluster__v1__allocate_subnet_response__descriptor,
	&wgcni__cluster__v1__register_key_request__descriptor,
	&wgcni__cluster__v1__register_key_response__descriptor,
	&wgcni__cluster__v1__list_peers_request__descriptor,
	&wgcni__cluster__v1__list_peers_response__descriptor,
	&wgcni__cluster__v1__list_nodes_request__descriptor,
	&wgcni__cluster__v1__list_nodes_response__descriptor,
	&wgcni__cluster__v1__delete_node_request__descriptor,
	&wgcni__cluster__v1__delete_node_response__descriptor,
	&wgcni__node__v1__node__descriptor,
	&wgcni__node__v1__allocate_iprequest__descriptor,
	&wgcni__node__v1__allocate_ipresponse__descriptor,
	&wgcni__node__v1__node_peer__descriptor,
	&wgcni__node__v1__register_key_request__descriptor,
	&wgcni__node__v1__register_key_response__descriptor,
	&wgcni__node__v1__release_request__descriptor,
	&wgcni__node__v1__release_response__descriptor,
	&wgcni__node__v1__allocation__descriptor,
	&wgcni__node__v1__list_allocations_request__descriptor,
	&wgcni__node__v1__list_allocations_response__descriptor,
	&wgcni__node__v1__get_node_request__descriptor,
	&wgcni__node__v1__get_node_response__descriptor,
	&wgcni__node__v1__attachment__descriptor,
	&wgcni__node__v1__gcrequest__descriptor,
	&wgcni__node__v1__gcresponse__descriptor,
	&pjsontest__all_types__descriptor,
	&pjsontest__inner__descriptor,
};

/* ---- a generic random message filler (xorshift, deterministic) ---------- */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static char *rnd_string(void)
{
	static const char *const pool[] = {
		"", "n1", "10.100.3.0/24", "fd10:100:0:3::/64", "quote\"back\\slash",
		"new\nline", "ünïcödé ✓", "[2001:db8::1]:51820",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	};
	return strdup(pool[rnd() % (sizeof(pool) / sizeof(pool[0]))]);
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d, int depth);

static void fill_value(const ProtobufCFieldDescriptor *f, void *p, int depth)
{
	uint64_t r = rnd();

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		*(int32_t *)p = r & 1 ? INT32_MIN + (int32_t)(r % 7) : (int32_t)(r >> 40);
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = r & 1 ? UINT32_MAX - (uint32_t)(r % 7) : (uint32_t)(r >> 48);
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *)p = (int64_t)r;
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = r & 1 ? UINT64_MAX - r % 3 : r >> 20;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = (float)(int32_t)(r >> 40) / 1024.0f;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = (double)(int64_t)r / 3.0;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = r & 1;
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		*(int32_t *)p = ed->values[r % ed->n_values].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		*(char **)p = rnd_string();
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *bd = p;
		bd->len = r % 40;
		bd->data = malloc(bd->len + 1);
		for (size_t i = 0; i < bd->len; i++)
			bd->data[i] = (uint8_t)rnd();
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)p = fill(f->descriptor, depth + 1);
		break;
	}
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d, int depth)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	char *base = (char *)m;
	bool oneof_done = false;

	assert_non_null(m);
	protobuf_c_message_init(d, m);
	for (unsigned int i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (oneof_done || rnd() % 3 == 0)
				continue;
			oneof_done = true;
			*(uint32_t *)(base + f->quantifier_offset) = f->id;
			fill_value(f, base + f->offset, depth);
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = depth > 2 ? 0 : rnd() % 4;
			char *arr = n ? malloc(n * elem_size(f->type)) : NULL;

			for (size_t k = 0; k < n; k++)
				fill_value(f, arr + k * elem_size(f->type), depth);
			*(size_t *)(base + f->quantifier_offset) = n;
			*(char **)(base + f->offset) = arr;
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth > 2)
			continue;
		if (rnd() % 5 == 0)
			continue; /* leave some fields at their default */
		fill_value(f, base + f->offset, depth);
	}
	return m;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

/* message -> JSON text -> message gives the same protobuf bytes, and the
 * binary -> unpack -> JSON path gives the same JSON text. */
static void test_round_trip_all(void **state)
{
	for (size_t i = 0; i < sizeof(all_descs) / sizeof(all_descs[0]); i++) {
		for (int iter = 0; iter < 60; iter++) {
			ProtobufCMessage *m, *back, *unpacked;
			uint8_t *bin1, *bin2;
			size_t len1, len2;
			char err[256], *text, *text2;

			rnd_state = 0x9e3779b97f4a7c15ULL ^ (i * 1000 + (size_t)iter + 1);
			m = iter == 0 ? fill(all_descs[i], 99) : fill(all_descs[i], 0);
			if (iter == 0) {
				/* An all-default message encodes as {} */
				protobuf_c_message_free_unpacked(m, NULL);
				m = malloc(all_descs[i]->sizeof_message);
				protobuf_c_message_init(all_descs[i], m);
			}
			bin1 = pack(m, &len1);
			text = pjson_encode_string(m);
			assert_non_null(text);
			if (iter == 0)
				assert_string_equal(text, "{}");
			back = pjson_decode_buf(all_descs[i], text, strlen(text), err, sizeof(err));
			if (!back)
				fail_msg("%s: decode of %s failed: %s", all_descs[i]->name, text, err);
			bin2 = pack(back, &len2);
			assert_int_equal(len1, len2);
			assert_memory_equal(bin1, bin2, len1);

			unpacked = protobuf_c_message_unpack(all_descs[i], NULL, len1, bin1);
			assert_non_null(unpacked);
			text2 = pjson_encode_string(unpacked);
			assert_non_null(text2);
			assert_string_equal(text, text2);

			free(text2);
			protobuf_c_message_free_unpacked(unpacked, NULL);
			protobuf_c_message_free_unpacked(back, NULL);
			protobuf_c_message_free_unpacked(m, NULL);
			free(bin1);
			free(bin2);
			free(text);
		}
	}
}

static void test_encode_exact(void **state)
{
	Wgcni__Cluster__V1__Peer p1 = WGCNI__CLUSTER__V1__PEER__INIT;
	Wgcni__Cluster__V1__Peer *peers[] = { &p1 };
	Wgcni__Cluster__V1__ListPeersResponse resp =
		WGCNI__CLUSTER__V1__LIST_PEERS_RESPONSE__INIT;
	char *ips[] = { "10.100.3.0/24", "fd10:100:0:3::/64" };
	char *text;

	p1.name = "n1";
	p1.public_key = "";
	p1.n_allowed_ips = 2;
	p1.allowed_ips = ips;
	resp.n_peers = 1;
	resp.peers = peers;
	resp.revision = 18446744073709551615ULL;
	text = pjson_encode_string(&resp.base);
	assert_string_equal(text,
		"{\"peers\":[{\"name\":\"n1\",\"allowedIps\":"
		"[\"10.100.3.0/24\",\"fd10:100:0:3::/64\"]}],"
		"\"revision\":\"18446744073709551615\"}");
	free(text);
}

static void test_encode_types(void **state)
{
	Pjsontest__AllTypes m = PJSONTEST__ALL_TYPES__INIT;
	Pjsontest__Inner in = PJSONTEST__INNER__INIT;
	uint8_t bytes[] = { 0xfb, 0xff, 0x00 };
	double dbl[] = { NAN, INFINITY, -INFINITY, 0.5 };
	char *text;

	m.f_int32 = -5;
	m.f_uint32 = 4000000000U;
	m.f_int64 = INT64_MIN;
	m.f_bool = 1;
	m.f_enum = PJSONTEST__COLOR__COLOR_BLUE;
	m.f_bytes.data = bytes;
	m.f_bytes.len = sizeof(bytes);
	m.f_inner = &in; /* present even when empty */
	m.n_r_double = 4;
	m.r_double = dbl;
	m.choice_case = PJSONTEST__ALL_TYPES__CHOICE_O_TEXT;
	m.o_text = ""; /* a set oneof member is written even at its default */
	text = pjson_encode_string(&m.base);
	assert_string_equal(text,
		"{\"fInt32\":-5,\"fInt64\":\"-9223372036854775808\","
		"\"fUint32\":4000000000,\"fBool\":true,\"fEnum\":\"COLOR_BLUE\","
		"\"fBytes\":\"+/8A\",\"fInner\":{},"
		"\"rDouble\":[\"NaN\",\"Infinity\",\"-Infinity\",0.5],\"oText\":\"\"}");
	free(text);
}

static void *decode_ok(const ProtobufCMessageDescriptor *d, const char *json)
{
	char err[256] = "";
	ProtobufCMessage *m = pjson_decode_buf(d, json, strlen(json), err, sizeof(err));

	if (!m)
		fail_msg("decode %s: %s", json, err);
	return m;
}

static void expect_error(const ProtobufCMessageDescriptor *d, const char *json,
			 const char *want)
{
	char err[256] = "";
	ProtobufCMessage *m;

	errno = 0;
	m = pjson_decode_buf(d, json, strlen(json), err, sizeof(err));
	if (m) {
		protobuf_c_message_free_unpacked(m, NULL);
		fail_msg("decode %s succeeded, wanted error %s", json, want);
	}
	assert_int_equal(errno, EINVAL);
	if (!strstr(err, want))
		fail_msg("decode %s: error \"%s\" lacks \"%s\"", json, err, want);
}

static void test_decode_names(void **state)
{
	Wgcni__Cluster__V1__ListPeersRequest *r;
	Wgcni__Node__V1__GCRequest *gc;

	r = decode_ok(&wgcni__cluster__v1__list_peers_request__descriptor,
		      "{\"nodeName\":\"n1\",\"sinceRevision\":\"42\",\"waitSeconds\":30}");
	assert_string_equal(r->node_name, "n1");
	assert_int_equal(r->since_revision, 42);
	assert_int_equal(r->wait_seconds, 30);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* proto names, 64-bit as JSON integer, 32-bit as string, null = default */
	r = decode_ok(&wgcni__cluster__v1__list_peers_request__descriptor,
		      "{\"node_name\":\"n2\",\"since_revision\":7,\"wait_seconds\":\"5\"}");
	assert_string_equal(r->node_name, "n2");
	assert_int_equal(r->since_revision, 7);
	assert_int_equal(r->wait_seconds, 5);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	r = decode_ok(&wgcni__cluster__v1__list_peers_request__descriptor,
		      "{\"nodeName\":null,\"sinceRevision\":\"18446744073709551615\"}");
	assert_string_equal(r->node_name, "");
	assert_true(r->since_revision == UINT64_MAX);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	r = decode_ok(&wgcni__cluster__v1__list_peers_request__descriptor, "{}");
	assert_string_equal(r->node_name, "");
	protobuf_c_message_free_unpacked(&r->base, NULL);

	gc = decode_ok(&wgcni__node__v1__gcrequest__descriptor,
		       "{\"validAttachments\":[{\"containerId\":\"c1\",\"ifname\":\"eth0\"},"
		       "{\"container_id\":\"c2\"}]}");
	assert_int_equal(gc->n_valid_attachments, 2);
	assert_string_equal(gc->valid_attachments[0]->container_id, "c1");
	assert_string_equal(gc->valid_attachments[0]->ifname, "eth0");
	assert_string_equal(gc->valid_attachments[1]->container_id, "c2");
	assert_string_equal(gc->valid_attachments[1]->ifname, "");
	protobuf_c_message_free_unpacked(&gc->base, NULL);
}

static void test_decode_types(void **state)
{
	Pjsontest__AllTypes *m;

	m = decode_ok(&pjsontest__all_types__descriptor,
		      "{\"fInt32\":-2147483648,\"fUint32\":4294967295,\"fInt64\":-1,"
		      "\"fFloat\":1.5,\"fDouble\":\"-Infinity\",\"fBool\":false,"
		      "\"fEnum\":2,\"fBytes\":\"-_8A\",\"rEnum\":[\"COLOR_RED\",0],"
		      "\"rBytes\":[\"+/8\",\"\"],\"oNum\":\"12\",\"fSfixed64\":3.0}");
	assert_int_equal(m->f_int32, INT32_MIN);
	assert_int_equal(m->f_uint32, UINT32_MAX);
	assert_int_equal(m->f_int64, -1);
	assert_true(m->f_float == 1.5f);
	assert_true(isinf(m->f_double) && m->f_double < 0);
	assert_int_equal(m->f_enum, PJSONTEST__COLOR__COLOR_BLUE);
	assert_int_equal(m->f_bytes.len, 3);
	assert_memory_equal(m->f_bytes.data, "\xfb\xff\x00", 3);
	assert_int_equal(m->n_r_enum, 2);
	assert_int_equal(m->r_enum[0], PJSONTEST__COLOR__COLOR_RED);
	assert_int_equal(m->n_r_bytes, 2);
	assert_int_equal(m->r_bytes[0].len, 2);
	assert_int_equal(m->r_bytes[1].len, 0);
	assert_int_equal(m->choice_case, PJSONTEST__ALL_TYPES__CHOICE_O_NUM);
	assert_int_equal(m->o_num, 12);
	assert_int_equal(m->f_sfixed64, 3);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void test_decode_strict(void **state)
{
	const ProtobufCMessageDescriptor *lp = &wgcni__cluster__v1__list_peers_request__descriptor;
	const ProtobufCMessageDescriptor *at = &pjsontest__all_types__descriptor;
	const ProtobufCMessageDescriptor *gc = &wgcni__node__v1__gcrequest__descriptor;

	expect_error(lp, "{\"foo\":1}", "unknown field \"foo\"");
	expect_error(lp, "{\"nodeName\":5}", "field \"nodeName\": expected string");
	expect_error(lp, "{\"node_name\":true}", "field \"node_name\": expected string");
	expect_error(lp, "[]", "expected JSON object");
	expect_error(lp, "\"x\"", "expected JSON object");
	expect_error(lp, "{\"nodeName\":\"a\",\"nodeName\":\"b\"}", "duplicate");
	expect_error(lp, "{\"nodeName\":\"a\",\"node_name\":\"b\"}",
		     "field \"node_name\": duplicate field");
	expect_error(lp, "{\"nodeName\":", "invalid JSON");
	expect_error(lp, "", "invalid JSON");
	expect_error(lp, "{\"waitSeconds\":-1}", "field \"waitSeconds\": value -1 out of range");
	expect_error(lp, "{\"waitSeconds\":4294967296}", "out of range");
	expect_error(lp, "{\"waitSeconds\":1.5}", "expected integer");
	expect_error(lp, "{\"waitSeconds\":\"1x\"}", "expected integer");
	expect_error(lp, "{\"waitSeconds\":\" 1\"}", "expected integer");
	expect_error(lp, "{\"waitSeconds\":\"\"}", "expected integer");
	expect_error(lp, "{\"waitSeconds\":[]}", "expected integer");
	expect_error(lp, "{\"sinceRevision\":\"18446744073709551616\"}", "out of range");
	expect_error(lp, "{\"sinceRevision\":\"-1\"}", "out of range");
	expect_error(lp, "{\"sinceRevision\":1e30}", "out of range");
	expect_error(lp, "{\"nodeName\":\"a\\u0000b\"}", "invalid JSON");
	expect_error(gc, "{\"validAttachments\":{}}", "field \"validAttachments\": expected array");
	expect_error(gc, "{\"validAttachments\":[{\"bogus\":1}]}",
		     "field \"validAttachments[0]\": unknown field \"bogus\"");
	expect_error(gc, "{\"validAttachments\":[{},{\"ifname\":1}]}",
		     "field \"validAttachments[1].ifname\": expected string");
	expect_error(gc, "{\"validAttachments\":[null]}", "null in array");
	expect_error(gc, "{\"validAttachments\":[\"x\"]}", "expected object");
	expect_error(at, "{\"fInt32\":2147483648}", "out of range");
	expect_error(at, "{\"fInt64\":\"9223372036854775808\"}", "out of range");
	expect_error(at, "{\"fFloat\":1e39}", "out of range");
	expect_error(at, "{\"fDouble\":\"abc\"}", "expected number");
	expect_error(at, "{\"fDouble\":true}", "expected number");
	expect_error(at, "{\"fBool\":1}", "field \"fBool\": expected boolean");
	expect_error(at, "{\"fBool\":\"true\"}", "expected boolean");
	expect_error(at, "{\"fEnum\":\"COLOR_GREEN\"}", "unknown enum value \"COLOR_GREEN\"");
	expect_error(at, "{\"fEnum\":true}", "expected enum");
	expect_error(at, "{\"fBytes\":\"***\"}", "invalid base64");
	expect_error(at, "{\"fBytes\":5}", "expected base64 string");
	expect_error(at, "{\"fInner\":[]}", "field \"fInner\": expected object");
	expect_error(at, "{\"fInner\":{\"num\":\"x\"}}", "field \"fInner.num\": expected integer");
	expect_error(at, "{\"oText\":\"a\",\"oNum\":1}", "oneof");
	expect_error(at, "{\"rInt32\":[1,\"2\",null]}", "field \"rInt32[2]\": null in array");
}

static void test_decode_json_api(void **state)
{
	char err[64];
	json_t *j = json_pack("{s:s, s:i}", "nodeName", "n9", "waitSeconds", 3);
	json_t *bad = json_pack("{s:s%}", "nodeName", "a\0b", (size_t)3);
	Wgcni__Cluster__V1__ListPeersRequest *r;

	r = (Wgcni__Cluster__V1__ListPeersRequest *)pjson_decode(
		&wgcni__cluster__v1__list_peers_request__descriptor, j, err, sizeof(err));
	assert_non_null(r);
	assert_string_equal(r->node_name, "n9");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* embedded NUL would be cut silently by protobuf-c */
	assert_null(pjson_decode(&wgcni__cluster__v1__list_peers_request__descriptor,
				 bad, err, sizeof(err)));
	assert_non_null(strstr(err, "NUL"));
	/* a short error buffer is truncated, not overrun */
	assert_null(pjson_decode_buf(&wgcni__cluster__v1__list_peers_request__descriptor,
				     "{\"aVeryLongUnknownFieldName\":1}", 31, err, 8));
	assert_int_equal(strlen(err), 7);
	json_decref(j);
	json_decref(bad);
}

static void test_camel(void **state)
{
	char out[64];

	pjson_camel_name("node_name", out, sizeof(out));
	assert_string_equal(out, "nodeName");
	pjson_camel_name("valid_attachments", out, sizeof(out));
	assert_string_equal(out, "validAttachments");
	pjson_camel_name("f_int32", out, sizeof(out));
	assert_string_equal(out, "fInt32");
	pjson_camel_name("ifname", out, sizeof(out));
	assert_string_equal(out, "ifname");
	pjson_camel_name("node_name", out, 5);
	assert_string_equal(out, "node");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_all),
		cmocka_unit_test(test_encode_exact),
		cmocka_unit_test(test_encode_types),
		cmocka_unit_test(test_decode_names),
		cmocka_unit_test(test_decode_types),
		cmocka_unit_test(test_decode_strict),
		cmocka_unit_test(test_decode_json_api),
		cmocka_unit_test(test_camel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

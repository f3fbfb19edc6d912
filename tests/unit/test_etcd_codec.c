/* The etcd v3 gateway JSON (pkg/etcd_codec.c), without etcd: the answers
 * below are what etcd 3.4.23 sent, then broken in each way we refuse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "etcd.h"
#include "etcd_codec.h"

#define HDR "\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\",\"revision\":\"5\",\"raft_term\":\"2\"}"

static json_t *load(const char *s)
{
	json_t *j;

	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	return j;
}

static const char *sget(const json_t *o, const char *path)
{
	/* "a.b" */
	char buf[64], *dot;
	const json_t *j = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf; p; p = dot) {
		dot = strchr(p, '.');
		if (dot)
			*dot++ = '\0';
		j = json_object_get(j, p);
	}
	return json_string_value(j);
}

static void test_range_req(void **state)
{
	struct etcd_range_req r = { .key = "k", .range_end = "l", .limit = 10,
				    .revision = 9007199254740993LL, .keys_only = true };
	char *s = etcd_codec_range_req(&r);
	json_t *j = load(s);

	assert_string_equal(sget(j, "key"), "aw==");
	assert_string_equal(sget(j, "range_end"), "bA==");
	/* 64-bit numbers as strings, exact beyond 2^53 */
	assert_string_equal(sget(j, "limit"), "10");
	assert_string_equal(sget(j, "revision"), "9007199254740993");
	assert_true(json_is_true(json_object_get(j, "keys_only")));
	assert_null(json_object_get(j, "count_only"));
	json_decref(j);
	free(s);

	/* "" is etcd's "\0": every key from key on; NULL: the key alone */
	r = (struct etcd_range_req){ .key = "k", .range_end = "" };
	s = etcd_codec_range_req(&r);
	j = load(s);
	assert_string_equal(sget(j, "range_end"), "AA==");
	assert_null(json_object_get(j, "limit"));
	json_decref(j);
	free(s);
	r = (struct etcd_range_req){ .key = "k" };
	s = etcd_codec_range_req(&r);
	j = load(s);
	assert_null(json_object_get(j, "range_end"));
	json_decref(j);
	free(s);
}

static void test_req_refused(void **state)
{
	struct etcd_range_req r = { .key = "" };
	struct etcd_cmp cmp = { .target = 7, .key = "k" };
	struct etcd_op op = { .type = 9, .key = "k" };
	struct etcd_txn t = { .compare = &cmp, .n_compare = 1 };

	errno = 0;
	assert_null(etcd_codec_range_req(&r));
	assert_int_equal(errno, EINVAL);
	r = (struct etcd_range_req){ .key = "k", .limit = -1 };
	assert_null(etcd_codec_range_req(&r));
	assert_null(etcd_codec_range_req(NULL));
	assert_null(etcd_codec_put_req(NULL, "v", 1));
	assert_null(etcd_codec_put_req("k", NULL, 1));
	assert_null(etcd_codec_delete_req("", NULL));
	assert_null(etcd_codec_compact_req(0));
	assert_null(etcd_codec_watch_req("k", NULL, -1));
	errno = 0;
	assert_null(etcd_codec_txn_req(&t)); /* unknown target */
	assert_int_equal(errno, EINVAL);
	cmp = (struct etcd_cmp){ .target = ETCD_CMP_MOD, .key = "k", .number = -1 };
	assert_null(etcd_codec_txn_req(&t));
	t = (struct etcd_txn){ .success = &op, .n_success = 1 };
	assert_null(etcd_codec_txn_req(&t)); /* unknown op */
	t = (struct etcd_txn){ .n_compare = ETCD_CODEC_MAX_OPS + 1, .compare = &cmp };
	assert_null(etcd_codec_txn_req(&t));
	assert_null(etcd_codec_txn_req(NULL));
}

static void test_put_binary(void **state)
{
	static const uint8_t v[] = { 0, 0xff, '"', '\\', 0x80, '\n' };
	char *s = etcd_codec_put_req("/a/b", v, sizeof(v));
	json_t *j = load(s);

	assert_string_equal(sget(j, "key"), "L2EvYg==");
	assert_string_equal(sget(j, "value"), "AP8iXIAK");
	json_decref(j);
	free(s);
	/* an empty value is sent, as "" */
	s = etcd_codec_put_req("k", NULL, 0);
	j = load(s);
	assert_string_equal(sget(j, "value"), "");
	json_decref(j);
	free(s);
}

/* Claim-if-absent: the shape the cluster manager sends. */
static void test_txn_req(void **state)
{
	struct etcd_cmp cmp[] = {
		{ .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .key = "s", .number = 0 },
		{ .target = ETCD_CMP_VALUE, .result = ETCD_CMP_NOT_EQUAL, .key = "n", .value = "x",
		  .value_len = 1 },
	};
	struct etcd_op ok[] = { { .type = ETCD_OP_PUT, .key = "s", .value = "n1", .value_len = 2 } };
	struct etcd_op fail[] = { { .type = ETCD_OP_RANGE, .key = "s" },
				  { .type = ETCD_OP_DELETE, .key = "a", .range_end = "b" } };
	struct etcd_txn t = { cmp, 2, ok, fail, 1, 2 };
	char *s = etcd_codec_txn_req(&t);
	json_t *j = load(s), *c0, *c1, *f;

	c0 = json_array_get(json_object_get(j, "compare"), 0);
	c1 = json_array_get(json_object_get(j, "compare"), 1);
	assert_string_equal(sget(c0, "target"), "CREATE");
	assert_string_equal(sget(c0, "result"), "EQUAL");
	assert_string_equal(sget(c0, "create_revision"), "0");
	assert_string_equal(sget(c0, "key"), "cw==");
	assert_string_equal(sget(c1, "target"), "VALUE");
	assert_string_equal(sget(c1, "result"), "NOT_EQUAL");
	assert_string_equal(sget(c1, "value"), "eA==");
	assert_string_equal(sget(json_array_get(json_object_get(j, "success"), 0),
				 "request_put.value"), "bjE=");
	f = json_object_get(j, "failure");
	assert_int_equal(json_array_size(f), 2);
	assert_string_equal(sget(json_array_get(f, 0), "request_range.key"), "cw==");
	assert_string_equal(sget(json_array_get(f, 1), "request_delete_range.range_end"), "Yg==");
	json_decref(j);
	free(s);
}

static void test_watch_req(void **state)
{
	char *s = etcd_codec_watch_req("s", "t", 42);
	json_t *j = load(s);

	assert_string_equal(sget(j, "create_request.start_revision"), "42");
	assert_string_equal(sget(j, "create_request.range_end"), "dA==");
	assert_true(json_is_true(json_object_get(json_object_get(j, "create_request"), "prev_kv")));
	json_decref(j);
	free(s);
}

static void test_range_resp(void **state)
{
	const char *ok = "{" HDR ",\"kvs\":[{\"key\":\"azE=\",\"create_revision\":\"2\","
			 "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"AP8=\"},"
			 "{\"key\":\"azI=\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
			 "\"version\":\"1\",\"future_field\":{}}],\"more\":true,\"count\":\"2\"}";
	struct etcd_kvs kvs;
	int64_t rev = 0;

	assert_int_equal(etcd_codec_range_resp(ok, strlen(ok), &kvs, &rev), 0);
	assert_int_equal(rev, 5);
	assert_int_equal(kvs.n, 2);
	assert_int_equal(kvs.count, 2);
	assert_true(kvs.more);
	assert_string_equal(kvs.kvs[0].key, "k1");
	assert_int_equal(kvs.kvs[0].key_len, 2);
	assert_int_equal(kvs.kvs[0].value_len, 2);
	assert_memory_equal(kvs.kvs[0].value, "\0\xff", 3); /* NUL-terminated too */
	assert_int_equal(kvs.kvs[0].create_revision, 2);
	assert_int_equal(kvs.kvs[0].mod_revision, 3);
	assert_int_equal(kvs.kvs[0].version, 2);
	/* an empty value is left out by etcd */
	assert_int_equal(kvs.kvs[1].value_len, 0);
	assert_non_null(kvs.kvs[1].value);
	etcd_kvs_free(&kvs);
	assert_null(kvs.kvs);
	etcd_kvs_free(&kvs);
	etcd_kvs_free(NULL);

	/* no key at all: etcd leaves kvs and count out */
	assert_int_equal(etcd_codec_range_resp("{" HDR "}", strlen("{" HDR "}"), &kvs, NULL), 0);
	assert_int_equal(kvs.n, 0);
	assert_int_equal(kvs.count, 0);
}

static void expect_range_eproto(const char *s)
{
	struct etcd_kvs kvs;

	assert_int_equal(etcd_codec_range_resp(s, strlen(s), &kvs, NULL), -EPROTO);
	assert_null(kvs.kvs);
	assert_int_equal(kvs.n, 0);
}

static void test_range_resp_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"garbage",
		"[]",
		"{\"kvs\":[]}", /* no header */
		"{\"header\":{\"revision\":\"-1\"}}",
		"{\"header\":{\"revision\":\"1x\"}}",
		"{\"header\":{\"revision\":\"\"}}",
		"{\"header\":{\"revision\":\"9223372036854775808\"}}", /* int64 max + 1 */
		"{\"header\":{\"revision\":1.5}}",
		"{\"header\":{\"revision\":-3}}",
		"{\"header\":{\"revision\":true}}",
		"{" HDR ",\"kvs\":{}}",
		"{" HDR ",\"kvs\":[1]}",
		"{" HDR ",\"kvs\":[{\"value\":\"AA==\"}]}",           /* no key */
		"{" HDR ",\"kvs\":[{\"key\":\"\"}]}",                 /* empty key */
		"{" HDR ",\"kvs\":[{\"key\":\"AA==\"}]}",             /* NUL in key */
		"{" HDR ",\"kvs\":[{\"key\":\"!!!!\"}]}",             /* not base64 */
		"{" HDR ",\"kvs\":[{\"key\":\"azE\"}]}",              /* padding missing */
		"{" HDR ",\"kvs\":[{\"key\":\"azE=\",\"value\":3}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"azE=\",\"version\":\"x\"}]}",
		/* one good kv then a bad one: nothing half-filled */
		"{" HDR ",\"kvs\":[{\"key\":\"azE=\"},{\"key\":\"azE=\",\"mod_revision\":\"-\"}]}",
		"{" HDR ",\"more\":\"yes\"}",
		"{" HDR "," HDR "}", /* duplicate key */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_range_eproto(bad[i]);
	/* JSON integers are accepted for numbers, and the max int64 */
	{
		const char *s = "{\"header\":{\"revision\":9223372036854775807}}";
		int64_t rev;

		assert_int_equal(etcd_codec_header_resp(s, strlen(s), &rev), 0);
		assert_int_equal(rev, INT64_MAX);
	}
}

static void test_parse_i64(void **state)
{
	int64_t v = 7;

	assert_int_equal(etcd_codec_parse_i64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(etcd_codec_parse_i64("9223372036854775807", &v), 0);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(etcd_codec_parse_i64("9223372036854775808", &v), -EPROTO);
	assert_int_equal(etcd_codec_parse_i64("+1", &v), -EPROTO);
	assert_int_equal(etcd_codec_parse_i64(" 1", &v), -EPROTO);
	assert_int_equal(etcd_codec_parse_i64("", &v), -EPROTO);
	assert_int_equal(etcd_codec_parse_i64(NULL, &v), -EPROTO);
}

static void test_delete_put_resp(void **state)
{
	const char *d = "{" HDR ",\"deleted\":\"3\"}";
	int64_t rev = 0, n = 0;

	assert_int_equal(etcd_codec_delete_resp(d, strlen(d), &rev, &n), 0);
	assert_int_equal(rev, 5);
	assert_int_equal(n, 3);
	assert_int_equal(etcd_codec_delete_resp("{" HDR "}", strlen("{" HDR "}"), &rev, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(etcd_codec_delete_resp("{\"deleted\":\"1\"}", 15, &rev, &n), -EPROTO);
	assert_int_equal(etcd_codec_header_resp("{" HDR "}", strlen("{" HDR "}"), &rev), 0);
}

static void test_txn_resp(void **state)
{
	const char *lost = "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"5\"},"
			   "\"kvs\":[{\"key\":\"czE=\",\"create_revision\":\"5\",\"mod_revision\":\"5\","
			   "\"version\":\"1\",\"value\":\"bjE=\"}],\"count\":\"1\"}},"
			   "{\"response_delete_range\":{\"header\":{\"revision\":\"5\"},\"deleted\":\"2\"}}]}";
	const char *won = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"5\"}}}]}";
	static const char *const bad[] = {
		"{" HDR ",\"succeeded\":1}",
		"{" HDR ",\"responses\":{}}",
		"{" HDR ",\"responses\":[{}]}",
		"{" HDR ",\"responses\":[{\"response_put\":{},\"response_range\":{}}]}",
		"{" HDR ",\"responses\":[{\"response_bogus\":{}}]}",
		"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":7}]}}]}",
		"{\"succeeded\":true}",
	};
	struct etcd_txn_result r;

	assert_int_equal(etcd_codec_txn_resp(lost, strlen(lost), &r), 0);
	assert_false(r.succeeded);
	assert_int_equal(r.revision, 5);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.results[0].type, ETCD_OP_RANGE);
	assert_int_equal(r.results[0].kvs.n, 1);
	assert_string_equal((char *)r.results[0].kvs.kvs[0].value, "n1");
	assert_int_equal(r.results[1].type, ETCD_OP_DELETE);
	assert_int_equal(r.results[1].deleted, 2);
	etcd_txn_result_free(&r);
	assert_int_equal(etcd_codec_txn_resp(won, strlen(won), &r), 0);
	assert_true(r.succeeded);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.results[0].type, ETCD_OP_PUT);
	etcd_txn_result_free(&r);
	etcd_txn_result_free(NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(etcd_codec_txn_resp(bad[i], strlen(bad[i]), &r), -EPROTO);
		assert_null(r.results);
		assert_int_equal(r.n, 0);
	}
}

static void test_watch_msg(void **state)
{
	const char *created = "{\"result\":{" HDR ",\"created\":true}}";
	const char *events =
		"{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"czE=\",\"create_revision\":\"4\","
		"\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"bjE=\"}},{\"type\":\"DELETE\","
		"\"kv\":{\"key\":\"czE=\",\"mod_revision\":\"5\"},\"prev_kv\":{\"key\":\"czE=\","
		"\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"bjE=\"}}]}}";
	const char *compacted = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"raft_term\":\"2\"},"
				"\"canceled\":true,\"compact_revision\":\"5\"}}";
	const char *stream_err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,"
				 "\"message\":\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";
	static const char *const bad[] = {
		"{}",
		"{\"result\":[]}",
		"{\"result\":{\"created\":true}}", /* no header */
		"{\"result\":{" HDR ",\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"czE=\",\"mod_revision\":\"5\"}}]}}",
		"{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"czE=\"}}]}}", /* no revision */
		"{\"result\":{" HDR ",\"events\":[{}]}}",
		/* out of order */
		"{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"czE=\",\"mod_revision\":\"5\"}},"
		"{\"kv\":{\"key\":\"czE=\",\"mod_revision\":\"4\"}}]}}",
		"{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"czE=\",\"mod_revision\":\"5\"},\"prev_kv\":[]}]}}",
		"{\"error\":{\"message\":\"no code\"}}",
	};
	struct etcd_codec_watch w;

	assert_int_equal(etcd_codec_watch_msg(created, strlen(created), &w), 0);
	assert_true(w.created);
	assert_int_equal(w.revision, 5);
	assert_int_equal(w.n, 0);
	etcd_codec_watch_free(&w);

	assert_int_equal(etcd_codec_watch_msg(events, strlen(events), &w), 0);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
	assert_false(w.events[0].has_prev);
	assert_int_equal(w.events[0].kv.mod_revision, 4);
	assert_string_equal((char *)w.events[0].kv.value, "n1");
	assert_int_equal(w.events[1].type, ETCD_EVENT_DELETE);
	assert_int_equal(w.events[1].kv.mod_revision, 5);
	assert_int_equal(w.events[1].kv.value_len, 0);
	assert_true(w.events[1].has_prev);
	assert_int_equal(w.events[1].prev_kv.create_revision, 4);
	etcd_codec_watch_free(&w);

	assert_int_equal(etcd_codec_watch_msg(compacted, strlen(compacted), &w), 0);
	assert_true(w.canceled);
	assert_int_equal(w.compact_revision, 5);
	etcd_codec_watch_free(&w);

	assert_int_equal(etcd_codec_watch_msg(stream_err, strlen(stream_err), &w), 0);
	assert_int_equal(w.grpc_code, 14);
	assert_string_equal(w.message, "etcdserver: no leader");
	etcd_codec_watch_free(&w);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(etcd_codec_watch_msg(bad[i], strlen(bad[i]), &w), -EPROTO);
		assert_null(w.events);
		assert_int_equal(w.n, 0);
	}
	etcd_codec_watch_free(NULL);
}

static void test_error(void **state)
{
	const char *e = "{\"error\":\"etcdserver: mvcc: required revision has been compacted\","
			"\"message\":\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}";
	char msg[16];
	int code;

	assert_int_equal(etcd_codec_error(e, strlen(e), &code, msg, sizeof(msg)), 0);
	assert_int_equal(code, 11);
	assert_string_equal(msg, "etcdserver: mvc"); /* cut to the buffer, terminated */
	assert_int_equal(etcd_codec_error("{\"code\":\"3\"}", 12, &code, NULL, 0), -EPROTO);
	assert_int_equal(etcd_codec_error("404 page not found", 18, &code, NULL, 0), -EPROTO);
	assert_int_equal(etcd_codec_error(NULL, 0, &code, NULL, 0), -EPROTO);
}

static void test_lease(void **state)
{
	const char *grant = "{" HDR ",\"ID\":\"7668682611188774406\",\"TTL\":\"10\"}";
	const char *alive = "{\"result\":{" HDR ",\"ID\":\"7668682611188774408\",\"TTL\":\"10\"}}";
	const char *gone = "{\"result\":{" HDR ",\"ID\":\"7668682611188774408\"}}";
	struct etcd_op op = { .type = ETCD_OP_PUT, .key = "k", .value = "v", .value_len = 1,
			      .lease = 7668682611188774406LL };
	struct etcd_txn t = { .success = &op, .n_success = 1 };
	int64_t id = 0, ttl = 0;
	char *s;
	json_t *j;

	s = etcd_codec_lease_grant_req(10);
	j = load(s);
	assert_string_equal(sget(j, "TTL"), "10");
	json_decref(j);
	free(s);
	s = etcd_codec_lease_id_req(7668682611188774408LL);
	j = load(s);
	assert_string_equal(sget(j, "ID"), "7668682611188774408");
	json_decref(j);
	free(s);
	assert_null(etcd_codec_lease_grant_req(0));
	assert_null(etcd_codec_lease_id_req(-1));
	s = etcd_codec_txn_req(&t);
	j = load(s);
	assert_string_equal(sget(json_array_get(json_object_get(j, "success"), 0), "request_put.lease"),
			    "7668682611188774406");
	json_decref(j);
	free(s);

	assert_int_equal(etcd_codec_lease_grant_resp(grant, strlen(grant), &id, &ttl), 0);
	assert_int_equal(id, 7668682611188774406LL);
	assert_int_equal(ttl, 10);
	/* a grant without an ID is no grant */
	assert_int_equal(etcd_codec_lease_grant_resp("{" HDR ",\"TTL\":\"10\"}",
						     strlen("{" HDR ",\"TTL\":\"10\"}"), &id, &ttl),
			 -EPROTO);
	assert_int_equal(etcd_codec_lease_keepalive_resp(alive, strlen(alive), &id, &ttl), 0);
	assert_int_equal(id, 7668682611188774408LL);
	assert_int_equal(ttl, 10);
	assert_int_equal(etcd_codec_lease_keepalive_resp(gone, strlen(gone), &id, &ttl), 0);
	assert_int_equal(ttl, 0);
	assert_int_equal(etcd_codec_lease_keepalive_resp(grant, strlen(grant), &id, &ttl), -EPROTO);
}

static void test_prefix_end(void **state)
{
	char *s;

	s = etcd_prefix_end("/wgcni/subnets/");
	assert_string_equal(s, "/wgcni/subnets0");
	free(s);
	s = etcd_prefix_end("a\xff\xff");
	assert_string_equal(s, "b");
	free(s);
	s = etcd_prefix_end("\xff");
	assert_string_equal(s, ""); /* no end: every key from the prefix on */
	free(s);
	errno = 0;
	assert_null(etcd_prefix_end(""));
	assert_int_equal(errno, EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_req),
		cmocka_unit_test(test_req_refused),
		cmocka_unit_test(test_put_binary),
		cmocka_unit_test(test_txn_req),
		cmocka_unit_test(test_watch_req),
		cmocka_unit_test(test_range_resp),
		cmocka_unit_test(test_range_resp_malformed),
		cmocka_unit_test(test_parse_i64),
		cmocka_unit_test(test_delete_put_resp),
		cmocka_unit_test(test_txn_resp),
		cmocka_unit_test(test_watch_msg),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_lease),
		cmocka_unit_test(test_prefix_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

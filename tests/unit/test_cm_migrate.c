/*
 * The pure parts of `wgcni-cluster-manager migrate` (cluster-manager/
 * migrate.c): the values it writes to etcd (P/nodes/<name> and P/config,
 * exactly as store_etcd_keys.h lays them out, read back with jansson), the
 * check of a stored subnet against the flags (outside the CIDR, wrong size,
 * wrong family, not canonical: refused), and the batching into transactions
 * of at most 128 operations (every node in exactly one, none split, none
 * over the limit, checked at random).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "migrate.h"

static void test_node_json(void **state)
{
	char n1[] = "node1", k[] = "YAnxYWbBuDxnMfi0s3tw9nUVVtaLL5Bsv7BkRlcbmXg=";
	char ep[] = "192.0.2.1:51820", loc[] = "dc1", pub[] = "203.0.113.1:51820";
	char s4[] = "10.100.3.0/24", s6[] = "fd10:100:0:3::/64", empty[] = "";
	struct cm_mig_node n = {
		.name = n1, .public_key = k, .endpoint = ep, .location = loc,
		.public_endpoint = pub, .gateway = true, .last_seen = 1700000000,
		.subnets = { s4, s6 }, .subnet_family = { 4, 6 }, .n_subnets = 2,
	};
	json_error_t jerr;
	json_t *o, *subnets;
	char *s;
	int gw;
	const char *pk, *e, *l, *pe;

	s = cm_migrate_node_json(&n);
	assert_non_null(s);
	assert_string_equal(s, "{\"subnets\":[\"10.100.3.0/24\",\"fd10:100:0:3::/64\"],"
			       "\"publicKey\":\"YAnxYWbBuDxnMfi0s3tw9nUVVtaLL5Bsv7BkRlcbmXg=\","
			       "\"endpoint\":\"192.0.2.1:51820\",\"location\":\"dc1\","
			       "\"gateway\":true,\"publicEndpoint\":\"203.0.113.1:51820\"}");
	o = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(o);
	assert_int_equal(json_unpack_ex(o, &jerr, JSON_STRICT, "{s:o, s:s, s:s, s:s, s:b, s:s}",
					"subnets", &subnets, "publicKey", &pk, "endpoint", &e,
					"location", &l, "gateway", &gw, "publicEndpoint", &pe), 0);
	assert_int_equal(json_array_size(subnets), 2);
	assert_string_equal(json_string_value(json_array_get(subnets, 1)), s6);
	json_decref(o);
	free(s);

	/* Allocated, never registered: empty strings, no subnet of a family
	 * the cluster lacks. */
	n = (struct cm_mig_node){ .name = n1, .public_key = empty, .endpoint = empty,
				  .location = empty, .public_endpoint = empty,
				  .subnets = { s4 }, .subnet_family = { 4 }, .n_subnets = 1 };
	s = cm_migrate_node_json(&n);
	assert_non_null(s);
	assert_string_equal(s, "{\"subnets\":[\"10.100.3.0/24\"],\"publicKey\":\"\","
			       "\"endpoint\":\"\",\"location\":\"\",\"gateway\":false,"
			       "\"publicEndpoint\":\"\"}");
	free(s);
}

static struct cm_config config(const char *v4, const char *v6, unsigned int l4,
			       unsigned int l6)
{
	struct cm_config cfg = { .childlen = { l4, l6 } };

	if (v4) {
		cfg.has_cidr[CM_V4] = true;
		assert_int_equal(ipnet_parse(v4, &cfg.cidr[CM_V4], true), 0);
	}
	if (v6) {
		cfg.has_cidr[CM_V6] = true;
		assert_int_equal(ipnet_parse(v6, &cfg.cidr[CM_V6], true), 0);
	}
	return cfg;
}

static void test_config_json(void **state)
{
	struct cm_config cfg = config("10.100.0.0/16", "fd10:100::/48", 24, 64);
	char *s;

	s = cm_config_etcd_json(&cfg);
	assert_non_null(s);
	assert_string_equal(s, "{\"clusterCidrs\":[\"10.100.0.0/16\",\"fd10:100::/48\"],"
			       "\"nodePrefixLength\":24,\"nodePrefixLengthV6\":64,\"externalCidrs\":[]}");
	free(s);
	cfg = config(NULL, "fd10:100::/48", 24, 80);
	s = cm_config_etcd_json(&cfg);
	assert_non_null(s);
	assert_string_equal(s, "{\"clusterCidrs\":[\"fd10:100::/48\"],"
			       "\"nodePrefixLength\":24,\"nodePrefixLengthV6\":80,\"externalCidrs\":[]}");
	free(s);
}

static void test_check_subnet(void **state)
{
	struct cm_config cfg = config("10.100.0.0/16", "fd10:100::/48", 24, 64);
	struct cm_config v4only = config("10.100.0.0/16", NULL, 24, 64);
	char err[256];

	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.3.0/24", 4, err, sizeof(err)), 0);
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.255.0/24", 4, err, sizeof(err)), 0);
	assert_int_equal(cm_migrate_check_subnet(&cfg, "fd10:100:0:3::/64", 6, err, sizeof(err)),
			 0);
	/* Outside the CIDR. */
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.101.0.0/24", 4, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "outside --cluster-cidr `10.100.0.0/16'"));
	/* Another size: the /24 claims would not see it. */
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.0.0/23", 4, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--node-prefix-length 24"));
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.0.0/25", 4, err, sizeof(err)),
			 -EINVAL);
	/* Family mismatch, unknown family, no such family configured. */
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.3.0/24", 6, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.3.0/24", 5, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cm_migrate_check_subnet(&v4only, "fd10:100:0:3::/64", 6, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no IPv6 --cluster-cidr"));
	/* Host bits, garbage, a non-canonical spelling of a good subnet. */
	assert_int_equal(cm_migrate_check_subnet(&cfg, "10.100.3.1/24", 4, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cm_migrate_check_subnet(&cfg, "nonsense", 4, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cm_migrate_check_subnet(&cfg, "fd10:100:0:3:0::/64", 6, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "canonical"));
}

static void test_batch(void **state)
{
	static struct cm_mig_node nodes[1000];
	size_t n_ops;

	/* 1 subnet each: 3 operations a node, 42 nodes in 126 (+1 config). */
	for (size_t i = 0; i < 1000; i++)
		nodes[i].n_subnets = 1;
	assert_int_equal(cm_migrate_batch(nodes, 1000, 0, 1), 42);
	assert_int_equal(cm_migrate_batch(nodes, 1000, 42, 0), 42);
	assert_int_equal(cm_migrate_batch(nodes, 1000, 990, 0), 10);
	/* 2 subnets: 4 operations, 32 nodes in 128. */
	for (size_t i = 0; i < 1000; i++)
		nodes[i].n_subnets = 2;
	assert_int_equal(cm_migrate_batch(nodes, 1000, 0, 0), 32);
	assert_int_equal(cm_migrate_batch(nodes, 1000, 0, 1), 31);

	/* At random: batches cover every node once, in order, each within the
	 * limit and none ended early. */
	srand(12);
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(rand() % 1000), start = 0;

		for (size_t i = 0; i < n; i++)
			nodes[i].n_subnets = (size_t)(rand() % 3);
		while (start < n) {
			size_t extra = start == 0, c = cm_migrate_batch(nodes, n, start, extra);

			assert_true(c >= 1 && start + c <= n);
			n_ops = extra;
			for (size_t i = start; i < start + c; i++)
				n_ops += 2 + nodes[i].n_subnets;
			assert_true(n_ops <= CM_MIGRATE_TXN_OPS);
			if (start + c < n)
				assert_true(n_ops + 2 + nodes[start + c].n_subnets >
					    CM_MIGRATE_TXN_OPS);
			start += c;
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_json),
		cmocka_unit_test(test_config_json),
		cmocka_unit_test(test_check_subnet),
		cmocka_unit_test(test_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The shared name rules: what each side accepts, the other accepts too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static void test_container_id(void **state)
{
	char id[NAME_CONTAINER_ID_MAX + 2];

	assert_true(name_container_id_valid("a"));
	assert_true(name_container_id_valid("0123abcdef"));
	assert_true(name_container_id_valid("ctr_1.x-y"));
	assert_false(name_container_id_valid(NULL));
	assert_false(name_container_id_valid(""));
	assert_false(name_container_id_valid("-leading"));
	assert_false(name_container_id_valid("_leading"));
	assert_false(name_container_id_valid("a/b"));
	assert_false(name_container_id_valid("a b"));
	assert_false(name_container_id_valid("a\nb"));
	assert_false(name_container_id_valid("caf\xc3\xa9"));

	memset(id, 'c', NAME_CONTAINER_ID_MAX);
	id[NAME_CONTAINER_ID_MAX] = '\0';
	assert_true(name_container_id_valid(id));
	id[NAME_CONTAINER_ID_MAX] = 'c';
	id[NAME_CONTAINER_ID_MAX + 1] = '\0';
	assert_string_equal(name_container_id_check(id), "longer than 256 characters");
}

static void test_ifname(void **state)
{
	assert_true(name_ifname_valid("eth0"));
	assert_true(name_ifname_valid("wgcni0"));
	assert_true(name_ifname_valid("123456789012345"));
	assert_false(name_ifname_valid("1234567890123456"));
	assert_false(name_ifname_valid(""));
	assert_false(name_ifname_valid(NULL));
	assert_false(name_ifname_valid("."));
	assert_false(name_ifname_valid(".."));
	assert_true(name_ifname_valid("..."));
	assert_false(name_ifname_valid("a/b"));
	assert_false(name_ifname_valid("a:1"));
	assert_false(name_ifname_valid("a b"));
	assert_false(name_ifname_valid("a\tb"));
	assert_false(name_ifname_valid("a\x7f"));
	assert_false(name_ifname_valid("\xc3\xa9"));
}

static void test_node(void **state)
{
	char name[NAME_NODE_MAX + 2];

	assert_true(name_node_valid("node-1.example.com"));
	assert_true(name_node_valid("N_1"));
	assert_false(name_node_valid(""));
	assert_false(name_node_valid(NULL));
	assert_false(name_node_valid("a b"));
	assert_false(name_node_valid("a/b"));
	assert_false(name_node_valid("a\"b"));
	assert_string_equal(name_node_check("x:y"),
			    "only letters, digits, '.', '_' and '-' are allowed");
	memset(name, 'n', NAME_NODE_MAX);
	name[NAME_NODE_MAX] = '\0';
	assert_true(name_node_valid(name));
	name[NAME_NODE_MAX] = 'n';
	name[NAME_NODE_MAX + 1] = '\0';
	assert_string_equal(name_node_check(name), "longer than 253 characters");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_container_id),
		cmocka_unit_test(test_ifname),
		cmocka_unit_test(test_node),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

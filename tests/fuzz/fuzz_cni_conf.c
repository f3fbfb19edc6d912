/*
 * libFuzzer harness for the CNI plugin's network configuration parser
 * (cni/conf.c), which reads whatever any runtime writes on stdin. Whatever
 * parses must hold the invariants the commands rely on, and must build an
 * ADD result (cni/result.c) from its prevResult; whatever is refused must
 * say why and leave nothing behind. `make fuzz` builds and runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cni.h"
#include "ipnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cni_env env = { .ifname = "eth0", .netns = "/var/run/netns/x" };
	struct cni_err e = { 0 };
	struct cni_conf c;
	struct ipnet addrs[2];
	struct ipaddr gw;
	const char *version;
	json_t *root, *res = NULL;

	if (cni_conf_parse(&c, (const char *)data, size, &e) == 0) {
		if (!c.root || !c.type || !*c.type || c.version >= CNI_VERSION_COUNT ||
		    !c.node_manager || !c.impl || e.code)
			abort();
		if (c.mtu && (c.mtu < 576 || c.mtu > 65535))
			abort();
		if (ipnet_parse_host("10.1.2.3/32", &addrs[0]) ||
		    ipnet_parse_host("fd00::3/128", &addrs[1]) || ipaddr_parse("10.1.2.1", &gw))
			abort();
		if (cni_result_build(&c, &env, 1420, addrs, 2, &gw, &res, &e) == 0) {
			if (!json_is_array(json_object_get(res, "interfaces")) ||
			    !json_is_array(json_object_get(res, "ips")))
				abort();
			json_decref(res);
		}
		cni_conf_free(&c);
	} else {
		if (!e.code || !e.msg[0] || c.root)
			abort();
	}
	cni_conf_peek_version((const char *)data, size, &version, &root);
	json_decref(root);
	return 0;
}

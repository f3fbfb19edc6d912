/*
 * libFuzzer harness for the small parsers of pkg/ (ipnet, endpoint, key,
 * opts_split): whatever parses must format and parse back to the same value;
 * whatever is refused must say why. `make fuzz` builds and runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include "ipnet.h"
#include "key.h"
#include "opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), buf[IPNET_STRLEN], buf2[300], err[200];
	struct ipnet n, n2; struct ipaddr a, a2; struct endpoint ep, ep2;
	uint8_t key[32]; char b64[45];
	memcpy(s, data, size); s[size] = 0;
	if (ipaddr_parse(s, &a) == 0) {
		ipaddr_format(&a, buf);
		if (ipaddr_parse(buf, &a2) || !ipaddr_equal(&a, &a2)) abort();
	}
	for (int strict = 0; strict < 2; strict++)
	if (ipnet_parse(s, &n, strict) == 0) {
		ipnet_format(&n, buf);
		if (ipnet_parse(buf, &n2, true) || !ipaddr_equal(&n.addr, &n2.addr) || n.prefixlen != n2.prefixlen) abort();
		uint64_t c = ipnet_child_count(&n, n.prefixlen + 3 > ipaddr_bits(&n.addr) ? ipaddr_bits(&n.addr) : n.prefixlen + 3);
		(void)c;
		struct ipaddr fh;
		if (ipnet_first_host(&n, &fh) == 0 && !ipnet_contains(&n, &fh)) abort();
	}
	if (ipnet_parse_host(s, &n) == 0) { ipnet_format(&n, buf); if (ipnet_parse_host(buf, &n2) || !ipaddr_equal(&n.addr,&n2.addr)) abort(); }
	if (endpoint_parse(s, &ep, err, sizeof(err)) == 0) {
		if (!ep.host[0] || !ep.port) abort();
		snprintf(buf2, sizeof(buf2), strchr(ep.host, ':') ? "[%s]:%u" : "%s:%u", ep.host, ep.port);
		if (endpoint_parse(buf2, &ep2, err, sizeof(err)) || strcmp(ep.host, ep2.host) || ep.port != ep2.port) abort();
		struct sockaddr_storage ss; socklen_t len;
		struct ipaddr tmp;
		if (ipaddr_parse(ep.host, &tmp) == 0 && endpoint_to_sockaddr(&ep, &ss, &len)) abort();
	} else if (!err[0]) abort();
	if (key_from_base64(key, s, err, sizeof(err)) == 0) {
		key_to_base64(b64, key);
		if (strcmp(b64, s)) abort();
	} else if (!err[0]) abort();
	char **v = opts_split(s); if (!v) abort(); opts_strv_free(v);
	free(s);
	return 0;
}

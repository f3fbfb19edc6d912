/*
 * IPv4 and IPv6 addresses and prefixes. Addresses are kept as 16 bytes
 * (IPv4 in the last 4, family tells which) so arithmetic is one code path.
 */
#ifndef WGCNI_IPNET_H
#define WGCNI_IPNET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Large enough for "ffff:...:ffff/128" and "[v6]:65535". */
#define IPNET_STRLEN 64

struct ipaddr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16]; /* AF_INET: bytes[12..15] */
};

struct ipnet {
	struct ipaddr addr;
	unsigned int prefixlen;
};

/* "10.1.2.3" or "fd00::1". 0 or -EINVAL. */
int ipaddr_parse(const char *s, struct ipaddr *out);
/* "10.0.0.0/16". strict: reject host bits set ("10.0.0.1/16"); not strict:
 * accept them and zero them ("10.0.0.1/16" -> 10.0.0.0/16). 0 or -EINVAL. */
int ipnet_parse(const char *s, struct ipnet *out, bool strict);
/* Address with prefix, host bits allowed ("10.100.3.1/24"). */
int ipnet_parse_host(const char *s, struct ipnet *out);

const char *ipaddr_format(const struct ipaddr *a, char buf[static IPNET_STRLEN]);
const char *ipnet_format(const struct ipnet *n, char buf[static IPNET_STRLEN]);

unsigned int ipaddr_bits(const struct ipaddr *a); /* 32 or 128 */
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);
/* The same prefixes in both lists, in any order (lists of a peer's few
 * AllowedIPs: quadratic in their length). */
bool ipnet_set_contains(const struct ipnet *set, size_t count, const struct ipnet *n);
bool ipnet_set_equal(const struct ipnet *a, size_t na, const struct ipnet *b, size_t nb);
int ipaddr_cmp(const struct ipaddr *a, const struct ipaddr *b);
/* a + n within the family; -ERANGE on overflow. */
int ipaddr_add(struct ipaddr *a, uint64_t n);
/* Offset of a from base (a >= base, difference fits 64 bits) or -ERANGE. */
int ipaddr_offset(const struct ipaddr *base, const struct ipaddr *a, uint64_t *off);

bool ipnet_contains(const struct ipnet *n, const struct ipaddr *a);
/* inner lies completely within outer. */
bool ipnet_contains_net(const struct ipnet *outer, const struct ipnet *inner);
bool ipnet_overlaps(const struct ipnet *a, const struct ipnet *b);
/* Zero the host bits. */
void ipnet_mask(struct ipnet *n);
/* The i-th child /childlen of parent. -ERANGE if out of range. */
int ipnet_child(const struct ipnet *parent, unsigned int childlen, uint64_t i,
		struct ipnet *out);
/* Index i such that child is the i-th /child->prefixlen child of parent:
 * 0, -EINVAL if child is not such a child (other family, outside parent,
 * shorter prefix, host bits set), -ERANGE if the index does not fit 64 bits. */
int ipnet_child_index(const struct ipnet *parent, const struct ipnet *child,
		      uint64_t *index);
/* Number of /childlen children of parent, saturated at UINT64_MAX. */
uint64_t ipnet_child_count(const struct ipnet *parent, unsigned int childlen);
/* First host address: network + 1 (e.g. 10.100.3.1 of 10.100.3.0/24);
 * -ERANGE for a /32 or /128, which has no room for it. */
int ipnet_first_host(const struct ipnet *n, struct ipaddr *out);

/*
 * Endpoints: "host:port" (IPv4 literal or hostname) or "[v6]:port", port
 * 1..65535. 0 or -EINVAL with a reason in err.
 */
struct endpoint {
	char host[256];
	uint16_t port;
};
int endpoint_parse(const char *s, struct endpoint *out, char *err, size_t errlen);
/* The same for an address to bind, where port 0 (any free port) is allowed. */
int endpoint_parse_bind(const char *s, struct endpoint *out, char *err, size_t errlen);
/* Resolve to a socket address: numeric hosts without any lookup, else
 * getaddrinfo (first answer). 0, -ENOENT (no such host), -EAGAIN (lookup
 * failed for now), -ENOMEM or -EINVAL. */
int endpoint_to_sockaddr(const struct endpoint *ep, struct sockaddr_storage *ss,
			 socklen_t *len);
/* "192.0.2.1:51820" or "[fd00::1]:51820"; "unknown" for other families. */
const char *sockaddr_format(const struct sockaddr *sa, char buf[static IPNET_STRLEN]);

#endif

#include "ipnet.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Arithmetic runs on the 16-byte form as a 128-bit number split into two
 * 64-bit halves, so IPv4 and IPv6 share one code path and nothing depends on
 * a compiler's __int128.
 */
struct u128 {
	uint64_t hi, lo;
};

static struct u128 u128_get(const struct ipaddr *a)
{
	struct u128 v = { 0, 0 };

	for (int i = 0; i < 8; i++) {
		v.hi = v.hi << 8 | a->bytes[i];
		v.lo = v.lo << 8 | a->bytes[i + 8];
	}
	return v;
}

static void u128_put(struct ipaddr *a, struct u128 v)
{
	for (int i = 7; i >= 0; i--) {
		a->bytes[i] = (uint8_t)v.hi;
		a->bytes[i + 8] = (uint8_t)v.lo;
		v.hi >>= 8;
		v.lo >>= 8;
	}
}

static int u128_cmp(struct u128 a, struct u128 b)
{
	if (a.hi != b.hi)
		return a.hi < b.hi ? -1 : 1;
	if (a.lo != b.lo)
		return a.lo < b.lo ? -1 : 1;
	return 0;
}

static struct u128 u128_sub(struct u128 a, struct u128 b)
{
	struct u128 r = { a.hi - b.hi, a.lo - b.lo };

	if (a.lo < b.lo)
		r.hi--;
	return r;
}

/* v << shift, shift 0..128; bits pushed out of the top are lost. */
static struct u128 u128_shl(uint64_t v, unsigned int shift)
{
	struct u128 r = { 0, 0 };

	if (shift == 0)
		r.lo = v;
	else if (shift < 64) {
		r.hi = v >> (64 - shift);
		r.lo = v << shift;
	} else if (shift < 128)
		r.hi = v << (shift - 64);
	return r;
}

/* v >> shift, shift 0..128. */
static struct u128 u128_shr(struct u128 v, unsigned int shift)
{
	struct u128 r = { 0, 0 };

	if (shift == 0)
		return v;
	if (shift < 64) {
		r.lo = v.lo >> shift | v.hi << (64 - shift);
		r.hi = v.hi >> shift;
	} else if (shift < 128)
		r.lo = v.hi >> (shift - 64);
	return r;
}

static bool family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

unsigned int ipaddr_bits(const struct ipaddr *a)
{
	return a->family == AF_INET ? 32 : 128;
}

/* Prefix length counted over the 16-byte form (IPv4 sits behind 96 bits);
 * clamped, so a hand-built prefix longer than its family never reads past
 * the 16 bytes. */
static unsigned int abs_prefix(int family, unsigned int prefixlen)
{
	unsigned int p = (family == AF_INET ? 96 : 0) + prefixlen;

	return p > 128 || p < prefixlen ? 128 : p;
}

static bool host_bits_zero(const struct ipaddr *a, unsigned int absprefix)
{
	for (unsigned int i = absprefix / 8; i < 16; i++) {
		uint8_t mask = 0xff;

		if (i == absprefix / 8 && absprefix % 8)
			mask = (uint8_t)(0xff >> (absprefix % 8));
		if (a->bytes[i] & mask)
			return false;
	}
	return true;
}

static void zero_host_bits(struct ipaddr *a, unsigned int absprefix)
{
	for (unsigned int i = absprefix / 8; i < 16; i++) {
		if (i == absprefix / 8 && absprefix % 8)
			a->bytes[i] &= (uint8_t)(0xff << (8 - absprefix % 8));
		else
			a->bytes[i] = 0;
	}
}

/* The first absprefix bits of a and b are equal. */
static bool prefix_equal(const struct ipaddr *a, const struct ipaddr *b,
			 unsigned int absprefix)
{
	unsigned int full = absprefix / 8, rest = absprefix % 8;

	if (memcmp(a->bytes, b->bytes, full))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		if ((a->bytes[full] ^ b->bytes[full]) & mask)
			return false;
	}
	return true;
}

int ipaddr_parse(const char *s, struct ipaddr *out)
{
	struct ipaddr a = { 0 };

	if (!s || !*s)
		return -EINVAL;
	if (strchr(s, ':')) {
		a.family = AF_INET6;
		if (inet_pton(AF_INET6, s, a.bytes) != 1)
			return -EINVAL;
	} else {
		a.family = AF_INET;
		if (inet_pton(AF_INET, s, a.bytes + 12) != 1)
			return -EINVAL;
	}
	*out = a;
	return 0;
}

/* Decimal prefix length: 1 to 3 digits, no leading zero (as inet_pton
 * refuses "010.0.0.1"), nothing else. */
static int parse_prefixlen(const char *s, unsigned int max, unsigned int *out)
{
	unsigned int v = 0;
	size_t n = 0;

	if (s[0] == '0' && s[1])
		return -EINVAL;
	for (; s[n]; n++) {
		if (n == 3 || !isdigit((unsigned char)s[n]))
			return -EINVAL;
		v = v * 10 + (unsigned int)(s[n] - '0');
	}
	if (n == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_net(const char *s, struct ipnet *out, bool strict, bool keep_host)
{
	char buf[IPNET_STRLEN];
	struct ipnet n = { 0 };
	char *slash;
	size_t len;
	int ret;

	if (!s)
		return -EINVAL;
	len = strnlen(s, sizeof(buf));
	if (len == sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len + 1);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	ret = ipaddr_parse(buf, &n.addr);
	if (ret < 0)
		return ret;
	ret = parse_prefixlen(slash + 1, ipaddr_bits(&n.addr), &n.prefixlen);
	if (ret < 0)
		return ret;
	if (!host_bits_zero(&n.addr, abs_prefix(n.addr.family, n.prefixlen))) {
		if (strict)
			return -EINVAL;
		if (!keep_host)
			ipnet_mask(&n);
	}
	*out = n;
	return 0;
}

int ipnet_parse(const char *s, struct ipnet *out, bool strict)
{
	return parse_net(s, out, strict, false);
}

int ipnet_parse_host(const char *s, struct ipnet *out)
{
	return parse_net(s, out, false, true);
}

const char *ipaddr_format(const struct ipaddr *a, char buf[static IPNET_STRLEN])
{
	const void *src = a->family == AF_INET ? a->bytes + 12 : a->bytes;

	if (!family_ok(a->family) || !inet_ntop(a->family, src, buf, IPNET_STRLEN))
		snprintf(buf, IPNET_STRLEN, "invalid");
	return buf;
}

const char *ipnet_format(const struct ipnet *n, char buf[static IPNET_STRLEN])
{
	char addr[IPNET_STRLEN];

	snprintf(buf, IPNET_STRLEN, "%s/%u", ipaddr_format(&n->addr, addr),
		 n->prefixlen);
	return buf;
}

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return ipaddr_cmp(a, b) == 0;
}

int ipaddr_cmp(const struct ipaddr *a, const struct ipaddr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

int ipaddr_add(struct ipaddr *a, uint64_t n)
{
	struct u128 v = u128_get(a);

	v.lo += n;
	if (v.lo < n) {
		if (v.hi == UINT64_MAX)
			return -ERANGE;
		v.hi++;
	}
	if (a->family == AF_INET && (v.hi || v.lo > UINT32_MAX))
		return -ERANGE;
	u128_put(a, v);
	return 0;
}

int ipaddr_offset(const struct ipaddr *base, const struct ipaddr *a, uint64_t *off)
{
	struct u128 b = u128_get(base), v = u128_get(a), d;

	if (base->family != a->family)
		return -EINVAL;
	if (u128_cmp(v, b) < 0)
		return -ERANGE;
	d = u128_sub(v, b);
	if (d.hi)
		return -ERANGE;
	*off = d.lo;
	return 0;
}

bool ipnet_contains(const struct ipnet *n, const struct ipaddr *a)
{
	return n->addr.family == a->family &&
	       prefix_equal(&n->addr, a, abs_prefix(a->family, n->prefixlen));
}

bool ipnet_contains_net(const struct ipnet *outer, const struct ipnet *inner)
{
	return inner->prefixlen >= outer->prefixlen &&
	       ipnet_contains(outer, &inner->addr);
}

bool ipnet_overlaps(const struct ipnet *a, const struct ipnet *b)
{
	return ipnet_contains_net(a, b) || ipnet_contains_net(b, a);
}

void ipnet_mask(struct ipnet *n)
{
	zero_host_bits(&n->addr, abs_prefix(n->addr.family, n->prefixlen));
}

uint64_t ipnet_child_count(const struct ipnet *parent, unsigned int childlen)
{
	unsigned int bits = ipaddr_bits(&parent->addr);

	if (childlen < parent->prefixlen || childlen > bits)
		return 0;
	if (childlen - parent->prefixlen >= 64)
		return UINT64_MAX;
	return (uint64_t)1 << (childlen - parent->prefixlen);
}

int ipnet_child(const struct ipnet *parent, unsigned int childlen, uint64_t i,
		struct ipnet *out)
{
	unsigned int bits = ipaddr_bits(&parent->addr);
	struct ipnet c = *parent;
	struct u128 base, off;

	if (!family_ok(parent->addr.family) || childlen < parent->prefixlen ||
	    childlen > bits)
		return -EINVAL;
	if (i >= ipnet_child_count(parent, childlen))
		return -ERANGE;
	ipnet_mask(&c);
	base = u128_get(&c.addr);
	off = u128_shl(i, bits - childlen);
	/* Cannot carry out: the offset stays below the parent's size. */
	base.lo += off.lo;
	base.hi += off.hi + (base.lo < off.lo);
	u128_put(&c.addr, base);
	c.prefixlen = childlen;
	*out = c;
	return 0;
}

int ipnet_child_index(const struct ipnet *parent, const struct ipnet *child,
		      uint64_t *index)
{
	unsigned int bits = ipaddr_bits(&parent->addr);
	struct ipnet p = *parent;
	struct u128 d;

	if (!family_ok(parent->addr.family) ||
	    child->addr.family != parent->addr.family ||
	    child->prefixlen > bits || !ipnet_contains_net(parent, child) ||
	    !host_bits_zero(&child->addr, abs_prefix(child->addr.family, child->prefixlen)))
		return -EINVAL;
	ipnet_mask(&p);
	d = u128_shr(u128_sub(u128_get(&child->addr), u128_get(&p.addr)),
		     bits - child->prefixlen);
	if (d.hi)
		return -ERANGE;
	*index = d.lo;
	return 0;
}

int ipnet_first_host(const struct ipnet *n, struct ipaddr *out)
{
	struct ipnet net = *n;
	int ret;

	if (!family_ok(n->addr.family))
		return -EINVAL;
	if (n->prefixlen >= ipaddr_bits(&n->addr))
		return -ERANGE;
	ipnet_mask(&net);
	ret = ipaddr_add(&net.addr, 1);
	if (ret < 0)
		return ret;
	*out = net.addr;
	return 0;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-', each
 * 1..63 long and not starting or ending with '-'. A name whose last label is
 * all digits must be an IPv4 literal (no top-level domain is numeric), so a
 * typo like 10.0.0.256 is refused here instead of going to DNS. */
static bool hostname_ok(const char *h, size_t len)
{
	char v4[INET_ADDRSTRLEN];
	struct in_addr a4;
	size_t label = 0, last = 0;
	bool numeric = true;

	for (size_t i = len; i > 0 && h[i - 1] != '.'; i--)
		last++;
	for (size_t i = len - last; i < len; i++)
		numeric &= isdigit((unsigned char)h[i]) != 0;
	if (last > 0 && numeric) {
		if (len >= sizeof(v4))
			return false;
		memcpy(v4, h, len);
		v4[len] = '\0';
		return inet_pton(AF_INET, v4, &a4) == 1;
	}

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && h[len - 1] != '-';
}

static int parse_port(const char *ep, const char *p, unsigned long min, uint16_t *port,
		      char *err, size_t errlen)
{
	unsigned long v = 0;
	size_t n;

	for (n = 0; p[n]; n++) {
		if (!isdigit((unsigned char)p[n])) {
			snprintf(err, errlen, "endpoint \"%s\": port \"%s\" is not a number",
				 ep, p);
			return -EINVAL;
		}
		if (n < 6)
			v = v * 10 + (unsigned long)(p[n] - '0');
	}
	if (v < min || v > 65535 || n > 5) {
		snprintf(err, errlen, "endpoint \"%s\": port %s out of range %lu-65535",
			 ep, p, min);
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

static int endpoint_parse_port(const char *s, struct endpoint *out, unsigned long min_port,
			       char *err, size_t errlen)
{
	struct endpoint ep = { 0 };
	char scratch[1];
	const char *host, *colon;
	size_t hostlen;
	int ret;

	if (!err) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (!s || !*s) {
		snprintf(err, errlen, "endpoint is empty");
		return -EINVAL;
	}
	if (strnlen(s, 300) == 300) {
		snprintf(err, errlen, "endpoint \"%.40s...\" is too long", s);
		return -EINVAL;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		struct in6_addr a6;

		if (!close) {
			snprintf(err, errlen, "endpoint \"%s\" has no closing ']'", s);
			return -EINVAL;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		if (hostlen >= sizeof(ep.host)) {
			snprintf(err, errlen, "endpoint \"%s\" is not an IPv6 address in brackets", s);
			return -EINVAL;
		}
		memcpy(ep.host, host, hostlen);
		if (inet_pton(AF_INET6, ep.host, &a6) != 1) {
			snprintf(err, errlen, "endpoint \"%s\": \"%s\" is not an IPv6 address",
				 s, ep.host);
			return -EINVAL;
		}
		if (close[1] == '\0' || (close[1] == ':' && close[2] == '\0')) {
			snprintf(err, errlen, "endpoint \"%s\" has no port", s);
			return -EINVAL;
		}
		if (close[1] != ':') {
			snprintf(err, errlen, "endpoint \"%s\" has junk after ']'", s);
			return -EINVAL;
		}
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon[1] == '\0') {
			snprintf(err, errlen, "endpoint \"%s\" has no port", s);
			return -EINVAL;
		}
		if (strchr(s, ':') != colon) {
			snprintf(err, errlen,
				 "endpoint \"%s\": an IPv6 address needs brackets, as in [fd00::1]:51820",
				 s);
			return -EINVAL;
		}
		hostlen = (size_t)(colon - s);
		if (!hostname_ok(s, hostlen)) {
			snprintf(err, errlen,
				 "endpoint \"%s\": host \"%.*s\" is not an IPv4 address or host name",
				 s, (int)hostlen, s);
			return -EINVAL;
		}
		memcpy(ep.host, s, hostlen);
	}
	ret = parse_port(s, colon + 1, min_port, &ep.port, err, errlen);
	if (ret < 0)
		return ret;
	*out = ep;
	return 0;
}

int endpoint_parse(const char *s, struct endpoint *out, char *err, size_t errlen)
{
	return endpoint_parse_port(s, out, 1, err, errlen);
}

int endpoint_parse_bind(const char *s, struct endpoint *out, char *err, size_t errlen)
{
	return endpoint_parse_port(s, out, 0, err, errlen);
}

static int gai_errno(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EINVAL;
	}
}

int endpoint_to_sockaddr(const struct endpoint *ep, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	char port[8];
	int rc;

	if (!ep->host[0] || ep->port == 0)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", ep->port);
	rc = getaddrinfo(ep->host, port, &hints, &res);
	if (rc == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(ep->host, port, &hints, &res);
	}
	if (rc)
		return gai_errno(rc);
	if (!res || res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

const char *sockaddr_format(const struct sockaddr *sa, char buf[static IPNET_STRLEN])
{
	char addr[INET6_ADDRSTRLEN];

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		snprintf(buf, IPNET_STRLEN, "%s:%u", addr, ntohs(in->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		snprintf(buf, IPNET_STRLEN, "[%s]:%u", addr, ntohs(in6->sin6_port));
	} else
		snprintf(buf, IPNET_STRLEN, "unknown");
	return buf;
}

bool ipnet_set_contains(const struct ipnet *set, size_t count, const struct ipnet *n)
{
	for (size_t i = 0; i < count; i++)
		if (n->prefixlen == set[i].prefixlen && ipaddr_equal(&n->addr, &set[i].addr))
			return true;
	return false;
}

bool ipnet_set_equal(const struct ipnet *a, size_t na, const struct ipnet *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!ipnet_set_contains(b, nb, &a[i]) || !ipnet_set_contains(a, na, &b[i]))
			return false;
	return true;
}

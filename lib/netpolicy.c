/* netpolicy: address classification (RFC 6890 special-purpose registries) and the allow list. */
#define _DEFAULT_SOURCE /* inet_aton */
#include "netpolicy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xalloc.h"

struct range {
	unsigned char net[16];
	int prefix;
	const char *why;
};

static const struct range v4_ranges[] = {
	{{0, 0, 0, 0}, 8, "unspecified"},     {{10}, 8, "private"},
	{{100, 64}, 10, "shared (CGNAT)"},    {{127}, 8, "loopback"},
	{{169, 254}, 16, "link-local"},	      {{172, 16}, 12, "private"},
	{{192, 0, 0}, 24, "reserved"},	      {{192, 0, 2}, 24, "documentation"},
	{{192, 88, 99}, 24, "reserved"},      {{192, 168}, 16, "private"},
	{{198, 18}, 15, "benchmarking"},      {{198, 51, 100}, 24, "documentation"},
	{{203, 0, 113}, 24, "documentation"}, {{224}, 4, "multicast"},
	{{240}, 4, "reserved or broadcast"},
};

/* Special-purpose blocks inside 2000::/3 (global unicast); outside it, nothing is public. */
static const struct range v6_ranges[] = {
	{{0x01, 0x00}, 64, "discard"},
	{{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
	{{0x3f, 0xff, 0x00}, 20, "documentation"},
	{{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64"},
	{{0x20, 0x01, 0x00, 0x00}, 32, "Teredo"},
	{{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48, "benchmarking"},
	{{0x20, 0x01, 0x00, 0x10}, 28, "reserved"},
	{{0x20, 0x01, 0x00, 0x20}, 28, "reserved"},
	{{0xfc}, 7, "unique local (private)"},
	{{0xfe, 0x80}, 10, "link-local"},
	{{0xfe, 0xc0}, 10, "site-local"},
	{{0xff}, 8, "multicast"},
};

static bool prefix_match(const unsigned char *a, const unsigned char *net, int prefix)
{
	int full = prefix / 8;
	int rest = prefix % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

const char *netpolicy_classify(int family, const unsigned char *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char compat[12] = {0};
	static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	static const unsigned char siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};

	if (family == AF_INET) {
		for (size_t i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++)
			if (prefix_match(addr, v4_ranges[i].net, v4_ranges[i].prefix))
				return v4_ranges[i].why;
		return NULL;
	}
	if (memcmp(addr, compat, 12) == 0) {
		/* ::/96 holds :: and ::1, and the deprecated IPv4-compatible form (RFC
		 * 4291 2.5.5.1): a public IPv4 address in it is still no public IPv6 address. */
		if (memcmp(addr + 12, "\0\0\0\0", 4) == 0)
			return "unspecified";
		if (memcmp(addr + 12, "\0\0\0\1", 4) == 0)
			return "loopback";
		const char *w = netpolicy_classify(AF_INET, addr + 12);

		return w != NULL ? w : "IPv4-compatible (deprecated)";
	}
	/* IPv6 forms that carry an IPv4 address: judge the IPv4 address (RFC 4291 2.5.5.2,
	 * RFC 6052 2.1, RFC 6145, and 6to4 2002:V4ADDR::/48 of RFC 3056). NAT64 and 6to4 of a
	 * public address reach that public address, so they pass. */
	if (memcmp(addr, mapped, 12) == 0 || memcmp(addr, nat64, 12) == 0 ||
	    memcmp(addr, siit, 12) == 0)
		return netpolicy_classify(AF_INET, addr + 12);
	if (addr[0] == 0x20 && addr[1] == 0x02)
		return netpolicy_classify(AF_INET, addr + 2);
	/* Teredo (2001::/32, RFC 4380) is refused whole: packets to it go through a relay, over
	 * UDP and IPv4, to the client's NAT (the last 32 bits XOR 0xffffffff) and on behind it;
	 * the protocol is obsolete, and judging that address would not say where they end up. */
	for (size_t i = 0; i < sizeof(v6_ranges) / sizeof(v6_ranges[0]); i++)
		if (prefix_match(addr, v6_ranges[i].net, v6_ranges[i].prefix))
			return v6_ranges[i].why;
	/* Only 2000::/3 is global unicast; the rest of the space is reserved or unassigned
	 * (RFC 4291 2.4, IANA IPv6 address space). */
	if ((addr[0] & 0xe0) != 0x20)
		return "reserved";
	return NULL;
}

static bool allow_covers(const struct netpolicy *np, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < np->nallow; i++) {
		const struct np_rule *r = &np->allow[i];

		if (r->family == family && prefix_match(addr, r->addr, r->prefix))
			return true;
	}
	return false;
}

bool netpolicy_addr_allowed(const struct netpolicy *np, const struct sockaddr *sa, const char **why)
{
	const unsigned char *a;
	const char *w;
	int family = sa->sa_family;

	if (family == AF_INET)
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
			    ->sin_addr;
	else if (family == AF_INET6)
		a = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)
			    ->sin6_addr;
	else {
		if (why != NULL)
			*why = "not an IP address";
		return false;
	}
	w = netpolicy_classify(family, a);
	if (w == NULL || allow_covers(np, family, a))
		return true;
	/* An IPv4-mapped address is allowed when its IPv4 address is. */
	if (family == AF_INET6 && a[10] == 0xff && a[11] == 0xff &&
	    memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10) == 0 && allow_covers(np, AF_INET, a + 12))
		return true;
	if (why != NULL)
		*why = w;
	return false;
}

/* host is n bytes long (trailing root dots already dropped). */
static bool host_rule_allows(const struct netpolicy *np, const char *host, size_t n)
{
	for (size_t i = 0; i < np->nallow; i++)
		if (np->allow[i].family == 0 && strlen(np->allow[i].host) == n &&
		    strncasecmp(np->allow[i].host, host, n) == 0)
			return true;
	return false;
}

/* One part of a numeric IPv4 host as inet_aton(3) and the WHATWG URL standard read it:
 * decimal, octal after a leading 0, hexadecimal after 0x ("0x" alone is 0). Values past 32 bits
 * saturate at 2^32. Returns 0, or -1 when s is not such a number. */
static int v4_part(const char *s, size_t n, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	} else if (n >= 2 && s[0] == '0') {
		base = 8;
		s++;
		n--;
	} else if (n == 0) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] >= '0' && s[i] <= '9')
			d = (unsigned)(s[i] - '0');
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = (unsigned)(s[i] - 'a' + 10);
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = (unsigned)(s[i] - 'A' + 10);
		else
			return -1;
		if (d >= base)
			return -1;
		v = v * base + d;
		if (v > 0xffffffffu)
			v = 0x100000000u;
	}
	*out = v;
	return 0;
}

/* Whether the last label of host (n bytes, no trailing dot) is a number: then the host is an
 * IPv4 address or nothing (WHATWG URL "ends in a number"); no top-level domain is numeric. */
static bool ends_in_number(const char *host, size_t n)
{
	const char *dot = NULL;
	uint64_t v;

	for (size_t i = n; i > 0; i--) {
		if (host[i - 1] == '.') {
			dot = host + i - 1;
			break;
		}
	}
	if (dot != NULL) {
		n -= (size_t)(dot + 1 - host);
		host = dot + 1;
	}
	return n > 0 && v4_part(host, n, &v) == 0;
}

/* Reads a numeric IPv4 host in every form a resolver may accept: "127.0.0.1", "2130706433",
 * "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "127.0.1" (the last part fills the
 * remaining bytes, as in inet_aton(3)). Returns 0, or -1 when it is no valid address. */
static int v4_parse(const char *host, size_t n, unsigned char a[4])
{
	uint64_t part[4];
	int nparts = 0;
	size_t start = 0;
	uint32_t v = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && host[i] != '.')
			continue;
		if (nparts == 4 || v4_part(host + start, i - start, &part[nparts]) != 0)
			return -1;
		nparts++;
		start = i + 1;
	}
	for (int i = 0; i < nparts - 1; i++) {
		if (part[i] > 255)
			return -1;
		v |= (uint32_t)part[i] << (24 - 8 * i);
	}
	if (part[nparts - 1] >= (uint64_t)1 << (8 * (5 - nparts)))
		return -1;
	v |= (uint32_t)part[nparts - 1];
	a[0] = (unsigned char)(v >> 24);
	a[1] = (unsigned char)(v >> 16);
	a[2] = (unsigned char)(v >> 8);
	a[3] = (unsigned char)v;
	return 0;
}

bool netpolicy_host_allowed(const struct netpolicy *np, const char *host, const char **why)
{
	unsigned char a[16];
	char tmp[64];
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		const char *pct;
		size_t len = n - 2;

		/* Drop a zone id ("fe80::1%25eth0"): the address alone decides. */
		pct = memchr(host + 1, '%', len);
		if (pct != NULL)
			len = (size_t)(pct - (host + 1));
		if (len >= sizeof(tmp))
			goto bad;
		memcpy(tmp, host + 1, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET6, tmp, a) != 1)
			goto bad;
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
		memcpy(&s6.sin6_addr, a, 16);
		return netpolicy_addr_allowed(np, (const struct sockaddr *)&s6, why);
	}
	/* "example.com." is "example.com" (the root label), and "127.0.0.1." is 127.0.0.1. More
	 * than one trailing dot is no valid name, but take the host for what it may resolve to. */
	while (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0)
		goto bad;
	/* libcurl writes numeric hosts in dotted form, except with a trailing dot ("0x7f.1."),
	 * which it leaves for the resolver: read every numeric spelling here. */
	if (ends_in_number(host, n)) {
		struct sockaddr_in s4 = {.sin_family = AF_INET};

		if (v4_parse(host, n, a) != 0)
			goto bad;
		memcpy(&s4.sin_addr, a, 4);
		return netpolicy_addr_allowed(np, (const struct sockaddr *)&s4, why);
	}
	if (host_rule_allows(np, host, n))
		return true;
	/* RFC 6761: localhost and its subdomains resolve to loopback. Allowed if 127.0.0.1 is. */
	if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0)) {
		static const unsigned char lo4[4] = {127, 0, 0, 1};

		if (allow_covers(np, AF_INET, lo4))
			return true;
		if (why != NULL)
			*why = "loopback";
		return false;
	}
	return true;
bad:
	if (why != NULL)
		*why = "malformed";
	return false;
}

bool netpolicy_connect_allowed(const struct netpolicy *np, const char *host,
			       const struct sockaddr *sa, const char **why)
{
	size_t n;

	if (netpolicy_addr_allowed(np, sa, why))
		return true;
	if (host == NULL || host[0] == '[')
		return false;
	n = strlen(host);
	while (n > 0 && host[n - 1] == '.')
		n--;
	return !ends_in_number(host, n) && host_rule_allows(np, host, n);
}

static int parse_rule(const char *s, struct np_rule *r)
{
	char tmp[128];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	int maxp;

	memset(r, 0, sizeof(*r));
	if (alen >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, alen);
	tmp[alen] = '\0';
	if (inet_pton(AF_INET, tmp, r->addr) == 1) {
		r->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, tmp, r->addr) == 1) {
		r->family = AF_INET6;
		maxp = 128;
	} else {
		/* A name must be a name: "127.1" or "0x7f.0.0.1" is an address to write plainly. */
		if (slash != NULL || alen == 0 || ends_in_number(tmp, alen))
			return -1;
		for (size_t i = 0; i < alen; i++) {
			if (!isalnum((unsigned char)tmp[i]) && tmp[i] != '-' && tmp[i] != '.')
				return -1;
			tmp[i] = (char)tolower((unsigned char)tmp[i]);
		}
		r->host = xstrdup(tmp);
		return 0;
	}
	r->prefix = maxp;
	if (slash != NULL) {
		char *end;
		long p = strtol(slash + 1, &end, 10);

		if (end == slash + 1 || *end != '\0' || p < 0 || p > maxp)
			return -1;
		r->prefix = (int)p;
	}
	return 0;
}

int netpolicy_init(struct netpolicy *np, const char *allow)
{
	char *copy = xstrdup(allow != NULL ? allow : "");
	char *save = NULL;
	int rc = 0;

	np->allow = NULL;
	np->nallow = 0;
	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		np->allow = xrealloc(np->allow, (np->nallow + 1) * sizeof(*np->allow));
		if (parse_rule(tok, &np->allow[np->nallow]) != 0) {
			log_err("allow_targets: cannot parse %s (expected a CIDR, an address or a "
				"host)",
				tok);
			rc = -1;
			break;
		}
		np->nallow++;
	}
	free(copy);
	if (rc != 0)
		netpolicy_cleanup(np);
	return rc;
}

void netpolicy_cleanup(struct netpolicy *np)
{
	for (size_t i = 0; i < np->nallow; i++)
		free(np->allow[i].host);
	free(np->allow);
	np->allow = NULL;
	np->nallow = 0;
}

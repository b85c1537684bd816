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

static const struct range v6_ranges[] = {
	{{0}, 128, "unspecified"},
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
	{{0x01, 0x00}, 64, "discard"},
	{{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
	{{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64"},
	{{0x20, 0x01, 0x00, 0x00}, 32, "Teredo"},
	{{0x20, 0x01, 0x00, 0x10}, 28, "reserved"},
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
	/* IPv6 forms that carry an IPv4 address: judge the IPv4 address (RFC 4291, 6052, 3056). */
	if (memcmp(addr, mapped, 12) == 0 || memcmp(addr, nat64, 12) == 0 ||
	    memcmp(addr, siit, 12) == 0)
		return netpolicy_classify(AF_INET, addr + 12);
	if (memcmp(addr, compat, 12) == 0 && (addr[12] | addr[13]) != 0) {
		const char *w = netpolicy_classify(AF_INET, addr + 12);

		return w != NULL ? w : "IPv4-compatible (deprecated)";
	}
	if (addr[0] == 0x20 && addr[1] == 0x02) /* 6to4 2002:V4ADDR::/48 */
		return netpolicy_classify(AF_INET, addr + 2);
	for (size_t i = 0; i < sizeof(v6_ranges) / sizeof(v6_ranges[0]); i++)
		if (prefix_match(addr, v6_ranges[i].net, v6_ranges[i].prefix))
			return v6_ranges[i].why;
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
	/* "example.com." is "example.com" (the root label), and "127.0.0.1." is 127.0.0.1. */
	while (n > 0 && host[n - 1] == '.')
		n--;
	if (n < sizeof(tmp)) {
		struct in_addr in;

		memcpy(tmp, host, n);
		tmp[n] = '\0';
		/* Every IPv4 spelling the resolver takes ("127.1", "0x7f.1", "0177.0.0.1",
		 * "2130706433"), not only the dotted quad: libcurl rewrites those as dotted
		 * quads, but it decodes a percent-encoded host ("%31%32%37.1") after that. */
		if (inet_aton(tmp, &in) != 0) {
			struct sockaddr_in s4 = {.sin_family = AF_INET};

			s4.sin_addr = in;
			return netpolicy_addr_allowed(np, (const struct sockaddr *)&s4, why);
		}
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
		*why = "malformed address";
	return false;
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
		if (slash != NULL || alen == 0)
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

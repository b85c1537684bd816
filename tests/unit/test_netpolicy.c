/* test_netpolicy: address classification, the allow list, and the accept-time host check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "netpolicy.h"

/* Classifies a textual address; "-" when it does not parse (a test bug). */
static const char *classify_text(const char *s)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return netpolicy_classify(AF_INET, a);
	if (inet_pton(AF_INET6, s, a) == 1)
		return netpolicy_classify(AF_INET6, a);
	return "-";
}

static void check_classify(const char *addr, const char *want)
{
	const char *got = classify_text(addr);

	if (got != NULL && strcmp(got, "-") == 0)
		fail_msg("test bug: %s is not an address", addr);
	if (want == NULL && got != NULL)
		fail_msg("%s: classified \"%s\", want public (NULL)", addr, got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("%s: classified \"%s\", want \"%s\"", addr, got ? got : "(public)", want);
}

static void test_classify_v4(void **state)
{
	static const struct {
		const char *addr;
		const char *why; /* NULL = public */
	} cases[] = {
		{ "0.0.0.0", "unspecified" },
		{ "0.1.2.3", "unspecified" },
		{ "10.0.0.1", "private" },
		{ "10.255.255.255", "private" },
		{ "100.64.0.1", "shared (CGNAT)" },
		{ "100.127.255.254", "shared (CGNAT)" },
		{ "100.63.255.255", NULL },
		{ "100.128.0.0", NULL },
		{ "127.0.0.1", "loopback" },
		{ "127.255.255.254", "loopback" },
		{ "169.254.169.254", "link-local" },
		{ "169.254.0.1", "link-local" },
		{ "172.15.255.255", NULL },
		{ "172.16.0.1", "private" },
		{ "172.20.1.1", "private" },
		{ "172.31.255.255", "private" },
		{ "172.32.0.0", NULL },
		{ "192.0.0.8", "reserved" },
		{ "192.0.2.1", "documentation" },
		{ "192.88.99.1", "reserved" },
		{ "192.167.255.255", NULL },
		{ "192.168.0.1", "private" },
		{ "192.168.255.255", "private" },
		{ "192.169.0.0", NULL },
		{ "198.18.0.1", "benchmarking" },
		{ "198.19.255.255", "benchmarking" },
		{ "198.20.0.0", NULL },
		{ "198.51.100.7", "documentation" },
		{ "203.0.113.9", "documentation" },
		{ "224.0.0.1", "multicast" },
		{ "239.255.255.250", "multicast" },
		{ "240.0.0.1", "reserved or broadcast" },
		{ "255.255.255.255", "reserved or broadcast" },
		{ "8.8.8.8", NULL },
		{ "1.1.1.1", NULL },
		{ "93.184.216.34", NULL },
		{ "223.255.255.255", NULL },
		{ "11.0.0.1", NULL },
		{ "126.255.255.255", NULL },
		{ "128.0.0.1", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_classify(cases[i].addr, cases[i].why);
}

static void test_classify_v6(void **state)
{
	static const struct {
		const char *addr;
		const char *why;
	} cases[] = {
		{ "::", "unspecified" },
		{ "::1", "loopback" },
		{ "::ffff:127.0.0.1", "loopback" },       /* IPv4-mapped */
		{ "::ffff:10.1.2.3", "private" },
		{ "::ffff:169.254.169.254", "link-local" },
		{ "::ffff:0.0.0.0", "unspecified" },
		{ "::ffff:8.8.8.8", NULL },
		{ "::127.0.0.1", "loopback" },            /* IPv4-compatible */
		{ "::8.8.8.8", "IPv4-compatible (deprecated)" },
		{ "64:ff9b::a00:1", "private" },          /* NAT64 of 10.0.0.1 */
		{ "64:ff9b::7f00:1", "loopback" },
		{ "64:ff9b::808:808", NULL },             /* NAT64 of 8.8.8.8 */
		{ "2002:7f00:1::", "loopback" },          /* 6to4 of 127.0.0.1 */
		{ "2002:a9fe:a9fe::1", "link-local" },    /* 6to4 of 169.254.169.254 */
		{ "2002:808:808::1", NULL },              /* 6to4 of 8.8.8.8 */
		{ "fc00::1", "unique local (private)" },
		{ "fd12:3456::1", "unique local (private)" },
		{ "fe80::1", "link-local" },
		{ "febf:ffff::1", "link-local" },
		{ "fec0::1", "site-local" },
		{ "ff02::1", "multicast" },
		{ "ff05::2", "multicast" },
		{ "2001:db8::1", "documentation" },
		{ "2001::1", "Teredo" },
		/* Teredo whose client (last 32 bits XOR 0xffffffff) is 8.8.8.8, or 127.0.0.1: both
		 * refused, Teredo is judged whole */
		{ "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo" },
		{ "2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo" },
		{ "2001:10::1", "reserved" },
		{ "2001:20::1", "reserved" },
		{ "2001:2::1", "benchmarking" },
		{ "3fff::1", "documentation" },
		{ "100::1", "discard" },
		/* ::/96 beyond :: and ::1, and everything outside 2000::/3 */
		{ "::2", "unspecified" },             /* IPv4-compatible 0.0.0.2 */
		{ "::0.1.0.0", "unspecified" },
		{ "::10.0.0.1", "private" },
		{ "::169.254.169.254", "link-local" },
		{ "::ffff:0:0", "unspecified" },      /* mapped 0.0.0.0 */
		{ "::ffff:0:a00:1", "private" },      /* SIIT ::ffff:0:a.b.c.d of 10.0.0.1 */
		{ "::ffff:0:808:808", NULL },
		{ "::1:0:0:0", "reserved" },
		{ "1::1", "reserved" },
		{ "100:0:0:1::1", "reserved" },       /* past discard's /64 */
		{ "400::1", "reserved" },
		{ "4000::1", "reserved" },
		{ "e000::1", "reserved" },
		{ "64:ff9b::8.8.8.8", NULL },
		{ "64:ff9b::ffff:ffff", "reserved or broadcast" },
		{ "64:ff9b::1:0:0:1", "reserved" },   /* not the /96 */
		{ "64:ff9b:1::1", "local-use NAT64" },
		{ "2002:0a00:0001::", "private" },    /* 6to4 of 10.0.0.1 */
		{ "2002:6440:1::", "shared (CGNAT)" },
		{ "2002:e000:1::", "multicast" },
		{ "2002:0808:0808::", NULL },
		{ "2002:ffff:ffff::", "reserved or broadcast" },
		{ "2000::1", NULL },
		{ "3ffe:ffff::1", NULL },
		{ "2606:4700::1", NULL },
		{ "2a00:1450:4001:81c::200e", NULL },
		{ "2001:4860:4860::8888", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_classify(cases[i].addr, cases[i].why);
}

static void test_init_parses(void **state)
{
	struct netpolicy np;
	unsigned char a[16];

	(void)state;
	assert_int_equal(netpolicy_init(&np, "127.0.0.0/8, ::1/128, 10.1.2.3, internal.example"), 0);
	assert_int_equal(np.nallow, 4);
	assert_int_equal(np.allow[0].family, AF_INET);
	assert_int_equal(np.allow[0].prefix, 8);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.0", a), 1);
	assert_memory_equal(np.allow[0].addr, a, 4);
	assert_null(np.allow[0].host);
	assert_int_equal(np.allow[1].family, AF_INET6);
	assert_int_equal(np.allow[1].prefix, 128);
	assert_int_equal(inet_pton(AF_INET6, "::1", a), 1);
	assert_memory_equal(np.allow[1].addr, a, 16);
	assert_int_equal(np.allow[2].family, AF_INET);
	assert_int_equal(np.allow[2].prefix, 32); /* a single address */
	assert_int_equal(np.allow[3].family, 0);
	assert_string_equal(np.allow[3].host, "internal.example");
	netpolicy_cleanup(&np);
	assert_int_equal(np.nallow, 0);
	assert_null(np.allow);

	/* Separators: commas, spaces, tabs, runs of them. */
	assert_int_equal(netpolicy_init(&np, " 10.0.0.0/8 ,,\t192.168.0.0/16  fd00::/8 "), 0);
	assert_int_equal(np.nallow, 3);
	assert_int_equal(np.allow[2].family, AF_INET6);
	assert_int_equal(np.allow[2].prefix, 8);
	netpolicy_cleanup(&np);

	assert_int_equal(netpolicy_init(&np, ""), 0);
	assert_int_equal(np.nallow, 0);
	netpolicy_cleanup(&np);
	assert_int_equal(netpolicy_init(&np, NULL), 0);
	assert_int_equal(np.nallow, 0);
	netpolicy_cleanup(&np);
	assert_int_equal(netpolicy_init(&np, "0.0.0.0/0, ::/0"), 0);
	assert_int_equal(np.allow[0].prefix, 0);
	assert_int_equal(np.allow[1].prefix, 0);
	netpolicy_cleanup(&np);
}

/* np_rule documents host names as stored in lower case. */
static void test_init_host_lower_case(void **state)
{
	struct netpolicy np;

	(void)state;
	assert_int_equal(netpolicy_init(&np, "Internal.Example"), 0);
	assert_int_equal(np.nallow, 1);
	assert_int_equal(np.allow[0].family, 0);
	assert_string_equal(np.allow[0].host, "internal.example");
	netpolicy_cleanup(&np);
}

static void test_init_rejects(void **state)
{
	static const char *const cases[] = {
		"10.0.0.0/33",
		"::/129",
		"10.0.0.0/",
		"10.0.0.0/abc",
		"10.0.0.0/8x",
		"10.0.0.0/-1",
		"10.0.0.0/8/8",
		"bad_host",
		"host.example/24",
		"10.0.0.0/8, bad!entry",
		"ok.example, 1.2.3.4/40",
		"/8",
		"http://example.com",
		"[::1]",
		"127.1",        /* a number at the end: write the address plainly */
		"0x7f.0.0.1",
		"2130706433",
		"host.example.1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct netpolicy np;

		if (netpolicy_init(&np, cases[i]) != -1)
			fail_msg("allow list \"%s\" accepted", cases[i]);
		if (np.nallow != 0 || np.allow != NULL)
			fail_msg("allow list \"%s\": policy not left empty", cases[i]);
		netpolicy_cleanup(&np); /* empty but valid */
	}
}

static bool allowed4(const struct netpolicy *np, const char *s, const char **why)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, s, &sin.sin_addr) != 1)
		fail_msg("test bug: %s", s);
	return netpolicy_addr_allowed(np, (const struct sockaddr *)&sin, why);
}

static bool allowed6(const struct netpolicy *np, const char *s, const char **why)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, s, &sin6.sin6_addr) != 1)
		fail_msg("test bug: %s", s);
	return netpolicy_addr_allowed(np, (const struct sockaddr *)&sin6, why);
}

static void test_addr_allowed_default(void **state)
{
	struct netpolicy np;
	const char *why = NULL;

	(void)state;
	assert_int_equal(netpolicy_init(&np, ""), 0);
	assert_false(allowed4(&np, "127.0.0.1", &why));
	assert_string_equal(why, "loopback");
	why = NULL;
	assert_false(allowed4(&np, "169.254.169.254", &why));
	assert_string_equal(why, "link-local");
	why = "untouched";
	assert_true(allowed4(&np, "8.8.8.8", &why));
	assert_true(allowed6(&np, "2606:4700::1", NULL));
	assert_false(allowed6(&np, "::1", &why));
	assert_string_equal(why, "loopback");
	assert_false(allowed6(&np, "::ffff:127.0.0.1", &why));
	assert_string_equal(why, "loopback");
	assert_false(allowed6(&np, "::ffff:10.0.0.1", NULL)); /* why may be NULL */
	netpolicy_cleanup(&np);
}

static void test_addr_allowed_with_list(void **state)
{
	struct netpolicy np;
	const char *why = NULL;
	struct sockaddr_un sun;

	(void)state;
	assert_int_equal(netpolicy_init(&np, "127.0.0.1/32, 10.1.0.0/16, fd00::/8"), 0);
	assert_true(allowed4(&np, "127.0.0.1", &why));
	assert_false(allowed4(&np, "127.0.0.2", &why));
	assert_string_equal(why, "loopback");
	assert_true(allowed6(&np, "::ffff:127.0.0.1", NULL)); /* mapped form of an allowed v4 */
	assert_false(allowed6(&np, "::ffff:127.0.0.2", &why));
	assert_false(allowed6(&np, "::1", &why)); /* v4 rules do not cover v6 loopback */
	assert_string_equal(why, "loopback");
	assert_true(allowed4(&np, "10.1.255.255", NULL));
	assert_false(allowed4(&np, "10.2.0.0", NULL));
	assert_true(allowed6(&np, "fd12::1", NULL));
	assert_false(allowed6(&np, "fc00::1", NULL));
	assert_true(allowed4(&np, "8.8.8.8", NULL));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	why = NULL;
	assert_false(netpolicy_addr_allowed(&np, (const struct sockaddr *)&sun, &why));
	assert_string_equal(why, "not an IP address");
	netpolicy_cleanup(&np);

	assert_int_equal(netpolicy_init(&np, "::1"), 0);
	assert_true(allowed6(&np, "::1", NULL));
	assert_false(allowed4(&np, "127.0.0.1", NULL));
	netpolicy_cleanup(&np);
}

struct host_case {
	const char *host;
	bool ok;
	const char *why; /* when !ok */
};

static void check_hosts(const struct netpolicy *np, const struct host_case *cases, size_t n,
			const char *label)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;
		bool ok = netpolicy_host_allowed(np, cases[i].host, &why);

		if (ok != cases[i].ok)
			fail_msg("%s: host \"%s\" %s (why %s)", label, cases[i].host,
				 ok ? "allowed" : "refused", why ? why : "NULL");
		if (!ok && (why == NULL || strcmp(why, cases[i].why) != 0))
			fail_msg("%s: host \"%s\": why \"%s\", want \"%s\"", label, cases[i].host,
				 why ? why : "NULL", cases[i].why);
	}
}

static void test_host_allowed_default(void **state)
{
	static const struct host_case cases[] = {
		{ "127.0.0.1", false, "loopback" },
		{ "10.0.0.1", false, "private" },
		{ "169.254.169.254", false, "link-local" },
		{ "0.0.0.0", false, "unspecified" },
		{ "[::1]", false, "loopback" },
		{ "[::]", false, "unspecified" },
		{ "[::ffff:127.0.0.1]", false, "loopback" },
		{ "[::ffff:7f00:1]", false, "loopback" },
		{ "[fe80::1]", false, "link-local" },
		{ "[fe80::1%25eth0]", false, "link-local" },
		{ "[fe80::1%eth0]", false, "link-local" },
		{ "[fd00::1]", false, "unique local (private)" },
		{ "[2606:4700::1]", true, NULL },
		{ "8.8.8.8", true, NULL },
		{ "localhost", false, "loopback" },
		{ "LOCALHOST", false, "loopback" },
		{ "localhost.", false, "loopback" },
		{ "LOCALHOST.", false, "loopback" },
		{ "a.localhost", false, "loopback" },
		{ "a.b.LocalHost.", false, "loopback" },
		{ "example.com", true, NULL },
		{ "api.example.com", true, NULL },
		{ "localhost.example.com", true, NULL },
		{ "notlocalhost", true, NULL },
		{ "[not-an-address]", false, "malformed" },
		{ "[]", false, "malformed" },
		{ "[1.2.3.4]", false, "malformed" },
		/* numeric spellings libcurl leaves to the resolver (trailing dot) or normalises */
		{ "127.0.0.1.", false, "loopback" },
		{ "127.0.0.1..", false, "loopback" },
		{ "127.1", false, "loopback" },
		{ "127.1.", false, "loopback" },
		{ "127.0.1.", false, "loopback" },
		{ "2130706433.", false, "loopback" },
		{ "0x7f.0.0.1.", false, "loopback" },
		{ "0X7F.1.", false, "loopback" },
		{ "0x7f000001.", false, "loopback" },
		{ "0177.0.0.1.", false, "loopback" },
		{ "017700000001.", false, "loopback" },
		{ "0x7f.0x0.0x0.0x1.", false, "loopback" },
		{ "00000177.0.0.01.", false, "loopback" },
		{ "0251.0376.0251.0376.", false, "link-local" },
		{ "2852039166.", false, "link-local" },
		{ "0xa9fea9fe.", false, "link-local" },
		{ "10.1.", false, "private" },
		{ "0.", false, "unspecified" },
		{ "0x.", false, "unspecified" },
		{ "4294967295.", false, "reserved or broadcast" },
		{ "8.8.8.8.", true, NULL },
		{ "134744072.", true, NULL },          /* 8.8.8.8 */
		{ "0x8.0x8.0x8.0x8.", true, NULL },
		/* ends in a number but no address: refused, whatever a resolver makes of it */
		{ "4294967296", false, "malformed" },
		{ "4294967296.", false, "malformed" },
		{ "1.2.3.4.5", false, "malformed" },
		{ "256.0.0.1", false, "malformed" },
		{ "1.2.65536", false, "malformed" },
		{ "08.0.0.1", false, "malformed" },
		{ "0x7g.0.0.1", false, "malformed" },
		{ "127..1", false, "malformed" },
		{ "example.123", false, "malformed" },
		{ "foo.0x", false, "malformed" },
		{ "99999999999999999999999", false, "malformed" },
		{ ".", false, "malformed" },
		{ "1e100.net", true, NULL },
		{ "0x7f.example", true, NULL },
		{ "127.0.0.1.nip.io", true, NULL },   /* a name: judged on connect */
		/* the ranges, as literals */
		{ "100.64.0.1", false, "shared (CGNAT)" },
		{ "0.1.2.3", false, "unspecified" },
		{ "255.255.255.255", false, "reserved or broadcast" },
		{ "224.0.0.1", false, "multicast" },
		{ "[fd00::1]", false, "unique local (private)" },
		{ "[fe80::1]", false, "link-local" },
		{ "[ff02::1]", false, "multicast" },
		{ "[::ffff:10.0.0.1]", false, "private" },
		{ "[::10.0.0.1]", false, "private" },
		{ "[64:ff9b::a00:1]", false, "private" },
		{ "[2002:0a00:0001::]", false, "private" },
		{ "[2001:0000:4136:e378:8000:63bf:3fff:fdd2]", false, "Teredo" },
		{ "[::ffff:127.0.0.1%25lo]", false, "loopback" },
		{ "[2606:4700::1111]", true, NULL },
		{ "[2002:0808:0808::]", true, NULL },
		{ "[64:ff9b::808:808]", true, NULL },
		/* IPv4 as the resolver reads it: libcurl leaves these spellings alone when they
		 * come percent-encoded ("http://%31%32%37.0/" gives the host "127.0"; found by
		 * tests/fuzz/fuzz_netpolicy) */
		{ "127.0", false, "loopback" },
		{ "127.1", false, "loopback" },
		{ "127.1.", false, "loopback" },
		{ "0x7f.1", false, "loopback" },
		{ "0177.0.0.1", false, "loopback" },
		{ "2130706433", false, "loopback" },
		{ "0x7f000001", false, "loopback" },
		{ "169.254.43518", false, "link-local" },
		{ "10.1", false, "private" },
		{ "0", false, "unspecified" },
		{ "8.8.2056", true, NULL },
		{ "0x8.0x8.0x8.0x8", true, NULL },
	};
	struct netpolicy np;

	(void)state;
	assert_int_equal(netpolicy_init(&np, ""), 0);
	check_hosts(&np, cases, sizeof(cases) / sizeof(cases[0]), "default policy");
	netpolicy_cleanup(&np);
}

static void test_host_allowed_with_list(void **state)
{
	static const struct host_case cases[] = {
		{ "127.0.0.1", true, NULL },
		{ "127.0.0.2", false, "loopback" },
		{ "[::ffff:127.0.0.1]", true, NULL },
		{ "[::1]", false, "loopback" },
		{ "127.1", true, NULL },
		{ "127.0.1", true, NULL }, /* 127.0.0.1: the last part fills the rest */
		{ "127.0.2", false, "loopback" },
		{ "localhost", true, NULL }, /* localhost is allowed when 127.0.0.1 is */
		{ "LOCALHOST.", true, NULL },
		{ "a.localhost", true, NULL },
		{ "example.com", true, NULL },
	};
	struct netpolicy np;

	(void)state;
	assert_int_equal(netpolicy_init(&np, "127.0.0.1/32"), 0);
	check_hosts(&np, cases, sizeof(cases) / sizeof(cases[0]), "allow 127.0.0.1/32");
	netpolicy_cleanup(&np);
}

/* A host-name rule allows that name however libcurl spells it (case, trailing root dot). */
static void test_host_rule(void **state)
{
	static const struct host_case cases[] = {
		{ "localhost", true, NULL },
		{ "LOCALHOST", true, NULL },
		{ "a.localhost", false, "loopback" }, /* the rule names localhost only */
		{ "127.0.0.1", false, "loopback" },   /* a name rule does not allow addresses */
		{ "localhost.", true, NULL },
		{ "LOCALHOST.", true, NULL },
	};
	struct netpolicy np;

	(void)state;
	assert_int_equal(netpolicy_init(&np, "localhost"), 0);
	check_hosts(&np, cases, sizeof(cases) / sizeof(cases[0]), "allow localhost");
	netpolicy_cleanup(&np);
}

static bool connect4(const struct netpolicy *np, const char *host, const char *addr,
		     const char **why)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		fail_msg("test bug: %s", addr);
	return netpolicy_connect_allowed(np, host, (const struct sockaddr *)&sin, why);
}

static bool connect6(const struct netpolicy *np, const char *host, const char *addr,
		     const char **why)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1)
		fail_msg("test bug: %s", addr);
	return netpolicy_connect_allowed(np, host, (const struct sockaddr *)&sin6, why);
}

/* On connect, a host-name rule allows whatever its name resolves to; addresses are judged as
 * addresses whatever the host, and nothing else gets past a refused address. */
static void test_connect_allowed(void **state)
{
	struct netpolicy np;
	const char *why = NULL;

	(void)state;
	assert_int_equal(netpolicy_init(&np, "internal.example, localhost, 127.0.0.1/32"), 0);
	assert_true(connect4(&np, "internal.example", "10.1.2.3", NULL));
	assert_true(connect4(&np, "Internal.Example.", "10.1.2.3", NULL));
	assert_true(connect6(&np, "internal.example", "fd00::1", NULL));
	assert_true(connect6(&np, "localhost", "::1", NULL));
	assert_true(connect4(&np, "other.example", "127.0.0.1", NULL)); /* the address rule */
	assert_false(connect4(&np, "other.example", "10.1.2.3", &why));
	assert_string_equal(why, "private");
	assert_false(connect6(&np, "a.localhost", "::1", &why)); /* the rule names localhost */
	assert_string_equal(why, "loopback");
	assert_false(connect4(&np, NULL, "10.1.2.3", &why)); /* a proxy: no host */
	assert_string_equal(why, "private");
	assert_false(connect4(&np, "[fd00::1]", "10.1.2.3", NULL));
	assert_true(connect4(&np, NULL, "8.8.8.8", NULL));
	assert_true(connect4(&np, "example.com", "8.8.8.8", NULL));
	assert_false(connect4(&np, "example.com", "169.254.169.254", &why));
	assert_string_equal(why, "link-local");
	netpolicy_cleanup(&np);

	/* Without rules every host is judged by its address alone. */
	assert_int_equal(netpolicy_init(&np, ""), 0);
	assert_false(connect4(&np, "internal.example", "10.1.2.3", NULL));
	assert_false(connect6(&np, "localhost", "::1", NULL));
	assert_false(connect4(&np, "localhost", "127.0.0.1", NULL));
	assert_true(connect6(&np, "example.com", "2606:4700::1111", NULL));
	netpolicy_cleanup(&np);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_v4),
		cmocka_unit_test(test_classify_v6),
		cmocka_unit_test(test_init_parses),
		cmocka_unit_test(test_init_host_lower_case),
		cmocka_unit_test(test_init_rejects),
		cmocka_unit_test(test_addr_allowed_default),
		cmocka_unit_test(test_addr_allowed_with_list),
		cmocka_unit_test(test_host_allowed_default),
		cmocka_unit_test(test_host_allowed_with_list),
		cmocka_unit_test(test_host_rule),
		cmocka_unit_test(test_connect_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

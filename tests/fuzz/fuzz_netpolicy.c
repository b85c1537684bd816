/* fuzz_netpolicy: the address policy. The first input line is an allow list for
 * netpolicy_init; each further line is tried as a host (netpolicy_host_allowed), and as a URL
 * through the accept-time check (check_url in lib/call.c: libcurl's URL parser, then the host
 * check). The first bytes are also classified as raw IPv4 and IPv6 addresses.
 *
 * The oracle is what a connection would reach: when a URL passes the accept-time check and
 * its host is a numeric address in the spelling libc's resolver accepts (getaddrinfo with
 * AI_NUMERICHOST reads "2130706433", "0x7f.1" and "0177.0.0.1" as 127.0.0.1, as libcurl's
 * resolver would), that address must be public or covered by the allow list. */
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* check_url is static: take the whole module, as the unit tests do. */
#include "../../lib/call.c"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct conf cf;
static struct netpolicy np_default;
static int devnull = -1;
static int saved_stderr = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	conf_defaults(&cf);
	if (netpolicy_init(&np_default, "127.0.0.1/32") != 0)
		abort();
	devnull = open("/dev/null", O_WRONLY);
	saved_stderr = dup(2);
	return 0;
}

/* netpolicy_init logs each entry it cannot parse: keep that off the fuzzer's output. */
static int init_quiet(struct netpolicy *np, const char *allow)
{
	int rc;

	if (devnull >= 0 && saved_stderr >= 0)
		dup2(devnull, 2);
	rc = netpolicy_init(np, allow);
	if (devnull >= 0 && saved_stderr >= 0)
		dup2(saved_stderr, 2);
	return rc;
}

static void bad(const char *what, const char *text, const char *why)
{
	fprintf(stderr, "fuzz_netpolicy: %s \"%s\" (%s)\n", what, text, why != NULL ? why : "-");
	abort();
}

/* The raw-address checks: an IPv4-mapped address is judged as its IPv4 address, and allowed
 * whenever that is (with no IPv6 rules, exactly when it is). */
static void check_raw(const struct netpolicy *np, bool v6_rules, const uint8_t *data, size_t size)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6};
	unsigned char *a6 = (unsigned char *)&m6.sin6_addr;
	const char *w4, *wm, *why = NULL;
	bool ok4, okm;

	if (size < 16)
		return;
	memcpy(&s6.sin6_addr, data, 16);
	(void)netpolicy_addr_allowed(np, (const struct sockaddr *)&s6, &why);

	memcpy(&s4.sin_addr, data, 4);
	a6[10] = a6[11] = 0xff;
	memcpy(a6 + 12, data, 4);
	w4 = netpolicy_classify(AF_INET, data);
	wm = netpolicy_classify(AF_INET6, a6);
	if ((w4 == NULL) != (wm == NULL) || (w4 != NULL && strcmp(w4, wm) != 0))
		bad("mapped address classified unlike its IPv4 address", "", wm);
	ok4 = netpolicy_addr_allowed(np, (const struct sockaddr *)&s4, NULL);
	okm = netpolicy_addr_allowed(np, (const struct sockaddr *)&m6, NULL);
	if ((ok4 && !okm) || (!v6_rules && ok4 != okm))
		bad("mapped address allowed unlike its IPv4 address", "", w4);
}

static bool has_v6_rules(const struct netpolicy *np)
{
	for (size_t i = 0; i < np->nallow; i++)
		if (np->allow[i].family == AF_INET6)
			return true;
	return false;
}

/* Where a connection to host would go if host is a numeric address, judged as at connect. */
static void check_numeric(const struct netpolicy *np, const char *url, const char *host)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char plain[256];
	size_t n = strlen(host);
	const char *why = NULL;

	/* libcurl hands the resolver the name without brackets (and zone id). */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		const char *pct = memchr(host + 1, '%', n - 2);

		n = pct != NULL ? (size_t)(pct - host - 1) : n - 2;
		host++;
	}
	if (n >= sizeof(plain))
		return;
	memcpy(plain, host, n);
	plain[n] = '\0';
	if (getaddrinfo(plain, NULL, &hints, &res) != 0)
		return;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		if (!netpolicy_addr_allowed(np, ai->ai_addr, &why))
			bad("accepted a URL whose numeric host is refused at connect", url, why);
	freeaddrinfo(res);
}

static void check_url_line(const struct netpolicy *np, const char *line)
{
	const struct call_env env = {&cf, np};
	struct problem p;
	CURLU *u;
	char *host = NULL;

	memset(&p, 0, sizeof(p));
	if (check_url(line, &env, "", "target", &p) != 0) {
		if (p.status != 400 || p.detail[0] == '\0')
			bad("refused a URL without a 400 and a reason", line, NULL);
		return;
	}
	/* Accepted: find the host the same way, and see where it leads. */
	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, line, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		bad("accepted a URL libcurl cannot read again", line, NULL);
	check_numeric(np, line, host);
	curl_free(host);
	curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netpolicy np = {NULL, 0};
	const struct netpolicy *use = &np_default;
	char *text;
	char *next;

	if (size > 8192)
		return 0;
	text = xstrndup((const char *)data, size); /* a NUL ends the text, as in a C string */
	for (char *line = text; line != NULL; line = next) {
		const char *why = NULL;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		/* The first line, even an empty one, is the allow list. */
		if (line == text && init_quiet(&np, line) == 0)
			use = &np;
		(void)netpolicy_host_allowed(use, line, &why);
		check_url_line(use, line);
	}
	check_raw(&np_default, false, data, size);
	check_raw(use, has_v6_rules(use), data, size);
	netpolicy_cleanup(&np);
	free(text);
	return 0;
}

/* conf: one table of keys with type, default and bounds (PgBouncer's key table). */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jstrict.h"
#include "log.h"
#include "timeparse.h"
#include "xalloc.h"

/* CONF_AUTH, CONF_PROXY, CONF_RESOLVE and CONF_NAMES are strings with a shape to check
 * (conf_auth_modes, proxy_ok, resolve_ok, names_valid). */
enum conf_type {
	CONF_STR,
	CONF_INT,
	CONF_BYTES,
	CONF_DURATION,
	CONF_LOGLEVEL,
	CONF_AUTH,
	CONF_PROXY,
	CONF_RESOLVE,
	CONF_NAMES,
};

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t offset;
	const char *def;
	int64_t min, max; /* for numbers, after unit conversion */
};

#define KEY(n, f, t, d, lo, hi)                                                                    \
	{                                                                                          \
		n, t, offsetof(struct conf, f), d, lo, hi                                          \
	}
#define DAY_MS (86400000LL)

static const struct conf_key keys[] = {
	KEY("database", database, CONF_STR, "", 0, 0),
	KEY("log_level", log_level, CONF_LOGLEVEL, "info", 0, 0),
	KEY("allow_targets", allow_targets, CONF_STR, "", 0, 0),
	KEY("public_url", public_url, CONF_STR, "", 0, 0),
	KEY("max_request_bytes", max_request_bytes, CONF_BYTES, "16M", 1024, 1LL << 30),
	KEY("max_body_bytes", max_body_bytes, CONF_BYTES, "1M", 1, 256LL << 20),
	KEY("max_batch", max_batch, CONF_INT, "1000", 1, 100000),
	KEY("max_headers", max_headers, CONF_INT, "64", 0, 1000),
	KEY("max_json_depth", max_json_depth, CONF_INT, "32", 4, JSTRICT_DEPTH_MAX),
	KEY("deny_headers", deny_headers, CONF_NAMES, "Cookie", 0, 0),
	KEY("max_delay", max_delay_ms, CONF_DURATION, "365d", 0, 3650 * DAY_MS),
	KEY("max_timeout", max_timeout_ms, CONF_DURATION, "30m", 1000, DAY_MS),
	KEY("max_expires_in", max_expires_in_ms, CONF_DURATION, "400d", 1000, 3650 * DAY_MS),
	KEY("default_timeout", default_timeout_ms, CONF_DURATION, "30s", 1000, DAY_MS),
	KEY("default_max_attempts", default_max_attempts, CONF_INT, "10", 1, 100),
	KEY("default_retry_initial", default_retry_initial_ms, CONF_DURATION, "1s", 0, 24 * DAY_MS),
	KEY("default_retry_max", default_retry_max_ms, CONF_DURATION, "1h", 0, 24 * DAY_MS),
	KEY("retry_after_s", retry_after_s, CONF_INT, "5", 1, 3600),
	KEY("notify_interval", notify_interval_ms, CONF_DURATION, "100ms", 0, 60000),
	KEY("handler_threads", handler_threads, CONF_INT, "16", 1, 256),
	KEY("commit_linger_us", commit_linger_us, CONF_INT, "500", 0, 100000),
	KEY("drain_concurrency", drain_concurrency, CONF_INT, "64", 1, 10000),
	KEY("drain_lease_margin", drain_lease_margin_ms, CONF_DURATION, "30s", 1000, 3600000),
	KEY("drain_connect_timeout", drain_connect_timeout_ms, CONF_DURATION, "10s", 100, 600000),
	KEY("drain_poll_interval", drain_poll_interval_ms, CONF_DURATION, "1s", 10, 60000),
	KEY("max_response_bytes", max_response_bytes, CONF_BYTES, "64K", 0, 64LL << 20),
	KEY("drain_token", drain_token, CONF_STR, "", 0, 0),
	KEY("drain_budget", drain_budget_ms, CONF_DURATION, "10s", 100, 600000),
	KEY("auth", auth, CONF_AUTH, "keys", 0, 0),
	KEY("outbound_proxy", outbound_proxy, CONF_PROXY, "", 0, 0),
	KEY("drain_resolve", drain_resolve, CONF_RESOLVE, "", 0, 0),
};

int conf_auth_modes(const char *s)
{
	static const struct {
		const char *word;
		int mode;
	} words[] = {{"keys", AUTH_KEYS}, {"remote_user", AUTH_REMOTE_USER}, {"none", AUTH_NONE}};
	int modes = 0;

	while (*s != '\0') {
		size_t n;
		size_t i;

		s += strspn(s, ", \t");
		n = strcspn(s, ", \t");
		if (n == 0)
			break;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n && strncmp(s, words[i].word, n) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -1;
		modes |= words[i].mode;
		s += n;
	}
	if (modes == 0 || ((modes & AUTH_NONE) != 0 && modes != AUTH_NONE))
		return -1;
	return modes;
}

const char *conf_key_name(size_t i)
{
	return i < sizeof(keys) / sizeof(keys[0]) ? keys[i].name : NULL;
}

/* "1048576", "64K", "1M", "1G" (powers of 1024). */
static int parse_bytes(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int shift = 0;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -1;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift != 0)
		end++;
	if (*end != '\0' || v > (INT64_MAX >> shift))
		return -1;
	*out = (int64_t)v << shift;
	return 0;
}

static bool is_string(enum conf_type t)
{
	return t == CONF_STR || t == CONF_LOGLEVEL || t == CONF_AUTH || t == CONF_PROXY ||
	       t == CONF_RESOLVE || t == CONF_NAMES;
}

/* "" or a proxy URL libcurl takes (CURLOPT_PROXY): an explicit scheme and something after it,
 * without spaces or control characters. */
static bool proxy_ok(const char *v)
{
	static const char *const schemes[] = {"http://",    "https://",	 "socks4://",
					      "socks4a://", "socks5://", "socks5h://"};
	size_t n = 0;

	if (*v == '\0')
		return true;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && n == 0; i++)
		if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
			n = strlen(schemes[i]);
	if (n == 0 || v[n] == '\0')
		return false;
	for (const char *c = v; *c != '\0'; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			return false;
	return true;
}

/* One address of a drain_resolve entry: dotted IPv4, or IPv6 in brackets. */
static bool resolve_addr_ok(const char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 2];
	unsigned char a[16];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return false;
		memcpy(tmp, s + 1, n - 2);
		tmp[n - 2] = '\0';
		return inet_pton(AF_INET6, tmp, a) == 1;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET, tmp, a) == 1;
}

/* One drain_resolve entry, p to e: "host:port:addr[,addr...]". */
static bool resolve_entry_ok(const char *p, const char *e)
{
	const char *c1 = memchr(p, ':', (size_t)(e - p));
	const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', (size_t)(e - c1 - 1)) : NULL;
	const char *a;
	char *end;
	long port;

	if (c1 == NULL || c2 == NULL || c1 == p)
		return false;
	for (const char *h = p; h < c1; h++)
		if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.')
			return false;
	errno = 0;
	port = strtol(c1 + 1, &end, 10);
	if (end != c2 || end == c1 + 1 || errno != 0 || port < 1 || port > 65535)
		return false;
	for (a = c2 + 1;;) {
		const char *comma = memchr(a, ',', (size_t)(e - a));
		const char *ae = comma != NULL ? comma : e;

		if (!resolve_addr_ok(a, (size_t)(ae - a)))
			return false;
		if (comma == NULL)
			return true;
		a = comma + 1;
	}
}

/* drain_resolve: entries separated by spaces, in CURLOPT_RESOLVE's form without its "+" and
 * "-" prefixes. Logs the first bad entry. */
static bool resolve_ok(const char *v)
{
	for (const char *p = v + strspn(v, " \t"); *p != '\0'; p += strspn(p, " \t")) {
		const char *e = p + strcspn(p, " \t");

		if (!resolve_entry_ok(p, e)) {
			log_err("conf drain_resolve: %.*s is not host:port:address[,address...] "
				"(IPv6 addresses in brackets)",
				(int)(e - p), p);
			return false;
		}
		p = e;
	}
	return true;
}

/* A list of header names: tokens separated by commas and/or blanks; may be empty. */
static bool names_valid(const char *s)
{
	char name[257];

	while (*s != '\0') {
		size_t n;

		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		n = strcspn(s, ", \t");
		if (n == 0)
			break;
		if (n >= sizeof(name))
			return false;
		memcpy(name, s, n);
		name[n] = '\0';
		if (!http_token_valid(name))
			return false;
		s += n;
	}
	return true;
}

static int set_key(struct conf *cf, const struct conf_key *k, const char *value)
{
	char *base = (char *)cf + k->offset;
	int64_t v = 0;
	enum log_level lvl;

	switch (k->type) {
	case CONF_STR:
	case CONF_LOGLEVEL:
	case CONF_AUTH:
	case CONF_PROXY:
	case CONF_RESOLVE:
	case CONF_NAMES:
		if (k->type == CONF_LOGLEVEL && log_level_parse(value, &lvl) != 0) {
			log_err("conf %s: expected error, warn, info or debug", k->name);
			return -1;
		}
		if (k->type == CONF_AUTH && conf_auth_modes(value) < 0) {
			log_err("conf %s: expected keys, remote_user, both, or none alone",
				k->name);
			return -1;
		}
		if (k->type == CONF_PROXY && !proxy_ok(value)) {
			log_err("conf %s: expected nothing, or a proxy URL: http://, https://, "
				"socks4://, socks4a://, socks5:// or socks5h:// and a host",
				k->name);
			return -1;
		}
		if (k->type == CONF_RESOLVE && !resolve_ok(value))
			return -1;
		if (k->type == CONF_NAMES && !names_valid(value)) {
			log_err("conf %s: expected header names (RFC 9110 tokens) separated by "
				"commas or spaces",
				k->name);
			return -1;
		}
		free(*(char **)base);
		*(char **)base = xstrdup(value);
		return 0;
	case CONF_INT: {
		char *end;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0') {
			log_err("conf %s: expected a whole number", k->name);
			return -1;
		}
		break;
	}
	case CONF_BYTES:
		if (parse_bytes(value, &v) != 0) {
			log_err("conf %s: expected a size such as 65536, 64K or 1M", k->name);
			return -1;
		}
		break;
	case CONF_DURATION:
		if (timeparse_duration(value, &v) != 0) {
			log_err("conf %s: expected a duration such as 30s, 15m, 2h or 1d", k->name);
			return -1;
		}
		break;
	}
	if (v < k->min || v > k->max) {
		log_err("conf %s: %s is out of range", k->name, value);
		return -1;
	}
	*(int64_t *)base = v;
	return 0;
}

int conf_set(struct conf *cf, const char *key, const char *value)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(keys[i].name, key) == 0)
			return set_key(cf, &keys[i], value);
	}
	log_err("conf: unknown key %s", key);
	return -1;
}

void conf_defaults(struct conf *cf)
{
	memset(cf, 0, sizeof(*cf));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (set_key(cf, &keys[i], keys[i].def) != 0)
			abort(); /* a default that fails its own check is a bug */
	}
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int conf_load(struct conf *cf, const char *path)
{
	char line[4096];
	FILE *f;
	int lineno = 0;
	int rc = 0;

	if (path == NULL)
		path = getenv("ASYNCGATE_CONF");
	if (path == NULL || *path == '\0')
		return 0;
	f = fopen(path, "r");
	if (f == NULL) {
		log_err("conf %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s;
		char *eq;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			int ch;

			log_err("conf %s:%d: line longer than %zu bytes", path, lineno,
				sizeof(line) - 2);
			rc = -1;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			continue;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			log_err("conf %s:%d: expected key = value", path, lineno);
			rc = -1;
			continue;
		}
		*eq = '\0';
		if (conf_set(cf, trim(s), trim(eq + 1)) != 0) {
			log_err("conf %s:%d: line rejected", path, lineno);
			rc = -1;
		}
	}
	fclose(f);
	if (cf->default_retry_initial_ms > cf->default_retry_max_ms) {
		log_err("conf %s: default_retry_initial exceeds default_retry_max", path);
		rc = -1;
	}
	return rc;
}

void conf_cleanup(struct conf *cf)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (is_string(keys[i].type)) {
			char **p = (char **)((char *)cf + keys[i].offset);

			free(*p);
			*p = NULL;
		}
	}
}

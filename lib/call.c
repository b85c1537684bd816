/* call: field-by-field checks of a call instruction; every failure names its field. */
#include "call.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "conf.h"
#include "http.h"
#include "netpolicy.h"
#include "statuses.h"
#include "timeparse.h"

#define MAX_URL_LEN 8192
#define MAX_PATH_LEN 4096
#define MAX_QUERY_LEN 8192
#define MAX_CORRELATION_LEN 256
#define MAX_DEBOUNCE_KEY_LEN 256
#define MIN_CONNECT_TIMEOUT_MS 100
/* Backoff bounds are stored in milliseconds as integer (int4): 24 days fit, 25 do not. */
#define MAX_BACKOFF_MS (24 * 86400000LL)

void call_init(struct call *c)
{
	memset(c, 0, sizeof(*c));
	c->max_attempts = -1;
	c->retry_initial_ms = -1;
	c->retry_max_ms = -1;
	c->timeout_ms = -1;
	c->connect_timeout_ms = -1;
}

void call_cleanup(struct call *c)
{
	free(c->function);
	free(c->target);
	free(c->path);
	free(c->method);
	free(c->query);
	json_object_put(c->headers);
	free(c->body);
	free(c->correlation_id);
	free(c->callback_url);
	json_object_put(c->callback_headers);
	free(c->failure_callback_url);
	json_object_put(c->failure_callback_headers);
	json_object_put(c->retry_on);
	json_object_put(c->give_up_on);
	free(c->debounce_key);
	call_init(c);
}

/* Fills p: field is prefix + name, detail starts with the field. An empty name is the
 * instruction itself: the batch element ("[3]", not "[3]."), or the whole body. Always returns
 * -1. */
static int fail(struct problem *p, int status, const char *prefix, const char *name,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(struct problem *p, int status, const char *prefix, const char *name,
		const char *fmt, ...)
{
	va_list ap;
	int n;

	p->status = status;
	if (*name == '\0' && *prefix != '\0')
		snprintf(p->field, sizeof(p->field), "%.*s", (int)strlen(prefix) - 1, prefix);
	else if (*name == '\0') /* "body", as h_calls_post names the document */
		snprintf(p->field, sizeof(p->field), "body");
	else
		snprintf(p->field, sizeof(p->field), "%s%s", prefix, name);
	n = snprintf(p->detail, sizeof(p->detail), "%s: ", p->field);
	va_start(ap, fmt);
	vsnprintf(p->detail + n, sizeof(p->detail) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Checks an absolute http(s) URL with libcurl's parser, and its host against the policy. */
static int check_url(const char *url, const struct call_env *env, const char *prefix,
		     const char *name, struct problem *p)
{
	CURLU *u = NULL;
	char *scheme = NULL;
	char *host = NULL;
	char *user = NULL;
	char *frag = NULL;
	const char *why = NULL;
	int rc = -1;

	if (strlen(url) > MAX_URL_LEN) {
		fail(p, 400, prefix, name, "URL longer than %d bytes", MAX_URL_LEN);
		goto out;
	}
	/* URLs are ASCII (RFC 3986). Refusing the rest also closes the IDN route around the
	 * address check: libcurl maps "１２７.０.０.１" (fullwidth digits) to 127.0.0.1. */
	for (const char *t = url; *t != '\0'; t++) {
		if ((unsigned char)*t >= 0x80) {
			fail(p, 400, prefix, name,
			     "URL must be ASCII: percent-encode other characters, and write "
			     "international host names in punycode (xn--)");
			goto out;
		}
	}
	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    strncasecmp(url, scheme, strlen(scheme)) != 0) {
		fail(p, 400, prefix, name, "must be an absolute http:// or https:// URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		fail(p, 400, prefix, name, "URL has no host");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		fail(p, 400, prefix, name,
		     "credentials in the URL are not accepted; send an Authorization header");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		fail(p, 400, prefix, name, "URL has a fragment (#...), which is never sent");
		goto out;
	}
	if (!netpolicy_host_allowed(env->np, host, &why)) {
		fail(p, 400, prefix, name,
		     "host %s is a %s address, which calls may not reach (the operator can allow "
		     "it "
		     "with allow_targets)",
		     host, why);
		goto out;
	}
	rc = 0;
out:
	curl_free(frag);
	curl_free(user);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static int want_string(struct json_object *v, const char *prefix, const char *name,
		       struct problem *p)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(p, 400, prefix, name, "must be a string");
	return 0;
}

static bool printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Adds one header to *obj (created on first use), with every check of a call header. */
static int add_header(struct json_object **obj, const char *name, const char *value, size_t vlen,
		      const struct call_env *env, const char *prefix, const char *field,
		      struct problem *p)
{
	char fname[320];

	snprintf(fname, sizeof(fname), *name != '\0' ? "%s.%s" : "%s", field, name);
	if (!http_token_valid(name))
		return fail(p, 400, prefix, fname,
			    "header name must be an RFC 9110 token (letters, digits, "
			    "!#$%%&'*+-.^_`|~)");
	if (!http_value_valid(value, vlen) || strlen(value) != vlen)
		return fail(p, 400, prefix, fname,
			    "header value must be at most 8192 bytes without CR, LF, NUL or other "
			    "control characters");
	if (http_header_reserved(name))
		return fail(p, 400, prefix, fname,
			    "%s is a hop-by-hop or gateway header and cannot be set on a call",
			    name);
	if (http_header_listed(env->cf->deny_headers, name))
		return fail(p, 400, prefix, fname,
			    "%s may not be set on a call at this gateway (deny_headers)", name);
	if (*obj == NULL)
		*obj = json_object_new_object();
	json_object_object_foreach (*obj, k, ignored) {
		(void)ignored;
		if (strcasecmp(k, name) == 0)
			return fail(p, 400, prefix, fname, "header given twice");
	}
	if (json_object_object_length(*obj) >= (int)env->cf->max_headers)
		return fail(p, 400, prefix, field, "more than %lld headers",
			    (long long)env->cf->max_headers);
	json_object_object_add(*obj, name, json_object_new_string_len(value, (int)vlen));
	return 0;
}

static int set_headers_obj(struct json_object **dst, struct json_object *v,
			   const struct call_env *env, const char *prefix, const char *field,
			   struct problem *p)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(p, 400, prefix, field, "must be an object of header names to strings");
	json_object_object_foreach (v, name, val) {
		char fname[320];

		if (!json_object_is_type(val, json_type_string)) {
			snprintf(fname, sizeof(fname), "%s.%s", field, name);
			return fail(p, 400, prefix, fname, "header value must be a string");
		}
		if (add_header(dst, name, json_object_get_string(val),
			       (size_t)json_object_get_string_len(val), env, prefix, field, p) != 0)
			return -1;
	}
	if (*dst == NULL)
		*dst = json_object_new_object();
	return 0;
}

int call_check_url(const char *url, const struct call_env *env, const char *field,
		   struct problem *p)
{
	return check_url(url, env, "", field, p);
}

int call_check_headers(struct json_object *headers, const struct call_env *env, const char *field,
		       struct problem *p)
{
	struct json_object *copy = NULL;
	int rc = set_headers_obj(&copy, headers, env, "", field, p);

	json_object_put(copy);
	return rc;
}

static bool method_known(const char *m)
{
	static const char *const methods[] = {"GET",   "HEAD",	 "POST",   "PUT",
					      "PATCH", "DELETE", "OPTIONS"};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(m, methods[i]) == 0)
			return true;
	return false;
}

static int set_method(struct call *c, const char *m, const char *prefix, const char *name,
		      struct problem *p)
{
	char up[16];
	size_t n = strlen(m);

	if (n == 0 || n >= sizeof(up))
		goto bad;
	for (size_t i = 0; i <= n; i++)
		up[i] = (char)toupper((unsigned char)m[i]);
	if (!method_known(up))
		goto bad;
	free(c->method);
	c->method = xstrdup(up);
	return 0;
bad:
	return fail(p, 400, prefix, name,
		    "must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
}

int call_parse_priority(const char *s, int64_t *out)
{
	const char *t = s;
	long long n = 0;

	if (*t == '-' || *t == '+')
		t++;
	if (*t == '\0' || strlen(t) > 3)
		return -1;
	for (; *t != '\0'; t++) {
		if (*t < '0' || *t > '9')
			return -1;
		n = n * 10 + (*t - '0');
	}
	if (*s == '-')
		n = -n;
	if (n < CALL_PRIORITY_MIN || n > CALL_PRIORITY_MAX)
		return -1;
	*out = n;
	return 0;
}

/* Durations: "90s" or a whole number of seconds (JSON number or digit string). */
int call_parse_duration(struct json_object *v, int64_t *ms)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t s = json_object_get_int64(v);

		if (s < 0 || s > INT64_MAX / 1000)
			return -1;
		*ms = s * 1000;
		return 0;
	}
	if (json_object_is_type(v, json_type_string))
		return timeparse_duration(json_object_get_string(v), ms);
	return -1;
}

static int set_duration(int64_t *dst, struct json_object *v, int64_t min_ms, int64_t max_ms,
			const char *prefix, const char *name, struct problem *p)
{
	int64_t ms;

	if (call_parse_duration(v, &ms) != 0)
		return fail(
			p, 400, prefix, name,
			"must be a duration such as \"90s\", \"15m\", \"2h\", \"1d\" or a whole "
			"number of seconds, not negative");
	if (ms < min_ms || ms > max_ms)
		return fail(p, 400, prefix, name, "must be between %lld ms and %lld ms",
			    (long long)min_ms, (long long)max_ms);
	*dst = ms;
	return 0;
}

static int set_not_before_text(struct call *c, const char *s, const struct call_env *env,
			       const char *prefix, const char *name, struct problem *p)
{
	int64_t us;

	if (timeparse_time(s, &us) != 0)
		return fail(p, 400, prefix, name,
			    "must be an RFC 3339 time (2026-11-23T19:00:00Z) or Unix seconds");
	if (us - timeparse_now_us() > env->cf->max_delay_ms * 1000)
		return fail(p, 400, prefix, name, "is more than %lld s in the future",
			    (long long)(env->cf->max_delay_ms / 1000));
	c->has_not_before = true;
	c->not_before_us = us;
	return 0;
}

static int set_callback(char **url, struct json_object **headers, struct json_object *v,
			const struct call_env *env, const char *prefix, const char *name,
			struct problem *p)
{
	struct json_object *u;
	char field[256];

	if (json_object_is_type(v, json_type_string)) {
		u = v;
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach (v, k, val) {
			snprintf(field, sizeof(field), "%s.%s", name, k);
			if (strcmp(k, "headers") == 0) {
				if (set_headers_obj(headers, val, env, prefix, field, p) != 0)
					return -1;
			} else if (strcmp(k, "url") != 0) {
				return fail(p, 400, prefix, field, "unknown field (url, headers)");
			}
		}
		if (!json_object_object_get_ex(v, "url", &u)) {
			snprintf(field, sizeof(field), "%s.url", name);
			return fail(p, 400, prefix, field, "is required");
		}
		snprintf(field, sizeof(field), "%s.url", name);
		name = field;
	} else {
		return fail(p, 400, prefix, name, "must be a URL string or {\"url\", \"headers\"}");
	}
	if (want_string(u, prefix, name, p) != 0 ||
	    check_url(json_object_get_string(u), env, prefix, name, p) != 0)
		return -1;
	free(*url);
	*url = xstrdup(json_object_get_string(u));
	return 0;
}

static int set_body(struct call *c, const unsigned char *data, size_t len, const char *type,
		    const struct call_env *env, const char *prefix, const char *name,
		    struct problem *p)
{
	if (c->body_type != NULL)
		return fail(p, 400, prefix, name,
			    "give at most one of body, body_text and body_base64");
	if ((int64_t)len > env->cf->max_body_bytes)
		return fail(p, 413, prefix, name, "body is %zu bytes; the limit is %lld", len,
			    (long long)env->cf->max_body_bytes);
	c->body = xmalloc(len + 1);
	memcpy(c->body, data, len);
	c->body[len] = '\0';
	c->body_len = len;
	c->body_type = type;
	return 0;
}

/* Strict standard base64 (RFC 4648 section 4), padding required, no whitespace. */
static int decode_base64(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char *buf;
	int n;
	size_t pad = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '=') {
			if (i < len - 2)
				return -1;
			pad++;
		} else if (pad > 0 || !(isalnum(ch) || ch == '+' || ch == '/')) {
			return -1;
		}
	}
	buf = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	if (n < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = (size_t)n - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	return 0;
}

static void query_add(struct buf *q, const char *k, struct json_object *v)
{
	const char *s = json_object_get_string(v);

	if (q->len > 0)
		buf_puts(q, "&");
	http_pct_encode(q, k, strlen(k));
	buf_puts(q, "=");
	http_pct_encode(q, s, strlen(s));
}

static bool query_scalar(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int) ||
	       json_object_is_type(v, json_type_double) ||
	       json_object_is_type(v, json_type_boolean);
}

static int set_query(struct call *c, struct json_object *v, const char *prefix, const char *name,
		     struct problem *p)
{
	struct buf q;

	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if (*s == '?')
			s++;
		for (const char *t = s; *t != '\0'; t++)
			if ((unsigned char)*t <= 0x20 || *t == '#' || *t == 0x7f)
				return fail(p, 400, prefix, name,
					    "an encoded query string may not hold spaces, control "
					    "characters or '#'");
		if (!http_utf8_valid(s, strlen(s))) /* as correlation ids: it goes in the row */
			return fail(p, 400, prefix, name, "must be UTF-8");
		free(c->query);
		c->query = xstrdup(s);
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return fail(p, 400, prefix, name,
			    "must be an object of names to strings, numbers or arrays of them");
	buf_init(&q);
	json_object_object_foreach (v, k, val) {
		char field[256];

		snprintf(field, sizeof(field), "%s.%s", name, k);
		if (query_scalar(val)) {
			query_add(&q, k, val);
		} else if (json_object_is_type(val, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(val); i++) {
				struct json_object *e = json_object_array_get_idx(val, i);

				if (!query_scalar(e)) {
					buf_cleanup(&q);
					return fail(p, 400, prefix, field,
						    "array elements must be strings or numbers");
				}
				query_add(&q, k, e);
			}
		} else {
			buf_cleanup(&q);
			return fail(p, 400, prefix, field,
				    "must be a string, number, boolean or array of them");
		}
	}
	if (q.len > MAX_QUERY_LEN) {
		buf_cleanup(&q);
		return fail(p, 400, prefix, name, "encoded query exceeds %d bytes", MAX_QUERY_LEN);
	}
	free(c->query);
	c->query = buf_take(&q, NULL);
	return 0;
}

/* retry.on, retry.give_up_on: a JSON array of statuses and classes ([404, "5xx"]). */
static int set_statuses_json(struct json_object **dst, struct json_object *v, const char *prefix,
			     const char *field, struct problem *p)
{
	struct json_object *list;
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return fail(
			p, 400, prefix, field,
			"must be an array of HTTP statuses and classes, such as [404, \"5xx\"]");
	n = json_object_array_length(v);
	if (n > STATUSES_MAX_ITEMS)
		return fail(p, 400, prefix, field, "more than %d entries", STATUSES_MAX_ITEMS);
	list = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *item;
		const char *why;
		char f[280];

		if (statuses_item(json_object_array_get_idx(v, i), &item, &why) != 0) {
			json_object_put(list);
			snprintf(f, sizeof(f), "%s[%zu]", field, i);
			return fail(p, 400, prefix, f, "%s", why);
		}
		json_object_array_add(list, item);
	}
	json_object_put(*dst);
	*dst = list;
	return 0;
}

/* Async-Retry-On, Async-Give-Up-On: "404, 5xx" (comma-separated; spaces around entries). */
static int set_statuses_text(struct json_object **dst, const char *text, const char *field,
			     struct problem *p)
{
	struct json_object *list = json_object_new_array();
	const char *t = text;
	int rc = -1;

	for (;;) {
		const char *comma = strchr(t, ',');
		size_t len = comma != NULL ? (size_t)(comma - t) : strlen(t);
		struct json_object *s = json_object_new_string_len(t, (int)(len < 64 ? len : 64));
		struct json_object *item = NULL;
		const char *why;

		if (json_object_array_length(list) >= STATUSES_MAX_ITEMS) {
			json_object_put(s);
			fail(p, 400, "", field, "more than %d entries", STATUSES_MAX_ITEMS);
			goto out;
		}
		if (statuses_item(s, &item, &why) != 0) {
			fail(p, 400, "", field,
			     "\"%.*s\" %s (give a comma-separated list such as "
			     "\"404, 5xx\")",
			     (int)(len < 16 ? len : 16), t, why);
			json_object_put(s);
			goto out;
		}
		json_object_put(s);
		json_object_array_add(list, item);
		if (comma == NULL)
			break;
		t = comma + 1;
	}
	json_object_put(*dst);
	*dst = list;
	list = NULL;
	rc = 0;
out:
	json_object_put(list);
	return rc;
}

static int set_debounce_key(struct call *c, const char *s, const char *prefix, const char *field,
			    struct problem *p)
{
	if (*s == '\0' || strlen(s) > MAX_DEBOUNCE_KEY_LEN || !printable(s) ||
	    !http_utf8_valid(s, strlen(s)))
		return fail(p, 400, prefix, field,
			    "must be 1 to %d bytes of UTF-8 without control characters",
			    MAX_DEBOUNCE_KEY_LEN);
	free(c->debounce_key);
	c->debounce_key = xstrdup(s);
	return 0;
}

static int set_retry(struct call *c, struct json_object *v, const char *prefix, struct problem *p)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(p, 400, prefix, "retry",
			    "must be an object {\"max_attempts\", \"initial\", \"max\", \"on\", "
			    "\"give_up_on\"}");
	json_object_object_foreach (v, k, val) {
		char field[256];

		snprintf(field, sizeof(field), "retry.%s", k);
		if (strcmp(k, "max_attempts") == 0) {
			int64_t n = json_object_get_int64(val);

			if (!json_object_is_type(val, json_type_int) || n < 1 || n > 100)
				return fail(p, 400, prefix, field,
					    "must be a whole number from 1 to 100");
			c->max_attempts = n;
		} else if (strcmp(k, "initial") == 0) {
			if (set_duration(&c->retry_initial_ms, val, 0, MAX_BACKOFF_MS, prefix,
					 field, p) != 0)
				return -1;
		} else if (strcmp(k, "max") == 0) {
			if (set_duration(&c->retry_max_ms, val, 0, MAX_BACKOFF_MS, prefix, field,
					 p) != 0)
				return -1;
		} else if (strcmp(k, "on") == 0) {
			if (set_statuses_json(&c->retry_on, val, prefix, field, p) != 0)
				return -1;
		} else if (strcmp(k, "give_up_on") == 0) {
			if (set_statuses_json(&c->give_up_on, val, prefix, field, p) != 0)
				return -1;
		} else {
			return fail(p, 400, prefix, field,
				    "unknown field (max_attempts, initial, max, on, give_up_on)");
		}
	}
	return 0;
}

static int set_function_name(struct call *c, const char *name, const char *prefix,
			     const char *field, struct problem *p)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || !isalnum((unsigned char)name[0]))
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("_.-", name[i]) == NULL)
			goto bad;
	free(c->function);
	c->function = xstrdup(name);
	return 0;
bad:
	return fail(p, 400, prefix, field,
		    "must be a function name: 1 to 128 letters, digits, '_', '.', '-'");
}

/* A "." or ".." segment, also percent-encoded ("%2e%2E") or behind an encoded slash
 * ("..%2Fadmin"): it would climb out of the function's base path once libcurl or the target
 * removes dot segments (RFC 3986 section 5.2.4). Malformed percent-encoding counts too. */
static bool dot_segment(const char *seg, size_t len)
{
	char *d = http_pct_decode(seg, len);
	bool dot = d == NULL;

	for (char *part = d, *save = NULL; !dot && part != NULL; part = save) {
		save = strchr(part, '/');
		if (save != NULL)
			*save++ = '\0';
		dot = strcmp(part, ".") == 0 || strcmp(part, "..") == 0;
	}
	free(d);
	return dot;
}

static int set_path(struct call *c, const char *path, const char *prefix, const char *field,
		    struct problem *p)
{
	if (path[0] != '/' || strlen(path) > MAX_PATH_LEN)
		return fail(p, 400, prefix, field, "must start with '/' (at most %d bytes)",
			    MAX_PATH_LEN);
	for (const char *t = path; *t != '\0'; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f || *t == '?' ||
		    *t == '#')
			return fail(p, 400, prefix, field,
				    "may not hold spaces, control characters, non-ASCII bytes, '?' "
				    "or '#' (percent-encode them; put the query in \"query\")");
	for (const char *seg = path + 1;;) {
		const char *end = strchr(seg, '/');
		size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);

		if (dot_segment(seg, len))
			return fail(p, 400, prefix, field,
				    "may not hold \".\" or \"..\" segments (or malformed "
				    "percent-encoding)");
		if (end == NULL)
			break;
		seg = end + 1;
	}
	free(c->path);
	c->path = xstrdup(path);
	return 0;
}

static int set_correlation(struct call *c, const char *s, const char *prefix, const char *field,
			   struct problem *p)
{
	/* Well-formed UTF-8 too: json-c's UTF-8 check and a header value let overlong forms and
	 * surrogates through, and PostgreSQL refuses them in the row (a 500, not a 400). */
	if (*s == '\0' || strlen(s) > MAX_CORRELATION_LEN || !printable(s) ||
	    !http_utf8_valid(s, strlen(s)))
		return fail(p, 400, prefix, field,
			    "must be 1 to %d bytes of UTF-8 without control characters",
			    MAX_CORRELATION_LEN);
	free(c->correlation_id);
	c->correlation_id = xstrdup(s);
	return 0;
}

/* The fields of a JSON instruction, each with its setter. */
static int field_json(struct call *c, const char *k, struct json_object *v,
		      const struct call_env *env, const char *prefix, struct problem *p)
{
	const struct conf *cf = env->cf;

	if (strcmp(k, "target") == 0) {
		if (want_string(v, prefix, k, p) != 0 ||
		    check_url(json_object_get_string(v), env, prefix, k, p) != 0)
			return -1;
		c->target = xstrdup(json_object_get_string(v));
	} else if (strcmp(k, "function") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_function_name(c, json_object_get_string(v), prefix, k, p);
	} else if (strcmp(k, "path") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_path(c, json_object_get_string(v), prefix, k, p);
	} else if (strcmp(k, "method") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_method(c, json_object_get_string(v), prefix, k, p);
	} else if (strcmp(k, "query") == 0) {
		return set_query(c, v, prefix, k, p);
	} else if (strcmp(k, "headers") == 0) {
		return set_headers_obj(&c->headers, v, env, prefix, k, p);
	} else if (strcmp(k, "body") == 0) {
		size_t len;
		const char *s = json_object_to_json_string_length(
			v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

		return set_body(c, (const unsigned char *)s, len, "json", env, prefix, k, p);
	} else if (strcmp(k, "body_text") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_body(c, (const unsigned char *)json_object_get_string(v),
				(size_t)json_object_get_string_len(v), "text", env, prefix, k, p);
	} else if (strcmp(k, "body_base64") == 0) {
		unsigned char *bytes = NULL;
		size_t n = 0;
		int rc;

		if (want_string(v, prefix, k, p) != 0)
			return -1;
		if (decode_base64(json_object_get_string(v), (size_t)json_object_get_string_len(v),
				  &bytes, &n) != 0)
			return fail(p, 400, prefix, k,
				    "is not valid base64 (RFC 4648, with padding, no whitespace)");
		rc = set_body(c, bytes, n, "binary", env, prefix, k, p);
		free(bytes);
		return rc;
	} else if (strcmp(k, "not_before") == 0) {
		char digits[32];

		if (json_object_is_type(v, json_type_int)) {
			if (json_object_get_int64(v) < 0)
				return fail(p, 400, prefix, k, "must not be negative");
			snprintf(digits, sizeof(digits), "%lld",
				 (long long)json_object_get_int64(v));
			return set_not_before_text(c, digits, env, prefix, k, p);
		}
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_not_before_text(c, json_object_get_string(v), env, prefix, k, p);
	} else if (strcmp(k, "delay") == 0) {
		c->has_delay = true;
		return set_duration(&c->delay_ms, v, 0, cf->max_delay_ms, prefix, k, p);
	} else if (strcmp(k, "timeout") == 0) {
		return set_duration(&c->timeout_ms, v, 1000, cf->max_timeout_ms, prefix, k, p);
	} else if (strcmp(k, "connect_timeout") == 0) {
		return set_duration(&c->connect_timeout_ms, v, MIN_CONNECT_TIMEOUT_MS,
				    cf->max_timeout_ms, prefix, k, p);
	} else if (strcmp(k, "debounce_key") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_debounce_key(c, json_object_get_string(v), prefix, k, p);
	} else if (strcmp(k, "expires_in") == 0) {
		return set_duration(&c->expires_in_ms, v, 1000, cf->max_expires_in_ms, prefix, k,
				    p);
	} else if (strcmp(k, "correlation_id") == 0) {
		if (want_string(v, prefix, k, p) != 0)
			return -1;
		return set_correlation(c, json_object_get_string(v), prefix, k, p);
	} else if (strcmp(k, "callback") == 0) {
		return set_callback(&c->callback_url, &c->callback_headers, v, env, prefix, k, p);
	} else if (strcmp(k, "failure_callback") == 0) {
		return set_callback(&c->failure_callback_url, &c->failure_callback_headers, v, env,
				    prefix, k, p);
	} else if (strcmp(k, "retry") == 0) {
		return set_retry(c, v, prefix, p);
	} else if (strcmp(k, "priority") == 0) {
		int64_t n = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || n < CALL_PRIORITY_MIN ||
		    n > CALL_PRIORITY_MAX)
			return fail(p, 400, prefix, k, "must be a whole number from %d to %d",
				    CALL_PRIORITY_MIN, CALL_PRIORITY_MAX);
		c->priority = n;
	} else {
		return fail(p, 400, prefix, k,
			    "unknown field (target, function, path, method, query, headers, body, "
			    "body_text, body_base64, not_before, delay, correlation_id, callback, "
			    "failure_callback, retry, timeout, connect_timeout, expires_in, "
			    "debounce_key, priority)");
	}
	return 0;
}

/* Checks that hold between fields, and fills the simple defaults. Transparent mode names the
 * control headers (hdrs), JSON mode the fields. */
static int finish(struct call *c, const char *prefix, bool hdrs, struct problem *p)
{
	if (c->target == NULL && c->function == NULL)
		return fail(p, 400, prefix, "target",
			    "give a target URL or a function name (exactly one)");
	if (c->target != NULL && c->function != NULL)
		return fail(p, 400, prefix, "function", "give either target or function, not both");
	if (c->path != NULL && c->function == NULL)
		return fail(p, 400, prefix, "path",
			    "path goes with function; put it in the target URL instead");
	if (c->has_not_before && c->has_delay)
		return fail(p, 400, prefix, hdrs ? "Async-Delay" : "delay",
			    hdrs ? "give at most one of Async-Delay and Async-Not-Before"
				 : "give at most one of delay and not_before");
	if (c->method == NULL)
		c->method = xstrdup("POST");
	if (c->body_type != NULL &&
	    (strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0))
		return fail(p, 400, prefix, "body", "a %s call cannot carry a body", c->method);
	if (c->query == NULL)
		c->query = xstrdup("");
	if (c->headers == NULL)
		c->headers = json_object_new_object();
	return 0;
}

int call_from_json(struct call *c, struct json_object *o, const struct call_env *env,
		   const char *prefix, struct problem *p)
{
	if (!json_object_is_type(o, json_type_object))
		return fail(p, 400, prefix, "", "a call instruction must be a JSON object");
	json_object_object_foreach (o, k, v) {
		if (field_json(c, k, v, env, prefix, p) != 0)
			return -1;
	}
	return finish(c, prefix, false, p);
}

int call_resolve(struct call *c, const struct call_env *env, int64_t fn_timeout_ms,
		 int64_t fn_max_attempts, int64_t fn_retry_initial_ms, int64_t fn_retry_max_ms,
		 const char *prefix, struct problem *p)
{
	const struct conf *cf = env->cf;

	if (c->timeout_ms < 0)
		c->timeout_ms = fn_timeout_ms >= 0 ? fn_timeout_ms : cf->default_timeout_ms;
	if (c->max_attempts < 0)
		c->max_attempts = fn_max_attempts >= 0 ? fn_max_attempts : cf->default_max_attempts;
	if (c->retry_initial_ms < 0)
		c->retry_initial_ms = fn_retry_initial_ms >= 0 ? fn_retry_initial_ms
							       : cf->default_retry_initial_ms;
	if (c->retry_max_ms < 0)
		c->retry_max_ms = fn_retry_max_ms >= 0 ? fn_retry_max_ms : cf->default_retry_max_ms;
	if (c->retry_max_ms < c->retry_initial_ms)
		return fail(p, 400, prefix, "retry.max", "must not be shorter than retry.initial");
	/* Checked here, after the function's or the default timeout is known. */
	if (c->connect_timeout_ms > c->timeout_ms)
		return fail(p, 400, prefix,
			    c->transparent ? "Async-Connect-Timeout" : "connect_timeout",
			    "must not be longer than the timeout (%lld ms)",
			    (long long)c->timeout_ms);
	return 0;
}

/* Transparent mode: "/v1/async/{function-or-url}/{rest}". */
static int parse_async_path(struct call *c, const char *rest, const struct call_env *env,
			    struct problem *p)
{
	const char *slash;
	char *seg = NULL;
	int rc = -1;

	if (strncasecmp(rest, "http%3a", 7) == 0 || strncasecmp(rest, "https%3a", 8) == 0) {
		/* A percent-encoded URL as the first segment; the rest of the path follows it. */
		struct buf url;

		slash = strchr(rest, '/');
		seg = http_pct_decode(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest));
		if (seg == NULL)
			return fail(p, 400, "", "path",
				    "malformed percent-encoding in the target URL");
		if (slash != NULL && strchr(seg, '?') != NULL) {
			free(seg);
			return fail(
				p, 400, "", "path",
				"an encoded target URL with a query cannot have a path after it");
		}
		buf_init(&url);
		buf_puts(&url, seg);
		if (slash != NULL)
			buf_puts(&url, slash);
		c->target = buf_take(&url, NULL);
	} else if (strncasecmp(rest, "http:/", 6) == 0 || strncasecmp(rest, "https:/", 7) == 0) {
		/* The URL written out in the path; web servers may have merged its "//". */
		const char *colon = strchr(rest, ':');
		const char *after = colon + 1;

		while (*after == '/')
			after++;
		c->target = xasprintf("%.*s://%s", (int)(colon - rest), rest, after);
	} else {
		slash = strchr(rest, '/');
		seg = http_pct_decode(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest));
		if (seg != NULL && strstr(seg, "://") != NULL) {
			/* a URL, but not http(s): let the URL check say so */
			c->target = seg;
			seg = NULL;
			rc = check_url(c->target, env, "", "target", p);
			goto out;
		}
		if (seg == NULL || *seg == '\0') {
			free(seg);
			return fail(p, 400, "", "path",
				    "name a function or a percent-encoded http(s) URL after "
				    "/v1/async/");
		}
		if (set_function_name(c, seg, "", "function", p) != 0)
			goto out;
		if (slash != NULL && set_path(c, slash, "", "path", p) != 0)
			goto out;
		rc = 0;
		goto out;
	}
	rc = check_url(c->target, env, "", "target", p);
out:
	free(seg);
	return rc;
}

/* "HTTP_X_REQUEST_ID" -> "X-Request-Id" (CGI folds names to upper case, '-' to '_'). */
static void header_name_from_cgi(const char *cgi, char *out, size_t outsz)
{
	size_t i = 0;
	bool start = true;

	for (const char *s = cgi + 5; *s != '\0' && i + 1 < outsz; s++) {
		if (*s == '_') {
			out[i++] = '-';
			start = true;
		} else {
			out[i++] = start ? (char)toupper((unsigned char)*s)
					 : (char)tolower((unsigned char)*s);
			start = false;
		}
	}
	out[i] = '\0';
}

/* Control headers of transparent mode, as CGI spells them (HTTP_ASYNC_...). */
static int control_header(struct call *c, const char *cgi, const char *value,
			  const struct call_env *env, struct problem *p)
{
	const struct conf *cf = env->cf;
	struct json_object *v = NULL;
	int rc;

	if (strcmp(cgi, "HTTP_ASYNC_NOT_BEFORE") == 0)
		return set_not_before_text(c, value, env, "", "Async-Not-Before", p);
	if (strcmp(cgi, "HTTP_ASYNC_CALLBACK") == 0 ||
	    strcmp(cgi, "HTTP_ASYNC_FAILURE_CALLBACK") == 0) {
		bool failure = cgi[11] == 'F';
		const char *name = failure ? "Async-Failure-Callback" : "Async-Callback";

		if (check_url(value, env, "", name, p) != 0)
			return -1;
		free(failure ? c->failure_callback_url : c->callback_url);
		if (failure)
			c->failure_callback_url = xstrdup(value);
		else
			c->callback_url = xstrdup(value);
		return 0;
	}
	if (strcmp(cgi, "HTTP_ASYNC_CORRELATION_ID") == 0)
		return set_correlation(c, value, "", "Async-Correlation-Id", p);
	if (strcmp(cgi, "HTTP_ASYNC_DEBOUNCE_KEY") == 0)
		return set_debounce_key(c, value, "", "Async-Debounce-Key", p);
	if (strcmp(cgi, "HTTP_ASYNC_RETRY_ON") == 0)
		return set_statuses_text(&c->retry_on, value, "Async-Retry-On", p);
	if (strcmp(cgi, "HTTP_ASYNC_GIVE_UP_ON") == 0)
		return set_statuses_text(&c->give_up_on, value, "Async-Give-Up-On", p);
	if (strcmp(cgi, "HTTP_ASYNC_MAX_ATTEMPTS") == 0) {
		char *end;
		long n = strtol(value, &end, 10);

		if (end == value || *end != '\0' || n < 1 || n > 100)
			return fail(p, 400, "", "Async-Max-Attempts",
				    "must be a whole number from 1 to 100");
		c->max_attempts = n;
		return 0;
	}
	if (strcmp(cgi, "HTTP_ASYNC_PRIORITY") == 0) {
		if (call_parse_priority(value, &c->priority) != 0)
			return fail(p, 400, "", "Async-Priority",
				    "must be a whole number from %d to %d", CALL_PRIORITY_MIN,
				    CALL_PRIORITY_MAX);
		return 0;
	}
	v = json_object_new_string(value);
	if (strcmp(cgi, "HTTP_ASYNC_DELAY") == 0) {
		c->has_delay = true;
		rc = set_duration(&c->delay_ms, v, 0, cf->max_delay_ms, "", "Async-Delay", p);
	} else if (strcmp(cgi, "HTTP_ASYNC_TIMEOUT") == 0) {
		rc = set_duration(&c->timeout_ms, v, 1000, cf->max_timeout_ms, "", "Async-Timeout",
				  p);
	} else if (strcmp(cgi, "HTTP_ASYNC_CONNECT_TIMEOUT") == 0) {
		rc = set_duration(&c->connect_timeout_ms, v, MIN_CONNECT_TIMEOUT_MS,
				  cf->max_timeout_ms, "", "Async-Connect-Timeout", p);
	} else if (strcmp(cgi, "HTTP_ASYNC_EXPIRES_IN") == 0) {
		rc = set_duration(&c->expires_in_ms, v, 1000, cf->max_expires_in_ms, "",
				  "Async-Expires-In", p);
	} else if (strcmp(cgi, "HTTP_ASYNC_RETRY_INITIAL") == 0) {
		rc = set_duration(&c->retry_initial_ms, v, 0, MAX_BACKOFF_MS, "",
				  "Async-Retry-Initial", p);
	} else if (strcmp(cgi, "HTTP_ASYNC_RETRY_MAX") == 0) {
		rc = set_duration(&c->retry_max_ms, v, 0, MAX_BACKOFF_MS, "", "Async-Retry-Max", p);
	} else {
		char name[288];

		header_name_from_cgi(cgi, name, sizeof(name));
		rc = fail(p, 400, "", name,
			  "unknown control header (Async-Delay, Async-Not-Before, Async-Callback, "
			  "Async-Failure-Callback, Async-Correlation-Id, Async-Max-Attempts, "
			  "Async-Retry-Initial, Async-Retry-Max, Async-Retry-On, Async-Give-Up-On, "
			  "Async-Timeout, Async-Connect-Timeout, Async-Expires-In, "
			  "Async-Debounce-Key, Async-Priority)");
	}
	json_object_put(v);
	return rc;
}

/* Whether a transparent-mode request header stays behind: about the hop to the gateway
 * (hop-by-hop, Host, Content-Length, ...; or named in the request's Connection header, RFC 9110
 * 7.6.1), for the gateway itself (Authorization, Idempotency-Key, Prefer), given separately
 * (Content-Type comes from CONTENT_TYPE), or on the operator's deny_headers list. Such headers
 * are not recorded, without an error: a client cannot always keep its stack from adding them. */
static bool header_stays(const struct req *rq, const struct call_env *env, const char *name)
{
	static const char *const own[] = {"Authorization", "Idempotency-Key", "Prefer",
					  "Content-Type"};

	if (http_header_hop(name) || http_header_listed(env->cf->deny_headers, name) ||
	    http_header_listed(req_param(rq, "HTTP_CONNECTION"), name))
		return true;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (http_header_listed(own[i], name))
			return true;
	return false;
}

int call_from_request(struct call *c, const struct req *rq, const char *rest,
		      const struct call_env *env, struct problem *p)
{
	const char *ct;
	const char *query;

	c->transparent = true;
	if (parse_async_path(c, rest, env, p) != 0)
		return -1;
	if (set_method(c, rq->method, "", "method", p) != 0)
		return -1;
	query = rq->query != NULL ? rq->query : "";
	for (const char *t = query; *t != '\0'; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f || *t == '#')
			return fail(
				p, 400, "", "query",
				"malformed query string (RFC 3986: percent-encode spaces, control "
				"characters and non-ASCII bytes)");
	c->query = xstrdup(query);
	for (char **pp = rq->params; pp != NULL && *pp != NULL; pp++) {
		const char *eq = strchr(*pp, '=');
		char cgi[288];
		char name[288];
		size_t n;

		if (eq == NULL || strncmp(*pp, "HTTP_", 5) != 0)
			continue;
		n = (size_t)(eq - *pp);
		if (n >= sizeof(cgi))
			return fail(p, 400, "", "headers", "a header name is too long");
		memcpy(cgi, *pp, n);
		cgi[n] = '\0';
		if (strncmp(cgi, "HTTP_ASYNC_", 11) == 0) {
			if (control_header(c, cgi, eq + 1, env, p) != 0)
				return -1;
			continue;
		}
		header_name_from_cgi(cgi, name, sizeof(name));
		if (header_stays(rq, env, name))
			continue;
		if (add_header(&c->headers, name, eq + 1, strlen(eq + 1), env, "", "headers", p) !=
		    0)
			return -1;
	}
	ct = req_param(rq, "CONTENT_TYPE");
	if (ct != NULL && *ct != '\0' &&
	    !http_header_listed(env->cf->deny_headers, "Content-Type") &&
	    add_header(&c->headers, "Content-Type", ct, strlen(ct), env, "", "headers", p) != 0)
		return -1;
	if (rq->body_len > 0 && set_body(c, (const unsigned char *)rq->body, rq->body_len, "binary",
					 env, "", "body", p) != 0)
		return -1;
	return finish(c, "", true, p);
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(o, k, json_object_new_string(v));
}

static void add_obj(struct json_object *o, const char *k, struct json_object *v)
{
	if (v != NULL)
		json_object_object_add(o, k, json_object_get(v));
}

struct json_object *call_row_json(const struct call *c, const char *id)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "id", id);
	if (c->has_not_before)
		json_object_object_add(o, "not_before_us", json_object_new_int64(c->not_before_us));
	else
		json_object_object_add(o, "delay_ms", json_object_new_int64(c->delay_ms));
	if (c->expires_in_ms > 0)
		json_object_object_add(o, "expires_in_ms", json_object_new_int64(c->expires_in_ms));
	add_str(o, "function", c->function);
	add_str(o, "target", c->target);
	add_str(o, "path", c->path);
	add_str(o, "method", c->method);
	add_str(o, "query", c->query);
	add_obj(o, "headers", c->headers);
	if (c->body_type != NULL) {
		char *b64 = xmalloc(4 * ((c->body_len + 2) / 3) + 1);
		int n = EVP_EncodeBlock((unsigned char *)b64, c->body, (int)c->body_len);

		json_object_object_add(o, "body", json_object_new_string_len(b64, n));
		free(b64);
		add_str(o, "body_type", c->body_type);
	}
	add_str(o, "correlation_id", c->correlation_id);
	add_str(o, "callback_url", c->callback_url);
	add_obj(o, "callback_headers", c->callback_headers);
	add_str(o, "failure_callback_url", c->failure_callback_url);
	add_obj(o, "failure_callback_headers", c->failure_callback_headers);
	json_object_object_add(o, "max_attempts", json_object_new_int64(c->max_attempts));
	json_object_object_add(o, "retry_initial_ms", json_object_new_int64(c->retry_initial_ms));
	json_object_object_add(o, "retry_max_ms", json_object_new_int64(c->retry_max_ms));
	json_object_object_add(o, "timeout_ms", json_object_new_int64(c->timeout_ms));
	/* The per-call controls only when given: the idempotency hash of a call without them
	 * stays what it was before they existed. */
	if (c->connect_timeout_ms >= 0)
		json_object_object_add(o, "connect_timeout_ms",
				       json_object_new_int64(c->connect_timeout_ms));
	add_obj(o, "retry_on", c->retry_on);
	add_obj(o, "give_up_on", c->give_up_on);
	add_str(o, "debounce_key", c->debounce_key);
	if (c->priority != 0)
		json_object_object_add(o, "priority", json_object_new_int64(c->priority));
	return o;
}

/* topic: names, filters, JSON Pointers, and a message + a subscription = a call instruction. */
#include "topic.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "call.h"
#include "http.h"

bool topic_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)name[i]) && (unsigned char)name[i] < 0x80) &&
		    strchr("_.-", name[i]) == NULL)
			return false;
	return true;
}

/* Fills p (400): field is field + sub ("" for the filter itself). Always returns -1. */
static int bad(struct problem *p, const char *field, const char *sub, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct problem *p, const char *field, const char *sub, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->status = 400;
	snprintf(p->field, sizeof(p->field), "%s%s", field, sub);
	n = snprintf(p->detail, sizeof(p->detail), "%s: ", p->field);
	va_start(ap, fmt);
	vsnprintf(p->detail + n, sizeof(p->detail) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

bool topic_pointer_valid(const char *ptr)
{
	if (*ptr != '\0' && *ptr != '/')
		return false;
	for (const char *t = ptr; *t != '\0'; t++)
		if (*t == '~' && t[1] != '0' && t[1] != '1')
			return false;
	return true;
}

/* The next reference token of a pointer at *pp (just after a '/'), unescaped, into a new
 * string; *pp moves to the next '/' or the end. */
static char *pointer_token(const char **pp)
{
	const char *s = *pp;
	size_t n = strcspn(s, "/");
	char *tok = xmalloc(n + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '~' && i + 1 < n) {
			tok[k++] = s[i + 1] == '1' ? '/' : '~';
			i++;
		} else {
			tok[k++] = s[i];
		}
	}
	tok[k] = '\0';
	*pp = s + n;
	return tok;
}

/* An array index token: "0" or digits without a leading zero; -1 otherwise. */
static long array_index(const char *tok)
{
	long v = 0;

	if (*tok == '\0' || (tok[0] == '0' && tok[1] != '\0'))
		return -1;
	for (const char *t = tok; *t != '\0'; t++) {
		if (!isdigit((unsigned char)*t) || v > 100000000)
			return -1;
		v = v * 10 + (*t - '0');
	}
	return v;
}

bool topic_pointer_get(struct json_object *doc, const char *ptr, struct json_object **out)
{
	struct json_object *cur = doc;
	const char *p = ptr;

	if (!topic_pointer_valid(ptr))
		return false;
	while (*p == '/') {
		char *tok;
		bool found = false;

		p++;
		tok = pointer_token(&p);
		if (json_object_is_type(cur, json_type_object)) {
			found = json_object_object_get_ex(cur, tok, &cur);
		} else if (json_object_is_type(cur, json_type_array)) {
			long i = array_index(tok);

			found = i >= 0 && (size_t)i < json_object_array_length(cur);
			if (found)
				cur = json_object_array_get_idx(cur, (size_t)i);
		}
		free(tok);
		if (!found)
			return false;
	}
	*out = cur;
	return true;
}

static bool is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* JSON equality, with numbers compared by value (1 equals 1.0). NULL is JSON null. */
static bool json_equal(struct json_object *a, struct json_object *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int))
		return json_object_get_int64(a) == json_object_get_int64(b);
	if (is_number(a) && is_number(b))
		return json_object_get_double(a) == json_object_get_double(b);
	return json_object_equal(a, b) != 0;
}

static const char *const cond_keys = "header, json, equals, in, exists";

static int condition_check(struct json_object *c, const char *field, struct problem *p)
{
	struct json_object *v;
	bool header, json;
	int ops = 0;
	char sub[64];

	if (!json_object_is_type(c, json_type_object))
		return bad(p, field, "",
			   "must be a condition {\"header\" or \"json\", and \"equals\", \"in\" or "
			   "\"exists\"} or an array of them");
	json_object_object_foreach (c, k, val) {
		(void)val;
		if (strcmp(k, "header") != 0 && strcmp(k, "json") != 0 &&
		    strcmp(k, "equals") != 0 && strcmp(k, "in") != 0 && strcmp(k, "exists") != 0) {
			snprintf(sub, sizeof(sub), ".%.40s", k);
			return bad(p, field, sub, "unknown field (%s)", cond_keys);
		}
	}
	header = json_object_object_get_ex(c, "header", &v);
	if (header && (!json_object_is_type(v, json_type_string) ||
		       !http_token_valid(json_object_get_string(v))))
		return bad(p, field, ".header", "must be a header name (an RFC 9110 token)");
	json = json_object_object_get_ex(c, "json", &v);
	if (json && (!json_object_is_type(v, json_type_string) ||
		     !topic_pointer_valid(json_object_get_string(v)) ||
		     json_object_get_string_len(v) > 1024))
		return bad(p, field, ".json",
			   "must be a JSON Pointer (RFC 6901) into the message body, such as "
			   "\"/type\" or \"/items/0/sku\" (\"\" is the whole body)");
	if (header == json)
		return bad(p, field, "", "give exactly one of header and json");
	if (json_object_object_get_ex(c, "equals", &v)) {
		ops++;
		if (header && !json_object_is_type(v, json_type_string))
			return bad(p, field, ".equals", "must be a string (a header value)");
	}
	if (json_object_object_get_ex(c, "in", &v)) {
		size_t n =
			json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;

		ops++;
		if (n == 0 || n > TOPIC_MAX_IN)
			return bad(p, field, ".in", "must be an array of 1 to %d values",
				   TOPIC_MAX_IN);
		for (size_t i = 0; header && i < n; i++)
			if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
				return bad(p, field, ".in", "must hold strings (header values)");
	}
	if (json_object_object_get_ex(c, "exists", &v)) {
		ops++;
		if (!json_object_is_type(v, json_type_boolean))
			return bad(p, field, ".exists", "must be true or false");
	}
	if (ops != 1)
		return bad(p, field, "", "give exactly one of equals, in and exists");
	return 0;
}

int topic_filter_check(struct json_object *filter, const char *field, struct problem *p)
{
	size_t n;

	if (!json_object_is_type(filter, json_type_array))
		return condition_check(filter, field, p);
	n = json_object_array_length(filter);
	if (n == 0 || n > TOPIC_MAX_CONDITIONS)
		return bad(p, field, "", "must be a condition or an array of 1 to %d conditions",
			   TOPIC_MAX_CONDITIONS);
	for (size_t i = 0; i < n; i++) {
		char f[256];

		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (condition_check(json_object_array_get_idx(filter, i), f, p) != 0)
			return -1;
	}
	return 0;
}

/* The message header named name (case-insensitive) as a JSON string, borrowed; NULL if none. */
static struct json_object *header_of(struct json_object *headers, const char *name)
{
	if (headers == NULL || !json_object_is_type(headers, json_type_object))
		return NULL;
	json_object_object_foreach (headers, k, v) {
		if (strcasecmp(k, name) == 0)
			return v;
	}
	return NULL;
}

static bool condition_match(struct json_object *c, struct json_object *headers,
			    struct json_object *body)
{
	struct json_object *sel, *val = NULL, *op;
	bool found;

	if (json_object_object_get_ex(c, "header", &sel)) {
		val = header_of(headers, json_object_get_string(sel));
		found = val != NULL;
	} else {
		found = json_object_object_get_ex(c, "json", &sel) && body != NULL &&
			topic_pointer_get(body, json_object_get_string(sel), &val);
	}
	if (json_object_object_get_ex(c, "exists", &op))
		return found == (json_object_get_boolean(op) != 0);
	if (!found)
		return false;
	if (json_object_object_get_ex(c, "equals", &op))
		return json_equal(val, op);
	if (json_object_object_get_ex(c, "in", &op)) {
		for (size_t i = 0; i < json_object_array_length(op); i++)
			if (json_equal(val, json_object_array_get_idx(op, i)))
				return true;
	}
	return false;
}

bool topic_filter_match(struct json_object *filter, struct json_object *headers,
			struct json_object *body)
{
	if (filter == NULL)
		return true;
	if (!json_object_is_type(filter, json_type_array))
		return condition_match(filter, headers, body);
	for (size_t i = 0; i < json_object_array_length(filter); i++)
		if (!condition_match(json_object_array_get_idx(filter, i), headers, body))
			return false;
	return true;
}

/* a + b as paths: one '/' where a ends with one and b starts with one. New string. */
static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (n > 0 && a[n - 1] == '/' && b[0] == '/')
		n--;
	return xasprintf("%.*s%s", (int)n, a, b);
}

/* The target URL with path appended to its path (its query kept). New string, or NULL. */
static char *url_join(const char *url, const char *path)
{
	CURLU *u = curl_url();
	char *old = NULL, *out = NULL, *joined = NULL, *res = NULL;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &old, 0) != CURLUE_OK)
		goto out;
	joined = path_join(old, path);
	if (curl_url_set(u, CURLUPART_PATH, joined, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
		goto out;
	res = xstrdup(out);
out:
	curl_free(out);
	free(joined);
	curl_free(old);
	curl_url_cleanup(u);
	return res;
}

struct json_object *topic_instruction(struct json_object *msg, struct json_object *spec,
				      const char *prefix, struct problem *p)
{
	struct json_object *o = json_object_new_object();
	struct json_object *hdrs = json_object_new_object();
	struct json_object *mh = NULL, *sh = NULL, *mpath = NULL, *v;

	json_object_object_get_ex(spec, "headers", &sh);
	json_object_object_foreach (msg, mk, mv) {
		if (strcmp(mk, "headers") == 0)
			mh = mv;
		else if (strcmp(mk, "path") == 0)
			mpath = mv;
		else
			json_object_object_add(o, mk, json_object_get(mv));
	}
	if (mh != NULL && json_object_is_type(mh, json_type_object)) {
		json_object_object_foreach (mh, hk, hv) {
			if (header_of(sh, hk) == NULL)
				json_object_object_add(hdrs, hk, json_object_get(hv));
		}
	}
	if (sh != NULL && json_object_is_type(sh, json_type_object)) {
		json_object_object_foreach (sh, hk, hv) {
			json_object_object_add(hdrs, hk, json_object_get(hv));
		}
	}
	json_object_object_foreach (spec, sk, sv) {
		if (strcmp(sk, "headers") != 0 && strcmp(sk, "path") != 0)
			json_object_object_add(o, sk, json_object_get(sv));
	}
	if (json_object_object_length(hdrs) > 0)
		json_object_object_add(o, "headers", hdrs);
	else
		json_object_put(hdrs);
	if (mpath != NULL && !json_object_is_type(mpath, json_type_string))
		mpath = NULL; /* the message was checked: cannot happen */
	if (json_object_object_get_ex(spec, "target", &v)) {
		if (mpath != NULL) {
			char *url =
				url_join(json_object_get_string(v), json_object_get_string(mpath));

			if (url == NULL) {
				p->status = 409;
				snprintf(p->field, sizeof(p->field), "%starget", prefix);
				snprintf(p->detail, sizeof(p->detail),
					 "%s: the message's path cannot be appended to this URL",
					 p->field);
				json_object_put(o);
				return NULL;
			}
			json_object_object_add(o, "target", json_object_new_string(url));
			free(url);
		}
	} else {
		struct json_object *sp = NULL;
		const char *a, *b;

		json_object_object_get_ex(spec, "path", &sp);
		a = sp != NULL ? json_object_get_string(sp) : "";
		b = mpath != NULL ? json_object_get_string(mpath) : "";
		if (*a != '\0' || *b != '\0') {
			char *joined = path_join(a, b);

			json_object_object_add(o, "path", json_object_new_string(joined));
			free(joined);
		}
	}
	return o;
}

/* "1500ms": a duration call_parse_duration reads back exactly. */
static struct json_object *duration_json(int64_t ms)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64 "ms", ms);
	return json_object_new_string(s);
}

struct json_object *topic_message_json(const struct call *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "method", json_object_new_string(c->method));
	if (c->query != NULL && c->query[0] != '\0')
		json_object_object_add(o, "query", json_object_new_string(c->query));
	if (c->headers != NULL && json_object_object_length(c->headers) > 0)
		json_object_object_add(o, "headers", json_object_get(c->headers));
	if (c->path != NULL)
		json_object_object_add(o, "path", json_object_new_string(c->path));
	if (c->body_type != NULL) {
		char *b64 = xmalloc(4 * ((c->body_len + 2) / 3) + 1);
		int n = EVP_EncodeBlock((unsigned char *)b64, c->body, (int)c->body_len);

		json_object_object_add(o, "body_base64", json_object_new_string_len(b64, n));
		free(b64);
	}
	if (c->has_not_before) {
		time_t secs = (time_t)(c->not_before_us / 1000000);
		struct tm tm;
		char t[64];

		gmtime_r(&secs, &tm);
		snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(c->not_before_us % 1000000));
		json_object_object_add(o, "not_before", json_object_new_string(t));
	}
	if (c->has_delay)
		json_object_object_add(o, "delay", duration_json(c->delay_ms));
	if (c->expires_in_ms > 0)
		json_object_object_add(o, "expires_in", duration_json(c->expires_in_ms));
	if (c->correlation_id != NULL)
		json_object_object_add(o, "correlation_id",
				       json_object_new_string(c->correlation_id));
	if (c->callback_url != NULL)
		json_object_object_add(o, "callback", json_object_new_string(c->callback_url));
	if (c->failure_callback_url != NULL)
		json_object_object_add(o, "failure_callback",
				       json_object_new_string(c->failure_callback_url));
	if (c->max_attempts >= 0 || c->retry_initial_ms >= 0 || c->retry_max_ms >= 0 ||
	    c->retry_on != NULL || c->give_up_on != NULL) {
		struct json_object *r = json_object_new_object();

		if (c->retry_on != NULL)
			json_object_object_add(r, "on", json_object_get(c->retry_on));
		if (c->give_up_on != NULL)
			json_object_object_add(r, "give_up_on", json_object_get(c->give_up_on));

		if (c->max_attempts >= 0)
			json_object_object_add(r, "max_attempts",
					       json_object_new_int64(c->max_attempts));
		if (c->retry_initial_ms >= 0)
			json_object_object_add(r, "initial", duration_json(c->retry_initial_ms));
		if (c->retry_max_ms >= 0)
			json_object_object_add(r, "max", duration_json(c->retry_max_ms));
		json_object_object_add(o, "retry", r);
	}
	if (c->timeout_ms >= 0)
		json_object_object_add(o, "timeout", duration_json(c->timeout_ms));
	if (c->connect_timeout_ms >= 0)
		json_object_object_add(o, "connect_timeout", duration_json(c->connect_timeout_ms));
	if (c->priority != 0)
		json_object_object_add(o, "priority", json_object_new_int64(c->priority));
	return o;
}

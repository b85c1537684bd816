/* http: request/response structs for handlers, problem+json, and RFC 9110 syntax checks. */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

void req_init(struct req *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->method = "";
}

void req_reset(struct req *rq)
{
	free(rq->path);
	free(rq->mount);
	free(rq->query);
	free(rq->body);
	req_init(rq);
}

const char *req_param(const struct req *rq, const char *name)
{
	size_t n = strlen(name);

	if (rq->params == NULL)
		return NULL;
	for (char **p = rq->params; *p != NULL; p++)
		if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

void resp_init(struct resp *rs)
{
	rs->status = 0;
	buf_init(&rs->headers);
	rs->body = NULL;
	rs->body_len = 0;
	rs->content_type = NULL;
}

void resp_reset(struct resp *rs)
{
	buf_cleanup(&rs->headers);
	free(rs->body);
	resp_init(rs);
}

void resp_header(struct resp *rs, const char *name, const char *fmt, ...)
{
	char value[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	/* Values come from our own code, but never let a CR/LF split the header block. */
	for (char *p = value; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	buf_printf(&rs->headers, "%s: %s\r\n", name, value);
}

static void set_body(struct resp *rs, const char *s, size_t len)
{
	free(rs->body);
	rs->body = xstrndup(s, len);
	rs->body_len = len;
}

void resp_json(struct resp *rs, int status, struct json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	rs->status = status;
	rs->content_type = "application/json";
	set_body(rs, s, len);
}

void resp_json_text(struct resp *rs, int status, struct buf *b)
{
	free(rs->body);
	rs->body = buf_take(b, &rs->body_len);
	rs->status = status;
	rs->content_type = "application/json";
}

/* Replaces, in place, each byte of s that does not begin a well-formed UTF-8 sequence by '?'. */
static void utf8_scrub(char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t n = http_utf8_len(s + i, len - i);

		if (n == 0)
			s[i++] = '?';
		else
			i += n;
	}
}

void resp_problem(struct resp *rs, int status, const char *field, const char *fmt, ...)
{
	char detail[1024];
	struct json_object *o = json_object_new_object();
	va_list ap;
	size_t len;
	const char *s;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/* Field and detail quote the input (field names, paths), and a long one is cut at any
	 * byte, also inside a character: the answer stays UTF-8 JSON (RFC 8259 section 8.1). */
	utf8_scrub(detail);
	json_object_object_add(o, "type", json_object_new_string("about:blank"));
	json_object_object_add(o, "title", json_object_new_string(http_reason(status)));
	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	if (field != NULL) {
		char *f = xstrdup(field);

		utf8_scrub(f);
		json_object_object_add(o, "field", json_object_new_string(f));
		free(f);
	}
	s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	rs->status = status;
	rs->content_type = "application/problem+json";
	set_body(rs, s, len);
	json_object_put(o);
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default:
		return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
	}
}

bool http_token_valid(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (!(isalnum(c) && c < 0x80) && strchr(extra, c) == NULL)
			return false;
	}
	return n > 0 && n <= 256;
}

size_t http_utf8_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char c;
	size_t n;
	unsigned int cp;

	if (len == 0)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return 0; /* continuation byte first, 0xc0/0xc1 overlong, or > 0xf4 */
	}
	if (len <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	/* Overlong forms, code points past U+10FFFF, and UTF-16 surrogates (CESU-8's way of
	 * writing U+10000 and up, or a lone half) are not UTF-8 (RFC 3629 section 3). */
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

bool http_utf8_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = http_utf8_len(s + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

bool http_value_valid(const char *s, size_t len)
{
	if (len > 8192 || !http_utf8_valid(s, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* Header names compare without case, and with '-' and '_' as one: CGI spells both as '_'
 * (RFC 3875 4.1.18), so a target behind CGI reads "Proxy_Connection" as Proxy-Connection. */
static int name_fold(unsigned char c)
{
	int f = tolower(c);

	return f == '_' ? '-' : f;
}

/* The first n bytes of a (which has them) are those of the string b. */
static bool name_eq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] == '\0' ||
		    name_fold((unsigned char)a[i]) != name_fold((unsigned char)b[i]))
			return false;
	return true;
}

/* a[0..alen) is the whole string b. */
static bool name_eq(const char *a, size_t alen, const char *b)
{
	return name_eq_n(a, b, alen) && b[alen] == '\0';
}

bool http_header_hop(const char *name)
{
	static const char *const hop[] = {
		"Connection",
		"Keep-Alive",
		"Proxy-Connection",
		"Proxy-Authenticate",
		"Proxy-Authorization",
		"Proxy", /* httpoxy: HTTP_PROXY at a CGI target */
		"TE",
		"Trailer",
		"Trailers",
		"Transfer-Encoding",
		"Upgrade",
		"Host",
		"Content-Length",
		"Expect",
	};

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (name_eq(hop[i], strlen(hop[i]), name))
			return true;
	return false;
}

bool http_header_reserved(const char *name)
{
	return http_header_hop(name) || name_eq_n("Async-", name, 6) ||
	       name_eq_n("webhook-", name, 8);
}

bool http_header_listed(const char *list, const char *name)
{
	const char *p = list != NULL ? list : "";

	while (*p != '\0') {
		size_t n;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ", \t");
		if (n > 0 && name_eq(p, n, name))
			return true;
		p += n;
	}
	return false;
}

void http_pct_encode(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((isalnum(c) && c < 0x80) || c == '-' || c == '.' || c == '_' || c == '~') {
			buf_append(b, &s[i], 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};

			buf_append(b, e, 3);
		}
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *http_pct_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int h, l;

		if (s[i] == '\0')
			goto bad;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (len - i < 3)
			goto bad;
		h = hexval((unsigned char)s[i + 1]);
		l = hexval((unsigned char)s[i + 2]);
		if (h < 0 || l < 0 || (h == 0 && l == 0))
			goto bad;
		out[o++] = (char)(h * 16 + l);
		i += 2;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *http_query_get(const char *query, const char *name)
{
	size_t nlen = strlen(name);

	for (const char *p = query; p != NULL && *p != '\0';) {
		const char *end = strchr(p, '&');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len >= nlen && strncmp(p, name, nlen) == 0 && (len == nlen || p[nlen] == '=')) {
			const char *v = len == nlen ? p + len : p + nlen + 1;
			size_t vlen = len == nlen ? 0 : len - nlen - 1;
			char *copy = xstrndup(v, vlen);
			char *out;

			for (char *t = copy; *t != '\0'; t++)
				if (*t == '+')
					*t = ' ';
			out = http_pct_decode(copy, vlen);
			free(copy);
			return out;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* http: the request a handler reads, the response it fills, and HTTP syntax checks (RFC 9110). */
#ifndef AG_HTTP_H
#define AG_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "xalloc.h"

struct json_object;

/* One request, as the accept loop filled it. Everything but params is owned by the struct and
 * released by req_reset (the one release point per request). */
struct req {
	char **params;	    /* CGI/FastCGI parameters, "NAME=value" strings, NULL-terminated;
			     * borrowed: libfcgi's (valid until FCGX_Finish_r), or environ */
	const char *method; /* REQUEST_METHOD; points into params */
	char *path;	    /* route path, still percent-encoded ("/v1/calls/...") */
	char *mount;	    /* prefix the web server mounted us under ("" at the root) */
	char *query;	    /* the query as sent (from REQUEST_URI, not the web server's
			     * normalised QUERY_STRING); "" when absent, NULL before the
			     * accept loop fills it */
	char *body;	    /* request body, NUL-terminated; NULL when empty */
	size_t body_len;
};

/* The response a handler builds; the accept loop writes it out and calls resp_reset. */
struct resp {
	int status;	    /* 0 until set */
	struct buf headers; /* "Name: value\r\n" lines */
	char *body;	    /* owned */
	size_t body_len;
	const char *content_type; /* static string */
};

void req_init(struct req *rq);
void req_reset(struct req *rq);
/* Returns the parameter's value (borrowed from rq), or NULL when absent. */
const char *req_param(const struct req *rq, const char *name);

void resp_init(struct resp *rs);
void resp_reset(struct resp *rs);
void resp_header(struct resp *rs, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets status and a JSON body (the object is only read; the caller still owns it). */
void resp_json(struct resp *rs, int status, struct json_object *o);
/* Sets status and a JSON body already written as text: takes b's data (b is left empty). */
void resp_json_text(struct resp *rs, int status, struct buf *b);
/* Sets an RFC 9457 application/problem+json answer. field (may be NULL) names the offending
 * input and is also the "field" member; detail is printf-formatted. */
void resp_problem(struct resp *rs, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The reason phrase for a status code ("Accepted"). */
const char *http_reason(int status);

/* RFC 9110 5.6.2 token characters only, 1..256 bytes. */
bool http_token_valid(const char *s);
/* The length (1 to 4) of the well-formed UTF-8 sequence s starts with, or 0 when s[0..len)
 * does not start with one (bad lead byte, cut short, overlong, surrogate, past U+10FFFF). */
size_t http_utf8_len(const char *s, size_t len);
/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
bool http_utf8_valid(const char *s, size_t len);
/* A field value: UTF-8 (it is stored as JSON text) without CR, LF, NUL or other control
 * characters except HTAB; at most 8 KiB. */
bool http_value_valid(const char *s, size_t len);
/* Headers about one hop, never forwarded from a client: hop-by-hop (RFC 9110 7.6.1: Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization), Host, Content-Length, Expect, and Proxy (httpoxy). Names compare without
 * case and with '-' and '_' as one, as CGI does. */
bool http_header_hop(const char *name);
/* Headers a client may not set on a call: http_header_hop, and the Async-* and webhook-*
 * headers the gateway itself sends. */
bool http_header_reserved(const char *name);
/* Whether name is in list, names separated by commas and/or spaces or tabs (a Connection header
 * value, or the deny_headers setting); compared as http_header_hop does. list may be NULL. */
bool http_header_listed(const char *list, const char *name);
/* Appends s percent-encoded for a query component (RFC 3986 unreserved characters kept). */
void http_pct_encode(struct buf *b, const char *s, size_t len);
/* Decodes %XX in s[0..len) into a new string (caller frees); NULL when a %XX is malformed or
 * decodes to NUL. '+' is kept as is. */
char *http_pct_decode(const char *s, size_t len) MUSTCHECK;
/* The value of the first `name=value` pair in an encoded query ("a=1&b=x%20y"; '+' is a
 * space), decoded into a new string (caller frees); NULL when absent or malformed. */
char *http_query_get(const char *query, const char *name) MUSTCHECK;

#endif

/* test_badinput: input that cannot hurt us. A table of bad requests to POST /v1/calls and to
 * transparent mode through lighttpd, each answered with problem+json naming the field and
 * writing no row; hop-by-hop and deny-listed headers left out in transparent mode; and the
 * FastCGI input itself (411, 413 unread, strict Content-Length) on the standalone socket and as
 * plain CGI, the socket's permissions, and httpoxy. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *url; /* lighttpd with spawned handlers */

#define JSON "application/json"
#define T "http://127.0.0.1:9" /* allowed by the test config; never called here */
#define A "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx" /* a good transparent-mode target */
#define B(s) s, sizeof(s) - 1			     /* a body literal, NUL bytes and all */

/* ---- generated bodies and headers -------------------------------------------------------- */

static char gen_buf[1200000];

/* 33 nested arrays in "body": one level past max_json_depth (32) with the instruction. */
static const char *gen_deep(size_t *len)
{
	size_t o = (size_t)snprintf(gen_buf, sizeof(gen_buf), "{\"target\":\"" T "\",\"body\":");

	for (int i = 0; i < 32; i++)
		gen_buf[o++] = '[';
	gen_buf[o++] = '1';
	for (int i = 0; i < 32; i++)
		gen_buf[o++] = ']';
	gen_buf[o++] = '}';
	*len = o;
	return gen_buf;
}

/* 65 headers: one more than max_headers. */
static const char *gen_many_headers(size_t *len)
{
	size_t o =
		(size_t)snprintf(gen_buf, sizeof(gen_buf), "{\"target\":\"" T "\",\"headers\":{");

	for (int i = 0; i < 65; i++)
		o += (size_t)snprintf(gen_buf + o, sizeof(gen_buf) - o, "%s\"X-H%d\":\"v\"",
				      i ? "," : "", i);
	o += (size_t)snprintf(gen_buf + o, sizeof(gen_buf) - o, "}}");
	*len = o;
	return gen_buf;
}

/* A body_text one byte over max_body_bytes (1M). */
static const char *gen_big_text(size_t *len)
{
	size_t o = (size_t)snprintf(gen_buf, sizeof(gen_buf),
				    "{\"target\":\"" T "\",\"body_text\":\"");

	memset(gen_buf + o, 'a', (1 << 20) + 1);
	o += (1 << 20) + 1;
	o += (size_t)snprintf(gen_buf + o, sizeof(gen_buf) - o, "\"}");
	*len = o;
	return gen_buf;
}

/* A transparent-mode body one byte over max_body_bytes. */
static const char *gen_big_raw(size_t *len)
{
	memset(gen_buf, 'b', (1 << 20) + 1);
	*len = (1 << 20) + 1;
	return gen_buf;
}

static char hdr_buf[70][320];
static const char *hdr_list[72];

/* An Idempotency-Key of 256 bytes (the limit is 255). */
static const char *const *hdr_long_key(void)
{
	char *h = hdr_buf[0];
	size_t o = (size_t)snprintf(h, sizeof(hdr_buf[0]), "Idempotency-Key: ");

	memset(h + o, 'k', 256);
	h[o + 256] = '\0';
	hdr_list[0] = h;
	hdr_list[1] = NULL;
	return hdr_list;
}

/* Both ways of saying when. */
static const char *const *hdr_delay_and_not_before(void)
{
	hdr_list[0] = "Async-Delay: 5s";
	hdr_list[1] = "Async-Not-Before: 1700000000";
	hdr_list[2] = NULL;
	return hdr_list;
}

/* 65 end-to-end headers in transparent mode. */
static const char *const *hdr_many(void)
{
	for (int i = 0; i < 65; i++) {
		snprintf(hdr_buf[i], sizeof(hdr_buf[i]), "X-H%d: v", i);
		hdr_list[i] = hdr_buf[i];
	}
	hdr_list[65] = NULL;
	return hdr_list;
}

/* ---- the table ---------------------------------------------------------------------------- */

struct row {
	const char *method;
	const char *path;
	const char *ctype;
	const char *body; /* NULL: none, or gen */
	size_t len;
	const char *(*gen)(size_t *len);
	const char *hdr; /* one extra request header, or NULL */
	const char *const *(*hgen)(void);
	int status;
	const char *field;  /* the "field" member, also named in "detail" */
	const char *detail; /* more text "detail" must hold, or NULL */
};

#define J(body, status, field, detail)                                                             \
	{                                                                                          \
		"POST", "/v1/calls", JSON, B(body), NULL, NULL, NULL, status, field, detail        \
	}
#define JH(body, hdr, status, field, detail)                                                       \
	{                                                                                          \
		"POST", "/v1/calls", JSON, B(body), NULL, hdr, NULL, status, field, detail         \
	}
#define JG(gen, status, field, detail)                                                             \
	{                                                                                          \
		"POST", "/v1/calls", JSON, NULL, 0, gen, NULL, NULL, status, field, detail         \
	}
#define TR(path, hdr, status, field, detail)                                                       \
	{                                                                                          \
		"POST", path, "text/plain", B("x"), NULL, hdr, NULL, status, field, detail         \
	}

static const struct row rows[] = {
	/* Malformed JSON and each strictness rule (jstrict). */
	J("{\"target\":", 400, "body", "ends early"),
	J("{\"target\":\"" T "\",}", 400, "body", "malformed JSON near byte"),
	J("{'target':\"" T "\"}", 400, "body", "single quotes"),
	J("{\"target\":\"" T "\"} trailing", 400, "body", "after the JSON document at byte 32"),
	J("{\"target\":\"" T "\"}{}", 400, "body", "after the JSON document"),
	J("{\"target\":\"" T "\",\"target\":\"" T "\"}", 400, "body",
	  "duplicate key \"target\" in the top-level object"),
	J("{\"target\":\"" T "\",\"\\u0074arget\":\"" T "\"}", 400, "body",
	  "duplicate key \"target\""),
	J("[{\"target\":\"" T "\",\"headers\":{\"X-A\":\"1\",\"x-b\":\"2\",\"X-A\":\"3\"}}]", 400,
	  "body", "duplicate key \"X-A\" in the object at [0].headers"),
	J("{\"target\":\"" T "\",\"body\":{\"n\":NaN}}", 400, "body", "NaN and Infinity"),
	J("{\"target\":\"" T "\",\"body\":[1,Infinity]}", 400, "body", "at body[1]"),
	J("{\"target\":\"" T "\",\"body\":-Infinity}", 400, "body", "NaN and Infinity"),
	J("{\"target\":\"" T "\",\"body\":{\"n\":9223372036854775808}}", 400, "body",
	  "outside the 64-bit range"),
	J("{\"target\":\"" T "\",\"retry\":{\"max_attempts\":-99999999999999999999}}", 400, "body",
	  "at retry.max_attempts"),
	J("{\"target\":\"" T "\",\"body\":1e400}", 400, "body", "too large for a double"),
	J("{\"target\":\"" T "\",\"body\":[1.]}", 400, "body", "malformed number"),
	J("{\"target\":\"" T "\",\"body_text\":\"\xff\"}", 400, "body", "not UTF-8 at byte"),
	J("{\"target\":\"" T "\",\"body_text\":\"\xed\xa0\xbd\xed\xb8\x80\"}", 400, "body",
	  "not UTF-8"), /* CESU-8 */
	J("{\"target\":\"" T "\",\"body_text\":\"\xc0\xaf\"}", 400, "body", "not UTF-8"),
	J("{\"target\":\"" T "\",\"body_text\":\"\\ud800\"}", 400, "body",
	  "unpaired surrogate \\ud800 in body_text"),
	J("{\"target\":\"" T "\",\"headers\":{\"X-\\udc00\":\"1\"}}", 400, "body",
	  "in a key of the object at headers"),
	J("{\"target\":\"" T "\",\"body_text\":\"a\\u0000b\"}", 400, "body", "\\u0000 (NUL)"),
	J("{\"target\":\"" T "\",\"headers\":{\"X\\u0000\":\"1\"}}", 400, "body", "\\u0000 (NUL)"),
	J("{\"target\":\"" T "\",\"body_text\":\"a\0b\"}", 400, "body", "NUL byte inside a string"),
	J("{\"target\":\"" T "\",\"body_text\":\"a\tb\"}", 400, "body", "control character (0x09)"),
	JG(gen_deep, 400, "body", "nesting deeper than 32"),
	J("null", 400, "body", "null"),
	J("", 400, "body", NULL),
	/* Types, fields and their combinations. */
	J("{\"target\":42}", 400, "target", "string"),
	J("{\"target\":\"" T "\",\"method\":1}", 400, "method", NULL),
	J("{\"target\":\"" T "\",\"colour\":\"blue\"}", 400, "colour", "unknown field"),
	J("{\"target\":\"" T "\",\"function\":\"resize\"}", 400, "function", "not both"),
	J("{\"body\":{}}", 400, "target", NULL),
	J("{\"target\":\"" T "\",\"path\":\"/x\"}", 400, "path", "function"),
	J("{\"target\":\"" T "\",\"method\":\"FETCH\"}", 400, "method", NULL),
	J("[{\"target\":\"" T "\"},{\"target\":\"ftp://127.0.0.1/\"}]", 400, "[1].target", NULL),
	J("[1]", 400, "[0]", NULL),
	J("[]", 400, "body", NULL),
	/* URLs: schemes, credentials, and addresses calls may not reach. */
	J("{\"target\":\"ftp://127.0.0.1/x\"}", 400, "target", "http"),
	J("{\"target\":\"file:///etc/passwd\"}", 400, "target", "http"),
	J("{\"target\":\"gopher://127.0.0.1:70/\"}", 400, "target", "http"),
	J("{\"target\":\"http://user:pw@127.0.0.1:9/\"}", 400, "target", "credentials"),
	J("{\"target\":\"http://10.0.0.1/\"}", 400, "target", "10.0.0.1"),
	J("{\"target\":\"http://169.254.169.254/latest/meta-data\"}", 400, "target", NULL),
	J("{\"target\":\"http://[::1]:9/\"}", 400, "target", NULL),
	J("{\"target\":\"http://0x7f000002/\"}", 400, "target", NULL),
	J("{\"target\":\"" T "\",\"callback\":\"http://192.168.1.1/\"}", 400, "callback", NULL),
	/* Durations and times. */
	J("{\"target\":\"" T "\",\"delay\":\"5 parsecs\"}", 400, "delay", NULL),
	J("{\"target\":\"" T "\",\"timeout\":\"0s\"}", 400, "timeout", NULL),
	J("{\"target\":\"" T "\",\"delay\":\"5s\",\"not_before\":1700000000}", 400, "delay",
	  "not_before"),
	J("{\"target\":\"" T "\",\"not_before\":\"2030-02-30T00:00:00Z\"}", 400, "not_before",
	  NULL),
	/* Per-call controls (sql/005_call_controls.sql). */
	J("{\"target\":\"" T "\",\"retry\":{\"on\":[404,\"2xx\"]}}", 400, "retry.on[1]",
	  "2xx is success"),
	J("{\"target\":\"" T "\",\"retry\":{\"on\":\"5xx\"}}", 400, "retry.on", "an array"),
	J("{\"target\":\"" T "\",\"retry\":{\"give_up_on\":[600]}}", 400, "retry.give_up_on[0]",
	  NULL),
	J("{\"target\":\"" T "\",\"connect_timeout\":\"10ms\"}", 400, "connect_timeout", NULL),
	J("{\"target\":\"" T "\",\"timeout\":\"5s\",\"connect_timeout\":\"6s\"}", 400,
	  "connect_timeout", "longer than the timeout"),
	J("[{\"target\":\"" T "\"},{\"target\":\"" T "\",\"timeout\":\"2s\",\"connect_timeout\":"
	  "\"3s\"}]",
	  400, "[1].connect_timeout", NULL),
	J("{\"target\":\"" T "\",\"debounce_key\":\"\"}", 400, "debounce_key", NULL),
	J("{\"target\":\"" T "\",\"debounce_key\":[\"k\"]}", 400, "debounce_key", NULL),
	J("[{\"target\":\"" T "\",\"debounce_key\":\"k\"},{\"target\":\"" T "\","
	  "\"debounce_key\":\"k\"}]",
	  400, "[1].debounce_key", "once"),
	/* Headers: count, syntax, reserved, denied (deny_headers = Cookie by default). */
	JG(gen_many_headers, 400, "headers", "more than 64"),
	J("{\"target\":\"" T "\",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}", 400, "headers.X-A",
	  "CR, LF"),
	J("{\"target\":\"" T "\",\"headers\":{\"X-A\":\"a\\nb\"}}", 400, "headers.X-A", NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"X A\":\"1\"}}", 400, "headers.X A", "token"),
	J("{\"target\":\"" T "\",\"headers\":{\"X:A\":\"1\"}}", 400, "headers.X:A", "token"),
	J("{\"target\":\"" T "\",\"headers\":{\"Host\":\"evil\"}}", 400, "headers.Host", NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}", 400,
	  "headers.Transfer-Encoding", NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"content_length\":\"5\"}}", 400,
	  "headers.content_length", NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"Keep-Alive\":\"5\"}}", 400, "headers.Keep-Alive",
	  NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"Proxy\":\"http://evil/\"}}", 400, "headers.Proxy",
	  NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"Async-Call-Id\":\"x\"}}", 400,
	  "headers.Async-Call-Id", NULL),
	J("{\"target\":\"" T "\",\"headers\":{\"Cookie\":\"sid=1\"}}", 400, "headers.Cookie",
	  "deny_headers"),
	J("{\"target\":\"" T "\",\"callback\":{\"url\":\"" T
	  "/cb\",\"headers\":{\"COOKIE\":\"a\"}}}",
	  400, "callback.headers.COOKIE", "deny_headers"),
	J("{\"target\":\"" T "\",\"failure_callback\":{\"url\":\"" T
	  "/cb\",\"headers\":{\"cookie\":\"a\"}}}",
	  400, "failure_callback.headers.cookie", "deny_headers"),
	J("{\"target\":\"" T "\",\"failure_callback\":{\"url\":\"" T
	  "/cb\",\"headers\":{\"Upgrade\":\"h2c\"}}}",
	  400, "failure_callback.headers.Upgrade", NULL),
	/* Bodies. */
	J("{\"target\":\"" T "\",\"body\":{},\"body_base64\":\"AAAA\"}", 400, "body_base64",
	  "at most one"),
	J("{\"target\":\"" T "\",\"body_base64\":\"A-B_\"}", 400, "body_base64", "base64"),
	J("{\"target\":\"" T "\",\"body_base64\":\"YWJj\\n\"}", 400, "body_base64", NULL),
	JG(gen_big_text, 413, "body_text", NULL),
	{"POST", "/v1/calls", "text/plain", B("{}"), NULL, NULL, NULL, 415, "Content-Type", NULL},
	{"POST", "/v1/calls", "application/json; charset=latin1", B("{}"), NULL, NULL, NULL, 415,
	 "Content-Type", NULL},
	{"POST", "/v1/calls", "application/jsonx", B("{}"), NULL, NULL, NULL, 415, "Content-Type",
	 NULL},
	/* Idempotency-Key. */
	JH("{\"target\":\"" T "\"}", "Idempotency-Key: k\xff", 400, "Idempotency-Key", NULL),
	{"POST", "/v1/calls", JSON, B("{\"target\":\"" T "\"}"), NULL, NULL, hdr_long_key, 400,
	 "Idempotency-Key", "255"},

	/* Transparent mode: targets. */
	TR("/v1/async/", NULL, 400, "path", NULL),
	TR("/v1/async/ftp%3A%2F%2F127.0.0.1%2Fx", NULL, 400, "target", NULL),
	TR("/v1/async/file%3A%2F%2F%2Fetc%2Fpasswd", NULL, 400, "target", NULL),
	TR("/v1/async/gopher%3A%2F%2F127.0.0.1%2F", NULL, 400, "target", NULL),
	TR("/v1/async/http%3A%2F%2Fu%3Ap%40127.0.0.1%3A9%2F", NULL, 400, "target", "credentials"),
	TR("/v1/async/http%3A%2F%2F10.0.0.1%2Fx", NULL, 400, "target", NULL),
	TR("/v1/async/http%3A%2F%2F169.254.169.254%2Flatest", NULL, 400, "target", NULL),
	TR("/v1/async/http%3A%2F%2F%5B%3A%3A1%5D%2Fx", NULL, 400, "target", NULL),
	TR("/v1/async/http%3A%2F%2F0x7f000002%2Fx", NULL, 400, "target", NULL),
	TR("/v1/async/bad%21name/x", NULL, 400, "function", NULL),
	TR("/v1/async/no-such-function/x", NULL, 400, "function", NULL),
	TR("/v1/async/fn/..%2Fadmin", NULL, 400, "path", NULL),
	TR(A "?q=caf\xc3\xa9", NULL, 400, "query", NULL),
	/* Transparent mode: control headers. */
	TR(A, "Async-Delay: soon", 400, "Async-Delay", NULL),
	TR(A, "Async-Delay: -5s", 400, "Async-Delay", NULL),
	TR(A, "Async-Not-Before: 2030-13-01T00:00:00Z", 400, "Async-Not-Before", NULL),
	TR(A, "Async-Max-Attempts: 0", 400, "Async-Max-Attempts", NULL),
	TR(A, "Async-Max-Attempts: 3x", 400, "Async-Max-Attempts", NULL),
	TR(A, "Async-Callback: http://10.0.0.1/", 400, "Async-Callback", NULL),
	TR(A, "Async-Failure-Callback: ftp://127.0.0.1/", 400, "Async-Failure-Callback", NULL),
	TR(A, "Async-Timeout: 1ms", 400, "Async-Timeout", NULL),
	TR(A, "Async-Expires-In: never", 400, "Async-Expires-In", NULL),
	TR(A, "Async-Retry-Initial: 99999d", 400, "Async-Retry-Initial", NULL),
	TR(A, "Async-Correlation-Id: order-\xff", 400, "Async-Correlation-Id", NULL),
	TR(A, "Async-Retry-On: 404, 2xx", 400, "Async-Retry-On", NULL),
	TR(A, "Async-Give-Up-On: fivehundred", 400, "Async-Give-Up-On", NULL),
	TR(A, "Async-Connect-Timeout: 31m", 400, "Async-Connect-Timeout", NULL),
	TR(A, "Async-Connect-Timeout: 40s", 400, "Async-Connect-Timeout",
	   "longer than the timeout"),
	TR(A, "Async-Debounce-Key: k\xff", 400, "Async-Debounce-Key", NULL),
	TR(A, "Async-Colour: blue", 400, "Async-Colour", "unknown control header"),
	/* Transparent mode: headers, Idempotency-Key, body. */
	TR(A, "X-Name: caf\xe9", 400, "headers.X-Name", NULL),
	TR(A, "Webhook-Id: x", 400, "headers.Webhook-Id", NULL),
	TR(A, "Idempotency-Key: k\xff", 400, "Idempotency-Key", NULL),
	{"POST", A, "text/plain", B("x"), NULL, NULL, hdr_many, 400, "headers", "more than 64"},
	{"POST", A, "application/octet-stream", NULL, 0, gen_big_raw, NULL, NULL, 413, "body",
	 NULL},
	{"POST", A, "text/plain", B("x"), NULL, NULL, hdr_delay_and_not_before, 400, "Async-Delay",
	 "Async-Not-Before"},
	{"PROPFIND", A, "text/plain", B("x"), NULL, NULL, NULL, 400, "method", NULL},
};

static void t_table(void)
{
	long before = it_calls_count();
	struct hresp r;
	int n_json = 0, n_async = 0;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		const char *body = w->body;
		size_t len = w->len;
		const char *one[] = {w->hdr, NULL};
		const char *const *hdrs = w->hgen != NULL ? w->hgen() : one;
		char *ct;
		char field[256], detail[1100];
		long now;

		if (w->gen != NULL)
			body = w->gen(&len);
		if (strncmp(w->path, "/v1/async/", 10) == 0)
			n_async++;
		else
			n_json++;
		it_http(w->method, url, w->path, w->ctype, body, len, hdrs, &r);
		ct = it_header(&r, "Content-Type");
		snprintf(field, sizeof(field), "%s", it_jstr(&r, "field"));
		snprintf(detail, sizeof(detail), "%s", it_jstr(&r, "detail"));
		CHECK(r.status == w->status,
		      "row %zu (%s %.60s %.60s): status %ld, want %d: %.300s", i, w->method,
		      w->path, body != NULL ? body : "", r.status, w->status, r.body);
		CHECK(ct != NULL && strcmp(ct, "application/problem+json") == 0,
		      "row %zu: Content-Type %s", i, ct != NULL ? ct : "(none)");
		CHECK(strcmp(field, w->field) == 0, "row %zu (%.60s): field '%s', want '%s'", i,
		      body != NULL ? body : w->path, field, w->field);
		CHECK(strstr(detail, w->field) != NULL, "row %zu: detail '%s' does not name '%s'",
		      i, detail, w->field);
		CHECK(w->detail == NULL || strstr(detail, w->detail) != NULL,
		      "row %zu: detail '%s' does not hold '%s'", i, detail, w->detail);
		now = it_calls_count();
		CHECK(now == before, "row %zu wrote %ld row(s)", i, now - before);
		before = now;
		free(ct);
		it_hresp_free(&r);
	}
	printf("# %d rows to POST /v1/calls, %d to transparent mode\n", n_json, n_async);
	CHECK(n_json >= 40 && n_async >= 20, "the table is too short");
}

/* Good documents at the edges of the rules pass (so the table's refusals are the rules). */
static void t_edges_pass(void)
{
	static const char *const ok[] = {
		"{\"target\":\"" T
		"/e\",\"body\":{\"n\":9223372036854775807,\"m\":-9223372036854775808,"
		"\"s\":\"\\ud83d\\ude00 \\u00e9 caf\xc3\xa9\",\"a\":{\"a\":1},\"b\":{\"a\":2}}}",
		"{\"target\":\"" T
		"/e\",\"headers\":{\"Authorization\":\"Bearer for-the-target\"}}",
		" \r\n{\"target\":\"" T "/e\"}\n ",
	};
	struct hresp r;
	size_t o;
	char *deep;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		it_http("POST", url, "/v1/calls", JSON, ok[i], strlen(ok[i]), NULL, &r);
		CHECK(r.status == 202, "%.80s: %ld %s", ok[i], r.status, r.body);
		if (i == 0 && r.status == 202) {
			char id[64];

			snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
			it_field_is(id, "convert_from(body, 'UTF8')::jsonb->>'s'",
				    "\xf0\x9f\x98\x80 \xc3\xa9 caf\xc3\xa9");
			it_field_is(id, "convert_from(body, 'UTF8')::jsonb->>'m'",
				    "-9223372036854775808");
		}
		it_hresp_free(&r);
	}
	/* 32 levels in all (the instruction is one) pass; gen_deep's 33 did not. */
	deep = malloc(256);
	o = (size_t)snprintf(deep, 256, "{\"target\":\"" T "/deep\",\"body\":");
	for (int i = 0; i < 31; i++)
		deep[o++] = '[';
	deep[o++] = '1';
	for (int i = 0; i < 31; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	it_http("POST", url, "/v1/calls", JSON, deep, o, NULL, &r);
	CHECK(r.status == 202, "32 levels: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	free(deep);
}

/* Transparent mode leaves hop-by-hop, gateway and deny-listed headers out, without an error. */
static void t_transparent_drops(void)
{
	char authz[320];
	const char *hdrs[] = {"Cookie: sid=secret",
			      "X-Keep: yes",
			      "X-Secret: 1",
			      "Connection: X-Secret",
			      "Proxy: http://evil.example/",
			      "Keep-Alive: timeout=5",
			      "TE: trailers",
			      authz, /* the gateway's own credential */
			      "Prefer: respond-async",
			      NULL};
	struct hresp r;
	char id[64];

	snprintf(authz, sizeof(authz), "Authorization: Bearer %s", getenv("AG_API_KEY"));
	it_http("POST", url, A "/drop", "text/plain", "x", 1, hdrs, &r);
	CHECK(r.status == 202, "status %ld: %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	it_field_is(id, "headers->>'X-Keep'", "yes");
	it_field_is(id, "headers->>'Content-Type'", "text/plain");
	it_field_is(id,
		    "(SELECT COALESCE(string_agg(k, ',' ORDER BY k), '') FROM "
		    "jsonb_object_keys(headers) k "
		    "WHERE "
		    "lower(k) IN ('cookie', 'x-secret', 'proxy', 'keep-alive', 'te', 'connection', "
		    "'authorization', 'prefer', 'host', 'content-length'))",
		    "");
}

/* Runs the handler as plain CGI with vars ("NAME=value", NULL-terminated) and stdin fed from
 * body (n bytes; the pipe stays open when keep_open, so a read past it would block). */
static int run_cgi(const char *const *vars, const char *body, size_t n, bool keep_open, char *out,
		   size_t outsz)
{
	int in[2], o[2];
	pid_t pid;
	size_t got = 0;
	ssize_t k;
	int st;

	if (pipe(in) != 0 || pipe(o) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		static const char *const pass[] = {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER",
						   NULL};
		char *env[40];
		char pv[8][1024];
		char log[512];
		int ne = 0;
		int errfd;

		char authz[320];

		for (int i = 0; vars[i] != NULL && ne < 30; i++)
			env[ne++] = (char *)vars[i];
		/* The harness's API key, as it_http sends it. */
		if (getenv("AG_API_KEY") != NULL) {
			snprintf(authz, sizeof(authz), "HTTP_AUTHORIZATION=Bearer %s",
				 getenv("AG_API_KEY"));
			env[ne++] = authz;
		}
		for (int i = 0; pass[i] != NULL; i++) {
			if (getenv(pass[i]) == NULL)
				continue;
			snprintf(pv[i], sizeof(pv[i]), "%s=%s", pass[i], getenv(pass[i]));
			env[ne++] = pv[i];
		}
		env[ne++] = "GATEWAY_INTERFACE=CGI/1.1";
		env[ne] = NULL;
		snprintf(log, sizeof(log), "%s/log/badinput-cgi.log", getenv("AG_VAR"));
		errfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (errfd >= 0)
			dup2(errfd, 2);
		dup2(in[0], 0);
		dup2(o[1], 1);
		close(in[1]);
		close(o[0]);
		execle(getenv("AG_BIN"), "asyncgate.fcgi", (char *)NULL, env);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	if (n > 0 && write(in[1], body, n) < 0)
		return -1;
	if (!keep_open)
		close(in[1]);
	/* The answer comes before stdin is closed, or the handler waited for the body. */
	for (;;) {
		struct pollfd pfd = {o[0], POLLIN, 0};

		if (poll(&pfd, 1, 30000) <= 0)
			break;
		k = read(o[0], out + got, outsz - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = '\0';
	if (keep_open)
		close(in[1]);
	close(o[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- a raw FastCGI client for the standalone handler's socket ----------------------------- */

static size_t fcgi_record(unsigned char *out, int type, const void *data, size_t n)
{
	out[0] = 1; /* FCGI_VERSION_1 */
	out[1] = (unsigned char)type;
	out[2] = 0;
	out[3] = 1; /* request id 1 */
	out[4] = (unsigned char)(n >> 8);
	out[5] = (unsigned char)(n & 0xff);
	out[6] = 0;
	out[7] = 0;
	if (n > 0)
		memcpy(out + 8, data, n);
	return 8 + n;
}

static size_t fcgi_len(unsigned char *out, size_t n)
{
	if (n < 128) {
		out[0] = (unsigned char)n;
		return 1;
	}
	out[0] = (unsigned char)(0x80 | (n >> 24));
	out[1] = (unsigned char)(n >> 16);
	out[2] = (unsigned char)(n >> 8);
	out[3] = (unsigned char)n;
	return 4;
}

/* Sends one request (params "NAME=value"; body bytes on FCGI_STDIN, then the empty record
 * that ends the stream when end_stdin) and reads FCGI_STDOUT into out until FCGI_END_REQUEST.
 * Returns 0, or -1 when there was no whole answer within 30 s. */
static int fcgi_call(const char *const *params, const char *body, size_t n, bool end_stdin,
		     char *out, size_t outsz)
{
	static unsigned char req[70000];
	unsigned char pairs[16384];
	unsigned char begin[8] = {0, 1 /* FCGI_RESPONDER */, 0 /* no FCGI_KEEP_CONN */};
	struct sockaddr_un sa;
	size_t o = 0, np = 0, got = 0;
	unsigned char hdr[8];
	size_t have = 0;
	int fd, rc = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/run/standalone.sock", getenv("AG_VAR"));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		printf("# connect %s: %s\n", sa.sun_path, strerror(errno));
		goto out;
	}
	o += fcgi_record(req + o, 1 /* FCGI_BEGIN_REQUEST */, begin, sizeof(begin));
	for (int i = 0; params[i] != NULL; i++) {
		const char *eq = strchr(params[i], '=');
		size_t kl = (size_t)(eq - params[i]), vl = strlen(eq + 1);

		np += fcgi_len(pairs + np, kl);
		np += fcgi_len(pairs + np, vl);
		memcpy(pairs + np, params[i], kl);
		np += kl;
		memcpy(pairs + np, eq + 1, vl);
		np += vl;
	}
	o += fcgi_record(req + o, 4 /* FCGI_PARAMS */, pairs, np);
	o += fcgi_record(req + o, 4, NULL, 0);
	if (n > 0)
		o += fcgi_record(req + o, 5 /* FCGI_STDIN */, body, n);
	if (end_stdin)
		o += fcgi_record(req + o, 5, NULL, 0);
	if (write(fd, req, o) != (ssize_t)o)
		goto out;
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		size_t clen, plen;
		unsigned char rec[65536 + 256];
		ssize_t k;

		if (poll(&pfd, 1, 30000) <= 0) {
			printf("# no answer within 30 s (waiting for the body?)\n");
			goto out;
		}
		k = read(fd, hdr + have, sizeof(hdr) - have);
		if (k <= 0)
			goto out;
		have += (size_t)k;
		if (have < sizeof(hdr))
			continue;
		have = 0;
		clen = (size_t)hdr[4] << 8 | hdr[5];
		plen = hdr[6];
		for (size_t r = 0; r < clen + plen;) {
			k = read(fd, rec + r, clen + plen - r);
			if (k <= 0)
				goto out;
			r += (size_t)k;
		}
		if (hdr[1] == 6 /* FCGI_STDOUT */ && got + clen < outsz) {
			memcpy(out + got, rec, clen);
			got += clen;
		}
		if (hdr[1] == 3 /* FCGI_END_REQUEST */) {
			rc = 0;
			break;
		}
	}
out:
	out[got] = '\0';
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A CGI-style answer ("Status: 411 ...\r\nContent-Type: ...\r\n\r\n{json}"): status, problem
 * content type, and the field. */
static bool answer_is(const char *what, const char *out, int status, const char *field)
{
	char want[64];
	const char *body = strstr(out, "\r\n\r\n");
	struct json_object *o = body != NULL ? json_tokener_parse(body + 4) : NULL;
	struct json_object *f = NULL;
	bool ok;

	snprintf(want, sizeof(want), "Status: %d ", status);
	ok = CHECK(strncmp(out, want, strlen(want)) == 0, "%s: answer %.200s", what, out);
	ok = CHECK(strstr(out, "Content-Type: application/problem+json\r\n") != NULL,
		   "%s: not problem+json: %.200s", what, out) &&
	     ok;
	ok = CHECK(o != NULL && json_object_object_get_ex(o, "field", &f) &&
			   strcmp(json_object_get_string(f), field) == 0 &&
			   json_object_object_get_ex(o, "detail", &f) &&
			   strstr(json_object_get_string(f), field) != NULL,
		   "%s: field/detail should name %s: %.300s", what, field, body ? body : "") &&
	     ok;
	json_object_put(o);
	return ok;
}

/* 413 before the body is read: 50 MB announced, a few bytes sent, the stream left open. */
static void t_413_unread(void)
{
	const char *params[] = {"REQUEST_METHOD=POST",		 "REQUEST_URI=/v1/calls",
				"CONTENT_TYPE=application/json", "CONTENT_LENGTH=52428800",
				"SERVER_PROTOCOL=HTTP/1.1",	 NULL};
	char conf[512], confline[600];
	const char *vars[10];
	char out[8192];
	long before = it_calls_count();
	FILE *f;

	/* FastCGI, the standalone socket (max_request_bytes is 16M there). */
	CHECK(fcgi_call(params, "{\"target\"", 9, false, out, sizeof(out)) == 0,
	      "FastCGI: no answer to 50 MB announced");
	answer_is("FastCGI 50 MB", out, 413, "body");
	/* The handler serves the next request on its socket. */
	{
		const char *health[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/v1/health", NULL};

		CHECK(fcgi_call(health, NULL, 0, true, out, sizeof(out)) == 0 &&
			      strncmp(out, "Status: 200", 11) == 0,
		      "FastCGI after 413: %.200s", out);
	}
	/* Plain CGI with a 1 MB limit: stdin stays open and empty, so reading would block. */
	snprintf(conf, sizeof(conf), "%s/badinput.conf", getenv("AG_TMP"));
	f = fopen(conf, "w");
	CHECK(f != NULL, "cannot write %s", conf);
	if (f == NULL)
		return;
	fprintf(f, "max_request_bytes = 1M\nallow_targets = 127.0.0.1/32\n");
	fclose(f);
	snprintf(confline, sizeof(confline), "ASYNCGATE_CONF=%s", conf);
	vars[0] = confline;
	for (int i = 0; i < 4; i++)
		vars[1 + i] = params[i];
	vars[5] = NULL;
	run_cgi(vars, "{", 1, true, out, sizeof(out));
	answer_is("CGI 50 MB with a 1 MB limit", out, 413, "body");
	CHECK(it_calls_count() == before, "413s wrote rows");
}

/* No Content-Length but a body: 411. CONTENT_LENGTH itself is strict. */
static void t_length(void)
{
	static const struct {
		const char *what;
		const char *cl; /* CONTENT_LENGTH param, or NULL for none */
		const char *te; /* HTTP_TRANSFER_ENCODING, or NULL */
		const char *body;
		int status;
		const char *field;
	} cases[] = {
		{"no length, body bytes on the stream", NULL, NULL, "{\"target\":\"" T "\"}", 411,
		 "Content-Length"},
		{"no length, chunked", NULL, "chunked", "", 411, "Content-Length"},
		{"empty length, body bytes", "", NULL, "{}", 411, "Content-Length"},
		{"length with a sign", "+14", NULL, "{\"target\":1}", 400, "Content-Length"},
		{"negative length", "-1", NULL, "{}", 400, "Content-Length"},
		{"length with a space", " 2", NULL, "{}", 400, "Content-Length"},
		{"length not a number", "2x", NULL, "{}", 400, "Content-Length"},
		{"length too large to hold", "99999999999999999999999", NULL, "{}", 400,
		 "Content-Length"},
		{"fewer bytes than the length", "40", NULL, "{\"target\":\"" T "\"}", 400, "body"},
	};
	long before = it_calls_count();
	char out[8192];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char cl[128], te[128];
		const char *params[8];
		int k = 0;

		params[k++] = "REQUEST_METHOD=POST";
		params[k++] = "REQUEST_URI=/v1/calls";
		params[k++] = "CONTENT_TYPE=application/json";
		if (cases[i].cl != NULL) {
			snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%s", cases[i].cl);
			params[k++] = cl;
		}
		if (cases[i].te != NULL) {
			snprintf(te, sizeof(te), "HTTP_TRANSFER_ENCODING=%s", cases[i].te);
			params[k++] = te;
		}
		params[k] = NULL;
		CHECK(fcgi_call(params, cases[i].body, strlen(cases[i].body), true, out,
				sizeof(out)) == 0,
		      "FastCGI %s: no answer", cases[i].what);
		answer_is(cases[i].what, out, cases[i].status, cases[i].field);
	}
	/* Plain CGI: Transfer-Encoding without a length is 411 (stdin is not read past it). */
	{
		char confline[600];
		const char *vars[] = {confline,
				      "REQUEST_METHOD=POST",
				      "REQUEST_URI=/v1/calls",
				      "CONTENT_TYPE=application/json",
				      "HTTP_TRANSFER_ENCODING=chunked",
				      NULL};

		snprintf(confline, sizeof(confline), "ASYNCGATE_CONF=%s", getenv("ASYNCGATE_CONF"));
		/* The web server streams a chunked body and ends it (mod_cgid): the handler reads
		 * it to its end, drops it, and answers 411. */
		run_cgi(vars, "{}", 2, false, out, sizeof(out));
		answer_is("CGI chunked", out, 411, "Content-Length");
	}
	/* A GET without a length and without a body is fine on both. */
	{
		const char *params[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/v1/health", NULL};

		CHECK(fcgi_call(params, NULL, 0, true, out, sizeof(out)) == 0 &&
			      strncmp(out, "Status: 200", 11) == 0,
		      "FastCGI GET without a length: %.200s", out);
	}
	CHECK(it_calls_count() == before, "length problems wrote rows");
}

/* Through lighttpd a chunked request body is read whole by lighttpd, which then gives the
 * handler CONTENT_LENGTH: the handler sees an ordinary body (so 411 comes only from web servers
 * that stream, tested above on the FastCGI socket). */
static void t_chunked_through_lighttpd(void)
{
	const char *hdrs[] = {"Transfer-Encoding: chunked", NULL};
	long before = it_calls_count();
	struct hresp r;

	it_http("POST", url, "/v1/calls", JSON, B("{\"target\":\"ftp://x/\"}"), hdrs, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "target") == 0,
	      "chunked through lighttpd: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "wrote rows");
}

/* The standalone FastCGI socket is the owner's only (run.sh starts the handler with
 * --socket AG_VAR/run/standalone.sock; main_fcgi.c creates it under umask 0077). */
static void t_socket_mode(void)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/run/standalone.sock", getenv("AG_VAR"));
	CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	CHECK(S_ISSOCK(st.st_mode), "%s is not a socket", path);
	CHECK((st.st_mode & 077) == 0, "%s has mode %03o: group or others may connect", path,
	      (unsigned)(st.st_mode & 0777));
	CHECK(st.st_uid == getuid(), "%s is not ours", path);
}

/* httpoxy: a client's Proxy header reaches plain CGI as HTTP_PROXY; it is neither recorded
 * nor used (main_fcgi.c unsets it; the drainer sets CURLOPT_PROXY ""). */
static void t_httpoxy(void)
{
	char confline[600];
	const char *vars[] = {confline,
			      "REQUEST_METHOD=POST",
			      "REQUEST_URI=" A "/oxy",
			      "CONTENT_TYPE=text/plain",
			      "CONTENT_LENGTH=1",
			      "HTTP_PROXY=http://127.0.0.1:1/",
			      "HTTP_X_KEEP=1",
			      NULL};
	char out[8192];
	const char *id;
	char idc[64];

	snprintf(confline, sizeof(confline), "ASYNCGATE_CONF=%s", getenv("ASYNCGATE_CONF"));
	run_cgi(vars, "x", 1, false, out, sizeof(out));
	CHECK(strncmp(out, "Status: 202", 11) == 0, "CGI with HTTP_PROXY: %.300s", out);
	id = strstr(out, "\"id\":\"");
	snprintf(idc, sizeof(idc), "%.36s", id != NULL ? id + 6 : "");
	it_field_is(idc, "headers->>'X-Keep'", "1");
	it_field_is(idc, "headers ? 'Proxy'", "f");
}

int main(void)
{
	url = getenv("AG_URL");
	if (url == NULL || getenv("AG_VAR") == NULL) {
		printf("not ok - badinput: run me from tests/integration/run.sh\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("badinput: every bad row gets problem+json naming the field, no row", t_table);
	it_run("badinput: documents at the edges of the rules are accepted", t_edges_pass);
	it_run("badinput: transparent mode leaves hop-by-hop and denied headers out",
	       t_transparent_drops);
	it_run("badinput: 413 answered before the body is read (FastCGI, CGI)", t_413_unread);
	it_run("badinput: 411 without a length, strict CONTENT_LENGTH", t_length);
	it_run("badinput: chunked bodies through lighttpd arrive with a length",
	       t_chunked_through_lighttpd);
	it_run("badinput: the standalone socket is owner-only", t_socket_mode);
	it_run("badinput: httpoxy (HTTP_PROXY) is not recorded", t_httpoxy);
	curl_global_cleanup();
	return it_finish();
}

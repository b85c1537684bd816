/* test_call: call instructions from JSON and from transparent-mode requests, limits, and rows. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "call.h"
#include "conf.h"
#include "http.h"
#include "netpolicy.h"

#define T_2026_11_23_19 1795460400LL /* 2026-11-23T19:00:00Z */
#define DAY_MS 86400000LL

#include "callenv.c.inc"

/* Parses json and runs call_from_json on it. The caller cleans c up. */
static int from_json(struct call *c, const char *json, const struct call_env *e,
		     const char *prefix, struct problem *p)
{
	struct json_object *o;
	enum json_tokener_error jerr;
	int rc;

	o = json_tokener_parse_verbose(json, &jerr);
	if (o == NULL && strcmp(json, "null") != 0)
		fail_msg("test bug: not JSON (%s): %s", json_tokener_error_desc(jerr), json);
	call_init(c);
	memset(p, 0, sizeof(*p));
	rc = call_from_json(c, o, e, prefix, p);
	json_object_put(o);
	return rc;
}

static const char *json_text(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Table tests report every mismatch, then fail once at the end (errors counts them). */
static int errors;

static void mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mismatch(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("MISMATCH: %s\n", msg);
	errors++;
}

static void str_eq(const char *what, const char *json, const char *got, const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(got, want) != 0)
		mismatch("%s: %s is \"%s\", want \"%s\"", json, what, got ? got : "(NULL)",
			 want ? want : "(NULL)");
}

static void num_eq(const char *what, const char *json, int64_t got, int64_t want)
{
	if (got != want)
		mismatch("%s: %s is %lld, want %lld", json, what, (long long)got, (long long)want);
}

/* ---- invalid instructions: status and exact field ---------------------------------------- */

struct bad_case {
	const char *json;
	int status;
	const char *field;
};

static const struct bad_case bad_cases[] = {
	/* from the review: IDN spellings of loopback, dot segments, long backoffs */
	{ "{\"target\":\"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:8080/admin\"}", 400, "target" },
	{ "{\"target\":\"http://127\u30020\u30020\u30021/\"}", 400, "target" },
	{ "{\"target\":\"https://b\u00fccher.example/\"}", 400, "target" },
	{ "{\"target\":\"http://127.0.0.1./\"}", 400, "target" },
	{ "{\"target\":\"http://[::ffff:0:127.0.0.1]/\"}", 400, "target" },
	{ "{\"target\":\"http://[64:ff9b:1::a00:1]/\"}", 400, "target" },
	{ "{\"function\":\"fn\",\"path\":\"/../admin\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a/%2e%2E/admin\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a/./b\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a/.%2e\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/..%2Fadmin\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a%2F..%2Fb\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/caf\u00e9\"}", 400, "path" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"initial\":\"25d\"}}", 400, "retry.initial" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max\":\"26d\"}}", 400, "retry.max" },
	/* target / function / path */
	{ "{}", 400, "target" },
	{ "{\"method\":\"GET\"}", 400, "target" },
	{ "{\"target\":\"https://api.example.com/\",\"function\":\"fn\"}", 400, "function" },
	{ "{\"target\":\"https://api.example.com/\",\"path\":\"/x\"}", 400, "path" },
	{ "{\"path\":\"/x\"}", 400, "target" },
	{ "{\"target\":\"ftp://example.com/x\"}", 400, "target" },
	{ "{\"target\":\"file:///etc/passwd\"}", 400, "target" },
	{ "{\"target\":\"javascript:alert(1)\"}", 400, "target" },
	{ "{\"target\":\"gopher://example.com/\"}", 400, "target" },
	{ "{\"target\":\"https://user:pass@example.com/\"}", 400, "target" },
	{ "{\"target\":\"https://user@example.com/\"}", 400, "target" },
	{ "{\"target\":\"https://example.com/#frag\"}", 400, "target" },
	{ "{\"target\":\"http://127.0.0.1/\"}", 400, "target" },
	{ "{\"target\":\"http://127.0.0.1:8080/x\"}", 400, "target" },
	{ "{\"target\":\"http://0x7f000001/\"}", 400, "target" },  /* libcurl: 127.0.0.1 */
	{ "{\"target\":\"http://2130706433/\"}", 400, "target" },  /* libcurl: 127.0.0.1 */
	{ "{\"target\":\"http://0177.0.0.1/\"}", 400, "target" },  /* octal */
	{ "{\"target\":\"http://127.1/\"}", 400, "target" },
	{ "{\"target\":\"http://%31%32%37.0.0.1/\"}", 400, "target" },
	/* percent-encoded short and hex forms: libcurl decodes them after normalising IPv4, so
	 * the host arrives as "127.1" (found by tests/fuzz/fuzz_netpolicy) */
	{ "{\"target\":\"http://%31%32%37.1/\"}", 400, "target" },
	{ "{\"target\":\"http://%31%32%37.0:443/p\"}", 400, "target" },
	{ "{\"target\":\"http://%30x7f.1/\"}", 400, "target" },
	{ "{\"target\":\"http://%32130706433/\"}", 400, "target" },
	{ "{\"callback\":\"http://%31%36%39.254.43518/\",\"function\":\"f\"}", 400,
	  "callback" },
	{ "{\"target\":\"http://[::1]/\"}", 400, "target" },
	{ "{\"target\":\"http://[::ffff:127.0.0.1]/\"}", 400, "target" },
	{ "{\"target\":\"http://[fe80::1%25eth0]/\"}", 400, "target" },
	{ "{\"target\":\"http://localhost/\"}", 400, "target" },
	{ "{\"target\":\"http://LOCALHOST./\"}", 400, "target" },
	{ "{\"target\":\"http://a.localhost/\"}", 400, "target" },
	{ "{\"target\":\"http://169.254.169.254/latest/meta-data/\"}", 400, "target" },
	{ "{\"target\":\"http://10.0.0.1/\"}", 400, "target" },
	{ "{\"target\":\"http://0.0.0.0/\"}", 400, "target" },
	{ "{\"target\":\"/relative/path\"}", 400, "target" },
	{ "{\"target\":\"example.com/x\"}", 400, "target" },
	{ "{\"target\":\"https://\"}", 400, "target" },
	{ "{\"target\":\"\"}", 400, "target" },
	{ "{\"target\":\" https://example.com/\"}", 400, "target" },
	{ "{\"target\":\"https://example.com/a b\"}", 400, "target" },
	{ "{\"target\":\"https://example.com/a\\r\\nX-A: 1\"}", 400, "target" },
	{ "{\"target\":\"https://exa mple.com/\"}", 400, "target" },
	{ "{\"target\":\"http://example.com:99999/\"}", 400, "target" },
	{ "{\"target\":5}", 400, "target" },
	{ "{\"target\":null}", 400, "target" },
	{ "{\"function\":\"bad name\"}", 400, "function" },
	{ "{\"function\":\"\"}", 400, "function" },
	{ "{\"function\":\"-lead\"}", 400, "function" },
	{ "{\"function\":\"a/b\"}", 400, "function" },
	{ "{\"function\":[\"fn\"]}", 400, "function" },
	{ "{\"function\":\"fn\",\"path\":\"x\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a b\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a?b=1\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a#b\"}", 400, "path" },
	{ "{\"function\":\"fn\",\"path\":\"/a\\nb\"}", 400, "path" },
	/* method */
	{ "{\"target\":\"https://example.com/\",\"method\":\"FETCH\"}", 400, "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"\"}", 400, "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"CONNECT\"}", 400, "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"TRACE\"}", 400, "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"GET \"}", 400, "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"POSTPOSTPOSTPOSTPOST\"}", 400,
	  "method" },
	{ "{\"target\":\"https://example.com/\",\"method\":1}", 400, "method" },
	/* query */
	{ "{\"target\":\"https://example.com/\",\"query\":{\"a\":{\"b\":1}}}", 400, "query.a" },
	{ "{\"target\":\"https://example.com/\",\"query\":{\"a\":[{\"b\":1}]}}", 400, "query.a" },
	{ "{\"target\":\"https://example.com/\",\"query\":{\"a\":[[1]]}}", 400, "query.a" },
	{ "{\"target\":\"https://example.com/\",\"query\":5}", 400, "query" },
	{ "{\"target\":\"https://example.com/\",\"query\":\"a b\"}", 400, "query" },
	{ "{\"target\":\"https://example.com/\",\"query\":\"a#b\"}", 400, "query" },
	{ "{\"target\":\"https://example.com/\",\"query\":\"a=\\r\\n\"}", 400, "query" },
	/* headers */
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"a\\r\\nb\"}}", 400,
	  "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"a\\nb\"}}", 400,
	  "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"a\\rb\"}}", 400,
	  "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"a\\u0000b\"}}", 400,
	  "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"a\\u007fb\"}}", 400,
	  "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X A\":\"1\"}}", 400,
	  "headers.X A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X:A\":\"1\"}}", 400,
	  "headers.X:A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"\":\"1\"}}", 400, "headers" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"Connection\":\"close\"}}", 400,
	  "headers.Connection" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"Host\":\"evil.example\"}}", 400,
	  "headers.Host" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"content-length\":\"5\"}}", 400,
	  "headers.content-length" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"Content-Length\":\"5\"}}", 400,
	  "headers.Content-Length" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}",
	  400, "headers.Transfer-Encoding" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"Async-Foo\":\"1\"}}", 400,
	  "headers.Async-Foo" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"async-call-id\":\"1\"}}", 400,
	  "headers.async-call-id" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}}", 400,
	  "headers.x-a" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":1}}", 400, "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":{\"X-A\":null}}", 400, "headers.X-A" },
	{ "{\"target\":\"https://example.com/\",\"headers\":[\"X-A: 1\"]}", 400, "headers" },
	{ "{\"target\":\"https://example.com/\",\"headers\":\"X-A: 1\"}", 400, "headers" },
	/* bodies */
	{ "{\"target\":\"https://example.com/\",\"body\":{},\"body_text\":\"x\"}", 400,
	  "body_text" },
	{ "{\"target\":\"https://example.com/\",\"body_text\":\"x\",\"body_base64\":\"eA==\"}",
	  400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"eA==\",\"body\":1}", 400,
	  "body" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"abc\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"ab=c\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"a b=\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"====\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"A===\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"QQ==QQ==\"}", 400,
	  "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"QQ\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"QUJD\\n\"}", 400,
	  "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":\"QU-D\"}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_base64\":5}", 400, "body_base64" },
	{ "{\"target\":\"https://example.com/\",\"body_text\":{}}", 400, "body_text" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"GET\",\"body\":{\"a\":1}}", 400,
	  "body" },
	{ "{\"target\":\"https://example.com/\",\"method\":\"head\",\"body_text\":\"x\"}", 400,
	  "body" },
	/* timing */
	{ "{\"target\":\"https://example.com/\",\"delay\":\"5s\",\"not_before\":1795460400}", 400,
	  "delay" },
	{ "{\"target\":\"https://example.com/\",\"not_before\":1795460400,\"delay\":\"5s\"}", 400,
	  "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":\"-5s\"}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":-5}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":\"366d\"}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":31622400}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":\"1.5s\"}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":1.5}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"delay\":true}", 400, "delay" },
	{ "{\"target\":\"https://example.com/\",\"not_before\":\"yesterday\"}", 400,
	  "not_before" },
	{ "{\"target\":\"https://example.com/\",\"not_before\":\"2026-02-30T00:00:00Z\"}", 400,
	  "not_before" },
	{ "{\"target\":\"https://example.com/\",\"not_before\":\"2099-01-01T00:00:00Z\"}", 400,
	  "not_before" }, /* further ahead than max_delay */
	{ "{\"target\":\"https://example.com/\",\"not_before\":-1}", 400, "not_before" },
	{ "{\"target\":\"https://example.com/\",\"not_before\":1.5}", 400, "not_before" },
	{ "{\"target\":\"https://example.com/\",\"timeout\":\"0s\"}", 400, "timeout" },
	{ "{\"target\":\"https://example.com/\",\"timeout\":\"999ms\"}", 400, "timeout" },
	{ "{\"target\":\"https://example.com/\",\"timeout\":\"31m\"}", 400, "timeout" },
	{ "{\"target\":\"https://example.com/\",\"timeout\":\"\"}", 400, "timeout" },
	{ "{\"target\":\"https://example.com/\",\"expires_in\":\"0\"}", 400, "expires_in" },
	{ "{\"target\":\"https://example.com/\",\"expires_in\":\"401d\"}", 400, "expires_in" },
	/* retry */
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max_attempts\":0}}", 400,
	  "retry.max_attempts" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max_attempts\":101}}", 400,
	  "retry.max_attempts" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max_attempts\":\"5\"}}", 400,
	  "retry.max_attempts" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max_attempts\":2.5}}", 400,
	  "retry.max_attempts" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"attempts\":5}}", 400,
	  "retry.attempts" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"initial\":\"soon\"}}", 400,
	  "retry.initial" },
	{ "{\"target\":\"https://example.com/\",\"retry\":{\"max\":\"31d\"}}", 400, "retry.max" },
	{ "{\"target\":\"https://example.com/\",\"retry\":5}", 400, "retry" },
	/* unknown and malformed */
	{ "{\"target\":\"https://example.com/\",\"colour\":\"red\"}", 400, "colour" },
	{ "{\"target\":\"https://example.com/\",\"Target\":\"https://example.com/\"}", 400,
	  "Target" },
	/* a document that is not an object, or a field with an empty name: the field is "body",
	 * as h_calls_post names the document (they were "" with a detail of ": ..."; found by
	 * tests/fuzz/fuzz_call_json) */
	{ "[]", 400, "body" },
	{ "[{\"target\":\"https://example.com/\"}]", 400, "body" },
	{ "\"https://example.com/\"", 400, "body" },
	{ "42", 400, "body" },
	{ "null", 400, "body" },
	{ "true", 400, "body" },
	{ "{\"\":1}", 400, "body" },
	{ "{\"target\":\"https://example.com/\",\"\":\"x\"}", 400, "body" },
	/* correlation id */
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"a\\u0001b\"}", 400,
	  "correlation_id" },
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"a\\nb\"}", 400,
	  "correlation_id" },
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"\"}", 400, "correlation_id" },
	/* malformed UTF-8 that json-c's check lets through (overlong, surrogate, above U+10FFFF):
	 * PostgreSQL would refuse the row with a 500 (found by tests/fuzz/fuzz_call_json) */
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"a\xc0\xaf" "b\"}", 400,
	  "correlation_id" },
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"\xed\xa0\x80\"}", 400,
	  "correlation_id" },
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":\"\xf4\x90\x80\x80\"}", 400,
	  "correlation_id" },
	{ "{\"target\":\"https://example.com/\",\"query\":\"a=\xe0\x80\xaf\"}", 400, "query" },
	{ "{\"target\":\"https://example.com/\",\"query\":\"a=\xff\"}", 400, "query" },
	{ "{\"target\":\"https://example.com/\",\"correlation_id\":5}", 400, "correlation_id" },
	/* callbacks */
	{ "{\"target\":\"https://example.com/\",\"callback\":\"ftp://x\"}", 400, "callback" },
	{ "{\"target\":\"https://example.com/\",\"callback\":\"http://127.0.0.1/\"}", 400,
	  "callback" },
	{ "{\"target\":\"https://example.com/\",\"callback\":5}", 400, "callback" },
	{ "{\"target\":\"https://example.com/\",\"callback\":{\"url\":5}}", 400, "callback.url" },
	{ "{\"target\":\"https://example.com/\",\"callback\":{\"url\":\"https://c.example/\","
	  "\"headers\":{\"Host\":\"x\"}}}",
	  400, "callback.headers.Host" },
	{ "{\"target\":\"https://example.com/\",\"failure_callback\":{\"headers\":{}}}", 400,
	  "failure_callback.url" },
	{ "{\"target\":\"https://example.com/\",\"failure_callback\":{\"url\":\"https://c.example/"
	  "\",\"extra\":1}}",
	  400, "failure_callback.extra" },
	{ "{\"target\":\"https://example.com/\",\"failure_callback\":{\"url\":\"gopher://c/\"}}",
	  400, "failure_callback.url" },
};

static void test_from_json_invalid(void **state)
{
	(void)state;
	errors = 0;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct call c;
		struct problem p;
		char lead[220];

		if (from_json(&c, bc->json, &env, "", &p) != -1) {
			mismatch("accepted: %s", bc->json);
			call_cleanup(&c);
			continue;
		}
		if (p.status != bc->status || strcmp(p.field, bc->field) != 0)
			mismatch("%s: got %d \"%s\" (%s), want %d \"%s\"", bc->json, p.status,
				 p.field, p.detail, bc->status, bc->field);
		/* The detail starts with the field name. */
		snprintf(lead, sizeof(lead), "%s: ", p.field);
		if (strncmp(p.detail, lead, strlen(lead)) != 0)
			mismatch("%s: detail \"%s\" does not start with the field", bc->json,
				 p.detail);
		call_cleanup(&c);
	}
	assert_int_equal(errors, 0);
}

/* ---- valid instructions: every parsed field ---------------------------------------------- */

/* Expected values. Strings: NULL = must be NULL. Limits: 0 = not given (the call holds -1). */
struct good_case {
	const char *json;
	const char *target, *function, *path, *method, *query, *headers;
	const char *body;
	size_t body_len;
	const char *body_type;
	bool has_delay;
	int64_t delay_ms;
	bool has_not_before;
	int64_t not_before_us;
	int64_t expires_in_ms;
	const char *correlation_id, *callback_url, *callback_headers;
	const char *failure_callback_url, *failure_callback_headers;
	int64_t max_attempts, retry_initial_ms, retry_max_ms, timeout_ms;
};

#define EX "https://api.example.com/orders"

static const struct good_case good_cases[] = {
	{
		.json = "{\"target\":\"" EX "\",\"method\":\"put\","
			"\"query\":{\"size\":\"small\",\"tag\":[\"a\",\"b\"]},"
			"\"headers\":{\"Content-Type\":\"application/json\",\"X-Trace\":\"t1\"},"
			"\"body\":{\"any\":\"JSON value\",\"n\":[1,2.5,true,null],\"u\":\"a/b\"},"
			"\"delay\":\"90s\",\"correlation_id\":\"order-1234\","
			"\"callback\":\"https://client.example.com/replies\","
			"\"failure_callback\":{\"url\":\"https://client.example.com/failures\","
			"\"headers\":{\"X-Team\":\"b\"}},"
			"\"retry\":{\"max_attempts\":10,\"initial\":\"1s\",\"max\":\"1h\"},"
			"\"timeout\":\"30s\",\"expires_in\":\"24h\"}",
		.target = EX,
		.method = "PUT",
		.query = "size=small&tag=a&tag=b",
		.headers = "{\"Content-Type\":\"application/json\",\"X-Trace\":\"t1\"}",
		.body = "{\"any\":\"JSON value\",\"n\":[1,2.5,true,null],\"u\":\"a/b\"}",
		.body_len = 52,
		.body_type = "json",
		.has_delay = true,
		.delay_ms = 90000,
		.expires_in_ms = DAY_MS,
		.correlation_id = "order-1234",
		.callback_url = "https://client.example.com/replies",
		.failure_callback_url = "https://client.example.com/failures",
		.failure_callback_headers = "{\"X-Team\":\"b\"}",
		.max_attempts = 10,
		.retry_initial_ms = 1000,
		.retry_max_ms = 3600000,
		.timeout_ms = 30000,
	},
	{
		.json = "{\"function\":\"resize-image\",\"path\":\"/v2/thumbs\"}",
		.function = "resize-image",
		.path = "/v2/thumbs",
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"function\":\"fn.v2_x-1\"}",
		.function = "fn.v2_x-1",
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"method\":\"get\"}",
		.target = EX,
		.method = "GET",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"method\":\"Delete\"}",
		.target = EX,
		.method = "DELETE",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"method\":\"options\"}",
		.target = EX,
		.method = "OPTIONS",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"method\":\"PATCH\",\"body_text\":\"x\"}",
		.target = EX,
		.method = "PATCH",
		.query = "",
		.headers = "{}",
		.body = "x",
		.body_len = 1,
		.body_type = "text",
	},
	{
		.json = "{\"target\":\"" EX "\",\"query\":{\"size\":\"small\",\"tag\":[\"a\",\"b\"]}}",
		.target = EX,
		.method = "POST",
		.query = "size=small&tag=a&tag=b",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"query\":{\"q\":\"a b&c=d/é\",\"n\":5,\"t\":true,"
			"\"f\":1.5,\"e\":\"\",\"k y\":\"v\"}}",
		.target = EX,
		.method = "POST",
		.query = "q=a%20b%26c%3Dd%2F%C3%A9&n=5&t=true&f=1.5&e=&k%20y=v",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"query\":\"?a=1&b=%2F\"}",
		.target = EX,
		.method = "POST",
		.query = "a=1&b=%2F",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"query\":\"a=1\"}",
		.target = EX,
		.method = "POST",
		.query = "a=1",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"headers\":{\"Content-Type\":\"text/plain\","
			"\"Authorization\":\"Bearer abc\",\"X-Tab\":\"a\\tb\",\"X-Empty\":\"\"}}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{\"Content-Type\":\"text/plain\",\"Authorization\":\"Bearer abc\","
			   "\"X-Tab\":\"a\\tb\",\"X-Empty\":\"\"}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"headers\":{}}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body\":\"str\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "\"str\"",
		.body_len = 5,
		.body_type = "json",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body\":42}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "42",
		.body_len = 2,
		.body_type = "json",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body\":[]}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "[]",
		.body_len = 2,
		.body_type = "json",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_text\":\"h\\u00e9llo\\n\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "h\xc3\xa9llo\n",
		.body_len = 7,
		.body_type = "text",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_text\":\"a\\u0000b\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "a\0b",
		.body_len = 3,
		.body_type = "text",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_text\":\"\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "",
		.body_len = 0,
		.body_type = "text",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_base64\":\"AAEC/w==\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "\x00\x01\x02\xff",
		.body_len = 4,
		.body_type = "binary",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_base64\":\"QUJD\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "ABC",
		.body_len = 3,
		.body_type = "binary",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_base64\":\"QUI=\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "AB",
		.body_len = 2,
		.body_type = "binary",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_base64\":\"AA==\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "\0",
		.body_len = 1,
		.body_type = "binary",
	},
	{
		.json = "{\"target\":\"" EX "\",\"body_base64\":\"\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.body = "",
		.body_len = 0,
		.body_type = "binary",
	},
	{
		.json = "{\"target\":\"" EX "\",\"delay\":90}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_delay = true,
		.delay_ms = 90000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"delay\":\"0\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_delay = true,
		.delay_ms = 0,
	},
	{
		.json = "{\"target\":\"" EX "\",\"delay\":\"1h30m\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_delay = true,
		.delay_ms = 5400000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"delay\":\"365d\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_delay = true,
		.delay_ms = 365 * DAY_MS,
	},
	{
		.json = "{\"target\":\"" EX "\",\"not_before\":\"2026-11-23T19:00:00Z\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_not_before = true,
		.not_before_us = T_2026_11_23_19 * 1000000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"not_before\":\"2026-11-23T20:00:00.5+01:00\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_not_before = true,
		.not_before_us = T_2026_11_23_19 * 1000000 + 500000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"not_before\":1795460400}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_not_before = true,
		.not_before_us = T_2026_11_23_19 * 1000000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"not_before\":\"1795460400\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.has_not_before = true,
		.not_before_us = T_2026_11_23_19 * 1000000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"retry\":{\"max_attempts\":5,\"initial\":\"2s\","
			"\"max\":\"10m\"},\"timeout\":\"45s\",\"expires_in\":\"2h\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.expires_in_ms = 7200000,
		.max_attempts = 5,
		.retry_initial_ms = 2000,
		.retry_max_ms = 600000,
		.timeout_ms = 45000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"retry\":{\"max_attempts\":1},\"timeout\":30,"
			"\"expires_in\":3600}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.expires_in_ms = 3600000,
		.max_attempts = 1,
		.timeout_ms = 30000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"retry\":{\"max_attempts\":100},\"timeout\":\"30m\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.max_attempts = 100,
		.timeout_ms = 1800000,
	},
	{
		.json = "{\"target\":\"" EX "\",\"callback\":\"https://client.example.com/r\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.callback_url = "https://client.example.com/r",
	},
	{
		.json = "{\"target\":\"" EX "\",\"callback\":{\"url\":\"https://client.example.com/r\","
			"\"headers\":{\"X-Key\":\"k\"}}}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.callback_url = "https://client.example.com/r",
		.callback_headers = "{\"X-Key\":\"k\"}",
	},
	{
		.json = "{\"target\":\"" EX "\",\"callback\":{\"url\":\"https://client.example.com/r\"}}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.callback_url = "https://client.example.com/r",
	},
	{
		.json = "{\"target\":\"" EX "\",\"failure_callback\":\"https://client.example.com/f\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.failure_callback_url = "https://client.example.com/f",
	},
	{
		.json = "{\"target\":\"" EX "\",\"correlation_id\":\"order-1234 \\u00e9\"}",
		.target = EX,
		.method = "POST",
		.query = "",
		.headers = "{}",
		.correlation_id = "order-1234 \xc3\xa9",
	},
	{
		.json = "{\"target\":\"HTTPS://API.EXAMPLE.COM:8443/a?b=1\"}",
		.target = "HTTPS://API.EXAMPLE.COM:8443/a?b=1", /* stored as given */
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"http://[2606:4700::1]/x\"}",
		.target = "http://[2606:4700::1]/x",
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
	{
		.json = "{\"target\":\"http://8.8.8.8/\"}",
		.target = "http://8.8.8.8/",
		.method = "POST",
		.query = "",
		.headers = "{}",
	},
};

static void check_headers(const char *what, const char *json, struct json_object *got,
			  const char *want)
{
	if (want == NULL) {
		if (got != NULL)
			mismatch("%s: %s is %s, want none", json, what, json_text(got));
		return;
	}
	if (got == NULL) {
		mismatch("%s: %s missing, want %s", json, what, want);
		return;
	}
	str_eq(what, json, json_text(got), want);
}

static void check_call(const struct call *c, const struct good_case *g)
{
	const char *j = g->json;

	str_eq("target", j, c->target, g->target);
	str_eq("function", j, c->function, g->function);
	str_eq("path", j, c->path, g->path);
	str_eq("method", j, c->method, g->method);
	str_eq("query", j, c->query, g->query);
	check_headers("headers", j, c->headers, g->headers);
	str_eq("body_type", j, c->body_type, g->body_type);
	if (g->body_type != NULL) {
		num_eq("body_len", j, (int64_t)c->body_len, (int64_t)g->body_len);
		if (c->body == NULL)
			mismatch("%s: no body", j);
		else if (c->body_len == g->body_len && memcmp(c->body, g->body, g->body_len) != 0)
			mismatch("%s: body bytes differ", j);
	} else {
		if (c->body != NULL)
			mismatch("%s: has a body", j);
		num_eq("body_len", j, (int64_t)c->body_len, 0);
	}
	num_eq("has_delay", j, c->has_delay, g->has_delay);
	num_eq("delay_ms", j, c->delay_ms, g->delay_ms);
	num_eq("has_not_before", j, c->has_not_before, g->has_not_before);
	if (g->has_not_before)
		num_eq("not_before_us", j, c->not_before_us, g->not_before_us);
	num_eq("expires_in_ms", j, c->expires_in_ms, g->expires_in_ms);
	str_eq("correlation_id", j, c->correlation_id, g->correlation_id);
	str_eq("callback_url", j, c->callback_url, g->callback_url);
	check_headers("callback_headers", j, c->callback_headers, g->callback_headers);
	str_eq("failure_callback_url", j, c->failure_callback_url, g->failure_callback_url);
	check_headers("failure_callback_headers", j, c->failure_callback_headers,
		      g->failure_callback_headers);
	num_eq("max_attempts", j, c->max_attempts, g->max_attempts ? g->max_attempts : -1);
	num_eq("retry_initial_ms", j, c->retry_initial_ms,
	       g->retry_initial_ms ? g->retry_initial_ms : -1);
	num_eq("retry_max_ms", j, c->retry_max_ms, g->retry_max_ms ? g->retry_max_ms : -1);
	num_eq("timeout_ms", j, c->timeout_ms, g->timeout_ms ? g->timeout_ms : -1);
}

static void test_from_json_valid(void **state)
{
	(void)state;
	assert_true(sizeof(good_cases) / sizeof(good_cases[0]) +
			    sizeof(bad_cases) / sizeof(bad_cases[0]) >=
		    40);
	errors = 0;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		struct call c;
		struct problem p;

		if (from_json(&c, good_cases[i].json, &env, "", &p) != 0) {
			mismatch("refused: %s: %d %s: %s", good_cases[i].json, p.status, p.field,
				 p.detail);
			call_cleanup(&c);
			continue;
		}
		check_call(&c, &good_cases[i]);
		call_cleanup(&c);
		/* call_cleanup leaves an empty call: cleaning again is harmless. */
		assert_null(c.target);
		assert_int_equal(c.max_attempts, -1);
		call_cleanup(&c);
	}
	assert_int_equal(errors, 0);
}

/* An empty query object (or empty arrays only) gives the empty query string "". */
static void test_from_json_empty_query(void **state)
{
	static const char *const cases[] = {
		"{\"function\":\"f\",\"query\":{}}",
		"{\"function\":\"f\",\"query\":{\"tag\":[]}}",
	};
	char *junk;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct call c;
		struct problem p;

		/* A dirty freed block of the size the query buffer takes, so stale bytes show. */
		junk = malloc(256);
		assert_non_null(junk);
		memset(junk, 'x', 256);
		free(junk);
		assert_int_equal(from_json(&c, cases[i], &env, "", &p), 0);
		assert_non_null(c.query);
		if (c.query[0] != '\0')
			fail_msg("%s: query is not empty (first byte 0x%02x)", cases[i],
				 (unsigned char)c.query[0]);
		call_cleanup(&c);
	}
}

static void test_from_json_allow_list(void **state)
{
	static const char *const ok[] = {
		"{\"target\":\"http://127.0.0.1:8080/x\"}",
		"{\"target\":\"http://localhost:8080/x\"}",
		"{\"target\":\"http://[::ffff:127.0.0.1]/\"}",
		"{\"target\":\"http://0x7f000001/\"}",
		"{\"target\":\"https://example.com/\",\"callback\":\"http://127.0.0.1/cb\"}",
	};
	static const char *const bad[] = {
		"{\"target\":\"http://127.0.0.2/\"}",
		"{\"target\":\"http://[::1]/\"}",
		"{\"target\":\"http://10.0.0.1/\"}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct call c;
		struct problem p;

		if (from_json(&c, ok[i], &env_lo, "", &p) != 0)
			fail_msg("allow 127.0.0.1/32: refused %s: %s", ok[i], p.detail);
		call_cleanup(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct call c;
		struct problem p;

		if (from_json(&c, bad[i], &env_lo, "", &p) != -1)
			fail_msg("allow 127.0.0.1/32: accepted %s", bad[i]);
		assert_string_equal(p.field, "target");
		call_cleanup(&c);
	}
}

static void test_from_json_prefix(void **state)
{
	struct call c;
	struct problem p;

	(void)state;
	assert_int_equal(from_json(&c,
				   "{\"target\":\"https://example.com/\","
				   "\"headers\":{\"X-A\":\"a\\nb\"}}",
				   &env, "[3].", &p),
			 -1);
	assert_int_equal(p.status, 400);
	assert_string_equal(p.field, "[3].headers.X-A");
	assert_true(strncmp(p.detail, "[3].headers.X-A: ", 17) == 0);
	call_cleanup(&c);

	assert_int_equal(from_json(&c, "{\"function\":\"fn\",\"retry\":{\"max\":\"x\"}}", &env,
				   "[12].", &p),
			 -1);
	assert_string_equal(p.field, "[12].retry.max");
	call_cleanup(&c);

	assert_int_equal(from_json(&c, "{}", &env, "[0].", &p), -1);
	assert_string_equal(p.field, "[0].target");
	call_cleanup(&c);
}

/* A non-object element of a batch is named by its JSON path "[3]", not "[3].". */
static void test_from_json_prefix_non_object(void **state)
{
	struct call c;
	struct problem p;

	(void)state;
	assert_int_equal(from_json(&c, "\"https://example.com/\"", &env, "[3].", &p), -1);
	assert_int_equal(p.status, 400);
	assert_string_equal(p.field, "[3]");
	call_cleanup(&c);

	/* A field with an empty name is the element's problem too. */
	assert_int_equal(from_json(&c, "{\"\":1}", &env, "[3].", &p), -1);
	assert_string_equal(p.field, "[3]");
	assert_true(strncmp(p.detail, "[3]: ", 5) == 0);
	call_cleanup(&c);
}

static void test_from_json_max_headers(void **state)
{
	struct buf b;
	struct call c;
	struct problem p;
	int64_t saved = cf.max_headers;

	(void)state;
	/* Exactly the default limit (64) is fine; one more is not. */
	for (int n = 64; n <= 65; n++) {
		buf_init(&b);
		buf_puts(&b, "{\"target\":\"https://example.com/\",\"headers\":{");
		for (int i = 0; i < n; i++)
			buf_printf(&b, "%s\"X-H%d\":\"v\"", i ? "," : "", i);
		buf_puts(&b, "}}");
		if (n == 64) {
			assert_int_equal(from_json(&c, b.data, &env, "", &p), 0);
			assert_int_equal(json_object_object_length(c.headers), 64);
		} else {
			assert_int_equal(from_json(&c, b.data, &env, "", &p), -1);
			assert_int_equal(p.status, 400);
			assert_string_equal(p.field, "headers");
		}
		call_cleanup(&c);
		buf_cleanup(&b);
	}
	cf.max_headers = 2;
	assert_int_equal(from_json(&c,
				   "{\"target\":\"https://example.com/\",\"callback\":{\"url\":"
				   "\"https://c.example/\",\"headers\":{\"A\":\"1\",\"B\":\"2\","
				   "\"C\":\"3\"}}}",
				   &env, "", &p),
			 -1);
	assert_string_equal(p.field, "callback.headers");
	call_cleanup(&c);
	cf.max_headers = 0;
	assert_int_equal(from_json(&c, "{\"target\":\"https://example.com/\",\"headers\":{}}", &env,
				   "", &p),
			 0);
	call_cleanup(&c);
	assert_int_equal(from_json(&c,
				   "{\"target\":\"https://example.com/\",\"headers\":{\"A\":\"1\"}}",
				   &env, "", &p),
			 -1);
	assert_string_equal(p.field, "headers");
	call_cleanup(&c);
	cf.max_headers = saved;
}

static void test_from_json_body_limit(void **state)
{
	static const struct {
		const char *json;
		int rc;
		const char *field;
	} cases[] = {
		{ "{\"target\":\"https://example.com/\",\"body_text\":\"1234\"}", 0, NULL },
		{ "{\"target\":\"https://example.com/\",\"body_text\":\"12345\"}", -1, "body_text" },
		{ "{\"target\":\"https://example.com/\",\"body\":\"12\"}", 0, NULL }, /* "12" quoted */
		{ "{\"target\":\"https://example.com/\",\"body\":\"123\"}", -1, "body" },
		{ "{\"target\":\"https://example.com/\",\"body\":[1,2]}", -1, "body" },
		{ "{\"target\":\"https://example.com/\",\"body_base64\":\"AAAAAA==\"}", 0, NULL },
		{ "{\"target\":\"https://example.com/\",\"body_base64\":\"AAAAAAA=\"}", -1,
		  "body_base64" },
	};
	int64_t saved = cf.max_body_bytes;

	(void)state;
	cf.max_body_bytes = 4;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct call c;
		struct problem p;
		int rc = from_json(&c, cases[i].json, &env, "", &p);

		if (rc != cases[i].rc)
			fail_msg("max_body_bytes 4: %s gave %d (%s)", cases[i].json, rc, p.detail);
		if (rc != 0) {
			assert_int_equal(p.status, 413);
			assert_string_equal(p.field, cases[i].field);
		}
		call_cleanup(&c);
	}
	cf.max_body_bytes = saved;
}

static void test_from_json_delay_limit(void **state)
{
	int64_t saved = cf.max_delay_ms;
	struct call c;
	struct problem p;

	(void)state;
	cf.max_delay_ms = 60000;
	assert_int_equal(from_json(&c, "{\"function\":\"f\",\"delay\":\"1m\"}", &env, "", &p), 0);
	assert_int_equal(c.delay_ms, 60000);
	call_cleanup(&c);
	assert_int_equal(from_json(&c, "{\"function\":\"f\",\"delay\":\"61s\"}", &env, "", &p), -1);
	assert_string_equal(p.field, "delay");
	call_cleanup(&c);
	/* not_before is held to the same horizon, measured from now. */
	assert_int_equal(from_json(&c, "{\"function\":\"f\",\"not_before\":\"2030-01-01T00:00:00Z\"}",
				   &env, "", &p),
			 -1);
	assert_string_equal(p.field, "not_before");
	call_cleanup(&c);
	assert_int_equal(from_json(&c, "{\"function\":\"f\",\"not_before\":0}", &env, "", &p), 0);
	assert_true(c.has_not_before);
	assert_int_equal(c.not_before_us, 0);
	call_cleanup(&c);
	cf.max_delay_ms = saved;
}

static void test_from_json_long_url(void **state)
{
	struct buf b;
	struct call c;
	struct problem p;

	(void)state;
	buf_init(&b);
	buf_puts(&b, "{\"target\":\"https://example.com/");
	for (int i = 0; i < 8200; i++)
		buf_puts(&b, "a");
	buf_puts(&b, "\"}");
	assert_int_equal(from_json(&c, b.data, &env, "", &p), -1);
	assert_string_equal(p.field, "target");
	call_cleanup(&c);
	buf_cleanup(&b);
}

static void test_from_json_retry_zero(void **state)
{
	struct call c;
	struct problem p;

	(void)state;
	assert_int_equal(from_json(&c,
				   "{\"function\":\"f\",\"retry\":{\"initial\":\"0s\",\"max\":0}}",
				   &env, "", &p),
			 0);
	assert_int_equal(c.retry_initial_ms, 0);
	assert_int_equal(c.retry_max_ms, 0);
	call_cleanup(&c);
}

static void test_parse_duration(void **state)
{
	struct json_object *v;
	int64_t ms = -1;

	(void)state;
	v = json_object_new_int(90);
	assert_int_equal(call_parse_duration(v, &ms), 0);
	assert_int_equal(ms, 90000);
	json_object_put(v);
	v = json_object_new_string("15m");
	assert_int_equal(call_parse_duration(v, &ms), 0);
	assert_int_equal(ms, 900000);
	json_object_put(v);
	v = json_object_new_int(-1);
	assert_int_equal(call_parse_duration(v, &ms), -1);
	json_object_put(v);
	v = json_object_new_int64(INT64_MAX);
	assert_int_equal(call_parse_duration(v, &ms), -1);
	json_object_put(v);
	v = json_object_new_double(1.5);
	assert_int_equal(call_parse_duration(v, &ms), -1);
	json_object_put(v);
	v = json_object_new_boolean(1);
	assert_int_equal(call_parse_duration(v, &ms), -1);
	json_object_put(v);
	assert_int_equal(call_parse_duration(NULL, &ms), -1);
}

/* ---- call_resolve ------------------------------------------------------------------------ */

static void test_resolve(void **state)
{
	struct call c;
	struct problem p;

	(void)state;
	/* Nothing given, no function limits: the gateway defaults. */
	assert_int_equal(from_json(&c, "{\"function\":\"f\"}", &env, "", &p), 0);
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), 0);
	assert_int_equal(c.timeout_ms, cf.default_timeout_ms);
	assert_int_equal(c.max_attempts, cf.default_max_attempts);
	assert_int_equal(c.retry_initial_ms, cf.default_retry_initial_ms);
	assert_int_equal(c.retry_max_ms, cf.default_retry_max_ms);
	assert_int_equal(c.timeout_ms, 30000);
	assert_int_equal(c.max_attempts, 10);
	assert_int_equal(c.retry_initial_ms, 1000);
	assert_int_equal(c.retry_max_ms, 3600000);
	call_cleanup(&c);

	/* The function's limits override the defaults. */
	assert_int_equal(from_json(&c, "{\"function\":\"f\"}", &env, "", &p), 0);
	assert_int_equal(call_resolve(&c, &env, 5000, 3, 200, 400, "", &p), 0);
	assert_int_equal(c.timeout_ms, 5000);
	assert_int_equal(c.max_attempts, 3);
	assert_int_equal(c.retry_initial_ms, 200);
	assert_int_equal(c.retry_max_ms, 400);
	call_cleanup(&c);

	/* Some from the function, the rest from the defaults. */
	assert_int_equal(from_json(&c, "{\"function\":\"f\"}", &env, "", &p), 0);
	assert_int_equal(call_resolve(&c, &env, 5000, -1, -1, 7200000, "", &p), 0);
	assert_int_equal(c.timeout_ms, 5000);
	assert_int_equal(c.max_attempts, 10);
	assert_int_equal(c.retry_initial_ms, 1000);
	assert_int_equal(c.retry_max_ms, 7200000);
	call_cleanup(&c);

	/* The call's own values override the function's. */
	assert_int_equal(from_json(&c,
				   "{\"function\":\"f\",\"timeout\":\"7s\",\"retry\":{"
				   "\"max_attempts\":4,\"initial\":\"3s\",\"max\":\"9s\"}}",
				   &env, "", &p),
			 0);
	assert_int_equal(call_resolve(&c, &env, 5000, 3, 200, 400, "", &p), 0);
	assert_int_equal(c.timeout_ms, 7000);
	assert_int_equal(c.max_attempts, 4);
	assert_int_equal(c.retry_initial_ms, 3000);
	assert_int_equal(c.retry_max_ms, 9000);
	call_cleanup(&c);

	/* A function limit of 0 is a value, not "none". */
	assert_int_equal(from_json(&c, "{\"function\":\"f\"}", &env, "", &p), 0);
	assert_int_equal(call_resolve(&c, &env, -1, -1, 0, 0, "", &p), 0);
	assert_int_equal(c.retry_initial_ms, 0);
	assert_int_equal(c.retry_max_ms, 0);
	call_cleanup(&c);
}

static void test_resolve_retry_order(void **state)
{
	static const struct {
		const char *json;
		int64_t fn_initial, fn_max;
		const char *prefix, *field;
	} cases[] = {
		{ "{\"function\":\"f\",\"retry\":{\"initial\":\"10s\",\"max\":\"1s\"}}", -1, -1, "",
		  "retry.max" },
		{ "{\"function\":\"f\",\"retry\":{\"initial\":\"2h\"}}", -1, -1, "", "retry.max" },
		{ "{\"function\":\"f\",\"retry\":{\"max\":\"100ms\"}}", -1, -1, "[2].",
		  "[2].retry.max" },
		{ "{\"function\":\"f\"}", 5000, 4000, "", "retry.max" },
		{ "{\"function\":\"f\",\"retry\":{\"max\":\"1s\"}}", 2000, -1, "", "retry.max" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct call c;
		struct problem p;

		assert_int_equal(from_json(&c, cases[i].json, &env, cases[i].prefix, &p), 0);
		memset(&p, 0, sizeof(p));
		if (call_resolve(&c, &env, -1, -1, cases[i].fn_initial, cases[i].fn_max,
				 cases[i].prefix, &p) != -1)
			fail_msg("resolve accepted %s", cases[i].json);
		assert_int_equal(p.status, 400);
		assert_string_equal(p.field, cases[i].field);
		call_cleanup(&c);
	}
}

/* ---- call_row_json ----------------------------------------------------------------------- */

static struct json_object *member(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, k, &v))
		fail_msg("row has no %s: %s", k, json_text(o));
	return v;
}

static void test_row_json(void **state)
{
	struct call c;
	struct problem p;
	struct json_object *row;

	(void)state;
	assert_int_equal(from_json(&c,
				   "{\"target\":\"" EX "\",\"method\":\"put\",\"query\":{\"a\":\"1\"},"
				   "\"headers\":{\"X-A\":\"1\"},\"body_base64\":\"AAEC/w==\","
				   "\"delay\":\"5s\",\"expires_in\":\"1h\",\"correlation_id\":\"c1\","
				   "\"callback\":{\"url\":\"https://c.example/ok\",\"headers\":{\"X-K\":"
				   "\"k\"}},\"failure_callback\":\"https://c.example/fail\"}",
				   &env, "", &p),
			 0);
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), 0);
	row = call_row_json(&c, "0190f2a4-5b6c-7d8e-9f01-23456789abcd");
	assert_non_null(row);
	assert_string_equal(json_object_get_string(member(row, "id")),
			    "0190f2a4-5b6c-7d8e-9f01-23456789abcd");
	assert_int_equal(json_object_get_int64(member(row, "delay_ms")), 5000);
	assert_false(json_object_object_get_ex(row, "not_before_us", NULL));
	assert_int_equal(json_object_get_int64(member(row, "expires_in_ms")), 3600000);
	assert_false(json_object_object_get_ex(row, "function", NULL));
	assert_string_equal(json_object_get_string(member(row, "target")), EX);
	assert_false(json_object_object_get_ex(row, "path", NULL));
	assert_string_equal(json_object_get_string(member(row, "method")), "PUT");
	assert_string_equal(json_object_get_string(member(row, "query")), "a=1");
	assert_string_equal(json_text(member(row, "headers")), "{\"X-A\":\"1\"}");
	assert_string_equal(json_object_get_string(member(row, "body")), "AAEC/w==");
	assert_string_equal(json_object_get_string(member(row, "body_type")), "binary");
	assert_string_equal(json_object_get_string(member(row, "correlation_id")), "c1");
	assert_string_equal(json_object_get_string(member(row, "callback_url")),
			    "https://c.example/ok");
	assert_string_equal(json_text(member(row, "callback_headers")), "{\"X-K\":\"k\"}");
	assert_string_equal(json_object_get_string(member(row, "failure_callback_url")),
			    "https://c.example/fail");
	assert_false(json_object_object_get_ex(row, "failure_callback_headers", NULL));
	assert_int_equal(json_object_get_int64(member(row, "max_attempts")), 10);
	assert_int_equal(json_object_get_int64(member(row, "retry_initial_ms")), 1000);
	assert_int_equal(json_object_get_int64(member(row, "retry_max_ms")), 3600000);
	assert_int_equal(json_object_get_int64(member(row, "timeout_ms")), 30000);
	json_object_put(row);

	/* Without an id there is no "id" member (the idempotency hash input). */
	row = call_row_json(&c, NULL);
	assert_false(json_object_object_get_ex(row, "id", NULL));
	assert_int_equal(json_object_get_int64(member(row, "delay_ms")), 5000);
	json_object_put(row);
	call_cleanup(&c);

	/* not_before instead of delay; no body; no expiry; a function with a path. */
	assert_int_equal(from_json(&c,
				   "{\"function\":\"fn\",\"path\":\"/p\",\"not_before\":1795460400}",
				   &env, "", &p),
			 0);
	row = call_row_json(&c, NULL);
	assert_int_equal(json_object_get_int64(member(row, "not_before_us")),
			 T_2026_11_23_19 * 1000000);
	assert_false(json_object_object_get_ex(row, "delay_ms", NULL));
	assert_false(json_object_object_get_ex(row, "expires_in_ms", NULL));
	assert_false(json_object_object_get_ex(row, "body", NULL));
	assert_false(json_object_object_get_ex(row, "body_type", NULL));
	assert_false(json_object_object_get_ex(row, "target", NULL));
	assert_string_equal(json_object_get_string(member(row, "function")), "fn");
	assert_string_equal(json_object_get_string(member(row, "path")), "/p");
	assert_string_equal(json_object_get_string(member(row, "query")), "");
	assert_string_equal(json_text(member(row, "headers")), "{}");
	assert_int_equal(json_object_get_int64(member(row, "max_attempts")), -1); /* unresolved */
	json_object_put(row);
	call_cleanup(&c);

	/* Text and JSON bodies are stored base64 too, byte for byte; an empty body is "". */
	assert_int_equal(from_json(&c, "{\"function\":\"fn\",\"body_text\":\"a\\u0000b\"}", &env, "",
				   &p),
			 0);
	row = call_row_json(&c, NULL);
	assert_string_equal(json_object_get_string(member(row, "body")), "YQBi");
	assert_string_equal(json_object_get_string(member(row, "body_type")), "text");
	json_object_put(row);
	call_cleanup(&c);
	assert_int_equal(from_json(&c, "{\"function\":\"fn\",\"body_text\":\"\"}", &env, "", &p), 0);
	row = call_row_json(&c, NULL);
	assert_string_equal(json_object_get_string(member(row, "body")), "");
	json_object_put(row);
	call_cleanup(&c);
}

/* ---- call_from_request (transparent mode) ------------------------------------------------ */

struct fake_req {
	struct req rq;
	char query[512];
	char body[512];
};

/* Fills a request borrowing params (NULL-terminated "NAME=value" strings). */
static void fake(struct fake_req *f, const char *method, const char *query, char **params,
		 const char *body, size_t body_len)
{
	memset(f, 0, sizeof(*f));
	req_init(&f->rq);
	f->rq.method = method;
	snprintf(f->query, sizeof(f->query), "%s", query);
	f->rq.query = f->query;
	f->rq.params = params;
	if (body != NULL) {
		assert_true(body_len < sizeof(f->body));
		memcpy(f->body, body, body_len);
		f->rq.body = f->body;
		f->rq.body_len = body_len;
	}
}

static int from_request(struct call *c, const struct fake_req *f, const char *rest,
			const struct call_env *e, struct problem *p)
{
	call_init(c);
	memset(p, 0, sizeof(*p));
	return call_from_request(c, &f->rq, rest, e, p);
}

static void test_request_targets(void **state)
{
	static const struct {
		const char *rest;
		const char *target, *function, *path;
	} cases[] = {
		{ "https%3A%2F%2Fapi.example.com%2Fv2/rest/of/path",
		  "https://api.example.com/v2/rest/of/path", NULL, NULL },
		{ "https%3a%2f%2fapi.example.com", "https://api.example.com", NULL, NULL },
		{ "http%3A%2F%2Fapi.example.com%3A8080%2F/x", "http://api.example.com:8080//x", NULL,
		  NULL },
		{ "https:/api.example.com/x", "https://api.example.com/x", NULL, NULL },
		{ "https://api.example.com/x", "https://api.example.com/x", NULL, NULL },
		{ "http:/api.example.com", "http://api.example.com", NULL, NULL },
		{ "resize-image/v2/thumbs", NULL, "resize-image", "/v2/thumbs" },
		{ "resize-image", NULL, "resize-image", NULL },
		{ "resize-image/", NULL, "resize-image", "/" },
		{ "fn/a%20b", NULL, "fn", "/a%20b" },
	};
	char *params[] = { "REQUEST_METHOD=POST", NULL };

	(void)state;
	errors = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_req f;
		struct call c;
		struct problem p;

		fake(&f, "POST", "", params, NULL, 0);
		if (from_request(&c, &f, cases[i].rest, &env, &p) != 0)
			fail_msg("/v1/async/%s refused: %s", cases[i].rest, p.detail);
		str_eq("target", cases[i].rest, c.target, cases[i].target);
		str_eq("function", cases[i].rest, c.function, cases[i].function);
		str_eq("path", cases[i].rest, c.path, cases[i].path);
		assert_string_equal(c.method, "POST");
		assert_string_equal(c.query, "");
		assert_string_equal(json_text(c.headers), "{}");
		assert_null(c.body);
		call_cleanup(&c);
	}
	assert_int_equal(errors, 0);
}

static void test_request_bad_targets(void **state)
{
	static const struct {
		const char *rest;
		const char *field;
	} cases[] = {
		{ "", "path" },
		{ "/x", "path" },
		{ "bad%20name/x", "function" },
		{ "%zz/x", "path" },
		{ "http%3A%2F%2F127.0.0.1%2F/x", "target" },
		{ "http%3A%2F%2Flocalhost/x", "target" },
		{ "http:/127.0.0.1/x", "target" },
		{ "http:/[::1]/x", "target" },
		{ "http:/2130706433/", "target" },
		{ "https:/", "target" },
		{ "ftp%3A%2F%2Fexample.com%2Fx", "target" },
		{ "https%3A%2F%2Fuser%3Apass%40api.example.com%2F/x", "target" },
		{ "https%3A%2F%2Fapi.example.com%2Fv2%3Fq%3D1/more", "path" },
		{ "https%3A%2F%2Fapi.example.com%2F%00/x", "path" },
	};
	char *params[] = { "REQUEST_METHOD=POST", NULL };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_req f;
		struct call c;
		struct problem p;

		fake(&f, "POST", "", params, NULL, 0);
		if (from_request(&c, &f, cases[i].rest, &env, &p) != -1)
			fail_msg("/v1/async/%s accepted", cases[i].rest);
		if (p.status != 400 || strcmp(p.field, cases[i].field) != 0)
			fail_msg("/v1/async/%s: got %d \"%s\" (%s), want 400 \"%s\"", cases[i].rest,
				 p.status, p.field, p.detail, cases[i].field);
		call_cleanup(&c);
	}
	/* The allow list opens loopback in transparent mode too. */
	{
		struct fake_req f;
		struct call c;
		struct problem p;

		fake(&f, "POST", "", params, NULL, 0);
		assert_int_equal(from_request(&c, &f, "http%3A%2F%2F127.0.0.1%3A9%2F/x", &env_lo, &p),
				 0);
		assert_string_equal(c.target, "http://127.0.0.1:9//x");
		call_cleanup(&c);
	}
}

/* Forbidden addresses in every spelling a URL parser takes, with the range the refusal must
 * name: refused in "target" under allow_targets = 127.0.0.1/32, in JSON and in transparent mode
 * (the URL percent-encoded as the first segment). tests/integration/test_netpolicy.c sends the
 * same kinds of spellings through the web server. */
static const struct {
	const char *url;
	const char *why;
} forbidden_spellings[] = {
	{ "http://127.0.0.2/", "loopback" },
	{ "http://2130706434/", "loopback" },
	{ "http://0177.0.0.2/", "loopback" },
	{ "http://017700000002/", "loopback" },
	{ "http://0x7f.0.0.2/", "loopback" },
	{ "http://0X7F.0x0.0x0.0x2/", "loopback" },
	{ "http://0x7f000002/", "loopback" },
	{ "http://127.2/", "loopback" },
	{ "http://127.0.2/", "loopback" },
	{ "http://127.000.000.002/", "loopback" },
	{ "http://127.0.0.2./", "loopback" },
	{ "http://127.0.0.2../", "loopback" },
	{ "http://0x7f.0.0.2./", "loopback" },
	{ "http://127.2./", "loopback" },
	{ "http://2130706434./", "loopback" },
	{ "http://0177.0.0.2./", "loopback" },
	{ "http://%31%32%37.0.0.2/", "loopback" },
	{ "http://127%2E0.0.2/", "loopback" },
	{ "https://127.0.0.2:8443/x", "loopback" },
	{ "http://[::1]/", "loopback" },
	{ "http://[0:0:0:0:0:0:0:1]:8080/", "loopback" },
	{ "http://[::ffff:127.0.0.2]/", "loopback" },
	{ "http://[::ffff:7f00:2]/", "loopback" },
	{ "http://[0:0:0:0:0:ffff:127.0.0.2]/", "loopback" },
	{ "http://[::ffff:127.0.0.2%25lo]/", "loopback" },
	{ "http://[::127.0.0.2]/", "loopback" },
	{ "http://[64:ff9b::127.0.0.2]/", "loopback" },
	{ "http://[2002:7f00:2::]/", "loopback" },
	{ "http://[fe80::1%25eth0]/", "link-local" },
	{ "http://169.254.169.254/latest/meta-data/", "link-local" },
	{ "http://0251.0376.0251.0376/", "link-local" },
	{ "http://2852039166/", "link-local" },
	{ "http://0xa9fea9fe/", "link-local" },
	{ "http://169.254.169.254./", "link-local" },
	{ "http://[::ffff:169.254.169.254]/", "link-local" },
	{ "http://[fd00::1]/", "unique local (private)" },
	{ "http://[ff02::1]/", "multicast" },
	{ "http://224.0.0.1/", "multicast" },
	{ "http://255.255.255.255/", "reserved or broadcast" },
	{ "http://0/", "unspecified" },
	{ "http://0.0.0.0/", "unspecified" },
	{ "http://[::]/", "unspecified" },
	{ "http://100.64.0.1/", "shared (CGNAT)" },
	{ "http://10.0.0.1/", "private" },
	{ "http://172.16.0.1/", "private" },
	{ "http://192.168.1.1/", "private" },
	{ "http://[::ffff:10.0.0.1]/", "private" },
	{ "http://[::10.0.0.1]/", "private" },
	{ "http://[64:ff9b::a00:1]/", "private" },
	{ "http://[2002:0a00:0001::]/", "private" },
	{ "http://[2001:0000:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo" },
	{ "http://4294967296/", "malformed" },
	{ "http://1.2.3.4.5/", "malformed" },
};

/* Percent-encodes everything but unreserved characters (RFC 3986 2.3). Returns a new string. */
static char *pct_encode(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	assert_non_null(out);
	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s) != NULL)
			*o++ = *s;
		else
			o += sprintf(o, "%%%02X", (unsigned char)*s);
	}
	*o = '\0';
	return out;
}

static void test_forbidden_spellings(void **state)
{
	static const char *const public_urls[] = {
		"http://8.8.8.8/",
		"http://134744072/",
		"http://8.8.8.8./",
		"http://[2606:4700::1111]/",
		"http://[2002:0808:0808::]/",
		"http://[64:ff9b::808:808]/",
		"https://example.com./",
	};
	char *params[] = { "REQUEST_METHOD=POST", NULL };

	(void)state;
	for (size_t i = 0; i < sizeof(forbidden_spellings) / sizeof(forbidden_spellings[0]); i++) {
		const char *url = forbidden_spellings[i].url;
		char json[512], *enc, *rest;
		struct fake_req f;
		struct call c;
		struct problem p;

		snprintf(json, sizeof(json), "{\"target\":\"%s\"}", url);
		if (from_json(&c, json, &env_lo, "", &p) != -1)
			fail_msg("accepted %s", url);
		if (p.status != 400 || strcmp(p.field, "target") != 0 ||
		    strstr(p.detail, forbidden_spellings[i].why) == NULL)
			fail_msg("%s: %d \"%s\" %s, want 400 target naming %s", url, p.status,
				 p.field, p.detail, forbidden_spellings[i].why);
		call_cleanup(&c);

		enc = pct_encode(url);
		rest = malloc(strlen(enc) + 3);
		assert_non_null(rest);
		sprintf(rest, "%s/x", enc);
		fake(&f, "POST", "", params, NULL, 0);
		if (from_request(&c, &f, rest, &env_lo, &p) != -1)
			fail_msg("/v1/async/%s accepted", rest);
		if (p.status != 400 || strcmp(p.field, "target") != 0 ||
		    strstr(p.detail, forbidden_spellings[i].why) == NULL)
			fail_msg("/v1/async/%s: %d \"%s\" %s, want 400 target naming %s", rest,
				 p.status, p.field, p.detail, forbidden_spellings[i].why);
		call_cleanup(&c);
		free(rest);
		free(enc);
	}
	for (size_t i = 0; i < sizeof(public_urls) / sizeof(public_urls[0]); i++) {
		char json[256];
		struct call c;
		struct problem p;

		snprintf(json, sizeof(json), "{\"target\":\"%s\"}", public_urls[i]);
		if (from_json(&c, json, &env, "", &p) != 0)
			fail_msg("refused %s: %s", public_urls[i], p.detail);
		call_cleanup(&c);
	}
}

static void test_request_headers(void **state)
{
	char *params[] = {
		"REQUEST_METHOD=PUT",
		"REQUEST_URI=/v1/async/fn/x?a=1",
		"SCRIPT_NAME=",
		"CONTENT_LENGTH=4",
		"CONTENT_TYPE=application/octet-stream",
		"HTTP_X_TRACE=abc",
		"HTTP_AUTHORIZATION=Bearer gateway-key",
		"HTTP_HOST=gw.example.com",
		"HTTP_CONNECTION=keep-alive",
		"HTTP_KEEP_ALIVE=timeout=5",
		"HTTP_IDEMPOTENCY_KEY=k-1",
		"HTTP_PROXY=http://evil.example/",
		"HTTP_TE=trailers",
		"HTTP_UPGRADE=h2c",
		"HTTP_CONTENT_LENGTH=4",
		"HTTP_CONTENT_TYPE=text/evil",
		"HTTP_TRANSFER_ENCODING=chunked",
		"HTTP_EXPECT=100-continue",
		"HTTP_X_REQUEST_ID=r-1",
		"HTTP_ACCEPT=*/*",
		"REMOTE_ADDR=192.0.2.1",
		NULL,
	};
	struct fake_req f;
	struct call c;
	struct problem p;

	(void)state;
	fake(&f, "PUT", "a=1&b=%2F", params, "abcd", 4);
	assert_int_equal(from_request(&c, &f, "fn/x", &env, &p), 0);
	assert_string_equal(c.function, "fn");
	assert_string_equal(c.path, "/x");
	assert_string_equal(c.method, "PUT");
	assert_string_equal(c.query, "a=1&b=%2F"); /* as sent */
	assert_string_equal(json_text(c.headers),
			    "{\"X-Trace\":\"abc\",\"X-Request-Id\":\"r-1\",\"Accept\":\"*/*\","
			    "\"Content-Type\":\"application/octet-stream\"}");
	assert_int_equal(c.body_len, 4);
	assert_memory_equal(c.body, "abcd", 4);
	assert_string_equal(c.body_type, "binary");
	assert_false(c.has_delay);
	assert_false(c.has_not_before);
	assert_int_equal(c.max_attempts, -1);
	call_cleanup(&c);
}

static void test_request_control_headers(void **state)
{
	char *params[] = {
		"REQUEST_METHOD=POST",
		"HTTP_ASYNC_DELAY=5s",
		"HTTP_ASYNC_MAX_ATTEMPTS=3",
		"HTTP_ASYNC_CORRELATION_ID=order-9",
		"HTTP_ASYNC_TIMEOUT=10s",
		"HTTP_ASYNC_EXPIRES_IN=1h",
		"HTTP_ASYNC_CALLBACK=https://client.example.com/r",
		"HTTP_ASYNC_FAILURE_CALLBACK=https://client.example.com/f",
		"HTTP_ASYNC_RETRY_INITIAL=2s",
		"HTTP_ASYNC_RETRY_MAX=1m",
		"HTTP_X_KEEP=1",
		NULL,
	};
	char *params_nb[] = {
		"HTTP_ASYNC_NOT_BEFORE=2026-11-23T19:00:00Z",
		NULL,
	};
	struct fake_req f;
	struct call c;
	struct problem p;

	(void)state;
	fake(&f, "POST", "", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "https%3A%2F%2Fapi.example.com%2Fhook", &env, &p),
			 0);
	assert_string_equal(c.target, "https://api.example.com/hook");
	assert_true(c.has_delay);
	assert_int_equal(c.delay_ms, 5000);
	assert_int_equal(c.max_attempts, 3);
	assert_string_equal(c.correlation_id, "order-9");
	assert_int_equal(c.timeout_ms, 10000);
	assert_int_equal(c.expires_in_ms, 3600000);
	assert_string_equal(c.callback_url, "https://client.example.com/r");
	assert_string_equal(c.failure_callback_url, "https://client.example.com/f");
	assert_int_equal(c.retry_initial_ms, 2000);
	assert_int_equal(c.retry_max_ms, 60000);
	/* Control headers are not forwarded. */
	assert_string_equal(json_text(c.headers), "{\"X-Keep\":\"1\"}");
	call_cleanup(&c);

	fake(&f, "POST", "", params_nb, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_true(c.has_not_before);
	assert_int_equal(c.not_before_us, T_2026_11_23_19 * 1000000);
	assert_false(c.has_delay);
	call_cleanup(&c);
}

static void test_request_bad_control_headers(void **state)
{
	static const struct {
		const char *param;
		const char *field;
	} cases[] = {
		{ "HTTP_ASYNC_FOO=1", "Async-Foo" }, /* named as the client wrote it */
		{ "HTTP_ASYNC_DELAY=-5s", "Async-Delay" },
		{ "HTTP_ASYNC_DELAY=366d", "Async-Delay" },
		{ "HTTP_ASYNC_DELAY=", "Async-Delay" },
		{ "HTTP_ASYNC_MAX_ATTEMPTS=0", "Async-Max-Attempts" },
		{ "HTTP_ASYNC_MAX_ATTEMPTS=101", "Async-Max-Attempts" },
		{ "HTTP_ASYNC_MAX_ATTEMPTS=3x", "Async-Max-Attempts" },
		{ "HTTP_ASYNC_MAX_ATTEMPTS=", "Async-Max-Attempts" },
		{ "HTTP_ASYNC_NOT_BEFORE=yesterday", "Async-Not-Before" },
		{ "HTTP_ASYNC_CALLBACK=ftp://x", "Async-Callback" },
		{ "HTTP_ASYNC_FAILURE_CALLBACK=http://127.0.0.1/", "Async-Failure-Callback" },
		{ "HTTP_ASYNC_CORRELATION_ID=", "Async-Correlation-Id" },
		{ "HTTP_ASYNC_CORRELATION_ID=a\tb", "Async-Correlation-Id" },
		{ "HTTP_ASYNC_CORRELATION_ID=order-\xff", "Async-Correlation-Id" }, /* not UTF-8 */
		{ "HTTP_ASYNC_CORRELATION_ID=\xed\xa0\x80", "Async-Correlation-Id" },
		{ "HTTP_ASYNC_CORRELATION_ID=a\xc0\xaf" "b", "Async-Correlation-Id" }, /* overlong */
		{ "HTTP_ASYNC_CORRELATION_ID=\xff", "Async-Correlation-Id" },
		{ "HTTP_ASYNC_TIMEOUT=0s", "Async-Timeout" },
		{ "HTTP_ASYNC_EXPIRES_IN=1.5h", "Async-Expires-In" },
		{ "HTTP_ASYNC_RETRY_MAX=31d", "Async-Retry-Max" },
		{ "HTTP_X_A=a\rb", "headers.X-A" },
		{ "HTTP_WEBHOOK_ID=x", "headers.Webhook-Id" },
		{ "CONTENT_TYPE=text/plain\n", "headers.Content-Type" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *params[] = { "REQUEST_METHOD=POST", (char *)cases[i].param, NULL };
		struct fake_req f;
		struct call c;
		struct problem p;

		fake(&f, "POST", "", params, NULL, 0);
		if (from_request(&c, &f, "fn", &env, &p) != -1)
			fail_msg("%s accepted", cases[i].param);
		if (p.status != 400 || strcmp(p.field, cases[i].field) != 0)
			fail_msg("%s: got %d \"%s\" (%s), want 400 \"%s\"", cases[i].param, p.status,
				 p.field, p.detail, cases[i].field);
		call_cleanup(&c);
	}
}

/* ---- per-call controls: retry.on, retry.give_up_on, connect_timeout, debounce_key ------- */

static void test_controls_json(void **state)
{
	struct call c;
	struct problem p;
	struct json_object *row;

	(void)state;
	assert_int_equal(from_json(&c,
				   "{\"target\":\"" EX "\",\"retry\":{\"on\":[404,\"4XX\",\" 409 \"],"
				   "\"give_up_on\":[\"501\",\"3xx\"]},\"connect_timeout\":\"250ms\","
				   "\"timeout\":\"5s\",\"debounce_key\":\"user-42 sync\"}",
				   &env, "", &p),
			 0);
	assert_string_equal(json_text(c.retry_on), "[404,\"4xx\",409]");
	assert_string_equal(json_text(c.give_up_on), "[501,\"3xx\"]");
	assert_int_equal(c.connect_timeout_ms, 250);
	assert_string_equal(c.debounce_key, "user-42 sync");
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), 0);
	row = call_row_json(&c, NULL);
	assert_string_equal(json_text(member(row, "retry_on")), "[404,\"4xx\",409]");
	assert_string_equal(json_text(member(row, "give_up_on")), "[501,\"3xx\"]");
	assert_int_equal(json_object_get_int64(member(row, "connect_timeout_ms")), 250);
	assert_string_equal(json_object_get_string(member(row, "debounce_key")), "user-42 sync");
	json_object_put(row);
	call_cleanup(&c);

	/* Not given: not in the row (the idempotency hash of older calls stays the same). */
	assert_int_equal(from_json(&c, "{\"target\":\"" EX "\"}", &env, "", &p), 0);
	assert_int_equal(c.connect_timeout_ms, -1);
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), 0);
	row = call_row_json(&c, NULL);
	assert_false(json_object_object_get_ex(row, "retry_on", NULL));
	assert_false(json_object_object_get_ex(row, "give_up_on", NULL));
	assert_false(json_object_object_get_ex(row, "connect_timeout_ms", NULL));
	assert_false(json_object_object_get_ex(row, "debounce_key", NULL));
	json_object_put(row);
	call_cleanup(&c);

	/* connect_timeout up to the timeout in force: the call's, the function's, the default. */
	assert_int_equal(from_json(&c, "{\"target\":\"" EX "\",\"connect_timeout\":\"30s\"}",
				   &env, "", &p),
			 0);
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), 0);
	call_cleanup(&c);
	assert_int_equal(from_json(&c, "{\"function\":\"f\",\"connect_timeout\":\"6s\"}",
				   &env, "[2].", &p),
			 0);
	assert_int_equal(call_resolve(&c, &env, 5000, -1, -1, -1, "[2].", &p), -1);
	assert_int_equal(p.status, 400);
	assert_string_equal(p.field, "[2].connect_timeout");
	assert_non_null(strstr(p.detail, "5000 ms"));
	call_cleanup(&c);
}

static void test_controls_json_bad(void **state)
{
	static const struct {
		const char *json;
		const char *field;
	} cases[] = {
		{ "\"retry\":{\"on\":404}", "retry.on" },
		{ "\"retry\":{\"on\":[200]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[503,\"2xx\"]}", "retry.on[1]" },
		{ "\"retry\":{\"on\":[\"1xx\"]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[600]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[99]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[-404]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[404.0]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[\"4x\"]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[\"x04\"]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[\"40x\"]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[\"6xx\"]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[null]}", "retry.on[0]" },
		{ "\"retry\":{\"on\":[[404]]}", "retry.on[0]" },
		{ "\"retry\":{\"give_up_on\":[\"5xx\",204]}", "retry.give_up_on[1]" },
		{ "\"retry\":{\"give_up_on\":{}}", "retry.give_up_on" },
		{ "\"retry\":{\"on\":[400,401,402,403,404,405,406,407,408,409,410,411,412,413,414,"
		  "415,416,417,418,421,422,423,424,425,426,428,429,431,451,500,501,502,503]}",
		  "retry.on" },
		{ "\"retry\":{\"onn\":[]}", "retry.onn" },
		{ "\"connect_timeout\":\"50ms\"", "connect_timeout" },
		{ "\"connect_timeout\":\"-1s\"", "connect_timeout" },
		{ "\"connect_timeout\":\"31m\"", "connect_timeout" },
		{ "\"connect_timeout\":true", "connect_timeout" },
		{ "\"debounce_key\":\"\"", "debounce_key" },
		{ "\"debounce_key\":5", "debounce_key" },
		{ "\"debounce_key\":\"a\\tb\"", "debounce_key" },
		{ "\"debounce_key\":\"" /* 257 bytes */
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
		  "debounce_key" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[2048];
		struct call c;
		struct problem p;

		snprintf(json, sizeof(json), "{\"target\":\"" EX "\",%s}", cases[i].json);
		if (from_json(&c, json, &env, "", &p) != -1)
			mismatch("%s: accepted", json);
		else if (p.status != 400 || strcmp(p.field, cases[i].field) != 0)
			mismatch("%s: %d \"%s\" (%s), want 400 \"%s\"", json, p.status, p.field,
				 p.detail, cases[i].field);
		call_cleanup(&c);
	}
	assert_int_equal(errors, 0);
}

static void test_controls_headers(void **state)
{
	char *params[] = {
		"REQUEST_METHOD=POST",
		"HTTP_ASYNC_RETRY_ON=404, 5XX,409",
		"HTTP_ASYNC_GIVE_UP_ON=501",
		"HTTP_ASYNC_CONNECT_TIMEOUT=2s",
		"HTTP_ASYNC_DEBOUNCE_KEY=k1",
		NULL,
	};
	char *params_long[] = { "HTTP_ASYNC_CONNECT_TIMEOUT=40s", NULL };
	static const struct {
		const char *param;
		const char *field;
	} bad[] = {
		{ "HTTP_ASYNC_RETRY_ON=", "Async-Retry-On" },
		{ "HTTP_ASYNC_RETRY_ON=404,", "Async-Retry-On" },
		{ "HTTP_ASYNC_RETRY_ON=2xx", "Async-Retry-On" },
		{ "HTTP_ASYNC_RETRY_ON=404;500", "Async-Retry-On" },
		{ "HTTP_ASYNC_GIVE_UP_ON=200", "Async-Give-Up-On" },
		{ "HTTP_ASYNC_GIVE_UP_ON=abc", "Async-Give-Up-On" },
		{ "HTTP_ASYNC_CONNECT_TIMEOUT=0", "Async-Connect-Timeout" },
		{ "HTTP_ASYNC_CONNECT_TIMEOUT=soon", "Async-Connect-Timeout" },
		{ "HTTP_ASYNC_DEBOUNCE_KEY=", "Async-Debounce-Key" },
		{ "HTTP_ASYNC_DEBOUNCE_KEY=\xff", "Async-Debounce-Key" },
	};
	struct fake_req f;
	struct call c;
	struct problem p;

	(void)state;
	fake(&f, "POST", "", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_string_equal(json_text(c.retry_on), "[404,\"5xx\",409]");
	assert_string_equal(json_text(c.give_up_on), "[501]");
	assert_int_equal(c.connect_timeout_ms, 2000);
	assert_string_equal(c.debounce_key, "k1");
	assert_string_equal(json_text(c.headers), "{}");
	call_cleanup(&c);

	/* over the (default) timeout: named as the header */
	fake(&f, "POST", "", params_long, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_int_equal(call_resolve(&c, &env, -1, -1, -1, -1, "", &p), -1);
	assert_string_equal(p.field, "Async-Connect-Timeout");
	call_cleanup(&c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *pp[] = { "REQUEST_METHOD=POST", (char *)bad[i].param, NULL };

		fake(&f, "POST", "", pp, NULL, 0);
		if (from_request(&c, &f, "fn", &env, &p) != -1)
			mismatch("%s accepted", bad[i].param);
		else if (p.status != 400 || strcmp(p.field, bad[i].field) != 0)
			mismatch("%s: %d \"%s\" (%s), want 400 \"%s\"", bad[i].param, p.status,
				 p.field, p.detail, bad[i].field);
		call_cleanup(&c);
	}
	assert_int_equal(errors, 0);
}

static void test_request_delay_and_not_before(void **state)
{
	char *params[] = { "HTTP_ASYNC_DELAY=5s", "HTTP_ASYNC_NOT_BEFORE=1795460400", NULL };
	struct fake_req f;
	struct call c;
	struct problem p;

	(void)state;
	fake(&f, "POST", "", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_int_equal(p.status, 400);
	/* transparent mode names the control header */
	assert_string_equal(p.field, "Async-Delay");
	call_cleanup(&c);
}

static void test_request_body_and_method(void **state)
{
	static const char bin[] = { 'a', '\0', 'b', '\xff', '\0', '\r', '\n' };
	char *params[] = { "REQUEST_METHOD=POST", "CONTENT_TYPE=application/x-bin", NULL };
	struct fake_req f;
	struct call c;
	struct problem p;
	int64_t saved = cf.max_body_bytes;

	(void)state;
	fake(&f, "POST", "", params, bin, sizeof(bin));
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_int_equal(c.body_len, sizeof(bin));
	assert_memory_equal(c.body, bin, sizeof(bin));
	assert_string_equal(c.body_type, "binary");
	call_cleanup(&c);

	/* A GET with a body, an unknown method, a query with a space. */
	fake(&f, "GET", "", params, "x", 1);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_string_equal(p.field, "body");
	call_cleanup(&c);
	fake(&f, "GET", "a=1", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_string_equal(c.method, "GET");
	assert_null(c.body);
	call_cleanup(&c);
	fake(&f, "FETCH", "", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_string_equal(p.field, "method");
	call_cleanup(&c);
	fake(&f, "POST", "a=1 2", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_string_equal(p.field, "query");
	call_cleanup(&c);
	fake(&f, "POST", "a=1#frag", params, NULL, 0);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_string_equal(p.field, "query");
	call_cleanup(&c);

	/* The body limit applies to transparent mode too (413, field "body"). */
	cf.max_body_bytes = 4;
	fake(&f, "POST", "", params, "12345", 5);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), -1);
	assert_int_equal(p.status, 413);
	assert_string_equal(p.field, "body");
	call_cleanup(&c);
	cf.max_body_bytes = saved;
}

/* deny_headers: refused by name in a call's headers and in both callbacks' headers (JSON), and
 * left out without a word in transparent mode. Cookie is on the list by default. */
static void test_deny_headers(void **state)
{
	static const struct {
		const char *json, *field;
	} cases[] = {
		{ "{\"target\":\"https://a.example/\",\"headers\":{\"Cookie\":\"s=1\"}}",
		  "headers.Cookie" },
		{ "{\"target\":\"https://a.example/\",\"headers\":{\"cookie\":\"s=1\"}}",
		  "headers.cookie" },
		{ "{\"target\":\"https://a.example/\",\"callback\":{\"url\":\"https://c.example/\","
		  "\"headers\":{\"COOKIE\":\"s=1\"}}}",
		  "callback.headers.COOKIE" },
		{ "{\"target\":\"https://a.example/\",\"failure_callback\":{\"url\":"
		  "\"https://c.example/\",\"headers\":{\"X-Internal\":\"1\"}}}",
		  "failure_callback.headers.X-Internal" },
		{ "{\"target\":\"https://a.example/\",\"headers\":{\"x_internal\":\"1\"}}",
		  "headers.x_internal" },
		{ "{\"target\":\"https://a.example/\",\"headers\":{\"Proxy\":\"http://p/\"}}",
		  "headers.Proxy" },
	};
	char *saved = cf.deny_headers;
	char *params[] = {
		"REQUEST_METHOD=POST",
		"HTTP_COOKIE=session=secret",
		"HTTP_X_INTERNAL=1",
		"HTTP_X_KEEP=yes",
		"HTTP_X_HOPPY=1",
		"HTTP_CONNECTION=close, X-Hoppy",
		"HTTP_PROXY=http://evil.example/",
		"CONTENT_TYPE=text/plain",
		NULL,
	};
	struct fake_req f;
	struct call c;
	struct problem p;

	(void)state;
	errors = 0;
	cf.deny_headers = "Cookie, X-Internal";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (from_json(&c, cases[i].json, &env, "", &p) != -1) {
			mismatch("accepted: %s", cases[i].json);
		} else if (p.status != 400 || strcmp(p.field, cases[i].field) != 0 ||
			   strstr(p.detail, cases[i].field) == NULL) {
			mismatch("%s: got %d \"%s\" (%s), want 400 \"%s\"", cases[i].json, p.status,
				 p.field, p.detail, cases[i].field);
		}
		call_cleanup(&c);
	}
	/* Transparent mode records the rest. */
	fake(&f, "POST", "", params, "x", 1);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_string_equal(json_text(c.headers),
			    "{\"X-Keep\":\"yes\",\"Content-Type\":\"text/plain\"}");
	call_cleanup(&c);
	/* An empty list lets Cookie through; hop-by-hop headers stay out all the same. */
	cf.deny_headers = "";
	assert_int_equal(from_json(&c,
				   "{\"target\":\"https://a.example/\",\"headers\":{\"Cookie\":"
				   "\"s=1\"}}",
				   &env, "", &p),
			 0);
	call_cleanup(&c);
	fake(&f, "POST", "", params, "x", 1);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_string_equal(json_text(c.headers),
			    "{\"Cookie\":\"session=secret\",\"X-Internal\":\"1\",\"X-Keep\":"
			    "\"yes\",\"Content-Type\":\"text/plain\"}");
	call_cleanup(&c);
	/* A denied Content-Type is not recorded from CONTENT_TYPE either. */
	cf.deny_headers = "content-type";
	fake(&f, "POST", "", params, "x", 1);
	assert_int_equal(from_request(&c, &f, "fn", &env, &p), 0);
	assert_null(json_object_object_get(c.headers, "Content-Type"));
	call_cleanup(&c);
	cf.deny_headers = saved;
	assert_int_equal(errors, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_json_invalid),
		cmocka_unit_test(test_from_json_valid),
		cmocka_unit_test(test_from_json_empty_query),
		cmocka_unit_test(test_from_json_allow_list),
		cmocka_unit_test(test_from_json_prefix),
		cmocka_unit_test(test_from_json_prefix_non_object),
		cmocka_unit_test(test_from_json_max_headers),
		cmocka_unit_test(test_from_json_body_limit),
		cmocka_unit_test(test_from_json_delay_limit),
		cmocka_unit_test(test_from_json_long_url),
		cmocka_unit_test(test_from_json_retry_zero),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_retry_order),
		cmocka_unit_test(test_row_json),
		cmocka_unit_test(test_request_targets),
		cmocka_unit_test(test_request_bad_targets),
		cmocka_unit_test(test_forbidden_spellings),
		cmocka_unit_test(test_request_headers),
		cmocka_unit_test(test_request_control_headers),
		cmocka_unit_test(test_request_bad_control_headers),
		cmocka_unit_test(test_controls_json),
		cmocka_unit_test(test_controls_json_bad),
		cmocka_unit_test(test_controls_headers),
		cmocka_unit_test(test_request_delay_and_not_before),
		cmocka_unit_test(test_request_body_and_method),
		cmocka_unit_test(test_deny_headers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

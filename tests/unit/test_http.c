/* test_http: RFC 9110 syntax checks, percent-coding, problem+json answers and request params. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "http.h"

static void test_token_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "X-A", true },
		{ "Content-Type", true },
		{ "x", true },
		{ "!#$%&'*+-.^_`|~", true },
		{ "A1b2", true },
		{ "", false },
		{ "X A", false },
		{ "X:A", false },
		{ "X\tA", false },
		{ "X\"A", false },
		{ "(X)", false },
		{ "X,A", false },
		{ "X/A", false },
		{ "X@A", false },
		{ "X=A", false },
		{ "X\r", false },
		{ "X\x7f", false },
		{ "\xc3\xa9", false }, /* UTF-8 e-acute */
		{ "X\x80", false },
	};
	char long_ok[257], long_bad[258];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_token_valid(cases[i].s) != cases[i].ok)
			fail_msg("http_token_valid(\"%s\") is %s", cases[i].s,
				 cases[i].ok ? "false" : "true");
	memset(long_ok, 'a', 256);
	long_ok[256] = '\0';
	assert_true(http_token_valid(long_ok));
	memset(long_bad, 'a', 257);
	long_bad[257] = '\0';
	assert_false(http_token_valid(long_bad));
}

static void test_value_valid(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		bool ok;
	} cases[] = {
		{ "abc", 3, true },
		{ "", 0, true },
		{ "a\tb", 3, true },          /* HTAB is allowed */
		{ "a b", 3, true },
		{ "caf\xc3\xa9", 5, true },   /* obs-text bytes */
		{ "\x80\xff", 2, false },   /* not UTF-8: stored as JSON text, so refused */
		{ "caf\xe9", 4, false },      /* Latin-1 */
		{ "\xc0\xaf", 2, false },     /* overlong '/' */
		{ "\xed\xa0\x80", 3, false }, /* a surrogate */
		{ "\xf4\x90\x80\x80", 4, false }, /* above U+10FFFF */
		{ "\xe2\x82", 2, false },     /* cut short */
		{ "\xf0\x9f\x98\x80", 4, true }, /* U+1F600 */
		{ "a\rb", 3, false },
		{ "a\nb", 3, false },
		{ "a\r\nX-Injected: 1", 16, false },
		{ "a\0b", 3, false },         /* NUL inside the given length */
		{ "a\x7f", 2, false },        /* DEL */
		{ "\x01", 1, false },
		{ "\x1f", 1, false },
		{ "\x1b[31m", 5, false },     /* ESC */
	};
	char *big;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_value_valid(cases[i].s, cases[i].len) != cases[i].ok)
			fail_msg("http_value_valid case %zu is %s", i, cases[i].ok ? "false" : "true");
	big = malloc(8194);
	assert_non_null(big);
	memset(big, 'v', 8193);
	big[8193] = '\0';
	assert_true(http_value_valid(big, 8192));
	assert_false(http_value_valid(big, 8193));
	free(big);
}

static void test_header_reserved(void **state)
{
	static const struct {
		const char *s;
		bool reserved;
	} cases[] = {
		{ "Connection", true },
		{ "connection", true },
		{ "CONNECTION", true },
		{ "Keep-Alive", true },
		{ "Proxy-Connection", true },
		{ "Proxy-Authorization", true },
		{ "Proxy-Authenticate", true },
		{ "TE", true },
		{ "te", true },
		{ "Trailer", true },
		{ "Transfer-Encoding", true },
		{ "transfer-encoding", true },
		{ "Upgrade", true },
		{ "Host", true },
		{ "host", true },
		{ "Content-Length", true },
		{ "content-LENGTH", true },
		{ "Expect", true },
		{ "Proxy", true },
		{ "proxy", true },
		{ "Trailers", true },
		{ "Proxy_Connection", true }, /* CGI reads '_' as '-' */
		{ "TRANSFER_ENCODING", true },
		{ "Content_Length", true },
		{ "Async_Call_Id", true },
		{ "Webhook_Signature", true },
		{ "Async-Foo", true },
		{ "async-call-id", true },
		{ "ASYNC-ATTEMPT", true },
		{ "Async-", true },
		{ "Webhook-Signature", true },
		{ "webhook-id", true },
		{ "X-Foo", false },
		{ "Content-Type", false },
		{ "Authorization", false },
		{ "Accept", false },
		{ "Hostname", false },
		{ "X-Host", false },
		{ "Asyncfoo", false },
		{ "Async", false },
		{ "Connections", false },
		{ "TEST", false },
		{ "Proxy-", false },
		{ "Proxyx", false },
		{ "X-Proxy", false },
		{ "Cookie", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_header_reserved(cases[i].s) != cases[i].reserved)
			fail_msg("http_header_reserved(\"%s\") is %s", cases[i].s,
				 cases[i].reserved ? "false" : "true");
}

static void check_encode(const char *in, size_t len, const char *want)
{
	struct buf b;

	buf_init(&b);
	http_pct_encode(&b, in, len);
	if (want[0] == '\0') {
		assert_int_equal(b.len, 0);
	} else {
		assert_non_null(b.data);
		assert_string_equal(b.data, want);
		assert_int_equal(b.len, strlen(want));
	}
	buf_cleanup(&b);
}

static void test_header_hop(void **state)
{
	(void)state;
	assert_true(http_header_hop("Connection"));
	assert_true(http_header_hop("keep_alive"));
	assert_true(http_header_hop("Host"));
	assert_true(http_header_hop("Proxy"));
	assert_true(http_header_hop("Expect"));
	/* The gateway's own headers are reserved for calls, but not about the hop. */
	assert_false(http_header_hop("Async-Delay"));
	assert_false(http_header_hop("webhook-id"));
	assert_false(http_header_hop("Authorization"));
	assert_false(http_header_hop("X-A"));
}

static void test_header_listed(void **state)
{
	static const struct {
		const char *list, *name;
		bool listed;
	} cases[] = {
		{ "Cookie", "Cookie", true },
		{ "Cookie", "cookie", true },
		{ "Cookie", "COOKIE", true },
		{ "Cookie", "Cookies", false },
		{ "Cookie", "Cooki", false },
		{ "Cookie", "", false },
		{ "Cookie, Proxy-Authorization", "proxy-authorization", true },
		{ "Cookie,Proxy-Authorization", "Proxy_Authorization", true },
		{ "close, X-Secret", "X-Secret", true },
		{ "close,  X-Secret ,", "x-secret", true },
		{ "close, X-Secret", "X-Secre", false },
		{ "close, X-Secret", "close", true },
		{ "a\tb c", "b", true },
		{ "a\tb c", "c", true },
		{ "X_A", "X-A", true },
		{ "", "X-A", false },
		{ ", ,", "X-A", false },
		{ NULL, "X-A", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_header_listed(cases[i].list, cases[i].name) != cases[i].listed)
			fail_msg("http_header_listed(\"%s\", \"%s\") is %s",
				 cases[i].list ? cases[i].list : "(null)", cases[i].name,
				 cases[i].listed ? "false" : "true");
}

static void test_utf8_len(void **state)
{
	(void)state;
	assert_int_equal(http_utf8_len("a", 1), 1);
	assert_int_equal(http_utf8_len("\xc3\xa9", 2), 2);
	assert_int_equal(http_utf8_len("\xe2\x82\xac", 3), 3);
	assert_int_equal(http_utf8_len("\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(http_utf8_len("\xf0\x9f\x98\x80", 3), 0); /* cut short */
	assert_int_equal(http_utf8_len("\xed\xa0\x80", 3), 0);	   /* CESU-8 surrogate */
	assert_int_equal(http_utf8_len("\xc0\x80", 2), 0);	   /* overlong */
	assert_int_equal(http_utf8_len("\xf4\x90\x80\x80", 4), 0); /* past U+10FFFF */
	assert_int_equal(http_utf8_len("\x80", 1), 0);
	assert_int_equal(http_utf8_len("", 0), 0);
}

static void test_pct_encode(void **state)
{
	(void)state;
	check_encode("abcXYZ019", 9, "abcXYZ019");
	check_encode("-._~", 4, "-._~");
	check_encode("a b", 3, "a%20b");
	check_encode("a+b", 3, "a%2Bb");
	check_encode("a b/c?d=e&f#g", 13, "a%20b%2Fc%3Fd%3De%26f%23g");
	check_encode("%", 1, "%25");
	check_encode("\xc3\xa9", 2, "%C3%A9");
	check_encode("a\0b", 3, "a%00b");
	check_encode("\r\n", 2, "%0D%0A");
	check_encode("\xff", 1, "%FF");
	check_encode("", 0, "");
}

static void check_decode(const char *in, const char *want)
{
	char *got = http_pct_decode(in, strlen(in));

	if (want == NULL) {
		if (got != NULL)
			fail_msg("http_pct_decode(\"%s\") gave \"%s\", want NULL", in, got);
		return;
	}
	if (got == NULL)
		fail_msg("http_pct_decode(\"%s\") gave NULL, want \"%s\"", in, want);
	assert_string_equal(got, want);
	free(got);
}

static void test_pct_decode(void **state)
{
	char *s;

	(void)state;
	check_decode("abc", "abc");
	check_decode("", "");
	check_decode("a%20b", "a b");
	check_decode("%2f%2F", "//");
	check_decode("%C3%a9", "\xc3\xa9");
	check_decode("a+b", "a+b"); /* '+' is kept */
	check_decode("%25", "%");
	check_decode("%2525", "%25"); /* decoded once only */
	check_decode("https%3A%2F%2Fapi.example.com%2Fv2", "https://api.example.com/v2");
	check_decode("%zz", NULL);
	check_decode("%2", NULL);
	check_decode("%", NULL);
	check_decode("a%", NULL);
	check_decode("%g0", NULL);
	check_decode("%0g", NULL);
	check_decode("%00", NULL); /* would decode to NUL */
	check_decode("a%00b", NULL);
	check_decode("%-1", NULL);
	check_decode("% 1", NULL);
	/* A NUL inside the given length is refused too. */
	s = http_pct_decode("a\0b", 3);
	assert_null(s);
	/* Only len bytes are read. */
	s = http_pct_decode("abc%2", 3);
	assert_non_null(s);
	assert_string_equal(s, "abc");
	free(s);
	s = http_pct_decode("ab%20cd", 5);
	assert_non_null(s);
	assert_string_equal(s, "ab ");
	free(s);
}

static void test_pct_round_trip(void **state)
{
	char all[255];
	struct buf b;
	char *back;

	(void)state;
	for (int i = 0; i < 255; i++)
		all[i] = (char)(i + 1); /* every byte but NUL */
	buf_init(&b);
	http_pct_encode(&b, all, sizeof(all));
	for (size_t i = 0; i < b.len; i++) /* the encoding is plain URL-safe ASCII */
		assert_non_null(strchr("%-._~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789",
				       b.data[i]));
	back = http_pct_decode(b.data, b.len);
	assert_non_null(back);
	assert_int_equal(strlen(back), sizeof(all));
	assert_memory_equal(back, all, sizeof(all));
	free(back);
	buf_cleanup(&b);
}

/* Parses rs->body as JSON (the caller puts it). */
static struct json_object *body_json(const struct resp *rs)
{
	struct json_object *o;

	assert_non_null(rs->body);
	assert_int_equal(strlen(rs->body), rs->body_len);
	o = json_tokener_parse(rs->body);
	if (o == NULL)
		fail_msg("body is not JSON: %s", rs->body);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static const char *member_str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		fail_msg("no member %s", k);
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static void test_resp_problem(void **state)
{
	struct resp rs;
	struct json_object *o, *v;

	(void)state;
	resp_init(&rs);
	resp_problem(&rs, 400, "headers.X-A", "bad value \"%s\" at %d", "a\nb", 3);
	assert_int_equal(rs.status, 400);
	assert_non_null(rs.content_type);
	assert_string_equal(rs.content_type, "application/problem+json");
	o = body_json(&rs);
	assert_string_equal(member_str(o, "type"), "about:blank");
	assert_string_equal(member_str(o, "title"), "Bad Request");
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int(v), 400);
	assert_string_equal(member_str(o, "detail"), "bad value \"a\nb\" at 3");
	assert_string_equal(member_str(o, "field"), "headers.X-A");
	assert_int_equal(json_object_object_length(o), 5);
	json_object_put(o);

	/* Without a field there is no "field" member; a second call replaces the first. */
	resp_problem(&rs, 413, NULL, "too big");
	assert_int_equal(rs.status, 413);
	o = body_json(&rs);
	assert_string_equal(member_str(o, "title"), "Content Too Large");
	assert_string_equal(member_str(o, "detail"), "too big");
	assert_false(json_object_object_get_ex(o, "field", NULL));
	assert_int_equal(json_object_object_length(o), 4);
	json_object_put(o);

	resp_problem(&rs, 503, "", "%s", "down");
	o = body_json(&rs);
	assert_string_equal(member_str(o, "title"), "Service Unavailable");
	json_object_put(o);
	resp_reset(&rs);
	assert_int_equal(rs.status, 0);
	assert_null(rs.body);
}

/* The answer is UTF-8 JSON even when the text it quotes is not, or is cut inside a character
 * (a 200-character field name of "é" ran past struct problem's 192-byte field; found by
 * tests/fuzz/fuzz_call_json). Well-formed text is kept as it is. */
static void test_resp_problem_utf8(void **state)
{
	char big[2 + 2 * 600 + 1];
	char want[1024];
	struct resp rs;
	struct json_object *o;
	size_t n = 0;

	(void)state;
	resp_init(&rs);
	/* 2 + 2 * 600 bytes: cut to 1023, the detail ends with the first byte of an "é". */
	big[n++] = 'x';
	big[n++] = 'y';
	for (int i = 0; i < 600; i++) {
		big[n++] = '\xc3';
		big[n++] = '\xa9';
	}
	big[n] = '\0';
	resp_problem(&rs, 400, "a\xff\xc3(\xe2\x82z\xed\xa0\x80\xf0\x9f\x98\x80", "%s", big);
	assert_true(http_utf8_valid(rs.body, rs.body_len));
	o = body_json(&rs);
	memcpy(want, big, 1022);
	want[1022] = '?';
	want[1023] = '\0';
	assert_string_equal(member_str(o, "detail"), want);
	assert_string_equal(member_str(o, "field"), "a?" "?(?" "?z?" "?" "?\xf0\x9f\x98\x80");
	json_object_put(o);

	resp_problem(&rs, 400, "caf\xc3\xa9", "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80");
	o = body_json(&rs);
	assert_string_equal(member_str(o, "field"), "caf\xc3\xa9");
	assert_string_equal(member_str(o, "detail"), "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80");
	json_object_put(o);
	resp_reset(&rs);
}

static void test_resp_json_and_header(void **state)
{
	struct resp rs;
	struct json_object *o = json_object_new_object();
	struct json_object *back;

	(void)state;
	json_object_object_add(o, "url", json_object_new_string("/v1/calls/x"));
	resp_init(&rs);
	resp_json(&rs, 202, o);
	json_object_put(o); /* resp_json only read it */
	assert_int_equal(rs.status, 202);
	assert_string_equal(rs.content_type, "application/json");
	assert_string_equal(rs.body, "{\"url\":\"/v1/calls/x\"}"); /* slashes not escaped */
	back = body_json(&rs);
	json_object_put(back);

	resp_header(&rs, "Location", "/v1/calls/%s", "abc");
	resp_header(&rs, "X-Evil", "a\r\nSet-Cookie: x=1");
	assert_string_equal(rs.headers.data,
			    "Location: /v1/calls/abc\r\nX-Evil: a  Set-Cookie: x=1\r\n");
	resp_reset(&rs);
	assert_int_equal(rs.headers.len, 0);
}

static void test_http_reason(void **state)
{
	(void)state;
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(202), "Accepted");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(405), "Method Not Allowed");
	assert_string_equal(http_reason(409), "Conflict");
	assert_string_equal(http_reason(413), "Content Too Large");
	assert_string_equal(http_reason(503), "Service Unavailable");
	assert_non_null(http_reason(418));
	assert_non_null(http_reason(599));
}

static void test_req_param(void **state)
{
	char *params[] = {
		"REQUEST_METHOD=GET", "HTTP_X=1", "HTTP_XY=2", "EMPTY=", "Q=a=b", "NOEQUALS", NULL,
	};
	struct req rq;

	(void)state;
	req_init(&rq);
	assert_string_equal(rq.method, "");
	assert_null(req_param(&rq, "HTTP_X")); /* no params at all */
	rq.params = params;
	assert_string_equal(req_param(&rq, "REQUEST_METHOD"), "GET");
	assert_string_equal(req_param(&rq, "HTTP_X"), "1");
	assert_string_equal(req_param(&rq, "HTTP_XY"), "2");
	assert_string_equal(req_param(&rq, "EMPTY"), "");
	assert_string_equal(req_param(&rq, "Q"), "a=b");
	assert_null(req_param(&rq, "HTTP"));
	assert_null(req_param(&rq, "HTTP_"));
	assert_null(req_param(&rq, "MISSING"));
	assert_null(req_param(&rq, "NOEQUALS"));
	assert_null(req_param(&rq, "http_x")); /* names are exact */
	rq.params = NULL;
}

static void test_req_reset_frees(void **state)
{
	char p0[] = "REQUEST_METHOD=POST", p1[] = "REQUEST_URI=/v1/calls?a=%2F";
	char *params[] = {p0, p1, NULL};
	struct req rq;

	(void)state;
	req_init(&rq);
	rq.params = params; /* borrowed: req_reset leaves it alone */
	rq.method = rq.params[0] + 15;
	rq.query = xstrdup("a=%2F"); /* owned: set from REQUEST_URI */
	rq.path = xstrdup("/v1/calls");
	rq.mount = xstrdup("");
	rq.body = xstrdup("{}");
	rq.body_len = 2;
	assert_string_equal(rq.method, "POST");
	req_reset(&rq); /* ASan reports a leak if anything is kept */
	assert_null(rq.params);
	assert_null(rq.path);
	assert_null(rq.query);
	assert_null(rq.body);
	assert_int_equal(rq.body_len, 0);
	assert_string_equal(rq.method, "");
	req_reset(&rq); /* twice is harmless */
}

static void check_query(const char *query, const char *name, const char *want)
{
	char *got = http_query_get(query, name);

	if (want == NULL) {
		if (got != NULL) {
			char msg[256];

			snprintf(msg, sizeof(msg),
				 "http_query_get(\"%s\", \"%s\") gave \"%s\", want NULL",
				 query ? query : "NULL", name, got);
			free(got);
			fail_msg("%s", msg);
		}
		return;
	}
	if (got == NULL)
		fail_msg("http_query_get(\"%s\", \"%s\") gave NULL, want \"%s\"",
			 query ? query : "NULL", name, want);
	if (strcmp(got, want) != 0) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "http_query_get(\"%s\", \"%s\") gave \"%s\", want \"%s\"", query, name,
			 got, want);
		free(got);
		fail_msg("%s", msg);
	}
	free(got);
}

static void test_query_get(void **state)
{
	(void)state;
	check_query("a=1&b=x%20y", "b", "x y");
	check_query("a=1&b=x%20y", "a", "1");
	check_query("b=x+y", "b", "x y"); /* '+' is a space */
	check_query("b=a%2Bb", "b", "a+b"); /* an encoded '+' stays one */
	check_query("b=%2B+", "b", "+ ");
	check_query("a=1&a=2", "a", "1"); /* the first of repeated keys */
	check_query("a=&a=2", "a", "");
	check_query("token=1", "tok", NULL); /* a prefix of another key */
	check_query("token=1&tok=2", "tok", "2");
	check_query("tok=1", "token", NULL);
	check_query("a&b=1", "a", ""); /* a key without '=' */
	check_query("b=1&a", "a", "");
	check_query("a=b=c", "a", "b=c");
	check_query("a=1&b=2", "c", NULL); /* absent */
	check_query("xa=1", "a", NULL);
	check_query("a=%zz", "a", NULL); /* malformed */
	check_query("a=%2", "a", NULL);
	check_query("a=%00", "a", NULL);
	check_query("a=%zz&b=1", "b", "1"); /* another pair's error does not matter */
	check_query("&&a=1&", "a", "1");
	check_query(NULL, "a", NULL);
	check_query("", "a", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_valid),
		cmocka_unit_test(test_value_valid),
		cmocka_unit_test(test_header_reserved),
		cmocka_unit_test(test_header_hop),
		cmocka_unit_test(test_header_listed),
		cmocka_unit_test(test_utf8_len),
		cmocka_unit_test(test_pct_encode),
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_pct_round_trip),
		cmocka_unit_test(test_resp_problem),
		cmocka_unit_test(test_resp_problem_utf8),
		cmocka_unit_test(test_resp_json_and_header),
		cmocka_unit_test(test_http_reason),
		cmocka_unit_test(test_req_param),
		cmocka_unit_test(test_req_reset_frees),
		cmocka_unit_test(test_query_get),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

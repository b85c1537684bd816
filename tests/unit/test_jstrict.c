/* test_jstrict: the strict JSON parse of client documents, rule by rule, good and bad. */
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

#include "jstrict.h"

static int errors;

/* Parses s[0..len) with the limit; the document (caller puts) or NULL with p filled. */
static struct json_object *parse_n(const char *s, size_t len, int depth, struct problem *p)
{
	memset(p, 0, sizeof(*p));
	return jstrict_parse(s, len, depth, p);
}

/* A document that must pass; returns it (caller puts). */
static struct json_object *good(const char *s, size_t len, int depth)
{
	struct problem p;
	struct json_object *o = parse_n(s, len, depth, &p);

	if (o == NULL) {
		print_error("refused: %.80s: %s\n", s, p.detail);
		errors++;
	}
	return o;
}

/* A document that must be refused with a detail holding want (and, if given, want2). */
static void bad2(const char *s, size_t len, int depth, const char *want, const char *want2)
{
	struct problem p;
	struct json_object *o = parse_n(s, len, depth, &p);

	if (o != NULL) {
		print_error("accepted: %.80s\n", s);
		errors++;
		json_object_put(o);
		return;
	}
	if (p.status != 400 || strcmp(p.field, "body") != 0 ||
	    strncmp(p.detail, "body: ", 6) != 0 || strstr(p.detail, want) == NULL ||
	    (want2 != NULL && strstr(p.detail, want2) == NULL)) {
		print_error("%.80s: got %d \"%s\" \"%s\", want \"%s\"%s%s\n", s, p.status, p.field,
			    p.detail, want, want2 != NULL ? " and " : "",
			    want2 != NULL ? want2 : "");
		errors++;
	}
}

static void bad(const char *s, const char *want, const char *want2)
{
	bad2(s, strlen(s), 32, want, want2);
}

static void test_good_documents(void **state)
{
	static const char *const docs[] = {
		"{}",
		"[]",
		"{\"a\":1}",
		" \t\r\n[1, 2.5, -0, 1e10, 1E-5, 0.5e+3, true, false, null, \"x\"] \n",
		"\"just a string\"",
		"1",
		"-12.5",
		"true",
		"9223372036854775807",
		"-9223372036854775808",
		"[9223372036854775807, -9223372036854775808, 1e308, 1e-400]",
		"{\"a\":{\"a\":1},\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":2}]}",
		"{\"a\":1,\"A\":2,\"a \":3,\"\":4}",
		"{\"\\u00e9\":1,\"\\u00c9\":2}",
		"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
		"[\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac \xf4\x8f\xbf\xbf\"]",
		"[\"\\ud83d\\ude00\", \"\\uDBFF\\uDFFF\", \"\\ud800\\udc00\"]",
		"[\"\\u0001 \\u001f \\u007f \\uffff \\ufffd\"]",
		"{\"a\":[],\"b\":{},\"c\":[[],{}]}",
		"[\"\x7f\"]",
	};
	struct json_object *o;

	(void)state;
	errors = 0;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		o = good(docs[i], strlen(docs[i]), 32);
		json_object_put(o);
	}
	assert_int_equal(errors, 0);

	/* What json-c builds is what was sent. */
	o = good("\"\\u00e9\"", 8, 32);
	assert_non_null(o);
	assert_int_equal(json_object_get_string_len(o), 2);
	assert_memory_equal(json_object_get_string(o), "\xc3\xa9", 2);
	json_object_put(o);
	o = good("\"\\ud83d\\ude00\"", 14, 32);
	assert_non_null(o);
	assert_int_equal(json_object_get_string_len(o), 4);
	assert_memory_equal(json_object_get_string(o), "\xf0\x9f\x98\x80", 4);
	json_object_put(o);
	o = good("-9223372036854775808", 20, 32);
	assert_non_null(o);
	assert_true(json_object_get_int64(o) == INT64_MIN);
	json_object_put(o);
	o = good("{\"k\":[1,{\"x\":\"y\"}]}", 19, 32);
	assert_non_null(o);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"k\":[1,{\"x\":\"y\"}]}");
	json_object_put(o);
	/* The input need not be NUL-terminated: only len bytes are read. */
	o = good("[1]}junk", 3, 32);
	assert_non_null(o);
	json_object_put(o);
}

static void test_malformed(void **state)
{
	(void)state;
	errors = 0;
	bad("{\"target\":", "ends early", NULL);
	bad("[1,2", "ends early", "byte 4");
	bad("\"abc", "ends early", NULL);
	bad("tru", "ends early", NULL);
	bad("{'target':'x'}", "malformed JSON near byte 1", NULL);
	bad("[1,]", "malformed JSON near byte 3", NULL);
	bad("{\"a\" 1}", "malformed JSON", NULL);
	bad("[\"\\x\"]", "malformed JSON", NULL);
	bad("[\"\\u12\"]", "malformed JSON", NULL);
	bad("/* c */ {}", "malformed JSON", NULL);
	bad("[+1]", "malformed JSON", NULL);
	bad("[.5]", "malformed JSON", NULL);
	bad("[01]", "malformed JSON", NULL);
	bad("[nan]", "malformed JSON", NULL);
	bad("\xef\xbb\xbf[1]", "malformed JSON", NULL); /* a byte order mark */
	bad("", "no JSON document", NULL);
	bad("null", "the document is null", NULL);
	bad(" null ", "the document is null", NULL);
	bad(" \r\n\t", "no JSON document", NULL);
	bad2(NULL, 0, 32, "no JSON document", NULL);
	/* Number forms json-c takes and RFC 8259 section 6 does not. */
	bad("[1.]", "malformed number at [0] (byte 1)", NULL);
	bad("{\"n\":-01}", "malformed number at n (byte 5)", NULL);
	bad("[1.e5]", "malformed number", NULL);
	/* Keys in single quotes: json-c's strict mode takes them, RFC 8259 does not. */
	bad("{'a':1}", "a key in single quotes at byte 1", NULL);
	bad("{\"a\":{\"b\":1,'c':2}}", "a key in single quotes at byte 12", NULL);
	assert_int_equal(errors, 0);
}

static void test_trailing(void **state)
{
	(void)state;
	errors = 0;
	bad("{\"target\":\"x\"} trailing", "unexpected bytes after the JSON document at byte 15",
	    NULL);
	bad("{\"a\":1}}", "unexpected bytes after the JSON document at byte 7", NULL);
	bad("[1][2]", "unexpected bytes after the JSON document at byte 3", NULL);
	bad("[1] ,", "unexpected bytes after the JSON document at byte 4", NULL);
	bad("{}{}", "unexpected bytes after the JSON document at byte 2", NULL);
	bad("\"a\" \"b\"", "unexpected bytes after the JSON document at byte 4", NULL);
	bad("1 2", "unexpected bytes after the JSON document at byte 2", NULL);
	bad("true x", "unexpected bytes after the JSON document", NULL);
	bad("[1]\f", "unexpected bytes after the JSON document at byte 3", NULL);
	assert_int_equal(errors, 0);
}

static void test_duplicate_keys(void **state)
{
	char *big;
	size_t cap = 400000, o = 0;
	struct json_object *doc;

	(void)state;
	errors = 0;
	bad("{\"a\":1,\"a\":2}", "duplicate key \"a\" in the top-level object (byte 7)", NULL);
	bad("{\"a\":1,\"\\u0061\":2}", "duplicate key \"a\"", "byte 7");
	bad("{\"\\u00e9\":1,\"\xc3\xa9\":2}", "duplicate key \"\xc3\xa9\"", NULL);
	bad("{\"a\":{\"b\":1},\"a\":2}", "duplicate key \"a\" in the top-level object (byte 13)",
	    NULL);
	bad("[{\"target\":\"x\",\"headers\":{\"X-A\":\"1\",\"X-A\":\"2\"}}]",
	    "duplicate key \"X-A\" in the object at [0].headers (byte 36)", NULL);
	bad("{\"a\":1,\"b\":2,\"c\":3,\"b\":4,\"a\":5}", "duplicate key \"b\"", "byte 19");
	bad("{\"\":1,\"\":2}", "duplicate key \"\"", NULL);
	bad("{\"x\":[{\"q\":{}},{\"q\":1,\"r\":2,\"q\":3}]}",
	    "duplicate key \"q\" in the object at x[1]", NULL);
	/* The walk scales: 20000 distinct keys pass, and a repeat at the end is found. */
	big = malloc(cap);
	assert_non_null(big);
	big[o++] = '{';
	for (int i = 0; i < 20000; i++)
		o += (size_t)snprintf(big + o, cap - o, "%s\"k%d\":%d", i ? "," : "", i, i);
	big[o++] = '}';
	doc = good(big, o, 32);
	assert_non_null(doc);
	assert_int_equal(json_object_object_length(doc), 20000);
	json_object_put(doc);
	o--;
	o += (size_t)snprintf(big + o, cap - o, ",\"k7\":0}");
	bad2(big, o, 32, "duplicate key \"k7\"", NULL);
	free(big);
	assert_int_equal(errors, 0);
}

static void test_nan_infinity(void **state)
{
	(void)state;
	errors = 0;
	bad("[NaN]", "NaN and Infinity are not JSON numbers", "at [0] (byte 1)");
	bad("[1, Infinity]", "NaN and Infinity", "at [1] (byte 4)");
	bad("{\"body\":{\"x\":-Infinity}}", "NaN and Infinity", "at body.x (byte 13)");
	bad("NaN", "NaN and Infinity", "the top level");
	bad("-Infinity", "NaN and Infinity", NULL);
	bad("[1e400]", "too large for a double", "at [0]");
	bad("[-1e400]", "too large for a double", NULL);
	bad("[1.5e99999999999999999999]", "too large for a double", NULL);
	assert_int_equal(errors, 0);
}

static void test_integer_range(void **state)
{
	(void)state;
	errors = 0;
	bad("[9223372036854775808]", "outside the 64-bit range", "at [0] (byte 1)");
	bad("[-9223372036854775809]", "outside the 64-bit range", NULL);
	bad("[18446744073709551615]", "outside the 64-bit range", NULL);
	bad("[18446744073709551616]", "outside the 64-bit range", NULL);
	bad("{\"retry\":{\"max_attempts\":99999999999999999999999}}", "outside the 64-bit range",
	    "at retry.max_attempts");
	bad("-99999999999999999999999", "outside the 64-bit range", NULL);
	bad("[10000000000000000000]", "outside the 64-bit range", NULL);
	assert_int_equal(errors, 0);
}

static void test_utf8(void **state)
{
	(void)state;
	errors = 0;
	bad("[\"\xc0\x80\"]", "not UTF-8 at byte 2", NULL);		    /* overlong NUL */
	bad("[\"\xe0\x80\xaf\"]", "not UTF-8 at byte 2", NULL);		    /* overlong '/' */
	bad("[\"\xed\xa0\x80\"]", "not UTF-8 at byte 2", NULL);		    /* CESU-8 lone D800 */
	bad("[\"\xed\xa0\xbd\xed\xb8\x80\"]", "not UTF-8 at byte 2", NULL); /* CESU-8 pair */
	bad("[\"\xed\xbf\xbf\"]", "not UTF-8", NULL);			    /* DFFF */
	bad("[\"\xf4\x90\x80\x80\"]", "not UTF-8", NULL);		    /* past U+10FFFF */
	bad("[\"\xff\"]", "not UTF-8", NULL);
	bad("[\"\x80\"]", "not UTF-8", NULL);
	bad("[\"\xe2\x82\"]", "not UTF-8", NULL); /* cut short */
	bad("{\"\xfe\":1}", "not UTF-8 at byte 2", NULL);
	bad("[1]\xff", "not UTF-8 at byte 3", NULL);
	assert_int_equal(errors, 0);
}

static void test_surrogate_escapes(void **state)
{
	(void)state;
	errors = 0;
	bad("[\"\\ud800\"]", "unpaired surrogate \\ud800 in [0] (byte 2)", NULL);
	bad("[\"\\udc00\"]", "unpaired surrogate \\udc00", "low half");
	bad("[\"\\uDFFF\"]", "unpaired surrogate \\udfff", NULL);
	bad("[\"\\ud800x\"]", "unpaired surrogate \\ud800", NULL);
	bad("[\"\\ud800\\u0041\"]", "unpaired surrogate \\ud800", NULL);
	bad("[\"\\ud800\\ud800\"]", "unpaired surrogate \\ud800", NULL);
	bad("[\"\\ude00\\ud83d\"]", "unpaired surrogate \\ude00", NULL); /* pair reversed */
	bad("[\"ok \\ud83d\\ude00 \\udbff\"]", "unpaired surrogate \\udbff", NULL);
	bad("{\"h\":{\"\\ud800\":1}}", "unpaired surrogate", "in a key of the object at h");
	bad("{\"\\udc00\":1}", "in a key of the top-level object", NULL);
	assert_int_equal(errors, 0);
}

static void test_nul_and_controls(void **state)
{
	(void)state;
	errors = 0;
	bad("[\"a\\u0000b\"]", "\\u0000 (NUL) in [0] (byte 3)", NULL);
	bad("{\"\\u0000\":1}", "\\u0000 (NUL) in a key of the top-level object", NULL);
	bad("{\"headers\":{\"X-A\":\"\\u0000\"}}", "\\u0000 (NUL) in headers.X-A", NULL);
	bad2("[\"a\0b\"]", 7, 32, "a NUL byte inside a string at byte 3", NULL);
	bad2("{\"a\0\":1}", 8, 32, "a NUL byte inside a string at byte 3", NULL);
	bad2("[1]\0", 4, 32, "a NUL byte at byte 3", NULL);
	bad2("\0", 1, 32, "a NUL byte at byte 0", NULL);
	bad("[\"a\tb\"]", "unescaped control character (0x09) inside a string at byte 3", NULL);
	bad("[\"a\nb\"]", "unescaped control character (0x0a)", NULL);
	bad("{\"a\x1f\":1}", "unescaped control character (0x1f)", NULL);
	assert_int_equal(errors, 0);
}

/* n arrays (or objects with key "a") around a scalar. */
static char *nest(int n, bool obj)
{
	char *s = malloc((size_t)n * 6 + 8);
	size_t o = 0;

	assert_non_null(s);
	for (int i = 0; i < n; i++) {
		if (obj) {
			memcpy(s + o, "{\"a\":", 5);
			o += 5;
		} else {
			s[o++] = '[';
		}
	}
	s[o++] = '1';
	for (int i = 0; i < n; i++)
		s[o++] = obj ? '}' : ']';
	s[o] = '\0';
	return s;
}

static void test_depth(void **state)
{
	char *s;
	char want[64];
	struct json_object *o;

	(void)state;
	errors = 0;
	for (int obj = 0; obj < 2; obj++) {
		s = nest(32, obj);
		o = good(s, strlen(s), 32);
		json_object_put(o);
		free(s);
		s = nest(33, obj);
		snprintf(want, sizeof(want), "nesting deeper than 32 arrays and objects at byte %d",
			 obj ? 32 * 5 : 32);
		bad2(s, strlen(s), 32, want, NULL);
		free(s);
	}
	/* Other limits, the same way. */
	s = nest(4, true);
	o = good(s, strlen(s), 4);
	json_object_put(o);
	bad2(s, strlen(s), 3, "nesting deeper than 3", NULL);
	free(s);
	o = good("[1]", 3, 1);
	json_object_put(o);
	bad2("[[1]]", 5, 1, "nesting deeper than 1 ", NULL);
	bad2("[[1]]", 5, 0, "nesting deeper than 1 ", NULL); /* below 1 counts as 1 */
	bad2("[{}]", 4, -5, "nesting deeper than 1 ", NULL);
	s = nest(JSTRICT_DEPTH_MAX, false);
	o = good(s, strlen(s), 1 << 30); /* clamped to JSTRICT_DEPTH_MAX */
	json_object_put(o);
	free(s);
	s = nest(JSTRICT_DEPTH_MAX + 1, true);
	bad2(s, strlen(s), 1 << 30, "nesting deeper than 1000", NULL);
	free(s);
	/* Brackets inside strings are not nesting. */
	o = good("[\"[[[[[[[[[[\", \"{{{{{{{{\"]", 26, 2);
	json_object_put(o);
	/* Mixed: 32 levels of arrays and objects, a path deep inside is named. */
	bad("[{\"a\":[{\"b\":[{\"c\":{\"d\":[1,2,NaN]}}]}]}]", "at [0].a[0].b[0].c.d[2]", NULL);
	assert_int_equal(errors, 0);
}

/* The detail stays short and printable with long or odd keys in the path. */
static void test_long_paths(void **state)
{
	char doc[2048];
	size_t o = 0;
	struct problem p;
	struct json_object *obj;

	(void)state;
	o += (size_t)snprintf(doc + o, sizeof(doc) - o, "{\"");
	for (int i = 0; i < 300; i++)
		doc[o++] = 'k';
	o += (size_t)snprintf(doc + o, sizeof(doc) - o, "\":{\"\\n\\u00e9\xe2\x82\xac\":NaN}}");
	obj = parse_n(doc, o, 32, &p);
	assert_null(obj);
	assert_non_null(strstr(p.detail, "kkk..."));
	assert_non_null(strstr(p.detail, "?\xc3\xa9\xe2\x82\xac (byte"));
	assert_true(strlen(p.detail) < 400);
	/* Many levels of long keys: the path is cut, the detail still ends with the offset. */
	o = 0;
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(doc + o, sizeof(doc) - o,
				      "{\"abcdefghijklmnopqrstuvwxyz%02d\":", i);
	o += (size_t)snprintf(doc + o, sizeof(doc) - o, "Infinity");
	for (int i = 0; i < 20; i++)
		doc[o++] = '}';
	obj = parse_n(doc, o, 32, &p);
	assert_null(obj);
	assert_non_null(strstr(p.detail, "abcdefghijklmnopqrstuvwxyz00.abcdef"));
	assert_non_null(strstr(p.detail, "(byte 640)"));
	assert_true(strlen(p.detail) < 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_documents),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_nan_infinity),
		cmocka_unit_test(test_integer_range),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_surrogate_escapes),
		cmocka_unit_test(test_nul_and_controls),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_long_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

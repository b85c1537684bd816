/* test_topic: topic names, JSON Pointers (RFC 6901), subscription filters (shape and
 * matching), a message + a subscription = one call instruction, and a transparent-mode message
 * back as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "call.h"
#include "topic.h"

static struct json_object *J(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

static void test_names(void **state)
{
	(void)state;
	assert_true(topic_name_valid("orders"));
	assert_true(topic_name_valid("a.b-c_d9"));
	assert_true(topic_name_valid("0"));
	assert_false(topic_name_valid(""));
	assert_false(topic_name_valid("-x"));
	assert_false(topic_name_valid("a b"));
	assert_false(topic_name_valid("a:b"));
	assert_false(topic_name_valid("a/b"));
	assert_false(topic_name_valid("caf\xc3\xa9"));
	char long_name[200];
	memset(long_name, 'a', sizeof(long_name));
	long_name[128] = '\0';
	assert_true(topic_name_valid(long_name));
	long_name[128] = 'a';
	long_name[129] = '\0';
	assert_false(topic_name_valid(long_name));
}

/* The examples of RFC 6901 section 5. */
static void test_pointer_rfc6901(void **state)
{
	struct json_object *doc = J("{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2,"
				    " \"e^f\": 3, \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6,"
				    " \" \": 7, \"m~n\": 8}");
	struct json_object *v;
	static const struct {
		const char *ptr;
		int want;
	} ints[] = {
		{ "/", 0 }, { "/a~1b", 1 }, { "/c%d", 2 }, { "/e^f", 3 }, { "/g|h", 4 },
		{ "/i\\j", 5 }, { "/k\"l", 6 }, { "/ ", 7 }, { "/m~0n", 8 },
	};

	(void)state;
	assert_true(topic_pointer_get(doc, "", &v));
	assert_ptr_equal(v, doc);
	assert_true(topic_pointer_get(doc, "/foo", &v));
	assert_true(json_object_is_type(v, json_type_array));
	assert_true(topic_pointer_get(doc, "/foo/0", &v));
	assert_string_equal(json_object_get_string(v), "bar");
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		assert_true(topic_pointer_get(doc, ints[i].ptr, &v));
		assert_int_equal(json_object_get_int(v), ints[i].want);
	}
	json_object_put(doc);
}

static void test_pointer_missing_and_invalid(void **state)
{
	struct json_object *doc = J("{\"a\": {\"b\": null}, \"arr\": [1, 2], \"s\": \"x\"}");
	struct json_object *v = (struct json_object *)1;

	(void)state;
	assert_true(topic_pointer_get(doc, "/a/b", &v)); /* exists, and is null */
	assert_null(v);
	assert_false(topic_pointer_get(doc, "/a/c", &v));
	assert_false(topic_pointer_get(doc, "/arr/2", &v));
	assert_false(topic_pointer_get(doc, "/arr/-", &v));
	assert_false(topic_pointer_get(doc, "/arr/01", &v));
	assert_false(topic_pointer_get(doc, "/arr/x", &v));
	assert_false(topic_pointer_get(doc, "/s/0", &v));
	assert_false(topic_pointer_get(doc, "a", &v));
	assert_false(topic_pointer_get(doc, "/a~2", &v));
	assert_false(topic_pointer_get(doc, "/a~", &v));
	assert_true(topic_pointer_valid(""));
	assert_true(topic_pointer_valid("/"));
	assert_true(topic_pointer_valid("/a~0~1"));
	assert_false(topic_pointer_valid("x"));
	assert_false(topic_pointer_valid("/~x"));
	json_object_put(doc);
}

/* Each bad filter names its field. */
static void test_filter_check(void **state)
{
	static const struct {
		const char *filter;
		const char *field; /* NULL: valid */
	} rows[] = {
		{ "{\"header\": \"X-Kind\", \"equals\": \"order\"}", NULL },
		{ "{\"header\": \"X-Kind\", \"in\": [\"a\", \"b\"]}", NULL },
		{ "{\"header\": \"X-Kind\", \"exists\": false}", NULL },
		{ "{\"json\": \"/type\", \"equals\": {\"k\": [1]}}", NULL },
		{ "{\"json\": \"\", \"in\": [1, \"1\", null, true]}", NULL },
		{ "[{\"json\": \"/a\", \"exists\": true}, {\"header\": \"X\", \"equals\": \"y\"}]",
		  NULL },
		{ "\"x\"", "f" },
		{ "{}", "f" },
		{ "{\"header\": \"X\"}", "f" },
		{ "{\"equals\": \"x\"}", "f" },
		{ "{\"header\": \"X\", \"json\": \"/a\", \"equals\": \"x\"}", "f" },
		{ "{\"header\": \"X\", \"equals\": \"x\", \"in\": [\"x\"]}", "f" },
		{ "{\"header\": \"Bad Name\", \"equals\": \"x\"}", "f.header" },
		{ "{\"header\": 1, \"equals\": \"x\"}", "f.header" },
		{ "{\"header\": \"X\", \"equals\": 1}", "f.equals" },
		{ "{\"header\": \"X\", \"in\": [1]}", "f.in" },
		{ "{\"header\": \"X\", \"in\": []}", "f.in" },
		{ "{\"header\": \"X\", \"in\": \"x\"}", "f.in" },
		{ "{\"header\": \"X\", \"exists\": 1}", "f.exists" },
		{ "{\"json\": \"type\", \"equals\": 1}", "f.json" },
		{ "{\"json\": \"/a~3\", \"equals\": 1}", "f.json" },
		{ "{\"json\": \"/a\", \"equals\": 1, \"not\": true}", "f.not" },
		{ "[]", "f" },
		{ "[1]", "f[0]" },
		{ "[{\"json\": \"/a\", \"exists\": true}, {\"json\": \"/a\"}]", "f[1]" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_object *f = J(rows[i].filter);
		struct problem p;
		int rc = topic_filter_check(f, "f", &p);

		if (rows[i].field == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", rows[i].filter, p.detail);
		} else {
			if (rc == 0)
				fail_msg("%s: accepted", rows[i].filter);
			if (strcmp(p.field, rows[i].field) != 0)
				fail_msg("%s: field %s, want %s", rows[i].filter, p.field,
					 rows[i].field);
			assert_int_equal(p.status, 400);
			assert_int_equal(strncmp(p.detail, p.field, strlen(p.field)), 0);
		}
		json_object_put(f);
	}
	/* at most TOPIC_MAX_CONDITIONS conditions */
	{
		struct json_object *arr = json_object_new_array();
		struct problem p;

		for (int i = 0; i <= TOPIC_MAX_CONDITIONS; i++)
			json_object_array_add(arr, J("{\"header\": \"X\", \"exists\": true}"));
		assert_int_equal(topic_filter_check(arr, "f", &p), -1);
		json_object_put(arr);
	}
}

static void test_filter_match(void **state)
{
	struct json_object *h = J("{\"X-Kind\": \"order\", \"Content-Type\": \"application/json\"}");
	struct json_object *b = J("{\"type\": \"order\", \"n\": 1, \"x\": 2.5, \"ok\": true,"
				  " \"none\": null, \"items\": [{\"sku\": \"B2\"}],"
				  " \"obj\": {\"k\": [1, 2]}}");
	static const struct {
		const char *filter;
		bool with_body, want;
	} rows[] = {
		{ "{\"header\": \"X-Kind\", \"equals\": \"order\"}", true, true },
		{ "{\"header\": \"x-kind\", \"equals\": \"order\"}", true, true },
		{ "{\"header\": \"X-Kind\", \"equals\": \"Order\"}", true, false },
		{ "{\"header\": \"X-Kind\", \"in\": [\"refund\", \"order\"]}", true, true },
		{ "{\"header\": \"X-Kind\", \"in\": [\"refund\"]}", true, false },
		{ "{\"header\": \"X-Other\", \"equals\": \"order\"}", true, false },
		{ "{\"header\": \"X-Other\", \"exists\": false}", true, true },
		{ "{\"header\": \"X-Kind\", \"exists\": true}", true, true },
		{ "{\"json\": \"/type\", \"equals\": \"order\"}", true, true },
		{ "{\"json\": \"/type\", \"equals\": \"refund\"}", true, false },
		{ "{\"json\": \"/n\", \"equals\": 1.0}", true, true },
		{ "{\"json\": \"/n\", \"equals\": \"1\"}", true, false },
		{ "{\"json\": \"/x\", \"in\": [1, 2.5]}", true, true },
		{ "{\"json\": \"/ok\", \"equals\": true}", true, true },
		{ "{\"json\": \"/none\", \"equals\": null}", true, true },
		{ "{\"json\": \"/none\", \"exists\": true}", true, true },
		{ "{\"json\": \"/missing\", \"equals\": null}", true, false },
		{ "{\"json\": \"/missing\", \"exists\": false}", true, true },
		{ "{\"json\": \"/items/0/sku\", \"in\": [\"A1\", \"B2\"]}", true, true },
		{ "{\"json\": \"/obj\", \"equals\": {\"k\": [1, 2]}}", true, true },
		{ "{\"json\": \"/obj\", \"equals\": {\"k\": [2, 1]}}", true, false },
		{ "{\"json\": \"/type\", \"equals\": \"order\"}", false, false },
		{ "{\"json\": \"/type\", \"exists\": false}", false, true },
		{ "[{\"header\": \"X-Kind\", \"equals\": \"order\"},"
		  " {\"json\": \"/n\", \"equals\": 1}]",
		  true, true },
		{ "[{\"header\": \"X-Kind\", \"equals\": \"order\"},"
		  " {\"json\": \"/n\", \"equals\": 2}]",
		  true, false },
	};

	(void)state;
	assert_true(topic_filter_match(NULL, h, b));
	assert_true(topic_filter_match(NULL, NULL, NULL));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_object *f = J(rows[i].filter);
		struct problem p;

		assert_int_equal(topic_filter_check(f, "f", &p), 0);
		if (topic_filter_match(f, h, rows[i].with_body ? b : NULL) != rows[i].want)
			fail_msg("%s: want %d", rows[i].filter, rows[i].want);
		json_object_put(f);
	}
	json_object_put(b);
	json_object_put(h);
}

static const char *sget(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void test_instruction(void **state)
{
	struct json_object *msg = J("{\"method\": \"PUT\", \"path\": \"/extra\","
				    " \"headers\": {\"X-A\": \"msg\", \"X-B\": \"msg\"},"
				    " \"body\": {\"k\": 1}, \"retry\": {\"max_attempts\": 2},"
				    " \"delay\": \"5s\"}");
	struct json_object *fn = J("{\"function\": \"inv\", \"path\": \"/v1/\","
				   " \"headers\": {\"x-a\": \"sub\"}, \"timeout\": \"3s\"}");
	struct json_object *url = J("{\"target\": \"http://h.example/base/?q=1\","
				    " \"retry\": {\"max_attempts\": 9}}");
	struct json_object *o, *hd;
	struct problem p;

	(void)state;
	o = topic_instruction(msg, fn, "subscriptions.s.", &p);
	assert_non_null(o);
	assert_string_equal(sget(o, "function"), "inv");
	assert_string_equal(sget(o, "path"), "/v1/extra");
	assert_string_equal(sget(o, "method"), "PUT");
	assert_string_equal(sget(o, "timeout"), "3s");
	assert_string_equal(sget(o, "delay"), "5s");
	hd = json_object_object_get(o, "headers");
	assert_string_equal(sget(hd, "x-a"), "sub"); /* the subscription's wins */
	assert_null(sget(hd, "X-A"));
	assert_string_equal(sget(hd, "X-B"), "msg");
	assert_int_equal(json_object_get_int(json_object_object_get(
				 json_object_object_get(o, "retry"), "max_attempts")),
			 2);
	assert_null(sget(o, "target"));
	json_object_put(o);

	o = topic_instruction(msg, url, "subscriptions.u.", &p);
	assert_non_null(o);
	assert_string_equal(sget(o, "target"), "http://h.example/base/extra?q=1");
	assert_null(sget(o, "path"));
	assert_int_equal(json_object_get_int(json_object_object_get(
				 json_object_object_get(o, "retry"), "max_attempts")),
			 9);
	json_object_put(o);

	/* No message path: the subscription's as it is; none at all: no path member. */
	json_object_object_del(msg, "path");
	o = topic_instruction(msg, fn, "", &p);
	assert_string_equal(sget(o, "path"), "/v1/");
	json_object_put(o);
	json_object_object_del(fn, "path");
	o = topic_instruction(msg, fn, "", &p);
	assert_null(sget(o, "path"));
	json_object_put(o);
	o = topic_instruction(msg, url, "", &p);
	assert_string_equal(sget(o, "target"), "http://h.example/base/?q=1");
	json_object_put(o);

	json_object_put(url);
	json_object_put(fn);
	json_object_put(msg);
}

static void test_message_json(void **state)
{
	struct call c;
	struct json_object *o, *r;

	(void)state;
	call_init(&c);
	c.function = strdup("topic");
	c.path = strdup("/p");
	c.method = strdup("PATCH");
	c.query = strdup("a=1");
	c.headers = J("{\"X-A\": \"1\"}");
	c.body = (unsigned char *)strdup("hi\n");
	c.body_len = 3;
	c.body_type = "binary";
	c.has_delay = true;
	c.delay_ms = 1500;
	c.expires_in_ms = 60000;
	c.correlation_id = strdup("c-1");
	c.callback_url = strdup("https://cb.example/");
	c.max_attempts = 4;
	c.timeout_ms = 2000;
	o = topic_message_json(&c);
	assert_null(sget(o, "function"));
	assert_string_equal(sget(o, "path"), "/p");
	assert_string_equal(sget(o, "method"), "PATCH");
	assert_string_equal(sget(o, "query"), "a=1");
	assert_string_equal(sget(json_object_object_get(o, "headers"), "X-A"), "1");
	assert_string_equal(sget(o, "body_base64"), "aGkK");
	assert_string_equal(sget(o, "delay"), "1500ms");
	assert_string_equal(sget(o, "expires_in"), "60000ms");
	assert_string_equal(sget(o, "correlation_id"), "c-1");
	assert_string_equal(sget(o, "callback"), "https://cb.example/");
	assert_string_equal(sget(o, "timeout"), "2000ms");
	r = json_object_object_get(o, "retry");
	assert_int_equal(json_object_get_int(json_object_object_get(r, "max_attempts")), 4);
	assert_null(json_object_object_get(r, "initial"));
	json_object_put(o);

	c.has_delay = false;
	c.has_not_before = true;
	c.not_before_us = 1795460400250000LL;
	o = topic_message_json(&c);
	assert_string_equal(sget(o, "not_before"), "2026-11-23T19:00:00.250000Z");
	assert_null(sget(o, "delay"));
	json_object_put(o);
	call_cleanup(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_pointer_rfc6901),
		cmocka_unit_test(test_pointer_missing_and_invalid),
		cmocka_unit_test(test_filter_check),
		cmocka_unit_test(test_filter_match),
		cmocka_unit_test(test_instruction),
		cmocka_unit_test(test_message_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

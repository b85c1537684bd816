/* test_function: the C-side checks of a function spec (lib/function.c), function names, and
 * call priority parsing (lib/call.c: priority, Async-Priority, its row). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "call.h"
#include "conf.h"
#include "function.h"
#include "netpolicy.h"

#include "callenv.c.inc"

/* function_check on json under e: 0, or -1 with the field in *p. */
static int check(const char *json, const struct call_env *e, struct problem *p)
{
	struct json_object *o = json_tokener_parse(json);
	int rc;

	assert_non_null(o);
	memset(p, 0, sizeof(*p));
	rc = function_check(o, e, p);
	json_object_put(o);
	return rc;
}

static void test_check_good(void **state)
{
	struct problem p;

	(void)state;
	assert_int_equal(check("{\"base_url\":\"https://api.example.com/v2\","
			       "\"headers\":{\"X-Team\":\"a\"},"
			       "\"signing_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}",
			       &env, &p),
			 0);
	/* the allow list lets loopback in */
	assert_int_equal(check("{\"base_url\":\"http://127.0.0.1:8080/x\"}", &env_lo, &p), 0);
	/* types and the rest are ag_function_put's: left alone here */
	assert_int_equal(check("{\"base_url\":1,\"headers\":[],\"rate\":\"fast\"}", &env, &p), 0);
	assert_int_equal(check("[]", &env, &p), 0);
}

static void test_check_bad(void **state)
{
	static const struct {
		const char *json;
		const char *field;
	} rows[] = {
		{"{\"base_url\":\"http://127.0.0.1/x\"}", "base_url"}, /* loopback, no allow list */
		{"{\"base_url\":\"http://169.254.169.254/\"}", "base_url"},
		{"{\"base_url\":\"ftp://example.com/\"}", "base_url"},
		{"{\"base_url\":\"https://user:pw@example.com/\"}", "base_url"},
		{"{\"base_url\":\"https://example.com/#f\"}", "base_url"},
		{"{\"headers\":{\"Connection\":\"close\"}}", "headers.Connection"},
		{"{\"headers\":{\"webhook-id\":\"x\"}}", "headers.webhook-id"},
		{"{\"headers\":{\"Async-Delay\":\"1s\"}}", "headers.Async-Delay"},
		{"{\"headers\":{\"X-A\":\"a\\nb\"}}", "headers.X-A"},
		{"{\"headers\":{\"Bad Name\":\"a\"}}", "headers.Bad Name"},
		{"{\"headers\":{\"X-A\":1}}", "headers.X-A"},
		{"{\"signing_secret\":\"whsec_%%%\"}", "signing_secret"},
		{"{\"signing_secret\":\"whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}",
		 "signing_secret"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct problem p;

		assert_int_equal(check(rows[i].json, &env, &p), -1);
		assert_int_equal(p.status, 400);
		assert_string_equal(p.field, rows[i].field);
		assert_non_null(strstr(p.detail, rows[i].field));
	}
}

static void test_name(void **state)
{
	char long_name[130];

	(void)state;
	assert_true(function_name_valid("resize-image"));
	assert_true(function_name_valid("a"));
	assert_true(function_name_valid("A9_.-x"));
	assert_false(function_name_valid(""));
	assert_false(function_name_valid("-a"));
	assert_false(function_name_valid("a/b"));
	assert_false(function_name_valid("a b"));
	assert_false(function_name_valid("caf\xc3\xa9"));
	memset(long_name, 'a', 128);
	long_name[128] = '\0';
	assert_true(function_name_valid(long_name));
	long_name[128] = 'a';
	long_name[129] = '\0';
	assert_false(function_name_valid(long_name));
}

static void test_parse_priority(void **state)
{
	static const struct {
		const char *s;
		int64_t want; /* INT64_MIN: refused */
	} rows[] = {
		{"0", 0},
		{"100", 100},
		{"-100", -100},
		{"+7", 7},
		{"007", 7},
		{"101", INT64_MIN},
		{"-101", INT64_MIN},
		{"", INT64_MIN},
		{"-", INT64_MIN},
		{"1.5", INT64_MIN},
		{" 1", INT64_MIN},
		{"1 ", INT64_MIN},
		{"0x10", INT64_MIN},
		{"1000", INT64_MIN},
		{"--1", INT64_MIN},
		{"high", INT64_MIN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t v = 12345;
		int rc = call_parse_priority(rows[i].s, &v);

		if (rows[i].want == INT64_MIN) {
			assert_int_equal(rc, -1);
			assert_int_equal(v, 12345);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(v, rows[i].want);
		}
	}
}

/* The JSON field: whole numbers -100..100; stored in the row only when not 0 (so the
 * idempotency hashes of calls without it do not change). */
static void test_priority_json(void **state)
{
	static const struct {
		const char *json;
		int ok;
		int64_t want;
	} rows[] = {
		{"{\"target\":\"https://example.com/\",\"priority\":5}", 1, 5},
		{"{\"target\":\"https://example.com/\",\"priority\":-100}", 1, -100},
		{"{\"target\":\"https://example.com/\"}", 1, 0},
		{"{\"target\":\"https://example.com/\",\"priority\":101}", 0, 0},
		{"{\"target\":\"https://example.com/\",\"priority\":1.5}", 0, 0},
		{"{\"target\":\"https://example.com/\",\"priority\":\"5\"}", 0, 0},
		{"{\"target\":\"https://example.com/\",\"priority\":null}", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_object *o = json_tokener_parse(rows[i].json), *row, *v;
		struct call c;
		struct problem p;
		int rc;

		call_init(&c);
		rc = call_from_json(&c, o, &env, "", &p);
		if (!rows[i].ok) {
			assert_int_equal(rc, -1);
			assert_string_equal(p.field, "priority");
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(c.priority, rows[i].want);
			c.max_attempts = c.retry_initial_ms = c.retry_max_ms = c.timeout_ms = 1;
			row = call_row_json(&c, NULL);
			assert_int_equal(json_object_object_get_ex(row, "priority", &v),
					 rows[i].want != 0);
			if (rows[i].want != 0)
				assert_int_equal(json_object_get_int64(v), rows[i].want);
			json_object_put(row);
		}
		call_cleanup(&c);
		json_object_put(o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_good),    cmocka_unit_test(test_check_bad),
		cmocka_unit_test(test_name),	      cmocka_unit_test(test_parse_priority),
		cmocka_unit_test(test_priority_json),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_drain: the pure parts of the drain cycle: verdicts, backoff, URLs, stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "drain.h"
#include "statuses.h"

#define DAY_MS (86400LL * 1000)

static const char *verdict_name(enum send_verdict v)
{
	switch (v) {
	case SEND_OK: return "SEND_OK";
	case SEND_RETRY: return "SEND_RETRY";
	case SEND_DEAD: return "SEND_DEAD";
	}
	return "?";
}

static void check_verdict(long status, int code, bool refused, enum send_verdict want)
{
	enum send_verdict got = drain_verdict(status, code, refused, NULL, NULL);

	if (got != want)
		fail_msg("drain_verdict(%ld, %d, %s) is %s, want %s", status, code,
			 refused ? "true" : "false", verdict_name(got), verdict_name(want));
}

static void test_verdict_status(void **state)
{
	static const long ok[] = {200, 201, 202, 204, 299};
	static const long retry[] = {408, 425, 429, 500, 502, 503, 504, 599};
	static const long dead[] = {0,	 100, 199, 300, 301, 302, 304, 400, 401,
				    403, 404, 409, 410, 413, 422, 451, 600};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		check_verdict(ok[i], CURLE_OK, false, SEND_OK);
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		check_verdict(retry[i], CURLE_OK, false, SEND_RETRY);
	for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++)
		check_verdict(dead[i], CURLE_OK, false, SEND_DEAD);
}

/* A transfer error decides the verdict whatever status came before it. */
static void test_verdict_curl_errors(void **state)
{
	static const CURLcode retry[] = {
		CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT,   CURLE_GOT_NOTHING,
		CURLE_RECV_ERROR,      CURLE_COULDNT_RESOLVE_HOST, CURLE_SEND_ERROR,
	};
	static const CURLcode dead[] = {
		CURLE_URL_MALFORMAT,
		CURLE_UNSUPPORTED_PROTOCOL,
		CURLE_TOO_MANY_REDIRECTS,
	};
	static const long statuses[] = {0, 200, 404, 503};

	(void)state;
	for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
		for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
			check_verdict(statuses[s], (int)retry[i], false, SEND_RETRY);
		for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++)
			check_verdict(statuses[s], (int)dead[i], false, SEND_DEAD);
	}
}

/* The address policy stopped the connection: never worth another try. */
static void test_verdict_refused(void **state)
{
	(void)state;
	check_verdict(200, CURLE_OK, true, SEND_DEAD);
	check_verdict(503, CURLE_OK, true, SEND_DEAD);
	check_verdict(0, CURLE_COULDNT_CONNECT, true, SEND_DEAD);
	check_verdict(0, CURLE_OPERATION_TIMEDOUT, true, SEND_DEAD);
}

/* The statuses of a normal-form list such as "[404, \"3xx\"]". */
static void set_of(struct statuses *s, const char *json)
{
	struct json_object *o = json_tokener_parse(json);

	statuses_clear(s);
	assert_non_null(o);
	assert_int_equal(statuses_add_json(s, o), 0);
	json_object_put(o);
}

/* A call's own lists: retry.on adds to the retried statuses, give_up_on ends the call at once
 * and wins over both; 2xx and transport errors are as before. */
static void test_verdict_lists(void **state)
{
	struct statuses on, off, empty;

	(void)state;
	statuses_clear(&empty);
	set_of(&on, "[404, \"3xx\"]");
	set_of(&off, "[503, \"4xx\"]");
	assert_int_equal(drain_verdict(404, CURLE_OK, false, &on, NULL), SEND_RETRY);
	assert_int_equal(drain_verdict(302, CURLE_OK, false, &on, NULL), SEND_RETRY);
	assert_int_equal(drain_verdict(399, CURLE_OK, false, &on, NULL), SEND_RETRY);
	assert_int_equal(drain_verdict(403, CURLE_OK, false, &on, NULL), SEND_DEAD);
	assert_int_equal(drain_verdict(503, CURLE_OK, false, &on, NULL), SEND_RETRY);
	assert_int_equal(drain_verdict(200, CURLE_OK, false, &on, NULL), SEND_OK);
	assert_int_equal(drain_verdict(503, CURLE_OK, false, NULL, &off), SEND_DEAD);
	assert_int_equal(drain_verdict(502, CURLE_OK, false, NULL, &off), SEND_RETRY);
	assert_int_equal(drain_verdict(429, CURLE_OK, false, NULL, &off), SEND_DEAD);
	assert_int_equal(drain_verdict(408, CURLE_OK, false, NULL, &off), SEND_DEAD);
	assert_int_equal(drain_verdict(404, CURLE_OK, false, &on, &off), SEND_DEAD);
	assert_int_equal(drain_verdict(201, CURLE_OK, false, &on, &off), SEND_OK);
	assert_int_equal(drain_verdict(0, CURLE_OPERATION_TIMEDOUT, false, &on, &off), SEND_RETRY);
	assert_int_equal(drain_verdict(0, CURLE_COULDNT_CONNECT, false, &on, &off), SEND_RETRY);
	assert_int_equal(drain_verdict(404, CURLE_OK, true, &on, NULL), SEND_DEAD);
	assert_int_equal(drain_verdict(500, CURLE_OK, false, &empty, &empty), SEND_RETRY);
	assert_int_equal(drain_verdict(404, CURLE_OK, false, &empty, &empty), SEND_DEAD);
}

/* statuses_item: the normal form, and what it refuses. */
static void test_statuses_items(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: refused */
	} cases[] = {
		{ "404", "404" },      { "\"404\"", "404" }, { "\" 5XX \"", "\"5xx\"" },
		{ "\"3xx\"", "\"3xx\"" }, { "599", "599" },     { "300", "300" },
		{ "299", NULL },       { "200", NULL },       { "\"2xx\"", NULL },
		{ "\"1xx\"", NULL },   { "100", NULL },       { "600", NULL },
		{ "-1", NULL },        { "\"\"", NULL },      { "\"4x\"", NULL },
		{ "\"4xxx\"", NULL },  { "\"x04\"", NULL },   { "\"40x\"", NULL },
		{ "4.04", NULL },      { "true", NULL },      { "null", NULL },
		{ "\"6xx\"", NULL },   { "\"0xx\"", NULL },   { "99999999999", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *v = json_tokener_parse(cases[i].in), *item = NULL;
		const char *why = NULL;
		int rc = statuses_item(v, &item, &why);

		if (cases[i].out == NULL && (rc != -1 || why == NULL || item != NULL))
			fail_msg("%s: accepted", cases[i].in);
		if (cases[i].out != NULL &&
		    (rc != 0 || strcmp(json_object_to_json_string(item), cases[i].out) != 0))
			fail_msg("%s: %s, want %s", cases[i].in,
				 rc == 0 ? json_object_to_json_string(item) : why, cases[i].out);
		json_object_put(item);
		json_object_put(v);
	}
}

static void check_backoff_range(int64_t initial, int64_t max, int failures, double u, int64_t lo,
				int64_t hi)
{
	int64_t got = drain_backoff_ms(initial, max, failures, u, -1);

	if (got < lo || got > hi)
		fail_msg("drain_backoff_ms(%lld, %lld, %d, %f, -1) is %lld, want [%lld, %lld]",
			 (long long)initial, (long long)max, failures, u, (long long)got,
			 (long long)lo, (long long)hi);
}

/* Without Retry-After the delay stays in [initial, max], and u = 0 gives initial. */
static void test_backoff_bounds(void **state)
{
	static const struct {
		int64_t initial, max;
	} cfgs[] = {
		{1000, 3600000},     {1, 10},		{500, 500}, {0, 1000}, {250, 60000},
		{1000, 24 * DAY_MS}, {30000, 86400000},
	};
	static const double us[] = {0, 0.5, 0.999999};

	(void)state;
	for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
		int64_t initial = cfgs[c].initial, max = cfgs[c].max;

		for (int f = 1; f <= 40; f++) {
			for (size_t k = 0; k < sizeof(us) / sizeof(us[0]); k++)
				check_backoff_range(initial, max, f, us[k], initial, max);
			if (drain_backoff_ms(initial, max, f, 0, -1) != initial)
				fail_msg("drain_backoff_ms(%lld, %lld, %d, 0, -1) is not initial",
					 (long long)initial, (long long)max, f);
		}
	}
}

/* The upper end doubles with each failure (initial * 2^failures) until max caps it. */
static void test_backoff_growth(void **state)
{
	(void)state;
	check_backoff_range(1000, 3600000, 1, 0.999999, 1990, 2000);
	check_backoff_range(1000, 3600000, 2, 0.999999, 3990, 4000);
	check_backoff_range(1000, 3600000, 3, 0.999999, 7990, 8000);
	check_backoff_range(1000, 3600000, 3, 0.5, 4500, 4500);
	check_backoff_range(1000, 3600000, 11, 0.999999, 2047000, 2048000);
	check_backoff_range(1000, 3600000, 12, 0.999999, 3590000, 3600000); /* 4096000 capped */
	check_backoff_range(1000, 3600000, 30, 0.999999, 3590000, 3600000);
	/* u at or above 1 stays below the ceiling, a negative u counts as 0 */
	check_backoff_range(1000, 3600000, 1, 1.0, 1990, 2000);
	check_backoff_range(1000, 3600000, 1, -0.5, 1000, 1000);
}

static void test_backoff_edges(void **state)
{
	(void)state;
	/* Huge failure counts neither overflow nor loop long. */
	check_backoff_range(1000, 24 * DAY_MS, INT_MAX, 0.999999, 24 * DAY_MS - DAY_MS / 100,
			    24 * DAY_MS);
	check_backoff_range(1000, 24 * DAY_MS, 1000000, 0.5, 1000, 24 * DAY_MS);
	check_backoff_range(1, INT64_MAX, 200, 0.999999, INT64_MAX / 2, INT64_MAX);
	check_backoff_range(INT64_MAX / 2, INT64_MAX, 5, 0.999999, INT64_MAX / 2, INT64_MAX);
	/* initial == max: no room for jitter */
	for (int f = 1; f <= 40; f++) {
		check_backoff_range(5000, 5000, f, 0.999999, 5000, 5000);
		check_backoff_range(5000, 5000, f, 0.5, 5000, 5000);
	}
	/* max below initial: initial wins */
	check_backoff_range(5000, 100, 3, 0.999999, 5000, 5000);
	/* initial 0 still grows, rather than staying at 0 forever */
	check_backoff_range(0, 1000, 5, 0.999, 1, 1000);
	check_backoff_range(0, 1000, 40, 0.999, 500, 1000);
	check_backoff_range(0, 1000, 5, 0, 0, 0);
	check_backoff_range(0, 0, 5, 0.999, 0, 0);
}

/* A Retry-After longer than the computed delay wins, even above max; a shorter one is ignored. */
static void test_backoff_retry_after(void **state)
{
	(void)state;
	assert_int_equal(drain_backoff_ms(1000, 60000, 1, 0, 5000), 5000);
	assert_int_equal(drain_backoff_ms(1000, 60000, 1, 0, 120000), 120000);
	assert_int_equal(drain_backoff_ms(1000, 60000, 40, 0.999999, 24 * DAY_MS), 24 * DAY_MS);
	assert_int_equal(drain_backoff_ms(1000, 60000, 1, 0, 500), 1000);
	assert_int_equal(drain_backoff_ms(1000, 60000, 1, 0, 0), 1000);
	assert_int_equal(drain_backoff_ms(1000, 60000, 1, 0, 1000), 1000);
	assert_int_equal(drain_backoff_ms(1000, 60000, 3, 0.5, 4500), 4500);
	assert_int_equal(drain_backoff_ms(1000, 60000, 3, 0.5, 100), 4500);
	assert_int_equal(drain_backoff_ms(1000, 60000, 3, 0.5, -1), 4500);
}

static void check_url(const char *target, const char *base_url, const char *path, const char *query,
		      const char *want)
{
	char *got = drain_url(target, base_url, path, query);

	assert_non_null(got);
	if (strcmp(got, want) != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "drain_url(%s, %s, %s, %s) is \"%s\", want \"%s\"",
			 target ? target : "NULL", base_url ? base_url : "NULL",
			 path ? path : "NULL", query ? query : "NULL", got, want);
		free(got);
		fail_msg("%s", msg);
	}
	free(got);
}

static void test_url(void **state)
{
	(void)state;
	check_url("http://h/p", NULL, NULL, NULL, "http://h/p");
	check_url("http://h/p", NULL, NULL, "", "http://h/p");
	check_url("http://h/p", NULL, NULL, "q=1", "http://h/p?q=1");
	check_url("http://h/p?a=1", NULL, NULL, "b=2", "http://h/p?a=1&b=2");
	check_url("http://h/p?a=1", NULL, NULL, NULL, "http://h/p?a=1");
	check_url(NULL, "http://h/api/", "/x", NULL, "http://h/api/x");
	check_url(NULL, "http://h/api", "/x", NULL, "http://h/api/x");
	check_url(NULL, "http://h", "/x", NULL, "http://h/x");
	check_url(NULL, "http://h/api", NULL, NULL, "http://h/api");
	check_url(NULL, "http://h/api/", NULL, NULL, "http://h/api/");
	check_url(NULL, "http://h/api/", "/x", "q=1&r=2", "http://h/api/x?q=1&r=2");
	check_url(NULL, "http://h/api", "/x", "", "http://h/api/x");
	check_url(NULL, "https://h:8443", NULL, "q", "https://h:8443?q");
}

/* The drain loops of one drainer: counters add up, ms is the longest run (the wall time). */
static void test_stats_add(void **state)
{
	struct drain_stats a = {1, 2, 3, 4, 5, 6, 7, 8, 900};
	struct drain_stats b = {10, 20, 30, 40, 50, 60, 70, 80, 1200};

	(void)state;
	drain_stats_add(&a, &b);
	assert_int_equal(a.claimed, 11);
	assert_int_equal(a.succeeded, 22);
	assert_int_equal(a.retried, 33);
	assert_int_equal(a.dead, 44);
	assert_int_equal(a.expired, 55);
	assert_int_equal(a.released, 66);
	assert_int_equal(a.lost, 77);
	assert_int_equal(a.unsettled, 88);
	assert_int_equal(a.ms, 1200);
	drain_stats_add(&a, &(struct drain_stats){.ms = 5});
	assert_int_equal(a.ms, 1200);
	assert_int_equal(a.claimed, 11);
}

static void test_stats_json(void **state)
{
	static const struct {
		const char *name;
		int64_t value;
	} want[] = {
		{"claimed", 11}, {"succeeded", 2}, {"retried", 3},
		{"dead", 4},	 {"expired", 0},   {"released", 5},
		{"lost", 6},	 {"unsettled", 7}, {"ms", 9007199254740993LL},
	};
	struct drain_stats st = {
		.claimed = 11,
		.succeeded = 2,
		.retried = 3,
		.dead = 4,
		.expired = 0,
		.released = 5,
		.lost = 6,
		.unsettled = 7,
		.ms = 9007199254740993LL, /* above 2^53: must not pass through a double */
	};
	enum json_tokener_error jerr;
	struct json_object *o;
	char *text;

	(void)state;
	text = drain_stats_json(&st);
	assert_non_null(text);
	o = json_tokener_parse_verbose(text, &jerr);
	if (o == NULL) {
		char msg[512];

		snprintf(msg, sizeof(msg), "not JSON (%s): %s", json_tokener_error_desc(jerr),
			 text);
		free(text);
		fail_msg("%s", msg);
	}
	free(text);
	assert_true(json_object_is_type(o, json_type_object));
	assert_int_equal(json_object_object_length(o), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct json_object *v;

		if (!json_object_object_get_ex(o, want[i].name, &v))
			fail_msg("no member %s", want[i].name);
		if (!json_object_is_type(v, json_type_int))
			fail_msg("member %s is not an integer", want[i].name);
		if (json_object_get_int64(v) != want[i].value)
			fail_msg("member %s is %lld, want %lld", want[i].name,
				 (long long)json_object_get_int64(v), (long long)want[i].value);
	}
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_status),
		cmocka_unit_test(test_verdict_curl_errors),
		cmocka_unit_test(test_verdict_refused),
		cmocka_unit_test(test_verdict_lists),
		cmocka_unit_test(test_statuses_items),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_backoff_growth),
		cmocka_unit_test(test_backoff_edges),
		cmocka_unit_test(test_backoff_retry_after),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_stats_json),
		cmocka_unit_test(test_stats_add),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

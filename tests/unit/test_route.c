/* test_route: every path and method reaches the right handler (stubbed here), or a 404/405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "auth.h"
#include "handlers.h"

/* What the stubs saw: the handler's name and its id or rest argument. */
static const char *called;
static char called_arg[8192];
static int ncalls;

static int record(struct resp *rs, const char *name, const char *arg)
{
	called = name;
	snprintf(called_arg, sizeof(called_arg), "%s", arg != NULL ? arg : "");
	ncalls++;
	rs->status = 299; /* marks "a handler answered" */
	return 0;
}

/* Stubs with the handlers' signatures; each records its name, and its id, name or rest
 * argument (STUB_ARG). */
#define STUB_APP(fn)                                                                            \
	int fn(const struct req *rq, struct resp *rs, struct app *app)                          \
	{                                                                                        \
		(void)rq;                                                                        \
		(void)app;                                                                       \
		return record(rs, #fn, NULL);                                                    \
	}
#define STUB_WHO(fn)                                                                            \
	int fn(const struct req *rq, struct resp *rs, struct app *app,                          \
	       const struct principal *who)                                                     \
	{                                                                                        \
		(void)rq;                                                                        \
		(void)app;                                                                       \
		(void)who;                                                                       \
		return record(rs, #fn, NULL);                                                    \
	}
#define STUB_ARG(fn, argname)                                                                   \
	int fn(const struct req *rq, struct resp *rs, struct app *app,                          \
	       const struct principal *who, const char *argname)                                \
	{                                                                                        \
		(void)rq;                                                                        \
		(void)app;                                                                       \
		(void)who;                                                                       \
		return record(rs, #fn, argname);                                                 \
	}

/* The calls API (h_calls.c, h_response.c) and the unauthenticated endpoints. */
STUB_WHO(h_calls_post)
STUB_ARG(h_async, rest)
STUB_ARG(h_call_get, id)
STUB_WHO(h_calls_list)
STUB_ARG(h_call_delete, id)
STUB_ARG(h_call_retry, id)
STUB_ARG(h_call_response, id)
STUB_APP(h_health)
STUB_APP(h_drain)
STUB_APP(h_metrics)

/* The functions API routes itself (h_functions.c): the stub claims its paths. */
bool route_functions(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who)
{
	(void)app;
	(void)who;
	if (strncmp(rq->path, "/v1/functions", 13) != 0)
		return false;
	record(rs, "route_functions", rq->path);
	return true;
}

/* The topics API (h_topics.c). */
STUB_ARG(h_topic_put, name)
STUB_ARG(h_topic_get, name)
STUB_ARG(h_topic_delete, name)
STUB_ARG(h_topic_publish, name)
STUB_ARG(h_topic_async, rest)
STUB_ARG(h_publication_get, id)
STUB_WHO(h_topics_list)
STUB_WHO(h_publications_list)

/* The authentication stub: lets everyone in, unless deny_auth asks for a 401. */
static bool deny_auth;
static int nauth;

int h_authenticate(const struct req *rq, struct resp *rs, struct app *app, struct principal *who)
{
	(void)rq;
	(void)app;
	nauth++;
	principal_init(who);
	if (deny_auth) {
		resp_problem(rs, 401, "Authorization", "Authorization: stub says no");
		return -1;
	}
	who->client = xstrdup("stub");
	return 0;
}

/* The schedules API (h_schedules.c). */
STUB_WHO(h_schedules_post)
STUB_WHO(h_schedules_list)
STUB_ARG(h_schedule_get, id)
STUB_ARG(h_schedule_delete, id)

int h_schedule_pause(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who, const char *id, bool pause)
{
	(void)rq;
	(void)app;
	(void)who;
	return record(rs, pause ? "h_schedule_pause" : "h_schedule_resume", id);
}

#include "../../cgi-bin/route.c"

#define ID "0190f2a4-5b6c-7d8e-9f01-23456789abcd"

static struct app app;

/* Routes method + path; rs is left for the caller to inspect and reset. */
static void do_route(const char *method, const char *path, struct resp *rs)
{
	struct req rq;
	char pathbuf[8192];

	req_init(&rq);
	snprintf(pathbuf, sizeof(pathbuf), "%s", path);
	rq.method = method;
	rq.path = pathbuf;
	rq.mount = NULL;
	rq.query = NULL;
	called = NULL;
	called_arg[0] = '\0';
	ncalls = 0;
	resp_init(rs);
	route(&rq, rs, &app);
}

static void test_handlers(void **state)
{
	static const struct {
		const char *method, *path, *handler, *arg;
	} cases[] = {
		{ "POST", "/v1/calls", "h_calls_post", "" },
		{ "POST", "/v1/calls/", "h_calls_post", "" },
		{ "GET", "/v1/calls", "h_calls_list", "" },
		{ "GET", "/v1/calls/", "h_calls_list", "" },
		{ "HEAD", "/v1/calls", "h_calls_list", "" },
		{ "GET", "/v1/calls/" ID, "h_call_get", ID },
		{ "HEAD", "/v1/calls/" ID, "h_call_get", ID },
		{ "DELETE", "/v1/calls/" ID, "h_call_delete", ID },
		{ "POST", "/v1/calls/" ID "/retry", "h_call_retry", ID },
		{ "GET", "/v1/calls/" ID "/response", "h_call_response", ID },
		{ "HEAD", "/v1/calls/" ID "/response", "h_call_response", ID },
		{ "GET", "/v1/calls/not-a-uuid", "h_call_get", "not-a-uuid" }, /* the handler checks */
		{ "GET", "/v1/health", "h_health", "" },
		{ "HEAD", "/v1/health", "h_health", "" },
		{ "GET", "/v1/drain", "h_drain", "" },
		{ "POST", "/v1/drain", "h_drain", "" },
		{ "GET", "/metrics", "h_metrics", "" },
		{ "GET", "/v1/metrics", "h_metrics", "" },
		{ "POST", "/v1/async/resize-image/v2/thumbs", "h_async", "resize-image/v2/thumbs" },
		{ "GET", "/v1/async/fn", "h_async", "fn" },
		{ "PUT", "/v1/async/https%3A%2F%2Fapi.example.com%2Fv2/x", "h_async",
		  "https%3A%2F%2Fapi.example.com%2Fv2/x" },
		{ "DELETE", "/v1/async/https:/api.example.com/x", "h_async", "https:/api.example.com/x" },
		{ "PATCH", "/v1/async/fn/a/b/c", "h_async", "fn/a/b/c" },
		{ "OPTIONS", "/v1/async/fn", "h_async", "fn" },
		{ "HEAD", "/v1/async/fn", "h_async", "fn" },
		{ "POST", "/v1/async/", "h_async", "" },
		{ "GET", "/v1/functions", "route_functions", "/v1/functions" },
		{ "PUT", "/v1/functions/resize", "route_functions", "/v1/functions/resize" },
		{ "GET", "/v1/topics", "h_topics_list", "" },
		{ "GET", "/v1/topics/", "h_topics_list", "" },
		{ "PUT", "/v1/topics/orders", "h_topic_put", "orders" },
		{ "GET", "/v1/topics/orders", "h_topic_get", "orders" },
		{ "DELETE", "/v1/topics/orders", "h_topic_delete", "orders" },
		{ "POST", "/v1/topics/orders/calls", "h_topic_publish", "orders" },
		{ "POST", "/v1/async/topic:orders/a/b", "h_topic_async", "orders/a/b" },
		{ "PUT", "/v1/async/topic:orders", "h_topic_async", "orders" },
		{ "POST", "/v1/async/topic%3Aorders/x", "h_topic_async", "orders/x" },
		{ "POST", "/v1/async/topic%3aorders", "h_topic_async", "orders" },
		{ "GET", "/v1/async/topical/x", "h_async", "topical/x" },
		{ "GET", "/v1/publications", "h_publications_list", "" },
		{ "GET", "/v1/publications/" ID, "h_publication_get", ID },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct resp rs;

		do_route(cases[i].method, cases[i].path, &rs);
		if (called == NULL || strcmp(called, cases[i].handler) != 0)
			fail_msg("%s %s: routed to %s (status %d), want %s", cases[i].method,
				 cases[i].path, called ? called : "nothing", rs.status, cases[i].handler);
		if (strcmp(called_arg, cases[i].arg) != 0)
			fail_msg("%s %s: argument \"%s\", want \"%s\"", cases[i].method, cases[i].path,
				 called_arg, cases[i].arg);
		assert_int_equal(ncalls, 1);
		assert_int_equal(rs.status, 299);
		resp_reset(&rs);
	}
}

static void test_schedule_routes(void **state)
{
	static const struct {
		const char *method, *path, *handler, *arg;
	} cases[] = {
		{ "POST", "/v1/schedules", "h_schedules_post", "" },
		{ "POST", "/v1/schedules/", "h_schedules_post", "" },
		{ "GET", "/v1/schedules", "h_schedules_list", "" },
		{ "HEAD", "/v1/schedules", "h_schedules_list", "" },
		{ "GET", "/v1/schedules/" ID, "h_schedule_get", ID },
		{ "DELETE", "/v1/schedules/" ID, "h_schedule_delete", ID },
		{ "POST", "/v1/schedules/" ID "/pause", "h_schedule_pause", ID },
		{ "POST", "/v1/schedules/" ID "/resume", "h_schedule_resume", ID },
	};
	static const struct {
		const char *method, *path;
		int status;
	} refused[] = {
		{ "PUT", "/v1/schedules", 405 },
		{ "POST", "/v1/schedules/" ID, 405 },
		{ "GET", "/v1/schedules/" ID "/pause", 405 },
		{ "POST", "/v1/schedules/" ID "/run", 404 },
		{ "POST", "/v1/schedulesx", 404 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct resp rs;

		do_route(cases[i].method, cases[i].path, &rs);
		if (called == NULL || strcmp(called, cases[i].handler) != 0)
			fail_msg("%s %s: routed to %s (status %d), want %s", cases[i].method,
				 cases[i].path, called ? called : "nothing", rs.status, cases[i].handler);
		assert_string_equal(called_arg, cases[i].arg);
		assert_int_equal(rs.status, 299);
		resp_reset(&rs);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct resp rs;

		do_route(refused[i].method, refused[i].path, &rs);
		if (called != NULL || rs.status != refused[i].status)
			fail_msg("%s %s: %s / %d, want %d", refused[i].method, refused[i].path,
				 called ? called : "no handler", rs.status, refused[i].status);
		resp_reset(&rs);
	}
}

/* Parses a problem body and checks status, title and (optional) field. */
static void check_problem(const struct resp *rs, int status, const char *field)
{
	struct json_object *o, *v;

	assert_int_equal(rs->status, status);
	assert_non_null(rs->content_type);
	assert_string_equal(rs->content_type, "application/problem+json");
	assert_non_null(rs->body);
	o = json_tokener_parse(rs->body);
	if (o == NULL)
		fail_msg("not JSON: %s", rs->body);
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_int_equal(json_object_get_int(v), status);
	assert_true(json_object_object_get_ex(o, "title", &v));
	assert_string_equal(json_object_get_string(v), http_reason(status));
	assert_true(json_object_object_get_ex(o, "detail", &v));
	if (field != NULL) {
		assert_true(json_object_object_get_ex(o, "field", &v));
		assert_string_equal(json_object_get_string(v), field);
	} else {
		assert_false(json_object_object_get_ex(o, "field", NULL));
	}
	json_object_put(o);
}

static void test_method_not_allowed(void **state)
{
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
		{ "PUT", "/v1/calls", "GET, HEAD, POST" },
		{ "DELETE", "/v1/calls", "GET, HEAD, POST" },
		{ "PATCH", "/v1/calls/", "GET, HEAD, POST" },
		{ "OPTIONS", "/v1/calls", "GET, HEAD, POST" },
		{ "get", "/v1/calls", "GET, HEAD, POST" }, /* methods are case-sensitive */
		{ "POST", "/v1/calls/" ID, "GET, HEAD, DELETE" },
		{ "PUT", "/v1/calls/" ID, "GET, HEAD, DELETE" },
		{ "PATCH", "/v1/calls/" ID, "GET, HEAD, DELETE" },
		{ "GET", "/v1/calls/" ID "/retry", "POST" },
		{ "DELETE", "/v1/calls/" ID "/retry", "POST" },
		{ "HEAD", "/v1/calls/" ID "/retry", "POST" },
		{ "POST", "/v1/calls/" ID "/response", "GET, HEAD" },
		{ "DELETE", "/v1/calls/" ID "/response", "GET, HEAD" },
		{ "POST", "/v1/health", "GET, HEAD" },
		{ "DELETE", "/v1/health", "GET, HEAD" },
		{ "DELETE", "/v1/drain", "GET, POST" },
		{ "POST", "/metrics", "GET, HEAD" },
		{ "POST", "/v1/topics", "GET, HEAD" },
		{ "POST", "/v1/topics/orders", "GET, HEAD, PUT, DELETE" },
		{ "GET", "/v1/topics/orders/calls", "POST" },
		{ "DELETE", "/v1/publications/" ID, "GET, HEAD" },
		{ "POST", "/v1/publications", "GET, HEAD" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct resp rs;
		char want[128];

		do_route(cases[i].method, cases[i].path, &rs);
		if (called != NULL)
			fail_msg("%s %s: routed to %s, want 405", cases[i].method, cases[i].path,
				 called);
		check_problem(&rs, 405, NULL);
		snprintf(want, sizeof(want), "Allow: %s\r\n", cases[i].allow);
		assert_non_null(rs.headers.data);
		if (strcmp(rs.headers.data, want) != 0)
			fail_msg("%s %s: headers \"%s\", want \"%s\"", cases[i].method, cases[i].path,
				 rs.headers.data, want);
		resp_reset(&rs);
	}
}

static void test_not_found(void **state)
{
	static const struct {
		const char *method, *path, *field;
	} cases[] = {
		{ "GET", "/", NULL },
		{ "GET", "", NULL },
		{ "GET", "/v1", NULL },
		{ "GET", "/v1/", NULL },
		{ "GET", "/v1/callsx", NULL },
		{ "POST", "/v1/Calls", NULL },
		{ "GET", "/v2/calls", NULL },
		{ "GET", "/v1/async", NULL },
		{ "GET", "/v1/health/", NULL },
		{ "GET", "/v1/healthz", NULL },
		{ "GET", "/v1/calls/" ID "/", NULL },
		{ "POST", "/v1/calls/" ID "/retry/", NULL },
		{ "POST", "/v1/calls/" ID "/retryx", NULL },
		{ "POST", "/v1/calls/" ID "/cancel", NULL },
		{ "GET", "/v1/calls/" ID "x", "id" },        /* 37 characters */
		{ "GET", "/v1/calls/" ID ID, "id" },
		{ "POST", "/v1/calls/" ID "x/retry", "id" },
		{ "DELETE", "/v1/calls/" ID ID "/retry", "id" },
		{ "GET", "/v1/v1/calls", NULL },
		{ "GET", "/calls", NULL },
		{ "GET", "/v1/topics/orders/x", NULL },
		{ "GET", "/v1/publications/" ID "/x", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct resp rs;

		do_route(cases[i].method, cases[i].path, &rs);
		if (called != NULL)
			fail_msg("%s %s: routed to %s, want 404", cases[i].method, cases[i].path,
				 called);
		check_problem(&rs, 404, cases[i].field);
		assert_int_equal(rs.headers.len, 0); /* no Allow on a 404 */
		resp_reset(&rs);
	}
}

static void test_id_length_boundary(void **state)
{
	struct resp rs;
	char path[128];

	(void)state;
	/* 36 characters (UUID_LEN - 1) is the longest id passed on. */
	snprintf(path, sizeof(path), "/v1/calls/%.36s", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	do_route("GET", path, &rs);
	assert_non_null(called);
	assert_string_equal(called, "h_call_get");
	assert_int_equal(strlen(called_arg), 36);
	resp_reset(&rs);
	snprintf(path, sizeof(path), "/v1/calls/%.37s", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	do_route("GET", path, &rs);
	assert_null(called);
	check_problem(&rs, 404, "id");
	resp_reset(&rs);
}

static void test_long_path_not_echoed(void **state)
{
	static char path[4096];
	struct resp rs;
	struct json_object *o, *v;

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	memcpy(path, "/v1/zzz/", 8);
	do_route("GET", path, &rs);
	check_problem(&rs, 404, NULL);
	o = json_tokener_parse(rs.body);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "detail", &v));
	assert_non_null(strstr(json_object_get_string(v), "(long path)"));
	assert_null(strstr(json_object_get_string(v), "aaaa"));
	json_object_put(o);
	resp_reset(&rs);

	/* A short unknown path is named in the detail. */
	do_route("GET", "/v1/nope", &rs);
	o = json_tokener_parse(rs.body);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "detail", &v));
	assert_non_null(strstr(json_object_get_string(v), "/v1/nope"));
	json_object_put(o);
	resp_reset(&rs);
}

/* The calls API authenticates before anything else; health, drain and metrics do not. */
static void test_auth_first(void **state)
{
	static const char *const guarded[][2] = {
		{ "POST", "/v1/calls" }, { "GET", "/v1/calls" }, { "GET", "/v1/calls/" ID },
		{ "PUT", "/v1/calls/" ID }, { "GET", "/v1/calls/" ID "/nope" },
		{ "POST", "/v1/async/fn/x" }, { "PUT", "/v1/topics/t" },
		{ "POST", "/v1/async/topic:t" }, { "GET", "/v1/publications/" ID },
	};
	static const char *const open_paths[] = { "/v1/health", "/metrics", "/v1/drain" };
	struct resp rs;

	(void)state;
	deny_auth = true;
	for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++) {
		nauth = 0;
		do_route(guarded[i][0], guarded[i][1], &rs);
		if (called != NULL)
			fail_msg("%s %s: reached %s without credentials", guarded[i][0],
				 guarded[i][1], called);
		assert_int_equal(nauth, 1);
		check_problem(&rs, 401, "Authorization");
		resp_reset(&rs);
	}
	for (size_t i = 0; i < sizeof(open_paths) / sizeof(open_paths[0]); i++) {
		nauth = 0;
		do_route("GET", open_paths[i], &rs);
		assert_non_null(called);
		assert_int_equal(nauth, 0);
		resp_reset(&rs);
	}
	deny_auth = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handlers),
		cmocka_unit_test(test_schedule_routes),
		cmocka_unit_test(test_auth_first),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_id_length_boundary),
		cmocka_unit_test(test_long_path_not_echoed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

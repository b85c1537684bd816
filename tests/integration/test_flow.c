/* test_flow: functions as a resource (PUT/GET/DELETE /v1/functions, the SQL functions), flow
 * control (rate and in-flight limits shared by two drainers, held calls, 429 slow-down, host
 * limits) and call priority, against a real PostgreSQL, lighttpd and HTTP target.
 * AG_FLOW_FULL=1 runs the acceptance run with 1000 calls instead of 300. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeparse.h"
#include "xalloc.h"

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target */
static const char *tlog;    /* its request log */
static const char *drainer; /* build/asyncgate-drainer */
static const char *admin;   /* build/asyncgate-admin */
static char tmpdir[512];
static char drainer_log[600]; /* the drainers' stderr */

#define JSON "application/json"

/* ---- helpers ---- */

/* The Authorization line of a new key made with asyncgate-admin (args: its rules), in out. */
static void make_key(const char *args, char *out, size_t outsz)
{
	char cmd[1024], tok[160] = "";

	snprintf(cmd, sizeof(cmd), "key create %s", args);
	it_admin(cmd, tok, sizeof(tok));
	snprintf(out, outsz, "Authorization: Bearer %s", tok);
}

/* An admin key (functions are managed by admins; the suite's own key is not one). */
static const char *admin_auth(void)
{
	static char line[256];

	if (line[0] == '\0')
		make_key("flow-admin --admin", line, sizeof(line));
	return line;
}

/* A key that may call anything but is no admin. */
static const char *user_auth(void)
{
	static char line[256];

	if (line[0] == '\0')
		make_key("flow-user --function '*' --url '*'", line, sizeof(line));
	return line;
}

/* A request with a JSON body (or none); the answer in *r. auth: an "Authorization: ..." line,
 * or NULL for the admin key under /v1/functions and the suite's key elsewhere. */
static void req(const char *method, const char *path, const char *body, const char *auth,
		struct hresp *r)
{
	const char *hdrs[2] = {auth, NULL};

	if (auth == NULL && strncmp(path, "/v1/functions", 13) == 0)
		hdrs[0] = auth = admin_auth();

	it_http(method, url, path, body != NULL ? JSON : NULL, body,
		body != NULL ? strlen(body) : 0, auth != NULL ? hdrs : NULL, r);
}

/* PUTs a function; returns the status. */
static long put_function(const char *name, const char *spec)
{
	char path[256];
	struct hresp r;
	long st;

	snprintf(path, sizeof(path), "/v1/functions/%s", name);
	req("PUT", path, spec, NULL, &r);
	st = r.status;
	if (st != 200 && st != 201)
		printf("# PUT %s: %ld %s\n", path, st, r.body != NULL ? r.body : "");
	it_hresp_free(&r);
	return st;
}

static int64_t hit_us(struct json_object *arr, size_t i)
{
	struct json_object *v;

	json_object_object_get_ex(json_object_array_get_idx(arr, i), "t_us", &v);
	return json_object_get_int64(v);
}

/* Calls of function fn in state; all states when state is NULL. */
#define COUNT_FN_SQL                                                                               \
	"SELECT count(*) FROM calls WHERE function = $1 AND ($2::text IS NULL OR state = $2)"

static long count_fn(const char *fn, const char *state)
{
	return it_sql_long(COUNT_FN_SQL, 2, (const char *const[]){fn, state});
}

/* Waits until n calls of fn are in state (up to timeout_ms); true when they are. */
static bool wait_fn(const char *fn, const char *state, long n, long timeout_ms)
{
	char what[256];

	snprintf(what, sizeof(what), "calls of %s %s", fn, state != NULL ? state : "(any state)");
	return it_wait_count(what, COUNT_FN_SQL, 2, (const char *const[]){fn, state}, n,
			     timeout_ms);
}

/* POSTs count calls of function fn at path (one batch); true when accepted. */
static bool enqueue_fn(const char *fn, const char *path, int count, const char *extra)
{
	struct buf b;
	struct hresp r;
	bool ok;

	buf_init(&b);
	buf_puts(&b, "[");
	for (int i = 0; i < count; i++)
		buf_printf(&b, "%s{\"function\":\"%s\",\"path\":\"%s\",\"method\":\"GET\"%s%s}",
			   i > 0 ? "," : "", fn, path, extra != NULL ? "," : "",
			   extra != NULL ? extra : "");
	buf_puts(&b, "]");
	req("POST", "/v1/calls", b.data, NULL, &r);
	ok = CHECK(r.status == 202, "enqueue %d calls of %s: %ld %.300s", count, fn, r.status,
		   r.body != NULL ? r.body : "");
	it_hresp_free(&r);
	buf_cleanup(&b);
	return ok;
}

/* ---- the tests ---- */

/* Create (201), replace (200), get, list, delete (204), then 404; secrets never shown. */
static void t_functions_api(void)
{
	char name[64], path[128], spec[1024];
	struct hresp r;
	struct json_object *o;

	snprintf(name, sizeof(name), "fn-%s", it_tag('f'));
	snprintf(path, sizeof(path), "/v1/functions/%s", name);
	snprintf(spec, sizeof(spec),
		 "{\"base_url\":\"%s/fnapi\",\"headers\":{\"X-Team\":\"a\"},\"timeout\":\"10s\","
		 "\"retry\":{\"max_attempts\":3,\"initial\":\"2s\",\"max\":\"1m\"},"
		 "\"signing_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\","
		 "\"rate\":{\"limit\":20,\"period\":\"1s\",\"burst\":5},\"max_in_flight\":4}",
		 target);
	req("PUT", path, spec, NULL, &r);
	CHECK(r.status == 201, "create: %ld %s", r.status, r.body);
	o = it_json(&r);
	it_jis(o, "name", name);
	it_jis(o, "headers.X-Team", "a");
	CHECK(json_object_get_int(json_object_object_get(o, "timeout_ms")) == 10000, "timeout_ms");
	CHECK(json_object_get_int(json_object_object_get(json_object_object_get(o, "retry"),
							 "initial_ms")) == 2000,
	      "retry.initial_ms");
	CHECK(json_object_get_int(
		      json_object_object_get(json_object_object_get(o, "rate"), "limit")) == 20,
	      "rate.limit");
	CHECK(json_object_get_boolean(json_object_object_get(o, "signing")), "signing true");
	CHECK(strstr(r.body, "whsec_") == NULL, "the secret is in the answer: %s", r.body);
	CHECK(it_header(&r, "Location") != NULL, "no Location");
	json_object_put(o);
	it_hresp_free(&r);

	/* GET, and GET back as PUT: a replace keeps the secret with "signing": true */
	req("GET", path, NULL, NULL, &r);
	CHECK(r.status == 200 && strstr(r.body, "whsec_") == NULL &&
		      strstr(r.body, "\"signing\":true") != NULL,
	      "get: %ld %s", r.status, r.body);
	{
		char *back = xstrdup(r.body);

		it_hresp_free(&r);
		req("PUT", path, back, NULL, &r);
		CHECK(r.status == 200, "replace with GET's own body: %ld %s", r.status, r.body);
		free(back);
	}
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM functions WHERE name = $1 AND signing_secret LIKE "
			  "'whsec_%'",
			  1, (const char *const[]){name}) == 1,
	      "the secret was kept");

	/* replace is whole: what the spec leaves out goes back to the default */
	snprintf(spec, sizeof(spec), "{\"base_url\":\"%s/fnapi2\"}", target);
	req("PUT", path, spec, NULL, &r);
	CHECK(r.status == 200, "replace: %ld %s", r.status, r.body);
	CHECK(strstr(r.body, "\"signing\":false") != NULL && strstr(r.body, "rate") == NULL,
	      "replaced: %s", r.body);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM flow_keys WHERE key = 'f:' || $1", 1,
			  (const char *const[]){name}) == 0,
	      "limits removed, flow row stays");

	req("GET", "/v1/functions", NULL, NULL, &r);
	CHECK(r.status == 200 && strstr(r.body, name) != NULL && strstr(r.body, "whsec_") == NULL,
	      "list: %ld", r.status);
	it_hresp_free(&r);

	req("DELETE", path, NULL, NULL, &r);
	CHECK(r.status == 204, "delete: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	req("GET", path, NULL, NULL, &r);
	CHECK(r.status == 404, "get after delete: %ld", r.status);
	it_hresp_free(&r);
	req("DELETE", path, NULL, NULL, &r);
	CHECK(r.status == 404, "delete again: %ld", r.status);
	it_hresp_free(&r);
}

/* Deleting a function cancels its queued calls. */
static void t_function_delete_cancels(void)
{
	char name[64], path[128], spec[256];
	struct hresp r;

	snprintf(name, sizeof(name), "fndel-%s", it_tag('d'));
	snprintf(path, sizeof(path), "/v1/functions/%s", name);
	snprintf(spec, sizeof(spec), "{\"base_url\":\"%s/fndel\"}", target);
	CHECK(put_function(name, spec) == 201, "create");
	if (!enqueue_fn(name, "/x", 3, "\"delay\":\"1h\""))
		return;
	req("DELETE", path, NULL, NULL, &r);
	CHECK(r.status == 204, "delete: %ld", r.status);
	it_hresp_free(&r);
	CHECK(count_fn(name, "cancelled") == 3, "queued calls cancelled: %ld",
	      count_fn(name, "cancelled"));
}

/* Non-admins get 403 on every functions path, and nothing is written. */
static void t_functions_403(void)
{
	const char *auth = user_auth();
	char spec[256];
	struct hresp r;
	long before = it_sql_long("SELECT count(*) FROM functions", 0, NULL);

	snprintf(spec, sizeof(spec), "{\"base_url\":\"%s/x\"}", target);
	req("PUT", "/v1/functions/not-mine", spec, auth, &r);
	CHECK(r.status == 403, "PUT by a non-admin: %ld", r.status);
	CHECK(it_header(&r, "Content-Type") != NULL &&
		      strstr(it_header(&r, "Content-Type"), "problem+json") != NULL,
	      "403 is problem+json");
	it_hresp_free(&r);
	req("GET", "/v1/functions", NULL, auth, &r);
	CHECK(r.status == 403, "list by a non-admin: %ld", r.status);
	it_hresp_free(&r);
	req("GET", "/v1/functions/not-mine", NULL, auth, &r);
	CHECK(r.status == 403, "GET by a non-admin: %ld", r.status);
	it_hresp_free(&r);
	req("DELETE", "/v1/functions/not-mine", NULL, auth, &r);
	CHECK(r.status == 403, "DELETE by a non-admin: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM functions", 0, NULL) == before, "written");
}

/* Bad specs: 400 naming the field, nothing written (neither created nor changed). */
static void t_functions_400(void)
{
	static const struct {
		const char *spec; /* @T = the target */
		const char *field;
	} rows[] = {
		{"{}", "base_url"},
		{"{\"base_url\":\"ftp://x/\"}", "base_url"},
		{"{\"base_url\":\"http://10.1.2.3/\"}", "base_url"}, /* address policy */
		{"{\"base_url\":\"@T/a?q=1\"}", "base_url"},
		{"{\"base_url\":\"@T\",\"headers\":{\"Connection\":\"x\"}}", "headers.Connection"},
		{"{\"base_url\":\"@T\",\"headers\":{\"Async-Delay\":\"1\"}}",
		 "headers.Async-Delay"},
		{"{\"base_url\":\"@T\",\"headers\":{\"X-A\":\"a\\r\\nB: c\"}}", "headers.X-A"},
		{"{\"base_url\":\"@T\",\"headers\":[]}", "headers"},
		{"{\"base_url\":\"@T\",\"timeout\":\"10x\"}", "timeout"},
		{"{\"base_url\":\"@T\",\"timeout\":\"0s\"}", "timeout"},
		{"{\"base_url\":\"@T\",\"retry\":{\"max_attempts\":0}}", "retry.max_attempts"},
		{"{\"base_url\":\"@T\",\"retry\":{\"initial\":\"1m\",\"max\":\"1s\"}}",
		 "retry.max"},
		{"{\"base_url\":\"@T\",\"retry\":{\"bogus\":1}}", "retry.bogus"},
		{"{\"base_url\":\"@T\",\"signing_secret\":\"whsec_%%%\"}", "signing_secret"},
		{"{\"base_url\":\"@T\",\"signing\":true}", "signing"},
		{"{\"base_url\":\"@T\",\"follow_redirects\":\"yes\"}", "follow_redirects"},
		{"{\"base_url\":\"@T\",\"rate\":{\"limit\":0}}", "rate.limit"},
		{"{\"base_url\":\"@T\",\"rate\":{\"burst\":3}}", "rate.limit"},
		{"{\"base_url\":\"@T\",\"rate\":{\"limit\":5,\"period\":\"1x\"}}", "rate.period"},
		{"{\"base_url\":\"@T\",\"rate\":{\"limit\":5,\"burst\":-1}}", "rate.burst"},
		{"{\"base_url\":\"@T\",\"max_in_flight\":0}", "max_in_flight"},
		{"{\"base_url\":\"@T\",\"max_in_flight\":1.5}", "max_in_flight"},
		{"{\"base_url\":\"@T\",\"colour\":\"red\"}", "colour"},
		{"[]", "body"},
		{"{\"base_url\":", "body"},
	};
	char name[64], path[128], good[256];
	const char *tg = it_tag('b');

	snprintf(name, sizeof(name), "fnbad-%s", tg);
	snprintf(path, sizeof(path), "/v1/functions/%s", name);
	snprintf(good, sizeof(good), "{\"base_url\":\"%s/good\",\"max_in_flight\":3}", target);
	CHECK(put_function(name, good) == 201, "create the good one");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char spec[512], want[128];
		struct hresp r;

		const char *at = strstr(rows[i].spec, "@T");

		if (at != NULL)
			snprintf(spec, sizeof(spec), "%.*s%s%s", (int)(at - rows[i].spec),
				 rows[i].spec, target, at + 2);
		else
			snprintf(spec, sizeof(spec), "%s", rows[i].spec);
		snprintf(want, sizeof(want), "\"field\":\"%s\"", rows[i].field);
		req("PUT", path, spec, NULL, &r);
		CHECK(r.status == 400 && r.body != NULL && strstr(r.body, want) != NULL,
		      "row %zu %s: %ld %s", i, spec, r.status, r.body != NULL ? r.body : "");
		it_hresp_free(&r);
		/* and as a new function: not created */
		snprintf(want, sizeof(want), "/v1/functions/%s-new", name);
		req("PUT", want, spec, NULL, &r);
		CHECK(r.status == 400, "row %zu as new: %ld", i, r.status);
		it_hresp_free(&r);
	}
	CHECK(it_sql_long("SELECT count(*) FROM functions WHERE name = $1 AND base_url LIKE "
			  "'%/good' AND max_in_flight = 3",
			  1, (const char *const[]){name}) == 1,
	      "the good function was changed");
	snprintf(good, sizeof(good), "%s-new", name);
	CHECK(it_sql_long("SELECT count(*) FROM functions WHERE name = $1", 1,
			  (const char *const[]){good}) == 0,
	      "a bad function was created");
	{
		struct hresp r;

		req("PUT", "/v1/functions/bad%20name", good, NULL, &r);
		CHECK(r.status == 400 && strstr(r.body, "\"field\":\"name\"") != NULL,
		      "bad name: %ld %s", r.status, r.body);
		it_hresp_free(&r);
	}
}

/* The SQL path: ag_function_put / ag_functions / ag_function_delete, with the same checks. */
static void t_functions_sql(void)
{
	char name[64], spec[256];
	char *v;

	snprintf(name, sizeof(name), "fnsql-%s", it_tag('s'));
	snprintf(spec, sizeof(spec),
		 "{\"base_url\":\"%s/sql\",\"signing_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2"
		 "LaLaSw\",\"rate\":{\"limit\":3}}",
		 target);
	v = it_sql("SELECT created FROM ag_function_put($1, $2::jsonb)", 2,
		   (const char *const[]){name, spec});
	CHECK(v != NULL && strcmp(v, "t") == 0, "created by SQL: %s", v != NULL ? v : "(null)");
	free(v);
	v = it_sql("SELECT row_to_json(f)::text FROM ag_functions f WHERE name = $1", 1,
		   (const char *const[]){name});
	CHECK(v != NULL && strstr(v, "whsec_") == NULL && strstr(v, "\"signing\":true") != NULL,
	      "ag_functions: %s", v != NULL ? v : "(null)");
	free(v);
	CHECK(it_sql_long("SELECT rate_burst FROM flow_keys WHERE key = 'f:' || $1", 1,
			  (const char *const[]){name}) == 3,
	      "flow row with burst = limit");
	/* the same refusal as over HTTP, and nothing written */
	v = it_sql("SELECT created FROM ag_function_put($1, '{\"base_url\":\"http://x\","
		   "\"rate\":{\"limit\":0}}')",
		   1, (const char *const[]){name});
	CHECK(v == NULL, "bad rate accepted by SQL");
	free(v);
	CHECK(it_sql_long("SELECT rate_limit FROM functions WHERE name = $1", 1,
			  (const char *const[]){name}) == 3,
	      "the bad put changed the function");
	v = it_sql("INSERT INTO functions (name, base_url, default_headers) VALUES "
		   "('raw-bad', 'http://x', '{\"Connection\":\"close\"}') RETURNING name",
		   0, NULL);
	CHECK(v == NULL, "a CHECK lets a hop-by-hop default header in");
	free(v);
	v = it_sql("SELECT ag_function_delete($1)::text", 1, (const char *const[]){name});
	CHECK(v != NULL && strcmp(v, "true") == 0, "deleted by SQL: %s", v != NULL ? v : "");
	free(v);
}

/* Priority: low then high queued while no drainer runs; one drainer at concurrency 1 sends
 * the high ones first. Async-Priority sets it in transparent mode; bad values are 400s. */
static void t_priority(void)
{
	const char *tg = it_tag('p');
	char body[4096], path[256];
	struct hresp r;
	struct json_object *h;
	int n;
	pid_t pid;
	int rc;

	snprintf(body, sizeof(body), "[");
	for (int i = 0; i < 8; i++)
		snprintf(body + strlen(body), sizeof(body) - strlen(body),
			 "%s{\"target\":\"%s/prio/%s/%s%d\",\"priority\":%d}", i > 0 ? "," : "",
			 target, tg, i < 4 ? "low" : "high", i, i < 4 ? -5 : 10);
	strcat(body, "]");
	req("POST", "/v1/calls", body, NULL, &r);
	CHECK(r.status == 202, "enqueue: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	/* transparent mode */
	snprintf(path, sizeof(path), "/v1/async/%s/prio/%s/async", "http:%2F%2F127.0.0.1", tg);
	{
		char enc[512];
		const char *hd[] = {"Async-Priority: 50", NULL};
		const char *hp = strstr(target, "://") + 3;

		snprintf(enc, sizeof(enc), "/v1/async/http%%3A%%2F%%2F%s/prio/%s/top", hp, tg);
		it_http("POST", url, enc, "text/plain", "x", 1, hd, &r);
		CHECK(r.status == 202, "transparent: %ld %s", r.status, r.body);
		if (r.status == 202) {
			char gp[128];
			struct hresp g;

			snprintf(gp, sizeof(gp), "/v1/calls/%s", it_jstr(&r, "id"));
			req("GET", gp, NULL, NULL, &g);
			CHECK(g.body != NULL && strstr(g.body, "\"priority\":50") != NULL,
			      "GET shows the priority: %s", g.body);
			it_hresp_free(&g);
		}
		it_hresp_free(&r);
		hd[0] = "Async-Priority: 101";
		it_http("POST", url, enc, "text/plain", "x", 1, hd, &r);
		CHECK(r.status == 400 && strstr(r.body, "Async-Priority") != NULL, "101: %ld %s",
		      r.status, r.body);
		it_hresp_free(&r);
	}
	snprintf(body, sizeof(body), "{\"target\":\"%s/prio/x\",\"priority\":\"high\"}", target);
	req("POST", "/v1/calls", body, NULL, &r);
	CHECK(r.status == 400 && strstr(r.body, "\"field\":\"priority\"") != NULL, "bad: %ld %s",
	      r.status, r.body);
	it_hresp_free(&r);

	pid = it_drainer_spawn(drainer_log,
			       (const char *const[]){"--once", "--concurrency", "1", NULL});
	rc = it_drainer_wait(pid, 60000, NULL);
	CHECK(rc == 0, "--once: %d", rc);
	snprintf(path, sizeof(path), "/prio/%s/", tg);
	h = it_hits(tlog, path);
	n = (int)json_object_array_length(h);
	CHECK(n == 9, "hits: %d", n);
	for (int i = 0; i < n; i++) {
		const char *p = it_jget(json_object_array_get_idx(h, (size_t)i), "path");
		const char *want = i == 0 ? "top" : i < 5 ? "high" : "low";

		CHECK(p != NULL && strstr(p, want) != NULL, "order %d: %s (want %s)", i,
		      p != NULL ? p : "", want);
	}
	json_object_put(h);
}

/* Held calls: a limited function's calls that must wait stay queued with no attempt counted
 * and no attempt row; all are sent once each in the end. */
static void t_held_no_attempt(void)
{
	char name[64], spec[256], path[128];
	pid_t pid;
	long held, bad;

	snprintf(name, sizeof(name), "fnheld-%s", it_tag('h'));
	snprintf(spec, sizeof(spec),
		 "{\"base_url\":\"%s\",\"rate\":{\"limit\":2,\"period\":\"1s\",\"burst\":1}}",
		 target);
	CHECK(put_function(name, spec) == 201, "create");
	snprintf(path, sizeof(path), "/held/%s", name);
	if (!enqueue_fn(name, path, 6, NULL))
		return;
	pid = it_drainer_spawn(drainer_log, (const char *const[]){"--once", NULL});
	CHECK(it_drainer_wait(pid, 60000, NULL) == 0, "--once");
	held = it_sql_long("SELECT count(*) FROM calls WHERE function = $1 AND state = 'queued' "
			   "AND held AND not_before > now() AND attempts = 0",
			   1, (const char *const[]){name});
	CHECK(held >= 4, "held calls (queued, attempts 0, not_before later): %ld", held);
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			  "WHERE c.function = $1 AND c.state = 'queued'",
			  1, (const char *const[]){name}) == 0,
	      "a held call has an attempt row");
	pid = it_drainer_spawn(drainer_log, (const char *const[]){"--follow", NULL});
	wait_fn(name, "succeeded", 6, 30000);
	it_drainer_stop(pid);
	bad = it_sql_long("SELECT count(*) FROM calls c WHERE c.function = $1 AND (c.attempts <> 1"
			  " OR (SELECT count(*) FROM attempts a WHERE a.call_id = c.id) <> 1)",
			  1, (const char *const[]){name});
	CHECK(bad == 0, "%ld calls with other than one attempt", bad);
	CHECK(it_sql_long("SELECT in_flight FROM flow_keys WHERE key = 'f:' || $1", 1,
			  (const char *const[]){name}) == 0,
	      "in_flight counter back to 0");
}

/* A 429 with Retry-After: 2 slows the function: slow doubles, it pauses, and the next calls
 * reach the target only after the pause. Successes bring slow back down. */
static void t_429_slows(void)
{
	char name[64], spec[256], path[256];
	struct json_object *h;
	pid_t pid;
	int n;

	snprintf(name, sizeof(name), "fn429-%s", it_tag('r'));
	snprintf(spec, sizeof(spec),
		 "{\"base_url\":\"%s\",\"rate\":{\"limit\":50,\"burst\":1},"
		 "\"retry\":{\"initial\":\"0s\",\"max\":\"1s\"}}",
		 target);
	CHECK(put_function(name, spec) == 201, "create");
	snprintf(path, sizeof(path), "/flaky/%s/1/429", name);
	{
		char body[512];
		struct hresp r;

		snprintf(body, sizeof(body),
			 "{\"function\":\"%s\",\"path\":\"%s\",\"query\":{\"retry_after\":\"2\"}}",
			 name, path);
		req("POST", "/v1/calls", body, NULL, &r);
		CHECK(r.status == 202, "enqueue: %ld %s", r.status, r.body);
		it_hresp_free(&r);
	}
	pid = it_drainer_spawn(drainer_log, (const char *const[]){"--follow", NULL});
	/* wait for the 429 to be recorded */
	for (int i = 0; i < 100 && it_sql_long("SELECT count(*) FROM calls WHERE function = $1 "
					       "AND last_status = 429",
					       1, (const char *const[]){name}) == 0;
	     i++)
		it_sleep_ms(50);
	CHECK(it_sql_long("SELECT (slow >= 2 AND paused_until_ms > extract(epoch FROM now()) * "
			  "1000 + 500)::int FROM flow_keys WHERE key = 'f:' || $1",
			  1, (const char *const[]){name}) == 1,
	      "after a 429 with Retry-After: 2 the key is slowed and paused");
	snprintf(path, sizeof(path), "/after429/%s", name);
	enqueue_fn(name, path, 5, NULL);
	wait_fn(name, "succeeded", 6, 30000);
	it_drainer_stop(pid);
	/* the first request (the 429) and the others: those came after the pause */
	{
		char p1[256];
		struct json_object *first;
		int64_t t429;

		snprintf(p1, sizeof(p1), "/flaky/%s/", name);
		first = it_hits(tlog, p1);
		CHECK(json_object_array_length(first) == 2, "429 then 200: %zu",
		      json_object_array_length(first));
		t429 = json_object_array_length(first) > 0 ? hit_us(first, 0) : 0;
		h = it_hits(tlog, path);
		n = (int)json_object_array_length(h);
		CHECK(n == 5, "hits after the 429: %d", n);
		for (int i = 0; i < n; i++)
			CHECK(hit_us(h, (size_t)i) - t429 >= 1900000,
			      "a call reached the target %.3f s after the 429 (Retry-After: 2)",
			      (double)(hit_us(h, (size_t)i) - t429) / 1e6);
		json_object_put(h);
		json_object_put(first);
	}
	CHECK(it_sql_long("SELECT (slow < 2)::int FROM flow_keys WHERE key = 'f:' || $1", 1,
			  (const char *const[]){name}) == 1,
	      "successes let the key recover");
}

/* Host limit for raw targets (SQL): max_in_flight 2 on 127.0.0.1, 12 slow calls, two drainers:
 * the target never sees 3 at once. The limit is removed afterwards. */
static void t_host_limit(void)
{
	const char *tg = it_tag('H');
	char body[8192], key[64];
	struct hresp r;
	pid_t a, b;
	long max;

	CHECK(it_sql_exec("SELECT ag_host_limit_set('127.0.0.1', NULL, max_in_flight => 2)", 0,
			  NULL),
	      "set");
	snprintf(key, sizeof(key), "host-%s", tg);
	snprintf(body, sizeof(body), "[");
	for (int i = 0; i < 12; i++)
		snprintf(body + strlen(body), sizeof(body) - strlen(body),
			 "%s{\"target\":\"%s/conc/200/%s\"}", i > 0 ? "," : "", target, key);
	strcat(body, "]");
	req("POST", "/v1/calls", body, NULL, &r);
	CHECK(r.status == 202, "enqueue: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target LIKE '%' || $1 AND flow_key = "
			  "'h:127.0.0.1'",
			  1, (const char *const[]){key}) == 12,
	      "calls carry the host key");
	a = it_drainer_spawn(drainer_log,
			     (const char *const[]){"--follow", "--concurrency", "8", NULL});
	b = it_drainer_spawn(drainer_log,
			     (const char *const[]){"--follow", "--concurrency", "8", NULL});
	{
		int64_t end = it_now_ms() + 30000;

		while (it_now_ms() < end &&
		       it_sql_long("SELECT count(*) FROM calls WHERE target LIKE '%' || $1 AND "
				   "state = 'succeeded'",
				   1, (const char *const[]){key}) < 12)
			it_sleep_ms(100);
	}
	it_drainer_stop(a);
	it_drainer_stop(b);
	{
		char p[128];

		snprintf(p, sizeof(p), "/conc-max/%s", key);
		it_http("GET", target, p, NULL, NULL, 0, NULL, &r);
		max = r.status == 200 ? strtol(strstr(r.body, ":") + 1, NULL, 10) : -1;
		it_hresp_free(&r);
	}
	CHECK(max >= 1 && max <= 2, "the target saw %ld at once (max_in_flight 2)", max);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target LIKE '%' || $1 AND state = "
			  "'succeeded'",
			  1, (const char *const[]){key}) == 12,
	      "all succeeded");
	CHECK(it_sql_exec("SELECT ag_host_limit_delete('127.0.0.1')", 0, NULL), "delete");
}

/* The acceptance run: rate 20/s, burst 5, max 5 in flight, N calls queued, two --follow
 * drainers. At the target: the rate over the run within 10% of 20/s; in every sliding 1 s
 * window at most 20 + 5 requests; never 6 at once. */
static void t_rate_two_drainers(void)
{
	const bool full =
		getenv("AG_FLOW_FULL") != NULL && strcmp(getenv("AG_FLOW_FULL"), "1") == 0;
	const int ncalls = full ? 1000 : 300;
	char name[64], spec[256], path[128], key[64];
	struct json_object *h;
	int n, win_max = 0;
	double rate;
	long inflight_max = -1;
	pid_t a, b;
	int64_t t0;
	struct hresp r;

	snprintf(name, sizeof(name), "fnrate-%s", it_tag('R'));
	snprintf(spec, sizeof(spec),
		 "{\"base_url\":\"%s\",\"rate\":{\"limit\":20,\"period\":\"1s\",\"burst\":5},"
		 "\"max_in_flight\":5}",
		 target);
	CHECK(put_function(name, spec) == 201, "create");
	snprintf(key, sizeof(key), "%s", name);
	snprintf(path, sizeof(path), "/conc/100/%s", key);
	for (int done = 0; done < ncalls; done += 500)
		if (!enqueue_fn(name, path, ncalls - done < 500 ? ncalls - done : 500, NULL))
			return;
	t0 = it_now_ms();
	a = it_drainer_spawn(drainer_log,
			     (const char *const[]){"--follow", "--concurrency", "10", NULL});
	b = it_drainer_spawn(drainer_log,
			     (const char *const[]){"--follow", "--concurrency", "10", NULL});
	wait_fn(name, "succeeded", ncalls, (long)ncalls * 50 * 2 + 30000);
	it_drainer_stop(a);
	it_drainer_stop(b);
	printf("# %d calls drained in %.1f s\n", ncalls, (double)(it_now_ms() - t0) / 1000);

	snprintf(path, sizeof(path), "/conc/100/%s", key);
	h = it_hits(tlog, path);
	n = (int)json_object_array_length(h);
	CHECK(n == ncalls, "the target saw %d requests, want %d", n, ncalls);
	if (n < 2) {
		json_object_put(h);
		return;
	}
	rate = (double)(n - 1) / ((double)(hit_us(h, (size_t)n - 1) - hit_us(h, 0)) / 1e6);
	/* every sliding 1 s window [t_i, t_i + 1 s): the log is in arrival order */
	for (int i = 0, j = 0; i < n; i++) {
		while (j < n && hit_us(h, (size_t)j) < hit_us(h, (size_t)i) + 1000000)
			j++;
		if (j - i > win_max)
			win_max = j - i;
	}
	snprintf(path, sizeof(path), "/conc-max/%s", key);
	it_http("GET", target, path, NULL, NULL, 0, NULL, &r);
	if (r.status == 200 && strchr(r.body, ':') != NULL)
		inflight_max = strtol(strchr(r.body, ':') + 1, NULL, 10);
	it_hresp_free(&r);
	printf("# acceptance: calls=%d rate=%.2f/s (want 20 +-10%%) max_per_1s_window=%d (limit "
	       "25) max_in_flight=%ld (limit 5)\n",
	       n, rate, win_max, inflight_max);
	CHECK(rate >= 18.0 && rate <= 22.0, "rate %.2f/s is not within 10%% of 20/s", rate);
	CHECK(win_max <= 25, "a 1 s window held %d requests (rate 20 + burst 5)", win_max);
	CHECK(inflight_max >= 1 && inflight_max <= 5, "the target saw %ld at once", inflight_max);
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			  "WHERE c.function = $1",
			  1, (const char *const[]){name}) == ncalls,
	      "one attempt row per call");
	CHECK(it_sql_long("SELECT in_flight FROM flow_keys WHERE key = 'f:' || $1", 1,
			  (const char *const[]){name}) == 0,
	      "in_flight counter back to 0");
	json_object_put(h);
}

int main(void)
{
	const char *t = getenv("AG_TMP");

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	tlog = getenv("AG_TARGET_LOG");
	drainer = getenv("AG_DRAINER");
	admin = getenv("AG_ADMIN");
	if (url == NULL || target == NULL || tlog == NULL || drainer == NULL || admin == NULL ||
	    PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_flow setup: AG_URL, AG_TARGET, AG_TARGET_LOG, AG_DRAINER, "
		       "AG_ADMIN and a reachable database are required\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL ? t : "/tmp");
	snprintf(drainer_log, sizeof(drainer_log), "%s/drainer-flow.log", tmpdir);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("flow: earlier tests' calls cancelled", it_clean_queue);
	it_run("functions: create 201, replace 200, get, list, delete 204; secret never shown",
	       t_functions_api);
	it_run("functions: delete cancels the function's queued calls", t_function_delete_cancels);
	it_run("functions: 403 problem+json for non-admins on every path, nothing written",
	       t_functions_403);
	it_run("functions: bad specs are 400 naming the field, nothing written", t_functions_400);
	it_run("functions: the SQL path (ag_function_put, ag_functions, ag_function_delete)",
	       t_functions_sql);
	it_run("priority: high before low with concurrency 1; Async-Priority; bad values 400",
	       t_priority);
	it_run("flow: held calls stay queued with no attempt counted, each sent once in the end",
	       t_held_no_attempt);
	it_run("flow: a 429 with Retry-After pauses and slows the function; successes recover",
	       t_429_slows);
	it_run("flow: host limit max_in_flight 2 on raw targets, two drainers", t_host_limit);
	it_run("flow: rate 20/s burst 5 max_in_flight 5, two drainers: rate, 1 s windows, in "
	       "flight",
	       t_rate_two_drainers);
	return it_finish();
}

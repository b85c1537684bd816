/* test_schedules: recurring calls against the real handler, PostgreSQL and drainers. Three
 * `asyncgate-drainer --follow` share an interval schedule and an every-minute cron schedule in
 * Asia/Kolkata: exactly one call per tick (schedule_ticks = calls = deliveries, no tick twice,
 * none unaccounted for); the missed-tick policies after a forced gap; pause, resume, delete;
 * refused input naming its field and writing nothing; 403 for a call the key may not make.
 *
 * AG_SCHED_FULL=1: the acceptance run instead of the short one: one every-minute schedule in
 * Asia/Kolkata, three --follow drainers for AG_SCHED_MINUTES (5) minutes. */
#define _GNU_SOURCE /* itest.c.inc: wait4 */
#include "itest.h"
#include "itest.c.inc"

#include <signal.h>
#include <sys/wait.h>

#include <json-c/json.h>

#define JSON "application/json"

static const char *url, *target, *drainer, *admin, *target_log;
static char tag[40];
static char cron_id[64]; /* the every-minute Asia/Kolkata schedule, made first */
static int64_t cron_created_s;

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* POST body to path; r must be freed. authz NULL: the default key. */
static void post(const char *path, const char *body, const char *authz, struct hresp *r)
{
	const char *h[2] = {authz, NULL};

	it_http("POST", url, path, JSON, body, strlen(body), authz != NULL ? h : NULL, r);
}

static long count(const char *sql, const char *arg)
{
	const char *p[1] = {arg};

	return it_sql_long(sql, arg != NULL ? 1 : 0, p);
}

static long schedules_count(void)
{
	return count("SELECT count(*) FROM schedules", NULL);
}

/* Creates a schedule from body (201 expected); its id into id. */
static bool create(const char *body, char *id, size_t idsz)
{
	struct hresp r;
	bool ok;

	post("/v1/schedules", body, NULL, &r);
	ok = CHECK(r.status == 201, "POST /v1/schedules: %ld %s", r.status, r.body);
	snprintf(id, idsz, "%s", ok ? it_jstr(&r, "id") : "");
	it_hresp_free(&r);
	return ok && id[0] != '\0';
}

/* Requests to the target whose path starts with prefix, from its JSONL log. */
static long deliveries(const char *prefix)
{
	FILE *f = fopen(target_log, "r");
	char line[65536];
	char want[256];
	long n = 0;

	if (f == NULL)
		return -1;
	snprintf(want, sizeof(want), "\"path\":\"%s", prefix);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, want) != NULL)
			n++;
	fclose(f);
	return n;
}

static pid_t spawn(const char *mode)
{
	pid_t pid = fork();

	if (pid == 0) {
		char logpath[600];
		FILE *f;

		snprintf(logpath, sizeof(logpath), "%s/drainer-sched.log", getenv("AG_TMP"));
		f = freopen(logpath, "a", stderr);
		(void)f;
		f = freopen("/dev/null", "w", stdout); /* the --once summary */
		(void)f;
		execl(drainer, drainer, mode, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void drain_once(void)
{
	int rc = it_drainer_wait(spawn("--once"), 60000, NULL);

	CHECK(rc == 0, "--once exit status %d", rc);
}

static void schedule_action(const char *id, const char *action, long want, struct hresp *r)
{
	char path[160];

	snprintf(path, sizeof(path), "/v1/schedules/%s/%s", id, action);
	post(path, "", NULL, r);
	CHECK(r->status == want, "POST %s: %ld, want %ld: %s", path, r->status, want, r->body);
}

/* Every tick of schedule id made exactly one call, delivered once: schedule_ticks rows =
 * calls with schedule_id = ticks_fired = requests to the target under prefix; no tick_at twice
 * among the calls; each call's not_before is its tick. Returns the number of ticks. */
static long one_call_per_tick(const char *id, const char *prefix)
{
	long ticks = count("SELECT count(*) FROM schedule_ticks WHERE schedule_id = $1", id);
	long calls = count("SELECT count(*) FROM calls WHERE schedule_id = $1", id);
	long distinct =
		count("SELECT count(DISTINCT tick_at) FROM calls WHERE schedule_id = $1", id);
	long fired = count("SELECT ticks_fired FROM schedules WHERE id = $1", id);
	long linked = count("SELECT count(*) FROM schedule_ticks t JOIN calls c ON c.id = t.call_id"
			    " AND c.schedule_id = t.schedule_id AND c.tick_at = t.tick_at"
			    " AND c.not_before = t.tick_at WHERE t.schedule_id = $1",
			    id);
	long done = count("SELECT count(*) FROM calls WHERE schedule_id = $1"
			  " AND state = 'succeeded'",
			  id);
	long sent = deliveries(prefix);

	CHECK(ticks > 0, "schedule %s: no ticks", id);
	CHECK(calls == ticks && distinct == ticks && fired == ticks && linked == ticks,
	      "schedule %s: ticks %ld, calls %ld, distinct ticks %ld, fired %ld, linked %ld", id,
	      ticks, calls, distinct, fired, linked);
	CHECK(done == calls && sent == calls,
	      "schedule %s: calls %ld, succeeded %ld, delivered %ld", id, calls, done, sent);
	return ticks;
}

/* ---- the tests ---- */

static void t_cron_create(void)
{
	char body[1024];
	struct hresp r;
	const char *next;
	char local[64];

	cron_created_s = now_s();
	snprintf(body, sizeof(body),
		 "{\"name\":\"kolkata minutely\",\"cron\":\"* * * * *\","
		 "\"time_zone\":\"Asia/Kolkata\",\"call\":{\"target\":\"%s/sched/%s/cron\","
		 "\"body\":{\"n\":1}}}",
		 target, tag);
	post("/v1/schedules", body, NULL, &r);
	CHECK(r.status == 201, "201: %ld %s", r.status, r.body);
	snprintf(cron_id, sizeof(cron_id), "%s", it_jstr(&r, "id"));
	CHECK(strlen(cron_id) == 36, "an id: %s", r.body);
	next = it_jstr(&r, "next_tick");
	CHECK(strlen(next) == 24 && strcmp(next + 16, ":00.000Z") == 0, "next_tick %s", next);
	snprintf(local, sizeof(local), "%s", it_jstr(&r, "next_tick_local"));
	CHECK(strlen(local) == 25 && strcmp(local + 16, ":00+05:30") == 0, "next_tick_local %s",
	      local);
	CHECK(strcmp(it_jstr(&r, "time_zone"), "Asia/Kolkata") == 0 &&
		      strcmp(it_jstr(&r, "missed"), "run_once") == 0 &&
		      strcmp(it_jstr(&r, "state"), "active") == 0,
	      "defaults: %s", r.body);
	{
		const char *p[1] = {cron_id};
		char *v = it_sql("SELECT next_tick_local FROM ag_schedules WHERE id = $1", 1, p);

		CHECK(v != NULL && strcmp(v, local) == 0, "ag_schedules.next_tick_local %s = %s", v,
		      local);
		free(v);
		v = it_sql("SELECT ag_ts_zone('2026-03-29 01:00Z', 'Europe/Berlin') || ' '"
			   " || ag_ts_zone('2026-11-24 03:30Z', 'America/St_Johns') || ' '"
			   " || COALESCE(ag_ts_zone(now(), 'Nowhere/City'), 'null')",
			   0, NULL);
		CHECK(v != NULL && strcmp(v, "2026-03-29T03:00:00+02:00 2026-11-24T00:00:00-03:30 "
					     "null") == 0,
		      "ag_ts_zone: %s", v);
		free(v);
	}
	{
		char *loc = it_header(&r, "Location");

		CHECK(loc != NULL && strstr(loc, cron_id) != NULL, "Location %s", loc);
		free(loc);
	}
	it_hresp_free(&r);
}

static void t_bad_input(void)
{
	static const struct {
		const char *body, *field;
	} cases[] = {
		{"{\"cron\":\"60 * * * *\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"* 24 * * *\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"* * * *\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"* * * * mon-funday\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"0 0 30 2 *\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"@reboot\",\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":5,\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"cron\":\"* * * * *\",\"every\":\"1m\",\"call\":{\"target\":\"T\"}}", "every"},
		{"{\"call\":{\"target\":\"T\"}}", "cron"},
		{"{\"every\":\"500ms\",\"call\":{\"target\":\"T\"}}", "every"},
		{"{\"every\":\"soon\",\"call\":{\"target\":\"T\"}}", "every"},
		{"{\"every\":\"400d\",\"call\":{\"target\":\"T\"}}", "every"},
		{"{\"every\":\"1m\",\"time_zone\":\"Mars/Olympus\",\"call\":{\"target\":\"T\"}}",
		 "time_zone"},
		{"{\"every\":\"1m\",\"time_zone\":\"../../etc/"
		 "passwd\",\"call\":{\"target\":\"T\"}}",
		 "time_zone"},
		{"{\"every\":\"1m\",\"time_zone\":\"/etc/localtime\",\"call\":{\"target\":\"T\"}}",
		 "time_zone"},
		{"{\"every\":\"1m\",\"missed\":\"all\",\"call\":{\"target\":\"T\"}}", "missed"},
		{"{\"every\":\"1m\",\"name\":\"\",\"call\":{\"target\":\"T\"}}", "name"},
		{"{\"every\":\"1m\",\"colour\":\"red\",\"call\":{\"target\":\"T\"}}", "colour"},
		{"{\"every\":\"1m\"}", "call"},
		{"{\"every\":\"1m\",\"call\":\"T\"}", "call"},
		{"{\"every\":\"1m\",\"call\":{\"target\":\"T\",\"delay\":\"5s\"}}", "call.delay"},
		{"{\"every\":\"1m\",\"call\":{\"target\":\"T\",\"not_before\":\"2030-01-01T00:00:"
		 "00Z\"}}",
		 "call.not_before"},
		{"{\"every\":\"1m\",\"call\":{\"target\":\"ftp://x/\"}}", "call.target"},
		{"{\"every\":\"1m\",\"call\":{\"target\":\"T\",\"method\":\"GET\",\"body\":1}}",
		 "call.body"},
		{"{\"every\":\"1m\",\"call\":{\"function\":\"no-such-fn-here\"}}", "call.function"},
		{"[]", "body"},
	};
	long before = schedules_count(), calls = it_calls_count();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[1024], *t;
		struct hresp r;
		struct json_object *o;
		const char *field, *detail;

		/* T is the target URL */
		snprintf(body, sizeof(body), "%s", cases[i].body);
		t = strstr(body, "\"T\"");
		if (t != NULL) {
			char rest[1024];

			snprintf(rest, sizeof(rest), "%s", t + 3);
			snprintf(t, sizeof(body) - (size_t)(t - body), "\"%s/sched/%s/bad\"%s",
				 target, tag, rest);
		}
		post("/v1/schedules", body, NULL, &r);
		o = it_json(&r);
		field = o != NULL ? it_jget(o, "field") : NULL;
		detail = o != NULL ? it_jget(o, "detail") : NULL;
		CHECK(r.status == 400 && field != NULL && strcmp(field, cases[i].field) == 0 &&
			      detail != NULL &&
			      strncmp(detail, cases[i].field, strlen(cases[i].field)) == 0,
		      "%s: %ld %s (want 400 naming %s)", cases[i].body, r.status, r.body,
		      cases[i].field);
		json_object_put(o);
		it_hresp_free(&r);
	}
	CHECK(schedules_count() == before && it_calls_count() == calls,
	      "refused input wrote nothing: schedules %ld -> %ld", before, schedules_count());
}

/* A key that may call only one function and one URL prefix: 403 naming call.* fields, and it
 * sees only its own schedules. */
static void t_forbidden_and_scope(void)
{
	char cmd[512], token[256] = "", authz[300], body[1024], path[160];
	FILE *f;
	size_t n;
	struct hresp r;
	long before = schedules_count();

	snprintf(cmd, sizeof(cmd),
		 "%s key create sched-%s --function 'sched-ok-*' --url '%s/sched/%s/mine/*' "
		 "2>/dev/null",
		 admin, tag, target, tag);
	f = popen(cmd, "r");
	if (!CHECK(f != NULL, "popen admin"))
		return;
	n = fread(token, 1, sizeof(token) - 1, f);
	pclose(f);
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == ' '))
		n--;
	token[n] = '\0';
	snprintf(authz, sizeof(authz), "Authorization: Bearer %s", token);

	snprintf(body, sizeof(body),
		 "{\"every\":\"1h\",\"call\":{\"target\":\"%s/sched/%s/other\"}}", target, tag);
	post("/v1/schedules", body, authz, &r);
	CHECK(r.status == 403 && strcmp(it_jstr(&r, "field"), "call.target") == 0,
	      "403 call.target: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	post("/v1/schedules", "{\"every\":\"1h\",\"call\":{\"function\":\"not-mine\"}}", authz, &r);
	CHECK(r.status == 403 && strcmp(it_jstr(&r, "field"), "call.function") == 0,
	      "403 call.function: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	snprintf(body, sizeof(body),
		 "{\"every\":\"1h\",\"call\":{\"target\":\"%s/sched/%s/mine/x\","
		 "\"callback\":\"%s/elsewhere\"}}",
		 target, tag, target);
	post("/v1/schedules", body, authz, &r);
	CHECK(r.status == 403 && strcmp(it_jstr(&r, "field"), "call.callback") == 0,
	      "403 call.callback: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(schedules_count() == before, "403s wrote nothing");

	/* its own: allowed, listed; the admin's cron schedule is not its to see */
	snprintf(body, sizeof(body),
		 "{\"every\":\"1h\",\"missed\":\"skip\",\"call\":{\"target\":\"%s/sched/%s/mine/"
		 "x\"}}",
		 target, tag);
	post("/v1/schedules", body, authz, &r);
	CHECK(r.status == 201, "its own schedule: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	{
		const char *h[2] = {authz, NULL};
		struct json_object *o;
		struct json_object *arr;

		it_http("GET", url, "/v1/schedules", NULL, NULL, 0, h, &r);
		o = it_json(&r);
		CHECK(r.status == 200 && o != NULL &&
			      json_object_object_get_ex(o, "schedules", &arr) &&
			      json_object_array_length(arr) == 1,
		      "the key lists only its own schedule: %s", r.body);
		json_object_put(o);
		it_hresp_free(&r);
		snprintf(path, sizeof(path), "/v1/schedules/%s", cron_id);
		it_http("GET", url, path, NULL, NULL, 0, h, &r);
		CHECK(r.status == 404, "another client's schedule is 404: %ld", r.status);
		it_hresp_free(&r);
		it_http("DELETE", url, path, NULL, NULL, 0, h, &r);
		CHECK(r.status == 404, "nor can it delete it: %ld", r.status);
		it_hresp_free(&r);
		snprintf(path, sizeof(path), "/v1/schedules/%s/pause", cron_id);
		post(path, "", authz, &r);
		CHECK(r.status == 404, "nor pause it: %ld", r.status);
		it_hresp_free(&r);
	}
	/* the admin key sees both */
	it_http("GET", url, "/v1/schedules?limit=1000", NULL, NULL, 0, NULL, &r);
	snprintf(cmd, sizeof(cmd), "sched-%s", tag);
	CHECK(r.status == 200 && strstr(r.body, cron_id) != NULL &&
		      count("SELECT count(*) FROM schedules WHERE client = $1", cmd) == 1,
	      "the admin lists every schedule");
	it_hresp_free(&r);
	it_sql_exec("DELETE FROM schedules WHERE client = $1", 1, (const char *[]){cmd});
}

static void t_pause_resume_delete(void)
{
	char id[64], body[512], path[160];
	struct hresp r;
	struct json_object *o;

	snprintf(body, sizeof(body),
		 "{\"every\":\"1h\",\"name\":\"hourly\",\"call\":{\"target\":\"%s/sched/%s/pr\","
		 "\"headers\":{\"Authorization\":\"Bearer s3cret\"}}}",
		 target, tag);
	if (!create(body, id, sizeof(id)))
		return;
	schedule_action(id, "pause", 200, &r);
	o = it_json(&r);
	CHECK(o != NULL && it_jis(o, "state", "paused") && it_jget(o, "next_tick") == NULL,
	      "paused, no next tick: %s", r.body);
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(count("SELECT count(*) FROM schedules WHERE id = $1 AND state = 'paused'"
		    " AND next_tick IS NULL",
		    id) == 1,
	      "paused in the row");
	schedule_action(id, "pause", 200, &r); /* again: still paused */
	it_hresp_free(&r);
	schedule_action(id, "resume", 200, &r);
	o = it_json(&r);
	CHECK(o != NULL && it_jis(o, "state", "active") && it_jget(o, "next_tick") != NULL,
	      "resumed: %s", r.body);
	CHECK(o != NULL && it_jis(o, "call.headers.Authorization", "[redacted]"),
	      "the call's credentials are redacted: %s", r.body);
	json_object_put(o);
	it_hresp_free(&r);
	/* from now on: next tick after now, on the creation anchor (every 1h) */
	CHECK(count("SELECT count(*) FROM schedules WHERE id = $1 AND next_tick > now()"
		    " AND next_tick <= now() + interval '1 hour'"
		    " AND (extract(epoch FROM next_tick) * 1000000)::bigint % 3600000000"
		    " = anchor_us % 3600000000",
		    id) == 1,
	      "resumed to the next tick after now on the anchor grid");
	/* the operator's SQL functions */
	CHECK(count("SELECT count(*) FROM schedules WHERE ag_schedule_pause(id) AND id = $1"
		    " AND state = 'active'",
		    id) == 1,
	      "ag_schedule_pause: true for an active schedule");
	CHECK(count("SELECT count(*) FROM schedules WHERE id = $1 AND state = 'paused'", id) == 1 &&
		      count("SELECT ag_schedule_pause($1)::int", id) == 0,
	      "paused by SQL; pausing again is false");
	CHECK(count("SELECT ag_schedule_resume($1)::int", id) == 1 &&
		      count("SELECT count(*) FROM schedules WHERE id = $1 AND state = 'active'"
			    " AND next_tick <= now()",
			    id) == 1,
	      "ag_schedule_resume: active again, due from now");
	snprintf(path, sizeof(path), "/v1/schedules/%s", id);
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "DELETE: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "gone: %ld", r.status);
	it_hresp_free(&r);
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "DELETE again: %ld", r.status);
	it_hresp_free(&r);
	schedule_action("0190f2a4-5b6c-7d8e-9f01-23456789abcd", "resume", 404, &r);
	it_hresp_free(&r);
}

/* No drainer runs: the next tick is forced 35 s into the past of an every-10s schedule (three
 * or four ticks missed), then one --once drain. run_once: one call, for the latest tick; skip:
 * none. Both then wait for their next tick after now. */
static void t_missed(void)
{
	char once[64], skip[64], body[512];

	snprintf(body, sizeof(body),
		 "{\"every\":\"10s\",\"call\":{\"target\":\"%s/sched/%s/once\"}}", target, tag);
	if (!create(body, once, sizeof(once)))
		return;
	snprintf(body, sizeof(body),
		 "{\"every\":\"10s\",\"missed\":\"skip\",\"call\":{\"target\":\"%s/sched/%s/"
		 "skip\"}}",
		 target, tag);
	if (!create(body, skip, sizeof(skip)))
		return;
	/* the ticks must exist: the interval's anchor goes back a minute (same grid) too */
	it_sql_exec("UPDATE schedules SET next_tick = now() - interval '35 seconds',"
		    " anchor_us = anchor_us - 60000000 WHERE id IN ($1, $2)",
		    2, (const char *[]){once, skip});
	drain_once();
	CHECK(count("SELECT count(*) FROM calls WHERE schedule_id = $1", once) == 1,
	      "run_once: one call");
	CHECK(count("SELECT count(*) FROM schedule_ticks WHERE schedule_id = $1 AND missed >= 2",
		    once) == 1,
	      "run_once: its tick records the missed ones");
	CHECK(count("SELECT count(*) FROM calls c JOIN schedules s ON s.id = c.schedule_id"
		    " WHERE s.id = $1 AND c.tick_at <= c.created_at"
		    " AND c.tick_at + interval '10 seconds' > c.created_at"
		    " AND s.last_tick = c.tick_at AND s.next_tick = c.tick_at + interval '10 "
		    "seconds'"
		    " AND c.state = 'succeeded'",
		    once) == 1,
	      "run_once: the call is for the latest due tick, and was made");
	CHECK(count("SELECT count(*) FROM calls WHERE schedule_id = $1", skip) == 0,
	      "skip: no call");
	CHECK(count("SELECT ticks_missed FROM schedules WHERE id = $1", skip) >= 3,
	      "skip: the missed ticks are counted");
	CHECK(count("SELECT count(*) FROM schedules WHERE id = $1 AND ticks_fired = 0"
		    " AND last_tick IS NULL AND next_tick > now() - interval '10 seconds'",
		    skip) == 1,
	      "skip: waits for the next tick");
	it_sql_exec("DELETE FROM schedules WHERE id IN ($1, $2)", 2, (const char *[]){once, skip});
}

/* The /v1/drain handler runs the same cycle: a due tick becomes its call there too. An SQL
 * resume (next_tick = now) of a schedule whose next tick is later fires nothing. */
static void t_drain_endpoint(void)
{
	char id[64], later[64], body[512], authz[200];
	const char *h[2] = {authz, NULL};
	struct hresp r;

	snprintf(body, sizeof(body),
		 "{\"every\":\"10s\",\"call\":{\"target\":\"%s/sched/%s/endpoint\"}}", target, tag);
	if (!create(body, id, sizeof(id)))
		return;
	snprintf(body, sizeof(body),
		 "{\"every\":\"1h\",\"call\":{\"target\":\"%s/sched/%s/later\"}}", target, tag);
	if (!create(body, later, sizeof(later)))
		return;
	/* one period earlier: the first tick is then the creation time, due now */
	it_sql_exec("UPDATE schedules SET anchor_us = anchor_us - 10000000,"
		    " next_tick = 'epoch'::timestamptz + anchor_us * interval '1 microsecond'"
		    " WHERE id = $1",
		    1, (const char *[]){id});
	it_sql_exec("SELECT ag_schedule_pause($1), ag_schedule_resume($1)", 1,
		    (const char *[]){later});
	snprintf(authz, sizeof(authz), "Authorization: Bearer %s", getenv("AG_DRAIN_TOKEN"));
	it_http("POST", url, "/v1/drain", NULL, "", 0, h, &r);
	CHECK(r.status == 200, "POST /v1/drain: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(count("SELECT count(*) FROM calls WHERE schedule_id = $1 AND state = 'succeeded'",
		    id) == 1,
	      "/v1/drain fired the due tick and made its call");
	CHECK(count("SELECT count(*) FROM calls WHERE schedule_id = $1", later) == 0 &&
		      count("SELECT count(*) FROM schedules WHERE id = $1 AND next_tick > now()",
			    later) == 1,
	      "resumed by SQL: no call, the next tick stored");
	it_sql_exec("DELETE FROM schedules WHERE id IN ($1, $2)", 2, (const char *[]){id, later});
}

/* Three --follow drainers; an every-2s schedule for about 20 s; the cron schedule until it has
 * crossed a minute boundary. Exactly one call per tick, and every tick accounted for. */
static void t_three_drainers(void)
{
	char iv[64], body[512], prefix[160], path[160];
	pid_t d[3];
	struct hresp r;
	int64_t t0 = now_s();
	long ticks, missed, anchor_ok, cron_ticks;

	snprintf(body, sizeof(body),
		 "{\"every\":\"2s\",\"name\":\"short\",\"call\":{\"target\":\"%s/sched/%s/iv\"}}",
		 target, tag);
	if (!create(body, iv, sizeof(iv)))
		return;
	for (int i = 0; i < 3; i++)
		d[i] = spawn("--follow");
	/* 20 s at least, and until the cron schedule has ticked (the first minute boundary after
	 * its creation; at most ~80 s after it was made) */
	for (;;) {
		it_sleep_ms(500);
		if (now_s() - t0 >= 20 &&
		    count("SELECT ticks_fired FROM schedules WHERE id = $1", cron_id) >= 1)
			break;
		if (now_s() - cron_created_s > 150) {
			CHECK(false, "the cron schedule did not tick within 150 s");
			break;
		}
	}
	schedule_action(iv, "pause", 200, &r);
	it_hresp_free(&r);
	schedule_action(cron_id, "pause", 200, &r);
	it_hresp_free(&r);
	for (int i = 0; i < 3; i++)
		it_drainer_stop(d[i]);
	drain_once(); /* what the stopped drainers left queued */

	snprintf(prefix, sizeof(prefix), "/sched/%s/iv", tag);
	ticks = one_call_per_tick(iv, prefix);
	missed = count("SELECT ticks_missed FROM schedules WHERE id = $1", iv);
	/* accounted: fired + missed = the ticks from the first (anchor + 2 s) to the last */
	anchor_ok = count("SELECT count(*) FROM schedules WHERE id = $1 AND ticks_fired + "
			  "ticks_missed = ((extract(epoch FROM last_tick) * 1000000)::bigint"
			  " - anchor_us) / every_ms / 1000",
			  iv);
	CHECK(anchor_ok == 1, "interval: fired + missed = ticks from the anchor to the last");
	CHECK(ticks >= 2, "interval: %ld ticks in >= 20 s", ticks);
	printf("# interval schedule: %ld ticks, %ld missed, three drainers\n", ticks, missed);
	CHECK(count("SELECT count(DISTINCT drainer) FROM schedule_ticks WHERE schedule_id = $1",
		    iv) >= 1,
	      "ticks name their drainer");

	snprintf(prefix, sizeof(prefix), "/sched/%s/cron", tag);
	cron_ticks = one_call_per_tick(cron_id, prefix);
	CHECK(count("SELECT count(*) FROM schedule_ticks WHERE schedule_id = $1"
		    " AND extract(second FROM tick_at) = 0",
		    cron_id) == cron_ticks,
	      "cron ticks are whole minutes");
	CHECK(count("SELECT count(*) FROM schedules WHERE id = $1 AND ticks_fired + ticks_missed"
		    " = (extract(epoch FROM last_tick - date_trunc('minute', created_at)))::bigint"
		    " / 60",
		    cron_id) == 1,
	      "cron: fired + missed = the minutes from creation to the last tick");
	printf("# cron schedule (Asia/Kolkata, every minute): %ld ticks\n", cron_ticks);

	/* GET shows the ticks with their calls; a tick's call links back */
	snprintf(path, sizeof(path), "/v1/schedules/%s", cron_id);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	{
		struct json_object *o = it_json(&r), *arr = NULL, *t0j;
		const char *call_id = NULL;

		CHECK(r.status == 200 && o != NULL && json_object_object_get_ex(o, "ticks", &arr) &&
			      json_object_array_length(arr) >= 1,
		      "GET shows the ticks: %s", r.body);
		if (arr != NULL && json_object_array_length(arr) >= 1) {
			t0j = json_object_array_get_idx(arr, 0);
			call_id = it_jget(t0j, "call_id");
		}
		if (call_id != NULL) {
			struct hresp c;
			struct json_object *co;

			snprintf(path, sizeof(path), "/v1/calls/%s", call_id);
			it_http("GET", url, path, NULL, NULL, 0, NULL, &c);
			co = it_json(&c);
			CHECK(c.status == 200 && co != NULL && it_jis(co, "schedule_id", cron_id) &&
				      it_jget(co, "tick_at") != NULL,
			      "GET /v1/calls/{id} links to the schedule: %s", c.body);
			json_object_put(co);
			it_hresp_free(&c);
		}
		json_object_put(o);
	}
	it_hresp_free(&r);
	it_sql_exec("DELETE FROM schedules WHERE id IN ($1, $2)", 2, (const char *[]){iv, cron_id});
}

/* The acceptance run: one every-minute schedule in Asia/Kolkata, three --follow drainers for
 * AG_SCHED_MINUTES minutes. */
static void t_full(void)
{
	const char *m = getenv("AG_SCHED_MINUTES");
	long minutes = m != NULL ? strtol(m, NULL, 10) : 5;
	char prefix[160];
	pid_t d[3];
	struct hresp r;
	int64_t t0;
	long ticks, missed;

	for (int i = 0; i < 3; i++)
		d[i] = spawn("--follow");
	t0 = now_s();
	while (now_s() - t0 < minutes * 60)
		it_sleep_ms(1000);
	schedule_action(cron_id, "pause", 200, &r);
	it_hresp_free(&r);
	for (int i = 0; i < 3; i++)
		it_drainer_stop(d[i]);
	drain_once();
	snprintf(prefix, sizeof(prefix), "/sched/%s/cron", tag);
	ticks = one_call_per_tick(cron_id, prefix);
	missed = count("SELECT ticks_missed FROM schedules WHERE id = $1", cron_id);
	CHECK(ticks >= minutes - 1 && ticks <= minutes + 1 && missed == 0,
	      "%ld minutes: %ld ticks, %ld missed", minutes, ticks, missed);
	printf("# acceptance: %ld min, 3 drainers, Asia/Kolkata every minute: %ld ticks, %ld "
	       "calls, %ld deliveries, %ld missed, drainers that fired: %ld\n",
	       minutes, ticks, count("SELECT count(*) FROM calls WHERE schedule_id = $1", cron_id),
	       deliveries(prefix), missed,
	       count("SELECT count(DISTINCT drainer) FROM schedule_ticks WHERE schedule_id = $1",
		     cron_id));
	it_sql_exec("DELETE FROM schedules WHERE id = $1", 1, (const char *[]){cron_id});
}

int main(void)
{
	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	drainer = getenv("AG_DRAINER");
	admin = getenv("AG_ADMIN");
	target_log = getenv("AG_TARGET_LOG");
	if (url == NULL || target == NULL || drainer == NULL || admin == NULL ||
	    target_log == NULL || getenv("AG_TMP") == NULL) {
		printf("not ok - test_schedules setup: AG_URL, AG_TARGET, AG_DRAINER, AG_ADMIN, "
		       "AG_TARGET_LOG, AG_TMP unset\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(tag, sizeof(tag), "%s", it_tag('s'));
	it_run("schedules: a cron schedule in Asia/Kolkata is created with its next tick (UTC, "
	       "local)",
	       t_cron_create);
	if (getenv("AG_SCHED_FULL") != NULL && strcmp(getenv("AG_SCHED_FULL"), "1") == 0) {
		it_run("schedules: acceptance: every minute in Asia/Kolkata, three drainers, "
		       "AG_SCHED_MINUTES minutes: one call per tick",
		       t_full);
	} else {
		it_run("schedules: bad input is a 400 naming the field and writes nothing",
		       t_bad_input);
		it_run("schedules: 403 for a call the key may not make; a client sees only its own",
		       t_forbidden_and_scope);
		it_run("schedules: pause, resume from now, delete", t_pause_resume_delete);
		it_run("schedules: missed ticks after a gap: run_once makes one call, skip none",
		       t_missed);
		it_run("schedules: /v1/drain fires due ticks; an SQL resume waits for the next",
		       t_drain_endpoint);
		it_run("schedules: three --follow drainers: exactly one call per tick (interval "
		       "and cron)",
		       t_three_drainers);
	}
	curl_global_cleanup();
	return it_finish();
}

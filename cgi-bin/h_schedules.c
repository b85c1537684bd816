/* h_schedules: POST/GET /v1/schedules, GET/DELETE /v1/schedules/{id}, POST .../pause|resume. */
#include "handlers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "auth.h"
#include "call.h"
#include "cron.h"
#include "jstrict.h"
#include "log.h"
#include "schedule.h"
#include "timeparse.h"
#include "uuid.h"

#define NAME_MAX_BYTES 200
#define EVERY_MIN_MS 1000LL
#define EVERY_MAX_MS (366LL * 86400 * 1000)
#define US_PER_S 1000000LL

/* A schedule row (SCHEDULE_COLUMNS) as the API shows it: next_tick_local added in its zone,
 * the helper columns dropped, credential-like headers of the call redacted. New; caller puts. */
static struct json_object *schedule_json(const PGresult *res, int r)
{
	struct json_object *o = db_row_json(res, r);
	struct json_object *v;

	if (json_object_object_get_ex(o, "next_tick_us", &v)) {
		char local[64];
		int64_t us = json_object_get_int64(v);

		if (cron_local_text(json_object_get_string(json_object_object_get(o, "time_zone")),
				    us / US_PER_S, local, sizeof(local)) == 0)
			json_object_object_add(o, "next_tick_local", json_object_new_string(local));
	}
	json_object_object_del(o, "next_tick_us");
	json_object_object_del(o, "_every_ms");
	json_object_object_del(o, "_anchor_us");
	if (json_object_object_get_ex(o, "call", &v))
		h_calls_redact(v);
	return o;
}

/* The answer h_calls_admit left in rs, its field and detail moved under "call." (the checks of
 * POST /v1/calls name the instruction's own fields). */
static void prefix_problem(struct resp *rs)
{
	char *text = xstrndup(rs->body != NULL ? rs->body : "", rs->body_len);
	struct json_object *o = json_tokener_parse(text);
	struct json_object *f, *d;

	if (o != NULL && json_object_object_get_ex(o, "field", &f) &&
	    json_object_object_get_ex(o, "detail", &d)) {
		char *field = xasprintf("call.%s", json_object_get_string(f));
		char *detail = xasprintf("call.%s", json_object_get_string(d));

		resp_problem(rs, rs->status, field, "%s", detail);
		free(field);
		free(detail);
	}
	json_object_put(o);
	free(text);
}

/* The fields of a POST /v1/schedules body, checked. Strings borrowed from the document. */
struct sched_in {
	const char *name;
	const char *cron;
	const char *every;	  /* as given, for display */
	int64_t every_ms;	  /* > 0 with every */
	const char *time_zone;	  /* "UTC" by default */
	const char *missed;	  /* "run_once" by default */
	struct json_object *call; /* the instruction */
	struct cron parsed;
	char every_buf[32]; /* every given as a number of seconds, as text */
};

static int bad(struct resp *rs, const char *field, const char *detail)
{
	resp_problem(rs, 400, field, "%s: %s", field, detail);
	return -1;
}

static int read_fields(struct resp *rs, struct json_object *doc, struct sched_in *in)
{
	char err[160];

	memset(in, 0, sizeof(*in));
	in->time_zone = "UTC";
	in->missed = "run_once";
	json_object_object_foreach (doc, k, v) {
		bool is_str = json_object_is_type(v, json_type_string);

		if (strcmp(k, "name") == 0) {
			const char *s = json_object_get_string(v);

			if (!is_str || s[0] == '\0' || strlen(s) > NAME_MAX_BYTES ||
			    !http_value_valid(s, strlen(s)))
				return bad(rs, "name",
					   "must be a string of 1 to 200 bytes without control "
					   "characters");
			in->name = s;
		} else if (strcmp(k, "cron") == 0) {
			if (!is_str)
				return bad(rs, "cron",
					   "must be a string: minute hour day-of-month month "
					   "day-of-week, or @hourly, @daily, ...");
			in->cron = json_object_get_string(v);
			if (cron_parse(&in->parsed, in->cron, err, sizeof(err)) != 0) {
				resp_problem(rs, 400, "cron", "%s%s",
					     strncmp(err, "cron:", 5) == 0 ? "" : "cron: ", err);
				return -1;
			}
		} else if (strcmp(k, "every") == 0) {
			if (call_parse_duration(v, &in->every_ms) != 0)
				return bad(
					rs, "every",
					"must be a duration such as \"90s\", \"15m\", \"1h\" or a "
					"whole number of seconds");
			if (in->every_ms < EVERY_MIN_MS || in->every_ms > EVERY_MAX_MS)
				return bad(rs, "every", "must be from 1s to 366d");
			if (is_str) {
				in->every = json_object_get_string(v);
			} else {
				snprintf(in->every_buf, sizeof(in->every_buf), "%" PRId64 "s",
					 in->every_ms / 1000);
				in->every = in->every_buf;
			}
		} else if (strcmp(k, "time_zone") == 0) {
			if (!is_str || !cron_tz_valid(json_object_get_string(v))) {
				resp_problem(rs, 400, "time_zone",
					     "time_zone: not a time zone of this system's database "
					     "(an IANA name such as \"Europe/Berlin\" or \"UTC\")");
				return -1;
			}
			in->time_zone = json_object_get_string(v);
		} else if (strcmp(k, "missed") == 0) {
			const char *s = is_str ? json_object_get_string(v) : "";

			if (strcmp(s, "run_once") != 0 && strcmp(s, "skip") != 0)
				return bad(rs, "missed", "must be \"run_once\" or \"skip\"");
			in->missed = s;
		} else if (strcmp(k, "call") == 0) {
			if (!json_object_is_type(v, json_type_object))
				return bad(rs, "call",
					   "must be a call instruction object, as POST /v1/calls "
					   "takes");
			in->call = v;
		} else {
			resp_problem(rs, 400, k,
				     "%.100s: unknown field (name, cron, every, time_zone, missed, "
				     "call)",
				     k);
			return -1;
		}
	}
	if (in->cron != NULL && in->every_ms > 0)
		return bad(rs, "every", "give either cron or every, not both");
	if (in->cron == NULL && in->every_ms == 0)
		return bad(rs, "cron",
			   "a schedule needs cron (an expression) or every (an interval)");
	if (in->call == NULL)
		return bad(rs, "call", "the call instruction to make on each tick is required");
	return 0;
}

int h_schedules_post(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who)
{
	const struct call_env env = {&app->cf, &app->np};
	const char *ct = req_param(rq, "CONTENT_TYPE");
	struct json_object *doc = NULL, *row = NULL, *o = NULL;
	struct sched_in in;
	struct call c;
	struct problem p;
	PGresult *res = NULL;
	char id[UUID_LEN];
	char every_ms[24], anchor[24], first[24];
	int64_t now_us = timeparse_now_us(), anchor_us = 0, first_us;

	call_init(&c);
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
		resp_problem(rs, 415, "Content-Type",
			     "Content-Type: send the schedule as application/json");
		goto out;
	}
	if (rq->body_len == 0) {
		resp_problem(rs, 400, "body", "body: a schedule (a JSON object) is required");
		goto out;
	}
	doc = jstrict_parse(rq->body, rq->body_len, (int)app->cf.max_json_depth, &p);
	if (doc == NULL) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	if (!json_object_is_type(doc, json_type_object)) {
		resp_problem(rs, 400, "body", "body: a schedule must be a JSON object");
		goto out;
	}
	if (read_fields(rs, doc, &in) != 0)
		goto out;
	/* The instruction: exactly what POST /v1/calls checks, and who may call it. */
	if (call_from_json(&c, in.call, &env, "call.", &p) != 0) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	if (c.has_delay || c.has_not_before) {
		const char *f = c.has_delay ? "call.delay" : "call.not_before";

		resp_problem(rs, 400, f, "%s: a schedule's call is due at its tick; leave it out",
			     f);
		goto out;
	}
	if (h_calls_admit(rs, app, who, &c) != 0) {
		prefix_problem(rs);
		goto out;
	}
	if (in.cron != NULL) {
		int64_t t;

		if (cron_next(&in.parsed, in.time_zone, now_us / US_PER_S, &t) != 0) {
			resp_problem(rs, 400, "cron", "cron: matches no time in the next 30 years");
			goto out;
		}
		first_us = t * US_PER_S;
	} else {
		anchor_us = now_us - now_us % 1000; /* whole milliseconds: exact in timestamptz */
		first_us = anchor_us + in.every_ms * 1000;
	}
	if (uuid_v7(id) != 0) {
		resp_problem(rs, 500, NULL, "could not make an id");
		goto out;
	}
	row = call_row_json(&c, NULL);
	json_object_object_del(row, "id");
	json_object_object_del(row, "delay_ms");
	snprintf(every_ms, sizeof(every_ms), "%" PRId64, in.every_ms);
	snprintf(anchor, sizeof(anchor), "%" PRId64, anchor_us);
	snprintf(first, sizeof(first), "%" PRId64, first_us);
	{
		const char *params[12] = {
			id,
			who->client,
			in.name,
			in.cron,
			in.cron == NULL ? in.every : NULL,
			in.cron == NULL ? every_ms : NULL,
			in.cron == NULL ? anchor : NULL,
			in.time_zone,
			in.missed,
			json_object_to_json_string_ext(in.call, JSON_C_TO_STRING_PLAIN),
			json_object_to_json_string_ext(row, JSON_C_TO_STRING_PLAIN),
			first,
		};

		res = db_exec(&app->db, Q_SCHED_INSERT, params);
	}
	if (res == NULL || PQntuples(res) != 1) {
		h_db_error(rs, app);
		goto out;
	}
	o = schedule_json(res, 0);
	resp_header(rs, "Location", "%s/v1/schedules/%s",
		    app->cf.public_url[0] != '\0' ? app->cf.public_url : rq->mount, id);
	resp_json(rs, 201, o);
	log_info("schedule created schedule=%s client=%s", id, who->client);
out:
	json_object_put(o);
	json_object_put(row);
	PQclear(res);
	call_cleanup(&c);
	json_object_put(doc);
	return 0;
}

int h_schedules_list(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who)
{
	char *copy = xstrdup(rq->query);
	char *save = NULL;
	char *after = NULL;
	char limit_text[16];
	long limit = H_LIST_DEFAULT;
	PGresult *res = NULL;
	struct json_object *o = NULL, *arr;

	for (char *kv = strtok_r(copy, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		char *val;

		if (eq == NULL)
			eq = kv + strlen(kv);
		val = http_pct_decode(*eq == '=' ? eq + 1 : eq, strlen(*eq == '=' ? eq + 1 : eq));
		*eq = '\0';
		if (val == NULL) {
			resp_problem(rs, 400, kv, "%.100s: malformed percent-encoding", kv);
			goto out;
		}
		if (strcmp(kv, "limit") == 0) {
			bool ok = h_list_limit(rs, val, &limit);

			free(val);
			if (!ok)
				goto out;
		} else if (strcmp(kv, "after") == 0) {
			free(after);
			after = val;
			if (!h_list_after(rs, after, "schedule"))
				goto out;
		} else {
			free(val);
			resp_problem(rs, 400, kv, "%.100s: unknown parameter (limit, after)", kv);
			goto out;
		}
	}
	snprintf(limit_text, sizeof(limit_text), "%ld", limit);
	res = db_exec(&app->db, Q_SCHED_LIST, (const char *[]){h_scope(who), after, limit_text});
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	arr = json_object_new_array();
	for (int r = 0; r < PQntuples(res); r++)
		json_object_array_add(arr, schedule_json(res, r));
	o = h_list_page("schedules", arr, res, limit);
	resp_json(rs, 200, o);
out:
	json_object_put(o);
	PQclear(res);
	free(after);
	free(copy);
	return 0;
}

/* Answers status with the schedule and its latest ticks. */
static void answer_schedule(struct resp *rs, struct app *app, const PGresult *res, int status)
{
	struct json_object *o = schedule_json(res, 0);
	struct json_object *arr = json_object_new_array();
	PGresult *ticks = db_exec(&app->db, Q_SCHED_TICKS, (const char *[]){PQgetvalue(res, 0, 0)});

	if (ticks == NULL) {
		json_object_put(arr);
		json_object_put(o);
		h_db_error(rs, app);
		return;
	}
	for (int r = 0; r < PQntuples(ticks); r++)
		json_object_array_add(arr, db_row_json(ticks, r));
	json_object_object_add(o, "ticks", arr);
	resp_json(rs, status, o);
	PQclear(ticks);
	json_object_put(o);
}

int h_schedule_get(const struct req *rq, struct resp *rs, struct app *app,
		   const struct principal *who, const char *id)
{
	PGresult *res;

	(void)rq;
	res = h_exec_id(rs, app, who, Q_SCHED_GET, id, "schedule");
	if (res != NULL)
		answer_schedule(rs, app, res, 200);
	PQclear(res);
	return 0;
}

int h_schedule_delete(const struct req *rq, struct resp *rs, struct app *app,
		      const struct principal *who, const char *id)
{
	PGresult *res;

	(void)rq;
	res = h_exec_id(rs, app, who, Q_SCHED_DELETE, id, "schedule");
	if (res != NULL) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "deleted", json_object_new_boolean(true));
		resp_json(rs, 200, o);
		json_object_put(o);
		log_info("schedule deleted schedule=%s", id);
	}
	PQclear(res);
	return 0;
}

/* The next tick after now of the schedule in row 0 of a Q_SCHED_GET result, in us. */
static int next_after_now(const PGresult *res, int64_t *next_us)
{
	struct schedule_spec spec;
	int cron = PQfnumber(res, "cron"), ev = PQfnumber(res, "_every_ms"),
	    an = PQfnumber(res, "_anchor_us"), tz = PQfnumber(res, "time_zone");

	if (schedule_spec_init(&spec, PQgetisnull(res, 0, cron) ? NULL : PQgetvalue(res, 0, cron),
			       PQgetisnull(res, 0, ev) ? NULL : PQgetvalue(res, 0, ev),
			       PQgetisnull(res, 0, an) ? NULL : PQgetvalue(res, 0, an),
			       PQgetvalue(res, 0, tz)) != 0)
		return -1;
	return schedule_tick_after(&spec, timeparse_now_us(), next_us);
}

int h_schedule_pause(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who, const char *id, bool pause)
{
	PGresult *res = NULL, *got = NULL;
	int64_t next_us;
	char next[24];

	(void)rq;
	if (pause) {
		res = h_exec_id(rs, app, who, Q_SCHED_PAUSE, id, "schedule");
		if (res != NULL)
			answer_schedule(rs, app, res, 200);
		PQclear(res);
		return 0;
	}
	got = h_exec_id(rs, app, who, Q_SCHED_GET, id, "schedule");
	if (got == NULL)
		goto out;
	if (strcmp(PQgetvalue(got, 0, PQfnumber(got, "state")), "active") == 0) {
		answer_schedule(rs, app, got, 200); /* resumed already: as it is */
		goto out;
	}
	/* From now on: the first tick after now, none for the time it was paused. */
	if (next_after_now(got, &next_us) != 0) {
		resp_problem(rs, 409, "cron", "cron: the schedule has no tick left to resume to");
		goto out;
	}
	snprintf(next, sizeof(next), "%" PRId64, next_us);
	res = db_exec(&app->db, Q_SCHED_RESUME, (const char *[]){id, h_scope(who), next});
	if (res == NULL && app->db.error != DB_LOST) {
		h_db_error(rs, app);
		goto out;
	}
	if (res != NULL && PQntuples(res) == 1) {
		answer_schedule(rs, app, res, 200);
		log_info("schedule resumed schedule=%s", id);
		goto out;
	}
	/* Resumed or deleted meanwhile (or the answer was lost): show what is there now. */
	PQclear(res);
	res = NULL;
	h_schedule_get(rq, rs, app, who, id);
out:
	PQclear(res);
	PQclear(got);
	return 0;
}

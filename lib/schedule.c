/* schedule: the tick arithmetic of schedules and the drain-cycle step that fires them. */
#include "schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "uuid.h"

#define US_PER_S 1000000LL
/* Missed ticks are counted one by one up to this many (each count is a cron_next, which loads
 * the zone), then the count jumps to two days before now and becomes a lower bound. */
#define COUNT_CAP 10000
#define FIRE_BATCH 16	/* schedules per transaction */
#define RECHECK_MS 1000 /* look again at least this often (new and resumed schedules) */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int schedule_spec_init(struct schedule_spec *s, const char *cron, const char *every_ms,
		       const char *anchor_us, const char *tz)
{
	char err[160];

	memset(s, 0, sizeof(*s));
	s->tz = tz;
	if (cron != NULL) {
		s->is_cron = true;
		if (cron_parse(&s->cron, cron, err, sizeof(err)) != 0) {
			log_err("schedule: stored cron does not parse: %s", err);
			return -1;
		}
		return 0;
	}
	if (every_ms == NULL || anchor_us == NULL)
		return -1;
	s->every_us = strtoll(every_ms, NULL, 10) * 1000;
	s->anchor_us = strtoll(anchor_us, NULL, 10);
	return s->every_us > 0 ? 0 : -1;
}

int schedule_tick_after(const struct schedule_spec *s, int64_t t_us, int64_t *tick_us)
{
	int64_t k, next;

	if (s->is_cron) {
		if (cron_next(&s->cron, s->tz, floor_div(t_us, US_PER_S), &next) != 0)
			return -1;
		*tick_us = next * US_PER_S;
		return 0;
	}
	k = floor_div(t_us - s->anchor_us, s->every_us) + 1;
	if (k < 1)
		k = 1;
	*tick_us = s->anchor_us + k * s->every_us;
	return 0;
}

int schedule_plan(const struct schedule_spec *s, bool skip, int64_t next_us, int64_t now_us,
		  struct schedule_plan *p)
{
	int64_t first, latest, count = 1;

	memset(p, 0, sizeof(*p));
	if (schedule_tick_after(s, next_us - 1, &first) != 0)
		return -1;
	if (first > now_us) { /* nothing due: next_us was only a lower bound */
		p->next_us = first;
		return 0;
	}
	latest = first;
	if (!s->is_cron) {
		int64_t k_first = floor_div(first - s->anchor_us, s->every_us);
		int64_t k_now = floor_div(now_us - s->anchor_us, s->every_us);

		count = k_now - k_first + 1;
		latest = s->anchor_us + k_now * s->every_us;
	} else {
		bool jumped = false;

		for (;;) {
			int64_t nx;

			if (schedule_tick_after(s, latest, &nx) != 0 || nx > now_us)
				break;
			latest = nx;
			if (++count >= COUNT_CAP && !jumped) {
				/* Long downtime: go on from two days before now (the count of
				 * missed ticks becomes a lower bound). */
				jumped = true;
				if (schedule_tick_after(s, now_us - 2 * 86400 * US_PER_S, &nx) ==
					    0 &&
				    nx > latest && nx <= now_us)
					latest = nx;
			}
		}
	}
	if (schedule_tick_after(s, latest, &p->next_us) != 0)
		p->next_us = INT64_MAX; /* never again: stored as far future */
	if (count == 1 || !skip) {
		p->fire = true;
		p->tick_us = latest;
		p->missed = count - 1;
	} else {
		p->missed = count;
	}
	return 0;
}

/* ---- the drain-cycle step ---- */

/* Columns of Q_SCHED_DUE. */
enum due_col {
	DUE_ID,
	DUE_CLIENT,
	DUE_CRON,
	DUE_EVERY_MS,
	DUE_ANCHOR_US,
	DUE_TZ,
	DUE_MISSED,
	DUE_NEXT_US,
	DUE_CALL_ROW,
	DUE_NOW_US,
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When this thread looks at schedules next (monotonic ms); 0 = at once. One value per thread:
 * a thread runs one drain cycle at a time (the drainer's drain loops, the handler's threads). */
static _Thread_local int64_t check_at_ms;

static const char *val(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Inserts the call of one tick: the stored row with a fresh id and not_before = the tick. */
static int insert_call(struct db *db, const PGresult *due, int r, int64_t tick_us,
		       char id[UUID_LEN])
{
	struct json_object *row = json_tokener_parse(PQgetvalue(due, r, DUE_CALL_ROW));
	struct json_object *rows = NULL;
	PGresult *res = NULL;
	int rc = -1;

	if (row == NULL || !json_object_is_type(row, json_type_object)) {
		log_err("schedule %s: the stored call does not parse", PQgetvalue(due, r, DUE_ID));
		goto out;
	}
	if (uuid_v7(id) != 0)
		goto out;
	json_object_object_del(row, "delay_ms");
	json_object_object_add(row, "id", json_object_new_string(id));
	json_object_object_add(row, "not_before_us", json_object_new_int64(tick_us));
	json_object_object_add(row, "client",
			       json_object_new_string(PQgetvalue(due, r, DUE_CLIENT)));
	rows = json_object_new_array();
	json_object_array_add(rows, row);
	row = NULL;
	res = db_exec(db, Q_CALLS_INSERT,
		      (const char *[]){json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN),
				       "[]"});
	if (res == NULL || PQntuples(res) != 1)
		goto out;
	rc = 0;
out:
	PQclear(res);
	json_object_put(rows);
	json_object_put(row);
	return rc;
}

/* One due schedule: plan, insert the call, record the tick and the next one. Returns the
 * number of calls made (0 or 1), or -1. */
static int fire_one(struct db *db, const char *drainer, const PGresult *due, int r)
{
	struct schedule_spec spec;
	struct schedule_plan plan;
	char id[UUID_LEN] = "";
	char tick[24], missed[24], next[24];
	int64_t now_us = strtoll(PQgetvalue(due, r, DUE_NOW_US), NULL, 10);
	int64_t next_us = strtoll(PQgetvalue(due, r, DUE_NEXT_US), NULL, 10);
	PGresult *res;
	int made;

	if (schedule_spec_init(&spec, val(due, r, DUE_CRON), val(due, r, DUE_EVERY_MS),
			       val(due, r, DUE_ANCHOR_US), val(due, r, DUE_TZ)) != 0 ||
	    schedule_plan(&spec, strcmp(PQgetvalue(due, r, DUE_MISSED), "skip") == 0, next_us,
			  now_us, &plan) != 0) {
		/* Cannot tick (a cron that never matches again): park it far ahead. */
		plan.fire = false;
		plan.missed = 0;
		plan.next_us = INT64_MAX;
	}
	if (plan.next_us > 32503680000LL * US_PER_S) /* 3000-01-01: "never" */
		plan.next_us = 32503680000LL * US_PER_S;
	if (plan.fire && insert_call(db, due, r, plan.tick_us, id) != 0)
		return -1;
	snprintf(tick, sizeof(tick), "%" PRId64, plan.tick_us);
	snprintf(missed, sizeof(missed), "%" PRId64, plan.missed);
	snprintf(next, sizeof(next), "%" PRId64, plan.next_us);
	res = db_exec(db, Q_SCHED_FIRED,
		      (const char *[]){PQgetvalue(due, r, DUE_ID), plan.fire ? tick : NULL,
				       plan.fire ? id : NULL, missed, next, drainer});
	if (res == NULL)
		return -1;
	made = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (plan.fire && made == 1)
		log_info("schedule fired schedule=%s call=%s missed=%" PRId64,
			 PQgetvalue(due, r, DUE_ID), id, plan.missed);
	else if (plan.fire)
		log_warn("schedule %s: tick already fired; its call was not made",
			 PQgetvalue(due, r, DUE_ID));
	else if (plan.missed > 0)
		log_info("schedule skipped schedule=%s missed=%" PRId64, PQgetvalue(due, r, DUE_ID),
			 plan.missed);
	return made;
}

/* One transaction over up to FIRE_BATCH due schedules. Returns the calls made and sets *more
 * when the batch was full, or -1 (rolled back). */
static int fire_batch(struct db *db, const char *drainer, bool *more)
{
	char nb[16];
	PGresult *res = NULL, *due = NULL;
	int made = 0, rows, bad = -1;
	bool query_failed;

	*more = false;
	res = db_exec(db, Q_TX_BEGIN, NULL);
	if (res == NULL)
		return -1;
	PQclear(res);
	snprintf(nb, sizeof(nb), "%d", FIRE_BATCH);
	due = db_exec(db, Q_SCHED_DUE, (const char *[]){nb});
	if (due == NULL)
		goto fail;
	rows = PQntuples(due);
	for (int r = 0; r < rows; r++) {
		int n = fire_one(db, drainer, due, r);

		if (n < 0) {
			bad = r;
			goto fail;
		}
		made += n;
	}
	PQclear(due);
	due = NULL;
	res = db_exec(db, Q_TX_COMMIT, NULL);
	if (res == NULL)
		return -1; /* commit unknown: the tick's primary key keeps a second try single */
	PQclear(res);
	*more = rows == FIRE_BATCH;
	return made;
fail:
	query_failed = db->error == DB_QUERY;
	PQclear(db_exec(db, Q_TX_ROLLBACK, NULL));
	if (bad >= 0 && query_failed) {
		/* This schedule's statement fails (not the connection): put it off a minute so
		 * that it does not hold up the schedules behind it. */
		log_err("schedule %s: its tick could not be recorded; tried again in a minute",
			PQgetvalue(due, bad, DUE_ID));
		PQclear(db_exec(db, Q_SCHED_DEFER, (const char *[]){PQgetvalue(due, bad, DUE_ID)}));
	}
	PQclear(due);
	return -1;
}

/* Milliseconds until the earliest next tick (<= 0: due), RECHECK_MS when there is none or
 * it is further off, or -1 with *failed set. */
static int64_t until_next(struct db *db, bool *failed)
{
	PGresult *res = db_exec(db, Q_SCHED_NEXT, NULL);
	int64_t ms = RECHECK_MS;

	*failed = res == NULL;
	if (res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ms > RECHECK_MS ? RECHECK_MS : ms;
}

int schedule_fire(struct db *db, const char *drainer)
{
	int made = 0;
	bool more = true, failed;
	int64_t wait_ms;

	if (mono_ms() < check_at_ms)
		return 0;
	/* Nothing due: this one indexed read, at most once a second. */
	wait_ms = until_next(db, &failed);
	for (int i = 0; !failed && wait_ms <= 0 && more && i < 64; i++) {
		int n = fire_batch(db, drainer, &more);

		if (n < 0) {
			check_at_ms = mono_ms() + RECHECK_MS;
			return -1;
		}
		made += n;
		if (!more)
			wait_ms = until_next(db, &failed);
	}
	if (failed) {
		check_at_ms = mono_ms() + RECHECK_MS;
		return -1;
	}
	check_at_ms = mono_ms() + (wait_ms > 0 ? wait_ms : 0);
	return made;
}

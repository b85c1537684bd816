/* schedule: recurring calls. Which tick of a schedule is due and what the missed-tick policy
 * makes of it (pure), and the drain cycle's step that turns due ticks into calls. */
#ifndef AG_SCHEDULE_H
#define AG_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "cron.h"
#include "db.h"
#include "xalloc.h"

/* When a schedule ticks: a cron expression on a zone's wall clock, or a fixed interval. */
struct schedule_spec {
	bool is_cron;
	struct cron cron;
	const char *tz;	   /* borrowed; cron only; NULL = UTC */
	int64_t every_us;  /* interval: ticks are anchor_us + k * every_us, k >= 1 */
	int64_t anchor_us; /* interval: the creation time */
};

/* Fills s from a schedule row's text: cron (or NULL) and every_ms/anchor_us (decimal, used when
 * cron is NULL). tz is borrowed. Returns 0, or -1 when the stored values do not parse. */
int schedule_spec_init(struct schedule_spec *s, const char *cron, const char *every_ms,
		       const char *anchor_us, const char *tz) MUSTCHECK;

/* The first tick strictly after t_us (microseconds since the epoch). Returns 0, or -1 when the
 * schedule never ticks again. */
int schedule_tick_after(const struct schedule_spec *s, int64_t t_us, int64_t *tick_us) MUSTCHECK;

/* What to do with a schedule whose stored next tick is next_us, at now_us. The ticks due are
 * those from next_us (the first tick at or after it) up to now_us; a tick counts as missed when
 * the tick after it is due too. With one tick due, it fires. With more: run_once (skip false)
 * fires the latest and counts the others as missed; skip fires none and counts them all. */
struct schedule_plan {
	bool fire;
	int64_t tick_us; /* the tick that fires */
	int64_t missed;	 /* ticks passed over */
	int64_t next_us; /* the next tick to store */
};
int schedule_plan(const struct schedule_spec *s, bool skip, int64_t next_us, int64_t now_us,
		  struct schedule_plan *p) MUSTCHECK;

/* The drain cycle's step (lib/drain.c calls it before each claim): in one short transaction per
 * batch, locks the due schedules (FOR UPDATE SKIP LOCKED, so drainers never wait on each other),
 * inserts each fired tick's call with Q_CALLS_INSERT (not_before = the tick), records the tick in
 * schedule_ticks (primary key (schedule_id, tick_at): one call per tick whatever runs), and
 * stores the next tick. Nothing is asked of the database while the earliest next tick (from the
 * previous look, at most a second old) lies ahead. drainer names it in schedule_ticks.
 * Returns the number of calls made, or -1 (logged; rolled back, tried again a second later). */
int schedule_fire(struct db *db, const char *drainer);

#endif

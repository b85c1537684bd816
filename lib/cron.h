/* cron: 5-field cron expressions and their ticks on a time zone's wall clock (libc's tz code). */
#ifndef AG_CRON_H
#define AG_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xalloc.h"

/* A parsed expression: one bit per allowed value of each field. */
struct cron {
	uint64_t minute; /* bits 0..59 */
	uint32_t hour;	 /* bits 0..23 */
	uint32_t dom;	 /* bits 1..31 */
	uint16_t month;	 /* bits 1..12 */
	uint8_t dow;	 /* bits 0..6, 0 = Sunday */
	bool dom_star;	 /* the day-of-month field starts with '*' (Vixie cron's DOM_STAR) */
	bool dow_star;	 /* the day-of-week field starts with '*' */
	bool wild;	 /* the minute or hour field starts with '*': DST rule of cron_next */
};

/* Parses "minute hour day-of-month month day-of-week" (lists "1,5", ranges "1-5", steps "*\/15"
 * "10-50/10" "5/15", names jan..dec and sun..sat, 7 = Sunday) or a macro (@yearly, @annually,
 * @monthly, @weekly, @daily, @midnight, @hourly). Returns 0, or -1 with a sentence in err that
 * starts with the field ("minute: 61 is out of range 0-59"). */
int cron_parse(struct cron *c, const char *expr, char *err, size_t errsz) MUSTCHECK;

/* The first tick strictly after `after` (Unix seconds), on the wall clock of time zone tz (an
 * IANA name; NULL = UTC). Day fields follow Vixie cron: when both are restricted a day matching
 * either runs. Across DST changes:
 *  - a wall time the zone skips (spring forward) runs once, at the first instant after the gap,
 *    unless the minute or hour field starts with '*' (those run on the new time, as in Vixie);
 *  - a wall time the zone repeats (fall back) runs once, at its first occurrence, unless the
 *    minute or hour field starts with '*' (those run in both passes, as elapsed time does).
 * Sets TZ for the computation and restores it (single-threaded callers). Returns 0, or -1 when
 * the expression matches no time in the next 30 years (e.g. "0 0 30 2 *"). */
int cron_next(const struct cron *c, const char *tz, int64_t after, int64_t *next) MUSTCHECK;

/* True when tz names a time zone of the system's database (TZDIR or /usr/share/zoneinfo): an
 * IANA name of letters, digits, '_', '-', '+' and '/' separated parts, no "..", no leading '/',
 * naming a TZif file. */
bool cron_tz_valid(const char *tz);

/* t (Unix seconds) as RFC 3339 in zone tz with its offset ("2026-03-29T03:00:00+02:00"; "Z" for
 * UTC itself). Returns 0, or -1 when out of range. */
int cron_local_text(const char *tz, int64_t t, char *out, size_t outsz);

#endif

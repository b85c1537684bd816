/* test_cron: cron expressions parsed and refused, next ticks across month and year ends, leap
 * days, the day-of-month / day-of-week rule, DST in real zones, and the missed-tick plan. */
#define _DEFAULT_SOURCE /* timegm, setenv */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"
#include "schedule.h"
#include "timeparse.h"

/* Unix seconds of an RFC 3339 time. */
static int64_t at(const char *s)
{
	int64_t us = 0;

	if (timeparse_time(s, &us) != 0)
		fail_msg("bad time in test: %s", s);
	return us / 1000000;
}

/* The next tick of expr after `after` in tz, as local RFC 3339 text in out. */
static void next_text(const char *expr, const char *tz, const char *after, char *out, size_t n)
{
	struct cron c;
	char err[160];
	int64_t t = 0;

	if (cron_parse(&c, expr, err, sizeof(err)) != 0)
		fail_msg("%s: %s", expr, err);
	assert_int_equal(cron_next(&c, tz, at(after), &t), 0);
	assert_int_equal(cron_local_text(tz, t, out, n), 0);
}

/* The ticks of expr from `after` on: want[] in local RFC 3339. */
static void expect_ticks(const char *expr, const char *tz, const char *after,
			 const char *const *want, size_t n)
{
	struct cron c;
	char err[160], got[64];
	int64_t t = at(after);

	assert_int_equal(cron_parse(&c, expr, err, sizeof(err)), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(cron_next(&c, tz, t, &t), 0);
		assert_int_equal(cron_local_text(tz, t, got, sizeof(got)), 0);
		if (strcmp(got, want[i]) != 0)
			fail_msg("%s in %s, tick %zu: got %s, want %s", expr, tz, i, got, want[i]);
	}
}

static void test_parse_valid(void **state)
{
	static const char *const ok[] = {
		"* * * * *", "0 0 1 1 *", "*/15 * * * *", "0-59/10 0-23/2 1-31/3 1-12/4 0-6/2",
		"5/15 * * * *", "1,2,3 4,5 6,7 8,9 1,2", "0 12 * JAN-mar mon-FRI",
		"0 0 * * 7", "0 0 * * sun", "  0   0  *  *  *  ", "@hourly", "@daily", "@midnight",
		"@weekly", "@monthly", "@yearly", "@annually", "59 23 31 12 6",
	};
	struct cron c;
	char err[160];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (cron_parse(&c, ok[i], err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", ok[i], err);
	assert_int_equal(cron_parse(&c, "0 0 * * 7", err, sizeof(err)), 0);
	assert_int_equal(c.dow, 1); /* 7 is Sunday, bit 0 */
	assert_int_equal(cron_parse(&c, "*/20 * * * *", err, sizeof(err)), 0);
	assert_true(c.minute == ((1ULL << 0) | (1ULL << 20) | (1ULL << 40)));
	assert_true(c.wild);
	assert_int_equal(cron_parse(&c, "5/20 1 * * *", err, sizeof(err)), 0);
	assert_true(c.minute == ((1ULL << 5) | (1ULL << 25) | (1ULL << 45)));
	assert_false(c.wild);
	assert_int_equal(cron_parse(&c, "0 0 * feb,Dec *", err, sizeof(err)), 0);
	assert_int_equal(c.month, (1 << 2) | (1 << 12));
}

static void test_parse_invalid(void **state)
{
	static const struct {
		const char *expr, *starts;
	} bad[] = {
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"* 24 * * *", "hour: 24 is out of range 0-23"},
		{"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
		{"* * 32 * *", "day-of-month:"},
		{"* * * 13 *", "month: 13 is out of range 1-12"},
		{"* * * * 8", "day-of-week: 8 is out of range 0-7"},
		{"* * * foo *", "month:"},
		{"* * * * funday", "day-of-week:"},
		{"*/0 * * * *", "minute: the step 0"},
		{"*/61 * * * *", "minute: the step 61"},
		{"5-1 * * * *", "minute: the range 5-1 runs backwards"},
		{"1,,2 * * * *", "minute:"},
		{"1, * * * *", "minute:"},
		{"* * * *", "cron: 4 fields"},
		{"* * * * * *", "cron: more than 5 fields"},
		{"", "cron: 0 fields"},
		{"@reboot", "cron: unknown macro"},
		{"* jan * * *", "hour:"},
		{"1-2-3 * * * *", "minute:"},
		{"*/ * * * *", "minute: a step must be a number"},
		{"-1 * * * *", "minute:"},
	};
	struct cron c;
	char err[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (cron_parse(&c, bad[i].expr, err, sizeof(err)) == 0)
			fail_msg("\"%s\" accepted", bad[i].expr);
		if (strncmp(err, bad[i].starts, strlen(bad[i].starts)) != 0)
			fail_msg("\"%s\": \"%s\" does not start with \"%s\"", bad[i].expr, err,
				 bad[i].starts);
	}
}

static void test_next_utc(void **state)
{
	static const struct {
		const char *expr, *after, *want;
	} cases[] = {
		{"* * * * *", "2026-11-23T19:00:00Z", "2026-11-23T19:01:00Z"},
		{"* * * * *", "2026-11-23T19:00:30Z", "2026-11-23T19:01:00Z"},
		{"*/15 * * * *", "2026-11-23T19:14:59Z", "2026-11-23T19:15:00Z"},
		{"0 0 * * *", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"}, /* year end */
		{"0 0 1 * *", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"}, /* month end */
		{"0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"}, /* no 31 April */
		{"0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"}, /* Feb 29 */
		{"0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"}, /* 2100 no leap */
		{"30 12 * * 1", "2026-11-23T12:30:00Z", "2026-11-30T12:30:00Z"}, /* Monday */
		{"0 0 * * 0", "2026-11-23T00:00:00Z", "2026-11-29T00:00:00Z"}, /* Sunday */
		{"0 0 * * 7", "2026-11-23T00:00:00Z", "2026-11-29T00:00:00Z"},
		{"@yearly", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"@hourly", "2026-11-23T19:00:00Z", "2026-11-23T20:00:00Z"},
		{"59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
		/* Vixie rule: both day fields restricted -> either matches (the 13th or a Friday) */
		{"0 0 13 * 5", "2026-11-01T00:00:00Z", "2026-11-06T00:00:00Z"}, /* Fri 6th */
		{"0 0 13 * 5", "2026-11-07T00:00:00Z", "2026-11-13T00:00:00Z"}, /* 13th (Fri) */
		{"0 0 1 * 1", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z"}, /* Mon 30th */
		{"0 0 1 * 1", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"}, /* the 1st (Tue) */
		/* a day field starting with '*' (even "*\/1") -> both must match: Mondays */
		{"0 0 */1 * 1", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z"},
		{"0 0 1 * *", "2026-11-24T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"0 0 1-7 * *", "2026-11-24T00:00:00Z", "2026-12-01T00:00:00Z"},
	};
	char got[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		next_text(cases[i].expr, "UTC", cases[i].after, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s after %s: got %s, want %s", cases[i].expr, cases[i].after, got,
				 cases[i].want);
	}
}

static void test_never(void **state)
{
	struct cron c;
	char err[160];
	int64_t t;

	(void)state;
	assert_int_equal(cron_parse(&c, "0 0 30 2 *", err, sizeof(err)), 0);
	assert_int_equal(cron_next(&c, "UTC", at("2026-01-01T00:00:00Z"), &t), -1);
	assert_int_equal(cron_parse(&c, "0 0 31 4,6,9,11 *", err, sizeof(err)), 0);
	assert_int_equal(cron_next(&c, "Europe/Berlin", at("2026-01-01T00:00:00Z"), &t), -1);
}

static void test_zones_plain(void **state)
{
	char got[64];

	(void)state;
	next_text("30 9 * * *", "Asia/Kolkata", "2026-11-24T04:00:00Z", got, sizeof(got));
	assert_string_equal(got, "2026-11-25T09:30:00+05:30");
	next_text("0 9 * * *", "Asia/Kolkata", "2026-11-24T03:00:00Z", got, sizeof(got));
	assert_string_equal(got, "2026-11-24T09:00:00+05:30"); /* 03:30Z */
	next_text("0 0 * * *", "America/St_Johns", "2026-11-24T00:00:00Z", got, sizeof(got));
	assert_string_equal(got, "2026-11-24T00:00:00-03:30"); /* 03:30Z */
	next_text("0 0 1 1 *", "Pacific/Kiritimati", "2026-12-31T09:00:00Z", got, sizeof(got));
	assert_string_equal(got, "2027-01-01T00:00:00+14:00");
}

/* Europe/Berlin 2026: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET. */
static void test_dst_berlin(void **state)
{
	static const char *const spring_fixed[] = {
		"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", /* 02:30 missing */
		"2026-03-30T02:30:00+02:00"};
	static const char *const fall_fixed[] = {
		"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", /* first only */
		"2026-10-26T02:30:00+01:00"};
	static const char *const spring_quarter[] = {
		/* four missing wall times (02:00..02:45) run once, at 03:00 */
		"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"};
	static const char *const spring_quarter_wild[] = {
		/* the same times with '*' in the minute field run on the new time: none */
		"2026-03-29T01:45:00+01:00", "2026-03-30T01:00:00+02:00"};
	static const char *const spring_wild[] = {
		"2026-03-29T01:58:00+01:00", "2026-03-29T01:59:00+01:00",
		"2026-03-29T03:00:00+02:00", "2026-03-29T03:01:00+02:00"};
	static const char *const fall_wild[] = {
		"2026-10-25T02:58:00+02:00", "2026-10-25T02:59:00+02:00",
		"2026-10-25T02:00:00+01:00", "2026-10-25T02:01:00+01:00"};
	static const char *const fall_hourly[] = {
		"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
		"2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"};
	static const char *const fall_twice_fixed[] = {
		/* minute 30 of hours 1-3: the repeated 02:30 runs once */
		"2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00",
		"2026-10-25T03:30:00+01:00"};

	(void)state;
	expect_ticks("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", spring_fixed, 3);
	expect_ticks("30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z", fall_fixed, 3);
	expect_ticks("0,15,30,45 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z",
		     spring_quarter, 2);
	expect_ticks("*/15 1-2 * * *", "Europe/Berlin", "2026-03-29T00:30:00Z",
		     spring_quarter_wild, 2);
	expect_ticks("* * * * *", "Europe/Berlin", "2026-03-29T00:57:00Z", spring_wild, 4);
	expect_ticks("* * * * *", "Europe/Berlin", "2026-10-25T00:57:00Z", fall_wild, 4);
	expect_ticks("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00Z", fall_hourly, 4);
	expect_ticks("30 1-3 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", fall_twice_fixed,
		     3);
}

/* America/New_York 2026: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST. */
static void test_dst_new_york(void **state)
{
	static const char *const spring[] = {
		"2026-03-07T02:15:00-05:00", "2026-03-08T03:00:00-04:00",
		"2026-03-09T02:15:00-04:00"};
	static const char *const fall[] = {
		"2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", /* not again at -05:00 */
		"2026-11-02T01:30:00-05:00"};
	static const char *const fall_wild[] = {
		"2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00",
		"2026-11-01T01:15:00-05:00"};

	(void)state;
	expect_ticks("15 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", spring, 3);
	expect_ticks("30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", fall, 3);
	expect_ticks("*/15 * * * *", "America/New_York", "2026-11-01T05:30:00Z", fall_wild, 3);
}

static void test_tz_valid(void **state)
{
	static const char *const good[] = {"UTC", "Europe/Berlin", "America/New_York",
					   "Asia/Kolkata", "America/Argentina/Buenos_Aires",
					   "Etc/GMT+5"};
	static const char *const bad[] = {"", "Nowhere/City", "/etc/passwd", "../../etc/passwd",
					  "Europe/../UTC", "Europe/", "Europe//Berlin",
					  "Europe/Berlin ", "Europe\\Berlin", "Europe"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!cron_tz_valid(good[i]))
			fail_msg("%s refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cron_tz_valid(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
}

/* TZ of the process is restored after a computation. */
static void test_tz_restored(void **state)
{
	char got[64];

	(void)state;
	unsetenv("TZ");
	next_text("0 0 * * *", "Asia/Kolkata", "2026-11-24T00:00:00Z", got, sizeof(got));
	assert_null(getenv("TZ"));
	setenv("TZ", "America/New_York", 1);
	next_text("0 0 * * *", "Asia/Kolkata", "2026-11-24T00:00:00Z", got, sizeof(got));
	assert_string_equal(getenv("TZ"), "America/New_York");
	unsetenv("TZ");
}

#define S(x) ((int64_t)(x) * 1000000)

static void test_plan_interval(void **state)
{
	struct schedule_spec s = {.every_us = S(60), .anchor_us = S(1000)};
	struct schedule_plan p;
	int64_t t;

	(void)state;
	assert_int_equal(schedule_tick_after(&s, S(1000), &t), 0);
	assert_true(t == S(1060));
	assert_int_equal(schedule_tick_after(&s, S(500), &t), 0);
	assert_true(t == S(1060)); /* never before the first */
	assert_int_equal(schedule_tick_after(&s, S(1119), &t), 0);
	assert_true(t == S(1120));
	/* not due yet */
	assert_int_equal(schedule_plan(&s, false, S(1060), S(1059), &p), 0);
	assert_false(p.fire);
	assert_true(p.next_us == S(1060));
	/* one due: fires under either policy */
	assert_int_equal(schedule_plan(&s, true, S(1060), S(1061), &p), 0);
	assert_true(p.fire && p.tick_us == S(1060) && p.missed == 0 && p.next_us == S(1120));
	/* four due (t = 1060, 1120, 1180, 1240): run_once fires the latest */
	assert_int_equal(schedule_plan(&s, false, S(1060), S(1250), &p), 0);
	assert_true(p.fire && p.tick_us == S(1240) && p.missed == 3 && p.next_us == S(1300));
	/* skip: none */
	assert_int_equal(schedule_plan(&s, true, S(1060), S(1250), &p), 0);
	assert_true(!p.fire && p.missed == 4 && p.next_us == S(1300));
	/* a next tick set by hand off the grid is a lower bound */
	assert_int_equal(schedule_plan(&s, false, S(1061), S(1125), &p), 0);
	assert_true(p.fire && p.tick_us == S(1120) && p.missed == 0);
	assert_int_equal(schedule_plan(&s, false, S(1121), S(1125), &p), 0);
	assert_true(!p.fire && p.next_us == S(1180));
}

static void test_plan_cron(void **state)
{
	struct schedule_spec s = {.is_cron = true, .tz = "Asia/Kolkata"};
	struct schedule_plan p;
	char err[160];
	int64_t base = at("2026-11-24T00:00:30Z");

	(void)state;
	assert_int_equal(cron_parse(&s.cron, "* * * * *", err, sizeof(err)), 0);
	/* 3.5 minutes behind: ticks at +0:30.. base-180, -120, -60, 0 (whole minutes) */
	assert_int_equal(schedule_plan(&s, false, S(base - 210), S(base), &p), 0);
	assert_true(p.fire && p.tick_us == S(base - 30) && p.missed == 3);
	assert_true(p.next_us == S(base + 30));
	assert_int_equal(schedule_plan(&s, true, S(base - 210), S(base), &p), 0);
	assert_true(!p.fire && p.missed == 4 && p.next_us == S(base + 30));
	/* five days behind, every minute: one call, 7200 missed */
	assert_int_equal(schedule_plan(&s, false, S(base - 30 - 5 * 86400), S(base), &p), 0);
	assert_true(p.fire && p.tick_us == S(base - 30) && p.missed == 5 * 1440);
	/* a year behind: still one call for the latest tick; the count is a lower bound */
	assert_int_equal(schedule_plan(&s, false, S(base - 30 - 365 * 86400), S(base), &p), 0);
	assert_true(p.fire && p.tick_us == S(base - 30) && p.missed >= 10000);
	assert_true(p.next_us == S(base + 30));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),   cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_next_utc),      cmocka_unit_test(test_never),
		cmocka_unit_test(test_zones_plain),   cmocka_unit_test(test_dst_berlin),
		cmocka_unit_test(test_dst_new_york),  cmocka_unit_test(test_tz_valid),
		cmocka_unit_test(test_tz_restored),   cmocka_unit_test(test_plan_interval),
		cmocka_unit_test(test_plan_cron),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

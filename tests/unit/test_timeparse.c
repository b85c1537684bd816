/* test_timeparse: the duration and time spellings of the API, accepted and refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "timeparse.h"

#define T_2026_11_23_19 1795460400LL /* 2026-11-23T19:00:00Z in Unix seconds */
#define US(s) ((int64_t)(s) * 1000000)

static void test_duration_valid(void **state)
{
	static const struct {
		const char *in;
		int64_t ms;
	} cases[] = {
		{ "90", 90000 },
		{ "0", 0 },
		{ "90s", 90000 },
		{ "0s", 0 },
		{ "15m", 900000 },
		{ "2h", 7200000 },
		{ "1d", 86400000 },
		{ "500ms", 500 },
		{ "1h30m", 5400000 },
		{ "1m30s", 90000 },
		{ "1s500ms", 1500 },
		{ "1d2h3m4s5ms", 86400000 + 7200000 + 180000 + 4000 + 5 },
		{ "007s", 7000 },
		{ "9223372036854775", 9223372036854775000 },  /* largest bare seconds */
		{ "9223372036854775s", 9223372036854775000 }, /* largest seconds with unit */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -42;

		if (timeparse_duration(cases[i].in, &ms) != 0)
			fail_msg("duration \"%s\" refused", cases[i].in);
		if (ms != cases[i].ms)
			fail_msg("duration \"%s\": got %lld ms, want %lld", cases[i].in, (long long)ms,
				 (long long)cases[i].ms);
	}
}

static void test_duration_invalid(void **state)
{
	static const char *const cases[] = {
		"",
		"-5s",
		"-5",
		"+5s",
		"5x",
		"s",
		"ms",
		"1.5s",
		"5 s",
		" 5s",
		"5s ",
		"5S",
		"5sec",
		"5msx",
		"1h30",
		"h1",
		"5s-",
		"999999999999999999d",  /* 18 digits: overflows in milliseconds */
		"9999999999999999999",  /* 19 digits */
		"9223372036854776",     /* bare seconds one past the limit */
		"9223372036854776s",
		"9223372036854775s1s",  /* the sum overflows */
		"106751991167301d",     /* 106751991167301 days is past INT64_MAX ms */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -42;

		if (timeparse_duration(cases[i], &ms) == 0)
			fail_msg("duration \"%s\" accepted as %lld ms", cases[i], (long long)ms);
		if (ms != -42)
			fail_msg("duration \"%s\": output written on failure", cases[i]);
	}
}

static void test_time_valid(void **state)
{
	static const struct {
		const char *in;
		int64_t us;
	} cases[] = {
		{ "2026-11-23T19:00:00Z", US(T_2026_11_23_19) },
		{ "2026-11-23t19:00:00z", US(T_2026_11_23_19) },
		{ "2026-11-23 19:00:00Z", US(T_2026_11_23_19) },
		{ "2026-11-23T20:00:00+01:00", US(T_2026_11_23_19) },
		{ "2026-11-23T13:30:00-05:30", US(T_2026_11_23_19) },
		{ "2026-11-24T00:30:00+05:30", US(T_2026_11_23_19) },
		{ "2026-11-23T19:00:00-00:00", US(T_2026_11_23_19) },
		{ "2026-11-23T19:00:00.1Z", US(T_2026_11_23_19) + 100000 },
		{ "2026-11-23T19:00:00.250+00:00", US(T_2026_11_23_19) + 250000 },
		{ "2026-11-23T19:00:00.123456Z", US(T_2026_11_23_19) + 123456 },
		{ "2026-11-23T19:00:00.1234567Z", US(T_2026_11_23_19) + 123456 },
		{ "2026-11-23T19:00:00.000001Z", US(T_2026_11_23_19) + 1 },
		{ "2026-11-23T20:00:00.5+01:00", US(T_2026_11_23_19) + 500000 },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "1970-01-01T01:00:00+01:00", 0 },
		{ "2028-02-29T00:00:00Z", US(1835395200) }, /* a leap day */
		{ "2026-12-31T23:59:59Z", US(1798761599) },
		{ "1795460400", US(T_2026_11_23_19) },
		{ "0", 0 },
		{ "1", 1000000 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t us = -42;

		if (timeparse_time(cases[i].in, &us) != 0)
			fail_msg("time \"%s\" refused", cases[i].in);
		if (us != cases[i].us)
			fail_msg("time \"%s\": got %lld us, want %lld", cases[i].in, (long long)us,
				 (long long)cases[i].us);
	}
}

static void test_time_invalid(void **state)
{
	static const char *const cases[] = {
		"",
		"2026-02-30T00:00:00Z",      /* no Feb 30 */
		"2026-02-29T00:00:00Z",      /* 2026 is not a leap year */
		"2026-04-31T00:00:00Z",      /* April has 30 days */
		"2026-13-01T00:00:00Z",      /* month 13 */
		"2026-00-01T00:00:00Z",      /* month 0 */
		"2026-11-00T00:00:00Z",      /* day 0 */
		"2026-11-23T24:00:00Z",      /* hour 24 */
		"2026-11-23T19:60:00Z",      /* minute 60 */
		"2026-11-23T19:00:00",       /* no offset */
		"2026-11-23T19:00:00+1:00",  /* one-digit offset hour */
		"2026-11-23T19:00:00+01",    /* offset without minutes */
		"2026-11-23T19:00:00+0100",  /* offset without colon */
		"2026-11-23T19:00:00+24:00", /* offset hour out of range */
		"2026-11-23T19:00:00+01:60", /* offset minute out of range */
		"2026-11-23T19:00:00Zjunk",  /* trailing junk */
		"2026-11-23T19:00:00Z ",     /* trailing space */
		"2026-11-23T19:00:00+01:00x",
		"2016-12-31T23:59:60Z",      /* a real leap second, still refused */
		"2026-11-23T19:00:60Z",      /* second 60 mid-day */
		"2026-11-23T19:00:00.Z",     /* empty fraction */
		"2026-11-23T19:00:00,5Z",    /* comma fraction */
		"2026-11-23X19:00:00Z",      /* bad separator */
		"2026/11/23T19:00:00Z",
		"2026-11-23",                /* date only */
		"26-11-23T19:00:00Z",
		"2026-1-23T19:00:00Z",
		"yesterday",
		"-1",
		"1.5",
		"1795460400 ",
		" 1795460400",
		"1795460400Z",
		"9999999999999999999",       /* 19 digits of Unix seconds */
		"9223372036855",             /* Unix seconds overflowing microseconds */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t us = -42;

		if (timeparse_time(cases[i], &us) == 0)
			fail_msg("time \"%s\" accepted as %lld us", cases[i], (long long)us);
		if (us != -42)
			fail_msg("time \"%s\": output written on failure", cases[i]);
	}
}

/* RFC 3339 times before 1970 are valid; the one second timegm(3) answers -1 for included. */
static void test_time_before_epoch(void **state)
{
	static const struct {
		const char *in;
		int64_t us;
	} cases[] = {
		{ "1969-12-31T23:59:58Z", US(-2) },
		{ "1969-12-31T23:59:59Z", US(-1) },
		{ "1969-12-31T23:59:59.5Z", US(-1) + 500000 },
		{ "1970-01-01T00:59:59+01:00", US(-1) },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t us = -42;

		if (timeparse_time(cases[i].in, &us) != 0)
			fail_msg("time \"%s\" refused", cases[i].in);
		if (us != cases[i].us)
			fail_msg("time \"%s\": got %lld us, want %lld", cases[i].in, (long long)us,
				 (long long)cases[i].us);
	}
}

static void test_now(void **state)
{
	int64_t a, b;

	(void)state;
	a = timeparse_now_us();
	b = timeparse_now_us();
	assert_true(a > US(T_2026_11_23_19) - US(86400 * 365)); /* a sane wall clock */
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_valid),
		cmocka_unit_test(test_duration_invalid),
		cmocka_unit_test(test_time_valid),
		cmocka_unit_test(test_time_invalid),
		cmocka_unit_test(test_time_before_epoch),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

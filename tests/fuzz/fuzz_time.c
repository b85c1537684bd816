/* fuzz_time: the duration and time spellings (lib/timeparse.c) and call_parse_duration, each
 * checked against a small independent reading of the grammar timeparse.h documents: the
 * parser must accept exactly what the grammar allows and return the same value. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "call.h"
#include "timeparse.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* n digits at s as a number (the caller checked they are digits). */
static int64_t num(const char *s, int n)
{
	int64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* A run of digits at *p: 1..18 of them (timeparse's documented limit for one number). */
static bool run(const char **p, int64_t *v)
{
	int n = 0;

	while (digit((*p)[n]))
		n++;
	if (n == 0 || n > 18)
		return false;
	*v = num(*p, n);
	*p += n;
	return true;
}

/* duration = 1*DIGIT / 1*(1*DIGIT unit), unit = "ms" / "s" / "m" / "h" / "d"; the sum in ms
 * must fit in int64. */
static bool oracle_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *p = s;
	__int128 total = 0;
	int64_t v;

	if (!run(&p, &v))
		return false;
	if (*p == '\0') {
		total = (__int128)v * 1000;
	} else {
		for (;;) {
			size_t len = 0;
			size_t i;

			while ((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z'))
				len++;
			for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
				if (strlen(units[i].name) == len &&
				    memcmp(p, units[i].name, len) == 0)
					break;
			if (i == sizeof(units) / sizeof(units[0]))
				return false;
			total += (__int128)v * units[i].ms;
			if (total > INT64_MAX)
				return false;
			p += len;
			if (*p == '\0')
				break;
			if (!run(&p, &v))
				return false;
		}
	}
	if (total > INT64_MAX)
		return false;
	*ms = (int64_t)total;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* time = 1*DIGIT (Unix seconds, at most 18 digits, within int64 microseconds)
 *      / date-fullyear "-" month "-" mday ("T" / "t" / " ") hour ":" minute ":" second
 *        ["." 1*DIGIT] ("Z" / "z" / ("+" / "-") hh ":" mm)          (RFC 3339 5.6)
 * with real calendar dates, seconds 00-59 (no leap second), offsets up to 23:59, and the
 * fraction cut to microseconds. */
static bool oracle_time(const char *s, int64_t *us)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int64_t y, mo, d, h, mi, sec, frac = 0, off = 0, days;
	size_t n = 0;

	while (digit(s[n]))
		n++;
	if (n > 0 && s[n] == '\0') {
		if (n > 18 || num(s, (int)n) > INT64_MAX / 1000000)
			return false;
		*us = num(s, (int)n) * 1000000;
		return true;
	}
	if (strlen(s) < 20)
		return false;
	for (int i = 0; i < 19; i++) {
		bool want_digit = i != 4 && i != 7 && i != 10 && i != 13 && i != 16;

		if (want_digit != digit(s[i]))
			return false;
	}
	if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return false;
	y = num(s, 4);
	mo = num(s + 5, 2);
	d = num(s + 8, 2);
	h = num(s + 11, 2);
	mi = num(s + 14, 2);
	sec = num(s + 17, 2);
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return false;
	p = s + 19;
	if (*p == '.') {
		int k = 0;
		int64_t scale = 100000;

		for (p++; digit(*p); p++, k++) {
			if (k < 6) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
		}
		if (k == 0)
			return false;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && digit(p[1]) && digit(p[2]) && p[3] == ':' &&
		   digit(p[4]) && digit(p[5])) {
		int64_t oh = num(p + 1, 2), om = num(p + 4, 2);

		if (oh > 23 || om > 59)
			return false;
		off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	days = days_from_civil(y, mo, d);
	*us = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000000 + frac;
	return true;
}

static void check_duration(const char *s)
{
	int64_t got = -1, want = -1;
	int rc = timeparse_duration(s, &got);
	bool ok = oracle_duration(s, &want);

	if ((rc == 0) != ok || (ok && got != want)) {
		fprintf(stderr,
			"fuzz_time: timeparse_duration(\"%s\") = %d, %lld ms; the grammar says "
			"%s, %lld ms\n",
			s, rc, (long long)got, ok ? "valid" : "invalid", (long long)want);
		abort();
	}
}

static void check_time(const char *s)
{
	int64_t got = -1, want = -1;
	int rc = timeparse_time(s, &got);
	bool ok = oracle_time(s, &want);

	if ((rc == 0) != ok || (ok && got != want)) {
		fprintf(stderr,
			"fuzz_time: timeparse_time(\"%s\") = %d, %lld us; the grammar says %s, "
			"%lld us\n",
			s, rc, (long long)got, ok ? "valid" : "invalid", (long long)want);
		abort();
	}
}

/* call_parse_duration on the input as a JSON value (an integer is seconds) and as a string. */
static void check_json_duration(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *v;
	struct json_object *str = json_object_new_string(s);
	int64_t a = -1, b = -1;
	int rc;

	/* The string form is the timeparse_duration answer. */
	rc = call_parse_duration(str, &a);
	if (rc != timeparse_duration(s, &b) || (rc == 0 && a != b))
		abort();
	json_object_put(str);

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	v = json_tokener_parse_ex(tok, s, (int)len + 1); /* with the NUL: a number ends there */
	if (v != NULL && call_parse_duration(v, &a) == 0) {
		if (a < 0 || (json_object_is_type(v, json_type_int) &&
			      a != json_object_get_int64(v) * 1000)) {
			fprintf(stderr, "fuzz_time: call_parse_duration(%s) = %lld ms\n", s,
				(long long)a);
			abort();
		}
	}
	json_object_put(v);
	json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 4096)
		return 0;
	s = xstrndup((const char *)data, size); /* a NUL inside ends it, as in a C string */
	check_duration(s);
	check_time(s);
	check_json_duration(s, strlen(s));
	free(s);
	return 0;
}

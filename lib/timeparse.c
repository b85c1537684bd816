/* timeparse: durations and RFC 3339 times, with strptime(3) and timegm(3) doing the calendar. */
#define _GNU_SOURCE /* strptime, timegm */
#include "timeparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

/* Reads 1..18 digits at *p into *v; returns false when there are none or too many. */
static bool read_digits(const char **p, int64_t *v)
{
	const char *s = *p;
	int64_t n = 0;
	int k = 0;

	while (isdigit((unsigned char)*s)) {
		if (++k > 18)
			return false;
		n = n * 10 + (*s - '0');
		s++;
	}
	if (k == 0)
		return false;
	*v = n;
	*p = s;
	return true;
}

int timeparse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *p = s;
	int64_t total = 0;
	int64_t v;

	if (!read_digits(&p, &v))
		return -1;
	if (*p == '\0') { /* bare seconds */
		if (v > INT64_MAX / 1000)
			return -1;
		*ms = v * 1000;
		return 0;
	}
	for (;;) {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t ul = strlen(units[i].unit);

			if (strncmp(p, units[i].unit, ul) == 0 && !isalpha((unsigned char)p[ul]))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		if (v > (INT64_MAX - total) / units[i].ms)
			return -1;
		total += v * units[i].ms;
		p += strlen(units[i].unit);
		if (*p == '\0')
			break;
		if (!read_digits(&p, &v))
			return -1;
	}
	*ms = total;
	return 0;
}

int timeparse_time(const char *s, int64_t *us)
{
	struct tm tm;
	const char *p;
	int64_t frac = 0;
	int64_t secs;
	int offset = 0;
	char date[20];
	size_t i;

	if (*s == '\0')
		return -1;
	/* Whole Unix seconds. */
	for (i = 0; isdigit((unsigned char)s[i]); i++)
		;
	if (s[i] == '\0') {
		p = s;
		if (!read_digits(&p, &secs) || secs > INT64_MAX / 1000000)
			return -1;
		*us = secs * 1000000;
		return 0;
	}
	/* RFC 3339: exactly YYYY-MM-DDTHH:MM:SS, then optional fraction, then Z or +-HH:MM. */
	if (strlen(s) < 20)
		return -1;
	memcpy(date, s, 19);
	date[19] = '\0';
	for (i = 0; i < 19; i++) {
		bool digit = i != 4 && i != 7 && i != 10 && i != 13 && i != 16;

		if (digit && !isdigit((unsigned char)date[i]))
			return -1;
	}
	if (date[10] == 't' || date[10] == ' ')
		date[10] = 'T';
	memset(&tm, 0, sizeof(tm));
	p = strptime(date, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL || *p != '\0')
		return -1;
	/* strptime accepts day 31 of any month and normalises it away in timegm: reject that. */
	{
		struct tm check = tm;
		time_t t;

		errno = 0; /* -1 is also 1969-12-31T23:59:59Z; only errno tells an error */
		t = timegm(&check);
		if (errno != 0 || check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
			return -1;
		if (tm.tm_sec >
		    59) /* leap seconds are not representable; refuse rather than shift */
			return -1;
		secs = (int64_t)t;
	}
	p = s + 19;
	if (*p == '.') {
		int64_t scale = 100000;
		int k = 0;

		p++;
		while (isdigit((unsigned char)*p)) {
			if (k++ < 6) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
			p++;
		}
		if (k == 0)
			return -1;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
		   isdigit((unsigned char)p[5])) {
		int hh = (p[1] - '0') * 10 + (p[2] - '0');
		int mm = (p[4] - '0') * 10 + (p[5] - '0');

		if (hh > 23 || mm > 59)
			return -1;
		offset = (hh * 60 + mm) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	*us = (secs - offset) * 1000000 + frac;
	return 0;
}

int64_t timeparse_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

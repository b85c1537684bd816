/* cron: parse 5-field expressions; find the next tick in a time zone with localtime_r(3), the
 * calendar on the naive wall clock done here (days from civil, as in Howard Hinnant's
 * "chrono-Compatible Low-Level Date Algorithms"). */
#define _DEFAULT_SOURCE /* tm_gmtoff */
#include "cron.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define DAY 86400
#define SCAN_STEP (6 * 3600) /* offsets stay put at least this long between changes */
#define SEARCH_YEARS 30	     /* "0 0 29 2 1" with day-of-week '*' can wait 8 years */

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* index 0 = value lo, or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
					  "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[5] = {
	{"minute", 0, 59, NULL},	  {"hour", 0, 23, NULL},
	{"day-of-month", 1, 31, NULL},	  {"month", 1, 12, month_names},
	{"day-of-week", 0, 7, dow_names},
};

static int fail(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

/* A value (number or name) at *p; advances *p. */
static int read_value(const struct field *f, const char **p, int *v, char *err, size_t errsz)
{
	const char *s = *p;

	if (isdigit((unsigned char)*s)) {
		long n = 0;

		while (isdigit((unsigned char)*s)) {
			n = n * 10 + (*s - '0');
			if (n > 1000)
				break;
			s++;
		}
		if (n < f->lo || n > f->hi)
			return fail(err, errsz, "%s: %ld is out of range %d-%d", f->name, n, f->lo,
				    f->hi);
		*v = (int)n;
		*p = s;
		return 0;
	}
	if (f->names != NULL && isalpha((unsigned char)*s)) {
		for (int i = 0; f->names[i] != NULL; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
				*v = f->lo + i;
				*p = s + 3;
				return 0;
			}
		}
	}
	return fail(err, errsz, "%s: \"%.20s\" is not a %s", f->name, s,
		    f->names != NULL ? "number or a name" : "number");
}

/* One comma-separated field into bits (bit n = value n). */
static int parse_field(const struct field *f, const char *s, uint64_t *bits, char *err,
		       size_t errsz)
{
	const char *p = s;

	*bits = 0;
	for (;;) {
		int a, b, step = 1;
		bool star = false;

		if (*p == '*') {
			star = true;
			a = f->lo;
			b = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			if (read_value(f, &p, &a, err, errsz) != 0)
				return -1;
			b = a;
			if (*p == '-') {
				p++;
				if (read_value(f, &p, &b, err, errsz) != 0)
					return -1;
				if (b < a)
					return fail(err, errsz,
						    "%s: the range %d-%d runs backwards", f->name,
						    a, b);
			}
		}
		if (*p == '/') {
			long n = 0;

			p++;
			if (!isdigit((unsigned char)*p))
				return fail(err, errsz, "%s: a step must be a number", f->name);
			while (isdigit((unsigned char)*p) && n <= 1000)
				n = n * 10 + (*p++ - '0');
			if (n < 1 || n > f->hi)
				return fail(err, errsz, "%s: the step %ld is out of range 1-%d",
					    f->name, n, f->hi);
			step = (int)n;
			if (!star && b == a) /* "5/15": from 5 to the end */
				b = f->hi == 7 ? 6 : f->hi;
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return fail(err, errsz, "%s: unexpected \"%.20s\"", f->name, p);
		p++;
	}
}

int cron_parse(struct cron *c, const char *expr, char *err, size_t errsz)
{
	static const struct {
		const char *name, *expr;
	} macros[] = {{"@yearly", "0 0 1 1 *"},	 {"@annually", "0 0 1 1 *"},
		      {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
		      {"@daily", "0 0 * * *"},	 {"@midnight", "0 0 * * *"},
		      {"@hourly", "0 * * * *"}};
	char copy[256];
	char *part[5];
	char *save = NULL;
	uint64_t bits[5];
	int n = 0;

	memset(c, 0, sizeof(*c));
	if (expr[0] == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strcmp(expr, macros[i].name) == 0)
				return cron_parse(c, macros[i].expr, err, errsz);
		return fail(err, errsz,
			    "cron: unknown macro (use @yearly, @annually, @monthly, @weekly, "
			    "@daily, @midnight or @hourly)");
	}
	if (strlen(expr) >= sizeof(copy))
		return fail(err, errsz, "cron: longer than %zu characters", sizeof(copy) - 1);
	snprintf(copy, sizeof(copy), "%s", expr);
	for (char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
		if (n == 5)
			return fail(err, errsz,
				    "cron: more than 5 fields (minute hour day-of-month month "
				    "day-of-week)");
		part[n++] = t;
	}
	if (n < 5)
		return fail(err, errsz,
			    "cron: %d field%s; 5 are needed (minute hour day-of-month month "
			    "day-of-week)",
			    n, n == 1 ? "" : "s");
	for (int i = 0; i < 5; i++)
		if (parse_field(&fields[i], part[i], &bits[i], err, errsz) != 0)
			return -1;
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	c->dow = (uint8_t)bits[4];
	c->dom_star = part[2][0] == '*';
	c->dow_star = part[4][0] == '*';
	c->wild = part[0][0] == '*' || part[1][0] == '*';
	return 0;
}

/* ---- the naive calendar: wall-clock seconds as if the zone were UTC ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
	static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : n[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Vixie cron: with either day field starting with '*' both must match, else either may. */
static bool day_matches(const struct cron *c, int64_t days, int d)
{
	bool dom = (c->dom >> d) & 1;
	bool dow = (c->dow >> (int)(((days % 7) + 11) % 7)) & 1; /* 1970-01-01 was a Thursday */

	return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

/* The first naive minute >= n (a whole minute) that matches, or INT64_MIN. */
static int64_t naive_next(const struct cron *c, int64_t n)
{
	int64_t days = floor_div(n, DAY), y, limit;
	int64_t sec = n - days * DAY;
	int m, d, h = (int)(sec / 3600), mi = (int)(sec % 3600 / 60);

	civil_from_days(days, &y, &m, &d);
	limit = y + SEARCH_YEARS;
	for (;;) {
		if (y > limit)
			return INT64_MIN;
		if (!((c->month >> m) & 1) || d > days_in_month(y, m)) {
			d = 1, h = 0, mi = 0;
			if (++m > 12)
				m = 1, y++;
			continue;
		}
		days = days_from_civil(y, m, d);
		if (!day_matches(c, days, d)) {
			d++, h = 0, mi = 0;
			continue;
		}
		if (!((c->hour >> h) & 1)) {
			h++, mi = 0;
			if (h > 23)
				d++, h = 0;
			continue;
		}
		if (!((c->minute >> mi) & 1)) {
			if (++mi > 59) {
				mi = 0;
				if (++h > 23)
					d++, h = 0;
			}
			continue;
		}
		return days * DAY + h * 3600 + mi * 60;
	}
}

/* ---- time zones ---- */

/* The caller's TZ while another is set (NULL: it was unset). */
struct tz_saved {
	char *old;
	bool had;
};

static void tz_push(struct tz_saved *s, const char *tz)
{
	const char *old = getenv("TZ");

	s->had = old != NULL;
	s->old = old != NULL ? xstrdup(old) : NULL;
	setenv("TZ", tz != NULL ? tz : "UTC", 1);
	tzset();
}

static void tz_pop(struct tz_saved *s)
{
	if (s->had)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->old);
}

static long gmtoff(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return tm.tm_gmtoff;
}

/* The first instant in (x, c] whose offset is not o, or INT64_MAX when there is none. */
static int64_t next_change(int64_t x, int64_t c, long o)
{
	int64_t lo = x, hi;

	for (;;) {
		hi = c - lo > SCAN_STEP ? lo + SCAN_STEP : c;
		if (hi <= lo)
			return INT64_MAX;
		if (gmtoff(hi) != o)
			break;
		lo = hi;
	}
	/* offset o at lo, another at hi: bisect to the first second of the change */
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (gmtoff(mid) != o)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* Walks the zone's stretches of constant offset: in each, the local wall clock is t + offset,
 * so the first matching wall time in the stretch gives the tick, and a change of offset ends
 * the stretch before it. */
static int next_in_zone(const struct cron *c, int64_t after, int64_t *next)
{
	int64_t x = after + 1;	   /* look at instants >= x */
	int64_t floor = INT64_MIN; /* after a fall back: wall times before this ran already */

	for (int guard = 0; guard < 4 * SEARCH_YEARS + 8; guard++) {
		long o = gmtoff(x);
		int64_t n0 = floor_div(x + o + 59, 60) * 60;
		int64_t w, t, change;
		long o2;

		if (n0 < floor)
			n0 = floor;
		floor = INT64_MIN;
		w = naive_next(c, n0);
		if (w == INT64_MIN)
			return -1;
		t = w - o;
		change = next_change(x, t, o);
		if (change == INT64_MAX) {
			*next = t;
			return 0;
		}
		o2 = gmtoff(change);
		if (o2 > o) {
			/* Spring forward: wall times [change + o, change + o2) do not exist. One
			 * that matches runs once, at the first instant after the gap. */
			if (!c->wild && w < change + o2) {
				*next = change;
				return 0;
			}
		} else if (!c->wild) {
			/* Fall back: wall times [change + o2, change + o) come again; they ran. */
			floor = change + o;
		}
		x = change;
	}
	return -1;
}

int cron_next(const struct cron *c, const char *tz, int64_t after, int64_t *next)
{
	struct tz_saved s;
	int rc;

	tz_push(&s, tz);
	rc = next_in_zone(c, after, next);
	tz_pop(&s);
	return rc;
}

bool cron_tz_valid(const char *tz)
{
	const char *dir = getenv("TZDIR");
	char path[512];
	char magic[4];
	struct stat st;
	FILE *f;
	bool ok;

	if (tz == NULL || tz[0] == '\0' || tz[0] == '/' || strlen(tz) > 64 ||
	    strstr(tz, "..") != NULL)
		return false;
	for (const char *p = tz; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("_-+/", *p) == NULL)
			return false;
	if (tz[strlen(tz) - 1] == '/' || strstr(tz, "//") != NULL)
		return false;
	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/zoneinfo";
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, tz) >= sizeof(path))
		return false;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	f = fopen(path, "rb");
	if (f == NULL)
		return false;
	ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
	fclose(f);
	return ok;
}

int cron_local_text(const char *tz, int64_t t, char *out, size_t outsz)
{
	struct tz_saved s;
	time_t tt = (time_t)t;
	struct tm tm;
	int rc = -1;

	tz_push(&s, tz);
	if (localtime_r(&tt, &tm) != NULL) {
		int off = (int)(tm.tm_gmtoff % 86400);
		char zone[24];

		if (off == 0 && (tz == NULL || strcmp(tz, "UTC") == 0))
			snprintf(zone, sizeof(zone), "Z");
		else
			snprintf(zone, sizeof(zone), "%c%02d:%02d", off < 0 ? '-' : '+',
				 abs(off) / 3600, abs(off) % 3600 / 60);
		if ((size_t)snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%s",
				     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				     tm.tm_min, tm.tm_sec, zone) < outsz)
			rc = 0;
	}
	tz_pop(&s);
	return rc;
}

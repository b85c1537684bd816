/* timeparse: the duration and time spellings of the API ("90", "90s", "1h30m", RFC 3339). */
#ifndef AG_TIMEPARSE_H
#define AG_TIMEPARSE_H

#include <stdint.h>

/* Parses a duration: a bare number of seconds ("90"), or one or more number+unit groups with
 * units ms, s, m, h, d ("500ms", "15m", "1h30m"). Numbers are whole. Stores milliseconds in *ms.
 * Returns 0, or -1 for anything else (empty, negative, unknown unit, overflow). */
int timeparse_duration(const char *s, int64_t *ms);

/* Parses an RFC 3339 date-time ("2026-11-23T19:00:00Z", "...T19:00:00.250+01:00"; 't', 'z' and
 * a space separator are accepted as RFC 3339 section 5.6 allows) or whole Unix seconds
 * ("1795460400"). Stores microseconds since the epoch. Returns 0, or -1 when malformed. */
int timeparse_time(const char *s, int64_t *us);

/* Current wall-clock time in microseconds since the epoch. */
int64_t timeparse_now_us(void);

#endif

/* log: one line per event on stderr (the web server's error log, journald, or cron mail). */
#ifndef AG_LOG_H
#define AG_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOGL_ERR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/* name: borrowed, must outlive logging (argv[0] basename is fine). */
void log_init(const char *name, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error|warn|info|debug"; returns -1 on anything else. */
int log_level_parse(const char *s, enum log_level *out);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOGL_DEBUG))                                                       \
			log_msg(LOGL_DEBUG, __VA_ARGS__);                                          \
	} while (0)

/* Copies untrusted text into out for a log line: at most outsz-1 bytes, control characters and
 * non-ASCII bytes as \xNN, a trailing "..." when cut (kcgi logging.c). Returns out. */
char *log_esc(char *out, size_t outsz, const char *in, size_t inlen);
/* A library's multi-line message (libpq: ERROR, DETAIL, HINT) as one escaped log line, without
 * its trailing newline. Returns out. */
const char *log_flat(char *out, size_t outsz, const char *msg);

#endif

/* itest: a small harness for the integration tests: HTTP through libcurl, assertions on rows
 * through libpq, and "ok - name" / "not ok - name" lines for tests/check.sh to count. */
#ifndef AG_ITEST_H
#define AG_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

struct json_object;

struct hresp {
	long status;
	char *body;    /* NUL-terminated; owned */
	size_t len;
	char *headers; /* raw header block; owned */
};

/* Sends a request to base+path. hdrs is a NULL-terminated list of "Name: value" or NULL. */
void it_http(const char *method, const char *base, const char *path, const char *ctype,
	     const void *body, size_t len, const char *const *hdrs, struct hresp *out);
void it_hresp_free(struct hresp *r);
/* The value of a response header (new string; caller frees), or NULL. */
char *it_header(const struct hresp *r, const char *name);
/* The body parsed as JSON (caller puts), or NULL. */
struct json_object *it_json(const struct hresp *r);
/* A string member of the JSON body ("" when absent). Static buffer, valid until the next call. */
const char *it_jstr(const struct hresp *r, const char *key);

/* The test database connection (PG* environment). */
PGconn *it_db(void);
/* The first column of the first row of a query with text params, as a new string, or NULL. */
char *it_sql(const char *sql, int nparams, const char *const *params);
long it_sql_long(const char *sql, int nparams, const char *const *params);
/* Polls it_sql_long(sql) every 50 ms until it is at least want (true) or timeout_ms has passed
 * (false, a failed CHECK that names what and the last count). */
bool it_wait_count(const char *what, const char *sql, int nparams, const char *const *params,
		   long want, long timeout_ms);
/* `SELECT expr FROM calls WHERE id = $1` as a new string (caller frees), or NULL. */
char *it_field(const char *id, const char *expr);
/* it_field equals want; a failed CHECK (reported) otherwise. */
bool it_field_is(const char *id, const char *expr, const char *want);

/* Runs the handler (AG_BIN) as plain CGI: method and uri, the body on stdin, CONTENT_TYPE
 * application/json, ASYNCGATE_CONF and PG* passed through, plus extra "NAME=value" strings
 * (NULL-terminated; may be NULL). The answer (CGI headers and body) goes to out. Returns the
 * exit status, or -1 when the handler could not be run. */
int it_cgi(const char *method, const char *uri, const char *body, const char *const *extra,
	   char *out, size_t outsz);

/* Stops or starts the test PostgreSQL ("stop" | "start", via AG_PG_CTL_STOP/START); returns
 * system()'s status (0 = done), -1 when the harness did not say how. */
int it_pg_ctl(const char *what);

/* Sleeps ms milliseconds (through EINTR). */
void it_sleep_ms(long ms);
/* A fresh tag ("t3fa2...", kind first) for the paths or names of one test, so its requests can
 * be told apart in logs. Static buffer, valid until the next call. */
const char *it_tag(char kind);
/* Runs a statement that returns no rows (or rows it ignores); false (reported) when it fails. */
bool it_sql_exec(const char *sql, int n, const char *const *p);
/* SELECT count(*) FROM calls: what a refused request must leave unchanged. */
long it_calls_count(void);
/* SELECT count(*) FROM attempts of the call id. */
long it_attempts_count(const char *id);
/* The string value at a dotted path ("callback.url") of a JSON object, or NULL; borrowed. */
const char *it_jget(struct json_object *o, const char *dotted);
/* it_jget equals want; a failed CHECK (reported) otherwise. */
bool it_jis(struct json_object *o, const char *dotted, const char *want);

/* Milliseconds since the epoch (CLOCK_REALTIME, the clock of the target log's t_us). */
int64_t it_now_ms(void);
/* POSTs one instruction to base + /v1/calls with hdrs (NULL-terminated; may be NULL); returns
 * the new id (static buffer, valid until the next call), or "" (a failed CHECK) when the answer
 * is not 202. */
const char *it_enqueue(const char *base, const char *body, const char *const *hdrs);
/* Cancels what earlier test programs left in the queue (targets never meant to be called):
 * queued, retrying and in-flight calls; a failed CHECK when calls_live is not empty after. */
void it_clean_queue(void);
/* The entries of a target request log (ag_target --log: one JSON object a line) whose path
 * starts with prefix, oldest first, as a new array (caller puts); empty when log is unreadable. */
struct json_object *it_hits(const char *log, const char *prefix);

/* Runs asyncgate-admin (AG_ADMIN) with args (shell words, already safe; may end in a
 * here-doc), its stderr dropped; its stdout, trimmed of trailing newlines and spaces, into out
 * (NULL: discarded). Returns its exit status, -1 when it could not be run. */
int it_admin(const char *args, char *out, size_t outsz);

/* The drainer (AG_DRAINER). A test program that uses these defines _GNU_SOURCE (wait4). */
/* Starts it with args (NULL-terminated, at most 14), stderr appended to log (NULL: inherited);
 * returns its pid, -1 when fork failed. */
pid_t it_drainer_spawn(const char *log, const char *const *args);
/* Waits for pid up to timeout_ms, then kills it (SIGKILL, a failed CHECK). Returns its exit
 * status, -1 when killed or not done in time; its peak memory in KiB into *maxrss_kb when not
 * NULL. */
int it_drainer_wait(pid_t pid, long timeout_ms, long *maxrss_kb);
/* SIGTERM to a --follow drainer; it must exit with status 0 within 30 s (a failed CHECK). */
void it_drainer_stop(pid_t pid);
/* One `asyncgate-drainer --once` run (stderr appended to log), at most 60 s; its exit status. */
int it_drain_once(const char *log);

/* Test bookkeeping. it_check records a failure (printing the message) and returns cond. */
bool it_check(bool cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define CHECK(cond, ...) it_check((cond), __FILE__, __LINE__, __VA_ARGS__)
void it_run(const char *name, void (*fn)(void));
int it_finish(void);

#endif

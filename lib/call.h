/* call: one call instruction, parsed and checked field by field, from JSON or from a
 * transparent-mode request; and its row for the insert statement. */
#ifndef AG_CALL_H
#define AG_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "problem.h"
#include "xalloc.h"

struct json_object;
struct conf;
struct netpolicy;
struct req;

/* Everything the checks need to know about the gateway. Borrowed. */
struct call_env {
	const struct conf *cf;
	const struct netpolicy *np;
};

/* One instruction. Strings and JSON objects are owned (call_cleanup frees them). Numbers
 * are -1 when not given, until call_resolve fills them from the function or the defaults. */
struct call {
	char *function;		     /* registered name, or NULL */
	char *target;		     /* absolute http(s) URL, or NULL */
	char *path;		     /* with function only; starts with '/' */
	char *method;		     /* upper case */
	char *query;		     /* encoded, without '?'; never NULL after parsing */
	struct json_object *headers; /* {"Name": "value"} */
	unsigned char *body;	     /* NULL when there is no body */
	size_t body_len;
	const char *body_type; /* "json", "text", "binary" (static) or NULL */
	bool has_not_before;
	int64_t not_before_us; /* absolute, when has_not_before */
	bool has_delay;
	int64_t delay_ms;      /* relative to the commit; 0 = due now */
	int64_t expires_in_ms; /* 0 = never */
	char *correlation_id;
	char *callback_url;
	struct json_object *callback_headers;
	char *failure_callback_url;
	struct json_object *failure_callback_headers;
	int64_t max_attempts;
	int64_t retry_initial_ms;
	int64_t retry_max_ms;
	int64_t timeout_ms;
	int64_t connect_timeout_ms;	/* -1: drain_connect_timeout */
	struct json_object *retry_on;	/* normal-form status list (statuses.h), or NULL */
	struct json_object *give_up_on; /* likewise */
	char *debounce_key;		/* or NULL */
	bool transparent; /* from control headers: checks across fields name the header */
	int64_t priority; /* CALL_PRIORITY_MIN..MAX; higher is claimed first among due calls */
};

#define CALL_PRIORITY_MIN (-100)
#define CALL_PRIORITY_MAX 100

/* Parses a priority: a whole number from CALL_PRIORITY_MIN to CALL_PRIORITY_MAX, optionally
 * signed, as text (the Async-Priority header). Returns 0 with *out set, or -1. */
int call_parse_priority(const char *s, int64_t *out) MUSTCHECK;

void call_init(struct call *c);
void call_cleanup(struct call *c);

/* Fills c from one JSON instruction. prefix ("" or "[3].") starts every field name in p.
 * Returns 0, or -1 with p filled; c is then partly filled and must still be cleaned up. */
int call_from_json(struct call *c, struct json_object *o, const struct call_env *env,
		   const char *prefix, struct problem *p) MUSTCHECK;

/* Fills c from a transparent-mode request: rest is the route path after "/v1/async/" (still
 * percent-encoded), the method, query, body and end-to-end headers come from rq, and the
 * Async-* control headers set the options. Returns 0, or -1 with p filled. */
int call_from_request(struct call *c, const struct req *rq, const char *rest,
		      const struct call_env *env, struct problem *p) MUSTCHECK;

/* Fills the limits not given from the function's (fn_* < 0 when the function has none, or
 * for a raw URL) and then from the gateway defaults, and checks the combination. */
int call_resolve(struct call *c, const struct call_env *env, int64_t fn_timeout_ms,
		 int64_t fn_max_attempts, int64_t fn_retry_initial_ms, int64_t fn_retry_max_ms,
		 const char *prefix, struct problem *p) MUSTCHECK;

/* The call as a JSON object for Q_CALLS_INSERT's rows (new; caller puts). id may be NULL
 * (used to compute the idempotency hash, which must not depend on the fresh id). */
struct json_object *call_row_json(const struct call *c, const char *id) MUSTCHECK;

/* The checks of a call's target URL (absolute http/https, ASCII, no credentials or fragment,
 * a host the address policy allows), for other URLs the gateway will call (a function's
 * base_url). field names the input in p. Returns 0, or -1 with p filled (400). */
int call_check_url(const char *url, const struct call_env *env, const char *field,
		   struct problem *p) MUSTCHECK;

/* The checks of a call's headers object ({"Name": "value"}: token names, values without
 * control characters, no hop-by-hop, Async-* or webhook-* names, nothing from deny_headers, no
 * name twice, at most max_headers), for a function's default headers. field names the object
 * ("headers"); a bad header is named "field.Name". Returns 0, or -1 with p filled (400). */
int call_check_headers(struct json_object *headers, const struct call_env *env, const char *field,
		       struct problem *p) MUSTCHECK;

/* Duration fields accept a string ("90s") or a whole number of seconds. */
int call_parse_duration(struct json_object *v, int64_t *ms);

#endif

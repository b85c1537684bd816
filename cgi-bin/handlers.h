/* handlers: one function per route; each reads a struct req and fills a struct resp. */
#ifndef AG_HANDLERS_H
#define AG_HANDLERS_H

#include "conf.h"
#include "db.h"
#include "http.h"
#include "netpolicy.h"

/* What every handler may use: one per thread of a FastCGI process (cf and np are shared and
 * read-only; db, drain and last_notify_ms are the thread's own), or the process's in CGI mode. */
struct drain;
struct commitq;
struct h_keycache;

struct app {
	struct conf cf;
	struct netpolicy np;
	struct db db;
	struct drain *drain;	 /* made by the first /v1/drain; NULL until then */
	int64_t last_notify_ms;	 /* monotonic time of the last due-now NOTIFY; 0 = none yet */
	struct commitq *cq;	 /* the process's commit queue (threaded FastCGI), or NULL:
				  * enqueue then commits on db itself */
	struct h_keycache *keys; /* the process's API key cache (FastCGI), or NULL */
	bool auth_fresh;	 /* this request: look the key up, never in keys */
	bool auth_stale;	 /* this request: its cached key changed; route() runs it again */
	bool cq_counted;	 /* this request is awaited by cq (commitq_arrive) */
};

/* A per-process cache of API keys (token hash -> principal and api_keys row version), shared
 * by the threads, for the requests that only insert calls (POST /v1/calls, /v1/async/...):
 * Q_CALLS_INSERT checks the version, so a revoked or changed key inserts nothing and the
 * request is answered again after a fresh lookup. Entries live 60 s at most. */
struct h_keycache *h_keycache_new(void) MUSTCHECK;
void h_keycache_free(struct h_keycache *kc);

struct principal;
struct json_object;

/* Who the request comes from, as the auth setting allows. Returns 0 with who filled (the
 * caller cleans it up), or -1 with rs set (401, 403, 503) and who empty. A POST /v1/calls or
 * /v1/async/... request may be answered from app->keys (unless app->auth_fresh): who then has
 * key_version set, and route() must run the request again with a fresh lookup when it was
 * not accepted (app->auth_stale, or a 4xx). */
int h_authenticate(const struct req *rq, struct resp *rs, struct app *app, struct principal *who);

/* Each returns 0 when rs is filled (an error answer is still 0); -1 only for a bug. The calls
 * API acts for who: a client sees and steers only its own calls, an admin every call. */
int h_calls_post(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who);
int h_async(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
	    const char *rest);
int h_call_get(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
	       const char *id);
int h_calls_list(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who);
int h_call_delete(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who, const char *id);
int h_call_retry(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who, const char *id);
/* GET|HEAD /v1/calls/{id}/response: the target's final answer as stored (status, headers but
 * the hop-by-hop ones, body up to max_response_bytes) once the call has succeeded, or the last
 * answer of a dead call; else 409 (or 404) problem+json saying why. */
int h_call_response(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, const char *id);
/* Whether the request asks for the response itself (RFC 7240 Prefer: return=response). */
bool h_prefers_response(const struct req *rq);
int h_health(const struct req *rq, struct resp *rs, struct app *app);
int h_drain(const struct req *rq, struct resp *rs, struct app *app);
int h_metrics(const struct req *rq, struct resp *rs, struct app *app);

/* The functions API (h_functions.c): /v1/functions and /v1/functions/{name}, admins only
 * (403 for others). Returns false when the path is not one of its paths. */
bool route_functions(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who);

/* Routes a request to its handler (405 / 404 problems for the rest). */
void route(const struct req *rq, struct resp *rs, struct app *app);

struct call;
/* Enqueues n checked calls in one statement (all or nothing), with the request's
 * Idempotency-Key, and answers 202 (an object, or an array when batch) once they are committed
 * (through app->cq when set: then in one statement with concurrent requests of the process,
 * which cannot fail this one). Frees nothing. */
int h_calls_enqueue(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, struct call *calls, size_t n, bool batch);

/* The checks POST /v1/calls makes of one parsed instruction beyond call_from_json: who may
 * call its function or URLs (403), the function exists (400), and its limits and the gateway's
 * defaults filled in (call_resolve). Returns 0, or -1 with rs set (fields without prefix). */
int h_calls_admit(struct resp *rs, struct app *app, const struct principal *who, struct call *c);
/* Shows credential-like header values of an instruction object (headers, callback and
 * failure_callback headers) as "[redacted]", as GET /v1/calls/{id} does. */
void h_calls_redact(struct json_object *instruction);

/* The schedules API (h_schedules.c), scoped like the calls API. */
int h_schedules_post(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who);
int h_schedules_list(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who);
int h_schedule_get(const struct req *rq, struct resp *rs, struct app *app,
		   const struct principal *who, const char *id);
int h_schedule_delete(const struct req *rq, struct resp *rs, struct app *app,
		      const struct principal *who, const char *id);
/* POST /v1/schedules/{id}/pause (pause true) and /resume (from now on). */
int h_schedule_pause(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who, const char *id, bool pause);

/* The idempotency hash of n instructions in hex (out: at least 129 bytes), as POST /v1/calls
 * keeps it; and the due-now NOTIFY after a commit, from rows of (id, not_before, scheduled).
 * For h_topics.c. */
int h_calls_hash(const struct call *calls, size_t n, bool batch, char *out, size_t outsz);
void h_calls_notify(struct app *app, const PGresult *res);
/* Looks up the functions calls[0..n) name and fills in their limits and the gateway's defaults
 * (call_resolve). A function that is not registered is a problem with status missing_status
 * (its detail ends in why), as is a 400 of call_resolve; fields are named prefixes[i] + field
 * (prefixes may be NULL: no prefix). Returns 0, or -1 with rs filled. */
int h_calls_resolve(struct resp *rs, struct app *app, struct call *calls,
		    const char *const *prefixes, size_t n, int missing_status, const char *why);

/* The topics API (h_topics.c): management (admins), publishing and publication status. name
 * and id are still percent-encoded path segments; rest is what follows "/v1/async/topic:". */
int h_topic_put(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
		const char *name);
int h_topic_get(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
		const char *name);
int h_topics_list(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who);
int h_topic_delete(const struct req *rq, struct resp *rs, struct app *app,
		   const struct principal *who, const char *name);
int h_topic_publish(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, const char *name);
int h_topic_async(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who, const char *rest);
int h_publication_get(const struct req *rq, struct resp *rs, struct app *app,
		      const struct principal *who, const char *id);
int h_publications_list(const struct req *rq, struct resp *rs, struct app *app,
			const struct principal *who);

/* Answers 503 with Retry-After (database unreachable), or 500 for a failed statement. */
void h_db_error(struct resp *rs, const struct app *app);

/* Whose rows who sees: NULL (every client's) for an admin, else its client name. */
const char *h_scope(const struct principal *who);
/* Runs q with (id, h_scope(who)) for the one what ("call", "schedule", ...) named by id: its
 * rows (caller clears), or NULL with rs filled: 404 when id is no UUID or q finds no row, else
 * the database error. */
PGresult *h_exec_id(struct resp *rs, struct app *app, const struct principal *who, enum query_id q,
		    const char *id, const char *what);

/* Paged lists (GET /v1/calls, /v1/schedules, /v1/publications): ?limit= (1 to H_LIST_MAX,
 * H_LIST_DEFAULT when absent) rows a page, ?after= the last id of the previous page. */
#define H_LIST_DEFAULT 100
#define H_LIST_MAX 1000
/* Parses a limit parameter's text into *limit; false with a 400 in rs when it is not a whole
 * number from 1 to H_LIST_MAX. */
bool h_list_limit(struct resp *rs, const char *text, long *limit);
/* Checks an after parameter (NULL: none): false with a 400 in rs when it is no UUID, the id of
 * a what ("call", "schedule", ...) from a previous page. */
bool h_list_after(struct resp *rs, const char *after, const char *what);
/* One page as a new object (caller puts): {key: items} (takes items), and "next_after", the
 * first column of the last row of res, when the page is full (limit rows). */
struct json_object *h_list_page(const char *key, struct json_object *items, const PGresult *res,
				long limit);

#endif

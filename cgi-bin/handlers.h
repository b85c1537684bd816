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
};

/* A per-process cache of API keys (token hash -> principal and api_keys row version), shared
 * by the threads, for the requests that only insert calls (POST /v1/calls, /v1/async/...):
 * Q_CALLS_INSERT checks the version, so a revoked or changed key inserts nothing and the
 * request is answered again after a fresh lookup. Entries live 60 s at most. */
struct h_keycache *h_keycache_new(void) MUSTCHECK;
void h_keycache_free(struct h_keycache *kc);

struct principal;

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
int h_health(const struct req *rq, struct resp *rs, struct app *app);
int h_drain(const struct req *rq, struct resp *rs, struct app *app);
int h_metrics(const struct req *rq, struct resp *rs, struct app *app);

/* Routes a request to its handler (405 / 404 problems for the rest). */
void route(const struct req *rq, struct resp *rs, struct app *app);

struct call;
/* Enqueues n checked calls in one statement (all or nothing), with the request's
 * Idempotency-Key, and answers 202 (an object, or an array when batch) once they are committed
 * (through app->cq when set: then in one statement with concurrent requests of the process,
 * which cannot fail this one). Frees nothing. */
int h_calls_enqueue(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, struct call *calls, size_t n, bool batch);

/* Answers 503 with Retry-After (database unreachable), or 500 for a failed statement. */
void h_db_error(struct resp *rs, const struct app *app);

#endif

/* h_calls: POST/GET /v1/calls, GET/DELETE /v1/calls/{id}, POST /v1/calls/{id}/retry. */
#define _GNU_SOURCE /* strcasestr */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "auth.h"
#include "call.h"
#include "commitq.h"
#include "jstrict.h"
#include "log.h"
#include "uuid.h"

#define IDEM_KEY_MAX 255

/* The answer to a database error of kind error (sqlstate for DB_QUERY). */
static void db_error_answer(struct resp *rs, const struct app *app, enum db_error error,
			    const char *sqlstate)
{
	if (error == DB_UNAVAILABLE) {
		resp_problem(rs, 503, NULL, "the database is unreachable; nothing was written");
		resp_header(rs, "Retry-After", "%lld", (long long)app->cf.retry_after_s);
	} else if (error == DB_LOST) {
		resp_problem(rs, 503, NULL,
			     "the database connection broke during the request, which may or may "
			     "not have taken effect; check, or repeat it with the same "
			     "Idempotency-Key");
		resp_header(rs, "Retry-After", "%lld", (long long)app->cf.retry_after_s);
	} else {
		resp_problem(rs, 500, NULL, "a database statement failed (sqlstate %s)", sqlstate);
	}
}

void h_db_error(struct resp *rs, const struct app *app)
{
	db_error_answer(rs, app, app->db.error, app->db.sqlstate);
}

const char *h_scope(const struct principal *who)
{
	return who->admin ? NULL : who->client;
}

PGresult *h_exec_id(struct resp *rs, struct app *app, const struct principal *who, enum query_id q,
		    const char *id, const char *what)
{
	PGresult *res;

	if (!uuid_valid(id)) {
		resp_problem(rs, 404, "id", "id: no %s with this id (ids are UUIDs)", what);
		return NULL;
	}
	res = db_exec(&app->db, q, (const char *[]){id, h_scope(who)});
	if (res == NULL) {
		h_db_error(rs, app);
	} else if (PQntuples(res) == 0) {
		resp_problem(rs, 404, "id", "id: no %s with this id", what);
		PQclear(res);
		res = NULL;
	}
	return res;
}

bool h_list_limit(struct resp *rs, const char *text, long *limit)
{
	char *end;

	*limit = strtol(text, &end, 10);
	if (end != text && *end == '\0' && *limit >= 1 && *limit <= H_LIST_MAX)
		return true;
	resp_problem(rs, 400, "limit", "limit: must be a whole number from 1 to %d", H_LIST_MAX);
	return false;
}

bool h_list_after(struct resp *rs, const char *after, const char *what)
{
	if (after == NULL || uuid_valid(after))
		return true;
	resp_problem(rs, 400, "after", "after: must be a %s id from a previous page", what);
	return false;
}

struct json_object *h_list_page(const char *key, struct json_object *items, const PGresult *res,
				long limit)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, key, items);
	if (PQntuples(res) == limit)
		json_object_object_add(
			o, "next_after",
			json_object_new_string(PQgetvalue(res, PQntuples(res) - 1, 0)));
	return o;
}

/* 403 unless who may make every call in calls[0..n): the function, or the target URL, and the
 * callback URLs. Field names follow the JSON instruction, or the transparent-mode request. */
static int check_allowed(struct resp *rs, const struct principal *who, const struct call *calls,
			 size_t n, bool batch, bool transparent)
{
	for (size_t i = 0; i < n; i++) {
		const struct call *c = &calls[i];
		char pre[32] = "";
		const char *field = NULL;
		const char *what = NULL;

		if (batch)
			snprintf(pre, sizeof(pre), "[%zu].", i);
		if (c->function != NULL && !auth_may_function(who, c->function)) {
			field = "function";
			what = "this function";
		} else if (c->target != NULL && !auth_may_url(who, c->target)) {
			field = "target";
			what = "this URL (no url_patterns entry matches it)";
		} else if (c->callback_url != NULL && !auth_may_url(who, c->callback_url)) {
			field = transparent ? "Async-Callback" : "callback";
			what = "this callback URL (no url_patterns entry matches it)";
		} else if (c->failure_callback_url != NULL &&
			   !auth_may_url(who, c->failure_callback_url)) {
			field = transparent ? "Async-Failure-Callback" : "failure_callback";
			what = "this failure callback URL (no url_patterns entry matches it)";
		}
		if (field != NULL) {
			char f[64];

			snprintf(f, sizeof(f), "%s%s", pre, field);
			resp_problem(rs, 403, f, "%s: the %s %s may not call %s", f,
				     who->key_id != NULL ? "API key" : "user",
				     who->key_id != NULL ? who->key_id : who->client, what);
			return -1;
		}
	}
	return 0;
}

/* Fills url with where a call's status lives: public_url, or the mount point, + /v1/calls/id. */
static void status_url(const struct req *rq, const struct app *app, const char *id, struct buf *url)
{
	const char *base = app->cf.public_url[0] != '\0' ? app->cf.public_url : rq->mount;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	buf_printf(url, "%.*s/v1/calls/%s", (int)n, base, id);
}

static struct json_object *accepted_json(const struct req *rq, const struct app *app,
					 const char *id, const char *not_before, bool scheduled)
{
	struct json_object *o = json_object_new_object();
	struct buf url;

	buf_init(&url);
	status_url(rq, app, id, &url);
	json_object_object_add(o, "id", json_object_new_string(id));
	if (not_before != NULL) { /* NULL: the call has been purged since */
		json_object_object_add(o, "state",
				       json_object_new_string(scheduled ? "scheduled" : "queued"));
		json_object_object_add(o, "not_before", json_object_new_string(not_before));
	}
	json_object_object_add(o, "status_url", json_object_new_string(url.data));
	buf_cleanup(&url);
	return o;
}

/* Answers 202 for the calls ids[0..n), in request order: nb[i] is the call's not_before (NULL
 * when it has been purged since) and sched[i] whether it is not due yet. The same JSON as
 * accepted_json's, written as text: on the accept path, a tree of a dozen json-c objects per
 * call cost more than the rest of the answer. Only the status URL's prefix (the configured
 * public_url or the mount point) can need escaping, and json-c escapes it, once; ids and
 * timestamps are hex digits, dashes, colons and dots. */
static void answer_accepted(const struct req *rq, struct resp *rs, const struct app *app,
			    const char *const *ids, const char *const *nb, const bool *sched,
			    size_t n, bool batch)
{
	struct json_object *pre;
	struct buf url, out;
	const char *esc;
	size_t esc_len;

	buf_init(&url);
	status_url(rq, app, "", &url); /* ".../v1/calls/": each id follows it */
	pre = json_object_new_string_len(url.data, (int)url.len);
	esc = json_object_to_json_string_length(
		pre, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &esc_len);
	esc_len--; /* without its closing quote */
	buf_init(&out);
	if (batch)
		buf_puts(&out, "[");
	for (size_t i = 0; i < n; i++) {
		/* buf_puts, not buf_printf: vsnprintf was most of the answer's cost */
		buf_puts(&out, i > 0 ? ",{\"id\":\"" : "{\"id\":\"");
		buf_puts(&out, ids[i]);
		if (nb[i] != NULL) {
			buf_puts(&out, sched[i] ? "\",\"state\":\"scheduled\",\"not_before\":\""
						: "\",\"state\":\"queued\",\"not_before\":\"");
			buf_puts(&out, nb[i]);
		}
		buf_puts(&out, "\",\"status_url\":");
		buf_append(&out, esc, esc_len);
		buf_puts(&out, ids[i]);
		buf_puts(&out, "\"}");
	}
	if (batch)
		buf_puts(&out, "]");
	else
		resp_header(rs, "Location", "%s%s", url.data, ids[0]);
	resp_json_text(rs, 202, &out);
	json_object_put(pre);
	buf_cleanup(&url);
}

int h_calls_resolve(struct resp *rs, struct app *app, struct call *calls,
		    const char *const *prefixes, size_t n, int missing_status, const char *why)
{
	const struct call_env env = {&app->cf, &app->np};
	struct json_object *names = json_object_new_array();
	PGresult *res = NULL;
	const char *params[1];
	struct problem p;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		if (calls[i].function != NULL)
			json_object_array_add(names, json_object_new_string(calls[i].function));
	if (json_object_array_length(names) > 0) {
		params[0] = json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN);
		res = db_exec(&app->db, Q_FUNCTIONS_GET, params);
		if (res == NULL) {
			h_db_error(rs, app);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct call *c = &calls[i];
		const char *prefix = prefixes != NULL ? prefixes[i] : "";
		int64_t lim[4] = {-1, -1, -1, -1};

		if (c->function != NULL) {
			int r;

			for (r = 0; r < PQntuples(res); r++)
				if (strcmp(PQgetvalue(res, r, 0), c->function) == 0)
					break;
			if (r == PQntuples(res)) {
				snprintf(p.field, sizeof(p.field), "%sfunction", prefix);
				resp_problem(rs, missing_status, p.field,
					     "%s: no function named %s is registered%s", p.field,
					     c->function, why);
				goto out;
			}
			for (int k = 0; k < 4; k++)
				if (!PQgetisnull(res, r, k + 1))
					lim[k] = strtoll(PQgetvalue(res, r, k + 1), NULL, 10);
		}
		if (call_resolve(c, &env, lim[0], lim[1], lim[2], lim[3], prefix, &p) != 0) {
			resp_problem(rs, p.status == 400 ? missing_status : p.status, p.field, "%s",
				     p.detail);
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(res);
	json_object_put(names);
	return rc;
}

/* Looks up the functions the calls name: unknown ones are a 400, known ones lend their limits.
 * In a batch, fields are named "[i].field". */
static int resolve_functions(struct resp *rs, struct app *app, struct call *calls, size_t n,
			     bool batch)
{
	char(*prefixes)[32] = NULL;
	const char **pp = NULL;
	int rc;

	if (!batch)
		return h_calls_resolve(rs, app, calls, NULL, n, 400, "");
	prefixes = xcalloc(n, sizeof(*prefixes));
	pp = xcalloc(n, sizeof(*pp));
	for (size_t i = 0; i < n; i++) {
		snprintf(prefixes[i], sizeof(prefixes[i]), "[%zu].", i);
		pp[i] = prefixes[i];
	}
	rc = h_calls_resolve(rs, app, calls, pp, n, 400, "");
	free(pp);
	free(prefixes);
	return rc;
}

/* Headers that honest retries of one request change (tracing, clients' own clocks): left out
 * of the idempotency hash, kept in the call. */
static bool volatile_header(const char *name)
{
	static const char *const names[] = {
		"traceparent",		 "tracestate",	 "baggage",
		"sentry-trace",		 "x-request-id", "x-amzn-trace-id",
		"x-cloud-trace-context", "user-agent",	 "date"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* The idempotency hash, in hex: SHA-256 over each instruction as the client gave it, before
 * the function's and the gateway's defaults fill its gaps (those may change between two
 * tries), without its fresh id and without volatile headers. */
static int request_hash(const struct call *calls, size_t n, bool batch, char *out, size_t outsz)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -1;

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct json_object *row = call_row_json(&calls[i], NULL);
		struct json_object *hdrs = json_object_new_object();
		size_t len;
		const char *s;

		json_object_object_foreach (calls[i].headers, k, v) {
			if (!volatile_header(k))
				json_object_object_add(hdrs, k, json_object_get(v));
		}
		json_object_object_add(row, "headers", hdrs);
		s = json_object_to_json_string_length(row, JSON_C_TO_STRING_PLAIN, &len);
		EVP_DigestUpdate(md, s, len + 1); /* with the NUL, as a separator */
		json_object_put(row);
	}
	EVP_DigestUpdate(md, batch ? "b" : "o", 1);
	if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || outsz < 2 * dlen + 1)
		goto out;
	for (unsigned int i = 0; i < dlen; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/* Answers a repeat of an Idempotency-Key: the first answer again for the same request. */
static void replay(const struct req *rq, struct resp *rs, struct app *app, const char *client,
		   const char *key, const char *hash, char (*ids)[UUID_LEN], const char **idp,
		   size_t n, bool batch)
{
	const char *params[2] = {client, key};
	PGresult *res = db_exec(&app->db, Q_IDEM_GET, params);
	int nr;

	if (res == NULL) {
		h_db_error(rs, app);
		return;
	}
	nr = PQntuples(res);
	if (nr == 0) {
		/* The first request rolled back after we waited for it (it failed): try again. */
		resp_problem(rs, 409, "Idempotency-Key",
			     "Idempotency-Key: in use by a request that did not finish; retry");
	} else if (strcmp(PQgetvalue(res, 0, 0), hash) != 0 ||
		   (PQgetvalue(res, 0, 1)[0] == 't') != batch || (size_t)nr != n) {
		resp_problem(rs, 409, "Idempotency-Key",
			     "Idempotency-Key: already used for a different request");
	} else {
		const char **nb = xcalloc(n, sizeof(*nb));
		bool *sched = xcalloc(n, sizeof(*sched));

		for (int r = 0; r < nr; r++) {
			snprintf(ids[r], UUID_LEN, "%s", PQgetvalue(res, r, 2));
			nb[r] = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3);
			sched[r] = PQgetvalue(res, r, 4)[0] == 't';
		}
		resp_header(rs, "Idempotent-Replayed", "true");
		answer_accepted(rq, rs, app, idp, nb, sched, n, batch);
		free(sched);
		free(nb);
	}
	PQclear(res);
}

/* After the commit of a call due now, wakes the --follow drainers: one NOTIFY per
 * notify_interval per process at most (NOTIFY serialises committing transactions; research:
 * pg-queue-anchors 3). Drainers poll too, so a skipped NOTIFY costs latency, never a call.
 * The commit queue (commitq.c) does the same for the calls it commits. */
static void notify_due(struct app *app)
{
	struct timespec ts;
	int64_t now;
	PGresult *n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (app->last_notify_ms != 0 && now - app->last_notify_ms < app->cf.notify_interval_ms)
		return;
	app->last_notify_ms = now;
	n = db_exec(&app->db, Q_NOTIFY, NULL);
	PQclear(n); /* a failure is logged; the drainers' polling covers it */
}

/* Marks a row for Q_CALLS_INSERT's check of a cached API key: its id and row version. */
static void add_key_check(struct json_object *o, const struct principal *who)
{
	if (who->key_version == NULL)
		return;
	json_object_object_add(o, "kid", json_object_new_string(who->key_id));
	json_object_object_add(o, "kxmin", json_object_new_string(who->key_version));
}

/* The idempotency row of a request: {client, key, hash, ids, batch} as JSON text (new; the
 * caller frees). */
static char *key_row(const struct principal *who, const char *key, const char *hash,
		     const char *const *ids, size_t n, bool batch)
{
	const char *client = who->client;
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	char *text;

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(ids[i]));
	json_object_object_add(o, "client", json_object_new_string(client));
	json_object_object_add(o, "key", json_object_new_string(key));
	json_object_object_add(o, "hash", json_object_new_string(hash));
	json_object_object_add(o, "ids", arr);
	json_object_object_add(o, "batch", json_object_new_boolean(batch));
	add_key_check(o, who);
	text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

int h_calls_enqueue(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, struct call *calls, size_t n, bool batch)
{
	const char *key = req_param(rq, "HTTP_IDEMPOTENCY_KEY");
	const char *client = who->client;
	struct json_object *rows = json_object_new_array();
	char(*ids)[UUID_LEN] = xcalloc(n, UUID_LEN);
	const char **idp = xcalloc(n, sizeof(*idp));
	char(*nbuf)[CQ_TS_LEN] = xcalloc(n, CQ_TS_LEN);
	const char **nb = xcalloc(n, sizeof(*nb));
	bool *sched = xcalloc(n, sizeof(*sched));
	char hash[2 * EVP_MAX_MD_SIZE + 1] = "";
	char *keyrow = NULL;
	struct cq_entry e;
	struct cq_entry *ep = &e;

	if (key != NULL &&
	    (*key == '\0' || strlen(key) > IDEM_KEY_MAX || !http_value_valid(key, strlen(key)))) {
		resp_problem(rs, 400, "Idempotency-Key",
			     "Idempotency-Key: must be 1 to %d bytes of UTF-8 without control "
			     "characters",
			     IDEM_KEY_MAX);
		goto out;
	}
	/* The hash is only kept with a key: no hashing on the plain accept path. */
	if (key != NULL && request_hash(calls, n, batch, hash, sizeof(hash)) != 0) {
		resp_problem(rs, 500, NULL, "hashing failed");
		goto out;
	}
	if (resolve_functions(rs, app, calls, n, batch) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct json_object *row;

		if (uuid_v7(ids[i]) != 0) {
			resp_problem(rs, 500, NULL, "could not make an id");
			goto out;
		}
		idp[i] = ids[i];
		row = call_row_json(&calls[i], ids[i]);
		json_object_object_add(row, "client", json_object_new_string(client));
		if (key != NULL)
			json_object_object_add(row, "ikey", json_object_new_string(key));
		add_key_check(row, who);
		json_object_array_add(rows, row);
	}
	if (key != NULL)
		keyrow = key_row(who, key, hash, idp, n, batch);
	memset(&e, 0, sizeof(e));
	e.rows = json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN);
	e.keyrow = keyrow;
	e.client = client;
	e.key = key;
	e.ids = idp;
	e.n = n;
	e.key_checked = who->key_version != NULL;
	for (size_t i = 0; i < n; i++)
		e.debounce = e.debounce || calls[i].debounce_key != NULL;
	e.not_before = nbuf;
	e.scheduled = sched;
	/* Under a threaded FastCGI process, the commit is shared with concurrent requests. */
	if (app->cq != NULL)
		commitq_submit(app->cq, &e, &app->cq_counted);
	else
		commitq_run(&app->db, &ep, 1);
	if (e.result == CQ_FAILED) {
		db_error_answer(rs, app, e.error, e.sqlstate);
		goto out;
	}
	if (e.result == CQ_AUTH_STALE) {
		/* route() authenticates afresh and runs the request again; no answer here. */
		app->auth_stale = true;
		goto out;
	}
	if (e.result == CQ_KEY_TAKEN) {
		replay(rq, rs, app, client, key, hash, ids, idp, n, batch);
		goto out;
	}
	log_debug("enqueue calls=%zu first=%s batch=%d", n, ids[0], batch);
	for (size_t i = 0; i < n; i++)
		nb[i] = nbuf[i][0] != '\0' ? nbuf[i] : NULL;
	answer_accepted(rq, rs, app, idp, nb, sched, n, batch);
	if (app->cq == NULL && e.due)
		notify_due(app);
out:
	free(keyrow);
	json_object_put(rows);
	free(sched);
	free(nb);
	free(nbuf);
	free(idp);
	free(ids);
	return 0;
}

/* 400 when two calls of one batch share a debounce_key: which one should supersede the other
 * is not for the gateway to guess. */
static int debounce_unique(struct resp *rs, const struct call *calls, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (calls[i].debounce_key == NULL)
			continue;
		for (size_t k = 0; k < i; k++) {
			if (calls[k].debounce_key != NULL &&
			    strcmp(calls[k].debounce_key, calls[i].debounce_key) == 0) {
				char f[48];

				snprintf(f, sizeof(f), "[%zu].debounce_key", i);
				resp_problem(rs, 400, f,
					     "%s: [%zu] has the same debounce_key; a batch may "
					     "hold each key once",
					     f, k);
				return -1;
			}
		}
	}
	return 0;
}

/* application/json, optionally with parameters; a charset, if given, must be UTF-8. */
static bool json_content_type(const char *ct)
{
	const char *cs;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))
		return false;
	cs = strcasestr(ct, "charset=");
	if (cs != NULL) {
		cs += 8;
		if (*cs == '"')
			cs++;
		return strncasecmp(cs, "utf-8", 5) == 0 || strncasecmp(cs, "utf8", 4) == 0;
	}
	return true;
}

int h_calls_post(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who)
{
	const struct call_env env = {&app->cf, &app->np};
	struct json_object *doc = NULL;
	struct call *calls = NULL;
	size_t n = 0;
	bool batch;
	struct problem p;

	if (!json_content_type(req_param(rq, "CONTENT_TYPE"))) {
		resp_problem(rs, 415, "Content-Type",
			     "Content-Type: send the instruction as application/json");
		goto out;
	}
	if (rq->body_len == 0) {
		resp_problem(rs, 400, "body",
			     "body: a call instruction (a JSON object) or an array of them is "
			     "required");
		goto out;
	}
	doc = jstrict_parse(rq->body, rq->body_len, (int)app->cf.max_json_depth, &p);
	if (doc == NULL) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	batch = json_object_is_type(doc, json_type_array);
	n = batch ? json_object_array_length(doc) : 1;
	if (batch && n == 0) {
		resp_problem(rs, 400, "body", "body: the array holds no call instructions");
		goto out;
	}
	if ((int64_t)n > app->cf.max_batch) {
		resp_problem(rs, 400, "body", "body: %zu instructions; at most %lld per request", n,
			     (long long)app->cf.max_batch);
		goto out;
	}
	calls = xcalloc(n, sizeof(*calls));
	for (size_t i = 0; i < n; i++)
		call_init(&calls[i]);
	for (size_t i = 0; i < n; i++) {
		char prefix[32] = "";

		if (batch)
			snprintf(prefix, sizeof(prefix), "[%zu].", i);
		if (call_from_json(&calls[i], batch ? json_object_array_get_idx(doc, i) : doc, &env,
				   prefix, &p) != 0) {
			resp_problem(rs, p.status, p.field, "%s", p.detail);
			goto out;
		}
	}
	if (debounce_unique(rs, calls, n) == 0 &&
	    check_allowed(rs, who, calls, n, batch, false) == 0)
		h_calls_enqueue(rq, rs, app, who, calls, n, batch);
out:
	for (size_t i = 0; calls != NULL && i < n; i++)
		call_cleanup(&calls[i]);
	free(calls);
	json_object_put(doc);
	return 0;
}

int h_async(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
	    const char *rest)
{
	const struct call_env env = {&app->cf, &app->np};
	struct call c;
	struct problem p;

	call_init(&c);
	if (call_from_request(&c, rq, rest, &env, &p) != 0)
		resp_problem(rs, p.status, p.field, "%s", p.detail);
	else if (check_allowed(rs, who, &c, 1, false, true) == 0)
		h_calls_enqueue(rq, rs, app, who, &c, 1, false);
	call_cleanup(&c);
	return 0;
}

/* Header values that look like credentials are shown as "[redacted]" in status output:
 * status pages end up in dashboards and tickets. */
static bool secret_header(const char *name)
{
	static const char *const parts[] = {"auth",   "token", "secret",    "password",
					    "cookie", "key",   "signature", "session"};

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (strcasestr(name, parts[i]) != NULL)
			return true;
	return false;
}

static void redact_headers(struct json_object *headers)
{
	if (headers == NULL || !json_object_is_type(headers, json_type_object))
		return;
	json_object_object_foreach (headers, k, v) {
		(void)v;
		if (secret_header(k))
			json_object_object_add(headers, k, json_object_new_string("[redacted]"));
	}
}

int h_call_get(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
	       const char *id)
{
	PGresult *res = NULL;
	PGresult *att = NULL;
	struct json_object *o = NULL;
	struct json_object *arr;
	struct json_object *cb;
	const char *params[2] = {id, h_scope(who)};

	res = h_exec_id(rs, app, who, Q_CALL_GET, id, "call");
	if (res == NULL)
		goto out;
	/* The answer depends on Prefer (RFC 7240 section 2: say so in Vary). */
	resp_header(rs, "Vary", "Prefer");
	if (h_prefers_response(rq) && strcmp(PQgetvalue(res, 0, 1), "succeeded") == 0) {
		struct buf u;

		/* The Asynchronous Request-Reply pattern: done, so see the response. */
		buf_init(&u);
		status_url(rq, app, id, &u);
		buf_puts(&u, "/response");
		resp_header(rs, "Location", "%s", u.data);
		resp_header(rs, "Preference-Applied", "return=response");
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "state", json_object_new_string("succeeded"));
		json_object_object_add(o, "response_url", json_object_new_string(u.data));
		resp_json(rs, 303, o);
		buf_cleanup(&u);
		goto out;
	}
	att = db_exec(&app->db, Q_CALL_ATTEMPTS, params);
	if (att == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	o = db_row_json(res, 0);
	redact_headers(json_object_object_get(o, "headers"));
	if (json_object_object_get_ex(o, "callback", &cb))
		redact_headers(json_object_object_get(cb, "headers"));
	if (json_object_object_get_ex(o, "failure_callback", &cb))
		redact_headers(json_object_object_get(cb, "headers"));
	arr = json_object_new_array();
	for (int r = 0; r < PQntuples(att); r++)
		json_object_array_add(arr, db_row_json(att, r));
	json_object_object_add(o, "attempts", arr);
	resp_json(rs, 200, o);
out:
	json_object_put(o);
	PQclear(att);
	PQclear(res);
	return 0;
}

static bool state_known(const char *s)
{
	static const char *const states[] = {"scheduled", "queued", "in_flight", "retrying",
					     "succeeded", "dead",   "expired",	 "cancelled"};

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

int h_calls_list(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who)
{
	char *state = NULL, *function = NULL, *corr = NULL, *after = NULL;
	char limit_text[16];
	long limit = H_LIST_DEFAULT;
	char *copy = xstrdup(rq->query);
	char *save = NULL;
	PGresult *res = NULL;
	struct json_object *o = NULL;
	struct json_object *arr;
	const char *params[6];

	for (char *kv = strtok_r(copy, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		char *val;
		char **dst = NULL;

		for (char *t = kv; *t != '\0'; t++)
			if (*t == '+')
				*t = ' ';
		if (eq == NULL)
			eq = kv + strlen(kv);
		val = http_pct_decode(*eq == '=' ? eq + 1 : eq, strlen(*eq == '=' ? eq + 1 : eq));
		*eq = '\0';
		if (val == NULL) {
			resp_problem(rs, 400, kv, "%s: malformed percent-encoding", kv);
			goto out;
		}
		if (strcmp(kv, "state") == 0)
			dst = &state;
		else if (strcmp(kv, "function") == 0)
			dst = &function;
		else if (strcmp(kv, "correlation_id") == 0)
			dst = &corr;
		else if (strcmp(kv, "after") == 0)
			dst = &after;
		else if (strcmp(kv, "limit") == 0) {
			bool ok = h_list_limit(rs, val, &limit);

			free(val);
			if (!ok)
				goto out;
			continue;
		} else {
			free(val);
			resp_problem(rs, 400, kv,
				     "%.100s: unknown parameter (state, function, correlation_id, "
				     "limit, after)",
				     kv);
			goto out;
		}
		free(*dst);
		*dst = val;
	}
	if (state != NULL && !state_known(state)) {
		resp_problem(rs, 400, "state",
			     "state: must be one of scheduled, queued, in_flight, retrying, "
			     "succeeded, dead, expired, cancelled");
		goto out;
	}
	if (!h_list_after(rs, after, "call"))
		goto out;
	snprintf(limit_text, sizeof(limit_text), "%ld", limit);
	params[0] = state;
	params[1] = function;
	params[2] = corr;
	params[3] = after;
	params[4] = limit_text;
	params[5] = h_scope(who);
	res = db_exec(&app->db, Q_CALLS_LIST, params);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	arr = json_object_new_array();
	for (int r = 0; r < PQntuples(res); r++)
		json_object_array_add(arr, db_row_json(res, r));
	o = h_list_page("calls", arr, res, limit);
	resp_json(rs, 200, o);
out:
	json_object_put(o);
	PQclear(res);
	free(state);
	free(function);
	free(corr);
	free(after);
	free(copy);
	return 0;
}

/* After a state change found no row: 404 if there is no such call (for this client), else 409
 * with its state. When the change was lost with the connection (DB_LOST), the call may already
 * be in the state asked for: then that is the answer (ok_state, via ok()). */
static void explain_state(const struct req *rq, struct resp *rs, struct app *app,
			  const struct principal *who, const char *id, const char *what,
			  const char *ok_state,
			  void (*ok)(const struct req *, struct resp *, const struct app *,
				     const char *, const char *))
{
	const char *params[2] = {id, h_scope(who)};
	bool lost = app->db.error == DB_LOST;
	PGresult *res = db_exec(&app->db, Q_CALL_STATE, params);

	if (res == NULL)
		h_db_error(rs, app);
	else if (PQntuples(res) == 0)
		resp_problem(rs, 404, "id", "id: no call with this id");
	else if (lost && strcmp(PQgetvalue(res, 0, 0), ok_state) == 0)
		ok(rq, rs, app, id, PQgetvalue(res, 0, 1));
	else
		resp_problem(rs, 409, "state", "state: the call is %s; %s", PQgetvalue(res, 0, 0),
			     what);
	PQclear(res);
}

static void cancelled(const struct req *rq, struct resp *rs, const struct app *app, const char *id,
		      const char *not_before)
{
	struct json_object *o = json_object_new_object();

	(void)rq;
	(void)app;
	(void)not_before;
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string("cancelled"));
	resp_json(rs, 200, o);
	json_object_put(o);
}

static void requeued(const struct req *rq, struct resp *rs, const struct app *app, const char *id,
		     const char *not_before)
{
	struct json_object *o = accepted_json(rq, app, id, not_before, false);

	resp_json(rs, 202, o);
	json_object_put(o);
}

int h_call_delete(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who, const char *id)
{
	const char *params[2] = {id, h_scope(who)};
	PGresult *res;

	if (!uuid_valid(id)) {
		resp_problem(rs, 404, "id", "id: no call with this id (ids are UUIDs)");
		return 0;
	}
	res = db_exec(&app->db, Q_CALL_CANCEL, params);
	if (res == NULL && app->db.error != DB_LOST) {
		h_db_error(rs, app);
		return 0;
	}
	if (res == NULL || PQntuples(res) == 0) {
		explain_state(rq, rs, app, who, id,
			      "only scheduled, queued and retrying calls can be cancelled",
			      "cancelled", cancelled);
	} else {
		cancelled(rq, rs, app, id, NULL);
		log_info("cancel call=%s", id);
	}
	PQclear(res);
	return 0;
}

int h_call_retry(const struct req *rq, struct resp *rs, struct app *app,
		 const struct principal *who, const char *id)
{
	const char *params[2] = {id, h_scope(who)};
	PGresult *res;

	if (!uuid_valid(id)) {
		resp_problem(rs, 404, "id", "id: no call with this id (ids are UUIDs)");
		return 0;
	}
	res = db_exec(&app->db, Q_CALL_RETRY, params);
	if (res == NULL && app->db.error != DB_LOST) {
		h_db_error(rs, app);
		return 0;
	}
	if (res == NULL || PQntuples(res) == 0) {
		explain_state(rq, rs, app, who, id,
			      "only dead, expired and cancelled calls can be retried", "queued",
			      requeued);
	} else {
		requeued(rq, rs, app, id, PQgetvalue(res, 0, 1));
		log_info("retry call=%s", id);
	}
	PQclear(res);
	return 0;
}

/* ---- for h_schedules.c: a schedule's call instruction passes the same checks ---- */

int h_calls_admit(struct resp *rs, struct app *app, const struct principal *who, struct call *c)
{
	if (check_allowed(rs, who, c, 1, false, false) != 0)
		return -1;
	return resolve_functions(rs, app, c, 1, false);
}

void h_calls_redact(struct json_object *instruction)
{
	struct json_object *cb;

	redact_headers(json_object_object_get(instruction, "headers"));
	if (json_object_object_get_ex(instruction, "callback", &cb))
		redact_headers(json_object_object_get(cb, "headers"));
	if (json_object_object_get_ex(instruction, "failure_callback", &cb))
		redact_headers(json_object_object_get(cb, "headers"));
}

/* For h_topics.c: a publish hashes its message and wakes the drainers like a POST does. */
int h_calls_hash(const struct call *calls, size_t n, bool batch, char *out, size_t outsz)
{
	return request_hash(calls, n, batch, out, outsz);
}

void h_calls_notify(struct app *app, const PGresult *res)
{
	bool due = false;

	for (int i = 0; i < PQntuples(res) && !due; i++)
		due = !PQgetisnull(res, i, 2) && PQgetvalue(res, i, 2)[0] == 'f';
	if (due)
		notify_due(app);
}

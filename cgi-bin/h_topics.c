/* h_topics: topics (fan-out). PUT/GET/DELETE /v1/topics/{name}, GET /v1/topics (admins);
 * POST /v1/topics/{name}/calls and ANY /v1/async/topic:{name}/... (publish: one call per
 * matching subscription, with the publication row, in one transaction); GET
 * /v1/publications[/{id}] (status). */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "auth.h"
#include "call.h"
#include "jstrict.h"
#include "log.h"
#include "topic.h"
#include "uuid.h"

#define IDEM_KEY_MAX 255

/* The fields a subscription may give beyond name and filter: where and how its calls go. */
static const char *const sub_fields[] = {"function", "path",	"target",	   "headers",
					 "retry",    "timeout", "connect_timeout", "priority"};

static bool sub_field(const char *k)
{
	for (size_t i = 0; i < sizeof(sub_fields) / sizeof(sub_fields[0]); i++)
		if (strcmp(k, sub_fields[i]) == 0)
			return true;
	return false;
}

/* The principal's name for a 403 detail. */
static const char *who_name(const struct principal *who)
{
	return who->key_id != NULL ? who->key_id : who->client;
}

/* Managing topics is for admins: 403 (and false) for anyone else. */
static bool admin_only(struct resp *rs, const struct principal *who)
{
	if (who->admin)
		return true;
	resp_problem(rs, 403, NULL,
		     "only admin keys and users may manage topics; the %s %s is not one",
		     who->key_id != NULL ? "API key" : "user", who_name(who));
	return false;
}

/* Who may publish to a topic: an admin, or a client whose functions patterns match
 * "topic:{name}". */
static bool may_publish(const struct principal *who, const char *name)
{
	char fn[160];

	snprintf(fn, sizeof(fn), "topic:%s", name);
	return auth_may_function(who, fn);
}

/* application/json, with parameters or not. */
static bool json_content(const char *ct)
{
	return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* Parses the request body as a JSON object; NULL with rs filled otherwise. */
static struct json_object *body_object(const struct req *rq, struct resp *rs, struct app *app,
				       const char *what)
{
	struct json_object *doc;
	struct problem p;

	if (!json_content(req_param(rq, "CONTENT_TYPE"))) {
		resp_problem(rs, 415, "Content-Type", "Content-Type: send %s as application/json",
			     what);
		return NULL;
	}
	if (rq->body_len == 0) {
		resp_problem(rs, 400, "body", "body: %s (a JSON object) is required", what);
		return NULL;
	}
	doc = jstrict_parse(rq->body, rq->body_len, (int)app->cf.max_json_depth, &p);
	if (doc == NULL) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		return NULL;
	}
	if (!json_object_is_type(doc, json_type_object)) {
		resp_problem(rs, 400, "body", "body: %s must be a JSON object", what);
		json_object_put(doc);
		return NULL;
	}
	return doc;
}

/* Appends base (public_url or the mount point) + /v1/what/id to url. */
static void api_url(const struct req *rq, const struct app *app, const char *what, const char *id,
		    struct buf *url)
{
	const char *base = app->cf.public_url[0] != '\0' ? app->cf.public_url : rq->mount;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	buf_printf(url, "%.*s/v1/%s/%s", (int)n, base, what, id);
}

static void add_url(struct json_object *o, const struct req *rq, const struct app *app,
		    const char *what, const char *id)
{
	struct buf url;

	buf_init(&url);
	api_url(rq, app, what, id, &url);
	json_object_object_add(o, "status_url", json_object_new_string(url.data));
	buf_cleanup(&url);
}

static struct json_object *parse_col(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : json_tokener_parse(PQgetvalue(res, row, col));
}

/* A topic from Q_TOPIC_GET's rows, as the API shows it (new). */
static struct json_object *topic_json(const PGresult *res)
{
	struct json_object *o = json_object_new_object();
	struct json_object *subs = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(PQgetvalue(res, 0, 0)));
	json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, 0, 1)));
	json_object_object_add(o, "updated_at", json_object_new_string(PQgetvalue(res, 0, 2)));
	for (int r = 0; r < PQntuples(res); r++) {
		struct json_object *s, *spec, *filter;

		if (PQgetisnull(res, r, 3))
			continue;
		s = json_object_new_object();
		json_object_object_add(s, "name", json_object_new_string(PQgetvalue(res, r, 3)));
		spec = parse_col(res, r, 4);
		if (spec != NULL) {
			json_object_object_foreach (spec, k, v) {
				json_object_object_add(s, k, json_object_get(v));
			}
		}
		json_object_put(spec);
		filter = parse_col(res, r, 5);
		if (filter != NULL)
			json_object_object_add(s, "filter", filter);
		json_object_array_add(subs, s);
	}
	json_object_object_add(o, "subscriptions", subs);
	return o;
}

/* Checks subscription i of a PUT: its name (unique), filter and call fields, the latter as a
 * call instruction is checked (c gets the call). Adds the subscription as stored to out.
 * Returns 0, or -1 with p filled. */
static int check_subscription(struct json_object *sub, size_t i, struct json_object *out,
			      const struct call_env *env, struct call *c, struct problem *p)
{
	char prefix[48], field[96];
	struct json_object *name = NULL, *filter = NULL, *spec = NULL, *stored;

	snprintf(prefix, sizeof(prefix), "subscriptions[%zu].", i);
	p->status = 400;
	if (!json_object_is_type(sub, json_type_object)) {
		snprintf(p->field, sizeof(p->field), "subscriptions[%zu]", i);
		snprintf(p->detail, sizeof(p->detail), "%s: a subscription must be a JSON object",
			 p->field);
		return -1;
	}
	spec = json_object_new_object();
	json_object_object_foreach (sub, k, v) {
		if (strcmp(k, "name") == 0) {
			name = v;
		} else if (strcmp(k, "filter") == 0) {
			filter = v;
		} else if (sub_field(k)) {
			json_object_object_add(spec, k, json_object_get(v));
		} else {
			snprintf(p->field, sizeof(p->field), "%s%.60s", prefix, k);
			snprintf(p->detail, sizeof(p->detail),
				 "%s: unknown field (name, function, path, target, headers, retry, "
				 "timeout, filter)",
				 p->field);
			goto bad;
		}
	}
	snprintf(p->field, sizeof(p->field), "%sname", prefix);
	if (name == NULL || !json_object_is_type(name, json_type_string) ||
	    !topic_name_valid(json_object_get_string(name))) {
		snprintf(p->detail, sizeof(p->detail),
			 "%s: is required: 1 to 128 letters, digits, '_', '.', '-'", p->field);
		goto bad;
	}
	for (size_t j = 0; j < json_object_array_length(out); j++) {
		struct json_object *other =
			json_object_object_get(json_object_array_get_idx(out, j), "name");

		if (strcmp(json_object_get_string(other), json_object_get_string(name)) == 0) {
			snprintf(p->detail, sizeof(p->detail),
				 "%s: %s is the name of subscriptions[%zu] too; names are unique "
				 "in a topic",
				 p->field, json_object_get_string(name), j);
			goto bad;
		}
	}
	snprintf(field, sizeof(field), "%sfilter", prefix);
	if (filter != NULL && topic_filter_check(filter, field, p) != 0)
		goto bad;
	if (call_from_json(c, spec, env, prefix, p) != 0)
		goto bad;
	stored = json_object_new_object();
	json_object_object_add(stored, "name", json_object_get(name));
	json_object_object_foreach (spec, sk, sv) {
		json_object_object_add(stored, sk, json_object_get(sv));
	}
	if (filter != NULL)
		json_object_object_add(stored, "filter", json_object_get(filter));
	json_object_array_add(out, stored);
	json_object_put(spec);
	return 0;
bad:
	json_object_put(spec);
	return -1;
}

static void cleanup_calls(struct call *calls, size_t n)
{
	for (size_t i = 0; calls != NULL && i < n; i++)
		call_cleanup(&calls[i]);
	free(calls);
}

/* Answers with the topic as stored (status 200 or 201). */
static void answer_topic(const struct req *rq, struct resp *rs, struct app *app, const char *name,
			 int status)
{
	const char *params[1] = {name};
	PGresult *res = db_exec(&app->db, Q_TOPIC_GET, params);
	struct json_object *o;

	if (res == NULL) {
		h_db_error(rs, app);
		return;
	}
	if (PQntuples(res) == 0) {
		resp_problem(rs, 404, "name", "name: no topic named %s", name);
	} else {
		struct buf url;

		o = topic_json(res);
		if (status == 201) {
			buf_init(&url);
			api_url(rq, app, "topics", name, &url);
			resp_header(rs, "Location", "%s", url.data);
			buf_cleanup(&url);
		}
		resp_json(rs, status, o);
		json_object_put(o);
	}
	PQclear(res);
}

int h_topic_put(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
		const char *name)
{
	const struct call_env env = {&app->cf, &app->np};
	struct json_object *doc = NULL, *subs = NULL, *stored = json_object_new_array();
	struct call *calls = NULL;
	char(*prefixes)[48] = NULL;
	const char **pp = NULL;
	size_t n = 0;
	PGresult *res = NULL;
	const char *params[2];
	struct problem p;
	bool created;

	if (!admin_only(rs, who))
		goto out;
	if (!topic_name_valid(name)) {
		resp_problem(rs, 400, "name",
			     "name: a topic name is 1 to 128 letters, digits, '_', '.', '-'");
		goto out;
	}
	doc = body_object(rq, rs, app, "the topic");
	if (doc == NULL)
		goto out;
	json_object_object_foreach (doc, k, v) {
		if (strcmp(k, "subscriptions") == 0) {
			subs = v;
		} else {
			resp_problem(rs, 400, k, "%.60s: unknown field (subscriptions)", k);
			goto out;
		}
	}
	if (subs == NULL || !json_object_is_type(subs, json_type_array)) {
		resp_problem(rs, 400, "subscriptions",
			     "subscriptions: is required: an array of subscriptions (it may be "
			     "empty)");
		goto out;
	}
	n = json_object_array_length(subs);
	if (n > TOPIC_MAX_SUBSCRIPTIONS) {
		resp_problem(rs, 400, "subscriptions",
			     "subscriptions: %zu given; a topic has at most %d", n,
			     TOPIC_MAX_SUBSCRIPTIONS);
		n = 0;
		goto out;
	}
	calls = xcalloc(n + 1, sizeof(*calls));
	prefixes = xcalloc(n + 1, sizeof(*prefixes));
	pp = xcalloc(n + 1, sizeof(*pp));
	for (size_t i = 0; i < n; i++)
		call_init(&calls[i]);
	for (size_t i = 0; i < n; i++) {
		snprintf(prefixes[i], sizeof(prefixes[i]), "subscriptions[%zu].", i);
		pp[i] = prefixes[i];
		if (check_subscription(json_object_array_get_idx(subs, i), i, stored, &env,
				       &calls[i], &p) != 0) {
			resp_problem(rs, p.status, p.field, "%s", p.detail);
			goto out;
		}
	}
	if (h_calls_resolve(rs, app, calls, pp, n, 400, "") != 0)
		goto out;
	params[0] = name;
	params[1] = json_object_to_json_string_ext(stored, JSON_C_TO_STRING_PLAIN);
	res = db_exec(&app->db, Q_TOPIC_PUT, params);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	created = PQgetvalue(res, 0, 0)[0] == 't';
	log_info("topic put name=%s subscriptions=%zu created=%d", name, n, created);
	answer_topic(rq, rs, app, name, created ? 201 : 200);
out:
	PQclear(res);
	cleanup_calls(calls, n);
	free(prefixes);
	free(pp);
	json_object_put(stored);
	json_object_put(doc);
	return 0;
}

int h_topic_get(const struct req *rq, struct resp *rs, struct app *app, const struct principal *who,
		const char *name)
{
	if (!admin_only(rs, who))
		return 0;
	if (!topic_name_valid(name)) {
		resp_problem(rs, 404, "name", "name: no topic with this name");
		return 0;
	}
	answer_topic(rq, rs, app, name, 200);
	return 0;
}

int h_topics_list(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who)
{
	PGresult *res;
	struct json_object *o, *arr;

	if (!admin_only(rs, who))
		return 0;
	res = db_exec(&app->db, Q_TOPICS_LIST, NULL);
	if (res == NULL) {
		h_db_error(rs, app);
		return 0;
	}
	o = json_object_new_object();
	arr = json_object_new_array();
	for (int r = 0; r < PQntuples(res); r++) {
		struct json_object *t = db_row_json(res, r);

		add_url(t, rq, app, "topics", PQgetvalue(res, r, 0));
		json_object_array_add(arr, t);
	}
	json_object_object_add(o, "topics", arr);
	resp_json(rs, 200, o);
	json_object_put(o);
	PQclear(res);
	return 0;
}

int h_topic_delete(const struct req *rq, struct resp *rs, struct app *app,
		   const struct principal *who, const char *name)
{
	const char *params[1] = {name};
	PGresult *res;

	(void)rq;
	if (!admin_only(rs, who))
		return 0;
	if (!topic_name_valid(name)) {
		resp_problem(rs, 404, "name", "name: no topic with this name");
		return 0;
	}
	res = db_exec(&app->db, Q_TOPIC_DELETE, params);
	if (res == NULL) {
		h_db_error(rs, app);
		return 0;
	}
	if (PQgetvalue(res, 0, 0)[0] == 't') {
		log_info("topic delete name=%s", name);
		rs->status = 204;
	} else {
		resp_problem(rs, 404, "name", "name: no topic named %s", name);
	}
	PQclear(res);
	return 0;
}

/* ---- publishing ---- */

/* The 202 answer's object: publication id, topic, status URL and an empty calls array. */
static struct json_object *publication_json(const struct req *rq, const struct app *app,
					    const char *id, const char *topic)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "topic", json_object_new_string(topic));
	add_url(o, rq, app, "publications", id);
	json_object_object_add(o, "calls", json_object_new_array());
	return o;
}

static void add_call(struct json_object *pub, const struct req *rq, const struct app *app,
		     const char *sub, const char *id, const char *state, const char *not_before)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "subscription", json_object_new_string(sub));
	json_object_object_add(c, "id", json_object_new_string(id));
	if (state != NULL)
		json_object_object_add(c, "state", json_object_new_string(state));
	if (not_before != NULL)
		json_object_object_add(c, "not_before", json_object_new_string(not_before));
	add_url(c, rq, app, "calls", id);
	json_object_array_add(json_object_object_get(pub, "calls"), c);
}

static void answer_published(const struct req *rq, struct resp *rs, const struct app *app,
			     struct json_object *pub, bool replayed)
{
	struct buf url;

	if (json_object_array_length(json_object_object_get(pub, "calls")) == 0)
		json_object_object_add(
			pub, "note",
			json_object_new_string("no subscription of the topic matched this message, "
					       "so no call was made"));
	buf_init(&url);
	api_url(rq, app, "publications", json_object_get_string(json_object_object_get(pub, "id")),
		&url);
	resp_header(rs, "Location", "%s", url.data);
	buf_cleanup(&url);
	if (replayed)
		resp_header(rs, "Idempotent-Replayed", "true");
	resp_json(rs, 202, pub);
}

/* Answers 202 from a publication as stored (a replayed Idempotency-Key, or a commit whose
 * answer was lost). client NULL: any. */
static void answer_stored(const struct req *rq, struct resp *rs, struct app *app, const char *id,
			  const char *client, bool replayed)
{
	const char *params[2] = {id, client};
	PGresult *res = db_exec(&app->db, Q_PUBLICATION_GET, params);
	struct json_object *pub;

	if (res == NULL) {
		h_db_error(rs, app);
		return;
	}
	if (PQntuples(res) == 0) {
		resp_problem(rs, 409, "Idempotency-Key",
			     "Idempotency-Key: in use by a request that did not finish; retry");
		PQclear(res);
		return;
	}
	pub = publication_json(rq, app, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	for (int r = 0; r < PQntuples(res); r++)
		if (!PQgetisnull(res, r, 4))
			add_call(pub, rq, app, PQgetvalue(res, r, 3), PQgetvalue(res, r, 4),
				 PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5),
				 PQgetisnull(res, r, 6) ? NULL : PQgetvalue(res, r, 6));
	answer_published(rq, rs, app, pub, replayed);
	json_object_put(pub);
	PQclear(res);
}

/* A repeat of an Idempotency-Key: the first answer again for the same message to the same
 * topic, 409 otherwise. */
static void replay(const struct req *rq, struct resp *rs, struct app *app,
		   const struct principal *who, const char *topic, const char *key,
		   const char *hash)
{
	const char *params[2] = {who->client, key};
	PGresult *res = db_exec(&app->db, Q_PUBLICATION_BY_KEY, params);

	if (res == NULL) {
		h_db_error(rs, app);
		return;
	}
	if (PQntuples(res) == 0)
		resp_problem(rs, 409, "Idempotency-Key",
			     "Idempotency-Key: in use by a request that did not finish; retry");
	else if (strcmp(PQgetvalue(res, 0, 1), topic) != 0 ||
		 strcmp(PQgetvalue(res, 0, 2), hash) != 0)
		resp_problem(rs, 409, "Idempotency-Key",
			     "Idempotency-Key: already used for a different publication");
	else
		answer_stored(rq, rs, app, PQgetvalue(res, 0, 0), NULL, true);
	PQclear(res);
}

/* A statement inside the publish transaction failed: roll back and answer. A broken
 * connection took the transaction with it, so nothing was written either way. */
static void tx_failed(struct resp *rs, struct app *app)
{
	enum db_error err = app->db.error;
	char state[6];
	PGresult *res;

	memcpy(state, app->db.sqlstate, sizeof(state));
	res = db_exec(&app->db, Q_TX_ROLLBACK, NULL);
	PQclear(res);
	app->db.error = err == DB_LOST ? DB_UNAVAILABLE : err;
	memcpy(app->db.sqlstate, state, sizeof(state));
	h_db_error(rs, app);
}

/* The row of ids[i] in res (RETURNING order is not promised), or -1. */
static int row_of(const PGresult *res, const char *id)
{
	for (int r = 0; r < PQntuples(res); r++)
		if (strcmp(PQgetvalue(res, r, 0), id) == 0)
			return r;
	return -1;
}

/* Writes the publication and its n calls in one transaction and answers 202. */
static void publish_write(const struct req *rq, struct resp *rs, struct app *app,
			  const struct principal *who, const char *topic, struct call *calls,
			  const char *const *subs, size_t n, const char *key, const char *hash)
{
	char pid[UUID_LEN];
	char(*ids)[UUID_LEN] = xcalloc(n + 1, UUID_LEN);
	struct json_object *rows = json_object_new_array();
	struct json_object *idl = json_object_new_array();
	struct json_object *subl = json_object_new_array();
	struct json_object *pub = NULL;
	PGresult *res = NULL, *ins = NULL;
	const char *params[8] = {NULL};

	if (uuid_v7(pid) != 0) {
		resp_problem(rs, 500, NULL, "could not make an id");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (uuid_v7(ids[i]) != 0) {
			resp_problem(rs, 500, NULL, "could not make an id");
			goto out;
		}
		struct json_object *row = call_row_json(&calls[i], ids[i]);

		json_object_object_add(row, "client", json_object_new_string(who->client));
		json_object_array_add(rows, row);
		json_object_array_add(idl, json_object_new_string(ids[i]));
		json_object_array_add(subl, json_object_new_string(subs[i]));
	}
	res = db_exec(&app->db, Q_TX_BEGIN, NULL);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	PQclear(res);
	params[0] = pid;
	params[1] = topic;
	params[2] = who->client;
	params[3] = json_object_to_json_string_ext(idl, JSON_C_TO_STRING_PLAIN);
	params[4] = json_object_to_json_string_ext(subl, JSON_C_TO_STRING_PLAIN);
	params[5] = key;
	params[6] = key != NULL ? hash : NULL;
	res = db_exec(&app->db, Q_PUBLICATION_INSERT, params);
	if (res == NULL) {
		tx_failed(rs, app);
		goto out;
	}
	if (PQntuples(res) == 0) { /* the key is taken: answer as the first time, or 409 */
		PQclear(db_exec(&app->db, Q_TX_ROLLBACK, NULL));
		replay(rq, rs, app, who, topic, key, hash);
		goto out;
	}
	if (n > 0) {
		/* The calls themselves carry no key: the publication holds it. */
		memset(params, 0, sizeof(params));
		params[0] = json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN);
		params[1] = "[]";
		ins = db_exec(&app->db, Q_CALLS_INSERT, params);
		if (ins == NULL) {
			tx_failed(rs, app);
			goto out;
		}
	}
	PQclear(res);
	res = db_exec(&app->db, Q_TX_COMMIT, NULL);
	if (res == NULL) {
		if (app->db.error == DB_LOST) /* did the COMMIT make it? our id says */
			answer_stored(rq, rs, app, pid, NULL, false);
		else
			h_db_error(rs, app);
		goto out;
	}
	log_info("publish topic=%s publication=%s calls=%zu", topic, pid, n);
	pub = publication_json(rq, app, pid, topic);
	for (size_t i = 0; i < n; i++) {
		int r = row_of(ins, ids[i]);

		add_call(pub, rq, app, subs[i], ids[i],
			 r < 0 ? NULL : (PQgetvalue(ins, r, 2)[0] == 't' ? "scheduled" : "queued"),
			 r < 0 ? NULL : PQgetvalue(ins, r, 1));
	}
	answer_published(rq, rs, app, pub, false);
	if (ins != NULL)
		h_calls_notify(app, ins);
out:
	json_object_put(pub);
	PQclear(ins);
	PQclear(res);
	json_object_put(subl);
	json_object_put(idl);
	json_object_put(rows);
	free(ids);
}

/* 403 unless who may have the message's callbacks called. */
static int check_callbacks(struct resp *rs, const struct principal *who, const struct call *c0,
			   bool transparent)
{
	const char *field = NULL;

	if (c0->callback_url != NULL && !auth_may_url(who, c0->callback_url))
		field = transparent ? "Async-Callback" : "callback";
	else if (c0->failure_callback_url != NULL && !auth_may_url(who, c0->failure_callback_url))
		field = transparent ? "Async-Failure-Callback" : "failure_callback";
	if (field == NULL)
		return 0;
	resp_problem(rs, 403, field,
		     "%s: the %s %s may not call this callback URL (no url_patterns entry matches "
		     "it)",
		     field, who->key_id != NULL ? "API key" : "user", who_name(who));
	return -1;
}

/* Publishes msg (a checked instruction without destination; c0 is the call it makes with a
 * stand-in function) to the topic: one call per subscription whose filter matches. */
static void publish(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, const char *topic, struct json_object *msg,
		    const struct call *c0)
{
	const struct call_env env = {&app->cf, &app->np};
	const char *key = req_param(rq, "HTTP_IDEMPOTENCY_KEY");
	const char *params[1] = {topic};
	char hash[2 * EVP_MAX_MD_SIZE + 1] = "";
	struct json_object *body = NULL;
	struct call *calls = NULL;
	char(*prefixes)[160] = NULL;
	const char **pp = NULL, **subs = NULL;
	size_t n = 0;
	PGresult *res = NULL;
	struct problem p;

	if (key != NULL &&
	    (*key == '\0' || strlen(key) > IDEM_KEY_MAX || !http_value_valid(key, strlen(key)))) {
		resp_problem(rs, 400, "Idempotency-Key",
			     "Idempotency-Key: must be 1 to %d bytes of UTF-8 without control "
			     "characters",
			     IDEM_KEY_MAX);
		goto out;
	}
	if (key != NULL && h_calls_hash(c0, 1, false, hash, sizeof(hash)) != 0) {
		resp_problem(rs, 500, NULL, "hashing failed");
		goto out;
	}
	res = db_exec(&app->db, Q_TOPIC_GET, params);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	if (PQntuples(res) == 0) {
		resp_problem(rs, 404, "name", "name: no topic named %s", topic);
		goto out;
	}
	if (c0->body_type != NULL) /* for json filters; NULL when the body is not JSON */
		body = jstrict_parse((const char *)c0->body, c0->body_len,
				     (int)app->cf.max_json_depth, &p);
	calls = xcalloc((size_t)PQntuples(res) + 1, sizeof(*calls));
	prefixes = xcalloc((size_t)PQntuples(res) + 1, sizeof(*prefixes));
	pp = xcalloc((size_t)PQntuples(res) + 1, sizeof(*pp));
	subs = xcalloc((size_t)PQntuples(res) + 1, sizeof(*subs));
	for (int r = 0; r < PQntuples(res); r++) {
		struct json_object *filter, *spec, *instr;
		bool match;
		int rc;

		if (PQgetisnull(res, r, 3))
			continue;
		filter = parse_col(res, r, 5);
		match = topic_filter_match(filter, c0->headers, body);
		json_object_put(filter);
		if (!match)
			continue;
		snprintf(prefixes[n], sizeof(prefixes[n]), "subscriptions.%s.",
			 PQgetvalue(res, r, 3));
		pp[n] = prefixes[n];
		subs[n] = PQgetvalue(res, r, 3);
		spec = parse_col(res, r, 4);
		instr = spec != NULL ? topic_instruction(msg, spec, prefixes[n], &p) : NULL;
		json_object_put(spec);
		if (instr == NULL) {
			if (spec == NULL)
				resp_problem(rs, 500, NULL,
					     "subscription %s: stored spec unreadable", subs[n]);
			else
				resp_problem(rs, 409, p.field, "%s", p.detail);
			goto out;
		}
		call_init(&calls[n]);
		rc = call_from_json(&calls[n], instr, &env, prefixes[n], &p);
		json_object_put(instr);
		n++;
		if (rc != 0) {
			/* The message was checked: this is the subscription's (or the pair's). */
			resp_problem(rs, 409, p.field,
				     "%s (the topic's subscription cannot take this message; "
				     "nothing was published)",
				     p.detail);
			goto out;
		}
	}
	if (h_calls_resolve(
		    rs, app, calls, pp, n, 409,
		    " (the subscription names a function that is gone; nothing was published)") !=
	    0)
		goto out;
	publish_write(rq, rs, app, who, topic, calls, subs, n, key, hash);
out:
	cleanup_calls(calls, n);
	free(subs);
	free(pp);
	free(prefixes);
	json_object_put(body);
	PQclear(res);
}

/* 404 for a name that cannot be a topic, 403 for a client that may not publish to it. */
static bool publish_allowed(struct resp *rs, const struct principal *who, const char *name)
{
	if (!topic_name_valid(name)) {
		resp_problem(rs, 404, "name", "name: no topic with this name");
		return false;
	}
	if (!may_publish(who, name)) {
		resp_problem(rs, 403, "topic",
			     "topic: the %s %s may not publish to topic %s (its functions patterns "
			     "must match topic:%s)",
			     who->key_id != NULL ? "API key" : "user", who_name(who), name, name);
		return false;
	}
	return true;
}

int h_topic_publish(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, const char *name)
{
	const struct call_env env = {&app->cf, &app->np};
	struct json_object *msg = NULL, *chk = NULL;
	struct call c0;
	struct problem p;

	call_init(&c0);
	if (!publish_allowed(rs, who, name))
		goto out;
	msg = body_object(rq, rs, app, "the message");
	if (msg == NULL)
		goto out;
	chk = json_object_new_object();
	json_object_object_foreach (msg, k, v) {
		if (strcmp(k, "target") == 0 || strcmp(k, "function") == 0) {
			resp_problem(rs, 400, k,
				     "%s: a message to a topic has no target or function; the "
				     "topic's subscriptions are where it goes",
				     k);
			goto out;
		}
		if (strcmp(k, "debounce_key") == 0) {
			resp_problem(rs, 400, k,
				     "%s: a message to a topic makes one call per subscription, "
				     "which cannot share one debounce key",
				     k);
			goto out;
		}
		json_object_object_add(chk, k, json_object_get(v));
	}
	/* The message is checked as a call to a stand-in function, so every field is checked
	 * (and named) as in POST /v1/calls before any subscription is looked at. */
	json_object_object_add(chk, "function", json_object_new_string("topic"));
	if (call_from_json(&c0, chk, &env, "", &p) != 0) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	if (check_callbacks(rs, who, &c0, false) != 0)
		goto out;
	publish(rq, rs, app, who, name, msg, &c0);
out:
	call_cleanup(&c0);
	json_object_put(chk);
	json_object_put(msg);
	return 0;
}

int h_topic_async(const struct req *rq, struct resp *rs, struct app *app,
		  const struct principal *who, const char *rest)
{
	const struct call_env env = {&app->cf, &app->np};
	size_t len = strcspn(rest, "/");
	char name[160];
	char *synth = NULL;
	struct json_object *msg = NULL;
	struct call c0;
	struct problem p;

	call_init(&c0);
	if (len >= sizeof(name)) {
		resp_problem(rs, 404, "name", "name: no topic with this name");
		goto out;
	}
	memcpy(name, rest, len);
	name[len] = '\0';
	if (!publish_allowed(rs, who, name))
		goto out;
	/* The request is checked as a call to a stand-in function with the rest of the path. */
	synth = xasprintf("topic%s", rest + len);
	if (call_from_request(&c0, rq, synth, &env, &p) != 0) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	if (c0.debounce_key != NULL) {
		resp_problem(rs, 400, "Async-Debounce-Key",
			     "Async-Debounce-Key: a message to a topic makes one call per "
			     "subscription, which cannot share one debounce key");
		goto out;
	}
	if (check_callbacks(rs, who, &c0, true) != 0)
		goto out;
	msg = topic_message_json(&c0);
	publish(rq, rs, app, who, name, msg, &c0);
out:
	json_object_put(msg);
	free(synth);
	call_cleanup(&c0);
	return 0;
}

/* ---- status ---- */

int h_publication_get(const struct req *rq, struct resp *rs, struct app *app,
		      const struct principal *who, const char *id)
{
	PGresult *res = NULL;
	struct json_object *o = NULL, *calls, *counts;
	bool done = true;

	res = h_exec_id(rs, app, who, Q_PUBLICATION_GET, id, "publication");
	if (res == NULL)
		goto out;
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(PQgetvalue(res, 0, 0)));
	json_object_object_add(o, "topic", json_object_new_string(PQgetvalue(res, 0, 1)));
	json_object_object_add(o, "created_at", json_object_new_string(PQgetvalue(res, 0, 2)));
	calls = json_object_new_array();
	counts = json_object_new_object();
	for (int r = 0; r < PQntuples(res); r++) {
		struct json_object *c, *cnt;
		const char *state;

		if (PQgetisnull(res, r, 4))
			continue;
		c = json_object_new_object();
		json_object_object_add(c, "subscription",
				       json_object_new_string(PQgetvalue(res, r, 3)));
		json_object_object_add(c, "id", json_object_new_string(PQgetvalue(res, r, 4)));
		state = PQgetisnull(res, r, 5) ? "purged" : PQgetvalue(res, r, 5);
		json_object_object_add(c, "state", json_object_new_string(state));
		if (!PQgetisnull(res, r, 6))
			json_object_object_add(c, "not_before",
					       json_object_new_string(PQgetvalue(res, r, 6)));
		if (!PQgetisnull(res, r, 7))
			json_object_object_add(
				c, "attempts",
				json_object_new_int64(strtoll(PQgetvalue(res, r, 7), NULL, 10)));
		if (!PQgetisnull(res, r, 8))
			json_object_object_add(
				c, "last_status",
				json_object_new_int64(strtoll(PQgetvalue(res, r, 8), NULL, 10)));
		if (!PQgetisnull(res, r, 9))
			json_object_object_add(c, "finished_at",
					       json_object_new_string(PQgetvalue(res, r, 9)));
		add_url(c, rq, app, "calls", PQgetvalue(res, r, 4));
		json_object_array_add(calls, c);
		if (json_object_object_get_ex(counts, state, &cnt))
			json_object_set_int64(cnt, json_object_get_int64(cnt) + 1);
		else
			json_object_object_add(counts, state, json_object_new_int64(1));
		if (PQgetisnull(res, r, 9) && !PQgetisnull(res, r, 5) &&
		    strcmp(state, "cancelled") != 0)
			done = false;
	}
	json_object_object_add(o, "done", json_object_new_boolean(done));
	json_object_object_add(o, "states", counts);
	json_object_object_add(o, "calls", calls);
	resp_json(rs, 200, o);
out:
	json_object_put(o);
	PQclear(res);
	return 0;
}

int h_publications_list(const struct req *rq, struct resp *rs, struct app *app,
			const struct principal *who)
{
	char *topic = http_query_get(rq->query, "topic");
	char *after = http_query_get(rq->query, "after");
	char *lim = http_query_get(rq->query, "limit");
	long limit = H_LIST_DEFAULT;
	char limit_text[16];
	const char *params[4];
	PGresult *res = NULL;
	struct json_object *o = NULL, *arr;

	if (lim != NULL && !h_list_limit(rs, lim, &limit))
		goto out;
	if (!h_list_after(rs, after, "publication"))
		goto out;
	snprintf(limit_text, sizeof(limit_text), "%ld", limit);
	params[0] = topic;
	params[1] = after;
	params[2] = limit_text;
	params[3] = h_scope(who);
	res = db_exec(&app->db, Q_PUBLICATIONS_LIST, params);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	arr = json_object_new_array();
	for (int r = 0; r < PQntuples(res); r++) {
		struct json_object *e = db_row_json(res, r);

		add_url(e, rq, app, "publications", PQgetvalue(res, r, 0));
		json_object_array_add(arr, e);
	}
	o = h_list_page("publications", arr, res, limit);
	resp_json(rs, 200, o);
out:
	json_object_put(o);
	PQclear(res);
	free(lim);
	free(after);
	free(topic);
	return 0;
}

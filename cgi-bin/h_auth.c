/* h_auth: who a request comes from (an API key, or the web server's REMOTE_USER), as the
 * `auth` setting allows; 401 for no or bad credentials, 503 when the database cannot say. */
#include "handlers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "auth.h"
#include "log.h"

#define KEYCACHE_MAX 64
#define KEYCACHE_TTL_MS 60000
#define KEYCACHE_FLIGHTS 8 /* keys being looked up at once, that other threads wait for */

struct keycache_entry {
	char hash[65];	      /* SHA-256 of the token, hex; "" = free */
	struct principal who; /* with key_version */
	int64_t until_ms;
};

struct h_keycache {
	pthread_mutex_t mu;
	pthread_cond_t landed;		   /* a lookup in flight ended */
	char flight[KEYCACHE_FLIGHTS][65]; /* hashes a thread is looking up now; "" = free */
	struct keycache_entry e[KEYCACHE_MAX];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct h_keycache *h_keycache_new(void)
{
	struct h_keycache *kc = xcalloc(1, sizeof(*kc));

	pthread_mutex_init(&kc->mu, NULL);
	pthread_cond_init(&kc->landed, NULL);
	return kc;
}

void h_keycache_free(struct h_keycache *kc)
{
	if (kc == NULL)
		return;
	for (size_t i = 0; i < KEYCACHE_MAX; i++)
		principal_cleanup(&kc->e[i].who);
	pthread_cond_destroy(&kc->landed);
	pthread_mutex_destroy(&kc->mu);
	free(kc);
}

/* With kc->mu held: fills who from the cache (a copy, with key_version); false on a miss. */
static bool keycache_find(struct h_keycache *kc, const char *hash, struct principal *who)
{
	int64_t now = mono_ms();

	for (size_t i = 0; i < KEYCACHE_MAX; i++) {
		if (strcmp(kc->e[i].hash, hash) != 0 || kc->e[i].until_ms <= now)
			continue;
		principal_cleanup(who);
		principal_copy(who, &kc->e[i].who);
		return true;
	}
	return false;
}

/* Fills who from the cache and returns true, or returns false: then the caller looks the key
 * up. When another thread is looking the same key up already, this waits for it first (the
 * threads of a fresh process would otherwise all connect and look up at once); when none is,
 * it sets *flying, and the caller calls keycache_land once its lookup is over. */
static bool keycache_get(struct h_keycache *kc, const char *hash, struct principal *who,
			 bool *flying)
{
	bool waited = false;
	bool hit;
	size_t f;

	*flying = false;
	pthread_mutex_lock(&kc->mu);
	for (;;) {
		hit = keycache_find(kc, hash, who);
		if (hit || waited)
			break;
		for (f = 0; f < KEYCACHE_FLIGHTS; f++)
			if (strcmp(kc->flight[f], hash) == 0)
				break;
		if (f == KEYCACHE_FLIGHTS)
			break;
		pthread_cond_wait(&kc->landed, &kc->mu);
		waited = true; /* and if that lookup filled nothing (401, 503), look up alone */
	}
	for (f = 0; !hit && !waited && f < KEYCACHE_FLIGHTS; f++) {
		if (kc->flight[f][0] == '\0') {
			snprintf(kc->flight[f], sizeof(kc->flight[f]), "%s", hash);
			*flying = true;
			break;
		}
	}
	pthread_mutex_unlock(&kc->mu);
	return hit;
}

static void keycache_land(struct h_keycache *kc, const char *hash)
{
	pthread_mutex_lock(&kc->mu);
	for (size_t f = 0; f < KEYCACHE_FLIGHTS; f++)
		if (strcmp(kc->flight[f], hash) == 0)
			kc->flight[f][0] = '\0';
	pthread_cond_broadcast(&kc->landed);
	pthread_mutex_unlock(&kc->mu);
}

/* Stores who (read now, at row version) for hash: in hash's own slot, else in a free slot or
 * the one that expires first. version NULL drops hash (an unknown or revoked key) and does not
 * read who. */
static void keycache_put(struct h_keycache *kc, const char *hash, const struct principal *who,
			 const char *version)
{
	size_t slot = KEYCACHE_MAX;
	bool own = false;

	pthread_mutex_lock(&kc->mu);
	for (size_t i = 0; i < KEYCACHE_MAX && !own; i++) {
		own = strcmp(kc->e[i].hash, hash) == 0;
		if (own || slot == KEYCACHE_MAX || kc->e[i].until_ms < kc->e[slot].until_ms)
			slot = i; /* free slots have until_ms 0 */
	}
	if (own || version != NULL) {
		principal_cleanup(&kc->e[slot].who);
		kc->e[slot].hash[0] = '\0';
		kc->e[slot].until_ms = 0;
	}
	if (version != NULL) {
		principal_copy(&kc->e[slot].who, who);
		free(kc->e[slot].who.key_version);
		kc->e[slot].who.key_version = xstrdup(version);
		snprintf(kc->e[slot].hash, sizeof(kc->e[slot].hash), "%s", hash);
		kc->e[slot].until_ms = mono_ms() + KEYCACHE_TTL_MS;
	}
	pthread_mutex_unlock(&kc->mu);
}

/* Requests that only insert calls: their answers are checked by Q_CALLS_INSERT (202) or given
 * again after a fresh lookup (anything else), so they may use the key cache. A publish to a
 * topic in transparent mode (/v1/async/topic:{name}) writes its own transaction without that
 * check, so it looks the key up. */
static bool cache_may_answer(const struct req *rq)
{
	const char *a = rq->path + 10;

	if (strcmp(rq->path, "/v1/calls") == 0 && strcmp(rq->method, "POST") == 0)
		return true;
	return strncmp(rq->path, "/v1/async/", 10) == 0 && strncasecmp(a, "topic:", 6) != 0 &&
	       strncasecmp(a, "topic%3a", 8) != 0;
}

static void unauthorized(struct resp *rs, const char *error, const char *detail)
{
	resp_problem(rs, 401, "Authorization", "Authorization: %s", detail);
	if (error != NULL)
		resp_header(rs, "WWW-Authenticate", "Bearer realm=\"asyncgate\", error=\"%s\"",
			    error);
	else
		resp_header(rs, "WWW-Authenticate", "Bearer realm=\"asyncgate\"");
}

/* Fills who from row 0 of res, whose columns from `first` on are admin, functions, urls. */
static int fill_rules(struct principal *who, const PGresult *res, int first)
{
	struct json_object *fn = json_tokener_parse(PQgetvalue(res, 0, first + 1));
	struct json_object *url = json_tokener_parse(PQgetvalue(res, 0, first + 2));
	int rc = 0;

	who->admin = PQgetvalue(res, 0, first)[0] == 't';
	if (auth_patterns_from_json(fn, &who->functions) != 0 ||
	    auth_patterns_from_json(url, &who->url_patterns) != 0)
		rc = -1;
	json_object_put(fn);
	json_object_put(url);
	return rc;
}

static int by_key(const struct req *rq, const char *token, struct resp *rs, struct app *app,
		  struct principal *who)
{
	char hash[65];
	const char *params[1] = {hash};
	PGresult *res = NULL;
	bool flying = false;
	int rc = -1;

	if (!auth_token_shape(token)) {
		unauthorized(rs, "invalid_token", "this is not an asyncgate API key");
		return -1;
	}
	auth_token_hash(token, hash);
	if (app->keys != NULL && !app->auth_fresh && cache_may_answer(rq) &&
	    keycache_get(app->keys, hash, who, &flying))
		return 0;
	res = db_exec(&app->db, Q_AUTH_KEY, params);
	if (res == NULL) {
		h_db_error(rs, app);
		goto out;
	}
	if (PQntuples(res) != 1) {
		if (app->keys != NULL)
			keycache_put(app->keys, hash, who, NULL); /* drops hash; who unread */
		unauthorized(rs, "invalid_token", "the API key is unknown or revoked");
		goto out;
	}
	who->key_id = xstrdup(PQgetvalue(res, 0, 0));
	who->client = xstrdup(PQgetvalue(res, 0, 1));
	if (fill_rules(who, res, 2) != 0) {
		log_err("api key %s: its rules are not text arrays", who->key_id);
		resp_problem(rs, 500, NULL, "the API key's rules cannot be read");
		goto out;
	}
	if (app->keys != NULL)
		keycache_put(app->keys, hash, who, PQgetvalue(res, 0, 5));
	rc = 0;
out:
	if (flying)
		keycache_land(app->keys, hash);
	PQclear(res);
	return rc;
}

static int by_user(const char *user, struct resp *rs, struct app *app, struct principal *who)
{
	const char *params[1] = {user};
	PGresult *res;

	if (!http_utf8_valid(user, strlen(user))) {
		resp_problem(rs, 400, "REMOTE_USER",
			     "REMOTE_USER: the web server's user name is not UTF-8");
		return -1;
	}
	res = db_exec(&app->db, Q_AUTH_USER, params);
	if (res == NULL) {
		h_db_error(rs, app);
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		resp_problem(
			rs, 403, "REMOTE_USER",
			"REMOTE_USER: the web server authenticated this user, but asyncgate has "
			"no rules for it (asyncgate-admin user set)");
		return -1;
	}
	who->client = xstrdup(PQgetvalue(res, 0, 0));
	if (fill_rules(who, res, 1) != 0) {
		PQclear(res);
		resp_problem(rs, 500, NULL, "the user's rules cannot be read");
		return -1;
	}
	PQclear(res);
	return 0;
}

int h_authenticate(const struct req *rq, struct resp *rs, struct app *app, struct principal *who)
{
	int modes = conf_auth_modes(app->cf.auth);
	const char *authz = req_param(rq, "HTTP_AUTHORIZATION");
	const char *user = req_param(rq, "REMOTE_USER");
	const char *token = auth_bearer(authz);

	principal_init(who);
	if (modes == AUTH_NONE) {
		who->client = xstrdup("");
		who->functions = xcalloc(2, sizeof(char *));
		who->functions[0] = xstrdup("*");
		who->url_patterns = xcalloc(2, sizeof(char *));
		who->url_patterns[0] = xstrdup("*");
		return 0;
	}
	if ((modes & AUTH_KEYS) != 0 && token != NULL)
		return by_key(rq, token, rs, app, who);
	if ((modes & AUTH_REMOTE_USER) != 0 && user != NULL && *user != '\0')
		return by_user(user, rs, app, who);
	if ((modes & AUTH_KEYS) != 0 && authz != NULL)
		unauthorized(rs, "invalid_request", "expected \"Bearer <API key>\"");
	else if ((modes & AUTH_KEYS) != 0)
		unauthorized(rs, NULL, "an API key is required (Authorization: Bearer <key>)");
	else
		resp_problem(rs, 401, "REMOTE_USER",
			     "REMOTE_USER: the web server did not authenticate this request");
	return -1;
}

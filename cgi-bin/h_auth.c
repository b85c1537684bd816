/* h_auth: who a request comes from (an API key, or the web server's REMOTE_USER), as the
 * `auth` setting allows; 401 for no or bad credentials, 503 when the database cannot say. */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "auth.h"
#include "log.h"

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

static int by_key(const char *token, struct resp *rs, struct app *app, struct principal *who)
{
	char hash[65];
	const char *params[1] = {hash};
	PGresult *res;

	if (!auth_token_shape(token)) {
		unauthorized(rs, "invalid_token", "this is not an asyncgate API key");
		return -1;
	}
	auth_token_hash(token, hash);
	res = db_exec(&app->db, Q_AUTH_KEY, params);
	if (res == NULL) {
		h_db_error(rs, app);
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		unauthorized(rs, "invalid_token", "the API key is unknown or revoked");
		return -1;
	}
	who->key_id = xstrdup(PQgetvalue(res, 0, 0));
	who->client = xstrdup(PQgetvalue(res, 0, 1));
	if (fill_rules(who, res, 2) != 0) {
		log_err("api key %s: its rules are not text arrays", who->key_id);
		PQclear(res);
		resp_problem(rs, 500, NULL, "the API key's rules cannot be read");
		return -1;
	}
	PQclear(res);
	return 0;
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
		return by_key(token, rs, app, who);
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

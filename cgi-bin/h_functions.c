/* h_functions: PUT/GET/DELETE /v1/functions/{name} and GET /v1/functions, for admins. The
 * checks live in SQL (ag_function_put, sql/004_functions_flow.sql), which the operators' own
 * SQL goes through too; this handler adds those that need asyncgate.conf or libcrypto
 * (lib/function.c) and maps the SQL function's refusals to 400s naming the field. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "auth.h"
#include "function.h"
#include "jstrict.h"

/* The function's URL for Location: public_url, or the mount point, + /v1/functions/name. */
static void function_url(const struct req *rq, const struct app *app, const char *name,
			 struct buf *url)
{
	const char *base = app->cf.public_url[0] != '\0' ? app->cf.public_url : rq->mount;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	buf_printf(url, "%.*s/v1/functions/%s", (int)n, base, name);
}

/* Answers with the jsonb text in column 0 of row 0 of res. */
static void answer_function(struct resp *rs, int status, const PGresult *res, int col)
{
	struct json_object *o = json_tokener_parse(PQgetvalue(res, 0, col));

	resp_json(rs, status, o);
	json_object_put(o);
}

static int h_function_put(const struct req *rq, struct resp *rs, struct app *app, const char *name)
{
	const struct call_env env = {&app->cf, &app->np};
	const char *ct = req_param(rq, "CONTENT_TYPE");
	struct json_object *doc = NULL;
	PGresult *res = NULL;
	struct problem p;
	bool created;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
		resp_problem(rs, 415, "Content-Type",
			     "Content-Type: send the function as application/json");
		goto out;
	}
	if (!function_name_valid(name)) {
		resp_problem(rs, 400, "name",
			     "name: must be a function name: 1 to 128 letters, digits, '_', '.', "
			     "'-', starting with a letter or digit");
		goto out;
	}
	doc = jstrict_parse(rq->body, rq->body_len, (int)app->cf.max_json_depth, &p);
	if (doc == NULL || function_check(doc, &env, &p) != 0) {
		resp_problem(rs, p.status, p.field, "%s", p.detail);
		goto out;
	}
	res = db_exec(&app->db, Q_FUNCTION_PUT, (const char *[]){name, rq->body});
	if (res == NULL) {
		if (app->db.error == DB_QUERY && strcmp(app->db.sqlstate, "22023") == 0 &&
		    app->db.errcolumn[0] != '\0')
			resp_problem(rs, 400, app->db.errcolumn, "%s", app->db.errmsg);
		else if (app->db.error == DB_QUERY && strncmp(app->db.sqlstate, "23", 2) == 0)
			resp_problem(rs, 400, "body", "body: the function was refused (%s)",
				     app->db.errmsg);
		else
			h_db_error(rs, app);
		goto out;
	}
	created = PQgetvalue(res, 0, 0)[0] == 't';
	if (created) {
		struct buf url;

		buf_init(&url);
		function_url(rq, app, name, &url);
		resp_header(rs, "Location", "%s", url.data);
		buf_cleanup(&url);
	}
	answer_function(rs, created ? 201 : 200, res, 1);
out:
	PQclear(res);
	json_object_put(doc);
	return 0;
}

static int h_function_get(struct resp *rs, struct app *app, const char *name)
{
	PGresult *res;

	if (!function_name_valid(name)) {
		resp_problem(rs, 404, "name", "name: no function named so");
		return 0;
	}
	res = db_exec(&app->db, Q_FUNCTION_GET, (const char *[]){name});
	if (res == NULL)
		h_db_error(rs, app);
	else if (PQntuples(res) == 0)
		resp_problem(rs, 404, "name", "name: no function named %s", name);
	else
		answer_function(rs, 200, res, 0);
	PQclear(res);
	return 0;
}

static int h_function_delete(struct resp *rs, struct app *app, const char *name)
{
	PGresult *res;

	if (!function_name_valid(name)) {
		resp_problem(rs, 404, "name", "name: no function named so");
		return 0;
	}
	res = db_exec(&app->db, Q_FUNCTION_DELETE, (const char *[]){name});
	if (res == NULL) {
		h_db_error(rs, app);
	} else if (PQgetvalue(res, 0, 0)[0] != 't') {
		resp_problem(rs, 404, "name", "name: no function named %s", name);
	} else {
		rs->status = 204;
	}
	PQclear(res);
	return 0;
}

static int h_functions_list(struct resp *rs, struct app *app)
{
	PGresult *res = db_exec(&app->db, Q_FUNCTION_LIST, NULL);
	struct json_object *o, *arr;

	if (res == NULL) {
		h_db_error(rs, app);
		return 0;
	}
	o = json_object_new_object();
	arr = json_object_new_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_object_array_add(arr, json_tokener_parse(PQgetvalue(res, i, 0)));
	json_object_object_add(o, "functions", arr);
	resp_json(rs, 200, o);
	json_object_put(o);
	PQclear(res);
	return 0;
}

bool route_functions(const struct req *rq, struct resp *rs, struct app *app,
		     const struct principal *who)
{
	const char *p = rq->path;
	const char *m = rq->method;
	const char *name;

	if (strncmp(p, "/v1/functions", 13) != 0 || (p[13] != '\0' && p[13] != '/'))
		return false;
	name = p[13] == '/' ? p + 14 : "";
	if (strchr(name, '/') != NULL)
		return false;
	if (!who->admin) {
		resp_problem(rs, 403, NULL,
			     "functions are managed by admins only; the %s %s is not one",
			     who->key_id != NULL ? "API key" : "user",
			     who->key_id != NULL ? who->key_id : who->client);
		return true;
	}
	if (*name == '\0') {
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
			h_functions_list(rs, app);
		} else {
			resp_problem(rs, 405, NULL, "this resource allows GET, HEAD");
			resp_header(rs, "Allow", "GET, HEAD");
		}
		return true;
	}
	if (strcmp(m, "PUT") == 0) {
		h_function_put(rq, rs, app, name);
	} else if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
		h_function_get(rs, app, name);
	} else if (strcmp(m, "DELETE") == 0) {
		h_function_delete(rs, app, name);
	} else {
		resp_problem(rs, 405, NULL, "this resource allows GET, HEAD, PUT, DELETE");
		resp_header(rs, "Allow", "GET, HEAD, PUT, DELETE");
	}
	return true;
}

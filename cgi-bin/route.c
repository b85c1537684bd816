/* route: maps method and path to a handler; unknown paths and methods get problem+json. */
#include "handlers.h"

#include <string.h>

#include "auth.h"
#include "uuid.h"

static bool is_method(const struct req *rq, const char *m)
{
	return strcmp(rq->method, m) == 0;
}

static void not_allowed(struct resp *rs, const char *allow)
{
	resp_problem(rs, 405, NULL, "this resource allows %s", allow);
	resp_header(rs, "Allow", "%s", allow);
}

/* The calls API: /v1/calls, /v1/calls/{id}[/retry], /v1/async/... Returns false when p is not
 * one of its paths. who is the authenticated client. */
static bool route_calls(const struct req *rq, struct resp *rs, struct app *app,
			const struct principal *who)
{
	const char *p = rq->path;
	char id[UUID_LEN];

	if (strncmp(p, "/v1/async/", 10) == 0) {
		h_async(rq, rs, app, who, p + 10);
		return true;
	}
	if (strcmp(p, "/v1/calls") == 0 || strcmp(p, "/v1/calls/") == 0) {
		if (is_method(rq, "POST"))
			h_calls_post(rq, rs, app, who);
		else if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_calls_list(rq, rs, app, who);
		else
			not_allowed(rs, "GET, HEAD, POST");
		return true;
	}
	if (strncmp(p, "/v1/calls/", 10) == 0) {
		const char *rest = p + 10;
		const char *slash = strchr(rest, '/');
		size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);

		if (n >= sizeof(id)) {
			resp_problem(rs, 404, "id", "no call with this id");
			return true;
		}
		memcpy(id, rest, n);
		id[n] = '\0';
		if (slash == NULL) {
			if (is_method(rq, "GET") || is_method(rq, "HEAD"))
				h_call_get(rq, rs, app, who, id);
			else if (is_method(rq, "DELETE"))
				h_call_delete(rq, rs, app, who, id);
			else
				not_allowed(rs, "GET, HEAD, DELETE");
			return true;
		}
		if (strcmp(slash, "/retry") == 0) {
			if (is_method(rq, "POST"))
				h_call_retry(rq, rs, app, who, id);
			else
				not_allowed(rs, "POST");
			return true;
		}
	}
	return false;
}

/* True when p is /v1/<name> or under it. */
static bool under(const char *p, const char *name)
{
	size_t n = strlen(name);

	return strncmp(p, "/v1/", 4) == 0 && strncmp(p + 4, name, n) == 0 &&
	       (p[4 + n] == '\0' || p[4 + n] == '/');
}

/* The paths that act for a client, so need credentials: calls, functions, topics, schedules. */
static bool is_api_path(const char *p)
{
	return under(p, "async") || under(p, "calls") || under(p, "functions") ||
	       under(p, "topics") || under(p, "publications") || under(p, "schedules");
}

/* Routes an authenticated request; false when no API path matches. */
static bool route_api(const struct req *rq, struct resp *rs, struct app *app,
		      const struct principal *who)
{
	return route_calls(rq, rs, app, who);
}

void route(const struct req *rq, struct resp *rs, struct app *app)
{
	const char *p = rq->path;

	if (is_api_path(p)) {
		struct principal who;

		/* Credentials first: a stranger learns nothing, not even which paths exist. */
		app->auth_fresh = false;
		app->auth_stale = false;
		if (h_authenticate(rq, rs, app, &who) == 0 && !route_api(rq, rs, app, &who))
			resp_problem(rs, 404, NULL, "no such resource: %s",
				     strlen(p) > 200 ? "(long path)" : p);
		if (who.key_version != NULL &&
		    (app->auth_stale || (rs->status >= 400 && rs->status < 500))) {
			/* The key came from the process's cache, and the request was not accepted:
			 * its row changed (revoked, new rules) since, so the insert left its calls
			 * out, or the cached rules may have refused it. Nothing was written (a 4xx
			 * here writes nothing), so it runs again with the key looked up now. */
			principal_cleanup(&who);
			resp_reset(rs);
			app->auth_fresh = true;
			app->auth_stale = false;
			if (h_authenticate(rq, rs, app, &who) == 0 && !route_api(rq, rs, app, &who))
				resp_problem(rs, 404, NULL, "no such resource: %s",
					     strlen(p) > 200 ? "(long path)" : p);
		}
		principal_cleanup(&who);
		return;
	}
	if (strcmp(p, "/v1/health") == 0) {
		if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_health(rq, rs, app);
		else
			not_allowed(rs, "GET, HEAD");
		return;
	}
	if (strcmp(p, "/v1/drain") == 0) {
		if (is_method(rq, "GET") || is_method(rq, "POST"))
			h_drain(rq, rs, app);
		else
			not_allowed(rs, "GET, POST");
		return;
	}
	if (strcmp(p, "/metrics") == 0 || strcmp(p, "/v1/metrics") == 0) {
		if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_metrics(rq, rs, app);
		else
			not_allowed(rs, "GET, HEAD");
		return;
	}
	resp_problem(rs, 404, NULL, "no such resource: %s", strlen(p) > 200 ? "(long path)" : p);
}

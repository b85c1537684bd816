/* route: maps method and path to a handler; unknown paths and methods get problem+json. */
#include "handlers.h"

#include <string.h>
#include <strings.h>

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

/* The calls API: /v1/calls, /v1/calls/{id}[/retry|/response], /v1/async/... Returns false when p is
 * not one of its paths. who is the authenticated client. */
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
		if (strcmp(slash, "/response") == 0) {
			if (is_method(rq, "GET") || is_method(rq, "HEAD"))
				h_call_response(rq, rs, app, who, id);
			else
				not_allowed(rs, "GET, HEAD");
			return true;
		}
	}
	return false;
}

/* The schedules API: /v1/schedules, /v1/schedules/{id}[/pause|/resume]. Returns false when p
 * is not one of its paths. */
static bool route_schedules(const struct req *rq, struct resp *rs, struct app *app,
			    const struct principal *who)
{
	const char *p = rq->path;
	const char *rest, *slash;
	char id[UUID_LEN];
	size_t n;

	if (strcmp(p, "/v1/schedules") == 0 || strcmp(p, "/v1/schedules/") == 0) {
		if (is_method(rq, "POST"))
			h_schedules_post(rq, rs, app, who);
		else if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_schedules_list(rq, rs, app, who);
		else
			not_allowed(rs, "GET, HEAD, POST");
		return true;
	}
	if (strncmp(p, "/v1/schedules/", 14) != 0)
		return false;
	rest = p + 14;
	slash = strchr(rest, '/');
	n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (n >= sizeof(id)) {
		resp_problem(rs, 404, "id", "no schedule with this id");
		return true;
	}
	memcpy(id, rest, n);
	id[n] = '\0';
	if (slash == NULL) {
		if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_schedule_get(rq, rs, app, who, id);
		else if (is_method(rq, "DELETE"))
			h_schedule_delete(rq, rs, app, who, id);
		else
			not_allowed(rs, "GET, HEAD, DELETE");
		return true;
	}
	if (strcmp(slash, "/pause") == 0 || strcmp(slash, "/resume") == 0) {
		if (is_method(rq, "POST"))
			h_schedule_pause(rq, rs, app, who, id, strcmp(slash, "/pause") == 0);
		else
			not_allowed(rs, "POST");
		return true;
	}
	return false;
}

/* Copies the path segment at s (up to '/' or the end) into out; false when it does not fit. */
static bool segment(const char *s, char *out, size_t outsz)
{
	size_t n = strcspn(s, "/");

	if (n >= outsz)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* The topics API: /v1/topics[/{name}[/calls]], /v1/publications[/{id}], and transparent
 * publishing /v1/async/topic:{name}/... Returns false when p is not one of its paths. */
static bool route_topics(const struct req *rq, struct resp *rs, struct app *app,
			 const struct principal *who)
{
	const char *p = rq->path;
	char seg[256];

	if (strncmp(p, "/v1/async/topic:", 16) == 0 ||
	    strncasecmp(p, "/v1/async/topic%3A", 18) == 0) {
		h_topic_async(rq, rs, app, who, p + (p[15] == ':' ? 16 : 18));
		return true;
	}
	if (strcmp(p, "/v1/topics") == 0 || strcmp(p, "/v1/topics/") == 0) {
		if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_topics_list(rq, rs, app, who);
		else
			not_allowed(rs, "GET, HEAD");
		return true;
	}
	if (strncmp(p, "/v1/topics/", 11) == 0) {
		const char *rest = p + 11;
		const char *slash = strchr(rest, '/');

		if (!segment(rest, seg, sizeof(seg))) {
			resp_problem(rs, 404, "name", "name: no topic with this name");
			return true;
		}
		if (slash == NULL) {
			if (is_method(rq, "GET") || is_method(rq, "HEAD"))
				h_topic_get(rq, rs, app, who, seg);
			else if (is_method(rq, "PUT"))
				h_topic_put(rq, rs, app, who, seg);
			else if (is_method(rq, "DELETE"))
				h_topic_delete(rq, rs, app, who, seg);
			else
				not_allowed(rs, "GET, HEAD, PUT, DELETE");
			return true;
		}
		if (strcmp(slash, "/calls") == 0) {
			if (is_method(rq, "POST"))
				h_topic_publish(rq, rs, app, who, seg);
			else
				not_allowed(rs, "POST");
			return true;
		}
		return false;
	}
	if (strcmp(p, "/v1/publications") == 0 || strcmp(p, "/v1/publications/") == 0) {
		if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_publications_list(rq, rs, app, who);
		else
			not_allowed(rs, "GET, HEAD");
		return true;
	}
	if (strncmp(p, "/v1/publications/", 17) == 0 && strchr(p + 17, '/') == NULL) {
		if (!segment(p + 17, seg, sizeof(seg)))
			resp_problem(rs, 404, "id", "id: no publication with this id");
		else if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_publication_get(rq, rs, app, who, seg);
		else
			not_allowed(rs, "GET, HEAD");
		return true;
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
	return route_topics(rq, rs, app, who) || route_calls(rq, rs, app, who) ||
	       route_functions(rq, rs, app, who) || route_schedules(rq, rs, app, who);
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

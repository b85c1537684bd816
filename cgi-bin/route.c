/* route: maps method and path to a handler; unknown paths and methods get problem+json. */
#include "handlers.h"

#include <string.h>

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

void route(const struct req *rq, struct resp *rs, struct app *app)
{
	const char *p = rq->path;
	char id[UUID_LEN];

	if (strncmp(p, "/v1/async/", 10) == 0) {
		h_async(rq, rs, app, p + 10);
		return;
	}
	if (strcmp(p, "/v1/calls") == 0 || strcmp(p, "/v1/calls/") == 0) {
		if (is_method(rq, "POST"))
			h_calls_post(rq, rs, app);
		else if (is_method(rq, "GET") || is_method(rq, "HEAD"))
			h_calls_list(rq, rs, app);
		else
			not_allowed(rs, "GET, HEAD, POST");
		return;
	}
	if (strncmp(p, "/v1/calls/", 10) == 0) {
		const char *rest = p + 10;
		const char *slash = strchr(rest, '/');
		size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);

		if (n >= sizeof(id)) {
			resp_problem(rs, 404, "id", "no call with this id");
			return;
		}
		memcpy(id, rest, n);
		id[n] = '\0';
		if (slash == NULL) {
			if (is_method(rq, "GET") || is_method(rq, "HEAD"))
				h_call_get(rq, rs, app, id);
			else if (is_method(rq, "DELETE"))
				h_call_delete(rq, rs, app, id);
			else
				not_allowed(rs, "GET, HEAD, DELETE");
			return;
		}
		if (strcmp(slash, "/retry") == 0) {
			if (is_method(rq, "POST"))
				h_call_retry(rq, rs, app, id);
			else
				not_allowed(rs, "POST");
			return;
		}
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

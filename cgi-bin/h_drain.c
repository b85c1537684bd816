/* h_drain: GET|POST /v1/drain, one bounded drain cycle inside the handler, for a health-check
 * ping or a scheduler in a serverless setup; guarded by the drain_token of the configuration. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "drain.h"
#include "log.h"
#include "sign.h"

int h_drain(const struct req *rq, struct resp *rs, struct app *app)
{
	const char *auth = req_param(rq, "HTTP_AUTHORIZATION");
	char *qtoken = NULL, *qmax = NULL;
	const char *given = NULL;
	struct drain_opts o;
	struct drain_stats st;
	int64_t max_calls = 0;
	char *text;
	int rc;

	if (app->cf.drain_token[0] == '\0') {
		resp_problem(rs, 404, NULL,
			     "the drain endpoint is off: set drain_token in the configuration");
		return 0;
	}
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
		given = auth + 7;
	else if ((qtoken = http_query_get(rq->query, "token")) != NULL)
		given = qtoken;
	if (!sign_secret_equal(given, app->cf.drain_token)) { /* constant time */
		free(qtoken);
		resp_header(rs, "WWW-Authenticate", "Bearer realm=\"asyncgate drain\"");
		resp_problem(rs, 401, "Authorization",
			     "Authorization: a valid drain token is needed (\"Authorization: "
			     "Bearer <drain_token>\" or ?token=)");
		return 0;
	}
	free(qtoken);
	qmax = http_query_get(rq->query, "max_calls");
	if (qmax != NULL) {
		char *end;

		max_calls = strtoll(qmax, &end, 10);
		if (end == qmax || *end != '\0' || max_calls < 1 || max_calls > 1000000) {
			free(qmax);
			resp_problem(rs, 400, "max_calls",
				     "max_calls: must be a whole number from 1 to 1000000");
			return 0;
		}
		free(qmax);
	}
	if (app->drain == NULL) {
		char *name = drain_name("fcgi:");

		app->drain = drain_new(&app->cf, &app->np, &app->db, name);
		free(name);
		if (app->drain == NULL) {
			resp_problem(rs, 500, NULL,
				     "the drainer could not start (see the error log)");
			return 0;
		}
	}
	/* Claim for the first half of the budget; at its end, give back what is still out. */
	memset(&o, 0, sizeof(o));
	o.concurrency = (int)app->cf.drain_concurrency;
	o.max_ms = app->cf.drain_budget_ms / 2;
	o.hard_ms = app->cf.drain_budget_ms;
	o.max_calls = max_calls;
	rc = drain_run(app->drain, &o, &st);
	if (rc != 0 && st.claimed == 0) {
		if (app->db.error != DB_OK)
			h_db_error(rs, app);
		else
			resp_problem(rs, 500, NULL, "the drain cycle failed (see the error log)");
		return 0;
	}
	text = drain_stats_json(&st);
	rs->status = 200;
	rs->content_type = "application/json";
	rs->body = text;
	rs->body_len = strlen(text);
	log_info("drain: /v1/drain %s", text);
	return 0;
}

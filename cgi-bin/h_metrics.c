/* h_metrics: GET /metrics, Prometheus text format (version 0.0.4): the live queue by state, the
 * age of the oldest due call, attempts by outcome and the dispatch duration histogram. */
#include "handlers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain.h"
#include "xalloc.h"

/* Attempts counted under one histogram bound. */
struct bucket {
	int64_t n;
};

int h_metrics(const struct req *rq, struct resp *rs, struct app *app)
{
	PGresult *depth = NULL, *att = NULL;
	struct buf b;
	struct bucket *bk = NULL;
	const int *bounds;
	size_t nbounds = 0;
	int64_t total_n = 0, total_ms = 0, cum = 0;
	double oldest = 0;

	(void)rq;
	depth = db_exec(&app->db, Q_METRICS_DEPTH, NULL);
	if (depth != NULL)
		att = db_exec(&app->db, Q_METRICS_ATTEMPTS, NULL);
	if (depth == NULL || att == NULL) {
		PQclear(depth);
		h_db_error(rs, app);
		return 0;
	}
	buf_init(&b);
	buf_puts(&b, "# HELP asyncgate_calls Live calls by state.\n"
		     "# TYPE asyncgate_calls gauge\n");
	for (int i = 0; i < PQntuples(depth); i++) {
		double age = strtod(PQgetvalue(depth, i, 2), NULL);

		buf_printf(&b, "asyncgate_calls{state=\"%s\"} %s\n", PQgetvalue(depth, i, 0),
			   PQgetvalue(depth, i, 1));
		if (age > oldest)
			oldest = age;
	}
	buf_printf(&b,
		   "# HELP asyncgate_oldest_due_age_seconds Age of the oldest call that is due "
		   "and not yet claimed.\n"
		   "# TYPE asyncgate_oldest_due_age_seconds gauge\n"
		   "asyncgate_oldest_due_age_seconds %.3f\n",
		   oldest);

	buf_puts(&b, "# HELP asyncgate_attempts_total Attempts by outcome (success, retry, dead, "
		     "expired).\n"
		     "# TYPE asyncgate_attempts_total counter\n");
	for (int i = 0; i < PQntuples(att);) {
		const char *outcome = PQgetvalue(att, i, 0);
		int64_t n = 0;

		for (; i < PQntuples(att) && strcmp(PQgetvalue(att, i, 0), outcome) == 0; i++)
			n += strtoll(PQgetvalue(att, i, 2), NULL, 10);
		buf_printf(&b, "asyncgate_attempts_total{outcome=\"%s\"} %" PRId64 "\n", outcome,
			   n);
	}

	/* The histogram over all outcomes, every bound always present (a stable series set):
	 * per-bucket counts summed, then made cumulative. Calls never sent (-2) have no
	 * duration; they count as attempts above but not here. */
	bounds = drain_buckets_ms(&nbounds);
	bk = xcalloc(nbounds + 1, sizeof(*bk)); /* the last one is +Inf (-1) */
	for (int i = 0; i < PQntuples(att); i++) {
		int64_t bound = strtoll(PQgetvalue(att, i, 1), NULL, 10);
		int64_t n = strtoll(PQgetvalue(att, i, 2), NULL, 10);
		size_t k;

		if (bound == -2)
			continue;
		total_n += n;
		total_ms += strtoll(PQgetvalue(att, i, 3), NULL, 10);
		for (k = 0; k < nbounds && bounds[k] != bound; k++)
			;
		bk[k].n += n; /* k == nbounds: above the last bound */
	}
	buf_puts(&b, "# HELP asyncgate_dispatch_duration_seconds Time from sending a call to its "
		     "answer or error.\n"
		     "# TYPE asyncgate_dispatch_duration_seconds histogram\n");
	for (size_t k = 0; k < nbounds; k++) {
		cum += bk[k].n;
		buf_printf(&b,
			   "asyncgate_dispatch_duration_seconds_bucket{le=\"%g\"} %" PRId64 "\n",
			   (double)bounds[k] / 1000.0, cum);
	}
	buf_printf(&b,
		   "asyncgate_dispatch_duration_seconds_bucket{le=\"+Inf\"} %" PRId64 "\n"
		   "asyncgate_dispatch_duration_seconds_sum %.3f\n"
		   "asyncgate_dispatch_duration_seconds_count %" PRId64 "\n",
		   total_n, (double)total_ms / 1000.0, total_n);
	free(bk);
	PQclear(depth);
	PQclear(att);
	rs->status = 200;
	rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
	rs->body = buf_take(&b, &rs->body_len);
	return 0;
}

/* queries: every SQL statement asyncgate runs, by name; each process prepares them all. */
#ifndef AG_QUERIES_H
#define AG_QUERIES_H

#include <stdbool.h>

enum query_id {
	Q_CALLS_INSERT,
	Q_CALLS_FIND,
	Q_IDEM_GET,
	Q_FUNCTIONS_GET,
	Q_CALL_GET,
	Q_CALL_ATTEMPTS,
	Q_CALLS_LIST,
	Q_CALL_CANCEL,
	Q_CALL_RETRY,
	Q_CALL_STATE,
	Q_CALL_RESPONSE,
	Q_AUTH_KEY,
	Q_AUTH_USER,
	Q_ADMIN_KEY_CREATE,
	Q_ADMIN_KEY_REVOKE,
	Q_ADMIN_KEY_LIST,
	Q_ADMIN_USER_SET,
	Q_ADMIN_USER_DELETE,
	Q_ADMIN_USER_LIST,
	Q_HEALTH,
	Q_DRAIN_CLAIM,
	Q_DRAIN_SETTLE,
	Q_DRAIN_RELEASE,
	Q_DRAIN_NEXT,
	Q_NOTIFY,
	Q_FUNCTION_PUT,
	Q_FUNCTION_GET,
	Q_FUNCTION_LIST,
	Q_FUNCTION_DELETE,
	Q_METRICS_DEPTH,
	Q_METRICS_ATTEMPTS,
	/* topics (sql/006_topics.sql, cgi-bin/h_topics.c) */
	Q_TOPIC_PUT,
	Q_TOPIC_GET,
	Q_TOPICS_LIST,
	Q_TOPIC_DELETE,
	Q_TX_BEGIN,
	Q_TX_COMMIT,
	Q_TX_ROLLBACK,
	Q_PUBLICATION_INSERT,
	Q_PUBLICATION_GET,
	Q_PUBLICATION_BY_KEY,
	Q_PUBLICATIONS_LIST,
	/* schedules (sql/007_schedules.sql, lib/schedule.c, cgi-bin/h_schedules.c) */
	Q_SCHED_DUE,
	Q_SCHED_FIRED,
	Q_SCHED_NEXT,
	Q_SCHED_DEFER,
	Q_SCHED_INSERT,
	Q_SCHED_LIST,
	Q_SCHED_GET,
	Q_SCHED_TICKS,
	Q_SCHED_PAUSE,
	Q_SCHED_RESUME,
	Q_SCHED_DELETE,
	Q__COUNT
};

struct query {
	const char *name; /* prepared statement name */
	const char *sql;  /* $n parameters only */
	int nparams;
	bool idempotent; /* safe to send again when the connection broke during it: it reads, or
			  * running it twice leaves the same state and answer */
};

extern const struct query queries[Q__COUNT];

#endif

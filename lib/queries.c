/* queries: the SQL text of every statement, one clause per line, $n parameters only. */
#include "queries.h"

/* Columns of a call in API form, for GET /v1/calls/{id}. Dotted names become nested objects
 * in db_row_json ("retry.max_attempts" -> {"retry": {"max_attempts": ...}}). */
/* The statements keep one clause per line, which clang-format would reflow. */
/* clang-format off */
#define CALL_DETAIL_COLUMNS                                                                        \
	"c.id, ag_state(c.state, c.not_before) AS state, "                                         \
	"ag_ts(c.created_at) AS created_at, ag_ts(c.not_before) AS not_before, "                   \
	"ag_ts(c.expires_at) AS expires_at, ag_ts(c.finished_at) AS finished_at, "                 \
	"c.function, c.target, c.path, c.method, NULLIF(c.query, '') AS query, c.headers, "        \
	"c.body_type AS \"body.type\", octet_length(c.body) AS \"body.size\", "                    \
	"c.correlation_id, "                                                                       \
	"c.callback_url AS \"callback.url\", c.callback_headers AS \"callback.headers\", "         \
	"c.failure_callback_url AS \"failure_callback.url\", "                                     \
	"c.failure_callback_headers AS \"failure_callback.headers\", "                             \
	"c.max_attempts AS \"retry.max_attempts\", c.retry_initial_ms AS \"retry.initial_ms\", "   \
	"c.retry_max_ms AS \"retry.max_ms\", c.timeout_ms, "                                       \
	"c.attempts, ag_ts(c.lease_until) AS lease_until, "                                        \
	"c.last_status, c.last_error, c.callback_of, "                                             \
	"c.callback_id AS \"callback_call.id\", "                                                  \
	"ag_state(cb.state, cb.not_before) AS \"callback_call.state\", "                           \
	"cb.last_status AS \"callback_call.last_status\" "

const struct query queries[Q__COUNT] = {
	/* $1 rows (jsonb array, one object per call, made by call_row_json), $2 client,
	 * $3 idempotency key or NULL, $4 request hash (hex), $5 batch (bool).
	 * One statement, so it commits as a whole: with a key that is already taken, nothing is
	 * inserted and zero rows come back (the caller then reads Q_IDEM_GET). */
	[Q_CALLS_INSERT] = { "calls_insert",
		"WITH r AS MATERIALIZED ("
		" SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
		"  id uuid, not_before_us bigint, delay_ms bigint, expires_in_ms bigint,"
		"  function text, target text, path text, method text, query text, headers jsonb,"
		"  body text, body_type text, correlation_id text,"
		"  callback_url text, callback_headers jsonb,"
		"  failure_callback_url text, failure_callback_headers jsonb,"
		"  max_attempts integer, retry_initial_ms integer, retry_max_ms integer,"
		"  timeout_ms integer)"
		"), k AS ("
		" INSERT INTO idempotency_keys (client, key, request_hash, call_ids, batch)"
		" SELECT $2, $3, decode($4, 'hex'),"
		"  ARRAY(SELECT (e->>'id')::uuid"
		"   FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n),"
		"  $5::boolean"
		" WHERE $3::text IS NOT NULL"
		" ON CONFLICT DO NOTHING"
		" RETURNING 1"
		") "
		"INSERT INTO calls (id, state, client, not_before, expires_at,"
		" function, target, path, method, query, headers, body, body_type, correlation_id,"
		" callback_url, callback_headers, failure_callback_url, failure_callback_headers,"
		" max_attempts, retry_initial_ms, retry_max_ms, timeout_ms, idempotency_key) "
		"SELECT r.id, 'queued', $2,"
		" COALESCE(to_timestamp(r.not_before_us / 1000000.0),"
		"  now() + make_interval(secs => COALESCE(r.delay_ms, 0) / 1000.0)),"
		" COALESCE(to_timestamp(r.not_before_us / 1000000.0),"
		"  now() + make_interval(secs => COALESCE(r.delay_ms, 0) / 1000.0))"
		"  + make_interval(secs => r.expires_in_ms / 1000.0),"
		" r.function, r.target, r.path, r.method, COALESCE(r.query, ''),"
		" COALESCE(r.headers, '{}'), decode(r.body, 'base64'), r.body_type, r.correlation_id,"
		" r.callback_url, r.callback_headers, r.failure_callback_url,"
		" r.failure_callback_headers,"
		" r.max_attempts, r.retry_initial_ms, r.retry_max_ms, r.timeout_ms, $3 "
		"FROM r "
		"WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM k) "
		"RETURNING id, ag_ts(not_before), not_before > now()",
		5, false },

	/* $1 jsonb array of ids: those that exist, after an insert whose answer was lost. */
	[Q_CALLS_FIND] = { "calls_find",
		"SELECT id, ag_ts(not_before), not_before > now() "
		"FROM calls "
		"WHERE id IN (SELECT (jsonb_array_elements_text($1::jsonb))::uuid)",
		1, true },

	/* $1 client, $2 key: the request hash, then one row per call the key created. */
	[Q_IDEM_GET] = { "idem_get",
		"SELECT encode(k.request_hash, 'hex'), k.batch, u.id,"
		" ag_ts(c.not_before), c.not_before > now() "
		"FROM idempotency_keys k "
		"CROSS JOIN LATERAL unnest(k.call_ids) WITH ORDINALITY AS u(id, n) "
		"LEFT JOIN calls c ON c.id = u.id "
		"WHERE k.client = $1 AND k.key = $2 "
		"ORDER BY u.n",
		2, true },

	/* $1 jsonb array of names: the functions that exist, with their limits. */
	[Q_FUNCTIONS_GET] = { "functions_get",
		"SELECT name, timeout_ms, max_attempts, retry_initial_ms, retry_max_ms "
		"FROM functions "
		"WHERE name IN (SELECT jsonb_array_elements_text($1::jsonb))",
		1, true },

	/* $1 id, $2 client: a client sees only its own calls. */
	[Q_CALL_GET] = { "call_get",
		"SELECT " CALL_DETAIL_COLUMNS
		"FROM calls c "
		"LEFT JOIN calls cb ON cb.id = c.callback_id "
		"WHERE c.id = $1::uuid AND c.client = $2",
		2, true },

	/* $1 id: its attempts, oldest first. */
	[Q_CALL_ATTEMPTS] = { "call_attempts",
		"SELECT attempt AS number, ag_ts(started_at) AS started_at, duration_ms,"
		" status, error, response_size "
		"FROM attempts "
		"WHERE call_id = $1::uuid "
		"ORDER BY attempt, id",
		1, true },

	/* $1 state (API spelling) or NULL, $2 function or NULL, $3 correlation id or NULL,
	 * $4 cursor (list ids older than it) or NULL, $5 limit, $6 client. Newest first. */
	[Q_CALLS_LIST] = { "calls_list",
		"SELECT c.id, ag_state(c.state, c.not_before) AS state,"
		" ag_ts(c.created_at) AS created_at, ag_ts(c.not_before) AS not_before,"
		" ag_ts(c.finished_at) AS finished_at, c.function, c.target, c.method,"
		" c.correlation_id, c.attempts, c.last_status "
		"FROM calls c "
		"WHERE ($1::text IS NULL"
		"  OR c.state = CASE $1::text WHEN 'scheduled' THEN 'queued' ELSE $1::text END)"
		" AND ($1::text IS NULL OR $1::text NOT IN ('scheduled', 'queued')"
		"  OR (c.not_before > now()) = ($1::text = 'scheduled'))"
		" AND ($2::text IS NULL OR c.function = $2::text)"
		" AND ($3::text IS NULL OR c.correlation_id = $3::text)"
		" AND ($4::uuid IS NULL OR c.id < $4::uuid)"
		" AND c.client = $6 "
		"ORDER BY c.id DESC "
		"LIMIT $5::integer",
		6, true },

	/* $1 id, $2 client: cancel unless in flight or finished. A row comes back when it was
	 * cancelled. (The row moves to calls_done; see db_exec on serialization failures.) */
	[Q_CALL_CANCEL] = { "call_cancel",
		"UPDATE calls "
		"SET state = 'cancelled', finished_at = now(), lease_until = NULL "
		"WHERE id = $1::uuid AND client = $2 AND state IN ('queued', 'retrying') "
		"RETURNING id",
		2, false },

	/* $1 id, $2 client: put a dead, expired or cancelled call back in the queue, due now, with
	 * a fresh attempt budget (attempt numbers keep counting) and, if it had one, a fresh
	 * expiry of the same length. */
	[Q_CALL_RETRY] = { "call_retry",
		"UPDATE calls "
		"SET state = 'queued', not_before = now(), finished_at = NULL,"
		" attempt_floor = attempts, lease_until = NULL, leased_by = NULL, callback_id = NULL,"
		" expires_at = now() + (expires_at - created_at) "
		"WHERE id = $1::uuid AND client = $2 AND state IN ('dead', 'expired', 'cancelled') "
		"RETURNING id, ag_ts(not_before)",
		2, false },

	/* $1 id, $2 client: the API state, to tell 404 from 409, and not_before. */
	[Q_CALL_STATE] = { "call_state",
		"SELECT ag_state(state, not_before), ag_ts(not_before) "
		"FROM calls "
		"WHERE id = $1::uuid AND client = $2",
		2, true },

	/* Queue depth by API state and the age of the oldest due call (hot partition only). */
	[Q_HEALTH] = { "health",
		"SELECT"
		" count(*) FILTER (WHERE state = 'queued' AND not_before <= now()) AS queued,"
		" count(*) FILTER (WHERE state = 'queued' AND not_before > now()) AS scheduled,"
		" count(*) FILTER (WHERE state = 'retrying') AS retrying,"
		" count(*) FILTER (WHERE state = 'in_flight') AS in_flight,"
		" COALESCE(EXTRACT(epoch FROM now() - min(not_before)"
		"  FILTER (WHERE state IN ('queued', 'retrying') AND not_before <= now())), 0)::float8"
		"  AS oldest_due_age_s "
		"FROM calls_live",
		0, true },
};
/* clang-format on */

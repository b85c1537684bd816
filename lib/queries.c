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
	/* $1 rows (jsonb array, one object per call, made by call_row_json, each with its
	 * request's "client" and Idempotency-Key "ikey" or null), $2 key rows (jsonb array of
	 * {client, key, hash (hex), ids, batch}, one per request with a key; no two with the same
	 * client and key). The calls of several requests go in at once, so that they share one
	 * commit (cgi-bin/commitq.c); it is one statement, so it commits as a whole. A request
	 * whose key is already taken inserts nothing and gets no rows back (its caller then reads
	 * Q_IDEM_GET); the others are not affected by it.
	 * Rows and key rows of a request authenticated from a process's key cache carry the API
	 * key's id and row version ("kid", "kxmin"): they go in only if that api_keys row is still
	 * that version and not revoked, as this statement's snapshot sees it (taken after any
	 * revocation that had committed when the request came). */
	[Q_CALLS_INSERT] = { "calls_insert",
		"WITH r AS MATERIALIZED ("
		" SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
		"  id uuid, client text, ikey text, kid text, kxmin text,"
		"  not_before_us bigint, delay_ms bigint, expires_in_ms bigint,"
		"  function text, target text, path text, method text, query text, headers jsonb,"
		"  body text, body_type text, correlation_id text,"
		"  callback_url text, callback_headers jsonb,"
		"  failure_callback_url text, failure_callback_headers jsonb,"
		"  max_attempts integer, retry_initial_ms integer, retry_max_ms integer,"
		"  timeout_ms integer)"
		"), k AS ("
		" INSERT INTO idempotency_keys (client, key, request_hash, call_ids, batch)"
		" SELECT y.client, y.key, decode(y.hash, 'hex'), y.ids, y.batch"
		" FROM jsonb_to_recordset($2::jsonb) AS y("
		"  client text, key text, hash text, ids uuid[], batch boolean, kid text, kxmin text)"
		" WHERE y.kid IS NULL"
		"  OR EXISTS (SELECT 1 FROM api_keys a WHERE a.id = y.kid"
		"   AND a.xmin::text = y.kxmin AND a.revoked_at IS NULL)"
		" ON CONFLICT DO NOTHING"
		" RETURNING client, key"
		") "
		"INSERT INTO calls (id, state, client, not_before, expires_at,"
		" function, target, path, method, query, headers, body, body_type, correlation_id,"
		" callback_url, callback_headers, failure_callback_url, failure_callback_headers,"
		" max_attempts, retry_initial_ms, retry_max_ms, timeout_ms, idempotency_key) "
		"SELECT r.id, 'queued', r.client,"
		" COALESCE(to_timestamp(r.not_before_us / 1000000.0),"
		"  now() + make_interval(secs => COALESCE(r.delay_ms, 0) / 1000.0)),"
		" COALESCE(to_timestamp(r.not_before_us / 1000000.0),"
		"  now() + make_interval(secs => COALESCE(r.delay_ms, 0) / 1000.0))"
		"  + make_interval(secs => r.expires_in_ms / 1000.0),"
		" r.function, r.target, r.path, r.method, COALESCE(r.query, ''),"
		" COALESCE(r.headers, '{}'), decode(r.body, 'base64'), r.body_type, r.correlation_id,"
		" r.callback_url, r.callback_headers, r.failure_callback_url,"
		" r.failure_callback_headers,"
		" r.max_attempts, r.retry_initial_ms, r.retry_max_ms, r.timeout_ms, r.ikey "
		"FROM r "
		"WHERE (r.ikey IS NULL"
		"  OR EXISTS (SELECT 1 FROM k WHERE k.client = r.client AND k.key = r.ikey))"
		" AND (r.kid IS NULL"
		"  OR EXISTS (SELECT 1 FROM api_keys a WHERE a.id = r.kid"
		"   AND a.xmin::text = r.kxmin AND a.revoked_at IS NULL)) "
		"RETURNING id, ag_ts(not_before), not_before > now()",
		2, false },

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

	/* $1 id, $2 client (NULL for an admin): a client sees only its own calls. */
	[Q_CALL_GET] = { "call_get",
		"SELECT " CALL_DETAIL_COLUMNS
		"FROM calls c "
		"LEFT JOIN calls cb ON cb.id = c.callback_id "
		"WHERE c.id = $1::uuid AND ($2::text IS NULL OR c.client = $2)",
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
	 * $4 cursor (list ids older than it) or NULL, $5 limit, $6 client (NULL for an admin).
	 * Newest first. */
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
		" AND ($6::text IS NULL OR c.client = $6) "
		"ORDER BY c.id DESC "
		"LIMIT $5::integer",
		6, true },

	/* $1 id, $2 client (NULL for an admin): cancel unless in flight or finished. A row comes back when it was
	 * cancelled. (The row moves to calls_done; see db_exec on serialization failures.) */
	[Q_CALL_CANCEL] = { "call_cancel",
		"UPDATE calls "
		"SET state = 'cancelled', finished_at = now(), lease_until = NULL "
		"WHERE id = $1::uuid AND ($2::text IS NULL OR client = $2)"
		" AND state IN ('queued', 'retrying') "
		"RETURNING id",
		2, false },

	/* $1 id, $2 client (NULL for an admin): put a dead, expired or cancelled call back in the queue, due now, with
	 * a fresh attempt budget (attempt numbers keep counting) and, if it had one, a fresh
	 * expiry of the same length. */
	[Q_CALL_RETRY] = { "call_retry",
		"UPDATE calls "
		"SET state = 'queued', not_before = now(), finished_at = NULL,"
		" attempt_floor = attempts, lease_until = NULL, leased_by = NULL, callback_id = NULL,"
		" expires_at = now() + (expires_at - created_at) "
		"WHERE id = $1::uuid AND ($2::text IS NULL OR client = $2)"
		" AND state IN ('dead', 'expired', 'cancelled') "
		"RETURNING id, ag_ts(not_before)",
		2, false },

	/* $1 id, $2 client (NULL for an admin): the API state, to tell 404 from 409, and
	 * not_before. */
	[Q_CALL_STATE] = { "call_state",
		"SELECT ag_state(state, not_before), ag_ts(not_before) "
		"FROM calls "
		"WHERE id = $1::uuid AND ($2::text IS NULL OR client = $2)",
		2, true },

	/* $1 sha256 of the bearer token (hex): the live key it belongs to. */
	[Q_AUTH_KEY] = { "auth_key",
		"SELECT id, client, admin, array_to_json(functions), array_to_json(url_patterns),"
		" xmin::text "
		"FROM api_keys "
		"WHERE hash = decode($1, 'hex') AND revoked_at IS NULL",
		1, true },

	/* $1 REMOTE_USER: the rules of that web-server user. */
	[Q_AUTH_USER] = { "auth_user",
		"SELECT name, admin, array_to_json(functions), array_to_json(url_patterns) "
		"FROM web_users "
		"WHERE name = $1",
		1, true },

	/* asyncgate-admin. $1 client, $2 functions, $3 url patterns (jsonb arrays of strings),
	 * $4 admin, $5 note: a new key; the token is in the answer only. */
	[Q_ADMIN_KEY_CREATE] = { "admin_key_create",
		"SELECT id, token "
		"FROM ag_key_create($1,"
		" ARRAY(SELECT jsonb_array_elements_text($2::jsonb)),"
		" ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4::boolean, $5)",
		5, false },

	/* $1 key id: revoked now (true), or it was not a live key (false). */
	[Q_ADMIN_KEY_REVOKE] = { "admin_key_revoke",
		"SELECT ag_key_revoke($1)",
		1, true },

	/* $1 true to list revoked keys too. */
	[Q_ADMIN_KEY_LIST] = { "admin_key_list",
		"SELECT id, client, admin, array_to_string(functions, ' '),"
		" array_to_string(url_patterns, ' '), created_at, coalesce(revoked_at, ''), note "
		"FROM ag_keys "
		"WHERE active OR $1::boolean "
		"ORDER BY client, created_at",
		1, true },

	/* $1 name, $2 functions, $3 url patterns (jsonb arrays), $4 admin, $5 note. */
	[Q_ADMIN_USER_SET] = { "admin_user_set",
		"SELECT ag_user_set($1,"
		" ARRAY(SELECT jsonb_array_elements_text($2::jsonb)),"
		" ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4::boolean, $5)",
		5, true },

	/* $1 name: true when the user had rules. */
	[Q_ADMIN_USER_DELETE] = { "admin_user_delete",
		"SELECT ag_user_delete($1)",
		1, true },

	[Q_ADMIN_USER_LIST] = { "admin_user_list",
		"SELECT name, admin, array_to_string(functions, ' '),"
		" array_to_string(url_patterns, ' '), ag_ts(created_at), note "
		"FROM web_users "
		"ORDER BY name",
		0, true },

	/* Queue depth by API state and the age of the oldest due call (the ag_queue_depth view). */
	[Q_HEALTH] = { "health",
		"SELECT"
		" sum(calls) FILTER (WHERE state = 'queued')::bigint AS queued,"
		" sum(calls) FILTER (WHERE state = 'scheduled')::bigint AS scheduled,"
		" sum(calls) FILTER (WHERE state = 'retrying')::bigint AS retrying,"
		" sum(calls) FILTER (WHERE state = 'in_flight')::bigint AS in_flight,"
		" max(oldest_due_age_s) AS oldest_due_age_s "
		"FROM ag_queue_depth",
		0, true },

	/* Claim: $1 how many, $2 drainer name, $3 lease margin (ms) over each call's timeout.
	 * First calls whose lease ran out (their drainer died: the lost attempt is recorded as
	 * such), then due calls in due order; all skip rows other drainers hold. A call past its
	 * expires_at is claimed with expired = true and no attempt counted, for the drainer to
	 * settle as expired without sending it. One short statement; nothing stays open across
	 * HTTP. Not idempotent: sent twice it would claim twice (db_exec answers DB_LOST; the
	 * claimed rows come back after their lease). Columns: see enum claim_col in drain.c. */
	[Q_DRAIN_CLAIM] = { "drain_claim",
		"WITH lost AS MATERIALIZED ("
		" SELECT id FROM calls_live"
		" WHERE state = 'in_flight' AND lease_until < now()"
		" ORDER BY lease_until"
		" LIMIT $1::integer"
		" FOR UPDATE SKIP LOCKED"
		"), due AS MATERIALIZED ("
		" SELECT id FROM calls_live"
		" WHERE state IN ('queued', 'retrying') AND not_before <= now()"
		" ORDER BY not_before, id"
		" LIMIT greatest($1::integer - (SELECT count(*) FROM lost), 0)"
		" FOR UPDATE SKIP LOCKED"
		"), lost_attempt AS ("
		" INSERT INTO attempts (call_id, attempt, started_at, error, drainer)"
		" SELECT c.id, c.attempts,"
		"  c.lease_until - make_interval(secs => (c.timeout_ms + $3::bigint) / 1000.0),"
		"  'lease expired: the drainer did not report', c.leased_by"
		" FROM calls_live c JOIN lost ON lost.id = c.id"
		" WHERE c.state = 'in_flight' AND c.attempts > 0"
		" ON CONFLICT DO NOTHING"
		"), u AS ("
		" UPDATE calls_live c"
		" SET state = 'in_flight',"
		"  attempts = c.attempts + CASE WHEN c.expires_at <= now() THEN 0 ELSE 1 END,"
		"  lease_until = now() + make_interval(secs => (c.timeout_ms + $3::bigint) / 1000.0),"
		"  leased_by = $2"
		" FROM (SELECT id FROM lost UNION ALL SELECT id FROM due) k"
		" WHERE c.id = k.id"
		" RETURNING c.*, c.expires_at IS NOT NULL AND c.expires_at <= now() AS expired"
		") "
		"SELECT u.id, u.attempts, u.expired, u.method, u.target, u.function, f.base_url,"
		" u.path, u.query, u.headers, f.default_headers, u.body, u.body_type,"
		" u.correlation_id, u.timeout_ms, u.max_attempts, u.attempt_floor,"
		" u.retry_initial_ms, u.retry_max_ms,"
		" (EXTRACT(epoch FROM u.expires_at) * 1000)::bigint,"
		" (EXTRACT(epoch FROM now()) * 1000)::bigint,"
		" f.signing_secret, COALESCE(f.follow_redirects, false),"
		" u.callback_url IS NOT NULL, u.failure_callback_url IS NOT NULL, u.callback_of "
		"FROM u "
		"LEFT JOIN functions f ON f.name = u.function",
		3, false },

	/* Settle a batch of finished attempts: $1 jsonb array of outcomes (made by drain.c),
	 * $2 drainer name, $3..$6 a callback's max attempts, retry initial and max (ms), timeout
	 * (ms). Only calls this drainer still holds at that attempt are touched, so a drainer
	 * whose lease ran out changes nothing. In the same statement: the attempt rows, the
	 * callback calls of calls that ended, and the /metrics counters (of the attempt rows
	 * actually inserted). Idempotent: sent again
	 * after a lost connection it finds the calls no longer in flight and does nothing.
	 * Returns the id and new state of each call settled. */
	[Q_DRAIN_SETTLE] = { "drain_settle",
		"WITH r AS MATERIALIZED ("
		" SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
		"  id uuid, attempt integer, state text, delay_ms bigint, started_us bigint,"
		"  duration_ms integer, status integer, error text, response_headers jsonb,"
		"  response_body text, response_size bigint, outcome text, bucket_ms integer,"
		"  cb_id uuid, cb_body text)"
		"), u AS ("
		" UPDATE calls c"
		" SET state = r.state,"
		"  not_before = CASE WHEN r.state = 'retrying'"
		"   THEN now() + make_interval(secs => r.delay_ms / 1000.0) ELSE c.not_before END,"
		"  lease_until = NULL, leased_by = NULL,"
		"  last_status = CASE WHEN r.started_us IS NULL THEN c.last_status ELSE r.status END,"
		"  last_error = CASE WHEN r.started_us IS NULL THEN COALESCE(r.error, c.last_error)"
		"   ELSE r.error END,"
		"  finished_at = CASE WHEN r.state IN ('succeeded', 'dead', 'expired') THEN now() END,"
		"  callback_id = COALESCE(r.cb_id, c.callback_id)"
		" FROM r"
		" WHERE c.id = r.id AND c.state = 'in_flight' AND c.leased_by = $2"
		"  AND c.attempts = r.attempt"
		" RETURNING c.id, c.state, c.client, c.correlation_id, c.callback_url,"
		"  c.callback_headers, c.failure_callback_url, c.failure_callback_headers"
		"), a AS ("
		" INSERT INTO attempts (call_id, attempt, started_at, duration_ms, status, error,"
		"  response_headers, response_body, response_size, drainer)"
		" SELECT r.id, r.attempt, to_timestamp(r.started_us / 1000000.0), r.duration_ms,"
		"  r.status, r.error, r.response_headers, decode(r.response_body, 'base64'),"
		"  r.response_size, $2"
		" FROM r JOIN u ON u.id = r.id"
		" WHERE r.started_us IS NOT NULL"
		" ON CONFLICT DO NOTHING"
		" RETURNING call_id"
		"), m AS ("
		" INSERT INTO attempt_stats (outcome, bucket_ms, n, sum_ms)"
		" SELECT r.outcome, r.bucket_ms, count(*), COALESCE(sum(r.duration_ms), 0)"
		" FROM r JOIN a ON a.call_id = r.id"
		" GROUP BY 1, 2"
		" ORDER BY 1, 2"
		" ON CONFLICT (outcome, bucket_ms) DO UPDATE"
		" SET n = attempt_stats.n + excluded.n, sum_ms = attempt_stats.sum_ms + excluded.sum_ms"
		"), cb AS ("
		" INSERT INTO calls (id, state, client, target, method, headers, body, body_type,"
		"  correlation_id, max_attempts, retry_initial_ms, retry_max_ms, timeout_ms,"
		"  callback_of)"
		" SELECT r.cb_id, 'queued', u.client,"
		"  CASE WHEN u.state = 'succeeded' THEN u.callback_url"
		"   ELSE COALESCE(u.failure_callback_url, u.callback_url) END,"
		"  'POST',"
		"  COALESCE(CASE WHEN u.state = 'succeeded' THEN u.callback_headers"
		"   WHEN u.failure_callback_url IS NOT NULL THEN u.failure_callback_headers"
		"   ELSE u.callback_headers END, '{}'),"
		"  convert_to(r.cb_body, 'UTF8'), 'json', u.correlation_id,"
		"  $3::integer, $4::integer, $5::integer, $6::integer, u.id"
		" FROM r JOIN u ON u.id = r.id"
		" WHERE r.cb_id IS NOT NULL"
		") "
		"SELECT id, state FROM u",
		6, true },

	/* Give calls back unsent (a drainer stopping, or a /v1/drain budget running out):
	 * $1 jsonb array of {id, attempt}, $2 drainer name. The attempt is not counted. */
	[Q_DRAIN_RELEASE] = { "drain_release",
		"UPDATE calls_live c"
		" SET state = CASE WHEN c.attempts - 1 > c.attempt_floor THEN 'retrying'"
		"   ELSE 'queued' END,"
		"  attempts = c.attempts - 1, lease_until = NULL, leased_by = NULL "
		"FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, attempt integer) "
		"WHERE c.id = r.id AND c.state = 'in_flight' AND c.leased_by = $2"
		" AND c.attempts = r.attempt "
		"RETURNING c.id",
		2, true },

	/* Milliseconds until the next call falls due or a lease runs out (may be negative), or
	 * NULL when the live queue holds neither. */
	[Q_DRAIN_NEXT] = { "drain_next",
		"SELECT (EXTRACT(epoch FROM least("
		"  (SELECT min(not_before) FROM calls_live WHERE state IN ('queued', 'retrying')),"
		"  (SELECT min(lease_until) FROM calls_live WHERE state = 'in_flight')"
		" ) - now()) * 1000)::bigint",
		0, true },

	/* Wake the --follow drainers: calls are due now. A hint; drainers also poll. */
	[Q_NOTIFY] = { "notify",
		"SELECT pg_notify('asyncgate_due', '')",
		0, true },

	/* GET /metrics: the live queue by state (sql/002_drain.sql ag_queue_depth). */
	[Q_METRICS_DEPTH] = { "metrics_depth",
		"SELECT state, calls, oldest_due_age_s "
		"FROM ag_queue_depth",
		0, true },

	/* GET /metrics: attempt totals by outcome and duration bucket (attempt_stats). */
	[Q_METRICS_ATTEMPTS] = { "metrics_attempts",
		"SELECT outcome, bucket_ms, n, sum_ms "
		"FROM attempt_stats "
		"ORDER BY outcome, bucket_ms",
		0, true },
};
/* clang-format on */

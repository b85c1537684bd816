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
	"c.retry_max_ms AS \"retry.max_ms\", c.retry_on AS \"retry.on\", "                       \
	"c.give_up_on AS \"retry.give_up_on\", c.timeout_ms, c.connect_timeout_ms, "               \
	"c.debounce_key, c.priority, "                                                             \
	"c.attempts, ag_ts(c.lease_until) AS lease_until, "                                        \
	"c.last_status, c.last_error, c.callback_of, "                                             \
	"c.callback_id AS \"callback_call.id\", "                                                  \
	"ag_state(cb.state, cb.not_before) AS \"callback_call.state\", "                           \
	"cb.last_status AS \"callback_call.last_status\", "                                      \
	"c.schedule_id, ag_ts(c.tick_at) AS tick_at "

/* A schedule in API form (h_schedules.c adds next_tick_local from next_tick_us, then drops
 * next_tick_us). */
#define SCHEDULE_COLUMNS                                                                           \
	"s.id, s.name, s.cron, s.every, s.time_zone, s.missed, s.state, "                          \
	"ag_ts(s.next_tick) AS next_tick, "                                                        \
	"(EXTRACT(epoch FROM s.next_tick) * 1000000)::bigint AS next_tick_us, "                    \
	"ag_ts(s.last_tick) AS last_tick, s.last_call_id, s.ticks_fired, s.ticks_missed, "         \
	"ag_ts(s.created_at) AS created_at, s.instruction AS call "

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
	 * revocation that had committed when the request came). Calls with a debounce_key first
	 * cancel their client's older pending calls with the same key (ag_debounce,
	 * sql/005_call_controls.sql), once per client, only for the rows that go in; commitq.c
	 * never puts two requests of one client with debounce keys into one group. */
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
		"  timeout_ms integer, connect_timeout_ms integer, retry_on jsonb, give_up_on jsonb,"
		"  debounce_key text, priority smallint)"
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
		"), ok AS MATERIALIZED ("
		" SELECT r.* FROM r"
		" WHERE (r.ikey IS NULL"
		"  OR EXISTS (SELECT 1 FROM k WHERE k.client = r.client AND k.key = r.ikey))"
		"  AND (r.kid IS NULL"
		"  OR EXISTS (SELECT 1 FROM api_keys a WHERE a.id = r.kid"
		"   AND a.xmin::text = r.kxmin AND a.revoked_at IS NULL))"
		"), d AS ("
		" SELECT ag_debounce(ok.client, array_agg(ok.debounce_key), array_agg(ok.id)) AS n"
		" FROM ok"
		" WHERE ok.debounce_key IS NOT NULL"
		" GROUP BY ok.client"
		") "
		"INSERT INTO calls (id, state, client, not_before, expires_at,"
		" function, target, path, method, query, headers, body, body_type, correlation_id,"
		" callback_url, callback_headers, failure_callback_url, failure_callback_headers,"
		" max_attempts, retry_initial_ms, retry_max_ms, timeout_ms, idempotency_key,"
		" connect_timeout_ms, retry_on, give_up_on, debounce_key, priority, flow_key) "
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
		" r.max_attempts, r.retry_initial_ms, r.retry_max_ms, r.timeout_ms, r.ikey,"
		" r.connect_timeout_ms, r.retry_on, r.give_up_on, r.debounce_key,"
		" COALESCE(r.priority, 0),"
		/* the flow-control key, when the function or the raw target's host is limited;
		 * the host is cut out of the URL (two regular expressions) only when some host
		 * has a limit at all (an InitPlan, once per statement) */
		" CASE WHEN r.function IS NOT NULL THEN"
		"  (SELECT fk.key FROM flow_keys fk WHERE fk.key = 'f:' || r.function)"
		" WHEN EXISTS (SELECT 1 FROM flow_keys WHERE key LIKE 'h:%') THEN"
		"  (SELECT fk.key FROM flow_keys fk WHERE fk.key = 'h:' || ag_url_host(r.target))"
		" END "
		/* d runs (debounce) before the first row goes in */
		"FROM ok r CROSS JOIN (SELECT count(*) FROM d) dd "
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

	/* $1 id, $2 client (NULL for an admin): the API state, and the last attempt's answer for
	 * GET /v1/calls/{id}/response: its number, status, header lines (or, for attempts recorded
	 * before 005, the header object), body (capped), whole size, and the call's last error. */
	[Q_CALL_RESPONSE] = { "call_response",
		"SELECT ag_state(c.state, c.not_before), a.attempt, a.status,"
		" COALESCE(a.response_header_list, a.response_headers), a.response_body,"
		" a.response_size, c.last_error, c.attempts "
		"FROM calls c "
		"LEFT JOIN LATERAL (SELECT * FROM attempts"
		"  WHERE call_id = c.id ORDER BY attempt DESC, id DESC LIMIT 1) a ON true "
		"WHERE c.id = $1::uuid AND ($2::text IS NULL OR c.client = $2)",
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
	 * claimed rows come back after their lease). Columns: see enum claim_col in drain.c; the
	 * drainer reads them in binary format. */
	[Q_DRAIN_CLAIM] = { "drain_claim",
		/* lost and due carry each row's ctid: u finds the rows they locked by it (a TID
		 * scan) instead of a primary-key probe each; a locked row stays where it is */
		"WITH lost AS MATERIALIZED ("
		" SELECT id, ctid AS tid FROM calls_live"
		" WHERE state = 'in_flight' AND lease_until < now()"
		" ORDER BY lease_until"
		" LIMIT $1::integer"
		" FOR UPDATE SKIP LOCKED"
		"), due AS MATERIALIZED ("
		" SELECT id, ctid AS tid, flow_key, priority, not_before FROM calls_live"
		" WHERE state IN ('queued', 'retrying') AND not_before <= now()"
		" ORDER BY priority DESC, not_before, id"
		" LIMIT greatest($1::integer - (SELECT count(*) FROM lost), 0)"
		" FOR UPDATE SKIP LOCKED"
		/* flow control (sql/004_functions_flow.sql): the limited keys among the
		 * candidates, locked in key order; nothing to do when no candidate has a key */
		"), fk AS MATERIALIZED ("
		" SELECT f.key, f.tat_ms, f.hold_next_ms, f.paused_until_ms, f.in_flight,"
		"  f.rate_period_ms::float8 / f.rate_limit * f.slow AS t,"
		"  (f.rate_burst - 1) * f.rate_period_ms::float8 / f.rate_limit * f.slow AS tau,"
		"  CASE WHEN f.max_in_flight IS NOT NULL"
		"   THEN greatest(1, floor(f.max_in_flight / f.slow))::integer - f.in_flight END AS room,"
		"  extract(epoch FROM now())::float8 * 1000 AS now_ms,"
		"  greatest(coalesce(f.avg_ms, 1000)"
		"   / greatest(1, floor(coalesce(f.max_in_flight, 1) / f.slow)), 10) AS cap_step"
		" FROM flow_keys f"
		" WHERE f.key IN (SELECT flow_key FROM due WHERE flow_key IS NOT NULL)"
		" ORDER BY f.key"
		" FOR UPDATE"
		"), dec AS MATERIALIZED ("
		" SELECT r.id, r.flow_key, r.j,"
		"  fk.paused_until_ms <= fk.now_ms"
		"  AND (fk.t IS NULL OR greatest(fk.tat_ms, fk.now_ms) - fk.tau + r.j * fk.t <= fk.now_ms)"
		"  AND (fk.room IS NULL OR r.j < fk.room) AS granted"
		" FROM (SELECT id, flow_key, row_number() OVER (PARTITION BY flow_key"
		"   ORDER BY priority DESC, not_before, id) - 1 AS j"
		"  FROM due WHERE flow_key IS NOT NULL) r"
		" JOIN fk ON fk.key = r.flow_key"
		"), y AS MATERIALIZED ("
		" SELECT fk.*, x.ng, x.nh, greatest(fk.tat_ms, fk.now_ms) AS base,"
		"  coalesce(fk.t, fk.cap_step) AS step,"
		"  greatest(fk.hold_next_ms, fk.paused_until_ms,"
		"   greatest(fk.tat_ms, fk.now_ms) + x.ng * fk.t - fk.tau,"
		"   CASE WHEN x.ng >= fk.room THEN fk.now_ms + fk.cap_step END,"
		"   fk.now_ms + 1) AS first"
		" FROM fk JOIN (SELECT flow_key, count(*) FILTER (WHERE granted) AS ng,"
		"   count(*) FILTER (WHERE NOT granted) AS nh"
		"  FROM dec GROUP BY flow_key) x ON x.flow_key = fk.key"
		"), fu AS ("
		" UPDATE flow_keys f"
		" SET in_flight = f.in_flight + y.ng,"
		"  tat_ms = CASE WHEN y.t IS NULL OR y.ng = 0 THEN f.tat_ms ELSE y.base + y.ng * y.t END,"
		"  hold_next_ms = CASE WHEN y.nh > 0 THEN y.first + y.nh * y.step"
		"   ELSE f.hold_next_ms END"
		" FROM y"
		" WHERE f.key = y.key"
		"), hu AS ("
		" UPDATE calls_live c"
		" SET not_before = to_timestamp((y.first + (dec.j - y.ng) * y.step) / 1000.0),"
		"  held = true"
		" FROM dec JOIN y ON y.key = dec.flow_key"
		" WHERE c.id = dec.id AND NOT dec.granted"
		" RETURNING c.id"
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
		" SET state = 'in_flight', held = false,"
		"  attempts = c.attempts + CASE WHEN c.expires_at <= now() THEN 0 ELSE 1 END,"
		"  lease_until = now() + make_interval(secs => (c.timeout_ms + $3::bigint) / 1000.0),"
		"  leased_by = $2"
		" FROM (SELECT tid FROM lost UNION ALL"
		"  SELECT tid FROM due"
		"  WHERE id NOT IN (SELECT id FROM dec WHERE NOT granted)) k"
		" WHERE c.ctid = k.tid"
		" RETURNING c.*, c.expires_at IS NOT NULL AND c.expires_at <= now() AS expired"
		") "
		/* Read in binary format (dbq_send_format): every column but the body is text, so
		 * its binary form is its text; the body comes as its raw bytes, not hex. */
		"SELECT k.id::text, k.attempts::text, k.expired::text, k.method, k.target,"
		" k.function, k.base_url, k.path, k.query, k.headers::text,"
		" k.default_headers::text, k.body, k.body_type, k.correlation_id,"
		" k.timeout_ms::text, k.max_attempts::text, k.attempt_floor::text,"
		" k.retry_initial_ms::text, k.retry_max_ms::text, k.expires_ms::text,"
		" k.now_ms::text, k.signing_secret, k.follow_redirects::text, k.has_cb::text,"
		" k.has_fcb::text, k.callback_of::text, k.connect_timeout_ms::text,"
		" k.retry_on::text, k.give_up_on::text, k.held::text "
		"FROM ("
		" SELECT u.id, u.attempts, u.expired, u.method, u.target, u.function, f.base_url,"
		"  u.path, u.query, u.headers, f.default_headers, u.body, u.body_type,"
		"  u.correlation_id, u.timeout_ms, u.max_attempts, u.attempt_floor,"
		"  u.retry_initial_ms, u.retry_max_ms,"
		"  (EXTRACT(epoch FROM u.expires_at) * 1000)::bigint AS expires_ms,"
		"  (EXTRACT(epoch FROM now()) * 1000)::bigint AS now_ms,"
		"  f.signing_secret, COALESCE(f.follow_redirects, false) AS follow_redirects,"
		"  u.callback_url IS NOT NULL AS has_cb, u.failure_callback_url IS NOT NULL AS has_fcb,"
		"  u.callback_of, u.connect_timeout_ms, u.retry_on, u.give_up_on, false AS held,"
		"  u.priority AS priority, u.not_before AS due"
		" FROM u"
		" LEFT JOIN functions f ON f.name = u.function"
		" UNION ALL"
		" SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
		"  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
		"  NULL, NULL, NULL, true, NULL, NULL"
		" FROM hu"
		") k "
		/* claim order: a drainer that claimed ahead starts them in this order */
		"ORDER BY k.held, k.priority DESC, k.due, k.id",
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
		/* The commit does not wait for the WAL flush (set_config(..., true): this
		 * transaction only). Lost in a server crash, a settle leaves its calls in flight
		 * under a lease whose claim was committed durably; they are claimed again when it
		 * runs out, the lost attempt recorded as "lease expired" and the call sent again:
		 * at-least-once, and no attempt goes unrecorded. */
		"WITH sc AS MATERIALIZED ("
		" SELECT set_config('synchronous_commit', 'off', true)"
		"), r AS MATERIALIZED ("
		" SELECT x.* FROM sc, jsonb_to_recordset($1::jsonb) AS x("
		"  id uuid, attempt integer, state text, delay_ms bigint, started_us bigint,"
		"  duration_ms integer, status integer, error text, response_headers jsonb,"
		"  response_body text, response_size bigint, outcome text, bucket_ms integer,"
		"  cb_id uuid, cb_body text, response_header_list jsonb, retry_after_ms bigint)"
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
		"  c.callback_headers, c.failure_callback_url, c.failure_callback_headers, c.flow_key"
		/* flow control: the limited calls settled leave in_flight; a 429 slows their key
		 * down (and a Retry-After pauses it), a 2xx lets it recover (004_functions_flow) */
		"), fx AS MATERIALIZED ("
		" SELECT u.flow_key AS key, count(*) AS n,"
		"  count(*) FILTER (WHERE r.status = 429) AS n429,"
		"  count(*) FILTER (WHERE r.status BETWEEN 200 AND 299) AS nok,"
		"  max(r.retry_after_ms) FILTER (WHERE r.status = 429) AS ra,"
		"  avg(r.duration_ms) FILTER (WHERE r.started_us IS NOT NULL) AS dur"
		" FROM u JOIN r ON r.id = u.id"
		" WHERE u.flow_key IS NOT NULL"
		" GROUP BY 1"
		"), fl AS MATERIALIZED ("
		" SELECT f.key FROM flow_keys f"
		" WHERE f.key IN (SELECT key FROM fx)"
		" ORDER BY f.key"
		" FOR UPDATE"
		"), fu AS ("
		" UPDATE flow_keys f"
		" SET in_flight = greatest(f.in_flight - fx.n, 0),"
		"  slow = CASE WHEN fx.n429 > 0 THEN least(f.slow * 2, 64)"
		"   ELSE greatest(1, f.slow / power(1.05, fx.nok)) END,"
		"  paused_until_ms = CASE WHEN fx.ra > 0 THEN greatest(f.paused_until_ms,"
		"   extract(epoch FROM now())::float8 * 1000 + fx.ra) ELSE f.paused_until_ms END,"
		"  avg_ms = CASE WHEN fx.dur IS NULL THEN f.avg_ms"
		"   ELSE coalesce(f.avg_ms * 0.8 + fx.dur * 0.2, fx.dur) END"
		" FROM fx JOIN fl ON fl.key = fx.key"
		" WHERE f.key = fx.key"
		"), a AS ("
		" INSERT INTO attempts (call_id, attempt, started_at, duration_ms, status, error,"
		"  response_headers, response_body, response_size, drainer, response_header_list)"
		" SELECT r.id, r.attempt, to_timestamp(r.started_us / 1000000.0), r.duration_ms,"
		"  r.status, r.error, r.response_headers, decode(r.response_body, 'base64'),"
		"  r.response_size, $2, r.response_header_list"
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
		"WITH u AS ("
		" UPDATE calls_live c"
		" SET state = CASE WHEN c.attempts - 1 > c.attempt_floor THEN 'retrying'"
		"   ELSE 'queued' END,"
		"  attempts = c.attempts - 1, lease_until = NULL, leased_by = NULL"
		" FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, attempt integer)"
		" WHERE c.id = r.id AND c.state = 'in_flight' AND c.leased_by = $2"
		"  AND c.attempts = r.attempt"
		" RETURNING c.id, c.flow_key"
		"), fl AS MATERIALIZED ("
		" SELECT f.key, x.n FROM flow_keys f"
		" JOIN (SELECT flow_key, count(*) AS n FROM u GROUP BY 1) x ON x.flow_key = f.key"
		" ORDER BY f.key"
		" FOR UPDATE OF f"
		"), fu AS ("
		" UPDATE flow_keys f SET in_flight = greatest(f.in_flight - fl.n, 0)"
		" FROM fl WHERE f.key = fl.key"
		") "
		"SELECT id FROM u",
		2, true },

	/* Milliseconds until the next call falls due, a lease runs out or a schedule ticks (may
	 * be negative), or NULL when there is none of these. The claim index leads with
	 * priority, so the earliest not_before is read per priority in use (a loose index scan:
	 * one probe per distinct priority, usually one or two), never by walking every queued
	 * call. */
	[Q_DRAIN_NEXT] = { "drain_next",
		"WITH RECURSIVE p AS ("
		" (SELECT priority FROM calls_live"
		"  WHERE state IN ('queued', 'retrying')"
		"  ORDER BY priority DESC LIMIT 1)"
		" UNION ALL"
		" SELECT (SELECT c.priority FROM calls_live c"
		"  WHERE c.state IN ('queued', 'retrying') AND c.priority < p.priority"
		"  ORDER BY c.priority DESC LIMIT 1)"
		" FROM p WHERE p.priority IS NOT NULL"
		") "
		"SELECT (EXTRACT(epoch FROM least("
		"  (SELECT min((SELECT c.not_before FROM calls_live c"
		"    WHERE c.state IN ('queued', 'retrying') AND c.priority = p.priority"
		"    ORDER BY c.priority DESC, c.not_before LIMIT 1)) FROM p),"
		"  (SELECT min(lease_until) FROM calls_live WHERE state = 'in_flight'),"
		"  (SELECT min(next_tick) FROM schedules WHERE state = 'active')"
		" ) - now()) * 1000)::bigint",
		0, true },

	/* Wake the --follow drainers: calls are due now. A hint; drainers also poll. */
	[Q_NOTIFY] = { "notify",
		"SELECT pg_notify('asyncgate_due', '')",
		0, true },

	/* PUT /v1/functions/{name}: $1 name, $2 the request body (jsonb). ag_function_put checks
	 * every field (22023 naming it in the error's column) and writes nothing on bad input.
	 * Columns: created (bool), the function as GET shows it. */
	[Q_FUNCTION_PUT] = { "function_put",
		"SELECT created, function "
		"FROM ag_function_put($1, $2::jsonb)",
		2, false },

	/* $1 name: the function as GET shows it (no secret), or no row. */
	[Q_FUNCTION_GET] = { "function_get",
		"SELECT ag_function_json(f) "
		"FROM functions f "
		"WHERE f.name = $1",
		1, true },

	/* Every function as GET shows it, by name. */
	[Q_FUNCTION_LIST] = { "function_list",
		"SELECT ag_function_json(f) "
		"FROM functions f "
		"ORDER BY f.name",
		0, true },

	/* $1 name: true when it existed (its queued calls are cancelled, see ag_function_delete). */
	[Q_FUNCTION_DELETE] = { "function_delete",
		"SELECT ag_function_delete($1)",
		1, false },

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
	/* ---- topics (sql/006_topics.sql; cgi-bin/h_topics.c) ---- */

	/* $1 name, $2 jsonb array of checked subscriptions: create or replace. True = created. */
	[Q_TOPIC_PUT] = { "topic_put",
		"SELECT ag_topic_put($1, $2::jsonb)",
		2, true },

	/* $1 name: the topic, then one row per subscription in order (one row with NULL
	 * subscription columns when it has none); no rows when there is no such topic. */
	[Q_TOPIC_GET] = { "topic_get",
		"SELECT t.name, ag_ts(t.created_at), ag_ts(t.updated_at), s.name, s.spec, s.filter "
		"FROM topics t "
		"LEFT JOIN subscriptions s ON s.topic = t.name "
		"WHERE t.name = $1 "
		"ORDER BY s.ord",
		1, true },

	/* Every topic with its subscription count, by name. */
	[Q_TOPICS_LIST] = { "topics_list",
		"SELECT t.name, ag_ts(t.created_at) AS created_at, ag_ts(t.updated_at) AS updated_at,"
		" (SELECT count(*) FROM subscriptions s WHERE s.topic = t.name) AS subscriptions "
		"FROM topics t "
		"ORDER BY t.name",
		0, true },

	/* $1 name: true when the topic existed. */
	[Q_TOPIC_DELETE] = { "topic_delete",
		"SELECT ag_topic_delete($1)",
		1, true },

	/* A publish writes its publication and its calls in one transaction (h_topics.c). BEGIN
	 * and ROLLBACK may be sent again on a new connection (nothing was in the transaction, or
	 * it died with the old one); COMMIT may not: whether it made it is read back by id. */
	[Q_TX_BEGIN] = { "tx_begin", "BEGIN", 0, true },
	[Q_TX_COMMIT] = { "tx_commit", "COMMIT", 0, false },
	[Q_TX_ROLLBACK] = { "tx_rollback", "ROLLBACK", 0, true },

	/* $1 id, $2 topic, $3 client, $4 jsonb array of call ids, $5 jsonb array of subscription
	 * names (parallel), $6 idempotency key or NULL, $7 message hash (hex) or NULL. No row
	 * comes back when the client's key is taken (the caller reads Q_PUBLICATION_BY_KEY). */
	[Q_PUBLICATION_INSERT] = { "publication_insert",
		"INSERT INTO publications (id, topic, client, call_ids, subscriptions,"
		" idempotency_key, request_hash) "
		"SELECT $1::uuid, $2, $3,"
		" ARRAY(SELECT e::uuid FROM jsonb_array_elements_text($4::jsonb)"
		"  WITH ORDINALITY AS t(e, n) ORDER BY n),"
		" ARRAY(SELECT e FROM jsonb_array_elements_text($5::jsonb)"
		"  WITH ORDINALITY AS t(e, n) ORDER BY n),"
		" $6, decode($7, 'hex') "
		"ON CONFLICT (client, idempotency_key) DO NOTHING "
		"RETURNING id",
		7, false },

	/* $1 id, $2 client (NULL for an admin): the publication, then one row per call in the
	 * topic's order (one row with NULL call columns when it made none); no rows when there is
	 * no such publication for this client. */
	[Q_PUBLICATION_GET] = { "publication_get",
		"SELECT p.id, p.topic, ag_ts(p.created_at), x.subscription, x.call_id,"
		" ag_state(c.state, c.not_before), ag_ts(c.not_before), c.attempts, c.last_status,"
		" ag_ts(c.finished_at) "
		"FROM publications p "
		"LEFT JOIN LATERAL unnest(p.call_ids, p.subscriptions) WITH ORDINALITY"
		" AS x(call_id, subscription, n) ON true "
		"LEFT JOIN calls c ON c.id = x.call_id "
		"WHERE p.id = $1::uuid AND ($2::text IS NULL OR p.client = $2) "
		"ORDER BY x.n",
		2, true },

	/* $1 client, $2 idempotency key: the publication it made, its topic and message hash. */
	[Q_PUBLICATION_BY_KEY] = { "publication_by_key",
		"SELECT id, topic, encode(request_hash, 'hex') "
		"FROM publications "
		"WHERE client = $1 AND idempotency_key = $2",
		2, true },

	/* $1 topic or NULL, $2 cursor (ids older than it) or NULL, $3 limit, $4 client (NULL for
	 * an admin). Newest first. */
	[Q_PUBLICATIONS_LIST] = { "publications_list",
		"SELECT id, topic, ag_ts(created_at) AS created_at,"
		" cardinality(call_ids) AS calls "
		"FROM publications "
		"WHERE ($1::text IS NULL OR topic = $1)"
		" AND ($2::uuid IS NULL OR id < $2::uuid)"
		" AND ($4::text IS NULL OR client = $4) "
		"ORDER BY id DESC "
		"LIMIT $3::integer",
		4, true },

	/* ---- schedules (sql/007_schedules.sql; lib/schedule.c, cgi-bin/h_schedules.c) ---- */

	/* In a transaction (Q_TX_BEGIN: schedule_fire; its statements are not idempotent, so that
	 * a reconnect fails them rather than sending the rest outside it): $1 how many. Active schedules whose next tick has passed, locked
	 * (SKIP LOCKED: another drainer has those), with the database's now. Columns: see enum
	 * due_col in schedule.c. */
	[Q_SCHED_DUE] = { "sched_due",
		"SELECT id, client, cron, every_ms, anchor_us, time_zone, missed,"
		" (EXTRACT(epoch FROM next_tick) * 1000000)::bigint, call_row,"
		" (EXTRACT(epoch FROM now()) * 1000000)::bigint "
		"FROM schedules "
		"WHERE state = 'active' AND next_tick <= now() "
		"ORDER BY next_tick "
		"LIMIT $1::integer "
		"FOR UPDATE SKIP LOCKED",
		1, false },

	/* In the transaction of Q_SCHED_DUE, after Q_CALLS_INSERT of the tick's call:
	 * $1 schedule, $2 tick (us; NULL when no call was made), $3 the call's id, $4 ticks
	 * passed over, $5 next tick (us), $6 drainer. The tick row is the guard: when it exists
	 * already (next_tick set back by hand), the call just inserted is deleted again.
	 * Ticks older than 30 days are dropped. Returns 1 when the tick made its call, else 0. */
	[Q_SCHED_FIRED] = { "sched_fired",
		"WITH t AS ("
		" INSERT INTO schedule_ticks (schedule_id, tick_at, call_id, missed, drainer)"
		" SELECT $1::uuid, 'epoch'::timestamptz + $2::bigint * interval '1 microsecond',"
		"  $3::uuid, $4::bigint, $6"
		" WHERE $2::bigint IS NOT NULL"
		" ON CONFLICT DO NOTHING"
		" RETURNING call_id, tick_at"
		"), c AS ("
		" UPDATE calls SET schedule_id = $1::uuid, tick_at = t.tick_at"
		" FROM t"
		" WHERE calls.id = t.call_id"
		"), d AS ("
		" DELETE FROM calls"
		" WHERE id = $3::uuid AND NOT EXISTS (SELECT 1 FROM t)"
		"), old AS ("
		" DELETE FROM schedule_ticks"
		" WHERE schedule_id = $1::uuid AND tick_at < now() - interval '30 days'"
		"), s AS ("
		" UPDATE schedules"
		" SET next_tick = 'epoch'::timestamptz + $5::bigint * interval '1 microsecond',"
		"  last_tick = COALESCE((SELECT tick_at FROM t), last_tick),"
		"  last_call_id = COALESCE((SELECT call_id FROM t), last_call_id),"
		"  ticks_fired = ticks_fired + (SELECT count(*) FROM t),"
		"  ticks_missed = ticks_missed + $4::bigint"
		" WHERE id = $1::uuid"
		") "
		"SELECT count(*) FROM t",
		6, false },

	/* Milliseconds until the earliest next tick of an active schedule (may be negative), or
	 * NULL when none is active. */
	[Q_SCHED_NEXT] = { "sched_next",
		"SELECT (EXTRACT(epoch FROM min(next_tick) - now()) * 1000)::bigint "
		"FROM schedules "
		"WHERE state = 'active'",
		0, true },

	/* $1 schedule whose tick could not be recorded: looked at again in a minute. */
	[Q_SCHED_DEFER] = { "sched_defer",
		"UPDATE schedules "
		"SET next_tick = greatest(next_tick, now() + interval '1 minute') "
		"WHERE id = $1::uuid AND state = 'active'",
		1, true },

	/* POST /v1/schedules: $1 id, $2 client, $3 name, $4 cron, $5 every (as given),
	 * $6 every_ms, $7 anchor (us), $8 time zone, $9 missed policy, $10 instruction,
	 * $11 call row, $12 first tick (us). */
	[Q_SCHED_INSERT] = { "sched_insert",
		"INSERT INTO schedules AS s (id, client, name, cron, every, every_ms, anchor_us,"
		" time_zone, missed, instruction, call_row, next_tick) "
		"VALUES ($1::uuid, $2, $3, $4, $5, $6::bigint, $7::bigint, $8, $9, $10::jsonb,"
		" $11::jsonb, 'epoch'::timestamptz + $12::bigint * interval '1 microsecond') "
		"RETURNING " SCHEDULE_COLUMNS,
		12, false },

	/* $1 client (NULL for an admin), $2 cursor (ids older than it) or NULL, $3 limit.
	 * Newest first. */
	[Q_SCHED_LIST] = { "sched_list",
		"SELECT " SCHEDULE_COLUMNS
		"FROM schedules s "
		"WHERE ($1::text IS NULL OR s.client = $1)"
		" AND ($2::uuid IS NULL OR s.id < $2::uuid) "
		"ORDER BY s.id DESC "
		"LIMIT $3::integer",
		3, true },

	/* $1 id, $2 client (NULL for an admin). The last three columns are for resuming. */
	[Q_SCHED_GET] = { "sched_get",
		"SELECT " SCHEDULE_COLUMNS ","
		" s.every_ms AS \"_every_ms\", s.anchor_us AS \"_anchor_us\" "
		"FROM schedules s "
		"WHERE s.id = $1::uuid AND ($2::text IS NULL OR s.client = $2)",
		2, true },

	/* $1 schedule id: its latest ticks, newest first, with their calls' states. */
	[Q_SCHED_TICKS] = { "sched_ticks",
		"SELECT ag_ts(t.tick_at) AS tick_at, t.call_id, t.missed,"
		" ag_ts(t.fired_at) AS fired_at, ag_state(c.state, c.not_before) AS call_state "
		"FROM schedule_ticks t "
		"LEFT JOIN calls c ON c.id = t.call_id "
		"WHERE t.schedule_id = $1::uuid "
		"ORDER BY t.tick_at DESC "
		"LIMIT 20",
		1, true },

	/* $1 id, $2 client (NULL for an admin): pause (a paused one stays paused). */
	[Q_SCHED_PAUSE] = { "sched_pause",
		"UPDATE schedules AS s "
		"SET state = 'paused', next_tick = NULL,"
		" updated_at = CASE WHEN s.state = 'paused' THEN s.updated_at ELSE now() END "
		"WHERE s.id = $1::uuid AND ($2::text IS NULL OR s.client = $2) "
		"RETURNING " SCHEDULE_COLUMNS,
		2, true },

	/* $1 id, $2 client (NULL for an admin), $3 next tick (us): resume a paused schedule from
	 * its next tick after now (an active one is left as it is: no row). */
	[Q_SCHED_RESUME] = { "sched_resume",
		"UPDATE schedules AS s "
		"SET state = 'active', updated_at = now(),"
		" next_tick = 'epoch'::timestamptz + $3::bigint * interval '1 microsecond' "
		"WHERE s.id = $1::uuid AND ($2::text IS NULL OR s.client = $2)"
		" AND s.state = 'paused' "
		"RETURNING " SCHEDULE_COLUMNS,
		3, false },

	/* $1 id, $2 client (NULL for an admin): delete it and its ticks (the calls it made keep
	 * schedule_id and tick_at). */
	[Q_SCHED_DELETE] = { "sched_delete",
		"WITH s AS ("
		" DELETE FROM schedules"
		" WHERE id = $1::uuid AND ($2::text IS NULL OR client = $2)"
		" RETURNING id"
		"), t AS ("
		" DELETE FROM schedule_ticks WHERE schedule_id IN (SELECT id FROM s)"
		") "
		"SELECT id FROM s",
		2, true },
};
/* clang-format on */

-- 002_drain: what the drainer needs beyond the queue (attempt counters for /metrics), and the
-- audit views and functions that operators query with SQL.
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add 003_*.sql instead.

-- A function's base URL is a prefix that path and query are appended to: it may not carry a
-- query or a fragment of its own (the drainer would append the path after them).
ALTER TABLE functions ADD CONSTRAINT functions_base_url_plain CHECK (base_url !~ '[?#]');

-- attempt_stats: running totals of attempts by outcome and duration bucket, for the Prometheus
-- counters of GET /metrics. The drainer adds to it in the same statement that inserts a batch of
-- attempt rows, counting the rows inserted, so the totals follow the attempts table (except for
-- the "lease expired" rows a claim writes for a drainer that died: no outcome came for those).
-- Unlike counting the attempts table, reading it costs the same at any size, and ag_purge leaves
-- it alone (counters only grow).
--   outcome:    success (2xx) | retry (the call will be tried again) | dead (the call ended dead)
--               | expired (the call ran out of time after this attempt)
--   bucket_ms:  the smallest histogram bound (ms) the duration fits under; -1 = above the last;
--               -2 = no request was made (the call could not be sent as stored)
CREATE TABLE attempt_stats (
	outcome    text NOT NULL,
	bucket_ms  integer NOT NULL,
	n          bigint NOT NULL,
	sum_ms     bigint NOT NULL,
	PRIMARY KEY (outcome, bucket_ms)
);
COMMENT ON TABLE attempt_stats IS 'Running attempt totals by outcome and duration bucket (GET /metrics).';

-- ag_queue_depth: the live queue by API state, with the age of the oldest due call in each.
--   SELECT * FROM ag_queue_depth;
CREATE VIEW ag_queue_depth AS
SELECT s.state,
       COALESCE(d.calls, 0) AS calls,
       COALESCE(d.oldest_due_age_s, 0) AS oldest_due_age_s
FROM (VALUES (1, 'scheduled'), (2, 'queued'), (3, 'retrying'), (4, 'in_flight')) AS s(ord, state)
LEFT JOIN (
	SELECT ag_state(state, not_before) AS state,
	       count(*) AS calls,
	       EXTRACT(epoch FROM now() - min(not_before) FILTER (
		       WHERE state IN ('queued', 'retrying') AND not_before <= now()))::float8
		       AS oldest_due_age_s
	FROM calls_live
	GROUP BY 1
) AS d ON d.state = s.state
ORDER BY s.ord;
COMMENT ON VIEW ag_queue_depth IS 'Live calls by API state, and the age in seconds of the oldest due call.';

-- ag_call_attempts: every call with each of its attempts (a call without attempts: one row with
-- NULL attempt columns).
--   SELECT * FROM ag_call_attempts WHERE call_id = '...' ORDER BY attempt;
CREATE VIEW ag_call_attempts AS
SELECT c.id AS call_id,
       ag_state(c.state, c.not_before) AS state,
       c.client, c.function, c.target, c.path, c.method, c.correlation_id,
       c.created_at, c.not_before, c.finished_at, c.callback_of, c.callback_id,
       a.attempt, a.started_at, a.duration_ms, a.status, a.error, a.response_size, a.drainer
FROM calls c
LEFT JOIN attempts a ON a.call_id = c.id;
COMMENT ON VIEW ag_call_attempts IS 'Calls joined with their attempts, one row per attempt.';

-- ag_dead_letters: calls that ended without success (dead or expired), newest first, with the
-- answer or error of their last attempt. Put one back with POST /v1/calls/{id}/retry.
--   SELECT * FROM ag_dead_letters WHERE finished_at > now() - interval '1 day';
CREATE VIEW ag_dead_letters AS
SELECT c.id, c.state, c.finished_at, c.client, c.function, c.target, c.path, c.method,
       c.correlation_id, c.attempts, c.last_status, c.last_error, c.created_at
FROM calls_done c
WHERE c.state IN ('dead', 'expired')
ORDER BY c.finished_at DESC;
COMMENT ON VIEW ag_dead_letters IS 'Calls that ended dead or expired, newest first.';

-- ag_function_stats: per function (raw URL calls grouped by scheme://host), over attempts that
-- started within the window: attempts, successes, success rate and duration percentiles (ms).
--   SELECT * FROM ag_function_stats(interval '15 minutes');
CREATE FUNCTION ag_function_stats(since interval DEFAULT interval '1 hour')
RETURNS TABLE (function text, attempts bigint, succeeded bigint, success_rate float8,
	       p50_ms float8, p95_ms float8, p99_ms float8)
LANGUAGE sql STABLE
AS $$
	SELECT COALESCE(c.function, substring(c.target FROM '^[A-Za-z]+://[^/?#]*')),
	       count(*),
	       count(*) FILTER (WHERE a.status BETWEEN 200 AND 299),
	       (count(*) FILTER (WHERE a.status BETWEEN 200 AND 299))::float8 / count(*),
	       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms),
	       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms),
	       percentile_cont(0.99) WITHIN GROUP (ORDER BY a.duration_ms)
	FROM attempts a
	JOIN calls c ON c.id = a.call_id
	WHERE a.started_at >= now() - since
	GROUP BY 1
	ORDER BY 1
$$;
COMMENT ON FUNCTION ag_function_stats(interval) IS 'Per-function attempts, success rate and latency percentiles over a window.';

-- ag_function_stats_1h: the same over the last hour, as a view for dashboards.
CREATE VIEW ag_function_stats_1h AS SELECT * FROM ag_function_stats(interval '1 hour');

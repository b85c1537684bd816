-- 001_init: the queue, the attempt log, registered functions and idempotency keys.
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add 002_*.sql instead.

-- schema_migrations: one row per applied migration file (its number and name).
CREATE TABLE IF NOT EXISTS schema_migrations (
	version     text PRIMARY KEY,
	applied_at  timestamptz NOT NULL DEFAULT now()
);

-- ag_ts: the one timestamp spelling of the API and the audit views,
-- RFC 3339 in UTC with milliseconds ("2026-11-23T19:00:00.000Z").
CREATE FUNCTION ag_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- ag_state: the API state of a call from its stored state: a queued call that is not due yet
-- is "scheduled". Use it in audit queries: SELECT ag_state(state, not_before), count(*) ...
CREATE FUNCTION ag_state(state text, not_before timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN state = 'queued' AND not_before > now() THEN 'scheduled' ELSE state END $$;

-- functions: named targets. A call naming a function is sent to base_url || path, with
-- default_headers under the call's own headers. NULL limits fall back to the gateway defaults
-- (asyncgate.conf) when a call is accepted; the accepted call stores the values in force then.
CREATE TABLE functions (
	name              text PRIMARY KEY
	                  CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
	base_url          text NOT NULL CHECK (base_url ~* '^https?://'),
	default_headers   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(default_headers) = 'object'),
	signing_secret    text,                       -- Standard Webhooks secret ("whsec_..."), never logged
	timeout_ms        integer CHECK (timeout_ms > 0),
	max_attempts      integer CHECK (max_attempts BETWEEN 1 AND 100),
	retry_initial_ms  integer CHECK (retry_initial_ms >= 0),
	retry_max_ms      integer CHECK (retry_max_ms >= 0),
	follow_redirects  boolean NOT NULL DEFAULT false,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE functions IS 'Named call targets: base URL, default headers, signing secret, limits.';

-- calls: every accepted call, live or finished, partitioned by state so that the hot partition
-- (calls_live) holds only what a drainer may still claim. A state change to a final state moves
-- the row into calls_done inside PostgreSQL (row movement), so claims never walk history, however
-- many millions of finished calls accumulate (research: pg-boss #225/#228, Graphile #274).
--
-- Stored states:  queued -> in_flight -> succeeded | retrying | dead | expired;  cancelled.
-- The API state "scheduled" is not stored: it is a queued call whose not_before is in the future,
-- so no mover job has to flip rows when they fall due.
--
-- ids are UUIDv7 made by the handler: time-ordered, so "newest first" is ORDER BY id DESC, cursor
-- paging is "id < $after", and inserts append to the right edge of the primary key.
-- PostgreSQL requires the partition key in a partitioned table's primary key; ids are random
-- beyond their timestamp (74 bits) and every id is inserted once (the handler never sends an
-- insert again blindly), so (id, state) is unique in id alone.
--
-- Concurrency: an UPDATE that moves a row between partitions makes a concurrent UPDATE, DELETE
-- or SELECT ... FOR UPDATE [SKIP LOCKED] of the same row fail with a serialization failure
-- (40001, "tuple ... was already moved to another partition") instead of waiting or skipping.
-- The statement is rolled back whole, so asyncgate runs it again (lib/db.c); SQL of your own
-- that updates calls should do the same.
CREATE TABLE calls (
	id                        uuid NOT NULL,
	state                     text NOT NULL,
	client                    text NOT NULL DEFAULT '',      -- API key id or REMOTE_USER; '' when anonymous
	created_at                timestamptz NOT NULL DEFAULT now(),
	not_before                timestamptz NOT NULL DEFAULT now(),  -- not sent before this time
	expires_at                timestamptz,                   -- ends as expired if not succeeded by then

	function                  text,                          -- registered function, or NULL for a raw URL
	target                    text,                          -- absolute http(s) URL when function is NULL
	path                      text,                          -- path under the function's base URL
	method                    text NOT NULL,
	query                     text NOT NULL DEFAULT '',      -- encoded query string, without '?'
	headers                   jsonb NOT NULL DEFAULT '{}',   -- {"Name": "value"}, as given
	body                      bytea,                         -- exact bytes to send
	body_type                 text CHECK (body_type IN ('json', 'text', 'binary')),

	correlation_id            text,
	callback_url              text,
	callback_headers          jsonb,
	failure_callback_url      text,
	failure_callback_headers  jsonb,

	max_attempts              integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
	retry_initial_ms          integer NOT NULL CHECK (retry_initial_ms >= 0),
	retry_max_ms              integer NOT NULL CHECK (retry_max_ms >= retry_initial_ms),
	timeout_ms                integer NOT NULL CHECK (timeout_ms > 0),

	attempts                  integer NOT NULL DEFAULT 0,    -- attempts made, over the call's life
	attempt_floor             integer NOT NULL DEFAULT 0,    -- attempts at the last manual retry
	lease_until               timestamptz,                   -- in_flight: claimable again after this
	leased_by                 text,                          -- which drainer holds the lease
	last_status               integer,                       -- HTTP status of the latest attempt
	last_error                text,                          -- transport error of the latest attempt
	finished_at               timestamptz,                   -- set with a final state

	callback_of               uuid,                          -- on a callback: the call it reports on
	callback_id               uuid,                          -- on a finished call: its callback call
	idempotency_key           text,

	PRIMARY KEY (id, state),
	CHECK ((function IS NULL) <> (target IS NULL)),
	CHECK (path IS NULL OR function IS NOT NULL)
) PARTITION BY LIST (state);
COMMENT ON TABLE calls IS 'Every accepted call. Query this parent; calls_live is the queue, calls_done the archive.';

-- calls_live: the queue. Kept small; vacuumed eagerly because every claim and settle rewrites rows.
CREATE TABLE calls_live PARTITION OF calls
	FOR VALUES IN ('queued', 'retrying', 'in_flight')
	WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
	      autovacuum_analyze_scale_factor = 0.05);
COMMENT ON TABLE calls_live IS 'The hot queue: calls that are queued, retrying or in flight.';

-- calls_done: the archive of finished calls, insert-mostly; purged by ag_purge().
CREATE TABLE calls_done PARTITION OF calls
	FOR VALUES IN ('succeeded', 'dead', 'expired', 'cancelled');
COMMENT ON TABLE calls_done IS 'Finished calls (succeeded, dead, expired, cancelled), kept for audit until purged.';

-- The claim index: due calls in due order. Its predicate is exactly the claim's, so in-flight
-- and finished rows are not in it and ORDER BY not_before, id streams from it under LIMIT.
CREATE INDEX calls_live_due ON calls_live (not_before, id) WHERE state IN ('queued', 'retrying');
-- Calls whose drainer died: claimable again once lease_until has passed.
CREATE INDEX calls_live_lease ON calls_live (lease_until) WHERE state = 'in_flight';
-- Listing filters (GET /v1/calls?correlation_id=&function=), newest first.
CREATE INDEX calls_correlation ON calls (correlation_id, id) WHERE correlation_id IS NOT NULL;
CREATE INDEX calls_function ON calls (function, id) WHERE function IS NOT NULL;
CREATE INDEX calls_done_finished ON calls_done (finished_at);

-- attempts: the audit log, one row per attempt, insert-only. No foreign key to calls: the
-- FOR KEY SHARE lock a referencing insert takes would make SKIP LOCKED claimers skip the call.
CREATE TABLE attempts (
	id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	call_id           uuid NOT NULL,
	attempt           integer NOT NULL,          -- 1-based, over the call's life
	started_at        timestamptz NOT NULL,
	duration_ms       integer,
	status            integer,                   -- HTTP status; NULL when no response came
	error             text,                      -- transport error; NULL when a response came
	response_headers  jsonb,
	response_body     bytea,                     -- the stored part (capped)
	response_size     bigint,                    -- the whole size, stored or not
	drainer           text                       -- which drainer made it
);
-- One row per attempt number: a drainer whose lease ran out cannot record an attempt twice.
CREATE UNIQUE INDEX attempts_call ON attempts (call_id, attempt);
CREATE INDEX attempts_started ON attempts USING brin (started_at);
COMMENT ON TABLE attempts IS 'Audit log: every attempt of every call, with its outcome.';

-- idempotency_keys: the calls a (client, key) created. A repeat of the same request (same
-- request_hash) is answered with those calls again and enqueues nothing; a different request
-- under the same key is refused (409). Written in the same statement as the calls themselves.
CREATE TABLE idempotency_keys (
	client        text NOT NULL,
	key           text NOT NULL,
	request_hash  bytea NOT NULL,            -- SHA-256 of the canonical instruction(s)
	call_ids      uuid[] NOT NULL,           -- the calls created, in request order
	batch         boolean NOT NULL,          -- answered with an array (POST of an array)
	created_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (client, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
COMMENT ON TABLE idempotency_keys IS 'Idempotency-Key header: first answer per (client, key), kept for the configured window.';

-- ag_purge: delete finished calls, their attempts, and idempotency keys older than the given
-- ages, in batches, committing after each one so that no transaction runs long or pins the
-- xmin horizon. A procedure (COMMIT inside), so CALL it outside a transaction block, from cron:
--   psql -c "CALL ag_purge(interval '7 days', interval '24 hours')"
CREATE PROCEDURE ag_purge(keep_done interval, keep_keys interval, batch integer DEFAULT 10000)
LANGUAGE plpgsql AS $$
DECLARE
	k bigint;
BEGIN
	LOOP
		WITH d AS (
			DELETE FROM calls_done
			WHERE ctid IN (SELECT ctid FROM calls_done
			               WHERE finished_at < now() - keep_done LIMIT batch)
			RETURNING id
		), a AS (
			DELETE FROM attempts WHERE call_id IN (SELECT id FROM d)
		)
		SELECT count(*) INTO k FROM d;
		COMMIT;
		EXIT WHEN k < batch;
	END LOOP;
	DELETE FROM idempotency_keys WHERE created_at < now() - keep_keys;
	COMMIT;
END $$;

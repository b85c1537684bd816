-- 007_schedules: recurring calls. A schedule holds a checked call instruction and when it
-- ticks (a 5-field cron expression on a time zone's wall clock, or a fixed interval); the drain
-- cycle turns each due tick into one call (lib/schedule.c schedule_fire).
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add a new numbered file instead.
--
-- Operators:
--   SELECT * FROM ag_schedules;                            -- every schedule, next tick local too
--   SELECT ag_schedule_pause('0195...');                   -- no more ticks
--   SELECT ag_schedule_resume('0195...');                  -- ticks again from now on
--   SELECT * FROM schedule_ticks WHERE schedule_id = '0195...' ORDER BY tick_at DESC LIMIT 20;
--   SELECT * FROM calls WHERE schedule_id = '0195...' ORDER BY id DESC;

-- schedules: one row per schedule. Exactly one of cron and every_ms says when it ticks.
--   next_tick: while active, a lower bound of the next tick: the drainer that finds it passed
--     fires the tick(s) due by the missed-tick policy and stores the tick after. Setting it to
--     now() (ag_schedule_resume) or into the past (to replay) by hand is safe.
--   call_row: the call as POST /v1/calls would store it (lib/call.c call_row_json, without its
--     id), checked and with the function's and the gateway's defaults filled in at creation;
--     each tick inserts it with a fresh id and not_before = the tick.
CREATE TABLE schedules (
	id            uuid PRIMARY KEY,                       -- UUIDv7, made by the handler
	client        text NOT NULL DEFAULT '',               -- as calls.client; ticks' calls get it
	name          text,
	cron          text,                                   -- "*/5 * * * *", "@daily", as given
	every         text,                                   -- the interval as given ("90s")
	every_ms      bigint CHECK (every_ms >= 1000),
	anchor_us     bigint,                                 -- interval: ticks are anchor + k * every
	time_zone     text NOT NULL DEFAULT 'UTC',            -- IANA name; cron fields read in it
	missed        text NOT NULL DEFAULT 'run_once' CHECK (missed IN ('run_once', 'skip')),
	instruction   jsonb NOT NULL,                         -- the call instruction as given
	call_row      jsonb NOT NULL,                         -- the checked call (see above)
	state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
	next_tick     timestamptz,                            -- NULL while paused
	last_tick     timestamptz,
	last_call_id  uuid,
	ticks_fired   bigint NOT NULL DEFAULT 0,              -- calls made
	ticks_missed  bigint NOT NULL DEFAULT 0,              -- ticks passed over (missed policy)
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	CHECK ((cron IS NULL) <> (every_ms IS NULL)),
	CHECK (every_ms IS NULL OR anchor_us IS NOT NULL),
	CHECK (state = 'paused' OR next_tick IS NOT NULL)
);
COMMENT ON TABLE schedules IS 'Recurring calls: a cron expression or an interval, and the call each tick makes.';
-- The drainers' look: due active schedules in due order (and the earliest next tick).
CREATE INDEX schedules_due ON schedules (next_tick) WHERE state = 'active';
CREATE INDEX schedules_client ON schedules (client, id);

-- schedule_ticks: one row per tick that made a call. Its primary key is what makes a tick one
-- call however many drainers run: the row is written in the transaction that inserts the call
-- and stores the schedule's next tick. (calls is partitioned by state, so it cannot carry a
-- unique index on (schedule_id, tick_at) itself.) No foreign keys, as for attempts.
CREATE TABLE schedule_ticks (
	schedule_id  uuid NOT NULL,
	tick_at      timestamptz NOT NULL,
	call_id      uuid NOT NULL,
	missed       bigint NOT NULL DEFAULT 0,   -- ticks passed over just before this one
	fired_at     timestamptz NOT NULL DEFAULT now(),
	drainer      text,
	PRIMARY KEY (schedule_id, tick_at)
);
COMMENT ON TABLE schedule_ticks IS 'Ticks of schedules and the call each made (kept 30 days).';

-- The call a tick made links back to its schedule (shown by GET /v1/calls/{id}).
ALTER TABLE calls ADD COLUMN schedule_id uuid, ADD COLUMN tick_at timestamptz;
CREATE INDEX calls_schedule ON calls (schedule_id, tick_at) WHERE schedule_id IS NOT NULL;

-- ag_ts_zone: t as RFC 3339 local time in zone tz, with its offset ("2026-03-29T03:00:00+02:00"),
-- or NULL when PostgreSQL does not know the zone (the handler checked it against the system's
-- zone database, which PostgreSQL may not share).
CREATE FUNCTION ag_ts_zone(t timestamptz, tz text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
AS $$
DECLARE
	off interval;
BEGIN
	off := (t AT TIME ZONE tz) - (t AT TIME ZONE 'UTC');
	RETURN to_char(t AT TIME ZONE tz, 'YYYY-MM-DD"T"HH24:MI:SS')
	       || CASE WHEN off < interval '0' THEN '-' ELSE '+' END
	       || to_char(abs(extract(epoch FROM off))::integer / 3600, 'FM00') || ':'
	       || to_char(abs(extract(epoch FROM off))::integer % 3600 / 60, 'FM00');
EXCEPTION WHEN invalid_parameter_value THEN
	RETURN NULL;
END
$$;

-- ag_schedules: every schedule with its next tick in UTC and on its own wall clock.
CREATE VIEW ag_schedules AS
SELECT s.id, s.client, s.name, COALESCE(s.cron, 'every ' || s.every) AS "when", s.time_zone,
       s.missed, s.state, ag_ts(s.next_tick) AS next_tick,
       ag_ts_zone(s.next_tick, s.time_zone) AS next_tick_local,
       ag_ts(s.last_tick) AS last_tick, s.last_call_id, s.ticks_fired, s.ticks_missed,
       COALESCE(s.instruction->>'function', s.instruction->>'target') AS call_target,
       ag_ts(s.created_at) AS created_at
FROM schedules s
ORDER BY s.id;
COMMENT ON VIEW ag_schedules IS 'Schedules with their next tick in UTC and in their zone.';

-- ag_schedule_pause: no more ticks until resumed. True when it was active.
CREATE FUNCTION ag_schedule_pause(schedule uuid) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
	WITH u AS (UPDATE schedules SET state = 'paused', next_tick = NULL, updated_at = now()
	           WHERE id = schedule AND state = 'active' RETURNING 1)
	SELECT count(*) = 1 FROM u
$$;

-- ag_schedule_resume: ticks again from now on (the first tick after now; none for the time it
-- was paused). True when it was paused. The next drain cycle stores the exact next tick.
CREATE FUNCTION ag_schedule_resume(schedule uuid) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
	WITH u AS (UPDATE schedules SET state = 'active', next_tick = now(), updated_at = now()
	           WHERE id = schedule AND state = 'paused' RETURNING 1)
	SELECT count(*) = 1 FROM u
$$;

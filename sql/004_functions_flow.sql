-- 004_functions_flow: functions as a managed resource (SQL functions the HTTP API uses too),
-- flow control (rate and in-flight limits per function and per raw-target host, shared by
-- every drainer through PostgreSQL, slowed down by 429s) and call priority.
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add 005_*.sql instead.
--
-- ---- How flow control works, and why this way -------------------------------------------
--
-- Where the state lives. Every limited key (a function "f:<name>", or a raw-target host
-- "h:<host>") has one row in flow_keys: its limits, and the limiter's state. The claim
-- (Q_DRAIN_CLAIM in lib/queries.c) locks the rows of the keys among its candidates FOR UPDATE,
-- in key order, so two drainers on two machines serialise on a key for the few microseconds of
-- their claim and never grant the same slot twice; keys nobody is claiming are not touched.
--
-- Which calls pay. A call carries flow_key only when its key was limited when it was accepted
-- (or when limits were set later: ag_flow_set marks the live calls of the key). Calls of
-- unlimited functions and hosts have flow_key NULL: the claim's extra steps find no candidate
-- with a key and do nothing (a few empty CTE scans of the claimed batch, no index, no lock, no
-- extra round trip), and the settle's extra step groups nothing.
--
-- Rate: GCRA (the generic cell rate algorithm, RFC 2697's token bucket written as one
-- timestamp). A key with rate L per period P and burst B has an emission interval T = P/L and
-- a tolerance tau = (B-1)*T. tat_ms is its "theoretical arrival time": a call may be sent at
-- now when tat - tau <= now, and each one sent moves tat to max(tat, now) + T. In any window of
-- length W at most floor(W/T) + B calls are granted, so over a sliding second at most
-- L*(1s/P) + B ("never above the burst"), and over a long run the rate is L/P.
-- A claim with m candidates of one key grants the first g of them that conform (candidate j
-- conforms when max(tat, now) - tau + j*T <= now) in one step, without a loop.
--
-- In flight: a counter in flow_keys, in_flight, changed only together with a call's state:
-- +1 for each limited call a claim grants (it becomes in_flight in the same statement), -1 for
-- each limited call a settle or release takes out of in_flight (only calls the drainer still
-- holds are settled, in the same statement). It cannot drift when a drainer dies: its calls
-- stay in_flight and counted until their lease runs out, and then the claim takes them over as
-- they are (still in flight, still counted; the lost path never grants or counts). Counting the
-- live rows instead would be wrong under READ COMMITTED: a claim that waited for another
-- drainer's lock on the key still reads calls_live in its own older snapshot and would not see
-- the calls the other one just put in flight. ag_flow_recount() recomputes the counter from the
-- live rows, for an operator who edited calls by hand.
--
-- Held calls. A candidate that is not granted stays queued (or retrying) with its attempts
-- untouched and no attempt row; its not_before moves to the time it could next be granted,
-- and held is set. Each held call gets its own slot: the first at the key's next conformance
-- time (or, when only max_in_flight holds it back, now + the key's average attempt duration /
-- max_in_flight), the next ones one interval later each, continuing from hold_next_ms where
-- the previous claim's held calls ended. So a backlog of 1000 limited calls is spread over the
-- time it needs, each row is looked at again only when its slot comes, and unlimited calls
-- behind it are claimed by the very next claim (held rows leave the due range of the index).
-- The claim reports held rows to the drainer (column held), which counts them as claimed for
-- "was the batch full", so it claims again at once instead of sleeping; --follow wakes for
-- the next slot through Q_DRAIN_NEXT (min not_before), like any scheduled call.
-- Priority still applies among a key's candidates: a high-priority call is granted first.
--
-- 429s: a target answering 429 slows its key down (only limited keys: give a key a limit to
-- have asyncgate adapt to it). In the same settle statement: slow doubles (at most 64), which
-- stretches the interval T and divides max_in_flight by it; a Retry-After also pauses the key
-- (no grants) until then. Each 2xx of the key divides slow by 1.05 (back to 1 after about 15
-- successes per halving). The 429'd call itself is retried as any call is (its backoff, with
-- Retry-After as a floor).
--
-- Limits changed while calls are queued: ag_flow_set (used by ag_function_put and
-- ag_host_limit_set) releases the key's held calls (not_before = now, held = false) and its
-- hold slots, so they are judged again at once under the new limits. Limits removed: the flow
-- row goes; calls that still carry the key are granted without counting.
-- Callbacks are not limited.

-- ---- functions ------------------------------------------------------------------------------

ALTER TABLE functions
	ADD COLUMN rate_limit integer CHECK (rate_limit BETWEEN 1 AND 1000000),
	ADD COLUMN rate_period_ms integer CHECK (rate_period_ms BETWEEN 1 AND 86400000),
	ADD COLUMN rate_burst integer CHECK (rate_burst BETWEEN 1 AND 1000000),
	ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 1000000),
	ADD CONSTRAINT functions_rate_whole
		CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL)
		       AND (rate_limit IS NULL) = (rate_burst IS NULL)),
	ADD CONSTRAINT functions_retry_order CHECK (retry_max_ms >= retry_initial_ms) NOT VALID,
	ADD CONSTRAINT functions_base_url_length CHECK (octet_length(base_url) <= 8192) NOT VALID,
	ADD CONSTRAINT functions_signing_secret_text
		CHECK (signing_secret IS NULL OR (signing_secret <> ''
		       AND signing_secret !~ '[\x01-\x08\x0a-\x1f\x7f]')) NOT VALID;

-- ag_header_problem: why a header (name, value) may not be a function's default header, or
-- NULL. The same rules as a call's headers (lib/call.c, lib/http.c): an RFC 9110 token name,
-- a value without control characters (tab allowed) of at most 8192 bytes, and no hop-by-hop,
-- Host, Content-Length, Expect, Proxy, Async-* or webhook-* name.
CREATE FUNCTION ag_header_problem(name text, value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
	WHEN name !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$'
		THEN 'header name must be an RFC 9110 token (letters, digits, !#$%&''*+-.^_`|~)'
	WHEN jsonb_typeof(value) <> 'string'
		THEN 'header value must be a string'
	WHEN octet_length(value #>> '{}') > 8192 OR (value #>> '{}') ~ '[\x01-\x08\x0a-\x1f\x7f]'
		THEN 'header value must be at most 8192 bytes without CR, LF, NUL or other control characters'
	WHEN lower(replace(name, '_', '-')) IN ('connection', 'keep-alive', 'proxy-connection', 'te',
		'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate',
		'proxy-authorization', 'host', 'content-length', 'expect', 'proxy')
	     OR lower(replace(name, '_', '-')) LIKE 'async-%'
	     OR lower(replace(name, '_', '-')) LIKE 'webhook-%'
		THEN name || ' is a hop-by-hop or gateway header and cannot be set on a call'
	END
$$;

-- ag_headers_problem: the first default header of an object that ag_header_problem refuses,
-- as "Name: why", or NULL when all are fine. A value that is not a string (a row written by
-- hand) is judged by its name only: the drainer skips such values, so they never reach a
-- target. ag_function_put refuses them.
CREATE FUNCTION ag_headers_problem(h jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT e.k || ': ' || p
	FROM jsonb_each(h) AS e(k, v),
	     ag_header_problem(e.k, CASE WHEN jsonb_typeof(e.v) = 'string' THEN e.v
	                                 ELSE '""' END) AS p
	WHERE p IS NOT NULL
	ORDER BY e.k
	LIMIT 1
$$;

-- NOT VALID: rows written before this migration are not judged again; every new or changed
-- row is.
ALTER TABLE functions ADD CONSTRAINT functions_default_headers_valid
	CHECK (ag_headers_problem(default_headers) IS NULL) NOT VALID;

-- ---- flow control state ---------------------------------------------------------------------

-- flow_keys: one row per limited key (above). Limits: rate_limit calls per rate_period_ms
-- with a burst of rate_burst, and/or at most max_in_flight calls in flight. The rest is the
-- limiter's state, times in Unix epoch milliseconds (float8: exact to the microsecond until
-- far beyond this century, and the arithmetic stays plain).
CREATE TABLE flow_keys (
	key              text PRIMARY KEY CHECK (key ~ '^[fh]:.'),
	rate_limit       integer CHECK (rate_limit BETWEEN 1 AND 1000000),
	rate_period_ms   integer CHECK (rate_period_ms BETWEEN 1 AND 86400000),
	rate_burst       integer CHECK (rate_burst BETWEEN 1 AND 1000000),
	max_in_flight    integer CHECK (max_in_flight BETWEEN 1 AND 1000000),
	in_flight        integer NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
	tat_ms           float8 NOT NULL DEFAULT 0,   -- GCRA theoretical arrival time
	hold_next_ms     float8 NOT NULL DEFAULT 0,   -- first free slot for held calls
	paused_until_ms  float8 NOT NULL DEFAULT 0,   -- no grants before (429 Retry-After)
	slow             float8 NOT NULL DEFAULT 1 CHECK (slow >= 1), -- 429 slow-down factor
	avg_ms           float8,                      -- moving average of attempt durations
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL)
	       AND (rate_limit IS NULL) = (rate_burst IS NULL)),
	CHECK (rate_limit IS NOT NULL OR max_in_flight IS NOT NULL)
) WITH (fillfactor = 50); -- every claim and settle of a limited key updates its row: HOT room
COMMENT ON TABLE flow_keys IS 'Flow control: limits and limiter state per function (f:name) or raw-target host (h:host).';

-- calls: the key a call is limited by (NULL: unlimited), whether the limiter moved its
-- not_before (held), and its priority (higher first among due calls).
ALTER TABLE calls
	ADD COLUMN flow_key text,
	ADD COLUMN held boolean NOT NULL DEFAULT false,
	ADD COLUMN priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100);

-- The claim index, now in claim order: priority first. The claim's ORDER BY priority DESC,
-- not_before, id streams from it under LIMIT; not_before <= now() is checked in the index
-- (an index condition on the second column), so the rows it walks past without claiming are
-- only calls of a higher priority than the ones it claims that are not due yet.
DROP INDEX calls_live_due;
CREATE INDEX calls_live_due ON calls_live (priority DESC, not_before, id)
	WHERE state IN ('queued', 'retrying');

-- ag_url_host: the host of an absolute URL, lower case, without port (IPv6 keeps brackets):
-- the key of raw-target host limits. The handler checked the URL (no user info) before.
CREATE FUNCTION ag_url_host(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
AS $$
	SELECT lower(regexp_replace(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'),
	                            ':[0-9]*$', ''))
$$;

-- ag_flow_set: sets (or, all limits NULL, removes) the limits of a key. A new key marks the
-- key's live calls (so calls queued before the limit obey it) and counts those in flight;
-- a changed key releases its held calls to be judged again under the new limits. Calls are
-- updated before the flow row is locked, the order the drainer's settle uses (no deadlock).
CREATE FUNCTION ag_flow_set(fkey text, rate_limit integer, rate_period_ms integer,
                            rate_burst integer, max_in_flight integer) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	host text := CASE WHEN fkey LIKE 'h:%' THEN substr(fkey, 3) END;
	fname text := CASE WHEN fkey LIKE 'f:%' THEN substr(fkey, 3) END;
BEGIN
	IF rate_limit IS NULL AND max_in_flight IS NULL THEN
		DELETE FROM flow_keys WHERE key = fkey;
		UPDATE calls_live SET not_before = now(), held = false
		WHERE flow_key = fkey AND held AND state IN ('queued', 'retrying');
		RETURN;
	END IF;
	-- calls of the key accepted while it was unlimited obey it from now on
	UPDATE calls_live c SET flow_key = fkey
	WHERE c.flow_key IS NULL AND c.callback_of IS NULL
	  AND (c.function = fname OR (c.function IS NULL AND ag_url_host(c.target) = host));
	UPDATE calls_live SET not_before = now(), held = false
	WHERE flow_key = fkey AND held AND state IN ('queued', 'retrying');
	INSERT INTO flow_keys AS f (key, rate_limit, rate_period_ms, rate_burst, max_in_flight,
	                            in_flight)
	VALUES (fkey, ag_flow_set.rate_limit, ag_flow_set.rate_period_ms, ag_flow_set.rate_burst,
	        ag_flow_set.max_in_flight,
	        (SELECT count(*) FROM calls_live WHERE flow_key = fkey AND state = 'in_flight'))
	ON CONFLICT (key) DO UPDATE
	SET rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms,
	    rate_burst = excluded.rate_burst, max_in_flight = excluded.max_in_flight,
	    hold_next_ms = 0, updated_at = now();
END
$$;

-- ag_flow_recount: sets every key's in_flight from the live rows (after editing calls by
-- hand; the drainer keeps it exact otherwise). Run it while no drainer claims, or accept that a
-- claim in progress may be counted twice until its calls settle.
CREATE FUNCTION ag_flow_recount() RETURNS void
LANGUAGE sql VOLATILE
AS $$
	UPDATE flow_keys f
	SET in_flight = (SELECT count(*) FROM calls_live c
	                 WHERE c.flow_key = f.key AND c.state = 'in_flight')
$$;

-- Functions keep their limits in their own row (what GET shows); this trigger mirrors them
-- into flow_keys in the same transaction, whoever writes the row.
CREATE FUNCTION ag_functions_flow_sync() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM ag_flow_set('f:' || OLD.name, NULL, NULL, NULL, NULL);
		RETURN OLD;
	END IF;
	IF TG_OP = 'INSERT' OR (OLD.rate_limit, OLD.rate_period_ms, OLD.rate_burst, OLD.max_in_flight)
	   IS DISTINCT FROM (NEW.rate_limit, NEW.rate_period_ms, NEW.rate_burst, NEW.max_in_flight)
	THEN
		PERFORM ag_flow_set('f:' || NEW.name, NEW.rate_limit, NEW.rate_period_ms,
		                    NEW.rate_burst, NEW.max_in_flight);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER functions_flow_sync AFTER INSERT OR UPDATE OR DELETE ON functions
	FOR EACH ROW EXECUTE FUNCTION ag_functions_flow_sync();

-- ---- the functions API ----------------------------------------------------------------------

-- ag_function_json: a function as GET /v1/functions/{name} shows it. Never the secret.
CREATE FUNCTION ag_function_json(f functions) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
		'name', f.name,
		'base_url', f.base_url,
		'headers', f.default_headers,
		'timeout_ms', f.timeout_ms,
		'retry', NULLIF(jsonb_strip_nulls(jsonb_build_object(
			'max_attempts', f.max_attempts, 'initial_ms', f.retry_initial_ms,
			'max_ms', f.retry_max_ms)), '{}'),
		'signing', f.signing_secret IS NOT NULL,
		'follow_redirects', f.follow_redirects,
		'rate', CASE WHEN f.rate_limit IS NOT NULL THEN jsonb_build_object(
			'limit', f.rate_limit, 'period_ms', f.rate_period_ms, 'burst', f.rate_burst) END,
		'max_in_flight', f.max_in_flight,
		'created_at', ag_ts(f.created_at),
		'updated_at', ag_ts(f.updated_at)))
$$;

-- ag_functions: every function without its secret, for listing.
CREATE VIEW ag_functions AS
SELECT f.name, f.base_url, f.default_headers, f.timeout_ms, f.max_attempts, f.retry_initial_ms,
       f.retry_max_ms, f.signing_secret IS NOT NULL AS signing, f.follow_redirects,
       f.rate_limit, f.rate_period_ms, f.rate_burst, f.max_in_flight,
       ag_ts(f.created_at) AS created_at, ag_ts(f.updated_at) AS updated_at
FROM functions f;
COMMENT ON VIEW ag_functions IS 'Registered functions, without signing secrets.';

-- ag_spec_fail: raises invalid_parameter_value (22023) naming the field in the message
-- ("field: why") and in the error's COLUMN field, which the HTTP handler answers as a 400.
CREATE FUNCTION ag_spec_fail(field text, why text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = field || ': ' || why, COLUMN = field;
END
$$;

-- ag_spec_ms: a duration field: a string of number+unit groups ("500ms", "90s", "15m",
-- "1h30m", "1d"), a bare number of seconds as a string, or a JSON number of seconds; as ms.
CREATE FUNCTION ag_spec_ms(v jsonb, field text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
	s text;
	total numeric := 0;
	m text[];
BEGIN
	IF jsonb_typeof(v) = 'number' THEN
		IF (v #>> '{}') !~ '^[0-9]{1,9}$' THEN
			PERFORM ag_spec_fail(field, 'must be a whole number of seconds, not negative');
		END IF;
		RETURN (v #>> '{}')::bigint * 1000;
	END IF;
	s := v #>> '{}';
	IF jsonb_typeof(v) <> 'string' OR s !~ '^([0-9]{1,9}(ms|s|m|h|d))+$|^[0-9]{1,9}$' THEN
		PERFORM ag_spec_fail(field, 'must be a duration such as "90s", "15m", "2h", "1d" or a whole number of seconds, not negative');
	END IF;
	IF s ~ '^[0-9]+$' THEN
		RETURN s::bigint * 1000;
	END IF;
	FOR m IN SELECT regexp_matches(s, '([0-9]+)(ms|s|m|h|d)', 'g') LOOP
		total := total + m[1]::numeric * CASE m[2] WHEN 'ms' THEN 1 WHEN 's' THEN 1000
			WHEN 'm' THEN 60000 WHEN 'h' THEN 3600000 ELSE 86400000 END;
	END LOOP;
	RETURN total::bigint;
END
$$;

-- ag_spec_int: a whole JSON number in [lo, hi], or NULL for JSON null / absent.
CREATE FUNCTION ag_spec_int(v jsonb, field text, lo bigint, hi bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^-?[0-9]{1,12}$'
	   OR (v #>> '{}')::bigint NOT BETWEEN lo AND hi THEN
		PERFORM ag_spec_fail(field, format('must be a whole number from %s to %s', lo, hi));
	END IF;
	RETURN (v #>> '{}')::bigint;
END
$$;

-- ag_function_put: creates or replaces the function `name` from spec, the JSON document of
-- PUT /v1/functions/{name}:
--   {"base_url": "https://api.example.com/v2", "headers": {"X-Team": "a"},
--    "timeout": "30s", "retry": {"max_attempts": 5, "initial": "1s", "max": "10m"},
--    "signing_secret": "whsec_...", "follow_redirects": false,
--    "rate": {"limit": 20, "period": "1s", "burst": 5}, "max_in_flight": 5}
-- Only base_url is required. What GET shows is accepted back ("timeout_ms", "retry.initial_ms",
-- "retry.max_ms", "rate.period_ms", and "signing": true keeps the current secret, false drops
-- it; name, created_at and updated_at are ignored). rate.period defaults to 1s, rate.burst to
-- rate.limit (one period's worth at once, Cloud Tasks' max_burst_size idea). A replace is whole: what spec leaves out goes back to the
-- default. Bad input raises 22023 naming the field and writes nothing.
-- From SQL: SELECT * FROM ag_function_put('resize', '{"base_url": "https://img.example"}');
-- The address policy (allow_targets) and the signing secret's format are checked by the HTTP
-- handler only (they live in asyncgate.conf and lib/sign.c); from SQL a function whose host the
-- policy refuses is accepted, and its calls are refused when sent.
CREATE FUNCTION ag_function_put(name text, spec jsonb)
RETURNS TABLE (created boolean, function jsonb)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k text;
	v jsonb;
	base text;
	hdrs jsonb := '{}';
	timeout bigint;
	max_att bigint;
	r_init bigint;
	r_max bigint;
	secret text;
	keep_secret boolean := false;
	redirects boolean := false;
	r_limit bigint;
	r_period bigint;
	r_burst bigint;
	cap bigint;
	why text;
	hk text;
	fname text := ag_function_put.name;
BEGIN
	IF fname IS NULL OR fname !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' THEN
		PERFORM ag_spec_fail('name', 'must be a function name: 1 to 128 letters, digits, ''_'', ''.'', ''-''');
	END IF;
	IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
		PERFORM ag_spec_fail('body', 'a function must be a JSON object');
	END IF;
	FOR k, v IN SELECT * FROM jsonb_each(spec) LOOP
		CASE k
		WHEN 'base_url' THEN
			IF jsonb_typeof(v) <> 'string' THEN
				PERFORM ag_spec_fail(k, 'must be a string');
			END IF;
			base := v #>> '{}';
			IF base !~* '^https?://[^/?#]' OR base ~ '[?#]' OR base ~ '[^\x21-\x7e]'
			   OR octet_length(base) > 8192 THEN
				PERFORM ag_spec_fail(k, 'must be an absolute http:// or https:// URL of printable ASCII without query or fragment (at most 8192 bytes)');
			END IF;
		WHEN 'headers' THEN
			IF jsonb_typeof(v) <> 'object' THEN
				PERFORM ag_spec_fail(k, 'must be an object of header names to strings');
			END IF;
			SELECT e.k, ag_header_problem(e.k, e.v) INTO hk, why
			FROM jsonb_each(v) AS e(k, v)
			WHERE ag_header_problem(e.k, e.v) IS NOT NULL
			ORDER BY e.k
			LIMIT 1;
			IF why IS NOT NULL THEN
				PERFORM ag_spec_fail('headers.' || hk, why);
			END IF;
			IF (SELECT count(DISTINCT lower(e.k)) <> count(*) FROM jsonb_object_keys(v) AS e(k)) THEN
				PERFORM ag_spec_fail('headers', 'a header is given twice');
			END IF;
			hdrs := v;
		WHEN 'timeout' THEN
			timeout := ag_spec_ms(v, k);
		WHEN 'timeout_ms' THEN
			timeout := ag_spec_int(v, k, 1, 2147483647);
		WHEN 'retry' THEN
			IF jsonb_typeof(v) <> 'object' THEN
				PERFORM ag_spec_fail(k, 'must be an object {"max_attempts", "initial", "max"}');
			END IF;
			FOR k, v IN SELECT * FROM jsonb_each(v) LOOP
				CASE k
				WHEN 'max_attempts' THEN max_att := ag_spec_int(v, 'retry.' || k, 1, 100);
				WHEN 'initial' THEN r_init := ag_spec_ms(v, 'retry.' || k);
				WHEN 'initial_ms' THEN r_init := ag_spec_int(v, 'retry.' || k, 0, 2073600000);
				WHEN 'max' THEN r_max := ag_spec_ms(v, 'retry.' || k);
				WHEN 'max_ms' THEN r_max := ag_spec_int(v, 'retry.' || k, 0, 2073600000);
				ELSE PERFORM ag_spec_fail('retry.' || k, 'unknown field (max_attempts, initial, max)');
				END CASE;
			END LOOP;
		WHEN 'signing_secret' THEN
			IF jsonb_typeof(v) = 'null' THEN
				secret := NULL;
			ELSIF jsonb_typeof(v) <> 'string' OR (v #>> '{}') = ''
			      OR (v #>> '{}') ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
				PERFORM ag_spec_fail(k, 'must be a non-empty string (whsec_... or whsk_..., space-separated for several)');
			ELSE
				secret := v #>> '{}';
			END IF;
		WHEN 'signing' THEN
			IF jsonb_typeof(v) <> 'boolean' THEN
				PERFORM ag_spec_fail(k, 'must be true (keep the current secret) or false');
			END IF;
			keep_secret := v = 'true';
		WHEN 'follow_redirects' THEN
			IF jsonb_typeof(v) <> 'boolean' THEN
				PERFORM ag_spec_fail(k, 'must be true or false');
			END IF;
			redirects := v = 'true';
		WHEN 'rate' THEN
			IF jsonb_typeof(v) = 'null' THEN
				CONTINUE;
			END IF;
			IF jsonb_typeof(v) <> 'object' THEN
				PERFORM ag_spec_fail(k, 'must be an object {"limit", "period", "burst"} or null');
			END IF;
			FOR k, v IN SELECT * FROM jsonb_each(v) LOOP
				CASE k
				WHEN 'limit' THEN r_limit := ag_spec_int(v, 'rate.' || k, 1, 1000000);
				WHEN 'period' THEN r_period := ag_spec_ms(v, 'rate.' || k);
				WHEN 'period_ms' THEN r_period := ag_spec_int(v, 'rate.' || k, 1, 86400000);
				WHEN 'burst' THEN r_burst := ag_spec_int(v, 'rate.' || k, 1, 1000000);
				ELSE PERFORM ag_spec_fail('rate.' || k, 'unknown field (limit, period, burst)');
				END CASE;
			END LOOP;
			IF r_limit IS NULL THEN
				PERFORM ag_spec_fail('rate.limit', 'is required');
			END IF;
			r_period := coalesce(r_period, 1000);
			IF r_period NOT BETWEEN 1 AND 86400000 THEN
				PERFORM ag_spec_fail('rate.period', 'must be between 1 ms and 1 d');
			END IF;
			r_burst := coalesce(r_burst, r_limit);
		WHEN 'max_in_flight' THEN
			cap := ag_spec_int(v, k, 1, 1000000);
		WHEN 'name', 'created_at', 'updated_at' THEN
			NULL; -- GET's output, accepted back
		ELSE
			PERFORM ag_spec_fail(k, 'unknown field (base_url, headers, timeout, retry, signing_secret, follow_redirects, rate, max_in_flight)');
		END CASE;
	END LOOP;
	IF base IS NULL THEN
		PERFORM ag_spec_fail('base_url', 'is required');
	END IF;
	IF timeout IS NOT NULL AND timeout NOT BETWEEN 1000 AND 2147483647 THEN
		PERFORM ag_spec_fail('timeout', 'must be at least 1 s');
	END IF;
	IF r_init > 2073600000 OR r_max > 2073600000 THEN
		PERFORM ag_spec_fail(CASE WHEN r_init > 2073600000 THEN 'retry.initial' ELSE 'retry.max' END,
		                     'must be at most 24 days');
	END IF;
	IF r_max < r_init THEN
		PERFORM ag_spec_fail('retry.max', 'must not be shorter than retry.initial');
	END IF;
	IF spec ? 'signing_secret' AND spec ? 'signing' THEN
		PERFORM ag_spec_fail('signing', 'give signing_secret or signing, not both');
	END IF;
	IF keep_secret THEN
		SELECT f.signing_secret INTO secret FROM functions f WHERE f.name = fname FOR UPDATE;
		IF secret IS NULL THEN
			PERFORM ag_spec_fail('signing', 'true keeps the current secret, and there is none: give signing_secret');
		END IF;
	END IF;

	INSERT INTO functions AS f (name, base_url, default_headers, signing_secret, timeout_ms,
	                            max_attempts, retry_initial_ms, retry_max_ms, follow_redirects,
	                            rate_limit, rate_period_ms, rate_burst, max_in_flight)
	VALUES (fname, base, hdrs, secret, timeout, max_att, r_init, r_max, redirects,
	        r_limit, r_period, r_burst, cap)
	ON CONFLICT ON CONSTRAINT functions_pkey DO UPDATE
	SET base_url = excluded.base_url, default_headers = excluded.default_headers,
	    signing_secret = excluded.signing_secret, timeout_ms = excluded.timeout_ms,
	    max_attempts = excluded.max_attempts, retry_initial_ms = excluded.retry_initial_ms,
	    retry_max_ms = excluded.retry_max_ms, follow_redirects = excluded.follow_redirects,
	    rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms,
	    rate_burst = excluded.rate_burst, max_in_flight = excluded.max_in_flight,
	    updated_at = now()
	RETURNING (f.xmax = 0), ag_function_json(f.*) INTO created, function; -- xmax 0: inserted
	RETURN NEXT;
END
$$;

-- ag_function_delete: removes a function. Its calls that are still queued or retrying are
-- cancelled in the same transaction (as deleting a Cloud Tasks queue deletes its tasks), with
-- last_error saying why; a call in flight finishes its attempt, and if that attempt fails it
-- ends dead at its next claim ("function ... is not registered (any more)"). Finished calls
-- stay for audit. True when the function existed.
CREATE FUNCTION ag_function_delete(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	UPDATE calls SET state = 'cancelled', finished_at = now(), lease_until = NULL, held = false,
	       last_error = 'function deleted'
	WHERE function = ag_function_delete.name AND state IN ('queued', 'retrying');
	DELETE FROM functions f WHERE f.name = ag_function_delete.name;
	RETURN FOUND;
END
$$;

-- ---- host limits for raw targets ------------------------------------------------------------

-- ag_host_limit_set: limits the calls to raw URL targets on host (any port, any scheme):
-- rate_limit calls per rate_period_ms (default 1 s) with burst rate_burst (default
-- rate_limit), and/or max_in_flight at once. Both NULL removes the limit.
--   SELECT ag_host_limit_set('api.example.com', 10, 1000, 10, 4);
CREATE FUNCTION ag_host_limit_set(host text, rate_limit integer, rate_period_ms integer DEFAULT 1000,
                                  rate_burst integer DEFAULT NULL,
                                  max_in_flight integer DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF host IS NULL OR lower(host) !~ '^([a-z0-9_-]+\.)*[a-z0-9_-]+\.?$|^\[[0-9a-f:.]+\]$' THEN
		PERFORM ag_spec_fail('host', 'must be a host name, an IPv4 address or a bracketed IPv6 address, without port');
	END IF;
	PERFORM ag_flow_set('h:' || lower(host), rate_limit,
	                    CASE WHEN rate_limit IS NOT NULL THEN coalesce(rate_period_ms, 1000) END,
	                    CASE WHEN rate_limit IS NOT NULL THEN coalesce(rate_burst, rate_limit) END,
	                    max_in_flight);
END
$$;

CREATE FUNCTION ag_host_limit_delete(host text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT ag_flow_set('h:' || lower(host), NULL, NULL, NULL, NULL) $$;

-- ag_flow: every limited key with its limits and state, readable.
--   SELECT * FROM ag_flow;
CREATE VIEW ag_flow AS
SELECT key, rate_limit, rate_period_ms, rate_burst, max_in_flight, in_flight,
       round(slow::numeric, 2) AS slow,
       CASE WHEN paused_until_ms > extract(epoch FROM now()) * 1000
            THEN ag_ts(to_timestamp(paused_until_ms / 1000)) END AS paused_until,
       (SELECT count(*) FROM calls_live c WHERE c.flow_key = f.key AND c.held
          AND c.state IN ('queued', 'retrying')) AS held
FROM flow_keys f;
COMMENT ON VIEW ag_flow IS 'Flow control keys: limits, calls in flight, 429 slow-down, pause, held calls.';

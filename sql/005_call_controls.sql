-- 005_call_controls: per-call controls (which answers to retry or give up on, a connect timeout
-- of its own, a debounce key), and the final answer's header lines as the target sent them, for
-- GET /v1/calls/{id}/response.
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add a later file instead.

-- retry_on:    statuses retried on top of the default set (408, 425, 429, 5xx): a JSON array of
--              status numbers and class strings, e.g. [404, "3xx"]; NULL = the default set only.
-- give_up_on:  statuses that end the call dead at once, even when they would be retried
--              (e.g. [501]); NULL = none. It wins over retry_on and the defaults.
-- connect_timeout_ms: the TCP + TLS connect limit of each attempt; NULL = drain_connect_timeout
--              (asyncgate.conf). Never above timeout_ms, which stays the whole attempt's limit.
-- debounce_key: when a call with a key is accepted, the client's older calls with the same key
--              that are still pending (queued, scheduled, retrying) end cancelled, in the same
--              statement (ag_debounce below).
ALTER TABLE calls
	ADD COLUMN retry_on jsonb CHECK (jsonb_typeof(retry_on) = 'array'),
	ADD COLUMN give_up_on jsonb CHECK (jsonb_typeof(give_up_on) = 'array'),
	ADD COLUMN connect_timeout_ms integer
		CHECK (connect_timeout_ms > 0 AND connect_timeout_ms <= timeout_ms),
	ADD COLUMN debounce_key text CHECK (octet_length(debounce_key) BETWEEN 1 AND 256);

-- The pending calls of a (client, debounce key). Only keyed calls are in it, so calls without a
-- key pay nothing for it.
CREATE INDEX calls_live_debounce ON calls_live (client, debounce_key)
	WHERE debounce_key IS NOT NULL;

-- response_header_list: the final response's header lines in the order they came, names as
-- the target spelled them, repeated names kept (Set-Cookie): [["Name", "value"], ...].
-- response_headers (001) stays the lower-case, comma-joined object the callbacks carry.
ALTER TABLE attempts
	ADD COLUMN response_header_list jsonb CHECK (jsonb_typeof(response_header_list) = 'array');

-- ag_debounce: ends cancelled (last_error "superseded by <id>") every pending call of client
-- whose debounce_key is keys[i] and that is not one of ids, the calls being inserted, keys[i]
-- paired with ids[i]. Returns how many it cancelled. Calls in flight and finished calls are not
-- touched.
--
-- The insert statement (Q_CALLS_INSERT) calls it only for calls with a key. Concurrent accepts
-- with one key serialise on a transaction-scoped advisory lock per (client, key) (two-key form,
-- class 0x61676462 'agdb', apart from the one-key locks of sql/migrate.sh); locks are taken in
-- one order, so two batches cannot deadlock. The function is VOLATILE, so under READ COMMITTED
-- its UPDATE takes a fresh snapshot after the lock is granted: it sees the call that the
-- transaction it waited for has just committed, and cancels it. The one left pending is the
-- newest to commit.
CREATE FUNCTION ag_debounce(client text, keys text[], ids uuid[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	n integer;
BEGIN
	PERFORM pg_advisory_xact_lock(1633903714, h)
	FROM (SELECT DISTINCT hashtext(ag_debounce.client || chr(10) || k) AS h
	      FROM unnest(keys) AS k ORDER BY 1) AS s;
	UPDATE calls c
	SET state = 'cancelled', finished_at = now(), lease_until = NULL, leased_by = NULL,
	    last_error = 'superseded by ' || x.id
	FROM unnest(keys, ids) AS x(key, id)
	WHERE c.client = ag_debounce.client AND c.debounce_key = x.key
	  AND c.state IN ('queued', 'retrying') AND c.id <> ALL (ids);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION ag_debounce(text, text[], uuid[]) IS 'Cancels the pending calls a newly accepted call with the same debounce key supersedes.';

-- 006_topics: topics (fan-out). A topic is a name with subscriptions; publishing a message to
-- it makes one call per subscription whose filter matches, all in one transaction, and records
-- the publication (which calls it made, for which subscription) for the status API.
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add 007_*.sql instead.
--
-- The HTTP API (PUT /v1/topics/{name}) checks a subscription the way a call is checked (the
-- address policy on target URLs, header names, retry bounds, the filter's shape) before it
-- calls ag_topic_put. Operators may call ag_topic_put directly; it checks only the shape below,
-- and a publish checks each call again as it builds it (a subscription that cannot take a
-- message fails that publish whole, with 409).
--   SELECT ag_topic_put('orders', '[{"name": "billing", "function": "invoice"},
--       {"name": "audit", "target": "https://audit.example.com/in",
--        "filter": {"header": "X-Kind", "equals": "order"}}]');
--   SELECT * FROM ag_subscriptions WHERE topic = 'orders';
--   SELECT ag_topic_delete('orders');

CREATE TABLE topics (
	name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topics IS 'Fan-out topics: a name whose subscriptions each get a call per published message.';

-- subscriptions: spec holds the call fields of the subscription as given (function and path,
-- or target; headers, retry, timeout), filter the optional filter (NULL: every message).
CREATE TABLE subscriptions (
	topic       text NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
	name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
	ord         integer NOT NULL,                  -- position in the topic's list
	spec        jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'
	                                  AND (spec ? 'function') <> (spec ? 'target')
	                                  AND NOT (spec ? 'name') AND NOT (spec ? 'filter')),
	filter      jsonb CHECK (jsonb_typeof(filter) IN ('object', 'array')),
	function    text GENERATED ALWAYS AS (spec->>'function') STORED,
	target      text GENERATED ALWAYS AS (spec->>'target') STORED,
	PRIMARY KEY (topic, name)
);
CREATE INDEX subscriptions_function ON subscriptions (function) WHERE function IS NOT NULL;
COMMENT ON TABLE subscriptions IS 'A topic''s destinations: a function or a URL, with headers, retry, timeout and a filter.';

-- publications: one per accepted publish. call_ids and subscriptions are parallel arrays (the
-- call made for each matching subscription, in the topic's order); both are empty when no
-- subscription matched. No foreign key to topics: a publication outlives its topic.
-- The Idempotency-Key of a publish lives here (unique per client), with the hash of the
-- message, so a repeat answers with the same publication and makes no calls.
CREATE TABLE publications (
	id               uuid PRIMARY KEY,
	topic            text NOT NULL,
	client           text NOT NULL DEFAULT '',
	created_at       timestamptz NOT NULL DEFAULT now(),
	call_ids         uuid[] NOT NULL,
	subscriptions    text[] NOT NULL,
	idempotency_key  text,
	request_hash     bytea,
	CHECK (cardinality(call_ids) = cardinality(subscriptions)),
	UNIQUE (client, idempotency_key)
);
CREATE INDEX publications_topic ON publications (topic, id);
CREATE INDEX publications_created ON publications (created_at);
COMMENT ON TABLE publications IS 'Messages published to topics, and the calls each one made.';

-- ag_topic_put: creates or replaces a topic with its subscriptions (a JSON array of objects,
-- each with "name", "function" [+ "path"] or "target", and optional "headers", "retry",
-- "timeout", "filter"). Returns true when the topic was created, false when it was replaced.
CREATE FUNCTION ag_topic_put(name text, subs jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	created boolean;
BEGIN
	IF jsonb_typeof(subs) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'ag_topic_put: subscriptions must be a JSON array';
	END IF;
	INSERT INTO topics AS t (name) VALUES (ag_topic_put.name)
	ON CONFLICT ON CONSTRAINT topics_pkey DO UPDATE SET updated_at = now()
	RETURNING (t.xmax = 0) INTO created;
	DELETE FROM subscriptions s WHERE s.topic = ag_topic_put.name;
	INSERT INTO subscriptions (topic, name, ord, spec, filter)
	SELECT ag_topic_put.name, e->>'name', n, e - 'name' - 'filter',
	       NULLIF(e->'filter', 'null'::jsonb)
	FROM jsonb_array_elements(subs) WITH ORDINALITY AS x(e, n);
	RETURN created;
END
$$;

-- ag_topic_delete: removes a topic and its subscriptions (its publications stay). True when
-- there was such a topic.
CREATE FUNCTION ag_topic_delete(name text) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
	WITH d AS (DELETE FROM topics t WHERE t.name = ag_topic_delete.name RETURNING 1)
	SELECT count(*) = 1 FROM d
$$;

-- ag_subscriptions: every subscription, one row each, in the topics' order.
CREATE VIEW ag_subscriptions AS
SELECT s.topic, s.ord, s.name, s.function, s.spec->>'path' AS path, s.target, s.filter, s.spec
FROM subscriptions s
ORDER BY s.topic, s.ord;
COMMENT ON VIEW ag_subscriptions IS 'Subscriptions of every topic, in order.';

-- ag_publications: every publication with each of its calls and the call's state (a
-- publication that matched no subscription: one row with NULL call columns).
--   SELECT * FROM ag_publications WHERE topic = 'orders' AND created_at > now() - interval '1 hour';
CREATE VIEW ag_publications AS
SELECT p.id, p.topic, p.client, p.created_at, x.subscription, x.call_id,
       ag_state(c.state, c.not_before) AS state, c.attempts, c.last_status, c.finished_at
FROM publications p
LEFT JOIN LATERAL unnest(p.call_ids, p.subscriptions) AS x(call_id, subscription) ON true
LEFT JOIN calls c ON c.id = x.call_id;
COMMENT ON VIEW ag_publications IS 'Publications joined with their calls and the calls'' states.';

-- ag_publications_purge: deletes publications older than keep (their calls are purged by
-- ag_purge), with their idempotency keys. Returns how many it deleted.
--   SELECT ag_publications_purge(interval '7 days');
CREATE FUNCTION ag_publications_purge(keep interval) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$
	WITH d AS (DELETE FROM publications WHERE created_at < now() - keep RETURNING 1)
	SELECT count(*) FROM d
$$;

-- 003_clients: who may call what. API keys (stored only as SHA-256 hashes) and the rules of
-- users the web server authenticates (REMOTE_USER), with the functions and URL patterns each may
-- call and whether it may administer.
--
-- A client is a name: calls.client holds it, and a client sees, cancels and retries only calls
-- with its own name (an admin sees all). Several keys may share a client name (key rotation: make
-- the new key, move the callers, revoke the old one); each key carries its own rules.
--
-- Rules: `functions` and `url_patterns` are shell-style patterns (fnmatch, `*` also matches `/`):
-- functions {resize-image, 'report-*'}; url_patterns {'https://api.example.com/*'}. An empty list
-- allows nothing of that kind; {'*'} allows every function / every URL the address policy allows.
-- Callback URLs must match url_patterns too. Admins may call everything and see every call.
--
-- Keys are made, listed and revoked with `asyncgate-admin key ...` or these SQL functions:
--   SELECT * FROM ag_key_create('billing', '{invoice-*}', '{}', false, 'billing service');
--   SELECT * FROM ag_keys;                      -- no secrets in it
--   SELECT ag_key_revoke('k_3f9c2a1b7d4e');      -- refused from the next request on
-- The token ("agk_<id>_<secret>") is shown once, by ag_key_create; only its hash is kept.

CREATE TABLE api_keys (
	id            text PRIMARY KEY CHECK (id ~ '^k_[0-9a-f]{12}$'),
	client        text NOT NULL CHECK (client ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$'),
	hash          bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32), -- sha256(token)
	functions     text[] NOT NULL DEFAULT '{}',
	url_patterns  text[] NOT NULL DEFAULT '{}',
	admin         boolean NOT NULL DEFAULT false,
	note          text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL DEFAULT now(),
	revoked_at    timestamptz
);
COMMENT ON TABLE api_keys IS 'API keys: SHA-256 of the token, the client name, and its rules.';

CREATE TABLE web_users (
	name          text PRIMARY KEY CHECK (name <> '' AND octet_length(name) <= 256),
	functions     text[] NOT NULL DEFAULT '{}',
	url_patterns  text[] NOT NULL DEFAULT '{}',
	admin         boolean NOT NULL DEFAULT false,
	note          text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE web_users IS 'Rules of users the web server authenticates (REMOTE_USER).';

-- ag_key_create: a new key for client with its rules. Returns the id and the token; the token
-- is not stored and cannot be shown again. The secret is 244 random bits (two UUIDv4).
CREATE FUNCTION ag_key_create(client text, functions text[] DEFAULT '{}',
                              url_patterns text[] DEFAULT '{}', admin boolean DEFAULT false,
                              note text DEFAULT '')
RETURNS TABLE (id text, token text)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	kid text := 'k_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 12);
	tok text;
BEGIN
	tok := 'agk_' || kid || '_' || replace(gen_random_uuid()::text, '-', '')
	       || replace(gen_random_uuid()::text, '-', '');
	INSERT INTO api_keys (id, client, hash, functions, url_patterns, admin, note)
	VALUES (kid, ag_key_create.client, sha256(convert_to(tok, 'UTF8')),
	        coalesce(ag_key_create.functions, '{}'), coalesce(ag_key_create.url_patterns, '{}'),
	        coalesce(ag_key_create.admin, false), coalesce(ag_key_create.note, ''));
	id := kid;
	token := tok;
	RETURN NEXT;
END
$$;

-- ag_key_revoke: refuses the key from the next request on. True when a live key was revoked.
CREATE FUNCTION ag_key_revoke(key_id text) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
	WITH r AS (UPDATE api_keys SET revoked_at = now()
	           WHERE id = key_id AND revoked_at IS NULL RETURNING 1)
	SELECT count(*) = 1 FROM r
$$;

-- ag_user_set: creates or replaces the rules of a web-server user.
CREATE FUNCTION ag_user_set(name text, functions text[] DEFAULT '{}',
                            url_patterns text[] DEFAULT '{}', admin boolean DEFAULT false,
                            note text DEFAULT '') RETURNS void
LANGUAGE sql VOLATILE
AS $$
	INSERT INTO web_users (name, functions, url_patterns, admin, note)
	VALUES (name, coalesce(functions, '{}'), coalesce(url_patterns, '{}'),
	        coalesce(admin, false), coalesce(note, ''))
	ON CONFLICT ON CONSTRAINT web_users_pkey DO UPDATE
	SET functions = EXCLUDED.functions, url_patterns = EXCLUDED.url_patterns,
	    admin = EXCLUDED.admin, note = EXCLUDED.note
$$;

-- ag_user_delete: removes a web-server user's rules (the user is refused from then on).
CREATE FUNCTION ag_user_delete(name text) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
	WITH d AS (DELETE FROM web_users u WHERE u.name = ag_user_delete.name RETURNING 1)
	SELECT count(*) = 1 FROM d
$$;

-- ag_keys: every key without its hash, for listing and auditing.
CREATE VIEW ag_keys AS
SELECT id, client, functions, url_patterns, admin, note, ag_ts(created_at) AS created_at,
       ag_ts(revoked_at) AS revoked_at, revoked_at IS NULL AS active
FROM api_keys;

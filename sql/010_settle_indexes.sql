-- 010_settle_indexes: two fewer btree inserts per settled call (issue 6, drain goals).
--
-- Applied once by sql/migrate.sh inside one transaction, recorded in schema_migrations.
-- Never edit this file once it has landed: add 011_*.sql instead.
--
-- A settle moves each call into calls_done and inserts its attempt row; every index on those
-- tables is one more insert, and its WAL record, per call. Two of them served nothing that
-- needed a btree (make bench's drain step, pg_stat_statements: the settle went from 9.1 to 7.1
-- WAL records and from ~46 to ~36 µs of PostgreSQL time per call).

-- attempts: the surrogate key's index was never read; (call_id, attempt), unique already, is
-- the key every lookup uses. It becomes the primary key (the index is renamed attempts_pkey);
-- the id column stays, numbered as before, for whoever sorts attempts by it.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY USING INDEX attempts_call;

-- calls_done.finished_at serves ag_purge's "finished before" and time-window audit queries
-- (ag_dead_letters WHERE finished_at > ...). Calls reach calls_done in the order they finish,
-- so a BRIN index answers those ranges at a fraction of a btree's upkeep. An ORDER BY
-- finished_at ... LIMIT over the whole archive now sorts: give such queries a time window.
DROP INDEX calls_done_finished;
CREATE INDEX calls_done_finished ON calls_done USING brin (finished_at);

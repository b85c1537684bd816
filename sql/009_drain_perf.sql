-- 009_drain_perf: the drainer's share of PostgreSQL's time (issue 6, drain goals).
--
-- The lease index served a query it was never meant for. Its predicate (state = 'in_flight')
-- is implied by every statement that looks up in-flight calls by id (the settle, the release,
-- the claim's lease-expired attempts), and right after an ANALYZE, when few calls are in flight,
-- the planner reckons reading every in-flight call through it and hashing them cheaper than
-- one primary-key probe per call. At 256 calls in flight (and as many claimed ahead or waiting
-- for their settle) each settle then read all of them, about 15 % of PostgreSQL's time in
-- make bench's drain step. With lease_until IS NOT NULL in the predicate, only statements that
-- compare lease_until (the claim's lost leases, min(lease_until) for the next wake) can use it;
-- a lookup by id goes through the primary key (id, state), whatever the statistics say. Every
-- in-flight call has a lease, so the index holds the same rows as before.
DROP INDEX calls_live_lease;
CREATE INDEX calls_live_lease ON calls_live (lease_until)
	WHERE state = 'in_flight' AND lease_until IS NOT NULL;

-- 008_accept: the accept path's share of PostgreSQL's time (issue 6).
--
-- ag_ts was declared IMMUTABLE, but its body calls to_char, which is only STABLE (it reads the
-- session's locale settings). PostgreSQL does not inline a SQL function whose body is more
-- volatile than its declaration, so every ag_ts call went through the SQL-function executor
-- (fmgr_sql, about 12 % of a backend's CPU on the accept path). Declared STABLE, it is inlined
-- into the statement as a plain to_char expression. No index, constraint or generated column
-- uses ag_ts (those would need IMMUTABLE); it only formats timestamps in query output.
ALTER FUNCTION ag_ts(timestamptz) STABLE;

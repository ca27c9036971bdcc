-- Per-client rate limits shared by every instance on this database (on
-- SQLite they stay in each process's memory). One row per endpoint and
-- client network: `tat` is GCRA's theoretical arrival time, in
-- microseconds since the Unix epoch; a request is admitted while
-- max(tat, now) + emission - now stays within the burst. Rows whose tat is
-- past hold nothing a fresh row would not, and are pruned.
--
-- UNLOGGED: each limited request updates a row, and an unlogged table
-- writes no WAL for it. If PostgreSQL crashes the table comes back empty:
-- every budget starts full again, which only forgives a client once.
CREATE UNLOGGED TABLE rate_limits (
    key     text PRIMARY KEY NOT NULL,
    tat     bigint NOT NULL
);
CREATE INDEX rate_limits_tat_idx ON rate_limits (tat);

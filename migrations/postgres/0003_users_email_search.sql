-- The administrators' search by part of an email (GET /admin/users?search=)
-- reads an index instead of every user: a GIN trigram index (pg_trgm) on
-- users.email serves `email LIKE '%…%'` (the search's `%`, `_` and `\`
-- escaped, so they stay plain characters). Searches of 1 or 2 characters
-- have no trigram to look up and read every email. SQLite:
-- migrations/sqlite/0011.
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the
-- owner of the database may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);

-- The administrators' list pages through users oldest first: in index
-- order, instead of sorting every user for each page.
CREATE INDEX users_created_idx ON users (created_at, id);

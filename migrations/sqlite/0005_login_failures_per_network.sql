-- Failed password checks per account (or address without an account) and
-- client network (an IPv4 address, an IPv6 /64 by default): a stranger's
-- failures lock the account for the stranger's network only. The network
-- `*` is the count across all networks within one lockout window, whose
-- higher limit locks the account everywhere. `subject` is the user id of an
-- account, or a hash (hex) of an address with no account: unknown addresses
-- are counted by the same statements as accounts, so neither the answers
-- nor the work of a failed login tell them apart. Rows idle for a day are
-- pruned.
CREATE TABLE login_failures (
    subject       TEXT NOT NULL,
    network       TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    window_start  TEXT NOT NULL,
    locked_until  TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (subject, network)
) WITHOUT ROWID;
CREATE INDEX login_failures_updated_idx ON login_failures (updated_at);

-- Counts and locks from before keep holding, as counts across all networks
-- (they were locks everywhere).
INSERT INTO login_failures (subject, network, failures, window_start, locked_until, updated_at)
SELECT id, '*', failed_logins, updated_at, locked_until, updated_at
FROM users WHERE failed_logins > 0 OR locked_until IS NOT NULL;
INSERT INTO login_failures (subject, network, failures, window_start, locked_until, updated_at)
SELECT lower(hex(email_hash)), '*', failed_logins, updated_at, locked_until, updated_at
FROM unknown_login_failures;

DROP TABLE unknown_login_failures;
ALTER TABLE users DROP COLUMN failed_logins;
ALTER TABLE users DROP COLUMN locked_until;

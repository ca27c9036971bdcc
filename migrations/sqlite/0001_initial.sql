-- sesame's initial schema. Migrations are never edited once landed: add a new file.
-- Timestamps are RFC 3339 UTC text (portable and sortable); ids are UUID v7 text.

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL,              -- trimmed, lower-cased
    password_hash   TEXT NOT NULL,              -- argon2id PHC string
    name            TEXT,
    active          BOOLEAN NOT NULL DEFAULT FALSE,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    role            TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    referral_code   TEXT NOT NULL,              -- upper-case, 8 characters
    referred_by     TEXT REFERENCES users (id) ON DELETE SET NULL,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_login_at   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- The unique index, not a prior SELECT, decides who wins a duplicate signup race.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_referral_code_key ON users (referral_code);
CREATE INDEX users_referred_by_idx ON users (referred_by, created_at);

-- Failed logins to addresses that have no account, counted and locked like
-- real accounts so that neither the lockout nor the time a failed login
-- takes tells which addresses exist. Keyed by a SHA-256 of the address;
-- rows are pruned once idle for a day.
CREATE TABLE unknown_login_failures (
    email_hash      BLOB PRIMARY KEY NOT NULL,
    failed_logins   INTEGER NOT NULL,
    locked_until    TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX unknown_login_failures_updated_idx ON unknown_login_failures (updated_at);

-- One-time secrets sent by email: 6-digit activation and email-change codes,
-- and reset tokens. Only a SHA-256 hash is stored. A user has at most one
-- live secret per purpose. `new_email` is the address an email change moves to.
CREATE TABLE one_time_codes (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose         TEXT NOT NULL CHECK (purpose IN ('activation', 'password_reset', 'email_change')),
    code_hash       BLOB NOT NULL,
    new_email       TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    created_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX one_time_codes_user_purpose_key ON one_time_codes (user_id, purpose);
CREATE UNIQUE INDEX one_time_codes_hash_key ON one_time_codes (code_hash);

-- A session is one login. Access tokens carry its id (`sid`); revoking it
-- stops both its access tokens (checked per request) and its refresh tokens.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent      TEXT,
    ip              TEXT,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Every refresh token ever issued for a live session, by hash. A token is
-- spent once used; presenting a spent one after the grace window revokes the
-- session (theft detection).
CREATE TABLE refresh_tokens (
    token_hash      BLOB PRIMARY KEY NOT NULL,
    session_id      TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL,
    spent_at        TEXT
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- JWT signing keys. The newest is used to sign; all are published and verify.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    algorithm       TEXT NOT NULL,
    private_key     BLOB NOT NULL,              -- PKCS#8 DER
    public_key      BLOB NOT NULL,              -- raw Ed25519 public key
    created_at      TEXT NOT NULL
);

-- The transactional outbox: written in the same transaction as the change
-- that causes the email, delivered by a background worker strictly in id
-- order. `failed_at` marks an email the SMTP server refused for good.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         TEXT,
    failed_at       TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_pending_idx ON outbox (sent_at, failed_at, id);
-- For the email throttle: the last email of a kind to an address.
CREATE INDEX outbox_recipient_kind_idx ON outbox (recipient, kind, created_at);

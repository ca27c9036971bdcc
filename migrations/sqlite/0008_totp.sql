-- A second factor (issue 15): TOTP authenticators, recovery codes, the
-- pending second step of a login, and how each session signed in.

-- The key that encrypts TOTP secrets (AES-256-GCM), made by sesame from
-- the OS CSPRNG the first time it is needed. One row. Kept apart from the
-- secrets it protects: a leaked `totp_credentials` row (a log, a partial
-- export) holds only ciphertext. See SECURITY.md for what it does not stop.
CREATE TABLE mfa_keys (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    key             BLOB NOT NULL,
    created_at      TEXT NOT NULL
);

-- One authenticator per account. `secret` is a 12-byte nonce followed by the
-- AES-256-GCM ciphertext of the 160-bit secret, with the user id as
-- associated data (a ciphertext copied to another account does not open).
-- Pending (enrolment asked for, no code confirmed yet) while `confirmed_at`
-- is NULL; asking again replaces a pending secret. `last_step` is the time
-- step (unix time / 30) of the last accepted code: a code is accepted only
-- for a later step, so each code works once.
CREATE TABLE totp_credentials (
    user_id         TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret          BLOB NOT NULL,
    confirmed_at    TEXT,
    last_step       INTEGER,
    created_at      TEXT NOT NULL
);

-- Ten single-use recovery codes per account with TOTP on, shown once. Only
-- an HMAC-SHA-256 of each is stored (keyed with a key derived from
-- `mfa_keys`, bound to the user id). New codes replace all old ones.
CREATE TABLE recovery_codes (
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash       BLOB NOT NULL,
    used_at         TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- The second step of a login: a right password on an account with TOTP on
-- gets an opaque 256-bit token (SHA-256 only is stored), valid a few
-- minutes, single use; five wrong codes void it.
CREATE TABLE mfa_challenges (
    token_hash      BLOB PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

-- How the session's user proved who they are: the RFC 8176 `amr` values of
-- its access tokens, space-separated; a refresh keeps them. Sessions from
-- before this version signed in with a password.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

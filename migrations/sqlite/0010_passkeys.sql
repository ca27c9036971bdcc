-- Passkeys (issue 16): WebAuthn credentials as a login of their own, and
-- the ceremonies between their start and finish. (How a session signed in,
-- `sessions.amr`, came with 0008.)

-- One row per registered credential. `credential` is webauthn-rs's
-- serialized passkey (the COSE public key, the counter, the backup flags):
-- the library reads it back to check an assertion. `credential_id` is the
-- authenticator's id for it, unique across every account (a discoverable
-- login finds its passkey by it). `sign_count` is the last counter the
-- authenticator reported: a login whose counter does not move forward is
-- refused (a cloned key) and the owner emailed.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   BLOB NOT NULL,
    credential      TEXT NOT NULL,
    name            TEXT NOT NULL,
    sign_count      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT
);
CREATE UNIQUE INDEX passkeys_credential_key ON passkeys (credential_id);
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

-- A started ceremony (registration or login): its challenge lives inside
-- `state` (webauthn-rs's serialized state, JSON). Kept in the database so
-- any instance can finish what another started. Single use: finishing
-- deletes the row before checking anything; valid until `expires_at`
-- (5 minutes). `user_id` is the account it is for, NULL for a login that
-- names no address. Housekeeping deletes expired rows.
CREATE TABLE passkey_challenges (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    purpose         TEXT NOT NULL,
    state           TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX passkey_challenges_expires_idx ON passkey_challenges (expires_at);

-- The key of the keyed hash that makes decoy credential ids for addresses
-- without passkeys (so a login start answers the same shape, and the same
-- ids each time, whether or not an address has an account). One row, made
-- on first use; shared by every instance on this database.
CREATE TABLE passkey_decoy_key (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    key             BLOB NOT NULL
);

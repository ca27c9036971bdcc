-- Second hardening round (issue 13): guesses at emailed codes are capped per
-- address, an email change can be undone from the old address, and no code or
-- token stays in the outbox once its email went out.

-- Wrong codes of one kind (`activation`, `email_change`, later a second
-- factor) for one address, counted whether or not the address has an
-- account, so neither the answers nor the work done tell which addresses
-- exist. Keyed by a SHA-256 of the address. A window starts with its first
-- wrong code and lasts a day; once `failures` reaches
-- SESAME_CODE_MAX_FAILURES_PER_DAY, every code of that kind for that
-- address is refused and none is sent until the window ends. Housekeeping
-- deletes rows whose window ended.
CREATE TABLE code_failures (
    email_hash      BLOB NOT NULL,
    kind            TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    window_start    TEXT NOT NULL,
    PRIMARY KEY (email_hash, kind)
);
CREATE INDEX code_failures_window_idx ON code_failures (window_start);

-- A confirmed email change leaves a way back: a 256-bit token (SHA-256 only
-- is stored) mailed to the old address. Spending it puts `old_email` back,
-- ends every session and scrambles the password. While it is live, the old
-- address stays reserved: nobody can sign up with it or move to it.
CREATE TABLE email_reverts (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_email       TEXT NOT NULL,
    token_hash      BLOB NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    created_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX email_reverts_token_key ON email_reverts (token_hash);
CREATE INDEX email_reverts_old_email_idx ON email_reverts (old_email, expires_at);
CREATE INDEX email_reverts_user_idx ON email_reverts (user_id, created_at);
CREATE INDEX email_reverts_expires_idx ON email_reverts (expires_at);

-- The one secret (code or token) an email carries, kept beside its bodies
-- until the email is delivered or given up: then every copy of it in the
-- bodies is replaced and this column cleared, in the same statement.
ALTER TABLE outbox ADD COLUMN secret TEXT;

-- Emails that went out before this version still carry their secrets; which
-- ones is known by kind. Their bodies go (subject, recipient and kind stay).
UPDATE outbox
SET text_body = '[removed after delivery: it carried a one-time secret]',
    html_body = '[removed after delivery: it carried a one-time secret]'
WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL)
  AND kind IN ('verification', 'password_reset', 'email_change_code');

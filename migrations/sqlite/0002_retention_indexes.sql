-- Housekeeping deletes sessions and emails that ended longer ago than
-- SESAME_RETENTION_SECS; these indexes let it find them without a scan.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- Sent emails are found by outbox_pending_idx (sent_at, ...); given-up ones
-- have sent_at NULL, so (sent_at, failed_at) finds them too.

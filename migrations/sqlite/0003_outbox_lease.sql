-- Several sesame processes may share one database file (a rolling restart,
-- two instances behind a proxy). Only the holder of this lease delivers the
-- outbox, so no email is sent twice and the queue keeps its order. The
-- holder renews it while it works and gives it up when the queue is empty;
-- a holder that died loses it when `expires_at` passes.
CREATE TABLE outbox_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- One row that sesame rewrites to find out whether the database takes
-- writes again after a fault (disk full, I/O error, read-only file, a lock
-- held too long): only a write that commits proves it. `ballast` makes
-- the probe big enough (64 KiB) that it does not fit in the space the
-- write-ahead log already has on a full disk.
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at TEXT NOT NULL,
    ballast BLOB NOT NULL
);

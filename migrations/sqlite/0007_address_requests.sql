-- Requests that name an address from outside (forgot password, resend a
-- verification code), counted per address and kind whether or not the
-- address has an account. The count is not read by any decision: the row
-- exists so that every such request commits one write. Before it, only
-- requests for a real account wrote (a code and an email, one fsync), and
-- the extra milliseconds told a stranger which addresses have accounts.
-- `address_key` is a hash of the address, so the table does not list the
-- addresses strangers tried. Rows idle for a day are pruned.
CREATE TABLE address_requests (
    address_key  BLOB NOT NULL,
    kind         TEXT NOT NULL,
    requests     INTEGER NOT NULL,
    last_at      TEXT NOT NULL,
    PRIMARY KEY (address_key, kind)
) WITHOUT ROWID;
CREATE INDEX address_requests_last_at_idx ON address_requests (last_at);

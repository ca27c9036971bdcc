-- The administrators' search by part of an email (GET /admin/users?search=)
-- reads an index instead of every user: an FTS5 table with the trigram
-- tokenizer over users.email. A search of 3 or more characters is a MATCH
-- of the phrase of its trigrams, which finds every email containing it;
-- sesame checks each candidate with instr() too, so the answer is exactly
-- the substring match of before. (Searches of 1 or 2 characters have no
-- trigram: they read every email with instr().)
--
-- External content (content = 'users'): the index keeps no second copy of
-- the addresses, only the trigrams by users' rowid. The triggers below keep
-- it in step with every insert, change of address and delete. The rowid of
-- users has no INTEGER PRIMARY KEY behind it, and SQLite's VACUUM (and
-- VACUUM INTO, used by `sesame backup`) may renumber such rowids: the
-- backup rebuilds this index in its copy before checking it.
CREATE VIRTUAL TABLE users_email_search USING fts5(
    email,
    content = 'users',
    content_rowid = 'rowid',
    tokenize = 'trigram'
);

CREATE TRIGGER users_email_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_email_search (rowid, email) VALUES (new.rowid, new.email);
END;

CREATE TRIGGER users_email_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
        VALUES ('delete', old.rowid, old.email);
END;

CREATE TRIGGER users_email_search_update AFTER UPDATE OF email ON users BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
        VALUES ('delete', old.rowid, old.email);
    INSERT INTO users_email_search (rowid, email) VALUES (new.rowid, new.email);
END;

-- The users there are already.
INSERT INTO users_email_search (users_email_search) VALUES ('rebuild');

-- The administrators' list pages through users oldest first: in index
-- order, instead of sorting every user for each page.
CREATE INDEX users_created_idx ON users (created_at, id);

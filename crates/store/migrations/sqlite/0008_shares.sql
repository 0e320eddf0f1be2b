-- Share links: read-only access, for whoever holds the link, to one file or to a query's files
-- as the link's maker sees them. Kept only as the BLAKE3 hash of the link's secret (as tokens
-- are); `password` an argon2 PHC string, or none; `expires` in the database's clock. A file's
-- link goes with the file; a maker's links go with the maker.
CREATE TABLE shares (
    id       INTEGER PRIMARY KEY,
    hash     TEXT NOT NULL UNIQUE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_id  TEXT REFERENCES files (id) ON DELETE CASCADE,
    query    TEXT,
    password TEXT,
    created  INTEGER NOT NULL,                    -- unix ms
    expires  INTEGER,                             -- unix ms; NULL: never
    CHECK ((file_id IS NULL) <> (query IS NULL))
);
CREATE INDEX shares_user ON shares (user_id);
CREATE INDEX shares_file ON shares (file_id);

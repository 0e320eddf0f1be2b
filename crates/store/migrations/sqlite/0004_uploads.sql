-- tus uploads in progress, shared by every node: the upload's declared length and metadata, the
-- offset (the sum of its durable parts), and the lease of the node writing it now.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    length        INTEGER NOT NULL,
    name          TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    file_id       TEXT,                          -- set once complete and stored
    lock_token    TEXT,                          -- the writer's lease (a random token)
    lock_until    INTEGER,                       -- unix ms, the database's clock
    updated       INTEGER NOT NULL               -- unix ms of the last change (expiry)
);
CREATE INDEX uploads_updated ON uploads (updated);
-- The bytes of an upload: one object in the blob store per PATCH, in order of `start`.
CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start     INTEGER NOT NULL,
    len       INTEGER NOT NULL,
    key       TEXT NOT NULL,
    PRIMARY KEY (upload_id, start)
);

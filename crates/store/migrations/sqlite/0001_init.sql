-- Contents, by BLAKE3 hash: stored once, reference-counted by file records.
CREATE TABLE blobs (
    hash      TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    mime      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    refs      INTEGER NOT NULL CHECK (refs >= 0),
    tagging   TEXT NOT NULL DEFAULT 'pending',   -- pending | done | failed
    -- JSON {extractor: version} of the run that made the auto tags, for re-tagging.
    extractor_versions TEXT NOT NULL DEFAULT '{}',
    -- JSON object of facts extractors found (dimensions, taken, duration, ...).
    fields    TEXT NOT NULL DEFAULT '{}',
    created   INTEGER NOT NULL                     -- unix ms
);

-- File records: a name pointing at a content.
CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    hash       TEXT NOT NULL REFERENCES blobs (hash),
    size       INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    modified   INTEGER NOT NULL
);
CREATE INDEX files_hash ON files (hash);
CREATE INDEX files_created ON files (created);
CREATE INDEX files_modified ON files (modified);
CREATE INDEX files_size ON files (size);
CREATE INDEX files_name ON files (name_lower);

CREATE TABLE tags (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Automatic tags belong to content: every file with this hash carries them.
CREATE TABLE blob_tags (
    hash      TEXT NOT NULL REFERENCES blobs (hash) ON DELETE CASCADE,
    tag_id    INTEGER NOT NULL REFERENCES tags (id),
    extractor TEXT NOT NULL,
    version   INTEGER NOT NULL,
    weight    REAL NOT NULL,
    PRIMARY KEY (hash, tag_id)
);
CREATE INDEX blob_tags_tag ON blob_tags (tag_id);

-- User tags belong to a file record. A row with hidden = 1 hides an automatic tag of the same
-- name on that file (the person removed it); a visible row supersedes the automatic edge.
CREATE TABLE file_tags (
    file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    tag_id  INTEGER NOT NULL REFERENCES tags (id),
    hidden  INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    PRIMARY KEY (file_id, tag_id)
);
CREATE INDEX file_tags_tag ON file_tags (tag_id);

-- The graph's edges: one per (file, tag).
CREATE VIEW edges AS
    SELECT f.id AS file_id, bt.tag_id AS tag_id, 'auto' AS kind, bt.extractor AS extractor, bt.weight AS weight
      FROM files f JOIN blob_tags bt ON bt.hash = f.hash
     WHERE NOT EXISTS (SELECT 1 FROM file_tags o WHERE o.file_id = f.id AND o.tag_id = bt.tag_id)
    UNION ALL
    SELECT file_id, tag_id, 'user', NULL, 1.0 FROM file_tags WHERE hidden = 0;

-- The persistent job queue (automatic tagging of a content).
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,                 -- 'tag'
    hash        TEXT NOT NULL,
    state       TEXT NOT NULL,                 -- queued | running | failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   INTEGER NOT NULL,              -- unix ms
    lease_until INTEGER,
    last_error  TEXT,
    created     INTEGER NOT NULL,
    UNIQUE (kind, hash)
);
CREATE INDEX jobs_ready ON jobs (state, run_after);

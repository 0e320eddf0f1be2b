-- Full-text search: the text of each content, as the tagger extracted it (bounded, CJK cut into
-- words), in parts of at most `assemble::TEXT_PART_BYTES` (PostgreSQL caps one tsvector at
-- 1 MiB; both databases keep the same rows). Like automatic tags, it belongs to the content.
CREATE TABLE blob_texts (
    id   INTEGER PRIMARY KEY,
    hash TEXT NOT NULL REFERENCES blobs (hash) ON DELETE CASCADE,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (hash, part)
);

-- The FTS5 index over blob_texts (external content: the text is stored once, in blob_texts),
-- kept in step by triggers. Porter stemming over unicode61, diacritics folded.
CREATE VIRTUAL TABLE blob_texts_fts USING fts5(
    body,
    content = 'blob_texts',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER blob_texts_ai AFTER INSERT ON blob_texts BEGIN
    INSERT INTO blob_texts_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER blob_texts_ad AFTER DELETE ON blob_texts BEGIN
    INSERT INTO blob_texts_fts (blob_texts_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

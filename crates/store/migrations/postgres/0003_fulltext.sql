-- Full-text search: migrations/sqlite/0003_fulltext.sql in PostgreSQL's terms: the same rows,
-- indexed by a stored tsvector (English stemming) and GIN.
CREATE TABLE blob_texts (
    id   BIGSERIAL PRIMARY KEY,
    hash TEXT NOT NULL REFERENCES blobs (hash) ON DELETE CASCADE,
    part BIGINT NOT NULL,
    body TEXT NOT NULL,
    tsv  tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    UNIQUE (hash, part)
);
CREATE INDEX blob_texts_tsv ON blob_texts USING GIN (tsv);

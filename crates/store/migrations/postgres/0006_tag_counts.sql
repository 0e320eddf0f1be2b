-- migrations/sqlite/0006_tag_counts.sql in PostgreSQL's types: covering indexes for the paths
-- from a tag to its files' ids, and per-tag file counts kept with the edges.
CREATE INDEX blob_tags_tag_weight ON blob_tags (tag_id, weight, hash);
DROP INDEX blob_tags_tag;
CREATE INDEX files_hash_id ON files (hash, id);
DROP INDEX files_hash;
CREATE INDEX file_tags_tag_shown ON file_tags (tag_id, hidden, file_id);
DROP INDEX file_tags_tag;

CREATE TABLE tag_counts (
    tag_id BIGINT PRIMARY KEY REFERENCES tags (id) ON DELETE CASCADE,
    files  BIGINT NOT NULL,
    shown  BIGINT NOT NULL
);
CREATE INDEX tag_counts_shown ON tag_counts (shown);
CREATE INDEX tag_counts_files ON tag_counts (files);
CREATE TABLE tag_counts_basis (
    id             BIGINT PRIMARY KEY CHECK (id = 1),
    min_confidence DOUBLE PRECISION NOT NULL
);

-- Covering indexes for the paths every query over edges takes: from a tag to its files' ids
-- (blob_tags by tag with the weight the threshold tests and the hash, files by hash with the
-- id, user rows by tag with hidden and the file), so neither table's rows are read.
CREATE INDEX blob_tags_tag_weight ON blob_tags (tag_id, weight, hash);
DROP INDEX blob_tags_tag;
CREATE INDEX files_hash_id ON files (hash, id);
DROP INDEX files_hash;
CREATE INDEX file_tags_tag_shown ON file_tags (tag_id, hidden, file_id);
DROP INDEX file_tags_tag;

-- How many files carry each tag, kept in the transaction that changes its edges: `files` counts
-- every edge (the `edges` view), `shown` those at or above the threshold in tag_counts_basis
-- (the visible ones). Rebuilt when a store opens with another threshold, or none is recorded.
CREATE TABLE tag_counts (
    tag_id INTEGER PRIMARY KEY REFERENCES tags (id) ON DELETE CASCADE,
    files  INTEGER NOT NULL,
    shown  INTEGER NOT NULL
);
CREATE INDEX tag_counts_shown ON tag_counts (shown);
CREATE INDEX tag_counts_files ON tag_counts (files);
CREATE TABLE tag_counts_basis (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    min_confidence REAL NOT NULL
);

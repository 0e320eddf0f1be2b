-- Folder claims replace `folders.owner` (no longer read or written): a folder is one row by
-- path, and any number of users may have made it (by MKCOL, or by an upload into it), each with
-- a claim on it and its ancestors. A user sees the folders they claim and those holding a file
-- they see (`sql::folder_shown`). A user's MKCOL of a folder only others made claims it, and
-- tells nothing of theirs; a user's removal ends their claims, and only the rows that no claim
-- and no file keeps go.
CREATE TABLE folder_claims (
    path    TEXT NOT NULL REFERENCES folders (path) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, path)
);
CREATE INDEX folder_claims_path ON folder_claims (path);
INSERT INTO folder_claims (path, user_id) SELECT path, owner FROM folders WHERE owner IS NOT NULL;
UPDATE folders SET owner = NULL;

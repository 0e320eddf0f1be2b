-- Ownership: every file record belongs to a user (`owner`) and may be shared, read-only, with a
-- group (`grp`). Records from before accounts go to the first admin; a record with no owner
-- (none had an admin yet) is seen by admins only. Who sees what is one condition in the store
-- (`sql::file_visible`), never a column read elsewhere.
CREATE TABLE groups (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);
ALTER TABLE files ADD COLUMN owner INTEGER REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE files ADD COLUMN grp INTEGER REFERENCES groups (id) ON DELETE SET NULL;
UPDATE files SET owner = (SELECT min(id) FROM users WHERE role = 'admin');
CREATE INDEX files_owner ON files (owner);
CREATE INDEX files_grp ON files (grp);

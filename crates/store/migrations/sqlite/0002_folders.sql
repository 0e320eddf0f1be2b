-- The relative folder a file was uploaded from ('' when it came alone), and the folders that
-- exist (those of uploaded files, with their ancestors, and those made empty by WebDAV's
-- MKCOL): what /dav/files/ lists.
ALTER TABLE files ADD COLUMN folder TEXT NOT NULL DEFAULT '';
CREATE INDEX files_folder ON files (folder, name_lower);

CREATE TABLE folders (
    path    TEXT PRIMARY KEY,
    parent  TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX folders_parent ON folders (parent);

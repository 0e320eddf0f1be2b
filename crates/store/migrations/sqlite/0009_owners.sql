-- Who made a folder (the uploader of the file that made it, or the maker of an empty one by
-- WebDAV's MKCOL): a user sees the folders they made, and those holding a file they see. NULL for
-- folders of before (shown by their files alone) and for those made by an admin or internal caller.
ALTER TABLE folders ADD COLUMN owner INTEGER REFERENCES users (id) ON DELETE SET NULL;
-- Who started a tus upload: only they (or an admin) may see, resume or cancel it, and each user
-- has a bounded number in progress. NULL for uploads of before and of deleted users (an admin's, or expiry's).
ALTER TABLE uploads ADD COLUMN owner INTEGER REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX uploads_owner ON uploads (owner) WHERE file_id IS NULL;

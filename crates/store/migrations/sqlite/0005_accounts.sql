-- Accounts: users (an argon2 PHC string, or none: a user who logs in only by link or token) and
-- their credentials. A credential is kept only as the BLAKE3 hash of its secret; `kind` says how
-- it is used: `api` (a token for scripts and the CLI), `session` (the page's cookie), `link` (a
-- one-time login link, deleted when used). `scope` is read < write < admin; `role` is the
-- largest scope a user's credentials may have.
CREATE TABLE users (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    password TEXT,
    role     TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    created  INTEGER NOT NULL                     -- unix ms
);
CREATE TABLE tokens (
    id       INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash     TEXT NOT NULL UNIQUE,
    kind     TEXT NOT NULL CHECK (kind IN ('api', 'session', 'link')),
    scope    TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created  INTEGER NOT NULL,                    -- unix ms
    expires  INTEGER                              -- unix ms, the database's clock; NULL: never
);
CREATE INDEX tokens_user ON tokens (user_id);

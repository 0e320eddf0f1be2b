-- Quotas: the bytes a user's file records may hold (`quota`; NULL: no limit) and the bytes they
-- hold now (`used`: the sum of their records' sizes, a copy counted like an upload), kept in the
-- transaction of every insert and delete. The rule (what fits) is `meta::Usage`, in Rust.
ALTER TABLE users ADD COLUMN quota BIGINT;
ALTER TABLE users ADD COLUMN used BIGINT NOT NULL DEFAULT 0;
UPDATE users SET used = COALESCE((SELECT CAST(sum(f.size) AS BIGINT) FROM files f WHERE f.owner = users.id), 0);

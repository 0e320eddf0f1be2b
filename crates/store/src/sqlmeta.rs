//! The one SQL implementation of [`MetaStore`], for every database sqlx speaks to here: SQLite
//! (the embedded default, [`crate::SqliteMeta`]) and PostgreSQL (scale-out, [`crate::PgMeta`]).
//!
//! The SQL is written once, in a form both accept: `$n` placeholders (SQLite reads `$NNN` as
//! the NNN-th argument), `CASE` instead of SQLite's two-argument `max`, `count(*) FILTER`, casts
//! where PostgreSQL would widen a sum to `numeric`. What differs is a [`Dialect`] constant (how a
//! write transaction begins, the clock, row locks for the queue) or a [`Dialect`] method (the
//! query language's string tests). The body is a macro instantiated per database rather than a
//! generic impl: sqlx's executor bounds are higher-ranked, and a generic async body boxed as
//! `Send` (what `async_trait` needs) does not type-check with them.
//!
//! Adapters open their pools and run their own migrations (`sqlite.rs`, `postgres.rs`).

use crate::StoreError;
use crate::sql::{self, Dialect};
use sqlx::{Database, Pool};

/// A metadata store on a sqlx database.
pub struct SqlMeta<DB: Database> {
    /// Readers: records and contents (downloads), folders, counts.
    pub(crate) pool: Pool<DB>,
    /// Queries (searches, graphs, related files, tag listings, co-occurrence): a pool of their
    /// own, [`crate::QUERY_CONNECTIONS`] connections whose statements the database aborts over
    /// a [`crate::QueryBudget`].
    pub(crate) queries: Pool<DB>,
    /// Writers. On SQLite one connection (SQLite allows one writer at a time anyway; queueing
    /// writers in the pool rather than in SQLite's busy handler avoids SQLITE_BUSY on lock
    /// upgrades); on PostgreSQL the same pool as the readers.
    pub(crate) write: Pool<DB>,
    /// The edges that are shown ([`sql::visible_edges`]), as SQL text for `FROM`.
    pub(crate) visible: String,
}

impl<DB: Database> SqlMeta<DB> {
    pub(crate) fn with_pools(
        pool: Pool<DB>,
        write: Pool<DB>,
        queries: Pool<DB>,
        min_confidence: f64,
    ) -> Result<Self, StoreError> {
        sql::check_min_confidence(min_confidence)?;
        Ok(SqlMeta {
            pool,
            queries,
            write,
            visible: sql::visible_edges(min_confidence),
        })
    }
}

/// Whether a `file_tags` row adds a user tag or hides an automatic tag of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileTagRow {
    User,
    Hidden,
}

macro_rules! impl_meta {
    ($db:ty) => {
        impl SqlMeta<$db> {
            /// Runs `head IN (items) tail` on `pool`, [`IN_LIST_CHUNK`] items at a time, and
            /// returns the rows of all. `tail` must not mix rows of different chunks (a
            /// `GROUP BY` of the listed column is fine).
            async fn fetch_in<R>(
                pool: &Pool<$db>,
                head: &str,
                items: &[String],
                tail: &str,
            ) -> Result<Vec<R>, StoreError>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as Database>::Row> + Send + Unpin,
            {
                let mut rows = Vec::new();
                for chunk in items.chunks(IN_LIST_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push(" IN (");
                    sql::push_list(&mut qb, chunk);
                    qb.push(tail);
                    rows.extend(qb.build_query_as::<R>().fetch_all(pool).await?);
                }
                Ok(rows)
            }

            /// Loads the visible tags of these files, in the order records show them.
            async fn tags_of(
                &self,
                pool: &Pool<$db>,
                ids: &[String],
            ) -> Result<HashMap<String, Vec<TagRef>>, StoreError> {
                let head = format!(
                    "SELECT {EDGE_COLUMNS} FROM {} e JOIN tags t ON t.id = e.tag_id WHERE e.file_id",
                    self.visible
                );
                Ok(tags_by_file(Self::fetch_in(pool, &head, ids, "").await?))
            }

            async fn with_tags(
                &self,
                pool: &Pool<$db>,
                mut records: Vec<FileRecord>,
            ) -> Result<Vec<FileRecord>, StoreError> {
                let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                let tags = self.tags_of(pool, &ids).await?;
                attach_tags(&mut records, tags);
                Ok(records)
            }

            async fn records_by_ids(
                &self,
                pool: &Pool<$db>,
                ids: &[String],
            ) -> Result<Vec<FileRecord>, StoreError> {
                let head = format!("SELECT {RECORD_COLUMNS} WHERE f.id");
                let rows: Vec<RecordRow> = Self::fetch_in(pool, &head, ids, "").await?;
                self.with_tags(pool, rows.into_iter().map(FileRecord::from).collect())
                    .await
            }

            async fn tag_ids(
                tx: &mut <$db as Database>::Connection,
                names: &[String],
            ) -> Result<Vec<i64>, StoreError> {
                let mut ids = Vec::with_capacity(names.len());
                for n in names {
                    // DO UPDATE (a no-op) rather than DO NOTHING so that RETURNING yields the
                    // existing id.
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO tags (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
                    )
                    .bind(n)
                    .fetch_one(&mut *tx)
                    .await?;
                    ids.push(id);
                }
                Ok(ids)
            }

            /// A user tag on a file, or the hiding of an automatic tag of that name.
            async fn set_file_tag(
                tx: &mut <$db as Database>::Connection,
                id: &str,
                tag_id: i64,
                row: FileTagRow,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO file_tags (file_id, tag_id, hidden, created) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (file_id, tag_id) DO UPDATE SET hidden = $3",
                )
                .bind(id)
                .bind(tag_id)
                .bind((row == FileTagRow::Hidden) as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            /// A write transaction ([`Dialect::BEGIN_WRITE`]).
            async fn begin_write(
                &self,
            ) -> Result<sqlx::Transaction<'static, $db>, StoreError> {
                Ok(self.write.begin_with(<$db as Dialect>::BEGIN_WRITE).await?)
            }

            /// Queues tagging of a content, or re-queues a job that failed; a queued or running
            /// job is left as it is.
            async fn queue_tagging(
                tx: &mut <$db as Database>::Connection,
                hash: &str,
            ) -> Result<(), StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                sqlx::query(&format!(
                    "INSERT INTO jobs (kind, hash, state, run_after, created) VALUES ('tag', $1, 'queued', {now}, {now})
                     ON CONFLICT (kind, hash) DO UPDATE SET state = 'queued', attempts = 0, run_after = excluded.run_after
                     WHERE jobs.state = 'failed'"
                ))
                .bind(hash)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            /// Starts a change of a file's tags: a write transaction in which the file is marked
            /// modified now (NotFound if there is no such file), and that time.
            async fn begin_tag_edit(
                &self,
                id: &str,
            ) -> Result<(sqlx::Transaction<'static, $db>, i64), StoreError> {
                let mut tx = self.begin_write().await?;
                let now = now_ms();
                let n = sqlx::query("UPDATE files SET modified = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("file {id}")));
                }
                Ok((tx, now))
            }

            /// Gives the records their snippets for the full-text query `tq`.
            async fn attach_snippets(
                &self,
                records: &mut [FileRecord],
                tq: String,
            ) -> Result<(), StoreError> {
                let mut hashes: Vec<String> = records.iter().map(|r| r.hash.clone()).collect();
                hashes.sort_unstable();
                hashes.dedup();
                let mut rows = Vec::new();
                for chunk in hashes.chunks(IN_LIST_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT hash, snippet FROM ");
                    <$db as Dialect>::push_snippets(&mut qb, tq.clone(), chunk);
                    qb.push(" s ORDER BY score DESC");
                    rows.extend(
                        qb.build_query_as::<(String, String)>()
                            .fetch_all(&self.queries)
                            .await?,
                    );
                }
                attach_snippets(records, rows);
                Ok(())
            }

            /// Removes the row of a content no record points at any more: its jobs, its text,
            /// its automatic tags (by cascade), and tags no edge uses any more (which would
            /// linger in autocomplete).
            async fn forget_blob(
                tx: &mut <$db as Database>::Connection,
                hash: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM jobs WHERE hash = $1")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                Self::set_text(&mut *tx, hash, "").await?;
                sqlx::query("DELETE FROM blobs WHERE hash = $1")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM blob_tags WHERE tag_id = tags.id)
                     AND NOT EXISTS (SELECT 1 FROM file_tags WHERE tag_id = tags.id)",
                )
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            /// Replaces a content's full-text rows with `text`, in parts.
            async fn set_text(
                tx: &mut <$db as Database>::Connection,
                hash: &str,
                text: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM blob_texts WHERE hash = $1")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                for (part, body) in text_parts(text).into_iter().enumerate() {
                    sqlx::query("INSERT INTO blob_texts (hash, part, body) VALUES ($1, $2, $3)")
                        .bind(hash)
                        .bind(part as i64)
                        .bind(body)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(())
            }

            /// Makes `path` and its ancestors exist; true when `path` itself is new.
            async fn ensure_folder(
                tx: &mut <$db as Database>::Connection,
                path: &FolderPath,
                now: i64,
            ) -> Result<bool, StoreError> {
                let mut parent = String::new();
                let mut made = false;
                for folder in path.folders() {
                    let here = if parent.is_empty() {
                        folder.to_owned()
                    } else {
                        format!("{parent}/{folder}")
                    };
                    made = sqlx::query(
                        "INSERT INTO folders (path, parent, created) VALUES ($1, $2, $3) ON CONFLICT (path) DO NOTHING",
                    )
                    .bind(&here)
                    .bind(&parent)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    parent = here;
                }
                Ok(made)
            }

            /// Marks contents' tagging failed (their jobs failed for good).
            async fn tagging_failed(
                tx: &mut <$db as Database>::Connection,
                hashes: &[String],
            ) -> Result<(), StoreError> {
                for hash in hashes {
                    sqlx::query("UPDATE blobs SET tagging = 'failed' WHERE hash = $1")
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl MetaStore for SqlMeta<$db> {
            async fn insert_file(&self, new: NewFile<'_>) -> Result<FileRecord, StoreError> {
                let id = uuid::Uuid::now_v7().to_string();
                let now = now_ms();
                let mut tx = self.begin_write().await?;
                let (refs, tagging): (i64, String) = sqlx::query_as(
                    "INSERT INTO blobs (hash, size, mime, kind, refs, created) VALUES ($1, $2, $3, $4, 1, $5)
                     ON CONFLICT (hash) DO UPDATE SET refs = blobs.refs + 1 RETURNING refs, tagging",
                )
                .bind(new.hash)
                .bind(new.size as i64)
                .bind(new.mime)
                .bind(new.kind.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO files (id, name, name_lower, folder, hash, size, created, modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&id)
                .bind(new.name.as_str())
                .bind(new.name.to_lowercase())
                .bind(new.folder.as_str())
                .bind(new.hash)
                .bind(new.size as i64)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::ensure_folder(&mut tx, &new.folder, now).await?;
                for tag_id in Self::tag_ids(&mut tx, &new.folder.tags()).await? {
                    Self::set_file_tag(&mut tx, &id, tag_id, FileTagRow::User, now).await?;
                }
                if refs == 1 && tagging != TaggingState::Done.as_str() {
                    Self::queue_tagging(&mut tx, new.hash).await?;
                }
                tx.commit().await?;
                self.get_file(&id).await
            }

            async fn get_file(&self, id: &str) -> Result<FileRecord, StoreError> {
                let row: RecordRow =
                    sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} WHERE f.id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
                Ok(self.with_tags(&self.pool, vec![row.into()]).await?.remove(0))
            }

            async fn get_content(&self, id: &str) -> Result<FileContent, StoreError> {
                let (name, hash, size, mime): (String, String, i64, String) = sqlx::query_as(
                    "SELECT f.name, f.hash, f.size, b.mime FROM files f JOIN blobs b ON b.hash = f.hash WHERE f.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
                Ok(FileContent {
                    name,
                    hash,
                    size: size as u64,
                    mime,
                })
            }

            async fn delete_file(&self, id: &str) -> Result<Option<String>, StoreError> {
                let mut tx = self.begin_write().await?;
                let hash: String =
                    sqlx::query_scalar("DELETE FROM files WHERE id = $1 RETURNING hash")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
                let refs: i64 = sqlx::query_scalar(
                    "UPDATE blobs SET refs = refs - 1 WHERE hash = $1 RETURNING refs",
                )
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await?;
                let gone = if refs == 0 {
                    Self::forget_blob(&mut tx, &hash).await?;
                    Some(hash)
                } else {
                    None
                };
                tx.commit().await?;
                Ok(gone)
            }

            async fn list_files(
                &self,
                q: &Expr,
                opts: ListOptions,
            ) -> Result<(Vec<FileRecord>, u64), StoreError> {
                let terms = q.text_terms();
                let text_query = (!terms.is_empty()).then(|| <$db as Dialect>::text_query(&terms));
                let mut qb = QueryBuilder::<$db>::new(format!("SELECT {RECORD_COLUMNS}"));
                let ranked = opts.sort == SortKey::Relevance && text_query.is_some();
                if let (true, Some(tq)) = (ranked, &text_query) {
                    qb.push(" LEFT JOIN (SELECT hash, max(score) AS score FROM ");
                    <$db as Dialect>::push_text_hits(&mut qb, tq.clone());
                    qb.push(" h GROUP BY hash) r ON r.hash = f.hash");
                }
                qb.push(" WHERE ");
                sql::push_expr(&mut qb, q, &self.visible);
                let col = match opts.sort {
                    SortKey::Name => "f.name_lower",
                    SortKey::Size => "f.size",
                    SortKey::Mime => "b.mime",
                    SortKey::Created => "f.created",
                    SortKey::Modified => "f.modified",
                    // Files matched only by a term other than text (`text:a OR b`) come last.
                    SortKey::Relevance if ranked => "r.score IS NULL, r.score",
                    SortKey::Relevance => "f.modified",
                };
                let dir = if opts.descending { "DESC" } else { "ASC" };
                qb.push(format!(" ORDER BY {col} {dir}, f.id {dir} LIMIT "))
                    .push_bind(opts.limit as i64)
                    .push(" OFFSET ")
                    .push_bind(opts.offset.min(i64::MAX as u64) as i64);
                let rows: Vec<RecordRow> =
                    qb.build_query_as().fetch_all(&self.queries).await?;
                // The page tells the total when it is not full (and not empty past the end):
                // the count, a second pass over every match, runs only when it has more to say.
                let total = if (rows.len() as u64) < opts.limit as u64
                    && (!rows.is_empty() || opts.offset == 0)
                {
                    opts.offset + rows.len() as u64
                } else {
                    let mut count = QueryBuilder::<$db>::new(
                        "SELECT count(*) FROM files f JOIN blobs b ON b.hash = f.hash WHERE ",
                    );
                    sql::push_expr(&mut count, q, &self.visible);
                    let n: i64 = count.build_query_scalar().fetch_one(&self.queries).await?;
                    n as u64
                };
                let mut records = self
                    .with_tags(&self.queries, rows.into_iter().map(FileRecord::from).collect())
                    .await?;
                if let Some(tq) = text_query {
                    self.attach_snippets(&mut records, tq).await?;
                }
                Ok((records, total))
            }

            async fn add_user_tags(
                &self,
                id: &str,
                tags: &[String],
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(id).await?;
                for tag_id in Self::tag_ids(&mut tx, tags).await? {
                    Self::set_file_tag(&mut tx, id, tag_id, FileTagRow::User, now).await?;
                }
                tx.commit().await?;
                self.get_file(id).await
            }

            async fn remove_tags(
                &self,
                id: &str,
                tags: &[String],
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(id).await?;
                for name in tags {
                    let Some(tag_id): Option<i64> =
                        sqlx::query_scalar("SELECT id FROM tags WHERE name = $1")
                            .bind(name)
                            .fetch_optional(&mut *tx)
                            .await?
                    else {
                        continue;
                    };
                    let has_auto: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM files f JOIN blob_tags bt ON bt.hash = f.hash WHERE f.id = $1 AND bt.tag_id = $2)",
                    )
                    .bind(id)
                    .bind(tag_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if has_auto {
                        Self::set_file_tag(&mut tx, id, tag_id, FileTagRow::Hidden, now).await?;
                    } else {
                        sqlx::query("DELETE FROM file_tags WHERE file_id = $1 AND tag_id = $2")
                            .bind(id)
                            .bind(tag_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                self.get_file(id).await
            }

            async fn subfolders(&self, parent: &FolderPath) -> Result<Vec<String>, StoreError> {
                let paths: Vec<String> = sqlx::query_scalar(
                    "SELECT path FROM folders WHERE parent = $1 ORDER BY path",
                )
                .bind(parent.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(paths
                    .into_iter()
                    .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
                    .collect())
            }

            async fn folder_exists(&self, path: &FolderPath) -> Result<bool, StoreError> {
                if path.is_root() {
                    return Ok(true);
                }
                Ok(
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM folders WHERE path = $1)")
                        .bind(path.as_str())
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn make_folder(&self, path: &FolderPath) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let made = Self::ensure_folder(&mut tx, path, now_ms()).await?;
                tx.commit().await?;
                Ok(made)
            }

            async fn remove_folder(&self, path: &FolderPath) -> Result<(), StoreError> {
                if path.is_root() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM folders WHERE path = ");
                qb.push_bind(path.as_str().to_owned()).push(" OR ");
                <$db as Dialect>::push_starts_with(&mut qb, "path", format!("{}/", path.as_str()));
                qb.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn folder_files(
                &self,
                folder: &FolderPath,
                limit: u32,
            ) -> Result<Vec<FileRecord>, StoreError> {
                let rows: Vec<RecordRow> = sqlx::query_as(&format!(
                    "SELECT {RECORD_COLUMNS} WHERE f.folder = $1 ORDER BY f.id LIMIT $2"
                ))
                .bind(folder.as_str())
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                self.with_tags(&self.pool, rows.into_iter().map(FileRecord::from).collect())
                    .await
            }

            async fn move_file(
                &self,
                id: &str,
                folder: &FolderPath,
                name: &FileName,
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(id).await?;
                sqlx::query("UPDATE files SET folder = $1, name = $2, name_lower = $3 WHERE id = $4")
                    .bind(folder.as_str())
                    .bind(name.as_str())
                    .bind(name.to_lowercase())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::ensure_folder(&mut tx, folder, now).await?;
                tx.commit().await?;
                self.get_file(id).await
            }

            async fn related(&self, id: &str, limit: u32) -> Result<Vec<Related>, StoreError> {
                // Existence check gives a 404 rather than an empty list for an unknown id.
                self.get_file(id).await?;
                let total: i64 = sqlx::query_scalar("SELECT count(*) FROM files")
                    .fetch_one(&self.queries)
                    .await?;
                let v = &self.visible;
                let rows: Vec<SharedRow> = sqlx::query_as(&format!(
                    "WITH mine AS (SELECT tag_id, weight FROM {v} x WHERE x.file_id = $1),
                          df AS (SELECT e.tag_id, count(*) AS n FROM edges e JOIN mine m ON m.tag_id = e.tag_id GROUP BY e.tag_id)
                     SELECT e.file_id, t.name, m.weight AS wa, e.weight AS wb, df.n AS n
                       FROM mine m
                       JOIN {v} e ON e.tag_id = m.tag_id AND e.file_id <> $1
                       JOIN tags t ON t.id = m.tag_id
                       JOIN df ON df.tag_id = m.tag_id
                      LIMIT $2"
                ))
                .bind(id)
                .bind(RELATED_SCAN_LIMIT)
                .fetch_all(&self.queries)
                .await?;
                let scored = rank_related(total as u64, rows, limit);
                let ids: Vec<String> = scored.iter().map(|s| s.0.clone()).collect();
                let records = self.records_by_ids(&self.queries, &ids).await?;
                Ok(related_with_records(scored, records))
            }

            async fn graph(&self, q: &Expr, limit: u32) -> Result<Graph, StoreError> {
                let limit = limit.max(1) as usize;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {GRAPH_FILE_COLUMNS} WHERE "
                ));
                sql::push_expr(&mut qb, q, &self.visible);
                // One more than can be drawn tells whether the limit cut anything.
                qb.push(" ORDER BY f.modified DESC, f.id DESC LIMIT ")
                    .push_bind(limit as i64 + 1);
                let files: Vec<GraphFileRow> =
                    qb.build_query_as().fetch_all(&self.queries).await?;
                let file_ids: Vec<String> =
                    files.iter().take(limit).map(|r| r.id.clone()).collect();
                let edges_by_file = self.tags_of(&self.queries, &file_ids).await?;
                let mut g = assemble_graph(files, edges_by_file, limit);
                let head = format!(
                    "SELECT t.name, count(*) AS n FROM {} e JOIN tags t ON t.id = e.tag_id WHERE t.name",
                    self.visible
                );
                let degrees =
                    Self::fetch_in(&self.queries, &head, &tag_names(&g), " GROUP BY t.name")
                        .await?;
                set_degrees(&mut g, degrees);
                Ok(g)
            }

            async fn tags(&self, prefix: &str, limit: u32) -> Result<Vec<TagCount>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT t.name, max(CASE WHEN e.kind = 'user' THEN 1 ELSE 0 END) = 1 AS user, count(DISTINCT e.file_id) AS n
                       FROM tags t JOIN {} e ON e.tag_id = t.id WHERE ",
                    self.visible
                ));
                <$db as Dialect>::push_starts_with(&mut qb, "t.name", prefix.to_lowercase());
                qb.push(" GROUP BY t.id, t.name ORDER BY n DESC, t.name LIMIT ")
                    .push_bind(limit as i64);
                let rows: Vec<TagCountRow> =
                    qb.build_query_as().fetch_all(&self.queries).await?;
                Ok(rows.into_iter().map(TagCount::from).collect())
            }

            async fn cooccurrence(&self, limit: u32) -> Result<Vec<CoOccurrence>, StoreError> {
                // Pairs among the CO_TAGS most frequent tags only: a pair is on at most as many
                // files as either of its tags, so the most frequent pairs are among them unless
                // a list is longer than the tags' long tail; and a file with 10,000 tags costs
                // CO_TAGS² pairs, not 10,000².
                let rows: Vec<PairRow> = sqlx::query_as(&format!(
                    "WITH v AS (SELECT file_id, tag_id FROM {} e),
                          top AS (SELECT tag_id FROM v GROUP BY tag_id ORDER BY count(*) DESC, tag_id LIMIT $2),
                          w AS (SELECT v.file_id, v.tag_id FROM v JOIN top ON top.tag_id = v.tag_id)
                     SELECT ta.name AS a, tb.name AS b, count(*) AS n
                       FROM w x JOIN w y ON x.file_id = y.file_id AND x.tag_id < y.tag_id
                       JOIN tags ta ON ta.id = x.tag_id JOIN tags tb ON tb.id = y.tag_id
                      GROUP BY x.tag_id, y.tag_id, ta.name, tb.name ORDER BY n DESC, a, b LIMIT $1",
                    self.visible
                ))
                .bind(limit as i64)
                .bind(CO_TAGS)
                .fetch_all(&self.queries)
                .await?;
                Ok(rows.into_iter().map(CoOccurrence::from).collect())
            }

            async fn stats(&self) -> Result<StoreStats, StoreError> {
                let (files, blobs, bytes, tags, edges): (i64, i64, i64, i64, i64) =
                    sqlx::query_as(
                        "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM blobs),
                                (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs),
                                (SELECT count(*) FROM tags), (SELECT count(*) FROM edges)",
                    )
                    .fetch_one(&self.pool)
                    .await?;
                Ok(StoreStats {
                    files: files as u64,
                    blobs: blobs as u64,
                    bytes: bytes as u64,
                    tags: tags as u64,
                    edges: edges as u64,
                })
            }

            async fn claim_job(&self, lease_ms: i64) -> Result<Option<Job>, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let lock = <$db as Dialect>::SKIP_LOCKED;
                let mut tx = self.begin_write().await?;
                // A job whose worker died holding it (lease expired) as often as it may be
                // tried is failed: its content likely kills workers.
                let dead: Vec<String> = sqlx::query_scalar(&format!(
                    "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = $1
                      WHERE state = 'running' AND lease_until < {now} AND attempts >= $2 RETURNING hash"
                ))
                .bind(DIED_ERROR)
                .bind(MAX_JOB_ATTEMPTS as i64)
                .fetch_all(&mut *tx)
                .await?;
                Self::tagging_failed(&mut tx, &dead).await?;
                // The row lock (PostgreSQL) makes concurrent claimers skip a job another one is
                // taking, rather than wait for it and take it too.
                let row: Option<(i64, String, i64)> = sqlx::query_as(&format!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = {now} + $1
                      WHERE id = (SELECT id FROM jobs
                                   WHERE (state = 'queued' AND run_after <= {now})
                                      OR (state = 'running' AND lease_until < {now})
                                   ORDER BY run_after, id LIMIT 1{lock})
                     RETURNING id, hash, attempts"
                ))
                .bind(lease_ms)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row.map(|(id, hash, attempts)| Job {
                    id,
                    hash,
                    attempts: attempts as u32,
                }))
            }

            async fn renew_job(&self, job: &Job, lease_ms: i64) -> Result<(), StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let n = sqlx::query(&format!(
                    "UPDATE jobs SET lease_until = {now} + $1 WHERE {HELD}"
                ))
                .bind(lease_ms)
                .bind(job.id)
                .bind(job.attempts as i64)
                .execute(&self.write)
                .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::LeaseLost(job.id));
                }
                Ok(())
            }

            async fn complete_job(&self, job: &Job, result: TagResult) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                // FOR UPDATE where there are row locks: a claimer that takes the job over once
                // its lease ran out waits for this transaction, and then finds it gone.
                let held: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT id FROM jobs WHERE {HELD}{}",
                    <$db as Dialect>::FOR_UPDATE
                ))
                .bind(0i64)
                .bind(job.id)
                .bind(job.attempts as i64)
                .fetch_optional(&mut *tx)
                .await?;
                if held.is_none() {
                    // The content was deleted while it was being tagged, or the lease ran out
                    // and another worker holds the job now: its result is the one kept.
                    return Ok(());
                }
                sqlx::query("DELETE FROM blob_tags WHERE hash = $1")
                    .bind(&job.hash)
                    .execute(&mut *tx)
                    .await?;
                let names: Vec<String> = result.tags.iter().map(|t| t.name.clone()).collect();
                let ids = Self::tag_ids(&mut tx, &names).await?;
                for (t, tag_id) in result.tags.iter().zip(ids) {
                    sqlx::query(
                        "INSERT INTO blob_tags (hash, tag_id, extractor, version, weight) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (hash, tag_id) DO UPDATE SET weight =
                           CASE WHEN excluded.weight > blob_tags.weight THEN excluded.weight ELSE blob_tags.weight END",
                    )
                    .bind(&job.hash)
                    .bind(tag_id)
                    .bind(&t.extractor)
                    .bind(t.version as i64)
                    .bind(t.confidence.clamp(0.0, 1.0))
                    .execute(&mut *tx)
                    .await?;
                }
                Self::set_text(&mut tx, &job.hash, &result.text).await?;
                let (fields, versions) = result_json(&result)?;
                sqlx::query(
                    "UPDATE blobs SET mime = $1, kind = $2, fields = $3, extractor_versions = $4, tagging = 'done' WHERE hash = $5",
                )
                .bind(&result.mime)
                .bind(result.kind.as_str())
                .bind(fields)
                .bind(versions)
                .bind(&job.hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM jobs WHERE id = $1")
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn fail_job(
                &self,
                job: &Job,
                error: &str,
                max_attempts: u32,
            ) -> Result<(), StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let mut tx = self.begin_write().await?;
                let failed = job.attempts >= max_attempts;
                // Only while this worker holds the job: one whose lease ran out belongs to
                // whoever claimed it since.
                let n = if failed {
                    sqlx::query(&format!(
                        "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = $1 WHERE {HELD}"
                    ))
                    .bind(error)
                    .bind(job.id)
                    .bind(job.attempts as i64)
                    .execute(&mut *tx)
                    .await?
                } else {
                    sqlx::query(&format!(
                        "UPDATE jobs SET state = 'queued', lease_until = NULL, last_error = $4,
                                run_after = {now} + $1 WHERE {HELD}"
                    ))
                    .bind(RETRY_BACKOFF_MS * job.attempts as i64)
                    .bind(job.id)
                    .bind(job.attempts as i64)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?
                };
                if failed && n.rows_affected() > 0 {
                    Self::tagging_failed(&mut tx, std::slice::from_ref(&job.hash)).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn recover_jobs(&self) -> Result<u64, StoreError> {
                if !<$db as Dialect>::SINGLE_OWNER {
                    // Shared by many processes: a running job may be another live worker's, so
                    // only its lease running out gives it back.
                    return Ok(0);
                }
                // One process owns the database, so whatever is `running` now was left by a
                // previous run: expire the leases, and the next claim re-queues (or fails, if
                // tried too often) them.
                let r = sqlx::query("UPDATE jobs SET lease_until = 0 WHERE state = 'running'")
                    .execute(&self.write)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn enqueue_retag(&self, which: Retag) -> Result<u64, StoreError> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT hash, extractor_versions FROM blobs")
                        .fetch_all(&self.pool)
                        .await?;
                let mut n = 0;
                let mut tx = self.begin_write().await?;
                for (hash, versions) in rows {
                    if !which.is_due(&stored_versions(&versions)) {
                        continue;
                    }
                    Self::queue_tagging(&mut tx, &hash).await?;
                    sqlx::query("UPDATE blobs SET tagging = 'pending' WHERE hash = $1")
                        .bind(&hash)
                        .execute(&mut *tx)
                        .await?;
                    n += 1;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn job_stats(&self) -> Result<JobStats, StoreError> {
                let (queued, running, failed): (i64, i64, i64) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running'),
                            count(*) FILTER (WHERE state = 'failed') FROM jobs",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(JobStats {
                    queued: queued as u64,
                    running: running as u64,
                    failed: failed as u64,
                })
            }

            async fn create_upload(
                &self,
                row: &UploadRow,
                max_live: u64,
            ) -> Result<(), StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let mut tx = self.begin_write().await?;
                let live: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM uploads WHERE file_id IS NULL")
                        .fetch_one(&mut *tx)
                        .await?;
                if live as u64 >= max_live {
                    return Err(StoreError::Busy(format!(
                        "{max_live} uploads are in progress; finish or cancel some first"
                    )));
                }
                sqlx::query(&format!(
                    "INSERT INTO uploads (id, length, name, metadata, updated) VALUES ($1, $2, $3, $4, {now})"
                ))
                .bind(&row.id)
                .bind(row.length as i64)
                .bind(&row.name)
                .bind(&row.metadata)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_upload(&self, id: &str) -> Result<UploadRow, StoreError> {
                let row: Option<(String, i64, String, String, i64, Option<String>)> =
                    sqlx::query_as(
                        "SELECT id, length, name, metadata, upload_offset, file_id FROM uploads WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                let (id, length, name, metadata, offset, file_id) =
                    row.ok_or_else(|| StoreError::NotFound(format!("upload {id}")))?;
                Ok(UploadRow {
                    id,
                    length: length as u64,
                    name,
                    metadata,
                    offset: offset as u64,
                    file_id,
                })
            }

            async fn lock_upload(
                &self,
                id: &str,
                token: &str,
                lease_ms: i64,
            ) -> Result<bool, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let n = sqlx::query(&format!(
                    "UPDATE uploads SET lock_token = $2, lock_until = {now} + $3
                      WHERE id = $1 AND (lock_token IS NULL OR lock_token = $2 OR lock_until < {now})"
                ))
                .bind(id)
                .bind(token)
                .bind(lease_ms)
                .execute(&self.write)
                .await?;
                if n.rows_affected() == 1 {
                    return Ok(true);
                }
                // Held by another, or gone: say which.
                self.get_upload(id).await.map(|_| false)
            }

            async fn unlock_upload(&self, id: &str, token: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE uploads SET lock_token = NULL, lock_until = NULL WHERE id = $1 AND lock_token = $2",
                )
                .bind(id)
                .bind(token)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn add_upload_part(
                &self,
                id: &str,
                token: &str,
                part: &UploadPart,
            ) -> Result<bool, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(&format!(
                    "UPDATE uploads SET upload_offset = upload_offset + $4, updated = {now}
                      WHERE id = $1 AND lock_token = $2 AND upload_offset = $3 AND file_id IS NULL"
                ))
                .bind(id)
                .bind(token)
                .bind(part.start as i64)
                .bind(part.len as i64)
                .execute(&mut *tx)
                .await?;
                if n.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query("INSERT INTO upload_parts (upload_id, start, len, key) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(part.start as i64)
                    .bind(part.len as i64)
                    .bind(&part.key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn upload_parts(&self, id: &str) -> Result<Vec<UploadPart>, StoreError> {
                let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                    "SELECT start, len, key FROM upload_parts WHERE upload_id = $1 ORDER BY start",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(start, len, key)| UploadPart {
                        start: start as u64,
                        len: len as u64,
                        key,
                    })
                    .collect())
            }

            async fn finish_upload(
                &self,
                id: &str,
                token: &str,
                file_id: &str,
            ) -> Result<Vec<String>, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(&format!(
                    "UPDATE uploads SET file_id = $3, updated = {now} WHERE id = $1 AND lock_token = $2"
                ))
                .bind(id)
                .bind(token)
                .bind(file_id)
                .execute(&mut *tx)
                .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::Locked(format!(
                        "upload {id} is no longer held by this request"
                    )));
                }
                let keys: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM upload_parts WHERE upload_id = $1 RETURNING key",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(keys)
            }

            async fn delete_upload(&self, id: &str, token: &str) -> Result<Vec<String>, StoreError> {
                let mut tx = self.begin_write().await?;
                let keys: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM upload_parts WHERE upload_id = $1
                        AND EXISTS (SELECT 1 FROM uploads WHERE id = $1 AND lock_token = $2) RETURNING key",
                )
                .bind(id)
                .bind(token)
                .fetch_all(&mut *tx)
                .await?;
                let n = sqlx::query("DELETE FROM uploads WHERE id = $1 AND lock_token = $2")
                    .bind(id)
                    .bind(token)
                    .execute(&mut *tx)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::Locked(format!(
                        "upload {id} is no longer held by this request"
                    )));
                }
                tx.commit().await?;
                Ok(keys)
            }

            async fn idle_uploads(&self, idle_ms: i64) -> Result<Vec<String>, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                Ok(sqlx::query_scalar(&format!(
                    "SELECT id FROM uploads WHERE updated < {now} - $1 LIMIT 1000"
                ))
                .bind(idle_ms)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn live_uploads(&self) -> Result<u64, StoreError> {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM uploads WHERE file_id IS NULL")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(n as u64)
            }

            async fn blob_refs(&self) -> Result<Vec<BlobRefs>, StoreError> {
                let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT b.hash, b.size, b.refs, (SELECT count(*) FROM files f WHERE f.hash = b.hash)
                       FROM blobs b ORDER BY b.hash",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(hash, size, refs, files)| BlobRefs {
                        hash,
                        size: size as u64,
                        refs,
                        files,
                    })
                    .collect())
            }

            async fn blob_known(&self, hash: &str) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE hash = $1")
                    .bind(hash)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n > 0)
            }

            async fn fix_refs(&self, hash: &str) -> Result<Option<String>, StoreError> {
                let mut tx = self.begin_write().await?;
                let files: i64 = sqlx::query_scalar("SELECT count(*) FROM files WHERE hash = $1")
                    .bind(hash)
                    .fetch_one(&mut *tx)
                    .await?;
                let gone = if files == 0 {
                    Self::forget_blob(&mut tx, hash).await?;
                    Some(hash.to_owned())
                } else {
                    sqlx::query("UPDATE blobs SET refs = $1 WHERE hash = $2")
                        .bind(files)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                    None
                };
                tx.commit().await?;
                Ok(gone)
            }
        }
    };
}

/// The condition that a worker still holds job `$2` at attempt `$3` (the attempt is the lease's
/// fencing token: a claim after the lease ran out raises it). `$1` is the statement's own.
const HELD: &str = "id = $2 AND attempts = $3 AND state = 'running'";

use crate::assemble::*;
use crate::meta::*;
use async_trait::async_trait;
use disgrafs_core::query::Expr;
use disgrafs_core::{
    CoOccurrence, FileName, FileRecord, FolderPath, Graph, Related, TagCount, TagRef, TaggingState,
};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use std::collections::HashMap;

impl_meta!(Sqlite);
impl_meta!(Postgres);

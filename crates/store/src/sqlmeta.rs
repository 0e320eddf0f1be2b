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
use crate::sql::{self, COUNT_BASIS, Dialect};
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
    /// The edges that are shown, a relation for `FROM` ([`sql::VisibleEdges`]).
    pub(crate) visible: sql::VisibleEdges,
    /// The threshold, for the per-tag counts' `shown` column.
    pub(crate) min_confidence: f64,
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
            visible: sql::VisibleEdges::new(min_confidence),
            min_confidence,
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
                let mut rows = Vec::new();
                for chunk in ids.chunks(IN_LIST_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {EDGE_COLUMNS} FROM "));
                    self.visible.push(&mut qb, |qb, arm| {
                        qb.push(format!("{} IN (", arm.file));
                        sql::push_list(qb, chunk);
                    });
                    qb.push(" e JOIN tags t ON t.id = e.tag_id");
                    rows.extend(qb.build_query_as::<EdgeRow>().fetch_all(pool).await?);
                }
                Ok(tags_by_file(rows))
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

            /// Adds `sign` (1 or -1) times the edges of the files `files_cond` names (a condition
            /// on a file id column, `{}` standing for the column and `$1` for `bind`) to the
            /// per-tag counts: called with -1 before a change of those files' edges and with 1
            /// after it, in the change's transaction.
            async fn count_edges(
                tx: &mut <$db as Database>::Connection,
                files_cond: &str,
                bind: &str,
                sign: i64,
            ) -> Result<(), StoreError> {
                let every = sql::VisibleEdges::every()
                    .sql(|arm| files_cond.replace("{}", arm.file));
                sqlx::query(&format!(
                    "INSERT INTO tag_counts (tag_id, files, shown)
                     SELECT e.tag_id, $2 * count(*), $2 * count(*) FILTER (WHERE e.weight >= {COUNT_BASIS})
                       FROM {every} e WHERE TRUE GROUP BY e.tag_id
                     ON CONFLICT (tag_id) DO UPDATE SET files = tag_counts.files + excluded.files,
                        shown = tag_counts.shown + excluded.shown"
                ))
                .bind(bind)
                .bind(sign)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            /// Makes the per-tag counts those of this store's threshold: recounted from every
            /// edge when another threshold (or none) was recorded, as when the counts were
            /// added to an existing store. Run when a store opens for writing.
            pub(crate) async fn prepare_counts(&self) -> Result<(), StoreError> {
                let basis: Option<f64> =
                    sqlx::query_scalar("SELECT min_confidence FROM tag_counts_basis WHERE id = 1")
                        .fetch_optional(&self.write)
                        .await?;
                if basis == Some(self.min_confidence) {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO tag_counts_basis (id, min_confidence) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET min_confidence = excluded.min_confidence",
                )
                .bind(self.min_confidence)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM tag_counts").execute(&mut *tx).await?;
                let every = sql::VisibleEdges::every().sql(|_| "TRUE".into());
                sqlx::query(&format!(
                    "INSERT INTO tag_counts (tag_id, files, shown)
                     SELECT e.tag_id, count(*), count(*) FILTER (WHERE e.weight >= {COUNT_BASIS})
                       FROM {every} e GROUP BY e.tag_id"
                ))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            /// The files of a query that is one tag, from the per-tag counts (when they were
            /// counted at this store's threshold): a hub's total without reading its files.
            async fn tag_total(&self, who: &Viewer, q: &Expr) -> Result<Option<u64>, StoreError> {
                let (Viewer::All, Expr::Pred(Predicate::Tag(name))) = (who, q) else {
                    return Ok(None);
                };
                let n: Option<i64> = sqlx::query_scalar(
                    "SELECT c.shown FROM tags t JOIN tag_counts c ON c.tag_id = t.id
                       JOIN tag_counts_basis bs ON bs.id = 1
                      WHERE t.name = $1 AND bs.min_confidence = $2",
                )
                .bind(name)
                .bind(self.min_confidence)
                .fetch_optional(&self.queries)
                .await?;
                Ok(n.map(|n| n as u64))
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
                who: &Viewer,
                id: &str,
            ) -> Result<(sqlx::Transaction<'static, $db>, i64), StoreError> {
                let mut tx = self.begin_write().await?;
                let now = now_ms();
                let mine = sql::writable(who, "files");
                let n = sqlx::query(&format!("UPDATE files SET modified = $1 WHERE id = $2 AND {mine}"))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("file {id}")));
                }
                Self::count_edges(&mut tx, ONE_FILE, id, -1).await?;
                Ok((tx, now))
            }

            /// Ends a change begun by [`Self::begin_tag_edit`]: counts the file's edges again,
            /// commits, and returns the record.
            async fn end_tag_edit(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                id: &str,
            ) -> Result<FileRecord, StoreError> {
                Self::count_edges(&mut tx, ONE_FILE, id, 1).await?;
                tx.commit().await?;
                self.get_file(&Viewer::All, id).await
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
                // The tags whose count fell to nothing (found by the counts' index, not by a scan
                // of every tag), if nothing else names them.
                sqlx::query(
                    "DELETE FROM tags WHERE id IN (SELECT tag_id FROM tag_counts WHERE files <= 0)
                     AND NOT EXISTS (SELECT 1 FROM blob_tags WHERE tag_id = tags.id)
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

            /// Makes `path` and its ancestors exist, the new ones `owner`'s; true when `path`
            /// itself is new.
            async fn ensure_folder(
                tx: &mut <$db as Database>::Connection,
                path: &FolderPath,
                owner: Option<i64>,
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
                    let new_row = sqlx::query(
                        "INSERT INTO folders (path, parent, created) VALUES ($1, $2, $3) ON CONFLICT (path) DO NOTHING",
                    )
                    .bind(&here)
                    .bind(&parent)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    made = match owner {
                        Some(u) => {
                            sqlx::query(
                                "INSERT INTO folder_claims (path, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                            )
                            .bind(&here)
                            .bind(u)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                                > 0
                        }
                        None => new_row,
                    };
                    parent = here;
                }
                Ok(made)
            }

            /// Counts `size` more bytes to `owner`'s records, or refuses them over the quota
            /// ([`Usage::admit`]). The user's row is locked to the end of `tx`, so two uploads
            /// of one user cannot both take the last room.
            async fn charge(
                tx: &mut <$db as Database>::Connection,
                owner: i64,
                size: u64,
            ) -> Result<(), StoreError> {
                let lock = <$db as Dialect>::FOR_UPDATE;
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(&format!(
                    "SELECT used, quota FROM users WHERE id = $1{lock}"
                ))
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = row {
                    usage_of(row).admit(size)?;
                    sqlx::query("UPDATE users SET used = used + $2 WHERE id = $1")
                        .bind(owner)
                        .bind(size as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(())
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
            async fn close(&self) {
                self.queries.close().await;
                self.pool.close().await;
                self.write.close().await;
            }

            async fn insert_file(&self, new: NewFile<'_>) -> Result<FileRecord, StoreError> {
                let id = uuid::Uuid::now_v7().to_string();
                let now = now_ms();
                let mut tx = self.begin_write().await?;
                if let Some(owner) = new.owner {
                    Self::charge(&mut tx, owner, new.size).await?;
                }
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
                    "INSERT INTO files (id, name, name_lower, folder, hash, size, created, modified, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&id)
                .bind(new.name.as_str())
                .bind(new.name.to_lowercase())
                .bind(new.folder.as_str())
                .bind(new.hash)
                .bind(new.size as i64)
                .bind(now)
                .bind(now)
                .bind(new.owner)
                .execute(&mut *tx)
                .await?;
                Self::ensure_folder(&mut tx, &new.folder, new.owner, now).await?;
                for tag_id in Self::tag_ids(&mut tx, &new.folder.tags()).await? {
                    Self::set_file_tag(&mut tx, &id, tag_id, FileTagRow::User, now).await?;
                }
                Self::count_edges(&mut tx, ONE_FILE, &id, 1).await?;
                if refs == 1 && tagging != TaggingState::Done.as_str() {
                    Self::queue_tagging(&mut tx, new.hash).await?;
                }
                tx.commit().await?;
                self.get_file(&Viewer::All, &id).await
            }

            async fn get_file(&self, who: &Viewer, id: &str) -> Result<FileRecord, StoreError> {
                let seen = sql::file_visible(who, "f");
                let row: RecordRow =
                    sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} WHERE f.id = $1 AND {seen}"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
                Ok(self.with_tags(&self.pool, vec![row.into()]).await?.remove(0))
            }

            async fn get_content(&self, who: &Viewer, id: &str) -> Result<FileContent, StoreError> {
                let seen = sql::file_visible(who, "f");
                let (name, hash, size, mime): (String, String, i64, String) = sqlx::query_as(&format!(
                    "SELECT f.name, f.hash, f.size, b.mime FROM files f JOIN blobs b ON b.hash = f.hash WHERE f.id = $1 AND {seen}",
                ))
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

            async fn delete_file(&self, who: &Viewer, id: &str) -> Result<Option<String>, StoreError> {
                let mut tx = self.begin_write().await?;
                Self::count_edges(&mut tx, ONE_FILE, id, -1).await?;
                let mine = sql::writable(who, "files");
                let (hash, size, owner): (String, i64, Option<i64>) = sqlx::query_as(&format!(
                    "DELETE FROM files WHERE id = $1 AND {mine} RETURNING hash, size, owner"
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
                if let Some(owner) = owner {
                    sqlx::query(
                        "UPDATE users SET used = CASE WHEN used > $2 THEN used - $2 ELSE 0 END WHERE id = $1",
                    )
                    .bind(owner)
                    .bind(size)
                    .execute(&mut *tx)
                    .await?;
                }
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
                who: &Viewer,
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
                let seen = sql::file_visible(who, "f");
                qb.push(" WHERE (");
                sql::push_expr(&mut qb, q, &self.visible);
                qb.push(format!(") AND {seen}"));
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
                } else if let Some(n) = self.tag_total(who, q).await? {
                    n
                } else {
                    let mut count = QueryBuilder::<$db>::new(
                        "SELECT count(*) FROM files f JOIN blobs b ON b.hash = f.hash WHERE (",
                    );
                    sql::push_expr(&mut count, q, &self.visible);
                    count.push(format!(") AND {seen}"));
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
                who: &Viewer,
                id: &str,
                tags: &[String],
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(who, id).await?;
                for tag_id in Self::tag_ids(&mut tx, tags).await? {
                    Self::set_file_tag(&mut tx, id, tag_id, FileTagRow::User, now).await?;
                }
                self.end_tag_edit(tx, id).await
            }

            async fn remove_tags(
                &self,
                who: &Viewer,
                id: &str,
                tags: &[String],
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(who, id).await?;
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
                self.end_tag_edit(tx, id).await
            }

            async fn subfolders(
                &self,
                who: &Viewer,
                parent: &FolderPath,
            ) -> Result<Vec<String>, StoreError> {
                let shown = sql::folder_shown(who, "fo");
                let paths: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT path FROM folders fo WHERE parent = $1 AND {shown} ORDER BY path",
                ))
                .bind(parent.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(paths
                    .into_iter()
                    .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
                    .collect())
            }

            async fn folder_exists(
                &self,
                who: &Viewer,
                path: &FolderPath,
            ) -> Result<bool, StoreError> {
                if path.is_root() {
                    return Ok(true);
                }
                let shown = sql::folder_shown(who, "fo");
                Ok(sqlx::query_scalar(&format!(
                    "SELECT EXISTS (SELECT 1 FROM folders fo WHERE fo.path = $1 AND {shown})"
                ))
                .bind(path.as_str())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn make_folder(
                &self,
                who: &Viewer,
                path: &FolderPath,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let made = Self::ensure_folder(&mut tx, path, who.user(), now_ms()).await?;
                tx.commit().await?;
                Ok(made)
            }

            async fn remove_folder(&self, who: &Viewer, path: &FolderPath) -> Result<(), StoreError> {
                if path.is_root() {
                    return Ok(());
                }
                let (p, mut tx) = (path.as_str().to_owned(), self.begin_write().await?);
                // The remover's claims go (every claim, for a viewer of everything); then the
                // rows inside that no other claim and no file (at any depth) keeps.
                let mine = sql::owned_by(who, "user_id");
                let under = sql::in_folder("path", "CAST($1 AS TEXT)");
                sqlx::query(&format!("DELETE FROM folder_claims WHERE {mine} AND {under}"))
                    .bind(&p)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "DELETE FROM folders WHERE {} AND NOT EXISTS (SELECT 1 FROM folder_claims c WHERE {}) \
                     AND NOT EXISTS (SELECT 1 FROM files f WHERE {})",
                    sql::in_folder("folders.path", "CAST($1 AS TEXT)"),
                    sql::in_folder("c.path", "folders.path"),
                    sql::in_folder("f.folder", "folders.path"),
                ))
                .bind(&p)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn entries(
                &self,
                who: &Viewer,
                scope: EntryScope<'_>,
                name_prefix: Option<&str>,
                newest_first: bool,
                limit: u32,
            ) -> Result<Vec<FileEntry>, StoreError> {
                let dir = if newest_first { "DESC" } else { "ASC" };
                let fields = |t: &str| ENTRY_COLUMNS.map(|c| format!("{t}.{c}")).join(", ");
                let rows = <$db as Dialect>::json_rows(&fields("x"));
                // The content's columns only for a query that reads them.
                let blobs = match scope {
                    EntryScope::Query(q) if sql::reads_blobs(q) => " JOIN blobs b ON b.hash = f.hash",
                    _ => "",
                };
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {rows} FROM (SELECT {} FROM files f{blobs} WHERE ",
                    fields("f")
                ));
                // A folder's listing reads the folder's rows (a folder is not a query's
                // predicate); a query's goes through the query pool and its budget.
                let pool = match scope {
                    EntryScope::Folder(folder) => {
                        qb.push("f.folder = ").push_bind(folder.as_str().to_owned());
                        &self.pool
                    }
                    EntryScope::Query(q) => {
                        qb.push("(");
                        sql::push_expr(&mut qb, q, &self.visible);
                        qb.push(")");
                        &self.queries
                    }
                };
                if let Some(prefix) = name_prefix {
                    qb.push(" AND ");
                    <$db as Dialect>::push_starts_with(&mut qb, "f.name_lower", prefix.to_owned());
                }
                qb.push(format!(
                    " AND {} ORDER BY f.created {dir}, f.id {dir} LIMIT ",
                    sql::file_visible(who, "f")
                ))
                .push_bind(limit as i64)
                .push(") x");
                let json: String = qb.build_query_scalar().fetch_one(pool).await?;
                crate::assemble::entries_from_json(&json, newest_first)
            }

            async fn move_file(
                &self,
                who: &Viewer,
                id: &str,
                folder: &FolderPath,
                name: &FileName,
            ) -> Result<FileRecord, StoreError> {
                let (mut tx, now) = self.begin_tag_edit(who, id).await?;
                sqlx::query("UPDATE files SET folder = $1, name = $2, name_lower = $3 WHERE id = $4")
                    .bind(folder.as_str())
                    .bind(name.as_str())
                    .bind(name.to_lowercase())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::ensure_folder(&mut tx, folder, who.user(), now).await?;
                self.end_tag_edit(tx, id).await
            }

            async fn related(
                &self,
                who: &Viewer,
                id: &str,
                limit: u32,
            ) -> Result<Vec<Related>, StoreError> {
                // Existence check gives a 404 rather than an empty list for an unknown id.
                self.get_file(who, id).await?;
                let seen = sql::file_visible(who, "f");
                let counts = sql::tag_counts(who, self.min_confidence);
                let total: i64 =
                    sqlx::query_scalar(&format!("SELECT count(*) FROM files f WHERE {seen}"))
                        .fetch_one(&self.queries)
                        .await?;
                // The file's tags, rarest first, as long as the files carrying the tags taken
                // so far are fewer than RELATED_SCAN_LIMIT: neighbours are found through the
                // tags that tell files apart, and a hub carried by half the store is read only
                // when the file has nothing rarer (and then only RELATED_SCAN_LIMIT rows of it).
                let mine = self.visible.sql(|arm| format!("{} = $1", arm.file));
                let theirs = self.visible.sql(|arm| {
                    format!(
                        "{} IN (SELECT tag_id FROM picked) AND {}",
                        arm.tag,
                        sql::visible_ids(who, arm.file)
                    )
                });
                let rows: Vec<SharedRow> = sqlx::query_as(&format!(
                    "WITH mine AS (SELECT x.tag_id, x.weight, c.files AS n FROM {mine} x
                                     JOIN {counts} c ON c.tag_id = x.tag_id),
                          ranked AS (SELECT tag_id, weight, n,
                                            sum(n) OVER (ORDER BY n, tag_id ROWS UNBOUNDED PRECEDING) - n AS before
                                       FROM mine),
                          picked AS (SELECT tag_id, weight, n FROM ranked WHERE before < $2)
                     SELECT e.file_id, t.name, p.weight AS wa, e.weight AS wb, p.n AS n
                       FROM picked p
                       JOIN {theirs} e ON e.tag_id = p.tag_id
                       JOIN tags t ON t.id = p.tag_id
                      WHERE e.file_id <> $1
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

            async fn graph(&self, who: &Viewer, q: &Expr, limit: u32) -> Result<Graph, StoreError> {
                let limit = limit.max(1) as usize;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {GRAPH_FILE_COLUMNS} WHERE ("
                ));
                sql::push_expr(&mut qb, q, &self.visible);
                qb.push(format!(") AND {}", sql::file_visible(who, "f")));
                // One more than can be drawn tells whether the limit cut anything.
                qb.push(" ORDER BY f.modified DESC, f.id DESC LIMIT ")
                    .push_bind(limit as i64 + 1);
                let files: Vec<GraphFileRow> =
                    qb.build_query_as().fetch_all(&self.queries).await?;
                let file_ids: Vec<String> =
                    files.iter().take(limit).map(|r| r.id.clone()).collect();
                let edges_by_file = self.tags_of(&self.queries, &file_ids).await?;
                let mut g = assemble_graph(files, edges_by_file, limit);
                let counts = sql::tag_counts(who, self.min_confidence);
                let degrees = Self::fetch_in(
                    &self.queries,
                    &format!("SELECT t.name, c.shown AS n FROM tags t JOIN {counts} c ON c.tag_id = t.id WHERE t.name"),
                    &tag_names(&g),
                    "",
                )
                .await?;
                set_degrees(&mut g, degrees);
                Ok(g)
            }

            async fn tags(
                &self,
                who: &Viewer,
                prefix: &str,
                limit: u32,
            ) -> Result<Vec<TagCount>, StoreError> {
                // A file has one edge of a tag at most, so the tag's shown edges are its files.
                let counts = sql::tag_counts(who, self.min_confidence);
                let mine = sql::visible_ids(who, "ft.file_id");
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT t.name, EXISTS (SELECT 1 FROM file_tags ft WHERE ft.tag_id = t.id AND ft.hidden = 0 AND {mine}) AS user,
                            c.shown AS n
                       FROM tags t JOIN {counts} c ON c.tag_id = t.id WHERE c.shown > 0 AND ",
                ));
                <$db as Dialect>::push_starts_with(&mut qb, "t.name", prefix.to_lowercase());
                qb.push(" ORDER BY n DESC, t.name LIMIT ")
                    .push_bind(limit as i64);
                let rows: Vec<TagCountRow> =
                    qb.build_query_as().fetch_all(&self.queries).await?;
                Ok(rows.into_iter().map(TagCount::from).collect())
            }

            async fn cooccurrence(
                &self,
                who: &Viewer,
                limit: u32,
            ) -> Result<Vec<CoOccurrence>, StoreError> {
                // Pairs among the CO_TAGS most frequent tags only: a pair is on at most as many
                // files as either of its tags, so the most frequent pairs are among them unless
                // a list is longer than the tags' long tail; and a file with 10,000 tags costs
                // CO_TAGS² pairs, not 10,000².
                let top = self.visible.sql(|arm| {
                    format!(
                        "{} IN (SELECT tag_id FROM top) AND {}",
                        arm.tag,
                        sql::visible_ids(who, arm.file)
                    )
                });
                let counts = sql::tag_counts(who, self.min_confidence);
                let rows: Vec<PairRow> = sqlx::query_as(&format!(
                    "WITH top AS (SELECT tag_id FROM {counts} c WHERE shown > 0 ORDER BY shown DESC, tag_id LIMIT $2),
                          w AS (SELECT e.file_id, e.tag_id FROM {top} e)
                     SELECT ta.name AS a, tb.name AS b, count(*) AS n
                       FROM w x JOIN w y ON x.file_id = y.file_id AND x.tag_id < y.tag_id
                       JOIN tags ta ON ta.id = x.tag_id JOIN tags tb ON tb.id = y.tag_id
                      GROUP BY x.tag_id, y.tag_id, ta.name, tb.name ORDER BY n DESC, a, b LIMIT $1"
                ))
                .bind(limit as i64)
                .bind(CO_TAGS)
                .fetch_all(&self.queries)
                .await?;
                Ok(rows.into_iter().map(CoOccurrence::from).collect())
            }

            async fn stats(&self, who: &Viewer) -> Result<StoreStats, StoreError> {
                // Everything's from the tables and the kept counts; another viewer's from its
                // files, their contents and the tags they carry.
                let (blobs, tags) = match who {
                    Viewer::All => ("blobs".to_owned(), "tags".to_owned()),
                    Viewer::User(_) => (
                        format!(
                            "(SELECT * FROM blobs b WHERE b.hash IN (SELECT f.hash FROM files f WHERE {}))",
                            sql::file_visible(who, "f")
                        ),
                        sql::tag_counts(who, self.min_confidence),
                    ),
                };
                let seen = sql::file_visible(who, "f");
                let counts = sql::tag_counts(who, self.min_confidence);
                let (files, blobs, bytes, tags, edges): (i64, i64, i64, i64, i64) =
                    sqlx::query_as(&format!(
                        "SELECT (SELECT count(*) FROM files f WHERE {seen}), (SELECT count(*) FROM {blobs} bs),
                                (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM {blobs} bs),
                                (SELECT count(*) FROM {tags} ts),
                                (SELECT CAST(coalesce(sum(files), 0) AS BIGINT) FROM {counts} c)",
                    ))
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
                Self::count_edges(&mut tx, FILES_OF_HASH, &job.hash, -1).await?;
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
                Self::count_edges(&mut tx, FILES_OF_HASH, &job.hash, 1).await?;
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
                max_per_owner: u64,
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
                if let Some(owner) = row.owner {
                    let theirs: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM uploads WHERE file_id IS NULL AND owner = $1",
                    )
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await?;
                    if theirs as u64 >= max_per_owner {
                        return Err(StoreError::TooMany(format!(
                            "you have {max_per_owner} uploads in progress; finish or cancel some first"
                        )));
                    }
                }
                sqlx::query(&format!(
                    "INSERT INTO uploads (id, length, name, metadata, owner, updated) VALUES ($1, $2, $3, $4, $5, {now})"
                ))
                .bind(&row.id)
                .bind(row.length as i64)
                .bind(&row.name)
                .bind(&row.metadata)
                .bind(row.owner)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_upload(&self, id: &str) -> Result<UploadRow, StoreError> {
                type Row = (String, i64, String, String, i64, Option<String>, Option<i64>);
                let row: Option<Row> = sqlx::query_as(
                    "SELECT id, length, name, metadata, upload_offset, file_id, owner FROM uploads WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                let (id, length, name, metadata, offset, file_id, owner) =
                    row.ok_or_else(|| StoreError::NotFound(format!("upload {id}")))?;
                Ok(UploadRow {
                    id,
                    length: length as u64,
                    name,
                    metadata,
                    offset: offset as u64,
                    file_id,
                    owner,
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

            async fn create_user(
                &self,
                name: &str,
                password: Option<&str>,
                role: Scope,
            ) -> Result<Option<i64>, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let id: Option<i64> = sqlx::query_scalar(&format!(
                    "INSERT INTO users (name, password, role, created) VALUES ($1, $2, $3, {now})
                     ON CONFLICT (name) DO NOTHING RETURNING id"
                ))
                .bind(name)
                .bind(password)
                .bind(role.as_str())
                .fetch_optional(&self.write)
                .await?;
                Ok(id)
            }

            async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
                #[allow(clippy::type_complexity, reason = "one row's columns")]
                let row: Option<(i64, String, Option<String>, String, i64, Option<i64>)> =
                    sqlx::query_as(
                        "SELECT id, name, password, role, used, quota FROM users WHERE name = $1",
                    )
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(id, name, password, role, used, quota)| {
                    Ok(UserRow {
                        id,
                        name,
                        password,
                        role: scope_of(&role)?,
                        usage: usage_of((used, quota)),
                    })
                })
                .transpose()
            }

            async fn usage(&self, user_id: i64) -> Result<Option<Usage>, StoreError> {
                let row: Option<(i64, Option<i64>)> =
                    sqlx::query_as("SELECT used, quota FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(usage_of))
            }

            async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, StoreError> {
                let quota = quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX));
                let n = sqlx::query("UPDATE users SET quota = $2 WHERE name = $1")
                    .bind(name)
                    .bind(quota)
                    .execute(&self.write)
                    .await?;
                Ok(n.rows_affected() == 1)
            }

            async fn user_count(&self) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }

            async fn set_password(
                &self,
                name: &str,
                password: Option<&str>,
            ) -> Result<bool, StoreError> {
                let n = sqlx::query("UPDATE users SET password = $2 WHERE name = $1")
                    .bind(name)
                    .bind(password)
                    .execute(&self.write)
                    .await?;
                Ok(n.rows_affected() == 1)
            }

            async fn add_credential(&self, c: &NewCredential<'_>) -> Result<i64, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let mut tx = self.begin_write().await?;
                // Expired credentials are of no use: each new one sweeps them, so sessions of
                // the past do not pile up.
                sqlx::query(&format!("DELETE FROM tokens WHERE expires <= {now}"))
                    .execute(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(&format!(
                    "INSERT INTO tokens (user_id, hash, kind, scope, created, expires)
                     VALUES ($1, $2, $3, $4, {now}, {now} + $5) RETURNING id"
                ))
                .bind(c.user_id)
                .bind(c.hash)
                .bind(c.kind.as_str())
                .bind(c.scope.as_str())
                .bind(c.ttl_ms)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn credential(&self, hash: &str) -> Result<Option<CredentialRow>, StoreError> {
                let unexpired = unexpired::<$db>("t");
                let row: Option<CredentialTuple> = sqlx::query_as(&format!(
                    "SELECT t.id, u.id, u.name, t.kind, t.scope, t.expires FROM tokens t
                       JOIN users u ON u.id = t.user_id
                      WHERE t.hash = $1 AND {unexpired}"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(credential_row).transpose()
            }

            async fn take_credential(
                &self,
                hash: &str,
                kind: CredentialKind,
            ) -> Result<Option<CredentialRow>, StoreError> {
                let unexpired = unexpired::<$db>("t");
                let mut tx = self.begin_write().await?;
                let taken: Option<(i64, i64, String, String, Option<i64>)> =
                    sqlx::query_as(&format!(
                        "DELETE FROM tokens AS t WHERE t.hash = $1 AND t.kind = $2 AND {unexpired}
                         RETURNING id, user_id, kind, scope, expires"
                    ))
                    .bind(hash)
                    .bind(kind.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((id, user_id, kind, scope, expires)) = taken else {
                    return Ok(None);
                };
                let user: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                credential_row((id, user_id, user, kind, scope, expires)).map(Some)
            }

            async fn credentials(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError> {
                let unexpired = unexpired::<$db>("t");
                let rows: Vec<CredentialTuple> = sqlx::query_as(&format!(
                    "SELECT t.id, u.id, u.name, t.kind, t.scope, t.expires FROM tokens t
                       JOIN users u ON u.id = t.user_id
                      WHERE u.name = $1 AND {unexpired} ORDER BY t.id"
                ))
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(credential_row).collect()
            }

            async fn revoke_credential(&self, id: i64) -> Result<bool, StoreError> {
                let n = sqlx::query("DELETE FROM tokens WHERE id = $1")
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                Ok(n.rows_affected() == 1)
            }

            async fn add_share(&self, n: &NewShare<'_>) -> Result<i64, StoreError> {
                let now = <$db as Dialect>::NOW_MS;
                let (file, query) = match n.target {
                    ShareTarget::File(f) => (Some(f.as_str()), None),
                    ShareTarget::Query(q) => (None, Some(q.as_str())),
                };
                let mut tx = self.begin_write().await?;
                if let Some(f) = file {
                    let theirs: bool = sqlx::query_scalar(&format!(
                        "SELECT EXISTS (SELECT 1 FROM files f WHERE f.id = $1 AND {})",
                        sql::writable(&n.maker, "f")
                    ))
                    .bind(f)
                    .fetch_one(&mut *tx)
                    .await?;
                    if !theirs {
                        return Err(StoreError::NotFound(format!("file {f}")));
                    }
                }
                sqlx::query(&format!("DELETE FROM shares WHERE expires <= {now}"))
                    .execute(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(&format!(
                    "INSERT INTO shares (hash, user_id, file_id, query, password, created, expires)
                     VALUES ($1, $2, $3, $4, $5, {now}, {now} + $6) RETURNING id"
                ))
                .bind(n.hash)
                .bind(n.user_id)
                .bind(file)
                .bind(query)
                .bind(n.password)
                .bind(n.ttl_ms)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn share(&self, hash: &str) -> Result<Option<ShareRow>, StoreError> {
                let unexpired = unexpired::<$db>("s");
                let row: Option<ShareTuple> = sqlx::query_as(&format!(
                    "SELECT {SHARE_COLUMNS} FROM shares s JOIN users u ON u.id = s.user_id
                      WHERE s.hash = $1 AND {unexpired}"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(share_row).transpose()
            }

            async fn shares(&self, who: &Viewer) -> Result<Vec<ShareRow>, StoreError> {
                let unexpired = unexpired::<$db>("s");
                let mine = sql::owned_by(who, "s.user_id");
                let rows: Vec<ShareTuple> = sqlx::query_as(&format!(
                    "SELECT {SHARE_COLUMNS} FROM shares s JOIN users u ON u.id = s.user_id
                      WHERE {mine} AND {unexpired} ORDER BY s.id DESC LIMIT {MAX_SHARES_LISTED}"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(share_row).collect()
            }

            async fn revoke_share(&self, who: &Viewer, id: i64) -> Result<bool, StoreError> {
                let mine = sql::owned_by(who, "user_id");
                let n = sqlx::query(&format!("DELETE FROM shares WHERE id = $1 AND {mine}"))
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                Ok(n.rows_affected() == 1)
            }

            async fn create_group(&self, name: &str) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO groups (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .bind(name)
                .fetch_optional(&self.write)
                .await?)
            }

            async fn add_group_member(&self, group: &str, user: &str) -> Result<bool, StoreError> {
                let n = sqlx::query(
                    "INSERT INTO group_members (group_id, user_id)
                     SELECT g.id, u.id FROM groups g, users u WHERE g.name = $1 AND u.name = $2
                     ON CONFLICT (group_id, user_id) DO NOTHING",
                )
                .bind(group)
                .bind(user)
                .execute(&self.write)
                .await?;
                if n.rows_affected() == 1 {
                    return Ok(true);
                }
                // A member already, or no such group or user: say which.
                let both: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM groups WHERE name = $1)
                        AND EXISTS (SELECT 1 FROM users WHERE name = $2)",
                )
                .bind(group)
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
                Ok(both)
            }

            async fn share_file(
                &self,
                who: &Viewer,
                id: &str,
                group: Option<&str>,
            ) -> Result<FileRecord, StoreError> {
                let grp: Option<i64> = match group {
                    None => None,
                    Some(g) => Some(
                        sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
                            .bind(g)
                            .fetch_optional(&self.write)
                            .await?
                            // The file is the resource; a group that does not exist is a bad body.
                            .ok_or_else(|| StoreError::Invalid(format!("no group named {g:?}")))?,
                    ),
                };
                let mine = sql::writable(who, "files");
                let n = sqlx::query(&format!("UPDATE files SET grp = $1 WHERE id = $2 AND {mine}"))
                    .bind(grp)
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                if n.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("file {id}")));
                }
                self.get_file(who, id).await
            }
        }
    };
}

/// [`count_edges`](SqlMeta::count_edges)'s scopes: the file `$1`, the files of content `$1`.
const ONE_FILE: &str = "{} = $1";
const FILES_OF_HASH: &str = "{} IN (SELECT id FROM files WHERE hash = $1)";

/// The condition that the row aliased `t` (a token, a share link) has not expired, on the
/// database's clock.
fn unexpired<D: Dialect>(t: &str) -> String {
    format!("({t}.expires IS NULL OR {t}.expires > {})", D::NOW_MS)
}

/// The condition that a worker still holds job `$2` at attempt `$3` (the attempt is the lease's
/// fencing token: a claim after the lease ran out raises it). `$1` is the statement's own.
const HELD: &str = "id = $2 AND attempts = $3 AND state = 'running'";

use crate::assemble::*;
use crate::meta::*;
use async_trait::async_trait;
use disgrafs_core::auth::Scope;
use disgrafs_core::query::{Expr, Predicate};
use disgrafs_core::{
    CoOccurrence, FileName, FileRecord, FolderPath, Graph, Related, TagCount, TagRef, TaggingState,
};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use std::collections::HashMap;

impl_meta!(Sqlite);
impl_meta!(Postgres);

/// A user row's `used` and `quota` columns.
fn usage_of((used, quota): (i64, Option<i64>)) -> Usage {
    Usage {
        used: used.max(0) as u64,
        quota: quota.map(|q| q.max(0) as u64),
    }
}

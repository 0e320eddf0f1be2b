//! The SQLite adapter of [`MetaStore`]: the embedded default, one file in the data directory.

use crate::StoreError;
use crate::meta::*;
use crate::sql;
use async_trait::async_trait;
use disgrafs_core::query::Expr;
use disgrafs_core::rank::{SharedTag, overlap_score};
use disgrafs_core::{
    CoOccurrence, FileKind, FileRecord, Graph, GraphEdge, GraphNode, Related, TagCount, TagKind,
    TagRef, TaggingState, file_node_id, tag_node_id,
};
use sql::push_list;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a failed job waits before its next try, per attempt already made.
const RETRY_BACKOFF_MS: i64 = 5_000;
/// Bounds the rows `related` reads: a tag carried by every file must not make it scan the store.
const RELATED_SCAN_LIMIT: i64 = 50_000;

pub struct SqliteMeta {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer connection. SQLite allows one writer at a time anyway; queueing writers
    /// in the pool rather than in SQLite's busy handler avoids SQLITE_BUSY on lock upgrades.
    write: SqlitePool,
    /// The edges that are shown ([`sql::visible_edges`]), as SQL text for `FROM`.
    visible: String,
}

/// Bound values in one `IN (...)` list: a statement per few hundred keeps each one cheap, and well
/// under SQLite's limit of bound parameters.
const IN_LIST_CHUNK: usize = 500;

/// Whether a `file_tags` row adds a user tag or hides an automatic tag of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileTagRow {
    User,
    Hidden,
}

pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const RECORD_COLUMNS: &str = "f.id, f.name, f.size, f.hash, b.mime, b.kind, f.created, f.modified, b.tagging, b.fields FROM files f JOIN blobs b ON b.hash = f.hash";

fn record_from_row(r: &SqliteRow) -> FileRecord {
    FileRecord {
        id: r.get("id"),
        name: r.get("name"),
        size: r.get::<i64, _>("size") as u64,
        hash: r.get("hash"),
        mime: r.get("mime"),
        kind: FileKind::parse(r.get::<&str, _>("kind")).unwrap_or_default(),
        created: ms_to_time(r.get("created")),
        modified: ms_to_time(r.get("modified")),
        // Filled by `with_tags`.
        tags: Vec::new(),
        tagging: TaggingState::parse(r.get::<&str, _>("tagging")).unwrap_or(TaggingState::Pending),
        fields: serde_json::from_str(r.get::<&str, _>("fields")).unwrap_or_default(),
    }
}

impl SqliteMeta {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path, min_confidence: f64) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction that returned is on disk, even across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.read_only(true))
            .await?;
        Self::with_pools(pool, write, min_confidence)
    }

    fn with_pools(
        pool: SqlitePool,
        write: SqlitePool,
        min_confidence: f64,
    ) -> Result<Self, StoreError> {
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(StoreError::Config(format!(
                "min_confidence must be between 0 and 1, not {min_confidence}"
            )));
        }
        Ok(SqliteMeta {
            pool,
            write,
            visible: sql::visible_edges(min_confidence),
        })
    }

    /// Runs `head IN (items) tail` on a reader, [`IN_LIST_CHUNK`] items at a time, and returns the
    /// rows of all. `tail` must not mix rows of different chunks (a `GROUP BY` of the listed
    /// column is fine).
    async fn fetch_in(
        &self,
        head: &str,
        items: &[String],
        tail: &str,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        let mut rows = Vec::new();
        for chunk in items.chunks(IN_LIST_CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(head);
            qb.push(" IN (");
            push_list(&mut qb, chunk);
            qb.push(tail);
            rows.extend(qb.build().fetch_all(&self.pool).await?);
        }
        Ok(rows)
    }

    /// Opens an existing database for reading only (both pools read-only, no migration): for a
    /// process serving beside the one that owns the data directory.
    pub async fn open_read_only(path: &Path, min_confidence: f64) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        Self::with_pools(pool.clone(), pool, min_confidence)
    }

    /// Loads the visible tags of these files, sorted user first then by weight.
    async fn tags_of(&self, ids: &[String]) -> Result<HashMap<String, Vec<TagRef>>, StoreError> {
        let mut out: HashMap<String, Vec<TagRef>> = HashMap::new();
        let head = format!(
            "SELECT e.file_id, t.name, e.kind, e.extractor, e.weight FROM {} e \
             JOIN tags t ON t.id = e.tag_id WHERE e.file_id",
            self.visible
        );
        for r in self.fetch_in(&head, ids, "").await? {
            out.entry(r.get("file_id")).or_default().push(TagRef {
                name: r.get("name"),
                kind: TagKind::parse(r.get::<&str, _>("kind")).unwrap_or(TagKind::Auto),
                extractor: r.get("extractor"),
                weight: r.get("weight"),
            });
        }
        for tags in out.values_mut() {
            tags.sort_by(|a, b| {
                (b.kind == TagKind::User)
                    .cmp(&(a.kind == TagKind::User))
                    .then(b.weight.total_cmp(&a.weight))
                    .then(a.name.cmp(&b.name))
            });
        }
        Ok(out)
    }

    async fn with_tags(&self, mut records: Vec<FileRecord>) -> Result<Vec<FileRecord>, StoreError> {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut tags = self.tags_of(&ids).await?;
        for r in &mut records {
            r.tags = tags.remove(&r.id).unwrap_or_default();
        }
        Ok(records)
    }

    async fn records_by_ids(&self, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
        let head = format!("SELECT {RECORD_COLUMNS} WHERE f.id");
        let rows = self.fetch_in(&head, ids, "").await?;
        self.with_tags(rows.iter().map(record_from_row).collect())
            .await
    }

    async fn tag_ids(
        tx: &mut sqlx::SqliteConnection,
        names: &[String],
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(names.len());
        for n in names {
            // DO UPDATE (a no-op) rather than DO NOTHING so that RETURNING yields the existing id.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO tags (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
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
        tx: &mut sqlx::SqliteConnection,
        id: &str,
        tag_id: i64,
        row: FileTagRow,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO file_tags (file_id, tag_id, hidden, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (file_id, tag_id) DO UPDATE SET hidden = ?3",
        )
        .bind(id)
        .bind(tag_id)
        .bind((row == FileTagRow::Hidden) as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// A write transaction. IMMEDIATE takes the write lock up front, so a transaction that reads
    /// first never fails to upgrade.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Queues tagging of a content, or re-queues a job that failed; a queued or running job is
    /// left as it is.
    async fn queue_tagging(
        tx: &mut sqlx::SqliteConnection,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (kind, hash, state, run_after, created) VALUES ('tag', ?1, 'queued', ?2, ?2)
             ON CONFLICT (kind, hash) DO UPDATE SET state = 'queued', attempts = 0, run_after = excluded.run_after
             WHERE jobs.state = 'failed'",
        )
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn touch(tx: &mut sqlx::SqliteConnection, id: &str) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE files SET modified = ? WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("file {id}")));
        }
        Ok(())
    }
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn insert_file(&self, new: NewFile<'_>) -> Result<FileRecord, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (refs, tagging): (i64, String) = sqlx::query_as(
            "INSERT INTO blobs (hash, size, mime, kind, refs, created) VALUES (?, ?, ?, ?, 1, ?)
             ON CONFLICT (hash) DO UPDATE SET refs = refs + 1 RETURNING refs, tagging",
        )
        .bind(new.hash)
        .bind(new.size as i64)
        .bind(new.mime)
        .bind(new.kind.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO files (id, name, name_lower, hash, size, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(new.name.as_str())
            .bind(new.name.to_lowercase())
            .bind(new.hash)
            .bind(new.size as i64)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if refs == 1 && tagging != TaggingState::Done.as_str() {
            Self::queue_tagging(&mut tx, new.hash, now).await?;
        }
        tx.commit().await?;
        self.get_file(&id).await
    }

    async fn get_file(&self, id: &str) -> Result<FileRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {RECORD_COLUMNS} WHERE f.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
        Ok(self.with_tags(vec![record_from_row(&row)]).await?.remove(0))
    }

    async fn get_content(&self, id: &str) -> Result<FileContent, StoreError> {
        let (name, hash, size, mime): (String, String, i64, String) = sqlx::query_as(
            "SELECT f.name, f.hash, f.size, b.mime FROM files f JOIN blobs b ON b.hash = f.hash WHERE f.id = ?",
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
        let hash: String = sqlx::query_scalar("DELETE FROM files WHERE id = ? RETURNING hash")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
        let refs: i64 =
            sqlx::query_scalar("UPDATE blobs SET refs = refs - 1 WHERE hash = ? RETURNING refs")
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await?;
        let gone = if refs == 0 {
            sqlx::query("DELETE FROM jobs WHERE hash = ?")
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM blobs WHERE hash = ?")
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            // Tags no edge uses any more would linger in autocomplete.
            sqlx::query(
                "DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM blob_tags WHERE tag_id = tags.id)
                 AND NOT EXISTS (SELECT 1 FROM file_tags WHERE tag_id = tags.id)",
            )
            .execute(&mut *tx)
            .await?;
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
        let mut count = QueryBuilder::<Sqlite>::new(
            "SELECT count(*) FROM files f JOIN blobs b ON b.hash = f.hash WHERE ",
        );
        sql::push_expr(&mut count, q, &self.visible);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {RECORD_COLUMNS} WHERE "));
        sql::push_expr(&mut qb, q, &self.visible);
        let col = match opts.sort {
            SortKey::Name => "f.name_lower",
            SortKey::Size => "f.size",
            SortKey::Mime => "b.mime",
            SortKey::Created => "f.created",
            SortKey::Modified => "f.modified",
        };
        let dir = if opts.descending { "DESC" } else { "ASC" };
        qb.push(format!(" ORDER BY {col} {dir}, f.id {dir} LIMIT "))
            .push_bind(opts.limit as i64)
            .push(" OFFSET ")
            .push_bind(opts.offset as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let records = self
            .with_tags(rows.iter().map(record_from_row).collect())
            .await?;
        Ok((records, total as u64))
    }

    async fn add_user_tags(&self, id: &str, tags: &[String]) -> Result<FileRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        Self::touch(&mut tx, id).await?;
        let now = now_ms();
        for tag_id in Self::tag_ids(&mut tx, tags).await? {
            Self::set_file_tag(&mut tx, id, tag_id, FileTagRow::User, now).await?;
        }
        tx.commit().await?;
        self.get_file(id).await
    }

    async fn remove_tags(&self, id: &str, tags: &[String]) -> Result<FileRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        Self::touch(&mut tx, id).await?;
        let now = now_ms();
        for name in tags {
            let Some(tag_id): Option<i64> =
                sqlx::query_scalar("SELECT id FROM tags WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?
            else {
                continue;
            };
            let has_auto: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM files f JOIN blob_tags bt ON bt.hash = f.hash WHERE f.id = ? AND bt.tag_id = ?)",
            )
            .bind(id)
            .bind(tag_id)
            .fetch_one(&mut *tx)
            .await?;
            if has_auto {
                Self::set_file_tag(&mut tx, id, tag_id, FileTagRow::Hidden, now).await?;
            } else {
                sqlx::query("DELETE FROM file_tags WHERE file_id = ? AND tag_id = ?")
                    .bind(id)
                    .bind(tag_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.get_file(id).await
    }

    async fn related(&self, id: &str, limit: u32) -> Result<Vec<Related>, StoreError> {
        // Existence check gives a 404 rather than an empty list for an unknown id.
        self.get_file(id).await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM files")
            .fetch_one(&self.pool)
            .await?;
        let v = &self.visible;
        let rows = sqlx::query(&format!(
            "WITH mine AS (SELECT tag_id, weight FROM {v} WHERE file_id = ?1),
                  df AS (SELECT e.tag_id, count(*) AS n FROM edges e JOIN mine m ON m.tag_id = e.tag_id GROUP BY e.tag_id)
             SELECT e.file_id, t.name, m.weight AS wa, e.weight AS wb, df.n AS n
               FROM mine m
               JOIN {v} e ON e.tag_id = m.tag_id AND e.file_id <> ?1
               JOIN tags t ON t.id = m.tag_id
               JOIN df ON df.tag_id = m.tag_id
              LIMIT ?2"
        ))
        .bind(id)
        .bind(RELATED_SCAN_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        let mut by_file: HashMap<String, (Vec<SharedTag>, Vec<String>)> = HashMap::new();
        for r in &rows {
            let e = by_file.entry(r.get("file_id")).or_default();
            e.0.push(SharedTag {
                weight_a: r.get("wa"),
                weight_b: r.get("wb"),
                tag_files: r.get::<i64, _>("n") as u64,
            });
            e.1.push(r.get("name"));
        }
        let mut scored: Vec<(String, f64, Vec<String>)> = by_file
            .into_iter()
            .map(|(f, (shared, mut names))| {
                names.sort();
                (f, overlap_score(total as u64, shared), names)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit as usize);
        let ids: Vec<String> = scored.iter().map(|s| s.0.clone()).collect();
        let mut records: HashMap<String, FileRecord> = self
            .records_by_ids(&ids)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        Ok(scored
            .into_iter()
            .filter_map(|(f, score, shared_tags)| {
                records.remove(&f).map(|file| Related {
                    file,
                    score,
                    shared_tags,
                })
            })
            .collect())
    }

    async fn graph(&self, q: &Expr, limit: u32) -> Result<Graph, StoreError> {
        let limit = limit.max(1) as usize;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT f.id, f.name, f.size, b.mime, b.kind FROM files f JOIN blobs b ON b.hash = f.hash WHERE ",
        );
        sql::push_expr(&mut qb, q, &self.visible);
        // One more than can be drawn tells whether the limit cut anything.
        qb.push(" ORDER BY f.modified DESC, f.id DESC LIMIT ")
            .push_bind(limit as i64 + 1);
        let files = qb.build().fetch_all(&self.pool).await?;
        let mut truncated = files.len() > limit;

        let file_ids: Vec<String> = files.iter().take(limit).map(|r| r.get("id")).collect();
        let mut edges_by_file = self.tags_of(&file_ids).await?;
        // A file joins with all its tags or not at all, newest first, until the limit: a file
        // drawn without its edges would look unconnected.
        let mut g = Graph::default();
        let mut tag_nodes: HashMap<String, usize> = HashMap::new();
        for r in files.iter().take(limit) {
            let id: String = r.get("id");
            let edges = edges_by_file.remove(&id).unwrap_or_default();
            let new_tags: HashSet<&str> = edges
                .iter()
                .map(|e| e.name.as_str())
                .filter(|t| !tag_nodes.contains_key(*t))
                .collect();
            if g.nodes.len() + 1 + new_tags.len() > limit {
                truncated = true;
                break;
            }
            g.nodes.push(GraphNode::File {
                id: file_node_id(&id),
                name: r.get("name"),
                kind: FileKind::parse(r.get::<&str, _>("kind")).unwrap_or_default(),
                mime: r.get("mime"),
                size: r.get::<i64, _>("size") as u64,
            });
            for TagRef {
                name: tag,
                kind,
                weight,
                ..
            } in edges
            {
                match tag_nodes.get(&tag) {
                    Some(&i) => {
                        // A tag any person used is a user tag in the picture.
                        if let GraphNode::Tag { kind: k, .. } = &mut g.nodes[i]
                            && kind == TagKind::User
                        {
                            *k = TagKind::User;
                        }
                    }
                    None => {
                        tag_nodes.insert(tag.clone(), g.nodes.len());
                        g.nodes.push(GraphNode::Tag {
                            id: tag_node_id(&tag),
                            name: tag.clone(),
                            kind,
                            degree: 0,
                        });
                    }
                }
                g.edges.push(GraphEdge {
                    source: file_node_id(&id),
                    target: tag_node_id(&tag),
                    kind,
                    weight,
                });
            }
        }
        // Degrees over the whole store, so node size means the same in every view.
        let names: Vec<String> = tag_nodes.keys().cloned().collect();
        let head = format!(
            "SELECT t.name, count(*) AS n FROM {} e JOIN tags t ON t.id = e.tag_id WHERE t.name",
            self.visible
        );
        let degree: HashMap<String, u64> = self
            .fetch_in(&head, &names, " GROUP BY t.name")
            .await?
            .iter()
            .map(|r| (r.get("name"), r.get::<i64, _>("n") as u64))
            .collect();
        for n in &mut g.nodes {
            if let GraphNode::Tag {
                name, degree: d, ..
            } = n
            {
                *d = degree.get(name.as_str()).copied().unwrap_or(0);
            }
        }
        g.truncated = truncated;
        Ok(g)
    }

    async fn tags(&self, prefix: &str, limit: u32) -> Result<Vec<TagCount>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.name, max(e.kind = 'user') AS user, count(DISTINCT e.file_id) AS n
               FROM tags t JOIN {} e ON e.tag_id = t.id
              WHERE substr(t.name, 1, length(?1)) = ?1
              GROUP BY t.id ORDER BY n DESC, t.name LIMIT ?2",
            self.visible
        ))
        .bind(prefix.to_lowercase())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TagCount {
                name: r.get("name"),
                kind: if r.get::<i64, _>("user") == 1 {
                    TagKind::User
                } else {
                    TagKind::Auto
                },
                files: r.get::<i64, _>("n") as u64,
            })
            .collect())
    }

    async fn cooccurrence(&self, limit: u32) -> Result<Vec<CoOccurrence>, StoreError> {
        let rows = sqlx::query(&format!(
            "WITH v AS (SELECT file_id, tag_id FROM {})
             SELECT ta.name AS a, tb.name AS b, count(*) AS n
               FROM v x JOIN v y ON x.file_id = y.file_id AND x.tag_id < y.tag_id
               JOIN tags ta ON ta.id = x.tag_id JOIN tags tb ON tb.id = y.tag_id
              GROUP BY x.tag_id, y.tag_id ORDER BY n DESC, a, b LIMIT ?1",
            self.visible
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (a, b): (String, String) = (r.get("a"), r.get("b"));
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                CoOccurrence {
                    a,
                    b,
                    files: r.get::<i64, _>("n") as u64,
                }
            })
            .collect())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let (files, blobs, bytes, tags, edges): (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs), (SELECT count(*) FROM tags), (SELECT count(*) FROM edges)",
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
        let now = now_ms();
        // A job whose worker died holding it (lease expired) as often as it may be tried is
        // failed: its content likely kills workers.
        let mut tx = self.begin_write().await?;
        let dead: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = 'the worker died while tagging it'
              WHERE state = 'running' AND lease_until < ?1 AND attempts >= ?2 RETURNING hash",
        )
        .bind(now)
        .bind(MAX_JOB_ATTEMPTS as i64)
        .fetch_all(&mut *tx)
        .await?;
        for hash in dead {
            sqlx::query("UPDATE blobs SET tagging = 'failed' WHERE hash = ?")
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?1
              WHERE id = (SELECT id FROM jobs
                           WHERE (state = 'queued' AND run_after <= ?2) OR (state = 'running' AND lease_until < ?2)
                           ORDER BY run_after, id LIMIT 1)
             RETURNING id, hash, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
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
        sqlx::query("UPDATE jobs SET lease_until = ? WHERE id = ? AND state = 'running'")
            .bind(now_ms() + lease_ms)
            .bind(job.id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn complete_job(&self, job: &Job, result: TagResult) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let live: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = ?")
            .bind(job.id)
            .fetch_optional(&mut *tx)
            .await?;
        if live.is_none() {
            // The content was deleted while it was being tagged.
            return Ok(());
        }
        sqlx::query("DELETE FROM blob_tags WHERE hash = ?")
            .bind(&job.hash)
            .execute(&mut *tx)
            .await?;
        let names: Vec<String> = result.tags.iter().map(|t| t.name.clone()).collect();
        let ids = Self::tag_ids(&mut tx, &names).await?;
        for (t, tag_id) in result.tags.iter().zip(ids) {
            sqlx::query(
                "INSERT INTO blob_tags (hash, tag_id, extractor, version, weight) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (hash, tag_id) DO UPDATE SET weight = max(weight, excluded.weight)",
            )
            .bind(&job.hash)
            .bind(tag_id)
            .bind(&t.extractor)
            .bind(t.version as i64)
            .bind(t.confidence.clamp(0.0, 1.0))
            .execute(&mut *tx)
            .await?;
        }
        let fields =
            serde_json::to_string(&result.fields).map_err(|e| StoreError::Db(e.to_string()))?;
        let versions =
            serde_json::to_string(&result.versions).map_err(|e| StoreError::Db(e.to_string()))?;
        sqlx::query("UPDATE blobs SET mime = ?, kind = ?, fields = ?, extractor_versions = ?, tagging = 'done' WHERE hash = ?")
            .bind(&result.mime)
            .bind(result.kind.as_str())
            .bind(fields)
            .bind(versions)
            .bind(&job.hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fail_job(&self, job: &Job, error: &str, max_attempts: u32) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if job.attempts >= max_attempts {
            sqlx::query(
                "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = ? WHERE id = ?",
            )
            .bind(error)
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE blobs SET tagging = 'failed' WHERE hash = ?")
                .bind(&job.hash)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE jobs SET state = 'queued', lease_until = NULL, last_error = ?, run_after = ? WHERE id = ?")
                .bind(error)
                .bind(now_ms() + RETRY_BACKOFF_MS * job.attempts as i64)
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recover_jobs(&self) -> Result<u64, StoreError> {
        // One process owns a SQLite file, so whatever is `running` now was left by a previous run:
        // expire the leases, and the next claim re-queues (or fails, if tried too often) them.
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
        let now = now_ms();
        let mut n = 0;
        let mut tx = self.begin_write().await?;
        for (hash, versions) in rows {
            let stored: BTreeMap<String, u32> = serde_json::from_str(&versions).unwrap_or_default();
            if !which.is_due(&stored) {
                continue;
            }
            Self::queue_tagging(&mut tx, &hash, now).await?;
            sqlx::query("UPDATE blobs SET tagging = 'pending' WHERE hash = ?")
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
            "SELECT coalesce(sum(state = 'queued'), 0), coalesce(sum(state = 'running'), 0), coalesce(sum(state = 'failed'), 0) FROM jobs",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(JobStats {
            queued: queued as u64,
            running: running as u64,
            failed: failed as u64,
        })
    }
}

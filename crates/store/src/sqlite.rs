//! The SQLite adapter of [`MetaStore`](crate::MetaStore): the embedded default, one file in the
//! data directory. Its queries are the shared ones (`sqlmeta.rs`); this opens the pools.

use crate::sqlmeta::SqlMeta;
use crate::{QUERY_CONNECTIONS, QueryBudget, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The metadata store on SQLite (WAL, `synchronous=FULL`, one writer connection, readers).
pub type SqliteMeta = SqlMeta<Sqlite>;

impl SqlMeta<Sqlite> {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path, min_confidence: f64) -> Result<Self, StoreError> {
        Self::open_with_budget(path, min_confidence, QueryBudget::default()).await
    }

    /// [`open`](Self::open) with queries bounded by `budget`.
    pub async fn open_with_budget(
        path: &Path,
        min_confidence: f64,
        budget: QueryBudget,
    ) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction that returned is on disk, even across a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Sorts and temporary indexes (a listing of 100,000 files sorts as many rows) in
            // memory, not spilled to a temporary file.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let readers = opts.read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(readers.clone())
            .await?;
        let queries = query_pool(readers, budget.sqlite_steps).await?;
        let meta = Self::with_pools(pool, write, queries, min_confidence)?;
        meta.prepare_counts().await?;
        // Statistics for the planner where tables changed enough since they were gathered,
        // each table's analysis bounded (a million-file store opens in well under a second).
        sqlx::query("PRAGMA analysis_limit = 1000")
            .execute(&meta.write)
            .await?;
        sqlx::query("PRAGMA optimize = 0x10002")
            .execute(&meta.write)
            .await?;
        Ok(meta)
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
        Self::with_pools(pool.clone(), pool.clone(), pool, min_confidence)
    }
}

/// Progress handler calls are this many virtual-machine steps apart.
const STEPS_PER_CALL: u64 = 1_000;

/// The query pool: each connection's statements abort after `steps` virtual-machine steps. The
/// handler is set afresh whenever a connection is handed out, and sqlx hands one out per
/// statement, so each statement has the whole budget.
async fn query_pool(opts: SqliteConnectOptions, steps: u64) -> Result<Pool<Sqlite>, StoreError> {
    Ok(SqlitePoolOptions::new()
        .max_connections(QUERY_CONNECTIONS)
        .after_connect(move |conn, _| Box::pin(async move { set_budget(conn, steps).await }))
        .before_acquire(move |conn, _| {
            Box::pin(async move { set_budget(conn, steps).await.map(|()| true) })
        })
        .connect_with(opts)
        .await?)
}

async fn set_budget(conn: &mut SqliteConnection, steps: u64) -> Result<(), sqlx::Error> {
    let calls = steps.div_ceil(STEPS_PER_CALL);
    let mut made = 0u64;
    conn.lock_handle()
        .await?
        .set_progress_handler(STEPS_PER_CALL as i32, move || {
            made += 1;
            made <= calls
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{FileKind, FolderPath, MetaStore, NewFile, QUERY_CONNECTIONS};
    use disgrafs_core::FileName;

    /// Queries running on every connection of the query pool leave the readers that downloads
    /// use free: a record and its content are read while all of them are taken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn downloads_keep_their_connections_while_queries_take_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let m = super::SqliteMeta::open(&dir.path().join("t.db"), 0.2)
            .await
            .unwrap();
        let name = FileName::new("a.md").unwrap();
        let hash = "a".repeat(64);
        let f = m
            .insert_file(NewFile {
                name: &name,
                folder: FolderPath::default(),
                hash: &hash,
                size: 3,
                mime: "text/plain",
                kind: FileKind::Document,
                owner: None,
            })
            .await
            .unwrap();
        // Expensive queries hold every query connection (any further one waits for one)...
        let mut held = Vec::new();
        for _ in 0..QUERY_CONNECTIONS {
            held.push(m.queries.acquire().await.unwrap());
        }
        assert_eq!(m.queries.num_idle(), 0);
        // ...and a download still reads what it needs (before this pool existed, eight queries
        // took every reader and this waited for the pool's timeout, then failed).
        for _ in 0..8 {
            assert_eq!(
                m.get_content(&crate::Viewer::All, &f.id)
                    .await
                    .unwrap()
                    .hash,
                hash
            );
            assert_eq!(
                m.get_file(&crate::Viewer::All, &f.id).await.unwrap().name,
                "a.md"
            );
        }
        drop(held);
    }
}

//! The SQLite adapter of [`MetaStore`](crate::MetaStore): the embedded default, one file in the
//! data directory. Its queries are the shared ones (`sqlmeta.rs`); this opens the pools.

use crate::StoreError;
use crate::sqlmeta::SqlMeta;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The metadata store on SQLite (WAL, `synchronous=FULL`, one writer connection, readers).
pub type SqliteMeta = SqlMeta<Sqlite>;

impl SqlMeta<Sqlite> {
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
}

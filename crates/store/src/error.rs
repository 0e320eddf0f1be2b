use disgrafs_core::query::QueryError;
use std::io;

/// Everything the store can refuse or fail at. The server maps these to HTTP statuses in one
/// place (`disgrafs_server::error`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("storage is full: {0}")]
    Full(String),
    /// A user's quota (`meta::Usage`) has no room for a new record.
    #[error("{0}")]
    OverQuota(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("database error: {0}")]
    Db(String),
    /// A worker's job is no longer its own: the lease ran out and another worker claimed it, or
    /// the content was deleted.
    #[error("job {0} is no longer held by this worker")]
    LeaseLost(i64),
    /// A bound on work in progress was reached (uploads in progress).
    #[error("{0}")]
    Busy(String),
    /// A bound per user was reached (their uploads in progress): they may go on once some end.
    #[error("{0}")]
    TooMany(String),
    /// Another request (on this node or another) is writing this resource.
    #[error("{0}")]
    Locked(String),
    /// A query needed more work than its [`QueryBudget`](crate::QueryBudget): aborted by the
    /// database.
    #[error("{0}")]
    TooCostly(String),
    /// The database cannot be reached now (restarting, down, every connection taken): the
    /// request may be tried again.
    #[error("the metadata store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Maps a write error, telling a full disk apart from other failures.
    pub fn from_write(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StoreError::Full(e.to_string())
            }
            _ => StoreError::Io(e),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let msg = e.to_string();
        // SQLITE_FULL surfaces as a database error whose text says so.
        if msg.contains("database or disk is full") || msg.contains("(code: 13)") {
            return StoreError::Full(msg);
        }
        if is_over_budget(&e) {
            return StoreError::TooCostly(
                "the query needs more work than one query may take; narrow it (fewer terms, a \
                 smaller page or offset)"
                    .into(),
            );
        }
        if is_unavailable(&e) {
            return StoreError::Unavailable(msg);
        }
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound("record".into()),
            sqlx::Error::Io(io) => StoreError::from_write(io),
            _ => StoreError::Db(msg),
        }
    }
}

/// Whether the database aborted a statement over its budget: SQLite's SQLITE_INTERRUPT (9),
/// which only the query pool's progress handler causes, or PostgreSQL's query_canceled (57014),
/// which its `statement_timeout` raises.
fn is_over_budget(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c == "9" || c == "57014"),
        _ => false,
    }
}

/// Whether a database error means the server is out of reach for now rather than that the
/// statement was wrong: a lost or refused connection, a pool that found no connection in time,
/// a server shutting down or starting (SQLSTATE classes 08, connection exception, and 57P,
/// operator intervention).
fn is_unavailable(e: &sqlx::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::NotConnected
        ),
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            // A migration this binary does not have was applied: a newer disgrafs wrote the
            // schema, and this one must not run on it.
            sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::Config(format!(
                "the database's schema (migration {v}) is newer than this disgrafs: upgrade disgrafs"
            )),
            e => StoreError::Db(format!("migration failed: {e}")),
        }
    }
}

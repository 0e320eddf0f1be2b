//! The PostgreSQL adapter of [`MetaStore`](crate::MetaStore): metadata and the job queue shared
//! by any number of `serve` and worker processes. Its queries are the shared ones
//! (`sqlmeta.rs`, with row locks for the queue); this connects and migrates.

use crate::sqlmeta::SqlMeta;
use crate::{QUERY_CONNECTIONS, QueryBudget, StoreError};
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Its own versioned migrations: the two schemas say the same in each database's types.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long opening waits for a connection: an unreachable server is an error at start-up,
/// not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The metadata store on PostgreSQL.
pub type PgMeta = SqlMeta<Postgres>;

impl SqlMeta<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or any form libpq
    /// and sqlx accept) and brings the schema up to date. Several processes may do so at once:
    /// sqlx serializes migrations with an advisory lock.
    pub async fn connect(url: &str, min_confidence: f64) -> Result<Self, StoreError> {
        Self::connect_with_budget(url, min_confidence, QueryBudget::default()).await
    }

    /// [`connect`](Self::connect) with queries bounded by `budget`: the query pool's
    /// connections run with `statement_timeout`.
    pub async fn connect_with_budget(
        url: &str,
        min_confidence: f64,
        budget: QueryBudget,
    ) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("--meta {}: {e}", redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreError::Config(format!("cannot connect to {}: {e}", redact(url))))?;
        MIGRATOR.run(&pool).await?;
        let timeout_ms = budget.pg_timeout.as_millis().max(1);
        let queries = PgPoolOptions::new()
            .max_connections(QUERY_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(&format!("SET statement_timeout = {timeout_ms}"))
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .connect_with(opts)
            .await?;
        let meta = Self::with_pools(pool.clone(), pool, queries, min_confidence)?;
        meta.prepare_counts().await?;
        Ok(meta)
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_password() {
        assert_eq!(
            super::redact("postgres://u:s3cret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("postgres:///db"), "postgres:///db");
    }
}

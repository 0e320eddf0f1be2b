//! Changes of the store, for subscribers (the server's `/api/events`) of every node.
//!
//! On SQLite one process owns the store, and events go through an in-process channel. On
//! PostgreSQL every process may change it, so an event is a `NOTIFY` on one channel, and each
//! process's listener (sqlx's `PgListener`) hands what arrives to its own subscribers, its own
//! events included. A notification carries the kind and the file's id only (its payload is
//! bounded by PostgreSQL); the listening node reads the record itself, so what a subscriber sees
//! is what that node serves.

use crate::{MetaStore, StoreError};
use disgrafs_core::FileRecord;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// The PostgreSQL channel every node listens on.
const CHANNEL: &str = "disgrafs_events";
/// How many events a slow subscriber may fall behind before it is told to resync.
const BACKLOG: usize = 1024;
/// A listener whose connection failed waits this long before it connects again.
const RECONNECT: Duration = Duration::from_secs(1);

/// One change: `file.created`, `file.updated`, `file.tagged` (data: the file record),
/// `file.deleted` (data: `{"id": ...}`), or `resync` (data: `{}`: events may have been missed,
/// reload the view).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub data: String,
}

#[derive(Clone)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Event>,
    /// Receivers of this process's own (the tagging workers, which wake on new files), not
    /// counted as subscribers.
    watchers: Arc<AtomicUsize>,
    /// Set on PostgreSQL: events are notified to every node rather than sent here.
    pg: Option<PgPool>,
}

impl EventBus {
    pub(crate) fn local() -> Self {
        EventBus {
            tx: broadcast::channel(BACKLOG).0,
            watchers: Arc::default(),
            pg: None,
        }
    }

    /// Listens on the database (the subscription is in place when this returns) and announces
    /// through it.
    pub(crate) async fn shared(pool: PgPool, meta: Arc<dyn MetaStore>) -> Result<Self, StoreError> {
        let tx = broadcast::channel(BACKLOG).0;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(listen(listener, pool.clone(), meta, tx.clone()));
        Ok(EventBus {
            tx,
            watchers: Arc::default(),
            pg: Some(pool),
        })
    }

    /// Announces a change of file `id`; `record` is its new state (None for a deletion).
    pub(crate) async fn announce(&self, kind: &str, id: &str, record: Option<&FileRecord>) {
        if let Some(pool) = &self.pg {
            let payload = json!({ "kind": kind, "id": id }).to_string();
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(pool)
                .await;
            match sent {
                Ok(_) => return,
                // Other nodes miss it; this node's subscribers still learn of it below.
                Err(e) => tracing::warn!("cannot notify other nodes of {kind} {id}: {e}"),
            }
        }
        self.deliver(kind, id, record);
    }

    fn deliver(&self, kind: &str, id: &str, record: Option<&FileRecord>) {
        let data = match record {
            Some(r) => serde_json::to_string(r).unwrap_or_default(),
            None => json!({ "id": id }).to_string(),
        };
        // No subscribers is fine.
        self.tx
            .send(Event {
                kind: kind.to_string(),
                data,
            })
            .ok();
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A receiver for this process's own use, for as long as the process runs.
    pub(crate) fn watch(&self) -> broadcast::Receiver<Event> {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        self.tx.subscribe()
    }

    pub(crate) fn subscribers(&self) -> usize {
        self.tx
            .receiver_count()
            .saturating_sub(self.watchers.load(Ordering::Relaxed))
    }
}

/// Hands every notification to this node's subscribers, reconnecting when the database goes
/// away (a `resync` then says that events may have been missed meanwhile).
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    meta: Arc<dyn MetaStore>,
    tx: broadcast::Sender<Event>,
) {
    let bus = EventBus {
        tx,
        watchers: Arc::default(),
        pg: None,
    };
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(n.payload()) else {
                    continue;
                };
                let (Some(kind), Some(id)) = (v["kind"].as_str(), v["id"].as_str()) else {
                    continue;
                };
                if kind == "file.deleted" {
                    bus.deliver(kind, id, None);
                } else if let Ok(rec) = meta.get_file(id).await {
                    // A file deleted since is announced by its own deletion.
                    bus.deliver(kind, id, Some(&rec));
                }
            }
            // The connection was lost; the next call reconnects.
            Ok(None) => {
                bus.tx.send(resync()).ok();
            }
            Err(e) => {
                tracing::warn!("event listener: {e}; listening again in {RECONNECT:?}");
                tokio::time::sleep(RECONNECT).await;
                if let Ok(mut l) = PgListener::connect_with(&pool).await
                    && l.listen(CHANNEL).await.is_ok()
                {
                    listener = l;
                    bus.tx.send(resync()).ok();
                }
            }
        }
    }
}

fn resync() -> Event {
    Event {
        kind: "resync".to_string(),
        data: "{}".to_string(),
    }
}

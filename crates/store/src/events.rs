//! Changes of the store, for subscribers (the server's `/api/events`) of every node.
//!
//! On SQLite one process owns the store, and events go through an in-process channel. On
//! PostgreSQL every process may change it, so an event is a `NOTIFY` on one channel, and each
//! process's listener (sqlx's `PgListener`) hands what arrives to its own subscribers, its own
//! events included.
//!
//! An event is a kind and a file's id, nothing more: a subscriber that wants the record asks
//! for it (`GET /api/files/ID`), so what it sees is what the node serves. The buffer a slow
//! subscriber can hold up is [`BACKLOG`] events of at most [`MAX_EVENT_BYTES`] each, whatever
//! the files (a record with 10,000 tags is no larger an event); one that falls further behind
//! is told to `resync`.

use crate::StoreError;
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
pub const BACKLOG: usize = 1024;
/// The largest event's data: `{"id":"…"}` with an id of at most [`MAX_ID_BYTES`].
pub const MAX_EVENT_BYTES: usize = MAX_ID_BYTES + 10;
/// Ids longer than this (none the store makes) are not announced.
const MAX_ID_BYTES: usize = 64;
/// A listener whose connection failed waits this long before it connects again.
const RECONNECT: Duration = Duration::from_secs(1);

/// One change: `file.created`, `file.updated`, `file.tagged`, `file.deleted` (data, for each:
/// `{"id": FILE_ID}`), or `resync` (data: `{}`: events may have been missed, reload the view).
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
    pub(crate) async fn shared(pool: PgPool) -> Result<Self, StoreError> {
        let tx = broadcast::channel(BACKLOG).0;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(listen(listener, pool.clone(), tx.clone()));
        Ok(EventBus {
            tx,
            watchers: Arc::default(),
            pg: Some(pool),
        })
    }

    /// Announces a change of file `id`.
    pub(crate) async fn announce(&self, kind: &str, id: &str) {
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
        self.deliver(kind, id);
    }

    fn deliver(&self, kind: &str, id: &str) {
        if id.len() > MAX_ID_BYTES {
            tracing::warn!("not announcing {kind} of an id of {} bytes", id.len());
            return;
        }
        // No subscribers is fine.
        self.tx
            .send(Event {
                kind: kind.to_string(),
                data: json!({ "id": id }).to_string(),
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
async fn listen(mut listener: PgListener, pool: PgPool, tx: broadcast::Sender<Event>) {
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
                bus.deliver(kind, id);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber that never reads holds up at most BACKLOG small events, then is told it
    /// lagged (the server sends it `resync`); what it is sent never grows with a file's tags.
    #[tokio::test]
    async fn a_subscriber_that_never_reads_holds_a_bounded_buffer() {
        let bus = EventBus::local();
        let mut idle = bus.subscribe();
        let id = "0".repeat(32);
        for _ in 0..3 * BACKLOG {
            bus.announce("file.tagged", &id).await;
        }
        // The oldest were dropped, not kept for it: what it can still read is BACKLOG events.
        assert!(matches!(
            idle.recv().await,
            Err(broadcast::error::RecvError::Lagged(n)) if n == 2 * BACKLOG as u64
        ));
        for _ in 0..BACKLOG {
            let e = idle.try_recv().unwrap();
            assert!(e.data.len() <= MAX_EVENT_BYTES, "{}", e.data);
            assert_eq!(e.data, format!("{{\"id\":\"{id}\"}}"));
        }
        assert!(idle.try_recv().is_err());
        // An id no store makes is not announced at all.
        let mut fresh = bus.subscribe();
        bus.announce("file.tagged", &"x".repeat(MAX_ID_BYTES + 1))
            .await;
        assert!(fresh.try_recv().is_err());
    }
}

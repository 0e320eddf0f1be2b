//! Server-sent events: what changed in the store, for pages that show it live.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use serde::Serialize;
use std::convert::Infallible;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// One change: `file.created`, `file.updated`, `file.tagged` (data: the file record) or
/// `file.deleted` (data: `{"id": ...}`).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub data: String,
}

#[derive(Clone)]
pub struct EventBus(broadcast::Sender<Event>);

impl Default for EventBus {
    fn default() -> Self {
        // A slow subscriber that falls this far behind misses events and is told so.
        EventBus(broadcast::channel(1024).0)
    }
}

impl EventBus {
    pub fn send(&self, kind: &'static str, data: &impl Serialize) {
        if let Ok(data) = serde_json::to_string(data) {
            // No subscribers is fine.
            self.0.send(Event { kind, data }).ok();
        }
    }
    pub fn subscribers(&self) -> usize {
        self.0.receiver_count()
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(events))
}

/// Server-sent events of store changes.
#[utoipa::path(get, path = "/api/events", tag = "events",
    responses((status = 200, description = "text/event-stream of file.created, file.updated, file.tagged, file.deleted", content_type = "text/event-stream")))]
pub(crate) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(state.events.subscribe()).map(|e| {
        Ok(match e {
            Ok(ev) => SseEvent::default().event(ev.kind).data(ev.data),
            // Lagged: tell the page to reload its view rather than show a stale one.
            Err(_) => SseEvent::default().event("resync").data("{}"),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

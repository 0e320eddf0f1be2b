//! Server-sent events: what changed in the store, on this node or any other sharing it (the
//! store delivers them: see `disgrafs_store::Event`), for pages that show it live. Each event's
//! data is `{"id": FILE_ID}` only: a subscriber fetches the record it wants, and one that does
//! not read holds up at most the store's bounded backlog of such small events, then gets
//! `resync`.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use std::convert::Infallible;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(events))
}

/// Server-sent events of store changes.
#[utoipa::path(get, path = "/api/events", tag = "events",
    responses((status = 200, description = "text/event-stream of file.created, file.updated, file.tagged, file.deleted, each with data {\"id\": FILE_ID} (fetch the record by id), and resync (data {}: events were missed, reload)", content_type = "text/event-stream")))]
pub(crate) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(state.store.subscribe()).map(|e| {
        Ok(match e {
            Ok(ev) => SseEvent::default().event(ev.kind).data(ev.data),
            // Lagged: tell the page to reload its view rather than show a stale one.
            Err(_) => SseEvent::default().event("resync").data("{}"),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

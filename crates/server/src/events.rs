//! Server-sent events: what changed in the store, on this node or any other sharing it (the
//! store delivers them: see `disgrafs_store::Event`), for pages that show it live. Each event's
//! data is `{"id": FILE_ID}` only: a subscriber fetches the record it wants, and one that does
//! not read holds up at most the store's bounded backlog of such small events, then gets
//! `resync`.

use crate::AppState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use disgrafs_store::{Event, Principal, Viewer};
use futures::{Stream, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio_stream::wrappers::BroadcastStream;

/// How many ids of files a subscriber was told of are remembered, so that their deletion is
/// told too (a deleted file can no longer be looked up).
const SEEN: usize = 4096;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(events))
}

/// The ids a subscriber was told of, the oldest forgotten first.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn insert(&mut self, id: &str) {
        if self.ids.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            if self.order.len() > SEEN
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }
}

/// Whether subscriber `who` may be told of `ev`: a change of a file it sees (one lookup of the
/// record per event, through the store's one rule), or the deletion of one it was told of.
async fn tell(state: &AppState, who: &Viewer, seen: &Mutex<Seen>, ev: &Event) -> bool {
    if *who == Viewer::All {
        return true;
    }
    let Some(id) = serde_json::from_str::<serde_json::Value>(&ev.data)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
    else {
        return false;
    };
    if ev.kind == "file.deleted" {
        return seen.lock().expect("seen ids").ids.contains(&id);
    }
    let shown = state.store.file(who, &id).await.is_ok();
    if shown {
        seen.lock().expect("seen ids").insert(&id);
    }
    shown
}

/// Server-sent events of store changes, of the files the subscriber sees.
#[utoipa::path(get, path = "/api/events", tag = "events",
    responses((status = 200, description = "text/event-stream of file.created, file.updated, file.tagged, file.deleted, each with data {\"id\": FILE_ID} (fetch the record by id), and resync (data {}: events were missed, reload); only of files the credential sees", content_type = "text/event-stream")))]
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let viewer = who.viewer();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stream = BroadcastStream::new(state.store.subscribe()).filter_map(move |e| {
        let (state, seen) = (state.clone(), seen.clone());
        async move {
            Some(Ok(match e {
                Ok(ev) if tell(&state, &viewer, &seen, &ev).await => {
                    SseEvent::default().event(ev.kind).data(ev.data)
                }
                Ok(_) => return None,
                // Lagged: tell the page to reload its view rather than show a stale one.
                Err(_) => SseEvent::default().event("resync").data("{}"),
            }))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

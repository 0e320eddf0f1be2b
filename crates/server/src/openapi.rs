//! The OpenAPI document, generated from the handlers' annotations.

use crate::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "disgrafs", description = "A graph file system: files, tags and the graph between them."),
    paths(
        crate::files::health, crate::files::list, crate::files::upload_raw, crate::files::upload_multipart,
        crate::files::get_file, crate::files::delete_file, crate::download::content, crate::files::add_tags,
        crate::files::remove_tags, crate::files::related, crate::files::retag, crate::graph::graph,
        crate::graph::tags, crate::graph::cooccurrence, crate::events::events,
        crate::tus::options, crate::tus::create, crate::tus::head, crate::tus::patch, crate::tus::terminate,
        crate::recent::recent,
    ),
    tags(
        (name = "files", description = "Upload, list, search, download, delete"),
        (name = "tags", description = "User and automatic tags"),
        (name = "graph", description = "The graph of files and tags"),
        (name = "events", description = "Live changes"),
        (name = "metrics", description = "The dashboard's figures over the last minutes (Prometheus text is at /metrics)"),
        (name = "tus", description = "Resumable uploads, tus 1.0 (core, creation, creation-with-upload, termination, expiration)"),
    )
)]
pub struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}

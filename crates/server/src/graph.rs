//! The graph: bounded subgraphs for drawing, tag listings for autocomplete, tag co-occurrence.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::Query;
use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use disgrafs_core::api::{CoList, TagList};
use disgrafs_core::query::{Expr, Predicate};
use disgrafs_core::{Graph, normalize_tag, query};
use disgrafs_store::Principal;
use serde::Deserialize;

/// Most nodes one graph response may carry.
pub const MAX_GRAPH_NODES: u32 = 50_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/graph", get(graph))
        .route("/api/tags", get(tags))
        .route("/api/tags/cooccurrence", get(cooccurrence))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct GraphParams {
    /// Files to draw (the query language of /api/files); all files when absent.
    q: Option<String>,
    /// Most nodes (files and tags), default 2000, at most 50000.
    limit: Option<u32>,
    /// Node ids (`t:TAG`, `f:FILE_ID`, comma-separated) whose neighbourhood to draw: the files
    /// that carry these tags, or share a tag with these files. Combined with `q` by AND.
    around: Option<String>,
}

/// The subgraph of the matching files and their tags, newest files first.
#[utoipa::path(get, path = "/api/graph", tag = "graph", params(GraphParams),
    responses((status = 200, body = Graph), (status = 400, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn graph(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<GraphParams>,
) -> ApiResult<Json<Graph>> {
    let mut expr = query::parse(p.q.as_deref().unwrap_or(""))?;
    if let Some(around) = p.around.as_deref().filter(|a| !a.trim().is_empty()) {
        let nodes: Vec<&str> = around.split(',').map(str::trim).collect();
        if nodes.len() > query::MAX_TERMS {
            return Err(ApiError::new(
                Cause::BadQuery,
                format!(
                    "around: {} nodes; at most {} (MAX_TERMS) are allowed",
                    nodes.len(),
                    query::MAX_TERMS
                ),
            ));
        }
        let mut tags = Vec::new();
        for node in nodes {
            if let Some(t) = node.strip_prefix("t:") {
                tags.push(
                    normalize_tag(t)
                        .map_err(|e| ApiError::bad_request(format!("around: tag '{t}': {e}")))?,
                );
            } else if let Some(f) = node.strip_prefix("f:") {
                tags.extend(
                    state
                        .store
                        .file(&who.viewer(), f)
                        .await?
                        .tags
                        .into_iter()
                        .map(|t| t.name),
                );
            } else {
                return Err(ApiError::bad_request(format!(
                    "around: '{node}' is not a node id (t:TAG or f:FILE_ID)"
                )));
            }
        }
        tags.sort();
        tags.dedup();
        let near = Expr::Or(
            tags.into_iter()
                .map(|t| Expr::Pred(Predicate::Tag(t)))
                .collect(),
        );
        expr = Expr::And(vec![expr, near]);
        // The neighbourhood of a file is as many terms as it has tags: bounded like a query.
        query::bound(&expr).map_err(|e| ApiError::from(e).context("around"))?;
    }
    let limit = p.limit.unwrap_or(2000).clamp(1, MAX_GRAPH_NODES);
    Ok(Json(state.store.graph(&who.viewer(), &expr, limit).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct TagParams {
    /// Only tags that start with this.
    prefix: Option<String>,
    limit: Option<u32>,
}

/// Tags by how many files carry them.
#[utoipa::path(get, path = "/api/tags", tag = "tags", params(TagParams), responses((status = 200, body = TagList)))]
pub(crate) async fn tags(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<TagParams>,
) -> ApiResult<Json<TagList>> {
    let tags = state
        .store
        .tags(
            &who.viewer(),
            p.prefix.as_deref().unwrap_or(""),
            p.limit.unwrap_or(50).min(1000),
        )
        .await?;
    Ok(Json(TagList { tags }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct CoParams {
    limit: Option<u32>,
}

/// Pairs of tags that appear on the same files, most frequent first.
#[utoipa::path(get, path = "/api/tags/cooccurrence", tag = "tags", params(CoParams), responses((status = 200, body = CoList)))]
pub(crate) async fn cooccurrence(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<CoParams>,
) -> ApiResult<Json<CoList>> {
    let pairs = state
        .store
        .cooccurrence(&who.viewer(), p.limit.unwrap_or(50).min(1000))
        .await?;
    Ok(Json(CoList { pairs }))
}

//! File records: upload (raw `PUT`, multipart `POST`), list and search, read, delete, tags,
//! neighbours.

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::multipart::Multipart;
use crate::{AppState, download, limits, upload};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use disgrafs_core::api::{
    FileList, Health, RelatedList, RetagQueued, ShareBody, TagsBody, Uploaded,
};
use disgrafs_core::{FileName, FileRecord, FolderPath, normalize_tag, query};
use disgrafs_store::{ListOptions, Principal, Retag, SortKey};
use serde::Deserialize;

pub(crate) fn routes() -> Router<AppState> {
    object_routes()
        .route("/api/health", get(health))
        .route(
            "/api/files",
            get(list).post(upload_multipart).put(upload_raw),
        )
        .route("/api/files/{id}", delete(delete_file))
        .route("/api/files/{id}/tags", post(add_tags).delete(remove_tags))
        .route("/api/files/{id}/related", get(related))
        .route("/api/files/{id}/group", put(share))
        .route("/api/retag", post(retag))
}

/// A file's record and content: read-only, also served by the AF_XDP fast path.
pub(crate) fn object_routes() -> Router<AppState> {
    Router::new()
        .route("/api/files/{id}", get(get_file))
        .route("/api/files/{id}/content", get(download::content))
}

/// Liveness, with the store's counts.
#[utoipa::path(get, path = "/api/health", tag = "files", responses((status = 200, body = Health)))]
pub(crate) async fn health(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Health>> {
    let s = state.store.stats(&who.viewer()).await?;
    let j = state.store.job_stats().await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        files: s.files,
        blobs: s.blobs,
        bytes: s.bytes,
        tags: s.tags,
        jobs_queued: j.queued,
        jobs_running: j.running,
        jobs_failed: j.failed,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ListParams {
    /// Query: tags with AND, OR, NOT, parentheses; fields name:, kind:, mime:, ext:, hash:,
    /// size, created, modified.
    q: Option<String>,
    limit: Option<u32>,
    /// Files to skip; beyond the last file the page is empty.
    offset: Option<u64>,
    /// name | size | mime | created | modified | relevance (type and date are aliases);
    /// relevance (the default for a query with `text:` terms) ranks by how well the text matches
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    /// asc | desc
    #[param(schema_with = order_schema)]
    order: Option<String>,
}

/// The `sort` values [`SortKey::parse`] takes.
const SORTS: [&str; 8] = [
    "name",
    "size",
    "mime",
    "type",
    "created",
    "modified",
    "date",
    "relevance",
];
const ORDERS: [&str; 2] = ["asc", "desc"];

fn string_enum(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

fn sort_schema() -> utoipa::openapi::Object {
    string_enum(&SORTS)
}

fn order_schema() -> utoipa::openapi::Object {
    string_enum(&ORDERS)
}

/// Lists the files matching a query.
#[utoipa::path(get, path = "/api/files", tag = "files", params(ListParams),
    responses((status = 200, body = FileList), (status = 400, description = "malformed query", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<FileList>> {
    let expr = query::parse(p.q.as_deref().unwrap_or(""))?;
    let sort = match p.sort.as_deref() {
        None if !expr.text_terms().is_empty() => SortKey::Relevance,
        None => SortKey::Modified,
        Some(s) => SortKey::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown sort '{s}'; use one of {}",
                SORTS.join(", ")
            ))
        })?,
    };
    let descending = match p.order.as_deref() {
        None => matches!(
            sort,
            SortKey::Modified | SortKey::Created | SortKey::Size | SortKey::Relevance
        ),
        Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "unknown order '{o}'; use asc or desc"
            )));
        }
    };
    let opts = ListOptions {
        sort,
        descending,
        limit: p.limit.unwrap_or(100).min(10_000),
        // The store counts in i64: a larger offset is past the end all the same (and would
        // wrap negative, which SQLite reads as 0: the first page).
        offset: p.offset.unwrap_or(0).min(i64::MAX as u64),
    };
    let (files, total) = state.store.list(&who.viewer(), &expr, opts).await?;
    Ok(Json(FileList { files, total }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct PutParams {
    /// The file's name (a label, never a path).
    #[param(min_length = 1)]
    name: String,
    /// The relative folder it comes from (`photos/2024`); each folder also tags the file.
    folder: Option<String>,
}

/// Uploads one file as the raw request body, streamed to disk.
#[utoipa::path(put, path = "/api/files", tag = "files", params(PutParams),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "the file's bytes; none for an empty file"),
    responses((status = 201, body = FileRecord), (status = 400, body = disgrafs_core::api::ErrorBody),
        (status = 413, body = disgrafs_core::api::ErrorBody), (status = 422, body = disgrafs_core::api::ErrorBody),
        (status = 507, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn upload_raw(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<PutParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<FileRecord>)> {
    // Refuse a bad name before reading the body.
    let name = FileName::new(p.name)?;
    let folder = FolderPath::new(p.folder.as_deref().unwrap_or(""))?;
    let expected = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let staged = upload::stage(&state, &who, body.into_data_stream(), expected, 0).await?;
    let rec = upload::publish(&state, &who, staged, &folder, &name).await?;
    Ok((StatusCode::CREATED, Json(rec)))
}

/// The multipart body as the OpenAPI document describes it: at least one file part (the field's
/// name is free; every part with a filename is a file).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the body for the OpenAPI document only")]
pub(crate) struct MultipartFiles {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads one or more files as `multipart/form-data` parts that carry a filename. A filename may
/// be a relative path (`docs/api/README.md`, as a folder upload names its files): the file then
/// keeps that folder. All parts are staged before any is stored: a request that fails half-way
/// stores nothing.
#[utoipa::path(post, path = "/api/files", tag = "files",
    request_body(content = MultipartFiles, content_type = "multipart/form-data", description = "one or more parts with a filename"),
    responses((status = 201, body = Uploaded), (status = 400, body = disgrafs_core::api::ErrorBody),
        (status = 413, body = disgrafs_core::api::ErrorBody), (status = 422, body = disgrafs_core::api::ErrorBody),
        (status = 507, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn upload_multipart(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    mut mp: Multipart,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let mut staged = Vec::new();
    let mut total = 0u64;
    while let Some(field) = mp.next_field().await? {
        let Some(raw) = field.file_name().map(str::to_owned) else {
            // Plain form fields carry no file.
            continue;
        };
        let (folder, name) = FolderPath::split_file_path(raw.as_str())
            .map_err(|e| ApiError::from(e).context(&format!("'{}'", raw.escape_debug())))?;
        // A part's read error is the multipart body's refusal (a bound the guard saw: 413).
        let part = futures::TryStreamExt::map_err(field, crate::multipart::refusal);
        let mut blob = upload::stage(&state, &who, part, None, total).await?;
        total += blob.size;
        // Typed now, so the head need not wait in memory for the other parts.
        let detected = disgrafs_tagger::detect(&blob.head, &name);
        blob.head = Vec::new();
        staged.push((blob, folder, name, detected));
    }
    if staged.is_empty() {
        return Err(ApiError::bad_request(
            "multipart body has no file part (a part with a filename)",
        ));
    }
    let mut files = Vec::with_capacity(staged.len());
    for (blob, folder, name, detected) in staged {
        files.push(upload::publish_detected(&state, &who, blob, &folder, &name, &detected).await?);
    }
    Ok((StatusCode::CREATED, Json(Uploaded { files })))
}

/// A file's record.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    responses((status = 200, body = FileRecord), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn get_file(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileRecord>> {
    Ok(Json(state.store.file(&who.viewer(), &id).await?))
}

/// Deletes a file record; its content goes when no other record uses it. Only the file's owner
/// (or an admin) may: another's file is 404.
#[utoipa::path(delete, path = "/api/files/{id}", tag = "files",
    responses((status = 204), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn delete_file(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete(&who.viewer(), &id).await?;
    state.store.announce_deleted(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The request's tags, normalised and de-duplicated (first occurrence kept), after the file's
/// existence is checked: a request for an unknown file costs no work on its tags.
async fn normalized(
    state: &AppState,
    who: &Principal,
    id: &str,
    tags: &[String],
) -> ApiResult<Vec<String>> {
    if tags.is_empty() {
        return Err(ApiError::bad_request("no tags given"));
    }
    if tags.len() > limits::MAX_TAGS {
        return Err(ApiError::too_large(format!(
            "{} tags given; at most {} per request",
            tags.len(),
            limits::MAX_TAGS
        )));
    }
    state.store.file(&who.viewer(), id).await?;
    let mut seen = std::collections::HashSet::with_capacity(tags.len());
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        let n = normalize_tag(t)
            .map_err(|e| ApiError::from(e).context(&format!("tag '{}'", t.escape_debug())))?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Adds user tags to a file.
#[utoipa::path(post, path = "/api/files/{id}/tags", tag = "tags", request_body = TagsBody,
    responses((status = 200, body = FileRecord), (status = 404, body = disgrafs_core::api::ErrorBody), (status = 422, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn add_tags(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<TagsBody>,
) -> ApiResult<Json<FileRecord>> {
    let tags = normalized(&state, &who, &id, &b.tags).await?;
    let rec = state.store.add_user_tags(&who.viewer(), &id, &tags).await?;
    state.store.announce("file.updated", &rec).await;
    Ok(Json(rec))
}

/// Removes user tags from a file; an automatic tag named here is hidden on this file.
#[utoipa::path(delete, path = "/api/files/{id}/tags", tag = "tags", request_body = TagsBody,
    responses((status = 200, body = FileRecord), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn remove_tags(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<TagsBody>,
) -> ApiResult<Json<FileRecord>> {
    let tags = normalized(&state, &who, &id, &b.tags).await?;
    let rec = state.store.remove_tags(&who.viewer(), &id, &tags).await?;
    state.store.announce("file.updated", &rec).await;
    Ok(Json(rec))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct LimitParam {
    limit: Option<u32>,
}

/// Files that share tags with this one, by weighted overlap.
#[utoipa::path(get, path = "/api/files/{id}/related", tag = "graph", params(LimitParam),
    responses((status = 200, body = RelatedList), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn related(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(p): Query<LimitParam>,
) -> ApiResult<Json<RelatedList>> {
    let related = state
        .store
        .related(&who.viewer(), &id, p.limit.unwrap_or(20).min(500))
        .await?;
    Ok(Json(RelatedList { related }))
}

/// Shares a file, read-only, with a group (`{"group": null}`: with nobody). Only the file's owner
/// (or an admin) may; another's file is 404, an unknown group 422.
#[utoipa::path(put, path = "/api/files/{id}/group", tag = "files", request_body = ShareBody,
    responses((status = 200, body = FileRecord), (status = 404, body = disgrafs_core::api::ErrorBody),
        (status = 422, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn share(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ShareBody>,
) -> ApiResult<Json<FileRecord>> {
    let rec = state
        .store
        .share(&who.viewer(), &id, b.group.as_deref())
        .await?;
    state.store.announce("file.updated", &rec).await;
    Ok(Json(rec))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct RetagParams {
    /// Re-run every extractor on every content, not only where an extractor's version rose.
    all: Option<bool>,
}

/// Queues automatic tagging again, of every user's contents (so an admin token's alone). User
/// tags are never touched.
#[utoipa::path(post, path = "/api/retag", tag = "tags", params(RetagParams),
    responses((status = 202, body = RetagQueued), (status = 403, description = "not an admin token", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn retag(
    State(state): State<AppState>,
    Query(p): Query<RetagParams>,
) -> ApiResult<(StatusCode, Json<RetagQueued>)> {
    let which = if p.all.unwrap_or(false) {
        Retag::All
    } else {
        Retag::Outdated(crate::jobs::extractor_versions())
    };
    let queued = state.store.enqueue_retag(which).await?;
    state.wake_workers();
    Ok((StatusCode::ACCEPTED, Json(RetagQueued { queued })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn documented_sorts_are_the_ones_the_store_takes() {
        for s in super::SORTS {
            assert!(disgrafs_store::SortKey::parse(s).is_some(), "{s}");
        }
    }
}

//! Resumable uploads, tus 1.0: core, creation (and creation-with-upload), termination,
//! expiration, and OPTIONS discovery, at `/api/uploads/`.
//!
//! An upload lives in the stores, not on this node (`disgrafs_store::Store::create_upload` and
//! the rest): a row of the metadata store and its parts in the blob store, so an upload begun
//! through one node resumes through any other. Its offset is the sum of its durable parts, so it
//! never claims bytes that are not there; a request writes it only under the upload's lease in
//! the database. When the last byte arrives, the parts are hashed and committed like any upload.

use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::Path;
use crate::{AppState, limits, upload};
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use disgrafs_core::api::FILE_ID_HEADER;
use disgrafs_core::{FileName, FolderPath};
use disgrafs_store::{PartStop, Principal, UploadLease, UploadRow};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
const OFFSET_CT: &str = "application/offset+octet-stream";
/// The header that declares an upload's size (the OpenAPI document bounds it by the configuration).
pub(crate) const UPLOAD_LENGTH: &str = "upload-length";
/// A PATCH waits this long for another PATCH of the same upload (say, from a connection the
/// client gave up on) to let go.
const LOCK_WAIT: Duration = Duration::from_secs(10);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/uploads", axum::routing::options(options).post(create))
        .route(
            "/api/uploads/",
            axum::routing::options(options).post(create),
        )
        .route(
            "/api/uploads/{id}",
            axum::routing::patch(patch)
                .head(head)
                .delete(terminate)
                .options(options),
        )
}

/// The header every tus request but OPTIONS carries (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header, names("Tus-Resumable"))]
#[allow(
    dead_code,
    reason = "only describes the header; check_version reads it"
)]
pub(crate) struct TusResumable(
    /// The protocol version: 1.0.0; anything else is refused with 412.
    #[param(pattern = "^1\\.0\\.0$")]
    String,
);

fn tus_headers(h: &mut HeaderMap) {
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn with_tus(status: StatusCode, mut h: HeaderMap) -> Response {
    tus_headers(&mut h);
    (status, h).into_response()
}

/// Every request but OPTIONS must speak our version.
fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        Some(v) => Err(ApiError::new(
            Cause::TusVersion,
            format!("tus version {v} is not supported; use {TUS_VERSION}"),
        )),
        None => Err(ApiError::new(
            Cause::TusVersion,
            "missing Tus-Resumable header",
        )),
    }
}

fn tus_error(e: ApiError) -> Response {
    let mut r = e.into_response();
    tus_headers(r.headers_mut());
    r
}

fn header_u64(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer"))),
    }
}

/// The folder of an upload, from its `relativePath` metadata (tus-js-client's and Uppy's key for
/// a folder upload's `a/b/name`).
fn folder_of(meta: &BTreeMap<String, String>) -> ApiResult<FolderPath> {
    Ok(match meta.get("relativePath") {
        Some(p) => FolderPath::split_file_path(p)?.0,
        None => FolderPath::default(),
    })
}

fn parse_metadata(raw: &str) -> ApiResult<BTreeMap<String, String>> {
    disgrafs_core::tus::parse_metadata(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn expires_at(state: &AppState) -> HeaderValue {
    let t = time::OffsetDateTime::now_utc() + state.config.upload_expiry;
    let f = t
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    HeaderValue::from_str(&f.replace("+0000", "GMT")).unwrap_or(HeaderValue::from_static(""))
}

/// tus discovery: version, extensions, largest upload.
#[utoipa::path(options, path = "/api/uploads/", tag = "tus", responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size")))]
pub(crate) async fn options(State(state): State<AppState>) -> Response {
    let mut h = HeaderMap::new();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert("tus-max-size", HeaderValue::from(state.config.max_upload));
    with_tus(StatusCode::NO_CONTENT, h)
}

/// Creates an upload (tus creation); a body with `Content-Type: application/offset+octet-stream`
/// is its first bytes (creation-with-upload).
#[utoipa::path(post, path = "/api/uploads/", tag = "tus",
    params(TusResumable,
        ("Upload-Length" = u64, Header, description = "The upload's size in bytes, at most Tus-Max-Size"),
        ("Upload-Metadata" = String, Header, description = "Comma-separated `key base64(value)` pairs; `filename` is required; `relativePath` (`a/b/name`) keeps the file's folder")),
    responses((status = 201, description = "Location of the new upload (also on a failed creation-with-upload, to resume)"),
        (status = 400, body = disgrafs_core::api::ErrorBody), (status = 412, description = "missing or unsupported Tus-Resumable", body = disgrafs_core::api::ErrorBody),
        (status = 413, body = disgrafs_core::api::ErrorBody), (status = 422, body = disgrafs_core::api::ErrorBody),
        (status = 503, description = "too many uploads in progress", body = disgrafs_core::api::ErrorBody),
        (status = 507, description = "over the user's quota", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match create_inner(&state, &who, &headers, body).await {
        Ok(r) => r,
        Err(e) => tus_error(e),
    }
}

async fn create_inner(
    state: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "Upload-Defer-Length is not supported; send Upload-Length",
        ));
    }
    let length = header_u64(headers, UPLOAD_LENGTH)?
        .ok_or_else(|| ApiError::bad_request("missing Upload-Length header"))?;
    upload::Allowance::of(state, who, 0).await?.check(length)?;
    let raw_meta = headers
        .get("upload-metadata")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let meta = parse_metadata(&raw_meta)?;
    let name = meta
        .get("filename")
        .or_else(|| meta.get("name"))
        .cloned()
        .ok_or_else(|| ApiError::invalid("Upload-Metadata must carry a filename"))?;
    let name = FileName::new(name)?;
    // Refused at creation when hostile; the folder is read again from the stored metadata when
    // the upload completes (on whichever node that is).
    folder_of(&meta)?;
    let row = state
        .store
        .create_upload(
            Some(who.user_id),
            length,
            &name,
            &raw_meta,
            (
                limits::MAX_LIVE_UPLOADS as u64,
                limits::MAX_LIVE_UPLOADS_PER_USER as u64,
            ),
        )
        .await?;
    let id = row.id.clone();

    let location = HeaderValue::from_str(&format!("/api/uploads/{id}")).expect("ascii");
    let mut h = HeaderMap::new();
    h.insert(header::LOCATION, location.clone());
    h.insert("upload-expires", expires_at(state));
    let with_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some(OFFSET_CT);
    if with_body || length == 0 {
        let appended = async {
            let lease = state.store.lock_upload(&id, LOCK_WAIT).await?;
            append(state, who, &lease, 0, body.into_data_stream()).await
        };
        match appended.await {
            Ok((offset, file_id)) => {
                h.insert("upload-offset", HeaderValue::from(offset));
                if let Some(f) = file_id {
                    h.insert(FILE_ID_HEADER, HeaderValue::from_str(&f).expect("uuid"));
                }
            }
            Err(e) => {
                // The upload exists and keeps what arrived: say where, so the client resumes.
                let mut r = tus_error(e);
                r.headers_mut().insert(header::LOCATION, location);
                return Ok(r);
            }
        }
    }
    Ok(with_tus(StatusCode::CREATED, h))
}

/// Where an upload stands.
#[utoipa::path(head, path = "/api/uploads/{id}", tag = "tus", params(TusResumable),
    responses((status = 200, description = "Upload-Offset, Upload-Length, and Disgrafs-File-Id once complete"), (status = 404),
        (status = 412, description = "missing or unsupported Tus-Resumable")))]
pub(crate) async fn head(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        check_version(&headers)?;
        let mut row = state.store.upload(&who.viewer(), &id).await?;
        if row.file_id.is_none() && row.offset == row.length {
            // Every byte is here but the record is not (a failure after the last byte): finish
            // now, or a client that sees the full offset reports success for nothing stored.
            let lease = state.store.lock_upload(&id, LOCK_WAIT).await?;
            row = state.store.upload(&who.viewer(), &id).await?;
            if row.file_id.is_none() {
                row.file_id = Some(complete(&state, &who, &lease, &row).await?);
            }
        }
        let mut h = HeaderMap::new();
        h.insert("upload-offset", HeaderValue::from(row.offset));
        h.insert(UPLOAD_LENGTH, HeaderValue::from(row.length));
        if !row.metadata.is_empty()
            && let Ok(v) = HeaderValue::from_str(&row.metadata)
        {
            h.insert("upload-metadata", v);
        }
        if let Some(f) = &row.file_id {
            h.insert(FILE_ID_HEADER, HeaderValue::from_str(f).expect("uuid"));
        }
        Ok::<_, ApiError>(with_tus(StatusCode::OK, h))
    }
    .await;
    // HEAD responses carry no body: an error is its status alone.
    r.unwrap_or_else(|e| with_tus(e.status(), HeaderMap::new()))
}

/// Appends bytes at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/uploads/{id}", tag = "tus",
    params(TusResumable, ("Upload-Offset" = u64, Header, description = "The upload's current offset")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "new Upload-Offset"), (status = 404, body = disgrafs_core::api::ErrorBody),
        (status = 412, description = "missing or unsupported Tus-Resumable", body = disgrafs_core::api::ErrorBody),
        (status = 409, description = "offset mismatch", body = disgrafs_core::api::ErrorBody), (status = 415, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn patch(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match patch_inner(&state, &who, &id, &headers, body).await {
        Ok(r) => r,
        Err(e) => tus_error(e),
    }
}

async fn patch_inner(
    state: &AppState,
    who: &Principal,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(headers)?;
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(OFFSET_CT)
    {
        return Err(ApiError::new(
            Cause::UnsupportedMediaType,
            format!("PATCH needs Content-Type: {OFFSET_CT}"),
        ));
    }
    let offset = header_u64(headers, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("missing Upload-Offset header"))?;
    state.store.upload(&who.viewer(), id).await?;
    // The lease is taken once bytes arrive: a client that opens a PATCH and sends nothing (a
    // half-open connection) keeps no one else from resuming or cancelling.
    let mut stream = body.into_data_stream();
    let first = stream.next().await;
    let lease = state.store.lock_upload(id, LOCK_WAIT).await?;
    let body = futures::stream::iter(first).chain(stream);
    let (new_offset, file_id) = append(state, who, &lease, offset, body).await?;
    // Let go at once, so the client's next PATCH (on any node) finds the upload free.
    lease.release().await.ok();
    let mut h = HeaderMap::new();
    h.insert("upload-offset", HeaderValue::from(new_offset));
    h.insert("upload-expires", expires_at(state));
    if let Some(f) = file_id {
        h.insert(FILE_ID_HEADER, HeaderValue::from_str(&f).expect("uuid"));
    }
    Ok(with_tus(StatusCode::NO_CONTENT, h))
}

/// Appends `body` at `offset` (which must be the current one) and, when the upload is then
/// complete, stores it. Returns the new offset and the stored file's id. The caller holds the
/// upload's lease.
async fn append(
    state: &AppState,
    who: &Principal,
    lease: &UploadLease,
    offset: u64,
    body: impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>>,
) -> ApiResult<(u64, Option<String>)> {
    let row = state.store.upload(&who.viewer(), lease.id()).await?;
    if offset != row.offset {
        return Err(ApiError::new(
            Cause::OffsetMismatch,
            format!(
                "Upload-Offset is {offset} but the upload has {} bytes",
                row.offset
            ),
        ));
    }
    if row.file_id.is_some() {
        return Ok((row.offset, row.file_id));
    }
    let appended = state
        .store
        .append_upload(lease, row.offset, row.length, body)
        .await?;
    match appended.stop {
        // The connection broke: what arrived is kept, so the client resumes from there.
        Some(PartStop::Body(e)) => {
            return Err(ApiError::bad_request(format!("upload interrupted: {e}")));
        }
        Some(PartStop::TooLong) => {
            return Err(ApiError::too_large(format!(
                "more bytes than the declared Upload-Length of {}",
                row.length
            )));
        }
        None => {}
    }
    if appended.offset < row.length {
        return Ok((appended.offset, None));
    }
    let file_id = complete(state, who, lease, &row).await?;
    Ok((appended.offset, Some(file_id)))
}

/// Stores a complete upload as a file and records its id. The parts stay until the id is
/// recorded: a failure anywhere before leaves the upload complete and retryable (the next PATCH
/// or HEAD at its full offset finishes it). The caller holds the upload's lease. The file is the
/// finishing request's user's.
async fn complete(
    state: &AppState,
    who: &Principal,
    lease: &UploadLease,
    row: &UploadRow,
) -> ApiResult<String> {
    let name = FileName::new(row.name.clone())?;
    let staged = state.store.stage_upload(lease).await?;
    let folder = folder_of(&parse_metadata(&row.metadata)?)?;
    let rec = upload::publish(state, who, staged, &folder, &name).await?;
    state.store.finish_upload(lease, &rec.id).await?;
    Ok(rec.id)
}

/// Cancels an upload and removes its bytes (tus termination).
#[utoipa::path(delete, path = "/api/uploads/{id}", tag = "tus", params(TusResumable), responses((status = 204), (status = 404, body = disgrafs_core::api::ErrorBody),
    (status = 412, description = "missing or unsupported Tus-Resumable", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn terminate(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        check_version(&headers)?;
        state.store.upload(&who.viewer(), &id).await?;
        let lease = state.store.lock_upload(&id, LOCK_WAIT).await?;
        state.store.delete_upload(lease).await?;
        Ok::<_, ApiError>(with_tus(StatusCode::NO_CONTENT, HeaderMap::new()))
    }
    .await;
    r.unwrap_or_else(tus_error)
}

/// Removes uploads untouched for longer than the expiry (tus expiration). Every node runs it;
/// an upload is removed under its lease, so one being written (on any node) is never cut.
pub(crate) fn spawn_expiry(state: AppState) {
    tokio::spawn(async move {
        // Looked at every ten minutes, or as often as the expiry itself when it is shorter.
        let every = state
            .config
            .upload_expiry
            .clamp(Duration::from_secs(1), Duration::from_secs(600));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let idle = match state.store.idle_uploads(state.config.upload_expiry).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!("cannot list expired uploads: {e}");
                    continue;
                }
            };
            for id in idle {
                if let Ok(lease) = state.store.lock_upload(&id, Duration::ZERO).await {
                    tracing::info!(upload = id, "removing expired upload");
                    if let Err(e) = state.store.delete_upload(lease).await {
                        tracing::warn!(upload = id, "cannot remove an expired upload: {e}");
                    }
                }
            }
        }
    });
}

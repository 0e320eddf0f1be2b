//! Resumable uploads, tus 1.0: core, creation (and creation-with-upload), termination,
//! expiration, and OPTIONS discovery, at `/api/uploads/`.
//!
//! An upload is two files in `data/tmp/tus/`: `<id>.part` (the bytes so far; its length *is* the
//! offset, so a crash can never make the offset claim bytes that are not there) and `<id>.json`
//! (declared length, metadata and, once complete, the stored file's id). When the last byte
//! arrives, the part is hashed and committed like any upload.

use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::Path;
use crate::{AppState, limits, upload};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use disgrafs_core::api::FILE_ID_HEADER;
use disgrafs_core::{FileName, FolderPath};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
const OFFSET_CT: &str = "application/offset+octet-stream";
/// A PATCH waits this long for another PATCH of the same upload (say, from a connection the
/// client gave up on) to let go.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Info {
    length: u64,
    name: FileName,
    /// From the `relativePath` metadata (tus-js-client's and Uppy's key for a folder upload's
    /// `a/b/name`): its folder.
    #[serde(default)]
    folder: FolderPath,
    /// The raw Upload-Metadata header, echoed on HEAD.
    metadata: String,
    #[serde(default)]
    file_id: Option<String>,
}

#[derive(Clone)]
pub(crate) struct TusStore {
    pub(crate) dir: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Uploads with a record (`.json`) on disk, bounded by `limits::MAX_LIVE_UPLOADS`.
    live: Arc<AtomicUsize>,
}

impl TusStore {
    /// Opens the directory, removing what a crash left half-made (a `.part` without its record,
    /// a record's temporary file), and counts the uploads in it.
    pub(crate) fn open(dir: &FsPath) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut live = 0;
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let orphan = if name.ends_with(".json.tmp") {
                true
            } else if let Some(id) = name.strip_suffix(".part") {
                !dir.join(format!("{id}.json")).exists()
            } else {
                live += usize::from(name.ends_with(".json"));
                false
            };
            if orphan {
                tracing::info!(path = %path.display(), "removing a half-made upload");
                std::fs::remove_file(&path).ok();
            }
        }
        Ok(TusStore {
            dir: dir.to_path_buf(),
            locks: Default::default(),
            live: Arc::new(AtomicUsize::new(live)),
        })
    }
    fn part(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }
    fn info_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
    async fn info(&self, id: &str) -> ApiResult<Info> {
        // Ids are 32 hex digits: anything else cannot name a file here.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::not_found(format!("upload {id} not found")));
        }
        let raw = tokio::fs::read(self.info_path(id))
            .await
            .map_err(|_| ApiError::not_found(format!("upload {id} not found")))?;
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::internal(format!("upload {id} is damaged: {e}")))
    }
    /// Replaces the record atomically and durably (data, then the rename, fsynced).
    async fn save(&self, id: &str, info: &Info) -> ApiResult<()> {
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let dest = self.info_path(id);
        let dir = self.dir.clone();
        let data = serde_json::to_vec(info).expect("info serializes");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| ApiError::internal(format!("saving upload {id}: {e}")))?
        .map_err(disgrafs_store::StoreError::from_write)?;
        Ok(())
    }
    async fn offset(&self, id: &str, info: &Info) -> u64 {
        if info.file_id.is_some() {
            return info.length;
        }
        tokio::fs::metadata(self.part(id))
            .await
            .map_or(0, |m| m.len())
    }
    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("tus lock map")
            .entry(id.to_owned())
            .or_default()
            .clone()
    }
    /// Removes an upload's files; whether it had a record.
    async fn remove(&self, id: &str) -> bool {
        tokio::fs::remove_file(self.part(id)).await.ok();
        let had = tokio::fs::remove_file(self.info_path(id)).await.is_ok();
        if had {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        self.locks.lock().expect("tus lock map").remove(id);
        had
    }
}

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

/// `key base64,key2 base64,flag` → map (values decoded; a key alone maps to "").
fn parse_metadata(raw: &str) -> ApiResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| {
                ApiError::bad_request(format!("Upload-Metadata value of '{k}' is not base64"))
            })?;
        let v = String::from_utf8(bytes).map_err(|_| {
            ApiError::bad_request(format!("Upload-Metadata value of '{k}' is not UTF-8"))
        })?;
        out.insert(k.to_owned(), v);
    }
    Ok(out)
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
        (status = 503, description = "too many uploads in progress", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match create_inner(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => tus_error(e),
    }
}

async fn create_inner(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    check_version(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "Upload-Defer-Length is not supported; send Upload-Length",
        ));
    }
    let length = header_u64(headers, "upload-length")?
        .ok_or_else(|| ApiError::bad_request("missing Upload-Length header"))?;
    if length > state.config.max_upload {
        return Err(ApiError::too_large(format!(
            "upload of {length} bytes exceeds the limit of {} bytes",
            state.config.max_upload
        )));
    }
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
    let folder = match meta.get("relativePath") {
        Some(p) => FolderPath::split_file_path(p)?.0,
        None => FolderPath::default(),
    };
    if state.tus.live.fetch_add(1, Ordering::Relaxed) >= limits::MAX_LIVE_UPLOADS {
        state.tus.live.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::new(
            Cause::Busy,
            format!(
                "{} uploads are in progress; finish or cancel some first",
                limits::MAX_LIVE_UPLOADS
            ),
        ));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let made = async {
        tokio::fs::File::create(state.tus.part(&id))
            .await
            .map_err(disgrafs_store::StoreError::from_write)?;
        state
            .tus
            .save(
                &id,
                &Info {
                    length,
                    name,
                    folder,
                    metadata: raw_meta,
                    file_id: None,
                },
            )
            .await
    }
    .await;
    if let Err(e) = made {
        if !state.tus.remove(&id).await {
            state.tus.live.fetch_sub(1, Ordering::Relaxed);
        }
        return Err(e);
    }

    let location = HeaderValue::from_str(&format!("/api/uploads/{id}")).expect("ascii");
    let mut h = HeaderMap::new();
    h.insert(header::LOCATION, location.clone());
    h.insert("upload-expires", expires_at(state));
    let with_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some(OFFSET_CT);
    if with_body || length == 0 {
        let lock = state.tus.lock(&id);
        let _g = lock.lock().await;
        match append(state, &id, 0, body.into_data_stream()).await {
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
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        check_version(&headers)?;
        let mut info = state.tus.info(&id).await?;
        if info.file_id.is_none() && state.tus.offset(&id, &info).await == info.length {
            // Every byte is here but the record is not (a failure after the last byte): finish
            // now, or a client that sees the full offset reports success for nothing stored.
            let lock = state.tus.lock(&id);
            let _g = tokio::time::timeout(LOCK_WAIT, lock.lock())
                .await
                .map_err(|_| {
                    ApiError::new(Cause::Locked, "another request is writing this upload")
                })?;
            info = state.tus.info(&id).await?;
            if info.file_id.is_none() {
                complete(&state, &id, &mut info).await?;
            }
        }
        let mut h = HeaderMap::new();
        h.insert(
            "upload-offset",
            HeaderValue::from(state.tus.offset(&id, &info).await),
        );
        h.insert("upload-length", HeaderValue::from(info.length));
        if !info.metadata.is_empty()
            && let Ok(v) = HeaderValue::from_str(&info.metadata)
        {
            h.insert("upload-metadata", v);
        }
        if let Some(f) = &info.file_id {
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
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match patch_inner(&state, &id, &headers, body).await {
        Ok(r) => r,
        Err(e) => tus_error(e),
    }
}

async fn patch_inner(
    state: &AppState,
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
    state.tus.info(id).await?;
    // The lock is taken once bytes arrive: a client that opens a PATCH and sends nothing (a
    // half-open connection) keeps no one else from resuming or cancelling.
    let mut stream = body.into_data_stream();
    let first = stream.next().await;
    let lock = state.tus.lock(id);
    let _g = tokio::time::timeout(LOCK_WAIT, lock.lock())
        .await
        .map_err(|_| ApiError::new(Cause::Locked, "another request is writing this upload"))?;
    let body = futures::stream::iter(first).chain(stream);
    let (new_offset, file_id) = append(state, id, offset, body).await?;
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
/// upload's lock.
async fn append(
    state: &AppState,
    id: &str,
    offset: u64,
    body: impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>>,
) -> ApiResult<(u64, Option<String>)> {
    let mut info = state.tus.info(id).await?;
    let current = state.tus.offset(id, &info).await;
    if offset != current {
        return Err(ApiError::new(
            Cause::OffsetMismatch,
            format!("Upload-Offset is {offset} but the upload has {current} bytes"),
        ));
    }
    if info.file_id.is_some() {
        return Ok((current, info.file_id));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(state.tus.part(id))
        .await
        .map_err(disgrafs_store::StoreError::from_write)?;
    let mut written = current;
    let mut stream = std::pin::pin!(body);
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // The connection broke: keep what arrived, so the client resumes from there.
                failure = Some(ApiError::bad_request(format!("upload interrupted: {e}")));
                break;
            }
        };
        if written + chunk.len() as u64 > info.length {
            failure = Some(ApiError::too_large(format!(
                "more bytes than the declared Upload-Length of {}",
                info.length
            )));
            break;
        }
        if let Err(e) = file.write_all(&chunk).await {
            failure = Some(disgrafs_store::StoreError::from_write(e).into());
            break;
        }
        written += chunk.len() as u64;
    }
    file.flush()
        .await
        .map_err(disgrafs_store::StoreError::from_write)?;
    // A failed write may have left a partial chunk: cut back to what we know was written whole.
    file.set_len(written)
        .await
        .map_err(disgrafs_store::StoreError::from_write)?;
    drop(file);
    if let Some(e) = failure {
        return Err(e);
    }
    if written < info.length {
        return Ok((written, None));
    }
    let file_id = complete(state, id, &mut info).await?;
    Ok((written, Some(file_id)))
}

/// Stores a complete upload as a file and records its id. The part stays until the id is saved:
/// a failure anywhere before leaves the upload complete and retryable (the next PATCH or HEAD at
/// its full offset finishes it). The caller holds the upload's lock.
async fn complete(state: &AppState, id: &str, info: &mut Info) -> ApiResult<String> {
    let staged = state.store.adopt(&state.tus.part(id)).await?;
    let rec = upload::publish(state, staged, &info.folder, &info.name).await?;
    info.file_id = Some(rec.id.clone());
    state.tus.save(id, info).await?;
    tokio::fs::remove_file(state.tus.part(id)).await.ok();
    Ok(rec.id)
}

/// Cancels an upload and removes its bytes (tus termination).
#[utoipa::path(delete, path = "/api/uploads/{id}", tag = "tus", params(TusResumable), responses((status = 204), (status = 404, body = disgrafs_core::api::ErrorBody),
    (status = 412, description = "missing or unsupported Tus-Resumable", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        check_version(&headers)?;
        state.tus.info(&id).await?;
        let lock = state.tus.lock(&id);
        let _g = lock.lock().await;
        state.tus.remove(&id).await;
        Ok::<_, ApiError>(with_tus(StatusCode::NO_CONTENT, HeaderMap::new()))
    }
    .await;
    r.unwrap_or_else(tus_error)
}

/// Removes uploads untouched for longer than the expiry (tus expiration).
pub(crate) fn spawn_expiry(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let Ok(mut dir) = tokio::fs::read_dir(&state.tus.dir).await else {
                continue;
            };
            while let Ok(Some(e)) = dir.next_entry().await {
                let path = e.path();
                if path.extension().and_then(|x| x.to_str()) != Some("json") {
                    continue;
                }
                let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                    continue;
                };
                // Idle since the last byte arrived (the part file) or the last state change.
                let mut newest = None;
                for p in [path.clone(), state.tus.part(&id)] {
                    if let Ok(m) = tokio::fs::metadata(&p).await.and_then(|m| m.modified()) {
                        newest = newest.max(Some(m));
                    }
                }
                let old = newest
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age > state.config.upload_expiry);
                // Under the upload's lock, so a PATCH in progress is never cut from under it.
                let lock = state.tus.lock(&id);
                if old && let Ok(_g) = lock.try_lock() {
                    tracing::info!(upload = id, "removing expired upload");
                    state.tus.remove(&id).await;
                }
            }
        }
    });
}

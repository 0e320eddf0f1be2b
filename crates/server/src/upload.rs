//! Streaming a request body into a staged blob, and turning a staged blob into a file record.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use disgrafs_core::{FileName, FileRecord, FolderPath};
use disgrafs_store::{Principal, StagedBlob, Usage};
use futures::{Stream, StreamExt};

/// What one request may still upload: the server's `max_upload` (413 beyond) and its user's
/// quota (507 beyond), less the `prior` bytes the request staged already.
pub(crate) struct Allowance {
    max: u64,
    usage: Usage,
    prior: u64,
}

impl Allowance {
    pub(crate) async fn of(state: &AppState, who: &Principal, prior: u64) -> ApiResult<Self> {
        Ok(Allowance {
            max: state.config.max_upload,
            usage: state.store.room(Some(who.user_id)).await?,
            prior,
        })
    }

    /// Whether `n` more bytes may come.
    pub(crate) fn check(&self, n: u64) -> ApiResult<()> {
        let total = self.prior.saturating_add(n);
        if total > self.max {
            return Err(ApiError::too_large(format!(
                "upload of {total} bytes exceeds the limit of {} bytes",
                self.max
            )));
        }
        Ok(self.usage.admit(total)?)
    }
}

/// Streams `body` to a staging file, within `who`'s [`Allowance`] (besides the `prior` bytes
/// their request staged already) and, when the length is announced, refusing any other length.
/// A length announced over the allowance is refused before a byte is read. Nothing of a failed
/// body remains on disk.
pub(crate) async fn stage<E: BodyError>(
    state: &AppState,
    who: &Principal,
    body: impl Stream<Item = Result<Bytes, E>>,
    expected: Option<u64>,
    prior: u64,
) -> ApiResult<StagedBlob> {
    let allowed = Allowance::of(state, who, prior).await?;
    if let Some(n) = expected {
        allowed.check(n)?;
    }
    let mut body = std::pin::pin!(body);
    // A staging holds a blocking writer thread: take one only once bytes arrive, and only
    // while fewer than `MAX_STAGING` are open, so idle uploads cannot starve the blocking pool.
    let first = next_chunk(&mut body).await?;
    let _permit = state
        .staging
        .acquire()
        .await
        .map_err(|_| ApiError::internal("upload slots closed"))?;
    let mut staging = state.store.stage().await?;
    let mut chunk = first;
    while let Some(c) = chunk {
        allowed.check(staging.size() + c.len() as u64)?;
        staging.write(c).await?;
        chunk = next_chunk(&mut body).await?;
    }
    if let Some(n) = expected.filter(|n| *n != staging.size()) {
        return Err(ApiError::bad_request(format!(
            "body has {} bytes but {n} were announced",
            staging.size()
        )));
    }
    Ok(staging.finish().await?)
}

async fn next_chunk<E: BodyError>(
    body: &mut std::pin::Pin<&mut impl Stream<Item = Result<Bytes, E>>>,
) -> ApiResult<Option<Bytes>> {
    match body.next().await {
        None => Ok(None),
        Some(Ok(c)) => Ok(Some(c)),
        Some(Err(e)) => Err(e.refusal()),
    }
}

/// How an upload body's read error becomes the upload's refusal: a broken connection is a bad
/// request; a refusal made while reading (a multipart part over a bound) stays what it is.
pub(crate) trait BodyError {
    fn refusal(self) -> ApiError;
}

impl BodyError for axum::Error {
    fn refusal(self) -> ApiError {
        ApiError::bad_request(format!("upload interrupted: {self}"))
    }
}

impl BodyError for std::io::Error {
    fn refusal(self) -> ApiError {
        ApiError::bad_request(format!("upload interrupted: {self}"))
    }
}

impl BodyError for ApiError {
    fn refusal(self) -> ApiError {
        self
    }
}

/// Publishes a staged upload: detects its type from its first bytes, stores it as a file named
/// `name` in `folder`, announces the new record and wakes the tagging workers.
pub(crate) async fn publish(
    state: &AppState,
    who: &Principal,
    staged: StagedBlob,
    folder: &FolderPath,
    name: &FileName,
) -> ApiResult<FileRecord> {
    let detected = disgrafs_tagger::detect(&staged.head, name);
    publish_detected(state, who, staged, folder, name, &detected).await
}

/// [`publish`] of an upload whose type was detected already.
pub(crate) async fn publish_detected(
    state: &AppState,
    who: &Principal,
    staged: StagedBlob,
    folder: &FolderPath,
    name: &FileName,
    detected: &disgrafs_tagger::Detected,
) -> ApiResult<FileRecord> {
    let rec = state
        .store
        .put(
            staged,
            folder,
            name,
            &detected.mime,
            detected.kind,
            Some(who.user_id),
        )
        .await?;
    state.store.announce("file.created", &rec).await;
    state.wake_workers();
    Ok(rec)
}

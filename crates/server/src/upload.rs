//! Streaming a request body into a staged blob, and turning a staged blob into a file record.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use disgrafs_core::{FileName, FileRecord};
use disgrafs_store::StagedBlob;
use futures::{Stream, StreamExt};

/// Streams `body` to a staging file, refusing more than `max_upload` bytes and, when the
/// length is announced, any other length. Nothing of a failed body remains on disk.
pub(crate) async fn stage<E: std::fmt::Display>(
    state: &AppState,
    body: impl Stream<Item = Result<Bytes, E>>,
    expected: Option<u64>,
) -> ApiResult<StagedBlob> {
    let max = state.config.max_upload;
    if let Some(n) = expected.filter(|n| *n > max) {
        return Err(ApiError::too_large(format!(
            "upload of {n} bytes exceeds the limit of {max} bytes"
        )));
    }
    let mut staging = state.store.stage().await?;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        if staging.size() + chunk.len() as u64 > max {
            return Err(ApiError::too_large(format!(
                "upload exceeds the limit of {max} bytes"
            )));
        }
        staging.write(chunk).await?;
    }
    if let Some(n) = expected.filter(|n| *n != staging.size()) {
        return Err(ApiError::bad_request(format!(
            "body has {} bytes but {n} were announced",
            staging.size()
        )));
    }
    Ok(staging.finish().await?)
}

/// Publishes a staged upload: detects its type from its first bytes, stores it as a file named
/// `name`, announces the new record and wakes the tagging workers.
pub(crate) async fn publish(
    state: &AppState,
    staged: StagedBlob,
    name: &FileName,
) -> ApiResult<FileRecord> {
    let detected = disgrafs_tagger::detect(&staged.head, name);
    let rec = state
        .store
        .put(staged, name, &detected.mime, detected.kind)
        .await?;
    state.events.send("file.created", &rec);
    state.wake_workers();
    Ok(rec)
}

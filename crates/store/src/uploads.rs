//! tus uploads in progress, kept in the stores so that any node can resume any upload.
//!
//! An upload is a row of the metadata store (declared length, name, metadata, offset, lease) and
//! its bytes are *parts*, one object per PATCH in the blob store's part area. A part is written
//! and made durable first; only then does one fenced transaction add it to the upload and raise
//! the offset, so the offset never claims bytes that are not stored, whichever node crashes
//! when. A node writes an upload only while it holds the upload's lease in the database (a
//! random token with an expiry, renewed while the request runs): a node that dies mid-PATCH
//! loses it within [`UPLOAD_LEASE_MS`], and any node may then resume. Part keys carry the
//! writer's token, so a writer that lost its lease can never overwrite the part of the next
//! one; its own part is deleted when the fenced transaction refuses it.

use crate::blob::PartStop;
use crate::{StagedBlob, Store, StoreError, UploadPart, UploadRow, Viewer};
use bytes::Bytes;
use disgrafs_core::FileName;
use futures::{Stream, StreamExt};
use std::time::Duration;

/// An upload's lease lasts this long unless renewed; a writer renews it every third of it.
pub const UPLOAD_LEASE_MS: i64 = 10_000;
/// Waiting for another writer's lease is retried this often.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Upload ids are 32 hex digits: anything else names no upload.
fn check_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("upload {id}")))
    }
}

/// The right to write one upload, held in the database and renewed while alive. Dropping it
/// lets the upload go (at once, or when the lease runs out should that fail).
pub struct UploadLease {
    store: Store,
    id: String,
    token: String,
    renew: tokio::task::JoinHandle<()>,
}

impl UploadLease {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Lets the upload go now (dropping the lease does so in the background).
    pub async fn release(mut self) -> Result<(), StoreError> {
        self.renew.abort();
        let token = std::mem::take(&mut self.token);
        self.store.meta.unlock_upload(&self.id, &token).await
    }
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        self.renew.abort();
        if self.token.is_empty() {
            return;
        }
        let (store, id, token) = (self.store.clone(), self.id.clone(), self.token.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                store.meta.unlock_upload(&id, &token).await.ok();
            });
        }
    }
}

/// What an append stored, and why it stopped early if it did.
pub struct Appended<E> {
    pub offset: u64,
    pub stop: Option<PartStop<E>>,
}

impl Store {
    /// Creates `owner`'s upload (offset 0); `Busy` when `max_live` are in progress, `TooMany`
    /// when the owner has `max_per_owner`.
    pub async fn create_upload(
        &self,
        owner: Option<i64>,
        length: u64,
        name: &FileName,
        metadata: &str,
        (max_live, max_per_owner): (u64, u64),
    ) -> Result<UploadRow, StoreError> {
        let row = UploadRow {
            id: uuid::Uuid::new_v4().simple().to_string(),
            length,
            name: name.as_str().to_string(),
            metadata: metadata.to_string(),
            offset: 0,
            file_id: None,
            owner,
        };
        self.meta
            .create_upload(&row, max_live, max_per_owner)
            .await?;
        Ok(row)
    }

    /// Where an upload stands, as every node sees it, for `who`: another user's upload is not
    /// found (only its owner, or a viewer of everything, sees or touches it).
    pub async fn upload(&self, who: &Viewer, id: &str) -> Result<UploadRow, StoreError> {
        check_id(id)?;
        let row = self.meta.get_upload(id).await?;
        match who {
            Viewer::User(u) if row.owner != Some(*u) => {
                Err(StoreError::NotFound(format!("upload {id}")))
            }
            _ => Ok(row),
        }
    }

    /// Takes the upload's lease, waiting up to `wait` for another writer (on any node) to let
    /// go: `Locked` after that.
    pub async fn lock_upload(&self, id: &str, wait: Duration) -> Result<UploadLease, StoreError> {
        check_id(id)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let deadline = tokio::time::Instant::now() + wait;
        while !self.meta.lock_upload(id, &token, UPLOAD_LEASE_MS).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Locked(
                    "another request is writing this upload".to_string(),
                ));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
        let renew = {
            let (meta, id, token) = (self.meta.clone(), id.to_string(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(UPLOAD_LEASE_MS as u64 / 3)).await;
                    if let Err(e) = meta.lock_upload(&id, &token, UPLOAD_LEASE_MS).await {
                        tracing::warn!(upload = %id, "cannot renew the upload's lease: {e}");
                    }
                }
            })
        };
        Ok(UploadLease {
            store: self.clone(),
            id: id.to_string(),
            token,
            renew,
        })
    }

    /// Appends `body` at `start` (the upload's offset, which the caller checked under the
    /// lease), at most up to the declared `length`. What arrived before the body failed is kept.
    pub async fn append_upload<E>(
        &self,
        lease: &UploadLease,
        start: u64,
        length: u64,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<Appended<E>, StoreError> {
        let key = format!("{}-{start:020}-{}", lease.id, lease.token);
        let (len, stop) = self
            .blobs
            .write_part(&key, body, length.saturating_sub(start))
            .await?;
        if len == 0 {
            self.blobs.delete_parts(&[key]).await;
            return Ok(Appended {
                offset: start,
                stop,
            });
        }
        let part = UploadPart { start, len, key };
        let added = self
            .meta
            .add_upload_part(&lease.id, &lease.token, &part)
            .await;
        if !matches!(added, Ok(true)) {
            self.blobs.delete_parts(&[part.key]).await;
            added?;
            return Err(StoreError::Locked(
                "the upload was taken over by another request".to_string(),
            ));
        }
        Ok(Appended {
            offset: start + len,
            stop,
        })
    }

    /// Stages a complete upload's bytes (its parts in order) as one blob, hashed on the way.
    pub async fn stage_upload(&self, lease: &UploadLease) -> Result<StagedBlob, StoreError> {
        let row = self.meta.get_upload(&lease.id).await?;
        let parts = self.meta.upload_parts(&lease.id).await?;
        let mut staging = self.blobs.stage().await?;
        let mut expect = 0;
        for p in &parts {
            if p.start != expect {
                return Err(StoreError::Invalid(format!(
                    "upload {} lacks bytes {expect}..{}",
                    lease.id, p.start
                )));
            }
            let mut s = self.blobs.read_part(&p.key).await?;
            while let Some(chunk) = s.next().await {
                staging.write(chunk?).await?;
            }
            expect += p.len;
        }
        if expect != row.length || staging.size() != row.length {
            return Err(StoreError::Invalid(format!(
                "upload {} holds {} of its {} bytes",
                lease.id,
                staging.size(),
                row.length
            )));
        }
        staging.finish().await
    }

    /// Records the file a complete upload became, and removes its parts.
    pub async fn finish_upload(
        &self,
        lease: &UploadLease,
        file_id: &str,
    ) -> Result<(), StoreError> {
        let keys = self
            .meta
            .finish_upload(&lease.id, &lease.token, file_id)
            .await?;
        self.blobs.delete_parts(&keys).await;
        Ok(())
    }

    /// Removes an upload and its bytes (tus termination, expiry).
    pub async fn delete_upload(&self, lease: UploadLease) -> Result<(), StoreError> {
        let keys = self.meta.delete_upload(&lease.id, &lease.token).await?;
        self.blobs.delete_parts(&keys).await;
        Ok(())
    }

    /// Uploads unchanged for `idle`.
    pub async fn idle_uploads(&self, idle: Duration) -> Result<Vec<String>, StoreError> {
        self.meta
            .idle_uploads(i64::try_from(idle.as_millis()).unwrap_or(i64::MAX))
            .await
    }

    /// Uploads in progress.
    pub async fn live_uploads(&self) -> Result<u64, StoreError> {
        self.meta.live_uploads().await
    }

    /// Removes parts no upload records (a crash between writing a part and recording it, or
    /// an upload's row gone while its part's deletion failed). When other processes share the
    /// stores, only parts older than [`crate::ORPHAN_MIN_AGE`] go: a part another node is
    /// writing is not recorded yet. Returns how many were removed.
    pub async fn sweep_parts(&self) -> Result<u64, StoreError> {
        let min_age = if self.shared {
            crate::ORPHAN_MIN_AGE
        } else {
            Duration::ZERO
        };
        let now = std::time::SystemTime::now();
        let mut recorded = std::collections::HashMap::<String, Vec<String>>::new();
        let mut orphans = Vec::new();
        for (key, modified) in self.blobs.list_parts().await? {
            let young = !min_age.is_zero()
                && modified
                    .and_then(|t| now.duration_since(t).ok())
                    .is_none_or(|age| age < min_age);
            if young {
                continue;
            }
            // A part's key begins with its upload's id (see `append_upload`).
            let id = key.split('-').next().unwrap_or_default().to_string();
            if !recorded.contains_key(&id) {
                let keys = match self.upload(&Viewer::All, &id).await {
                    Ok(_) => self
                        .meta
                        .upload_parts(&id)
                        .await?
                        .into_iter()
                        .map(|p| p.key)
                        .collect(),
                    Err(StoreError::NotFound(_)) => Vec::new(),
                    Err(e) => return Err(e),
                };
                recorded.insert(id.clone(), keys);
            }
            if !recorded[&id].contains(&key) {
                orphans.push(key);
            }
        }
        let n = orphans.len() as u64;
        self.blobs.delete_parts(&orphans).await;
        Ok(n)
    }
}

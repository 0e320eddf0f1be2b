//! disgrafs storage: content-addressed blobs ([`BlobStore`], OpenDAL) and the metadata and graph
//! store ([`MetaStore`]; SQLite now, PostgreSQL later), tied together by [`Store`], which keeps
//! the two consistent.
//!
//! Architecture invariant: a file record never points at content that is not durably stored. The
//! blob is committed (fsynced, renamed) before the record's transaction; the record is deleted
//! before the blob. A crash in between leaves at worst an unreferenced blob, never a dangling
//! record.

mod blob;
mod error;
mod locks;
mod meta;
mod sql;
mod sqlite;

pub use blob::{BlobStore, ByteStream, HEAD_BYTES, StagedBlob, Staging};
pub use error::StoreError;
pub use meta::*;
pub use sqlite::SqliteMeta;

use disgrafs_core::{FileKind, FileRecord};
use locks::HashLocks;
use std::path::Path;
use std::sync::Arc;

/// Blobs and metadata, kept consistent.
#[derive(Clone)]
pub struct Store {
    pub blobs: BlobStore,
    pub meta: Arc<dyn MetaStore>,
    locks: HashLocks,
    /// Held (locked) while the store is open.
    _dir_lock: Option<Arc<std::fs::File>>,
}

impl Store {
    /// The embedded default: blobs under `data_dir/blobs`, metadata in `data_dir/disgrafs.db`.
    /// Only one process may use a data directory: a second one is refused, since it would sweep
    /// the first one's uploads in progress and its hash locks would not see the other's.
    pub async fn open_local(data_dir: &Path, min_confidence: f64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Config(format!(
                "{} is in use by another disgrafs process",
                data_dir.display()
            )));
        }
        let blobs = BlobStore::local(data_dir)?;
        let meta = SqliteMeta::open(&data_dir.join("disgrafs.db"), min_confidence).await?;
        let mut store = Store::new(blobs, Arc::new(meta));
        store._dir_lock = Some(Arc::new(lock));
        Ok(store)
    }

    /// The embedded default opened for reading only, beside the process that owns it (the
    /// AF_XDP fast path serves from a data directory `disgrafs serve` writes): takes no lock,
    /// sweeps nothing, runs no migration; a write fails with SQLite's read-only error.
    pub async fn open_local_read_only(
        data_dir: &Path,
        min_confidence: f64,
    ) -> Result<Self, StoreError> {
        let blobs = BlobStore::local_read_only(data_dir)?;
        let meta =
            SqliteMeta::open_read_only(&data_dir.join("disgrafs.db"), min_confidence).await?;
        Ok(Store::new(blobs, Arc::new(meta)))
    }

    pub fn new(blobs: BlobStore, meta: Arc<dyn MetaStore>) -> Self {
        Store {
            blobs,
            meta,
            locks: HashLocks::default(),
            _dir_lock: None,
        }
    }

    /// Stores a staged blob under `name`: commits the content (once, whoever else uploads it)
    /// and creates the file record.
    pub async fn put(
        &self,
        staged: StagedBlob,
        name: &str,
        mime: &str,
        kind: FileKind,
    ) -> Result<FileRecord, StoreError> {
        disgrafs_core::validate_file_name(name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let _guard = self.locks.lock(&staged.hash).await;
        let (hash, size) = (staged.hash.clone(), staged.size);
        self.blobs.commit(staged).await?;
        self.meta
            .insert_file(NewFile {
                name,
                hash: &hash,
                size,
                mime,
                kind,
            })
            .await
    }

    /// Deletes a file record, and its content when no other record uses it.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let rec = self.meta.get_file(id).await?;
        let _guard = self.locks.lock(&rec.hash).await;
        if let Some(hash) = self.meta.delete_file(id).await? {
            self.blobs.delete(&hash).await?;
        }
        Ok(())
    }
}

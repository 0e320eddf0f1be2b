//! disgrafs storage: content-addressed blobs ([`BlobStore`], OpenDAL) and the metadata and graph
//! store ([`MetaStore`]: SQLite, the embedded default, or PostgreSQL), tied together by [`Store`], which keeps
//! the two consistent.
//!
//! Architecture invariant: a file record never points at content that is not durably stored. The
//! blob is committed (fsynced, renamed) before the record's transaction; the record is deleted
//! before the blob. A crash in between leaves at worst an unreferenced blob, never a dangling
//! record.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

// Linked for its TLS feature only (see Cargo.toml): OpenDAL's S3 client needs it for https.
use reqwest as _;

pub mod accounts;
mod assemble;
mod blob;
mod error;
mod events;
mod locks;
mod meta;
mod postgres;
mod shares;
mod sql;
mod sqlite;
mod sqlmeta;
mod uploads;

pub use accounts::{Accounts, Issued, Principal};
pub use assemble::RELATED_SCAN_LIMIT;
pub use blob::{BlobLocation, BlobStore, ByteStream, PartStop, S3Location, StagedBlob, Staging};
pub use error::StoreError;
pub use events::{BACKLOG as EVENT_BACKLOG, Event, MAX_EVENT_BYTES};
pub use meta::*;
pub use postgres::PgMeta;
pub use shares::{MAX_SHARE_TTL, MadeShare, Shares};
pub use sqlite::SqliteMeta;
pub use sqlmeta::SqlMeta;
pub use uploads::{Appended, UPLOAD_LEASE_MS, UploadLease};

use disgrafs_core::query::Expr;
use disgrafs_core::{
    CoOccurrence, FileKind, FileName, FileRecord, FolderPath, Graph, Related, TagCount,
};
use locks::HashLocks;
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A content without a row is an orphan only when it is at least this old, when other
/// processes share the stores: a node commits a content and then inserts its record, and another
/// node's sweep must not take the bytes in between (hash locks are per process).
pub const ORPHAN_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What [`Store::fsck`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Contents stored without a row (old enough, see [`ORPHAN_MIN_AGE`]): removed by repair.
    pub orphans: Vec<String>,
    /// Contents that records point at and whose bytes are gone: reported only.
    pub missing: Vec<String>,
    /// Contents whose bytes are not what their hash and size say (hash, BLAKE3 of the bytes):
    /// reported only.
    pub corrupt: Vec<(String, String)>,
    /// Contents whose reference count is not their records' (hash, stored, actual): set right
    /// by repair.
    pub drift: Vec<(String, i64, i64)>,
    /// Whether the repairs were made.
    pub repaired: bool,
}

impl FsckReport {
    /// Whether nothing is wrong, or everything wrong was repaired.
    pub fn clean(&self) -> bool {
        self.missing.is_empty()
            && self.corrupt.is_empty()
            && (self.repaired || (self.orphans.is_empty() && self.drift.is_empty()))
    }
}

/// The metadata store alone: at `meta` (a `postgres://` URL) or, without one, in
/// `data_dir/disgrafs.db`, migrated; with PostgreSQL's pool for the event bus.
async fn open_meta_with(
    data_dir: &Path,
    meta: Option<&str>,
    min_confidence: f64,
) -> Result<(Arc<dyn MetaStore>, Option<sqlx::PgPool>), StoreError> {
    Ok(match meta {
        None => (
            Arc::new(SqliteMeta::open(&data_dir.join("disgrafs.db"), min_confidence).await?),
            None,
        ),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let pg = PgMeta::connect(url, min_confidence).await?;
            let pool = pg.pool.clone();
            (Arc::new(pg), Some(pool))
        }
        Some(url) => {
            return Err(StoreError::Config(format!(
                "--meta {}: not a postgres:// URL (without --meta, metadata is SQLite in the data directory)",
                postgres::redact(url)
            )));
        }
    })
}

/// The metadata store of a data directory (or `meta`) without its blobs or its lock, for what
/// runs beside a server: `disgrafs admin`.
pub async fn open_meta(
    data_dir: &Path,
    meta: Option<&str>,
) -> Result<Arc<dyn MetaStore>, StoreError> {
    std::fs::create_dir_all(data_dir)?;
    // Confidence matters only to queries, which accounts do not run.
    Ok(open_meta_with(data_dir, meta, 0.0).await?.0)
}

/// Blobs and metadata, kept consistent: the one way the server reaches either, so the ordering
/// rules above cannot be bypassed.
#[derive(Clone)]
pub struct Store {
    blobs: BlobStore,
    meta: Arc<dyn MetaStore>,
    locks: HashLocks,
    events: events::EventBus,
    /// Whether other processes may write these stores (PostgreSQL metadata, or blobs in an
    /// object store): a content without a row may then be one another node has just
    /// committed and not yet recorded, and only an old one is an orphan ([`ORPHAN_MIN_AGE`]).
    shared: bool,
    /// Held (locked) while the store is open.
    _dir_lock: Option<Arc<std::fs::File>>,
}

impl Store {
    /// The embedded default: blobs under `data_dir/blobs`, metadata in `data_dir/disgrafs.db`.
    /// Only one process may use a data directory: a second one is refused, since it would sweep
    /// the first one's uploads in progress and its hash locks would not see the other's.
    pub async fn open_local(data_dir: &Path, min_confidence: f64) -> Result<Self, StoreError> {
        Self::open(data_dir, None, &BlobLocation::Local, min_confidence).await
    }

    /// Metadata at `meta` (a `postgres://` URL) or, without one, in `data_dir/disgrafs.db`;
    /// blobs at `blobs`. Every check that can refuse (the URLs, the connections, the
    /// credentials, a schema newer than this binary, a bucket that is missing) runs here, before
    /// anything is served. A data directory remembers where its blobs are: opening it with
    /// another location is refused, since every record would then point at content that is not
    /// there.
    pub async fn open(
        data_dir: &Path,
        meta: Option<&str>,
        blobs: &BlobLocation,
        min_confidence: f64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Config(format!(
                "{} is in use by another disgrafs process (on SQLite one process owns the data \
                 directory; several serve and worker processes share --meta postgres://)",
                data_dir.display()
            )));
        }
        let (meta, pg_pool) = open_meta_with(data_dir, meta, min_confidence).await?;
        // Recorded only once the location has proved usable: a start refused for a missing
        // bucket must not tie the directory to that bucket.
        let blob_store = BlobStore::open(blobs, data_dir).await?;
        remember_blob_location(data_dir, blobs)?;
        let mut store = Store::new(blob_store, meta.clone());
        store.shared = pg_pool.is_some() || *blobs != BlobLocation::Local;
        if let Some(pool) = pg_pool {
            store.events = events::EventBus::shared(pool).await?;
        }
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
            events: events::EventBus::local(),
            shared: true,
            _dir_lock: None,
        }
    }

    /// Stores a staged blob under `name` in `folder`: commits the content (once, whoever else
    /// uploads it) and creates the file record, `owner`'s (none: admins only see it).
    pub async fn put(
        &self,
        staged: StagedBlob,
        folder: &FolderPath,
        name: &FileName,
        mime: &str,
        kind: FileKind,
        owner: Option<i64>,
    ) -> Result<FileRecord, StoreError> {
        // Refused before the content is committed; the insert checks again, atomically.
        self.room(owner).await?.admit(staged.size)?;
        let guard = self.locks.lock(&staged.hash).await;
        let (hash, size) = (staged.hash.clone(), staged.size);
        self.blobs.commit(staged).await?;
        let inserted = self
            .meta
            .insert_file(NewFile {
                name,
                folder: folder.clone(),
                hash: &hash,
                size,
                mime,
                kind,
                owner,
            })
            .await;
        drop(guard);
        if inserted.is_err() && !self.shared {
            // The content just committed goes now if no record uses it, rather than at the
            // next start-up's sweep. Only where this process is the store's one user: another
            // node's upload of the same content may be between its commit and its record.
            self.remove_orphan(&hash).await.ok();
        }
        inserted
    }

    /// What `owner`'s records hold and may hold ([`Usage`]); no limit for none (an internal
    /// caller's records) or a user that is not there.
    pub async fn room(&self, owner: Option<i64>) -> Result<Usage, StoreError> {
        Ok(match owner {
            Some(u) => self.meta.usage(u).await?.unwrap_or_default(),
            None => Usage::default(),
        })
    }

    /// A second record of a file's content under another folder and name (no bytes copied),
    /// `owner`'s: a file `who` sees may be copied, and the copy is the copier's.
    pub async fn copy(
        &self,
        who: &Viewer,
        owner: Option<i64>,
        id: &str,
        folder: &FolderPath,
        name: &FileName,
    ) -> Result<FileRecord, StoreError> {
        let rec = self.meta.get_file(who, id).await?;
        // Held so that a delete of the last other reference cannot remove the content between
        // the lookup and the new record.
        let _guard = self.locks.lock(&rec.hash).await;
        self.meta
            .insert_file(NewFile {
                name,
                folder: folder.clone(),
                hash: &rec.hash,
                size: rec.size,
                mime: &rec.mime,
                kind: rec.kind,
                owner,
            })
            .await
    }

    /// Deletes a file record, and its content when no other record uses it.
    pub async fn delete(&self, who: &Viewer, id: &str) -> Result<(), StoreError> {
        let rec = self.meta.get_file(who, id).await?;
        let _guard = self.locks.lock(&rec.hash).await;
        if let Some(hash) = self.meta.delete_file(who, id).await? {
            self.blobs.delete(&hash).await?;
        }
        Ok(())
    }

    // Content.

    /// Starts staging an upload (see [`BlobStore::stage`]).
    pub async fn stage(&self) -> Result<Staging, StoreError> {
        self.blobs.stage().await
    }

    /// Stages a finished local file by moving it (see [`BlobStore::adopt`]).
    pub async fn adopt(&self, path: &Path) -> Result<StagedBlob, StoreError> {
        self.blobs.adopt(path).await
    }

    /// Streams `range` of a content (the whole when None).
    pub async fn read(
        &self,
        hash: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        self.blobs.read(hash, range).await
    }

    /// A content's path on local disk, when blobs are local (the tagger reads files).
    pub fn local_path(&self, hash: &str) -> Option<PathBuf> {
        self.blobs.local_path(hash)
    }

    /// A content as a local file, for readers that need one (the tagger): the blob itself when
    /// blobs are local, else a copy staged from the object store, checked against its hash and
    /// removed when the copy is dropped.
    pub async fn local_copy(&self, hash: &str) -> Result<LocalBlob, StoreError> {
        if let Some(path) = self.blobs.local_path(hash) {
            return Ok(LocalBlob { path, _copy: None });
        }
        let mut staging = self.blobs.stage().await?;
        let mut s = self.blobs.read(hash, None).await?;
        use futures::StreamExt;
        while let Some(chunk) = s.next().await {
            staging.write(chunk?).await?;
        }
        let copy = staging.finish().await?;
        if copy.hash != hash {
            return Err(StoreError::Invalid(format!(
                "blob {hash} in the object store holds other bytes (BLAKE3 {})",
                copy.hash
            )));
        }
        Ok(LocalBlob {
            path: copy.path().to_path_buf(),
            _copy: Some(copy),
        })
    }

    // Consistency.

    /// Contents stored without a row that knows them, old enough to be orphans (see
    /// [`ORPHAN_MIN_AGE`]), each checked again under its hash lock.
    async fn orphans(&self, known: &HashSet<String>) -> Result<Vec<String>, StoreError> {
        let min_age = if self.shared {
            ORPHAN_MIN_AGE
        } else {
            std::time::Duration::ZERO
        };
        let now = std::time::SystemTime::now();
        let old = |t: Option<std::time::SystemTime>| {
            min_age.is_zero()
                || t.and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= min_age)
        };
        Ok(self
            .blobs
            .list()
            .await?
            .into_iter()
            .filter(|(hash, t)| !known.contains(hash) && old(*t))
            .map(|(hash, _)| hash)
            .collect())
    }

    /// Removes `hash`'s bytes if, under its lock, no row knows it still.
    async fn remove_orphan(&self, hash: &str) -> Result<bool, StoreError> {
        let _guard = self.locks.lock(hash).await;
        if self.meta.blob_known(hash).await? {
            return Ok(false);
        }
        self.blobs.delete(hash).await?;
        Ok(true)
    }

    /// The start-up sweep: removes contents no record points at (left by a crash between a
    /// commit and its record, or between a deletion's commit and the unlink). Returns how many.
    pub async fn sweep_orphans(&self) -> Result<u64, StoreError> {
        let known: HashSet<String> = self
            .meta
            .blob_refs()
            .await?
            .into_iter()
            .map(|b| b.hash)
            .collect();
        let mut removed = 0;
        for hash in self.orphans(&known).await? {
            removed += self.remove_orphan(&hash).await? as u64;
        }
        Ok(removed)
    }

    /// Checks that blobs and metadata agree: orphans (contents without a row), missing contents
    /// (a row, and records, without bytes), corrupt contents (bytes that are not their hash or
    /// size: every content is read), and reference counts that are not the records'. With
    /// `repair`, what is safe is repaired: orphans are removed, counts set right (a row no
    /// record points at goes, with its bytes); missing and corrupt contents are only reported,
    /// since their records are all that is left of them.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, StoreError> {
        let rows = self.meta.blob_refs().await?;
        let known: HashSet<String> = rows.iter().map(|b| b.hash.clone()).collect();
        let mut report = FsckReport {
            orphans: self.orphans(&known).await?,
            ..FsckReport::default()
        };
        for b in &rows {
            match self.blobs.verify(&b.hash).await {
                Ok((actual, len)) if actual != b.hash || len != b.size => {
                    report.corrupt.push((b.hash.clone(), actual))
                }
                Ok(_) => {}
                Err(StoreError::NotFound(_)) if b.files > 0 => report.missing.push(b.hash.clone()),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            if b.refs != b.files {
                report.drift.push((b.hash.clone(), b.refs, b.files));
            }
        }
        if repair {
            for hash in &report.orphans {
                self.remove_orphan(hash).await?;
            }
            for (hash, _, _) in &report.drift {
                let _guard = self.locks.lock(hash).await;
                if let Some(gone) = self.meta.fix_refs(hash).await? {
                    self.blobs.delete(&gone).await?;
                }
            }
            report.repaired = true;
        }
        Ok(report)
    }

    // Events.

    /// Tells subscribers of every node that file `rec` was created, updated or tagged.
    pub async fn announce(&self, kind: &str, rec: &FileRecord) {
        self.events.announce(kind, &rec.id).await;
    }

    /// Tells subscribers of every node that file `id` was deleted.
    pub async fn announce_deleted(&self, id: &str) {
        self.events.announce("file.deleted", id).await;
    }

    /// The changes of the store, from every node sharing it.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The changes of the store, for a task of this process that runs until it ends (the
    /// tagging workers): not counted among [`Store::subscribers`].
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.watch()
    }

    /// Subscribers of this node.
    pub fn subscribers(&self) -> usize {
        self.events.subscribers()
    }

    // Records and the graph.

    /// Share links, in the same metadata store.
    pub fn shares(&self) -> Shares {
        Shares::new(self.meta.clone())
    }

    /// Users and credentials, in the same metadata store.
    pub fn accounts(&self) -> Accounts {
        Accounts::new(self.meta.clone())
    }

    pub async fn file(&self, who: &Viewer, id: &str) -> Result<FileRecord, StoreError> {
        self.meta.get_file(who, id).await
    }

    /// What a download of the file needs: one cheap lookup.
    pub async fn content(&self, who: &Viewer, id: &str) -> Result<FileContent, StoreError> {
        self.meta.get_content(who, id).await
    }

    pub async fn list(
        &self,
        who: &Viewer,
        q: &Expr,
        opts: ListOptions,
    ) -> Result<(Vec<FileRecord>, u64), StoreError> {
        self.meta.list_files(who, q, opts).await
    }

    pub async fn add_user_tags(
        &self,
        who: &Viewer,
        id: &str,
        tags: &[String],
    ) -> Result<FileRecord, StoreError> {
        self.meta.add_user_tags(who, id, tags).await
    }

    pub async fn remove_tags(
        &self,
        who: &Viewer,
        id: &str,
        tags: &[String],
    ) -> Result<FileRecord, StoreError> {
        self.meta.remove_tags(who, id, tags).await
    }

    pub async fn share(
        &self,
        who: &Viewer,
        id: &str,
        group: Option<&str>,
    ) -> Result<FileRecord, StoreError> {
        self.meta.share_file(who, id, group).await
    }

    pub async fn related(
        &self,
        who: &Viewer,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Related>, StoreError> {
        self.meta.related(who, id, limit).await
    }

    pub async fn graph(&self, who: &Viewer, q: &Expr, limit: u32) -> Result<Graph, StoreError> {
        self.meta.graph(who, q, limit).await
    }

    pub async fn tags(
        &self,
        who: &Viewer,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<TagCount>, StoreError> {
        self.meta.tags(who, prefix, limit).await
    }

    pub async fn cooccurrence(
        &self,
        who: &Viewer,
        limit: u32,
    ) -> Result<Vec<CoOccurrence>, StoreError> {
        self.meta.cooccurrence(who, limit).await
    }

    pub async fn subfolders(
        &self,
        who: &Viewer,
        parent: &FolderPath,
    ) -> Result<Vec<String>, StoreError> {
        self.meta.subfolders(who, parent).await
    }

    pub async fn folder_exists(&self, who: &Viewer, path: &FolderPath) -> Result<bool, StoreError> {
        self.meta.folder_exists(who, path).await
    }

    pub async fn make_folder(&self, who: &Viewer, path: &FolderPath) -> Result<bool, StoreError> {
        self.meta.make_folder(who, path).await
    }

    pub async fn remove_folder(&self, who: &Viewer, path: &FolderPath) -> Result<(), StoreError> {
        self.meta.remove_folder(who, path).await
    }

    pub async fn entries(
        &self,
        who: &Viewer,
        scope: EntryScope<'_>,
        name_prefix: Option<&str>,
        newest_first: bool,
        limit: u32,
    ) -> Result<Vec<FileEntry>, StoreError> {
        self.meta
            .entries(who, scope, name_prefix, newest_first, limit)
            .await
    }

    pub async fn move_file(
        &self,
        who: &Viewer,
        id: &str,
        folder: &FolderPath,
        name: &FileName,
    ) -> Result<FileRecord, StoreError> {
        self.meta.move_file(who, id, folder, name).await
    }

    /// Closes the metadata store's connections and waits for them (the data directory's lock
    /// goes with the last clone): after it, the database file is free for another opener.
    pub async fn close(self) {
        self.meta.close().await;
    }

    pub async fn stats(&self, who: &Viewer) -> Result<StoreStats, StoreError> {
        self.meta.stats(who).await
    }

    // Groups.

    pub async fn create_group(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.meta.create_group(name).await
    }

    pub async fn add_group_member(&self, group: &str, user: &str) -> Result<bool, StoreError> {
        self.meta.add_group_member(group, user).await
    }

    // The tagging queue.

    pub async fn claim_job(&self, lease_ms: i64) -> Result<Option<Job>, StoreError> {
        self.meta.claim_job(lease_ms).await
    }

    pub async fn renew_job(&self, job: &Job, lease_ms: i64) -> Result<(), StoreError> {
        self.meta.renew_job(job, lease_ms).await
    }

    pub async fn complete_job(&self, job: &Job, result: TagResult) -> Result<(), StoreError> {
        self.meta.complete_job(job, result).await
    }

    pub async fn fail_job(
        &self,
        job: &Job,
        error: &str,
        max_attempts: u32,
    ) -> Result<(), StoreError> {
        self.meta.fail_job(job, error, max_attempts).await
    }

    pub async fn recover_jobs(&self) -> Result<u64, StoreError> {
        self.meta.recover_jobs().await
    }

    pub async fn enqueue_retag(&self, which: Retag) -> Result<u64, StoreError> {
        self.meta.enqueue_retag(which).await
    }

    pub async fn job_stats(&self) -> Result<JobStats, StoreError> {
        self.meta.job_stats().await
    }
}

/// A content on local disk (see [`Store::local_copy`]).
pub struct LocalBlob {
    path: PathBuf,
    _copy: Option<StagedBlob>,
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file in a data directory naming where its blobs live.
const BLOB_LOCATION_FILE: &str = "blob-location";

/// Records `blobs` in a new data directory; refuses one that recorded another location.
fn remember_blob_location(data_dir: &Path, blobs: &BlobLocation) -> Result<(), StoreError> {
    let path = data_dir.join(BLOB_LOCATION_FILE);
    let want = blobs.to_string();
    match std::fs::read_to_string(&path) {
        Ok(had) if had.trim() == want => Ok(()),
        Ok(had) => Err(StoreError::Config(format!(
            "{} keeps its blobs at {}, not {want}: start it with that location",
            data_dir.display(),
            had.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{want}\n")).map_err(StoreError::from_write)
        }
        Err(e) => Err(e.into()),
    }
}

//! Content-addressed blobs.
//!
//! Every upload is first *staged*: streamed into a temporary file in the data directory while its
//! BLAKE3 hash is computed, then fsynced. Only a complete, fsynced staging file is *committed*:
//! renamed atomically to `blobs/<2 hex>/<hash>` (local disk), or written to the object store
//! behind OpenDAL. A staging file that is dropped before commit is removed, so an interrupted
//! upload leaves nothing visible. Staging files left by a crash are swept at start-up.

use crate::StoreError;
use bytes::Bytes;
use futures::Stream;
use opendal::Operator;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How many bytes of a file's head are kept for type detection.
pub const HEAD_BYTES: usize = 8192;
/// Read size when streaming a blob out: large reads keep the syscall count low.
const READ_CHUNK: usize = 1 << 20;

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

#[derive(Clone)]
pub struct BlobStore {
    op: Operator,
    /// Set when the blobs live on local disk under this directory: reads and commits then use the
    /// file system directly (atomic rename, large reads) rather than going through OpenDAL.
    local_blobs: Option<PathBuf>,
    staging: PathBuf,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("local_blobs", &self.local_blobs).field("staging", &self.staging).finish()
    }
}

fn io_err(e: opendal::Error) -> StoreError {
    StoreError::Io(io::Error::other(e))
}

impl BlobStore {
    /// Blobs on local disk under `data_dir/blobs`, staging under `data_dir/tmp`.
    pub fn local(data_dir: &Path) -> Result<Self, StoreError> {
        let blobs = data_dir.join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let root = blobs.to_str().ok_or_else(|| StoreError::Config(format!("data dir {} is not UTF-8", data_dir.display())))?;
        let op = Operator::new(opendal::services::Fs::default().root(root)).map_err(io_err)?.finish();
        Self::with_operator(op, Some(blobs), data_dir)
    }

    /// Blobs behind any OpenDAL operator (S3, …); staging stays on local disk under `data_dir`.
    pub fn with_operator(op: Operator, local_blobs: Option<PathBuf>, data_dir: &Path) -> Result<Self, StoreError> {
        let staging = data_dir.join("tmp").join("staging");
        std::fs::create_dir_all(&staging)?;
        // Anything here is from a process that died mid-upload: no record points at it.
        for e in std::fs::read_dir(&staging)? {
            let _ = std::fs::remove_file(e?.path());
        }
        Ok(BlobStore { op, local_blobs, staging })
    }

    fn key(hash: &str) -> String {
        format!("{}/{}", &hash[..2], hash)
    }

    /// The blob's path on local disk, when blobs are local.
    pub fn local_path(&self, hash: &str) -> Option<PathBuf> {
        self.local_blobs.as_ref().map(|b| b.join(Self::key(hash)))
    }

    /// Starts a staging file.
    pub async fn stage(&self) -> Result<Staging, StoreError> {
        let path = self.staging.join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Staging { file: Some(file), guard: StagingGuard(Some(path)), hasher: blake3::Hasher::new(), size: 0, head: Vec::new() })
    }

    /// Adopts an existing local file (a finished tus upload) as a staging file: hashes it.
    pub async fn adopt(&self, path: PathBuf) -> Result<StagedBlob, StoreError> {
        let p = path.clone();
        let (hash, size, head) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let mut f = std::fs::File::open(&p)?;
            let mut hasher = blake3::Hasher::new();
            let size = io::copy(&mut f, &mut hasher)?;
            let mut head = vec![0u8; HEAD_BYTES.min(size as usize)];
            use std::io::{Read, Seek};
            f.seek(io::SeekFrom::Start(0))?;
            f.read_exact(&mut head)?;
            f.sync_all()?;
            Ok((hasher.finalize().to_hex().to_string(), size, head))
        })
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e)))??;
        Ok(StagedBlob { guard: StagingGuard(Some(path)), hash, size, head })
    }

    /// Makes a staged blob durable under its hash. Idempotent: committing content that is
    /// already stored replaces it with identical bytes (an atomic rename), or skips the upload
    /// to a remote store when the object exists.
    pub async fn commit(&self, mut staged: StagedBlob) -> Result<(), StoreError> {
        let from = staged.guard.0.take().expect("staged blob has a path until committed");
        let key = Self::key(&staged.hash);
        if let Some(blobs) = &self.local_blobs {
            let to = blobs.join(&key);
            let dir = to.parent().expect("blob key has a directory").to_path_buf();
            let res = async {
                tokio::fs::create_dir_all(&dir).await?;
                tokio::fs::rename(&from, &to).await?;
                // The rename is durable once the directory entry is.
                tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await.map_err(io::Error::other)?
            }
            .await;
            if res.is_err() {
                let _ = tokio::fs::remove_file(&from).await;
            }
            return res.map_err(Into::into);
        }
        let res = async {
            if self.op.exists(&key).await.map_err(io_err)? {
                return Ok(());
            }
            let mut w = self.op.writer_with(&key).chunk(8 << 20).await.map_err(io_err)?;
            let mut f = tokio::fs::File::open(&from).await?;
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                w.write(Bytes::copy_from_slice(&buf[..n])).await.map_err(io_err)?;
            }
            w.close().await.map_err(io_err)?;
            Ok::<_, StoreError>(())
        }
        .await;
        let _ = tokio::fs::remove_file(&from).await;
        res
    }

    /// Streams `range` of a blob (the whole blob when None).
    pub async fn read(&self, hash: &str, range: Option<Range<u64>>) -> Result<ByteStream, StoreError> {
        if let Some(path) = self.local_path(hash) {
            let mut f = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {hash}")),
                _ => e.into(),
            })?;
            let (start, end) = match range {
                Some(r) => (r.start, r.end),
                None => (0, f.metadata().await?.len()),
            };
            f.seek(io::SeekFrom::Start(start)).await?;
            let mut remaining = end.saturating_sub(start);
            let s = async_stream::try_stream! {
                while remaining > 0 {
                    let want = (remaining as usize).min(READ_CHUNK);
                    let mut buf = bytes::BytesMut::with_capacity(want);
                    // read_buf fills spare capacity without zeroing it first.
                    let n = f.read_buf(&mut buf).await?;
                    if n == 0 {
                        Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob is shorter than its record"))?;
                    }
                    remaining -= n as u64;
                    yield buf.freeze();
                }
            };
            return Ok(Box::pin(s));
        }
        let key = Self::key(hash);
        let reader = self.op.reader_with(&key).chunk(READ_CHUNK).await.map_err(io_err)?;
        let s = match range {
            Some(r) => reader.into_bytes_stream(r).await,
            None => reader.into_bytes_stream(..).await,
        }
        .map_err(io_err)?;
        Ok(Box::pin(s))
    }

    pub async fn delete(&self, hash: &str) -> Result<(), StoreError> {
        if let Some(path) = self.local_path(hash) {
            return match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        self.op.delete(&Self::key(hash)).await.map_err(io_err)
    }
}

/// Removes its file when dropped, unless taken.
struct StagingGuard(Option<PathBuf>);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A blob being written. Dropping it removes the partial file.
pub struct Staging {
    file: Option<tokio::fs::File>,
    guard: StagingGuard,
    hasher: blake3::Hasher,
    size: u64,
    head: Vec<u8>,
}

impl Staging {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        // Hashing on the runtime thread costs ~0.2 ms per MiB: cheaper than a hop to the blocking
        // pool for the chunk sizes a body arrives in.
        self.hasher.update(chunk);
        self.file.as_mut().expect("open until finished").write_all(chunk).await.map_err(StoreError::from_write)?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs; the result can be committed.
    pub async fn finish(mut self) -> Result<StagedBlob, StoreError> {
        let mut file = self.file.take().expect("open until finished");
        file.flush().await.map_err(StoreError::from_write)?;
        file.sync_all().await.map_err(StoreError::from_write)?;
        drop(file);
        Ok(StagedBlob {
            guard: StagingGuard(self.guard.0.take()),
            hash: self.hasher.finalize().to_hex().to_string(),
            size: self.size,
            head: std::mem::take(&mut self.head),
        })
    }
}

/// A complete, durable staging file with its hash. Dropping it removes the file.
pub struct StagedBlob {
    guard: StagingGuard,
    pub hash: String,
    pub size: u64,
    /// The first bytes, for type detection.
    pub head: Vec<u8>,
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob").field("hash", &self.hash).field("size", &self.size).finish()
    }
}

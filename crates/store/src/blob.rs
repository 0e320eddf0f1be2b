//! Content-addressed blobs.
//!
//! Every upload is first *staged*: streamed into a temporary file in the data directory while its
//! BLAKE3 hash is computed, then fsynced. Only a complete, fsynced staging file is *committed*:
//! renamed atomically to `blobs/<2 hex>/<hash>` (local disk), or written to the object store
//! behind OpenDAL. A staging file that is dropped before commit is removed, so an interrupted
//! upload leaves nothing visible. Staging files left by a crash are swept at start-up.

use crate::StoreError;
use bytes::Bytes;
use disgrafs_core::HEAD_BYTES;
use futures::{Stream, StreamExt};
use opendal::Operator;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

/// Read size when streaming a blob from a remote store.
const READ_CHUNK: usize = 1 << 20;
/// Window of a local blob mapped at once when streaming it out.
const MAP_WINDOW: u64 = 4 << 20;
/// Staged bytes are handed to the writer thread in pieces of this size.
const STAGE_CHUNK: usize = 1 << 20;
/// Written bytes are handed to the disk in steps of this size while the upload goes on, so the
/// final fsync waits only for the tail rather than for the whole file (the kernel would otherwise
/// keep gigabytes dirty before writing any back).
const WRITEBACK_STEP: u64 = 8 << 20;
/// Pieces of a blob up to this size are read, not mapped.
const SMALL_READ: u64 = 256 << 10;

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// Where blobs live (`disgrafs serve --blobs`): the data directory (the default), or a bucket of
/// an S3-compatible object store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobLocation {
    #[default]
    Local,
    S3(S3Location),
}

/// A bucket of an S3-compatible store: `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`.
/// Credentials are not part of it: they come from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or the AWS config files), never a URL that ends
/// up in a shell history or a process list.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the bucket's root).
    pub prefix: String,
    /// The service's URL (MinIO, Garage, SeaweedFS, …); AWS's own when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Explicit credentials (tests, embedding); the environment's when None.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials.as_ref().map(|(k, _)| k))
            .finish()
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobLocation::Local => f.write_str("local"),
            BlobLocation::S3(s) => {
                write!(f, "s3://{}", s.bucket)?;
                if !s.prefix.is_empty() {
                    write!(f, "/{}", s.prefix)?;
                }
                if let Some(e) = &s.endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for BlobLocation {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Config(format!("--blobs {s:?}: {why}"));
        if s == "local" {
            return Ok(BlobLocation::Local);
        }
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "s3" {
            return Err(bad(
                "expected `local` or s3://BUCKET?endpoint=URL&region=REGION",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket"))?
            .to_string();
        let mut loc = S3Location {
            bucket,
            prefix: url.path().trim_matches('/').to_string(),
            ..S3Location::default()
        };
        for (k, v) in url.query_pairs() {
            match &*k {
                "endpoint" => {
                    let e = url::Url::parse(&v).map_err(|e| bad(&format!("endpoint: {e}")))?;
                    if !matches!(e.scheme(), "http" | "https") {
                        return Err(bad("the endpoint must be an http:// or https:// URL"));
                    }
                    loc.endpoint = Some(v.trim_end_matches('/').to_string());
                }
                "region" => loc.region = Some(v.into_owned()),
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?} (endpoint, region)"
                    )));
                }
            }
        }
        Ok(BlobLocation::S3(loc))
    }
}

/// Lists the bucket (a missing one fails here) and writes and deletes a small object (read-only
/// credentials fail here).
async fn probe(op: &Operator, loc: &S3Location) -> Result<(), StoreError> {
    let mut lister = op
        .lister_with("/")
        .limit(1)
        .await
        .map_err(|e| unusable(loc, &e))?;
    if let Some(Err(e)) = lister.next().await {
        return Err(unusable(loc, &e));
    }
    let key = ".disgrafs-probe";
    op.write(key, Bytes::from_static(b"disgrafs"))
        .await
        .map_err(|e| unusable(loc, &e))?;
    op.delete(key).await.map_err(|e| unusable(loc, &e))
}

/// The one-line reason an object store refused to serve as the blob store.
fn unusable(loc: &S3Location, e: &opendal::Error) -> StoreError {
    let at = loc.endpoint.as_deref().unwrap_or("AWS S3");
    let why = match e.kind() {
        opendal::ErrorKind::NotFound => format!("bucket {:?} does not exist", loc.bucket),
        opendal::ErrorKind::PermissionDenied => {
            "the credentials were refused (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".to_string()
        }
        opendal::ErrorKind::ConfigInvalid => format!("invalid configuration: {e}"),
        _ => format!("cannot use it: {e}"),
    };
    StoreError::Config(format!("blobs on {at}: {why}"))
}

#[derive(Clone)]
pub struct BlobStore {
    op: Operator,
    /// Where the parts of tus uploads in progress live, shared by every node that shares the
    /// blobs: `tmp/tus/` in the data directory for local blobs, `tus/` beside remote ones.
    parts: Operator,
    /// Prepended to a part's key in `parts` (`tus/` when it is the blobs' own operator).
    parts_prefix: &'static str,
    /// The parts' directory when they are on local disk: fsynced after each part, so a part
    /// the metadata records survives a crash (its file is fsynced by OpenDAL's close).
    local_parts: Option<PathBuf>,
    /// Set when the blobs live on local disk under this directory: reads and commits then use the
    /// file system directly (atomic rename, large reads) rather than going through OpenDAL.
    local_blobs: Option<PathBuf>,
    staging: PathBuf,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("local_blobs", &self.local_blobs)
            .field("staging", &self.staging)
            .finish()
    }
}

fn io_err(e: opendal::Error) -> StoreError {
    match e.kind() {
        opendal::ErrorKind::NotFound => StoreError::NotFound(format!("blob: {e}")),
        _ => StoreError::Io(io::Error::other(e)),
    }
}

impl BlobStore {
    /// Opens the blobs at `location`, staging under `data_dir`. An object store must answer
    /// now, bucket present and credentials able to write, or this fails with one line: a server
    /// that starts and then fails every upload is worse than one that does not start.
    pub async fn open(location: &BlobLocation, data_dir: &Path) -> Result<Self, StoreError> {
        let BlobLocation::S3(loc) = location else {
            return Self::local(data_dir);
        };
        let mut b = opendal::services::S3::default()
            .bucket(&loc.bucket)
            .root(&format!("/{}", loc.prefix))
            .region(loc.region.as_deref().unwrap_or("us-east-1"));
        if let Some(e) = &loc.endpoint {
            b = b.endpoint(e);
        }
        b = match &loc.credentials {
            Some((key, secret)) => b
                .access_key_id(key)
                .secret_access_key(secret)
                .disable_config_load(),
            // The environment's credentials when it has some; unsigned requests otherwise (a
            // public or anonymous bucket), which a protected one refuses at the probe below.
            None => b.allow_anonymous(),
        };
        let op = Operator::new(b)
            .map_err(|e| unusable(loc, &e))?
            .layer(opendal::layers::TimeoutLayer::new())
            .layer(opendal::layers::RetryLayer::new().with_max_times(3))
            .finish();
        probe(&op, loc).await?;
        Self::with_operator(op, None, data_dir)
    }

    /// Blobs on local disk under `data_dir/blobs`, staging under `data_dir/tmp`.
    pub fn local(data_dir: &Path) -> Result<Self, StoreError> {
        let blobs = data_dir.join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let op = fs_operator(data_dir, &blobs)?;
        let mut store = Self::with_operator(op, Some(blobs), data_dir)?;
        let parts = data_dir.join("tmp").join("tus");
        std::fs::create_dir_all(&parts)?;
        store.parts = fs_operator(data_dir, &parts)?;
        store.parts_prefix = "";
        store.local_parts = Some(parts);
        Ok(store)
    }

    /// Local blobs for reading only: nothing is created or swept (uploads would fail).
    pub fn local_read_only(data_dir: &Path) -> Result<Self, StoreError> {
        let blobs = data_dir.join("blobs");
        if !blobs.is_dir() {
            return Err(StoreError::Config(format!(
                "{} holds no disgrafs blobs",
                data_dir.display()
            )));
        }
        let op = fs_operator(data_dir, &blobs)?;
        Ok(BlobStore {
            parts: op.clone(),
            parts_prefix: "tus/",
            local_parts: None,
            op,
            local_blobs: Some(blobs),
            staging: data_dir.join("tmp").join("staging"),
        })
    }

    /// Blobs behind any OpenDAL operator (S3, …); staging stays on local disk under `data_dir`.
    pub fn with_operator(
        op: Operator,
        local_blobs: Option<PathBuf>,
        data_dir: &Path,
    ) -> Result<Self, StoreError> {
        let staging = data_dir.join("tmp").join("staging");
        std::fs::create_dir_all(&staging)?;
        // Anything here is from a process that died mid-upload: no record points at it.
        for e in std::fs::read_dir(&staging)? {
            std::fs::remove_file(e?.path()).ok();
        }
        Ok(BlobStore {
            parts: op.clone(),
            parts_prefix: "tus/",
            local_parts: None,
            op,
            local_blobs,
            staging,
        })
    }

    fn key(hash: &str) -> String {
        format!("{}/{}", &hash[..2], hash)
    }

    /// The blob's path on local disk, when blobs are local.
    pub fn local_path(&self, hash: &str) -> Option<PathBuf> {
        self.local_blobs.as_ref().map(|b| b.join(Self::key(hash)))
    }

    /// Starts a staging file. A blocking thread hashes and writes it while the caller keeps
    /// receiving: on two cores, network and disk then overlap.
    pub async fn stage(&self) -> Result<Staging, StoreError> {
        let path = self.staging.join(uuid::Uuid::new_v4().simple().to_string());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::from_write)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(4);
        let writer = tokio::task::spawn_blocking(move || -> io::Result<(String, u64)> {
            use std::io::Write;
            let mut file = file;
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            let mut flushed = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                for b in batch {
                    hasher.update(&b);
                    file.write_all(&b)?;
                    size += b.len() as u64;
                }
                if size - flushed >= WRITEBACK_STEP {
                    start_writeback(&file, flushed, size - flushed);
                    flushed = size;
                }
            }
            file.sync_all()?;
            Ok((hasher.finalize().to_hex().to_string(), size))
        });
        Ok(Staging {
            batch: Vec::new(),
            batch_len: 0,
            tx: Some(tx),
            writer: Some(writer),
            guard: StagingGuard(Some(path)),
            size: 0,
            head: Vec::new(),
        })
    }

    /// Stages a copy of an existing local file (a finished tus upload): a hard link when it can,
    /// so the original stays untouched until its owner lets it go, whatever happens to the copy.
    pub async fn adopt(&self, original: &Path) -> Result<StagedBlob, StoreError> {
        let path = self.staging.join(uuid::Uuid::new_v4().simple().to_string());
        let (from, p) = (original.to_path_buf(), path.clone());
        let guard = StagingGuard(Some(path));
        let (hash, size, head) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            if std::fs::hard_link(&from, &p).is_err() {
                std::fs::copy(&from, &p)?;
            }
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
        .map_err(|e| StoreError::Io(io::Error::other(e)))?
        .map_err(StoreError::from_write)?;
        Ok(StagedBlob {
            guard,
            hash,
            size,
            head,
        })
    }

    /// Makes a staged blob durable under its hash. Idempotent: committing content that is
    /// already stored replaces it with identical bytes (an atomic rename), or skips the upload
    /// to a remote store when the object exists.
    pub async fn commit(&self, mut staged: StagedBlob) -> Result<(), StoreError> {
        let from = staged
            .guard
            .0
            .take()
            .expect("staged blob has a path until committed");
        let key = Self::key(&staged.hash);
        if let Some(blobs) = &self.local_blobs {
            let to = blobs.join(&key);
            let dir = to.parent().expect("blob key has a directory").to_path_buf();
            let res = async {
                let new_dir = !tokio::fs::try_exists(&dir).await.unwrap_or(false);
                tokio::fs::create_dir_all(&dir).await?;
                tokio::fs::rename(&from, &to).await?;
                // The rename is durable once the directory entry is (and a new prefix folder's
                // entry in `blobs/`).
                let blobs = blobs.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::File::open(&dir)?.sync_all()?;
                    if new_dir {
                        std::fs::File::open(&blobs)?.sync_all()?;
                    }
                    Ok::<_, io::Error>(())
                })
                .await
                .map_err(io::Error::other)?
            }
            .await;
            if res.is_err() {
                tokio::fs::remove_file(&from).await.ok();
            }
            return res.map_err(Into::into);
        }
        let res = async {
            if self.op.exists(&key).await.map_err(io_err)? {
                return Ok(());
            }
            let mut w = self
                .op
                .writer_with(&key)
                .chunk(8 << 20)
                .await
                .map_err(io_err)?;
            let mut f = tokio::fs::File::open(&from).await?;
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                w.write(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .map_err(io_err)?;
            }
            w.close().await.map_err(io_err)?;
            Ok::<_, StoreError>(())
        }
        .await;
        tokio::fs::remove_file(&from).await.ok();
        res
    }

    /// Streams `range` of a blob (the whole blob when None).
    pub async fn read(
        &self,
        hash: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        if let Some(path) = self.local_path(hash) {
            // One hop to the blocking pool opens the blob and produces the first piece; a small
            // blob is then done (this is what keeps small GETs cheap).
            let (file, first, start, end) =
                tokio::task::spawn_blocking(move || -> io::Result<_> {
                    let file = std::fs::File::open(path)?;
                    let len = file.metadata()?.len();
                    let Range { start, end } = range.unwrap_or(0..len);
                    if end > len {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "blob is shorter than its record",
                        ));
                    }
                    let n = (end - start).min(MAP_WINDOW);
                    let first = if n <= SMALL_READ {
                        let mut buf = vec![0u8; n as usize];
                        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, start)?;
                        Bytes::from(buf)
                    } else {
                        map_window(&file, start, n)?
                    };
                    Ok((file, first, start, end))
                })
                .await
                .map_err(|e| StoreError::Io(io::Error::other(e)))?
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {hash}")),
                    _ => e.into(),
                })?;
            let rest_start = start + first.len() as u64;
            let file = std::sync::Arc::new(file);
            // Further windows of the file are mapped and handed to the socket writer as they are:
            // no copy in user space, and at most a few windows resident at once.
            let windows = (rest_start..end)
                .step_by(MAP_WINDOW as usize)
                .map(move |off| (off, (end - off).min(MAP_WINDOW)));
            let rest = futures::stream::iter(windows).then(move |(off, n)| {
                let file = file.clone();
                async move {
                    tokio::task::spawn_blocking(move || map_window(&file, off, n))
                        .await
                        .map_err(io::Error::other)?
                }
            });
            let first = (!first.is_empty()).then_some(Ok(first));
            return Ok(Box::pin(futures::stream::iter(first).chain(rest)));
        }
        let key = Self::key(hash);
        let reader = self
            .op
            .reader_with(&key)
            .chunk(READ_CHUNK)
            .await
            .map_err(io_err)?;
        let s = match range {
            Some(r) => reader.into_bytes_stream(r).await,
            None => reader.into_bytes_stream(..).await,
        }
        .map_err(io_err)?;
        Ok(Box::pin(s))
    }

    /// Writes an upload's part from `body` until it ends or fails, and makes what arrived whole
    /// durable (closed: fsynced, or the object store's upload completed). Returns the bytes
    /// written and why the body stopped early, if it did. A failure of the store itself is the
    /// error, and leaves no part.
    pub(crate) async fn write_part<E>(
        &self,
        key: &str,
        body: impl Stream<Item = Result<Bytes, E>>,
        limit: u64,
    ) -> Result<(u64, Option<PartStop<E>>), StoreError> {
        let key = &format!("{}{key}", self.parts_prefix);
        let mut w = self
            .parts
            .writer_with(key)
            .chunk(8 << 20)
            .await
            .map_err(io_err)?;
        let mut written = 0u64;
        let mut stop = None;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    stop = Some(PartStop::Body(e));
                    break;
                }
            };
            if written + chunk.len() as u64 > limit {
                stop = Some(PartStop::TooLong);
                break;
            }
            written += chunk.len() as u64;
            if let Err(e) = w.write(chunk).await {
                w.abort().await.ok();
                return Err(io_err(e));
            }
        }
        if let Err(e) = w.close().await {
            self.parts.delete(key).await.ok();
            return Err(io_err(e));
        }
        if let Some(dir) = self.local_parts.clone() {
            let synced = tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(io::Error::other)
                .and_then(|r| r);
            if let Err(e) = synced {
                self.parts.delete(key).await.ok();
                return Err(e.into());
            }
        }
        Ok((written, stop))
    }

    /// Every part in the part area: its key and when it was last written (None when the store
    /// does not say).
    pub(crate) async fn list_parts(&self) -> Result<Vec<(String, Option<SystemTime>)>, StoreError> {
        let mut out = Vec::new();
        for e in self.parts.list(self.parts_prefix).await.map_err(io_err)? {
            if !e.metadata().is_file() {
                continue;
            }
            let Some(key) = e.path().strip_prefix(self.parts_prefix) else {
                continue;
            };
            let modified = match e.metadata().last_modified() {
                Some(t) => Some(t),
                None => self
                    .parts
                    .stat(e.path())
                    .await
                    .ok()
                    .and_then(|m| m.last_modified()),
            };
            out.push((key.to_string(), modified.map(SystemTime::from)));
        }
        Ok(out)
    }

    /// Streams an upload's part.
    pub(crate) async fn read_part(&self, key: &str) -> Result<ByteStream, StoreError> {
        let reader = self
            .parts
            .reader_with(&format!("{}{key}", self.parts_prefix))
            .chunk(READ_CHUNK)
            .await
            .map_err(io_err)?;
        Ok(Box::pin(
            reader.into_bytes_stream(..).await.map_err(io_err)?,
        ))
    }

    /// Removes parts no upload points at any more (missing ones are fine).
    pub(crate) async fn delete_parts(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self
                .parts
                .delete(&format!("{}{k}", self.parts_prefix))
                .await
            {
                // Garbage at worst: nothing points at it any more.
                tracing::warn!(key = %k, "cannot delete an upload's part: {e}");
            }
        }
    }

    /// Every stored content: its hash and when its bytes were last written (None when the
    /// object store does not say). Keys that are not a content's (tus parts, the probe, a
    /// stray file) are left out.
    pub async fn list(&self) -> Result<Vec<(String, Option<SystemTime>)>, StoreError> {
        if let Some(blobs) = self.local_blobs.clone() {
            return tokio::task::spawn_blocking(move || -> io::Result<_> {
                let mut out = Vec::new();
                for dir in std::fs::read_dir(&blobs)? {
                    let dir = dir?;
                    if !dir.file_type()?.is_dir() {
                        continue;
                    }
                    for f in std::fs::read_dir(dir.path())? {
                        let f = f?;
                        let name = f.file_name().to_string_lossy().into_owned();
                        if is_content_key(&format!("{}/{name}", dir.file_name().to_string_lossy()))
                            && f.file_type()?.is_file()
                        {
                            out.push((name, f.metadata()?.modified().ok()));
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e)))?
            .map_err(Into::into);
        }
        let mut out = Vec::new();
        let mut lister = self
            .op
            .lister_with("")
            .recursive(true)
            .await
            .map_err(io_err)?;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(io_err)?;
            if !is_content_key(entry.path()) {
                continue;
            }
            let modified = match entry.metadata().last_modified() {
                Some(t) => Some(t),
                None => self
                    .op
                    .stat(entry.path())
                    .await
                    .map_err(io_err)?
                    .last_modified(),
            };
            let hash = entry.path()[3..].to_string();
            out.push((hash, modified.map(SystemTime::from)));
        }
        Ok(out)
    }

    /// Reads a content whole and returns the BLAKE3 hash and length of what is stored under
    /// `hash` (NotFound when nothing is).
    pub async fn verify(&self, hash: &str) -> Result<(String, u64), StoreError> {
        let mut s = self.read(hash, None).await?;
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hasher.finalize().to_hex().to_string(), len))
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

/// Whether an object key is a content's: `ab/<64 lowercase hex starting with ab>`.
fn is_content_key(key: &str) -> bool {
    let Some((dir, hash)) = key.split_once('/') else {
        return false;
    };
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && hash.starts_with(dir)
        && dir.len() == 2
}

/// Starts writeback of a range without waiting for it (`sync_file_range`, Linux). Durability still
/// comes from the fsync at the end; this only starts the disk early.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor we own; it reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Maps `len` bytes of a blob at `offset`, populated, as `Bytes`.
fn map_window(file: &std::fs::File, offset: u64, len: u64) -> io::Result<Bytes> {
    // SAFETY: blobs are immutable: a content-addressed file is written once (staged, fsynced,
    // renamed into place) and never modified; deleting or replacing it (with identical bytes)
    // unlinks the old inode, which stays valid while mapped. So the mapping cannot change under us.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len as usize)
            .populate()
            .map(file)?
    };
    Ok(Bytes::from_owner(map))
}

/// Why a part's body stopped before its end.
#[derive(Debug)]
pub enum PartStop<E> {
    /// The body failed (the connection broke).
    Body(E),
    /// It carried more bytes than the upload declared; the last piece was not written.
    TooLong,
}

/// Removes its file when dropped, unless taken.
struct StagingGuard(Option<PathBuf>);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            std::fs::remove_file(p).ok();
        }
    }
}

/// A blob being written. Dropping it removes the partial file.
pub struct Staging {
    /// Received pieces not yet handed to the writer: kept as they arrived, never copied.
    batch: Vec<Bytes>,
    batch_len: usize,
    tx: Option<tokio::sync::mpsc::Sender<Vec<Bytes>>>,
    writer: Option<tokio::task::JoinHandle<io::Result<(String, u64)>>>,
    guard: StagingGuard,
    size: u64,
    head: Vec<u8>,
}

impl Staging {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.size += chunk.len() as u64;
        self.batch_len += chunk.len();
        self.batch.push(chunk);
        if self.batch_len >= STAGE_CHUNK {
            self.flush_buf().await?;
        }
        Ok(())
    }

    async fn flush_buf(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        let sent = self
            .tx
            .as_ref()
            .expect("open until finished")
            .send(batch)
            .await;
        if sent.is_err() {
            // The writer stopped: it failed, and says why.
            return Err(self
                .join_writer()
                .await
                .err()
                .unwrap_or_else(|| StoreError::Io(io::Error::other("staging writer stopped"))));
        }
        Ok(())
    }

    async fn join_writer(&mut self) -> Result<(String, u64), StoreError> {
        self.tx.take();
        let w = self.writer.take().expect("writer joined once");
        w.await
            .map_err(|e| StoreError::Io(io::Error::other(e)))?
            .map_err(StoreError::from_write)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes what is buffered and fsyncs; the result can be committed.
    pub async fn finish(mut self) -> Result<StagedBlob, StoreError> {
        self.flush_buf().await?;
        let (hash, size) = self.join_writer().await?;
        debug_assert_eq!(size, self.size);
        Ok(StagedBlob {
            guard: StagingGuard(self.guard.0.take()),
            hash,
            size,
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

impl StagedBlob {
    /// The staging file.
    pub(crate) fn path(&self) -> &Path {
        self.guard
            .0
            .as_deref()
            .expect("staged blob has a path until committed")
    }
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("hash", &self.hash)
            .field("size", &self.size)
            .finish()
    }
}

/// An OpenDAL operator over the local directory `blobs` (inside `data_dir`).
fn fs_operator(data_dir: &Path, blobs: &Path) -> Result<Operator, StoreError> {
    let root = blobs.to_str().ok_or_else(|| {
        StoreError::Config(format!("data dir {} is not UTF-8", data_dir.display()))
    })?;
    Ok(Operator::new(opendal::services::Fs::default().root(root))
        .map_err(io_err)?
        .finish())
}

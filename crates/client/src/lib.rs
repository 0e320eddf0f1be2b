//! A typed client of the disgrafs HTTP API, used by the CLI and the tests.
//!
//! Uploads go through tus (creation-with-upload, then resume from the server's offset after a
//! failure); downloads resume with `Range` + `If-Range` and are verified against the BLAKE3 hash
//! in the file's record.

use bytes::Bytes;
pub use disgrafs_core::api::FileList;
use disgrafs_core::api::{
    ErrorBody, FILE_ID_HEADER, Health, RelatedList, RetagQueued, TagList, TagsBody, Uploaded,
};
use disgrafs_core::{FileRecord, Graph, Related, TagCount};
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode, header};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub mod dav;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{message} ({status})")]
    Api {
        status: u16,
        code: String,
        message: String,
        position: Option<usize>,
    },
    #[error("cannot reach {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("the token is not header text (a token is one line of ASCII)")]
    BadToken,
}

pub type Result<T> = std::result::Result<T, ClientError>;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Called with the number of bytes moved so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// How many times an upload or download resumes after a broken connection before giving up.
const RESUME_TRIES: usize = 5;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base`, sending `token` (an API token) with every request.
    pub fn new(base: &str, token: Option<&str>) -> Result<Self> {
        // A connection that goes silent fails, so uploads and downloads resume instead of hanging.
        Self::with_timeouts(
            base,
            token,
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    /// A client whose connections give up after `connect` and whose reads fail after `read`
    /// of silence (a mount's calls must fail promptly when the server is gone).
    pub fn with_timeouts(
        base: &str,
        token: Option<&str>,
        connect: Duration,
        read: Duration,
    ) -> Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| ClientError::BadToken)?;
            // Kept out of debug output and logs.
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(read)
            .tcp_nodelay(true)
            .default_headers(headers)
            .build()?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Connect {
                    url: self.base.clone(),
                    source: e,
                }
            } else {
                ClientError::Transport(e)
            }
        })?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => ClientError::Api {
                status,
                code: b.code,
                message: b.error,
                position: b.position,
            },
            Err(_) => ClientError::Api {
                status,
                code: String::new(),
                message: text.trim().to_owned(),
                position: None,
            },
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        Ok(self.send(req).await?.json().await?)
    }

    /// Who this client's token is (`GET /api/auth/me`).
    pub async fn me(&self) -> Result<disgrafs_core::api::Whoami> {
        self.json(self.http.get(self.url("/api/auth/me"))).await
    }

    /// A new API token for a user's name and password (`POST /api/auth/token`).
    pub async fn issue_token(
        &self,
        user: &str,
        password: &str,
        scope: Option<disgrafs_core::auth::Scope>,
    ) -> Result<disgrafs_core::api::IssuedToken> {
        let body = disgrafs_core::api::LoginBody {
            user: user.to_owned(),
            password: password.to_owned(),
            scope,
        };
        self.json(self.http.post(self.url("/api/auth/token")).json(&body))
            .await
    }

    pub async fn health(&self) -> Result<Health> {
        self.json(self.http.get(self.url("/api/health"))).await
    }

    pub async fn list(&self, q: &str, limit: u32, offset: u64) -> Result<FileList> {
        let req = self.http.get(self.url("/api/files")).query(&[
            ("q", q),
            ("limit", &limit.to_string()),
            ("offset", &offset.to_string()),
        ]);
        self.json(req).await
    }

    pub async fn record(&self, id: &str) -> Result<FileRecord> {
        self.json(self.http.get(self.url(&format!("/api/files/{}", enc(id)))))
            .await
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        self.send(
            self.http
                .delete(self.url(&format!("/api/files/{}", enc(id)))),
        )
        .await
        .map(drop)
    }

    pub async fn add_tags(&self, id: &str, tags: &[String]) -> Result<FileRecord> {
        let req = self
            .http
            .post(self.url(&format!("/api/files/{}/tags", enc(id))))
            .json(&TagsBody {
                tags: tags.to_vec(),
            });
        self.json(req).await
    }

    pub async fn remove_tags(&self, id: &str, tags: &[String]) -> Result<FileRecord> {
        let req = self
            .http
            .delete(self.url(&format!("/api/files/{}/tags", enc(id))))
            .json(&TagsBody {
                tags: tags.to_vec(),
            });
        self.json(req).await
    }

    pub async fn related(&self, id: &str, limit: u32) -> Result<Vec<Related>> {
        let req = self
            .http
            .get(self.url(&format!("/api/files/{}/related", enc(id))))
            .query(&[("limit", limit)]);
        Ok(self.json::<RelatedList>(req).await?.related)
    }

    pub async fn graph(&self, q: &str, limit: u32) -> Result<Graph> {
        self.json(
            self.http
                .get(self.url("/api/graph"))
                .query(&[("q", q), ("limit", &limit.to_string())]),
        )
        .await
    }

    pub async fn tags(&self, prefix: &str, limit: u32) -> Result<Vec<TagCount>> {
        Ok(self
            .json::<TagList>(
                self.http
                    .get(self.url("/api/tags"))
                    .query(&[("prefix", prefix), ("limit", &limit.to_string())]),
            )
            .await?
            .tags)
    }

    /// Makes a read-only share link (`POST /api/shares`); its `url` is a path on this server.
    pub async fn make_share(
        &self,
        body: &disgrafs_core::api::NewShareLink,
    ) -> Result<disgrafs_core::api::ShareLink> {
        self.json(self.http.post(self.url("/api/shares")).json(body))
            .await
    }

    /// This token's user's live share links (every link, for an admin).
    pub async fn shares(&self) -> Result<Vec<disgrafs_core::api::ShareLink>> {
        let r: disgrafs_core::api::ShareLinks =
            self.json(self.http.get(self.url("/api/shares"))).await?;
        Ok(r.shares)
    }

    /// Revokes a share link.
    pub async fn revoke_share(&self, id: i64) -> Result<()> {
        self.send(self.http.delete(self.url(&format!("/api/shares/{id}"))))
            .await
            .map(drop)
    }

    /// Queues re-tagging; returns how many contents were queued.
    pub async fn retag(&self, all: bool) -> Result<u64> {
        let r: RetagQueued = self
            .json(
                self.http
                    .post(self.url("/api/retag"))
                    .query(&[("all", all)]),
            )
            .await?;
        Ok(r.queued)
    }

    /// Uploads a file as one streaming `PUT` (no resume).
    pub async fn put_raw(
        &self,
        path: &Path,
        name: &str,
        progress: Option<Progress>,
    ) -> Result<FileRecord> {
        let file = tokio::fs::File::open(path).await.map_err(io_at(path))?;
        let len = file.metadata().await.map_err(io_at(path))?.len();
        let body = reqwest::Body::wrap_stream(counting(file_stream(file), 0, progress));
        let req = self
            .http
            .put(self.url("/api/files"))
            .query(&[("name", name)])
            .header(header::CONTENT_LENGTH, len)
            .body(body);
        self.json(req).await
    }

    /// Uploads several files in one multipart request.
    pub async fn put_multipart(&self, files: &[(PathBuf, String)]) -> Result<Vec<FileRecord>> {
        let mut form = reqwest::multipart::Form::new();
        for (path, name) in files {
            let file = tokio::fs::File::open(path).await.map_err(io_at(path))?;
            let len = file.metadata().await.map_err(io_at(path))?.len();
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(file_stream(file)),
                len,
            )
            .file_name(name.clone());
            form = form.part("file", part);
        }
        Ok(self
            .json::<Uploaded>(self.http.post(self.url("/api/files")).multipart(form))
            .await?
            .files)
    }

    /// Creates a tus upload for `len` bytes named `name`; returns its URL. `name` may be a
    /// relative path (`folder/…/name`): the file then keeps its folder (tus metadata
    /// `relativePath`, as tus-js-client and Uppy send it).
    pub async fn tus_create(&self, name: &str, len: u64) -> Result<String> {
        let base = name.rsplit('/').next().unwrap_or(name);
        let mut pairs = vec![("filename", base)];
        if base != name {
            pairs.push(("relativePath", name));
        }
        let meta = disgrafs_core::tus::encode_metadata(pairs);
        let resp = self
            .send(
                self.http
                    .post(self.url("/api/uploads/"))
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", len)
                    .header("Upload-Metadata", meta),
            )
            .await?;
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("tus creation returned no Location".into()))?;
        Ok(if loc.starts_with("http") {
            loc.to_owned()
        } else {
            self.url(loc)
        })
    }

    /// The server's offset for a tus upload, and the stored file's id once complete.
    pub async fn tus_offset(&self, url: &str) -> Result<(u64, Option<String>)> {
        let resp = self
            .send(self.http.head(url).header("Tus-Resumable", "1.0.0"))
            .await?;
        let off = resp
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol("tus HEAD returned no Upload-Offset".into()))?;
        Ok((off, file_id(resp.headers())))
    }

    /// Sends the file from `offset` in one PATCH. Returns the stored file's id when complete.
    pub async fn tus_patch(
        &self,
        url: &str,
        path: &Path,
        offset: u64,
        progress: Option<Progress>,
    ) -> Result<Option<String>> {
        let mut file = tokio::fs::File::open(path).await.map_err(io_at(path))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io_at(path))?;
        let body = reqwest::Body::wrap_stream(counting(file_stream(file), offset, progress));
        let resp = self
            .send(
                self.http
                    .patch(url)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Offset", offset)
                    .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                    .body(body),
            )
            .await?;
        Ok(file_id(resp.headers()))
    }

    /// Uploads a file through tus, resuming at the server's offset when the connection breaks.
    /// `name` is a name or a relative path (see [`Client::tus_create`]).
    /// `resume_url` is an upload created earlier for the same file (say, by a run that was
    /// interrupted); `on_created` is told the URL of a new one, so the caller can remember it.
    pub async fn upload(
        &self,
        path: &Path,
        name: &str,
        resume_url: Option<String>,
        on_created: impl FnOnce(&str),
        progress: Option<Progress>,
    ) -> Result<FileRecord> {
        let len = tokio::fs::metadata(path).await.map_err(io_at(path))?.len();
        let url = match resume_url {
            Some(u) => match self.tus_offset(&u).await {
                Ok(_) => u,
                // Expired or removed: start again.
                Err(ClientError::Api {
                    status: 404 | 410, ..
                }) => self.tus_create(name, len).await?,
                Err(e) => return Err(e),
            },
            None => self.tus_create(name, len).await?,
        };
        on_created(&url);
        let mut last_err = None;
        for attempt in 0..RESUME_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            }
            let (offset, id) = match self.tus_offset(&url).await {
                Ok(v) => v,
                Err(e @ ClientError::Api { .. }) => return Err(e),
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            if let Some(id) = id {
                return self.record(&id).await;
            }
            match self.tus_patch(&url, path, offset, progress.clone()).await {
                Ok(Some(id)) => return self.record(&id).await,
                Ok(None) => continue,
                Err(
                    e @ ClientError::Api {
                        status: 400..=499, ..
                    },
                ) if !matches!(
                    e,
                    ClientError::Api {
                        status: 409 | 423,
                        ..
                    }
                ) =>
                {
                    return Err(e);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::Protocol("upload did not complete".into())))
    }

    /// Downloads a file to `dest`, resuming a `dest`-adjacent `.part` file left by an earlier
    /// attempt, and checks the result against the record's BLAKE3 hash.
    pub async fn download(
        &self,
        id: &str,
        dest: &Path,
        progress: Option<Progress>,
    ) -> Result<FileRecord> {
        let rec = self.record(id).await?;
        let part = part_path(dest);
        let mut last_err = None;
        for attempt in 0..RESUME_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            }
            match self.download_once(&rec, &part, progress.clone()).await {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(e @ (ClientError::Api { .. } | ClientError::Io { .. })) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        let hash = hash_file(&part).await?;
        if hash != rec.hash {
            tokio::fs::remove_file(&part).await.ok();
            return Err(ClientError::Protocol(format!(
                "downloaded content hashes to {hash}, expected {}",
                rec.hash
            )));
        }
        tokio::fs::rename(&part, dest).await.map_err(io_at(dest))?;
        Ok(rec)
    }

    async fn download_once(
        &self,
        rec: &FileRecord,
        part: &Path,
        progress: Option<Progress>,
    ) -> Result<()> {
        // `None`: no `.part` yet, which is not a finished download even of an empty file.
        let have_part = existing_part(part).await?;
        if have_part == Some(rec.size) {
            return Ok(());
        }
        let have = have_part.unwrap_or(0);
        let mut req = self.http.request(
            Method::GET,
            self.url(&format!("/api/files/{}/content", enc(&rec.id))),
        );
        if have > 0 && have < rec.size {
            req = req
                .header(header::RANGE, format!("bytes={have}-"))
                .header(header::IF_RANGE, format!("\"{}\"", rec.hash));
        }
        let resp = self.send(req).await?;
        let append = resp.status() == StatusCode::PARTIAL_CONTENT;
        // Never through a symlink, and a `.part` that was not there a moment ago is created
        // anew: one planted in between makes the open fail instead of receiving the bytes.
        let mut file = tokio::fs::OpenOptions::new()
            .create_new(have_part.is_none())
            .write(true)
            .append(append)
            .truncate(!append)
            .custom_flags(libc::O_NOFOLLOW)
            .open(part)
            .await
            .map_err(io_at(part))?;
        let mut done = if append { have } else { 0 };
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await.map_err(io_at(part))?;
            done += chunk.len() as u64;
            if let Some(p) = &progress {
                p(done);
            }
        }
        file.flush().await.map_err(io_at(part))?;
        file.sync_all().await.map_err(io_at(part))?;
        if done != rec.size {
            return Err(ClientError::Protocol(format!(
                "connection closed after {done} of {} bytes",
                rec.size
            )));
        }
        Ok(())
    }
}

/// The length of a download's `.part` file, `None` when there is none. Anything there but a
/// regular file of its own (a symlink, a hard link to another file, a device) is refused: the
/// download would be written into whatever it points at.
async fn existing_part(part: &Path) -> Result<Option<u64>> {
    use std::os::unix::fs::MetadataExt;
    match tokio::fs::symlink_metadata(part).await {
        Ok(m) if m.file_type().is_file() && m.nlink() == 1 => Ok(Some(m.len())),
        Ok(_) => Err(ClientError::Io {
            path: part.display().to_string(),
            source: std::io::Error::other(
                "is not a regular file of its own (a symlink or a hard link?); remove it",
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(part)(e)),
    }
}

/// Where a download in progress is kept: `NAME.part` beside the destination.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn file_id(h: &header::HeaderMap) -> Option<String> {
    h.get(FILE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn enc(s: &str) -> String {
    // Ids are UUIDs; encode anyway so a hostile id cannot change the path.
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn file_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
}

fn counting<S: Stream<Item = std::io::Result<Bytes>> + Send + 'static>(
    s: S,
    start: u64,
    progress: Option<Progress>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut n = start;
    s.inspect_ok(move |b| {
        n += b.len() as u64;
        if let Some(p) = &progress {
            p(n);
        }
    })
}

/// BLAKE3 of a local file, hex.
pub async fn hash_file(path: &Path) -> Result<String> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut h = blake3::Hasher::new();
        h.update_mmap(&p).map_err(io_at(&p))?;
        Ok(h.finalize().to_hex().to_string())
    })
    .await
    .map_err(|e| ClientError::Protocol(e.to_string()))?
}

//! The envelopes of the HTTP API: what wraps the records in requests and responses, and the
//! headers disgrafs adds. Defined once here, used by the server (which describes them in its
//! OpenAPI document), the client and, by hand, `web/src/types.ts`.

use crate::{CoOccurrence, FileRecord, Related, TagCount};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Response header carrying the id of the file a request stored (tus: the last PATCH, or a HEAD
/// of a finished upload).
pub const FILE_ID_HEADER: &str = "disgrafs-file-id";

/// Body of every error response: `{"error": "...", "code": "...", "position": N}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// One line a person can read.
    pub error: String,
    /// Stable, machine-readable cause.
    #[serde(default)]
    pub code: String,
    /// Character offset of a query error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// `GET /api/health`: liveness, with the store's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub version: String,
    pub files: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub tags: u64,
    pub jobs_queued: u64,
    pub jobs_running: u64,
    pub jobs_failed: u64,
}

/// `GET /api/files`: one page of a query's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    pub files: Vec<FileRecord>,
    /// Matching files in all, beyond this page.
    pub total: u64,
}

/// `POST /api/files` (multipart): the files stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uploaded {
    pub files: Vec<FileRecord>,
}

/// `POST|DELETE /api/files/{id}/tags`: the tags to add or remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagsBody {
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub tags: Vec<String>,
}

/// `PUT /api/files/{id}/group`: the group a file is shared with, read-only (none: nobody).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareBody {
    pub group: Option<String>,
}

/// `GET /api/files/{id}/related`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelatedList {
    pub related: Vec<Related>,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagList {
    pub tags: Vec<TagCount>,
}

/// `GET /api/tags/cooccurrence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoList {
    pub pairs: Vec<CoOccurrence>,
}

/// `POST /api/retag`: how many contents were queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetagQueued {
    pub queued: u64,
}

/// How a figure of `GET /api/metrics/recent` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetricsUnit {
    Percent,
    BytesPerSecond,
    PerSecond,
    Milliseconds,
    Count,
}

/// One chart of the dashboard: a figure and, when it has no values now, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsFigure {
    pub id: String,
    pub title: String,
    pub unit: MetricsUnit,
    /// Why the figure has no values (a /proc section unreadable, no accelerator attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// One sampling instant: figure id → series name → value. A series missing from a point had no
/// value then (no requests for the latency, an interface not there yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsPoint {
    /// Milliseconds since the Unix epoch; strictly increasing.
    pub t: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub values: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

/// `GET /api/metrics/recent`: the dashboard's figures over the last minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentMetrics {
    /// Milliseconds between points.
    pub interval_ms: u64,
    /// Most points the server keeps.
    pub keep: u64,
    pub figures: Vec<MetricsFigure>,
    /// Oldest first; only those newer than the request's `since`.
    pub points: Vec<MetricsPoint>,
}

/// `POST /api/auth/login` (a session for the page) and `POST /api/auth/token` (an API token):
/// a user's name and password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginBody {
    pub user: String,
    pub password: String,
    /// `POST /api/auth/token` only: the token's scope (default: the user's role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::auth::Scope>,
}

/// `POST /api/auth/link`: the code of a one-time login link (the part after `#`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkBody {
    pub code: String,
}

/// Media type of a directory's listing as JSON: `GET /dav/DIR/` with this `Accept` answers a
/// `Vec<DirEntry>` instead of the download of a collection, the entries of a PROPFIND of depth 1
/// without their XML (what `disgrafs mount` reads: a listing of 100,000 files is a few
/// megabytes of JSON, not thirty of multistatus).
pub const DIR_LISTING_TYPE: &str = "application/json";

/// One entry of a directory of the WebDAV view, as its JSON listing has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Its name in the directory (as in the WebDAV view: unique, safe for a file system).
    pub name: String,
    pub dir: bool,
    pub size: u64,
    /// Last modified, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

impl DirEntry {
    pub fn new(name: String, dir: bool, size: u64, modified: SystemTime) -> Self {
        let modified_ms = match modified.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        DirEntry {
            name,
            dir,
            size,
            modified_ms,
        }
    }

    /// [`Self::modified_ms`] as a time.
    pub fn modified(&self) -> SystemTime {
        let ms = Duration::from_millis(self.modified_ms.unsigned_abs());
        if self.modified_ms >= 0 {
            SystemTime::UNIX_EPOCH + ms
        } else {
            SystemTime::UNIX_EPOCH - ms
        }
    }
}

/// `GET /api/auth/me` and the answer of a login: who the credential is and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Whoami {
    pub user: String,
    pub scope: crate::auth::Scope,
    /// Bytes the user's files hold (each file its size, copies included).
    #[serde(default)]
    pub used: u64,
    /// Bytes the user's files may hold; none: no limit. An upload beyond it is 507.
    #[serde(default)]
    pub quota: Option<u64>,
}

/// `POST /api/auth/token`: a new API token, shown this once (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub id: i64,
    pub token: String,
    pub scope: crate::auth::Scope,
}

/// `POST /api/shares`: a read-only link to one file or to a query's files (exactly one of
/// them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewShareLink {
    /// A file's id (the file must be the caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A query: the link shows the files matching it that the caller sees, as they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Seconds the link works; none: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31_622_400))]
    pub expires_in: Option<u64>,
    /// A password the link's visitors must give (8 characters at least).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A share link. `url` (with its secret) only in the answer that made it: only the secret's
/// hash is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareLink {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Who made it.
    pub user: String,
    /// Unix ms.
    pub created: i64,
    /// Unix ms; none: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Whether visitors must give a password.
    pub password: bool,
    /// The link's path on this server, `/s/SECRET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `GET /api/shares`: the caller's live links (every link for an admin), newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareLinks {
    pub shares: Vec<ShareLink>,
}

/// One file as a share link shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedFile {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub mime: String,
    /// RFC 3339.
    pub modified: String,
    /// The visible tags' names.
    pub tags: Vec<String>,
}

/// `GET /s/{secret}/files`: what a share link shows (a query's first files, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub files: Vec<SharedFile>,
    /// How many files match (more than `files` holds when the query has many).
    pub total: u64,
}

/// `POST /s/{secret}/unlock`: a link's password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareUnlock {
    pub password: String,
}

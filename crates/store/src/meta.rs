//! The metadata and graph store: file records, tags, edges and the job queue, behind one trait so
//! that SQLite (the embedded default) and PostgreSQL (scale-out) are two adapters of one contract.

use crate::StoreError;
use async_trait::async_trait;
use disgrafs_core::auth::Scope;
use disgrafs_core::query::Expr;
use disgrafs_core::{
    CoOccurrence, FileKind, FileName, FileRecord, FolderPath, Graph, Related, TagCount,
};
use std::collections::BTreeMap;

/// A user account. `password` is an argon2 PHC string (none: the user logs in by link or token
/// only); `role` is the largest scope the user's credentials may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub password: Option<String>,
    pub role: Scope,
    pub usage: Usage,
}

/// The bytes a user's file records hold, and their quota. Every record counts its size, a copy
/// (which shares content) as much as an upload: the quota bounds what a user may make the
/// server keep, so it cannot depend on what others uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub used: u64,
    /// None: no limit.
    pub quota: Option<u64>,
}

impl Usage {
    /// The bytes that still fit; none: no limit.
    pub fn room(&self) -> Option<u64> {
        self.quota.map(|q| q.saturating_sub(self.used))
    }

    /// Whether `size` more bytes fit, or why not: the one rule of quotas.
    pub fn admit(&self, size: u64) -> Result<(), StoreError> {
        match self.room() {
            Some(room) if size > room => Err(StoreError::OverQuota(format!(
                "{size} more bytes exceed the quota: {} of {} bytes used",
                self.used,
                self.quota.unwrap_or_default()
            ))),
            _ => Ok(()),
        }
    }
}

/// How a credential is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A token for the CLI and scripts (`Authorization: Bearer`, or Basic's password).
    Api,
    /// The page's session cookie.
    Session,
    /// A one-time login link: taken (deleted) when used.
    Link,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Api => "api",
            CredentialKind::Session => "session",
            CredentialKind::Link => "link",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            CredentialKind::Api,
            CredentialKind::Session,
            CredentialKind::Link,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A credential to record: only the hash of its secret is kept.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub user_id: i64,
    pub hash: &'a str,
    pub kind: CredentialKind,
    pub scope: Scope,
    /// Lifetime from now, on the database's clock; none: until revoked.
    pub ttl_ms: Option<i64>,
}

/// Most links [`MetaStore::shares`] lists.
pub const MAX_SHARES_LISTED: u32 = 1000;

/// What a share link opens: one file, or a query's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    File(String),
    Query(String),
}

/// A share link to record: only the hash of its secret is kept.
#[derive(Debug, Clone)]
pub struct NewShare<'a> {
    pub user_id: i64,
    /// What the maker may change: a file's link needs the file to be theirs.
    pub maker: Viewer,
    pub hash: &'a str,
    pub target: &'a ShareTarget,
    /// An argon2 PHC string; none: the link alone opens it.
    pub password: Option<&'a str>,
    /// Lifetime from now, on the database's clock; none: until revoked.
    pub ttl_ms: Option<i64>,
}

/// A recorded share link and its maker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: i64,
    pub user_id: i64,
    pub user: String,
    /// The maker's role: an admin's link shows what an admin sees.
    pub role: Scope,
    pub target: ShareTarget,
    pub password: Option<String>,
    /// Unix ms.
    pub created: i64,
    /// Unix ms; none: never.
    pub expires: Option<i64>,
}

/// A recorded, unexpired credential and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: i64,
    pub user_id: i64,
    pub user: String,
    pub kind: CredentialKind,
    pub scope: Scope,
    /// Unix ms; none: never.
    pub expires: Option<i64>,
}

/// Who asks: what a query may show and a change may touch. Every query over files, tags, edges
/// and counts takes one, and [`crate::sql`] turns it into the one condition on a file row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Everything: admins, and internal callers (the worker, fsck, the tagger, benchmarks).
    All,
    /// A user: their own files, and read-only the files shared with a group they are in.
    User(i64),
}

impl Viewer {
    /// What a user sees with `scope` (a credential's, or a share link's maker's role):
    /// everything under `admin`, else their own files and those shared with their groups.
    pub fn of(user_id: i64, scope: Scope) -> Self {
        if scope == Scope::Admin {
            Viewer::All
        } else {
            Viewer::User(user_id)
        }
    }

    /// The user, for a viewer that is one.
    pub fn user(&self) -> Option<i64> {
        match self {
            Viewer::All => None,
            Viewer::User(u) => Some(*u),
        }
    }
}

/// A file record to create, for content already committed to the blob store.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub name: &'a FileName,
    /// The folder it was uploaded from: recorded, made to exist, and each folder of it a user
    /// tag of the record (user tags belong to the record, so re-tagging keeps them).
    pub folder: FolderPath,
    pub hash: &'a str,
    pub size: u64,
    /// Type as detected at upload from the first bytes; tagging may refine it.
    pub mime: &'a str,
    pub kind: FileKind,
    /// The user it belongs to; none: admins only see it.
    pub owner: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    Name,
    Size,
    Mime,
    Created,
    #[default]
    Modified,
    /// How well the content matches the query's `text:` terms (BM25 in SQLite, `ts_rank` in
    /// PostgreSQL), best first; without a text term, [`SortKey::Modified`].
    Relevance,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => SortKey::Name,
            "size" => SortKey::Size,
            "mime" | "type" => SortKey::Mime,
            "created" => SortKey::Created,
            "modified" | "date" => SortKey::Modified,
            "relevance" => SortKey::Relevance,
            _ => return None,
        })
    }
}

/// What one statement of a query may cost before the database aborts it (the query is then
/// refused with [`StoreError::TooCostly`](crate::StoreError::TooCostly)). Queries (searches,
/// graphs, related files, tag listings, co-occurrence) run on a pool of their own,
/// [`QUERY_CONNECTIONS`] connections with this budget, so they can neither run without end nor
/// take the connections that downloads, uploads and the queue use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBudget {
    /// SQLite: virtual-machine steps, counted by a progress handler (deterministic: the same
    /// statement on the same data costs the same, however busy the machine).
    pub sqlite_steps: u64,
    /// PostgreSQL: the connections' `statement_timeout`.
    pub pg_timeout: std::time::Duration,
}

impl Default for QueryBudget {
    fn default() -> Self {
        QueryBudget {
            sqlite_steps: 1_000_000_000,
            pg_timeout: std::time::Duration::from_secs(15),
        }
    }
}

/// Connections of the query pool ([`QueryBudget`]): at most this many queries run at once, and
/// the others wait for one, never for a download's connection.
pub const QUERY_CONNECTIONS: u32 = 4;

/// Run by a writer that changes edges (`files`, `blob_tags`, `file_tags`) in the schema
/// directly, bypassing [`MetaStore`] (the benchmarks' corpus generators): the per-tag counts are
/// then recounted when a store next opens the database for writing.
pub const INVALIDATE_TAG_COUNTS: &str = "DELETE FROM tag_counts_basis";

#[derive(Debug, Clone, Copy)]
pub struct ListOptions {
    pub sort: SortKey,
    pub descending: bool,
    pub limit: u32,
    pub offset: u64,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            sort: SortKey::Modified,
            descending: true,
            limit: 100,
            offset: 0,
        }
    }
}

/// What a directory listing (WebDAV's, a mount's) shows of a file: no tags, no fields, so a
/// directory of 100,000 files is one narrow scan.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub size: u64,
    /// BLAKE3 of the content: the blob's key, and the download's ETag.
    pub hash: String,
    pub created: time::OffsetDateTime,
    pub modified: time::OffsetDateTime,
}

impl FileEntry {
    /// A record's entry.
    pub fn of(rec: &FileRecord) -> Self {
        FileEntry {
            id: rec.id.clone(),
            name: rec.name.clone(),
            folder: rec.folder.clone(),
            size: rec.size,
            hash: rec.hash.clone(),
            created: rec.created,
            modified: rec.modified,
        }
    }
}

/// Which files [`MetaStore::entries`] lists.
#[derive(Debug, Clone, Copy)]
pub enum EntryScope<'a> {
    /// The files directly in a folder.
    Folder(&'a FolderPath),
    /// The files matching a query.
    Query(&'a Expr),
}

/// A job claimed this many times without finishing is failed, not tried again: a content that
/// crashes or hangs its worker must not do so forever.
pub const MAX_JOB_ATTEMPTS: u32 = 3;

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub hash: String,
    /// How many times it has been claimed, this one included.
    pub attempts: u32,
}

/// What serving a file's bytes needs, from one cheap lookup (no tags).
#[derive(Debug, Clone, PartialEq)]
pub struct FileContent {
    pub name: String,
    /// BLAKE3 of the content: the blob's key, and the download's ETag.
    pub hash: String,
    pub size: u64,
    pub mime: String,
}

/// One automatic tag to record for a content.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAutoTag {
    pub name: String,
    pub extractor: String,
    pub version: u32,
    /// The extractor's confidence, 0..=1: the weight of the tag's edges.
    pub confidence: f64,
}

/// What tagging found for a content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagResult {
    pub mime: String,
    pub kind: FileKind,
    pub tags: Vec<NewAutoTag>,
    pub fields: BTreeMap<String, String>,
    /// The extractors (and versions) that ran.
    pub versions: BTreeMap<String, u32>,
    /// The content's text for full-text search, as [`disgrafs_core::fulltext::index_text`] cut
    /// it (bounded by the tagger); empty when it has none.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobStats {
    pub queued: u64,
    pub running: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub files: u64,
    pub blobs: u64,
    /// Bytes of distinct content.
    pub bytes: u64,
    pub tags: u64,
    pub edges: u64,
}

/// Which contents to tag again.
#[derive(Debug, Clone)]
pub enum Retag {
    All,
    /// Only contents tagged by an older version of some extractor than these.
    Outdated(BTreeMap<String, u32>),
}

impl Retag {
    /// The retag rule, for every adapter: is a content whose tags came from the extractor
    /// versions `stored` due? An extractor that did not run then, or ran at a lower version,
    /// makes it due.
    pub fn is_due(&self, stored: &BTreeMap<String, u32>) -> bool {
        match self {
            Retag::All => true,
            Retag::Outdated(current) => current
                .iter()
                .any(|(ex, v)| stored.get(ex).is_none_or(|old| old < v)),
        }
    }
}

/// A tus upload as every node sees it: what was declared, and how many bytes are durably stored
/// (the sum of its parts: the offset never claims bytes that are not there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub id: String,
    pub length: u64,
    pub name: String,
    /// The raw Upload-Metadata header, echoed on HEAD.
    pub metadata: String,
    pub offset: u64,
    /// The stored file, once the upload is complete.
    pub file_id: Option<String>,
    /// Who started it (none: an upload of before owners, or of a deleted user).
    pub owner: Option<i64>,
}

/// One piece of an upload's bytes: an object in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPart {
    pub start: u64,
    pub len: u64,
    pub key: String,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Closes the database's connections and waits until they are closed (every later call
    /// fails): what lets another opener of the same SQLite file change its journal mode.
    async fn close(&self);
    /// Creates a file record for a committed content, increments the content's reference count
    /// and, when the content is new, queues it for tagging: all in one transaction.
    async fn insert_file(&self, new: NewFile<'_>) -> Result<FileRecord, StoreError>;
    async fn get_file(&self, who: &Viewer, id: &str) -> Result<FileRecord, StoreError>;
    /// What a download of the file needs: one cheap lookup.
    async fn get_content(&self, who: &Viewer, id: &str) -> Result<FileContent, StoreError>;
    /// Deletes a file record (every change of a record, here and below, needs `who` to own it:
    /// another's record is NotFound, so its existence is not told). Returns the content hash when this was its last reference: the
    /// caller then deletes the blob (the content row is gone already).
    async fn delete_file(&self, who: &Viewer, id: &str) -> Result<Option<String>, StoreError>;
    /// Files matching a query, one page, with the total count.
    async fn list_files(
        &self,
        who: &Viewer,
        q: &Expr,
        opts: ListOptions,
    ) -> Result<(Vec<FileRecord>, u64), StoreError>;
    async fn add_user_tags(
        &self,
        who: &Viewer,
        id: &str,
        tags: &[String],
    ) -> Result<FileRecord, StoreError>;
    /// Removes user tags; an automatic tag named here is hidden on this file.
    async fn remove_tags(
        &self,
        who: &Viewer,
        id: &str,
        tags: &[String],
    ) -> Result<FileRecord, StoreError>;
    async fn related(&self, who: &Viewer, id: &str, limit: u32)
    -> Result<Vec<Related>, StoreError>;
    /// The subgraph of the files matching `q` and their tags, at most `limit` nodes.
    async fn graph(&self, who: &Viewer, q: &Expr, limit: u32) -> Result<Graph, StoreError>;
    async fn tags(
        &self,
        who: &Viewer,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<TagCount>, StoreError>;
    async fn cooccurrence(&self, who: &Viewer, limit: u32)
    -> Result<Vec<CoOccurrence>, StoreError>;
    async fn stats(&self, who: &Viewer) -> Result<StoreStats, StoreError>;

    // Folders (what a file-system view lists).
    /// The names of the folders directly inside `parent`, sorted.
    async fn subfolders(
        &self,
        who: &Viewer,
        parent: &FolderPath,
    ) -> Result<Vec<String>, StoreError>;
    /// Whether a folder exists (the root always does).
    async fn folder_exists(&self, who: &Viewer, path: &FolderPath) -> Result<bool, StoreError>;
    /// Makes a folder and its ancestors; false when it existed already.
    async fn make_folder(&self, who: &Viewer, path: &FolderPath) -> Result<bool, StoreError>;
    /// Removes a folder and the folders inside it; files inside keep their folder path. A
    /// user's removal of a folder that holds others' files or folders (at any depth) only ends
    /// the user's claim to it: it stays for them.
    async fn remove_folder(&self, who: &Viewer, path: &FolderPath) -> Result<(), StoreError>;
    /// The entries of the files in `scope` that `who` sees (only those whose lower-cased name
    /// starts with `name_prefix`, when given), oldest record first (newest first with
    /// `newest_first`), at most `limit`.
    async fn entries(
        &self,
        who: &Viewer,
        scope: EntryScope<'_>,
        name_prefix: Option<&str>,
        newest_first: bool,
        limit: u32,
    ) -> Result<Vec<FileEntry>, StoreError>;
    /// Gives a record another folder and name (the target folder is made to exist).
    async fn move_file(
        &self,
        who: &Viewer,
        id: &str,
        folder: &FolderPath,
        name: &FileName,
    ) -> Result<FileRecord, StoreError>;

    // The job queue.
    /// Claims the next ready job, leasing it for `lease_ms`.
    async fn claim_job(&self, lease_ms: i64) -> Result<Option<Job>, StoreError>;
    async fn renew_job(&self, job: &Job, lease_ms: i64) -> Result<(), StoreError>;
    /// Records tagging's result for the job's content and removes the job.
    async fn complete_job(&self, job: &Job, result: TagResult) -> Result<(), StoreError>;
    /// Puts a job back with a delay, or marks it failed after `max_attempts`.
    async fn fail_job(&self, job: &Job, error: &str, max_attempts: u32) -> Result<(), StoreError>;
    /// At start-up: jobs that a previous run of this process left running are queued again.
    async fn recover_jobs(&self) -> Result<u64, StoreError>;
    async fn enqueue_retag(&self, which: Retag) -> Result<u64, StoreError>;
    async fn job_stats(&self) -> Result<JobStats, StoreError>;

    // tus uploads. A node writes an upload only while it holds its lease (`token`, renewed by
    // locking again); every change of a part list is fenced by it.
    /// Creates an upload at offset 0, refused with `Busy` when `max_live` are in progress, and
    /// with `TooMany` when its owner has `max_per_owner` in progress.
    async fn create_upload(
        &self,
        row: &UploadRow,
        max_live: u64,
        max_per_owner: u64,
    ) -> Result<(), StoreError>;
    async fn get_upload(&self, id: &str) -> Result<UploadRow, StoreError>;
    /// Takes (or renews) the upload's lease: false while another token holds an unexpired one.
    async fn lock_upload(&self, id: &str, token: &str, lease_ms: i64) -> Result<bool, StoreError>;
    async fn unlock_upload(&self, id: &str, token: &str) -> Result<(), StoreError>;
    /// Adds a durable part at the upload's current offset and raises the offset by its length;
    /// false (nothing changed) when the lease or the offset is no longer the caller's.
    async fn add_upload_part(
        &self,
        id: &str,
        token: &str,
        part: &UploadPart,
    ) -> Result<bool, StoreError>;
    async fn upload_parts(&self, id: &str) -> Result<Vec<UploadPart>, StoreError>;
    /// Records the stored file of a complete upload and forgets its parts, whose keys it
    /// returns for the caller to delete.
    async fn finish_upload(
        &self,
        id: &str,
        token: &str,
        file_id: &str,
    ) -> Result<Vec<String>, StoreError>;
    /// Removes an upload held by `token`; the keys of its parts, to delete.
    async fn delete_upload(&self, id: &str, token: &str) -> Result<Vec<String>, StoreError>;
    /// Uploads unchanged for `idle_ms`.
    async fn idle_uploads(&self, idle_ms: i64) -> Result<Vec<String>, StoreError>;
    /// Uploads in progress (not complete).
    async fn live_uploads(&self) -> Result<u64, StoreError>;

    // Consistency (`Store::fsck`, the start-up sweep).
    /// Every content row: its size, its reference count, and the records that point at it.
    async fn blob_refs(&self) -> Result<Vec<BlobRefs>, StoreError>;
    /// Whether a content row exists for `hash`.
    async fn blob_known(&self, hash: &str) -> Result<bool, StoreError>;
    /// Sets a content's reference count to the records that point at it, in one transaction;
    /// a content no record points at loses its row (and its jobs and text), and its hash is
    /// returned: its bytes may go.
    async fn fix_refs(&self, hash: &str) -> Result<Option<String>, StoreError>;

    // Accounts (`crate::accounts` holds the rules: hashing, secrets, lifetimes).
    /// Creates a user; `None` when the name is taken.
    async fn create_user(
        &self,
        name: &str,
        password: Option<&str>,
        role: Scope,
    ) -> Result<Option<i64>, StoreError>;
    async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError>;
    /// What a user's records hold and may hold; none when there is no such user.
    async fn usage(&self, user_id: i64) -> Result<Option<Usage>, StoreError>;
    /// Sets (or, with `None`, removes) a user's quota in bytes; false when there is no such user.
    async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, StoreError>;
    async fn user_count(&self) -> Result<u64, StoreError>;
    /// Sets (or, with `None`, removes) a user's password hash; false when there is no such user.
    async fn set_password(&self, name: &str, password: Option<&str>) -> Result<bool, StoreError>;
    async fn add_credential(&self, c: &NewCredential<'_>) -> Result<i64, StoreError>;
    /// The unexpired credential whose secret hashes to `hash`.
    async fn credential(&self, hash: &str) -> Result<Option<CredentialRow>, StoreError>;
    /// Deletes and returns the unexpired credential of `kind` whose secret hashes to `hash`:
    /// of two requests with one single-use secret, one gets it.
    async fn take_credential(
        &self,
        hash: &str,
        kind: CredentialKind,
    ) -> Result<Option<CredentialRow>, StoreError>;
    /// A user's unexpired credentials, oldest first.
    async fn credentials(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError>;
    /// Deletes a credential (and removes expired ones); false when there was none with that id.
    async fn revoke_credential(&self, id: i64) -> Result<bool, StoreError>;

    // Groups and sharing. A user's files are theirs; a group's members read (never change) the
    // files shared with it.
    /// Creates a group; `None` when the name is taken.
    async fn create_group(&self, name: &str) -> Result<Option<i64>, StoreError>;
    /// Adds a user to a group; false when the group or the user does not exist.
    async fn add_group_member(&self, group: &str, user: &str) -> Result<bool, StoreError>;
    /// Shares a file with a group (or, with `None`, with nobody): its owner or an admin only
    /// (NotFound otherwise, and for an unknown group).
    async fn share_file(
        &self,
        who: &Viewer,
        id: &str,
        group: Option<&str>,
    ) -> Result<FileRecord, StoreError>;

    // Share links.

    /// Records a share link (sweeping expired ones); its id. A file's link needs the file to be
    /// the maker's (NotFound otherwise).
    async fn add_share(&self, s: &NewShare<'_>) -> Result<i64, StoreError>;
    /// The unexpired share link with this secret hash.
    async fn share(&self, hash: &str) -> Result<Option<ShareRow>, StoreError>;
    /// The unexpired links `who` made (every link for [`Viewer::All`]), newest first.
    async fn shares(&self, who: &Viewer) -> Result<Vec<ShareRow>, StoreError>;
    /// Revokes a link `who` made (any for [`Viewer::All`]); false when there is none such.
    async fn revoke_share(&self, who: &Viewer, id: i64) -> Result<bool, StoreError>;
}

/// A content row as `fsck` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRefs {
    pub hash: String,
    pub size: u64,
    /// The stored reference count.
    pub refs: i64,
    /// The records that point at it.
    pub files: i64,
}

#[cfg(test)]
mod tests {
    use super::Retag;
    use std::collections::BTreeMap;

    #[test]
    fn retag_rule() {
        let current = BTreeMap::from([("keywords".to_string(), 3), ("image".to_string(), 1)]);
        let outdated = Retag::Outdated(current.clone());
        assert!(!outdated.is_due(&current), "current versions are not due");
        let mut older = current.clone();
        *older.get_mut("keywords").unwrap() = 2;
        assert!(outdated.is_due(&older), "a version that rose is due");
        older.remove("keywords");
        assert!(
            outdated.is_due(&older),
            "an extractor that did not run is due"
        );
        let mut newer = current.clone();
        *newer.get_mut("keywords").unwrap() = 9;
        assert!(!outdated.is_due(&newer), "a downgrade does not retag");
        assert!(Retag::All.is_due(&current));
    }
}

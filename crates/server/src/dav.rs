//! WebDAV at `/dav/` (class 1 and 2), through the `dav-server` crate, over the store: a view of
//! the graph as a file system that every desktop OS can mount without installing anything.
//!
//! Layout:
//! - `/dav/files/` every file, in the folder it was uploaded from (`FileRecord::folder`);
//!   MKCOL makes a folder, DELETE deletes files (and emptied folders), MOVE/COPY rename and copy
//!   records (a copy is a second record of the same content: no bytes are copied).
//! - `/dav/tags/A/B/` the files tagged `A AND B` (`/dav/tags/` lists every tag). PUT uploads the
//!   file with these tags, DELETE removes the innermost tag (never the file), MOVE between tag
//!   directories retags (the source's tags that the destination lacks go, the destination's
//!   come).
//! - `/dav/query/EXPR/` the files of any query (read-only); `/dav/recent/` the newest files.
//!
//! Names go through `disgrafs_core::fsname` (duplicates get ` (2)`, unsafe characters and tags
//! with `/` are mapped reversibly). A PUT streams through [`upload::stage`] and
//! [`upload::publish`], the path every upload takes (size limit, staging slots, fsync, commit,
//! then the record); a GET streams the blob with Range. Locks are dav-server's in-memory lock
//! system wrapped so that a lock ends at its timeout ([`ExpiringLs`]): locks do not survive a
//! restart, and neither do dead properties (PROPPATCH), which are kept in memory too.

use crate::error::{ApiError, Cause};
use crate::{AppState, upload};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use bytes::{Buf, Bytes, BytesMut};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, OpenOptions, ReadDirMeta,
};
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use dav_server::memls::MemLs;
use dav_server::{DavConfig, DavHandler};
use disgrafs_core::fsname::{
    class_prefix, name_class, name_from_fs, name_to_fs, tag_from_fs, tag_to_fs, unique_names,
};
use disgrafs_core::query::{self, Expr, Predicate};
use disgrafs_core::{FileName, FileRecord, FolderPath, api, normalize_tag};
use disgrafs_store::{EntryScope, FileEntry, Principal, Viewer};
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Most files a directory lists (a view of more shows the oldest this many).
pub const MAX_DIR_FILES: u32 = 100_000;
/// Most tags `/dav/tags/` lists.
const MAX_TAG_DIRS: u32 = 10_000;
/// Most resources that may carry dead properties at once.
const MAX_PROP_PATHS: usize = 10_000;
/// How many files `/dav/recent/` shows.
const RECENT: u32 = 100;
/// The sections of `/dav/`.
const SECTIONS: [&str; 4] = ["files", "tags", "query", "recent"];

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let dav = DavHandler::builder()
        .locksystem(Box::new(ExpiringLs::default()))
        .strip_prefix("/dav")
        .build_handler();
    let props = Arc::default();
    let handle = move |req: Request| {
        let dav = dav.clone();
        // Each request sees the store as its credential does (the middleware put it there).
        let fs = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .map(|who| GraphFs {
                state: state.clone(),
                props: Arc::clone(&props),
                who,
            });
        async move {
            let Some(fs) = fs else {
                return ApiError::internal("WebDAV request without a credential").into_response();
            };
            if let Some(dir) = json_listing_of(&req) {
                return fs.json_listing(dir).await.into_response();
            }
            let config = DavConfig::new().filesystem(Box::new(fs));
            // dav-server panics on some malformed `If` headers (an index past the end in its
            // parser): that request gets a 400, and the connection and the server stay.
            let handled = std::panic::AssertUnwindSafe(dav.handle_with(config, req)).catch_unwind();
            let Ok(mut resp) = handled.await else {
                return ApiError::bad_request("malformed WebDAV request headers").into_response();
            };
            // Stored files are untrusted: the download's own policy applies here too.
            let mime = resp
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(mime) = mime {
                crate::download::stored_file_policy(resp.headers_mut(), &mime);
            }
            if resp.status() == StatusCode::MULTI_STATUS {
                return resp.map(coalesced).into_response();
            }
            resp.into_response()
        }
    };
    Router::new()
        .route("/dav", any(handle.clone()))
        .route("/dav/", any(handle.clone()))
        .route("/dav/{*path}", any(handle))
}

/// The directories of the layout whose files come from the store.
#[derive(Debug, Clone, PartialEq)]
enum View {
    Folder(FolderPath),
    Tags(Vec<String>),
    Query(String),
    Recent,
}

/// What a path names.
#[derive(Debug, Clone)]
enum Loc {
    Root,
    /// `/dav/tags/` or `/dav/query/`.
    Section(&'static str),
    Dir(View),
    /// A file name in a view's directory, which may not exist yet (a PUT's target).
    Entry(View, String),
}

fn fs_err(e: impl Into<ApiError>) -> FsError {
    let e: ApiError = e.into();
    e.cause().fs_error()
}

fn segments(path: &DavPath) -> FsResult<Vec<String>> {
    path.as_bytes()
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            std::str::from_utf8(s)
                .map(str::to_owned)
                .map_err(|_| FsError::NotFound)
        })
        .collect()
}

fn folder_of(fs_names: &[String]) -> FsResult<FolderPath> {
    let names: Vec<String> = fs_names.iter().map(|n| name_from_fs(n)).collect();
    FolderPath::new(&names.join("/")).map_err(|_| FsError::NotFound)
}

fn tag_of(fs_name: &str) -> FsResult<String> {
    let raw = tag_from_fs(fs_name).ok_or(FsError::NotFound)?;
    normalize_tag(&raw).map_err(|_| FsError::NotFound)
}

fn file_name(fs_name: &str) -> FsResult<FileName> {
    FileName::new(name_from_fs(fs_name)).map_err(|_| FsError::Forbidden)
}

/// The file system dav-server serves: the store, seen through the layout above.
#[derive(Clone)]
struct GraphFs {
    state: AppState,
    /// Dead properties (PROPPATCH), by path: in memory only.
    props: Arc<Mutex<HashMap<String, Vec<DavProp>>>>,
    /// Whose request this is: what the store shows it and lets it change.
    who: Principal,
}

impl GraphFs {
    fn viewer(&self) -> Viewer {
        self.who.viewer()
    }

    async fn locate(&self, path: &DavPath) -> FsResult<Loc> {
        self.locate_as(path, false).await
    }

    /// [`Self::locate`]; with `entry`, a path in a tag directory that names no file is taken as
    /// a file to make there (a PUT's or a MOVE's target), not as one more tag.
    async fn locate_as(&self, path: &DavPath, entry: bool) -> FsResult<Loc> {
        let segs = segments(path)?;
        let Some((section, rest)) = segs.split_first() else {
            return Ok(Loc::Root);
        };
        match (section.as_str(), rest) {
            ("files", []) => Ok(Loc::Dir(View::Folder(FolderPath::default()))),
            ("files", rest) => {
                let whole = folder_of(rest);
                if let Ok(folder) = &whole
                    && self.store_folder_exists(folder).await?
                {
                    return Ok(Loc::Dir(View::Folder(folder.clone())));
                }
                let (last, parent) = rest.split_last().expect("not empty");
                let parent = folder_of(parent)?;
                if !self.store_folder_exists(&parent).await? {
                    return Err(FsError::NotFound);
                }
                Ok(Loc::Entry(View::Folder(parent), last.clone()))
            }
            ("tags", []) => Ok(Loc::Section("tags")),
            ("tags", rest) => {
                let (last, parent) = rest.split_last().expect("not empty");
                if !parent.is_empty() && !path.is_collection() {
                    let view =
                        View::Tags(parent.iter().map(|t| tag_of(t)).collect::<FsResult<_>>()?);
                    if entry || self.find(&view, last).await?.is_some() {
                        return Ok(Loc::Entry(view, last.clone()));
                    }
                }
                let tags: Vec<String> = rest.iter().map(|t| tag_of(t)).collect::<FsResult<_>>()?;
                // Named without a trailing slash, a last segment that is no file is a directory
                // only when it is a tag with files: `tags/a/new.txt` is not there (a MOVE or a
                // PUT may make it), while `tags/a/b` is the intersection.
                if !path.is_collection() && !entry {
                    let innermost = Expr::Pred(Predicate::Tag(tags[tags.len() - 1].clone()));
                    let scope = EntryScope::Query(&innermost);
                    let some = (self.state.store)
                        .entries(&self.viewer(), scope, None, false, 1)
                        .await
                        .map_err(fs_err)?;
                    if some.is_empty() {
                        return Err(FsError::NotFound);
                    }
                }
                Ok(Loc::Dir(View::Tags(tags)))
            }
            ("query", []) => Ok(Loc::Section("query")),
            ("query", [expr, rest @ ..]) => {
                let expr = tag_from_fs(expr).unwrap_or_else(|| expr.clone());
                query::parse(&expr).map_err(|_| FsError::NotFound)?;
                match rest {
                    [] => Ok(Loc::Dir(View::Query(expr))),
                    [name] => Ok(Loc::Entry(View::Query(expr), name.clone())),
                    _ => Err(FsError::NotFound),
                }
            }
            ("recent", []) => Ok(Loc::Dir(View::Recent)),
            ("recent", [name]) => Ok(Loc::Entry(View::Recent, name.clone())),
            _ => Err(FsError::NotFound),
        }
    }

    async fn store_folder_exists(&self, folder: &FolderPath) -> FsResult<bool> {
        (self.state.store)
            .folder_exists(&self.viewer(), folder)
            .await
            .map_err(fs_err)
    }

    /// The directories a view's directory lists, by their file-system names.
    async fn subdirs(&self, view: &View) -> FsResult<Vec<String>> {
        match view {
            View::Folder(f) => Ok(self
                .state
                .store
                .subfolders(&self.viewer(), f)
                .await
                .map_err(fs_err)?
                .iter()
                .map(|n| name_to_fs(n))
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// The entries of the directory at `path`: its subdirectories, then its files (what a
    /// PROPFIND of depth 1 and the JSON listing both list).
    async fn dir_entries(&self, path: &DavPath) -> FsResult<Vec<Entry>> {
        let dirs: Vec<String>;
        let mut files = Vec::new();
        match self.locate(path).await? {
            Loc::Root => dirs = SECTIONS.iter().map(|s| s.to_string()).collect(),
            Loc::Section("tags") => {
                dirs = self
                    .state
                    .store
                    .tags(&self.viewer(), "", MAX_TAG_DIRS)
                    .await
                    .map_err(fs_err)?
                    .iter()
                    .map(|t| tag_to_fs(&t.name))
                    .collect()
            }
            Loc::Section(_) => dirs = Vec::new(),
            Loc::Dir(view) => {
                let (d, named) = self.named(&view, None).await?;
                dirs = d;
                files = named
                    .into_iter()
                    .map(|(name, rec)| Entry {
                        name,
                        meta: Meta::file(&rec),
                    })
                    .collect();
            }
            Loc::Entry(..) => return Err(FsError::Forbidden),
        }
        let now = SystemTime::now();
        let mut all: Vec<Entry> = dirs
            .into_iter()
            .map(|name| Entry {
                name,
                meta: Meta::dir(now),
            })
            .collect();
        all.append(&mut files);
        Ok(all)
    }

    /// The JSON listing of the directory at `dir` (a path under `/dav`, percent-encoded, with
    /// its trailing `/`): [`api::DirEntry`]s, or a JSON error.
    async fn json_listing(&self, dir: &str) -> Result<axum::Json<Vec<api::DirEntry>>, ApiError> {
        let path = DavPath::new(dir).map_err(|_| ApiError::bad_request("a malformed path"))?;
        let entries = self.dir_entries(&path).await.map_err(|e| match e {
            FsError::NotFound | FsError::Forbidden => ApiError::not_found("no such directory"),
            _ => ApiError::new(Cause::Unavailable, "the store did not answer"),
        })?;
        Ok(axum::Json(
            entries
                .into_iter()
                .map(|e| api::DirEntry::new(e.name, e.meta.dir, e.meta.len, e.meta.modified))
                .collect(),
        ))
    }

    /// A view's files, oldest first (the order their names are made unique in): names, sizes
    /// and dates only, one narrow scan however large the directory. With `name_prefix`, only
    /// the files whose lower-cased name starts with it (all of `/dav/recent/`'s, which are few).
    async fn files(&self, view: &View, name_prefix: Option<&str>) -> FsResult<Vec<FileEntry>> {
        let store = &self.state.store;
        let who = &self.viewer();
        let query = |expr: Expr| async move {
            let scope = EntryScope::Query(&expr);
            store
                .entries(who, scope, name_prefix, false, MAX_DIR_FILES)
                .await
        };
        let files = match view {
            View::Folder(f) => {
                store
                    .entries(
                        who,
                        EntryScope::Folder(f),
                        name_prefix,
                        false,
                        MAX_DIR_FILES,
                    )
                    .await
            }
            View::Tags(tags) => {
                query(Expr::And(
                    tags.iter()
                        .map(|t| Expr::Pred(Predicate::Tag(t.clone())))
                        .collect(),
                ))
                .await
            }
            View::Query(q) => query(query::parse(q).map_err(|_| FsError::NotFound)?).await,
            View::Recent => store
                .entries(who, EntryScope::Query(&Expr::All), None, true, RECENT)
                .await
                .map(|mut v| {
                    v.reverse();
                    v
                }),
        };
        files.map_err(fs_err)
    }

    /// A view's subdirectories and files with the names its directory shows them under. With
    /// `only`, just those of that file-system name's class ([`name_class`]): the same names as
    /// in the whole listing, from the store's few candidates (a lookup by name in a directory
    /// of 100,000 files reads the files that could bear the name, not all of them).
    async fn named(
        &self,
        view: &View,
        only: Option<&str>,
    ) -> FsResult<(Vec<String>, Vec<(String, FileEntry)>)> {
        let class = only.map(name_class);
        let in_class = |n: &str| class.as_ref().is_none_or(|c| name_class(n) == *c);
        let mut dirs = self.subdirs(view).await?;
        dirs.retain(|d| in_class(d));
        let prefix = only.map(class_prefix);
        let mut files: Vec<(String, FileEntry)> = (self.files(view, prefix.as_deref()).await?)
            .into_iter()
            .map(|r| (name_to_fs(&r.name), r))
            .collect();
        files.retain(|(n, _)| in_class(n));
        let names = unique_names(
            dirs.iter()
                .map(String::as_str)
                .chain(files.iter().map(|(n, _)| n.as_str())),
        );
        let named = (names.into_iter().skip(dirs.len()))
            .zip(files.into_iter().map(|(_, r)| r))
            .collect();
        Ok((dirs, named))
    }

    async fn find(&self, view: &View, name: &str) -> FsResult<Option<FileEntry>> {
        let (_, named) = self.named(view, Some(name)).await?;
        Ok(named.into_iter().find(|(n, _)| n == name).map(|(_, r)| r))
    }

    async fn file_at(&self, path: &DavPath) -> FsResult<(View, String, FileEntry)> {
        match self.locate(path).await? {
            Loc::Entry(view, name) => match self.find(&view, &name).await? {
                Some(rec) => Ok((view, name, rec)),
                None => Err(FsError::NotFound),
            },
            _ => Err(FsError::Forbidden),
        }
    }

    /// Where a record goes when moved or copied to `to`: its folder and name.
    async fn target(&self, to: &DavPath) -> FsResult<(View, FileName)> {
        match self.locate_as(to, true).await? {
            Loc::Entry(view @ (View::Folder(_) | View::Tags(_)), name) => {
                Ok((view, file_name(&name)?))
            }
            _ => Err(FsError::Forbidden),
        }
    }

    /// Retags a file, and tells every subscriber (other mounts drop their caches).
    async fn retag(&self, id: &str, remove: &[String], add: &[String]) -> FsResult<()> {
        let store = &self.state.store;
        let mut changed = None;
        if !remove.is_empty() {
            changed = Some(
                store
                    .remove_tags(&self.viewer(), id, remove)
                    .await
                    .map_err(fs_err)?,
            );
        }
        if !add.is_empty() {
            changed = Some(
                store
                    .add_user_tags(&self.viewer(), id, add)
                    .await
                    .map_err(fs_err)?,
            );
        }
        if let Some(rec) = changed {
            store.announce("file.updated", &rec).await;
        }
        Ok(())
    }

    /// Moves every file and folder under `from` to `to` (a folder's MOVE).
    async fn move_folder(&self, from: &FolderPath, to: &FolderPath) -> FsResult<()> {
        let store = &self.state.store;
        store
            .make_folder(&self.viewer(), to)
            .await
            .map_err(fs_err)?;
        for rec in store
            .entries(
                &self.viewer(),
                EntryScope::Folder(from),
                None,
                false,
                MAX_DIR_FILES,
            )
            .await
            .map_err(fs_err)?
        {
            let name = FileName::new(rec.name).map_err(|_| FsError::GeneralFailure)?;
            let moved = store
                .move_file(&self.viewer(), &rec.id, to, &name)
                .await
                .map_err(fs_err)?;
            store.announce("file.updated", &moved).await;
        }
        for sub in store
            .subfolders(&self.viewer(), from)
            .await
            .map_err(fs_err)?
        {
            let child = |p: &FolderPath| {
                FolderPath::new(&format!("{}/{sub}", p.as_str())).map_err(|_| FsError::PathTooLong)
            };
            Box::pin(self.move_folder(&child(from)?, &child(to)?)).await?;
        }
        store
            .remove_folder(&self.viewer(), from)
            .await
            .map_err(fs_err)
    }
}

fn view_tags(view: &View) -> &[String] {
    match view {
        View::Tags(t) => t,
        _ => &[],
    }
}

impl DavFileSystem for GraphFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let Loc::Entry(view, name) = self.locate_as(path, options.write).await? else {
                return Err(FsError::Forbidden);
            };
            let existing = self.find(&view, &name).await?;
            if !options.write {
                let rec = existing.ok_or(FsError::NotFound)?;
                return Ok(Box::new(Reader::new(self.state.clone(), rec)) as Box<dyn DavFile>);
            }
            if existing.is_some() && options.create_new {
                return Err(FsError::Exists);
            }
            if existing.is_none() && !options.create {
                return Err(FsError::NotFound);
            }
            let folder = match (&view, &existing) {
                (_, Some(old)) => {
                    FolderPath::new(&old.folder).map_err(|_| FsError::GeneralFailure)?
                }
                (View::Folder(f), None) => f.clone(),
                (View::Tags(_), None) => FolderPath::default(),
                _ => return Err(FsError::Forbidden),
            };
            if !matches!(view, View::Folder(_) | View::Tags(_)) {
                return Err(FsError::Forbidden);
            }
            let name = file_name(&name)?;
            let tags = view_tags(&view).to_vec();
            let mut replaces = existing.map(|r| r.id);
            if replaces.is_none() && options.size.is_none() {
                // A LOCK of an unmapped URL opens it without writing (RFC 4918 7.3): the empty
                // file exists at once, and a PUT that follows replaces it.
                let none = futures::stream::empty::<Result<Bytes, std::io::Error>>();
                let staged = upload::stage(&self.state, &self.who, none, Some(0), 0)
                    .await
                    .map_err(fs_err)?;
                let empty =
                    publish(&self.state, &self.who, staged, &folder, &name, &tags, None).await?;
                replaces = Some(empty.id);
            }
            Ok(Box::new(Writer::start(
                self.state.clone(),
                self.who.clone(),
                folder,
                name,
                tags,
                replaces,
                options.size,
            )) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let all = self.dir_entries(path).await?;
            let all = all
                .into_iter()
                .map(|e| Ok(Box::new(e) as Box<dyn DavDirEntry>));
            Ok(Box::pin(futures::stream::iter(all)) as FsStream<_>)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let meta = match self.locate(path).await? {
                Loc::Root | Loc::Section(_) | Loc::Dir(_) => Meta::dir(SystemTime::now()),
                Loc::Entry(view, name) => {
                    Meta::file(&self.find(&view, &name).await?.ok_or(FsError::NotFound)?)
                }
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let segs = segments(path)?;
            match segs.split_first() {
                Some((files, rest)) if files == "files" && !rest.is_empty() => {
                    let folder = folder_of(rest).map_err(|_| FsError::Forbidden)?;
                    let (last, parent) = rest.split_last().expect("not empty");
                    let parent = folder_of(parent)?;
                    if !self.store_folder_exists(&parent).await? {
                        return Err(FsError::NotFound);
                    }
                    if self.find(&View::Folder(parent), last).await?.is_some()
                        || self.store_folder_exists(&folder).await?
                    {
                        return Err(FsError::Exists);
                    }
                    // A folder only others made (which this user does not see) is made theirs
                    // too: the answer is the same as for a new one.
                    if self
                        .state
                        .store
                        .make_folder(&self.viewer(), &folder)
                        .await
                        .map_err(fs_err)?
                    {
                        Ok(())
                    } else {
                        Err(FsError::Exists)
                    }
                }
                // A tag exists through its files; a query directory is its expression.
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            self.carry_props(path, None, false);
            match self.locate(path).await? {
                Loc::Dir(View::Folder(f)) if !f.is_root() => {
                    // Not empty to the user: refused. Others' files (which the user does not
                    // see) keep the folder for them, and tell the user nothing.
                    let (store, who) = (&self.state.store, self.viewer());
                    if !store
                        .entries(&who, EntryScope::Folder(&f), None, false, 1)
                        .await
                        .map_err(fs_err)?
                        .is_empty()
                    {
                        return Err(FsError::Forbidden);
                    }
                    store.remove_folder(&who, &f).await.map_err(fs_err)
                }
                // Its files were untagged one by one already; the tag is gone with them.
                Loc::Dir(View::Tags(_)) => Ok(()),
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (view, _, rec) = self.file_at(path).await?;
            self.carry_props(path, None, false);
            match view {
                View::Folder(_) => {
                    self.state
                        .store
                        .delete(&self.viewer(), &rec.id)
                        .await
                        .map_err(fs_err)?;
                    self.state.store.announce_deleted(&rec.id).await;
                    Ok(())
                }
                View::Tags(tags) => {
                    let innermost = tags.last().cloned().into_iter().collect::<Vec<_>>();
                    self.retag(&rec.id, &innermost, &[]).await
                }
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            if let Loc::Dir(View::Folder(src)) = self.locate(from).await? {
                let segs = segments(to)?;
                return match segs.split_first() {
                    Some((files, rest))
                        if files == "files" && !rest.is_empty() && !src.is_root() =>
                    {
                        let dest = folder_of(rest).map_err(|_| FsError::Forbidden)?;
                        self.move_folder(&src, &dest).await?;
                        self.carry_props(from, Some(to), false);
                        Ok(())
                    }
                    _ => Err(FsError::Forbidden),
                };
            }
            let (src_view, _, rec) = self.file_at(from).await?;
            let (dest_view, name) = self.target(to).await?;
            let store = &self.state.store;
            let (src_tags, dest_tags) = (view_tags(&src_view), view_tags(&dest_view));
            let remove: Vec<String> = src_tags
                .iter()
                .filter(|t| !dest_tags.contains(t))
                .cloned()
                .collect();
            let add: Vec<String> = dest_tags
                .iter()
                .filter(|t| !src_tags.contains(t))
                .cloned()
                .collect();
            self.retag(&rec.id, &remove, &add).await?;
            let folder = match dest_view {
                View::Folder(f) => f,
                _ => FolderPath::new(&rec.folder).map_err(|_| FsError::GeneralFailure)?,
            };
            if folder.as_str() != rec.folder || name.as_str() != rec.name {
                let moved = store
                    .move_file(&self.viewer(), &rec.id, &folder, &name)
                    .await
                    .map_err(fs_err)?;
                store.announce("file.updated", &moved).await;
            }
            self.carry_props(from, Some(to), false);
            Ok(())
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (_, _, rec) = self.file_at(from).await?;
            match self.target(to).await? {
                (View::Folder(folder), name) => {
                    let copy = self
                        .state
                        .store
                        .copy(
                            &self.viewer(),
                            Some(self.who.user_id),
                            &rec.id,
                            &folder,
                            &name,
                        )
                        .await
                        .map_err(fs_err)?;
                    self.state.store.announce("file.created", &copy).await;
                    self.carry_props(from, Some(to), true);
                    Ok(())
                }
                (View::Tags(tags), _) => self.retag(&rec.id, &[], &tags).await,
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(futures::future::ready(true))
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
    ) -> FsFuture<'a, Vec<(axum::http::StatusCode, DavProp)>> {
        async move {
            self.metadata(path).await?;
            let key = prop_key(path);
            let mut all = self.props.lock().expect("props lock");
            if !all.contains_key(&key) && all.len() >= MAX_PROP_PATHS {
                return Err(FsError::InsufficientStorage);
            }
            let props = all.entry(key).or_default();
            let mut out = Vec::new();
            for (set, prop) in patch {
                props.retain(|p| !(p.name == prop.name && p.namespace == prop.namespace));
                if set {
                    props.push(prop.clone());
                }
                out.push((axum::http::StatusCode::OK, without_value(prop)));
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let all = self.props.lock().expect("props lock");
            Ok(all
                .get(&prop_key(path))
                .map(|props| {
                    props
                        .iter()
                        .map(|p| {
                            if do_content {
                                p.clone()
                            } else {
                                without_value(p.clone())
                            }
                        })
                        .collect()
                })
                .unwrap_or_default())
        }
        .boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        async move {
            let all = self.props.lock().expect("props lock");
            all.get(&prop_key(path))
                .and_then(|props| {
                    props
                        .iter()
                        .find(|p| p.name == prop.name && p.namespace == prop.namespace)
                })
                .and_then(|p| p.xml.clone())
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }
}

fn prop_key(p: &DavPath) -> String {
    p.as_url_string().trim_end_matches('/').to_owned()
}

impl GraphFs {
    /// The dead properties of `from` and everything under it go to `to` (a MOVE), are copied
    /// (a COPY), or go (`to` None: a DELETE).
    fn carry_props(&self, from: &DavPath, to: Option<&DavPath>, keep: bool) {
        let (from, to) = (prop_key(from), to.map(prop_key));
        let mut all = self.props.lock().expect("props lock");
        let keys: Vec<String> = all
            .keys()
            .filter(|k| **k == from || k.starts_with(&format!("{from}/")))
            .cloned()
            .collect();
        for k in keys {
            let props = if keep {
                all.get(&k).cloned()
            } else {
                all.remove(&k)
            };
            if let (Some(to), Some(props)) = (&to, props) {
                all.insert(format!("{to}{}", &k[from.len()..]), props);
            }
        }
    }
}

/// The directory a request asks to list as JSON (its path under `/dav`): a GET of a path with a
/// trailing `/` that accepts [`api::DIR_LISTING_TYPE`].
fn json_listing_of(req: &Request) -> Option<&str> {
    if req.method() != axum::http::Method::GET {
        return None;
    }
    let dir = req
        .uri()
        .path()
        .strip_prefix("/dav")
        .filter(|d| d.ends_with('/'))?;
    req.headers()
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or_default().trim() == api::DIR_LISTING_TYPE)
        .then_some(dir)
}

/// Items of a multistatus gathered into writes. dav-server sends each `D:response` of a
/// PROPFIND as a body frame of its own: a listing of 100,000 files would be 100,000 socket writes
/// (and as many reads for the client). Every item that is ready goes into one frame, up to
/// [`COALESCED_ITEMS`]; a body that fails ends with the bytes before the error, then the error.
fn coalesced(body: dav_server::body::Body) -> axum::body::Body {
    let frames = body.ready_chunks(COALESCED_ITEMS).flat_map(|items| {
        let mut out = Vec::with_capacity(1);
        let mut run = BytesMut::new();
        for item in items {
            match item {
                Ok(b) => run.extend_from_slice(&b),
                Err(e) => {
                    if !run.is_empty() {
                        out.push(Ok(std::mem::take(&mut run).freeze()));
                    }
                    out.push(Err(e));
                }
            }
        }
        if !run.is_empty() {
            out.push(Ok(run.freeze()));
        }
        futures::stream::iter(out)
    });
    axum::body::Body::from_stream(frames)
}

/// At most this many of dav-server's frames in one (a response element is a few hundred bytes).
const COALESCED_ITEMS: usize = 256;

fn without_value(mut p: DavProp) -> DavProp {
    p.xml = None;
    p
}

#[derive(Debug, Clone)]
struct Meta {
    dir: bool,
    len: u64,
    modified: SystemTime,
    created: SystemTime,
    /// The content hash (what the download's ETag is).
    etag: Option<String>,
}

impl Meta {
    fn dir(now: SystemTime) -> Self {
        Meta {
            dir: true,
            len: 0,
            modified: now,
            created: now,
            etag: None,
        }
    }

    fn file(rec: &FileEntry) -> Self {
        Meta {
            dir: false,
            len: rec.size,
            modified: rec.modified.into(),
            created: rec.created.into(),
            etag: Some(rec.hash.clone()),
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }
    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.created)
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

struct Entry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        Box::pin(futures::future::ready(Ok(
            Box::new(self.meta.clone()) as Box<dyn DavMetaData>
        )))
    }
}

/// A file opened for reading: the blob streamed from the position, reopened at a seek, so no
/// more than one read's chunk is ever held.
struct Reader {
    state: AppState,
    rec: FileEntry,
    pos: u64,
    /// The open read from `pos` on (behind a mutex only for `Sync`; used through `get_mut`).
    stream: Option<Mutex<disgrafs_store::ByteStream>>,
    pending: Bytes,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("id", &self.rec.id)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Reader {
    fn new(state: AppState, rec: FileEntry) -> Self {
        Reader {
            state,
            rec,
            pos: 0,
            stream: None,
            pending: Bytes::new(),
        }
    }
}

impl DavFile for Reader {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = Meta::file(&self.rec);
        Box::pin(futures::future::ready(Ok(
            Box::new(meta) as Box<dyn DavMetaData>
        )))
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(futures::future::ready(Err(FsError::Forbidden)))
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(futures::future::ready(Err(FsError::Forbidden)))
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let size = self.rec.size;
            if self.pos >= size || count == 0 {
                return Ok(Bytes::new());
            }
            if self.pending.is_empty() {
                if self.stream.is_none() {
                    let s = self
                        .state
                        .store
                        .read(&self.rec.hash, Some(self.pos..size))
                        .await
                        .map_err(fs_err)?;
                    self.stream = Some(Mutex::new(s));
                }
                let stream = self
                    .stream
                    .as_mut()
                    .expect("opened")
                    .get_mut()
                    .expect("lock");
                match stream.next().await {
                    Some(Ok(b)) => self.pending = b,
                    Some(Err(e)) => return Err(fs_err(disgrafs_store::StoreError::from(e))),
                    None => return Ok(Bytes::new()),
                }
            }
            let n = count.min(self.pending.len());
            let out = self.pending.split_to(n);
            self.pos += n as u64;
            Ok(out)
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let size = self.rec.size as i64;
        let to = match pos {
            SeekFrom::Start(n) => n as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => size + d,
        };
        if to < 0 {
            return Box::pin(futures::future::ready(Err(FsError::GeneralFailure)));
        }
        if to as u64 != self.pos {
            self.pos = to as u64;
            self.stream = None;
            self.pending = Bytes::new();
        }
        Box::pin(futures::future::ready(Ok(self.pos)))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(futures::future::ready(Ok(())))
    }
}

type Staged = crate::error::ApiResult<disgrafs_store::StagedBlob>;

/// Publishes a PUT's staged content as `name` in `folder` with the directory's `tags`, then
/// deletes the record it `replaces` (a PUT over an existing name).
async fn publish(
    state: &AppState,
    who: &Principal,
    staged: disgrafs_store::StagedBlob,
    folder: &FolderPath,
    name: &FileName,
    tags: &[String],
    replaces: Option<String>,
) -> FsResult<FileRecord> {
    let mut rec = upload::publish(state, who, staged, folder, name)
        .await
        .map_err(fs_err)?;
    if !tags.is_empty() {
        rec = state
            .store
            .add_user_tags(&who.viewer(), &rec.id, tags)
            .await
            .map_err(fs_err)?;
    }
    if let Some(old) = replaces {
        state
            .store
            .delete(&who.viewer(), &old)
            .await
            .map_err(fs_err)?;
        state.store.announce_deleted(&old).await;
    }
    Ok(rec)
}

/// A file opened for writing (a PUT): its bytes go through a bounded channel into
/// [`upload::stage`], the normal upload path, and `flush` publishes the staged blob. Dropped
/// before `flush` (the body broke off), the staging is aborted and removed.
struct Writer {
    state: AppState,
    who: Principal,
    folder: FolderPath,
    name: FileName,
    tags: Vec<String>,
    /// The record this one replaces (a PUT over an existing name).
    replaces: Option<String>,
    tx: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
    task: Option<tokio::task::JoinHandle<Staged>>,
    written: Option<FileRecord>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("folder", &self.folder)
            .field("name", &self.name)
            .finish()
    }
}

impl Writer {
    fn start(
        state: AppState,
        who: Principal,
        folder: FolderPath,
        name: FileName,
        tags: Vec<String>,
        replaces: Option<String>,
        expected: Option<u64>,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = tokio_stream::wrappers::ReceiverStream::new(rx);
        let (st, by) = (state.clone(), who.clone());
        let task = tokio::spawn(async move { upload::stage(&st, &by, body, expected, 0).await });
        Writer {
            state,
            who,
            folder,
            name,
            tags,
            replaces,
            tx: Some(tx),
            task: Some(task),
            written: None,
        }
    }

    /// The staging's result once it stopped early (too large, disk full).
    async fn failure(&mut self) -> FsError {
        self.tx = None;
        match self.task.take() {
            Some(t) => match t.await {
                Ok(Err(e)) => fs_err(e),
                _ => FsError::GeneralFailure,
            },
            None => FsError::GeneralFailure,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl DavFile for Writer {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = match &self.written {
            Some(rec) => Ok(Box::new(Meta::file(&FileEntry::of(rec))) as Box<dyn DavMetaData>),
            None => Err(FsError::NotFound),
        };
        Box::pin(futures::future::ready(meta))
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            let Some(tx) = &self.tx else {
                return Err(FsError::GeneralFailure);
            };
            if tx.send(Ok(buf)).await.is_err() {
                return Err(self.failure().await);
            }
            Ok(())
        }
        .boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(futures::future::ready(Err(FsError::Forbidden)))
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Partial PUTs (Content-Range) would need the old content: refused.
        let r = match pos {
            SeekFrom::Start(0) => Ok(0),
            _ => Err(FsError::NotImplemented),
        };
        Box::pin(futures::future::ready(r))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            self.tx = None;
            let Some(task) = self.task.take() else {
                return Ok(());
            };
            let staged = task
                .await
                .map_err(|_| FsError::GeneralFailure)?
                .map_err(fs_err)?;
            let rec = publish(
                &self.state,
                &self.who,
                staged,
                &self.folder,
                &self.name,
                &self.tags,
                self.replaces.take(),
            )
            .await?;
            self.written = Some(rec);
            Ok(())
        }
        .boxed()
    }
}

/// dav-server's in-memory lock system, whose locks never expire, with expiry: before every
/// operation the locks whose timeout passed are released, so no lock outlives its timeout
/// (dav-server caps a lock's timeout at 10 minutes, a shared one's at a day).
/// Live locks: token → (path, when it ends).
type LiveLocks = Arc<Mutex<HashMap<String, (DavPath, Option<SystemTime>)>>>;

#[derive(Debug, Clone)]
struct ExpiringLs {
    inner: Box<MemLs>,
    live: LiveLocks,
}

impl Default for ExpiringLs {
    fn default() -> Self {
        ExpiringLs {
            inner: MemLs::new(),
            live: Arc::default(),
        }
    }
}

impl ExpiringLs {
    async fn expire(&self) {
        let now = SystemTime::now();
        let gone: Vec<(String, DavPath)> = {
            let mut live = self.live.lock().expect("locks");
            let gone: Vec<_> = live
                .iter()
                .filter(|(_, (_, at))| at.is_some_and(|t| t <= now))
                .map(|(tok, (p, _))| (tok.clone(), p.clone()))
                .collect();
            for (tok, _) in &gone {
                live.remove(tok);
            }
            gone
        };
        for (tok, path) in gone {
            // Err: released already (by a DELETE or MOVE of its resource).
            self.inner.unlock(&path, &tok).await.ok();
        }
    }

    fn track(&self, lock: &DavLock) {
        self.live
            .lock()
            .expect("locks")
            .insert(lock.token.clone(), ((*lock.path).clone(), lock.timeout_at));
    }
}

impl DavLockSystem for ExpiringLs {
    fn lock(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&xmltree::Element>,
        timeout: Option<std::time::Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, principal, owner) = (path.clone(), principal.map(str::to_owned), owner.cloned());
        async move {
            self.expire().await;
            let r = self
                .inner
                .lock(
                    &path,
                    principal.as_deref(),
                    owner.as_ref(),
                    timeout,
                    shared,
                    deep,
                )
                .await;
            if let Ok(l) = &r {
                self.track(l);
            }
            r
        }
        .boxed()
    }

    fn unlock(&self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            self.expire().await;
            self.live.lock().expect("locks").remove(&token);
            self.inner.unlock(&path, &token).await
        }
        .boxed()
    }

    fn refresh(
        &self,
        path: &DavPath,
        token: &str,
        timeout: Option<std::time::Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            self.expire().await;
            let r = self.inner.refresh(&path, &token, timeout).await;
            if let Ok(l) = &r {
                self.track(l);
            }
            r
        }
        .boxed()
    }

    fn check(
        &self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal, tokens) = (
            path.clone(),
            principal.map(str::to_owned),
            submitted_tokens.to_vec(),
        );
        async move {
            self.expire().await;
            self.inner
                .check(&path, principal.as_deref(), ignore_principal, deep, &tokens)
                .await
        }
        .boxed()
    }

    fn discover(&self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            self.expire().await;
            self.inner.discover(&path).await
        }
        .boxed()
    }

    fn delete(&self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            self.expire().await;
            self.inner.delete(&path).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_ends_at_its_timeout() {
        let ls = ExpiringLs::default();
        let path = DavPath::new("/files/a.txt").unwrap();
        let lock = ls
            .lock(
                &path,
                None,
                None,
                Some(std::time::Duration::from_millis(50)),
                false,
                false,
            )
            .await
            .expect("locked");
        assert!(
            ls.check(&path, None, false, false, &[]).await.is_err(),
            "locked"
        );
        assert!(
            ls.check(&path, None, false, false, std::slice::from_ref(&lock.token))
                .await
                .is_ok(),
            "the holder may write"
        );
        // Waits for the lock's own timeout, not for a figure under test.
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert!(
            ls.check(&path, None, false, false, &[]).await.is_ok(),
            "expired"
        );
        assert!(ls.discover(&path).await.is_empty());
        assert!(
            ls.refresh(&path, &lock.token, None).await.is_err(),
            "gone for good"
        );
    }
}

//! The FUSE file system: inodes for the WebDAV view's paths, listings cached per directory
//! (fresh while [`Freshness`] says so), reads through [`Reader`], writes through a spool file.

use crate::reader::Reader;
use crate::{Freshness, KERNEL_TTL};
use disgrafs_client::dav::DavEntry;
use disgrafs_client::{Client, ClientError};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The errno a failed request to the server becomes.
fn errno(e: &ClientError) -> Errno {
    match e {
        ClientError::Api { status, .. } => match status {
            404 | 409 => Errno::ENOENT,
            403 => Errno::EACCES,
            405 => Errno::EPERM,
            412 => Errno::EEXIST,
            413 => Errno::EFBIG,
            423 => Errno::EBUSY,
            507 => Errno::ENOSPC,
            400..=499 => Errno::EINVAL,
            _ => Errno::EIO,
        },
        ClientError::Io { source, .. } => source.raw_os_error().map_or(Errno::EIO, Errno::from_i32),
        _ => Errno::EIO,
    }
}

/// A local I/O error's errno (EIO when it has none).
fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

struct Node {
    /// The path under `/dav/` (`""` is the root).
    path: String,
    parent: u64,
    dir: bool,
    size: u64,
    mtime: SystemTime,
    /// The generation its attributes were fetched at.
    generation: u64,
}

/// A directory's listing and the generation it was fetched at.
struct Listing {
    generation: u64,
    entries: Arc<Vec<(String, u64)>>,
    by_name: HashMap<String, u64>,
}

/// A file being written: its spool file, uploaded when a handle on it is flushed.
struct Spool {
    file: std::fs::File,
    path: std::path::PathBuf,
    dirty: AtomicBool,
}

enum Handle {
    Read(tokio::sync::Mutex<Reader>),
    Write(Arc<Spool>),
    Dir(Arc<Vec<(String, u64)>>),
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    listings: HashMap<u64, Listing>,
    /// Files written here and not yet uploaded, by inode.
    local: HashMap<u64, Arc<Spool>>,
    handles: HashMap<u64, Arc<Handle>>,
    next_ino: u64,
    next_fh: u64,
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

impl Table {
    /// The inode of `path`, made on first sight (inodes are never reused).
    fn intern(&mut self, path: &str, parent: u64, dir: bool) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            return ino;
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.by_path.insert(path.to_owned(), ino);
        self.nodes.insert(
            ino,
            Node {
                path: path.to_owned(),
                parent,
                dir,
                size: 0,
                mtime: UNIX_EPOCH,
                generation: 0,
            },
        );
        ino
    }

    fn path(&self, ino: u64) -> Result<String, Errno> {
        self.nodes
            .get(&ino)
            .map(|n| n.path.clone())
            .ok_or(Errno::ENOENT)
    }

    fn add_handle(&mut self, h: Handle) -> u64 {
        self.next_fh += 1;
        self.handles.insert(self.next_fh, Arc::new(h));
        self.next_fh
    }
}

pub(crate) struct GraphFs {
    client: Client,
    fresh: Arc<Freshness>,
    rt: tokio::runtime::Handle,
    table: Mutex<Table>,
    spool_dir: tempfile::TempDir,
    spools: AtomicU64,
    uid: u32,
    gid: u32,
}

impl GraphFs {
    pub(crate) fn new(
        client: Client,
        fresh: Arc<Freshness>,
        rt: tokio::runtime::Handle,
        spool_dir: tempfile::TempDir,
    ) -> Self {
        let mut table = Table {
            next_ino: INodeNo::ROOT.0,
            ..Table::default()
        };
        table.by_path.insert(String::new(), INodeNo::ROOT.0);
        table.nodes.insert(
            INodeNo::ROOT.0,
            Node {
                path: String::new(),
                parent: INodeNo::ROOT.0,
                dir: true,
                size: 0,
                mtime: UNIX_EPOCH,
                generation: 0,
            },
        );
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        GraphFs {
            client,
            fresh,
            rt,
            table: Mutex::new(table),
            spool_dir,
            spools: AtomicU64::new(0),
            uid,
            gid,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("the inode table")
    }

    fn attr_of(&self, ino: u64, n: &Node, local: Option<&Spool>) -> FileAttr {
        let size = match local {
            Some(s) => s.file.metadata().map(|m| m.len()).unwrap_or(0),
            None => n.size,
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if n.dir { 0o755 } else { 0o644 },
            nlink: if n.dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 1 << 16,
            flags: 0,
        }
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let t = self.table();
        let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr_of(ino, n, t.local.get(&ino).map(|s| &**s)))
    }

    /// Records what a listing of `dir` (at `generation`) says about its entries.
    fn store_listing(&self, dir: u64, generation: u64, entries: Vec<DavEntry>) -> Listing {
        let mut t = self.table();
        let parent_path = t
            .nodes
            .get(&dir)
            .map(|n| n.path.clone())
            .unwrap_or_default();
        let mut list = Vec::with_capacity(entries.len());
        let mut by_name = HashMap::with_capacity(entries.len());
        for e in entries {
            let path = child_path(&parent_path, &e.name);
            let ino = t.intern(&path, dir, e.dir);
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.dir = e.dir;
                n.size = e.size;
                n.mtime = e.modified.unwrap_or(UNIX_EPOCH);
                n.generation = generation;
                n.parent = dir;
            }
            by_name.insert(e.name.clone(), ino);
            list.push((e.name, ino));
        }
        Listing {
            generation,
            entries: Arc::new(list),
            by_name,
        }
    }

    /// The listing of directory `dir`: the cached one while fresh, else fetched.
    async fn listing(&self, dir: u64) -> Result<Arc<Vec<(String, u64)>>, Errno> {
        let path = {
            let t = self.table();
            if let Some(l) = t.listings.get(&dir)
                && self.fresh.fresh(l.generation)
            {
                return Ok(l.entries.clone());
            }
            t.path(dir)?
        };
        let generation = self.fresh.current();
        let entries = self.client.dav_list(&path).await.map_err(|e| errno(&e))?;
        let listing = self.store_listing(dir, generation, entries);
        let out = listing.entries.clone();
        self.table().listings.insert(dir, listing);
        Ok(out)
    }

    /// The inode named `name` in `parent`.
    async fn find(&self, parent: u64, name: &str) -> Result<u64, Errno> {
        let path = child_path(&self.table().path(parent)?, name);
        {
            let t = self.table();
            if let Some(&ino) = t.by_path.get(&path)
                && t.local.contains_key(&ino)
            {
                return Ok(ino);
            }
        }
        self.listing(parent).await?;
        {
            let t = self.table();
            if let Some(&ino) = t.listings.get(&parent).and_then(|l| l.by_name.get(name)) {
                return Ok(ino);
            }
        }
        // A directory that its parent does not list (a tag intersection, a query): one the
        // server answers for with something in it. (An empty one would be every name, and a
        // new file could not be made.)
        match self.client.dav_list(&path).await {
            Ok(entries) if !entries.is_empty() => {
                let generation = self.fresh.current();
                let ino = self.table().intern(&path, parent, true);
                let listing = self.store_listing(ino, generation, entries);
                let mut t = self.table();
                t.listings.insert(ino, listing);
                if let Some(n) = t.nodes.get_mut(&ino) {
                    n.dir = true;
                    n.generation = generation;
                }
                Ok(ino)
            }
            Ok(_) => Err(Errno::ENOENT),
            Err(e @ ClientError::Api { .. }) if errno(&e) != Errno::EIO => Err(Errno::ENOENT),
            Err(e) => Err(errno(&e)),
        }
    }

    /// `ino`'s attributes, fetched again (through its parent's listing) when stale.
    async fn getattr_fresh(&self, ino: u64) -> Result<FileAttr, Errno> {
        let (parent, name, fresh_enough) = {
            let t = self.table();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            let fresh = ino == INodeNo::ROOT.0
                || t.local.contains_key(&ino)
                || n.dir
                || self.fresh.fresh(n.generation);
            let name = n.path.rsplit('/').next().unwrap_or_default().to_owned();
            (n.parent, name, fresh)
        };
        if !fresh_enough {
            self.listing(parent).await?;
            let t = self.table();
            let listed = t
                .listings
                .get(&parent)
                .and_then(|l| l.by_name.get(&name))
                .is_some_and(|&i| i == ino);
            if !listed {
                return Err(Errno::ENOENT);
            }
        }
        self.attr(ino)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        self.table().handles.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// The listing a directory handle was opened with.
    fn dir_entries(&self, fh: FileHandle) -> Option<Arc<Vec<(String, u64)>>> {
        match &*self.handle(fh).ok()? {
            Handle::Dir(entries) => Some(entries.clone()),
            _ => None,
        }
    }

    fn new_spool(&self) -> Result<Arc<Spool>, Errno> {
        let n = self.spools.fetch_add(1, Ordering::Relaxed);
        let path = self.spool_dir.path().join(format!("w{n}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_errno)?;
        Ok(Arc::new(Spool {
            file,
            path,
            dirty: AtomicBool::new(false),
        }))
    }

    /// Uploads a written file when it changed since its last upload.
    async fn upload(&self, ino: u64, spool: &Spool) -> Result<(), Errno> {
        if !spool.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let path = self.table().path(ino)?;
        let result = async {
            let file = tokio::fs::File::open(&spool.path).await.map_err(io_errno)?;
            let len = file.metadata().await.map_err(io_errno)?.len();
            self.client
                .dav_put(&path, file, len)
                .await
                .map_err(|e| errno(&e))?;
            Ok(len)
        }
        .await;
        self.fresh.invalidate();
        match result {
            Ok(len) => {
                if let Some(n) = self.table().nodes.get_mut(&ino) {
                    n.size = len;
                    n.mtime = SystemTime::now();
                }
                Ok(())
            }
            Err(e) => {
                spool.dirty.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Fills a spool with the current content of `path` (a write that keeps it).
    async fn fill(&self, spool: &Spool, path: &str) -> Result<(), Errno> {
        use futures::StreamExt;
        let body = self
            .client
            .dav_read_from(path, 0)
            .await
            .map_err(|e| errno(&e))?;
        let mut body = std::pin::pin!(body);
        let mut at = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| errno(&e))?;
            spool.file.write_all_at(&chunk, at).map_err(io_errno)?;
            at += chunk.len() as u64;
        }
        Ok(())
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.table().nodes.get(&ino).is_some_and(|n| n.dir)
    }

    /// Blocks this request thread on `f`, on the runtime.
    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    fn fill_dir(
        &self,
        entries: &[(String, u64)],
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, u64, &str, &FileAttr) -> bool,
    ) {
        let t = self.table();
        let parent = t.nodes.get(&ino).map_or(ino, |n| n.parent);
        let dots = [(".".to_owned(), ino), ("..".to_owned(), parent)];
        for (i, (name, child)) in dots
            .iter()
            .chain(entries.iter())
            .enumerate()
            .skip(offset as usize)
        {
            let Some(n) = t.nodes.get(child) else {
                continue;
            };
            let attr = self.attr_of(*child, n, t.local.get(child).map(|s| &**s));
            if add(*child, i as u64 + 1, name, &attr) {
                break;
            }
        }
    }

    async fn do_open(&self, ino: u64, flags: OpenFlags) -> Result<u64, Errno> {
        let (path, size, local) = {
            let t = self.table();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            if n.dir {
                return Err(Errno::EISDIR);
            }
            (n.path.clone(), n.size, t.local.get(&ino).cloned())
        };
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let trunc = flags.0 & libc::O_TRUNC != 0;
        let handle = match (local, write) {
            (Some(spool), _) => {
                if trunc {
                    spool.file.set_len(0).map_err(io_errno)?;
                    spool.dirty.store(true, Ordering::SeqCst);
                }
                Handle::Write(spool)
            }
            (None, false) => {
                let size = self.getattr_fresh(ino).await.map_or(size, |a| a.size);
                Handle::Read(tokio::sync::Mutex::new(Reader::new(
                    self.client.clone(),
                    path,
                    size,
                )))
            }
            (None, true) => {
                let spool = self.new_spool()?;
                if trunc {
                    spool.dirty.store(true, Ordering::SeqCst);
                } else {
                    self.fill(&spool, &path).await?;
                }
                self.table().local.insert(ino, spool.clone());
                Handle::Write(spool)
            }
        };
        Ok(self.table().add_handle(handle))
    }

    async fn do_create(&self, parent: u64, name: &str) -> Result<(FileAttr, u64), Errno> {
        if !self.is_dir(parent) {
            return Err(Errno::ENOTDIR);
        }
        match self.find(parent, name).await {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e != Errno::ENOENT => return Err(e),
            Err(_) => {}
        }
        let spool = self.new_spool()?;
        spool.dirty.store(true, Ordering::SeqCst);
        let mut t = self.table();
        let path = child_path(&t.path(parent)?, name);
        let ino = t.intern(&path, parent, false);
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.dir = false;
            n.size = 0;
            n.mtime = SystemTime::now();
        }
        t.local.insert(ino, spool.clone());
        let fh = t.add_handle(Handle::Write(spool));
        let n = t.nodes.get(&ino).expect("interned");
        let attr = self.attr_of(ino, n, t.local.get(&ino).map(|s| &**s));
        Ok((attr, fh))
    }

    async fn do_release(&self, ino: u64, fh: FileHandle) -> Result<(), Errno> {
        let handle = self.table().handles.remove(&fh.0);
        let Some(handle) = handle else {
            return Ok(());
        };
        let Handle::Write(spool) = &*handle else {
            return Ok(());
        };
        let result = self.upload(ino, spool).await;
        let mut t = self.table();
        let others = t
            .handles
            .values()
            .any(|h| matches!(&**h, Handle::Write(s) if Arc::ptr_eq(s, spool)));
        if !others {
            t.local.remove(&ino);
            drop(t);
            std::fs::remove_file(&spool.path).ok();
        }
        result
    }

    async fn do_unlink(&self, parent: u64, name: &str, dir: bool) -> Result<(), Errno> {
        let ino = self.find(parent, name).await?;
        if dir != self.is_dir(ino) {
            return Err(if dir { Errno::ENOTDIR } else { Errno::EISDIR });
        }
        if dir {
            // `rmdir` of a directory with something in it fails, as everywhere.
            if !self.listing(ino).await?.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
        }
        let path = self.table().path(ino)?;
        let r = self.client.dav_delete(&path, dir).await;
        self.fresh.invalidate();
        r.map_err(|e| errno(&e))
    }

    async fn do_rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let ino = self.find(parent, name).await?;
        let dir = self.is_dir(ino);
        if self.table().local.contains_key(&ino) {
            // Not uploaded yet: nothing on the server to move.
            return Err(Errno::EBUSY);
        }
        let (from, to) = {
            let t = self.table();
            (t.path(ino)?, child_path(&t.path(newparent)?, newname))
        };
        let r = self.client.dav_move(&from, &to, dir, !noreplace).await;
        self.fresh.invalidate();
        r.map_err(|e| errno(&e))?;
        let mut t = self.table();
        t.by_path.remove(&from);
        t.by_path.insert(to.clone(), ino);
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.path = to;
            n.parent = newparent;
        }
        Ok(())
    }

    async fn do_mkdir(&self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        let path = child_path(&self.table().path(parent)?, name);
        let r = self.client.dav_mkcol(&path).await;
        self.fresh.invalidate();
        r.map_err(|e| match e {
            ClientError::Api { status: 405, .. } => Errno::EEXIST,
            e => errno(&e),
        })?;
        let ino = {
            let mut t = self.table();
            let ino = t.intern(&path, parent, true);
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.dir = true;
                n.mtime = SystemTime::now();
            }
            ino
        };
        self.attr(ino)
    }
}

fn name_str(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

impl Filesystem for GraphFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings come with attributes (one request for `ls -l`), and an open with O_TRUNC
        // says so (no download of a file about to be replaced). Kernels without them still work.
        for cap in [
            fuser::InitFlags::FUSE_DO_READDIRPLUS,
            fuser::InitFlags::FUSE_ATOMIC_O_TRUNC,
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            config.add_capabilities(cap).ok();
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.run(async {
            let ino = self.find(parent.0, name_str(name)?).await?;
            self.attr(ino)
        });
        match r {
            Ok(attr) => reply.entry(&KERNEL_TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.run(self.getattr_fresh(ino.0)) {
            Ok(attr) => reply.attr(&KERNEL_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Modes, owners and times are the graph's (accepted and left, as `rsync -a` and `cp
        // -p` expect); a size is a truncation of the file being written.
        let r = self.run(async {
            if let Some(size) = size {
                let spool = match fh.map(|fh| self.handle(fh)).transpose()? {
                    Some(h) => match &*h {
                        Handle::Write(s) => Some(s.clone()),
                        _ => None,
                    },
                    None => self.table().local.get(&ino.0).cloned(),
                };
                match spool {
                    Some(s) => {
                        s.file.set_len(size).map_err(io_errno)?;
                        s.dirty.store(true, Ordering::SeqCst);
                    }
                    None if size == 0 => {
                        let spool = self.new_spool()?;
                        spool.dirty.store(true, Ordering::SeqCst);
                        let r = self.upload(ino.0, &spool).await;
                        std::fs::remove_file(&spool.path).ok();
                        r?;
                    }
                    None => return Err(Errno::EOPNOTSUPP),
                }
            }
            self.getattr_fresh(ino.0).await
        });
        match r {
            Ok(attr) => reply.attr(&KERNEL_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.run(async { self.do_mkdir(parent.0, name_str(name)?).await });
        match r {
            Ok(attr) => reply.entry(&KERNEL_TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run(async { self.do_unlink(parent.0, name_str(name)?, false).await }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run(async { self.do_unlink(parent.0, name_str(name)?, true).await }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.run(async {
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                return Err(Errno::EINVAL);
            }
            let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            self.do_rename(
                parent.0,
                name_str(name)?,
                newparent.0,
                name_str(newname)?,
                noreplace,
            )
            .await
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run(self.do_open(ino.0, flags)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.run(async { self.do_create(parent.0, name_str(name)?).await });
        match r {
            Ok((attr, fh)) => reply.created(
                &KERNEL_TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.run(async {
            match &*self.handle(fh)? {
                Handle::Read(r) => r
                    .lock()
                    .await
                    .read(offset, size)
                    .await
                    .map_err(|e| errno(&e)),
                Handle::Write(s) => {
                    let mut buf = vec![0; size as usize];
                    let n = s.file.read_at(&mut buf, offset).map_err(io_errno)?;
                    buf.truncate(n);
                    Ok(buf)
                }
                Handle::Dir(_) => Err(Errno::EISDIR),
            }
        });
        match r {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.handle(fh).and_then(|h| match &*h {
            Handle::Write(s) => {
                s.file.write_all_at(data, offset).map_err(io_errno)?;
                s.dirty.store(true, Ordering::SeqCst);
                Ok(data.len() as u32)
            }
            _ => Err(Errno::EBADF),
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // The upload happens at close, so `close` (and `cp`) reports whether it worked.
        let r = self.run(async {
            match &*self.handle(fh)? {
                Handle::Write(s) => self.upload(ino.0, s).await,
                _ => Ok(()),
            }
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.flush(req, ino, fh, fuser::LockOwner(0), reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.run(self.do_release(ino.0, fh)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.run(async {
            if !self.is_dir(ino.0) {
                return Err(Errno::ENOTDIR);
            }
            let entries = self.listing(ino.0).await?;
            Ok(self.table().add_handle(Handle::Dir(entries)))
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dir_entries(fh) else {
            return reply.error(Errno::EBADF);
        };
        self.fill_dir(&entries, ino.0, offset, |child, next, name, attr| {
            reply.add(INodeNo(child), next, attr.kind, name)
        });
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(entries) = self.dir_entries(fh) else {
            return reply.error(Errno::EBADF);
        };
        self.fill_dir(&entries, ino.0, offset, |child, next, name, attr| {
            reply.add(INodeNo(child), next, name, &KERNEL_TTL, attr, Generation(0))
        });
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.table().handles.remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The server's space is not known here: plenty, so tools that check do not refuse.
        const BLOCKS: u64 = 1 << 40;
        reply.statfs(
            BLOCKS,
            BLOCKS,
            BLOCKS,
            1 << 32,
            1 << 32,
            1 << 16,
            255,
            1 << 16,
        );
    }
}

//! `disgrafs mount MOUNTPOINT --server URL`: the graph as a FUSE file system (the `fuser`
//! crate), with the layout of the server's WebDAV view (`files/` by folder, `tags/A/B/` = A AND
//! B, `query/EXPR/`, `recent/`), because it is that view seen through a WebDAV client
//! ([`disgrafs_client::dav`]): which path means what, and what writing, deleting or moving there
//! does, is decided by the server in one place (`disgrafs_server`'s `dav` module), never here.
//!
//! - Listings and attributes are cached, and the cache is dropped on every event of the
//!   server's `/api/events` (and on `resync`, on a reconnect, and after this mount's own
//!   changes); while the event stream is down nothing is cached.
//! - Reads stream from the server with Range, read ahead into a bounded window
//!   ([`reader::Reader`]); a file is never held whole in memory.
//! - Writes go to a spool file on local disk and are uploaded (streamed) when the file is
//!   closed; `close` reports the upload's failure.
//! - Every request has bounded timeouts: with the server gone, calls fail with EIO at once (a
//!   refused connection) or after the read timeout, and the mount still unmounts.

mod fs;
mod reader;

use anyhow::Context;
use disgrafs_client::Client;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `disgrafs mount`'s arguments (the server comes from the client options).
#[derive(clap::Args, Debug, Clone)]
pub struct MountArgs {
    /// An empty directory to mount the graph on.
    pub mountpoint: PathBuf,
    /// Unmount even if this process is killed (fusermount3's auto_unmount; needs root, or
    /// `user_allow_other` in /etc/fuse.conf).
    #[arg(long)]
    pub auto_unmount: bool,
    /// Seconds a request to the server may stay silent before it fails with EIO.
    #[arg(long, default_value_t = 20)]
    pub timeout: u64,
}

/// How long the kernel may keep an entry or attribute before asking again. Short: the cache
/// that follows the server's events is this process's own.
const KERNEL_TTL: Duration = Duration::from_secs(1);
/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Event-stream reconnects: the first wait, and the longest.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How long the request threads may take to end after the unmount.
const UNMOUNT_WAIT: Duration = Duration::from_secs(10);
/// Threads answering the kernel's requests.
const THREADS: usize = 4;

/// What the cache's freshness depends on: a generation that every event bumps, and whether
/// the event stream is up (without it nothing counts as fresh).
#[derive(Default)]
pub(crate) struct Freshness {
    generation: AtomicU64,
    live: AtomicBool,
}

impl Freshness {
    pub(crate) fn current(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether what was fetched at generation `g` may still be used.
    pub(crate) fn fresh(&self, g: u64) -> bool {
        self.live.load(Ordering::SeqCst) && g == self.current()
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        self.invalidate();
    }
}

/// A mounted graph; [`Mounted::unmount`] (or dropping it) unmounts.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    events: tokio::task::JoinHandle<()>,
    mountpoint: PathBuf,
    /// `--auto-unmount`'s watchdog and the end of its pipe (closed with this, or with the
    /// process).
    _watchdog: Option<(std::process::Child, std::io::PipeWriter)>,
}

/// Mounts the graph of the server at `server` on `args.mountpoint`, as the user of `token`
/// (the mount sees what that token may). Call on a Tokio runtime: the file system's requests
/// run on it.
pub fn mount(server: &str, token: Option<&str>, args: &MountArgs) -> anyhow::Result<Mounted> {
    let client = Client::with_timeouts(
        server,
        token,
        CONNECT_TIMEOUT,
        Duration::from_secs(args.timeout),
    )?;
    // The watchdog finds the mount by the path mountinfo shows.
    let absolute = std::fs::canonicalize(&args.mountpoint)
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    let fresh = Arc::new(Freshness::default());
    let rt = tokio::runtime::Handle::current();
    let events = rt.spawn(follow_events(client.clone(), fresh.clone()));
    let spool = tempfile::Builder::new()
        .prefix("disgrafs-mount-")
        .tempdir()
        .context("cannot make the spool directory for writes")?;
    let fs = fs::GraphFs::new(client, fresh, rt, spool);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("disgrafs".into()),
        fuser::MountOption::Subtype("disgrafs".into()),
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    if args.auto_unmount {
        config.mount_options.push(fuser::MountOption::AutoUnmount);
        config.acl = fuser::SessionACL::RootAndOwner;
    }
    config.n_threads = Some(THREADS);
    let session = fuser::Session::new(fs, &args.mountpoint, &config)
        .and_then(fuser::Session::spawn)
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()));
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            events.abort();
            return Err(e);
        }
    };
    let watchdog = if args.auto_unmount {
        match spawn_watchdog(&absolute) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("no watchdog of the mount (fusermount3's alone): {e}");
                None
            }
        }
    } else {
        None
    };
    Ok(Mounted {
        session: Some(session),
        events,
        mountpoint: args.mountpoint.clone(),
        _watchdog: watchdog,
    })
}

/// The environment variable that makes this executable a mount's watchdog
/// ([`run_watchdog_if_requested`]): the mountpoint.
const WATCHDOG_ENV: &str = "DISGRAFS_MOUNT_WATCHDOG";

/// Starts the watchdog of `--auto-unmount`: this executable again, in a process group of its
/// own (a terminal's Ctrl-C is this process's to handle), reading a pipe whose other end only
/// this process holds. When this process ends, however it ends (SIGKILL included), the pipe
/// closes and the watchdog unmounts lazily. fusermount3's own auto_unmount stays, but may miss
/// a mount whose daemon died (it checks the mount through the dead connection; libfuse issue
/// 1529), which left `a_killed_mount_is_unmounted` failing one run in ten.
fn spawn_watchdog(
    mountpoint: &std::path::Path,
) -> anyhow::Result<(std::process::Child, std::io::PipeWriter)> {
    use std::os::unix::process::CommandExt;
    // Never inherited (std's pipes are close-on-exec): only this process holds `write`.
    let (read, write) = std::io::pipe()?;
    let exe = std::env::current_exe()?;
    let child = std::process::Command::new(exe)
        .env(WATCHDOG_ENV, mountpoint)
        .stdin(read)
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok((child, write))
}

/// Run first thing in `main`: when this process is a mount's watchdog, waits until its mount's
/// process ends, unmounts lazily if the mount is still a disgrafs FUSE mount, and exits.
pub fn run_watchdog_if_requested() {
    let Some(mountpoint) = std::env::var_os(WATCHDOG_ENV) else {
        return;
    };
    let mut sink = Vec::new();
    // Nothing is ever written: this returns at the end of the pipe, when the mount's process
    // is gone.
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink).ok();
    let mountpoint = PathBuf::from(mountpoint);
    if still_mounted(&mountpoint) {
        std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&mountpoint)
            .stderr(std::process::Stdio::null())
            .status()
            .ok();
    }
    std::process::exit(0);
}

/// Whether `mountpoint` is a disgrafs FUSE mount in this process's mount namespace.
fn still_mounted(mountpoint: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mountpoint.to_string_lossy();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        // Field 5 is the mount point; after the separator `-`, the type and source.
        let sep = fields.iter().position(|f| *f == "-");
        fields.get(4).is_some_and(|p| unescape_mountinfo(p) == want)
            && sep.is_some_and(|i| fields.get(i + 1) == Some(&"fuse.disgrafs"))
    })
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Mounted {
    /// Resolves when the file system ended from outside (`fusermount3 -u`, `umount`).
    pub async fn ended(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            match &self.session {
                Some(s) if !s.guard.is_finished() => {}
                _ => return,
            }
        }
    }

    /// Unmounts lazily (`fusermount3 -u -z`, so a shell sitting in the mount does not keep it)
    /// and waits, bounded, for the request threads to end.
    pub fn unmount(mut self) -> anyhow::Result<()> {
        self.events.abort();
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if !session.guard.is_finished() {
            let done = std::process::Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mountpoint)
                .status()
                .is_ok_and(|s| s.success());
            anyhow::ensure!(
                done,
                "fusermount3 -u -z {} failed",
                self.mountpoint.display()
            );
        }
        let until = std::time::Instant::now() + UNMOUNT_WAIT;
        while !session.guard.is_finished() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::ensure!(
            session.guard.is_finished(),
            "{} is unmounted, but requests in flight did not end",
            self.mountpoint.display()
        );
        session
            .join()
            .with_context(|| format!("unmounting {}", self.mountpoint.display()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.events.abort();
    }
}

/// Follows the server's events for as long as the mount lives: every event (and every
/// reconnect) makes the cache stale.
async fn follow_events(client: Client, fresh: Arc<Freshness>) {
    use futures::StreamExt;
    let mut wait = RECONNECT_MIN;
    loop {
        match client.events().await {
            Ok(stream) => {
                fresh.set_live(true);
                wait = RECONNECT_MIN;
                let mut stream = std::pin::pin!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(_) => fresh.invalidate(),
                        Err(e) => {
                            tracing::debug!("event stream broke: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("cannot follow the server's events: {e}"),
        }
        fresh.set_live(false);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

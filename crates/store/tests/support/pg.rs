//! A private PostgreSQL cluster for one test binary: `initdb` in a temporary directory, `postgres`
//! on a free loopback port (password auth) and a Unix socket in that directory (trust), started
//! by the first test that asks and stopped when the binary exits (an `atexit` hook; the server
//! also gets SIGTERM from the kernel if the binary dies without exiting, through
//! `PR_SET_PDEATHSIG` on a thread that lives as long as the process). Each test creates its own
//! database, so tests run in parallel.
//!
//! Without PostgreSQL's binaries the tests that need it skip with the reason printed, unless
//! `DISGRAFS_REQUIRE_POSTGRES=1` (set by `scripts/deps.d/60-postgres.sh`), which makes a missing
//! or broken PostgreSQL a failure. As root, the cluster runs as the `postgres` user (PostgreSQL
//! refuses to run as root). Shared with `crates/cli/tests` through `#[path]`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The role every test connects as, and its password (host connections need it).
pub const USER: &str = "disgrafs";
pub const PASSWORD: &str = "test-password";

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The user the server runs as (root's tests), for a restart.
    ids: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
/// The server's PID and directory, for the exit hook.
static RUNNING: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The binary's cluster, started on first use; None (with the reason printed) when PostgreSQL is
/// not installed here and `DISGRAFS_REQUIRE_POSTGRES` is not set.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(start) {
        Ok(c) => Some(c),
        Err(why) if std::env::var("DISGRAFS_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("PostgreSQL is required (DISGRAFS_REQUIRE_POSTGRES=1): {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

impl Cluster {
    /// A URL for `db` over loopback TCP with the test role's password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database of its own for one test and returns its URL.
    pub fn create_db(&self, label: &str) -> String {
        let name = format!(
            "t_{}_{}_{}",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url(&name)
    }

    /// Runs one SQL command in `db` over the socket (trust auth).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// Where PostgreSQL's server binaries are: `DISGRAFS_PG_BIN`, Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, or `PATH`.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("DISGRAFS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .ok_or_else(|| {
            "PostgreSQL is not installed (no initdb/postgres; scripts/deps.d/60-postgres.sh installs it)"
                .to_string()
        })
}

/// The uid and gid to run the server as: ours, or the `postgres` user's when we are root.
fn server_ids() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| "running as root, and there is no postgres user to run PostgreSQL as".into())
}

fn as_server(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path, ids: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<Cluster, String> {
    let bin = find_bin()?;
    let ids = server_ids()?;
    let dir = std::env::temp_dir().join(format!(
        "disgrafs-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    chown(&dir, ids)?;
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
    chown(&pwfile, ids)?;
    let data = dir.join("data");
    let out = as_server(&mut Command::new(bin.join("initdb")), ids)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let port = free_port()?;
    let child = launch(&bin, &dir, port, ids)?;
    *RUNNING.lock().unwrap() = Some((child, dir.clone()));
    // SAFETY: `stop` is an `extern "C" fn()` that does not unwind.
    unsafe { libc::atexit(stop) };
    let cluster = Cluster {
        dir,
        bin,
        port,
        ids,
    };
    // Bounded wait for the server to accept connections.
    let mut last = String::new();
    for _ in 0..200 {
        match cluster.psql("postgres", "SELECT 1") {
            Ok(_) => return Ok(cluster),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("PostgreSQL did not start: {last}"))
}

/// Spawns `cmd` from a thread that never ends: the parent-death signal fires when the thread
/// that forked exits, so it must not be a test's thread.
/// Starts `postgres` on the cluster in `dir`; its PID.
fn launch(bin: &Path, dir: &Path, port: u16, ids: Option<(u32, u32)>) -> Result<u32, String> {
    let mut cmd = Command::new(bin.join("postgres"));
    as_server(&mut cmd, ids)
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        // A throwaway cluster: durability costs time and buys nothing here.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?);
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec (after the
    // uid change, which would clear it).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    spawn_on_keeper_thread(cmd)
}

#[allow(
    dead_code,
    reason = "only the multi-node tests stop and start the server"
)]
impl Cluster {
    /// Stops the server (fast shutdown: sessions are cut, as in a real restart); the data stays.
    pub fn stop_server(&self) {
        let pid = RUNNING.lock().unwrap().as_ref().map(|r| r.0);
        if let Some(pid) = pid {
            stop_pid(pid as libc::pid_t);
        }
    }

    /// Starts the server again on its port and data; returns once it answers.
    pub fn start_server(&self) {
        let pid = launch(&self.bin, &self.dir, self.port, self.ids)
            .unwrap_or_else(|e| panic!("starting PostgreSQL again: {e}"));
        if let Some(r) = RUNNING.lock().unwrap().as_mut() {
            r.0 = pid;
        }
        for _ in 0..200 {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("PostgreSQL did not come back");
    }
}

#[allow(
    dead_code,
    reason = "only `disgrafs bench sockmap` (crates/bench) runs PostgreSQL's client tools"
)]
impl Cluster {
    /// One of PostgreSQL's programs from the server's directory (`pgbench`, `psql`).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

fn spawn_on_keeper_thread(mut cmd: Command) -> Result<u32, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spawned: Result<Child, _> = cmd.spawn();
        let keep = match spawned {
            Ok(c) => {
                tx.send(Ok(c.id())).unwrap_or(());
                Some(c)
            }
            Err(e) => {
                tx.send(Err(format!("cannot start postgres: {e}")))
                    .unwrap_or(());
                None
            }
        };
        loop {
            std::thread::park();
            // The child is reaped by `stop`.
            std::hint::black_box(&keep);
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

/// Stops the server (fast shutdown, then SIGKILL if it lingers) and removes its directory.
extern "C" fn stop() {
    let Some((pid, dir)) = RUNNING.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    stop_pid(pid as libc::pid_t);
    std::fs::remove_dir_all(dir).unwrap_or(());
}

/// SIGINT (fast shutdown), then SIGKILL if it has not ended within five seconds.
fn stop_pid(pid: libc::pid_t) {
    // SAFETY: the PID is our own child's, which is not reaped until the waitpid below.
    unsafe {
        libc::kill(pid, libc::SIGINT);
        let mut status = 0;
        for _ in 0..100 {
            if libc::waitpid(pid, &mut status, libc::WNOHANG) == pid {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
    }
}

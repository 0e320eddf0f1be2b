//! The processes a suite starts (disgrafs serve, nginx, the fast path): stopped by their PIDs,
//! which the suite started, whatever way the suite ends.

use std::{
    io::BufRead,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

/// A child process that is stopped (by its PID, which we started) when dropped: asked with
/// SIGTERM first, so that a master process (nginx) takes its workers down with it, then killed
/// with what is left of its process group's children.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.0.id();
        let workers = children(pid);
        // SAFETY: a signal to a process we started and have not reaped (its PID is still ours).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.kill().ok();
        self.0.wait().ok();
        for w in workers {
            // Only the workers we saw under this master, if they outlived it.
            if std::fs::read_to_string(format!("/proc/{w}/status"))
                .is_ok_and(|s| s.contains(&format!("PPid:\t{pid}\n")) || s.contains("PPid:\t1\n"))
            {
                // SAFETY: as above; the PID was our child's child a moment ago.
                unsafe {
                    libc::kill(w as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

/// Children of `pid` (nginx's workers).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts `program` and waits for the first line it prints on stdout (the line a server prints
/// once it serves). `program` is the command up to its arguments (`disgrafs`, or `nsenter …
/// disgrafs` for a namespace).
pub(crate) fn spawn_until_line(mut program: Command, what: &str) -> anyhow::Result<(Proc, String)> {
    let mut child = program
        .env("DISGRAFS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let out = child.stdout.take().expect("piped");
    let proc = Proc(child);
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    anyhow::ensure!(!line.is_empty(), "{what} exited before it was ready");
    Ok((proc, line))
}

/// `serve`'s flags for a server under measurement: plain HTTP, which the accelerators can see (it
/// listens on loopback or on a suite's own veth pair), and no per-client limits, so the figures
/// are the server's own.
pub const PLAIN_UNBOUNDED: [&str; 5] = [
    "--insecure",
    "--rate-limit",
    "off",
    "--uploads-per-client",
    "0",
];
/// The API token of each server a suite started, by its base URL ([`serve`] provisions one).
static TOKENS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The token of the server at `url` (a base URL or any URL under it), if a suite started it.
pub(crate) fn token_for(url: &str) -> Option<String> {
    let tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    tokens
        .iter()
        .find(|(base, _)| url.starts_with(base.as_str()))
        .map(|(_, t)| t.clone())
}

/// Records `token` for requests under `base` (a server, or a proxy in front of it).
pub(crate) fn remember(base: &str, token: String) {
    TOKENS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(base.to_owned(), token);
}

/// `Authorization: Bearer` of the server at `url`, for a reqwest client's default headers.
pub(crate) fn auth_headers(url: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    if let Some(v) = token_for(url).and_then(|t| format!("Bearer {t}").parse().ok()) {
        h.insert(reqwest::header::AUTHORIZATION, v);
    }
    h
}

/// Makes a token for a data directory: `disgrafs admin token --create` run by the same program
/// (and wrapper, and environment) as `disgrafs`.
pub(crate) fn provision(disgrafs: &Command, data: &Path) -> anyhow::Result<String> {
    let mut admin = Command::new(disgrafs.get_program());
    admin
        .args(disgrafs.get_args())
        .args([
            "admin", "token", "--create", "--user", "bench", "--scope", "admin",
        ])
        .arg("--data-dir")
        .arg(data);
    // The same metadata store (DISGRAFS_META) and environment.
    for (k, v) in disgrafs.get_envs() {
        match v {
            Some(v) => admin.env(k, v),
            None => admin.env_remove(k),
        };
    }
    let out = admin.output().context("cannot run disgrafs admin token")?;
    anyhow::ensure!(
        out.status.success(),
        "disgrafs admin token: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts `disgrafs serve` (`disgrafs` is the program to run: this executable, possibly behind
/// nsenter) on `listen` and `data`, with a token provisioned ([`token_for`] its URL); returns it
/// and its base URL.
pub(crate) fn serve(
    mut disgrafs: Command,
    data: &Path,
    listen: &str,
    workers: &str,
) -> anyhow::Result<(Proc, String)> {
    let token = provision(&disgrafs, data)?;
    disgrafs
        .args([
            "serve",
            "--listen",
            listen,
            "--workers",
            workers,
            "--data-dir",
        ])
        .arg(data)
        .args(PLAIN_UNBOUNDED);
    let (proc, line) = spawn_until_line(disgrafs, "disgrafs serve")?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("disgrafs serve printed no address")?
        .to_owned();
    remember(&url, token);
    Ok((proc, url))
}

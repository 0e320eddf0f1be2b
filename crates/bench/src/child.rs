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

/// Starts `disgrafs serve` (`disgrafs` is the program to run: this executable, possibly behind
/// nsenter) on `listen` and `data`; returns it and its base URL.
pub(crate) fn serve(
    mut disgrafs: Command,
    data: &Path,
    listen: &str,
    workers: &str,
) -> anyhow::Result<(Proc, String)> {
    disgrafs
        .args([
            "serve",
            "--listen",
            listen,
            "--workers",
            workers,
            "--data-dir",
        ])
        .arg(data);
    let (proc, line) = spawn_until_line(disgrafs, "disgrafs serve")?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("disgrafs serve printed no address")?
        .to_owned();
    Ok((proc, url))
}

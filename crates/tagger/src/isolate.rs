//! Containment for parsers that may panic, hang or exhaust memory on hostile input (pdf-extract
//! is known to panic on bad PDFs, and lopdf loads a whole document into memory).
//!
//! Two modes, chosen per call:
//!
//! - **Child process** (preferred): the running executable is started again with
//!   [`ENV_JOB`] set; it runs the job under `RLIMIT_AS` and `RLIMIT_CPU`, writes the result to
//!   stdout and exits. The parent kills it at the deadline. A panic, an abort, an out-of-memory
//!   kill or a hang all end as a [`Failure`], never in the worker. This mode needs the binary's
//!   `main` to call [`run_child_if_requested`] first thing; doing so also tells this module that
//!   the executable can act as a child.
//! - **In a thread** (fallback, e.g. in unit tests or a library user's binary): the job runs
//!   under `catch_unwind` on its own thread and the caller waits at most the timeout. A hung job
//!   is abandoned (its thread keeps running until the parser gives up), and memory is not bounded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set in a child's environment: the job to run.
pub const ENV_JOB: &str = "DISGRAFS_TAGGER_JOB";
const ENV_INPUT: &str = "DISGRAFS_TAGGER_INPUT";
const ENV_MEMORY: &str = "DISGRAFS_TAGGER_MEMORY";
const ENV_CPU: &str = "DISGRAFS_TAGGER_CPU";
const ENV_MAX_OUTPUT: &str = "DISGRAFS_TAGGER_MAX_OUTPUT";

static CHILD_CAPABLE: AtomicBool = AtomicBool::new(false);

/// Work that can run isolated. Each job reads one file and returns bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// PDF text, all pages (see [`crate::pdf`]).
    PdfText,
    /// The text Tesseract recognises in an image (see [`crate::ocr`]); child mode only.
    OcrText,
    /// The languages Tesseract has data for; child mode only.
    OcrLanguages,
    /// Test jobs proving containment: they panic, hang, or allocate without end.
    #[doc(hidden)]
    TestPanic,
    #[doc(hidden)]
    TestHang,
    #[doc(hidden)]
    TestAllocate,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::PdfText => "pdf-text",
            Job::OcrText => "ocr-text",
            Job::OcrLanguages => "ocr-languages",
            Job::TestPanic => "test-panic",
            Job::TestHang => "test-hang",
            Job::TestAllocate => "test-allocate",
        }
    }

    fn from_name(name: &str) -> Option<Job> {
        [
            Job::PdfText,
            Job::OcrText,
            Job::OcrLanguages,
            Job::TestPanic,
            Job::TestHang,
            Job::TestAllocate,
        ]
        .into_iter()
        .find(|j| j.name() == name)
    }

    /// Runs the job in this process (may panic or hang: that is why it is isolated).
    fn run(self, path: &Path, max_output: usize) -> Result<Vec<u8>, String> {
        match self {
            Job::PdfText => crate::pdf::extract_job(path, max_output),
            // Outside a child (thread mode) an external program could not be killed at the
            // deadline.
            Job::OcrText | Job::OcrLanguages => {
                Err("OCR runs only in a child process (the disgrafs binary)".into())
            }
            Job::TestPanic => panic!("test job panics on purpose"),
            Job::TestHang => loop {
                std::thread::sleep(Duration::from_secs(1));
            },
            Job::TestAllocate => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch the pages so that the allocation is real.
                    hog.push(vec![1u8; 64 << 20]);
                    if hog.len() > 1 << 20 {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }
}

/// Bounds for one isolated job.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    /// Address-space limit of a child (not enforced in thread mode).
    pub memory_bytes: u64,
    /// Output beyond this is cut (the job is told, to stop early).
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(20),
            memory_bytes: 1 << 30,
            max_output: 8 << 20,
        }
    }
}

/// Why an isolated job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("child process died: {0}")]
    Crashed(String),
    #[error("{0}")]
    Failed(String),
    #[error("cannot start child process: {0}")]
    Spawn(std::io::Error),
}

/// Call first thing in `main` of a binary that tags files (`disgrafs`). In a child started by
/// this module it runs the requested job and exits; otherwise it records that this executable
/// can serve as a child, and returns.
pub fn run_child_if_requested() {
    let Ok(job) = std::env::var(ENV_JOB) else {
        CHILD_CAPABLE.store(true, Ordering::Relaxed);
        return;
    };
    std::process::exit(child_main(&job));
}

/// Allows or forbids the child mode explicitly (tests use it to exercise both modes).
pub fn set_child_capable(capable: bool) {
    CHILD_CAPABLE.store(capable, Ordering::Relaxed);
}

fn child_main(job: &str) -> i32 {
    use std::io::Write;
    let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(mem) = env_num(ENV_MEMORY) {
        // Best effort: a kernel that refuses leaves the parent's timeout as the bound.
        rlimit::setrlimit(rlimit::Resource::AS, mem, mem).ok();
    }
    if let Some(cpu) = env_num(ENV_CPU) {
        rlimit::setrlimit(rlimit::Resource::CPU, cpu, cpu + 1).ok();
    }
    let (Some(job), Some(input)) = (Job::from_name(job), std::env::var_os(ENV_INPUT)) else {
        eprintln!("disgrafs-tagger child: unknown job {job:?} or no input");
        return 2;
    };
    if matches!(job, Job::OcrText | Job::OcrLanguages) {
        // Replaces this process, limits and pipes included; back only if it could not start.
        eprintln!("{}", crate::ocr::exec(job, Path::new(&input)));
        return 1;
    }
    let max_output = env_num(ENV_MAX_OUTPUT).map_or(usize::MAX, |m| m as usize);
    match job.run(Path::new(&input), max_output) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return 3;
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Runs `job` on `path` within `limits`, in a child process when the executable supports it,
/// else on a thread.
pub fn run(job: Job, path: &Path, limits: &Limits) -> Result<Vec<u8>, Failure> {
    if CHILD_CAPABLE.load(Ordering::Relaxed)
        && let Ok(exe) = std::env::current_exe()
    {
        return run_child(&exe, job, path, limits);
    }
    run_in_thread(job, path, limits)
}

/// Reads a pipe to its end keeping at most `max` bytes (draining the rest so the child never
/// blocks on a full pipe).
fn drain(
    mut r: impl Read + Send + 'static,
    max: usize,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut over = false;
        let mut buf = [0u8; 64 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    over |= n > room;
                }
            }
        }
        (kept, over)
    })
}

fn run_child(exe: &PathBuf, job: Job, path: &Path, limits: &Limits) -> Result<Vec<u8>, Failure> {
    let mut child = Command::new(exe)
        .env(ENV_JOB, job.name())
        // A child's panic is reported by its one line; symbolising a backtrace of a large
        // debug binary can take longer than the job's deadline, and memory beyond its limit.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .env(ENV_INPUT, path)
        .env(ENV_MEMORY, limits.memory_bytes.to_string())
        .env(ENV_CPU, limits.timeout.as_secs().max(1).to_string())
        .env(ENV_MAX_OUTPUT, limits.max_output.to_string())
        .envs((job == Job::OcrText).then(|| {
            (
                crate::ocr::ENV_LANGS,
                crate::ocr::status().unwrap_or_default(),
            )
        }))
        // The child must not log to our terminal or read our stdin.
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Failure::Spawn)?;
    let stdout = child.stdout.take().map(|s| drain(s, limits.max_output));
    let stderr = child.stderr.take().map(|s| drain(s, 4096));
    let deadline = Instant::now() + limits.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                child.kill().ok();
                child.wait().ok();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                child.kill().ok();
                child.wait().ok();
                return Err(Failure::Crashed(e.to_string()));
            }
        }
    };
    let (out, _) = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let (err, _) = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let err = String::from_utf8_lossy(&err).trim().to_string();
    let Some(status) = status else {
        return Err(Failure::TimedOut(limits.timeout));
    };
    match status.code() {
        Some(0) => Ok(out),
        Some(1) => Err(Failure::Failed(err)),
        // Rust's panic exit code is 101.
        Some(101) => Err(Failure::Panicked(panic_line(&err))),
        _ => Err(Failure::Crashed(format!(
            "{status}{}",
            if err.is_empty() {
                String::new()
            } else {
                format!(": {}", panic_line(&err))
            }
        ))),
    }
}

/// The useful line of a child's stderr after a panic ("panicked at ...: message").
fn panic_line(stderr: &str) -> String {
    let mut lines = stderr.lines();
    match lines.next() {
        Some(first) if first.contains("panicked at") => {
            lines.next().map_or(first, str::trim).to_string()
        }
        Some(first) => first.to_string(),
        None => String::new(),
    }
}

fn run_in_thread(job: Job, path: &Path, limits: &Limits) -> Result<Vec<u8>, Failure> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let max_output = limits.max_output;
    std::thread::Builder::new()
        .name(format!("tagger-{}", job.name()))
        .spawn(move || {
            let result = std::panic::catch_unwind(|| job.run(&path, max_output));
            // The receiver may have given up (timeout): nothing to do then.
            tx.send(result).ok();
        })
        .map_err(Failure::Spawn)?;
    match rx.recv_timeout(limits.timeout) {
        Ok(Ok(Ok(out))) => Ok(out),
        Ok(Ok(Err(e))) => Err(Failure::Failed(e)),
        Ok(Err(payload)) => Err(Failure::Panicked(panic_message(&*payload))),
        Err(_) => Err(Failure::TimedOut(limits.timeout)),
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Limits {
        Limits {
            timeout: Duration::from_millis(300),
            memory_bytes: 256 << 20,
            max_output: 1024,
        }
    }

    #[test]
    fn thread_mode_contains_panics_and_hangs() {
        let p = Path::new("/nonexistent");
        // A generous timeout for the panic: printing a backtrace (RUST_BACKTRACE=1) is slow.
        let patient = Limits {
            timeout: Duration::from_secs(30),
            ..quick()
        };
        assert!(
            matches!(run_in_thread(Job::TestPanic, p, &patient), Err(Failure::Panicked(m)) if m.contains("on purpose"))
        );
        // The hang never ends: only the timeout can answer.
        assert!(matches!(
            run_in_thread(Job::TestHang, p, &quick()),
            Err(Failure::TimedOut(_))
        ));
    }

    #[test]
    fn panic_lines() {
        assert_eq!(
            panic_line("thread 'main' panicked at src/x.rs:1:2:\nboom\nnote: ..."),
            "boom"
        );
        assert_eq!(panic_line("other"), "other");
    }
}

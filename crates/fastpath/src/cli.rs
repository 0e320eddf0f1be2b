//! `disgrafs accel afxdp`: the clap arguments and the start of the fast path. The binary nests
//! [`AfxdpArgs`] under `accel`, calls [`start`], then [`supervise`] until Ctrl-C or SIGTERM.

use std::{future::Future, path::PathBuf, time::Duration};

use disgrafs_accel::{afxdp::XskOptions, cpu_balance::AttachMode};

use crate::{FastPath, FastPathConfig, FastPathError};

#[derive(Debug, Clone, clap::Args)]
pub struct AfxdpArgs {
    /// Interface to serve on (nothing is attached implicitly).
    #[arg(long)]
    pub iface: String,
    /// Network namespace (`ip netns` name) holding the interface.
    #[arg(long)]
    pub netns: Option<String>,
    /// TCP port steered to the fast path (the normal server keeps its own).
    #[arg(long)]
    pub port: u16,
    /// The data directory of the `disgrafs serve` whose objects are served (read-only).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Largest response body served, in bytes; larger ones get 503 (for the normal server).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: u64,
    /// TCP connections at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Seconds without traffic before a connection is reset.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub mode: AttachMode,
    /// Bind AF_XDP sockets in copy mode without trying zero-copy.
    #[arg(long)]
    pub force_copy: bool,
}

/// Starts serving; returns the fast path and the line saying how it runs.
pub fn start(a: AfxdpArgs) -> Result<(FastPath, String), FastPathError> {
    let mut cfg = FastPathConfig::new(&a.iface, a.netns.as_deref(), a.port, a.data_dir);
    cfg.max_body = a.max_body;
    cfg.max_connections = a.max_connections;
    cfg.idle_timeout = Duration::from_secs(a.idle_timeout.max(1));
    cfg.mode = a.mode;
    cfg.xsk = XskOptions {
        force_copy: a.force_copy,
        ..XskOptions::default()
    };
    let fp = FastPath::start(cfg.clone())?;
    let mut line = fp.started.describe(&cfg);
    for w in &fp.started.warnings {
        line = format!("warning: {w}\n{line}");
    }
    Ok((fp, line))
}

/// How often [`supervise`] looks at the fast path.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Serves until `signal` resolves, then stops cleanly. A fast path that dies first (its
/// thread's error or panic, or a loop stuck for [`crate::STALLED`]) ends it with that error and
/// its steering removed, so a command does not sit waiting while the port goes unanswered (the
/// kernel resets every connection to it); a supervisor may then restart it. Runs the blocking
/// stop on the runtime's blocking pool.
pub async fn supervise(
    mut fp: FastPath,
    signal: impl Future<Output = ()>,
) -> Result<(), FastPathError> {
    let watch = async {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if let Err(e) = fp.check() {
                break e;
            }
        }
    };
    tokio::select! {
        () = signal => {}
        e = watch => return Err(e),
    }
    tokio::task::spawn_blocking(move || fp.stop())
        .await
        .map_err(|e| FastPathError::Panicked(e.to_string()))?
}

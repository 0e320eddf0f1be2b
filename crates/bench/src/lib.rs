//! `disgrafs bench`: reproducible measurements of disgrafs beside a peer doing the same work in
//! the same run, printed as rows of [`BenchRow`] (a table, or JSON with `--json`). The libraries
//! carry only the product; their benchmarks live here, one module per suite:
//!
//! | suite         | module          | peer                                      |
//! |---------------|-----------------|-------------------------------------------|
//! | `io`          | [`io`]          | nginx (sendfile, dav PUT), the disk       |
//! | `tagging`     | [`tagging`], [`fulltext`] | Python YAKE; Python sqlite3 FTS5 |
//! | `cpu-balance` | [`cpu_balance`] | no balancer, on a veth pair (needs root)  |
//! | `sockmap`     | [`sockmap`]     | plain loopback TCP (needs root)           |
//! | `afxdp`       | [`afxdp`]       | the kernel path on the same veth (root)   |
//! | `accel`       | [`accel`]       | disgrafs serve without accelerators (root)|
//! | `query`       | [`query`]       | hand-written SQL on the same database     |
//! | `scale`       | [`scale`]       | SQLite, local disk, one worker            |
//! | `listing`     | [`listing`]     | `ls` of a plain directory of as many files |
//!
//! Adding a suite: write a module with `Args` (its flags, `clap::Args`) and a `run` returning
//! `Vec<BenchRow>`, add one variant to [`Suite`] and its arm in [`run`] (blocking work goes
//! through `spawn_blocking`), and give it a line in README's Benchmarks section.
//!
//! Only the `disgrafs` binary runs these suites and their errors are only printed, so this crate
//! reports them with anyhow, like a binary; the product libraries keep their typed errors.

pub mod accel;
pub mod afxdp;
mod child;
pub mod cpu_balance;
pub mod fulltext;
pub mod io;
pub mod listing;
/// The tests' private PostgreSQL cluster (one start-up logic for tests and benches).
#[path = "../../store/tests/support/pg.rs"]
pub mod pg;
pub mod query;
pub mod row;
pub mod scale;
pub mod sockmap;
pub mod tagging;
/// The tests' SeaweedFS server (one start-up logic for tests and benches).
#[path = "../../store/tests/weed/mod.rs"]
pub mod weed;
pub mod wrk;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

pub use child::PLAIN_UNBOUNDED;
pub use row::{BenchRow, Better, Spread, print_rows, render_markdown, render_table, write_rows};

/// Set by Ctrl-C or SIGTERM: the run stops at its next step and removes its host.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Installs SIGINT and SIGTERM handlers (at the call, so a signal right after is not lost)
    /// that set the flag. Needs a tokio runtime.
    pub fn on_signals() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = Stop::default();
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let flag = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("bench: interrupted, removing the test host");
            flag.0.store(true, Ordering::SeqCst);
        });
        Ok(stop)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        Ok(self.check_accel()?)
    }

    /// [`Stop::check`] for the suites that report `AccelError`s.
    pub(crate) fn check_accel(&self) -> Result<(), disgrafs_accel::AccelError> {
        if self.is_set() {
            return Err(disgrafs_accel::AccelError::Harness(
                "interrupted (the test host was removed)".into(),
            ));
        }
        Ok(())
    }
}

/// The `disgrafs bench` command.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub suite: Suite,
    /// Print JSON rows instead of a table.
    #[arg(long, global = true, display_order = 100)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Suite {
    /// Upload, download and small GETs over loopback, beside nginx.
    Io(io::Args),
    /// XDP CPU balancing against no balancer on a veth pair (needs root).
    CpuBalance(cpu_balance::Args),
    /// Plain loopback TCP against the same-host TCP bypass (sockmap), interleaved (needs root).
    Sockmap(sockmap::Args),
    /// The AF_XDP fast path against the kernel path on one veth pair (needs root).
    Afxdp(afxdp::Args),
    /// disgrafs' own traffic without and with its accelerators, on a veth pair (needs root).
    Accel(accel::Args),
    /// A generated corpus of N files: the query mix through the store beside hand-written SQL.
    Query(query::Args),
    /// Tagging with 1, 2 and 4 workers on PostgreSQL, blobs on SeaweedFS vs local disk, the
    /// query mix on PostgreSQL vs SQLite.
    Scale(scale::Args),
    /// A tag directory of N files listed over `disgrafs mount` and WebDAV, beside `ls` of a
    /// plain directory of N files.
    Listing(listing::Args),
    /// Keyword extraction beside the Python reference YAKE, on English and Chinese texts.
    Tagging(tagging::Args),
}

/// Runs one suite and prints its rows on stdout.
pub async fn run(bench: BenchArgs) -> anyhow::Result<()> {
    let rows = match bench.suite {
        Suite::Io(args) => io::run(&args, bench.json).await?,
        Suite::Query(args) => query::run(&args).await?,
        // Not spawned: the suite starts its servers from this (the main) thread, whose end
        // is their parent-death signal.
        Suite::Scale(args) => scale::run(&args, bench.json).await?,
        Suite::Listing(args) => listing::run(&args).await?,
        Suite::Tagging(args) => tokio::task::spawn_blocking(move || tagging::run(&args)).await??,
        // Netlink, bpf(2) and pinned threads block: keep them off the runtime.
        // Each installs its Ctrl-C handler before its host exists: the suite then removes the host
        // and returns.
        Suite::CpuBalance(args) => {
            let stop = Stop::on_signals()?;
            tokio::task::spawn_blocking(move || cpu_balance::run(&args, &stop)).await??
        }
        Suite::Sockmap(args) => {
            let stop = Stop::on_signals()?;
            tokio::task::spawn_blocking(move || sockmap::run(&args, &stop)).await??
        }
        Suite::Afxdp(args) => {
            let stop = Stop::on_signals()?;
            tokio::task::spawn_blocking(move || afxdp::run(&args, &stop)).await??
        }
        Suite::Accel(args) => {
            let stop = Stop::on_signals()?;
            tokio::task::spawn_blocking(move || accel::run(&args, &stop)).await??
        }
    };
    Ok(print_rows(&rows, bench.json)?)
}

//! `disgrafs worker`: tagging workers alone, on any host that reaches the shared stores (no
//! HTTP; `serve --workers 0` is the other half).

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Metadata and the job queue: a postgres:// URL shared with the serve nodes. Without it,
    /// SQLite in --data-dir, which one process owns: a worker cannot share a serve's data
    /// directory (that is refused), so a worker without --meta only tags its own directory.
    #[arg(long, env = "DISGRAFS_META", value_name = "URL")]
    meta: Option<String>,
    /// Where the blobs are, as the serve nodes say: s3://BUCKET?endpoint=URL&region=REGION
    /// (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Required.
    #[arg(
        long,
        env = "DISGRAFS_BLOBS",
        default_value = "local",
        hide_default_value = true
    )]
    blobs: disgrafs_store::BlobLocation,
    /// This worker's own directory: copies of remote blobs being tagged (and, without --meta,
    /// the SQLite database).
    #[arg(long, env = "DISGRAFS_WORKER_DIR", default_value = "disgrafs-worker")]
    data_dir: PathBuf,
    /// Tagging workers running at once in this process.
    #[arg(long)]
    workers: Option<usize>,
    /// How long a claimed job stays this worker's without a renewal (renewed every third of
    /// it while it runs): after a worker dies, its job runs elsewhere once this ran out.
    #[arg(long, value_name = "SECONDS", default_value_t = disgrafs_server::jobs::LEASE.as_secs())]
    lease_secs: u64,
    /// The models directory (image labels), as for `disgrafs serve --models` [default: none,
    /// labels off].
    #[arg(long, env = "DISGRAFS_MODELS", value_name = "DIR")]
    models: Option<std::path::PathBuf>,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    crate::serve::init_logging();
    let d = disgrafs_server::Config::default();
    let workers = args.workers.unwrap_or(d.workers);
    anyhow::ensure!(workers > 0, "--workers must be at least 1 for a worker");
    anyhow::ensure!(args.lease_secs > 0, "--lease-secs must be at least 1");
    // Local blobs are in the data directory of the process that owns it: a worker of its own
    // would look for every content in its own directory and fail every job.
    anyhow::ensure!(
        args.blobs != disgrafs_store::BlobLocation::Local,
        "a worker needs the serve nodes' blob store: --blobs s3://BUCKET?endpoint=URL (local blobs are read only by the process that owns their data directory)"
    );
    let store = disgrafs_store::Store::open(
        &args.data_dir,
        args.meta.as_deref(),
        &args.blobs,
        d.min_confidence,
    )
    .await
    .with_context(|| match &args.meta {
        Some(_) => "cannot open the metadata store".to_string(),
        None => format!("cannot open the data directory {}", args.data_dir.display()),
    })?;
    if let Some(dir) = &args.models {
        disgrafs_tagger::labels::configure(dir);
    }
    crate::serve::labels_status_line();
    let lease = std::time::Duration::from_secs(args.lease_secs);
    disgrafs_server::jobs::run_workers(store, workers, lease).await?;
    let shutdown = crate::serve::shutdown_signal();
    // The first line of stdout says it is ready, for scripts and tests.
    println!(
        "disgrafs worker: {workers} tagging workers running (blobs: {})",
        args.blobs
    );
    shutdown.await;
    Ok(())
}

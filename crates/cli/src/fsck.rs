//! `disgrafs fsck`: checks that a data directory's blobs and metadata agree, and repairs what is
//! safe (`disgrafs_store::Store::fsck`). It opens the stores as `serve` does, so it runs while
//! no `serve` owns the data directory (on SQLite that is refused anyway).

use crate::output::outln;
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct FsckArgs {
    /// The data directory (as `serve --data-dir`, and the same default).
    #[arg(long, env = "DISGRAFS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The metadata store, when it is not SQLite in the data directory (as `serve --meta`).
    #[arg(long, env = "DISGRAFS_META", value_name = "URL")]
    meta: Option<String>,
    /// Where the blobs are (as `serve --blobs`).
    #[arg(
        long,
        env = "DISGRAFS_BLOBS",
        default_value = "local",
        hide_default_value = true
    )]
    blobs: disgrafs_store::BlobLocation,
    /// Remove orphans and set reference counts right (missing and corrupt contents are only
    /// reported: their records are all that is left of them).
    #[arg(long)]
    repair: bool,
}

pub async fn run(args: FsckArgs) -> anyhow::Result<()> {
    let d = disgrafs_server::Config::default();
    let data_dir = args.data_dir.unwrap_or(d.data_dir);
    let store = disgrafs_store::Store::open(
        &data_dir,
        args.meta.as_deref(),
        &args.blobs,
        d.min_confidence,
    )
    .await
    .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    let r = store.fsck(args.repair).await?;
    let fixed = if r.repaired { "removed" } else { "found" };
    for h in &r.orphans {
        outln!("orphan {h}: stored, no record points at it ({fixed})")?;
    }
    for (h, refs, files) in &r.drift {
        let what = if r.repaired { "set right" } else { "found" };
        outln!("refcount {h}: {refs} counted, {files} records ({what})")?;
    }
    for h in &r.missing {
        outln!("missing {h}: records point at it, its bytes are gone")?;
    }
    for (h, actual) in &r.corrupt {
        outln!("corrupt {h}: its bytes hash to {actual}")?;
    }
    let problems = r.orphans.len() + r.drift.len() + r.missing.len() + r.corrupt.len();
    outln!(
        "fsck: {} orphans, {} refcount drifts, {} missing, {} corrupt{}",
        r.orphans.len(),
        r.drift.len(),
        r.missing.len(),
        r.corrupt.len(),
        if r.repaired {
            " (repaired what is safe)"
        } else {
            ""
        }
    )?;
    anyhow::ensure!(
        r.clean(),
        "{problems} problems{}",
        if r.repaired {
            " remain that cannot be repaired"
        } else {
            ": run with --repair to repair what is safe"
        }
    );
    Ok(())
}
